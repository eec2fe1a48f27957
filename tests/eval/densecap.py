"""Dense-captioning mAP as DynRefer's eval_densecap.py (densecap-pytorch's DenseCapEvaluator)
computes it, ported to numpy for tests/eval_ap.rs, with pycocoevalcap's METEOR 1.5.

Reads {"images": [{"truths": [{"bbox": [x0, y0, x1, y1], "caption": str}, ...],
                   "detections": [{"bbox": [...], "score": float, "caption": str}, ...]}, ...]}
and prints the APs, map, det_map, the region and detection counts, and every METEOR segment
(candidate, references, score) as and in the order the evaluator sends them; floats as their
repr strings.
The original's tensors: boxes float64, scores float32 (torch.tensor of Python floats), tp/fp,
recall and precision float32, recall levels torch.arange(0, 1, 0.01) in float32.
Usage: python densecap.py INPUT.json"""
import json
import sys

import numpy as np
from pycocoevalcap.meteor.meteor import Meteor

MIN_OVERLAPS = [0.3, 0.4, 0.5, 0.6, 0.7]
MIN_METEORS = [-1, 0, 0.05, 0.1, 0.15, 0.2, 0.25]


def box_iou(a, b):
    """torchvision.ops.box_iou: pairwise IoU of x0y0x1y1 boxes, no +1."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def merge_boxes(boxes, thr=0.7):
    """Groups of box indices: the column with most IoU >= thr first (first on ties)."""
    iou = box_iou(boxes, boxes)
    groups = []
    while True:
        good = iou >= thr
        counts = good.sum(0)
        top = int(np.argmax(counts))
        if counts[top] == 0:
            return groups
        members = np.nonzero(good[top])[0]
        groups.append(members)
        iou[members, :] = 0
        iou[:, members] = 0


class Evaluator:
    def __init__(self):
        self.scores = []
        self.records = []
        self.npos = 0

    def add(self, scores, boxes, text, target_boxes, target_text):
        assert scores.size > 0
        groups = merge_boxes(target_boxes)
        merged_boxes = np.array([target_boxes[g].mean(0) for g in groups]).reshape(-1, 4)
        merged_text = [[target_text[j] for j in g] for g in groups]
        order = np.argsort(-scores, kind="stable")
        used = np.zeros(len(groups), dtype=bool)
        iou = box_iou(boxes, merged_boxes)
        records = []
        for d in order:
            best = int(np.argmax(iou[d]))  # raises without ground truth, as torch's max does
            largest = float(iou[d, best])
            ok = largest > 0 and not used[best]
            if ok:
                used[best] = True
            references = merged_text[best] if largest > 0 else []
            records.append({"ok": ok, "iou": largest, "candidate": text[d], "references": references})
        self.records += records
        self.npos += len(groups)
        self.scores.append(scores[order])

    def meteors(self):
        """One METEOR session over every record, captions split and rejoined on whitespace (the
        special-token filter, empty here): the segments sent and their scores."""
        references = {i: [" ".join(r.split()) for r in rec["references"]] for i, rec in enumerate(self.records)}
        candidates = {i: [" ".join(rec["candidate"].split())] for i, rec in enumerate(self.records)}
        segments = [{"candidate": candidates[i][0], "references": references[i]} for i in range(len(self.records))]
        if not self.records:
            return segments, []
        _, scores = Meteor().compute_score(references, candidates)
        return segments, [float(s) for s in scores]

    def evaluate(self):
        segments, meteors = self.meteors()
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0, np.float32)
        order = np.argsort(-scores, kind="stable")
        levels = (np.arange(100) * 0.01).astype(np.float32)
        aps = []
        for min_overlap in MIN_OVERLAPS:
            for min_meteor in MIN_METEORS:
                tp = np.zeros(len(order), np.float32)
                fp = np.zeros(len(order), np.float32)
                for i, k in enumerate(order):
                    r = self.records[k]
                    hit = len(r["references"]) > 0 and r["iou"] >= min_overlap and r["ok"] and meteors[k] > min_meteor
                    tp[i], fp[i] = (1, 0) if hit else (0, 1)
                tp, fp = np.cumsum(tp), np.cumsum(fp)
                rec = tp / np.float32(self.npos)
                prec = tp / (fp + tp)
                ap = 0.0
                for t in levels:
                    masked = prec * (rec >= t)
                    ap += float(masked.max()) if masked.size else 0.0
                aps.append({"iou": min_overlap, "meteor": float(min_meteor), "ap": ap / len(levels)})
        with_meteor = [a["ap"] for a in aps if a["meteor"] != -1]
        detection = [a["ap"] for a in aps if a["meteor"] == -1]
        return {
            "map": sum(with_meteor) / len(with_meteor),
            "det_map": sum(detection) / len(detection),
            "ap": aps,
            "regions": self.npos,
            "detections": len(self.records),
            "segments": [dict(segment, meteor=m) for segment, m in zip(segments, meteors)],
        }


def exact(value):
    """Floats as repr strings: they parse back to the same double anywhere (serde_json's default
    float parsing may be one ulp off)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value


def main():
    images = json.load(open(sys.argv[1], encoding="utf-8"))["images"]
    ev = Evaluator()
    for image in images:
        if not image["detections"]:
            continue  # an image without predictions is skipped, its ground truth not counted
        try:
            ev.add(
                np.array([d["score"] for d in image["detections"]], dtype=np.float32),
                np.array([d["bbox"] for d in image["detections"]], dtype=np.float64),
                [d["caption"] for d in image["detections"]],
                np.array([t["bbox"] for t in image["truths"]], dtype=np.float64),
                [t["caption"] for t in image["truths"]],
            )
        except (IndexError, ValueError):
            pass  # the original's "sample error": the image is skipped
    print(json.dumps(exact(ev.evaluate())))


main()
