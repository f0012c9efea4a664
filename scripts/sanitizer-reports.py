#!/usr/bin/env python3
"""Counts and sorts the sanitizer reports in log files.

usage: scripts/sanitizer-reports.py [--fail-on-ours] LABEL=FILE...

Reads every FILE (a server's stderr, a TCL log, a C test's output), cuts it
into ThreadSanitizer, AddressSanitizer, LeakSanitizer and
UndefinedBehaviorSanitizer reports, and prints per LABEL how many there are
and how many of them are attributable to this crate: a report is ours when
the crate makes one of the non-atomic accesses it reports (the first frame
of an access stack - or of the only stack, for other kinds - lies in the
crate: a `valkey_iocore` symbol, plain or v0-mangled, or a source file under
the crate's src/). A data race needs a non-atomic access, so one between an
atomic access of the crate's and a plain one of Valkey's is Valkey's. Reports where the crate is only further down a stack (Valkey's
networking code racing on a worker the crate runs) are counted apart. The
same report printed twice (a TCL log repeats a server's stderr) is counted
once per LABEL, by its kind and its frames. Each distinct report is listed
with its first frames.

With --fail-on-ours, exits 1 when any report is ours. Standard library only.
"""

import re
import sys

# The first line of a report, and the line that ends one.
START = re.compile(r"(WARNING|ERROR): (\w*Sanitizer): ([\w -]+?)(?: \(|$)|runtime error: (.*)")
END = re.compile(r"SUMMARY: \w*Sanitizer|^={10,}\s*$")
# "    #3 0x55d1 in fn file.c:12" (gcc's runtime) or "    #3 fn file.c:12 (bin+0x12)" (LLVM's).
FRAME = re.compile(r"^\s*#(\d+)\s+(?:0x[0-9a-f]+\s+in\s+)?(\S+)\s*(\S*)")
# A data race report heads each access's stack with "Read of size 4 at ...".
ACCESS = re.compile(r" of size \d+ at ")
CRATE = re.compile(r"valkey_iocore|(^|/)src/(pool|ring|valkey|ffi)/[\w/]+\.rs|(^|/)src/(job|lib|sync)\.rs")


def reports(text):
    """Yields (kind, frames, tops) for each report in text: frames are
    (function, location) pairs in the order printed, tops the first frames
    of the stacks that make the reported non-atomic accesses."""
    kind, frames, tops, header = None, [], [], ""
    for line in text.splitlines():
        start = START.search(line)
        if start:
            if kind:
                yield kind, frames, tops
            kind = "%s %s" % (start.group(2), start.group(3)) if start.group(2) else "UBSan"
            frames, tops, header = [], [], ""
        elif kind:
            frame = FRAME.match(line)
            if frame:
                where = (frame.group(2), frame.group(3))
                frames.append(where)
                if frame.group(1) == "0" and (ACCESS.search(header) or not tops and
                                              "data race" not in kind):
                    if not re.search(r"\batomic\b", header, re.I):
                        tops.append(where)
            elif END.search(line):
                yield kind, frames, tops
                kind, frames, tops = None, [], []
            elif line.strip():
                header = line
    if kind:
        yield kind, frames, tops


def in_crate(frames):
    return any(CRATE.search(fn) or CRATE.search(loc) for fn, loc in frames)


def main(argv):
    fail_on_ours = "--fail-on-ours" in argv
    args = [a for a in argv if a != "--fail-on-ours"]
    if not args or any("=" not in a for a in args):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2

    totals = {}
    distinct = {}
    for arg in args:
        label, path = arg.split("=", 1)
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError as err:
            print("sanitizer-reports: %s: %s" % (path, err), file=sys.stderr)
            return 2
        seen = totals.setdefault(label, {})
        for kind, frames, tops in reports(text):
            key = (kind, tuple(fn for fn, _ in frames))
            verdict = "ours" if in_crate(tops) else "below" if in_crate(frames) else "not"
            seen[key] = verdict
            distinct.setdefault(key, (kind, frames, verdict, set()))[3].add(label)

    ours_total = 0
    for label, seen in totals.items():
        ours = sum(1 for v in seen.values() if v == "ours")
        below = sum(1 for v in seen.values() if v == "below")
        ours_total += ours
        print("%-32s %3d reports: %3d made by the crate, %3d with the crate further down a stack"
              % (label, len(seen), ours, below))
    words = {"ours": "made by the crate", "below": "the crate further down a stack",
             "not": "not in the crate"}
    for kind, frames, verdict, labels in distinct.values():
        print("\n%s (%s; in %s)" % (kind, words[verdict], ", ".join(sorted(labels))))
        for fn, loc in frames[:6]:
            print("    %s %s" % (fn, loc))
    return 1 if fail_on_ours and ours_total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
