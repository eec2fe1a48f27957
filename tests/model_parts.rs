//! The model's components against the PyTorch reference and torchvision, one fixture each, made
//! by `tools/gen_model_fixtures.py` under the official checkpoint keys.

use burn::module::Module;
use burn::nn::LayerNormConfig;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use safetensors::SafeTensors;

use dynrefer::convert::keys::{FUSE_KEYS, KEY_REMAP, T5_KEY_REMAP};
use dynrefer::model::align::AlignConfig;
use dynrefer::model::clip_text::ClipTextConfig;
use dynrefer::model::heads::{HeadsConfig, Vocabularies};
use dynrefer::model::qformer::QformerConfig;
use dynrefer::model::roi_align::{RoiAlignConfig, roi_align_matrix};
use dynrefer::model::t5::{T5, T5Config, relative_position_bucket};
use dynrefer::model::visual::VisualConfig;
use dynrefer::model::vit::VitConfig;

/// burn's CPU backend, or its wgpu backend with `--features wgpu` and `DYNREFER_TEST_DEVICE=wgpu`.
fn device() -> Device {
    #[cfg(feature = "wgpu")]
    if std::env::var("DYNREFER_TEST_DEVICE").as_deref() == Ok("wgpu") {
        // the wgpu runtime is set up once per process
        static WGPU: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
        return WGPU.get_or_init(|| Device::wgpu_options().init().expect("a wgpu adapter")).clone();
    }
    Device::flex()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/data/{name}.safetensors", env!("CARGO_MANIFEST_DIR"))
}

/// A fixture's raw tensors, by name.
struct Tensors(Vec<u8>);

impl Tensors {
    fn open(name: &str) -> Tensors {
        Tensors(std::fs::read(fixture(name)).unwrap())
    }

    fn values(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("{name} in the fixture"));
        let values = match t.dtype() {
            safetensors::Dtype::F32 => {
                t.data().chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))).collect()
            }
            safetensors::Dtype::F64 => {
                t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
            }
            safetensors::Dtype::I64 => {
                t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
            }
            other => panic!("{name}: unexpected {other:?}"),
        };
        (t.shape().to_vec(), values)
    }

    fn metadata(&self, key: &str) -> String {
        let (_, meta) = SafeTensors::read_metadata(&self.0).unwrap();
        meta.metadata().as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_else(|| panic!("{key} in the metadata"))
    }

    fn ints<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D, Int> {
        let (shape, values) = self.values(name);
        let values: Vec<i64> = values.into_iter().map(|v| v as i64).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.0).unwrap().tensor(name).is_ok()
    }

    fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (shape, values) = self.values(name);
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

/// Loads `module` from the fixture's official keys under `prefix` and checks that every one of its
/// `params` tensors came from the file.
fn load<M: Module + ModuleSnapshot>(module: &mut M, name: &str, prefix: &str, params: usize) {
    let remap: Vec<_> = KEY_REMAP.iter().chain(FUSE_KEYS).copied().collect();
    load_remapped(module, name, prefix, &remap, params)
}

fn load_remapped<M: Module + ModuleSnapshot>(
    module: &mut M,
    name: &str,
    prefix: &str,
    remap: &[(&str, &str)],
    params: usize,
) {
    let mut store = SafetensorsStore::from_file(fixture(name))
        .with_from_adapter(PyTorchToBurnAdapter)
        .with_key_remapping(format!("^{}", regex_escape(prefix)), "");
    for &(pattern, replacement) in remap {
        store = store.with_key_remapping(pattern, replacement);
    }
    let result = module.load_from(&mut store).unwrap();
    assert_eq!(result.applied.len(), params, "{result}");
}

fn regex_escape(s: &str) -> String {
    s.replace('.', r"\.")
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar()
}

#[test]
fn roi_align_matches_torchvision() {
    let t = Tensors::open("roi_align");
    let mut cases = 0;
    let mut worst = 0.0f64;
    while t.has(&format!("c{cases}.config")) {
        let (_, c) = t.values(&format!("c{cases}.config"));
        let cfg = RoiAlignConfig {
            height: c[0] as usize,
            width: c[1] as usize,
            output: c[2] as usize,
            spatial_scale: c[3] as f32,
            sampling_ratio: c[4] as usize,
        };
        let (shape, feats) = t.values(&format!("c{cases}.features"));
        let (_, boxes) = t.values(&format!("c{cases}.boxes"));
        let (_, expected) = t.values(&format!("c{cases}.expected"));
        let (rois, channels, cells, bins) = (shape[0], shape[1], cfg.height * cfg.width, cfg.output * cfg.output);
        for r in 0..rois {
            let region: [f32; 4] = std::array::from_fn(|k| boxes[4 * r + k] as f32);
            let m = roi_align_matrix(region, &cfg);
            for ch in 0..channels {
                let f = &feats[(r * channels + ch) * cells..][..cells];
                for bin in 0..bins {
                    let got: f64 = m[bin * cells..][..cells].iter().zip(f).map(|(w, v)| f64::from(*w) * v).sum();
                    let want = expected[(r * channels + ch) * bins + bin];
                    worst = worst.max((got - want).abs());
                    assert!(
                        (got - want).abs() < 1e-5,
                        "case {cases} box {region:?} channel {ch} bin {bin}: {got} vs {want}"
                    );
                }
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 5);
    eprintln!("roi_align max |diff| {worst:e}");
}

#[test]
fn vit_and_ln_vision_match_the_reference() {
    let device = device();
    let t = Tensors::open("vit");
    let mut vit =
        VitConfig::new().with_width(32).with_depth(2).with_heads(4).with_mlp(128).with_image_size(42).init(&device);
    // 2 blocks of 13 tensors, the patch embedding, CLS and positions
    load(&mut vit, "vit", "visual_encoder.", 30);
    let mut ln_vision = LayerNormConfig::new(32).init(&device);
    load(&mut ln_vision, "vit", "ln_vision.", 2);

    let out = vit.forward(t.tensor("input.pixels", &device));
    assert_eq!(out.dims(), [2, 10, 32]);
    let d_vit = max_diff(out.clone(), t.tensor("expected.vit", &device));
    let d_ln = max_diff(ln_vision.forward(out), t.tensor("expected.ln_vision", &device));
    eprintln!("vit max |diff| {d_vit:e}, ln_vision {d_ln:e}");
    assert!(d_vit < 1e-5 && d_ln < 1e-5, "vit {d_vit}, ln_vision {d_ln}");
}

#[test]
fn view_alignment_matches_the_reference_dcnv4() {
    let device = device();
    let t = Tensors::open("align");
    let mut align = AlignConfig::new().with_channels(64).init(&device);
    load(&mut align, "align", "cvem_align.", 8);
    let rois: Tensor<4> = t.tensor("input.rois", &device);
    let reference = rois.clone().narrow(0, 0, 1).expand([2, 64, 8, 8]);
    let out = align.forward(reference, rois.narrow(0, 1, 2));
    let d = max_diff(out, t.tensor("expected.aligned", &device));
    eprintln!("align max |diff| {d:e}");
    assert!(d < 1e-4, "align {d}");
}

#[test]
fn qformer_matches_the_reference() {
    let device = device();
    let t = Tensors::open("qformer");
    let cfg = QformerConfig::new()
        .with_width(64)
        .with_layers(3)
        .with_heads(4)
        .with_intermediate(128)
        .with_queries(8)
        .with_vision_width(48);
    let mut qformer = cfg.init(&device);
    // query tokens, the embeddings' LayerNorm, 3 layers of 16 tensors and 2 cross-attentions of 10
    load(&mut qformer, "qformer", "Qformer.bert.", 71);
    let out = qformer.forward(t.tensor("input.visual", &device));
    let d = max_diff(out, t.tensor("expected.qformer", &device));
    eprintln!("qformer max |diff| {d:e}");
    assert!(d < 1e-5, "qformer {d}");
}

#[test]
fn visual_side_matches_the_reference() {
    let device = device();
    let t = Tensors::open("visual");
    let vit =
        VitConfig::new().with_width(64).with_depth(1).with_heads(4).with_mlp(128).with_patch(7).with_image_size(28);
    let mut visual = VisualConfig::new(vit).init(&device);
    // ViT 17, ln_vision 2, cvem_align 8, cvem_mlp 4
    load(&mut visual, "visual", "", 31);
    let (_, boxes) = t.values("input.region_boxes");
    let boxes: Vec<[f32; 4]> = boxes.chunks_exact(4).map(|b| std::array::from_fn(|k| b[k] as f32)).collect();
    let out = visual.forward(t.tensor("input.pixels", &device), &boxes);
    let diffs = [
        ("vit", max_diff(out.vit, t.tensor("expected.vit", &device))),
        ("rois", max_diff(out.rois, t.tensor("expected.rois", &device))),
        ("aligned", max_diff(out.aligned, t.tensor("expected.aligned", &device))),
        ("fused", max_diff(out.fused, t.tensor("expected.fused", &device))),
    ];
    eprintln!("visual max |diff| {diffs:?}");
    assert!(diffs.iter().all(|(_, d)| *d < 1e-4), "{diffs:?}");
}

#[test]
fn heads_match_the_reference() {
    let device = device();
    let t = Tensors::open("heads");
    let cfg = HeadsConfig::new()
        .with_width(32)
        .with_layers(2)
        .with_heads(4)
        .with_intermediate(64)
        .with_query_width(64)
        .with_text_width(48);
    let mut heads = cfg.init(&device);
    // per head: 2 projections and fc (6 tensors), 2 layers of 16
    load(&mut heads, "heads", "", 2 * (6 + 2 * 16));
    let (_, counts) = t.values("input.templates_per_attribute");
    let vocab = Vocabularies {
        tags: t.tensor("input.tags", &device),
        attribute_templates: t.tensor("input.attribute_templates", &device),
        templates_per_attribute: counts.iter().map(|&c| c as usize).collect(),
        classes: t.tensor("input.classes", &device),
    };
    let out = heads.forward(t.tensor("input.queries", &device), &vocab); // one region: [1, entries]
    let row = |scores: Tensor<2>| scores.flatten::<1>(0, 1);
    let diffs = [
        ("tags", max_diff(row(out.tags), t.tensor("expected.tags", &device))),
        ("attributes", max_diff(row(out.attributes), t.tensor("expected.attributes", &device))),
        ("classes", max_diff(row(out.classes), t.tensor("expected.classes", &device))),
    ];
    eprintln!("heads max |diff| {diffs:?}");
    assert!(diffs.iter().all(|(_, d)| *d < 1e-5), "{diffs:?}");
}

#[test]
fn clip_text_tower_matches_the_reference() {
    let device = device();
    let t = Tensors::open("clip_text");
    let cfg = ClipTextConfig::new()
        .with_width(32)
        .with_layers(2)
        .with_heads(4)
        .with_context(12)
        .with_vocab(40)
        .with_embed_dim(24);
    let mut clip = cfg.init(&device);
    // embeddings 2, ln_final 2, projection 1, 2 blocks of 12
    load(&mut clip, "clip_text", "text.", 5 + 2 * 12);
    let (shape, ids) = t.values("input.tokens");
    let ids: Vec<i64> = ids.iter().map(|&v| v as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &device);
    let d = max_diff(clip.forward(tokens), t.tensor("expected.embeds", &device));
    eprintln!("clip_text max |diff| {d:e}");
    assert!(d < 1e-5, "clip_text {d}");
}

#[test]
fn t5_relative_position_buckets_match_transformers() {
    let t = Tensors::open("t5");
    for (name, bidirectional) in [("buckets.bidirectional", true), ("buckets.causal", false)] {
        let (_, expected) = t.values(name);
        for (i, &e) in expected.iter().enumerate() {
            let relative = i as i64 - 300;
            assert_eq!(relative_position_bucket(relative, bidirectional, 32, 128) as f64, e, "{name} at {relative}");
        }
    }
}

#[test]
fn t5_matches_transformers_with_its_own_lm_head_and_with_tied_scaled_embeddings() {
    let device = device();
    let t = Tensors::open("t5");
    for p in ["a", "b"] {
        let cfg = T5Config::from_hf_json(&t.metadata(&format!("{p}.config")))
            .unwrap()
            .with_tie_word_embeddings(!t.has(&format!("{p}.lm_head.weight")));
        let mut t5 = cfg.init(&device);
        // per encoder block 4 projections + 3 FFN + 2 norms, per decoder block 8 + 3 + 3,
        // the shared embeddings, 2 position tables, 2 final norms and the untied lm_head
        let params = cfg.num_layers * 9 + cfg.num_decoder_layers * 14 + 5 + usize::from(!cfg.tie_word_embeddings);
        load_remapped(&mut t5, "t5", &format!("{p}."), T5_KEY_REMAP, params);

        let encoded = t5.encode(t.tensor(&format!("{p}.input.embeds"), &device));
        let d_enc = max_diff(encoded.clone(), t.tensor(&format!("{p}.expected.encoded"), &device));
        let ids: Tensor<2, Int> = t.ints(&format!("{p}.input.decoder_ids"), &device);
        let expected: Tensor<3> = t.tensor(&format!("{p}.expected.logits"), &device);
        let [batch, steps] = ids.dims();

        // all positions at once (causal mask), then one position at a time through the cache
        let mut cache = t5.start(encoded.clone(), batch);
        let d_full = max_diff(t5.decode(ids.clone(), &mut cache), expected.clone());
        let mut cache = t5.start(encoded, batch);
        let stepwise: Vec<Tensor<3>> = (0..steps).map(|s| t5.decode(ids.clone().narrow(1, s, 1), &mut cache)).collect();
        let d_step = max_diff(Tensor::cat(stepwise, 1), expected.clone());
        eprintln!("t5 {p}: encoder {d_enc:e}, logits {d_full:e}, cached {d_step:e}");
        assert!(d_enc < 1e-5 && d_full < 1e-4 && d_step < 1e-4, "t5 {p}: {d_enc} {d_full} {d_step}");
    }
}

#[test]
fn t5_cache_follows_reordered_beams() {
    let device = device();
    let t = Tensors::open("t5");
    let cfg = T5Config::from_hf_json(&t.metadata("a.config")).unwrap().with_tie_word_embeddings(false);
    let mut t5: T5 = cfg.init(&device);
    load_remapped(&mut t5, "t5", "a.", T5_KEY_REMAP, cfg.num_layers * 9 + cfg.num_decoder_layers * 14 + 6);
    let encoded = t5.encode(t.tensor("a.input.embeds", &device));
    let ids: Tensor<2, Int> = t.ints("a.input.decoder_ids", &device); // [2, 7]
    let expected: Tensor<3> = t.tensor("a.expected.logits", &device);
    // decode 3 positions of both rows, then continue with row 1 twice: its logits must be row 1's
    let mut cache = t5.start(encoded, 2);
    t5.decode(ids.clone().narrow(1, 0, 3), &mut cache);
    T5::reorder(&mut cache, Tensor::from_data(TensorData::new(vec![1i64, 1], [2]), &device));
    let row1 = ids.clone().narrow(0, 1, 1).narrow(1, 3, 1).expand([2, 1]);
    let out = t5.decode(row1, &mut cache);
    let want = expected.narrow(0, 1, 1).narrow(1, 3, 1).expand([2, 1, cfg.vocab_size]);
    let d = max_diff(out, want);
    assert!(d < 1e-4, "reordered cache {d}");
}
