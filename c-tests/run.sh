#!/usr/bin/env bash
# Runs both builds of the ring tests and checks that they observed the same
# results and that our library exports every function queues.c defines, then
# prints the total as "N passed, N failed" (the last line). The layout check
# has already passed when this runs: it is a compile step.
#   usage: run.sh OUT_DIR VALKEY_QUEUES_O IOCORE_SO
set -uo pipefail

out=$1
queues_o=$2
iocore_so=$3
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

functions() { nm "$@" | awk '$2 == "T" { print $3 }' | sort; }
missing=$(comm -23 <(functions -g --defined-only "$queues_o") <(functions -D --defined-only "$iocore_so"))
if [ -z "$missing" ]; then
    echo "c-tests: $(basename "$iocore_so") exports all $(functions -g --defined-only "$queues_o" | wc -l) functions queues.c defines"
    passed=$((passed + 1))
else
    echo "c-tests: $(basename "$iocore_so") lacks functions queues.c defines:" $missing
    failed=$((failed + 1))
fi
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
