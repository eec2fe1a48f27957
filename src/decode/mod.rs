//! Text in and out of the model: tokenizers and, to come, greedy and beam-search decoding.

pub mod clip_bpe;
