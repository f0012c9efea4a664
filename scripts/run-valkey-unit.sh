#!/usr/bin/env bash
# Runs Valkey's own gtest unit tests (src/unit/valkey-unit-gtests, built by
# `scripts/build-valkey.sh --unit`) in each tree given, and prints one line
# per tree. test_queues.cpp among them drives the rings through queues.h, so
# in a Rust tree it tests the crate's rings unchanged.
#
# usage: scripts/run-valkey-unit.sh TREE...   (e.g. build/valkey-c build/valkey-rust)
# Logs: build/logs/valkey-NAME-unit.log. Exits 1 if any tree has a failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
logs=${BUILD_DIR:-$root/build}/logs
mkdir -p "$logs"
[ $# -gt 0 ] || { echo "usage: run-valkey-unit.sh TREE..." >&2; exit 2; }

status=0
results=()
for tree in "$@"; do
    name=$(basename "$tree" | sed 's/^valkey-//')
    bin=$tree/src/unit/valkey-unit-gtests
    log=$logs/valkey-$name-unit.log
    if [ ! -x "$bin" ]; then
        results+=("$(printf '%-12s not built (scripts/build-valkey.sh --unit %s)' "$name" "$name")")
        status=1
        continue
    fi
    echo "run-valkey-unit: $name: $bin (log: $log)" >&2
    start=$SECONDS
    rc=0
    (cd "$tree/src/unit" && ./valkey-unit-gtests) >"$log" 2>&1 </dev/null || rc=$?
    elapsed=$((SECONDS - start))

    # gtest's closing lines: "[  PASSED  ] 308 tests.", "[  FAILED  ] 2 tests, listed below:".
    count() { sed -n "s/^\[  $1 *\] \([0-9]*\) tests\{0,1\}[.,].*/\1/p" "$log" | head -n 1; }
    passed=$(count PASSED)
    failed=$(count FAILED)
    skipped=$(count SKIPPED)
    queues=$(grep -c '^\[       OK \] \(Spsc\|Spmc\|Mpsc\)QueueTest\.' "$log" || true)
    results+=("$(printf '%-12s %4d passed, %d failed, %d skipped (%d of them queue tests), rc %d, %d s' \
        "$name" "${passed:-0}" "${failed:-0}" "${skipped:-0}" "$queues" "$rc" "$elapsed")")
    if [ "$rc" != 0 ] || [ "${failed:-0}" != 0 ] || [ -z "$passed" ]; then
        status=1
        grep '^\[  FAILED  \] [A-Za-z]' "$log" | sed 's/^/    /' >&2 || true
    fi
done

echo
echo "Valkey gtest unit tests:"
printf '  %s\n' "${results[@]}"
exit $status
