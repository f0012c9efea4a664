#!/usr/bin/env bash
# Runs both builds of the ring tests and checks that they observed the same
# results, then prints the total as "N passed, N failed" (the last line).
# The layout check has already passed when this runs: it is a compile step.
#   usage: run.sh OUT_DIR
set -uo pipefail

out=$1
passed=1 # layout.c compiled
failed=0

run() { # build-name
    local log=$out/$1.log
    "$out/rings_test-$1" --trace "$out/trace-$1.txt" | tee "$log"
    local status=${PIPESTATUS[0]}
    local summary ok=0 bad=0
    summary=$(tail -n 1 "$log")
    if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        ok=${BASH_REMATCH[1]}
        bad=${BASH_REMATCH[2]}
    fi
    # A crash, or a failing exit with no failure reported, counts as one more.
    if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "c-tests: rings_test-$1 exited with status $status"
        bad=1
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
}

echo "c-tests: layout.c compiled: queues.h and valkey_iocore.h agree on prototypes and layout"
run valkey
run rust

if cmp -s "$out/trace-valkey.txt" "$out/trace-rust.txt"; then
    echo "c-tests: both builds observed the same $(wc -l <"$out/trace-rust.txt") results"
    passed=$((passed + 1))
else
    echo "c-tests: the builds observed different results (- Valkey, + Rust):"
    diff -u "$out/trace-valkey.txt" "$out/trace-rust.txt" | head -n 40
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
