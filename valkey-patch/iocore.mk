# Links the Rust crate valkey-iocore in place of io_threads.o and queues.o.
#
# Installed as src/iocore.mk by valkey-patch/apply.sh. Included by
# src/Makefile (just before the valkey-server rule, once ENGINE_SERVER_OBJ is
# complete) and by src/unit/Makefile. Every path below is absolute, so both
# directories can use it.
#
# Settings, from the command line or from src/.iocore-settings (written by
# apply.sh; the command line wins):
#
#   IOCORE_DIR    the crate's checkout (where its Cargo.toml is); required
#   IOCORE_MODE   full    the crate replaces io_threads.o and queues.o (default)
#                 queues  the crate replaces queues.o only and Valkey's own
#                         io_threads.o stays; the crate is built without its
#                         Valkey bindings
#   IOCORE_LINK   static  link libvalkey_iocore.a (default)
#                 shared  link libvalkey_iocore.so, found through RUNPATH
#   IOCORE_RINGS  stock   the I/O threads' rings have 9.1.2's sizes (default)
#                 tiny    every one has 4 slots (--features tiny-rings), so
#                         the backpressure paths run all the time; for tests
#                         only, and in full mode only
#   IOCORE_SANITIZER
#                 none    the crate is built as usual (default)
#                 thread, address
#                         the crate is instrumented too, to match a tree built
#                         with Valkey's SANITIZER=thread or SANITIZER=address
#                         (given on every make of that tree): nightly cargo,
#                         RUSTFLAGS=-Zsanitizer=..., and an explicit --target,
#                         so that build scripts and bindgen stay plain; the
#                         libraries are then in .iocore-target/TARGET/release.
#                         The runtime is the C compiler's, which valkey-server
#                         links; Rust's std stays uninstrumented.
#   CARGO         the cargo to build the crate with (default: cargo)
#   IOCORE_SANITIZER_CARGO
#                 the cargo of a sanitizer build (default: cargo +nightly,
#                 as -Zsanitizer is unstable)
#
# The crate's build script reads three variables from this file's cargo call:
# VALKEY_SRC_DIR (this directory, absolute), VALKEY_CFLAGS (FINAL_CFLAGS,
# exactly as Valkey compiles with it; relative -I paths in it are relative to
# VALKEY_SRC_DIR) and VALKEY_CC (the C compiler).

IOCORE_SRC_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
-include $(IOCORE_SRC_DIR)/.iocore-settings

IOCORE_MODE ?= full
IOCORE_LINK ?= static
IOCORE_RINGS ?= stock
IOCORE_SANITIZER ?= none
CARGO ?= cargo
IOCORE_SANITIZER_CARGO ?= cargo +nightly

ifeq ($(strip $(IOCORE_DIR)),)
$(error IOCORE_DIR is not set: apply the patch with valkey-patch/apply.sh, or pass IOCORE_DIR=/path/to/valkey-iocore)
endif
ifeq ($(wildcard $(IOCORE_DIR)/Cargo.toml),)
$(error IOCORE_DIR=$(IOCORE_DIR) has no Cargo.toml)
endif

ifeq ($(IOCORE_MODE),full)
IOCORE_FEATURES := valkey
else ifeq ($(IOCORE_MODE),queues)
IOCORE_FEATURES := c-library
ifeq ($(filter io_threads.o,$(ENGINE_SERVER_OBJ)),)
ENGINE_SERVER_OBJ += io_threads.o
endif
else
$(error IOCORE_MODE must be full or queues, not '$(IOCORE_MODE)')
endif

ifeq ($(IOCORE_RINGS),tiny)
ifneq ($(IOCORE_MODE),full)
$(error IOCORE_RINGS=tiny needs IOCORE_MODE=full: in $(IOCORE_MODE) mode the I/O threads are Valkey's)
endif
IOCORE_FEATURES := $(IOCORE_FEATURES),tiny-rings
else ifneq ($(IOCORE_RINGS),stock)
$(error IOCORE_RINGS must be stock or tiny, not '$(IOCORE_RINGS)')
endif

IOCORE_TARGET_DIR := $(IOCORE_SRC_DIR)/.iocore-target

# A sanitizer build. With --target, RUSTFLAGS reach the crate and its
# dependencies but not build scripts. The std linked is the precompiled one,
# built without the sanitizer, hence the allowed ABI mismatch. gcc 12's libtsan
# predates __tsan_memcpy and __tsan_memset, which LLVM 16 and later call for
# memcpy and memset; without that instrumentation they stay calls to memcpy and
# memset, which the runtime intercepts (copies LLVM expands inline go
# unchecked). Frame pointers give the runtime's fast unwinder whole stacks.
ifeq ($(IOCORE_SANITIZER),none)
IOCORE_CARGO := $(CARGO)
IOCORE_OUT := $(IOCORE_TARGET_DIR)/release
else ifneq ($(filter thread address,$(IOCORE_SANITIZER)),)
IOCORE_RUST_TARGET := $(shell $(IOCORE_SANITIZER_CARGO) -vV 2>/dev/null | sed -n 's/^host: //p')
ifeq ($(IOCORE_RUST_TARGET),)
$(error IOCORE_SANITIZER=$(IOCORE_SANITIZER) needs a nightly toolchain, and '$(IOCORE_SANITIZER_CARGO) -vV' failed (rustup toolchain install nightly))
endif
IOCORE_RUSTFLAGS := -Zsanitizer=$(IOCORE_SANITIZER) -Cunsafe-allow-abi-mismatch=sanitizer \
	-Cforce-frame-pointers=yes
ifeq ($(IOCORE_SANITIZER),thread)
IOCORE_RUSTFLAGS += -Cllvm-args=-tsan-instrument-memintrinsics=0
endif
IOCORE_CARGO := RUSTFLAGS='$(IOCORE_RUSTFLAGS)' $(IOCORE_SANITIZER_CARGO)
IOCORE_TARGET_ARGS := --target $(IOCORE_RUST_TARGET)
IOCORE_OUT := $(IOCORE_TARGET_DIR)/$(IOCORE_RUST_TARGET)/release
else
$(error IOCORE_SANITIZER must be none, thread or address, not '$(IOCORE_SANITIZER)')
endif

IOCORE_STATICLIB := $(IOCORE_OUT)/libvalkey_iocore.a
IOCORE_SHAREDLIB := $(IOCORE_OUT)/libvalkey_iocore.so
# Records mode, link, rings and sanitizer, so that changing any of them relinks
# what uses the crate.
IOCORE_STAMP := $(IOCORE_SRC_DIR)/.iocore-mode
IOCORE_STAMP_TEXT := $(IOCORE_MODE) $(IOCORE_LINK) $(IOCORE_RINGS)$(if $(filter-out none,$(IOCORE_SANITIZER)), $(IOCORE_SANITIZER))

# IOCORE_DEPS: prerequisites of whatever links the crate.
# IOCORE_LIBS: the crate on valkey-server's link line, after the objects.
# IOCORE_UNIT_LIBS: the crate and libvalkey.a on the unit tests' link line.
#   They reference each other, hence the group. A shared crate calls back into
#   the executable, which must export its symbols (-rdynamic; valkey-server
#   already links with it on Linux).
ifeq ($(IOCORE_LINK),static)
IOCORE_LIB := $(IOCORE_STATICLIB)
IOCORE_DEPS := $(IOCORE_STATICLIB) $(IOCORE_STAMP)
IOCORE_LIBS := $(IOCORE_STATICLIB)
IOCORE_UNIT_LIBS := -Wl,--start-group $(IOCORE_SRC_DIR)/libvalkey.a $(IOCORE_STATICLIB) -Wl,--end-group
else ifeq ($(IOCORE_LINK),shared)
IOCORE_LIB := $(IOCORE_SHAREDLIB)
IOCORE_DEPS := $(IOCORE_SHAREDLIB) $(IOCORE_STAMP)
IOCORE_LIBS := -L$(IOCORE_OUT) -l:libvalkey_iocore.so -Wl,-rpath,$(IOCORE_OUT)
IOCORE_UNIT_LIBS := -rdynamic $(IOCORE_LIBS) $(IOCORE_SRC_DIR)/libvalkey.a
else
$(error IOCORE_LINK must be static or shared, not '$(IOCORE_LINK)')
endif

ifndef V
QUIET_CARGO = @printf '    %b %b\n' $(CCCOLOR)CARGO$(ENDCOLOR) $(BINCOLOR)valkey-iocore$(ENDCOLOR) 1>&2;
IOCORE_CARGO_QUIET = --quiet
endif

# Cargo knows best what is stale, so it is asked every time; it leaves the
# libraries untouched when nothing changed, and make then relinks nothing.
# Cargo writes both libraries in one go; only the one linked is a target. The
# leading + hands cargo make's jobserver.
$(IOCORE_LIB): iocore-always
	$(if $(FINAL_CFLAGS),,$(error the crate is built from src/Makefile, which knows FINAL_CFLAGS))
	$(if $(filter none -fsanitize=$(IOCORE_SANITIZER),$(IOCORE_SANITIZER) $(FINAL_CFLAGS)),,$(error \
		IOCORE_SANITIZER=$(IOCORE_SANITIZER) needs a tree built with -fsanitize=$(IOCORE_SANITIZER): \
		pass SANITIZER=$(IOCORE_SANITIZER) to every make of it))
	+$(QUIET_CARGO)VALKEY_SRC_DIR='$(IOCORE_SRC_DIR)' VALKEY_CFLAGS='$(strip $(FINAL_CFLAGS))' \
		VALKEY_CC='$(CC)' $(IOCORE_CARGO) build --release --locked $(IOCORE_CARGO_QUIET) \
		--features $(IOCORE_FEATURES) $(IOCORE_TARGET_ARGS) \
		--manifest-path '$(IOCORE_DIR)/Cargo.toml' --target-dir '$(IOCORE_TARGET_DIR)'

$(IOCORE_STAMP): iocore-always
	@echo '$(IOCORE_STAMP_TEXT)' | cmp -s - $@ || echo '$(IOCORE_STAMP_TEXT)' > $@

# Builds the crate alone.
iocore: $(IOCORE_DEPS)

.PHONY: iocore iocore-always
