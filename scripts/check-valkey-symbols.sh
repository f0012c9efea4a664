#!/usr/bin/env bash
# Checks, from the built trees, that valkey-iocore really stands in for
# io_threads.o and queues.o:
#
#  1. the crate (static and shared library) exports every global that the C
#     objects define and the rest of Valkey uses: the server's other objects
#     and the unit tests, as built in the stock tree;
#  2. the Rust-linked server carries no code of the replaced C files: no
#     member of that name in its libvalkey.a, no compile unit of that name in
#     its debug information, none of the C files' static functions, and every
#     replaced symbol it defines has its debug line in a .rs file;
#  3. the shared-library server defines none of them and loads the crate's
#     .so through its RUNPATH.
#
# usage: scripts/check-valkey-symbols.sh [C_TREE [RUST_TREE [RUST_SHARED_TREE]]]
#   defaults: build/valkey-c build/valkey-rust build/valkey-rust-shared
#   (a missing shared tree is skipped with a note). The rust trees' mode
#   (full or queues) is read from their src/.iocore-settings.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
# Absolute, since the checks below run from other directories.
absolute() { if [ -d "$1" ]; then (cd "$1" && pwd); else echo "$1"; fi; }
c_tree=$(absolute "${1:-$build/valkey-c}")
rust_tree=$(absolute "${2:-$build/valkey-rust}")
shared_tree=$(absolute "${3:-$build/valkey-rust-shared}")

failures=0
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; failures=$((failures + 1)); }
note() { echo "  note  $*"; }
die() { echo "check-valkey-symbols: error: $*" >&2; exit 2; }
# Joins its arguments with ", ", or says "none".
list() { if [ $# -eq 0 ]; then echo none; else local IFS=,; echo "$*" | sed 's/,/, /g'; fi; }

setting() { sed -n "s/^$1 *[:?]\{0,1\}= *//p" "$2/src/.iocore-settings"; }

for t in "$c_tree" "$rust_tree"; do
    [ -x "$t/src/valkey-server" ] || die "$t/src/valkey-server is missing: run scripts/build-valkey.sh"
done
[ ! -e "$c_tree/src/iocore.mk" ] || die "$c_tree is patched; it must be the stock tree"
[ -f "$rust_tree/src/.iocore-settings" ] || die "$rust_tree is not a patched tree"

mode=$(setting IOCORE_MODE "$rust_tree")
case $mode in
full) replaced=(io_threads queues) ;;
queues) replaced=(queues) ;;
*) die "$rust_tree: unknown IOCORE_MODE '$mode'" ;;
esac
echo "mode: $mode (the crate replaces $(list "${replaced[@]/%/.o}"))"

cd "$c_tree/src"
[ -f unit/test_queues.o ] ||
    note "the stock tree's unit tests are not built: their references are not counted (make valkey-unit)"

# Globals the replaced C objects define, and those the rest of Valkey uses.
defined=$(for o in "${replaced[@]}"; do nm -g --defined-only "$o.o" | awk 'NF == 3 { print $3 }'; done | sort -u)
others=()
for o in *.o trace/*.o unit/*.o; do
    [ -f "$o" ] || continue
    case " ${replaced[*]/%/.o} " in *" $o "*) continue ;; esac
    others+=("$o")
done
used=$(nm -u "${others[@]}" 2>/dev/null | awk 'NF == 2 { print $2 }' | sort -u)
needed=$(comm -12 <(echo "$defined") <(echo "$used"))
unused=$(comm -23 <(echo "$defined") <(echo "$used"))
n_needed=$(echo "$needed" | grep -c .)
echo
echo "1. exports: the C objects define $(echo "$defined" | grep -c .) globals;" \
    "$n_needed of them are used by the rest of Valkey (${#others[@]} objects)"

out=$rust_tree/src/.iocore-target/release
check_exports() {
    local what=$1 exports=$2
    local missing
    missing=$(comm -23 <(echo "$needed") <(echo "$exports"))
    if [ -z "$missing" ]; then
        pass "$what exports all $n_needed"
    else
        fail "$what lacks: $(list $missing)"
    fi
    local absent
    absent=$(comm -23 <(echo "$unused") <(echo "$exports"))
    [ -z "$absent" ] || note "$what does not export these C globals, which nothing in Valkey uses: $(list $absent)"
}
# readelf rather than nm: nm hands objects carrying LLVM bitcode (rustc embeds
# it) to whatever LTO plugin binutils finds, which may fail and hide them.
global_defs() { readelf -W "$@" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort -u; }
check_exports "libvalkey_iocore.a " "$(global_defs --syms "$out/libvalkey_iocore.a")"
check_exports "libvalkey_iocore.so" "$(global_defs --dyn-syms "$out/libvalkey_iocore.so")"

# Compile units named after a file, from the debug information.
units_named() {
    readelf --debug-dump=info --dwarf-depth=1 "$1" | { grep -E "DW_AT_name.*: ($2)\$" || true; } | sed 's/.*: //' | sort -u
}
replaced_re=$(IFS='|'; echo "${replaced[*]/%/\\.c}")
# The static functions of the replaced C files, as named in the stock server
# (LTO may add a suffix such as .lto_priv.0); only those it kept prove anything.
witnesses=()
c_names=$(nm "$c_tree/src/valkey-server" | awk 'NF == 3 { sub(/\..*/, "", $3); print $3 }' | sort -u)
for f in "${replaced[@]}"; do
    for fn in $(sed -n 's/^static [^(=;]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' "$c_tree/src/$f.c"); do
        grep -qx "$fn" <<<"$c_names" && witnesses+=("$fn")
    done
done

echo
echo "2. $rust_tree/src/valkey-server (static)"
bin=$rust_tree/src/valkey-server
if [ -f "$rust_tree/src/libvalkey.a" ]; then
    members=$(ar t "$rust_tree/src/libvalkey.a" | grep -xE "$(IFS='|'; echo "${replaced[*]/%/\\.o}")" || true)
    [ -z "$members" ] && pass "libvalkey.a has no $(list "${replaced[@]/%/.o}")" || fail "libvalkey.a holds $(list $members)"
else
    note "libvalkey.a is not built (make valkey-unit builds it)"
fi
units=$(units_named "$bin" "$replaced_re")
[ -z "$units" ] && pass "no compile unit from $(list "${replaced[@]/%/.c}")" || fail "compile units from $(list $units)"
[ -n "$(units_named "$bin" 'src/lib\.rs/@/valkey_iocore\..*')" ] && pass "has the crate's compile unit" ||
    fail "has no compile unit of the crate valkey_iocore"
if [ ${#witnesses[@]} -eq 0 ]; then
    note "the stock server kept none of the C files' static functions; nothing to look for"
elif ! present=$(nm "$bin" | awk 'NF == 3 { sub(/\..*/, "", $3); print $3 }' | sort -u |
    grep -xF -f <(printf '%s\n' "${witnesses[@]}")); then
    pass "none of the ${#witnesses[@]} static functions the stock server has from them ($(list "${witnesses[@]}"))"
else
    fail "has the C static functions $(list $present)"
fi
# Where each replaced function the binary defines was compiled from.
syms=$(nm --defined-only "$bin" | awk 'NF == 3 && ($2 == "T" || $2 == "t")' | sort -k3,3 |
    join -1 3 -2 1 -o 1.1,1.3 - <(echo "$defined"))
if [ -n "$syms" ]; then
    not_rust=$(paste -d' ' <(echo "$syms" | cut -d' ' -f2) \
        <(addr2line -e "$bin" $(echo "$syms" | cut -d' ' -f1)) | awk '$2 !~ /\.rs:[0-9?]+/ { print $1 "@" $2 }')
    [ -z "$not_rust" ] && pass "all $(echo "$syms" | grep -c .) replaced functions it defines come from .rs files" ||
        fail "replaced symbols not from Rust: $(list $not_rust)"
fi

echo
if [ ! -x "$shared_tree/src/valkey-server" ]; then
    echo "3. $shared_tree: not built, skipped (scripts/build-valkey.sh rust-shared)"
else
    echo "3. $shared_tree/src/valkey-server (shared)"
    bin=$shared_tree/src/valkey-server
    [ "$(setting IOCORE_LINK "$shared_tree")" = shared ] || fail "$shared_tree is not set to IOCORE_LINK = shared"
    needed_libs=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    runpath=$(readelf -d "$bin" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
    grep -qx libvalkey_iocore.so <<<"$needed_libs" && pass "NEEDED libvalkey_iocore.so, RUNPATH $runpath" ||
        fail "does not need libvalkey_iocore.so"
    resolved=$(ldd "$bin" | awk '$1 == "libvalkey_iocore.so" { print $3 }')
    [ "$resolved" = "$shared_tree/src/.iocore-target/release/libvalkey_iocore.so" ] &&
        pass "the loader finds it at $resolved" || fail "the loader finds libvalkey_iocore.so at '$resolved'"
    defs=$(nm --defined-only "$bin" | awk 'NF == 3 { print $3 }' | sort -u | comm -12 - <(echo "$defined"))
    [ -z "$defs" ] && pass "defines none of the replaced symbols" || fail "defines $(list $defs)"
    units=$(units_named "$bin" "$replaced_re")
    [ -z "$units" ] && pass "no compile unit from $(list "${replaced[@]/%/.c}")" || fail "compile units from $(list $units)"
    undef=$(nm -D --undefined-only "$bin" | awk '{ print $2 }' | sort -u | comm -12 - <(echo "$needed"))
    pass "imports $(echo "$undef" | grep -c .) of them from the library"
fi

echo
if [ $failures -eq 0 ]; then
    echo "symbols: all checks passed"
else
    echo "symbols: $failures check(s) failed"
    exit 1
fi
