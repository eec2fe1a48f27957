#!/usr/bin/env bash
# Installs what building and testing need, when it is missing, and says what it does:
#   the wasm32 target, trunk 0.21.14, wasm-bindgen-cli at Cargo.lock's version, and with
#   `browser`, Debian's chromium + chromium-driver. No wasm-opt is used (index.html turns it off).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "==> $*" >&2; }
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the Rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! trunk --version 2>/dev/null | grep -q '^trunk 0\.21\.14$'; then
  # trunk 0.22 needs a newer rustc than this toolchain has.
  say "installing trunk 0.21.14 (about 3 minutes on 2 cores)"
  cargo install trunk --version 0.21.14 --locked
fi

wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! grep -q "^wasm_bindgen = \"$wbg\"" Trunk.toml; then
  echo "Trunk.toml's [tools] wasm_bindgen must be $wbg, the version in Cargo.lock" >&2
  exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg\$"; then
  say "installing wasm-bindgen-cli $wbg, the version in Cargo.lock (about 3 minutes)"
  cargo install wasm-bindgen-cli --version "$wbg"
fi

if [ "${1:-}" = browser ] && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  say "installing Debian's chromium and chromium-driver for the browser tests"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

say "fetching crates for the native and the wasm builds"
cargo fetch --locked
