# The boundary death tests (boundary_test.c): bad input at the Rust core's C
# boundary must end the process through Valkey's panic path, with a message
# that names the mistake. Linked against the patched tree only, whose
# libvalkey.a (without io_threads.o and queues.o) and the crate call into
# each other. The tree comes from `scripts/build-valkey.sh rust`; this file
# only reads it. Run from the top level:
#
#   make -f c-tests/boundary.mk test
#
#   VALKEY_RUST  the patched tree         (default build/valkey-rust)
#   OUT          objects and binaries     (default build/boundary-tests)
#   CASES        case names to run        (default: all)

C_TESTS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ROOT := $(abspath $(C_TESTS_DIR)/..)
VALKEY_RUST ?= $(ROOT)/build/valkey-rust
OUT ?= $(ROOT)/build/boundary-tests
CASES ?=

# The tree's own compile flags (src/.make-settings), its dependencies' -I
# paths made absolute, link-time optimisation left out (the archives hold
# fat objects), as in entry-points.mk.
CFLAGS_TREE := $(patsubst -I../%,-I$(VALKEY_RUST)/%,$(filter-out -flto% -ffat-lto-objects,\
    $(shell sed -n 's/^PREV_FINAL_CFLAGS=//p' $(VALKEY_RUST)/src/.make-settings))) \
    -I$(VALKEY_RUST)/src

# What valkey-server links besides its objects, less Lua (entry-points.mk).
DEPS := $(VALKEY_RUST)/deps/libvalkey/lib/libvalkey.a \
    $(VALKEY_RUST)/deps/hdr_histogram/libhdrhistogram.a \
    $(VALKEY_RUST)/deps/fpconv/libfpconv.a $(VALKEY_RUST)/deps/jemalloc/lib/libjemalloc.a \
    -lm -ldl -pthread -lrt

IOCORE_A := $(VALKEY_RUST)/src/.iocore-target/release/libvalkey_iocore.a
BIN := $(OUT)/boundary_test

.PHONY: test build
build: $(BIN)

test: $(BIN)
	$(BIN) $(CASES)

$(OUT)/boundary_test.o: $(C_TESTS_DIR)/boundary_test.c $(VALKEY_RUST)/src/.make-settings
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_TREE) -c $< -o $@

$(BIN): $(OUT)/boundary_test.o $(VALKEY_RUST)/src/libvalkey.a $(IOCORE_A)
	$(CC) -g -fno-lto -rdynamic $< -Wl,--start-group $(VALKEY_RUST)/src/libvalkey.a $(IOCORE_A) \
	    -Wl,--end-group $(DEPS) -o $@
