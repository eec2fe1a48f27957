"""A mid-sized random DynRefer in the official file formats, for measuring quantization accuracy
(tiny random models are too fragile: their caption logits are nearly flat, so any change flips a beam).

    bash ../shared/reference/setup.sh
    /tmp/refvenv/bin/python tools/gen_quant_fixture.py --out /tmp/dynrefer_quant_fixture
    DYNREFER_QUANT_FIXTURE=/tmp/dynrefer_quant_fixture cargo test --release --test quantized -- --nocapture

Configuration "mid": EVA ViT 384 wide, 6 blocks, 6 heads, MLP 1536, image 224; Q-Former 384 wide, 4 layers,
32 queries; heads 256 wide; T5 d_model 512 (4 + 4 layers, 8 heads x 64, FFN 1024, 32128-token vocabulary);
RAM / OVAD / COCO sized vocabularies; weights drawn with the reference's helpers at its "wide" scales.
"""
import argparse
import os

from bench_model import make_model

MID = {"vision_width": 384, "vision_layers": 6, "vision_heads": 6, "vision_mlp": 1536, "patch": 14,
       "image_size": 224, "qformer_width": 384, "qformer_layers": 4, "qformer_heads": 6, "num_query_tokens": 32,
       "cross_attention_freq": 2, "head_width": 256, "head_layers": 2, "head_heads": 4, "t5_d_model": 512,
       "t5_d_kv": 64, "t5_d_ff": 1024, "t5_heads": 8, "t5_layers": 4, "clip_text_width": 64, "clip_text_layers": 1,
       "clip_text_heads": 4, "clip_embed_dim": 1024, "num_views": 3, "wide_vocab": True}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ref", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                                  "reference"))
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    make_model(MID, a.out, a.ref, seed=a.seed)
    print(a.out)
