"""OVAD attribute AP as the official ovamc/misc.py + ovad_evaluator.py compute it, for
tests/eval_ap.rs: scores clipped to [0, 1], label -1 ignored, scikit-learn's
average_precision_score per attribute with a positive (NaN otherwise), nanmean per group, x100.

Reads {"scores": [[float] * attributes] * instances, "labels": [[-1|0|1] * attributes] * instances,
       "freq_sets": ["head"|"medium"|"tail"] * attributes}
and prints {"aps": [float|null], "map_all", "head", "medium", "tail"} (null for NaN), floats as
their repr strings.
Usage: python ovad.py INPUT.json"""
import json
import sys

import numpy as np
from sklearn.metrics import average_precision_score

data = json.load(open(sys.argv[1], encoding="utf-8"))
pred = np.array(data["scores"], dtype=np.float64)
gt = np.array(data["labels"], dtype=np.int64)
freq_sets = data["freq_sets"]

if pred.max() > 1.0 or pred.min() < 0.0:
    pred[pred < 0.0] = 0.0
    pred[pred > 1.0] = 1.0
gt[gt == -1] = 2

aps = []
for i in range(gt.shape[1]):
    score, label = pred[:, i], gt[:, i]
    labelled = label < 2
    if labelled.sum() > 0:
        score, label = score[labelled], label[labelled]
    aps.append(average_precision_score(label, score) if (label == 1).sum() > 0 else float("nan"))


def group_ap(members):
    """GroupClassMetric.get_ap, then apply_percentage."""
    values = np.asarray([aps[i] for i in members])
    return None if np.isnan(values).all() else float(np.nanmean(values)) * 100


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


def as_json(x):
    return None if x is None or np.isnan(x) else float(x)


print(json.dumps(exact({
    "aps": [as_json(a) for a in aps],
    "map_all": group_ap(range(len(aps))),
    **{g: group_ap([i for i, f in enumerate(freq_sets) if f == g]) for g in ("head", "medium", "tail")},
})))
