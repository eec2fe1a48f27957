//! The EVA-CLIP text tower, which embeds the tag, attribute and class
//! vocabularies: token + positional embeddings, pre-LN blocks (LN eps 1e-5) with causal
//! multi-head attention (`nn.MultiheadAttention`'s packed `in_proj`) and an exact-GELU MLP,
//! `ln_final`, the state at the end-of-text token (the largest id), then `text_projection`.
//! Keys are `eva_clip_psz14.pt`'s keys containing `text`, first five characters dropped.

use super::linear::{Linear, LinearConfig};
use crate::kernels::gelu;
use crate::text::clip_bpe::ClipBpe;
use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::attention;

const CLIP_LN_EPS: f64 = 1e-5;

/// Texts run through the tower at once: a whole vocabulary (RAM's 4585 tags) in one batch would
/// hold every layer's activations for all of them.
const BATCH: usize = 64;

/// A BPE that is not the tower's: it gives a token the tower has no embedding for.
#[derive(Debug, thiserror::Error)]
#[error("the CLIP BPE gives token id {id}, but the text tower has {vocab} tokens (a BPE file of another model?)")]
pub struct UnknownToken {
    pub id: i64,
    pub vocab: usize,
}

#[derive(Config, Debug)]
pub struct ClipTextConfig {
    #[config(default = 768)]
    pub width: usize,
    #[config(default = 12)]
    pub layers: usize,
    #[config(default = 12)]
    pub heads: usize,
    #[config(default = 77)]
    pub context: usize,
    #[config(default = 49408)]
    pub vocab: usize,
    /// Width of the output embedding (the text projection).
    #[config(default = 1024)]
    pub embed_dim: usize,
}

/// `nn.MultiheadAttention` as stored: one packed `[3 * width, width]` input projection.
#[derive(Module, Debug)]
pub struct MultiheadAttention {
    pub in_proj_weight: Param<Tensor<2>>,
    pub in_proj_bias: Param<Tensor<1>>,
    pub out_proj: Linear,
    pub heads: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
}

#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub ln_1: LayerNorm,
    pub attn: MultiheadAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Transformer {
    pub resblocks: Vec<ResidualBlock>,
}

#[derive(Module, Debug)]
pub struct ClipText {
    pub token_embedding: Embedding,
    pub positional_embedding: Param<Tensor<2>>,
    pub transformer: Transformer,
    pub ln_final: LayerNorm,
    pub text_projection: Param<Tensor<2>>,
}

impl ClipTextConfig {
    pub fn init(&self, device: &Device) -> ClipText {
        let w = self.width;
        let norm = || LayerNormConfig::new(w).with_epsilon(CLIP_LN_EPS).init(device);
        let block = || ResidualBlock {
            ln_1: norm(),
            attn: MultiheadAttention {
                in_proj_weight: Param::from_tensor(Tensor::zeros([3 * w, w], device)),
                in_proj_bias: Param::from_tensor(Tensor::zeros([3 * w], device)),
                out_proj: LinearConfig::new(w, w).init(device),
                heads: self.heads,
            },
            ln_2: norm(),
            mlp: Mlp {
                c_fc: LinearConfig::new(w, 4 * w).init(device),
                c_proj: LinearConfig::new(4 * w, w).init(device),
            },
        };
        ClipText {
            token_embedding: EmbeddingConfig::new(self.vocab, w).init(device),
            positional_embedding: Param::from_tensor(Tensor::zeros([self.context, w], device)),
            transformer: Transformer { resblocks: (0..self.layers).map(|_| block()).collect() },
            ln_final: norm(),
            text_projection: Param::from_tensor(Tensor::zeros([w, self.embed_dim], device)),
        }
    }
}

impl MultiheadAttention {
    // causal self-attention, [batch, context, width] → [batch, context, width]
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let qkv =
            x.matmul(self.in_proj_weight.val().transpose().unsqueeze::<3>()) + self.in_proj_bias.val().unsqueeze::<3>();
        self.out_proj.forward(attention::packed(qkv, self.heads, true))
    }
}

impl ResidualBlock {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x));
        let h = self.mlp.c_proj.forward(gelu(self.mlp.c_fc.forward(self.ln_2.forward(x.clone()))));
        x + h
    }
}

impl ClipText {
    /// The embeddings of `texts`, [texts, embed_dim], on the tower's device: tokenized by `bpe`,
    /// then run in batches of [`BATCH`]. Nothing is read back, so it runs on any backend.
    pub fn embed<S: AsRef<str>>(&self, bpe: &ClipBpe, texts: &[S]) -> Result<Tensor<2>, UnknownToken> {
        let positions = self.positional_embedding.val();
        let (device, [context, _]) = (positions.device(), positions.dims());
        let vocab = self.token_embedding.weight.val().dims()[0];
        if texts.is_empty() {
            return Ok(Tensor::zeros([0, self.text_projection.val().dims()[1]], &device));
        }
        let mut batches = Vec::new();
        for batch in texts.chunks(BATCH) {
            let (ids, length) = bpe.rows(batch, context);
            if let Some(&id) = ids.iter().find(|&&id| id as u64 >= vocab as u64) {
                return Err(UnknownToken { id, vocab });
            }
            let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch.len(), length]), &device);
            batches.push(self.forward(tokens));
        }
        Ok(Tensor::cat(batches, 0))
    }

    /// `tokens` [batch, length] (start, text, end-of-text, zero padding; `length` at most the
    /// context) → [batch, embed_dim]. Attention is causal and the end-of-text state is the output,
    /// so rows cut after their end-of-text token give the same embeddings as full-context rows.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let [b, n] = tokens.dims();
        let positions = self.positional_embedding.val().narrow(0, 0, n);
        let x = self.token_embedding.forward(tokens.clone()) + positions.unsqueeze::<3>();
        let x = self.transformer.resblocks.iter().fold(x, |x, block| block.forward(x));
        let x = self.ln_final.forward(x); // [b, n, w]
        let w = x.dims()[2];
        // the end-of-text token has the largest id
        let eot = tokens.argmax(1).reshape([b, 1, 1]).expand([b, 1, w]);
        x.gather(1, eot).reshape([b, w]).matmul(self.text_projection.val())
    }
}
