#!/usr/bin/env bash
# How fast the dashboard's pages answer on a big lab (issue 14): the harness
# on the embedded store, 1,000 agents over 20 queues (registered over HTTP)
# and 100,000 jobs (written straight into the database while the harness is
# stopped, spread over 6 days: 90% complete, 5% cancelled, 3% waiting, 2%
# running, with claim waits). Each page is fetched ROUNDS times (default
# 20) after a warm-up; prints the median, p90 and slowest answer per page.
#
#   scripts/measure-dashboard.sh            # debug build of the harness
#   PROFILE=release scripts/measure-dashboard.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=${PROFILE:-debug}
rounds=${ROUNDS:-20}
target=${CARGO_TARGET_DIR:-$root/target}
if [ "$profile" = release ]; then
  cargo build --release --workspace --bins
else
  cargo build --workspace --bins
fi
binary="$target/$profile/testflinger-local"
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

start() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  TESTFLINGER_DATA_DIR="$work/data" RUST_LOG=warn "$binary" --bind "127.0.0.1:$port" \
    >"$work/harness.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  base="http://127.0.0.1:$port"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

start
echo "== 1,000 agents on 20 queues"
python3 - "$base" <<'EOF'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base = sys.argv[1]
states = ["waiting", "test", "provision", "offline", "maintenance", "reserve"]
def post(i):
    body = {"state": states[i % len(states)], "queues": [f"q{i % 20:02d}"], "location": f"lab {i % 7}"}
    request = urllib.request.Request(f"{base}/v1/agents/data/agent-{i:03d}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(post, range(1000)))
queues = {f"q{i:02d}": f"Queue {i}" for i in range(20)}
urllib.request.urlopen(urllib.request.Request(f"{base}/v1/agents/queues", json.dumps(queues).encode(),
                                              {"Content-Type": "application/json"})).read()
EOF
stop

echo "== 100,000 jobs"
python3 - "$work/data/testflinger.sqlite3" <<'EOF'
import json, random, sqlite3, sys, time, uuid
random.seed(14)
db = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
rows = []
for n in range(100_000):
    created = now - 6 * 86_400_000 + n * (6 * 86_400_000 // 100_000)
    roll = random.random()
    state = "complete" if roll < 0.90 else "cancelled" if roll < 0.95 else "waiting" if roll < 0.98 else "test"
    queue = f"q{random.randrange(20):02d}"
    data = {"job_queue": queue, "tags": [f"tag{random.randrange(50)}"], "test_data": {"test_cmds": "true"}}
    if random.random() < 0.5:
        data["client_id"] = f"ci-{random.randrange(10)}"
    started = None if state == "waiting" else created + random.randrange(1, 3_600_000)
    rows.append((str(uuid.uuid4()), queue, 0, state, created, started, json.dumps(data), created))
db.executemany(
    "INSERT INTO jobs (job_id, job_queue, job_priority, state, created_at, started_at, job_data, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
db.commit()
db.execute("ANALYZE")
print(db.execute("SELECT count(*) FROM jobs").fetchone()[0], "jobs stored")
EOF
start
job=$(curl -sS "$base/v1/job/search?limit=1&state=test" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["job_id"])')

echo "== page latency ($rounds rounds each, $profile build, ms)"
python3 - "$base" "$rounds" "$job" <<'EOF'
import sys, time, urllib.request
base, rounds, job = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pages = ["/", "/agents", "/agents?queue=q07&state=test", "/agents/agent-500", "/jobs",
         "/jobs?state=complete&queue=q03", "/jobs?submitted_by=ci-3", "/jobs?tags=tag7",
         f"/jobs/{job}", "/queues", "/queues/q05"]
print(f"{'page':40} {'median':>8} {'p90':>8} {'max':>8} {'bytes':>8}")
for page in pages:
    urllib.request.urlopen(base + page).read()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        body = urllib.request.urlopen(base + page).read()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    print(f"{page[:40]:40} {times[len(times)//2]:8.1f} {p90:8.1f} {times[-1]:8.1f} {len(body):8}")
EOF
