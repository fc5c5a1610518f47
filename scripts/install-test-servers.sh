#!/usr/bin/env bash
# Installs, from the package registries, the real servers the test suite
# talks to (once per machine; later runs find them and return at once):
#   secantusd-rs  a MongoDB-wire-compatible server (crate secantus-mdb; ~9 min to build)
#   s3s-fs        an S3-compatible server (crate s3s-fs; ~2.5 min to build)
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

SECANTUS_VERSION=0.5.3-beta.196
S3S_VERSION=0.14.1

need_apt() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "installing $2 (Debian package)"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq "$2" >/dev/null; fi
  fi
}

if ! secantusd-rs --help 2>/dev/null | grep -q "$SECANTUS_VERSION"; then
  need_apt cmake cmake
  echo "building secantusd-rs $SECANTUS_VERSION (about 9 minutes, once per machine)..."
  cargo install secantus-mdb --version "$SECANTUS_VERSION" --ignore-rust-version --locked --quiet
fi
if ! command -v s3s-fs >/dev/null 2>&1 || ! s3s-fs --version 2>/dev/null | grep -q "$S3S_VERSION"; then
  echo "building s3s-fs $S3S_VERSION (about 2.5 minutes, once per machine)..."
  cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --quiet
fi
echo "test servers: $(command -v secantusd-rs), $(command -v s3s-fs)"
