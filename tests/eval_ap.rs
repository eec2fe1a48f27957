//! The dense-captioning mAP and the OVAD attribute AP against independent Python ports of the
//! official evaluation code (`tests/eval/densecap.py` with pycocoevalcap's METEOR 1.5,
//! `tests/eval/ovad.py` with scikit-learn), both run in the venv of `tools/eval-reference.sh`,
//! on generated fixtures made to hit the corners: merged ground truth, tied scores, IoU exactly
//! at the thresholds, detections that overlap nothing, empty and unicode captions, skipped images.
#![cfg(feature = "cli")]

mod common;

use dynrefer::eval::densecap::{Detection, ImageRegions, Truth, dense_cap_map};
use dynrefer::eval::meteor::Meteor;
use dynrefer::eval::ovad::{FreqSet, attribute_ap, ovad_report};
use dynrefer::scenes::Rng;
use serde_json::{Value, json};

use common::eval_reference::{meteor_jar, number};

fn run_reference(script: &str, input: &Value, name: &str) -> Value {
    common::eval_reference::run("eval-ap", script, input, name)
}

fn close(got: f64, want: &Value, what: &str) {
    let want = number(want);
    assert!((got - want).abs() <= 1e-9, "{what}: {got} vs {want}");
}

const WORDS: &[&str] = &[
    "a",
    "the",
    "man",
    "woman",
    "red",
    "shirt",
    "holding",
    "on",
    "dog",
    "white",
    "black",
    "sitting",
    "table",
    "left",
    "small",
    "large",
    "with",
    "in",
    "front",
    "café",
    "naïve",
    "東京",
    "москва",
    "straße",
    "man's",
    "t-shirt",
    "3",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect::<Vec<_>>().join(" ")
}

/// A region caption, sometimes empty or with stray whitespace (the evaluator collapses it).
fn caption(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => String::new(),
        1 => format!("  {}\t{} \n", words(rng, 2), words(rng, 2)),
        2 => format!("{}\u{3000}{}", words(rng, 1), words(rng, 3)),
        _ => {
            let n = 1 + rng.below(6);
            words(rng, n)
        }
    }
}

/// Scores from a few values (ties), and some that differ only beyond float32 (tied there).
fn score(rng: &mut Rng) -> f64 {
    match rng.below(4) {
        0 => rng.below(5) as f64 / 4.0,
        1 => 0.5 + 1e-12 * rng.below(3) as f64,
        _ => rng.unit(),
    }
}

fn jitter(rng: &mut Rng, b: [f64; 4], by: f64) -> [f64; 4] {
    b.map(|v| (v + rng.range(-by, by)).round())
}

/// An image of clusters of near-duplicate truths (which merge), captioned once per truth as
/// DynRefer does, plus jittered, far-away and degenerate detections.
fn image(rng: &mut Rng) -> ImageRegions {
    let mut image = ImageRegions::default();
    for _ in 0..1 + rng.below(4) {
        let (x, y) = (rng.range(0.0, 400.0).round(), rng.range(0.0, 300.0).round());
        let base = [x, y, x + rng.range(20.0, 200.0).round(), y + rng.range(20.0, 200.0).round()];
        for _ in 0..1 + rng.below(4) {
            image.truths.push(Truth { bbox: jitter(rng, base, 6.0), caption: caption(rng) });
        }
    }
    for truth in image.truths.clone() {
        let described = match rng.below(3) {
            0 => truth.caption.clone(),
            1 => format!("{} {}", truth.caption, words(rng, 1)),
            _ => caption(rng),
        };
        image.detections.push(Detection { bbox: truth.bbox, score: score(rng), caption: described });
        if rng.below(3) == 0 {
            image.detections.push(Detection {
                bbox: jitter(rng, truth.bbox, 25.0),
                score: score(rng),
                caption: caption(rng),
            });
        }
    }
    for _ in 0..rng.below(3) {
        let far = [900.0, 900.0, 950.0, 930.0];
        image.detections.push(Detection { bbox: far, score: score(rng), caption: caption(rng) });
    }
    if rng.below(5) == 0 {
        let (x, y) = (image.truths[0].bbox[0], image.truths[0].bbox[1]);
        image.truths.push(Truth { bbox: [x, y, x, y + 10.0], caption: "empty box".into() });
        image.detections.push(Detection { bbox: [x, y, x, y + 10.0], score: score(rng), caption: "empty box".into() });
    }
    image
}

/// Separate 10×10 truths, each met by a detection of height 3..7 at its top: IoU exactly
/// 0.3..0.7; and truth pairs at IoU exactly 0.7 (merged) and 0.69 (not).
fn thresholds_image() -> ImageRegions {
    let mut image = ImageRegions::default();
    for (i, h) in [3.0, 4.0, 5.0, 6.0, 7.0].into_iter().enumerate() {
        let x = 20.0 * i as f64;
        image.truths.push(Truth { bbox: [x, 0.0, x + 10.0, 10.0], caption: "a red bus".into() });
        image.detections.push(Detection { bbox: [x, 0.0, x + 10.0, h], score: 0.9, caption: "a red bus".into() });
    }
    for (x, h) in [(200.0, 7.0), (300.0, 6.9)] {
        image.truths.push(Truth { bbox: [x, 0.0, x + 10.0, 10.0], caption: "a white dog".into() });
        image.truths.push(Truth { bbox: [x, 0.0, x + 10.0, h], caption: "the dog".into() });
        image.detections.push(Detection { bbox: [x, 0.0, x + 10.0, 10.0], score: 0.3, caption: "dog".into() });
    }
    image
}

fn images_json(images: &[ImageRegions]) -> Value {
    let images: Vec<Value> = images
        .iter()
        .map(|image| {
            json!({
                "truths": image.truths.iter().map(|t| json!({"bbox": t.bbox, "caption": t.caption})).collect::<Vec<_>>(),
                "detections": image.detections.iter()
                    .map(|d| json!({"bbox": d.bbox, "score": d.score, "caption": d.caption}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "images": images })
}

#[test]
fn dense_captioning_map_matches_the_official_algorithm() {
    let mut rng = Rng::new(47);
    let mut images: Vec<ImageRegions> = (0..30).map(|_| image(&mut rng)).collect();
    images.push(thresholds_image());
    // Skipped: no detections; no ground truth; only an empty (self-IoU NaN) ground-truth box.
    images.insert(3, ImageRegions { detections: Vec::new(), ..image(&mut rng) });
    images.insert(9, ImageRegions { truths: Vec::new(), ..image(&mut rng) });
    let lone = Truth { bbox: [5.0, 5.0, 5.0, 9.0], caption: "a line".into() };
    images.insert(17, ImageRegions { truths: vec![lone], ..image(&mut rng) });

    let expected = run_reference("densecap.py", &images_json(&images), "densecap");

    let mut meteor = Meteor::start(&meteor_jar()).unwrap();
    let (mut sent, mut scores) = (Vec::new(), Vec::new());
    let report = dense_cap_map(&images, |segments| {
        sent = segments.iter().map(|(h, r)| (h.to_string(), r.to_vec())).collect();
        scores = meteor.score(segments)?.segments;
        Ok::<_, dynrefer::eval::meteor::MeteorError>(scores.clone())
    })
    .unwrap();

    assert_eq!(report.regions as u64, expected["regions"].as_u64().unwrap(), "merged regions (npos)");
    assert_eq!(report.detections as u64, expected["detections"].as_u64().unwrap(), "ranked detections");
    let truths: usize = images.iter().filter(|i| !i.detections.is_empty()).map(|i| i.truths.len()).sum();
    assert!(report.regions + 20 < truths, "the fixture merges truths: {} of {truths}", report.regions);

    // The METEOR segments, in the evaluator's order, as the official code would send them.
    let want = expected["segments"].as_array().unwrap();
    assert_eq!(sent.len(), want.len());
    for (i, ((candidate, references), want)) in sent.iter().zip(want).enumerate() {
        assert_eq!(candidate, want["candidate"].as_str().unwrap(), "candidate {i}");
        assert_eq!(
            references,
            &serde_json::from_value::<Vec<String>>(want["references"].clone()).unwrap(),
            "references {i}"
        );
        close(scores[i], &want["meteor"], &format!("METEOR of segment {i}"));
    }
    assert!(sent.iter().any(|(_, r)| r.is_empty()) && scores.iter().any(|&s| s > 0.5), "unmatched and matched");

    let want = expected["ap"].as_array().unwrap();
    assert_eq!(report.ap.len(), 35);
    for (got, want) in report.ap.iter().zip(want) {
        let what = format!("AP at IoU {} METEOR {}", got.iou, got.meteor);
        assert_eq!((got.iou, got.meteor), (number(&want["iou"]), number(&want["meteor"])));
        close(got.ap, &want["ap"], &what);
    }
    close(report.map, &expected["map"], "mAP");
    close(report.det_map, &expected["det_map"], "detection mAP");
    assert!(report.map > 0.05 && report.map < report.det_map && report.det_map < 1.0, "{report:?}");
}

#[test]
fn ovad_attribute_ap_matches_scikit_learn() {
    let mut rng = Rng::new(117);
    let (instances, attributes) = (300, 20);
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..instances {
        let mut row_scores = Vec::new();
        let mut row_labels = Vec::new();
        for a in 0..attributes {
            let positive_rate = 0.05 + 0.04 * a as f64;
            let label: i8 = match a {
                // No positive at all: one ignored everywhere, one negative or ignored.
                7 => -1,
                8 => [0, -1][rng.below(2)],
                _ if rng.chance(0.2) => -1,
                _ => i8::from(rng.chance(positive_rate)),
            };
            let signal = if label == 1 { 0.25 } else { 0.0 };
            let score = match rng.below(6) {
                0 => rng.below(11) as f64 / 10.0,
                1 => rng.range(-0.5, 0.0),
                2 => rng.range(1.0, 1.5),
                _ => rng.unit() * 0.75 + signal,
            };
            row_scores.push(score);
            row_labels.push(label);
        }
        scores.push(row_scores);
        labels.push(row_labels);
    }
    let groups = [FreqSet::Head, FreqSet::Medium, FreqSet::Tail];
    let freq_sets: Vec<FreqSet> = (0..attributes).map(|a| groups[a % 3]).collect();

    let input = json!({"scores": scores, "labels": labels, "freq_sets": freq_sets});
    let expected = run_reference("ovad.py", &input, "ovad");

    let aps = attribute_ap(&scores, &labels);
    for (a, (got, want)) in aps.iter().zip(expected["aps"].as_array().unwrap()).enumerate() {
        match got {
            Some(ap) => close(*ap, want, &format!("AP of attribute {a}")),
            None => assert!(want.is_null(), "attribute {a} has no positive: {want}"),
        }
    }
    assert_eq!(aps.iter().filter(|a| a.is_none()).count(), 2);
    let report = ovad_report(&aps, &freq_sets);
    for (got, key) in
        [(report.map_all, "map_all"), (report.head, "head"), (report.medium, "medium"), (report.tail, "tail")]
    {
        close(got.unwrap(), &expected[key], key);
    }

    // A group whose attributes have no positive is NaN there, `None` here.
    let expected = run_reference(
        "ovad.py",
        &json!({"scores": [[0.2, 0.9]], "labels": [[0, 1]], "freq_sets": ["medium", "tail"]}),
        "ovad-empty",
    );
    let report = ovad_report(&attribute_ap(&[vec![0.2, 0.9]], &[vec![0, 1]]), &[FreqSet::Medium, FreqSet::Tail]);
    assert_eq!(report.medium, None);
    assert!(expected["medium"].is_null() && expected["head"].is_null());
    close(report.tail.unwrap(), &expected["tail"], "tail");
    close(report.map_all.unwrap(), &expected["map_all"], "all");
}
