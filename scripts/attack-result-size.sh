#!/usr/bin/env bash
# Measures what one `GET /v1/result/{id}` costs when a job has large logs:
# starts the harness (embedded store in a temporary folder, 127.0.0.1 on a
# free port), posts FRAGMENTS log fragments of 1 MiB each (default 64) to one
# phase, fetches the result once, and reports the answer's size, whether it
# was cut (`truncated_logs`) and the server's peak RSS (VmHWM) from /proc
# before and after the fetch. Bounded: loopback only, one job, every request
# with a timeout; the temporary folder is removed at the end.
#
# Usage: scripts/attack-result-size.sh [FRAGMENTS]
#   PROFILE=release  measure the release build (default: debug)
# Builds with cargo (honours CARGO_TARGET_DIR). Needs curl and python3.
set -euo pipefail
fragments=${1:-64}
profile=${PROFILE:-debug}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
. "$root/scripts/lib/harness.sh"
HARNESS_PID=
trap '[ -n "$HARNESS_PID" ] && kill "$HARNESS_PID" 2>/dev/null; rm -rf "$work"' EXIT

build=(cargo build --quiet --locked --manifest-path "$root/Cargo.toml" --workspace --bins)
[ "$profile" = release ] && build+=(--release)
"${build[@]}"
start_harness "$target/$profile/testflinger-local" "$work" "warn,testflinger_local=info"
pid=$HARNESS_PID
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
echo "server pid $pid at $SERVER ($profile build); idle VmHWM $(hwm) KiB"

job=$(curl -sf --max-time 10 "$SERVER/v1/job" -H 'Content-Type: application/json' \
  -d '{"job_queue": "attack"}' | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
[ -n "$job" ] || { echo "could not submit a job"; exit 1; }

# One fragment of 1 MiB (1,048,576 ASCII characters, as the agent sends at most).
for n in $(seq 0 $((fragments - 1))); do
  python3 - "$n" > "$work/fragment.json" <<'PY'
import json, sys
n = int(sys.argv[1])
line = f"fragment {n:04d} " + "x" * 100 + "\n"
text = (line * (1048576 // len(line) + 1))[:1048576]
print(json.dumps({"fragment_number": n, "timestamp": "2026-12-01T00:00:00Z",
                  "phase": "test", "log_data": text}))
PY
  curl -sf --max-time 60 "$SERVER/v1/result/$job/log/output" \
    -H 'Content-Type: application/json' --data-binary "@$work/fragment.json" >/dev/null
done
echo "posted $fragments fragments of 1 MiB; VmHWM $(hwm) KiB"

start=$(date +%s.%N)
size=$(curl -sf --max-time 300 "$SERVER/v1/result/$job" -o "$work/result.json" -w '%{size_download}')
end=$(date +%s.%N)
cut=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r.get("truncated_logs", "not cut")))' "$work/result.json")
echo "GET /v1/result/{id}: $size bytes in $(python3 -c "print(round($end - $start, 2))") s"
echo "truncated_logs: $cut"
echo "peak RSS (VmHWM) of the server after the fetch: $(( $(hwm) / 1024 )) MiB"
