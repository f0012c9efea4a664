#!/usr/bin/env bash
# Crashes a loaded valkey-server on purpose and checks that it dies the way
# Valkey dies: promptly, with its crash report in the log, and with the exit
# status of the fatal path taken.
#
# For each tree and each of DEBUG SEGFAULT and DEBUG PANIC: starts
# valkey-server on a free loopback port with four I/O threads kept active,
# puts the workers to work with a bounded valkey-benchmark load, sends the
# DEBUG command while the load runs, and times the server's exit. The crash
# report runs on the main thread while the workers are busy: it collects
# every thread's stack by signal, logs INFO (which asks the core for each
# worker's active time) and kills the I/O threads (killIOThreads) before the
# memory test, so a core that is slow to stop or answer shows in the time.
#
# A run passes when the server exits within the deadline (it is killed with
# SIGKILL otherwise), by the signal its path ends in (SIGSEGV re-raised after
# the segfault report, SIGABRT from the panic's abort()), and its log holds
# Valkey's markers for that path (debug.c):
#
#   both       "=== VALKEY BUG REPORT START", "------ STACK TRACE ------",
#              "=== VALKEY BUG REPORT END"
#   SEGFAULT   "crashed by signal: 11"
#   PANIC      "Guru Meditation: DEBUG PANIC called"
#
# Informational, not judged: how many threads' stacks the report collected
# ("N/M expected stacktraces"; a thread that does not answer costs the
# collector its 2 s timeout) and how many reads the I/O threads had done
# when the command went out.
#
# usage: scripts/crash-test.sh [TREE...]   (default build/valkey-c build/valkey-rust)
#   RUNS=N          runs per tree and command (default 1)
#   EXIT_DEADLINE   seconds the server has to exit after the command (default 30)
#   COMMANDS        DEBUG subcommands to send (default "SEGFAULT PANIC")
#   KEEP_LOGS=1     keep each run's directory (log, benchmark output); a
#                   failed run's is always kept
# Prints one line per run, a table of the times side by side, and last
# "N passed, N failed"; non-zero exit on any failure.
set -uo pipefail

cd "$(dirname "$0")/.."
trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=(build/valkey-c build/valkey-rust)
runs=${RUNS:-1}
deadline_s=${EXIT_DEADLINE:-30}
read -r -a commands <<<"${COMMANDS:-SEGFAULT PANIC}"

passed=0
failed=0
declare -A times # "tree command" -> space-separated seconds

now_ns() { date +%s%N; }

# A loopback port nothing listens on, from the kernel when python3 is there.
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
        return
    fi
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
    echo 0
}

# Starts server $1 in the background with arguments $3..., writing its pid
# to $2/pid and, once it has exited, its exit status (as the shell reports
# it: 128 + the signal for a signal) to $2/status. It runs under a subshell
# whose stderr is discarded, which keeps bash's "Segmentation fault" job
# notice out of the output; the server logs to its log file.
start_server() {
    local server=$1 dir=$2
    shift 2
    rm -f "$dir/pid" "$dir/status"
    (
        "$server" "$@" 2>"$dir/server.stderr" &
        echo $! >"$dir/pid.new"
        mv "$dir/pid.new" "$dir/pid"
        wait $!
        echo $? >"$dir/status"
    ) 2>/dev/null &
    while [ ! -s "$dir/pid" ]; do sleep 0.01; done
}

# Whether process $1 has exited (a zombie counts: kill -0 alone would still
# see it).
has_exited() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ]
}

# The name of the signal behind a shell exit status above 128.
status_name() {
    if [ "$1" -gt 128 ]; then
        echo "$1 (SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo "?"))"
    else
        echo "$1"
    fi
}

# One run: tree $1, DEBUG subcommand $2. Prints its line; returns non-zero
# on failure. Leaves the seconds to exit in $run_seconds.
crash_once() {
    local tree=$1 command=$2
    local src=$tree/src name dir port pid bench_pid
    name=$(basename "$tree")
    dir=$(mktemp -d)
    run_seconds=-

    local server_args=(--bind 127.0.0.1 --dir "$dir" --io-threads 4 --io-threads-always-active yes
        --enable-debug-command yes --save "" --appendonly no --logfile "$dir/log")
    local up=0
    for _ in 1 2 3; do # a port taken between the choice and the bind: try another
        port=$(free_port)
        start_server "$src/valkey-server" "$dir" --port "$port" "${server_args[@]}"
        pid=$(cat "$dir/pid")
        for _ in $(seq 100); do
            [ "$("$src/valkey-cli" -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && {
                up=1
                break
            }
            has_exited "$pid" && break
            sleep 0.05
        done
        [ $up = 1 ] && break
        kill -9 "$pid" 2>/dev/null
        wait
    done
    if [ $up = 0 ]; then
        echo "FAIL $name DEBUG $command: the server did not start; log:"
        tail -n 20 "$dir/log" 2>/dev/null | sed 's/^/    /'
        rm -rf "$dir"
        return 1
    fi
    local cli=("$src/valkey-cli" -h 127.0.0.1 -p "$port")

    # The load: bounded, and cut short by the crash.
    timeout 120 "$src/valkey-benchmark" -h 127.0.0.1 -p "$port" -c 50 -P 16 -t set,get \
        -n 5000000 -q >"$dir/bench.txt" 2>&1 &
    bench_pid=$!
    sleep 1
    local reads
    reads=$("${cli[@]}" info stats 2>/dev/null | tr -d '\r' |
        sed -n 's/^io_threaded_reads_processed://p')

    # Timed from just before valkey-cli starts: its start-up (a few ms) is
    # in the figure, the same for every tree.
    local start end status
    start=$(now_ns)
    # In the background: its connection stays open until the server dies.
    timeout "$((deadline_s + 5))" "${cli[@]}" debug "${command,,}" >"$dir/cli.txt" 2>&1 &
    local killed=0
    while ! has_exited "$pid"; do
        if [ $((($(now_ns) - start) / 1000000000)) -ge "$deadline_s" ]; then
            kill -9 "$pid" 2>/dev/null
            killed=1
            break
        fi
        sleep 0.01
    done
    end=$(now_ns)
    kill "$bench_pid" 2>/dev/null
    wait
    status=$(cat "$dir/status" 2>/dev/null)
    [ -n "$status" ] || status=255

    local ms=$(((end - start) / 1000000))
    run_seconds=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))

    # The markers of the path taken, and the status it ends with.
    local markers=("=== VALKEY BUG REPORT START" "------ STACK TRACE ------"
        "=== VALKEY BUG REPORT END") want_status
    if [ "$command" = SEGFAULT ]; then
        markers+=("crashed by signal: 11")
        want_status=$((128 + 11))
    else
        markers+=("Guru Meditation: DEBUG PANIC called")
        want_status=$((128 + 6))
    fi
    local found=() missing=()
    for marker in "${markers[@]}"; do
        if grep -qF -- "$marker" "$dir/log"; then
            found+=("\"$marker\"")
        else
            missing+=("\"$marker\"")
        fi
    done
    local stacks
    stacks=$(grep -o '[0-9]*/[0-9]* expected stacktraces' "$dir/log" | head -n 1 | cut -d' ' -f1)

    local why=()
    [ $killed = 1 ] && why+=("still running ${deadline_s} s after the command; killed")
    [ $killed = 0 ] && [ "$status" -ne "$want_status" ] &&
        why+=("exit status $(status_name "$status"), expected $(status_name "$want_status")")
    [ ${#missing[@]} -gt 0 ] && why+=("log lacks ${missing[*]}")

    local facts="ended ${run_seconds} s after the command, status $(status_name "$status"),"
    facts+=" stacks ${stacks:-none}, I/O-thread reads before the command ${reads:-?}"
    local ok=0
    if [ ${#why[@]} -eq 0 ]; then
        echo "ok $name DEBUG $command: $facts"
        echo "    markers: ${found[*]}"
    else
        local joined
        joined=$(printf '%s; ' "${why[@]}")
        echo "FAIL $name DEBUG $command: ${joined%; }"
        echo "    $facts"
        echo "    log tail:"
        tail -n 15 "$dir/log" | sed 's/^/      /'
        ok=1
    fi
    if [ "${KEEP_LOGS:-0}" = 1 ] || [ $ok != 0 ]; then echo "    kept: $dir"; else rm -rf "$dir"; fi
    return $ok
}

for tree in "${trees[@]}"; do
    if [ ! -x "$tree/src/valkey-server" ]; then
        echo "FAIL $(basename "$tree"): no $tree/src/valkey-server"
        failed=$((failed + 1))
        continue
    fi
    for command in "${commands[@]}"; do
        for _ in $(seq "$runs"); do
            if crash_once "$tree" "$command"; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
            fi
            times["$tree $command"]+="$run_seconds "
        done
    done
done

# Seconds from the command to the exit, side by side.
printf '\n%-16s' "seconds to exit"
for tree in "${trees[@]}"; do printf '  %-24s' "$(basename "$tree")"; done
printf '\n'
for command in "${commands[@]}"; do
    printf '%-16s' "DEBUG $command"
    for tree in "${trees[@]}"; do printf '  %-24s' "${times["$tree $command"]:-}"; done
    printf '\n'
done
printf '\n'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
