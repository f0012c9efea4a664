#!/usr/bin/env bash
# Runs Valkey's own TCL suite, or the part of it that exercises the I/O
# threads, against built trees, in default mode and in --io-threads mode
# (runtest then starts every server with io-threads 2 and
# io-threads-always-active yes).
#
#   run-tcl-subset.sh [options] TREE...
#       runs against each tree in turn and prints, per tree and mode, how many
#       tests passed ([ok]), failed ([err]) and aborted the run ([exception]).
#   run-tcl-subset.sh [options] --compare C_TREE RUST_TREE
#       runs against both and lists, per mode, every test the C build passes
#       that the Rust build fails or never reaches. The units of such tests
#       that failed are run once more against the Rust build, and a test that
#       passes there is reported as flaky, not counted. Exits 1 if one is
#       left: the Rust build must fail no test the C build passes.
#
# Options:
#   --full          the whole suite (runtest's own list) instead of the subset
#   --units "U..."  these units instead of the subset (e.g. "unit/pause unit/multi")
#   --modes M,...   default, io-threads or both (the default: default,io-threads)
#   --clients N     runtest's parallel test clients (default 8)
#   --timeout S     runtest's per-test timeout in seconds (default 600)
#   --limit S       wall-clock limit for one run of runtest (default 2400 for the
#                   subset, 7200 for --full); a run cut short counts its
#                   unreached tests as missing
#   --out DIR       where logs go (default build/tcl)
#   --allow NAME    with --compare: a test the Rust build may fail where the C
#                   build passes, listed as [allowed] and not counted; for a
#                   difference the caller knows and explains (repeatable)
#   --reuse-baseline  with --compare: where OUT already holds a complete run of
#                   the C build in a mode (same OUT, same units), use it
#                   instead of running the C build again
#   -- ARGS         passed on to runtest (e.g. -- --tags -slow)
#
# Logs: OUT/NAME-MODE.log, where NAME is the tree's folder name without
# "valkey-". Each run also leaves OUT/NAME-MODE.ok and .err (one test name a
# line), which the comparison reads.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

# The subset: the units that drive client I/O, replies, blocking, eviction,
# pausing and replication, where the I/O threads do their work.
subset=(
    unit/io-threads
    unit/networking
    unit/introspection
    unit/obuf-limits
    unit/querybuf
    unit/pause
    unit/multi
    unit/type/list
    unit/shutdown
    unit/pubsub
    unit/protocol
    unit/tracking
    unit/auth
    unit/info
    unit/client-eviction
    integration/replication-4
    integration/block-repl
)

full=0
compare=0
reuse_baseline=0
allowed=()
modes=default,io-threads
clients=8
per_test_timeout=600
limit=
out=$build/tcl
units=()
extra=()
trees=()

say() { echo "run-tcl-subset: $*" >&2; }
die() { say "error: $*"; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
    --full) full=1; shift ;;
    --compare) compare=1; shift ;;
    --reuse-baseline) reuse_baseline=1; shift ;;
    --allow) allowed+=("$2"); shift 2 ;;
    --units) read -r -a units <<<"$2"; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --timeout) per_test_timeout=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -*) die "unknown option '$1'" ;;
    *) trees+=("$1"); shift ;;
    esac
done
[ ${#trees[@]} -gt 0 ] || die "name at least one built tree (e.g. build/valkey-c)"
[ $compare = 0 ] || [ ${#trees[@]} = 2 ] || die "--compare takes two trees: C_TREE RUST_TREE"
[ ${#units[@]} -gt 0 ] || units=("${subset[@]}")
[ -n "$limit" ] || { [ $full = 1 ] && limit=7200 || limit=2400; }
IFS=, read -r -a mode_list <<<"$modes"
for m in "${mode_list[@]}"; do
    case $m in default | io-threads) ;; *) die "unknown mode '$m' (default or io-threads)" ;; esac
done
command -v tclsh >/dev/null || die "tclsh not found (scripts/setup.sh installs tcl)"

for i in "${!trees[@]}"; do
    t=$(cd "${trees[$i]}" && pwd) || die "no tree at ${trees[$i]}"
    [ -x "$t/src/valkey-server" ] && [ -x "$t/src/valkey-cli" ] && [ -x "$t/src/valkey-benchmark" ] ||
        die "$t is not built: run scripts/build-valkey.sh"
    trees[$i]=$t
    if [ $full = 0 ]; then
        for u in "${units[@]}"; do
            [ -f "$t/tests/$u.tcl" ] || die "$t has no test unit $u"
        done
    fi
done
mkdir -p "$out"

name_of() { basename "$1" | sed 's/^valkey-//'; }

# One runtest run; leaves LOG, and .ok/.err lists of test names beside it
# (.err-units: name TAB unit). A third argument names the run (default: the
# tree's name and the mode); further ones are the units to run instead of
# the subset or the full suite.
run_one() {
    local tree=$1 mode=$2 base=$out/${3:-$(name_of "$1")-$2}
    local only=("${@:4}")
    local args=(--clients "$clients" --timeout "$per_test_timeout" --durable --dump-logs)
    [ "$mode" = io-threads ] && args+=(--io-threads)
    local u
    if [ ${#only[@]} -gt 0 ]; then
        for u in "${only[@]}"; do args+=(--single "$u"); done
    elif [ $full = 0 ]; then
        for u in "${units[@]}"; do args+=(--single "$u"); done
    fi
    args+=(${extra[@]+"${extra[@]}"})

    say "$(name_of "$tree") $mode: ./runtest ${args[*]} (log: $base.log)"
    local start=$SECONDS rc=0
    (cd "$tree" && timeout --kill-after=30 "$limit" ./runtest "${args[@]}") >"$base.log" 2>&1 </dev/null || rc=$?
    local elapsed=$((SECONDS - start))
    echo "$elapsed $rc" >"$base.time"

    # Test names, colours stripped: "[ok]: NAME (N ms)", "[err]: NAME in
    # tests/FILE.tcl". A server's or a test's output without a final newline
    # can run into the next line, so a status may follow a few stray
    # characters (never "[", nor the "*** " of the list of failures that
    # ends a run, which names each failed test a second time).
    sed 's/\x1b\[[0-9;]*m//g' "$base.log" >"$base.plain"
    sed -n 's/^[^[*]*\[ok\]: \(.*\) ([0-9]* ms)$/\1/p' "$base.plain" | sort >"$base.ok"
    sed -n 's/^[^[*]*\[err\]: \(.*\) in tests\/[^ ]*\.tcl$/\1/p' "$base.plain" | sort >"$base.err"
    sed -n 's/^[^[*]*\[err\]: \(.*\) in tests\/\([^ ]*\)\.tcl$/\1\t\2/p' "$base.plain" | sort >"$base.err-units"
}

# How one run ended: "complete", or why not.
run_state() {
    local base=$1 elapsed rc
    read -r elapsed rc <"$base.time"
    if grep -q '^\[TIMEOUT\]' "$base.plain"; then
        echo "TIMED OUT (a test ran past --timeout)"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "CUT SHORT at --limit $limit s"
    elif ! grep -q 'The End' "$base.plain"; then
        echo "ABORTED (rc $rc)"
    else
        echo "complete"
    fi
}

# One summary line for one run.
summarise() {
    local base=$out/$(name_of "$1")-$2
    local elapsed rc
    read -r elapsed rc <"$base.time"
    local ok err exc skip state
    ok=$(grep -c . "$base.ok" || true)
    err=$(grep -c '^[^[*]*\[err\]:' "$base.plain" || true)
    exc=$(grep -c '^[^[*]*\[exception\]:' "$base.plain" || true)
    skip=$(grep -c '^[^[*]*\[\(skip\|ignore\)\]:' "$base.plain" || true)
    state=$(run_state "$base")
    printf '%-12s %-10s %5d ok %4d err %3d exception %4d skipped  %5d s  %s\n' \
        "$(name_of "$1")" "$2" "$ok" "$err" "$exc" "$skip" "$elapsed" "$state"
    [ "$err" = 0 ] && [ "$exc" = 0 ] && [ "$state" = complete ]
}

what="subset (${#units[@]} units)"
[ $full = 1 ] && what="full suite"
say "$what, modes ${mode_list[*]}, --clients $clients, on $(nproc) CPUs"
for t in "${trees[@]}"; do
    for m in "${mode_list[@]}"; do
        base=$out/$(name_of "$t")-$m
        if [ $reuse_baseline = 1 ] && [ "$t" = "${trees[0]}" ] && [ -f "$base.time" ] &&
            [ -f "$base.plain" ] && [ "$(run_state "$base")" = complete ]; then
            say "$(name_of "$t") $m: reusing the complete run in $base.log"
            continue
        fi
        run_one "$t" "$m"
    done
done

echo
echo "TCL $what: per tree and mode"
all_clean=1
for t in "${trees[@]}"; do
    for m in "${mode_list[@]}"; do summarise "$t" "$m" || all_clean=0; done
done

if [ $compare = 0 ]; then
    [ $all_clean = 1 ]
    exit
fi

# The C build's runs are the baseline: one that did not complete, or passed
# nothing, leaves nothing to compare against (a port taken by another suite,
# a broken tree), and the comparison must fail rather than pass vacuously.
for m in "${mode_list[@]}"; do
    base=$out/$(name_of "${trees[0]}")-$m
    state=$(run_state "$base")
    if [ "$state" != complete ] || [ ! -s "$base.ok" ]; then
        echo
        echo "compare: no baseline: the C build's $m run is $state with $(grep -c . "$base.ok" || true) tests passed (log: $base.log)"
        exit 1
    fi
done

# Tests the C build passes and the Rust build does not, counted by name: a
# name that passes twice in C (two units may share it) must pass twice here.
echo
echo "Tests the C build passes and the Rust build does not:"
regressions=0
c_name=$(name_of "${trees[0]}")
rust_name=$(name_of "${trees[1]}")
for m in "${mode_list[@]}"; do
    c=$out/$c_name-$m
    r=$out/$rust_name-$m
    lost=$(comm -23 "$c.ok" "$r.ok")
    if [ -z "$lost" ]; then
        echo "  $m: none"
        continue
    fi

    # The units where such a test failed, run once more against Rust.
    retry_units=()
    while IFS= read -r test; do
        unit=$(awk -F'\t' -v t="$test" '$1 == t { print $2; exit }' "$r.err-units")
        [ -n "$unit" ] && [[ " ${retry_units[*]-} " != *" $unit "* ]] && retry_units+=("$unit")
    done <<<"$lost"
    : >"$r-retry.ok"
    if [ ${#retry_units[@]} -gt 0 ]; then
        run_one "${trees[1]}" "$m" "$rust_name-$m-retry" "${retry_units[@]}"
    fi

    # In a Rust run that completed with no exception, every unit ran to its
    # end and every failure is an [err] line: a C test whose name never
    # occurs there did not run under that name. Some names hold a random
    # value ("cluster is consistent after load (x = 4963)", "Restarting node
    # #7") and some loops run for a fixed time (integration/psync2 repeats
    # its cycles for 40 s), so the names differ from run to run.
    rust_complete=0
    if [ "$(run_state "$r")" = complete ] && ! grep -q '^[^[*]*\[exception\]:' "$r.plain"; then
        rust_complete=1
    fi
    not_seen=0

    echo "  $m:"
    while IFS= read -r test; do
        if printf '%s\n' ${allowed[@]+"${allowed[@]}"} | grep -qxF -- "$test"; then
            echo "    [allowed]  $test (a known difference the caller explains)"
            continue
        elif grep -qxF -- "$test" "$r-retry.ok"; then
            echo "    [flaky]    $test (failed, then passed when its unit ran again)"
            continue
        elif grep -qxF -- "$test" "$r.err"; then
            echo "    [err]      $test"
        elif [ $rust_complete = 1 ]; then
            not_seen=$((not_seen + 1))
            continue
        else
            echo "    [not run]  $test"
        fi
        regressions=$((regressions + 1))
    done <<<"$lost"
    if [ $not_seen -gt 0 ]; then
        echo "    ($not_seen C test names do not occur in the Rust build's complete run, which"
        echo "     failed none of them: random or time-bounded names; list: comm -23 $c.ok $r.ok)"
    fi
    gained=$(comm -13 "$c.ok" "$r.ok" | grep -c . || true)
    [ "$gained" = 0 ] || echo "    ($gained tests pass in Rust only)"
done
echo
if [ $regressions = 0 ]; then
    echo "compare: the Rust build fails no test the C build passes"
else
    echo "compare: $regressions test(s) pass in C and not in Rust (logs in $out)"
    exit 1
fi
