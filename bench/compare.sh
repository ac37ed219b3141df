#!/usr/bin/env bash
# Throughput of direct memcached, twemproxy (nutcracker) and Switchyard under the same load, in
# one run, on this machine:
#
#   three memcached on free loopback ports
#   nutcracker   in front of them: distribution ketama, hash md5
#   switchyard   in front of them: a ketama pool (release build)
#
# memcaslap (libmemcached-tools) drives each in turn with the same settings (default:
# `-T 1 -c 32 -t 10s -X 64`, 90% get / 10% set); the servers are flushed between runs. Prints
# each TPS and the ratios Switchyard/direct and Switchyard/nutcracker.
#
# Environment: DURATION (10s), CONCURRENCY (32), VALUE_SIZE (64), SWITCHYARD_WORKERS (1: the
# same single thread nutcracker has; on a two-core machine memcaslap needs the other core).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
VALUE_SIZE=${VALUE_SIZE:-64}
WORKERS=${SWITCHYARD_WORKERS:-1}

for tool in memcached nutcracker memcaslap cargo; do
    command -v "$tool" >/dev/null || {
        echo "compare: $tool is not installed (memcached, nutcracker, libmemcached-tools)" >&2
        exit 1
    }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Whether something accepts TCP connections on 127.0.0.1:$1.
accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A loopback port nothing listens on right now (a start that loses a race just retries).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        accepts "$port" || {
            echo "$port"
            return
        }
    done
}

# Polls until 127.0.0.1:$1 accepts (10 s at most) while process $2 lives.
wait_ready() {
    local port=$1 pid=$2 deadline=$((SECONDS + 10))
    until accepts "$port"; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.02
    done
}

# Runs "$@" in the background with PORT set to a free port, until it listens there; sets
# STARTED_PORT. $1 names it in errors; "$@" is a function that reads $PORT and execs.
start() {
    local name=$1 attempt pid
    shift
    for attempt in 1 2 3 4 5; do
        PORT=$(free_port)
        "$@" &
        pid=$!
        if wait_ready "$PORT" "$pid"; then
            pids+=("$pid")
            STARTED_PORT=$PORT
            return
        fi
        kill "$pid" 2>/dev/null || true
    done
    echo "compare: $name did not start" >&2
    exit 1
}

flush_all() {
    local port reply
    for port in "${memcached_ports[@]}"; do
        exec 3<>"/dev/tcp/127.0.0.1/$port"
        printf 'flush_all\r\n' >&3
        read -r reply <&3
        exec 3>&-
        [[ $reply == OK* ]] || {
            echo "compare: flush_all on $port: $reply" >&2
            exit 1
        }
    done
}

echo "building switchyard (release)..." >&2
cargo build --release --quiet -p switchyard
switchyard=target/release/switchyard

start_memcached() {
    # -u nobody: memcached refuses to run as root without it (and ignores it otherwise).
    exec memcached -U 0 -l 127.0.0.1 -p "$PORT" -u nobody -t 1 -m 256
}
memcached_ports=()
for _ in 1 2 3; do
    start memcached start_memcached
    memcached_ports+=("$STARTED_PORT")
done
servers_csv=$(printf '127.0.0.1:%s,' "${memcached_ports[@]}")
servers_csv=${servers_csv%,}

start_nutcracker() {
    {
        echo "bench:"
        echo "  listen: 127.0.0.1:$PORT"
        echo "  hash: md5"
        echo "  distribution: ketama"
        echo "  auto_eject_hosts: false"
        echo "  timeout: 1000"
        echo "  servers:"
        printf '   - 127.0.0.1:%s:1\n' "${memcached_ports[@]}"
    } >"$tmp/nutcracker.yml"
    exec nutcracker -c "$tmp/nutcracker.yml" -o "$tmp/nutcracker.log" -p "$tmp/nutcracker.pid" \
        -a 127.0.0.1 -s "$(free_port)"
}
start nutcracker start_nutcracker
nutcracker_port=$STARTED_PORT

start_switchyard() {
    {
        echo "[server]"
        echo "workers = $WORKERS"
        echo "[[listeners]]"
        echo "address = \"127.0.0.1:$PORT\""
        echo "route = \"main\""
        echo "[pools.main]"
        echo "servers = [$(printf '"127.0.0.1:%s:1", ' "${memcached_ports[@]}")]"
        echo "hash = { plugin = \"ketama\" }"
    } >"$tmp/switchyard.toml"
    SWITCHYARD_LOG=${SWITCHYARD_LOG:-warn} exec "$switchyard" --config "$tmp/switchyard.toml" \
        2>"$tmp/switchyard.log"
}
start switchyard start_switchyard
switchyard_port=$STARTED_PORT

# Runs memcaslap against $2 and prints its TPS; its whole output goes to $tmp/$1.out.
measure() {
    local name=$1 servers=$2 out tps
    flush_all
    echo "memcaslap -s $servers -T 1 -c $CONCURRENCY -t $DURATION -X $VALUE_SIZE  ($name)" >&2
    out=$(memcaslap -s "$servers" -T 1 -c "$CONCURRENCY" -t "$DURATION" -X "$VALUE_SIZE" 2>&1)
    echo "$out" >"$tmp/$name.out"
    # Its last line: "Run time: 10.0s Ops: 1234567 TPS: 123456 Net_rate: 12.3M/s"
    tps=$(sed -n 's/^Run time: .* TPS: \([0-9][0-9]*\) .*/\1/p' <<<"$out" | tail -n1)
    if [[ -z $tps ]]; then
        echo "compare: no TPS in memcaslap's output for $name:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$tps"
}

direct=$(measure direct "$servers_csv")
twemproxy=$(measure nutcracker "127.0.0.1:$nutcracker_port")
ours=$(measure switchyard "127.0.0.1:$switchyard_port")

misses() {
    sed -n 's/^get_misses: //p' "$tmp/$1.out" | tail -n1
}

echo
echo "memcaslap -T 1 -c $CONCURRENCY -t $DURATION -X $VALUE_SIZE; $(nproc) cores; switchyard workers: $WORKERS"
printf '%-34s %10s %12s\n' target TPS get_misses
printf '%-34s %10s %12s\n' "memcached direct (3 servers)" "$direct" "$(misses direct)"
printf '%-34s %10s %12s\n' "nutcracker (ketama/md5)" "$twemproxy" "$(misses nutcracker)"
printf '%-34s %10s %12s\n' "switchyard (ketama plugin)" "$ours" "$(misses switchyard)"
awk -v s="$ours" -v d="$direct" -v n="$twemproxy" 'BEGIN {
    printf "switchyard / direct:     %.2f\n", s / d
    printf "switchyard / nutcracker: %.2f\n", s / n
}'
