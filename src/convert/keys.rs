//! Checkpoint keys: which official file a tensor comes from, the module path each official key
//! loads into (regex tables applied in order, everything else keeps its official name), and the
//! official tensors DynRefer's inference does not read. Only the converter needs them: a bundle's
//! tensors are already named by module path.

use std::sync::OnceLock;

/// How official checkpoint keys become module paths, after the component's prefix is removed:
/// regex and replacement, applied in order. Everything else keeps its official name.
pub const KEY_REMAP: &[(&str, &str)] = &[
    // Rust modules cannot have a field named `self`; BERT's attention is flattened one level.
    (r"\.self\.", "."),
    (r"^self\.", ""),
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"^LayerNorm\.", "layer_norm."),
];

/// Official key → module path, for the fusion MLP.
pub const FUSE_KEYS: &[(&str, &str)] = &[(r"^cvem_mlp\.0\.", "cvem_mlp.fc1."), (r"^cvem_mlp\.2\.", "cvem_mlp.fc2.")];

/// HF T5 keys → module paths, applied in order.
pub const T5_KEY_REMAP: &[(&str, &str)] = &[
    (r"\.layer\.0\.SelfAttention\.", ".self_attention."),
    (r"\.layer\.0\.layer_norm\.", ".self_attention_norm."),
    (r"\.layer\.1\.EncDecAttention\.", ".cross_attention."),
    (r"^(decoder\.block\.\d+)\.layer\.1\.layer_norm\.", "$1.cross_attention_norm."),
    (r"\.layer\.\d\.DenseReluDense\.", ".ff."),
    (r"\.layer\.\d\.layer_norm\.", ".ff_norm."),
];

/// Which official file a tensor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// LAVIS BLIP-2 (and DynRefer's checkpoint, which overrides it): everything but T5 and CLIP.
    Lavis,
    /// The HF FlanT5 folder.
    T5,
    /// EVA-CLIP, keys already without their `text.` prefix.
    ClipText,
}

/// EVA-CLIP's own output layers, which BLIP-2 does not use (it reads the last block's tokens).
pub const EVA_OUTPUT_LAYERS: &[&str] = &["visual_encoder.norm.", "visual_encoder.fc_norm.", "visual_encoder.head."];

/// A key table's patterns, compiled once.
struct Remap(Vec<(regex::Regex, &'static str)>);

impl Remap {
    fn new<'a>(table: impl IntoIterator<Item = &'a (&'static str, &'static str)>) -> Remap {
        Remap(table.into_iter().map(|(p, to)| (regex::Regex::new(p).expect("a valid key pattern"), *to)).collect())
    }

    fn apply(&self, key: &str) -> String {
        self.0.iter().fold(key.to_string(), |k, (pattern, to)| pattern.replace_all(&k, *to).into_owned())
    }
}

/// The module path of an official key, or `None` for keys the model does not use.
pub fn official_path(source: Source, key: &str) -> Option<String> {
    static T5_REMAP: OnceLock<Remap> = OnceLock::new();
    static LAVIS_REMAP: OnceLock<Remap> = OnceLock::new();
    static TEXT_FFN: OnceLock<regex::Regex> = OnceLock::new();
    match source {
        Source::T5 => {
            let unused = key.ends_with("embed_tokens.weight"); // tied to `shared`
            (!unused).then(|| format!("t5.{}", T5_REMAP.get_or_init(|| Remap::new(T5_KEY_REMAP)).apply(key)))
        }
        Source::ClipText => (key != "logit_scale").then(|| format!("clip_text.{key}")),
        Source::Lavis => {
            if EVA_OUTPUT_LAYERS.iter().any(|p| key.starts_with(p)) {
                return None;
            }
            let (prefix, rest) = if let Some(rest) = key.strip_prefix("Qformer.bert.") {
                ("qformer", rest)
            } else if key == "query_tokens" {
                ("qformer", key)
            } else if ["visual_encoder.", "ln_vision.", "cvem_align.", "cvem_mlp."].iter().any(|p| key.starts_with(p)) {
                ("visual", key)
            } else if ["tag_", "attr_"].iter().any(|p| key.starts_with(p)) && !["attr_t", "attr_b"].contains(&key) {
                ("heads", key)
            } else if key.starts_with("t5_proj.") || key == "cem_memory" {
                return Some(key.to_string());
            } else {
                return None;
            };
            let remap = LAVIS_REMAP.get_or_init(|| Remap::new(KEY_REMAP.iter().chain(FUSE_KEYS)));
            let path = format!("{prefix}.{}", remap.apply(rest));
            // the Q-Former's text branch and embeddings are not used for queries
            let text_branch =
                ["embeddings.position_ids", "embeddings.word_embeddings", "embeddings.position_embeddings"]
                    .iter()
                    .any(|p| rest.starts_with(p))
                    || TEXT_FFN
                        .get_or_init(|| regex::Regex::new(r"^encoder\.layer\.\d+\.(intermediate|output)\.").unwrap())
                        .is_match(rest);
            (!(prefix == "qformer" && text_branch)).then_some(path)
        }
    }
}

/// `blocks.N.` in an EVA ViT key.
pub(super) fn block_index(key: &str) -> Option<usize> {
    key.strip_prefix("blocks.")?.split('.').next()?.parse().ok()
}

/// Official tensors DynRefer's inference does not read.
pub(super) fn known_unused(source: Source, key: &str) -> bool {
    match source {
        Source::Lavis => {
            key.starts_with("Qformer.")
                || key == "attr_t"
                || key == "attr_b"
                || EVA_OUTPUT_LAYERS.iter().any(|p| key.starts_with(p))
        }
        Source::T5 => true,
        Source::ClipText => key == "logit_scale",
    }
}

pub(super) fn belongs(path: &str) -> &'static str {
    match path.split('.').next().unwrap_or_default() {
        "t5" => "the T5 folder (--t5)",
        "clip_text" => "the EVA-CLIP file (--clip-text)",
        "visual" if path.starts_with("visual.visual_encoder") || path.starts_with("visual.ln_vision") => {
            "the BLIP-2 file (--blip2) or --vit"
        }
        "qformer" | "t5_proj" => "the BLIP-2 file (--blip2) or DynRefer's (--dynrefer)",
        _ => "DynRefer's checkpoint (--dynrefer)",
    }
}
