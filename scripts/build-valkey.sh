#!/usr/bin/env bash
# Builds Valkey 9.1.2 side by side from one pristine tree, so that the stock
# server and the one on valkey-iocore can be compared:
#
#   c            build/valkey-c            the pristine tree, untouched
#   rust         build/valkey-rust         patched; the crate linked statically
#   rust-shared  build/valkey-rust-shared  patched; the crate as a shared
#                                          library, found through RUNPATH
#   rust-tiny    build/valkey-rust-tiny    patched; the crate linked
#                                          statically, every ring of 4 slots
#                                          (IOCORE_RINGS=tiny, full mode only)
#
# Each tree's src/ then holds valkey-server, valkey-cli and valkey-benchmark
# (and valkey-unit-gtests with --unit).
#
# usage: scripts/build-valkey.sh [--mode full|queues] [--unit] [--sanitizer S] [-j N] VARIANT...
#
#   --mode  what the crate replaces in the rust trees: full (io_threads.o and
#           queues.o, the default) or queues (queues.o only, Valkey's own
#           io_threads.o stays). Default: $IOCORE_MODE, else full.
#   --unit  also build the gtest unit tests.
#   --sanitizer thread|address
#           build the variants with Valkey's SANITIZER=thread or address (and
#           MALLOC=libc, so that the runtime sees every allocation) in trees
#           of their own, build/valkey-VARIANT-tsan or -asan; in the rust
#           trees the crate is instrumented as well (IOCORE_SANITIZER, nightly
#           cargo). A rust tree starts from the C one's objects when that is
#           built.
#   -j N    parallel jobs (default: the number of CPUs).
#
# A rust tree is re-patched, keeping its build outputs, whenever valkey-patch/
# changes. Logs go to build/logs/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
logs=$build/logs
patch_dir=$root/valkey-patch
mode=${IOCORE_MODE:-full}
unit=0
jobs=$(nproc)
sanitizer=none
variants=()

say() { echo "build-valkey: $*" >&2; }
die() { say "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
    --mode) mode=$2; shift 2 ;;
    --unit) unit=1; shift ;;
    --sanitizer) sanitizer=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    c | rust | rust-shared | rust-tiny) variants+=("$1"); shift ;;
    *) die "unknown argument '$1' (usage: build-valkey.sh [--mode full|queues] [--unit] [--sanitizer thread|address] [-j N] c|rust|rust-shared|rust-tiny...)" ;;
    esac
done
# Valkey's make remembers a sanitizer only through the CFLAGS, LDFLAGS and
# MALLOC it saves in src/.make-settings; the variables go on every make of
# such a tree all the same, so that no make of it can build differently.
case $sanitizer in
none) suffix= make_vars=() ;;
thread) suffix=-tsan make_vars=(SANITIZER=thread MALLOC=libc) ;;
address) suffix=-asan make_vars=(SANITIZER=address MALLOC=libc) ;;
*) die "--sanitizer must be thread or address, not '$sanitizer'" ;;
esac
[ ${#variants[@]} -gt 0 ] || variants=(c rust)
case $mode in full | queues) ;; *) die "--mode must be full or queues, not '$mode'" ;; esac
for v in "${variants[@]}"; do
    [ "$v" != rust-tiny ] || [ "$mode" = full ] ||
        die "rust-tiny needs --mode full: in $mode mode the I/O threads are Valkey's"
done

# The Valkey build is its own make world: nothing of a calling make leaks in.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
# Valkey stamps the git commit it finds into release.h; the trees live inside
# this repository, whose commits are not Valkey's (and would rebuild release.o
# at each one).
export GIT_CEILING_DIRECTORIES=$build

pristine=$("$root/scripts/fetch-valkey.sh")
patch_id=$(cat "$patch_dir"/valkey-9.1.2.patch "$patch_dir"/apply.sh | sha256sum | cut -c1-16)
mkdir -p "$logs"

# Files the patch edits, restored from the pristine tree before re-patching.
patched_files() {
    sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$patch_dir/valkey-9.1.2.patch"
}

# Makes sure build/valkey-VARIANT exists and is the right kind of tree.
prepare_tree() {
    local variant=$1 tree=$build/valkey-$1$suffix
    if [ ! -f "$tree/.iocore-tree" ]; then
        local seed=$pristine
        # The shared-library and tiny-ring trees differ from the static one in
        # the link or the crate's features only: its objects and cargo's
        # target folder save most of their first build.
        case $variant in rust-shared | rust-tiny)
            [ -f "$build/valkey-rust$suffix/.iocore-tree" ] && seed=$build/valkey-rust$suffix ;;
        esac
        # A sanitizer build's C objects are the same in every variant.
        if [ "$variant" = rust ] && [ -n "$suffix" ] && [ -x "$build/valkey-c$suffix/src/valkey-server" ]; then
            seed=$build/valkey-c$suffix
        fi
        say "creating $tree from $seed"
        rm -rf "$tree" "$tree.part"
        cp -a "$seed" "$tree.part"
        rm -f "$tree.part/.iocore-tree"
        mv "$tree.part" "$tree"
    fi

    if [ "$variant" = c ]; then
        [ ! -e "$tree/src/iocore.mk" ] || die "$tree is patched; remove it to rebuild the stock tree"
        echo "variant=c" >"$tree/.iocore-tree"
        return
    fi

    local link=static rings=stock
    [ "$variant" = rust-shared ] && link=shared
    [ "$variant" = rust-tiny ] && rings=tiny
    if [ -e "$tree/src/iocore.mk" ] && ! grep -qsx "variant=$variant patch=$patch_id" "$tree/.iocore-tree"; then
        say "valkey-patch/ changed: re-patching $tree"
        local f
        for f in $(patched_files); do cp "$pristine/$f" "$tree/$f"; done
    fi
    "$patch_dir/apply.sh" "$tree" "$mode" "$link" "$rings" "$sanitizer"
    echo "variant=$variant patch=$patch_id" >"$tree/.iocore-tree"
}

# The unit tests come after the rest, never in the same make: their Makefile
# runs a second make in src/ for libvalkey.a, which would race the first one
# on the objects, the crate and the archive.
build_tree() {
    local variant=$1 tree=$build/valkey-$1$suffix
    local log=$logs/valkey-$variant$suffix-build.log
    local start=$SECONDS goal
    local goals=(all)
    [ $unit = 1 ] && goals+=(valkey-unit-gtests)
    : >"$log"
    for goal in "${goals[@]}"; do
        say "building $variant $goal (-j$jobs) in $tree; log: $log"
        if ! make -C "$tree/src" -j"$jobs" "$goal" ${make_vars[@]+"${make_vars[@]}"} >>"$log" 2>&1; then
            tail -n 40 "$log" >&2
            die "building $variant failed; see $log"
        fi
    done
    say "built $variant in $((SECONDS - start)) s"
}

for v in "${variants[@]}"; do
    prepare_tree "$v"
    build_tree "$v"
done
