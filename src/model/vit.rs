//! EVA ViT-g, as LAVIS runs it for BLIP-2: convolutional patch embedding, a
//! CLS token and absolute position embeddings, pre-LN blocks (LN eps 1e-6) whose attention has
//! `q_bias` and `v_bias` but no key bias, exact GELU, and no final norm. Field names follow the
//! official keys under `visual_encoder.`, so loading is a prefix strip.

use super::linear::{Linear, LinearConfig};
use crate::kernels::gelu;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::attention;

/// Sizes of the ViT; what the checkpoint's shapes cannot tell (the head count) comes from
/// `arch.json`. The default is EVA ViT-g as DynRefer uses it (layer 40 dropped).
#[derive(Config, Debug)]
pub struct VitConfig {
    #[config(default = 1408)]
    pub width: usize,
    #[config(default = 39)]
    pub depth: usize,
    #[config(default = 16)]
    pub heads: usize,
    #[config(default = 6144)]
    pub mlp: usize,
    #[config(default = 14)]
    pub patch: usize,
    #[config(default = 224)]
    pub image_size: usize,
}

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub q_bias: Param<Tensor<1>>,
    pub v_bias: Param<Tensor<1>>,
    pub proj: Linear,
    pub heads: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Vit {
    pub patch_embed: PatchEmbed,
    pub cls_token: Param<Tensor<3>>,
    pub pos_embed: Param<Tensor<3>>,
    pub blocks: Vec<Block>,
}

impl VitConfig {
    /// The module with uninitialised weights, to be loaded from a checkpoint.
    pub fn init(&self, device: &Device) -> Vit {
        let (c, tokens) = (self.width, (self.image_size / self.patch).pow(2) + 1);
        let norm = || LayerNormConfig::new(c).with_epsilon(1e-6).init(device);
        let block = || Block {
            norm1: norm(),
            attn: Attention {
                qkv: LinearConfig::new(c, 3 * c).with_bias(false).init(device),
                q_bias: Param::from_tensor(Tensor::zeros([c], device)),
                v_bias: Param::from_tensor(Tensor::zeros([c], device)),
                proj: LinearConfig::new(c, c).init(device),
                heads: self.heads,
            },
            norm2: norm(),
            mlp: Mlp {
                fc1: LinearConfig::new(c, self.mlp).init(device),
                fc2: LinearConfig::new(self.mlp, c).init(device),
            },
        };
        Vit {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([3, c], [self.patch, self.patch])
                    .with_stride([self.patch, self.patch])
                    .init(device),
            },
            cls_token: Param::from_tensor(Tensor::zeros([1, 1, c], device)),
            pos_embed: Param::from_tensor(Tensor::zeros([1, tokens, c], device)),
            blocks: (0..self.depth).map(|_| block()).collect(),
        }
    }
}

impl Attention {
    // [views, tokens, width] -> [views, tokens, width]
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        // the key has no bias
        let k_bias = self.q_bias.val().zeros_like();
        let bias = Tensor::cat(vec![self.q_bias.val(), k_bias, self.v_bias.val()], 0);
        let qkv = self.qkv.forward(x) + bias.unsqueeze::<3>(); // [v, n, 3c]
        self.proj.forward(attention::packed(qkv, self.heads, false))
    }
}

impl Block {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        let h = self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(self.norm2.forward(x.clone()))));
        x + h
    }
}

impl Vit {
    /// `pixels` [views, 3, S, S] (CLIP-normalised) → tokens [views, 1 + (S/patch)², width], CLS first.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let x = self.patch_embed.proj.forward(pixels); // [v, c, g, g]
        let x = x.flatten::<3>(2, 3).swap_dims(1, 2); // [v, g*g, c]
        let [v, _, c] = x.dims();
        let cls = self.cls_token.val().expand([v, 1, c]);
        let x = Tensor::cat(vec![cls, x], 1) + self.pos_embed.val();
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}
