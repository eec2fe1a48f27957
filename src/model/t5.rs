//! FlanT5, the caption's language model, as Hugging Face's
//! `T5ForConditionalGeneration` computes it with LAVIS' override of the FFN activation to exact
//! GELU: RMSNorm (eps 1e-6) before every sub-layer, unscaled attention with a learned
//! relative-position bias (from the first block, shared by all blocks), a gated FFN
//! `wo(gelu(wi_0 x) * wi_1 x)`, and a decoder with a KV cache: self-attention keys and values grow
//! by one position per step, cross-attention keys and values are computed once.
//!
//! Module paths follow the HF keys with each block's numbered sub-layers named
//! (by the converter): `encoder.block.3.layer.1.DenseReluDense.wi_0` is `encoder.block.3.ff.wi_0`.

use super::linear::{Linear, LinearConfig};
use crate::kernels::gelu;
use burn::nn::{Embedding, EmbeddingConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use serde::Deserialize;

use super::attention::{merge_heads, split_heads};

/// The fields of HF's `config.json` that change the computation; defaults are flan-t5-xl's.
#[derive(Config, Debug)]
pub struct T5Config {
    #[config(default = 2048)]
    pub d_model: usize,
    #[config(default = 64)]
    pub d_kv: usize,
    #[config(default = 5120)]
    pub d_ff: usize,
    #[config(default = 32)]
    pub num_heads: usize,
    #[config(default = 24)]
    pub num_layers: usize,
    #[config(default = 24)]
    pub num_decoder_layers: usize,
    #[config(default = 32128)]
    pub vocab_size: usize,
    #[config(default = 32)]
    pub relative_attention_num_buckets: usize,
    #[config(default = 128)]
    pub relative_attention_max_distance: usize,
    #[config(default = 1e-6)]
    pub layer_norm_epsilon: f64,
    /// flan-t5-xl has its own `lm_head`; without one the logits reuse `shared`.
    #[config(default = false)]
    pub tie_word_embeddings: bool,
    /// Multiply the decoder output by d_model^-0.5 before the logits (original T5, not T5 1.1).
    #[config(default = false)]
    pub scale_decoder_outputs: bool,
    #[config(default = 0)]
    pub decoder_start_token_id: u32,
    #[config(default = 1)]
    pub eos_token_id: u32,
    #[config(default = 0)]
    pub pad_token_id: u32,
}

/// `config.json` as transformers writes it: unknown fields are ignored, missing ones take T5's
/// defaults (`num_decoder_layers` defaults to `num_layers`, as in transformers).
#[derive(Deserialize)]
struct HfConfig {
    d_model: usize,
    d_kv: usize,
    d_ff: usize,
    num_heads: usize,
    num_layers: usize,
    num_decoder_layers: Option<usize>,
    vocab_size: usize,
    #[serde(default = "default_buckets")]
    relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default)]
    decoder_start_token_id: u32,
    #[serde(default = "default_eos")]
    eos_token_id: u32,
    #[serde(default)]
    pad_token_id: u32,
    scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    feed_forward_proj: Option<String>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_true() -> bool {
    true
}
fn default_eos() -> u32 {
    1
}

impl T5Config {
    /// Reads HF's `config.json`, as transformers 5 does: the decoder output is scaled when
    /// `scale_decoder_outputs` says so, or, in configs without that field, unless
    /// `tie_word_embeddings` is false. Whether `lm_head` exists is the checkpoint's business (the
    /// converter sets `tie_word_embeddings` from it). Only FlanT5's gated-GELU FFN is supported.
    pub fn from_hf_json(text: &str) -> Result<T5Config, String> {
        let hf: HfConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(proj) = hf.feed_forward_proj.as_deref().filter(|p| *p != "gated-gelu") {
            return Err(format!("feed_forward_proj {proj:?} is not FlanT5's \"gated-gelu\""));
        }
        Ok(T5Config {
            d_model: hf.d_model,
            d_kv: hf.d_kv,
            d_ff: hf.d_ff,
            num_heads: hf.num_heads,
            num_layers: hf.num_layers,
            num_decoder_layers: hf.num_decoder_layers.unwrap_or(hf.num_layers),
            vocab_size: hf.vocab_size,
            relative_attention_num_buckets: hf.relative_attention_num_buckets,
            relative_attention_max_distance: hf.relative_attention_max_distance,
            layer_norm_epsilon: hf.layer_norm_epsilon,
            tie_word_embeddings: hf.tie_word_embeddings,
            scale_decoder_outputs: hf.scale_decoder_outputs.unwrap_or(hf.tie_word_embeddings),
            decoder_start_token_id: hf.decoder_start_token_id,
            eos_token_id: hf.eos_token_id,
            pad_token_id: hf.pad_token_id,
        })
    }
}

#[derive(Module, Debug)]
pub struct T5Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// [buckets, heads], in the first block only.
    pub relative_attention_bias: Option<Embedding>,
    pub heads: usize,
}

/// `wo(gelu(wi_0 x) * wi_1 x)`, exact GELU as LAVIS sets it.
#[derive(Module, Debug)]
pub struct GatedFf {
    pub wi_0: Linear,
    pub wi_1: Linear,
    pub wo: Linear,
}

#[derive(Module, Debug)]
pub struct EncoderBlock {
    pub self_attention: T5Attention,
    pub self_attention_norm: RmsNorm,
    pub ff: GatedFf,
    pub ff_norm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct DecoderBlock {
    pub self_attention: T5Attention,
    pub self_attention_norm: RmsNorm,
    pub cross_attention: T5Attention,
    pub cross_attention_norm: RmsNorm,
    pub ff: GatedFf,
    pub ff_norm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub block: Vec<EncoderBlock>,
    pub final_layer_norm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct Decoder {
    pub block: Vec<DecoderBlock>,
    pub final_layer_norm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct T5 {
    pub shared: Embedding,
    pub encoder: Encoder,
    pub decoder: Decoder,
    /// `None` when the word embeddings are tied.
    pub lm_head: Option<Linear>,
    pub buckets: usize,
    pub max_distance: usize,
    /// d_model^-0.5 when the decoder output is scaled, else 1.
    pub output_scale: f64,
}

/// Keys and values of one attention, [batch, heads, positions, d_kv].
#[derive(Clone, Debug)]
pub struct KeyValues {
    pub keys: Tensor<4>,
    pub values: Tensor<4>,
}

/// What the decoder keeps between steps.
#[derive(Clone, Debug)]
pub struct DecoderCache {
    /// Per block: the positions decoded so far (`None` before the first step).
    pub self_attention: Vec<Option<KeyValues>>,
    /// Per block: the encoder output projected once.
    pub cross_attention: Vec<KeyValues>,
    /// Encoder positions that are padding, hidden from cross-attention: [batch, 1, 1, tokens].
    pub padding: Option<Tensor<4, Bool>>,
    /// Positions decoded so far.
    pub len: usize,
}

impl T5Config {
    pub fn init(&self, device: &Device) -> T5 {
        let attn = |first: bool| T5Attention {
            q: LinearConfig::new(self.d_model, self.num_heads * self.d_kv).with_bias(false).init(device),
            k: LinearConfig::new(self.d_model, self.num_heads * self.d_kv).with_bias(false).init(device),
            v: LinearConfig::new(self.d_model, self.num_heads * self.d_kv).with_bias(false).init(device),
            o: LinearConfig::new(self.num_heads * self.d_kv, self.d_model).with_bias(false).init(device),
            relative_attention_bias: first
                .then(|| EmbeddingConfig::new(self.relative_attention_num_buckets, self.num_heads).init(device)),
            heads: self.num_heads,
        };
        let norm = || RmsNormConfig::new(self.d_model).with_epsilon(self.layer_norm_epsilon).init(device);
        let ff = || GatedFf {
            wi_0: LinearConfig::new(self.d_model, self.d_ff).with_bias(false).init(device),
            wi_1: LinearConfig::new(self.d_model, self.d_ff).with_bias(false).init(device),
            wo: LinearConfig::new(self.d_ff, self.d_model).with_bias(false).init(device),
        };
        T5 {
            shared: EmbeddingConfig::new(self.vocab_size, self.d_model).init(device),
            encoder: Encoder {
                block: (0..self.num_layers)
                    .map(|i| EncoderBlock {
                        self_attention: attn(i == 0),
                        self_attention_norm: norm(),
                        ff: ff(),
                        ff_norm: norm(),
                    })
                    .collect(),
                final_layer_norm: norm(),
            },
            decoder: Decoder {
                block: (0..self.num_decoder_layers)
                    .map(|i| DecoderBlock {
                        self_attention: attn(i == 0),
                        self_attention_norm: norm(),
                        cross_attention: attn(false),
                        cross_attention_norm: norm(),
                        ff: ff(),
                        ff_norm: norm(),
                    })
                    .collect(),
                final_layer_norm: norm(),
            },
            lm_head: (!self.tie_word_embeddings)
                .then(|| LinearConfig::new(self.d_model, self.vocab_size).with_bias(false).init(device)),
            buckets: self.relative_attention_num_buckets,
            max_distance: self.relative_attention_max_distance,
            output_scale: if self.scale_decoder_outputs { (self.d_model as f64).powf(-0.5) } else { 1.0 },
        }
    }
}

/// HF's `_relative_position_bucket` for `relative = key position - query position`, in f32 as
/// torch computes it (the log-spaced buckets flip at exact powers of two).
pub fn relative_position_bucket(relative: i64, bidirectional: bool, buckets: usize, max_distance: usize) -> usize {
    let (mut buckets, mut bucket) = (buckets as i64, 0);
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            bucket += buckets;
        }
        relative.abs()
    } else {
        -relative.min(0)
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        return (bucket + distance) as usize;
    }
    let log_ratio = (distance as f32 / max_exact as f32).ln();
    let span = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (log_ratio / span * (buckets - max_exact) as f32) as i64;
    (bucket + large.min(buckets - 1)) as usize
}

/// A key-padding mask [batch, tokens] as attention's mask [batch, heads, queries, tokens].
fn key_mask(padding: Tensor<2, Bool>, heads: usize, queries: usize) -> Tensor<4, Bool> {
    let [b, n] = padding.dims();
    padding.reshape([b, 1, 1, n]).expand([b, heads, queries, n])
}

impl T5Attention {
    /// The position bias [1, heads, queries, keys] for queries at `offset..offset + queries`.
    fn position_bias(
        &self,
        queries: usize,
        keys: usize,
        offset: usize,
        bidirectional: bool,
        t5: (usize, usize),
        device: &Device,
    ) -> Tensor<4> {
        let table = self.relative_attention_bias.as_ref().expect("the first block holds the position bias");
        let ids: Vec<i64> = (0..queries)
            .flat_map(|q| {
                (0..keys).map(move |k| {
                    relative_position_bucket(k as i64 - (q + offset) as i64, bidirectional, t5.0, t5.1) as i64
                })
            })
            .collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, queries * keys]), device);
        let bias = table.forward(ids); // [1, q·k, heads]
        bias.reshape([queries, keys, self.heads]).permute([2, 0, 1]).unsqueeze::<4>()
    }

    fn key_values(&self, context: Tensor<3>) -> KeyValues {
        KeyValues {
            keys: split_heads(self.k.forward(context.clone()), self.heads),
            values: split_heads(self.v.forward(context), self.heads),
        }
    }

    /// `x` [batch, queries, d_model] over `kv`; T5 does not scale the scores.
    fn attend(
        &self,
        x: Tensor<3>,
        kv: &KeyValues,
        bias: Option<Tensor<4>>,
        mask: Option<Tensor<4, Bool>>,
    ) -> Tensor<3> {
        let q = split_heads(self.q.forward(x), self.heads);
        let options = AttentionModuleOptions { scale: Some(1.0), ..Default::default() };
        let out = attention(q, kv.keys.clone(), kv.values.clone(), mask, bias, options);
        self.o.forward(merge_heads(out))
    }
}

impl GatedFf {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.wo.forward(gelu(self.wi_0.forward(x.clone())) * self.wi_1.forward(x))
    }
}

impl T5 {
    fn rel(&self) -> (usize, usize) {
        (self.buckets, self.max_distance)
    }

    /// `embeds` [batch, tokens, d_model] (all attended; DynRefer masks nothing) → encoder states.
    pub fn encode(&self, embeds: Tensor<3>) -> Tensor<3> {
        self.encode_masked(embeds, None)
    }

    /// Like [`T5::encode`] for inputs of different lengths padded at the end: `padding`
    /// [batch, tokens] is true on padding, which no position attends to.
    pub fn encode_padded(&self, embeds: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        self.encode_masked(embeds, Some(padding))
    }

    fn encode_masked(&self, embeds: Tensor<3>, padding: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let [_, n, _] = embeds.dims();
        let device = embeds.device();
        let first = &self.encoder.block[0].self_attention;
        let bias = first.position_bias(n, n, 0, true, self.rel(), &device); // [1, heads, n, n]
        let mask = padding.map(|p| key_mask(p, first.heads, n));
        let h = self.encoder.block.iter().fold(embeds, |h, block| {
            let x = block.self_attention_norm.forward(h.clone());
            let kv = block.self_attention.key_values(x.clone());
            let h = h + block.self_attention.attend(x, &kv, Some(bias.clone()), mask.clone());
            h.clone() + block.ff.forward(block.ff_norm.forward(h))
        });
        self.encoder.final_layer_norm.forward(h)
    }

    /// An empty cache for `beams` copies of one encoded input [1, tokens, d_model].
    pub fn start(&self, encoded: Tensor<3>, beams: usize) -> DecoderCache {
        let [_, n, d] = encoded.dims();
        self.start_masked(encoded.expand([beams, n, d]), None)
    }

    /// An empty cache for a batch of encoded inputs [batch, tokens, d_model] padded at the end;
    /// `padding` [batch, tokens] is true on padding.
    pub fn start_padded(&self, encoded: Tensor<3>, padding: Tensor<2, Bool>) -> DecoderCache {
        self.start_masked(encoded, Some(padding))
    }

    fn start_masked(&self, encoded: Tensor<3>, padding: Option<Tensor<2, Bool>>) -> DecoderCache {
        let [b, n] = [encoded.dims()[0], encoded.dims()[1]];
        DecoderCache {
            self_attention: vec![None; self.decoder.block.len()],
            cross_attention: self.decoder.block.iter().map(|b| b.cross_attention.key_values(encoded.clone())).collect(),
            padding: padding.map(|p| p.reshape([b, 1, 1, n])),
            len: 0,
        }
    }

    /// Feeds `ids` [batch, new] at the next positions and returns the logits [batch, new, vocab].
    pub fn decode(&self, ids: Tensor<2, Int>, cache: &mut DecoderCache) -> Tensor<3> {
        let [batch, new] = ids.dims();
        let device = ids.device();
        let (past, total) = (cache.len, cache.len + new);
        let first = &self.decoder.block[0].self_attention;
        let bias = first.position_bias(new, total, past, false, self.rel(), &device); // [1, heads, new, total]
        // later positions are hidden; with one new token there are none
        let mask = (new > 1).then(|| {
            let hidden: Vec<bool> = (0..new).flat_map(|q| (0..total).map(move |k| k > q + past)).collect();
            Tensor::<4, Bool>::from_data(TensorData::new(hidden, [1, 1, new, total]), &device).expand([
                batch,
                first.heads,
                new,
                total,
            ])
        });
        let mut h = self.shared.forward(ids); // [batch, new, d_model]
        for (i, block) in self.decoder.block.iter().enumerate() {
            let x = block.self_attention_norm.forward(h.clone());
            let step = block.self_attention.key_values(x.clone());
            let kv = match cache.self_attention[i].take() {
                Some(kv) => KeyValues {
                    keys: Tensor::cat(vec![kv.keys, step.keys], 2),
                    values: Tensor::cat(vec![kv.values, step.values], 2),
                },
                None => step,
            };
            h = h + block.self_attention.attend(x, &kv, Some(bias.clone()), mask.clone());
            cache.self_attention[i] = Some(kv);
            let x = block.cross_attention_norm.forward(h.clone());
            let hide = cache.padding.clone().map(|p| {
                let keys = p.dims()[3];
                p.expand([batch, first.heads, new, keys])
            });
            h = h + block.cross_attention.attend(x, &cache.cross_attention[i], None, hide);
            h = h.clone() + block.ff.forward(block.ff_norm.forward(h));
        }
        cache.len = total;
        let h = self.decoder.final_layer_norm.forward(h) * self.output_scale;
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => h.matmul(self.shared.weight.val().transpose().unsqueeze::<3>()),
        }
    }

    /// Keeps the cached positions of the beams in `order` (a beam may be kept several times).
    pub fn reorder(cache: &mut DecoderCache, order: Tensor<1, Int>) {
        for kv in cache.self_attention.iter_mut().flatten() {
            kv.keys = kv.keys.clone().select(0, order.clone());
            kv.values = kv.values.clone().select(0, order.clone());
        }
    }
}
