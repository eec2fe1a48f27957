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

/// The reference venv's python, installed on first use.
fn reference_python() -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash").arg(format!("{root}/tools/eval-reference.sh")).output().unwrap();
    assert!(out.status.success(), "tools/eval-reference.sh: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn run_reference(script: &str, input: &Value, name: &str) -> Value {
    let dir = common::scratch_dir("eval-parity", name);
    let file = dir.join("input.json");
    std::fs::write(&file, serde_json::to_vec(input).unwrap()).unwrap();
    let script = format!("{}/tests/eval/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(reference_python()).arg(script).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
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

    let jar = meteor::jar_of_python(reference_python().as_os_str()).unwrap();
    let mut meteor = meteor::Meteor::start(&jar).unwrap();
    let scores = meteor.score(&pairs).unwrap();
    for (i, got) in scores.segments.iter().enumerate() {
        close(*got, &expected["meteor"]["segments"][i], format!("METEOR of segment {i}"));
    }
    close(scores.corpus, &expected["meteor"]["corpus"], "METEOR".into());
}
