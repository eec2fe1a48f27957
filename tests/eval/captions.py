"""The official caption metrics on a file of segments, for tests/eval_parity.rs.

Reads {"segments": [{"hypothesis": str, "references": [str, ...]}, ...]} and prints the
tokenized captions and pycocoevalcap's CIDEr-D and METEOR 1.5, each segment's and the corpus',
the way COCOEvalCap calls them (references and hypotheses tokenized separately).
Usage: python captions.py SEGMENTS.json"""
import json
import sys

from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

segments = json.load(open(sys.argv[1], encoding="utf-8"))["segments"]
gts = {i: [{"caption": r} for r in s["references"]] for i, s in enumerate(segments)}
res = {i: [{"caption": s["hypothesis"]}] for i, s in enumerate(segments)}
tokenizer = PTBTokenizer()
gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
cider, cider_each = Cider().compute_score(gts, res)
meteor, meteor_each = Meteor().compute_score(gts, res)
print(json.dumps({
    "hypotheses": [res[i][0] for i in range(len(segments))],
    "references": [gts[i] for i in range(len(segments))],
    "cider": {"segments": [float(x) for x in cider_each], "corpus": float(cider)},
    "meteor": {"segments": [float(x) for x in meteor_each], "corpus": float(meteor)},
}))
