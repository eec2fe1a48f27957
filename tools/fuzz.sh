#!/usr/bin/env bash
# Fuzzes the parsers a hostile file or person reaches: the manifest, bundle shards (burnpack and
# safetensors), PyTorch checkpoints (zip + pickle), tokenizer.json, box and control-word text, and
# the views from photo bytes. Each target runs SECONDS (default 900) from fuzz/seeds/<target>,
# keeping its corpus in fuzz/corpus/<target> (not committed) and any crash in fuzz/artifacts/.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable Rust runs it with RUSTC_BOOTSTRAP=1.
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-900}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest shard pth tokenizer text views)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# Safe Rust: the findings that matter are panics, overflows (debug assertions), hangs and memory
# blow-ups, which need no sanitizer; without one each run is several times faster.
flags=(-O -a -s none)
cargo fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    echo "==> $t for ${seconds}s" >&2
    cargo fuzz run "${flags[@]}" "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        -max_len=1048576 -timeout=30 -print_final_stats=1 2>&1 | tee "fuzz-$t.log" | grep -E "^(#[0-9]+.*DONE|stat::|==|SUMMARY|thread)" || true
done
