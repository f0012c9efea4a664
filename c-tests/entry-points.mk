# The entry-point tests (entry_points_test.c): one source, linked twice, each
# time against a built Valkey tree's libvalkey.a and its dependencies:
#
#   entry_points_test-valkey  the stock tree: Valkey's own io_threads.o
#   entry_points_test-rust    the patched tree: its libvalkey.a (which lacks
#                             io_threads.o and queues.o) with the crate
#
# Both trees come from `scripts/build-valkey.sh --unit c rust`; this file only
# reads them. Run from the top level:
#
#   make -f c-tests/entry-points.mk test
#
#   VALKEY_C     the stock tree           (default build/valkey-c)
#   VALKEY_RUST  the patched tree         (default build/valkey-rust)
#   OUT          objects and binaries     (default build/entry-tests)

C_TESTS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ROOT := $(abspath $(C_TESTS_DIR)/..)
VALKEY_C ?= $(ROOT)/build/valkey-c
VALKEY_RUST ?= $(ROOT)/build/valkey-rust
OUT ?= $(ROOT)/build/entry-tests

include $(C_TESTS_DIR)/valkey-tree.mk

IOCORE_A := $(call iocore_staticlib,$(VALKEY_RUST))

.PHONY: test build
build: $(OUT)/entry_points_test-valkey $(OUT)/entry_points_test-rust

test: build $(OUT)/prototypes.o
	@$(C_TESTS_DIR)/entry-points.sh $(OUT)/entry_points_test-valkey $(OUT)/entry_points_test-rust

# Our header against Valkey's declarations (c-tests/prototypes.c): a
# compile step, with the patched tree's flags.
$(OUT)/prototypes.o: $(C_TESTS_DIR)/prototypes.c $(ROOT)/include/valkey_iocore.h \
    $(VALKEY_RUST)/src/.make-settings
	@mkdir -p $(@D)
	$(CC) $(call valkey_cflags,$(VALKEY_RUST)) -I$(ROOT)/include -Werror -c $< -o $@
	@echo "entry-points: include/valkey_iocore.h agrees with server.h, io_threads.h and queues.h"

TEST_SRC := $(C_TESTS_DIR)/entry_points_test.c

$(OUT)/entry_points_test-valkey.o: $(TEST_SRC) $(C_TESTS_DIR)/valkey_server.h $(VALKEY_C)/src/.make-settings
	@mkdir -p $(@D)
	$(CC) $(call valkey_cflags,$(VALKEY_C)) -c $< -o $@

$(OUT)/entry_points_test-rust.o: $(TEST_SRC) $(C_TESTS_DIR)/valkey_server.h \
    $(VALKEY_RUST)/src/.make-settings
	@mkdir -p $(@D)
	$(CC) $(call valkey_cflags,$(VALKEY_RUST)) -c $< -o $@

$(OUT)/entry_points_test-valkey: $(OUT)/entry_points_test-valkey.o $(VALKEY_C)/src/libvalkey.a
	$(CC) $(call valkey_ldflags,$(VALKEY_C)) $< $(VALKEY_C)/src/libvalkey.a \
	    $(call valkey_deps,$(VALKEY_C)) -o $@

# The crate and libvalkey.a call into each other, hence the group.
$(OUT)/entry_points_test-rust: $(OUT)/entry_points_test-rust.o $(VALKEY_RUST)/src/libvalkey.a \
    $(IOCORE_A)
	$(CC) $(call valkey_ldflags,$(VALKEY_RUST)) $< \
	    -Wl,--start-group $(VALKEY_RUST)/src/libvalkey.a $(IOCORE_A) \
	    -Wl,--end-group $(call valkey_deps,$(VALKEY_RUST)) -o $@
