#!/usr/bin/env bash
# Instructions larder executes per request, counted with callgrind: a figure the noise of
# a shared machine does not touch. For pass-through (`no-store` responses) and for hits,
# larder runs under `valgrind --tool=callgrind` while wrk sends requests through it for
# SHORT and then for LONG seconds (a new larder and cache each time); the difference in
# instructions (the whole process) divided by the difference in requests leaves out what
# does not grow with requests: start-up, the first misses, the exit.
#
#   tools/instructions.sh                   # 64 connections, 1 KiB bodies, 2 s and 6 s
#   CONNS=16 SIZE=262144 tools/instructions.sh
#   AUTH=1 tools/instructions.sh            # the same through --auth-file (bcrypt)
#
# Settings (environment): CONNS (default 64), SIZE body bytes (default 1024), SHORT and
# LONG seconds (default 2 and 6), PORTS "ORIGIN_PORT LARDER_PORT" on 127.0.0.1 (default
# "19090 19091"), LARDER binary (default target/release/larder, built if missing), AUTH
# (set: larder asks for a password, from a bcrypt file htpasswd makes, and wrk sends it
# with every request, so the figures are those of a remembered credential).
# Needs valgrind and wrk (and htpasswd, apache2-utils, for AUTH). Everything started
# here is stopped on exit, by PID.
set -euo pipefail

CONNS=${CONNS:-64}
SIZE=${SIZE:-1024}
SHORT=${SHORT:-2}
LONG=${LONG:-6}
PORTS=${PORTS:-19090 19091}

TOOL=instructions
# shellcheck source=tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r ORIGIN_PORT LARDER_PORT _ <<<"$PORTS"
for v in CONNS SIZE SHORT LONG ORIGIN_PORT LARDER_PORT; do
  [[ ${!v:-} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v:-}')"
done
((LONG > SHORT)) || die "LONG ($LONG) must be longer than SHORT ($SHORT)"
for tool in valgrind wrk cargo ${AUTH:+htpasswd base64}; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

cd "$ROOT"
echo "== building (release)"
cargo build --release --quiet --example origin
if [[ ! -x $LARDER ]]; then
  cargo build --release --quiet --bin larder
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/larder-instructions.XXXXXX")
ORIGIN_PID=
LARDER_PID=

# callgrind writes its counts at exit: give it time.
stop() { stop_within "$1" 30; }

cleanup() {
  local rc=$?
  stop "$LARDER_PID"
  stop "$ORIGIN_PID"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# valgrind starts slowly.
wait_line() { wait_line_within "$1" "$2" "$3" 60; }

# With AUTH: a password file and the field wrk sends (both empty without).
AUTH_ARGS=()
AUTH_FIELD=()
if [[ -n ${AUTH:-} ]]; then
  htpasswd -c -b -B "$WORK/users" bench bench-password 2>/dev/null || die "htpasswd failed"
  AUTH_ARGS=(--auth-file "$WORK/users")
  AUTH_FIELD=("Basic $(printf '%s' bench:bench-password | base64)")
fi

"$ORIGIN" --listen "127.0.0.1:$ORIGIN_PORT" --size "$SIZE" >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
wait_line "$ORIGIN_PID" "$WORK/origin.log" "origin listening on"

# count NAME PATH SECS: instructions and requests of one larder run, in IR and REQUESTS
# (globals, not printed: in a command substitution a failure would not stop the script,
# and the trap would not know larder's PID).
IR=
REQUESTS=
count() {
  local name=$1 path=$2 secs=$3 out
  out=$WORK/$name-$secs
  valgrind --tool=callgrind --callgrind-out-file="$out.cg" \
    "$LARDER" --listen "127.0.0.1:$LARDER_PORT" --cache-dir "$out.cache" "${AUTH_ARGS[@]}" \
    >"$out.log" 2>&1 &
  LARDER_PID=$!
  wait_line "$LARDER_PID" "$out.log" "larder: listening on"
  wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 10s -s tools/wrk/proxy.lua \
    "http://127.0.0.1:$LARDER_PORT" -- "http://127.0.0.1:$ORIGIN_PORT$path" "${AUTH_FIELD[@]}" \
    >"$out.wrk" 2>&1 ||
    die "wrk failed: $(cat "$out.wrk")"
  stop "$LARDER_PID"
  LARDER_PID=
  # Errors answered (a 407 for a password larder did not take, say) would be counted as
  # requests and make the figures meaningless.
  if grep -q 'Non-2xx or 3xx responses' "$out.wrk"; then
    die "$name: some answers were not 2xx: $(cat "$out.wrk")"
  fi
  REQUESTS=$(awk '/ requests in / { print $1 }' "$out.wrk")
  IR=$(awk '/^(summary|totals):/ { print $2; exit }' "$out.cg" 2>/dev/null || true)
  [[ -n $REQUESTS && -n $IR ]] || die "no counts for $name ($secs s): $(tail -n 5 "$out.log")"
}

echo "== $CONNS connections, body $SIZE B, runs of $SHORT s and $LONG s under callgrind${AUTH:+, with --auth-file}"
for kind in pass-through hits; do
  path=/size/$SIZE
  [[ $kind == pass-through ]] && path=/nc/size/$SIZE  # the origin's no-store paths
  count "$kind" "$path" "$SHORT"
  ir1=$IR req1=$REQUESTS
  count "$kind" "$path" "$LONG"
  ir2=$IR req2=$REQUESTS
  ((req2 > req1)) || die "$kind: the long run made no more requests ($req2) than the short ($req1)"
  awk -v k="$kind" -v i1="$ir1" -v i2="$ir2" -v r1="$req1" -v r2="$req2" 'BEGIN {
    printf "   %-13s %.1fk instructions per request (%d and %d requests)\n",
      k, (i2 - i1) / (r2 - r1) / 1000, r1, r2 }'
done
