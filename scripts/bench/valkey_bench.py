#!/usr/bin/env python3
"""Side-by-side server benchmarks: Valkey 9.1.2 on its own I/O-threads core
(the C build) against Valkey on valkey-iocore (the Rust build).

Both servers come from one pristine tree (scripts/build-valkey.sh c rust) and
are measured in the same run, alternately, so that whatever else the machine
does hits both alike. Three kinds of figures:

- throughput and latency: valkey-benchmark against each build, one cell per
  command (SET, GET), pipeline depth (1, 16) and thread set-up (io-threads 1;
  2 and 3 with dynamic workers; 2 and 3 with `io-threads-always-active`);
- cost: the server's CPU time (utime + stime of /proc/PID/stat) per million
  requests in each cell, and under a light steady load (one request every
  2 ms from one connection) the server's CPU per wall second and the
  requests' latency, at io-threads 1, 2 and 4 with always-active workers;
- the ring and pool microbenchmarks (`make bench-rings`, `make bench-pool`
  where the Makefile has it), whose tables are included as they are.

Rounds and order. Each round starts one fresh server per (build, thread
set-up) and runs that set-up's four cells on it (SET then GET at pipeline 1,
then at pipeline 16), after a sequential SET of every key so that each GET
finds its key. The builds alternate within a round (C first in odd rounds,
Rust first in even ones), so a machine that drifts one way over a round
does not always favour the same build. A fresh server per round, rather
than one per build for the whole run, keeps rounds independent: a server
that degrades (fragmentation, a worker left in an odd state) shows up as
spread between rounds instead of as a bias in every figure. Per-round
ratios Rust/C are taken between the two servers of the same round; their
min..max is the spread reported next to each median ratio.

Every server listens on a free loopback port, with `--save "" --appendonly
no`, and is shut down when its cells are done, on failure, on Ctrl-C and on
SIGTERM.

Writes to the results directory: bench.md (the report), bench.png (the
chart, if gnuplot is installed), bench-raw.tsv and bench-light-raw.tsv (every
measurement), and the gnuplot data files.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDS = ("c", "rust")
BUILD_NAMES = {"c": "C", "rust": "Rust"}
COMMANDS = ("SET", "GET")
PIPELINES = (1, 16)
KEYSPACE = 100_000
VALUE_SIZE = 64
CLIENTS = 50
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---- settings -------------------------------------------------------------


@dataclass(frozen=True)
class ThreadSetup:
    """How a server's I/O threads are configured."""

    threads: int
    always_active: bool

    @property
    def label(self) -> str:
        if self.threads == 1:
            return "io-threads 1"
        mode = "always-active" if self.always_active else "dynamic"
        return f"io-threads {self.threads} {mode}"

    def server_args(self) -> list[str]:
        yes_no = "yes" if self.always_active else "no"
        return ["--io-threads", str(self.threads), "--io-threads-always-active", yes_no]


# At io-threads 1 there are no workers, so the two modes are the same server.
THROUGHPUT_SETUPS = (
    ThreadSetup(1, False),
    ThreadSetup(2, False),
    ThreadSetup(3, False),
    ThreadSetup(2, True),
    ThreadSetup(3, True),
)
LIGHT_SETUPS = (ThreadSetup(1, True), ThreadSetup(2, True), ThreadSetup(4, True))


@dataclass(frozen=True)
class Cell:
    command: str
    pipeline: int
    setup: ThreadSetup

    @property
    def label(self) -> str:
        return f"{self.command} P{self.pipeline} {self.setup.label}"


@dataclass
class Settings:
    rounds: int
    requests: int
    requests_pipelined: int
    light_rounds: int
    light_seconds: float
    light_interval_ms: float
    micro_rounds: int
    results: Path
    # Each build's src/ directory; the valkey-server copied from it for this
    # run; and the one client for both, the C tree's valkey-benchmark (the
    # last two set by `snapshot_binaries`).
    trees: dict[str, Path]
    servers: dict[str, Path]
    client: Path
    valkey_version: str
    quick: bool
    report_only: bool
    build: bool
    micro: bool
    make: str

    def requests_for(self, pipeline: int) -> int:
        return self.requests if pipeline == 1 else self.requests_pipelined


def parse_settings(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: every step, fewer rounds and requests")
    parser.add_argument("--rounds", type=int, help="server rounds (default 6, quick 2)")
    parser.add_argument("--requests", type=int,
                        help="requests per pipeline-1 cell (default 100000, quick 20000)")
    parser.add_argument("--requests-pipelined", type=int,
                        help="requests per pipeline-16 cell (default 8x --requests)")
    parser.add_argument("--light-rounds", type=int, help="light-load rounds (default 2, quick 1)")
    parser.add_argument("--light-seconds", type=float,
                        help="measured seconds per light-load run (default 10, quick 3)")
    parser.add_argument("--light-interval-ms", type=float, default=2.0,
                        help="time between light-load requests (default 2)")
    parser.add_argument("--micro-rounds", type=int,
                        help="rounds of the ring and pool benchmarks (default 7, quick 2)")
    parser.add_argument("--no-build", action="store_true",
                        help="use build/valkey-{c,rust} as they are")
    parser.add_argument("--no-micro", action="store_true",
                        help="skip the ring and pool benchmarks")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite bench.md and bench.png from the last run's raw figures")
    parser.add_argument("--results", type=Path, default=ROOT / "build" / "results")
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"))
    args = parser.parse_args(argv)

    quick = args.quick
    requests = args.requests or (20_000 if quick else 100_000)
    build_dir = Path(os.environ.get("BUILD_DIR", ROOT / "build"))
    settings = Settings(
        rounds=args.rounds or (2 if quick else 6),
        requests=requests,
        requests_pipelined=args.requests_pipelined or 8 * requests,
        light_rounds=args.light_rounds or (1 if quick else 2),
        light_seconds=args.light_seconds or (3.0 if quick else 10.0),
        light_interval_ms=args.light_interval_ms,
        micro_rounds=args.micro_rounds or (2 if quick else 7),
        results=args.results,
        trees={b: build_dir / f"valkey-{b}" / "src" for b in BUILDS},
        servers={},
        client=Path(),
        valkey_version="unknown",
        quick=quick,
        report_only=args.report_only,
        build=not args.no_build,
        micro=not args.no_micro,
        make=args.make,
    )
    if settings.rounds < 1 or settings.light_rounds < 1:
        parser.error("rounds must be at least 1")
    return settings


# ---- servers --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_command(*args: str | bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a.encode() if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(reader) -> bytes:
    """Reads one RESP2 reply of the kinds used here; returns its payload."""
    line = reader.readline()
    if not line:
        raise ConnectionError("server closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        n = int(rest)
        return b"" if n < 0 else reader.read(n + 2)[:-2]
    if kind == b"*":
        return b"\n".join(read_reply(reader) for _ in range(int(rest)))
    if kind == b"-":
        raise RuntimeError(f"server error: {rest.decode()}")
    return rest


class Server:
    """One valkey-server process on a loopback port, shut down by `stop`."""

    running: set["Server"] = set()

    def __init__(self, build: str, executable: Path, setup: ThreadSetup, workdir: Path):
        self.build = build
        self.setup = setup
        self.port = free_port()
        self.log = workdir / f"{build}-{self.port}.log"
        args = [
            str(executable),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(workdir),
            "--logfile", str(self.log),
            *setup.server_args(),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        Server.running.add(self)
        self.wait_ready()
        self.check_config()

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, *args: str, timeout: float = 10.0) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(resp_command(*args))
            return read_reply(s.makefile("rb"))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.build} server exited at start; see {self.log}")
            try:
                if self.call("PING", timeout=1) == b"PONG":
                    return
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.build} server did not answer; see {self.log}")
            time.sleep(0.05)

    def check_config(self) -> None:
        """The server runs the thread set-up asked for, not a default."""
        got = {}
        for name in ("io-threads", "io-threads-always-active"):
            got[name] = self.call("CONFIG", "GET", name).split(b"\n")[1].decode()
        want = {"io-threads": str(self.setup.threads),
                "io-threads-always-active": "yes" if self.setup.always_active else "no"}
        if got != want:
            raise RuntimeError(f"{self.build} server runs {got}, not {want}")

    def cpu_seconds(self) -> float:
        """utime + stime of every thread, live and exited."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("SHUTDOWN", "NOSAVE", timeout=2)
            except (OSError, RuntimeError, ValueError):
                pass  # the connection closes as the server exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        Server.running.discard(self)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_all_servers() -> None:
    for server in list(Server.running):
        server.stop()


# ---- valkey-benchmark cells ---------------------------------------------


@dataclass
class Sample:
    """One cell on one build in one round."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_s: float
    requests: int

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_s / (self.requests / 1e6)


def run_valkey_benchmark(client: Path, port: int, args: list[str], timeout: float) -> str:
    cmd = [str(client), "-h", "127.0.0.1", "-p", str(port), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


def fill_keyspace(server: Server, client: Path) -> None:
    """SETs every key once, in order, so each GET cell finds its key."""
    run_valkey_benchmark(client, server.port, [
        "-t", "set", "-d", str(VALUE_SIZE), "-r", str(KEYSPACE), "--sequential",
        "-n", str(KEYSPACE), "-c", "10", "-P", "32", "-q"], timeout=300)
    size = int(server.call("DBSIZE"))
    if size != KEYSPACE:
        raise RuntimeError(f"keyspace fill left {size} keys, not {KEYSPACE}")


def run_cell(server: Server, client: Path, cell: Cell, requests: int, seed: int) -> Sample:
    args = ["-t", cell.command.lower(), "-d", str(VALUE_SIZE), "-r", str(KEYSPACE),
            "-c", str(CLIENTS), "-P", str(cell.pipeline), "-n", str(requests),
            "--seed", str(seed), "--csv"]
    cpu_before = server.cpu_seconds()
    out = run_valkey_benchmark(client, server.port, args, timeout=max(600, requests / 200))
    cpu_after = server.cpu_seconds()

    rows = [r for r in csv.DictReader(io.StringIO(out)) if r.get("test") == cell.command]
    if len(rows) != 1:
        raise RuntimeError(f"unexpected valkey-benchmark output:\n{out}")
    row = rows[0]
    return Sample(rps=float(row["rps"]), p50_ms=float(row["p50_latency_ms"]),
                  p99_ms=float(row["p99_latency_ms"]), cpu_s=cpu_after - cpu_before,
                  requests=requests)


def throughput_cells(setup: ThreadSetup) -> list[Cell]:
    return [Cell(cmd, p, setup) for p in PIPELINES for cmd in COMMANDS]


def build_order(round_no: int) -> tuple[str, str]:
    return ("c", "rust") if round_no % 2 == 1 else ("rust", "c")


def run_throughput(settings: Settings, workdir: Path) -> dict[tuple[Cell, str], list[Sample]]:
    samples: dict[tuple[Cell, str], list[Sample]] = {}
    raw = (settings.results / "bench-raw.tsv").open("w")
    raw.write("round\tbuild\tcommand\tpipeline\tthreads\talways_active\trequests"
              "\trps\tp50_ms\tp99_ms\tcpu_s\n")
    started = time.monotonic()

    for round_no in range(1, settings.rounds + 1):
        ratios = []
        for setup in THROUGHPUT_SETUPS:
            by_build = {}
            for build in build_order(round_no):
                with Server(build, settings.servers[build], setup, workdir) as server:
                    fill_keyspace(server, settings.client)
                    for cell in throughput_cells(setup):
                        requests = settings.requests_for(cell.pipeline)
                        sample = run_cell(server, settings.client, cell, requests,
                                          seed=round_no)
                        samples.setdefault((cell, build), []).append(sample)
                        by_build[(cell, build)] = sample
                        raw.write(f"{round_no}\t{build}\t{cell.command}\t{cell.pipeline}"
                                  f"\t{setup.threads}\t{int(setup.always_active)}\t{requests}"
                                  f"\t{sample.rps}\t{sample.p50_ms}\t{sample.p99_ms}"
                                  f"\t{sample.cpu_s:.2f}\n")
                raw.flush()
            cells = throughput_cells(setup)
            setup_ratios = [by_build[(c, "rust")].rps / by_build[(c, "c")].rps for c in cells]
            ratios += setup_ratios
            say(f"round {round_no}/{settings.rounds}: {setup.label:<28} "
                + "  ".join(f"{c.command} P{c.pipeline} "
                            f"C {by_build[(c, 'c')].rps / 1e3:.0f}k Rust {by_build[(c, 'rust')].rps / 1e3:.0f}k"
                            for c in cells))

        elapsed = time.monotonic() - started
        left = elapsed / round_no * (settings.rounds - round_no)
        say(f"round {round_no}/{settings.rounds} done in {elapsed:.0f} s total, "
            f"Rust/C throughput {min(ratios):.2f}..{max(ratios):.2f} this round, "
            f"about {left:.0f} s of throughput rounds left")

    raw.close()
    return samples


# ---- light steady load ----------------------------------------------------


@dataclass
class LightSample:
    cpu_percent: float
    p50_us: float
    p99_us: float
    requests: int
    late: int


def paced_requests(server: Server, seconds: float, interval: float) -> tuple[list[float], int]:
    """One connection, one request every `interval` seconds, alternating SET
    and GET of the same key; returns each request's latency (µs) and how many
    were sent late because the previous one overran its slot."""
    value = b"v" * VALUE_SIZE
    latencies = []
    late = 0
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = s.makefile("rb")
        start = time.perf_counter()
        n = int(seconds / interval)
        for i in range(n):
            key = b"key:%012d" % (i // 2 % KEYSPACE)
            request = resp_command(b"SET", key, value) if i % 2 == 0 else resp_command(b"GET", key)

            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                late += 1

            t0 = time.perf_counter_ns()
            s.sendall(request)
            read_reply(reader)
            latencies.append((time.perf_counter_ns() - t0) / 1e3)
    return latencies, late


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_light(server: Server, settings: Settings) -> LightSample:
    interval = settings.light_interval_ms / 1e3

    # Warm-up: the connection is made, workers have started and settled.
    paced_requests(server, 1.0, interval)

    cpu_before = server.cpu_seconds()
    wall_before = time.monotonic()
    latencies, late = paced_requests(server, settings.light_seconds, interval)
    wall = time.monotonic() - wall_before
    cpu = server.cpu_seconds() - cpu_before

    return LightSample(cpu_percent=100 * cpu / wall, p50_us=percentile(latencies, 0.50),
                       p99_us=percentile(latencies, 0.99), requests=len(latencies), late=late)


def run_light_load(settings: Settings, workdir: Path) -> dict[tuple[ThreadSetup, str], list[LightSample]]:
    samples: dict[tuple[ThreadSetup, str], list[LightSample]] = {}
    raw = (settings.results / "bench-light-raw.tsv").open("w")
    raw.write("round\tbuild\tthreads\tcpu_percent\tp50_us\tp99_us\trequests\tlate\n")

    for round_no in range(1, settings.light_rounds + 1):
        for setup in LIGHT_SETUPS:
            line = []
            for build in build_order(round_no):
                with Server(build, settings.servers[build], setup, workdir) as server:
                    sample = run_light(server, settings)
                samples.setdefault((setup, build), []).append(sample)
                raw.write(f"{round_no}\t{build}\t{setup.threads}\t{sample.cpu_percent:.2f}"
                          f"\t{sample.p50_us:.1f}\t{sample.p99_us:.1f}\t{sample.requests}"
                          f"\t{sample.late}\n")
                line.append(f"{BUILD_NAMES[build]} CPU {sample.cpu_percent:.1f}% "
                            f"p99 {sample.p99_us:.0f} us")
            raw.flush()
            say(f"light load round {round_no}/{settings.light_rounds}: {setup.label:<30} "
                + ", ".join(line))

    raw.close()
    return samples


# ---- microbenchmarks ------------------------------------------------------


def makefile_has_target(target: str) -> bool:
    text = (ROOT / "Makefile").read_text()
    return re.search(rf"^{re.escape(target)}\s*:", text, re.MULTILINE) is not None


def run_micro(settings: Settings) -> dict[str, str]:
    """Runs bench-rings and bench-pool where present; returns each one's
    state ("ran", "failed", "absent")."""
    state = {}
    for target in ("bench-rings", "bench-pool"):
        if not makefile_has_target(target):
            state[target] = "absent"
            continue
        say(f"running make {target} BENCH_ROUNDS={settings.micro_rounds}")
        done = subprocess.run(
            [settings.make, "--no-print-directory", "-C", str(ROOT), target,
             f"BENCH_ROUNDS={settings.micro_rounds}"],
            stdout=subprocess.DEVNULL)
        state[target] = "ran" if done.returncode == 0 else "failed"
        if done.returncode != 0:
            say(f"make {target} failed (exit {done.returncode}); the report notes it")
    return state


# ---- results ----------------------------------------------------------


def median(values) -> float:
    return statistics.median(values)


def spread(values) -> str:
    return f"{min(values):.2f}..{max(values):.2f}"


def verdict(per_round: list[float], higher_is_better: bool) -> str:
    """'faster'/'slower' only when every round agrees."""
    better = [r > 1 if higher_is_better else r < 1 for r in per_round]
    if all(better):
        return "Rust better"
    if not any(better):
        return "Rust worse" if all(r != 1 for r in per_round) else "equal"
    return "within noise"


def command_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_lines(settings: Settings) -> list[str]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "src", "Cargo.toml", "Cargo.lock", "build.rs", "valkey-patch"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    commit_line = f"{commit}" + (f", plus uncommitted changes to {', '.join(dirty)}"
                                 if dirty else ", no uncommitted changes to the crate")
    return [
        f"- machine: {os.cpu_count()} CPUs, {cpu_model}; Linux {platform.release()}",
        f"- C compiler: {command_output(['cc', '--version'])}",
        f"- Rust: {command_output(['rustc', '--version'])}",
        f"- Valkey: {settings.valkey_version}",
        f"- valkey-iocore commit: {commit_line}",
    ]


def cell_table(cells, samples) -> list[str]:
    lines = [
        "| cell | C req/s | Rust req/s | Rust/C | per round | | C p50 / p99 ms "
        "| Rust p50 / p99 ms | p99 Rust/C | per round |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---|",
    ]
    for cell in cells:
        c, r = samples[(cell, "c")], samples[(cell, "rust")]
        rps_c, rps_r = median(s.rps for s in c), median(s.rps for s in r)
        rps_rounds = [b.rps / a.rps for a, b in zip(c, r)]
        p99_c, p99_r = median(s.p99_ms for s in c), median(s.p99_ms for s in r)
        p99_rounds = [b.p99_ms / a.p99_ms for a, b in zip(c, r)]
        lines.append(
            f"| {cell.label} | {rps_c:,.0f} | {rps_r:,.0f} | {rps_r / rps_c:.2f} "
            f"| {spread(rps_rounds)} | {verdict(rps_rounds, True)} "
            f"| {median(s.p50_ms for s in c):.3f} / {p99_c:.3f} "
            f"| {median(s.p50_ms for s in r):.3f} / {p99_r:.3f} "
            f"| {p99_r / p99_c:.2f} | {spread(p99_rounds)} |")
    return lines


def cost_table(cells, samples) -> list[str]:
    lines = [
        "| cell | C CPU s / M req | Rust CPU s / M req | Rust/C | per round |",
        "|---|---:|---:|---:|---|",
    ]
    for cell in cells:
        c, r = samples[(cell, "c")], samples[(cell, "rust")]
        cost_c = median(s.cpu_per_million for s in c)
        cost_r = median(s.cpu_per_million for s in r)
        rounds = [b.cpu_per_million / a.cpu_per_million for a, b in zip(c, r) if a.cpu_s > 0]
        lines.append(f"| {cell.label} | {cost_c:.2f} | {cost_r:.2f} "
                     f"| {cost_r / cost_c:.2f} | {spread(rounds) if rounds else '-'} |")
    return lines


def light_table(light) -> list[str]:
    lines = [
        "| set-up | C CPU % | Rust CPU % | Rust/C CPU | C p50 / p99 µs "
        "| Rust p50 / p99 µs | requests per run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for setup in LIGHT_SETUPS:
        c, r = light[(setup, "c")], light[(setup, "rust")]
        cpu_c, cpu_r = median(s.cpu_percent for s in c), median(s.cpu_percent for s in r)
        ratio = f"{cpu_r / cpu_c:.2f}" if cpu_c > 0 else "-"
        lines.append(
            f"| {setup.label} | {cpu_c:.1f} | {cpu_r:.1f} | {ratio} "
            f"| {median(s.p50_us for s in c):.0f} / {median(s.p99_us for s in c):.0f} "
            f"| {median(s.p50_us for s in r):.0f} / {median(s.p99_us for s in r):.0f} "
            f"| {c[0].requests} |")
    return lines


def micro_round_trips(path: Path) -> list[tuple[str, float, list[float]]]:
    """(scenario, speed Rust/C, [per-round min, max]) of every round-trip
    row of a microbenchmark table: a row whose first cell names a round trip
    (rtt), read from the column headed 'speed Rust/C' (else the first headed
    'Rust/C') and the per-round column next to it, where it has one."""
    if not path.exists():
        return []
    found = []
    column = None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            column = None if not line.strip() else column
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if column is None:
            heads = [i for i, h in enumerate(cells) if "Rust/C" in h and "round" not in h]
            column = heads[0] if heads else -1
            continue
        if column < 0 or set(cells[0]) <= set("-: "):
            continue
        if not re.search(r"rtt|round.trip", cells[0], re.IGNORECASE):
            continue
        try:
            ratio = float(cells[column])
        except (ValueError, IndexError):
            continue
        bounds = re.fullmatch(r"([\d.]+)\.\.([\d.]+)", cells[column + 1] if column + 1 < len(cells) else "")
        rounds = [float(bounds[1]), float(bounds[2])] if bounds else [ratio]
        found.append((cells[0], ratio, rounds))
    return found


def c_noise(cells, samples) -> float:
    """The C build against itself: half the range of its requests/s over
    the rounds, relative to the median; the median of that over all cells."""
    ranges = []
    for cell in cells:
        rps = [s.rps for s in samples[(cell, "c")]]
        ranges.append((max(rps) - min(rps)) / 2 / median(rps))
    return median(ranges)


@dataclass
class Check:
    """One figure against a target's threshold: the median decides, the
    per-round values say whether the rounds agreed."""

    label: str
    value: float
    rounds: list[float]
    threshold: float
    higher_is_better: bool
    unit: str = ""

    def meets(self, x: float) -> bool:
        return x >= self.threshold if self.higher_is_better else x <= self.threshold

    @property
    def state(self) -> str:
        if self.meets(self.value):
            return "pass"
        return "noise" if any(self.meets(r) for r in self.rounds) else "fail"

    def __str__(self) -> str:
        text = f"{self.label} {self.value:.2f}{self.unit}"
        if len(self.rounds) > 1:
            text += f" ({spread(self.rounds)})"
        return text


def target_row(target: str, checks: list[Check], note: str = "") -> str:
    """A target is met when every median meets it; 'within noise' when the
    medians that miss it have a round that meets it; missed otherwise."""
    failed = [c for c in checks if c.state == "fail"]
    noisy = [c for c in checks if c.state == "noise"]
    if not checks:
        return f"| {target} | {note or 'no figures'} | not measured |"
    if failed:
        verdict = "**missed**"
    elif noisy:
        verdict = "**within noise**"
    else:
        verdict = "**met**"
    parts = [note] if note else []
    if failed:
        parts.append("missed in every round: " + "; ".join(map(str, failed)))
    if noisy:
        parts.append("median misses, some rounds meet: " + "; ".join(map(str, noisy)))
    if not failed and not noisy:
        values = [c.value for c in checks]
        parts.append(f"every median meets it ({min(values):.2f}..{max(values):.2f})")
    return f"| {target} | {'. '.join(parts)} | {verdict} |"


def evaluate_targets(cells, samples, light, micro_files) -> list[str]:
    def ratio_check(cell, attr, threshold, higher_is_better):
        c, r = samples[(cell, "c")], samples[(cell, "rust")]
        value = median(getattr(s, attr) for s in r) / median(getattr(s, attr) for s in c)
        rounds = [getattr(b, attr) / getattr(a, attr) for a, b in zip(c, r)]
        return Check(cell.label, value, rounds, threshold, higher_is_better)

    rows = ["| target | result | verdict |", "|---|---|---|"]

    noise = (f"Noise: the C build against itself varies ±{100 * c_noise(cells, samples):.0f}% "
             "between rounds (median over cells)")
    rows.append(target_row("Rust/C throughput >= 1.00 in every cell",
                           [ratio_check(c, "rps", 1.00, True) for c in cells], noise))
    rows.append(target_row("Rust/C throughput >= 1.10 at io-threads >= 2",
                           [ratio_check(c, "rps", 1.10, True)
                            for c in cells if c.setup.threads >= 2]))
    rows.append(target_row("p99 latency Rust <= C in every cell (Rust/C p99 <= 1.00)",
                           [ratio_check(c, "p99_ms", 1.00, False) for c in cells]))

    cpu_checks, latency_checks = [], []
    base = light[(LIGHT_SETUPS[0], "rust")]
    for setup in LIGHT_SETUPS[1:]:
        c, r = light[(setup, "c")], light[(setup, "rust")]
        cpu_c = median(s.cpu_percent for s in c)
        if cpu_c > 0:
            cpu_checks.append(Check(
                f"io-threads {setup.threads}", median(s.cpu_percent for s in r) / cpu_c,
                [b.cpu_percent / a.cpu_percent for a, b in zip(c, r) if a.cpu_percent > 0],
                0.25, False))
        for attr, name in (("p50_us", "p50"), ("p99_us", "p99")):
            single = median(getattr(s, attr) for s in base)
            latency_checks.append(Check(
                f"io-threads {setup.threads} {name} against io-threads 1",
                median(getattr(s, attr) for s in r) / single,
                [getattr(b, attr) / getattr(a, attr) for a, b in zip(base, r)],
                1.00, False))
    rows.append(target_row("light load, always-active: Rust CPU <= 25% of C's (Rust/C CPU)",
                           cpu_checks))
    rows.append(target_row("light load, always-active: Rust latency no worse than Rust's "
                           "at io-threads 1 (ratio <= 1.00)", latency_checks))

    trips = [Check(name, ratio, rounds, 1.00, True)
             for path in micro_files for name, ratio, rounds in micro_round_trips(path)]
    rows.append(target_row("rings/pool round trip >= C (speed Rust/C)", trips))
    return rows


def write_chart_data(results: Path, cells, samples, light) -> None:
    with (results / "bench-ratios.dat").open("w") as f:
        f.write("# cell rps_ratio rps_min rps_max p99_ratio p99_min p99_max\n")
        for cell in cells:
            c, r = samples[(cell, "c")], samples[(cell, "rust")]
            rps = [b.rps / a.rps for a, b in zip(c, r)]
            p99 = [b.p99_ms / a.p99_ms for a, b in zip(c, r)]
            label = cell.label.replace("io-threads ", "t").replace("always-active", "aa")
            label = label.replace("dynamic", "dyn")
            f.write(f'"{label}" '
                    f"{median(s.rps for s in r) / median(s.rps for s in c):.4f} "
                    f"{min(rps):.4f} {max(rps):.4f} "
                    f"{median(s.p99_ms for s in r) / median(s.p99_ms for s in c):.4f} "
                    f"{min(p99):.4f} {max(p99):.4f}\n")
    with (results / "bench-light.dat").open("w") as f:
        f.write("# threads c_cpu_percent rust_cpu_percent c_p99_us rust_p99_us\n")
        for setup in LIGHT_SETUPS:
            values = [median(s.cpu_percent for s in light[(setup, b)]) for b in BUILDS]
            values += [median(s.p99_us for s in light[(setup, b)]) for b in BUILDS]
            f.write(f'"io-threads {setup.threads}" ' + " ".join(f"{v:.2f}" for v in values) + "\n")


def draw_chart(results: Path) -> str:
    if shutil.which("gnuplot") is None:
        return "gnuplot is not installed (make bench installs gnuplot-nox); no chart"
    done = subprocess.run(["gnuplot", "-e", f"dir='{results}'",
                           str(Path(__file__).with_name("chart.gp"))],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"gnuplot failed: {done.stderr.strip()}"
    return "![Rust/C ratios and light-load CPU](bench.png)"


def include_table(path: Path, title: str, state: str) -> list[str]:
    lines = [f"## {title}", ""]
    if state == "skipped":
        return lines + ["Not run this time (--no-micro).", ""]
    if state == "absent":
        return lines + ["No such benchmark target in the Makefile yet.", ""]
    if state == "failed" or not path.exists():
        return lines + [f"The benchmark did not complete; see `make {path.stem}`.", ""]
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            continue
        lines.append("#" + line if line.startswith("## ") else line)
    return lines + [""]


def write_report(settings, context, cells, samples, light, micro_state) -> Path:
    results = settings.results
    micro_files = {"bench-rings": results / "rings.md", "bench-pool": results / "pool.md"}
    ran_micro = [micro_files[t] for t, s in micro_state.items() if s == "ran"]
    write_chart_data(results, cells, samples, light)
    chart = draw_chart(results)

    threads = sorted({s.threads for s in THROUGHPUT_SETUPS + LIGHT_SETUPS})
    oversubscribed = [t for t in threads if t > (os.cpu_count() or 1)]
    lines = [
        "# Valkey 9.1.2 servers: valkey-iocore (Rust) against the C I/O-threads core",
        "",
        f"- date: {context['date']}; {'quick mode' if settings.quick else 'default mode'}; "
        f"{context['minutes']:.1f} minutes in all",
        f"- load average (1, 5, 15 min): {context['load_start']} at the start, "
        f"{context['load_end']} at the end",
        *context["machine"],
        f"- valkey-benchmark: {CLIENTS} clients, -d {VALUE_SIZE}, -r {KEYSPACE}, "
        f"{settings.requests:,} requests per pipeline-1 cell and "
        f"{settings.requests_pipelined:,} per pipeline-16 cell; --seed is the round number",
        f"- {settings.rounds} rounds; in each, one fresh server per build and thread "
        "set-up, builds alternating (C first in odd rounds); the keyspace is filled "
        "before the cells run",
        f"- light load: {settings.light_rounds} round(s) of {settings.light_seconds:g} s "
        f"measured (after 1 s of warm-up), one request every "
        f"{settings.light_interval_ms:g} ms, SET and GET alternating on one connection",
    ]
    if oversubscribed:
        lines.append(f"- io-threads {', '.join(map(str, oversubscribed))}: more threads "
                     "than CPUs, which also host valkey-benchmark; expect the scheduler "
                     "in those figures")
    lines += ["", chart, "", "## Targets", "", *evaluate_targets(cells, samples, light, ran_micro),
              "",
              "Noise: the per-round ratios (min..max) are the noise band. A verdict of "
              "\"Rust better\" or \"Rust worse\" in the tables below means every round "
              "agreed; \"within noise\" means the rounds disagreed.",
              "", "## Throughput and latency (valkey-benchmark)", "",
              *cell_table(cells, samples), "",
              "Medians over rounds. Rust/C above 1 means Rust serves more requests per "
              "second; p99 Rust/C below 1 means Rust's tail is shorter.",
              "", "## Cost: server CPU per million requests", "",
              *cost_table(cells, samples), "",
              "utime + stime of the server process (all threads) over the cell, from "
              "/proc/PID/stat (10 ms ticks); below 1 means Rust uses less CPU.",
              "", "## Light steady load (always-active workers)", "",
              *light_table(light), "",
              "CPU %: server CPU seconds per wall second, times 100 (one busy CPU is "
              "100%). Latency: from sending a request to reading its reply, in a Python "
              "client (its own overhead, some tens of µs, is in both builds' figures).",
              ""]
    lines += include_table(results / "rings.md", "Ring microbenchmarks (make bench-rings)",
                           micro_state.get("bench-rings", "absent"))
    lines += include_table(results / "pool.md", "Pool microbenchmarks (make bench-pool)",
                           micro_state.get("bench-pool", "absent"))
    lines += ["Raw figures: bench-raw.tsv, bench-light-raw.tsv."]

    report = results / "bench.md"
    report.write_text("\n".join(lines) + "\n")
    return report


# ---- main -----------------------------------------------------------------


def build_servers(settings: Settings) -> None:
    if settings.build:
        say("building both servers (scripts/build-valkey.sh c rust)")
        subprocess.run([str(ROOT / "scripts" / "build-valkey.sh"), "c", "rust"], check=True)


def runs(executable: Path) -> bool:
    try:
        return subprocess.run([str(executable), "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


def snapshot_binaries(settings: Settings, workdir: Path) -> None:
    """Copies the executables into `workdir`, so that the whole run measures
    one pair of servers even if a tree is rebuilt meanwhile. A tree caught
    mid-link is waited for (up to two minutes)."""
    deadline = time.monotonic() + 120
    for build, tree in settings.trees.items():
        names = ["valkey-server"] + (["valkey-benchmark"] if build == "c" else [])
        for name in names:
            source, copy = tree / name, workdir / f"{name}-{build}"
            while True:
                if source.exists():
                    shutil.copy2(source, copy)
                    if runs(copy):
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: no working {source}; run scripts/build-valkey.sh c rust")
                say(f"{source} is missing or being rebuilt; waiting")
                time.sleep(5)
            if name == "valkey-server":
                settings.servers[build] = copy
                if build == "c":
                    settings.valkey_version = command_output([str(copy), "--version"])
            else:
                settings.client = copy


def load_raw(settings: Settings, context: dict):
    """The samples of the run recorded in the results directory."""
    samples: dict[tuple[Cell, str], list[Sample]] = {}
    with (settings.results / "bench-raw.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            setup = ThreadSetup(int(row["threads"]), row["always_active"] == "1")
            cell = Cell(row["command"], int(row["pipeline"]), setup)
            samples.setdefault((cell, row["build"]), []).append(Sample(
                float(row["rps"]), float(row["p50_ms"]), float(row["p99_ms"]),
                float(row["cpu_s"]), int(row["requests"])))
    light: dict[tuple[ThreadSetup, str], list[LightSample]] = {}
    with (settings.results / "bench-light-raw.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            setup = ThreadSetup(int(row["threads"]), True)
            light.setdefault((setup, row["build"]), []).append(LightSample(
                float(row["cpu_percent"]), float(row["p50_us"]), float(row["p99_us"]),
                int(row["requests"]), int(row["late"])))
    for name in ("rounds", "requests", "requests_pipelined", "light_rounds", "light_seconds",
                 "light_interval_ms", "quick", "valkey_version"):
        setattr(settings, name, context["settings"][name])
    return samples, light


def main(argv: list[str]) -> int:
    settings = parse_settings(argv)
    settings.results.mkdir(parents=True, exist_ok=True)
    cells = [c for s in THROUGHPUT_SETUPS for c in throughput_cells(s)]
    run_file = settings.results / "bench-run.json"

    if settings.report_only:
        context = json.loads(run_file.read_text())
        samples, light = load_raw(settings, context)
        report = write_report(settings, context, cells, samples, light, context["micro"])
        say(f"rewrote {report} from the raw figures of {context['date']}")
        return 0

    # SIGTERM ends the run the way Ctrl-C does: through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    context = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_start": loadavg()}
    say(f"load average {context['load_start']} on {os.cpu_count()} CPUs"
        + ("; figures will be noisy" if float(context["load_start"].split()[0]) >= 1 else ""))

    build_servers(settings)
    workdir = Path(tempfile.mkdtemp(prefix="valkey-bench-"))
    snapshot_binaries(settings, workdir)
    context["machine"] = machine_lines(settings)
    context["micro"] = (run_micro(settings) if settings.micro
                        else dict.fromkeys(("bench-rings", "bench-pool"), "skipped"))

    try:
        samples = run_throughput(settings, workdir)
        light = run_light_load(settings, workdir)
    except BaseException:
        say(f"stopped; server logs are in {workdir}")
        raise
    finally:
        stop_all_servers()
    shutil.rmtree(workdir, ignore_errors=True)

    context["minutes"] = (time.monotonic() - started) / 60
    context["load_end"] = loadavg()
    context["settings"] = {
        "rounds": settings.rounds, "requests": settings.requests,
        "requests_pipelined": settings.requests_pipelined,
        "light_rounds": settings.light_rounds, "light_seconds": settings.light_seconds,
        "light_interval_ms": settings.light_interval_ms, "quick": settings.quick,
        "valkey_version": settings.valkey_version}
    run_file.write_text(json.dumps(context, indent=1) + "\n")
    report = write_report(settings, context, cells, samples, light, context["micro"])
    print(report.read_text())
    say(f"wrote {report} in {context['minutes']:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
