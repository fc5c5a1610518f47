#!/usr/bin/env bash
# Issue 13: jobs stranded by a server killed while claim answers are in
# flight. Starts the harness (embedded store, temporary folder, free
# 127.0.0.1 port), submits JOBS jobs, runs AGENTS agents that claim in a loop
# (each records the jobs it received), and ROUNDS times kills the server with
# SIGKILL at a random moment and starts it again on the same data. Then it
# counts the jobs left `running` that no agent ever received (stranded), and
# counts them again after WAIT seconds (set WAIT to a lease period plus the
# sweep's minute to see them recovered). Bounded, loopback only.
#
#   scripts/attack-kill-claims.sh [ROUNDS=15] [JOBS=3000] [AGENTS=8] [WAIT=0]
#
# Extra server settings go in ATTACK_ENV (e.g. ATTACK_ENV="TESTFLINGER_LEASE_SECONDS=10").
# The binary is TESTFLINGER_BIN, else a debug build (made here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-15}
jobs=${2:-3000}
agents=${3:-8}
wait_after=${4:-0}
bin=${TESTFLINGER_BIN:-}
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet -p testflinger-local)
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/testflinger-local"
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/start" <<SH
#!/usr/bin/env bash
env TESTFLINGER_DATA_DIR="$work/data" RUST_LOG=warn ${ATTACK_ENV:-} "$bin" --bind "127.0.0.1:$port" >>"$work/log" 2>&1 &
echo \$! > "$work/pid"
for _ in \$(seq 200); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0; sleep 0.05; done
echo "the server did not start"; cat "$work/log"; exit 1
SH
chmod +x "$work/start"
trap 'kill -9 "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null; rm -rf "$work"' EXIT
"$work/start"
echo "binary: $bin ${ATTACK_ENV:-}"
python3 - "$port" "$work" "$rounds" "$jobs" "$agents" "$wait_after" <<'PY'
import http.client, json, os, random, signal, subprocess, sys, threading, time
port, work = int(sys.argv[1]), sys.argv[2]
rounds, jobs, agents, wait_after = (int(a) for a in sys.argv[3:])
random.seed(13)

def call(method, path, body=None, agent=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if agent:
        headers["Cookie"] = f"agent_name={agent}"
    c.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = c.getresponse()
    data = r.read()
    return r.status, data

ids = []
for _ in range(jobs):
    status, data = call("POST", "/v1/job", {"job_queue": "kill-test"})
    ids.append(json.loads(data)["job_id"])
received, stop = set(), threading.Event()
lock = threading.Lock()
def agent(name):
    while not stop.is_set():
        try:
            status, data = call("GET", "/v1/job?queue=kill-test", agent=name)
            if status == 200 and data:
                with lock:
                    received.add(json.loads(data)["job_id"])
        except Exception:
            time.sleep(0.02)
threads = [threading.Thread(target=agent, args=(f"kill-agent-{i}",)) for i in range(agents)]
for t in threads: t.start()
for n in range(rounds):
    time.sleep(random.uniform(0.1, 0.6))
    pid = int(open(f"{work}/pid").read())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    subprocess.run([f"{work}/start"], check=True)
stop.set()
for t in threads: t.join()

def stranded():
    states = {}
    for job_id in ids:
        status, data = call("GET", f"/v1/result/{job_id}")
        states[job_id] = json.loads(data).get("job_state") if status == 200 else f"http {status}"
    running = [j for j, s in states.items() if s not in ("waiting", "cancelled", "complete", "completed")]
    return [j for j in running if j not in received], states

lost, states = stranded()
counts = {}
for s in states.values(): counts[s] = counts.get(s, 0) + 1
print(f"{rounds} kills with {agents} agents claiming; {len(received)} jobs received by agents; states {counts}")
print(f"stranded (not waiting, not received by any agent): {len(lost)}")
if wait_after:
    time.sleep(wait_after)
    lost, states = stranded()
    counts = {}
    for s in states.values(): counts[s] = counts.get(s, 0) + 1
    print(f"after {wait_after} s more: states {counts}; stranded: {len(lost)}")
PY
