//! OVAD attribute AP as the benchmark's official `ovamc/misc.py` (which DynRefer's
//! `ovad_validate` copies) computes it: per attribute, over the instances labelled positive or
//! negative, scikit-learn's `average_precision_score`, then the mean over the attributes that
//! have a positive, for all of them and for the head, medium and tail frequency groups.

use serde::{Deserialize, Serialize};

/// An attribute's frequency group, the `freq_set` of OVAD's attribute list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreqSet {
    Head,
    Medium,
    Tail,
}

/// Mean APs in percent (×100, as the official tables print them); `None` where no attribute of
/// the group has a positive instance (the official NaN).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OvadReport {
    /// The reported OVAD mAP (the official `ap/all`).
    pub map_all: Option<f64>,
    pub head: Option<f64>,
    pub medium: Option<f64>,
    pub tail: Option<f64>,
}

/// Each attribute's AP (a fraction) from `scores[instance][attribute]` and
/// `labels[instance][attribute]` (1 positive, 0 negative, −1 not annotated, ignored); `None` for
/// an attribute without a positive instance. Scores are clipped to [0, 1] first, as the
/// official evaluator does, so scores beyond them tie; they must not be NaN (scikit-learn
/// rejects NaN).
///
/// The AP is scikit-learn's: Σ (Rₙ − Rₙ₋₁) Pₙ over the distinct scores from the highest down,
/// equal scores taken together, without interpolation.
///
/// # Panics
/// If `scores` and `labels` differ in shape.
pub fn attribute_ap(scores: &[Vec<f64>], labels: &[Vec<i8>]) -> Vec<Option<f64>> {
    assert_eq!(scores.len(), labels.len(), "one score row per labelled instance");
    let attributes = labels.first().map_or(0, Vec::len);
    for (s, l) in scores.iter().zip(labels) {
        assert!(s.len() == attributes && l.len() == attributes, "one score and one label per attribute");
    }
    (0..attributes)
        .map(|a| {
            let ranked: Vec<(f64, bool)> = scores
                .iter()
                .zip(labels)
                .filter(|(_, l)| matches!(l[a], 0 | 1))
                .map(|(s, l)| (s[a].clamp(0.0, 1.0), l[a] == 1))
                .collect();
            average_precision(ranked)
        })
        .collect()
}

/// scikit-learn's `average_precision_score` for one attribute's (score, positive) pairs.
fn average_precision(mut ranked: Vec<(f64, bool)>) -> Option<f64> {
    let positives = ranked.iter().filter(|(_, p)| *p).count();
    if positives == 0 {
        return None;
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut ap, mut recall_before) = (0usize, 0.0, 0.0);
    for (i, &(score, positive)) in ranked.iter().enumerate() {
        tp += usize::from(positive);
        // A threshold ends where the next score differs (`==`: 0.0 and −0.0 tie, as in numpy).
        if ranked.get(i + 1).is_none_or(|next| next.0 != score) {
            let recall = tp as f64 / positives as f64;
            ap += (recall - recall_before) * (tp as f64 / (i + 1) as f64);
            recall_before = recall;
        }
    }
    Some(ap)
}

/// The official group means of per-attribute APs (from [`attribute_ap`]), given each
/// attribute's frequency group: NaN-skipping means, ×100.
///
/// # Panics
/// If there are not as many groups as APs.
pub fn ovad_report(aps: &[Option<f64>], freq_sets: &[FreqSet]) -> OvadReport {
    assert_eq!(aps.len(), freq_sets.len(), "one frequency group per attribute");
    let mean = |group: Option<FreqSet>| {
        let values: Vec<f64> = aps
            .iter()
            .zip(freq_sets)
            .filter(|(_, f)| group.is_none_or(|g| **f == g))
            .filter_map(|(ap, _)| *ap)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64 * 100.0)
    };
    OvadReport {
        map_all: mean(None),
        head: mean(Some(FreqSet::Head)),
        medium: mean(Some(FreqSet::Medium)),
        tail: mean(Some(FreqSet::Tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_one_threshold() {
        // 0.9 (+) | 0.8 (−, +) | 0.1 (−): P/R steps (1, 1/2), (2/3, 1), (1/2, 1).
        let scores = [0.9, 0.8, 0.8, 0.1].map(|s| vec![s]).to_vec();
        let labels = [1, 0, 1, 0].map(|l| vec![l]).to_vec();
        let ap = attribute_ap(&scores, &labels)[0].unwrap();
        assert!((ap - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-15);
    }

    #[test]
    fn ignored_clipped_and_missing() {
        // Attribute 0: the −1 is ignored and 1.5 ties with 1.0 after clipping: (+, −) then (+).
        // Attribute 1: no positive.
        let scores = vec![vec![1.5, 0.2], vec![1.0, 0.3], vec![0.4, 0.9], vec![0.99, 0.5]];
        let labels = vec![vec![1, 0], vec![0, -1], vec![1, 0], vec![-1, 0]];
        let aps = attribute_ap(&scores, &labels);
        assert_eq!(aps[1], None);
        assert!((aps[0].unwrap() - (0.5 * 0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-15);
    }

    #[test]
    fn group_means_in_percent() {
        let report = ovad_report(&[Some(0.5), None, Some(1.0)], &[FreqSet::Head, FreqSet::Head, FreqSet::Tail]);
        assert_eq!(report, OvadReport { map_all: Some(75.0), head: Some(50.0), medium: None, tail: Some(100.0) });
    }
}
