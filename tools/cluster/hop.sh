#!/usr/bin/env bash
# What the balancer hop costs: the 1 KiB hit rate through HAProxy in front of one
# larder, in front of three (tools/cluster/cluster.sh), and in front of nginx's
# proxy_cache (a reverse cache, the usual thing to put behind HAProxy), measured in
# turns, round after round, so that each ratio compares runs made within a minute.
#
#   tools/cluster/hop.sh                  # 4 rounds of 5 s runs, 64 connections
#   ROUNDS=6 DURATION=8 tools/cluster/hop.sh
#
# Every request set spreads over URLS distinct URLs (tools/wrk/spread.lua), so that the
# three larders share the load; all are hits once the warm-up has stored them. The
# origin is the `origin` example; wrk runs on CPU 0 and everything else on CPU 1 when
# taskset is there, as in tools/loadtest.sh. Needs wrk, haproxy and nginx. Settings
# (environment): ROUNDS (4), DURATION seconds (5), CONNS (64), URLS (300), PORT the first
# of six consecutive loopback ports (19600), LARDER binary (target/release/larder).
# Everything started here is stopped on exit, by PID.
set -euo pipefail

TOOL=hop
# shellcheck source=tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
URLS=${URLS:-300}
PORT=${PORT:-19600}
for v in ROUNDS DURATION CONNS URLS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || die "$tool not found"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

ORIGIN_PORT=$PORT
NGINX_PORT=$((PORT + 1))
HAPROXY_NGINX_PORT=$((PORT + 2))
ONE_PORT=$((PORT + 3))
THREE_PORT=$((PORT + 4))

PIN=() CLIENT_PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 1) CLIENT_PIN=(taskset -c 0); fi

cd "$ROOT"
echo "== building (release)"
cargo build --release --quiet --example origin
[[ -x $LARDER ]] || cargo build --release --quiet --bin larder

WORK=$(mktemp -d "${TMPDIR:-/tmp}/larder-hop.XXXXXX")
# nginx's workers drop to another user when started as root: they must reach the cache.
chmod 755 "$WORK"
ORIGIN_PID= NGINX_PID= HAPROXY_PID=
cleanup() {
  local rc=$?
  LARDER=$LARDER tools/cluster/cluster.sh stop "$WORK/one" >/dev/null 2>&1 || true
  LARDER=$LARDER tools/cluster/cluster.sh stop "$WORK/three" >/dev/null 2>&1 || true
  stop_within "$HAPROXY_PID" 5
  stop_within "$NGINX_PID" 5
  stop_within "$ORIGIN_PID" 5
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${PIN[@]}" "$ORIGIN" --listen "127.0.0.1:$ORIGIN_PORT" --size 1024 >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
wait_line_within "$ORIGIN_PID" "$WORK/origin.log" "origin listening on" 10

# nginx's proxy_cache as a reverse cache of the origin, one worker, as larder has one thread.
mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=hop:16m max_size=1g use_temp_path=off;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hop;
        }
    }
}
EOF
"${PIN[@]}" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!

# HAProxy in front of nginx, in the same mode and with the same timeouts as the
# recipe's, one server: what the hop costs a reverse cache.
cat >"$WORK/haproxy-nginx.cfg" <<EOF
defaults
    mode http
    timeout connect 2s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 60s
frontend front
    bind 127.0.0.1:$HAPROXY_NGINX_PORT
    default_backend caches
backend caches
    balance uri whole
    hash-type consistent
    server nginx 127.0.0.1:$NGINX_PORT
EOF
"${PIN[@]}" "$HAPROXY" -db -f "$WORK/haproxy-nginx.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!

# The recipe, with one node and with three; HAProxy's health checks on the default
# timing. cluster.sh pins nothing: it runs under taskset with everything else.
"${PIN[@]}" env LARDER="$LARDER" tools/cluster/cluster.sh start "$WORK/one" 1 "$ONE_PORT" >/dev/null
"${PIN[@]}" env LARDER="$LARDER" tools/cluster/cluster.sh start "$WORK/three" 3 "$THREE_PORT" >/dev/null

for port in $NGINX_PORT $HAPROXY_NGINX_PORT; do
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

TARGET=http://127.0.0.1:$ORIGIN_PORT/obj
# run NAME PROXY_URL [origin]: one wrk run; prints its requests per second.
run() {
  local name=$1 url=$2 form=${3:-}
  "${CLIENT_PIN[@]}" timeout "$((DURATION + 30))" wrk -t1 -c"$CONNS" -d"${DURATION}s" \
    -s tools/wrk/spread.lua "$url" -- "$TARGET" "$URLS" $form >"$WORK/$name.wrk" 2>&1 ||
    die "wrk failed for $name: $(cat "$WORK/$name.wrk")"
  grep -q "Non-2xx" "$WORK/$name.wrk" && die "$name: answers other than 2xx (nginx: $(tail -3 "$WORK/nginx/error.log" 2>/dev/null))"
  awk '/^Requests\/sec:/ { print $2 }' "$WORK/$name.wrk"
}

echo "== warming up (each set-up stores the $URLS objects)"
for _ in 1 2; do
  DURATION=1 run warm-nginx "http://127.0.0.1:$HAPROXY_NGINX_PORT" origin >/dev/null
  DURATION=1 run warm-one "http://127.0.0.1:$ONE_PORT" >/dev/null
  DURATION=1 run warm-three "http://127.0.0.1:$THREE_PORT" >/dev/null
done

echo "== $ROUNDS rounds, $DURATION s per run, $CONNS connections, $URLS URLs of 1 KiB"
printf '%-6s %14s %14s %14s %12s %12s\n' round "haproxy>nginx" "haproxy>1" "haproxy>3" "1/nginx" "3/nginx"
for ((r = 1; r <= ROUNDS; r++)); do
  n=$(run nginx "http://127.0.0.1:$HAPROXY_NGINX_PORT" origin)
  one=$(run one "http://127.0.0.1:$ONE_PORT")
  three=$(run three "http://127.0.0.1:$THREE_PORT")
  awk -v r="$r" -v n="$n" -v o="$one" -v t="$three" \
    'BEGIN { printf "%-6s %14.0f %14.0f %14.0f %12.3f %12.3f\n", r, n, o, t, o / n, t / n }'
done
