#!/usr/bin/env bash
# Claim latency against the depth of the backlog: for each size, preload that
# many waiting jobs over 100 queues (`testflinger-local preload`), start a
# fresh release harness and drain part of the backlog with simulated agents
# (`testflinger-loadgen --submitters 0 --jobs N`), then print claim latency
# per size and its ratio to the smallest size (target: at most 1.3x from 1k
# to 1M waiting jobs, both backends).
#
# Every size drains the same number of jobs, so that only the depth of the
# backlog differs between rows: a longer run is slower at any depth (the
# logs and the write-ahead log grow), and the agents reach only the queues
# they serve (agent i serves queues i and i+1: 33 of 100 with 32 agents,
# about 330 jobs of a 1k backlog). The default is 2000 jobs, or 90% of what
# the agents can reach in the smallest backlog if that is fewer.
#
# Always on the embedded store (a fresh data folder per size); also on
# MongoDB when MONGODB_URI is set (a fresh database per size, indexed by
# `testflinger-local setup`, dropped at the end; see drop_database).
#
# Usage: scripts/bench-claim-scaling.sh [SIZE...]      (default 1000 100000 1000000)
# Environment: AGENTS (32), CLAIM_JOBS (jobs drained per run; see above),
#   QUEUES (100), QUIET_LOAD (1.5) and QUIET_WAIT (seconds, 180): before each
#   measurement, wait up to QUIET_WAIT for the 1-minute load average to fall
#   below QUIET_LOAD (the load it ran under is printed either way),
#   BACKENDS ("embedded mongodb", or one of them), REPORTS (a folder to keep
#   each run's whole load generator report in, as BACKEND-SIZE.json).
set -euo pipefail
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 100000 1000000)
agents=${AGENTS:-32}
queues=${QUEUES:-100}
smallest=$(printf '%s\n' "${sizes[@]}" | sort -n | head -1)
served=$(( agents + 1 < queues ? agents + 1 : queues ))
reachable=$(( smallest / queues * served * 9 / 10 ))
claim_jobs=${CLAIM_JOBS:-$(( reachable < 2000 ? reachable : 2000 ))}
[ "$claim_jobs" -gt 0 ] || { echo "the smallest backlog is too small for $queues queues" >&2; exit 2; }
echo "each run drains $claim_jobs jobs with $agents agents over $queues queues" >&2
quiet_load=${QUIET_LOAD:-1.5}
quiet_wait=${QUIET_WAIT:-180}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release"
. "$root/scripts/lib/harness.sh"

# MONGODB_URI selects MongoDB: exported only for the MongoDB runs.
mongo_uri=${MONGODB_URI:-}
unset MONGODB_URI
results=$(mktemp)
HARNESS_PID=
work=
database=
cleanup() {
  if [ -n "$HARNESS_PID" ]; then kill "$HARNESS_PID" 2>/dev/null || true; fi
  [ -n "$database" ] && drop_database "$database"
  [ -n "$work" ] && rm -rf "$work"
  rm -f "$results"
}
trap cleanup EXIT

# Drops a MongoDB database without mongosh: one OP_MSG `dropDatabase` over a
# plain socket (python3, standard library). Only for a server without
# authentication or TLS (a test server on loopback); otherwise it names the
# database to drop by hand (every run's name is unique, so nothing collides).
drop_database() {
  python3 - "$mongo_uri" "$1" <<'PY' || echo "note: drop database $1 by hand" >&2
import socket, struct, sys, urllib.parse
uri, name = sys.argv[1:]
url = urllib.parse.urlsplit(uri)
if url.scheme != "mongodb" or "@" in url.netloc or "," in url.netloc or "tls=true" in uri or "ssl=true" in uri:
    sys.exit(f"cannot drop {name} on {url.scheme}://{url.hostname} from here")
def cstring(s): return s.encode() + b"\0"
def element(key, value):
    if isinstance(value, int):
        return b"\x10" + cstring(key) + struct.pack("<i", value)
    data = cstring(value)
    return b"\x02" + cstring(key) + struct.pack("<i", len(data)) + data
body = element("dropDatabase", 1) + element("$db", name)
document = struct.pack("<i", len(body) + 5) + body + b"\0"
message = struct.pack("<I", 0) + b"\0" + document      # flags, section kind 0
with socket.create_connection((url.hostname, url.port or 27017), timeout=300) as s:
    s.sendall(struct.pack("<iiii", 16 + len(message), 1, 0, 2013) + message)
    header = s.recv(16, socket.MSG_WAITALL)
    answer = s.recv(struct.unpack("<i", header[:4])[0] - 16, socket.MSG_WAITALL)
at = answer.find(b"\x01ok\0")
if at < 0 or struct.unpack("<d", answer[at + 4:at + 12])[0] != 1.0:
    sys.exit(f"dropDatabase {name} failed: {answer!r}")
PY
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits (bounded) for the machine to be quiet; prints the load it got.
wait_for_quiet() {
  local waited=0
  while awk -v l="$(load1)" -v q="$quiet_load" 'BEGIN { exit !(l >= q) }' && [ "$waited" -lt "$quiet_wait" ]; do
    sleep 5
    waited=$((waited + 5))
  done
  load1
}

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p testflinger-local --bins

backends=${BACKENDS:-embedded mongodb}
for backend in $backends; do
  if [ "$backend" = mongodb ] && [ -z "$mongo_uri" ]; then
    echo "MongoDB: skipped (MONGODB_URI is not set)" >&2
    continue
  fi
  for size in "${sizes[@]}"; do
    work=$(mktemp -d)
    if [ "$backend" = mongodb ]; then
      database="claim_scaling_${size}_$(date +%s%N)"
      export MONGODB_URI=$mongo_uri MONGODB_DATABASE=$database
      (cd "$work" && TESTFLINGER_DATA_DIR="$work/data" "$bin/testflinger-local" setup >/dev/null)
    fi
    echo "== $backend, $size waiting jobs (load $(load1) before the preload)" >&2
    preload=$(cd "$work" && TESTFLINGER_DATA_DIR="$work/data" \
      "$bin/testflinger-local" preload --jobs "$size" --queues "$queues")
    echo "$preload" >&2
    rate=$(sed -n 's/.* = \([0-9]*\) jobs\/s/\1/p' <<<"$preload")
    start_harness "$bin/testflinger-local" "$work" "warn,testflinger_local=info"
    load=$(wait_for_quiet)
    echo "   measuring under load $load" >&2
    report=$("$bin/testflinger-loadgen" --target "$SERVER" --agents "$agents" --submitters 0 \
      --queues "$queues" --jobs "$claim_jobs" --json)
    kill "$HARNESS_PID"
    wait "$HARNESS_PID" 2>/dev/null || true
    HARNESS_PID=
    if [ "$backend" = mongodb ]; then
      unset MONGODB_URI MONGODB_DATABASE
      drop_database "$database"
      database=
    fi
    rm -rf "$work"
    work=
    printf '%s\t%s\t%s\t%s\t%s\n' "$backend" "$size" "$load" "$rate" "$report" >>"$results"
    if [ -n "${REPORTS:-}" ]; then
      mkdir -p "$REPORTS" && printf '%s\n' "$report" >"$REPORTS/$backend-$size.json"
    fi
  done
done

python3 - "$results" <<'PY'
import json, sys
rows = [line.rstrip("\n").split("\t", 4) for line in open(sys.argv[1])]
print(f"{'backend':<9} {'waiting':>9} {'load1':>5} {'preload/s':>9} {'claims':>6} "
      f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'claims/s':>8} {'p50 x':>6} {'p99 x':>6}  errors")
base = {}
for backend, size, load, rate, report in rows:
    r = json.loads(report)
    e = r["endpoints"]["GET /v1/job"]
    base.setdefault(backend, e)
    b = base[backend]
    ratio = lambda key: e[key] / b[key] if b[key] else float("nan")
    print(f"{backend:<9} {int(size):>9} {float(load):>5.2f} {rate or '-':>9} {r['claims']:>6} "
          f"{e['p50_ms']:>7.2f} {e['p90_ms']:>7.2f} {e['p99_ms']:>7.2f} "
          f"{r['claims'] / r['duration_s']:>8.1f} {ratio('p50_ms'):>6.2f} {ratio('p99_ms'):>6.2f}  "
          f"{r['total']['errors']}")
PY
