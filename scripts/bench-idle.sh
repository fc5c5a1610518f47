#!/usr/bin/env bash
# Idle-cycle load on a fresh release harness: N simulated agents polling
# back-to-back (no submitters) for D seconds, then the server's peak RSS and
# CPU seconds per 1,000 requests. The store is the embedded one, or MongoDB
# when MONGODB_URI is set (a fresh database per run).
# Usage: scripts/bench-idle.sh [AGENTS] [SECONDS] [extra loadgen arguments]
set -euo pipefail
agents=${1:-100}
seconds=${2:-20}
shift $(( $# > 2 ? 2 : $# ))
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
. "$root/scripts/lib/harness.sh"
HARNESS_PID=
trap '[ -n "$HARNESS_PID" ] && kill "$HARNESS_PID" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p testflinger-local --bins
if [ -n "${MONGODB_URI:-}" ]; then
  export MONGODB_DATABASE="bench_$(date +%s%N)"
  "$root/target/release/testflinger-local" setup >/dev/null
fi
start_harness "$root/target/release/testflinger-local" "$work" "warn,testflinger_local=info"
cpu() { awk '{print $14 + $15}' "/proc/$HARNESS_PID/stat"; }   # utime + stime, in ticks
ticks=$(getconf CLK_TCK)
before=$(cpu)
report=$("$root/target/release/testflinger-loadgen" --target "$SERVER" --agents "$agents" \
  --submitters 0 --duration "$seconds" --json "$@")
after=$(cpu)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$HARNESS_PID/status")
python3 - "$report" "$before" "$after" "$ticks" "$hwm" "$agents" <<'PY'
import json, sys
report, before, after, ticks, hwm, agents = sys.argv[1:]
r = json.loads(report)
total = r["total"]["count"]
cpu_s = (int(after) - int(before)) / int(ticks)
print(f"{agents} agents, {r['duration_s']:.1f} s: {total} requests = {r['total']['rps']:.0f} req/s, {r['total']['errors']} errors")
for name in ("GET /v1", "GET /v1/agents/data/{name}", "POST /v1/agents/queues", "GET /v1/job"):
    e = r["endpoints"][name]
    print(f"  {name:<28} {e['rps']:>8.0f} req/s  p50 {e['p50_ms']:.2f}  p90 {e['p90_ms']:.2f}  p99 {e['p99_ms']:.2f}  max {e['max_ms']:.2f} ms  errors {e['errors']}")
print(f"server: peak RSS {int(hwm) / 1024:.1f} MiB; {cpu_s:.2f} CPU s = {cpu_s / total * 1000:.3f} CPU s per 1,000 requests")
PY
