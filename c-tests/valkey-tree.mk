# How to compile and link a C test against a built Valkey tree, read from
# what that tree's own build recorded: src/.make-settings (Valkey's flags and
# allocator) and, in a patched tree, src/.iocore-settings (whether the crate
# was instrumented for a sanitizer). Included by entry-points.mk and
# boundary.mk; each function takes the tree as its argument.
#
# Link-time optimisation is left out: the archives hold fat objects (Valkey
# builds with -ffat-lto-objects), so they link as plain code, as Valkey's own
# unit tests link them (-fno-lto).

valkey_setting = $(shell sed -n 's/^$(2)=//p' $(1)/src/.make-settings)

# Valkey's compile flags, its dependencies' relative -I paths made absolute.
valkey_cflags = $(patsubst -I../%,-I$(1)/%,$(filter-out -flto% -ffat-lto-objects,\
    $(call valkey_setting,$(1),PREV_FINAL_CFLAGS))) -I$(1)/src

# A sanitizer tree (SANITIZER=thread|address) links the runtime too.
valkey_ldflags = -g -fno-lto -rdynamic \
    $(filter -fsanitize=%,$(call valkey_setting,$(1),PREV_FINAL_LDFLAGS))

# What valkey-server links besides its objects (src/Makefile's FINAL_LIBS on
# Linux, no TLS), less the Lua engine, which the tests do not load; jemalloc
# only where the tree was built with it (sanitizer trees use libc's malloc).
valkey_deps = $(1)/deps/libvalkey/lib/libvalkey.a $(1)/deps/hdr_histogram/libhdrhistogram.a \
    $(1)/deps/fpconv/libfpconv.a \
    $(if $(filter jemalloc,$(call valkey_setting,$(1),MALLOC)),$(1)/deps/jemalloc/lib/libjemalloc.a) \
    -lm -ldl -pthread -lrt

# The crate's static library in a patched tree: cargo puts an instrumented
# build, made with an explicit --target, under that target's folder.
iocore_sanitizer = $(shell sed -n 's/^IOCORE_SANITIZER = //p' $(1)/src/.iocore-settings 2>/dev/null)
rust_host := $(shell rustc -vV | sed -n 's/^host: //p')
iocore_instrumented = $(filter-out none,$(call iocore_sanitizer,$(1)))
iocore_staticlib = \
    $(1)/src/.iocore-target/$(if $(call iocore_instrumented,$(1)),$(rust_host)/)release/libvalkey_iocore.a
