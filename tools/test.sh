#!/usr/bin/env bash
# The whole test suite: native tests (parity with the PyTorch reference, convert, CLI, training and
# the built-in model's accuracy), the page built by trunk, and the page in headless Chromium on both
# backends. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "==> [$((SECONDS - start))s] $*" >&2; }

step "checking tools"
bash tools/ensure-tools.sh browser

step "native tests: unit, views and model parity with the reference, convert, bundles, command line, eval metrics against pycocoevalcap"
cargo test --release --locked

step "building the page"
trunk build index.html --release

step "the page in headless Chromium (CPU and WebGPU via SwiftShader), the widget on a strict host page, the page offline, on a phone, on compressed and plain-http hosts"
cargo test --release --locked --test web_page --test web_reliability --test web_features --test web_robustness -- --ignored --skip bench --test-threads=1

step "all tests passed"
