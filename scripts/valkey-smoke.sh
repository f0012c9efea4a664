#!/usr/bin/env bash
# Starts each tree's valkey-server on the loopback with two I/O threads kept
# active, pushes a bounded valkey-benchmark load through it, checks that the
# I/O threads did reads and writes and the server still answers, and shuts
# it down.
# A quick proof that a build runs, before the TCL suite.
#
# usage: scripts/valkey-smoke.sh TREE...   (e.g. build/valkey-rust-shared)
set -euo pipefail

port=${SMOKE_PORT:-23111}
status=0

for tree in "$@"; do
    name=$(basename "$tree" | sed 's/^valkey-//')
    src=$(cd "$tree/src" && pwd)
    dir=$(mktemp -d)
    core=$(ldd "$src/valkey-server" | awk '$1 == "libvalkey_iocore.so" { print $3 }')
    echo "smoke $name: $src/valkey-server${core:+ with $core}"

    "$src/valkey-server" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
        --io-threads 2 --io-threads-always-active yes --logfile "$dir/server.log" &
    pid=$!
    cli=("$src/valkey-cli" -h 127.0.0.1 -p "$port")
    for _ in $(seq 50); do
        [ "$("${cli[@]}" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done

    ok=1
    if ! timeout 120 "$src/valkey-benchmark" -h 127.0.0.1 -p "$port" -t set,get,lpush,lpop -n 20000 -c 20 -P 4 -q \
        >"$dir/bench.txt" 2>&1; then
        ok=0
    fi
    sed 's/^/    /' "$dir/bench.txt" | tr '\r' '\n' | grep -v '^ *$' | grep -v 'rps=' || true
    info=$("${cli[@]}" info | tr -d '\r')
    reads=$(sed -n 's/^io_threaded_reads_processed://p' <<<"$info")
    writes=$(sed -n 's/^io_threaded_writes_processed://p' <<<"$info")
    [ "$("${cli[@]}" ping 2>/dev/null)" = PONG ] || ok=0
    [ "${reads:-0}" -gt 0 ] && [ "${writes:-0}" -gt 0 ] || ok=0
    "${cli[@]}" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" || true

    if [ $ok = 1 ]; then
        echo "smoke $name: ok (I/O threads did $reads reads, $writes writes)"
    else
        echo "smoke $name: FAILED (I/O threads did ${reads:-?} reads, ${writes:-?} writes); server log:"
        tail -n 30 "$dir/server.log" | sed 's/^/    /'
        status=1
    fi
    rm -rf "$dir"
done
exit $status
