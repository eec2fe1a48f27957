"""Regenerate tests/data/e2e/custom_classes.json: the reference's class logits for class names of
our own on the tiny e2e model, so that `tests/model_e2e.rs` checks `describe --classes` (names
embedded by the bundle's text tower) against the reference, which embeds a classes file with the
EVA-CLIP text tower.

    DYNREFER_PHOTOS_DIR=/tmp/dynrefer_photos cargo test --test views_parity write_photos -- --ignored
    bash ../shared/reference/setup.sh
    /tmp/refvenv/bin/python tools/gen_custom_classes.py --photos /tmp/dynrefer_photos

The reference reads the e2e fixture's files with `coco.json` replaced by the names below, and
describes every model case of the fixture (one token of caption: only the heads matter here).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# upper case (lowered by the prompt), several words, punctuation, names the bundle has too (no
# commas: the command line splits names at them)
CLASSES = ["Red Square", "a small blue circle", "traffic light", "tree-top at dusk!", "cat"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", required=True, help="the PNGs written by the Rust test write_photos")
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--fixture", default=os.path.join(ROOT, "tests", "data", "e2e"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "e2e", "custom_classes.json"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref))
    import model as M
    import views as V

    exp = json.load(open(os.path.join(a.fixture, "expected.json")))
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "fixture")
        shutil.copytree(a.fixture, d)
        json.dump(CLASSES, open(os.path.join(d, "coco.json"), "w"))
        m = M.load_fixture_model(d)
        cases = []
        for c in exp["model_cases"]:
            rgb = V.load_rgb(os.path.join(a.photos, c["image"] + ".png"))
            res = m.describe(rgb, c["box"], c["num_views"], 1, 1, c["tag_threshold"])
            cases.append({"image": c["image"], "box": c["box"], "classes": res["classes"]})
    json.dump({"classes": CLASSES, "cases": cases}, open(a.out, "w"), indent=None, separators=(",", ":"))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
