//! The caption's text: the control words DynRefer feeds to FlanT5 and the
//! T5 tokenizer (`tokenizer.json`, the `tokenizers` crate) both ways.

use tokenizers::{Tokenizer, TruncationParams};

#[derive(Debug, thiserror::Error)]
#[error("T5 tokenizer: {0}")]
pub struct TokenizerError(String);

/// The control string: the user's control words (split on `",|"` as the official code does,
/// stripped), then the tags, each once in first-seen order, joined by `,` and closed by `|`.
/// The official code joins a Python set (random order); tag-list order makes it reproducible.
pub fn control_string<'a>(tags: impl IntoIterator<Item = &'a str>, controls: Option<&'a str>) -> String {
    let words = controls.into_iter().flat_map(|c| c.split(",|").map(str::trim)).chain(tags);
    let mut unique: Vec<&str> = Vec::new();
    for w in words {
        if !unique.contains(&w) {
            unique.push(w);
        }
    }
    unique.join(",") + "|"
}

/// transformers' `clean_up_tokenization` (the default when the official code decoded).
pub fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

/// Every special token a template (a post-processor with `single` or `pair` pieces, or a sequence
/// of them) adds is defined, with as many ids as tokens.
fn check_templates(processor: &serde_json::Value) -> Result<(), String> {
    if let Some(processors) = processor["processors"].as_array() {
        return processors.iter().try_for_each(check_templates);
    }
    // whatever its `type` says: tokenizers reads a processor shaped like a template as one
    let specials = &processor["special_tokens"];
    let pieces = ["single", "pair"].into_iter().flat_map(|t| processor[t].as_array().into_iter().flatten());
    for id in pieces.filter_map(|p| p["SpecialToken"]["id"].as_str()) {
        let token = &specials[id];
        let (ids, tokens) = (token["ids"].as_array(), token["tokens"].as_array());
        if ids.is_none_or(|ids| Some(ids.len()) != tokens.map(Vec::len)) {
            return Err(format!("tokenizer.json: the template's special token {id:?} is not defined"));
        }
    }
    Ok(())
}

/// The T5 tokenizer, truncating inputs to `max_len` tokens (`</s>` included), unpadded.
pub struct T5Tokenizer {
    tokenizer: Tokenizer,
}

impl T5Tokenizer {
    pub fn from_json(bytes: &[u8], max_len: usize) -> Result<T5Tokenizer, TokenizerError> {
        // tokenizers panics on some malformed JSON inside its `decoder` (it expects what it
        // parses there) and on templates that name special tokens it lacks (it indexes them when
        // encoding), so both are checked first
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| TokenizerError(format!("tokenizer.json is not JSON: {e}")))?;
        check_templates(&value["post_processor"]).map_err(TokenizerError)?;
        let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| TokenizerError(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(T5Tokenizer { tokenizer })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| TokenizerError(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text without special tokens (`<pad>`, `</s>`, `<unk>`), cleaned up.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let text = self.tokenizer.decode(ids, true).map_err(|e| TokenizerError(e.to_string()))?;
        Ok(clean_up_tokenization(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_words_come_first_once_and_close_with_a_bar() {
        assert_eq!(control_string(["dog", "grass"], None), "dog,grass|");
        assert_eq!(control_string([], None), "|");
        assert_eq!(control_string(["dog", "hat"], Some("red hat,|dog")), "red hat,dog,hat|");
        assert_eq!(control_string(["dog"], Some(" a ,| b")), "a,b,dog|");
        // an empty control adds an empty item: a leading comma
        assert_eq!(control_string(["dog"], Some("")), ",dog|");
    }

    #[test]
    fn clean_up_joins_punctuation_and_contractions() {
        assert_eq!(clean_up_tokenization("a man 's hat , red . is n't"), "a man's hat, red. isn't");
    }
}
