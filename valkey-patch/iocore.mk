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
#   CARGO         the cargo to build the crate with (default: cargo)
#
# The crate's build script reads three variables from this file's cargo call:
# VALKEY_SRC_DIR (this directory, absolute), VALKEY_CFLAGS (FINAL_CFLAGS,
# exactly as Valkey compiles with it; relative -I paths in it are relative to
# VALKEY_SRC_DIR) and VALKEY_CC (the C compiler).

IOCORE_SRC_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
-include $(IOCORE_SRC_DIR)/.iocore-settings

IOCORE_MODE ?= full
IOCORE_LINK ?= static
CARGO ?= cargo

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

IOCORE_TARGET_DIR := $(IOCORE_SRC_DIR)/.iocore-target
IOCORE_OUT := $(IOCORE_TARGET_DIR)/release
IOCORE_STATICLIB := $(IOCORE_OUT)/libvalkey_iocore.a
IOCORE_SHAREDLIB := $(IOCORE_OUT)/libvalkey_iocore.so
# Records mode and link, so that changing either relinks what uses the crate.
IOCORE_STAMP := $(IOCORE_SRC_DIR)/.iocore-mode

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
	+$(QUIET_CARGO)VALKEY_SRC_DIR='$(IOCORE_SRC_DIR)' VALKEY_CFLAGS='$(strip $(FINAL_CFLAGS))' \
		VALKEY_CC='$(CC)' $(CARGO) build --release --locked $(IOCORE_CARGO_QUIET) \
		--features $(IOCORE_FEATURES) --manifest-path '$(IOCORE_DIR)/Cargo.toml' \
		--target-dir '$(IOCORE_TARGET_DIR)'

$(IOCORE_STAMP): iocore-always
	@echo '$(IOCORE_MODE) $(IOCORE_LINK)' | cmp -s - $@ || echo '$(IOCORE_MODE) $(IOCORE_LINK)' > $@

# Builds the crate alone.
iocore: $(IOCORE_DEPS)

.PHONY: iocore iocore-always
