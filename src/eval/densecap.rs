//! Dense-captioning mAP as DynRefer's `eval_densecap.py` computes it. That file is
//! densecap-pytorch's `DenseCapEvaluator`, a port of densecap's Lua `eval_utils` with its own
//! choices (IoU without the +1 pixel, a METEOR threshold of 0, 100 recall points), and the
//! paper's number comes from it, so this follows it step by step:
//!
//! 1. per image, ground-truth boxes overlapping by IoU ≥ 0.7 are merged greedily (the box that
//!    overlaps most others first) into one region with the mean box and every member's caption
//!    as references;
//! 2. the image's detections, by descending score, each take their best region (highest IoU);
//!    a detection is `ok` when that IoU is positive and the region is not taken yet;
//! 3. every detection's caption is scored by METEOR against its region's references;
//! 4. over all images, by descending score, a detection is a true positive at (IoU t, METEOR m)
//!    when it is `ok`, has IoU ≥ t and METEOR > m; AP is the mean over 100 recall levels of the
//!    best precision at that recall or more, for t ∈ {0.3..0.7} × m ∈ {−1, 0, 0.05..0.25}.
//!
//! `map` averages the 30 APs with a METEOR threshold (the paper's mAP, as a fraction), `det_map`
//! the 5 with m = −1 (detection only). Precision and recall are float32 as in the original's
//! torch tensors, scores are rounded to float32 as `torch.tensor` of Python floats does, and
//! boxes stay float64 as there.

use serde::Serialize;

/// A ground-truth region: its box (x0, y0, x1, y1) and caption.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub bbox: [f64; 4],
    pub caption: String,
}

/// A described region: its box (x0, y0, x1, y1), the score that ranks it, and its caption.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub bbox: [f64; 4],
    pub score: f64,
    pub caption: String,
}

/// One image's ground truth and detections.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageRegions {
    pub truths: Vec<Truth>,
    pub detections: Vec<Detection>,
}

/// The AP at one IoU threshold and one METEOR threshold (−1: detection only).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ApAt {
    pub iou: f64,
    pub meteor: f64,
    pub ap: f64,
}

/// The evaluation's figures, as fractions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DenseCapReport {
    /// Mean of the 30 APs with a METEOR threshold: the paper's mAP.
    pub map: f64,
    /// Mean of the 5 detection-only APs.
    pub det_map: f64,
    /// Every AP, IoU thresholds outer, METEOR thresholds inner.
    pub ap: Vec<ApAt>,
    /// Merged ground-truth regions of the images that count (the recall's denominator).
    pub regions: usize,
    /// Detections ranked.
    pub detections: usize,
}

pub const IOU_THRESHOLDS: [f64; 5] = [0.3, 0.4, 0.5, 0.6, 0.7];
pub const METEOR_THRESHOLDS: [f64; 7] = [-1.0, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25];
const MERGE_IOU: f64 = 0.7;

/// A detection's match, in the order of the original's records.
struct Record<'a> {
    score: f32,
    ok: bool,
    iou: f64,
    candidate: String,
    references: &'a [String],
}

/// Merged ground-truth regions: mean box and the members' captions.
struct Region {
    bbox: [f64; 4],
    references: Vec<String>,
}

/// Dense-captioning mAP over `images`. `meteor` scores every detection's caption against its
/// references in one call (one METEOR session, as the original) and answers one score per
/// segment: the jar's per-segment line, e.g. `|s| meteor.score(s).map(|m| m.segments)` with a
/// [`super::meteor::Meteor`]. Captions go to it with their whitespace collapsed (the original
/// splits and rejoins them); a detection that overlaps no region goes with no references, which
/// the jar scores as 0 (`SCORE |||  ||| hyp`), and it is a false positive whatever its score.
///
/// As the original, an image without detections is skipped and its regions are not counted
/// as positives; so is an image without ground truth or whose boxes are all empty (there the
/// original's matching raises and its `try` skips the image). Ties in score keep the input order
/// (images in order, detections in order); torch's `sort` leaves ties unspecified. With nothing
/// to rank the original fails; this answers zeros.
///
/// # Panics
/// If `meteor` answers a number of scores other than the number of segments it was given.
pub fn dense_cap_map<E>(
    images: &[ImageRegions],
    meteor: impl FnOnce(&[(&str, &[String])]) -> Result<Vec<f64>, E>,
) -> Result<DenseCapReport, E> {
    let merged: Vec<(&ImageRegions, Vec<Region>)> = images
        .iter()
        .filter(|image| !image.detections.is_empty())
        .map(|image| (image, merge_truths(&image.truths)))
        .filter(|(_, regions)| !regions.is_empty())
        .collect();
    let regions = merged.iter().map(|(_, regions)| regions.len()).sum();
    let mut records = Vec::new();
    for (image, image_regions) in &merged {
        let mut used = vec![false; image_regions.len()];
        let scores: Vec<f32> = image.detections.iter().map(|d| d.score as f32).collect();
        for d in descending(&scores) {
            let detection = &image.detections[d];
            let (best, iou) = argmax(image_regions.iter().map(|r| iou(&detection.bbox, &r.bbox)));
            let overlaps = iou > 0.0;
            let ok = overlaps && !used[best];
            used[best] |= ok;
            records.push(Record {
                score: scores[d],
                ok,
                iou,
                candidate: collapse_whitespace(&detection.caption),
                references: if overlaps { &image_regions[best].references } else { &[] },
            });
        }
    }

    let meteors = if records.is_empty() {
        Vec::new()
    } else {
        let segments: Vec<(&str, &[String])> = records.iter().map(|r| (r.candidate.as_str(), r.references)).collect();
        meteor(&segments)?
    };
    assert_eq!(meteors.len(), records.len(), "METEOR answers one score per segment");

    let scores: Vec<f32> = records.iter().map(|r| r.score).collect();
    let order = descending(&scores);
    let mut ap = Vec::new();
    for iou in IOU_THRESHOLDS {
        for min_meteor in METEOR_THRESHOLDS {
            let hits: Vec<bool> = order
                .iter()
                .map(|&i| {
                    let r = &records[i];
                    !r.references.is_empty() && r.iou >= iou && r.ok && meteors[i] > min_meteor
                })
                .collect();
            ap.push(ApAt { iou, meteor: min_meteor, ap: average_precision(&hits, regions) });
        }
    }
    let mean = |aps: Vec<f64>| aps.iter().sum::<f64>() / aps.len() as f64;
    Ok(DenseCapReport {
        map: mean(ap.iter().filter(|a| a.meteor != -1.0).map(|a| a.ap).collect()),
        det_map: mean(ap.iter().filter(|a| a.meteor == -1.0).map(|a| a.ap).collect()),
        ap,
        regions,
        detections: records.len(),
    })
}

/// IoU as torchvision's `box_iou`: no +1 pixel, 0/0 (two empty boxes) is NaN.
fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter)
}

/// torch's `max(dim)` on CPU: the first maximum, or the first NaN, which wins over everything.
fn argmax(values: impl Iterator<Item = f64>) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v.is_nan() {
            return (i, v);
        }
        if i == 0 || v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// Indices by descending score, ties in input order; NaN first, as torch sorts it.
fn descending(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (scores[a], scores[b]);
        b.is_nan().cmp(&a.is_nan()).then(b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal))
    });
    order
}

/// `merge_boxes` + `pluck_boxes`: repeatedly take the box that the most boxes overlap by
/// IoU ≥ 0.7 (first on ties), merge it with those it overlaps, and remove them all. A box that
/// overlaps nothing, itself included (an empty box: its IoU with itself is NaN), is dropped.
fn merge_truths(truths: &[Truth]) -> Vec<Region> {
    let n = truths.len();
    let mut overlap: Vec<Vec<f64>> =
        truths.iter().map(|a| truths.iter().map(|b| iou(&a.bbox, &b.bbox)).collect()).collect();
    let mut regions = Vec::new();
    loop {
        let counts = (0..n).map(|j| (0..n).filter(|&i| overlap[i][j] >= MERGE_IOU).count());
        let (top, count) = counts.enumerate().fold((0, 0), |best, (j, c)| if c > best.1 { (j, c) } else { best });
        if count == 0 {
            return regions;
        }
        let members: Vec<usize> = (0..n).filter(|&j| overlap[top][j] >= MERGE_IOU).collect();
        for &m in &members {
            overlap[m].fill(0.0);
            for row in overlap.iter_mut() {
                row[m] = 0.0;
            }
        }
        let mut bbox = [0.0; 4];
        for &m in &members {
            for (sum, v) in bbox.iter_mut().zip(truths[m].bbox) {
                *sum += v;
            }
        }
        regions.push(Region {
            bbox: bbox.map(|s| s / members.len() as f64),
            references: members.iter().map(|&m| collapse_whitespace(&truths[m].caption)).collect(),
        });
    }
}

/// `' '.join(text.split())`: what the original's special-token filter (empty for DynRefer)
/// leaves of a caption. Python's `split` also breaks at the separators U+001C..U+001F.
fn collapse_whitespace(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The recall levels of `torch.arange(0, 1, 0.01)` in float32: `0.01 * i` in double, rounded.
/// (torch's vectorised CPU kernel may round a few of them one ulp off, depending on the vector
/// width; that only shows when a recall is exactly k/100.)
fn recall_levels() -> impl Iterator<Item = f32> {
    (0..100).map(|i| (0.01 * i as f64) as f32)
}

/// Max-interpolated AP over the 100 recall levels, of ranked hits against `positives`, in
/// float32 as the original's tensors.
fn average_precision(hits: &[bool], positives: usize) -> f64 {
    let mut tp = 0u32;
    let (recall, precision): (Vec<f32>, Vec<f32>) = hits
        .iter()
        .enumerate()
        .map(|(i, &hit)| {
            tp += u32::from(hit);
            (tp as f32 / positives as f32, tp as f32 / (i + 1) as f32)
        })
        .unzip();
    // Recall never decreases, so "precision where recall ≥ t" is a suffix of the ranking.
    let mut best_after = precision.clone();
    for i in (0..best_after.len().saturating_sub(1)).rev() {
        best_after[i] = best_after[i].max(best_after[i + 1]);
    }
    let sum: f64 = recall_levels()
        .map(|t| {
            let first = recall.partition_point(|&r| r < t);
            best_after.get(first).map_or(0.0, |&p| f64::from(p))
        })
        .sum();
    sum / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(bbox: [f64; 4], caption: &str) -> Truth {
        Truth { bbox, caption: caption.into() }
    }

    fn detection(bbox: [f64; 4], score: f64, caption: &str) -> Detection {
        Detection { bbox, score, caption: caption.into() }
    }

    #[test]
    fn merged_truths_matched_once_each() {
        // A and B overlap by 0.9 and merge (mean box [0, 0, 10, 9.5]); C stays alone: 2 positives.
        let image = ImageRegions {
            truths: vec![
                truth([0., 0., 10., 10.], "a"),
                truth([0., 0., 10., 9.], " b\t"),
                truth([20., 20., 30., 30.], "c"),
            ],
            detections: vec![
                detection([0., 0., 10., 9.5], 0.7, "again"),
                detection([0., 0., 10., 9.5], 0.9, "x  y"),
                detection([20., 20., 30., 30.], 0.8, "z"),
            ],
        };
        let mut seen = Vec::new();
        let report = dense_cap_map(&[image], |segments| {
            seen = segments.iter().map(|(h, r)| (h.to_string(), r.to_vec())).collect();
            Ok::<_, ()>(vec![0.3, 0.0, 0.5])
        })
        .unwrap();
        let refs = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            seen,
            vec![("x y".into(), refs(&["a", "b"])), ("z".into(), refs(&["c"])), ("again".into(), refs(&["a", "b"]))]
        );
        assert_eq!((report.regions, report.detections), (2, 3));
        // Detection only: hit, hit, duplicate → precision 1 up to recall 1.
        assert_eq!(report.det_map, 1.0);
        // METEOR > m for m ≥ 0 only for the first: recall 0.5 at precision 1, so 51 levels of 100.
        assert!(report.ap.iter().all(|a| a.ap == if a.meteor == -1.0 { 1.0 } else { 0.51 }));
        assert!((report.map - 0.51).abs() < 1e-15);
    }

    #[test]
    fn images_without_detections_do_not_count() {
        let images = [
            ImageRegions {
                truths: vec![
                    truth([0., 0., 10., 10.], "a"),
                    truth([20., 0., 30., 10.], "b"),
                    truth([40., 0., 50., 10.], "c"),
                ],
                detections: vec![detection([0., 0., 10., 10.], 0.5, "a"), detection([60., 0., 70., 10.], 0.9, "far")],
            },
            ImageRegions { truths: vec![truth([0., 0., 10., 10.], "unseen")], detections: vec![] },
        ];
        let report = dense_cap_map(&images, |s| Ok::<_, ()>(vec![1.0; s.len()])).unwrap();
        assert_eq!(report.regions, 3);
        // A false positive first, then one hit of three: recall 1/3 (float32 0.33333334) reaches
        // the levels 0..0.33, at precision 1/2.
        assert!(report.ap.iter().all(|a| a.ap == 0.17));
    }

    #[test]
    fn recall_levels_are_torch_float32() {
        let levels: Vec<f32> = recall_levels().collect();
        assert_eq!((levels.len(), levels[0], levels[99]), (100, 0.0, 0.99));
        assert_eq!(collapse_whitespace(" a\u{1f}b\u{3000}c\n"), "a b c");
    }
}
