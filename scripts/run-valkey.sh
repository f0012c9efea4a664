#!/usr/bin/env bash
# Starts the Valkey 9.1.2 server built on valkey-iocore (build/valkey-rust,
# made by `scripts/build-valkey.sh rust`) in the foreground, with four I/O
# threads, and says how to connect. Ctrl-C stops it.
#
# usage: scripts/run-valkey.sh [VALKEY-SERVER OPTIONS...]
#   RUN_PORT   the port (default 6379); RUN_IO_THREADS the thread count (4).
#   Further options go to valkey-server as they are, e.g. --io-threads 2.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
src=$build/valkey-rust/src
port=${RUN_PORT:-6379}
threads=${RUN_IO_THREADS:-4}

[ -x "$src/valkey-server" ] || {
    echo "run-valkey: $src/valkey-server is not built (make run builds it)" >&2
    exit 1
}
dir=$build/run
mkdir -p "$dir"

cat >&2 <<EOF
run-valkey: Valkey 9.1.2 on the Rust I/O-threads core, io-threads $threads
run-valkey: server  $src/valkey-server (data and log in $dir)
run-valkey: connect with
    $src/valkey-cli -p $port
run-valkey: e.g. '$src/valkey-cli -p $port info threads', or load it with
    $src/valkey-benchmark -p $port -t set,get -n 100000 -c 50
run-valkey: Ctrl-C stops the server.
EOF

exec "$src/valkey-server" --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --save "" --appendonly no --io-threads "$threads" "$@"
