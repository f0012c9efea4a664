#!/usr/bin/env python3
"""Reliability stress test: live I/O-thread resizing under load.

Starts one valkey-server of a Valkey tree on a free loopback port with four
I/O threads, and drives it from three sides at once:

  load        dozens of connections, each pipelining INCRs on a few shared
              keys, sixteen at a time, in raw RESP; every INCR that gets an
              integer reply is counted as acknowledged, per key.
  controller  one connection that sets io-threads to a new value between 1
              and the maximum every ~50 ms and reads INFO about once a
              second; with --modules it also loads and unloads a small test
              module in turn, since MODULE LOAD and MODULE UNLOAD both drain
              the I/O threads while the load goes on.
  watchdog    every connection has a deadline: a reply owed for longer than
              --hang-timeout seconds is a hang, which stops the run and gets
              the server killed, so the script itself never hangs.

At the end the load stops and drains its replies, then the script checks
that the stored value of each key equals its acknowledged INCRs, that the
server still answers PING, and that SHUTDOWN NOSAVE stops it. Any error
reply to CONFIG SET io-threads counts as a refusal, and a refusal fails the
run. The exit status is 0 when every check passed and 1 otherwise.

usage: scripts/stress-resize.py [--tree build/valkey-rust | --compare]
                                [--modules] [--quick | --duration S] ...
Standard library only; run with Python 3.11.
"""

import argparse
import os
import platform
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))

# The test module: Valkey's own, from its module API tests. It registers one
# command, so loading it adds to the command table and unloading it takes
# away from it, and each of those drains the I/O threads first.
MODULE_SOURCE = "moduleparameter"
MODULE_NAME = "moduleparameter"


# The first line of each report of ThreadSanitizer, AddressSanitizer (and its
# LeakSanitizer) or UndefinedBehaviorSanitizer.
SANITIZER_REPORT = re.compile(r"^(==\d+==)?(WARNING|ERROR): \w*Sanitizer:|runtime error:")


def say(*words):
    print(*words, flush=True)


# ---- RESP -------------------------------------------------------------------


class ErrorReply(str):
    """An error reply (`-ERR ...`), kept as a value rather than raised."""


class Hang(Exception):
    """A reply owed for longer than the hang timeout."""


class Closed(Exception):
    """The server closed a connection that still owed replies."""


def encode(*args):
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if not isinstance(arg, bytes):
            arg = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Connection:
    """A blocking connection for the controller and the final checks.

    Every read waits at most `timeout` seconds for more bytes; running past
    it raises Hang, which is the only way a call can block for long.
    """

    def __init__(self, port, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, *args, timeout=None):
        self.sock.settimeout(timeout or self.timeout)
        try:
            self.sock.sendall(encode(*args))
            return self._reply()
        except socket.timeout:
            raise Hang("no reply to %s in %g s" % (" ".join(map(str, args[:3])),
                                                    timeout or self.timeout))
        except ConnectionError as err:
            raise Closed("%s: %s" % (args[0], err))

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed("connection closed by the server")
        self.buf += data

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            self._fill()

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ErrorReply(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self._fill()
            data = bytes(self.buf[:size])
            del self.buf[: size + 2]
            return data
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise Closed("unexpected reply %r" % line[:40])


def parse_info(text):
    fields = {}
    for line in text.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            name, value = line.split(":", 1)
            fields[name] = value
    return fields


# ---- the load ---------------------------------------------------------------


class LoadConnection:
    """One pipelining client: sends a batch of `depth` INCRs, reads all
    `depth` replies, then sends the next batch. Non-blocking; driven by
    Load's selector loop."""

    def __init__(self, index, port, keys, depth):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)

        # Connection i starts its batch on key i, so every key is written by
        # many connections at once.
        self.batch_keys = [(index + j) % len(keys) for j in range(depth)]
        self.batch = b"".join(encode("INCR", keys[k]) for k in self.batch_keys)
        self.acked = [0] * len(keys)
        self.last_reply = [0] * len(keys)
        self.sent = 0
        self.owed = 0
        self.next_reply = 0
        self.rbuf = b""
        self.wbuf = b""
        self.progress = time.monotonic()


class Load(threading.Thread):
    """Every load connection in one selector loop, in one thread: the
    interpreter runs one thread at a time anyway, and one loop leaves more
    of the CPUs to the server than dozens of threads taking turns."""

    def __init__(self, port, opts, keys, abort):
        super().__init__(name="load", daemon=True)
        self.opts = opts
        self.keys = keys
        self.abort = abort
        self.stopping = threading.Event()
        self.conns = [LoadConnection(i, port, keys, opts.depth) for i in range(opts.clients)]
        self.sel = selectors.DefaultSelector()
        self.failures = []
        self.error_replies = 0
        self.first_error = None
        self.started = self.finished = None

    def run(self):
        self.started = time.monotonic()
        try:
            self._loop()
        except Closed as err:
            self.failures.append("closed: %s" % err)
            self.abort.set()
        except Exception as err:  # a bug here must fail the run, not hang it
            self.failures.append("load: %s: %s" % (type(err).__name__, err))
            self.abort.set()
        finally:
            self.finished = time.monotonic()
            for conn in self.conns:
                conn.sock.close()
            self.sel.close()

    def _loop(self):
        for conn in self.conns:
            self.sel.register(conn.sock, selectors.EVENT_READ, conn)
            self._send_batch(conn)

        next_watch = time.monotonic() + 0.5
        while not self.abort.is_set():
            if self.stopping.is_set() and not any(c.owed for c in self.conns):
                return
            for key, events in self.sel.select(timeout=0.5):
                conn = key.data
                if events & selectors.EVENT_WRITE:
                    self._flush(conn)
                if events & selectors.EVENT_READ:
                    self._read(conn)
            now = time.monotonic()
            if now >= next_watch:
                next_watch = now + 0.5
                self._watch(now)

    def _send_batch(self, conn):
        conn.owed = self.opts.depth
        conn.next_reply = 0
        conn.sent += self.opts.depth
        conn.wbuf = conn.batch
        conn.progress = time.monotonic()
        self._flush(conn)

    def _flush(self, conn):
        try:
            n = conn.sock.send(conn.wbuf)
        except BlockingIOError:
            n = 0
        conn.wbuf = conn.wbuf[n:]

        # Ask for writability only while part of a batch is still unsent.
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wbuf else 0)
        self.sel.modify(conn.sock, events, conn)

    def _read(self, conn):
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionError as err:
            raise Closed("load connection: %s" % err)
        if not data:
            raise Closed("load connection closed by the server with %d replies owed" % conn.owed)
        conn.progress = time.monotonic()

        # INCR answers with one line, so replies split on CRLF; the last
        # piece is a reply still arriving.
        lines = (conn.rbuf + data).split(b"\r\n")
        conn.rbuf = lines.pop()
        for line in lines:
            if conn.owed == 0:
                raise Closed("load connection: reply with no command owed: %r" % line[:40])
            key = conn.batch_keys[conn.next_reply]
            conn.next_reply += 1
            conn.owed -= 1
            if line[:1] == b":":
                conn.acked[key] += 1
                conn.last_reply[key] = max(conn.last_reply[key], int(line[1:]))
            elif line[:1] == b"-":
                self.error_replies += 1
                self.first_error = self.first_error or line.decode(errors="replace")
            else:
                raise Closed("load connection: unexpected reply %r" % line[:40])

        if conn.owed == 0 and not self.stopping.is_set():
            self._send_batch(conn)

    def _watch(self, now):
        for i, conn in enumerate(self.conns):
            if conn.owed and now - conn.progress > self.opts.hang_timeout:
                self.failures.append(
                    "hang: load connection %d got no reply in %.0f s (%d of %d replies owed)"
                    % (i, now - conn.progress, conn.owed, self.opts.depth))
                self.abort.set()
                return

    def totals(self):
        keys = len(self.keys)
        acked = [sum(c.acked[k] for c in self.conns) for k in range(keys)]
        last = [max(c.last_reply[k] for c in self.conns) for k in range(keys)]
        sent = sum(c.sent for c in self.conns)
        owed = sum(c.owed for c in self.conns)
        return acked, last, sent, owed


# ---- the controller ---------------------------------------------------------


class Controller(threading.Thread):
    """Resizes the I/O-thread pool every `flip_interval` seconds, reads INFO
    about once a second, and with a module path loads and unloads it in
    turn, one step per tick."""

    def __init__(self, port, opts, module_path, abort, rng):
        super().__init__(name="controller", daemon=True)
        self.opts = opts
        self.module_path = module_path
        self.abort = abort
        self.rng = rng
        self.stopping = threading.Event()
        self.conn = Connection(port, opts.hang_timeout)
        self.threads = opts.io_threads
        self.module_loaded = False

        self.flips = 0
        self.refusals = 0
        self.resize_time = 0.0
        self.resize_max = 0.0
        self.refusal_messages = {}
        self.loads = 0
        self.unloads = 0
        self.module_errors = []
        self.info_reads = 0
        self.max_pending = 0
        self.active_seen = set()
        self.threads_seen = set()
        self.last_info = {}
        self.failures = []

    def run(self):
        try:
            self._loop()
        except (Hang, Closed) as err:
            self.failures.append("%s: controller: %s" % (
                "hang" if isinstance(err, Hang) else "closed", err))
            self.abort.set()
        except Exception as err:
            self.failures.append("controller: %s: %s" % (type(err).__name__, err))
            self.abort.set()
        finally:
            self.conn.close()

    def _loop(self):
        ticks = 0
        per_info = max(1, round(1.0 / self.opts.flip_interval))
        deadline = time.monotonic()
        while not self.abort.is_set() and not self.stopping.is_set():
            self._resize()
            if self.module_path:
                self._module_step()
            ticks += 1
            if ticks % per_info == 0:
                self._read_info()

            deadline += self.opts.flip_interval
            pause = deadline - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                deadline = time.monotonic()

        # Leave no module behind: the final checks see the server as it was
        # started, plus the resizes.
        if self.module_loaded and not self.abort.is_set():
            self._module_step()

    def _resize(self):
        choices = [n for n in range(1, self.opts.io_threads + 1) if n != self.threads]
        target = self.rng.choice(choices)
        began = time.monotonic()
        reply = self.conn.call("CONFIG", "SET", "io-threads", target)
        took = time.monotonic() - began
        self.resize_time += took
        self.resize_max = max(self.resize_max, took)
        if isinstance(reply, ErrorReply):
            self.refusals += 1
            self.refusal_messages[str(reply)] = self.refusal_messages.get(str(reply), 0) + 1
        else:
            self.flips += 1
            self.threads = target
            self.threads_seen.add(target)

    def _module_step(self):
        if self.module_loaded:
            reply = self.conn.call("MODULE", "UNLOAD", MODULE_NAME)
            what = "MODULE UNLOAD"
        else:
            reply = self.conn.call("MODULE", "LOAD", self.module_path)
            what = "MODULE LOAD"
        if isinstance(reply, ErrorReply):
            self.module_errors.append("%s: %s" % (what, reply))
            # A load that failed leaves nothing to unload, and the reverse.
            return
        if self.module_loaded:
            self.unloads += 1
        else:
            self.loads += 1
        self.module_loaded = not self.module_loaded

    def _read_info(self):
        info = parse_info(self.conn.call("INFO"))
        debug = parse_info(self.conn.call("INFO", "debug"))
        self.info_reads += 1
        pending = (int(debug.get("io_threaded_reads_pending", 0))
                   + int(debug.get("io_threaded_writes_pending", 0)))
        self.max_pending = max(self.max_pending, pending)
        if "io_threads_active" in info:
            self.active_seen.add(info["io_threads_active"])
        self.last_info = info


# ---- the server -------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One valkey-server on the loopback, in a temporary folder that holds
    its log; the folder goes when the run passed and stays otherwise."""

    def __init__(self, binary, io_threads, hang_timeout):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="stress-resize.")
        self.log = os.path.join(self.dir, "server.log")
        # A sanitizer build writes its reports to stderr.
        self.stderr = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.port = None
        self.killed = None  # the signal that stopped it, when one had to
        self.io_threads = io_threads
        self.hang_timeout = hang_timeout

    def start(self):
        for _ in range(3):
            self.port = free_port()
            with open(self.stderr, "ab") as stderr:
                self.proc = subprocess.Popen(
                    [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", self.dir, "--logfile", self.log, "--daemonize", "no",
                     "--save", "", "--appendonly", "no",
                     "--io-threads", str(self.io_threads),
                     "--enable-module-command", "yes", "--enable-debug-command", "yes"],
                    cwd=self.dir, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=stderr)
            if self._wait_ready():
                return
            self.kill()
        raise RuntimeError("valkey-server did not start; log: %s\n%s" % (self.log, self.log_tail()))

    def _wait_ready(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = Connection(self.port, 2)
                try:
                    if conn.call("PING") == "PONG":
                        return True
                finally:
                    conn.close()
            except (OSError, Hang, Closed):
                pass
            time.sleep(0.1)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def shutdown(self):
        """SHUTDOWN NOSAVE; True when the server exited of its own accord."""
        try:
            conn = Connection(self.port, 5)
            try:
                conn.call("SHUTDOWN", "NOSAVE")
            except Closed:
                pass  # the reply to a successful SHUTDOWN is a closed connection
            finally:
                conn.close()
        except (OSError, Hang):
            pass
        try:
            self.proc.wait(timeout=self.hang_timeout)
            return True
        except subprocess.TimeoutExpired:
            self.killed = self.kill()
            return False

    def kill(self):
        """Stops the server whatever state it is in. A main thread spinning
        in a drain never looks at SIGTERM's flag, so SIGKILL follows."""
        if not self.alive():
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)
            return "SIGTERM"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "SIGKILL"

    def log_tail(self, lines=25):
        try:
            with open(self.log, errors="replace") as f:
                return "".join("    " + line for line in f.readlines()[-lines:])
        except OSError:
            return "    (no log)"

    def sanitizer_reports(self):
        """How many reports a sanitizer build wrote to stderr."""
        try:
            with open(self.stderr, errors="replace") as f:
                return sum(1 for line in f if SANITIZER_REPORT.search(line))
        except OSError:
            return 0

    def crash_report(self):
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except OSError:
            return None
        for mark in ("BUG REPORT", "ASSERTION FAILED", "Guru Meditation"):
            if mark in text:
                return mark
        return None


# ---- one run ----------------------------------------------------------------


def inject_stall(port, seconds):
    """Blocks the server's main thread for `seconds` with DEBUG SLEEP, to
    show that the watchdog catches a stall longer than the hang timeout
    and that a shorter one passes. The reply is not waited for."""
    say("stress-resize: injecting a %g s stall (DEBUG SLEEP)" % seconds)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(encode("DEBUG", "SLEEP", seconds))
    threading.Timer(seconds + 5, sock.close).start()


def tree_name(tree):
    name = os.path.basename(os.path.normpath(tree))
    return name[len("valkey-"):] if name.startswith("valkey-") else name


def run_tree(tree, opts, module_path):
    binary = os.path.join(os.path.abspath(tree), "src", "valkey-server")
    if not os.access(binary, os.X_OK):
        raise RuntimeError("%s is not built" % binary)

    name = tree_name(tree)
    seed = opts.seed
    rng = random.Random(seed)
    keys = ["stress-resize:%d:key%d" % (seed, k) for k in range(opts.keys)]
    result = {"name": name, "checks": [], "failures": []}
    checks = result["checks"]

    server = Server(binary, opts.io_threads, opts.hang_timeout)
    server.start()
    say("stress-resize %s: %s on 127.0.0.1:%d, log %s" % (name, binary, server.port, server.log))
    say("stress-resize %s: %d clients x %d keys, depth %d, %g s, io-threads 1..%d every %g s,"
        " seed %d%s" % (name, opts.clients, opts.keys, opts.depth, opts.duration, opts.io_threads,
                        opts.flip_interval, seed,
                        ", module %s" % os.path.basename(module_path) if module_path else ""))

    abort = threading.Event()
    load = controller = None
    try:
        load = Load(server.port, opts, keys, abort)
        controller = Controller(server.port, opts, module_path, abort, rng)
        started = time.monotonic()
        load.start()
        controller.start()

        end = started + opts.duration
        next_note = started + 10
        stall_at = started + opts.duration / 2 if opts.inject_stall else None
        while not abort.is_set() and time.monotonic() < end:
            if stall_at and time.monotonic() >= stall_at:
                stall_at = None
                inject_stall(server.port, opts.inject_stall)
            abort.wait(min(0.2, max(0.0, end - time.monotonic())))
            if opts.duration >= 30 and time.monotonic() >= next_note and not abort.is_set():
                next_note += 10
                acked, _, _, _ = load.totals()
                say("stress-resize %s: %3.0f s, %d acknowledged, %d flips, %d refusals"
                    % (name, time.monotonic() - started, sum(acked), controller.flips,
                       controller.refusals))
        if not server.alive():
            result["failures"].append("server exited during the run (status %s)"
                                      % server.proc.returncode)
            abort.set()

        # Stop the load first and let it collect every reply it is owed;
        # the controller stops at its next tick.
        load.stopping.set()
        controller.stopping.set()
        load.join(opts.hang_timeout + 5)
        controller.join(opts.hang_timeout + 5)
        if load.is_alive() or controller.is_alive():
            result["failures"].append("hang: a load or controller thread did not stop")
            abort.set()
        # The load's own time, from its first batch to its last reply.
        elapsed = (load.finished or time.monotonic()) - (load.started or started)
        result["failures"] += load.failures + controller.failures

        acked, last_reply, sent, owed = load.totals()
        result.update(
            duration=elapsed, sent=sent, acked=sum(acked), owed=owed,
            unacked=sent - sum(acked) - load.error_replies, error_replies=load.error_replies,
            rate=sum(acked) / elapsed if elapsed > 0 else 0.0,
            flips=controller.flips, refusals=controller.refusals,
            resize_mean=controller.resize_time / max(1, controller.flips + controller.refusals),
            resize_max=controller.resize_max,
            refusal_messages=controller.refusal_messages,
            loads=controller.loads, unloads=controller.unloads,
            module_errors=controller.module_errors, max_pending=controller.max_pending,
            info_reads=controller.info_reads, threads_seen=sorted(controller.threads_seen),
            active_seen=sorted(controller.active_seen), modules=bool(module_path))

        hung = abort.is_set()
        checks.append(("no hang, no lost connection", not hung,
                       "; ".join(result["failures"]) if hung else
                       "every reply came within %g s" % opts.hang_timeout))
        checks.append(("io-threads resized", controller.flips > 0,
                       "%d flips, values %s" % (controller.flips, result["threads_seen"])))
        checks.append(("no refusals", controller.refusals == 0,
                       "; ".join("%d x %s" % (n, m) for m, n in controller.refusal_messages.items())
                       or "every CONFIG SET io-threads answered OK"))
        if module_path:
            module_ok = controller.loads > 0 and not controller.module_errors
            checks.append(("module load/unload", module_ok,
                           "%d loads, %d unloads%s" % (
                               controller.loads, controller.unloads,
                               ", errors: " + "; ".join(controller.module_errors[:3])
                               if controller.module_errors else "")))
        checks.append(("no error replies to INCR", load.error_replies == 0,
                       load.first_error or "none"))
        checks.append(("all INCRs acknowledged", result["unacked"] == 0,
                       "%d sent, %d acknowledged, %d unacknowledged"
                       % (sent, sum(acked), result["unacked"])))

        # The stored values, read while no load runs. After a hang the
        # server may not answer; the first read tells.
        mismatches, checked, detail = 0, 0, []
        try:
            conn = Connection(server.port, 2 if hung else opts.hang_timeout)
            try:
                for k, key in enumerate(keys):
                    raw = conn.call("GET", key)
                    stored = int(raw) if isinstance(raw, bytes) else 0
                    checked += 1
                    if stored != acked[k] or (acked[k] and stored != last_reply[k]):
                        mismatches += 1
                        detail.append("%s: stored %d, acknowledged %d, last reply %d"
                                      % (key, stored, acked[k], last_reply[k]))
            finally:
                conn.close()
        except (OSError, Hang, Closed) as err:
            detail.append("GET failed: %s" % err)
        result.update(keys_checked=checked, mismatches=mismatches)
        checks.append(("stored values equal acknowledged INCRs",
                       checked == len(keys) and mismatches == 0,
                       "; ".join(detail[:4]) or "%d keys, sum %d" % (checked, sum(acked))))

        ping = None
        try:
            conn = Connection(server.port, 2 if hung else opts.hang_timeout)
            try:
                ping = conn.call("PING")
            finally:
                conn.close()
        except (OSError, Hang, Closed) as err:
            ping = "no answer (%s)" % err
        crash = server.crash_report()
        checks.append(("server alive, answers PING",
                       server.alive() and ping == "PONG" and not crash,
                       "PING -> %s%s" % (ping, ", log has " + crash if crash else "")))
    finally:
        if load and load.is_alive():
            abort.set()
        clean = False
        if not server.alive():
            detail = "server had already exited (status %s)" % server.proc.returncode
        elif abort.is_set():
            # After a hang there is no point asking; the server is killed.
            detail = "not tried after the hang: server killed with %s" % server.kill()
        elif server.shutdown():
            clean = True
            detail = "exit status %s" % server.proc.returncode
        else:
            detail = "still running %g s after SHUTDOWN NOSAVE: killed with %s" % (
                opts.hang_timeout, server.killed)
        checks.append(("SHUTDOWN NOSAVE stops the server", clean, detail))

        # Counted, not judged: whose code a report is about is for the
        # caller to say (scripts/sanitizers.sh sorts them).
        result["sanitizer_reports"] = server.sanitizer_reports()
        if opts.keep_stderr:
            os.makedirs(opts.keep_stderr, exist_ok=True)
            shutil.copy(server.stderr, os.path.join(
                opts.keep_stderr, "%s%s.stderr" % (name, "-modules" if module_path else "")))

    result["passed"] = sum(1 for c in checks if c[1])
    result["failed"] = len(checks) - result["passed"]
    if result["failed"]:
        result["log_tail"] = server.log_tail()
        result["dir"] = server.dir
    else:
        shutil.rmtree(server.dir, ignore_errors=True)
    return result


# ---- reports ----------------------------------------------------------------


def figures(r):
    """The report's rows: (label, value) pairs, in order."""
    rows = [
        ("duration", "%.1f s" % r.get("duration", 0)),
        ("requests acknowledged", "%d" % r.get("acked", 0)),
        ("requests/s", "%.0f" % r.get("rate", 0)),
        ("sent, unacknowledged", "%d, %d" % (r.get("sent", 0), r.get("unacked", 0))),
        ("error replies to INCR", "%d" % r.get("error_replies", 0)),
        ("flips", "%d" % r.get("flips", 0)),
        ("refusals", "%d" % r.get("refusals", 0)),
        ("resize ms, mean/max", "%.1f/%.1f" % (1000 * r.get("resize_mean", 0),
                                                1000 * r.get("resize_max", 0))),
    ]
    if r.get("modules"):
        rows.append(("module loads/unloads", "%d/%d" % (r.get("loads", 0), r.get("unloads", 0))))
        rows.append(("module errors", "%d" % len(r.get("module_errors", []))))
    rows += [
        ("INFO reads", "%d" % r.get("info_reads", 0)),
        ("max pending I/O (INFO)", "%d" % r.get("max_pending", 0)),
        ("keys checked", "%d" % r.get("keys_checked", 0)),
        ("mismatches", "%d" % r.get("mismatches", 0)),
        ("sanitizer reports", "%d" % r.get("sanitizer_reports", 0)),
        ("checks passed/failed", "%d/%d" % (r["passed"], r["failed"])),
    ]
    return rows


def report(r):
    name = r["name"]
    for label, value in figures(r):
        say("stress-resize %s: %-24s %s" % (name, label, value))
    for label, ok, detail in r["checks"]:
        say("stress-resize %s: %s %s: %s" % (name, "ok  " if ok else "FAIL", label, detail))
    if r["failed"]:
        say("stress-resize %s: server log kept in %s; its end:" % (name, r["dir"]))
        say(r["log_tail"].rstrip())
    say("stress-resize %s: %d passed, %d failed" % (name, r["passed"], r["failed"]))


def compare(results):
    names = [r["name"] for r in results]
    rows = [figures(r) for r in results]
    width = max(12, *(len(n) for n in names))
    say("")
    say("%-24s %s" % ("", " ".join("%*s" % (width, n) for n in names)))
    for i, (label, _) in enumerate(rows[0]):
        say("%-24s %s" % (label, " ".join("%*s" % (width, row[i][1]) for row in rows)))
    if len(results) == 2 and results[0].get("rate"):
        say("%-24s %*s %*.2f" % ("requests/s, ratio", width, "1.00", width,
                                 results[1].get("rate", 0) / results[0]["rate"]))


# ---- the module -------------------------------------------------------------


def build_module(valkey_src, out_dir):
    """Builds Valkey's test module from a copy of the files it needs (its
    source, its Makefile, valkeymodule.h), so that no Valkey tree is built
    in; returns the path of the .so."""
    modules = os.path.join(out_dir, "tests", "modules")
    include = os.path.join(out_dir, "src")
    os.makedirs(modules, exist_ok=True)
    os.makedirs(include, exist_ok=True)
    for rel, dest in (("tests/modules/%s.c" % MODULE_SOURCE, modules),
                      ("tests/modules/Makefile", modules),
                      ("src/valkeymodule.h", include)):
        src = os.path.join(valkey_src, rel)
        if not os.path.exists(src):
            raise RuntimeError("%s is missing (scripts/fetch-valkey.sh fetches the tree)" % src)
        shutil.copy2(src, dest)

    so = os.path.join(modules, MODULE_SOURCE + ".so")
    done = subprocess.run(["make", "-s", "-C", modules, MODULE_SOURCE + ".so"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0 or not os.path.exists(so):
        raise RuntimeError("building %s failed:\n%s" % (so, done.stdout))
    return so


# ---- main -------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Stress test of live io-threads resizing under load.")
    p.add_argument("--tree", action="append",
                   help="Valkey tree whose src/valkey-server runs (default build/valkey-rust);"
                        " repeat it to run several trees one after the other")
    p.add_argument("--compare", action="store_true",
                   help="run build/valkey-c, then build/valkey-rust, and print them side by side")
    p.add_argument("--modules", action="store_true",
                   help="also MODULE LOAD / MODULE UNLOAD a test module in the controller loop")
    p.add_argument("--module", metavar="SO",
                   help="a ready-built %s.so (default: build it under build/stress-modules)"
                        % MODULE_SOURCE)
    p.add_argument("--valkey-src", default=os.path.join(BUILD, "valkey-src"),
                   help="the Valkey tree the module is built from (default build/valkey-src)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--quick", action="store_true", help="10 s of load instead")
    p.add_argument("--clients", type=int, default=32, help="load connections (default 32)")
    p.add_argument("--keys", type=int, default=8, help="keys the INCRs spread over (default 8)")
    p.add_argument("--depth", type=int, default=16, help="pipeline depth (default 16)")
    p.add_argument("--io-threads", type=int, default=4,
                   help="start with this many I/O threads and resize within 1..this (default 4)")
    p.add_argument("--flip-interval", type=float, default=0.05,
                   help="seconds between resizes (default 0.05)")
    p.add_argument("--hang-timeout", type=float, default=10.0,
                   help="seconds a reply may be owed before it counts as a hang (default 10)")
    p.add_argument("--seed", type=int, help="seed of the resize sequence (default random)")
    p.add_argument("--keep-stderr", metavar="DIR",
                   help="copy each server's stderr (a sanitizer build's reports) to"
                        " DIR/TREE[-modules].stderr")
    p.add_argument("--inject-stall", type=float, metavar="S",
                   help="test of the test: halfway through, stall the server for S seconds"
                        " with DEBUG SLEEP; S above --hang-timeout must fail as a hang")
    opts = p.parse_args(argv)

    if opts.quick:
        opts.duration = 10.0
    if opts.seed is None:
        # One seed for every tree of the run, so that each gets the same
        # sequence of resizes.
        opts.seed = random.randrange(1 << 30)
    if opts.compare:
        opts.tree = [os.path.join(BUILD, "valkey-c"), os.path.join(BUILD, "valkey-rust")]
    elif not opts.tree:
        opts.tree = [os.path.join(BUILD, "valkey-rust")]
    if opts.io_threads < 2 or opts.clients < 1 or opts.keys < 1 or opts.depth < 1:
        p.error("--io-threads must be at least 2; --clients, --keys and --depth at least 1")
    return opts


def main(argv):
    opts = parse_args(argv)
    # The load loop keeps the interpreter busy; without a shorter switch
    # interval than the default 5 ms, each controller call waits for the
    # interpreter on every send and receive and the resizes come far
    # slower than every flip interval.
    sys.setswitchinterval(0.001)
    say("stress-resize: machine %s, %d CPUs, Linux %s, Python %s"
        % (platform.machine(), os.cpu_count() or 0, platform.release(),
           platform.python_version()))

    module_path = None
    try:
        if opts.modules:
            module_path = os.path.abspath(opts.module) if opts.module else \
                build_module(opts.valkey_src, os.path.join(BUILD, "stress-modules"))
        results = []
        for tree in opts.tree:
            results.append(run_tree(tree, opts, module_path))
            report(results[-1])
    except RuntimeError as err:
        say("stress-resize: error: %s" % err)
        return 2
    except KeyboardInterrupt:
        say("stress-resize: interrupted")
        return 130

    if len(results) > 1:
        compare(results)
    passed = sum(r["passed"] for r in results)
    failed = sum(r["failed"] for r in results)
    say("stress-resize: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
