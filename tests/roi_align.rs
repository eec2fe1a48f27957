//! RoIAlign as a sampling matrix against torchvision's `roi_align(aligned=False)`
//! (`tools/gen_model_fixtures.py`), on boxes of every kind.

use safetensors::SafeTensors;

use dynrefer::model::roi_align::{RoiAlignConfig, roi_align_matrix};

fn floats(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{name} in the fixture"));
    let values = match t.dtype() {
        safetensors::Dtype::F32 => {
            t.data().chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))).collect()
        }
        safetensors::Dtype::F64 => {
            t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
        }
        other => panic!("{name}: unexpected {other:?}"),
    };
    (t.shape().to_vec(), values)
}

#[test]
fn matches_torchvision() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/roi_align.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut cases = 0;
    let mut worst = 0.0f64;
    while st.tensor(&format!("c{cases}.config")).is_ok() {
        let (_, c) = floats(&st, &format!("c{cases}.config"));
        let cfg = RoiAlignConfig {
            height: c[0] as usize,
            width: c[1] as usize,
            output: c[2] as usize,
            spatial_scale: c[3] as f32,
            sampling_ratio: c[4] as usize,
        };
        let (shape, feats) = floats(&st, &format!("c{cases}.features"));
        let (_, boxes) = floats(&st, &format!("c{cases}.boxes"));
        let (_, expected) = floats(&st, &format!("c{cases}.expected"));
        let (rois, channels, cells, bins) = (shape[0], shape[1], cfg.height * cfg.width, cfg.output * cfg.output);
        for r in 0..rois {
            let region: [f32; 4] = std::array::from_fn(|k| boxes[4 * r + k] as f32);
            let m = roi_align_matrix(region, &cfg);
            for ch in 0..channels {
                let f = &feats[(r * channels + ch) * cells..][..cells];
                for bin in 0..bins {
                    let got: f64 = m[bin * cells..][..cells].iter().zip(f).map(|(w, v)| f64::from(*w) * v).sum();
                    let want = expected[(r * channels + ch) * bins + bin];
                    let diff = (got - want).abs();
                    worst = worst.max(diff);
                    assert!(diff < 1e-5, "case {cases} box {region:?} channel {ch} bin {bin}: {got} vs {want}");
                }
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 5);
    eprintln!("max |diff| {worst:e}");
}
