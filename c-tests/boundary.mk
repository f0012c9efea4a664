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

include $(C_TESTS_DIR)/valkey-tree.mk

IOCORE_A := $(call iocore_staticlib,$(VALKEY_RUST))
BIN := $(OUT)/boundary_test

.PHONY: test build
build: $(BIN)

test: $(BIN)
	$(BIN) $(CASES)

$(OUT)/boundary_test.o: $(C_TESTS_DIR)/boundary_test.c $(C_TESTS_DIR)/valkey_server.h \
    $(VALKEY_RUST)/src/.make-settings
	@mkdir -p $(@D)
	$(CC) $(call valkey_cflags,$(VALKEY_RUST)) -c $< -o $@

$(BIN): $(OUT)/boundary_test.o $(VALKEY_RUST)/src/libvalkey.a $(IOCORE_A)
	$(CC) $(call valkey_ldflags,$(VALKEY_RUST)) $< \
	    -Wl,--start-group $(VALKEY_RUST)/src/libvalkey.a $(IOCORE_A) \
	    -Wl,--end-group $(call valkey_deps,$(VALKEY_RUST)) -o $@
