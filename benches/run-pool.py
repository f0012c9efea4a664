#!/usr/bin/env python3
"""Runs the pool microbenchmark's three variants alternately, round after
round, and writes a markdown table of medians, spreads and ratios (also
printed).

    usage: run-pool.py RUST_BIN C_BIN ROUNDS RESULT.md

RUST_BIN is benches/pool_bench.rs built by cargo (variants park and spin),
C_BIN benches/pool_bench_c.c (variant c-9.1.2). Within a round every
scenario runs once per variant, back to back, so drift in the machine hits
all three alike; the order rotates every round (park spin C, spin C park,
C park spin) so that no variant always goes first. Each run is a fresh
process and prints one line of key=value figures; the raw figures go to
RESULT-raw.tsv next to the table.
"""

import fcntl
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("park", "spin", "c-9.1.2")
SCENARIOS = ("rtt", "tput", "idle")
WORKERS = (1, 2)

# (scenario, key, row label, unit, scale, digits, higher is better)
FIGURES = (
    ("rtt", "p50_ns", "rtt median", "ns", 1, 0, False),
    ("rtt", "p99_ns", "rtt p99", "ns", 1, 0, False),
    ("tput", "jobs_per_s", "throughput, 256 in flight", "M jobs/s", 1e-6, 2, True),
    ("tput", "cpu_s_per_mjob", "CPU at throughput", "CPU s / M jobs", 1, 3, False),
    ("idle", "cpu_s_per_mjob", "CPU at 1 job/ms", "CPU s / M jobs", 1, 1, False),
    ("idle", "cpu_per_wall_s", "CPU share at 1 job/ms", "CPU s / s", 1, 4, False),
)


def run(exe: str, variant: str, scenario: str, workers: int) -> dict[str, float]:
    """One run: its key=value figures."""
    done = subprocess.run([exe, variant, scenario, str(workers)], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"run-pool: {variant} {scenario} {workers} failed "
                 f"(exit {done.returncode}): {done.stderr.strip()}")
    figures = {}
    for field in done.stdout.split()[3:]:
        key, _, value = field.partition("=")
        if key != "cpus":
            figures[key] = float(value)
    return figures


def machine_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "unknown"
    except OSError:
        return "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ratio(c: float, rust: float, higher_is_better: bool) -> float | None:
    """Speed of `rust` over `c`: above 1 means `rust` is better."""
    num, den = (rust, c) if higher_is_better else (c, rust)
    return num / den if den > 0 else None


def number(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def ratio_text(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}" if x >= 100 else f"{x:.2f}"


def table(raw: dict, rounds: int) -> list[str]:
    lines = [
        "| scenario | unit | park | spin | c-9.1.2 | speed Rust/C | Rust/C per round (min..max)"
        " | | speed spin/C |",
        "|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for scenario, key, label, unit, scale, digits, higher in FIGURES:
        for workers in WORKERS:
            per = {v: [raw[(r, v, scenario, workers)][key] * scale for r in range(1, rounds + 1)]
                   for v in VARIANTS}
            med = {v: statistics.median(per[v]) for v in VARIANTS}
            cells = [f"{number(med[v], digits)} ({number(min(per[v]), digits)}.."
                     f"{number(max(per[v]), digits)})" for v in VARIANTS]

            rounds_ratio = [ratio(c, r, higher) for c, r in zip(per["c-9.1.2"], per["park"])]
            known = [q for q in rounds_ratio if q is not None]
            speed = ratio(med["c-9.1.2"], med["park"], higher)
            spread = f"{ratio_text(min(known))}..{ratio_text(max(known))}" if known else "n/a"
            if not known:
                verdict = ""
            elif max(known) < 0.98:
                verdict = "Rust slower"
            elif min(known) > 1.02:
                verdict = "Rust faster"
            else:
                verdict = "within noise"
            spin = ratio(med["c-9.1.2"], med["spin"], higher)

            name = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
            lines.append(f"| {name} | {unit} | {' | '.join(cells)} | {ratio_text(speed)} "
                         f"| {spread} | {verdict} | {ratio_text(spin)} |")
    return lines


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[3])
    rust, c_bin, rounds, result = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    exe = {"park": rust, "spin": rust, "c-9.1.2": c_bin}
    raw_path = result.with_name(result.stem + "-raw.tsv")
    result.parent.mkdir(parents=True, exist_ok=True)

    # Two runs at once would slow each other down and mix their figures, so a
    # second run waits for the first.
    lock = open(result.parent / ".pool.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("run-pool: waiting for another bench-pool run to finish", file=sys.stderr)
        fcntl.flock(lock, fcntl.LOCK_EX)

    uptime_start = machine_line(["uptime"])
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    started = time.monotonic()
    raw = {}
    for r in range(1, rounds + 1):
        order = VARIANTS[(r - 1) % 3:] + VARIANTS[:(r - 1) % 3]
        for scenario in SCENARIOS:
            for workers in WORKERS:
                for variant in order:
                    raw[(r, variant, scenario, workers)] = run(exe[variant], variant, scenario,
                                                               workers)
        print(f"run-pool: round {r} of {rounds} done", file=sys.stderr)
    load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    minutes = (time.monotonic() - started) / 60

    with raw_path.open("w") as f:
        f.write("round\tvariant\tscenario\tworkers\tkey\tvalue\n")
        for (r, variant, scenario, workers), figures in raw.items():
            for key, value in figures.items():
                f.write(f"{r}\t{variant}\t{scenario}\t{workers}\t{key}\t{value:g}\n")

    cc = os.environ.get("CC", "cc")
    late = {(v, w): statistics.median(raw[(r, v, "idle", w)]["late"]
                                      for r in range(1, rounds + 1))
            for v in VARIANTS for w in WORKERS}
    capped = {}
    for (r, v, s, w), figures in raw.items():
        if s == "tput" and figures["jobs"] < 400000:
            capped[(v, w)] = capped.get((v, w), 0) + 1
    cpus = os.sched_getaffinity(0)
    lines = [
        "# Pool microbenchmark: valkey-iocore's pool against Valkey 9.1.2's I/O-thread loop",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- uptime at the start: {uptime_start}",
        f"- load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end",
        f"- machine: nproc {os.cpu_count()} ({len(cpus)} allowed), {cpu_model()}, "
        f"Linux {platform.release()}",
        f"- C compiler: {machine_line([cc, '--version'])}",
        f"- Rust: {machine_line(['rustc', '--version'])}, bench profile (= release of Cargo.toml)",
        f"- Valkey objects (queues.c, adlist.c, monotonic.c): {os.environ.get('VALKEY_CFLAGS', '?')}",
        f"- C harness flags: {os.environ.get('BENCH_CFLAGS', '?')}",
        f"- threads: main thread pinned to CPU {min(cpus)}, every worker to "
        f"CPU {sorted(cpus)[1] if len(cpus) > 1 else min(cpus)}",
        f"- {rounds} rounds, variants interleaved and rotated within each round, a fresh "
        f"process per run; {minutes:.1f} minutes in all",
        "",
        *table(raw, rounds),
        "",
        "Each variant's cell: the median over the rounds (min..max over the rounds).",
        "park: our pool, IdlePolicy::Park (the default). spin: our pool, IdlePolicy::Spin.",
        "c-9.1.2: benches/pool_bench_c.c, 9.1.2's IOThreadMain and sendToMainThread on",
        "Valkey's own queues.c. The main thread is the same in all three: jobs go to",
        "the shared inbox, a commit follows each burst (commitIOJobs for C), results",
        "are popped from the outbox 16 at a time; a job's handler sends the job back.",
        "",
        "rtt: one job in flight; time from the submit until its result is popped.",
        "throughput: up to 256 jobs in flight, 400000 jobs or 0.5 s of submitting,",
        "whichever ends first; CPU is the process's user + system time, all threads.",
        "1 job/ms: 2000 ticks; at each the main thread takes the results that are",
        "back, submits one job, commits and sleeps until the next tick, so the CPU",
        "time is mostly what idle workers burn between jobs.",
        "",
        "speed Rust/C: park against c-9.1.2, from the medians, as C's time (or CPU)",
        "over park's, or park's jobs/s over C's; above 1 means park is faster or",
        "cheaper. The per-round column is the same ratio in each round; the verdict",
        "says slower or faster only when every round agrees by more than 2%.",
        "speed spin/C: the same for spin, from the medians.",
        "With 2 workers both share one CPU: the figures then include the",
        "scheduler's hand-over between them (a worker preempted between reserving",
        "an outbox slot and filling it holds up every result behind it).",
        "",
        "Results not yet back at the next 1 ms tick (median per run of 2000 ticks; "
        "1 worker, 2 workers): "
        + "; ".join(f"{v} {late[(v, 1)]:g}, {late[(v, 2)]:g}" for v in VARIANTS) + ".",
    ]
    if capped:
        lines.append("Throughput runs stopped by the 0.5 s limit: " + "; ".join(
            f"{v} with {w} worker{'s' if w > 1 else ''} in {n} of {rounds} rounds"
            for (v, w), n in sorted(capped.items())) + ".")
    lines += ["", f"Raw figures: {raw_path.name}."]
    result.write_text("\n".join(lines) + "\n")
    print(result.read_text(), end="")


if __name__ == "__main__":
    main()
