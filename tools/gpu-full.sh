#!/usr/bin/env bash
# On a machine with a GPU: the real model's per-stage times, burn's wgpu backend (Vulkan or Metal)
# against PyTorch on CUDA in fp16 autocast (as the official code runs), in one run, with the
# reference's Python environment (torch with CUDA) at $PYTHON. Prints the table of
# tools/bench_model.py for the f32 and the q4 bundle. Usage: tools/gpu-full.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
cargo build --release --features wgpu --bin dynrefer
PHOTOS=${DYNREFER_PHOTOS_DIR:-/tmp/dynrefer_photos}
DYNREFER_PHOTOS_DIR=$PHOTOS cargo test --release --test views_parity write_photos -- --ignored
for quant in f32 q4; do
  "$PYTHON" tools/bench_model.py --photos "$PHOTOS" --config full --device cuda --autocast fp16 \
    --ours-device gpu --quant "$quant" --reps 3
done
