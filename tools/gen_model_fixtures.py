"""Regenerate the small component fixtures of the model tests (tests/data/*.safetensors) with
PyTorch and torchvision, the implementations the official model runs:

    bash ../shared/reference/setup.sh
    /tmp/refvenv/bin/python tools/gen_model_fixtures.py

roi_align.safetensors: torchvision.ops.roi_align(aligned=False) on random feature maps and boxes of
every kind (the region boxes of real views, sub-pixel, corner, reaching outside the view), for
each case `c{i}.features [R,C,H,W]`, `c{i}.boxes [R,4]`, `c{i}.expected [R,C,P,P]` and
`c{i}.config [height, width, output, spatial_scale, sampling_ratio]`.

vit.safetensors: a small EVA ViT (width 32, 2 blocks, 4 heads, MLP 128, patch 14, image 42) and
`ln_vision`, under their official BLIP-2 keys (`visual_encoder.*`, `ln_vision.*`), random pixels
`input.pixels [2,3,42,42]` and the reference's outputs `expected.vit` (before ln_vision) and
`expected.ln_vision` (checklist items 10 and 11).

align.safetensors: `cvem_align.*` (C 64, 4 groups) and RoI features `input.rois [3,64,8,8]`; the
reference aligns views 1 and 2 to view 0: `expected.aligned [2,64,8,8]`.

qformer.safetensors: `query_tokens` and `Qformer.bert.*` (width 64, 3 layers, 4 heads, FFN 128,
8 queries, cross-attention from 48-wide visual tokens on layers 0 and 2, and the unused text
branch), `input.visual [2,17,48]` and `expected.qformer [2,8,64]`.

visual.safetensors: the visual side assembled (ViT of 1 block, width 64, patch 7, image 28, 3
views), `input.pixels`, `input.region_boxes` and the reference's `expected.{vit, rois, aligned,
fused}`.

heads.safetensors: the tag and attribute heads (Q-Former width 64, head width 32, 2 layers, 4
heads, text width 48), random vocabulary embeddings (10 tags, 5 attributes of 2-6 templates, 5
classes) and the reference's `expected.{tags, attributes, classes}`.

clip_text.safetensors: an EVA-CLIP text tower (width 32, 2 layers, 4 heads, context 12, 40
tokens, projection 24) under `text.*`, token rows `input.tokens` and `expected.embeds`.

t5.safetensors: two small HF T5ForConditionalGeneration models with exact-GELU gated FFNs (as LAVIS
sets them), under HF keys with prefixes `a.` (untied lm_head, 32 buckets / distance 128, so the
log-spaced buckets are crossed at 16 and 32) and `b.` (tied embeddings, 8 buckets / distance 20,
3 decoder blocks); each with `{p}.input.embeds [1,40,d]`, `{p}.expected.encoded`,
`{p}.input.decoder_ids [2,7]` and `{p}.expected.logits [2,7,vocab]` (teacher forcing), its
config.json in the metadata; and `buckets.{bidirectional,causal}` [601] from transformers'
`_relative_position_bucket` for relative positions -300..300.

clip_bpe_merges.txt.gz + clip_bpe.json: merges learned from a few test texts, and the reference
ClipBPE's token rows for them (HTML entities, case, whitespace, punctuation, digits, accents,
truncation to 77 tokens).
"""
import argparse
import math
import os

import torch
from safetensors.torch import save_file
from torchvision.ops import roi_align

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROI_CASES = [
    # height, width, output, spatial_scale, sampling_ratio, boxes
    (16, 16, 16, 1 / 14, 2, [[0, 0, 224, 224], [3, 37, 198, 221], [7, 63, 179, 219], [0, 0, 1, 1],
                              [10.2, 10.4, 10.6, 10.9], [100, 50, 227, 224.5], [-30, -20, 240, 250],
                              [210, 5, 300, 80], [223, 223, 224, 224], [0.5, 111.25, 223.75, 112.5]]),
    (8, 8, 8, 1 / 14, 2, [[0, 0, 112, 112], [5, 9, 100, 70], [111, 0, 112, 112], [20.5, 30.25, 21, 31]]),
    (8, 12, 7, 1 / 8, 2, [[0, 0, 96, 64], [10, 3, 50, 60], [-5, -5, 8, 8], [90, 60, 100, 70]]),
    (16, 16, 16, 1 / 14, 1, [[3, 37, 198, 221], [0, 0, 224, 224]]),
    (16, 16, 16, 1 / 14, 3, [[3, 37, 198, 221], [40, 40, 41, 41]]),
]


def roi_fixture(gen):
    out = {}
    for i, (h, w, p, scale, ratio, boxes) in enumerate(ROI_CASES):
        boxes = torch.tensor(boxes, dtype=torch.float32)
        feats = torch.randn(len(boxes), 6, h, w, generator=gen)
        # RoI r reads image r, as DynRefer's batched call does (batch index = arange)
        rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32)[:, None], boxes], 1)
        out[f"c{i}.features"] = feats
        out[f"c{i}.boxes"] = boxes
        out[f"c{i}.expected"] = roi_align(feats, rois, p, scale, ratio, aligned=False)
        out[f"c{i}.config"] = torch.tensor([h, w, p, scale, ratio], dtype=torch.float64)
    return out


def vit_fixture(gen, ref_dir, width=32, depth=2, heads=4, mlp=128, patch=14, image=42):
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M

    def n(*shape, std=0.02):
        return torch.randn(*shape, generator=gen) * std

    grid = image // patch
    p = "visual_encoder"
    sd = {
        f"{p}.patch_embed.proj.weight": n(width, 3, patch, patch),
        f"{p}.patch_embed.proj.bias": n(width),
        f"{p}.cls_token": n(1, 1, width),
        f"{p}.pos_embed": n(1, grid * grid + 1, width),
        "ln_vision.weight": 1 + n(width, std=0.1),
        "ln_vision.bias": n(width, std=0.1),
    }
    for i in range(depth):
        b = f"{p}.blocks.{i}"
        sd.update({
            f"{b}.norm1.weight": 1 + n(width, std=0.1), f"{b}.norm1.bias": n(width, std=0.1),
            f"{b}.attn.qkv.weight": n(3 * width, width, std=0.2), f"{b}.attn.q_bias": n(width, std=0.1),
            f"{b}.attn.v_bias": n(width, std=0.1),
            f"{b}.attn.proj.weight": n(width, width, std=0.2), f"{b}.attn.proj.bias": n(width),
            f"{b}.norm2.weight": 1 + n(width, std=0.1), f"{b}.norm2.bias": n(width, std=0.1),
            f"{b}.mlp.fc1.weight": n(mlp, width, std=0.2), f"{b}.mlp.fc1.bias": n(mlp),
            f"{b}.mlp.fc2.weight": n(width, mlp, std=0.2), f"{b}.mlp.fc2.bias": n(width),
        })
    pixels = torch.randn(2, 3, image, image, generator=gen)
    with torch.no_grad():
        vit = M.vit_forward(sd, pixels, heads)
        lnv = M.ln(vit, sd, "ln_vision", 1e-5)
    out = dict(sd)
    out.update({"input.pixels": pixels, "expected.vit": vit, "expected.ln_vision": lnv})
    return {k: v.contiguous() for k, v in out.items()}


def align_fixture(gen, ref_dir, c=64, group=4, size=8, views=3):
    """cvem_align (CustomDCNv4) with offsets of a few cells, so that samples fall between cells,
    across borders and off the map (checklist items 13-14)."""
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M

    def n(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    om = -(-group * 27 // 8) * 8
    p = "cvem_align"
    sd = {
        f"{p}.value_proj.weight": n(c, c, std=0.15), f"{p}.value_proj.bias": n(c, std=0.1),
        f"{p}.offset_mask_dw.weight": n(c, 2, 3, 3, std=0.3), f"{p}.offset_mask_dw.bias": n(c, std=0.1),
        f"{p}.offset_mask.weight": n(om, c, std=0.4), f"{p}.offset_mask.bias": n(om, std=0.5),
        f"{p}.output_proj.weight": n(c, c, std=0.15), f"{p}.output_proj.bias": n(c, std=0.1),
    }
    rois = torch.randn(views, c, size, size, generator=gen)
    with torch.no_grad():
        aligned = M.cvem_align_forward(sd, rois[0:1].expand(views - 1, -1, -1, -1), rois[1:], group)
    out = dict(sd)
    out.update({"input.rois": rois, "expected.aligned": aligned})
    return {k: v.contiguous() for k, v in out.items()}


def bert_attention_params(sd, p, width, ctx_width, n):
    for name, d_in in (("query", width), ("key", ctx_width), ("value", ctx_width)):
        sd[f"{p}.self.{name}.weight"] = n(width, d_in, std=0.15)
        sd[f"{p}.self.{name}.bias"] = n(width, std=0.05)
    sd[f"{p}.output.dense.weight"] = n(width, width, std=0.15)
    sd[f"{p}.output.dense.bias"] = n(width, std=0.05)
    sd[f"{p}.output.LayerNorm.weight"] = 1 + n(width, std=0.1)
    sd[f"{p}.output.LayerNorm.bias"] = n(width, std=0.1)


def qformer_fixture(gen, ref_dir, width=64, layers=3, heads=4, inter=128, queries=8, vision=48, tokens=17):
    """Q-Former (queries only): cross-attention on layers 0 and 2 (freq 2), plus text-branch keys
    that must be ignored (checklist item 16)."""
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M

    def n(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    p = "Qformer.bert"
    sd = {
        "query_tokens": n(1, queries, width, std=1.0),
        f"{p}.embeddings.LayerNorm.weight": 1 + n(width, std=0.1),
        f"{p}.embeddings.LayerNorm.bias": n(width, std=0.1),
        f"{p}.embeddings.word_embeddings.weight": n(30, width, std=0.02),
        f"{p}.embeddings.position_ids": torch.arange(16, dtype=torch.float32)[None],
    }
    for i in range(layers):
        lp = f"{p}.encoder.layer.{i}"
        bert_attention_params(sd, lp + ".attention", width, width, n)
        if i % 2 == 0:
            bert_attention_params(sd, lp + ".crossattention", width, vision, n)
        for kind in ("", "_query"):  # the text FFN (intermediate/output) is unused
            sd[f"{lp}.intermediate{kind}.dense.weight"] = n(inter, width, std=0.15)
            sd[f"{lp}.intermediate{kind}.dense.bias"] = n(inter, std=0.05)
            sd[f"{lp}.output{kind}.dense.weight"] = n(width, inter, std=0.15)
            sd[f"{lp}.output{kind}.dense.bias"] = n(width, std=0.05)
            sd[f"{lp}.output{kind}.LayerNorm.weight"] = 1 + n(width, std=0.1)
            sd[f"{lp}.output{kind}.LayerNorm.bias"] = n(width, std=0.1)
    visual = torch.randn(2, tokens, vision, generator=gen)
    with torch.no_grad():
        q = M.qformer_forward(sd, visual, heads, 2)
    out = dict(sd)
    out.update({"input.visual": visual, "expected.qformer": q})
    return {k: v.contiguous() for k, v in out.items()}


def visual_fixture(gen, ref_dir, width=64, heads=4, mlp=128, patch=7, image=28, views=3):
    """The visual side assembled (checklist items 9-15), run by the reference's DynReferRef.visual
    on a stand-in object: ViT (1 block) + ln_vision + RoIAlign + cvem_align + cvem_mlp."""
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M

    def n(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    grid = image // patch
    p, c = "visual_encoder", width
    sd = {
        f"{p}.patch_embed.proj.weight": n(c, 3, patch, patch, std=0.1), f"{p}.patch_embed.proj.bias": n(c, std=0.02),
        f"{p}.cls_token": n(1, 1, c, std=0.5), f"{p}.pos_embed": n(1, grid * grid + 1, c, std=0.5),
        f"{p}.blocks.0.norm1.weight": 1 + n(c, std=0.1), f"{p}.blocks.0.norm1.bias": n(c, std=0.1),
        f"{p}.blocks.0.attn.qkv.weight": n(3 * c, c, std=0.15), f"{p}.blocks.0.attn.q_bias": n(c, std=0.1),
        f"{p}.blocks.0.attn.v_bias": n(c, std=0.1),
        f"{p}.blocks.0.attn.proj.weight": n(c, c, std=0.15), f"{p}.blocks.0.attn.proj.bias": n(c, std=0.02),
        f"{p}.blocks.0.norm2.weight": 1 + n(c, std=0.1), f"{p}.blocks.0.norm2.bias": n(c, std=0.1),
        f"{p}.blocks.0.mlp.fc1.weight": n(mlp, c, std=0.15), f"{p}.blocks.0.mlp.fc1.bias": n(mlp, std=0.02),
        f"{p}.blocks.0.mlp.fc2.weight": n(c, mlp, std=0.15), f"{p}.blocks.0.mlp.fc2.bias": n(c, std=0.02),
        "ln_vision.weight": 1 + n(c, std=0.1), "ln_vision.bias": n(c, std=0.1),
        "cvem_align.value_proj.weight": n(c, c, std=0.15), "cvem_align.value_proj.bias": n(c, std=0.1),
        "cvem_align.offset_mask_dw.weight": n(c, 2, 3, 3, std=0.3), "cvem_align.offset_mask_dw.bias": n(c, std=0.1),
        "cvem_align.offset_mask.weight": n(112, c, std=0.1), "cvem_align.offset_mask.bias": n(112, std=0.5),
        "cvem_align.output_proj.weight": n(c, c, std=0.15), "cvem_align.output_proj.bias": n(c, std=0.1),
        "cvem_mlp.0.weight": n(c, views * c, std=0.1), "cvem_mlp.0.bias": n(c, std=0.05),
        "cvem_mlp.2.weight": n(c, c, std=0.15), "cvem_mlp.2.bias": n(c, std=0.05),
        # the reference's visual() ends with the Q-Former; with no layers it is LN(query tokens)
        "query_tokens": n(1, 4, c, std=1.0),
        "Qformer.bert.embeddings.LayerNorm.weight": torch.ones(c), "Qformer.bert.embeddings.LayerNorm.bias": torch.zeros(c),
    }
    ref = M.DynReferRef.__new__(M.DynReferRef)
    ref.sd, ref.image_size, ref.patch = sd, image, patch
    ref.arch = {"vision_heads": heads, "qformer_heads": heads, "cross_attention_freq": 2, "dcn_group": 4}
    pixels = torch.randn(views, 3, image, image, generator=gen)
    # region boxes in view pixels, as views.py makes them (one reaches past the view by rounding)
    boxes = torch.tensor([[0, 0, 28, 28], [3, 5, 20, 27], [7, 9, 14, 29]], dtype=torch.float32)
    inter = ref.visual(pixels, boxes)
    out = {k: v for k, v in sd.items() if not k.startswith(("query_tokens", "Qformer"))}
    out.update({"input.pixels": pixels, "input.region_boxes": boxes})
    out.update({f"expected.{k}": inter[k] for k in ("vit", "rois", "aligned", "fused")})
    return {k: v.contiguous() for k, v in out.items()}


def heads_fixture(gen, ref_dir, qwidth=64, width=32, layers=2, heads=4, inter=64, text=48, queries=8):
    """Tag, attribute and class heads (checklist items 18-20) on given vocabulary embeddings, run by
    the reference's DynReferRef.heads on a stand-in object."""
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M

    def n(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    sd = {}
    for kind in ("tag", "attr"):
        sd[f"{kind}_vision_proj.weight"] = n(width, qwidth, std=0.2)
        sd[f"{kind}_vision_proj.bias"] = n(width, std=0.05)
        sd[f"{kind}_text_proj.weight"] = n(width, text, std=0.2)
        sd[f"{kind}_text_proj.bias"] = n(width, std=0.05)
        sd[f"{kind}_fc.weight"] = n(1, width, std=0.5)
        sd[f"{kind}_fc.bias"] = n(1, std=0.2)
        for i in range(layers):
            lp = f"{kind}_head.encoder.layer.{i}"
            bert_attention_params(sd, lp + ".crossattention", width, width, n)
            sd[f"{lp}.intermediate.dense.weight"] = n(inter, width, std=0.2)
            sd[f"{lp}.intermediate.dense.bias"] = n(inter, std=0.05)
            sd[f"{lp}.output.dense.weight"] = n(width, inter, std=0.2)
            sd[f"{lp}.output.dense.bias"] = n(width, std=0.05)
            sd[f"{lp}.output.LayerNorm.weight"] = 1 + n(width, std=0.1)
            sd[f"{lp}.output.LayerNorm.bias"] = n(width, std=0.1)
    ref = M.DynReferRef.__new__(M.DynReferRef)
    ref.sd, ref.arch = sd, {"head_heads": heads}
    ref.clip_embeds = torch.randn(10, text, generator=gen)
    ref.attr_counts = [2, 4, 2, 6, 2]
    ref.att_embeds = torch.randn(sum(ref.attr_counts), text, generator=gen)
    ref.ov_embeds = torch.randn(5, text, generator=gen)
    qout = torch.randn(1, queries, qwidth, generator=gen)
    tags, attrs, classes = ref.heads(qout)
    out = dict(sd)
    out.update({"input.queries": qout, "input.tags": ref.clip_embeds, "input.attribute_templates": ref.att_embeds,
                "input.templates_per_attribute": torch.tensor(ref.attr_counts, dtype=torch.float64),
                "input.classes": ref.ov_embeds,
                "expected.tags": tags, "expected.attributes": attrs, "expected.classes": classes})
    return {k: v.contiguous() for k, v in out.items()}


def clip_text_fixture(gen, ref_dir, width=32, layers=2, heads=4, context=12, vocab=40, embed=24):
    """EVA-CLIP text tower (checklist item 21) under eva_clip_psz14.pt's `text.*` keys (plus a
    visual key that must be ignored), token rows as the CLIP tokenizer writes them."""
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M

    def n(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    sd = {"token_embedding.weight": n(vocab, width, std=0.5), "positional_embedding": n(context, width, std=0.2),
          "ln_final.weight": 1 + n(width, std=0.1), "ln_final.bias": n(width, std=0.1),
          "text_projection": n(width, embed, std=0.2)}
    for i in range(layers):
        p = f"transformer.resblocks.{i}"
        sd.update({
            f"{p}.ln_1.weight": 1 + n(width, std=0.1), f"{p}.ln_1.bias": n(width, std=0.1),
            f"{p}.attn.in_proj_weight": n(3 * width, width, std=0.2), f"{p}.attn.in_proj_bias": n(3 * width, std=0.05),
            f"{p}.attn.out_proj.weight": n(width, width, std=0.2), f"{p}.attn.out_proj.bias": n(width, std=0.05),
            f"{p}.ln_2.weight": 1 + n(width, std=0.1), f"{p}.ln_2.bias": n(width, std=0.1),
            f"{p}.mlp.c_fc.weight": n(4 * width, width, std=0.2), f"{p}.mlp.c_fc.bias": n(4 * width, std=0.05),
            f"{p}.mlp.c_proj.weight": n(width, 4 * width, std=0.2), f"{p}.mlp.c_proj.bias": n(width, std=0.05),
        })
    sot, eot = vocab - 2, vocab - 1
    rows = [[sot, 5, 9, 3, eot], [sot, 12, eot], [sot] + list(range(1, context - 1)) + [eot]]
    tokens = torch.zeros(len(rows), context, dtype=torch.long)
    for r, ids in enumerate(rows):
        tokens[r, :len(ids)] = torch.tensor(ids)
    with torch.no_grad():
        embeds = M.clip_text_forward(sd, tokens, heads)
    out = {"text." + k: v for k, v in sd.items()}
    out["visual.proj"] = n(4, 4, std=1.0)
    out.update({"input.tokens": tokens.double(), "expected.embeds": embeds})
    return {k: v.contiguous() for k, v in out.items()}


CLIP_TEXTS = [
    "a photo of a dog", "the red-haired woman's hat", "Fish &amp; Chips", "  lots   of\tspace\n ", "3D CG rendering",
    "the  is wooden", "the striped pattern tone", "Café au lait, 2 cups!", "don't stop; it'll work", "&lt;b&gt;bold&amp;amp;",
    "young/baby", "the " + "very " * 80 + "long sentence",
]


def clip_bpe_fixture(out_dir, ref_dir, n_merges=300):
    """A small merges file learned here from the test texts (the real 49k-merge file is not ours to
    ship), and the reference ClipBPE's token rows for every text (checklist item 21)."""
    import collections
    import gzip
    import html
    import json
    import sys
    sys.path.insert(0, os.path.abspath(ref_dir))
    import model as M
    import regex

    b2u = M.bytes_to_unicode()
    pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)
    words = collections.Counter()
    for t in CLIP_TEXTS:
        t = regex.sub(r"\s+", " ", html.unescape(html.unescape(t)).strip()).strip().lower()
        for tok in regex.findall(pat, t):
            chars = [b2u[b] for b in tok.encode("utf-8")]
            words[tuple(chars[:-1] + [chars[-1] + "</w>"])] += 1
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    path = os.path.join(out_dir, "clip_bpe_merges.txt.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(("#version: test merges\n" + "\n".join(merges) + "\n").encode("utf-8"))
    bpe = M.ClipBPE(path)
    rows = bpe.tokenize(CLIP_TEXTS, 77)
    expected = {"texts": CLIP_TEXTS, "context": 77, "sot": bpe.sot, "eot": bpe.eot,
                "rows": [r[: r.index(bpe.eot) + 1] for r in rows.tolist()]}
    with open(os.path.join(out_dir, "clip_bpe.json"), "w") as f:
        json.dump(expected, f, indent=0)
        f.write("\n")
    print("wrote", path, "with", len(merges), "merges")


T5_CONFIGS = {
    "a": dict(vocab_size=60, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, tie_word_embeddings=False),
    "b": dict(vocab_size=50, d_model=24, d_kv=6, d_ff=40, num_layers=1, num_decoder_layers=3, num_heads=3,
              relative_attention_num_buckets=8, relative_attention_max_distance=20, tie_word_embeddings=True),
}


def t5_fixture(seed):
    import json
    from transformers import T5Config, T5ForConditionalGeneration
    from transformers.models.t5.modeling_t5 import T5Attention
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    out, meta = {}, {}
    for p, kw in T5_CONFIGS.items():
        cfg = T5Config(dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", pad_token_id=0,
                       eos_token_id=1, decoder_start_token_id=0, **kw)
        cfg.dense_act_fn = "gelu"  # LAVIS' override
        # transformers 5 always ties the input embeddings to `shared`; `tie_word_embeddings=False`
        # only turns off the output scaling. flan-t5-xl's own lm_head is kept as loaded: give "a" one.
        m = T5ForConditionalGeneration(cfg).eval()
        with torch.no_grad():
            for k, v in m.state_dict().items():
                if "layer_norm" in k:
                    v.copy_(1.0 + 0.1 * torch.randn(v.shape, generator=gen))
                elif "relative_attention_bias" in k:
                    v.copy_(0.5 * torch.randn(v.shape, generator=gen))
                elif v.dim() == 2 and k != "lm_head.weight":
                    v.copy_(torch.randn(v.shape, generator=gen) / math.sqrt(v.shape[1]))
            if not kw["tie_word_embeddings"]:
                head = torch.randn(m.lm_head.weight.shape, generator=gen) / math.sqrt(cfg.d_model)
                m.lm_head.weight = torch.nn.Parameter(head)
        assert m.decoder.embed_tokens.weight.data_ptr() == m.shared.weight.data_ptr()
        assert (m.lm_head.weight.data_ptr() == m.shared.weight.data_ptr()) == kw["tie_word_embeddings"]
        assert cfg.scale_decoder_outputs == kw["tie_word_embeddings"]
        with torch.no_grad():
            embeds = torch.randn(1, 40, cfg.d_model, generator=gen)
            ids = torch.randint(0, cfg.vocab_size, (2, 7), generator=gen)
            ids[:, 0] = 0
            encoded = m.encoder(inputs_embeds=embeds).last_hidden_state
            logits = m(encoder_outputs=(encoded.expand(2, -1, -1),), decoder_input_ids=ids).logits
        sd = {k: v for k, v in m.state_dict().items() if not k.endswith("embed_tokens.weight")}
        if kw["tie_word_embeddings"]:
            sd.pop("lm_head.weight")
        out.update({f"{p}.{k}": v.contiguous() for k, v in sd.items()})
        out[f"{p}.input.embeds"] = embeds
        out[f"{p}.expected.encoded"] = encoded
        out[f"{p}.input.decoder_ids"] = ids.to(torch.int64)
        out[f"{p}.expected.logits"] = logits
        meta[f"{p}.config"] = json.dumps(cfg.to_dict(), default=str)
    rel = torch.arange(-300, 301)
    out["buckets.bidirectional"] = T5Attention._relative_position_bucket(rel, True, 32, 128)
    out["buckets.causal"] = T5Attention._relative_position_bucket(rel, False, 32, 128)
    return out, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data"))
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--seed", type=int, default=1127)
    ap.add_argument("--only", help="regenerate one fixture (t5)")
    a = ap.parse_args()
    if a.only == "t5":
        tensors, meta = t5_fixture(a.seed)
        save_file(tensors, os.path.join(a.out, "t5.safetensors"), metadata=meta)
        return
    gen = torch.Generator().manual_seed(a.seed)
    fixtures = {"roi_align": roi_fixture(gen), "vit": vit_fixture(gen, a.ref), "align": align_fixture(gen, a.ref),
                "qformer": qformer_fixture(gen, a.ref), "visual": visual_fixture(gen, a.ref),
                "heads": heads_fixture(gen, a.ref), "clip_text": clip_text_fixture(gen, a.ref)}
    for name, tensors in fixtures.items():
        save_file(tensors, os.path.join(a.out, name + ".safetensors"))
        print("wrote", os.path.join(a.out, name + ".safetensors"))
    clip_bpe_fixture(a.out, a.ref)
    tensors, meta = t5_fixture(a.seed)
    save_file(tensors, os.path.join(a.out, "t5.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
