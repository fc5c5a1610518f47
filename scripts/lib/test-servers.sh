# Sourced by the scripts: the MongoDB- and S3-compatible test servers.
#
#   start_test_servers
#
# Unless TESTFLINGER_TEST_MONGODB_URI and TESTFLINGER_TEST_S3_ENDPOINT name
# servers already, installs the test servers if missing, starts each on a
# free 127.0.0.1 port with its data under $work, appends their process ids
# to the caller's `pids` array and exports the variables that name them
# (TESTFLINGER_TEST_MONGODB_URI, TESTFLINGER_TEST_S3_ENDPOINT, _ACCESS_KEY,
# _SECRET_KEY). The caller stops them.

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

start_test_servers() {
  local port
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
}
