#!/usr/bin/env bash
# Load-test larder on loopback: starts the origin example, the relay-floor example and
# larder, then runs wrk (1) straight at the origin (the ceiling), (2) through the blind
# TCP relay (the floor of any proxy's pass-through cost), (3) through larder with
# `no-store` responses (pass-through: every request goes to the origin), (4) through
# larder with cacheable responses (hits, once the second request stored the object),
# (5) the same pipelined; and prints req/s and latency for each, the CPU time the
# server wrk talks to (origin, relay or larder) spent per request, each rate over the
# origin's, larder's pass-through over the relay's, and larder's RSS. CPU time per
# request hardly depends on what else the machine runs; the rates do.
#
#   tools/loadtest.sh                       # 8 s per run, 64 connections, 1 KiB bodies
#   DURATION=3 CONNS=256 SIZE=262144 tools/loadtest.sh
#
# Settings (environment):
#   DURATION     seconds per wrk run (default 8)
#   CONNS        wrk connections (default 64)
#   SIZE         response body bytes (default 1024)
#   PORTS        "ORIGIN_PORT LARDER_PORT RELAY_PORT" on 127.0.0.1 (default
#                "19080 19081 19082"; without the third, LARDER_PORT + 1)
#   DEPTH        requests per pipelined batch (default 16)
#   LARDER       larder binary (default target/release/larder, built if missing)
#   LARDER_ARGS  extra larder flags, split on spaces (default none; without a
#                --cache-dir the cache lives in the run's temporary directory)
#
# With 2+ CPUs the origin, the relay and larder share CPU 1 and wrk (one thread) runs on
# CPU 0, so that the proxy's cost shows against the origin's on the same core.
# Everything started here is stopped on exit, by PID.
set -euo pipefail

DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
SIZE=${SIZE:-1024}
PORTS=${PORTS:-19080 19081 19082}
DEPTH=${DEPTH:-16}
LARDER_ARGS=${LARDER_ARGS:-}

TOOL=loadtest
# shellcheck source=tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RELAY=$TARGET_DIR/release/examples/relay-floor

read -r ORIGIN_PORT LARDER_PORT RELAY_PORT _ <<<"$PORTS"
if [[ -z ${RELAY_PORT:-} && ${LARDER_PORT:-} =~ ^[0-9]+$ ]]; then RELAY_PORT=$((LARDER_PORT + 1)); fi
for v in DURATION CONNS SIZE DEPTH ORIGIN_PORT LARDER_PORT RELAY_PORT; do
  [[ ${!v:-} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v:-}')"
done
command -v wrk >/dev/null || die "wrk not found: install it (Debian/Ubuntu: apt-get install wrk)"
command -v timeout >/dev/null || die "timeout not found: install coreutils"

# Connect succeeds only if something already listens there.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$ORIGIN_PORT" "$LARDER_PORT" "$RELAY_PORT"; do
  if port_busy "$p"; then die "port $p is in use; pick others with PORTS=\"ORIGIN LARDER RELAY\""; fi
done

SERVER_PIN=()
CLIENT_PIN=()
if [[ $(nproc 2>/dev/null || echo 1) -ge 2 ]]; then
  if command -v taskset >/dev/null; then
    SERVER_PIN=(taskset -c 1)
    CLIENT_PIN=(taskset -c 0)
  else
    echo "loadtest: taskset not found (util-linux): running unpinned" >&2
  fi
fi
# Many connections need many fds on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd "$ROOT"
command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup.rs)"
echo "== building (release)"
cargo build --release --quiet --example origin --example relay-floor
if [[ ! -x $LARDER ]]; then
  cargo build --release --quiet --bin larder
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/larder-loadtest.XXXXXX")
ORIGIN_PID=
LARDER_PID=
RELAY_PID=
WRK_PID=

stop() { stop_within "$1" 5; }

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && $rc -ne 130 ]]; then
    for log in "$WORK"/origin.log "$WORK"/larder.log; do
      if [[ -s $log ]]; then
        echo "--- tail of $(basename "$log")"
        tail -n 20 "$log"
      fi
    done
  fi
  stop "$WRK_PID"
  stop "$LARDER_PID"
  stop "$RELAY_PID"
  stop "$ORIGIN_PID"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_line() { wait_line_within "$1" "$2" "$3" 10; }

rss() { awk '/^VmRSS:/ { print $2, $3 }' "/proc/$1/status" 2>/dev/null || echo "?"; }

# The PIDs recorded are the servers' own: taskset execs them in place.
"${SERVER_PIN[@]}" "$ORIGIN" --listen "127.0.0.1:$ORIGIN_PORT" --size "$SIZE" \
  >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
wait_line "$ORIGIN_PID" "$WORK/origin.log" "origin listening on"

# A cache of its own, so that a run neither touches nor is refused by the user's cache
# (one larder per cache file).
CACHE_ARGS=(--cache-dir "$WORK/cache")
if [[ " $LARDER_ARGS " == *" --cache-dir"* ]]; then CACHE_ARGS=(); fi
# shellcheck disable=SC2086 # LARDER_ARGS is a list of flags
"${SERVER_PIN[@]}" "$LARDER" --listen "127.0.0.1:$LARDER_PORT" "${CACHE_ARGS[@]}" $LARDER_ARGS \
  >"$WORK/larder.log" 2>&1 &
LARDER_PID=$!
wait_line "$LARDER_PID" "$WORK/larder.log" "larder: listening on"

# The relay prints nothing when it is ready: wait for its port to take connections.
"${SERVER_PIN[@]}" "$RELAY" --listen "127.0.0.1:$RELAY_PORT" --upstream "127.0.0.1:$ORIGIN_PORT" \
  >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
for ((i = 0; i < 100; i++)); do
  port_busy "$RELAY_PORT" && break
  kill -0 "$RELAY_PID" 2>/dev/null || die "relay-floor exited at start-up: $(cat "$WORK/relay.log")"
  sleep 0.1
done
port_busy "$RELAY_PORT" || die "relay-floor did not start within 10 s"

TARGET=http://127.0.0.1:$ORIGIN_PORT/size/$SIZE
# The origin answers paths under /nc/ with `Cache-Control: no-store`.
NO_STORE=http://127.0.0.1:$ORIGIN_PORT/nc/size/$SIZE
PROXY=http://127.0.0.1:$LARDER_PORT
WRK=("${CLIENT_PIN[@]}" timeout "$((DURATION + 30))" wrk -t1 -c"$CONNS" -d"${DURATION}s"
  --timeout 10s --latency)

echo "== $DURATION s per run, $CONNS connections, 1 wrk thread, body $SIZE B, target $TARGET (/nc/: no-store)"
if [[ ${#SERVER_PIN[@]} -gt 0 ]]; then echo "   origin, relay-floor and larder on CPU 1, wrk on CPU 0"; fi
RSS_BEFORE=$(rss "$LARDER_PID")

RATE='Requests/sec|Transfer/sec|Socket errors|Non-2xx'
LATENCY='|^ +Latency|^ +(50|90|99)%'

# cpu PID: the process's user and system CPU time so far, in clock ticks ("U S"). The
# fields are counted after the ")" that ends the command name, which may hold spaces.
cpu() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null || echo "$1"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run NAME LINES SERVER WRK-ARGS...: one wrk run, showing the output lines matching the
# regex LINES and the CPU time the process SERVER (a PID) spent per request; the full
# output stays in $WORK/NAME.wrk until exit.
run() {
  local name=$1 lines=$2 server=$3 before after requests
  shift 3
  echo "== $name"
  before=$(cpu "$server")
  # In the background so that a signal reaches the trap at once, not after this run.
  "${WRK[@]}" "$@" >"$WORK/$name.wrk" 2>&1 &
  WRK_PID=$!
  if wait "$WRK_PID"; then
    after=$(cpu "$server")
    grep -E "$lines" "$WORK/$name.wrk" | sed 's/^ */   /' || true
    requests=$(awk '/ requests in / { print $1 }' "$WORK/$name.wrk")
    if [[ -n $requests && $requests -gt 0 ]]; then
      awk -v b="$before" -v a="$after" -v n="$requests" -v t="$TICK_US" -v who="$(comm_of "$server")" '
        BEGIN { split(b, x, " "); split(a, y, " "); u = (y[1] - x[1]) * t / n; s = (y[2] - x[2]) * t / n
                printf "   CPU of %s: %.2f us per request (user %.2f, system %.2f)\n", who, u + s, u, s }'
    fi
  else
    echo "   WARNING: wrk failed:"
    sed 's/^/   /' "$WORK/$name.wrk"
  fi
  WRK_PID=
  kill -0 "$LARDER_PID" 2>/dev/null || die "larder died during '$name'"
}

run direct "$RATE$LATENCY" "$ORIGIN_PID" "$TARGET"
run relay-floor "$RATE$LATENCY" "$RELAY_PID" \
  -s "$ROOT/tools/wrk/proxy.lua" "http://127.0.0.1:$RELAY_PORT" -- "$NO_STORE"
run pass-through "$RATE$LATENCY" "$LARDER_PID" -s "$ROOT/tools/wrk/proxy.lua" "$PROXY" -- "$NO_STORE"
run hits "$RATE$LATENCY" "$LARDER_PID" -s "$ROOT/tools/wrk/proxy.lua" "$PROXY" -- "$TARGET"
# wrk's coordinated-omission correction counts each pipelined response as a round trip,
# which corrupts its latency histogram, so only the rate is shown.
run hits-pipelined "$RATE" "$LARDER_PID" \
  -s "$ROOT/tools/wrk/proxy-pipeline.lua" "$PROXY" -- "$TARGET" "$DEPTH"
echo "   ($DEPTH requests per batch; latency not shown: wrk's is unreliable when pipelining)"

# rate NAME: the Requests/sec of run NAME, empty if it failed.
rate() { awk '/^Requests\/sec:/ { print $2 }' "$WORK/$1.wrk" 2>/dev/null; }
DIRECT=$(rate direct)
echo "== each rate over the origin's own (direct $DIRECT req/s):"
for name in relay-floor pass-through hits hits-pipelined; do
  r=$(rate "$name")
  if [[ -n $DIRECT && -n $r ]]; then
    awk -v n="$name" -v r="$r" -v d="$DIRECT" 'BEGIN { printf "   %-15s %.3f\n", n, r / d }'
  fi
done
RELAYED=$(rate relay-floor)
PASSED=$(rate pass-through)
if [[ -n $RELAYED && -n $PASSED ]]; then
  awk -v p="$PASSED" -v r="$RELAYED" 'BEGIN { printf "== pass-through over relay-floor: %.3f\n", p / r }'
fi
echo "== larder RSS (VmRSS): before $RSS_BEFORE, after $(rss "$LARDER_PID")"
