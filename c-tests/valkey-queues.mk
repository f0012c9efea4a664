# Valkey's own queues.c, compiled from the pristine tree (never copied into
# this repository) together with valkey_shim.c, for the C tests and the ring
# benchmarks to link against. Included by c-tests/Makefile and
# benches/Makefile, which set VALKEY_TREE, BUILD and C_TESTS_DIR.
#
# The flags are Valkey's release flags (src/Makefile: -O3, frame pointers,
# -pedantic) without -flto: our library cannot be inlined into its callers,
# so neither may queues.c, or the benchmarks would not compare like with like.

VALKEY_SRC := $(VALKEY_TREE)/src
VALKEY_OBJ := $(BUILD)/valkey-queues
VALKEY_CFLAGS := -O3 -fno-omit-frame-pointer -pedantic -Wall -W -g -I$(VALKEY_SRC)
VALKEY_QUEUES := $(VALKEY_OBJ)/queues.o $(VALKEY_OBJ)/valkey_shim.o

$(VALKEY_OBJ)/queues.o: $(VALKEY_SRC)/queues.c $(VALKEY_SRC)/queues.h
	@mkdir -p $(@D)
	$(CC) $(VALKEY_CFLAGS) -c $< -o $@

$(VALKEY_OBJ)/valkey_shim.o: $(C_TESTS_DIR)/valkey_shim.c
	@mkdir -p $(@D)
	$(CC) $(VALKEY_CFLAGS) -c $< -o $@
