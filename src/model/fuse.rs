//! `cvem_mlp`: the views' tokens, concatenated channel-wise view-major (`[v0 | v1 | v2]`), fused
//! back to one width by Linear → ReLU → Linear. The checkpoint's Sequential
//! indices `cvem_mlp.0` / `cvem_mlp.2` load as `fc1` / `fc2`.

use super::linear::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

#[derive(Module, Debug)]
pub struct Fuse {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Fuse {
    pub fn init(width: usize, views: usize, device: &Device) -> Fuse {
        Fuse {
            fc1: LinearConfig::new(views * width, width).init(device),
            fc2: LinearConfig::new(width, width).init(device),
        }
    }

    /// `tokens` [regions · views, length, width], region after region → [regions, length, width].
    pub fn forward(&self, tokens: Tensor<3>, views: usize) -> Tensor<3> {
        let [n, l, c] = tokens.dims();
        let r = n / views;
        let x = tokens.reshape([r, views, l, c]).swap_dims(1, 2).reshape([r, l, views * c]); // (r v l c) -> r l (v c)
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}
