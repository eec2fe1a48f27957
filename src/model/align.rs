//! DynRefer's view alignment (`cvem_align`, a CustomDCNv4): the RoI
//! features of a context view are resampled at learned offsets so that they line up with the
//! region view. DCNv4 here is a 3x3 deformable convolution with per-group offsets and raw
//! (not softmax-normalised) masks and no kernel weights, which is exactly torchvision's
//! `deform_conv2d` with an all-ones depthwise kernel once the offsets are reordered: DCNv4 lists
//! points column-major with `(dx, dy)`, torchvision row-major with `(dy, dx)`.

use super::linear::{Linear, LinearConfig};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::module::deform_conv2d;
use burn::tensor::ops::DeformConvOptions;

const KERNEL: usize = 3;
const POINTS: usize = KERNEL * KERNEL;

/// Sizes of the alignment block. `offset_mask` has `ceil(group * 27 / 8) * 8` outputs, of which
/// the first `group * 27` are used.
#[derive(Config, Debug)]
pub struct AlignConfig {
    #[config(default = 1408)]
    pub channels: usize,
    #[config(default = 4)]
    pub group: usize,
}

#[derive(Module, Debug)]
pub struct CvemAlign {
    pub value_proj: Linear,
    pub offset_mask_dw: Conv2d,
    pub offset_mask: Linear,
    pub output_proj: Linear,
    pub group: usize,
}

impl AlignConfig {
    pub fn init(&self, device: &Device) -> CvemAlign {
        let c = self.channels;
        let om = (self.group * POINTS * 3).div_ceil(8) * 8;
        CvemAlign {
            value_proj: LinearConfig::new(c, c).init(device),
            offset_mask_dw: Conv2dConfig::new([2 * c, c], [KERNEL, KERNEL])
                .with_groups(c)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            offset_mask: LinearConfig::new(c, om).init(device),
            output_proj: LinearConfig::new(c, c).init(device),
            group: self.group,
        }
    }
}

/// For torchvision's point `row * 3 + col`, the index of the same point in DCNv4's order.
fn dcn_point(tv_point: usize) -> usize {
    let (row, col) = (tv_point / KERNEL, tv_point % KERNEL);
    col * KERNEL + row
}

fn nhwc(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

fn nchw(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

impl CvemAlign {
    /// Aligns `input` (context-view RoI features) to `reference` (the region view's), both
    /// [n, C, H, W]; returns [n, C, H, W].
    pub fn forward(&self, reference: Tensor<4>, input: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = input.dims();
        let g = self.group;
        let device = input.device();
        let value = nchw(self.value_proj.forward(nhwc(input.clone())));
        // Output channel k of the grouped conv reads channels 2k and 2k+1 of [input ; reference].
        let dw = self.offset_mask_dw.forward(Tensor::cat(vec![input, reference], 1));
        let om = self.offset_mask.forward(nhwc(dw)).narrow(3, 0, g * POINTS * 3); // [n, h, w, g*27]
        let om = om.reshape([n, h, w, g, POINTS * 3]);
        let order: Vec<i64> = (0..POINTS).map(|k| dcn_point(k) as i64).collect();
        let order = Tensor::<1, Int>::from_ints(order.as_slice(), &device);
        // [dx0, dy0, …, dx8, dy8] → torchvision's [dy, dx] per point, row-major points
        let offsets = om.clone().narrow(4, 0, 2 * POINTS).reshape([n, h, w, g, POINTS, 2]);
        let offsets = offsets.select(4, order.clone()).flip([5]).reshape([n, h, w, g * POINTS * 2]);
        let masks = om.narrow(4, 2 * POINTS, POINTS).select(4, order).reshape([n, h, w, g * POINTS]);
        let ones = Tensor::ones([c, 1, KERNEL, KERNEL], &device);
        let options = DeformConvOptions::new([1, 1], [1, 1], [1, 1], c, g);
        let out = deform_conv2d(value, nchw(offsets), ones, Some(nchw(masks)), None, options); // [n, c, h, w]
        nchw(self.output_proj.forward(nhwc(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::dcn_point;

    #[test]
    fn points_are_transposed() {
        // torchvision row-major (row, col) → DCNv4 column-major
        let order: Vec<usize> = (0..9).map(dcn_point).collect();
        assert_eq!(order, vec![0, 3, 6, 1, 4, 7, 2, 5, 8]);
    }
}
