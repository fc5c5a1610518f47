#!/usr/bin/env bash
# Runs the README's ```bash API walk-through against a fresh harness with an
# empty data folder, so that every curl example keeps working as written.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
. "$root/scripts/lib/harness.sh"
HARNESS_PID=
trap '[ -n "$HARNESS_PID" ] && kill "$HARNESS_PID" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --quiet --manifest-path "$root/Cargo.toml" --workspace --bins
start_harness "${CARGO_TARGET_DIR:-$root/target}/debug/testflinger-local" "$work"

# Every ```bash block of the README, in order, as one script.
awk '/^```bash$/ {on=1; next} /^```$/ {on=0} on' "$root/README.md" > "$work/walkthrough.sh"
[ -s "$work/walkthrough.sh" ] || { echo "README.md has no \`\`\`bash block"; exit 1; }
(cd "$work" && SERVER="$SERVER" bash -euo pipefail walkthrough.sh) > "$work/out" 2>&1 || {
  echo "README walk-through failed:"; cat "$work/out"; echo "--- server log:"; tail -20 "$work/log"; exit 1;
}
requests=$(grep -c 'testflinger::request' "$work/log" || true)
errors=$(grep 'testflinger::request' "$work/log" | grep -cE 'status=(4|5)[0-9][0-9]' || true)
echo "README walk-through: $requests requests, $errors error answers"
[ "$errors" = 0 ]
