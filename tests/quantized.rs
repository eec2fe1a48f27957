//! Quantized bundles (`convert --quant f16|q8|q4`) against the f32 bundle of the same official
//! files: what they store, what they answer, and how they fail.
//!
//! The agreement test runs on the tests' tiny DynRefer (tests/data/e2e, whose f32 answers match
//! the PyTorch reference in `model_e2e`), or on any official-format folder named by
//! `DYNREFER_QUANT_FIXTURE`, e.g. the mid-sized one `tools/gen_quant_fixture.py` makes: tiny
//! random models have nearly flat caption logits, so captions are only compared there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use image::RgbImage;

use dynrefer::bundle::{FitError, Target};
use dynrefer::bundle::{Manifest, Quant};
use dynrefer::convert::write::projected_manifest;
use dynrefer::describe::{DescribeOptions, Describer};
use dynrefer::model::clip_text::ClipTextConfig;
use dynrefer::model::dynrefer::DynReferConfig;
use dynrefer::model::heads::HeadsConfig;
use dynrefer::model::qformer::QformerConfig;
use dynrefer::model::t5::T5Config;
use dynrefer::model::visual::VisualConfig;
use dynrefer::model::vit::VitConfig;
use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use dynrefer::views::RegionBox;

fn dynrefer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dynrefer")).args(args).output().unwrap()
}

/// The official-format files to convert, and whether they are the tiny test model.
fn fixture() -> (PathBuf, bool) {
    match std::env::var("DYNREFER_QUANT_FIXTURE") {
        Ok(dir) => (PathBuf::from(dir), false),
        Err(_) => (common::e2e_file(""), true),
    }
}

fn convert(quant: Quant) -> PathBuf {
    convert_from(&fixture().0, quant, quant.name())
}

fn convert_from(src: &Path, quant: Quant, scratch: &str) -> PathBuf {
    let out = common::scratch_dir("quant", scratch).join("model");
    let args = common::convert_args(src, quant.name(), &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = dynrefer(&args);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    out
}

/// Every test photo with three boxes: centre, top left, bottom right.
fn cases() -> Vec<(String, RgbImage, RegionBox)> {
    let mut cases = Vec::new();
    for photo in common::photos() {
        let image = decode_photo(&photo.png, DEFAULT_MAX_PIXELS).unwrap();
        let (w, h) = (f64::from(image.width()), f64::from(image.height()));
        for [a, b, c, d] in [[0.25, 0.2, 0.7, 0.75], [0.05, 0.1, 0.45, 0.5], [0.5, 0.45, 0.95, 0.95]] {
            cases.push((photo.name.to_string(), image.clone(), RegionBox([a * w, b * h, c * w, d * h])));
        }
    }
    cases
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

fn mean_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

/// What one bundle answers for one case.
struct Answer {
    captions: [Vec<u32>; 2],
    tag_set: Vec<String>,
    tags: Vec<f32>,
    attributes: Vec<f32>,
    classes: Vec<f32>,
    qformer: Vec<f32>,
}

fn answer(describer: &Describer, photo: &RgbImage, region: RegionBox) -> Answer {
    let run = |beams| {
        let options = DescribeOptions { beams, max_new_tokens: 20, ..DescribeOptions::default() };
        describer.describe(photo, region, &options).unwrap()
    };
    let (one, three) = (run(1), run(3));
    let views = describer.views(photo, region, None).unwrap();
    let encoded = describer.encode(&views);
    Answer {
        captions: [one.caption_ids, three.caption_ids],
        tag_set: one.tags.into_iter().map(|t| t.name).collect(),
        tags: floats(encoded.scores.tags),
        attributes: floats(encoded.scores.attributes),
        classes: floats(encoded.scores.classes),
        qformer: floats(encoded.qformer),
    }
}

/// T5's logits for `caption` fed token by token after the f32 model's encoder input, [steps × vocab].
fn teacher_forced_logits(describer: &Describer, photo: &RgbImage, region: RegionBox, caption: &[u32]) -> Vec<f32> {
    let model = describer.model();
    let device = describer.device();
    let views = describer.views(photo, region, None).unwrap();
    let queries = describer.encode(&views).qformer;
    let control = [describer.manifest().config.t5.eos_token_id];
    let mut cache = model.t5.start(model.t5.encode(model.t5_inputs(queries, &control)), 1);
    let start = describer.manifest().config.t5.decoder_start_token_id;
    let mut logits = Vec::new();
    for &token in std::iter::once(&start).chain(caption.iter()).take(caption.len().max(1)) {
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![i64::from(token)], [1, 1]), device);
        logits.extend(floats(model.t5.decode(ids, &mut cache)));
    }
    logits
}

#[derive(Default, Debug)]
struct Agreement {
    cases: usize,
    caption_beams1: usize,
    caption_beams3: usize,
    /// Mean Jaccard index of the tag sets (the wide vocabulary has thousands of tags).
    tag_sets: f32,
    /// Decoding steps, teacher-forced with the f32 caption, where the top token is the f32 one.
    top1_same: usize,
    top1_steps: usize,
    tag: f32,
    attribute: f32,
    class: f32,
    qformer_mean: f32,
    logits_mean: f32,
    bytes: usize,
}

#[test]
fn quantized_bundles_agree_with_f32() {
    let (_, tiny) = fixture();
    let device = Device::flex();
    let open = |dir: &Path| Describer::open_dir(dir, &device, |_| {}).unwrap();
    let bundle_bytes = |dir: &Path| -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with("weights-"))
            .map(|e| e.metadata().unwrap().len() as usize)
            .sum()
    };
    let f32_dir = convert(Quant::F32);
    let reference = open(&f32_dir);
    let cases = cases();
    let baseline: Vec<Answer> = cases.iter().map(|(_, p, r)| answer(&reference, p, *r)).collect();
    let baseline_logits: Vec<Vec<f32>> = cases
        .iter()
        .zip(&baseline)
        .map(|((_, p, r), a)| teacher_forced_logits(&reference, p, *r, &a.captions[0]))
        .collect();
    let params: usize = reference.manifest().tensors.values().map(|t| t.shape.iter().product::<usize>()).sum();

    let mut table = Vec::new();
    for quant in [Quant::F32, Quant::F16, Quant::Q8, Quant::Q4] {
        let dir = if quant == Quant::F32 { f32_dir.clone() } else { convert(quant) };
        let describer = open(&dir);
        let mut agree = Agreement { cases: cases.len(), bytes: bundle_bytes(&dir), ..Agreement::default() };
        for (((_, photo, region), base), base_logits) in cases.iter().zip(&baseline).zip(&baseline_logits) {
            let got = answer(&describer, photo, *region);
            agree.caption_beams1 += usize::from(got.captions[0] == base.captions[0]);
            agree.caption_beams3 += usize::from(got.captions[1] == base.captions[1]);
            let union = got.tag_set.iter().chain(&base.tag_set).collect::<std::collections::HashSet<_>>().len();
            let common = got.tag_set.iter().filter(|t| base.tag_set.contains(t)).count();
            agree.tag_sets += if union == 0 { 1.0 } else { common as f32 / union as f32 } / cases.len() as f32;
            agree.tag = agree.tag.max(max_abs(&got.tags, &base.tags));
            agree.attribute = agree.attribute.max(max_abs(&got.attributes, &base.attributes));
            agree.class = agree.class.max(max_abs(&got.classes, &base.classes));
            agree.qformer_mean += mean_abs(&got.qformer, &base.qformer) / cases.len() as f32;
            let logits = teacher_forced_logits(&describer, photo, *region, &base.captions[0]);
            agree.logits_mean += mean_abs(&logits, base_logits) / cases.len() as f32;
            let vocab = describer.manifest().config.t5.vocab_size;
            for (a, b) in logits.chunks(vocab).zip(base_logits.chunks(vocab)) {
                agree.top1_steps += 1;
                agree.top1_same += usize::from(argmax(a) == argmax(b));
            }
        }
        table.push((quant, agree));
    }
    eprintln!("{} parameters, {} cases ({})", params, cases.len(), if tiny { "tiny test model" } else { "fixture" });
    eprintln!(
        "| mode | bytes/param | captions b1 | captions b3 | top-1 steps | tag-set Jaccard | max Δ tag | max Δ attr | max Δ class logit | mean Δ Q-Former | mean Δ T5 logits |"
    );
    for (quant, a) in &table {
        eprintln!(
            "| {} | {:.3} | {}/{} | {}/{} | {}/{} | {:.3} | {:.4} | {:.4} | {:.4} | {:.5} | {:.5} |",
            quant.name(),
            a.bytes as f64 / params as f64,
            a.caption_beams1,
            a.cases,
            a.caption_beams3,
            a.cases,
            a.top1_same,
            a.top1_steps,
            a.tag_sets,
            a.tag,
            a.attribute,
            a.class,
            a.qformer_mean,
            a.logits_mean
        );
    }

    let [_, (_, f16), (_, q8), (_, q4)] = &table[..] else { unreachable!() };
    assert_eq!((f16.caption_beams1, f16.caption_beams3), (f16.cases, f16.cases), "f16 captions: {f16:?}");
    assert!(f16.tag.max(f16.attribute) < 1e-2, "{f16:?}");
    assert!(q8.tag.max(q8.attribute) < 0.05, "q8 scores within 0.05: {q8:?}");
    assert!(q8.qformer_mean < q4.qformer_mean && q8.logits_mean < q4.logits_mean, "q8 closer than q4: {q8:?} {q4:?}");
    assert!(q8.top1_same * 100 >= q8.top1_steps * 95, "q8 picks the f32 token in 95 % of steps: {q8:?}");
    if !tiny {
        assert!(q4.tag.max(q4.attribute) < 0.2, "q4 scores within 0.2: {q4:?}");
    }
    assert!(q8.bytes < f16.bytes && q4.bytes < q8.bytes);
}

/// The real DynRefer-FlanT5-XL (4.2B parameters, DESIGN §2) from its lazily built modules.
#[test]
fn real_model_bundle_sizes() {
    let real = DynReferConfig::new(
        VisualConfig::new(VitConfig::new()),
        QformerConfig::new(),
        HeadsConfig::new(),
        ClipTextConfig::new(),
        T5Config::new(),
        [4585, 536, 80],
    );
    let mut sizes = Vec::new();
    for quant in [Quant::F32, Quant::F16, Quant::Q8, Quant::Q4] {
        let manifest = projected_manifest(&real, quant, "DynRefer-FlanT5-XL");
        let (params, bytes) = (manifest.parameters(), manifest.shards.iter().map(|s| s.bytes).sum::<u64>());
        eprintln!(
            "{}: {params} parameters, {:.2} GB, {:.3} bytes/parameter",
            quant.name(),
            bytes as f64 / 1e9,
            bytes as f64 / params as f64
        );
        // the EVA-CLIP text tower, in a bundle only with `convert --with-text-tower`
        let bare = projected_manifest(&real.clone().with_text_tower(Some(false)), quant, "DynRefer-FlanT5-XL");
        assert!(!bare.tensors.keys().any(|k| k.contains("clip_text")));
        let tower = bytes - bare.shards.iter().map(|s| s.bytes).sum::<u64>();
        let tower_params = params - bare.parameters();
        eprintln!("  its text tower: {tower_params} parameters, {:.1} MB", tower as f64 / 1e6);
        assert!((1.2e8..1.3e8).contains(&(tower_params as f64)), "{tower_params}");
        if quant == Quant::Q8 {
            assert!((1.2e8..1.4e8).contains(&(tower as f64)), "q8 text tower {tower} bytes");
        }
        sizes.push((params, bytes));
    }
    let params = sizes[0].0;
    assert!((4.0e9..4.5e9).contains(&(params as f64)), "{params}");
    assert!(sizes[3].1 as f64 <= 2.4e9, "q4 bundle {} bytes", sizes[3].1);
    assert!(sizes[2].1 as f64 <= 4.5e9, "q8 bundle {} bytes", sizes[2].1);

    // byte counts pass 4 GiB (wasm32's usize would wrap): they are u64, through JSON too
    let q8 = projected_manifest(&real, Quant::Q8, "real");
    assert!(q8.total_bytes() > u64::from(u32::MAX), "{}", q8.total_bytes());
    let json = serde_json::to_vec(&q8).unwrap();
    assert_eq!(Manifest::parse("q8", &json).unwrap().total_bytes(), q8.total_bytes());

    // what is checked before a download: the CPU fallback keeps quantized linear weights as they
    // are stored (q4: two values to a byte) with an f32 scale per 32, and the rest in f32
    let q4 = projected_manifest(&real, Quant::Q4, "real");
    let cpu = Target::WASM_CPU;
    assert!((2.9e9..3.1e9).contains(&(q4.cpu_bytes() as f64)), "q4 on the CPU: {}", q4.cpu_bytes());
    assert_eq!(q4.check_fit(&cpu), Ok(()));
    let refused = q8.check_fit(&cpu).unwrap_err();
    assert!(
        matches!(refused, FitError::CpuMemory { needed, .. } if (4.5e9..5.2e9).contains(&(needed as f64))),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("q8 model needs") && message.contains("or load a q4 bundle") && message.contains("WebGPU"),
        "{message}"
    );
    let f32 = projected_manifest(&real, Quant::F32, "real").check_fit(&cpu).unwrap_err();
    assert!(matches!(f32, FitError::CpuMemory { needed, .. } if needed == 4 * params), "{f32:?}");
    assert!(f32.to_string().contains("16.4 GB"), "{f32}");
    // on a GPU q4 fits WebGPU's default binding limit (128 MiB); f16, widened to f32, is refused
    let gpu = Target::Gpu { max_binding: 128 << 20, max_bytes: 6_000_000_000 };
    assert_eq!(q4.check_fit(&gpu), Ok(()));
    assert_eq!(q8.check_fit(&gpu), Ok(()));
    let f16 = projected_manifest(&real, Quant::F16, "real").check_fit(&gpu).unwrap_err().to_string();
    assert!(f16.contains("16.4 GB of GPU memory") && f16.contains("q4") && f16.contains("q8"), "{f16}");
    // a GPU with room but a small binding limit: the 32128 × 2048 embedding is named
    let roomy = Target::Gpu { max_binding: 128 << 20, max_bytes: u64::MAX };
    let binding = projected_manifest(&real, Quant::F32, "real").check_fit(&roomy).unwrap_err();
    assert!(
        matches!(&binding, FitError::Binding { tensor, bytes, smaller_quantized: true, .. }
            if tensor.starts_with("t5.") && *bytes == 4 * 32128 * 2048),
        "{binding:?}"
    );
}

/// A copy of `bundle` whose `file` is changed by `edit`.
fn broken(bundle: &Path, name: &str, file: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let dir = common::scratch_dir("quant", name).join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(bundle).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join(file), edit(std::fs::read(dir.join(file)).unwrap())).unwrap();
    dir
}

fn edit_manifest(bytes: Vec<u8>, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    edit(&mut manifest);
    serde_json::to_vec(&manifest).unwrap()
}

fn fails(args: &[&str], needles: &[&str]) {
    common::assert_fails(&dynrefer(args), &format!("{args:?}"), needles);
}

/// `inspect` on a q4 bundle, and broken q4 bundles: each fails with one line naming the bundle
/// file at fault, before any weight is used.
#[test]
fn inspect_and_broken_quantized_bundles() {
    let good = convert_from(&common::e2e_file(""), Quant::Q4, "q4-checked");
    let out = dynrefer(&["inspect", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["quant"], "q4");
    assert_eq!(report["verified"], 3, "the shard and both tokenizer files");
    let q4 = &report["dtypes"]["q4"];
    let per_param = q4["bytes"].as_f64().unwrap() / q4["parameters"].as_f64().unwrap();
    assert!((per_param - (0.5 + 2.0 / 32.0)).abs() < 1e-9, "4 bits and an f16 scale per 32 values: {per_param}");
    assert!(report["dtypes"]["F32"]["parameters"].as_u64().unwrap() < q4["parameters"].as_u64().unwrap());

    let photo = common::scratch_dir("quant", "photo").join("thumb.png");
    std::fs::write(&photo, common::photos().into_iter().find(|p| p.name == "thumb").unwrap().png).unwrap();
    let describe = |bundle: &Path, needles: &[&str]| {
        let args = [
            "describe",
            "--model",
            bundle.to_str().unwrap(),
            "--image",
            photo.to_str().unwrap(),
            "--box",
            "10,10,60,50",
        ];
        fails(&args, needles);
    };
    let shard = "weights-00000.bpk";
    let truncated = broken(&good, "q4-truncated", shard, |b| b[..b.len() - 100].to_vec());
    describe(&truncated, &[shard, "truncated"]);
    fails(&["inspect", truncated.to_str().unwrap()], &["1 of 3 files", shard, "truncated"]);
    let tampered = broken(&good, "q4-tampered", shard, |mut b| {
        let n = b.len() / 2;
        b[n] ^= 0x10;
        b
    });
    describe(&tampered, &[shard, "SHA-256", "tampered"]);
    fails(&["inspect", tampered.to_str().unwrap()], &[shard, "SHA-256"]);
    // a manifest whose architecture is not the one the shard was converted for
    let wider =
        broken(&good, "q4-arch", "manifest.json", |b| edit_manifest(b, |m| m["config"]["t5"]["d_ff"] = 96.into()));
    describe(&wider, &[shard, "does not fit"]);
    let version = broken(&good, "q4-version", "manifest.json", |b| edit_manifest(b, |m| m["version"] = 2.into()));
    describe(&version, &["manifest.json", "version"]);
    fails(&["inspect", version.to_str().unwrap()], &["manifest.json", "version"]);
}
