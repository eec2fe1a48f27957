//! How often a model answers annotated regions right: the caption word for word, the class, the
//! color and pattern attributes, and the tags (F1 over all regions).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::describe::{DescribeOptions, Describer, Description};
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::scenes::Annotation;
use crate::views::RegionBox;

/// One region's answer beside the truth.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub image: String,
    #[serde(rename = "box")]
    pub region: [f64; 4],
    pub expected: String,
    pub caption: String,
    pub caption_ids: Vec<u32>,
    pub class: String,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub regions: usize,
    pub caption_exact: f64,
    pub class_top1: f64,
    /// The best `color:*` attribute is the region's color.
    pub color: f64,
    /// The best `pattern:*` attribute is the region's pattern.
    pub pattern: f64,
    pub tag_precision: f64,
    pub tag_recall: f64,
    pub tag_f1: f64,
    pub ms_per_region: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answer>,
}

/// The best-scoring attribute whose name starts with `kind:`.
fn best_of<'a>(d: &'a Description, kind: &str) -> Option<&'a str> {
    let prefix = format!("{kind}:");
    d.attributes
        .iter()
        .filter(|a| a.name.starts_with(&prefix))
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map(|a| a.name.as_str())
}

/// Describes `annotations` (pictures relative to `dir`) and scores the answers.
pub fn evaluate(
    describer: &Describer,
    annotations: &[Annotation],
    dir: &Path,
    options: &DescribeOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, String> {
    let mut by_image: BTreeMap<&str, Vec<&Annotation>> = BTreeMap::new();
    for a in annotations {
        by_image.entry(a.image.as_str()).or_default().push(a);
    }
    let (mut caption, mut class, mut color, mut pattern) = (0, 0, 0, 0);
    let (mut true_tags, mut said_tags, mut right_tags) = (0, 0, 0);
    let mut answers = Vec::new();
    let started = std::time::Instant::now();
    for (image, regions) in by_image {
        let path = dir.join(image);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let photo = decode_photo(&bytes, DEFAULT_MAX_PIXELS).map_err(|e| format!("{}: {e}", path.display()))?;
        for a in regions {
            let d = describer
                .describe(&photo, RegionBox(a.region), options)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            caption += usize::from(d.caption == a.caption);
            let top =
                d.classes.iter().max_by(|x, y| x.score.total_cmp(&y.score)).map(|c| c.name.clone()).unwrap_or_default();
            class += usize::from(top == a.class);
            let has = |name: Option<&str>| name.is_some_and(|n| a.attributes.iter().any(|t| t == n));
            color += usize::from(has(best_of(&d, "color")));
            pattern += usize::from(has(best_of(&d, "pattern")));
            let said: Vec<String> = d.tags.iter().map(|t| t.name.clone()).collect();
            true_tags += a.tags.len();
            said_tags += said.len();
            right_tags += said.iter().filter(|t| a.tags.contains(t)).count();
            answers.push(Answer {
                image: a.image.clone(),
                region: a.region,
                expected: a.caption.clone(),
                caption: d.caption,
                caption_ids: d.caption_ids,
                class: top,
                tags: said,
            });
            progress(answers.len(), annotations.len());
        }
    }
    let n = answers.len().max(1) as f64;
    let precision = right_tags as f64 / said_tags.max(1) as f64;
    let recall = right_tags as f64 / true_tags.max(1) as f64;
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    Ok(Report {
        regions: answers.len(),
        caption_exact: caption as f64 / n,
        class_top1: class as f64 / n,
        color: color as f64 / n,
        pattern: pattern as f64 / n,
        tag_precision: precision,
        tag_recall: recall,
        tag_f1: f1,
        ms_per_region: started.elapsed().as_secs_f64() * 1e3 / n,
        answers,
    })
}
