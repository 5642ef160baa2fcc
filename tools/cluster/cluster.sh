#!/usr/bin/env bash
# Runs N larders behind HAProxy on loopback: each larder with a cache directory, an
# access log and a port of its own, HAProxy in front hashing each URL to one of them
# (tools/cluster/haproxy.cfg.in; docs/SCALING.md explains the recipe).
#
#   tools/cluster/cluster.sh start DIR [N] [PORT]   # N larders (default 3), HAProxy on
#                                                    # 127.0.0.1:PORT (default 3128)
#   tools/cluster/cluster.sh stop-node DIR I        # stop larder I (1..N), as SIGTERM does
#   tools/cluster/cluster.sh start-node DIR I       # start it again, on the same port
#   tools/cluster/cluster.sh status DIR             # PIDs, ports; HAProxy's view with socat
#   tools/cluster/cluster.sh stop DIR               # stop HAProxy and every larder
#
# Everything lives under DIR (created if missing): nodeI/ (larder I's cache directory),
# nodeI.log (its stderr), nodeI.access.log, nodeI.pid, nodeI.port, haproxy.cfg (the
# rendered config), haproxy.log, haproxy.pid and haproxy.sock (HAProxy's runtime API).
# `stop` leaves the files; remove DIR yourself.
#
# Settings (environment):
#   LARDER            larder binary (default target/release/larder)
#   HAPROXY           haproxy binary (default: haproxy on the PATH, else /usr/sbin/haproxy)
#   LARDER_NODE_ARGS  extra flags for every larder, split on spaces (default none), e.g.
#                     "--allow 10.0.0.0/8 --cache-size 4G"; recorded by `start` and used
#                     again by `start-node`
#   CHECK_INTER_MS    milliseconds between HAProxy's health checks of a node (default 2000)
#   CHECK_FALL        failed checks before a node is taken out (default 3)
#   CHECK_RISE        passed checks before it is put back (default 2)
#   DRAIN_NOTICE      larder's --drain-notice in seconds (default CHECK_INTER_MS x
#                     (CHECK_FALL + 1): a stopping node is taken out by its failed
#                     checks before it refuses connections)
#   STOP_SECS         how long a stopping process gets before SIGKILL (default 30)
#
# Every larder listens on 127.0.0.1 and accepts the PROXY protocol header from HAProxy
# (--proxy-protocol 127.0.0.1/32), so --allow, --deny and the access logs see the real
# clients. Processes are stopped by their recorded PIDs, and only while those PIDs still
# run what this script started there.
set -euo pipefail

TOOL=cluster
# shellcheck source=tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
TEMPLATE=$ROOT/tools/cluster/haproxy.cfg.in

CHECK_INTER_MS=${CHECK_INTER_MS:-2000}
CHECK_FALL=${CHECK_FALL:-3}
CHECK_RISE=${CHECK_RISE:-2}
STOP_SECS=${STOP_SECS:-30}
for v in CHECK_INTER_MS CHECK_FALL CHECK_RISE STOP_SECS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
if [[ -z ${DRAIN_NOTICE:-} ]]; then
  # `fall` checks fail within (fall + 1) intervals of the first 503, however the
  # checks fall against the stop.
  notice_ms=$((CHECK_INTER_MS * (CHECK_FALL + 1)))
  DRAIN_NOTICE=$((notice_ms / 1000)).$(printf '%03d' $((notice_ms % 1000)))
fi
[[ $DRAIN_NOTICE =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  die "DRAIN_NOTICE must be seconds, e.g. 6 or 0.5 (got '$DRAIN_NOTICE')"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

haproxy_bin() {
  if [[ -n ${HAPROXY:-} ]]; then
    echo "$HAPROXY"
  elif command -v haproxy >/dev/null; then
    command -v haproxy
  elif [[ -x /usr/sbin/haproxy ]]; then
    echo /usr/sbin/haproxy
  else
    die "haproxy not found: install it (Debian/Ubuntu: apt-get install haproxy) or set HAPROXY"
  fi
}

# Whether PID runs. An exited process that is no longer our child stays a zombie until
# init reaps it, and kill -0 still succeeds on a zombie: read its state instead.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# The PID recorded in FILE if that process still runs and its command line holds
# MARK (a path under DIR), so that a PID reused by something else is never signalled.
live_pid() {
  local file=$1 mark=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mark" || return 1
  echo "$pid"
}

# stop_recorded FILE MARK: SIGTERM the recorded process, SIGKILL it after STOP_SECS.
stop_recorded() {
  local file=$1 mark=$2 pid i
  pid=$(live_pid "$file" "$mark") || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_SECS * 20; i++)); do
    running "$pid" || return 0
    sleep 0.05
  done
  echo "$TOOL: PID $pid did not stop within $STOP_SECS s: killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    running "$pid" || return 0
    sleep 0.05
  done
}

# What larder I's command line holds (and larder I0's does not).
node_mark() { echo "--cache-dir $DIR/node$1 "; }

node_count() {
  local n=0
  while [[ -d $DIR/node$((n + 1)) ]]; do n=$((n + 1)); done
  echo "$n"
}

check_node() {
  local i=$1 n
  n=$(node_count)
  [[ $i =~ ^[1-9][0-9]*$ && $i -le $n ]] || die "no node $i in $DIR (nodes 1..$n)"
}

# start_node I PORT: larder I on 127.0.0.1:PORT (0: a free port, then recorded).
start_node() {
  local i=$1 port=$2 pid log skip addr args=()
  [[ -x $LARDER ]] || die "$LARDER not found: build it (cargo build --release) or set LARDER"
  if pid=$(live_pid "$DIR/node$i.pid" "$(node_mark "$i")"); then
    die "node $i already runs (PID $pid)"
  fi
  # node-args is a list of flags, split on spaces.
  if [[ -s $DIR/node-args ]]; then read -r -a args <"$DIR/node-args" || true; fi
  log=$DIR/node$i.log
  mkdir -p "$DIR/node$i"
  # The log is appended to across restarts: only this start's lines count.
  : >>"$log"
  skip=$(wc -l <"$log")
  "$LARDER" --listen "127.0.0.1:$port" --cache-dir "$DIR/node$i" \
    --proxy-protocol 127.0.0.1/32 --access-log "$DIR/node$i.access.log" \
    --drain-notice "$DRAIN_NOTICE" "${args[@]}" \
    </dev/null >>"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$DIR/node$i.pid"
  wait_listening "$pid" "$log" "$skip"
  addr=$(awk -v skip="$skip" 'NR > skip && sub(/^larder: listening on /, "") { print; exit }' "$log")
  echo "${addr##*:}" >"$DIR/node$i.port"
  echo "node $i: larder PID $pid on $addr, cache $DIR/node$i"
}

# wait_listening PID LOG SKIP: until LOG, past its first SKIP lines, says larder listens.
wait_listening() {
  local pid=$1 log=$2 skip=$3 i
  for ((i = 0; i < 100; i++)); do
    awk -v skip="$skip" 'NR > skip && /^larder: listening on / { found = 1 }
      END { exit !found }' "$log" && return 0
    running "$pid" ||
      die "larder exited at start-up: $(tail -n "+$((skip + 1))" "$log" | tail -n 5)"
    sleep 0.1
  done
  die "larder did not start within 10 s: $(tail -n "+$((skip + 1))" "$log" | tail -n 5)"
}

render_config() {
  local n=$1 bind=$2 i port servers='' tunnels=''
  for ((i = 1; i <= n; i++)); do
    port=$(<"$DIR/node$i.port")
    servers+="    server node$i 127.0.0.1:$port"$'\n'
    tunnels+="    server node$i 127.0.0.1:$port track caches/node$i"$'\n'
  done
  awk -v bind="$bind" -v state="$DIR" -v inter="${CHECK_INTER_MS}ms" \
    -v fall="$CHECK_FALL" -v rise="$CHECK_RISE" -v servers="${servers%$'\n'}" \
    -v tunnels="${tunnels%$'\n'}" '
    $0 == "@SERVERS@" { print servers; next }
    $0 == "@TUNNEL_SERVERS@" { print tunnels; next }
    {
      gsub(/@BIND@/, bind); gsub(/@STATE@/, state); gsub(/@INTER@/, inter)
      gsub(/@FALL@/, fall); gsub(/@RISE@/, rise); print
    }' "$TEMPLATE" >"$DIR/haproxy.cfg"
}

# Connect succeeds only if something listens there.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
  local n=${1:-3} port=${2:-3128} haproxy pid i
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$n')"
  [[ $port =~ ^[1-9][0-9]*$ && $port -le 65535 ]] || die "PORT must be 1..65535 (got '$port')"
  haproxy=$(haproxy_bin)
  [[ -x $LARDER ]] || die "$LARDER not found: build it (cargo build --release) or set LARDER"
  if live_pid "$DIR/haproxy.pid" "$DIR/haproxy.cfg" >/dev/null; then
    die "a cluster already runs in $DIR: stop it first"
  fi
  if port_open "$port"; then die "port $port is in use; pick another PORT"; fi
  printf '%s\n' "${LARDER_NODE_ARGS:-}" >"$DIR/node-args"
  # A half-started cluster is stopped again rather than left running.
  trap 'cmd_stop' EXIT
  for ((i = 1; i <= n; i++)); do start_node "$i" 0; done
  render_config "$n" "127.0.0.1:$port"
  "$haproxy" -q -c -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 ||
    die "HAProxy refuses $DIR/haproxy.cfg: $(tail -n 5 "$DIR/haproxy.log")"
  "$haproxy" -db -f "$DIR/haproxy.cfg" </dev/null >>"$DIR/haproxy.log" 2>&1 &
  pid=$!
  echo "$pid" >"$DIR/haproxy.pid"
  for ((i = 0; i < 100; i++)); do
    port_open "$port" && break
    running "$pid" || die "HAProxy exited at start-up: $(tail -n 5 "$DIR/haproxy.log")"
    sleep 0.1
  done
  port_open "$port" || die "HAProxy did not listen on 127.0.0.1:$port within 10 s"
  trap - EXIT
  echo "HAProxy PID $pid on 127.0.0.1:$port, runtime API $DIR/haproxy.sock"
}

cmd_stop() {
  local i n
  n=$(node_count)
  stop_recorded "$DIR/haproxy.pid" "$DIR/haproxy.cfg"
  # All at once: each spends its --drain-notice before it drains.
  for ((i = 1; i <= n; i++)); do stop_recorded "$DIR/node$i.pid" "$(node_mark "$i")" & done
  wait
}

cmd_status() {
  local i n pid state
  n=$(node_count)
  for ((i = 1; i <= n; i++)); do
    if pid=$(live_pid "$DIR/node$i.pid" "$(node_mark "$i")"); then state="PID $pid"; else state=stopped; fi
    echo "node $i: 127.0.0.1:$(cat "$DIR/node$i.port" 2>/dev/null || echo '?'), $state"
  done
  if pid=$(live_pid "$DIR/haproxy.pid" "$DIR/haproxy.cfg"); then
    echo "haproxy: PID $pid"
    if command -v socat >/dev/null; then
      # Backend, server, status (UP, DOWN, MAINT, ...), last check.
      echo "show stat" | socat - "UNIX-CONNECT:$DIR/haproxy.sock" |
        awk -F, '$2 ~ /^node/ { print "  " $1 "/" $2 ": " $18 " (" $37 ")" }'
    else
      echo "  (install socat to see HAProxy's view of the nodes)"
    fi
  else
    echo "haproxy: stopped"
  fi
}

[[ $# -ge 2 ]] || usage
COMMAND=$1
DIR=$2
shift 2
case $COMMAND in
start)
  [[ $# -le 2 ]] || usage
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  cmd_start "$@"
  ;;
stop-node | start-node)
  [[ $# -eq 1 && -d $DIR ]] || usage
  DIR=$(cd "$DIR" && pwd)
  check_node "$1"
  if [[ $COMMAND == stop-node ]]; then
    stop_recorded "$DIR/node$1.pid" "$(node_mark "$1")"
  else
    start_node "$1" "$(<"$DIR/node$1.port")"
  fi
  ;;
status | stop)
  [[ $# -eq 0 ]] || usage
  [[ -d $DIR ]] || die "no cluster in $DIR"
  DIR=$(cd "$DIR" && pwd)
  "cmd_$COMMAND"
  ;;
*) usage ;;
esac
