# valkey-iocore: Valkey 9.1.2's I/O-threads core in Rust.
#
#   make          build the library (static and shared) and refresh include/
#   make test     every test: cargo tests, C tests against Valkey's own code
#   make headers  regenerate include/ from the Rust sources

CARGO ?= cargo
BUILD ?= $(CURDIR)/build
export BUILD_DIR := $(BUILD)

.PHONY: all lib headers test test-rust test-c setup valkey-src clean

all: lib

setup:
	@scripts/setup.sh

valkey-src: setup
	@scripts/fetch-valkey.sh >/dev/null

lib headers:
	IOCORE_UPDATE_HEADERS=1 $(CARGO) build --release --features c-library

test: test-rust test-c

test-rust:
	$(CARGO) test --release

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
