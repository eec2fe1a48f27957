"""Per-stage CPU time of the PyTorch reference and of `dynrefer bench model`, on the same model,
photo and box, in one run (DESIGN: speed is measured, not asserted).

    bash ../shared/reference/setup.sh
    cargo build --release
    DYNREFER_PHOTOS_DIR=/tmp/dynrefer_photos cargo test --release --test views_parity write_photos -- --ignored
    /tmp/refvenv/bin/python tools/bench_model.py --photos /tmp/dynrefer_photos [--config vitb]

On a GPU (burn's wgpu backend, `cargo build --release --features wgpu`; PyTorch on CUDA in fp16 or
bf16 autocast, as the official code runs):

    python tools/bench_model.py --photos DIR --config full --device cuda --autocast fp16 --ours-device gpu

Configurations (official file formats, random weights made with the reference's own helpers):
  vitb: EVA ViT 768 wide, 12 blocks, 12 heads, MLP 3072, image 224 (ViT-B sized); Q-Former 768 wide,
        12 layers, 32 queries; heads 256 wide, 2 layers; FlanT5-small sized T5 (d_model 512, 8+8
        layers, 6 heads x 64, FFN 1024), RAM / OVAD / COCO sized vocabularies (4585 / 117 / 80).
  tiny: the test fixture's sizes.
  full: DynRefer-FlanT5-XL's real sizes (4.1 B parameters; about 17 GB of files, 40 GB of memory).
Both run with the threads torch and rayon pick on this machine; beams 5, 30 new tokens at most.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CONFIGS = {
    "vitb": {"vision_width": 768, "vision_layers": 12, "vision_heads": 12, "vision_mlp": 3072, "patch": 14,
             "image_size": 224, "qformer_width": 768, "qformer_layers": 12, "qformer_heads": 12,
             "num_query_tokens": 32, "cross_attention_freq": 2, "head_width": 256, "head_layers": 2,
             "head_heads": 4, "t5_d_model": 512, "t5_d_kv": 64, "t5_d_ff": 1024, "t5_heads": 6, "t5_layers": 8,
             "clip_text_width": 64, "clip_text_layers": 1, "clip_text_heads": 4, "clip_embed_dim": 1024,
             "num_views": 3, "wide_vocab": True},
    "full": {"vision_width": 1408, "vision_layers": 39, "vision_heads": 16, "vision_mlp": 6144, "patch": 14,
             "image_size": 224, "qformer_width": 768, "qformer_layers": 12, "qformer_heads": 12,
             "num_query_tokens": 32, "cross_attention_freq": 2, "head_width": 256, "head_layers": 2,
             "head_heads": 4, "t5_d_model": 2048, "t5_d_kv": 64, "t5_d_ff": 5120, "t5_heads": 32, "t5_layers": 24,
             "clip_text_width": 768, "clip_text_layers": 12, "clip_text_heads": 12, "clip_embed_dim": 1024,
             "num_views": 3, "wide_vocab": True},
    "tiny": {"vision_width": 64, "vision_layers": 2, "vision_heads": 4, "vision_mlp": 256, "patch": 14,
             "image_size": 112, "qformer_width": 64, "qformer_layers": 2, "qformer_heads": 4, "num_query_tokens": 8,
             "cross_attention_freq": 2, "head_width": 32, "head_layers": 2, "head_heads": 4, "t5_d_model": 64,
             "t5_d_kv": 16, "t5_d_ff": 128, "t5_heads": 4, "t5_layers": 2, "clip_text_width": 32,
             "clip_text_layers": 2, "clip_text_heads": 4, "clip_embed_dim": 48, "num_views": 3, "wide_vocab": False},
}


def make_model(A, out, ref_dir, seed=7):
    sys.path.insert(0, os.path.abspath(ref_dir))
    import make_fixture as MF
    from transformers import T5Config, T5ForConditionalGeneration
    MF.INIT.clear()
    MF.INIT.update(MF.INIT_WIDE if A["wide_vocab"] else MF.INIT_TINY)
    g = MF.Gen(seed)
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "t5"), exist_ok=True)
    if A["wide_vocab"]:
        tags, attributes, classes = MF.wide_tags(4585), MF.wide_attributes(117), MF.wide_classes(80)
        tok = MF.build_tokenizer(rng, n_pieces=32100, extra_ids=100)
    else:
        tags, attributes, classes = MF.TAGS, MF.ATTRIBUTES, MF.CLASSES
        tok = MF.build_tokenizer(rng, 500)
    tok.save(os.path.join(out, "t5", "tokenizer.json"))
    with open(os.path.join(out, "ram_tag_list.txt"), "w") as f:
        f.write("\n".join(tags) + "\n")
    ovad = {"attributes": [{"id": i, "name": n, "type": n.split(":")[0], "parent_type": n.split(":")[0],
                            "is_has_att": t, "freq_set": "head"} for i, (n, t) in enumerate(attributes)]}
    json.dump(ovad, open(os.path.join(out, "ovad2000.json"), "w"))
    json.dump(classes, open(os.path.join(out, "coco.json"), "w"))
    import shutil
    shutil.copyfile(os.path.join(ROOT, "tests", "data", "e2e", "bpe_simple_vocab_16e6.txt.gz"),
                    os.path.join(out, "bpe_simple_vocab_16e6.txt.gz"))
    vocab = tok.get_vocab_size()
    cfg = T5Config(vocab_size=vocab, d_model=A["t5_d_model"], d_kv=A["t5_d_kv"], d_ff=A["t5_d_ff"],
                   num_layers=A["t5_layers"], num_decoder_layers=A["t5_layers"], num_heads=A["t5_heads"],
                   dropout_rate=0.0, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
                   eos_token_id=1, decoder_start_token_id=0)
    torch.manual_seed(seed)
    m = T5ForConditionalGeneration(cfg)
    with torch.no_grad():
        m.lm_head.weight = torch.nn.Parameter(torch.randn(m.lm_head.weight.shape) / math.sqrt(cfg.d_model))
    m.save_pretrained(os.path.join(out, "t5"))
    blip2, dyn, clip = MF.make_weights(A, g, vocab)
    torch.save(clip, os.path.join(out, "clip_text.pt"))
    torch.save({"model": blip2}, os.path.join(out, "blip2.pth"))
    torch.save({"model": dyn}, os.path.join(out, "dynrefer.pth"))
    arch = {"vision_heads": A["vision_heads"], "qformer_heads": A["qformer_heads"], "head_heads": A["head_heads"],
            "clip_text_heads": A["clip_text_heads"], "cross_attention_freq": A["cross_attention_freq"],
            "num_views": A["num_views"], "image_size": A["image_size"], "dcn_group": 4, "tag_threshold": 0.7,
            "max_txt_len": 32}
    json.dump(arch, open(os.path.join(out, "arch.json"), "w"))


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def t(fn, reps):
    out, times = None, []
    for i in range(reps + 1):
        sync()
        s = time.perf_counter()
        out = fn()
        sync()
        if i:
            times.append((time.perf_counter() - s) * 1e3)
    return out, statistics.median(times)


def bench_reference(d, ref_dir, image, box, beams, max_new, reps, device="cpu", autocast="none"):
    sys.path.insert(0, os.path.abspath(ref_dir))
    import contextlib
    import model as M
    import views as V
    ref = M.load_fixture_model(d)
    if device != "cpu":
        # the reference builds its index tensors where torch's default device says
        torch.set_default_device(device)
        ref.sd = {k: v.to(device) for k, v in ref.sd.items()}
        ref.t5 = ref.t5.to(device)
        ref.clip_embeds, ref.att_embeds, ref.ov_embeds = (e.to(device) for e in (ref.clip_embeds, ref.att_embeds, ref.ov_embeds))
    sd, a = ref.sd, ref.arch
    rgb = V.load_rgb(image)
    res = {}
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(autocast)
    mixed = torch.autocast(device_type=device.split(":")[0], dtype=dtype) if dtype else contextlib.nullcontext()
    with torch.no_grad(), mixed:
        (info, pixels, rboxes), res["views"] = t(lambda: V.build_views(rgb, box, a["num_views"], ref.image_size), reps)
        pixels, rboxes = torch.from_numpy(pixels).to(device), torch.from_numpy(rboxes).to(device)
        emb, res["vit"] = t(lambda: M.ln(M.vit_forward(sd, pixels, a["vision_heads"]), sd, "ln_vision", 1e-5), reps)
        nv, g, C = pixels.shape[0], ref.image_size // ref.patch, emb.shape[-1]

        def align_fuse():
            spatial = emb[:, 1:].reshape(nv, g, g, C).permute(0, 3, 1, 2)
            rois = M.roi_align_ref(spatial, rboxes, g, 1.0 / ref.patch, 2)
            al = M.cvem_align_forward(sd, rois[0:1].expand(nv - 1, -1, -1, -1), rois[1:], 4)
            feats = torch.cat([rois[0:1], al], 0)
            seq = torch.cat([emb[:, 0:1], feats.permute(0, 2, 3, 1).reshape(nv, g * g, C)], 1)
            fused_in = seq.permute(1, 0, 2).reshape(1, seq.shape[1], nv * C)
            return M.lin(torch.relu(M.lin(fused_in, sd, "cvem_mlp.0")), sd, "cvem_mlp.2")
        fused, res["align_fuse"] = t(align_fuse, reps)
        q, res["qformer"] = t(lambda: M.qformer_forward(sd, fused, a["qformer_heads"], a["cross_attention_freq"]), reps)
        (tag_s, _, _), res["heads"] = t(lambda: ref.heads(q), reps)
        tags = [ref.tag_list[i] for i in range(len(ref.tag_list)) if float(tag_s[i]) > 0.7]
        embeds, mask, _ = ref.t5_inputs(q, ref.control_string(tags))
        _, res["t5_encoder"] = t(lambda: ref.t5.encoder(inputs_embeds=embeds, attention_mask=mask), reps)
        (text, ids, _), gen = t(lambda: ref.generate(embeds, mask, beams, max_new), reps)
    res["per_token"] = (gen - res["t5_encoder"]) / max(len(ids), 1)
    res["tokens"] = len(ids)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", required=True)
    ap.add_argument("--config", default="vitb", choices=list(CONFIGS))
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "target", "release", "dynrefer"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=30)
    ap.add_argument("--device", default="cpu", help="where PyTorch runs: cpu or cuda")
    ap.add_argument("--autocast", default="none", choices=["none", "fp16", "bf16"],
                    help="PyTorch in mixed precision, as the official code runs on a GPU")
    ap.add_argument("--ours-device", default="cpu", choices=["cpu", "gpu"], help="dynrefer's --device")
    ap.add_argument("--quant", default="f32", choices=["f32", "f16", "q8", "q4"], help="dynrefer's bundle")
    ap.add_argument("--keep", help="keep the official files and the bundle in this folder (for profiling)")
    a = ap.parse_args()
    image = os.path.join(a.photos, "field.png")
    box = [212.0, 95.0, 431.0, 322.0]
    with tempfile.TemporaryDirectory() as scratch:
        td = a.keep or scratch
        os.makedirs(td, exist_ok=True)
        src, bundle = os.path.join(td, "src"), os.path.join(td, "bundle")
        make_model(CONFIGS[a.config], src, a.ref)
        f = lambda p: os.path.join(src, p)  # noqa: E731
        subprocess.run([a.cli, "convert", "--blip2", f("blip2.pth"), "--dynrefer", f("dynrefer.pth"), "--t5", f("t5"),
                        "--clip-text", f("clip_text.pt"), "--bpe", f("bpe_simple_vocab_16e6.txt.gz"),
                        "--tags", f("ram_tag_list.txt"), "--attributes", f("ovad2000.json"), "--classes", f("coco.json"),
                        "--arch", f("arch.json"), "--quant", a.quant, "--out", bundle], check=True, stdout=subprocess.DEVNULL)
        ours = json.loads(subprocess.run(
            [a.cli, "bench", "model", "--model", bundle, "--image", image, "--box", ",".join(map(str, box)),
             "--beams", str(a.beams), "--max-new-tokens", str(a.max_new_tokens), "--tag-threshold", "0.7",
             "--iters", str(a.reps), "--device", a.ours_device], check=True, capture_output=True, text=True).stdout)
        ref = bench_reference(src, a.ref, image, box, a.beams, a.max_new_tokens, a.reps, a.device, a.autocast)
    print(f"config {a.config}, PyTorch on {a.device} ({a.autocast}), dynrefer on {a.ours_device} ({a.quant})")
    print(f"config {a.config}, torch {torch.__version__} ({torch.get_num_threads()} threads), beams {a.beams}; "
          f"tokens: reference {ref['tokens']}, ours {ours['mean_tokens']:.1f}")
    print(f"{'stage':<12} {'PyTorch ms':>11} {'dynrefer ms':>12} {'speed-up':>9}")
    ms = ours["median_ms"]
    for name in ["views", "vit", "align_fuse", "qformer", "heads", "t5_encoder", "per_token"]:
        print(f"{name:<12} {ref[name]:11.2f} {ms[name]:12.2f} {ref[name] / ms[name]:8.2f}x")
    print(json.dumps(ours))


if __name__ == "__main__":
    main()
