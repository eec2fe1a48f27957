//! The real `dynrefer convert` and `describe` against the PyTorch reference, on a tiny DynRefer
//! written in the official file formats (tests/data/e2e, made by `tools/gen_e2e_fixture.py` with
//! the reference's `make_fixture.py`): the intermediate tensors, the tag sets, the scores, and
//! the caption ids for beams 1, beams 3 and beams 3 with control words.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burn::prelude::*;
use safetensors::SafeTensors;
use serde_json::Value;

use dynrefer::describe::Describer;
use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};

// The largest differences from the reference, measured on the CPU: tag 7.7e-7, attribute 3.6e-7,
// class 9.4e-7 (9.6e-7 for custom classes), caption score 1.5e-5 relative, intermediate tensors
// 3.8e-6 (RoIs and the aligned features). The bounds leave two to four times that for other CPUs'
// rounding (another matmul kernel sums in another order).
const TAG_TOL: f64 = 2e-6;
const ATTR_TOL: f64 = 1e-6;
const CLASS_TOL: f64 = 3e-6;
const CAPTION_SCORE_RTOL: f64 = 5e-5;
const TENSOR_TOL: f32 = 1.5e-5;

fn scratch(name: &str) -> PathBuf {
    common::scratch_dir("e2e", name)
}

/// `--device gpu` (burn's wgpu backend) with `--features wgpu` and `DYNREFER_TEST_DEVICE=wgpu`.
fn device() -> &'static str {
    let wgpu = cfg!(feature = "wgpu") && std::env::var("DYNREFER_TEST_DEVICE").as_deref() == Ok("wgpu");
    if wgpu { "gpu" } else { "cpu" }
}

fn dynrefer(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dynrefer {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The bundle converted once per test run, with the CLI, from the official-format files.
fn bundle() -> &'static Path {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| convert_fixture("bundle", &[]))
}

/// The same, converted `--with-text-tower`.
fn bundle_with_tower() -> &'static Path {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| convert_fixture("bundle-tower", &["--with-text-tower"]))
}

fn convert_fixture(name: &str, extra: &[&str]) -> PathBuf {
    let out = scratch(name).join("model");
    let mut args = common::convert_args(&common::e2e_file(""), "f32", &out);
    args.extend(extra.iter().map(|a| a.to_string()));
    dynrefer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::e2e_file("expected.json")).unwrap()).unwrap()
}

/// The test photo `name` as a file of its own (tests run in parallel: each call gets a new folder).
fn photo_path(name: &str) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = scratch(&format!("photo-{name}-{call}"));
    let photo = common::photos().into_iter().find(|p| p.name == name).expect("a test photo");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, photo.png).unwrap();
    path
}

fn box_arg(case: &Value) -> String {
    let b: Vec<String> = case["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap().to_string()).collect();
    b.join(",")
}

fn max_abs(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert_eq!(x["name"], y["name"], "names and order");
            (x["score"].as_f64().unwrap() - y["score"].as_f64().unwrap()).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn convert_and_describe_match_the_reference() {
    let exp = expected();
    let model = bundle().to_str().unwrap().to_string();
    let (mut tag, mut attr, mut class, mut score) = (0f64, 0f64, 0f64, 0f64);
    let mut runs = 0;
    for (i, case) in exp["model_cases"].as_array().unwrap().iter().enumerate() {
        let image = photo_path(case["image"].as_str().unwrap());
        let controls = case["runs"]["3+controls"]["controls"].as_str().unwrap().to_string();
        for (run, extra) in [
            ("1", vec!["--beams", "1"]),
            ("3", vec!["--beams", "3"]),
            ("3+controls", vec!["--beams", "3", "--controls", &controls]),
        ] {
            let mut args = vec![
                "describe".to_string(),
                "--model".into(),
                model.clone(),
                "--image".into(),
                image.display().to_string(),
                "--box".into(),
                box_arg(case),
                "--num-views".into(),
                case["num_views"].to_string(),
                "--max-new-tokens".into(),
                case["max_new_tokens"].to_string(),
                "--tag-threshold".into(),
                case["tag_threshold"].to_string(),
                "--device".into(),
                device().into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let got: Value = serde_json::from_str(&dynrefer(&args)).unwrap();
            let want = &case["runs"][run];
            assert_eq!(got["caption_ids"], want["caption_ids"], "case {i} run {run}: caption ids");
            assert_eq!(got["caption"], want["caption"], "case {i} run {run}: caption");
            let (g, w) = (got["caption_score"].as_f64().unwrap(), want["caption_score"].as_f64().unwrap());
            score = score.max((g - w).abs() / w.abs().max(1e-30));
            runs += 1;
            if run != "3" {
                continue;
            }
            assert_eq!(got["views"], case["views"], "case {i}: views");
            let names = |v: &Value| -> Vec<Value> { v.as_array().unwrap().iter().map(|t| t["name"].clone()).collect() };
            assert_eq!(names(&got["tags"]), names(&case["tags"]), "case {i}: tag set");
            tag = tag.max(max_abs(&got["tags"], &case["tags"]));
            attr = attr.max(max_abs(&got["attributes"], &case["attributes"]));
            class = class.max(max_abs(&got["classes"], &case["classes"]));
        }
    }
    eprintln!(
        "{runs} runs on the {}: max |diff| tag {tag:e} attribute {attr:e} class {class:e}, caption score (rel) {score:e}",
        device()
    );
    assert!(
        tag <= TAG_TOL && attr <= ATTR_TOL && class <= CLASS_TOL && score <= CAPTION_SCORE_RTOL,
        "{tag} {attr} {class} {score}"
    );
}

/// The reference's intermediate tensors of every case.
struct Expected(Vec<u8>);

impl Expected {
    fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("{name}"));
        let values: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        Tensor::from_data(TensorData::new(values, t.shape().to_vec()), device)
    }
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar()
}

#[test]
fn intermediate_tensors_match_the_reference() {
    let device = Device::flex();
    let describer = Describer::open_dir(bundle(), &device, |_| {}).unwrap();
    let exp = expected();
    let tensors = Expected(std::fs::read(common::e2e_file("expected_tensors.safetensors")).unwrap());
    let mut worst = std::collections::BTreeMap::<&str, f32>::new();
    for (i, case) in exp["model_cases"].as_array().unwrap().iter().enumerate() {
        let name = case["image"].as_str().unwrap();
        let png = common::photos().into_iter().find(|p| p.name == name).unwrap().png;
        let photo = decode_photo(&png, DEFAULT_MAX_PIXELS).unwrap();
        let region = box_arg(case).parse().unwrap();
        let views = describer.views(&photo, region, None).unwrap();
        let out = describer.encode(&views);
        let control: Vec<u32> =
            case["runs"]["3"]["control_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let t5_inputs = describer.model().t5_inputs(out.qformer.clone(), &control).squeeze_dim::<2>(0);
        let e = |k: &str| format!("model{i}.{k}");
        for (key, d) in [
            ("region_boxes", {
                let b: Vec<f32> = views.views.iter().flat_map(|v| v.region_box).collect();
                let n = views.views.len();
                max_diff(
                    Tensor::<2>::from_data(TensorData::new(b, [n, 4]), &device),
                    tensors.tensor(&e("region_boxes"), &device),
                )
            }),
            ("vit", max_diff(out.visual.vit, tensors.tensor(&e("vit"), &device))),
            ("rois", max_diff(out.visual.rois, tensors.tensor(&e("rois"), &device))),
            ("aligned", max_diff(out.visual.aligned, tensors.tensor(&e("aligned"), &device))),
            ("fused", max_diff(out.visual.fused, tensors.tensor(&e("fused"), &device))),
            ("qformer", max_diff(out.qformer, tensors.tensor(&e("qformer"), &device))),
            ("t5_inputs", max_diff(t5_inputs, tensors.tensor(&e("t5_inputs_embeds"), &device))),
        ] {
            let w = worst.entry(key).or_default();
            *w = w.max(d);
        }
    }
    let vocab = describer.vocabularies();
    for (key, ours) in [
        ("global.clip_embeds", vocab.tags.clone()),
        ("global.att_embeds", vocab.attribute_templates.clone()),
        ("global.ov_embeds", vocab.classes.clone()),
    ] {
        worst.insert(key, max_diff(ours, tensors.tensor(key, &device)));
    }
    eprintln!("max |diff| per tensor: {worst:?}");
    for (key, d) in worst {
        let tol = if key == "region_boxes" { 0.0 } else { TENSOR_TOL };
        assert!(d <= tol, "{key}: {d}");
    }
}

fn describe_fails(model: &Path, image: &Path, extra: &[&str], needles: &[&str]) {
    let mut args = vec!["describe", "--model", model.to_str().unwrap(), "--image", image.to_str().unwrap()];
    args.extend(["--box", "10,10,60,50"]);
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer")).args(&args).output().unwrap();
    common::assert_fails(&out, &format!("{args:?}"), needles);
}

/// A copy of the converted bundle whose `file` is changed by `edit`.
fn broken_bundle(name: &str, file: &str, edit: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>) -> PathBuf {
    let dir = scratch(name).join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(bundle()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    match edit(std::fs::read(dir.join(file)).unwrap()) {
        Some(bytes) => std::fs::write(dir.join(file), bytes).unwrap(),
        None => std::fs::remove_file(dir.join(file)).unwrap(),
    }
    dir
}

#[test]
fn broken_bundles_and_inputs_give_one_clear_line() {
    let image = photo_path("thumb");
    let shard = "weights-00000.safetensors";

    let missing = broken_bundle("missing", shard, |_| None);
    describe_fails(&missing, &image, &[], &[shard, "cannot read"]);
    let truncated = broken_bundle("truncated", shard, |b| Some(b[..b.len() - 100].to_vec()));
    describe_fails(&truncated, &image, &[], &[shard, "truncated"]);
    let tampered = broken_bundle("tampered", shard, |mut b| {
        let n = b.len();
        b[n - 10] ^= 0x40;
        Some(b)
    });
    describe_fails(&tampered, &image, &[], &[shard, "SHA-256", "tampered"]);
    let version = broken_bundle("version", "manifest.json", |b| {
        Some(String::from_utf8(b).unwrap().replacen("\"version\": 1", "\"version\": 99", 1).into_bytes())
    });
    describe_fails(&version, &image, &[], &["manifest.json", "version"]);
    let not_json = broken_bundle("json", "manifest.json", |_| Some(b"{\"format\"".to_vec()));
    describe_fails(&not_json, &image, &[], &["manifest.json", "not JSON"]);
    let tokenizer = broken_bundle("tokenizer", "tokenizer.json", |b| Some(b[..b.len() / 2].to_vec()));
    describe_fails(&tokenizer, &image, &[], &["tokenizer.json"]);
    describe_fails(Path::new("/nonexistent/bundle"), &image, &[], &["/nonexistent/bundle", "manifest.json"]);

    let model = bundle();
    describe_fails(model, Path::new("/nonexistent.png"), &[], &["/nonexistent.png"]);
    describe_fails(model, &image, &["--beams", "0"], &["--beams"]);
    describe_fails(model, &image, &["--box", "50,50,50,60"], &["--box"]);
    describe_fails(model, &image, &["--box", "0,0,500,10"], &["--box"]);
    describe_fails(model, &image, &["--num-views", "0"], &["--num-views"]);
    describe_fails(model, &image, &["--num-views", "2"], &["num-views 2", "exactly 3 views"]);
    #[cfg(not(feature = "wgpu"))]
    describe_fails(model, &image, &["--device", "gpu"], &["--device gpu", "--features wgpu"]);
}

/// The bundle's files served from memory, arriving in two halves each, with one file that fails
/// as a download would: the byte-source contract the page relies on.
struct MemorySource {
    files: std::collections::HashMap<String, Vec<u8>>,
    fails: Option<String>,
}

impl dynrefer::bundle::load::ByteSource for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    async fn manifest(&self) -> Result<Vec<u8>, dynrefer::describe::OpenError> {
        Ok(self.files["manifest.json"].clone())
    }

    async fn file(
        &self,
        entry: &dynrefer::bundle::FileEntry,
        received: &dyn Fn(u64),
    ) -> Result<dynrefer::bundle::Verified, dynrefer::describe::OpenError> {
        if self.fails.as_ref() == Some(&entry.file) {
            return Err(dynrefer::describe::OpenError::Source(format!("{}: network down", entry.file)));
        }
        let bytes = self.files[&entry.file].clone();
        received(bytes.len() as u64 / 2);
        received(bytes.len() as u64);
        Ok(dynrefer::bundle::Manifest::verify("memory", entry, bytes)?)
    }
}

/// Drives a load whose source never waits.
fn now<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

#[test]
fn a_bundle_loads_from_any_byte_source() {
    use dynrefer::bundle::Target;

    let files: std::collections::HashMap<String, Vec<u8>> = std::fs::read_dir(bundle())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    let device = Device::flex();
    let source = MemorySource { files, fails: None };
    let seen = std::cell::RefCell::new(Vec::new());
    let describer = now(Describer::load(&source, &device, None, |p| seen.borrow_mut().push(p))).unwrap();
    let seen = seen.into_inner();
    let total = describer.manifest().total_bytes();
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "progress goes back");
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((total, total)));
    let on_disk = Describer::open_dir(bundle(), &device, |_| {}).unwrap();
    let png = common::photos().into_iter().find(|p| p.name == "thumb").unwrap().png;
    let photo = decode_photo(&png, DEFAULT_MAX_PIXELS).unwrap();
    let options = dynrefer::describe::DescribeOptions { beams: 1, max_new_tokens: 4, ..Default::default() };
    let region = "10,10,60,50".parse().unwrap();
    assert_eq!(
        describer.describe(&photo, region, &options).unwrap(),
        on_disk.describe(&photo, region, &options).unwrap()
    );

    let tight = Target::Cpu { max_bytes: 1000 };
    let refused = now(Describer::load(&source, &device, Some(&tight), |_| {})).err().unwrap().to_string();
    assert!(refused.starts_with("memory: this ") && refused.contains(" model needs "), "{refused}");
    let shard = describer.manifest().shards[0].file.clone();
    let failing = MemorySource { fails: Some(shard.clone()), ..source };
    let failed = now(Describer::load(&failing, &device, None, |_| {})).err().unwrap().to_string();
    assert_eq!(failed, format!("{shard}: network down"));
}

fn describe_json(model: &Path, case: &Value, extra: &[&str]) -> Value {
    let image = photo_path(case["image"].as_str().unwrap());
    let mut args = vec!["describe", "--model", model.to_str().unwrap(), "--image", image.to_str().unwrap()];
    let region = box_arg(case);
    args.extend(["--box", &region, "--beams", "1", "--max-new-tokens", "4", "--device", device()]);
    args.extend(extra);
    serde_json::from_str(&dynrefer(&args)).unwrap()
}

/// `describe --classes` scores names of our own as the reference scores them from a classes file
/// (tests/data/e2e/custom_classes.json, made by `tools/gen_custom_classes.py`): each name embedded
/// by the text tower in the bundle, through the same head as the bundle's classes.
#[test]
fn custom_classes_match_the_reference() {
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(common::e2e_file("custom_classes.json")).unwrap()).unwrap();
    let names: Vec<&str> = want["classes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let list = names.join(",");
    let mut worst = 0f64;
    for case in want["cases"].as_array().unwrap() {
        let got = describe_json(bundle_with_tower(), case, &["--classes", &list]);
        worst = worst.max(max_abs(&got["classes"], &case["classes"]));
    }
    eprintln!("custom classes on the {}: max |diff| {worst:e}", device());
    assert!(worst <= CLASS_TOL, "{worst}");
}

/// Without `--with-text-tower` a bundle has no tower (and is smaller by it), describes exactly as
/// one with it, and refuses custom classes with a line that says how to get them.
#[test]
fn the_text_tower_is_optional() {
    let manifest = |dir: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    };
    let tower_tensors =
        |m: &Value| m["tensors"].as_object().unwrap().keys().filter(|k| k.starts_with("clip_text.")).count();
    let bytes = |m: &Value| m["shards"].as_array().unwrap().iter().map(|s| s["bytes"].as_u64().unwrap()).sum::<u64>();
    let (without, with) = (manifest(bundle()), manifest(bundle_with_tower()));
    assert_eq!((without["config"]["text_tower"].as_bool(), tower_tensors(&without)), (Some(false), 0));
    assert_eq!(with["config"]["text_tower"].as_bool(), Some(true));
    assert!(tower_tensors(&with) > 0);
    eprintln!("tiny e2e bundle: {} bytes of shards without the text tower, {} with it", bytes(&without), bytes(&with));
    assert!(bytes(&without) < bytes(&with));

    let exp = expected();
    for case in exp["model_cases"].as_array().unwrap() {
        assert_eq!(describe_json(bundle(), case, &[]), describe_json(bundle_with_tower(), case, &[]));
    }
    let image = photo_path("thumb");
    describe_fails(bundle(), &image, &["--classes", "cup,vase"], &["--classes", "no text tower", "--with-text-tower"]);
    describe_fails(bundle_with_tower(), &image, &["--classes", "cup,,vase"], &["--classes", "2 of 3 is empty"]);
    describe_fails(bundle_with_tower(), &image, &["--classes", " "], &["--classes", "empty"]);
}

/// The library refuses what the command line cannot send: no names, too many, an empty one.
#[test]
fn class_sets_are_checked() {
    use dynrefer::describe::MAX_CLASSES;
    let describer = Describer::open_dir(bundle_with_tower(), &Device::flex(), |_| {}).unwrap();
    let refused = |names: Vec<String>| describer.class_set(&names).err().unwrap().to_string();
    assert_eq!(refused(vec![]), "no class names");
    assert_eq!(refused(vec!["cup".into(), "".into()]), "class 2 of 2 is empty");
    let many = refused(vec!["cup".to_string(); MAX_CLASSES + 1]);
    assert!(many.contains(&format!("at most {MAX_CLASSES}")), "{many}");
    let set = describer.class_set(&["cup".into(), "Teddy Bear".into()]).unwrap();
    assert_eq!(set.names, ["cup", "Teddy Bear"]);
    let without = Describer::open_dir(bundle(), &Device::flex(), |_| {}).unwrap();
    let refused = without.class_set(&["cup".into()]).err().unwrap().to_string();
    assert_eq!(refused, "this bundle has no text tower: convert it with --with-text-tower");
}
