//! CIDEr-D as pycocoevalcap's `Cider` computes it: TF-IDF vectors of 1- to 4-grams with document
//! frequencies counted over the evaluated set's references, similarity clipped to the reference's
//! weights, a Gaussian length penalty (sigma 6), averaged over the n-gram orders and references,
//! times 10; the corpus score is the mean over segments.
//!
//! The length in the penalty counts bigrams, not words, exactly as the reference code does
//! (it adds the counts of the order-2 n-grams); that keeps the scores equal to the published ones.

use std::collections::HashMap;

const N: usize = 4;
const SIGMA: f64 = 6.0;

type Counts<'a> = HashMap<&'a [&'a str], f64>;

/// Each segment's score and their mean.
#[derive(Clone, Debug, PartialEq)]
pub struct CiderScores {
    pub segments: Vec<f64>,
    pub corpus: f64,
}

fn ngrams<'a>(words: &'a [&'a str]) -> Counts<'a> {
    let mut counts = Counts::new();
    for k in 1..=N {
        for gram in words.windows(k) {
            *counts.entry(gram).or_default() += 1.0;
        }
    }
    counts
}

/// A sentence's TF-IDF vector, split by n-gram order, with each order's norm and the length
/// used by the penalty.
struct Vector<'a> {
    weights: [HashMap<&'a [&'a str], f64>; N],
    norms: [f64; N],
    length: f64,
}

impl<'a> Vector<'a> {
    fn new(counts: &Counts<'a>, document_frequency: &HashMap<&[&str], f64>, log_refs: f64) -> Self {
        let mut weights: [HashMap<&[&str], f64>; N] = Default::default();
        let mut norms = [0.0; N];
        let mut length = 0.0;
        for (&gram, &tf) in counts {
            let df = document_frequency.get(gram).copied().unwrap_or(0.0).max(1.0).ln();
            let order = gram.len() - 1;
            let w = tf * (log_refs - df);
            weights[order].insert(gram, w);
            norms[order] += w * w;
            if order == 1 {
                length += tf;
            }
        }
        Self { weights, norms: norms.map(f64::sqrt), length }
    }

    fn similarity(&self, reference: &Vector) -> f64 {
        let delta = self.length - reference.length;
        let penalty = (-(delta * delta) / (2.0 * SIGMA * SIGMA)).exp();
        let mut total = 0.0;
        for n in 0..N {
            let mut value: f64 = 0.0;
            for (gram, &w) in &self.weights[n] {
                let r = reference.weights[n].get(gram).copied().unwrap_or(0.0);
                value += w.min(r) * r;
            }
            if self.norms[n] != 0.0 && reference.norms[n] != 0.0 {
                value /= self.norms[n] * reference.norms[n];
            }
            total += value * penalty;
        }
        total
    }
}

/// CIDEr-D of each hypothesis against its references, all already tokenized (words split on
/// whitespace). A segment needs at least one reference.
pub fn cider(segments: &[(&str, &[String])]) -> CiderScores {
    fn split(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }
    let hypotheses: Vec<Vec<&str>> = segments.iter().map(|(h, _)| split(h)).collect();
    let references: Vec<Vec<Vec<&str>>> =
        segments.iter().map(|(_, refs)| refs.iter().map(|r| split(r)).collect()).collect();

    let hypothesis_counts: Vec<Counts> = hypotheses.iter().map(|h| ngrams(h)).collect();
    let reference_counts: Vec<Vec<Counts>> =
        references.iter().map(|refs| refs.iter().map(|r| ngrams(r)).collect()).collect();

    // An n-gram's document frequency: how many segments have it in some reference.
    let mut document_frequency: HashMap<&[&str], f64> = HashMap::new();
    for refs in &reference_counts {
        let mut seen: Vec<&[&str]> = refs.iter().flat_map(|c| c.keys().copied()).collect();
        seen.sort_unstable();
        seen.dedup();
        for gram in seen {
            *document_frequency.entry(gram).or_default() += 1.0;
        }
    }
    let log_refs = (segments.len() as f64).ln();

    let scores: Vec<f64> = hypothesis_counts
        .iter()
        .zip(&reference_counts)
        .map(|(hypothesis, refs)| {
            let vector = Vector::new(hypothesis, &document_frequency, log_refs);
            let sum: f64 = refs.iter().map(|r| vector.similarity(&Vector::new(r, &document_frequency, log_refs))).sum();
            sum / N as f64 / refs.len().max(1) as f64 * 10.0
        })
        .collect();
    let corpus = if scores.is_empty() { 0.0 } else { scores.iter().sum::<f64>() / scores.len() as f64 };
    CiderScores { segments: scores, corpus }
}
