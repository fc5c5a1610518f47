#!/usr/bin/env bash
# Cold start of one function binary: from process start to its first answer
# through cargo-lambda's runtime emulator (`cargo lambda watch
# --only-lambda-apis`), opening the configured store on the way (set
# MONGODB_URI / ARTIFACT_BUCKET to include MongoDB and S3). Each run is a new
# process. Usage: scripts/measure-cold-start.sh [FUNCTION] [RUNS] [PATH]
# (default: job-get 10 /v1/job/<random uuid>).
set -euo pipefail
fn=${1:-job-get}
runs=${2:-10}
path=${3:-/v1/job/$(python3 -c 'import uuid; print(uuid.uuid4())')}
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${XDG_CACHE_HOME:-$HOME/.cache}/testflinger-rs/venv"
[ -x "$venv/bin/cargo-lambda" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet cargo-lambda; }
export PATH="$venv/bin:$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --workspace --bins
binary="$root/target/release/$fn"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$root" && exec cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port") >"$work/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "starting Runtime server" "$work/emulator.log" && break; sleep 0.1; done

export AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256
export AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_FUNCTION_NAME=_
export TESTFLINGER_DATA_DIR="${TESTFLINGER_DATA_DIR:-$work/data}" RUST_LOG=warn
times=()
for run in $(seq "$runs"); do
  start=$(date +%s%N)
  "$binary" >"$work/fn.log" 2>&1 &
  fn_pid=$!
  status=$(curl -s -o "$work/body" -w '%{http_code}' -m 60 "http://127.0.0.1:$port/lambda-url/_$path")
  end=$(date +%s%N)
  kill $fn_pid 2>/dev/null; wait $fn_pid 2>/dev/null || true
  ms=$(( (end - start) / 1000000 ))
  times+=("$ms")
  echo "run $run: HTTP $status in $ms ms"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "$fn cold start to first answer over $runs runs: min $(echo "$sorted" | head -1) ms, median $(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p") ms, max $(echo "$sorted" | tail -1) ms"
echo "binary: $(stat -c %s "$binary") bytes (stripped release)"
