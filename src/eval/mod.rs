//! Scoring a model's answers: the shapes world's own figures ([`shapes`]) and the metrics the
//! DynRefer paper reports, computed as the official evaluation code computes them: CIDEr-D on
//! PTB-tokenized captions ([`cider`], [`ptb`]), METEOR 1.5 ([`meteor`]), dense-captioning mAP
//! ([`densecap`]), open-vocabulary attribute AP ([`ovad`]) and class accuracy.

pub mod cider;
pub mod densecap;
pub mod meteor;
pub mod official;
pub mod ovad;
pub mod ptb;
pub mod shapes;
