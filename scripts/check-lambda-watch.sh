#!/usr/bin/env bash
# Serves the functions with cargo-lambda's emulator (`cargo lambda watch`)
# and calls three of them through its /lambda-url/<function>/v1/... form,
# as the README shows. Installs cargo-lambda (PyPI) into a cached venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${XDG_CACHE_HOME:-$HOME/.cache}/testflinger-rs/venv"
[ -x "$venv/bin/cargo-lambda" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet cargo-lambda; }
export PATH="$venv/bin:$HOME/.cargo/bin:$PATH"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$root"
TESTFLINGER_DATA_DIR="$work/data" cargo lambda watch --quiet --ignore-changes \
  --invoke-address 127.0.0.1 --invoke-port "$port" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port/lambda-url"
for _ in $(seq 600); do
  curl -s -o /dev/null "$base/version/v1" && break
  sleep 0.2
done
curl -sS --fail-with-body -m 300 "$base/version/v1" | grep -q "Testflinger Server v"
job=$(curl -sS --fail-with-body -m 300 -X POST "$base/job-submit/v1/job" \
  -H 'Content-Type: application/json' -d '{"job_queue": "watch"}' | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
[ -n "$job" ]
curl -sS --fail-with-body -m 300 "$base/job-claim/v1/job?queue=watch" --cookie agent_name=w1 | grep -q "$job"
echo "cargo lambda watch: version, job-submit and job-claim answered (job $job)"
