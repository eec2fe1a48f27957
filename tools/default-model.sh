#!/usr/bin/env bash
# The page's built-in model, in www/model/: the tiny DynRefer of the tests (the real architecture
# at toy sizes, random untrained weights, written in the official file formats by the reference's
# fixture maker), converted by the native CLI. A real model is loaded with ?model=URL.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin dynrefer
F=tests/data/e2e
rm -rf www/model
target/release/dynrefer convert --blip2 $F/blip2.pth --dynrefer $F/dynrefer.pth --t5 $F/t5 \
    --clip-text $F/clip_text.pt --bpe $F/bpe_simple_vocab_16e6.txt.gz --tags $F/ram_tag_list.txt \
    --attributes $F/ovad2000.json --classes $F/coco.json --arch $F/arch.json \
    --name "tiny test model (untrained random weights)" --out www/model >/dev/null
