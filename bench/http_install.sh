#!/usr/bin/env bash
# Installs the load generators of bench/http_submit.py:
#   oha (pinned) from crates.io with cargo, into .local/tools/bin/oha (a few minutes to build);
#   wrk from Debian's apt (optional: only `--wrk` uses it), when apt-get is there and we are root.
set -euo pipefail
OHA_VERSION=1.16.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.local/tools"
if [ -x "$TOOLS/bin/oha" ] && "$TOOLS/bin/oha" --version | grep -q " $OHA_VERSION\$"; then
  echo "oha $OHA_VERSION already in $TOOLS/bin"
else
  command -v cargo >/dev/null || { echo "cargo is needed to build oha (rustup, or Debian's cargo)" >&2; exit 1; }
  # rustls only: no OpenSSL headers needed; --locked: the crate's own pinned dependency versions.
  cargo install oha --version "$OHA_VERSION" --locked --no-default-features --features rustls --root "$TOOLS"
fi
if ! command -v wrk >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq wrk || echo "wrk not installed (only needed for --wrk); run apt-get update first" >&2
fi
