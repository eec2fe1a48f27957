//! Caption decoding as Hugging Face `generate` does it for DynRefer: greedy
//! search with the repetition penalty on the raw logits, or transformers 5's beam search with the
//! penalty on the log-probabilities, length penalty 0 and `early_stopping=False`.
//!
//! The search is a state machine over logits read back from the model, so the same code drives a
//! synchronous native loop and an asynchronous one in the browser:
//! `while let Some(step) = search.next_step() { … feed step.tokens … search.advance(&logits) }`.
//! Scores stay in f32 where torch keeps them in f32, so ranks and ties come out the same.

/// transformers' stand-in for "no score yet".
const NEG: f32 = -1.0e9;

#[derive(Clone, Debug, PartialEq)]
pub struct SearchOptions {
    /// 1 = greedy.
    pub beams: usize,
    pub max_new_tokens: usize,
    pub repetition_penalty: f32,
    pub start_id: u32,
    pub eos_id: u32,
    pub pad_id: u32,
}

/// The caption's ids after the start token, through EOS inclusive, and `exp` of its summed
/// processed log-probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub ids: Vec<u32>,
    pub score: f64,
}

/// What the model must compute next: one new token per row, after reordering the cached rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The token to feed to each row (its last token).
    pub tokens: Vec<u32>,
    /// Row `i` of the cache must become old row `reorder[i]` before this step.
    pub reorder: Option<Vec<usize>>,
}

#[derive(Clone, Debug)]
struct Hypothesis {
    seq: Vec<u32>,
    score: f32,
}

#[derive(Debug)]
pub struct Search {
    options: SearchOptions,
    /// Live rows, in cache order.
    running: Vec<Hypothesis>,
    /// Beam search: the best finished hypotheses so far (score `NEG` = an empty slot).
    finished: Vec<(Hypothesis, bool)>,
    /// Greedy: the summed log-probabilities of the chosen tokens.
    greedy_logprob: f64,
    reorder: Option<Vec<usize>>,
    /// The early-stop heuristic still allows a better finished hypothesis.
    improvable: bool,
    done: bool,
}

/// `where(x < 0, x * p, x / p)` at every id in `seq` (once per distinct id, as torch's scatter).
fn penalize(scores: &mut [f32], seq: &[u32], penalty: f32) {
    let mut seen: Vec<u32> = seq.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for id in seen {
        let s = &mut scores[id as usize];
        *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| f64::from(x - max).exp()).sum();
    let log_sum = sum.ln() as f32;
    logits.iter().map(|&x| x - max - log_sum).collect()
}

/// Indices of the `k` largest values, largest first; equal values keep index order.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    order.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order
}

impl Search {
    pub fn new(options: SearchOptions) -> Search {
        let beams = options.beams.max(1);
        let start = Hypothesis { seq: vec![options.start_id], score: 0.0 };
        let running = if beams == 1 {
            vec![start.clone()]
        } else {
            // only beam 0 is live at the first step
            (0..beams).map(|b| Hypothesis { score: if b == 0 { 0.0 } else { NEG }, ..start.clone() }).collect()
        };
        let finished = if beams == 1 { Vec::new() } else { vec![(Hypothesis { score: NEG, ..start }, false); beams] };
        let done = options.max_new_tokens == 0;
        Search { options, running, finished, greedy_logprob: 0.0, reorder: None, improvable: true, done }
    }

    /// The next step to compute, or `None` when the search is over.
    pub fn next_step(&mut self) -> Option<Step> {
        (!self.done).then(|| Step {
            tokens: self.running.iter().map(|h| *h.seq.last().unwrap()).collect(),
            reorder: self.reorder.take(),
        })
    }

    /// Takes the logits of the last step, [rows × vocab] row-major.
    pub fn advance(&mut self, logits: &[f32]) {
        let vocab = logits.len() / self.running.len();
        if self.options.beams <= 1 {
            self.advance_greedy(logits);
        } else {
            self.advance_beams(logits, vocab);
        }
    }

    fn generated(&self) -> usize {
        self.running[0].seq.len() - 1
    }

    fn advance_greedy(&mut self, logits: &[f32]) {
        let row = &mut self.running[0];
        let mut scores = logits.to_vec();
        penalize(&mut scores, &row.seq, self.options.repetition_penalty);
        let token = top_k(&scores, 1)[0];
        self.greedy_logprob += f64::from(log_softmax(&scores)[token]);
        row.seq.push(token as u32);
        self.done = token as u32 == self.options.eos_id || self.generated() >= self.options.max_new_tokens;
    }

    fn advance_beams(&mut self, logits: &[f32], vocab: usize) {
        let beams = self.running.len();
        let cur_len = self.running[0].seq.len();
        let mut scores = Vec::with_capacity(logits.len());
        for (row, hyp) in logits.chunks_exact(vocab).zip(&self.running) {
            let mut lp = log_softmax(row);
            penalize(&mut lp, &hyp.seq, self.options.repetition_penalty);
            scores.extend(lp.into_iter().map(|s| s + hyp.score));
        }
        // 2K candidates: enough live ones even if K of them end here
        let candidates = top_k(&scores, 2 * beams);
        let last = cur_len >= self.options.max_new_tokens; // max_length = 1 + max_new_tokens
        let ends: Vec<bool> = candidates.iter().map(|&c| (c % vocab) as u32 == self.options.eos_id || last).collect();
        let candidate = |c: usize| {
            let mut seq = self.running[c / vocab].seq.clone();
            seq.push((c % vocab) as u32);
            Hypothesis { seq, score: scores[c] }
        };

        // the best K candidates that go on
        let live: Vec<f32> =
            candidates.iter().zip(&ends).map(|(&c, &end)| scores[c] + if end { NEG } else { 0.0 }).collect();
        let keep = top_k(&live, beams);
        self.reorder = Some(keep.iter().map(|&i| candidates[i] / vocab).collect());
        let running: Vec<Hypothesis> =
            keep.iter().map(|&i| Hypothesis { score: live[i], ..candidate(candidates[i]) }).collect();

        // finished: only ending candidates among the top K count, while improvement is possible
        let mut merged: Vec<(Hypothesis, bool)> = std::mem::take(&mut self.finished);
        for (rank, (&c, &end)) in candidates.iter().zip(&ends).enumerate() {
            let finished_now = end && rank < beams;
            let mut score = scores[c];
            if !self.improvable {
                score += NEG;
            }
            if !finished_now {
                score += NEG;
            }
            merged.push((Hypothesis { score, ..candidate(c) }, finished_now));
        }
        let merged_scores: Vec<f32> = merged.iter().map(|(h, _)| h.score).collect();
        self.finished = top_k(&merged_scores, beams).into_iter().map(|i| merged[i].clone()).collect();
        self.running = running;

        // early-stop heuristic (length penalty 0: the best running score cannot improve)
        let worst = self.finished.iter().map(|(h, _)| h.score).fold(f32::INFINITY, f32::min);
        let best_running = self.running[0].score;
        self.improvable &= self.finished.iter().any(|&(_, f)| best_running > if f { worst } else { NEG });
        self.done = !self.improvable || ends.iter().all(|&e| e);
    }

    /// The best caption. Call when [`Search::next_step`] has returned `None`.
    pub fn finish(self) -> Decoded {
        let (seq, score) = if self.options.beams <= 1 {
            (self.running[0].seq.clone(), self.greedy_logprob.exp())
        } else {
            let best = &self.finished[0].0;
            (best.seq.clone(), f64::from(best.score).exp())
        };
        let mut ids = seq[1..].to_vec();
        // as the reference reads `generate`'s padded output: through the first EOS, else no trailing pads
        if let Some(end) = ids.iter().position(|&t| t == self.options.eos_id) {
            ids.truncate(end + 1);
        } else {
            while ids.last() == Some(&self.options.pad_id) {
                ids.pop();
            }
        }
        Decoded { ids, score }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(beams: usize, max_new_tokens: usize) -> SearchOptions {
        SearchOptions { beams, max_new_tokens, repetition_penalty: 1.5, start_id: 0, eos_id: 1, pad_id: 0 }
    }

    #[test]
    fn penalty_divides_positive_and_multiplies_negative_scores_once_per_id() {
        let mut s = vec![3.0, -2.0, 0.0, 1.5];
        penalize(&mut s, &[0, 1, 1, 2], 1.5);
        assert_eq!(s, vec![2.0, -3.0, 0.0, 1.5]);
    }

    #[test]
    fn top_k_is_ordered_and_breaks_ties_by_index() {
        assert_eq!(top_k(&[1.0, 3.0, 3.0, -1.0, 2.0], 3), vec![1, 2, 4]);
    }

    #[test]
    fn greedy_penalises_the_start_token_and_stops_at_eos() {
        let mut search = Search::new(options(1, 5));
        // the start id 0 has the largest raw logit, but the penalty brings 3.0 down to 2.0 < 2.5
        let step = search.next_step().unwrap();
        assert_eq!(step.tokens, vec![0]);
        search.advance(&[3.0, 0.0, 2.5, 0.0]);
        search.next_step().unwrap();
        search.advance(&[0.0, 5.0, 0.0, 0.0]);
        assert!(search.next_step().is_none());
        let out = search.finish();
        assert_eq!(out.ids, vec![2, 1]);
        let lp1 = log_softmax(&[2.0, 0.0, 2.5, 0.0])[2];
        let lp2 = log_softmax(&[0.0, 5.0, 0.0, 0.0])[1];
        assert!((out.score - (f64::from(lp1) + f64::from(lp2)).exp()).abs() < 1e-12);
    }

    #[test]
    fn greedy_stops_at_the_token_limit() {
        let mut search = Search::new(options(1, 2));
        while search.next_step().is_some() {
            search.advance(&[0.0, 0.0, 0.0, 1.0]);
        }
        assert_eq!(search.finish().ids, vec![3, 3]);
    }

    #[test]
    fn beams_start_from_beam_zero_and_reorder_the_cache() {
        let mut search = Search::new(options(2, 3));
        let first = search.next_step().unwrap();
        assert_eq!((first.tokens, first.reorder), (vec![0, 0], None));
        // beam 1 is not live yet: its better logits must be ignored
        search.advance(&[0.0, -9.0, 2.0, 1.0, 0.0, -9.0, 9.0, 9.0]);
        let second = search.next_step().unwrap();
        assert_eq!(second.tokens, vec![2, 3]);
        assert_eq!(second.reorder, Some(vec![0, 0]));
    }
}
