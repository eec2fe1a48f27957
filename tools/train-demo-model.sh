#!/usr/bin/env bash
# Reproduces the page's built-in model, www/model/ ("DynRefer-shapes (trained on generated scenes)"):
# draws the shapes world's training scenes, trains DynRefer on them from scratch on the CPU the way
# DynRefer trains (each step sees the region and context views drawn at random from the ten
# candidates), and writes the bundle as q8 with its training log (www/model/training.log).
# Two stages, each a run that resumes from its own checkpoints: 10,000 steps from scratch (peak
# rate 4e-4), then 15,000 more from that bundle at a lower peak (2e-4), with a fresh optimizer and
# schedule. About 3 hours on 2 cores and 7 GB of memory (every candidate view of the 27,711 regions
# is kept as 84-px pixels). Checkpoints and the log go to $WORK; run it again to resume a stopped
# run, and STOP_AFTER=N ends the stage in progress at its step N.
# Usage: [STOP_AFTER=N] tools/train-demo-model.sh [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/dynrefer-demo-model}
SCENES=8000
SEED=1
say() { echo "==> $*" >&2; }

cargo build --release --locked --bin dynrefer
BIN=target/release/dynrefer
if [ ! -f "$WORK/scenes/annotations.jsonl" ]; then
  say "drawing $SCENES training scenes (seed $SEED)"
  "$BIN" scenes --count "$SCENES" --seed "$SEED" --out "$WORK/scenes"
fi

# train OUT CHECKPOINTS STEPS LR WARMUP SEED [--from BUNDLE]: one stage; false while it is unfinished.
train() {
  local out=$1 checkpoints=$2 steps=$3 lr=$4 warmup=$5 seed=$6
  shift 6
  [ -f "$WORK/$out/manifest.json" ] && return 0
  say "training $steps steps of 16 regions into $WORK/$out (log: $WORK/train.log)"
  "$BIN" train --data "$WORK/scenes/annotations.jsonl" --out "$WORK/$out" --checkpoints "$WORK/$checkpoints" \
    --steps "$steps" --batch 16 --lr "$lr" --warmup "$warmup" --seed "$seed" --views stochastic "$@" \
    ${STOP_AFTER:+--stop-after "$STOP_AFTER"} 2>&1 | tee -a "$WORK/train.log" || { say "training failed"; exit 1; }
  if [ ! -f "$WORK/$out/manifest.json" ]; then
    say "stopped before step $steps; run this again to go on from the last checkpoint"
    return 1
  fi
}
train f32-first checkpoints 10000 4e-4 300 "$SEED" || exit 0
train f32 checkpoints-more 15000 2e-4 200 $((SEED + 1)) --from "$WORK/f32-first" || exit 0

say "writing the q8 bundle to www/model"
rm -rf www/model
"$BIN" quantize --model "$WORK/f32" --quant q8 --out www/model
say "the examples of the page: three scenes of another seed"
"$BIN" scenes --count 3 --seed 2026 --out "$WORK/examples" >/dev/null
for i in 0 1 2; do
  cp "$WORK/examples/scene-00000$i.jpg" "www/examples/scene-$((i + 1)).jpg"
done
say "accuracy on 200 held-out scenes (seed 4242) of f32, q8 and q4, and their agreement with f32"
"$BIN" scenes --count 200 --seed 4242 --out "$WORK/held-out" >/dev/null
"$BIN" quantize --model "$WORK/f32" --quant q4 --out "$WORK/q4" >/dev/null
for model in f32 q8 q4; do
  bundle=$WORK/$model
  [ "$model" = q8 ] && bundle=www/model
  "$BIN" eval --model "$bundle" --data "$WORK/held-out/annotations.jsonl" --details > "$WORK/eval-$model.json"
done
python3 - "$WORK" <<'PY' | tee "$WORK/held-out.md"
import json, sys
runs = {m: json.load(open(f"{sys.argv[1]}/eval-{m}.json")) for m in ("f32", "q8", "q4")}
print(f"{runs['f32']['regions']} held-out regions, beams 5")
print("| bundle | caption exact | class top-1 | color | pattern | tag F1 | captions = f32's |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m, r in runs.items():
    same = sum(a["caption_ids"] == b["caption_ids"] for a, b in zip(r["answers"], runs["f32"]["answers"])) / r["regions"]
    print(f"| {m} | {r['caption_exact']:.3f} | {r['class_top1']:.3f} | {r['color']:.3f} | {r['pattern']:.3f} "
          f"| {r['tag_f1']:.3f} | {same:.3f} |")
PY
{ echo "# tools/train-demo-model.sh: training (every 50th step) and the held-out figures"; cat "$WORK/train.log"
  echo; cat "$WORK/held-out.md"; } > www/model/training.log
