#!/usr/bin/env bash
# Issue 12, item 1: connections that never finish. Starts the harness
# (embedded store, temporary folder, free 127.0.0.1 port, default settings)
# and measures:
#   1. N connections sending a request head one byte a second: how many the
#      server has closed after 15 s and after 30 s;
#   2. N idle keep-alive connections after one request each: how many are
#      closed after 75 s (the idle timeout is 60 s);
#   3. 1,100 half-sent heads at once: how a probe request is answered
#      meanwhile (status, latency), and once the heads have timed out.
# 1 and 2 run against a harness with the machine's open-file limit, 3
# against one limited to 1,024. Bounded (about 2.5 minutes), loopback only.
#
#   scripts/attack-connections.sh [N=2000]
#
# The binary is TESTFLINGER_BIN, else target/release/testflinger-local if
# built, else a debug build (made here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-2000}
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
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
start_server() { # ulimit-n name; sets $port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (ulimit -n "$1" && TESTFLINGER_DATA_DIR="$work/$2" RUST_LOG=warn exec "$bin" --bind "127.0.0.1:$port") >"$work/$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}
start_server 1024 small
small_port=$port
start_server "$(ulimit -Hn)" wide
echo "binary: $bin"
python3 - "$port" "$small_port" "$n" <<'PY'
import resource, socket, sys, time
port, small_port, n = (int(a) for a in sys.argv[1:])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def open_many(count, port=port):
    out = []
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            out.append(s)
        except OSError:
            pass
    return out

def closed(s):
    """Whether the server has closed this connection."""
    try:
        s.setblocking(False)
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

def probe(port):
    started = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.settimeout(10)
        answer = s.recv(4096)
        s.close()
        status = answer[9:12].decode() if answer else "closed"
    except OSError as e:
        status = type(e).__name__
    return status, time.time() - started

# 1. Heads sent a byte a second.
head = b"GET /v1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
socks = open_many(n)
print(f"1. {len(socks)} connections sending a head a byte a second")
done, start, reported = set(), time.time(), set()
while time.time() - start < 30:
    i = int(time.time() - start)
    for k, s in enumerate(socks):
        if k in done:
            continue
        if closed(s):
            done.add(k); continue
        try:
            s.send(head[i % len(head):i % len(head) + 1])
        except OSError:
            done.add(k)
    for mark in (15, 29):
        if time.time() - start >= mark and mark not in reported:
            reported.add(mark)
            print(f"   closed by the server after {mark + 1 if mark == 29 else mark} s: {len(done)} of {len(socks)}")
    time.sleep(1)
for s in socks: s.close()

# 2. Idle keep-alive connections.
socks, served = open_many(n), 0
for s in socks:
    try:
        s.setblocking(True); s.settimeout(10)
        s.sendall(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        served += s.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError:
        pass
print(f"2. {len(socks)} idle keep-alive connections after one request each ({served} answered 200)")
start = time.time()
while time.time() - start < 75:
    time.sleep(5)
print(f"   closed by the server after 75 s: {sum(closed(s) for s in socks)} of {len(socks)}")
for s in socks: s.close()

# 3. 1,100 half-sent heads at once against a 1,024-descriptor server.
socks = open_many(1100, small_port)
for s in socks:
    try: s.send(b"GET /v1 HTTP/1.1\r\nHo")
    except OSError: pass
print(f"3. {len(socks)} half-sent heads open against a server limited to 1,024 descriptors")
status, took = probe(small_port)
print(f"   a probe meanwhile: {status} in {took * 1000:.0f} ms")
time.sleep(12)
status, took = probe(small_port)
print(f"   a probe 12 s later: {status} in {took * 1000:.0f} ms")
for s in socks: s.close()
PY
