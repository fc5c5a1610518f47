#!/usr/bin/env bash
# Issue 12, item 2: memory under concurrent large bodies. Starts the harness
# (embedded store, temporary folder, free 127.0.0.1 port), sends N concurrent
# JSON submits of SIZE bytes each, ROUNDS times, and reports the answers by
# status, the server's peak RSS (VmHWM) and its RSS a few seconds after.
#
#   scripts/attack-memory.sh [N=16] [SIZE=16MiB-64] [ROUNDS=3]
#
# The binary is TESTFLINGER_BIN, else target/release/testflinger-local if
# built, else a debug build (made here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-16}
size=${2:-$(( (16 << 20) - 64 ))}
rounds=${3:-3}
bin=${TESTFLINGER_BIN:-}
if [ -z "$bin" ]; then
  if [ -x "$root/target/release/testflinger-local" ]; then
    bin="$root/target/release/testflinger-local"
  else
    (cd "$root" && cargo build --quiet -p testflinger-local)
    bin="$root/target/debug/testflinger-local"
  fi
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TESTFLINGER_DATA_DIR="$work/data" RUST_LOG=warn ${ATTACK_ENV:-} "$bin" --bind "127.0.0.1:$port" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "binary: $bin"
python3 - "$port" "$pid" "$n" "$size" "$rounds" <<'PY'
import collections, http.client, json, sys, threading, time
port, pid, n, size, rounds = (int(a) for a in sys.argv[1:])

def rss(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    return -1

filler = "x" * (size - 80)
body = json.dumps({"job_queue": "memory-attack", "test_data": {"test_cmds": filler}}).encode()
print(f"{n} concurrent submits of {len(body) / 2**20:.1f} MiB, {rounds} rounds; "
      f"RSS at start {rss('VmRSS:')} MiB")
statuses = collections.Counter()
def submit():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/job", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        statuses[r.status] += 1
    except Exception as e:
        statuses[type(e).__name__] += 1
for _ in range(rounds):
    threads = [threading.Thread(target=submit) for _ in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
print(f"answers: {dict(statuses)}")
time.sleep(5)
after5 = rss('VmRSS:')
time.sleep(10)
print(f"peak RSS {rss('VmHWM:')} MiB; RSS 5 s after {after5} MiB, 15 s after {rss('VmRSS:')} MiB")
PY
