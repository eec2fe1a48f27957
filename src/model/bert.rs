//! The BERT pieces the Q-Former and the tag/attribute heads are built from: post-LN attention
//! (self- or cross-) with scores scaled by 1/sqrt(head_dim), and the post-LN feed-forward with
//! exact GELU. LayerNorm eps is 1e-12. Checkpoint keys `attention.self.query` and
//! `attention.output.LayerNorm` load here as `attention.query` and `attention.output.layer_norm`
//! (see [`crate::model::KEY_REMAP`]).

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

pub const BERT_LN_EPS: f64 = 1e-12;

/// `dense`, then LayerNorm over the residual.
#[derive(Module, Debug)]
pub struct Output {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
}

/// Multi-head attention of `width`-wide queries over `context_width`-wide keys and values.
#[derive(Module, Debug)]
pub struct Attention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Output,
    pub heads: usize,
}

impl Output {
    pub fn init(d_in: usize, width: usize, device: &Device) -> Output {
        Output {
            dense: LinearConfig::new(d_in, width).init(device),
            layer_norm: LayerNormConfig::new(width).with_epsilon(BERT_LN_EPS).init(device),
        }
    }

    // LayerNorm(dense(x) + residual)
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(self.dense.forward(x) + residual)
    }
}

impl Attention {
    pub fn init(width: usize, context_width: usize, heads: usize, device: &Device) -> Attention {
        Attention {
            query: LinearConfig::new(width, width).init(device),
            key: LinearConfig::new(context_width, width).init(device),
            value: LinearConfig::new(context_width, width).init(device),
            output: Output::init(width, width, device),
            heads,
        }
    }

    /// `x` [batch, queries, width] attends to `context` [batch, keys, context_width].
    pub fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let split = |t: Tensor<3>| {
            let [b, n, c] = t.dims();
            t.reshape([b, n, self.heads, c / self.heads]).swap_dims(1, 2) // [b, heads, n, head_dim]
        };
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(context.clone()));
        let v = split(self.value.forward(context));
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default()); // [b, heads, n, head_dim]
        let [b, _, n, _] = out.dims();
        self.output.forward(out.swap_dims(1, 2).reshape([b as i32, n as i32, -1]), x)
    }
}

/// The feed-forward block: `output(gelu(intermediate(x)), x)`.
pub fn feed_forward(intermediate: &Intermediate, output: &Output, x: Tensor<3>) -> Tensor<3> {
    output.forward(gelu(intermediate.dense.forward(x.clone())), x)
}

impl Intermediate {
    pub fn init(width: usize, hidden: usize, device: &Device) -> Intermediate {
        Intermediate { dense: LinearConfig::new(width, hidden).init(device) }
    }
}
