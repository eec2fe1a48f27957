//! CLIP's byte-level BPE tokenizer, as the official `tokenize` runs it: HTML
//! entities unescaped twice, whitespace collapsed, lower case, CLIP's regex split, bytes mapped to
//! printable characters, BPE with the merges file's lines `1..48895`; rows are
//! `[start, tokens…, end]`, cut to the context with the end token kept, zero-padded.

use std::collections::HashMap;
use std::io::Read;

use regex::Regex;

/// Merges CLIP reads from its file: `lines[1 : 49152 - 256 - 2 + 1]`.
const MAX_MERGES: usize = 49152 - 256 - 2;

#[derive(Debug, thiserror::Error)]
pub enum BpeError {
    #[error("the BPE merges file is not gzip text: {0}")]
    NotGzip(std::io::Error),
    #[error("the BPE merges file has a malformed line {line}: {text:?}")]
    BadMerge { line: usize, text: String },
}

/// The text the official open-vocabulary head embeds for a class name.
pub fn class_prompt(name: &str) -> String {
    format!("the {}", name.to_lowercase())
}

pub struct ClipBpe {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    pub start: u32,
    pub end: u32,
}

/// GPT-2's reversible byte → printable character table.
fn byte_chars() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut chars = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        chars[b as usize] = if printable(b) {
            char::from_u32(b).expect("a Latin-1 code point")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("a code point below 512")
        };
    }
    chars
}

/// The vocabulary's byte characters in CLIP's order: printable bytes first, then the others.
fn byte_order(chars: &[char; 256]) -> Vec<char> {
    let mut order: Vec<char> = chars.iter().copied().filter(|c| (*c as u32) < 256).collect();
    order.extend(chars.iter().copied().filter(|c| (*c as u32) >= 256));
    order
}

impl ClipBpe {
    /// Reads `bpe_simple_vocab_16e6.txt.gz` (or any merges file in its format).
    pub fn from_gzip(bytes: &[u8]) -> Result<ClipBpe, BpeError> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).map_err(BpeError::NotGzip)?;
        // Python's split("\n") keeps a last empty line; when the slice [1:48895] reaches it (a
        // short file), CLIP adds an empty vocabulary entry for it, which shifts the special ids.
        let lines: Vec<&str> = text.split('\n').collect();
        let mut merges = Vec::new();
        let mut empty_entry = false;
        for (i, line) in lines.iter().enumerate().skip(1).take(MAX_MERGES) {
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [a, b] => merges.push((a.to_string(), b.to_string())),
                [] if i == lines.len() - 1 => empty_entry = true,
                _ => return Err(BpeError::BadMerge { line: i + 1, text: (*line).to_string() }),
            }
        }
        let byte_chars = byte_chars();
        let singles: Vec<String> = byte_order(&byte_chars).into_iter().map(String::from).collect();
        let vocab = singles
            .iter()
            .cloned()
            .chain(singles.iter().map(|s| format!("{s}</w>")))
            .chain(merges.iter().map(|(a, b)| format!("{a}{b}")))
            .chain(empty_entry.then(String::new))
            .chain(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
        let encoder: HashMap<String, u32> = vocab.enumerate().map(|(i, t)| (t, i as u32)).collect();
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        let pattern = Regex::new(
            r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .expect("CLIP's pattern compiles");
        let (start, end) = (encoder["<|startoftext|>"], encoder["<|endoftext|>"]);
        Ok(ClipBpe { encoder, ranks, byte_chars, pattern, start, end })
    }

    fn bpe(&self, token: &str) -> Vec<String> {
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| self.ranks.get(&(p[0].clone(), p[1].clone())).map(|r| (*r, p[0].clone(), p[1].clone())))
                .min();
            let Some((_, a, b)) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == a && word[i + 1] == b {
                    merged.push(format!("{a}{b}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }

    /// Token ids of `text`, without the start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let unescaped =
            html_escape::decode_html_entities(&html_escape::decode_html_entities(text).into_owned()).into_owned();
        let cleaned = unescaped.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&cleaned) {
            let mapped: String = m.as_str().bytes().map(|b| self.byte_chars[b as usize]).collect();
            ids.extend(self.bpe(&mapped).iter().map(|piece| self.encoder[piece]));
        }
        ids
    }

    /// Rows of `texts` as [`ClipBpe::tokenize`] makes them, all cut after the longest one's end
    /// token: the text tower's attention is causal and it reads the end token's state, so what
    /// follows is padding that changes nothing (at CLIP's 77-token context, most of the work).
    /// Returns the ids, row after row, and the rows' length.
    pub fn rows<S: AsRef<str>>(&self, texts: &[S], context: usize) -> (Vec<i64>, usize) {
        let rows: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t.as_ref(), context)).collect();
        let end = |row: &Vec<u32>| row.iter().position(|&id| id == self.end).unwrap_or(context - 1);
        let length = rows.iter().map(|r| end(r) + 1).max().unwrap_or(1);
        (rows.iter().flat_map(|r| r[..length].iter().map(|&id| i64::from(id))).collect(), length)
    }

    /// `[start, tokens…, end]` cut to `context` (the end token kept) and zero-padded.
    pub fn tokenize(&self, text: &str, context: usize) -> Vec<u32> {
        let mut row = vec![self.start];
        row.extend(self.encode(text));
        row.push(self.end);
        if row.len() > context {
            row.truncate(context);
            row[context - 1] = self.end;
        }
        row.resize(context, 0);
        row
    }
}
