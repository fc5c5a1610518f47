#!/usr/bin/env bash
# The test command. Runs every test of the workspace, with the production
# backends for real: a MongoDB-compatible server and an S3-compatible server
# on free 127.0.0.1 ports (installed by scripts/install-test-servers.sh if
# missing), started here and stopped at the end. Then runs the API tests and
# the replays of the real clients a second time on MongoDB + S3.
#
# To use servers of your own instead, set TESTFLINGER_TEST_MONGODB_URI
# and/or TESTFLINGER_TEST_S3_ENDPOINT (+ TESTFLINGER_TEST_S3_ACCESS_KEY,
# TESTFLINGER_TEST_S3_SECRET_KEY). Extra arguments go to `cargo test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() { # name port log
  for _ in $(seq 200); do
    (echo > "/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start on 127.0.0.1:$2:"; cat "$3"; exit 1
}

if [ -z "${TESTFLINGER_TEST_MONGODB_URI:-}" ] || [ -z "${TESTFLINGER_TEST_S3_ENDPOINT:-}" ]; then
  "$root/scripts/install-test-servers.sh"
fi

if [ -z "${TESTFLINGER_TEST_MONGODB_URI:-}" ]; then
  port=$(free_port)
  secantusd-rs --host 127.0.0.1 --port "$port" --storage-path "$work/mongodb" \
    --cache-size 512M >"$work/mongodb.log" 2>&1 &
  pids+=($!)
  wait_for_port secantusd-rs "$port" "$work/mongodb.log"
  export TESTFLINGER_TEST_MONGODB_URI="mongodb://127.0.0.1:$port"
fi
if [ -z "${TESTFLINGER_TEST_S3_ENDPOINT:-}" ]; then
  port=$(free_port)
  export TESTFLINGER_TEST_S3_ACCESS_KEY=testflinger TESTFLINGER_TEST_S3_SECRET_KEY=testflinger-secret
  mkdir -p "$work/s3"
  s3s-fs --host 127.0.0.1 --port "$port" --access-key "$TESTFLINGER_TEST_S3_ACCESS_KEY" \
    --secret-key "$TESTFLINGER_TEST_S3_SECRET_KEY" "$work/s3" >"$work/s3.log" 2>&1 &
  pids+=($!)
  wait_for_port s3s-fs "$port" "$work/s3.log"
  export TESTFLINGER_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
fi
echo "MongoDB-compatible server: $TESTFLINGER_TEST_MONGODB_URI"
echo "S3-compatible server:      $TESTFLINGER_TEST_S3_ENDPOINT"

# A production-backend test whose server is missing fails; never a skip.
export TESTFLINGER_TEST_REQUIRE_BACKENDS=1
cd "$root"
echo "== all tests (embedded backends, and MongoDB/S3 where a suite covers them)"
cargo test --workspace --locked "$@"
echo "== the API tests and the client replays again, on MongoDB + S3"
TESTFLINGER_TEST_BACKENDS=production cargo test --workspace --locked --test api --test replay_agent --test replay_cli "$@"
