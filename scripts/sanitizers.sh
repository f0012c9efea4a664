#!/usr/bin/env bash
# The reliability checks on sanitizer builds of both cores, side by side.
#
#   scripts/sanitizers.sh thread|address [--quick]
#
# Builds build/valkey-c-SAN and build/valkey-rust-SAN (SAN: tsan or asan) with
# Valkey's SANITIZER=thread|address and the crate instrumented to match
# (scripts/build-valkey.sh --sanitizer), then runs against each:
#
#   tcl     Valkey's unit/io-threads, default and --io-threads modes; Valkey's
#           test framework fails a test whose server wrote a sanitizer report
#   stress  the live-resize stress (scripts/stress-resize.py), with and
#           without MODULE LOAD/UNLOAD, hang timeout raised for the slowdown
#   entry   the entry-point C tests (c-tests/entry_points_test.c)
#   gtest   Valkey's gtest unit tests (test_queues.cpp drives our rings)
#
# and sorts every report found (scripts/sanitizer-reports.py). It exits 1 when
# a report lies in the crate, when the Rust build fails a TCL test the C build
# passes, or when a check fails on the Rust build; the C build's outcome is
# printed beside it, as the baseline. Logs: build/sanitizer-SAN/.
#
# --quick: the stress runs for 10 s instead of 30 s.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

say() { echo "sanitizers: $*" >&2; }
die() { say "error: $*"; exit 2; }

sanitizer=${1:-}
case $sanitizer in
thread) suffix=tsan ;;
address) suffix=asan ;;
*) die "usage: sanitizers.sh thread|address [--quick]" ;;
esac
duration=30
[ "${2:-}" = --quick ] && duration=10

c_tree=$build/valkey-c-$suffix
rust_tree=$build/valkey-rust-$suffix
out=$build/sanitizer-$suffix
rm -rf "$out"
mkdir -p "$out"

"$root/scripts/build-valkey.sh" --sanitizer "$sanitizer" --unit c rust || die "build failed"

# halt_on_error=0: the run goes on after a report, so that one report does not
# hide the next; exitcode=0: a report does not fail the check it happened in,
# it is counted below instead. ASan stops at its first error all the same
# (Valkey builds with -fno-sanitize-recover=all); its leak check at exit stays on.
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 history_size=4"
export ASAN_OPTIONS="halt_on_error=0 detect_leaks=1"

failed=()
step() {
    local name=$1
    shift
    say "$name: $*"
    "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$out/$name.log"
    [ $rc = 0 ] || failed+=("$name")
}

step tcl "$root/scripts/run-tcl-subset.sh" --compare --units unit/io-threads --clients 4 \
    --out "$out/tcl" "$c_tree" "$rust_tree"

say "building the entry-point tests"
make --no-print-directory -f "$root/c-tests/entry-points.mk" build \
    VALKEY_C="$c_tree" VALKEY_RUST="$rust_tree" OUT="$out/entry" >"$out/entry-build.log" 2>&1 ||
    { tail -n 25 "$out/entry-build.log"; die "building the entry-point tests failed"; }

for side in c rust; do
    tree=$build/valkey-$side-$suffix
    name=$(basename "$tree")
    step "stress-$name" python3 "$root/scripts/stress-resize.py" --tree "$tree" \
        --duration "$duration" --hang-timeout 60 --keep-stderr "$out/stress"
    step "stress-modules-$name" python3 "$root/scripts/stress-resize.py" --tree "$tree" --modules \
        --duration "$duration" --hang-timeout 60 --keep-stderr "$out/stress"
    binary=$out/entry/entry_points_test-$([ $side = c ] && echo valkey || echo rust)
    step "entry-$name" "$root/c-tests/entry-points.sh" "$binary"
    step "gtest-$name" "$root/scripts/run-valkey-unit.sh" "$tree"
done

# Every log that may hold a report, labelled by build.
logs=()
for side in c rust; do
    tree=$build/valkey-$side-$suffix
    name=$(basename "$tree" | sed 's/^valkey-//')
    for f in "$out/tcl/$name"-*.log "$out/stress/$name"*.stderr "$out/entry-$(basename "$tree").log" \
        "$build/logs/valkey-$name-unit.log"; do
        [ -f "$f" ] && logs+=("$side:$(basename "$f")=$f")
    done
done

echo
echo "Sanitizer reports ($sanitizer), per log:"
python3 "$root/scripts/sanitizer-reports.py" --fail-on-ours "${logs[@]}" | tee "$out/reports.txt"
[ "${PIPESTATUS[0]}" = 0 ] || failed+=("reports in the crate")

echo
# The Rust build's checks decide; the C build's failures are its own. A gtest
# that fails in both builds alike (Valkey's ExampleDeathTest crashes in
# serverLogRaw under ThreadSanitizer) is Valkey's, not a Rust failure.
failed_gtests() {
    sed -n 's/^\[  FAILED  \] \([A-Za-z][^ ]*\).*/\1/p' "$build/logs/valkey-$1-$suffix-unit.log" | sort -u
}
rust_failed=()
for f in ${failed[@]+"${failed[@]}"}; do
    case $f in
    *-valkey-c-$suffix) say "C build: $f failed (baseline, not counted)" ;;
    gtest-valkey-rust-$suffix)
        if [ -n "$(failed_gtests rust)" ] && [ "$(failed_gtests rust)" = "$(failed_gtests c)" ]; then
            say "gtest: the same tests fail in the C build, so not counted:"
            failed_gtests rust | sed 's/^/    /' >&2
        else
            rust_failed+=("$f")
        fi
        ;;
    *) rust_failed+=("$f") ;;
    esac
done
if [ ${#rust_failed[@]} = 0 ]; then
    echo "sanitizers ($sanitizer): clean: no report in the crate, no check failed on the Rust build"
else
    echo "sanitizers ($sanitizer): failed: ${rust_failed[*]} (logs in $out)"
    exit 1
fi
