#!/usr/bin/env python3
"""Checks the design documents' tables of atomic operations against the code.

design-docs/rings.md and design-docs/pool.md list every atomic operation by
file and line, with its memory ordering. This script reads each such table
(a `### ...` heading naming one `src/...rs` file, then rows whose first
column is a line number, a range `A-B` or a list `A, B`) and checks that
each listed line of that file is an atomic operation with the ordering the
row gives: `Ordering::X` on that line (for a pair such as `AcqRel /
Relaxed`, both within the lines given). A row whose line has drifted after
an edit fails here, so the tables stay true of the code they describe.

    usage: check-ordering-tables.py [DOC.md ...]   (default: both documents)
Exits 1 and names each stale row when any is found.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "design-docs" / "rings.md", ROOT / "design-docs" / "pool.md"]
ORDERINGS = ("Relaxed", "Acquire", "Release", "AcqRel", "SeqCst")


def line_numbers(cell: str) -> list[int] | None:
    cell = cell.strip()
    if m := re.fullmatch(r"(\d+)-(\d+)", cell):
        return list(range(int(m[1]), int(m[2]) + 1))
    if re.fullmatch(r"\d+(, \d+)*", cell):
        return [int(n) for n in cell.split(",")]
    return None


def check(doc: Path) -> tuple[int, list[str]]:
    source: list[str] | None = None
    name = ""
    rows, problems = 0, []
    for number, text in enumerate(doc.read_text().splitlines(), 1):
        if text.startswith("#"):
            m = re.search(r"`(src/[\w/]+\.rs)`", text)
            source = (ROOT / m[1]).read_text().splitlines() if m and text.startswith("###") else None
            name = m[1] if m else ""
            continue
        if source is None or not text.startswith("|"):
            continue
        cells = text.strip().strip("|").split("|")
        if len(cells) < 3:
            continue
        lines = line_numbers(cells[0])
        if lines is None:
            continue
        rows += 1
        wanted = [o for o in re.findall(r"\w+", cells[2]) if o in ORDERINGS]
        where = f"{doc.name}:{number}: {name} {cells[0].strip()}"
        if not wanted:
            problems.append(f"{where}: no ordering in the row")
            continue
        if max(lines) > len(source):
            problems.append(f"{where}: past the end of the file")
            continue
        if len(lines) > 1 and "," in cells[0]:
            # A list: every line is the same kind of operation.
            missing = [n for n in lines if not all(f"Ordering::{o}" in source[n - 1] for o in wanted)]
        else:
            span = "\n".join(source[n - 1] for n in lines)
            missing = [] if all(f"Ordering::{o}" in span for o in wanted) else lines
        if missing:
            shown = "; ".join(source[n - 1].strip() for n in missing)
            problems.append(f"{where}: expected {' / '.join(wanted)}, found: {shown}")
    return rows, problems


def main() -> int:
    docs = [Path(a) for a in sys.argv[1:]] or DOCS
    total, problems = 0, []
    for doc in docs:
        rows, found = check(doc)
        total += rows
        problems += found
    for p in problems:
        print(f"stale: {p}", file=sys.stderr)
    print(f"check-ordering-tables: {total - len(problems)} of {total} rows match the code")
    return 1 if problems or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
