#!/usr/bin/env bash
# Measures the harness's peak memory (VmHWM) while a large artifact goes up
# and down through it. Usage: scripts/measure-artifact-rss.sh [SIZE_MIB]
# (default 1024). Needs curl. Prints the figures; changes nothing in the repo.
set -euo pipefail
size_mib=${1:-1024}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p testflinger-local --bin testflinger-local
# exec: $! is then the server itself, whose /proc status is read below.
(cd "$work" && TESTFLINGER_DATA_DIR="$work/data" RUST_LOG=warn,testflinger_local=info \
  exec "$root/target/release/testflinger-local" --bind 127.0.0.1:0 >/dev/null 2>"$work/log") &
pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/log" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/log" | head -1)
[ -n "$base" ] || { echo "the server did not start:"; cat "$work/log"; exit 1; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
echo "server pid $pid at $base; idle VmHWM $(hwm) KiB"

head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/artifact.bin"
job=$(curl -sf "$base/v1/job" -H 'Content-Type: application/json' -d '{"job_queue": "rss"}' \
  | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
start=$(date +%s.%N)
curl -sf -F "file=@$work/artifact.bin" "$base/v1/result/$job/artifact" >/dev/null
mid=$(date +%s.%N)
echo "upload of ${size_mib} MiB: $(echo "$mid - $start" | bc) s; VmHWM $(hwm) KiB"
curl -sf "$base/v1/result/$job/artifact" -o "$work/back.bin"
end=$(date +%s.%N)
echo "download of ${size_mib} MiB: $(echo "$end - $mid" | bc) s; VmHWM $(hwm) KiB"
cmp -s "$work/artifact.bin" "$work/back.bin" && echo "round trip: identical" || { echo "round trip: DIFFERENT"; exit 1; }
echo "peak RSS (VmHWM) of the server: $(( $(hwm) / 1024 )) MiB"
