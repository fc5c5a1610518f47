#!/usr/bin/env bash
# Measures the harness's peak memory (VmHWM) while a large artifact goes up
# and down through it. Usage: scripts/measure-artifact-rss.sh [SIZE_MIB]
# (default 1024). Needs curl. Prints the figures; changes nothing in the repo.
set -euo pipefail
size_mib=${1:-1024}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
. "$root/scripts/lib/harness.sh"
HARNESS_PID=
trap '[ -n "$HARNESS_PID" ] && kill "$HARNESS_PID" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --workspace --bins
# The harness's own info lines (its address) stay on; the rest is quiet.
start_harness "$root/target/release/testflinger-local" "$work" "warn,testflinger_local=info"
pid=$HARNESS_PID
base=$SERVER
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
