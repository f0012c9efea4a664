#!/usr/bin/env bash
# Runs both builds of rings_bench alternately, round after round, and writes
# a markdown table of medians and Rust/C ratios (also printed).
#   usage: run-rings.sh BIN_DIR ROUNDS RESULT.md
#
# Within a round each scenario runs once per build, back to back, so drift
# in the machine (frequency, neighbours on a VM) hits both alike; the order
# flips every round (A B, B A, ...) so neither build always goes first.
set -euo pipefail

bin=$1
rounds=$2
result=$3
rust=$bin/rings_bench-rust
valkey=$bin/rings_bench-valkey
raw=${result%.md}-raw.tsv

mkdir -p "$(dirname "$result")"

# Two runs at once would slow each other down and mix their figures, so a
# second run waits for the first.
exec 9>"$(dirname "$result")/.rings.lock"
if ! flock -n 9; then
    echo "run-rings: waiting for another bench-rings run to finish" >&2
    flock 9
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
scenarios=$("$rust" --list)
read -r cpu_main cpu_other0 cpu_other1 < <("$rust" --cpus)

: >"$raw.part"
for round in $(seq 1 "$rounds"); do
    for s in $scenarios; do
        if [ $((round % 2)) -eq 1 ]; then order="rust valkey"; else order="valkey rust"; fi
        for build in $order; do
            exe=$rust
            [ "$build" = valkey ] && exe=$valkey
            read -r name value < <("$exe" "$s")
            printf '%s\t%s\t%s\t%s\n' "$round" "$build" "$name" "$value" >>"$raw.part"
        done
    done
    echo "run-rings: round $round of $rounds done" >&2
done

mv "$raw.part" "$raw"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# Instructions per item of each exported function, counted by callgrind on
# the call-* scenarios: exact and unmoved by whatever else the machine runs.
instructions_table() {
    local items=64000 counted=70400 # warm-up 64000/10, then 10 x 64000/10
    local dir
    dir=$(mktemp -d)
    for s in call-spmc call-mpsc call-spsc; do
        for build in valkey rust; do
            valgrind --tool=callgrind --callgrind-out-file="$dir/$build-$s" \
                "$bin/rings_bench-$build" "$s" "$items" >/dev/null 2>&1
            # Self cost by function name, summed over source files: in the
            # Rust build inlined code is charged to the exported function.
            callgrind_annotate --threshold=100 "$dir/$build-$s" 2>/dev/null |
                awk -v build="$build" -v items="$counted" '
                    /^ *[0-9,]+ \(/ {
                        fn = $0; sub(/^[^)]*\) +/, "", fn); sub(/ \[.*/, "", fn); sub(/.*:/, "", fn)
                        if (fn !~ /^(spmc|mpsc|spsc)[A-Z][A-Za-z]*$/) next
                        n = $1; gsub(/,/, "", n); ir[fn] += n
                    }
                    END { for (fn in ir) if (fn !~ /Init|Free/) printf "%s\t%s\t%.1f\n", fn, build, ir[fn] / items }'
        done
    done | sort -t"$(printf '\t')" -k1,1 -s >"$dir/ir.tsv"
    echo "| function | C instructions/item | Rust instructions/item | Rust - C |"
    echo "|---|---:|---:|---:|"
    awk -F'\t' '{ v[$1, $2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
        END { for (i = 1; i <= n; i++) { f = order[i]
            printf "| %s | %.1f | %.1f | %+.1f |\n", f, v[f, "valkey"], v[f, "rust"], v[f, "rust"] - v[f, "valkey"] } }' \
        "$dir/ir.tsv"
    rm -rf "$dir"
}

{
    echo "# Ring benchmarks: valkey-iocore (Rust) against Valkey 9.1.2's queues.c"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- load average (1, 5, 15 min): $load_start at the start, $load_end at the end"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r)"
    echo "- C compiler: $(${CC:-cc} --version | head -n1)"
    echo "- Rust: $(rustc --version 2>/dev/null || echo unknown), release profile of Cargo.toml"
    echo "- queues.c flags: ${VALKEY_CFLAGS:-?} (no LTO, like our library)"
    echo "- harness flags (both builds): ${BENCH_CFLAGS:-?}"
    echo "- threads: the ring's single side on CPU $cpu_main; the other side on CPU $cpu_other0 (first) and CPU $cpu_other1 (second)"
    echo "- $rounds rounds, builds alternating within each round; each run warms up, then reports the best of 10 repetitions"
    echo
    echo "| scenario | unit | C median | Rust median | speed Rust/C | Rust/C per round (min..max) | |"
    echo "|---|---|---:|---:|---:|---|---|"
    awk -F'\t' -v order="$scenarios" '
        function median(list,    n, a, i, j, t) {
            n = split(list, a, " ")
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        { v[$3, $2, $1] = $4; if ($1 > rounds) rounds = $1 }
        END {
            n = split(order, names, "\n")
            for (k = 1; k <= n; k++) {
                s = names[k]; time = s !~ /^tput-/ # a time: lower is better
                c = r = ""; lo = 1e300; hi = 0
                for (i = 1; i <= rounds; i++) {
                    if (!((s, "rust", i) in v) || !((s, "valkey", i) in v)) continue
                    c = c " " v[s, "valkey", i]; r = r " " v[s, "rust", i]
                    # Speed ratio: items/s Rust over C, or time C over Rust.
                    q = time ? v[s, "valkey", i] / v[s, "rust", i] : v[s, "rust", i] / v[s, "valkey", i]
                    if (q < lo) lo = q; if (q > hi) hi = q
                }
                mc = median(c); mr = median(r)
                ratio = time ? mc / mr : mr / mc
                verdict = hi < 0.98 ? "Rust slower" : lo > 1.02 ? "Rust faster" : "within noise"
                if (s ~ /^call-/) { unit = "ns/item"; fc = sprintf("%.2f", mc); fr = sprintf("%.2f", mr) }
                else if (time) { unit = "ns/round trip"; fc = sprintf("%.0f", mc); fr = sprintf("%.0f", mr) }
                else { unit = "M items/s"; fc = sprintf("%.2f", mc / 1e6); fr = sprintf("%.2f", mr / 1e6) }
                printf "| %s | %s | %s | %s | %.2f | %.2f..%.2f | %s |\n", s, unit, fc, fr, ratio, lo, hi, verdict
            }
        }' "$raw"
    echo
    echo "tput-X-NpMc: items/s through ring X with N producers and M consumers,"
    echo "from the first push to the last item taken. spsc-batch32 commits every"
    echo "32nd push (spscIsFull publishes the rest), spsc-commit1 every push."
    echo "rtt-X: median time for one item to go from the main thread to a worker"
    echo "and back, each way through a ring of kind X, one item in flight."
    echo "call-X: nanoseconds per item (one push, one pop) in bursts of 32 (16"
    echo "for MPSC) on one thread: the calls' own cost, no cache-line transfers."
    echo "speed Rust/C: Rust's items/s over C's, or C's time over"
    echo "Rust's, from the medians; above 1 means Rust is faster. The verdict is"
    echo "\"slower\" or \"faster\" only when every round agrees by more than 2%."
    echo "Where two threads share a CPU, the figures mostly measure the"
    echo "scheduler's hand-over between them, not the ring."
    echo
    echo "Raw figures: $(basename "$raw")."
    if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
        echo
        echo "## Instructions per item (callgrind, call-* scenarios)"
        echo
        instructions_table
        echo
        echo "Per item: a batch call (mpscDequeueBatch, 16 items; spscDequeueBatch,"
        echo "32 items) is divided among the items it moves."
    fi
} >"$result"

cat "$result"
