//! Text in and out of the model: the CLIP BPE for the vocabularies, the T5 tokenizer and control
//! words for the caption, and greedy / beam-search decoding.

pub mod caption;
pub mod clip_bpe;
pub mod search;
