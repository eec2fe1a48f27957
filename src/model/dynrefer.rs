//! The whole DynRefer-T5 model: the visual side, the Q-Former, the three heads with their
//! vocabulary embeddings, and FlanT5 fed by `t5_proj` and the control words.
//!
//! Module paths are the official keys under one prefix per source file (`visual.`, `qformer.`,
//! `heads.`, `t5.`, `clip_text.`), so the converter is a table and a bundle's tensor names say
//! where each came from.

use super::linear::{Linear, LinearConfig};
use burn::module::Param;
use burn::prelude::*;

use super::clip_text::{ClipText, ClipTextConfig};
use super::heads::{Heads, HeadsConfig, Vocabularies};
use super::qformer::{Qformer, QformerConfig};
use super::t5::{T5, T5Config};
use super::visual::{Visual, VisualConfig};

/// Every size of the model. The converter reads them from the checkpoints' shapes and the
/// `--arch` file; defaults are DynRefer-FlanT5-XL's.
#[derive(Config, Debug)]
pub struct DynReferConfig {
    pub visual: VisualConfig,
    pub qformer: QformerConfig,
    pub heads: HeadsConfig,
    pub clip_text: ClipTextConfig,
    pub t5: T5Config,
    /// Views per region and their pixel size.
    #[config(default = 3)]
    pub num_views: usize,
    #[config(default = 224)]
    pub image_size: usize,
    /// Tokens of the control words fed to T5 (`</s>` included).
    #[config(default = 32)]
    pub max_txt_len: usize,
    /// Entries of each vocabulary (tags, attribute templates, classes).
    pub vocab_sizes: [usize; 3],
    /// Whether the model carries its EVA-CLIP text tower, which embeds a person's own class names
    /// (`Some(false)`: a bundle converted without `--with-text-tower`; `None`, in manifests
    /// written before the tower was optional: it is there).
    pub text_tower: Option<bool>,
}

/// The largest width, vocabulary or count a configuration may give: four times the real model's
/// largest (EVA-CLIP's 49408 BPE tokens).
const MAX_SIZE: u64 = 1 << 18;
/// The most blocks in a stack (the real ViT has 39).
const MAX_LAYERS: u64 = 256;
/// The most patches of a view (the real model has 256).
const MAX_TOKENS: usize = 1 << 14;
/// The most values of one vocabulary's embedding table, which is allocated when the model is built.
const MAX_VOCAB_VALUES: usize = 1 << 28;

/// Every integer of a configuration is at least 1 (token ids may be 0) and at most [`MAX_SIZE`],
/// layer counts at most [`MAX_LAYERS`].
fn check_sizes(value: &serde_json::Value, path: &str) -> Result<(), String> {
    match value {
        serde_json::Value::Object(fields) => fields
            .iter()
            .try_for_each(|(k, v)| check_sizes(v, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") })),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| check_sizes(v, path)),
        serde_json::Value::Number(n) if n.is_u64() => {
            let n = n.as_u64().unwrap_or_default();
            let key = path.rsplit('.').next().unwrap_or(path);
            let max = if matches!(key, "depth" | "layers" | "num_layers" | "num_decoder_layers") {
                MAX_LAYERS
            } else {
                MAX_SIZE
            };
            if n > max || (n == 0 && !key.ends_with("_token_id")) {
                return Err(format!("{path} is {n}; it must be between 1 and {max}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The vocabularies' text embeddings, computed once by the EVA-CLIP text tower at conversion.
#[derive(Module, Debug)]
pub struct VocabEmbeddings {
    pub tags: Param<Tensor<2>>,
    pub attribute_templates: Param<Tensor<2>>,
    pub classes: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
pub struct DynRefer {
    pub visual: Visual,
    pub qformer: Qformer,
    pub t5_proj: Linear,
    pub heads: Heads,
    /// Added to every control-word embedding, [d_model].
    pub cem_memory: Param<Tensor<1>>,
    pub t5: T5,
    pub vocab: VocabEmbeddings,
    /// Embeds custom class names; `describe` itself reads only the vocabularies' embeddings.
    pub clip_text: Option<ClipText>,
}

impl DynReferConfig {
    /// Refuses a configuration that cannot describe a model worth building: a zero or absurd size,
    /// a width its heads do not divide. A bundle's manifest comes from anywhere, and building its
    /// model must neither divide by zero nor allocate without bound.
    pub fn check(&self) -> Result<(), String> {
        let value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        check_sizes(&value, "")?;
        let (v, q, h, c) = (&self.visual.vit, &self.qformer, &self.heads, &self.clip_text);
        for (name, width, heads) in [
            ("visual.vit", v.width, v.heads),
            ("qformer", q.width, q.heads),
            ("heads", h.width, h.heads),
            ("clip_text", c.width, c.heads),
        ] {
            if width % heads != 0 {
                return Err(format!("{name}: width {width} is not a multiple of its {heads} heads"));
            }
        }
        if v.width % self.visual.dcn_group != 0 {
            return Err(format!("visual: width {} is not a multiple of dcn_group {}", v.width, self.visual.dcn_group));
        }
        let tokens = (v.image_size / v.patch).pow(2);
        if v.patch > v.image_size || tokens > MAX_TOKENS {
            return Err(format!("visual.vit: {tokens} patches of {} px in {} px", v.patch, v.image_size));
        }
        if self.num_views != self.visual.views {
            return Err(format!("num_views {} but the fusion takes {}", self.num_views, self.visual.views));
        }
        if let Some(n) = self.vocab_sizes.iter().find(|&&n| n * c.embed_dim > MAX_VOCAB_VALUES) {
            return Err(format!("a vocabulary of {n} entries of {} values is too large", c.embed_dim));
        }
        Ok(())
    }

    /// Whether the model has its text tower (see [`DynReferConfig::text_tower`]).
    pub fn has_text_tower(&self) -> bool {
        self.text_tower.unwrap_or(true)
    }

    pub fn init(&self, device: &Device) -> DynRefer {
        let [tags, templates, classes] = self.vocab_sizes;
        let text = self.clip_text.embed_dim;
        let table = |n: usize| Param::from_tensor(Tensor::zeros([n, text], device));
        DynRefer {
            visual: self.visual.init(device),
            qformer: self.qformer.init(device),
            t5_proj: LinearConfig::new(self.qformer.width, self.t5.d_model).init(device),
            heads: self.heads.init(device),
            cem_memory: Param::from_tensor(Tensor::zeros([self.t5.d_model], device)),
            t5: self.t5.init(device),
            vocab: VocabEmbeddings {
                tags: table(tags),
                attribute_templates: table(templates),
                classes: table(classes),
            },
            clip_text: self.has_text_tower().then(|| self.clip_text.init(device)),
        }
    }
}

impl DynRefer {
    /// The vocabularies as the heads read them.
    pub fn vocabularies(&self, templates_per_attribute: Vec<usize>) -> Vocabularies {
        Vocabularies {
            tags: self.vocab.tags.val(),
            attribute_templates: self.vocab.attribute_templates.val(),
            templates_per_attribute,
            classes: self.vocab.classes.val(),
        }
    }

    /// T5's input: `[t5_proj(queries) ; embed(control ids) + cem_memory]` → [1, tokens, d_model].
    pub fn t5_inputs(&self, queries: Tensor<3>, control_ids: &[u32]) -> Tensor<3> {
        self.t5_inputs_batch(queries, &[control_ids.to_vec()]).0
    }

    /// T5's inputs for regions whose control words differ in length, padded at the end:
    /// `queries` [regions, queries, width] → the inputs [regions, tokens, d_model] and where
    /// they are padding [regions, tokens].
    pub fn t5_inputs_batch(&self, queries: Tensor<3>, controls: &[Vec<u32>]) -> (Tensor<3>, Tensor<2, Bool>) {
        let device = queries.device();
        let [regions, q, _] = queries.dims();
        let longest = controls.iter().map(Vec::len).max().unwrap_or(0);
        let pad = 0; // hidden by the mask: any id does
        let ids: Vec<i64> = controls
            .iter()
            .flat_map(|c| c.iter().map(|&i| i64::from(i)).chain(std::iter::repeat_n(pad, longest - c.len())))
            .collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [regions, longest]), &device);
        let control = self.t5.shared.forward(ids) + self.cem_memory.val().unsqueeze::<3>();
        let padding: Vec<bool> =
            controls.iter().flat_map(|c| (0..q + longest).map(move |i| i >= q + c.len())).collect();
        let padding = Tensor::<2, Bool>::from_data(TensorData::new(padding, [regions, q + longest]), &device);
        (Tensor::cat(vec![self.t5_proj.forward(queries), control], 1), padding)
    }
}
