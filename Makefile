# valkey-iocore: Valkey 9.1.2's I/O-threads core in Rust.
#
#   make          build the library (static and shared) and refresh include/
#   make run      set up, build Valkey 9.1.2 on the crate, start it (io-threads 4)
#   make test     every test: cargo tests, loom models, Miri, C tests, Valkey's
#                 own unit tests and TCL subset on the crate (see test-valkey)
#   make headers  regenerate include/ from the Rust sources

CARGO ?= cargo
BUILD ?= $(CURDIR)/build
export BUILD_DIR := $(BUILD)

.PHONY: all lib headers run test test-rust test-c loom miri setup valkey-src clean

all: lib

setup:
	@scripts/setup.sh

valkey-src: setup
	@scripts/fetch-valkey.sh >/dev/null

lib headers:
	IOCORE_UPDATE_HEADERS=1 $(CARGO) build --release --features c-library

test: test-rust loom miri test-c test-valkey

# The cargo tests, and the design documents' tables of atomic operations
# checked against the lines they cite (scripts/check-ordering-tables.py).
test-rust:
	$(CARGO) test --release
	scripts/check-ordering-tables.py

# The loom models of the rings and the pool (tests/loom_*.rs), in a target
# folder of their own so that --cfg loom does not rebuild the normal one.
# LOOM_MAX_PREEMPTIONS overrides each model's preemption bound.
loom:
	RUSTFLAGS="--cfg loom" $(CARGO) test --release --target-dir target/loom \
	    --test loom_rings --test loom_pool

# The rings' and the job words' unit tests, small multi-threaded ones
# included, under Miri; the pool's tests, which start OS threads by the dozen
# and time them, are left out. Runs on rustup's nightly toolchain with the
# miri component, which scripts/setup.sh installs with IOCORE_SETUP_NIGHTLY=1.
MIRI_TOOLCHAIN ?= nightly
miri:
	@IOCORE_SETUP_NIGHTLY=1 scripts/setup.sh
	$(CARGO) +$(MIRI_TOOLCHAIN) miri test --lib -- ring:: job::

# Builds Valkey 9.1.2 on the crate and starts it in the foreground.
run: setup
	scripts/build-valkey.sh rust
	scripts/run-valkey.sh

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

# ---- C tests and ring benchmarks (c-tests/, benches/) ----------------------
#
#   make test-c       the rings' C tests, built twice from one source: against
#                     our static library and against Valkey's own queues.c;
#                     plus c-tests/layout.c, the ABI check against queues.h
#   make bench-rings  ring throughput and round-trip latency, our library
#                     against queues.c, interleaved; writes
#                     build/results/rings.md (BENCH_ROUNDS=N, default 7)
#
# Valkey's tree comes from scripts/fetch-valkey.sh (fetched on first use).

BENCH_ROUNDS ?= 7

.PHONY: bench-rings

test-c: lib
	@tree=$$(scripts/fetch-valkey.sh) && \
	$(MAKE) --no-print-directory -f c-tests/Makefile test VALKEY_TREE="$$tree" BUILD=$(BUILD)

bench-rings: lib
	@tree=$$(scripts/fetch-valkey.sh) && \
	$(MAKE) --no-print-directory -f benches/Makefile run VALKEY_TREE="$$tree" BUILD=$(BUILD) \
	    ROUNDS=$(BENCH_ROUNDS)

# make bench-pool: the worker pool (Park, Spin) against 9.1.2's I/O-thread
# loop on Valkey's queues.c, interleaved; writes build/results/pool.md
# (BENCH_ROUNDS=N rounds, default 7; about 2 minutes).
.PHONY: bench-pool
bench-pool:
	@tree=$$(scripts/fetch-valkey.sh) && \
	$(MAKE) --no-print-directory -f benches/Makefile pool VALKEY_TREE="$$tree" BUILD=$(BUILD) \
	    ROUNDS=$(BENCH_ROUNDS) CARGO="$(CARGO)"

# ---- Valkey on this crate (valkey-patch/, scripts/*valkey*, run-tcl-subset) --
#
#   make valkey          three Valkey 9.1.2 trees from one pristine tarball:
#                        build/valkey-c (stock), build/valkey-rust (the crate
#                        linked statically), build/valkey-rust-shared (linked
#                        as a shared library, found through RUNPATH)
#   make valkey-unit     Valkey's gtest unit tests, built and run in the C
#                        and Rust trees
#   make valkey-symbols  the crate exports what Valkey links from io_threads.o
#                        and queues.o; the Rust servers hold none of that C
#   make valkey-smoke    each of the three servers, with two I/O threads,
#                        under a short valkey-benchmark load
#   make tcl-subset      the TCL subset against both builds, default and
#                        --io-threads modes; fails if the Rust build fails a
#                        test the C build passes (TCL_ARGS: more options)
#   make tcl-full        the same with the whole TCL suite (hours)
#   make test-entry-points  C tests of the io_threads.h entry points on a real
#                        server, linked against each tree's libvalkey.a
#                        (c-tests/entry_points_test.c): same checks, both cores
#   make stress-resize   CONFIG SET io-threads every 50 ms under pipelined
#                        INCR load, with and without MODULE LOAD/UNLOAD, on
#                        the Rust build; checks every acknowledged write
#                        (STRESS_ARGS=--quick: 10 s runs; --compare: the C
#                        build too, side by side)
#   make test-boundary   death tests of the C boundary on the Rust build: bad
#                        job words, worker-only and main-only calls, bad rings
#                        each end in Valkey's crash report naming the problem
#   make crash-test      DEBUG SEGFAULT / DEBUG PANIC with busy workers, both
#                        builds: Valkey's bug report, and an exit within 30 s
#   make test-tiny       the TCL subset (C build against build/valkey-rust-tiny,
#                        every ring of 4 slots, reusing the C build's runs
#                        where build/tcl has them) and the resize stress on it:
#                        the full-inbox, full-outbox and backlog paths all
#                        the time
#   make tsan, make asan the reliability checks on ThreadSanitizer and
#                        AddressSanitizer builds of both cores
#                        (scripts/sanitizers.sh; SANITIZER_ARGS=--quick)
#   make test-valkey     all of the above but tcl-full, tsan and asan, as
#                        make test runs them
#
# IOCORE_MODE=queues links the crate in place of queues.o only, keeping
# Valkey's io_threads.o; the default, full, replaces both.

IOCORE_MODE ?= full
TCL_ARGS ?=

.PHONY: valkey valkey-unit valkey-symbols valkey-smoke tcl-subset tcl-full
.PHONY: test-entry-points test-boundary crash-test stress-resize test-valkey test-tiny tsan asan

STRESS_ARGS ?=

test-valkey: valkey-unit valkey-symbols valkey-smoke test-entry-points test-boundary crash-test \
    tcl-subset
	$(MAKE) --no-print-directory stress-resize STRESS_ARGS="--quick $(STRESS_ARGS)"
	$(MAKE) --no-print-directory test-tiny STRESS_ARGS="--quick $(STRESS_ARGS)"

valkey: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) c rust rust-shared

valkey-unit: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) --unit c rust
	scripts/run-valkey-unit.sh $(BUILD)/valkey-c $(BUILD)/valkey-rust

valkey-symbols: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) --unit c rust
	scripts/build-valkey.sh --mode $(IOCORE_MODE) rust-shared
	scripts/check-valkey-symbols.sh $(BUILD)/valkey-c $(BUILD)/valkey-rust $(BUILD)/valkey-rust-shared

valkey-smoke: valkey
	scripts/valkey-smoke.sh $(BUILD)/valkey-c $(BUILD)/valkey-rust $(BUILD)/valkey-rust-shared

tcl-subset: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) c rust
	scripts/run-tcl-subset.sh --compare $(BUILD)/valkey-c $(BUILD)/valkey-rust $(TCL_ARGS)

test-entry-points: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) --unit c rust
	$(MAKE) --no-print-directory -f c-tests/entry-points.mk test \
	    VALKEY_C=$(BUILD)/valkey-c VALKEY_RUST=$(BUILD)/valkey-rust OUT=$(BUILD)/entry-tests

test-boundary: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) --unit rust
	$(MAKE) --no-print-directory -f c-tests/boundary.mk test \
	    VALKEY_RUST=$(BUILD)/valkey-rust OUT=$(BUILD)/boundary-tests

crash-test: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) c rust
	scripts/crash-test.sh $(BUILD)/valkey-c $(BUILD)/valkey-rust

stress-resize: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) c rust
	scripts/stress-resize.py --tree $(BUILD)/valkey-rust $(STRESS_ARGS)
	scripts/stress-resize.py --tree $(BUILD)/valkey-rust --modules $(STRESS_ARGS)

# One test is allowed to differ on tiny rings: it sends 16 commands in one
# event-loop pass and expects all 16 reads to be offloaded, so that the first
# client's CLIENT KILL runs before the fifth client's SET. With 4-slot
# inboxes the reads that do not fit are refused and run on the main thread at
# once, as 9.1.2 runs them when its queues are full, and the SET can come
# first.
TINY_ALLOWED := prefetch works as expected when killing a client from the middle of prefetch \
    commands batch
test-tiny: setup
	scripts/build-valkey.sh c rust-tiny
	scripts/run-tcl-subset.sh --compare --reuse-baseline --allow "$(TINY_ALLOWED)" \
	    $(BUILD)/valkey-c $(BUILD)/valkey-rust-tiny $(TCL_ARGS)
	scripts/stress-resize.py --tree $(BUILD)/valkey-rust-tiny $(STRESS_ARGS)
	scripts/stress-resize.py --tree $(BUILD)/valkey-rust-tiny --modules $(STRESS_ARGS)

SANITIZER_ARGS ?=
tsan asan: export IOCORE_SETUP_NIGHTLY = 1
tsan: setup
	scripts/sanitizers.sh thread $(SANITIZER_ARGS)
asan: setup
	scripts/sanitizers.sh address $(SANITIZER_ARGS)

tcl-full: setup
	scripts/build-valkey.sh --mode $(IOCORE_MODE) c rust
	scripts/run-tcl-subset.sh --full --compare $(BUILD)/valkey-c $(BUILD)/valkey-rust $(TCL_ARGS)

# ---- Server benchmarks: the C core against ours (scripts/bench/) -----------
#
#   make bench   builds build/valkey-c and build/valkey-rust, runs bench-rings
#                (and bench-pool where the Makefile has it), then
#                valkey-benchmark against both servers, interleaved round by
#                round, and a light steady load; writes build/results/bench.md
#                and bench.png. About 15-20 minutes on 2 CPUs.
#
#   BENCH_QUICK=1          every step, briefly (a few minutes): a smoke test
#   BENCH_SERVER_ROUNDS=N  server rounds (default 6, quick 2)
#   BENCH_REQUESTS=N       requests per pipeline-1 cell (default 100000,
#                          quick 20000); pipeline-16 cells run 8 times as many
#   BENCH_LIGHT_SECONDS=S  measured seconds per light-load run (default 10)
#   BENCH_NO_BUILD=1       measure build/valkey-{c,rust} as they are
#   BENCH_ROUNDS           the microbenchmarks' rounds (quick mode: 2)
#
# Figures are only as quiet as the machine: check `uptime` first.

BENCH_QUICK ?=
BENCH_SERVER_ROUNDS ?=
BENCH_REQUESTS ?=
BENCH_LIGHT_SECONDS ?=
BENCH_NO_BUILD ?=
bench_micro_rounds = $(if $(and $(BENCH_QUICK),$(filter file,$(origin BENCH_ROUNDS))),2,$(BENCH_ROUNDS))

.PHONY: bench

bench:
	@IOCORE_SETUP_EXTRA=gnuplot-nox scripts/setup.sh || echo "bench: no gnuplot, so no chart" >&2
	@python3 scripts/bench/valkey_bench.py --micro-rounds $(bench_micro_rounds) \
	    $(if $(BENCH_QUICK),--quick) $(if $(BENCH_NO_BUILD),--no-build) \
	    $(if $(BENCH_SERVER_ROUNDS),--rounds $(BENCH_SERVER_ROUNDS)) \
	    $(if $(BENCH_REQUESTS),--requests $(BENCH_REQUESTS)) \
	    $(if $(BENCH_LIGHT_SECONDS),--light-seconds $(BENCH_LIGHT_SECONDS)) \
	    --results $(BUILD)/results
