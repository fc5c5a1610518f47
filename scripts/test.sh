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

. "$root/scripts/lib/test-servers.sh"
start_test_servers
echo "MongoDB-compatible server: $TESTFLINGER_TEST_MONGODB_URI"
echo "S3-compatible server:      $TESTFLINGER_TEST_S3_ENDPOINT"

# A production-backend test whose server is missing fails; never a skip.
export TESTFLINGER_TEST_REQUIRE_BACKENDS=1
cd "$root"
echo "== all tests (embedded backends, and MongoDB/S3 where a suite covers them)"
cargo test --workspace --locked "$@"
echo "== the API tests and the client replays again, on MongoDB + S3"
TESTFLINGER_TEST_BACKENDS=production cargo test --workspace --locked --test api --test replay_agent --test replay_cli "$@"
