//! DynRefer's three heads on the Q-Former output. Each is a small BERT in
//! "tagging" mode: text queries (vocabulary embeddings from the EVA-CLIP text tower, projected)
//! cross-attend to the projected visual queries, layer after layer, with no self-attention.
//! * tags: `tag_fc` → sigmoid, one score per RAM tag;
//! * attributes: `attr_fc` on the L2-normalised output → sigmoid, the max over each attribute's
//!   consecutive prompt templates;
//! * classes: the attribute head on the class names' embeddings, raw `attr_fc` logits.

use super::linear::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::bert::{Attention, Intermediate, Output, feed_forward};

#[derive(Config, Debug)]
pub struct HeadsConfig {
    /// Width of the heads' BERT.
    #[config(default = 256)]
    pub width: usize,
    #[config(default = 2)]
    pub layers: usize,
    #[config(default = 4)]
    pub heads: usize,
    #[config(default = 1024)]
    pub intermediate: usize,
    /// Width of the Q-Former output.
    #[config(default = 768)]
    pub query_width: usize,
    /// Width of the vocabulary embeddings (the EVA-CLIP text projection).
    #[config(default = 1024)]
    pub text_width: usize,
}

#[derive(Module, Debug)]
pub struct TaggingLayer {
    pub crossattention: Attention,
    pub intermediate: Intermediate,
    pub output: Output,
}

#[derive(Module, Debug)]
pub struct TaggingEncoder {
    pub layer: Vec<TaggingLayer>,
}

#[derive(Module, Debug)]
pub struct TaggingHead {
    pub encoder: TaggingEncoder,
}

#[derive(Module, Debug)]
pub struct Heads {
    pub tag_vision_proj: Linear,
    pub tag_text_proj: Linear,
    pub tag_head: TaggingHead,
    pub tag_fc: Linear,
    pub attr_vision_proj: Linear,
    pub attr_text_proj: Linear,
    pub attr_head: TaggingHead,
    pub attr_fc: Linear,
}

/// The vocabularies' text embeddings, [entries, text_width] each.
pub struct Vocabularies {
    pub tags: Tensor<2>,
    /// Every attribute's prompt templates, attribute after attribute.
    pub attribute_templates: Tensor<2>,
    /// How many consecutive templates belong to each attribute.
    pub templates_per_attribute: Vec<usize>,
    pub classes: Tensor<2>,
}

impl Vocabularies {
    /// These vocabularies with other classes (a person's own, embedded by the same text tower).
    pub fn with_classes(&self, classes: Tensor<2>) -> Vocabularies {
        Vocabularies {
            tags: self.tags.clone(),
            attribute_templates: self.attribute_templates.clone(),
            templates_per_attribute: self.templates_per_attribute.clone(),
            classes,
        }
    }
}

/// Per-entry scores of each region, in vocabulary order.
pub struct HeadScores {
    /// sigmoid, [regions, tags]
    pub tags: Tensor<2>,
    /// sigmoid, max over each attribute's templates, [regions, attributes]
    pub attributes: Tensor<2>,
    /// raw logits, [regions, classes]
    pub classes: Tensor<2>,
}

/// The heads' logits, before the sigmoids of [`HeadScores`] (what training needs).
pub struct HeadLogits {
    /// [regions, tags]
    pub tags: Tensor<2>,
    /// the best template's logit of each attribute, [regions, attributes]
    pub attributes: Tensor<2>,
    /// [regions, classes]
    pub classes: Tensor<2>,
}

impl HeadsConfig {
    pub fn init(&self, device: &Device) -> Heads {
        let w = self.width;
        let head = || TaggingHead {
            encoder: TaggingEncoder {
                layer: (0..self.layers)
                    .map(|_| TaggingLayer {
                        crossattention: Attention::init(w, w, self.heads, device),
                        intermediate: Intermediate::init(w, self.intermediate, device),
                        output: Output::init(self.intermediate, w, device),
                    })
                    .collect(),
            },
        };
        Heads {
            tag_vision_proj: LinearConfig::new(self.query_width, w).init(device),
            tag_text_proj: LinearConfig::new(self.text_width, w).init(device),
            tag_head: head(),
            tag_fc: LinearConfig::new(w, 1).init(device),
            attr_vision_proj: LinearConfig::new(self.query_width, w).init(device),
            attr_text_proj: LinearConfig::new(self.text_width, w).init(device),
            attr_head: head(),
            attr_fc: LinearConfig::new(w, 1).init(device),
        }
    }
}

impl TaggingHead {
    /// `text` [regions, entries, width] attends to `vision` [regions, queries, width] in every layer.
    fn forward(&self, text: Tensor<3>, vision: Tensor<3>) -> Tensor<3> {
        self.encoder.layer.iter().fold(text, |h, layer| {
            let h = layer.crossattention.forward(h, vision.clone());
            feed_forward(&layer.intermediate, &layer.output, h)
        })
    }
}

/// `x / max(‖x‖, 1e-12)` over the last dimension, as `torch.nn.functional.normalize`.
fn l2_normalize(x: Tensor<3>) -> Tensor<3> {
    let norm = x.clone().powi_scalar(2).sum_dim(2).sqrt().clamp_min(1e-12);
    x / norm
}

// [regions, entries, width] → [regions, entries]
fn logits(fc: &Linear, h: Tensor<3>) -> Tensor<2> {
    let [r, n, _] = h.dims();
    fc.forward(h).reshape([r, n])
}

/// A vocabulary's embeddings [entries, text width] as every region's text queries.
fn per_region(embeds: &Tensor<2>, regions: usize) -> Tensor<3> {
    let [n, w] = embeds.dims();
    embeds.clone().unsqueeze::<3>().expand([regions, n, w])
}

impl Heads {
    /// `queries` [regions, queries, query_width] (the Q-Former output of each region).
    pub fn forward(&self, queries: Tensor<3>, vocab: &Vocabularies) -> HeadScores {
        // sigmoid is monotonic: the best template's sigmoid is the sigmoid of its logit
        let logits = self.logits(queries, vocab);
        HeadScores { tags: sigmoid(logits.tags), attributes: sigmoid(logits.attributes), classes: logits.classes }
    }

    pub fn logits(&self, queries: Tensor<3>, vocab: &Vocabularies) -> HeadLogits {
        let [regions, _, _] = queries.dims();
        let tag_vision = self.tag_vision_proj.forward(queries.clone());
        let tag_text = self.tag_text_proj.forward(per_region(&vocab.tags, regions));
        let tags = logits(&self.tag_fc, self.tag_head.forward(tag_text, tag_vision));

        let attr_vision = self.attr_vision_proj.forward(queries);
        let attr_head = |embeds: &Tensor<2>| {
            let text = self.attr_text_proj.forward(per_region(embeds, regions));
            logits(&self.attr_fc, l2_normalize(self.attr_head.forward(text, attr_vision.clone())))
        };
        let templates = attr_head(&vocab.attribute_templates); // [regions, templates]
        let mut start = 0;
        let attributes = vocab
            .templates_per_attribute
            .iter()
            .map(|&n| {
                start += n;
                templates.clone().narrow(1, start - n, n).max_dim(1)
            })
            .collect();
        HeadLogits { tags, attributes: Tensor::cat(attributes, 1), classes: attr_head(&vocab.classes) }
    }
}
