"""Time the views stage: the reference views.py (OpenCV + Pillow, as the official code) against
`dynrefer bench views`, in one run, on the same photo and boxes.

    /tmp/refvenv/bin/python tools/bench_views.py [--image BIG.png] [--cli target/release/dynrefer]

Without --image it writes a 12-megapixel photo (scikit-image's astronaut upscaled to 4000x3000).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image")
    ap.add_argument("--cli", default=os.path.join(ROOT, "target", "release", "dynrefer"))
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--iters", type=int, default=9)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref))
    import views as V
    if not a.image:
        import skimage.data as skd
        from PIL import Image
        a.image = "/tmp/dynrefer_astronaut_12mp.png"
        if not os.path.exists(a.image):
            Image.fromarray(skd.astronaut()).resize((4000, 3000), Image.BICUBIC).save(a.image)
    rgb = V.load_rgb(a.image)
    h, w = rgb.shape[:2]
    boxes = [[0.3 * w, 0.3 * h, 0.5 * w, 0.57 * h], [0.025 * w, 0.83 * h, 0.15 * w, 0.98 * h], [0, 0, w, h]]
    print(f"photo {a.image} {w}x{h}; median of {a.iters} runs, ms")
    print(f"{'box':>40} {'views.py':>9} {'dynrefer':>9} {'ratio':>6}")
    for box in boxes:
        times = []
        for _ in range(a.iters):
            t = time.perf_counter()
            V.build_views(rgb, box, 3, 224)
            times.append((time.perf_counter() - t) * 1e3)
        ref = statistics.median(times)
        out = subprocess.run([a.cli, "bench", "views", "--image", a.image, "--box", ",".join(f"{v:g}" for v in box),
                              "--iters", str(a.iters)], capture_output=True, text=True, check=True).stdout
        ours = json.loads(out)["median_ms"]["views"]
        print(f"{str([round(v, 1) for v in box]):>40} {ref:9.1f} {ours:9.1f} {ref / ours:6.1f}")


if __name__ == "__main__":
    main()
