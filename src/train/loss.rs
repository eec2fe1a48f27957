//! DynRefer's training objectives on a batch of regions, one per output:
//! * caption: cross-entropy of FlanT5's next-token logits (teacher forcing), as the paper's
//!   language-modelling loss;
//! * tags: binary cross-entropy over the tag list (RAM, which the paper's tag head follows, uses an
//!   asymmetric variant of it; with a few balanced tags the plain one is enough);
//! * attributes: binary cross-entropy of each attribute's best prompt template, as the head scores
//!   attributes at describe time;
//! * class: cross-entropy over the class list's logits, the open-vocabulary classification.
//!
//! The vocabularies' embeddings come from the CLIP text tower in every step, so the tower learns
//! with the heads and the bundle's embeddings are the tower's own.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax};

use super::data::Batch;
use crate::model::dynrefer::DynRefer;
use crate::model::heads::Vocabularies;

/// The vocabularies as CLIP-BPE rows for the text tower.
pub struct VocabTokens {
    /// Rows of `context` token ids (cut after the longest text, see [`ClipBpe::rows`]): tags,
    /// then attribute templates, then classes.
    ///
    /// [`ClipBpe::rows`]: crate::text::clip_bpe::ClipBpe::rows
    pub rows: Vec<i64>,
    pub context: usize,
    /// Rows of each vocabulary: tags, attribute templates, classes.
    pub sizes: [usize; 3],
    pub templates_per_attribute: Vec<usize>,
}

impl VocabTokens {
    /// The vocabularies' embeddings as the text tower now computes them, on `device`.
    pub fn embed(&self, model: &DynRefer, device: &Device) -> Vocabularies {
        let count = self.rows.len() / self.context;
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(self.rows.clone(), [count, self.context]), device);
        let tower = model.clip_text.as_ref().expect("a model in training has its text tower (Trainer::new checks)");
        let all = tower.forward(tokens); // [rows, embed]
        let [tags, templates, classes] = self.sizes;
        Vocabularies {
            tags: all.clone().narrow(0, 0, tags),
            attribute_templates: all.clone().narrow(0, tags, templates),
            templates_per_attribute: self.templates_per_attribute.clone(),
            classes: all.narrow(0, tags + templates, classes),
        }
    }
}

/// Each objective's mean over the batch, [1] each.
pub struct Losses {
    pub caption: Tensor<1>,
    pub tags: Tensor<1>,
    pub attributes: Tensor<1>,
    pub class: Tensor<1>,
}

impl Losses {
    pub fn total(&self) -> Tensor<1> {
        self.caption.clone() + self.tags.clone() + self.attributes.clone() + self.class.clone()
    }
}

/// How alike each vocabulary's entries are: the mean squared cosine similarity of every pair of
/// different entries, summed over the three vocabularies. A random text tower gives labels that
/// are nearly alike (cosine 0.6–0.97), which the heads can hardly tell apart; training lowers this
/// first, as a pretrained text tower would have it low.
pub fn vocabulary_overlap(vocab: &Vocabularies) -> Tensor<1> {
    let overlap = |embeds: &Tensor<2>| {
        let [n, _] = embeds.dims();
        let unit = embeds.clone() / embeds.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-6);
        let cosine = unit.clone().matmul(unit.transpose());
        let off = cosine - Tensor::<2>::eye(n, &embeds.device());
        off.powi_scalar(2).sum() / (n * n.saturating_sub(1)).max(1) as f64
    };
    overlap(&vocab.tags) + overlap(&vocab.attribute_templates) + overlap(&vocab.classes)
}

/// `-(y log σ(x) + (1 - y) log σ(-x))`, averaged.
fn binary_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let positive = log_sigmoid(logits.clone()) * targets.clone();
    let negative = log_sigmoid(logits.neg()) * (targets.neg() + 1.0);
    (positive + negative).neg().mean()
}

pub fn losses(model: &DynRefer, vocab: &VocabTokens, batch: &Batch) -> Losses {
    let vocab = vocab.embed(model, &batch.pixels.device());
    let visual = model.visual.forward(batch.pixels.clone(), &batch.boxes); // fused [b, tokens, width]
    let queries = model.qformer.forward(visual.fused); // [b, queries, width]
    let logits = model.heads.logits(queries.clone(), &vocab);
    let tags = binary_cross_entropy(logits.tags, batch.tags.clone());
    let attributes = binary_cross_entropy(logits.attributes, batch.attributes.clone());
    let class = log_softmax(logits.classes, 1).gather(1, batch.classes.clone().unsqueeze_dim(1)).neg().mean();

    let (embeds, padding) = model.t5_inputs_batch(queries, &batch.controls);
    let encoded = model.t5.encode_padded(embeds, padding.clone());
    let mut cache = model.t5.start_padded(encoded, padding);
    let next = model.t5.decode(batch.decoder_ids.clone(), &mut cache); // [b, length, vocab]
    let picked = log_softmax(next, 2).gather(2, batch.labels.clone().unsqueeze_dim(2)).squeeze_dim::<2>(2);
    let caption = (picked * batch.label_mask.clone()).sum().neg() / batch.label_mask.clone().sum();
    Losses { caption, tags, attributes, class }
}
