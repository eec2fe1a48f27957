//! EVA ViT and ln_vision on burn's CPU backend against the PyTorch reference (`model.vit_forward`),
//! loaded from the official BLIP-2 key names (`tools/gen_model_fixtures.py`).

use burn::nn::LayerNormConfig;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use safetensors::SafeTensors;

use dynrefer::model::vit::VitConfig;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vit.safetensors");

fn tensor<const D: usize>(st: &SafeTensors, name: &str, device: &Device) -> Tensor<D> {
    let t = st.tensor(name).unwrap();
    let values: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    Tensor::from_data(TensorData::new(values, t.shape().to_vec()), device)
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn vit_and_ln_vision_match_the_reference() {
    let device = Device::flex();
    let cfg = VitConfig::new().with_width(32).with_depth(2).with_heads(4).with_mlp(128).with_image_size(42);
    let mut vit = cfg.init(&device);
    let mut store = SafetensorsStore::from_file(FIXTURE)
        .with_from_adapter(PyTorchToBurnAdapter)
        .with_key_remapping(r"^visual_encoder\.", "");
    let loaded = vit.load_from(&mut store).unwrap();
    // Every parameter must come from the file: 2 blocks of 13, the patch embedding, CLS and positions.
    assert_eq!(loaded.applied.len(), 30, "{loaded}");
    let mut ln_vision = LayerNormConfig::new(32).init(&device);
    let mut store = SafetensorsStore::from_file(FIXTURE)
        .with_from_adapter(PyTorchToBurnAdapter)
        .with_key_remapping(r"^ln_vision\.", "");
    assert_eq!(ln_vision.load_from(&mut store).unwrap().applied.len(), 2);

    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let out = vit.forward(tensor(&st, "input.pixels", &device));
    assert_eq!(out.dims(), [2, 10, 32]);
    let d_vit = max_diff(out.clone(), tensor(&st, "expected.vit", &device));
    let d_ln = max_diff(ln_vision.forward(out), tensor(&st, "expected.ln_vision", &device));
    eprintln!("max |diff|: vit {d_vit:e}, ln_vision {d_ln:e}");
    assert!(d_vit < 1e-5 && d_ln < 1e-5, "vit {d_vit}, ln_vision {d_ln}");
}
