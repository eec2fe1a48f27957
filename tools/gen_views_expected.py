"""Regenerate tests/data/views_expected.json (and the small JPEG fixtures) with the PyTorch reference.

The photos are made by the Rust tests (so that CI needs no Python):

    DYNREFER_PHOTOS_DIR=/tmp/dynrefer_photos cargo test --test views_parity write_photos -- --ignored
    bash ../shared/reference/setup.sh
    /tmp/refvenv/bin/python tools/gen_views_expected.py --photos /tmp/dynrefer_photos

For every case this runs the reference `views.py` with its default backend (the OpenCV and Pillow
calls of the official code) and stores the view boxes, ratios, region boxes and SHA-256 digests of
the uint8 crops and of the normalised pixel tensor, so the Rust test can demand bit-identity
without storing pixels. It also checks the reference's pure-numpy backend against it.
"""
import argparse
import hashlib
import io
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


SETTINGS = [(3, 224), (2, 224), (5, 224), (1, 224), (3, 112), (3, 364), (4, 224), (3, 224)]


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def boxes_for(w, h, rng):
    """Boxes of every kind: whole, thin, sub-pixel, tiny, corners, each border, strips, random."""
    bs = [
        [0, 0, w, h],
        [0.1 * w, 0.6 * h, 0.6 * w, 0.9 * h],
        [int(0.3 * w), int(0.2 * h), int(0.7 * w), int(0.8 * h)],
        [w - 3, 5, w, h - 5],                      # thin at the right border
        [10.4, 20.7, 11.1, 60.2] if h > 61 and w > 12 else [1.4, 2.7, 2.1, 6.2],  # narrower than a pixel
        [w / 2, h / 2, w / 2 + 6, h / 2 + 5],      # tiny
        [0, h - 12, 40.5, h],                      # bottom-left
        [2.5, 1.5, w - 2.25, 7.75],                # thin strip along the top
        [0, 0, 1, 1],                              # 1x1 top-left corner
        [w - 1, h - 1, w, h],                      # 1x1 bottom-right corner
        [w - 0.4, 3, w, 9],                        # sub-pixel at the right edge
        [0, 0.3 * h, 0.2 * w, 0.7 * h],            # touching the left border
        [0.4 * w, 0, 0.6 * w, 0.25 * h],           # touching the top border
        [0.7 * w, 0.5 * h, w, 0.6 * h],            # touching the right border
        [0.2 * w, 0.8 * h, 0.5 * w, h],            # touching the bottom border
        [0.37 * w, 0.11 * h, 0.52 * w, 0.95 * h],
        [0.5 * w - 0.25, 0.5 * h - 0.25, 0.5 * w + 0.25, 0.5 * h + 0.25],  # sub-pixel both ways
    ]
    for _ in range(8):
        x1, x2 = sorted(rng.uniform(0, w, 2))
        y1, y2 = sorted(rng.uniform(0, h, 2))
        if x2 - x1 > 0.01 and y2 - y1 > 0.01:
            bs.append([x1, y1, x2, y2])
    return [[round(float(v), 4) for v in b] for b in bs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", required=True, help="folder of the PNGs written by the Rust test")
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data"))
    ap.add_argument("--seed", type=int, default=20261127)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref))
    import views as V
    from PIL import Image, ImageOps

    rng = np.random.default_rng(a.seed)
    names = sorted(f[:-4] for f in os.listdir(a.photos) if f.endswith(".png"))
    photos, cases = {}, []
    pure_mismatch = 0
    for name in names:
        rgb = V.load_rgb(os.path.join(a.photos, name + ".png"))
        h, w = rgb.shape[:2]
        photos[name] = {"width": w, "height": h, "rgb_sha256": sha(rgb)}
        for i, box in enumerate(boxes_for(w, h, rng)):
            # the fixed boxes at the official settings; the random ones through other counts and sizes
            nv, size = (3, 224) if i < 17 else SETTINGS[(i - 17) % len(SETTINGS)]
            try:
                info, pixels, _ = V.build_views(rgb, box, nv, size)
            except Exception as e:  # the official code fails on boxes that cover no whole pixel
                print(f"skip {name} {box}: {type(e).__name__}: {e}")
                continue
            crops = []
            for v in info["views"]:
                x1, y1, x2, y2 = v["box"]
                crops.append(sha(V._LibBackend.bicubic(np.ascontiguousarray(rgb[y1:y2, x1:x2]), size)))
            pinfo, ppix, _ = V.build_views(rgb, box, nv, size, pure=True)
            if [v["box"] for v in pinfo["views"]] != [v["box"] for v in info["views"]] or not np.array_equal(ppix, pixels):
                pure_mismatch += 1
            cases.append({
                "image": name, "box": box, "num_views": nv, "size": size,
                "views": [{k: v[k] for k in ("box", "ratio", "region_box")} for v in info["views"]],
                "crops_sha256": crops,
                "pixels_sha256": sha(pixels.astype("<f4")),
            })
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "views_expected.json"), "w") as f:
        json.dump({"generator": "tools/gen_views_expected.py", "seed": a.seed, "photos": photos, "cases": cases}, f, indent=0)
        f.write("\n")
    print(f"{len(cases)} cases over {len(photos)} photos; pure-numpy backend disagreed on {pure_mismatch}")

    # A camera-like JPEG (4:2:0) that carries EXIF orientation 6 ("rotate 90 clockwise to view").
    src = Image.open(os.path.join(a.photos, "field.png")).convert("RGB").resize((160, 120), Image.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    src.save(buf, "JPEG", quality=85, subsampling=2, exif=exif.tobytes())
    with open(os.path.join(a.out, "exif6.jpg"), "wb") as f:
        f.write(buf.getvalue())
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        stored = np.array(im.convert("RGB"))
        upright = np.array(ImageOps.exif_transpose(im).convert("RGB"))
    # libjpeg (PIL) and the Rust decoder differ by a few levels; the test bounds that difference.
    Image.fromarray(upright).save(os.path.join(a.out, "exif6_pil.png"))
    meta = {"stored_size": [stored.shape[1], stored.shape[0]], "upright_size": [upright.shape[1], upright.shape[0]]}
    with open(os.path.join(a.out, "exif6.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("exif6.jpg:", meta)


if __name__ == "__main__":
    main()
