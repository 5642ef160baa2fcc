# What tools/loadtest.sh and tools/instructions.sh share (sourced, not run): where the
# binaries are, and how to fail, stop a process and wait for one to start. The sourcing
# script sets TOOL (its name, for messages) first.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LARDER=${LARDER:-$TARGET_DIR/release/larder}
ORIGIN=$TARGET_DIR/release/examples/origin

die() {
  echo "$TOOL: $*" >&2
  exit 1
}

# stop PID SECS: SIGTERM, then up to SECS seconds for it to exit, then SIGKILL.
stop_within() {
  local pid=$1 secs=$2 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_line_within PID FILE TEXT SECS: until FILE holds TEXT, for SECS seconds at most
# and only while PID lives.
wait_line_within() {
  local pid=$1 file=$2 text=$3 secs=$4 name i
  name=$(basename "$file" .log)
  for ((i = 0; i < secs * 10; i++)); do
    grep -qF "$text" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "$name exited at start-up: $(tail -n 5 "$file")"
    sleep 0.1
  done
  die "$name did not start within $secs s"
}
