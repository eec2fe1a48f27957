//! The BLIP-2 Q-Former, queries only: learned query tokens through the
//! embeddings' LayerNorm (no position embeddings), then BERT layers of self-attention,
//! cross-attention to the fused visual tokens on every `cross_attention_freq`-th layer, and the
//! query feed-forward (`intermediate_query` / `output_query`). The text branch's weights are not
//! used. Keys: `query_tokens` and `Qformer.bert.*` (renamed by the converter where Rust needs it).

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::bert::{Attention, BERT_LN_EPS, Intermediate, Output, feed_forward};

/// BERT-base as BLIP-2 configures it; `vision_width` is the fused visual width (EVA ViT-g's).
#[derive(Config, Debug)]
pub struct QformerConfig {
    #[config(default = 768)]
    pub width: usize,
    #[config(default = 12)]
    pub layers: usize,
    #[config(default = 12)]
    pub heads: usize,
    #[config(default = 3072)]
    pub intermediate: usize,
    #[config(default = 32)]
    pub queries: usize,
    #[config(default = 1408)]
    pub vision_width: usize,
    #[config(default = 2)]
    pub cross_attention_freq: usize,
}

#[derive(Module, Debug)]
pub struct Embeddings {
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Layer {
    pub attention: Attention,
    pub crossattention: Option<Attention>,
    pub intermediate_query: Intermediate,
    pub output_query: Output,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub layer: Vec<Layer>,
}

#[derive(Module, Debug)]
pub struct Qformer {
    pub query_tokens: Param<Tensor<3>>,
    pub embeddings: Embeddings,
    pub encoder: Encoder,
}

impl QformerConfig {
    pub fn init(&self, device: &Device) -> Qformer {
        let (w, h) = (self.width, self.heads);
        let layer = |i: usize| Layer {
            attention: Attention::init(w, w, h, device),
            crossattention: i
                .is_multiple_of(self.cross_attention_freq)
                .then(|| Attention::init(w, self.vision_width, h, device)),
            intermediate_query: Intermediate::init(w, self.intermediate, device),
            output_query: Output::init(self.intermediate, w, device),
        };
        Qformer {
            query_tokens: Param::from_tensor(Tensor::zeros([1, self.queries, w], device)),
            embeddings: Embeddings { layer_norm: LayerNormConfig::new(w).with_epsilon(BERT_LN_EPS).init(device) },
            encoder: Encoder { layer: (0..self.layers).map(layer).collect() },
        }
    }
}

impl Qformer {
    /// `visual` [batch, tokens, vision_width] → query outputs [batch, queries, width].
    pub fn forward(&self, visual: Tensor<3>) -> Tensor<3> {
        let [b, _, _] = visual.dims();
        let [_, q, w] = self.query_tokens.dims();
        let h = self.embeddings.layer_norm.forward(self.query_tokens.val().expand([b, q, w]));
        self.encoder.layer.iter().fold(h, |h, layer| {
            let h = layer.attention.forward(h.clone(), h);
            let h = match &layer.crossattention {
                Some(cross) => cross.forward(h, visual.clone()),
                None => h,
            };
            feed_forward(&layer.intermediate_query, &layer.output_query, h)
        })
    }
}
