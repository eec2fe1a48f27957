#!/usr/bin/env bash
# Builds the page and serves it at http://127.0.0.1:8080, rebuilding on change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ensure-tools.sh
echo "==> building and serving the page at http://127.0.0.1:8080 (Ctrl-C stops)" >&2
exec trunk serve index.html --release
