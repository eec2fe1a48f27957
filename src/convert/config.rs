//! The model's sizes: what tensor shapes tell (widths, depths, vocabularies) and what they
//! cannot (head counts, views, image size: `--arch`), checked against each other.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::ConvertError;
use super::read::read_text;
use crate::model::clip_text::ClipTextConfig;
use crate::model::dynrefer::DynReferConfig;
use crate::model::heads::HeadsConfig;
use crate::model::qformer::QformerConfig;
use crate::model::t5::T5Config;
use crate::model::visual::VisualConfig;
use crate::model::vit::VitConfig;

/// What tensor shapes cannot tell (`--arch`); defaults are the official model's.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Arch {
    pub vision_heads: usize,
    pub qformer_heads: usize,
    pub head_heads: usize,
    pub clip_text_heads: usize,
    pub cross_attention_freq: usize,
    pub num_views: usize,
    pub image_size: usize,
    pub dcn_group: usize,
    pub tag_threshold: f32,
    pub max_txt_len: usize,
}

impl Arch {
    /// The `--arch` file, or the defaults without one.
    pub fn read(path: Option<&Path>) -> Result<Arch, ConvertError> {
        let Some(path) = path else { return Ok(Arch::default()) };
        serde_json::from_str(&read_text(path)?)
            .map_err(|e| ConvertError::Arch { file: path.display().to_string(), message: e.to_string() })
    }
}

impl Default for Arch {
    fn default() -> Self {
        Arch {
            vision_heads: 16,
            qformer_heads: 12,
            head_heads: 4,
            clip_text_heads: 12,
            cross_attention_freq: 2,
            num_views: 3,
            image_size: 224,
            dcn_group: 4,
            tag_threshold: 0.76,
            max_txt_len: 32,
        }
    }
}

/// The sizes of the model, from the tensors' shapes and `--arch`.
pub(super) fn infer_config(
    shapes: &HashMap<String, Vec<usize>>,
    arch: &Arch,
    arch_file: &str,
    t5: T5Config,
    vocab_sizes: [usize; 3],
) -> Result<DynReferConfig, ConvertError> {
    let dim = |key: &str, axis: usize| -> Result<usize, ConvertError> {
        shapes.get(key).and_then(|s| s.get(axis).copied()).ok_or(ConvertError::Missing {
            key: key.to_string(),
            shape: vec![],
            belongs: "the checkpoints",
        })
    };
    let count = |prefix: &str| {
        let re = regex::Regex::new(&format!(r"^{}\.(\d+)\.", regex::escape(prefix))).unwrap();
        shapes.keys().filter_map(|k| re.captures(k).map(|c| c[1].parse::<usize>().unwrap() + 1)).max().unwrap_or(0)
    };
    let vit = VitConfig::new()
        .with_width(dim("visual.visual_encoder.cls_token", 2)?)
        .with_depth(count("visual.visual_encoder.blocks"))
        .with_heads(arch.vision_heads)
        .with_mlp(dim("visual.visual_encoder.blocks.0.mlp.fc1.weight", 0)?)
        .with_patch(dim("visual.visual_encoder.patch_embed.proj.weight", 2)?)
        .with_image_size(arch.image_size);
    let qformer = QformerConfig::new()
        .with_width(dim("qformer.query_tokens", 2)?)
        .with_queries(dim("qformer.query_tokens", 1)?)
        .with_layers(count("qformer.encoder.layer"))
        .with_heads(arch.qformer_heads)
        .with_intermediate(dim("qformer.encoder.layer.0.intermediate_query.dense.weight", 0)?)
        .with_vision_width(dim("qformer.encoder.layer.0.crossattention.key.weight", 1)?)
        .with_cross_attention_freq(arch.cross_attention_freq);
    let heads = HeadsConfig::new()
        .with_width(dim("heads.tag_text_proj.weight", 0)?)
        .with_layers(count("heads.tag_head.encoder.layer"))
        .with_heads(arch.head_heads)
        .with_intermediate(dim("heads.tag_head.encoder.layer.0.intermediate.dense.weight", 0)?)
        .with_query_width(dim("heads.tag_vision_proj.weight", 1)?)
        .with_text_width(dim("heads.tag_text_proj.weight", 1)?);
    let clip_text = ClipTextConfig::new()
        .with_width(dim("clip_text.positional_embedding", 1)?)
        .with_layers(count("clip_text.transformer.resblocks"))
        .with_heads(arch.clip_text_heads)
        .with_context(dim("clip_text.positional_embedding", 0)?)
        .with_vocab(dim("clip_text.token_embedding.weight", 0)?)
        .with_embed_dim(dim("clip_text.text_projection", 1)?);
    let checks = [
        ("vision_heads", vit.width, arch.vision_heads, "the ViT width"),
        ("qformer_heads", qformer.width, arch.qformer_heads, "the Q-Former width"),
        ("head_heads", heads.width, arch.head_heads, "the heads' width"),
        ("clip_text_heads", clip_text.width, arch.clip_text_heads, "the text tower's width"),
        ("image_size", arch.image_size, vit.patch, "a multiple of the patch size"),
        ("dcn_group", vit.width / 16, arch.dcn_group, "the ViT width / 16 (DCNv4 needs channels per group % 16 == 0)"),
    ];
    for (field, width, n, what) in checks {
        if n == 0 || !width.is_multiple_of(n) {
            let message = format!("{field} = {n} does not divide {what} ({width})");
            return Err(ConvertError::Arch { file: arch_file.to_string(), message });
        }
    }
    if arch.num_views == 0 || arch.cross_attention_freq == 0 || arch.max_txt_len == 0 {
        let message = "num_views, cross_attention_freq and max_txt_len must be at least 1".to_string();
        return Err(ConvertError::Arch { file: arch_file.to_string(), message });
    }
    let expected_tokens = (arch.image_size / vit.patch).pow(2) + 1;
    let pos = dim("visual.visual_encoder.pos_embed", 1)?;
    if pos != expected_tokens {
        let message =
            format!("image_size {} gives {expected_tokens} ViT tokens but pos_embed has {pos}", arch.image_size);
        return Err(ConvertError::Arch { file: arch_file.to_string(), message });
    }
    let widths = [
        ("the Q-Former's cross-attention reads", qformer.vision_width, "the ViT is", vit.width),
        ("the heads read", heads.query_width, "the Q-Former is", qformer.width),
        ("the heads' text projections read", heads.text_width, "the text tower's projection is", clip_text.embed_dim),
    ];
    for (reader, got, source, want) in widths {
        if got != want {
            return Err(ConvertError::Mismatch(format!("{reader} {got}-wide inputs but {source} {want} wide")));
        }
    }
    let visual = VisualConfig::new(vit).with_views(arch.num_views).with_dcn_group(arch.dcn_group);
    Ok(DynReferConfig::new(visual, qformer, heads, clip_text, t5, vocab_sizes)
        .with_num_views(arch.num_views)
        .with_image_size(arch.image_size)
        .with_max_txt_len(arch.max_txt_len))
}
