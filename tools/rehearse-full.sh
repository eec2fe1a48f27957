#!/usr/bin/env bash
# The real model's size end to end, on a folder of full-size files laid out as the released ones
# (eva_vit_g.pth, blip2.pth, dynrefer.pth, t5/, clip_text.pt, the BPE merges and the vocabulary
# files; for example the reference's `make_fixture.py --profile full` with random weights):
#   1. convert to f16, q8 and q4 with nothing but the file paths: wall time, peak memory, size;
#   2. describe natively with the q4 bundle on the CPU and with burn's wgpu backend (Vulkan):
#      peak memory, time of each stage, and whether both give the same caption ids;
#   3. load the q4 bundle in headless Chromium (WebGPU on SwiftShader) and describe a box with one
#      beam and a few tokens, comparing the caption ids with the CLI's.
# Prints a Markdown table. Needs about 20 GB of disk beside DIR and 20 GB of memory (the CPU
# backend widens the q4 weights to f32). Usage: tools/rehearse-full.sh DIR [OUT] [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath "${1:?usage: tools/rehearse-full.sh DIR [OUT] [TOKENS]}")
OUT=${2:-/tmp/dynrefer-rehearsal}
TOKENS=${3:-3}
mkdir -p "$OUT"
say() { echo "==> $*" >&2; }

say "building the CLI with the wgpu backend"
cargo build --release --features wgpu --bin dynrefer
BIN=target/release/dynrefer
IMAGE=$(ls www/examples/*.jpg | head -n 1)
BOX=100,100,300,250

# `/usr/bin/time -v` lines: wall time and peak resident memory of the command that wrote LOG
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$1"; }
peak_gb() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1e6 }' "$1"; }

rows=()
for quant in f16 q8 q4; do
  say "convert --quant $quant"
  rm -rf "${OUT:?}/$quant"
  /usr/bin/time -v "$BIN" convert --blip2 "$DIR/blip2.pth" --vit "$DIR/eva_vit_g.pth" --dynrefer "$DIR/dynrefer.pth" \
    --t5 "$DIR/t5" --clip-text "$DIR/clip_text.pt" --bpe "$DIR/bpe_simple_vocab_16e6.txt.gz" \
    --tags "$DIR/ram_tag_list.txt" --attributes "$DIR/ovad2000.json" --classes "$DIR/coco.json" \
    --quant "$quant" --out "$OUT/$quant" > "$OUT/convert-$quant.json" 2> "$OUT/convert-$quant.log"
  size=$(du -sb "$OUT/$quant" | awk '{ printf "%.3f", $1 / 1e9 }')
  rows+=("| convert --quant $quant | $(wall "$OUT/convert-$quant.log") | $(peak_gb "$OUT/convert-$quant.log") GB | $size GB on disk |")
done

for device in cpu gpu; do
  say "describe the q4 bundle natively on the $device"
  # the CPU gets a warm-up run; a software GPU (lavapipe) is too slow for two full runs
  iters=1
  [ "$device" = gpu ] && iters=0
  XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} /usr/bin/time -v "$BIN" bench model --model "$OUT/q4" --image "$IMAGE" \
    --box "$BOX" --beams 1 --max-new-tokens "$TOKENS" --iters "$iters" --device "$device" \
    > "$OUT/bench-$device.json" 2> "$OUT/bench-$device.log"
  stages=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["median_ms"]; print(", ".join(f"{k} {v/1e3:.1f} s" for k,v in m.items()))' "$OUT/bench-$device.json")
  rows+=("| describe q4 natively, $device | $(wall "$OUT/bench-$device.log") (load and $((iters + 1)) run(s)) | $(peak_gb "$OUT/bench-$device.log") GB | $stages |")
done
same=$(python3 -c 'import json,sys; a,b=(json.load(open(p))["caption_ids"] for p in sys.argv[1:]); print("same" if a==b else f"differ: {a} vs {b}")' \
  "$OUT/bench-cpu.json" "$OUT/bench-gpu.json")
rows+=("| caption ids, CPU vs wgpu | | | $same |")

say "the q4 bundle in headless Chromium's WebGPU (SwiftShader)"
bash tools/ensure-tools.sh browser
[ -f dist/index.html ] || trunk build index.html --release
DYNREFER_FULL_BUNDLE="$OUT/q4" DYNREFER_FULL_TOKENS="$TOKENS" \
  cargo test --release --test web_page bench_full_size_model_in_the_page -- --ignored --nocapture 2>&1 | tee "$OUT/page.log"
page=$(grep -E "^(loaded in|described in|page caption ids)" "$OUT/page.log" | tr '\n' ' ')
rows+=("| q4 in the page (SwiftShader) | | | $page |")

echo
echo "| step | wall time | peak memory | result |"
echo "|---|---:|---:|---|"
printf '%s\n' "${rows[@]}"
