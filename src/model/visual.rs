//! The visual side of DynRefer up to the fused region tokens: every view
//! through EVA ViT and `ln_vision`, the region RoI-aligned in each view, the context views
//! aligned to the region view by DCNv4, each view's CLS put in front of its RoI tokens, and the
//! views fused. Field names are the official key prefixes.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::align::{AlignConfig, CvemAlign};
use super::fuse::Fuse;
use super::roi_align::{RoiAlignConfig, roi_align_matrix};
use super::vit::{Vit, VitConfig};

/// RoIAlign samples per bin side, as DynRefer calls torchvision.
const SAMPLING_RATIO: usize = 2;

#[derive(Config, Debug)]
pub struct VisualConfig {
    pub vit: VitConfig,
    #[config(default = 3)]
    pub views: usize,
    #[config(default = 4)]
    pub dcn_group: usize,
}

#[derive(Module, Debug)]
pub struct Visual {
    pub visual_encoder: Vit,
    pub ln_vision: LayerNorm,
    pub cvem_align: CvemAlign,
    pub cvem_mlp: Fuse,
    pub patch: usize,
    /// Views per region.
    pub views: usize,
}

/// What the visual side computes, kept for parity checks and the page's progress.
pub struct VisualOutput {
    /// [regions · views, 1 + grid², width] after `ln_vision`
    pub vit: Tensor<3>,
    /// [regions · views, width, grid, grid]
    pub rois: Tensor<4>,
    /// [regions · views, width, grid, grid]: each region's view 0 as is, the others aligned to it
    pub aligned: Tensor<4>,
    /// [regions, 1 + grid², width]
    pub fused: Tensor<3>,
}

impl VisualConfig {
    pub fn init(&self, device: &Device) -> Visual {
        let c = self.vit.width;
        Visual {
            visual_encoder: self.vit.init(device),
            ln_vision: LayerNormConfig::new(c).init(device),
            cvem_align: AlignConfig::new().with_channels(c).with_group(self.dcn_group).init(device),
            cvem_mlp: Fuse::init(c, self.views, device),
            patch: self.vit.patch,
            views: self.views,
        }
    }
}

impl Visual {
    /// `pixels` [regions · views, 3, S, S] (region after region) and each view's region box in
    /// view pixels → the fused tokens.
    pub fn forward(&self, pixels: Tensor<4>, region_boxes: &[[f32; 4]]) -> VisualOutput {
        self.fuse(self.encode(pixels), region_boxes)
    }

    /// Every view through the ViT and `ln_vision` → [regions · views, 1 + grid², width].
    pub fn encode(&self, pixels: Tensor<4>) -> Tensor<3> {
        self.ln_vision.forward(self.visual_encoder.forward(pixels))
    }

    /// The region RoI-aligned in each view's tokens, each region's views aligned to its view 0,
    /// then fused.
    pub fn fuse(&self, vit: Tensor<3>, region_boxes: &[[f32; 4]]) -> VisualOutput {
        let [n, tokens, c] = vit.dims();
        let (v, regions) = (self.views, n / self.views);
        let device = vit.device();
        let grid = (tokens - 1).isqrt();
        let cfg = RoiAlignConfig {
            height: grid,
            width: grid,
            output: grid,
            spatial_scale: 1.0 / self.patch as f32,
            sampling_ratio: SAMPLING_RATIO,
        };
        let matrices: Vec<f32> = region_boxes.iter().flat_map(|b| roi_align_matrix(*b, &cfg)).collect();
        let matrices = Tensor::<3>::from_data(TensorData::new(matrices, [n, grid * grid, grid * grid]), &device);
        let spatial = vit.clone().narrow(1, 1, tokens - 1); // [n, g², c]
        let rois = matrices.matmul(spatial).swap_dims(1, 2).reshape([n, c, grid, grid]);
        let aligned = if v > 1 {
            let by_region = rois.clone().reshape([regions, v, c, grid, grid]);
            let first = by_region.clone().narrow(1, 0, 1); // [r, 1, c, g, g]
            let reference =
                first.clone().expand([regions, v - 1, c, grid, grid]).reshape([regions * (v - 1), c, grid, grid]);
            let others = by_region.narrow(1, 1, v - 1).reshape([regions * (v - 1), c, grid, grid]);
            let others = self.cvem_align.forward(reference, others).reshape([regions, v - 1, c, grid, grid]);
            Tensor::cat(vec![first, others], 1).reshape([n, c, grid, grid])
        } else {
            rois.clone()
        };
        let roi_tokens = aligned.clone().permute([0, 2, 3, 1]).reshape([n, grid * grid, c]); // row-major (y, x)
        let seq = Tensor::cat(vec![vit.clone().narrow(1, 0, 1), roi_tokens], 1); // [n, 1+g², c]
        let fused = self.cvem_mlp.forward(seq, v);
        VisualOutput { vit, rois, aligned, fused }
    }
}
