//! What a model trained from scratch needs besides weights: its sizes, a T5 tokenizer and CLIP BPE
//! merges for the words of its data, written in the official formats so that bundles, the page and
//! the converter treat the model like any other.

use std::io::Write;

use crate::model::clip_text::ClipTextConfig;
use crate::model::dynrefer::DynReferConfig;
use crate::model::heads::HeadsConfig;
use crate::model::qformer::QformerConfig;
use crate::model::t5::T5Config;
use crate::model::visual::VisualConfig;
use crate::model::vit::VitConfig;
use crate::text::clip_bpe::ClipBpe;

/// Longest BPE row of the vocabulary prompts (start and end tokens included).
pub const TEXT_CONTEXT: usize = 16;

/// DynRefer's architecture at the size trained here from scratch ("DynRefer-shapes"): every part
/// of the real model (EVA-style ViT on three views, RoIAlign, DCNv4 alignment, fusion, Q-Former,
/// the three heads on CLIP-text vocabulary embeddings, FlanT5 steered by the tags), narrow and
/// shallow enough to train in about an hour on two CPU cores. Views are 84 pixels with 14-pixel
/// patches, as the official ViT's patches, on a 6 × 6 grid: a shape's outline and a pattern's
/// stripes or dots still show at that size, and the ViT sees 40 % fewer tokens than at 112.
pub fn shapes_config(t5_vocab: usize, bpe_vocab: usize, vocab_sizes: [usize; 3]) -> DynReferConfig {
    let vit =
        VitConfig::new().with_width(96).with_depth(4).with_heads(4).with_mlp(384).with_patch(14).with_image_size(84);
    let visual = VisualConfig::new(vit).with_views(3).with_dcn_group(2);
    let qformer = QformerConfig::new()
        .with_width(128)
        .with_layers(4)
        .with_heads(4)
        .with_intermediate(256)
        .with_queries(8)
        .with_vision_width(96);
    let heads = HeadsConfig::new()
        .with_width(64)
        .with_layers(2)
        .with_heads(2)
        .with_intermediate(128)
        .with_query_width(128)
        .with_text_width(64);
    let clip_text = ClipTextConfig::new()
        .with_width(64)
        .with_layers(2)
        .with_heads(2)
        .with_context(TEXT_CONTEXT)
        .with_vocab(bpe_vocab)
        .with_embed_dim(64);
    let t5 = T5Config::new()
        .with_d_model(128)
        .with_d_kv(32)
        .with_d_ff(256)
        .with_num_heads(4)
        .with_num_layers(2)
        .with_num_decoder_layers(2)
        .with_vocab_size(t5_vocab);
    // the tower learns the vocabularies here, and stays in the bundle for a person's own classes
    DynReferConfig::new(visual, qformer, heads, clip_text, t5, vocab_sizes)
        .with_text_tower(Some(true))
        .with_num_views(3)
        .with_image_size(84)
        .with_max_txt_len(32)
}

/// Characters every tokenizer of ours can spell out, so that any control word a person types gets
/// pieces rather than `<unk>` where it can.
const SPELLING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,|.-'";

/// A T5 `tokenizer.json` (Unigram with a Metaspace pre-tokenizer, as FlanT5's) whose pieces are
/// `words` (each at a word start and inside a word, as after a comma) and single characters.
/// Ids 0, 1, 2 are `<pad>`, `</s>`, `<unk>` as in T5. Returns the JSON and the vocabulary size.
pub fn t5_tokenizer_json(words: &[String]) -> (String, usize) {
    let mut pieces: Vec<(String, f64)> = vec![("<pad>".into(), 0.0), ("</s>".into(), 0.0), ("<unk>".into(), 0.0)];
    let mut add = |piece: String, score: f64| {
        if !pieces.iter().any(|(p, _)| *p == piece) {
            pieces.push((piece, score));
        }
    };
    for word in words {
        add(format!("\u{2581}{word}"), -2.0);
        add(word.clone(), -3.0);
    }
    add("\u{2581}".into(), -8.0);
    for c in SPELLING.chars() {
        add(c.to_string(), -10.0);
    }
    let vocab_size = pieces.len();
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                           "normalized": false, "special": true})
    };
    let metaspace =
        serde_json::json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true});
    let eos = |seq: &str| serde_json::json!([{"Sequence": {"id": seq, "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}]);
    let pair: Vec<serde_json::Value> =
        [eos("A"), eos("B")].iter().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")],
        "normalizer": {"type": "NFKC"},
        "pre_tokenizer": metaspace,
        "post_processor": {"type": "TemplateProcessing", "single": eos("A"), "pair": pair,
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": pieces, "byte_fallback": false},
    });
    (serde_json::to_string(&json).expect("JSON"), vocab_size)
}

/// CLIP BPE merges (gzip, the format of `bpe_simple_vocab_16e6.txt.gz`) that spell each of `words`
/// as one token: its letters merged from the left, the last one with `</w>`.
pub fn clip_bpe_merges(words: &[String]) -> Vec<u8> {
    let mut merges: Vec<String> = Vec::new();
    for word in words {
        let chars: Vec<String> = word.chars().map(|c| c.to_string()).collect();
        let mut prefix = chars[0].clone();
        for (i, c) in chars.iter().enumerate().skip(1) {
            let piece = if i + 1 == chars.len() { format!("{c}</w>") } else { c.clone() };
            let merge = format!("{prefix} {piece}");
            if !merges.contains(&merge) {
                merges.push(merge);
            }
            prefix.push_str(&piece);
        }
    }
    let text = format!("#version: the shapes world's words\n{}", merges.join("\n"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(text.as_bytes()).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// The vocabulary size of a merges file, as the text tower's embedding must have it.
pub fn bpe_vocab_size(merges_gz: &[u8]) -> Result<usize, String> {
    ClipBpe::from_gzip(merges_gz).map(|bpe| bpe.end as usize + 1).map_err(|e| e.to_string())
}

/// The lower-case words of `texts` (letters only), sorted and once each.
pub fn words<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut words: Vec<String> = texts
        .into_iter()
        .flat_map(|t| t.split(|c: char| !c.is_ascii_alphabetic()))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::caption::T5Tokenizer;

    #[test]
    fn the_tokenizer_spells_captions_and_control_words() {
        let words = words(["a red star", "an orange striped circle", "red", "star"]);
        let (json, size) = t5_tokenizer_json(&words);
        let tokenizer = T5Tokenizer::from_json(json.as_bytes(), 32).unwrap();
        let ids = tokenizer.encode("an orange striped circle").unwrap();
        assert_eq!(ids.len(), 5, "four words and </s>: {ids:?}");
        assert!(ids.iter().all(|&i| (i as usize) < size && i != 2));
        assert_eq!(tokenizer.decode(&ids).unwrap(), "an orange striped circle");
        let control = tokenizer.encode("red,star|").unwrap();
        assert_eq!(control.len(), 5, "red , star | </s>: {control:?}");
        assert_eq!(tokenizer.decode(&control).unwrap(), "red,star|");
    }

    #[test]
    fn bpe_merges_spell_each_word_as_one_token() {
        let words = words(["the red color", "the dotted pattern"]);
        let merges = clip_bpe_merges(&words);
        let bpe = ClipBpe::from_gzip(&merges).unwrap();
        assert_eq!(bpe.encode("the dotted pattern").len(), 3);
        assert_eq!(bpe_vocab_size(&merges).unwrap(), bpe.end as usize + 1);
    }
}
