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
