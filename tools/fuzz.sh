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
# Every target runs even when one before it crashed; the script fails at the end, naming each
# target that crashed (or hung, or ran out of memory) and the input that did it.
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    echo "==> $t for ${seconds}s" >&2
    status=0
    # the summary lines only: grep finding none is no failure, cargo fuzz's own status is
    cargo fuzz run "${flags[@]}" "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        -max_len=1048576 -timeout=30 -print_final_stats=1 2>&1 | tee "fuzz-$t.log" \
        | { grep -E "^(#[0-9]+.*DONE|stat::|==|SUMMARY|thread)" || true; } || status=$?
    if [ "$status" -ne 0 ]; then
        artifact=$(grep -o "Test unit written to .*" "fuzz-$t.log" | tail -n 1 | sed "s/^Test unit written to //")
        failed+=("$t (exit $status; input: ${artifact:-none written}; log: fuzz/fuzz-$t.log)")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a crash" >&2
