//! The BERT pieces the Q-Former and the tag/attribute heads are built from: post-LN attention
//! (self- or cross-) with scores scaled by 1/sqrt(head_dim), and the post-LN feed-forward with
//! exact GELU. LayerNorm eps is 1e-12. Checkpoint keys `attention.self.query` and
//! `attention.output.LayerNorm` load here as `attention.query` and `attention.output.layer_norm`
//! (renamed by the converter where Rust needs it).

use super::linear::{Linear, LinearConfig};
use crate::kernels::gelu;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::attention;

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
        let q = self.query.forward(x.clone());
        let (k, v) = (self.key.forward(context.clone()), self.value.forward(context));
        self.output.forward(attention::multi_head(q, k, v, self.heads, false), x)
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
