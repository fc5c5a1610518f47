# Sourced by the scripts: starts the harness on a free loopback port.
#
#   start_harness BINARY WORKDIR [RUST_LOG]
#
# Runs BINARY with its data in WORKDIR/data and its log in WORKDIR/log, waits
# for the line naming its address, and sets HARNESS_PID and SERVER (the base
# URL). The caller stops it (kill "$HARNESS_PID").
start_harness() {
  local binary=$1 work=$2 log_filter=${3:-info}
  # exec: HARNESS_PID is the server itself (its /proc entry is the server's).
  (cd "$work" && TESTFLINGER_DATA_DIR="$work/data" RUST_LOG="$log_filter" \
    exec "$binary" --bind 127.0.0.1:0 >/dev/null 2>"$work/log") &
  HARNESS_PID=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$work/log" 2>/dev/null && break
    sleep 0.1
  done
  SERVER=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/log" | head -1)
  if [ -z "$SERVER" ]; then
    echo "the server did not start:"; cat "$work/log"; return 1
  fi
}
