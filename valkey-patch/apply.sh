#!/usr/bin/env bash
# Turns a pristine Valkey 9.1.2 tree into one that links valkey-iocore in place
# of io_threads.o and queues.o.
#
#   valkey-patch/apply.sh TREE [IOCORE_MODE [IOCORE_LINK [IOCORE_RINGS [IOCORE_SANITIZER]]]]
#
# Applies valkey-9.1.2.patch (the build files' edits), installs iocore.mk as
# src/iocore.mk and iocore.cmake as cmake/Modules/IOCore.cmake, and writes
# src/.iocore-settings: this checkout as IOCORE_DIR, plus the tree's default
# mode (full or queues), link (static or shared), rings (stock or tiny;
# tiny only in full mode) and sanitizer (none, thread or address: the crate's
# instrumentation, for a tree made with SANITIZER= the same), which make's
# command line can still override.
# Valkey's io_threads.h and queues.h are untouched.
#
# Refuses a tree the patch does not apply to cleanly; re-running it on a
# patched tree only rewrites the settings.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
patch_file=$here/valkey-9.1.2.patch

die() { echo "apply.sh: error: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: apply.sh TREE [full|queues [static|shared [stock|tiny [none|thread|address]]]]"
tree=$(cd "$1" && pwd)
mode=${2:-full}
link=${3:-static}
rings=${4:-stock}
sanitizer=${5:-none}
case $mode in full | queues) ;; *) die "mode must be full or queues, not '$mode'" ;; esac
case $link in static | shared) ;; *) die "link must be static or shared, not '$link'" ;; esac
case $rings in stock | tiny) ;; *) die "rings must be stock or tiny, not '$rings'" ;; esac
case $sanitizer in none | thread | address) ;; *) die "sanitizer must be none, thread or address, not '$sanitizer'" ;; esac
[ "$rings" = stock ] || [ "$mode" = full ] ||
    die "tiny rings need full mode: in $mode mode the I/O threads are Valkey's"
[ -f "$tree/src/io_threads.c" ] || die "$tree is not a Valkey tree"

if patch -p1 -d "$tree" --dry-run --force --reverse --quiet <"$patch_file" >/dev/null 2>&1; then
    : # already applied
else
    patch -p1 -d "$tree" --dry-run --forward --quiet <"$patch_file" >/dev/null ||
        die "$patch_file does not apply to $tree (not a pristine Valkey 9.1.2?)"
    patch -p1 -d "$tree" --forward --quiet --no-backup-if-mismatch <"$patch_file"
fi

install -m 644 "$here/iocore.mk" "$tree/src/iocore.mk"
install -m 644 "$here/iocore.cmake" "$tree/cmake/Modules/IOCore.cmake"

# Plain NAME = value lines: both make and CMake read this file.
cat >"$tree/src/.iocore-settings.part" <<EOF
IOCORE_DIR = $root
IOCORE_MODE = $mode
IOCORE_LINK = $link
IOCORE_RINGS = $rings
IOCORE_SANITIZER = $sanitizer
EOF
mv "$tree/src/.iocore-settings.part" "$tree/src/.iocore-settings"
