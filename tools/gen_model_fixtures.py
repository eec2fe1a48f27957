"""Regenerate the small component fixtures of the model tests (tests/data/*.safetensors) with
PyTorch and torchvision, the implementations the official model runs:

    bash ../shared/reference/setup.sh
    /tmp/refvenv/bin/python tools/gen_model_fixtures.py

roi_align.safetensors: torchvision.ops.roi_align(aligned=False) on random feature maps and boxes of
every kind (the region boxes of real views, sub-pixel, corner, reaching outside the view), for
each case `c{i}.features [R,C,H,W]`, `c{i}.boxes [R,4]`, `c{i}.expected [R,C,P,P]` and
`c{i}.config [height, width, output, spatial_scale, sampling_ratio]`.
"""
import argparse
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data"))
    ap.add_argument("--seed", type=int, default=1127)
    a = ap.parse_args()
    gen = torch.Generator().manual_seed(a.seed)
    save_file(roi_fixture(gen), os.path.join(a.out, "roi_align.safetensors"))
    print("wrote", os.path.join(a.out, "roi_align.safetensors"))


if __name__ == "__main__":
    main()
