#!/usr/bin/env bash
# Runs each build of the entry-point tests and prints the total as
# "N passed, N failed" (the last line); non-zero exit on any failure.
#   usage: entry-points.sh BINARY...
# Each binary ends a hung check itself (alarm); the timeout here only stops
# one that hangs before its first check, in Valkey's start-up.
set -uo pipefail

passed=0
failed=0

for binary in "$@"; do
    name=$(basename "$binary")
    log=$binary.log
    echo "entry-points: $name"
    timeout 900 "$binary" | tee "$log"
    status=${PIPESTATUS[0]}
    ok=0 bad=0
    if [[ $(tail -n 1 "$log") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        ok=${BASH_REMATCH[1]}
        bad=${BASH_REMATCH[2]}
    fi
    # A crash, or a failing exit with no failure reported, counts as one more.
    if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "entry-points: $name exited with status $status"
        bad=1
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
