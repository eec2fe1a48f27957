"""Regenerate tests/data/e2e/: a tiny DynRefer in the official file formats and the reference's
answers for it, so that `tests/model_e2e.rs` runs the real `dynrefer convert` + `describe` in CI
without Python.

    DYNREFER_PHOTOS_DIR=/tmp/dynrefer_photos cargo test --test views_parity write_photos -- --ignored
    bash ../shared/reference/setup.sh
    /tmp/refvenv/bin/python tools/gen_e2e_fixture.py --photos /tmp/dynrefer_photos

It runs the reference's own `make_fixture.py` (tiny profile: same architecture, calibration and
expected outputs) with three substitutions, because public files may not be committed here:
the test photos are the Rust tests' generated scenes, the CLIP BPE merges are the small file learned
by `gen_model_fixtures.py` (tests/data/clip_bpe_merges.txt.gz), and the boxes are our own. After
the reference has computed everything, the EVA-CLIP token table is cut to the rows that BPE can
produce (3.2 MB of unused fp16 rows otherwise); the rows it keeps are untouched.
"""
import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CASES = [
    {"image": "field", "box": [212.0, 95.0, 431.0, 322.0]},
    {"image": "field", "box": [0.0, 0.0, 640.0, 480.0]},
    {"image": "tower", "box": [30.25, 400.5, 120.75, 510.0]},
    {"image": "panorama", "box": [700.0, 20.0, 1010.0, 190.0]},
    {"image": "square", "box": [100.4, 50.7, 101.1, 90.2]},
    {"image": "gray", "box": [40.0, 60.0, 260.0, 240.0]},
    {"image": "alpha", "box": [5.5, 10.5, 150.0, 140.0]},
    {"image": "thumb", "box": [20.0, 8.0, 70.0, 60.0]},
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", required=True, help="the PNGs written by the Rust test write_photos")
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "e2e"))
    ap.add_argument("--seed", type=int, default=20261127)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref))
    import make_fixture as MF

    names = sorted({c["image"] for c in CASES})
    MF.IMAGES = names
    MF.materialize_images = lambda _dst: {n: os.path.join(a.photos, n + ".png") for n in names}
    MF.view_cases = lambda: []
    MF.model_cases = lambda profile="tiny": [dict(c) for c in CASES]
    merges = os.path.join(ROOT, "tests", "data", "clip_bpe_merges.txt.gz")
    MF.bpe_file = lambda dst: shutil.copyfile(merges, dst)
    sys.argv = ["make_fixture.py", "--out", a.out, "--seed", str(a.seed), "--img-cache", a.photos]
    MF.main()

    # keep the token rows the small BPE can produce: 256 bytes, 256 end-of-word bytes, the merges, 2 specials
    import gzip
    n_merges = len(gzip.open(merges, "rt", encoding="utf-8").read().split("\n")[1:48895])
    rows = 512 + n_merges + 2
    path = os.path.join(a.out, "clip_text.pt")
    clip = torch.load(path, map_location="cpu", weights_only=False)
    clip["text.token_embedding.weight"] = clip["text.token_embedding.weight"][:rows].clone()
    torch.save(clip, path)
    exp = json.load(open(os.path.join(a.out, "expected.json")))
    for c in exp["model_cases"]:
        c.pop("tag_scores_all", None)
    json.dump(exp, open(os.path.join(a.out, "expected.json"), "w"), indent=None, separators=(",", ":"))
    print("kept", rows, "CLIP token rows; wrote", a.out)


if __name__ == "__main__":
    main()
