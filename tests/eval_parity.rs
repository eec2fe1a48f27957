//! The `eval` metrics against the official implementations on generated captions and detections:
//! the PTB tokenization, CIDEr-D and METEOR 1.5 against pycocoevalcap 1.2 (installed with Java by
//! `tools/eval-reference.sh`), the dense-captioning mAP and the OVAD attribute AP against
//! independent Python ports of the official evaluation code (`tests/eval/*.py`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use dynrefer::eval::{cider, meteor, ptb};
use dynrefer::scenes::Rng;
use serde_json::{Value, json};

use common::eval_reference::{number as exact, python as reference_python};

fn run_reference(script: &str, input: &Value, name: &str) -> Value {
    common::eval_reference::run("eval-parity", script, input, name)
}

const WORDS: &[&str] = &[
    "a",
    "the",
    "man",
    "woman",
    "red",
    "shirt",
    "holding",
    "of",
    "on",
    "dog",
    "cat",
    "white",
    "black",
    "sitting",
    "table",
    "left",
    "right",
    "small",
    "large",
    "with",
    "in",
    "front",
    "Man",
    "Red",
    "THE",
    "Bus",
    "café",
    "naïve",
    "Zürich",
    "東京",
    "Ελλάδα",
    "москва",
    "straße",
    "man's",
    "it's",
    "don't",
    "can't",
    "won't",
    "they're",
    "I'm",
    "we've",
    "he'll",
    "she'd",
    "dogs'",
    "x-ray",
    "t-shirt",
    "well-known",
    "black-and-white",
    "3",
    "1,000",
    "3.14",
    "3:30",
    "10/20",
    "2nd",
    "1990s",
    "cannot",
    "gonna",
    "wanna",
    "$5",
    "50%",
    "#tag",
    "@user",
    "&",
    "*",
    "+",
];

/// A caption from the vocabulary above with the punctuation people and models write.
fn caption(rng: &mut Rng) -> String {
    let len = rng.below(12);
    let mut words = Vec::new();
    for _ in 0..len {
        let mut w = WORDS[rng.below(WORDS.len())].to_string();
        match rng.below(24) {
            0 => w.push('.'),
            1 => w.push(','),
            2 => w.push('!'),
            3 => w.push('?'),
            4 => w.push_str("?!"),
            5 => w.push(';'),
            6 if !w.ends_with(|c: char| c.is_ascii_digit()) => w.push(':'),
            7 => w.push_str("..."),
            8 => w = format!("({w})"),
            9 => w = format!("\"{w}\""),
            10 if !w.contains('\'') => w = format!("'{w}'"),
            11 => w = format!("{w} -"),
            12 => w = format!("{w} --"),
            13 => w = format!("{w} \u{2014}"),
            14 => w = format!("[{w}]"),
            15 => w.push_str(" \u{1F600}"),
            16 => w.push_str("  "),
            _ => {}
        }
        words.push(w);
    }
    let mut text = words.join(" ");
    match rng.below(20) {
        0 => text = format!("  {text}\t"),
        1 => text = text.to_uppercase(),
        _ => {}
    }
    text
}

#[test]
fn caption_metrics_match_pycocoevalcap() {
    let mut rng = Rng::new(26);
    let mut segments: Vec<(String, Vec<String>)> = (0..300)
        .map(|_| {
            let refs = (0..1 + rng.below(5)).map(|_| caption(&mut rng)).collect::<Vec<_>>();
            // Some hypotheses repeat a reference word for word (ties at the top score).
            let hyp = if rng.below(6) == 0 { refs[0].clone() } else { caption(&mut rng) };
            (hyp, refs)
        })
        .collect();
    segments.push((String::new(), vec!["a red bus".into()]));
    segments.push(("a red bus".into(), vec!["".into(), "a red bus.".into()]));
    segments.push(("a ||| red  bus".into(), vec!["a red bus".into()]));
    segments.push(("!!! ... ?".into(), vec!["(a) \"red\" bus".into()]));

    let input = json!({"segments": segments.iter().map(|(h, r)| json!({"hypothesis": h, "references": r})).collect::<Vec<_>>()});
    let expected = run_reference("captions.py", &input, "captions");

    let hypotheses: Vec<String> = segments.iter().map(|(h, _)| ptb::tokenize(h)).collect();
    let references: Vec<Vec<String>> =
        segments.iter().map(|(_, refs)| refs.iter().map(|r| ptb::tokenize(r)).collect()).collect();
    for (i, (got, want)) in hypotheses.iter().zip(expected["hypotheses"].as_array().unwrap()).enumerate() {
        assert_eq!(got, want.as_str().unwrap(), "hypothesis {i}: {:?}", segments[i].0);
    }
    for (i, (got, want)) in references.iter().zip(expected["references"].as_array().unwrap()).enumerate() {
        let want: Vec<String> = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(got, &want, "references {i}: {:?}", segments[i].1);
    }

    let pairs: Vec<(&str, &[String])> =
        hypotheses.iter().map(String::as_str).zip(references.iter().map(Vec::as_slice)).collect();
    let close = |got: f64, want: &Value, what: String| {
        let want = want.as_f64().unwrap();
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}");
    };
    let scores = cider::cider(&pairs);
    for (i, got) in scores.segments.iter().enumerate() {
        close(*got, &expected["cider"]["segments"][i], format!("CIDEr-D of segment {i}"));
    }
    close(scores.corpus, &expected["cider"]["corpus"], "CIDEr-D".into());
    assert!(scores.corpus > 0.1, "the fixture has matching captions: {}", scores.corpus);

    let jar = common::eval_reference::meteor_jar();
    let mut meteor = meteor::Meteor::start(&jar).unwrap();
    let scores = meteor.score(&pairs).unwrap();
    for (i, got) in scores.segments.iter().enumerate() {
        close(*got, &expected["meteor"]["segments"][i], format!("METEOR of segment {i}"));
    }
    close(scores.corpus, &expected["meteor"]["corpus"], "METEOR".into());
}

const FREQ_SETS: [&str; 3] = ["head", "medium", "tail"];

/// `dynrefer eval` with `args`, its JSON answer; the METEOR jar is the reference venv's.
fn eval_cli(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer"))
        .arg("eval")
        .args(args)
        .env("DYNREFER_PYTHON", reference_python())
        .output()
        .unwrap();
    assert!(out.status.success(), "eval {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn predictions(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The shapes world's scenes as an annotation file of the release's layout (boxes as polygons,
/// COCO classes and OVAD labels over the built-in model's attributes in `extra_info`).
fn release_file(dir: &std::path::Path, attributes: &[String]) -> (PathBuf, Vec<dynrefer::scenes::Annotation>) {
    let scenes = dir.join("scenes");
    dynrefer::scenes::write_scenes(6, 4242, &scenes, |_| {}).unwrap();
    let annotations = dynrefer::scenes::read_annotations(&scenes.join(dynrefer::scenes::ANNOTATIONS)).unwrap();
    let mut names: Vec<&str> = annotations.iter().map(|a| a.image.as_str()).collect();
    names.dedup();
    let image_id = |name: &str| 1 + names.iter().position(|n| *n == name).unwrap();
    let regions: Vec<Value> = annotations
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let [x0, y0, x1, y1] = a.region;
            let labels: Vec<i8> = attributes.iter().map(|t| i8::from(a.attributes.contains(t))).collect();
            json!({"id": 100 + k, "image_id": image_id(&a.image), "caption": a.caption, "bbox": a.region,
                   "segmentation": [[x0, y0, x0, y1, x1, y1, x1, y0]],
                   "extra_info": {"coco_result": {"category": a.class}, "ovad_result": {"att_vec": labels}}})
        })
        .collect();
    let attrs: Vec<Value> = attributes
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": i, "name": name, "freq_set": FREQ_SETS[i % 3]}))
        .collect();
    let images: Vec<Value> = names.iter().map(|n| json!({"id": image_id(n), "file_name": n})).collect();
    let file = dir.join("test.json");
    let release =
        json!({"dataset": {"image_root": "scenes"}, "images": images, "annotations": regions, "attrs": attrs});
    std::fs::write(&file, serde_json::to_vec(&release).unwrap()).unwrap();
    (file, annotations)
}

#[test]
fn eval_scores_the_release_files_as_the_references_do() {
    let dir = common::scratch_dir("eval-parity", "release");
    let model = format!("{}/www/model", env!("CARGO_MANIFEST_DIR"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(format!("{model}/manifest.json")).unwrap()).unwrap();
    let attributes: Vec<String> = serde_json::from_value(manifest["vocabularies"]["attributes"].clone()).unwrap();
    let (file, annotations) = release_file(&dir, &attributes);
    let file = file.to_str().unwrap();
    let preds = dir.join("refcocog.jsonl");
    let common = |task: &'static str| ["--task", task, "--model", model.as_str(), "--annotations", file];

    // A run stopped after three regions, its last line cut: the next run goes on from there.
    let first = eval_cli(&[&common("refcocog")[..], &["--limit", "3", "--out", preds.to_str().unwrap()]].concat());
    assert_eq!(first["regions"], 3);
    assert_eq!(predictions(&preds).len(), 3);
    let mut cut = std::fs::OpenOptions::new().append(true).open(&preds).unwrap();
    std::io::Write::write_all(&mut cut, b"{\"id\": 103, \"capt").unwrap();
    let scores = eval_cli(&[&common("refcocog")[..], &["--out", preds.to_str().unwrap()]].concat());
    let answers = predictions(&preds);
    let ids: Vec<u64> = answers.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (100..100 + annotations.len() as u64).collect::<Vec<_>>(), "each region once, in order");
    assert_eq!(scores["regions"], annotations.len());

    let segments: Vec<Value> = answers
        .iter()
        .zip(&annotations)
        .map(|(p, a)| json!({"hypothesis": p["caption"], "references": [a.caption]}))
        .collect();
    let expected = run_reference("captions.py", &json!({ "segments": segments }), "release-captions");
    let close = |got: &Value, want: f64, what: &str| {
        let got = got.as_f64().unwrap();
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}");
    };
    close(&scores["METEOR"], 100.0 * expected["meteor"]["corpus"].as_f64().unwrap(), "METEOR");
    close(&scores["CIDEr"], 100.0 * expected["cider"]["corpus"].as_f64().unwrap(), "CIDEr");

    let coco = dir.join("coco.jsonl");
    let scores = eval_cli(&[&common("coco")[..], &["--out", coco.to_str().unwrap()]].concat());
    let right = predictions(&coco).iter().zip(&annotations).filter(|(p, a)| p["class"] == a.class.as_str()).count();
    close(&scores["accuracy"], 100.0 * right as f64 / annotations.len() as f64, "class accuracy");

    let ovad = dir.join("ovad.jsonl");
    let scores = eval_cli(&[&common("ovad")[..], &["--out", ovad.to_str().unwrap()]].concat());
    let labels: Vec<Vec<i8>> =
        annotations.iter().map(|a| attributes.iter().map(|t| i8::from(a.attributes.contains(t))).collect()).collect();
    let freq_sets: Vec<&str> = (0..attributes.len()).map(|i| FREQ_SETS[i % 3]).collect();
    let input = json!({"scores": predictions(&ovad).iter().map(|p| p["attributes"].clone()).collect::<Vec<_>>(),
                       "labels": labels, "freq_sets": freq_sets});
    let expected = run_reference("ovad.py", &input, "release-ovad");
    for (ours, theirs) in [("mAP", "map_all"), ("head", "head"), ("medium", "medium"), ("tail", "tail")] {
        close(&scores[ours], exact(&expected[theirs]), ours);
    }

    let dense = dir.join("densecap.jsonl");
    let scores = eval_cli(&[&common("densecap")[..], &["--out", dense.to_str().unwrap()]].concat());
    let answers = predictions(&dense);
    let mut images: Vec<(String, Vec<Value>, Vec<Value>)> = Vec::new();
    for (p, a) in answers.iter().zip(&annotations) {
        if images.last().is_none_or(|(name, _, _)| *name != a.image) {
            images.push((a.image.clone(), Vec::new(), Vec::new()));
        }
        let (_, truths, detections) = images.last_mut().unwrap();
        truths.push(json!({"bbox": a.region, "caption": a.caption}));
        detections.push(json!({"bbox": a.region, "score": p["score"], "caption": p["caption"]}));
    }
    let input =
        json!({"images": images.iter().map(|(_, t, d)| json!({"truths": t, "detections": d})).collect::<Vec<_>>()});
    let expected = run_reference("densecap.py", &input, "release-densecap");
    close(&scores["mAP"], 100.0 * exact(&expected["map"]), "dense-captioning mAP");
    close(&scores["det_mAP"], 100.0 * exact(&expected["det_map"]), "detection mAP");

    // A box past its picture is said and scored as a wrong answer; the other regions still count.
    let mut release: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let outside = json!({"id": 1, "image_id": 1, "caption": "", "bbox": [0, 0, 5000, 5000],
                         "extra_info": {"coco_result": {"category": "circle"}}});
    release["annotations"].as_array_mut().unwrap().push(outside);
    std::fs::write(file, serde_json::to_vec(&release).unwrap()).unwrap();
    let skipping = dir.join("skipping.jsonl");
    let scores = eval_cli(&[&common("coco")[..], &["--out", skipping.to_str().unwrap()]].concat());
    assert_eq!(scores["skipped"], 1);
    close(&scores["accuracy"], 100.0 * right as f64 / (annotations.len() + 1) as f64, "accuracy with a skipped region");
    let skipped = predictions(&skipping).into_iter().find(|p| p["id"] == 1).unwrap();
    assert!(skipped["skipped"].as_str().unwrap().contains("outside"), "{skipped}");
}
