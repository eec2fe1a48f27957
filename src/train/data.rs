//! Training examples: each annotated region's views, built once by the same code that serves
//! `describe` and kept as 8-bit pixels, with its targets in the model's vocabularies; and batches
//! of examples as tensors, each with the views that training step sees.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;

use crate::bundle::VocabularyNames;
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::scenes::{Annotation, Rng, read_annotations};
use crate::text::caption::{T5Tokenizer, control_string};
use crate::views::{ViewOptions, Views, build_views, candidate_views};

/// Which views of a region training sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainViews {
    /// At each step the region and context views drawn at random from the ten candidates, as
    /// DynRefer trains: the model meets every reach of context, not only the prior's choice.
    Stochastic,
    /// The views `describe` would pick, the same at every step.
    Fixed,
}

impl std::str::FromStr for TrainViews {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stochastic" => Ok(TrainViews::Stochastic),
            "fixed" => Ok(TrainViews::Fixed),
            _ => Err(format!("views must be stochastic or fixed, got {s:?}")),
        }
    }
}

impl std::fmt::Display for TrainViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainViews::Stochastic => "stochastic",
            TrainViews::Fixed => "fixed",
        })
    }
}

/// One annotated region, ready to train on.
pub struct Example {
    /// The chosen views ([`TrainViews::Fixed`]) or the region and all ten candidates to draw from
    /// ([`TrainViews::Stochastic`]).
    pub views: Views,
    /// Indices into the tag list, in its order.
    pub tags: Vec<usize>,
    pub attributes: Vec<usize>,
    pub class: usize,
    /// The caption's T5 ids, `</s>` included.
    pub caption: Vec<u32>,
}

fn index_of(names: &[String], name: &str, what: &str, line: usize) -> Result<usize, String> {
    names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| format!("line {line}: {what} {name:?} is not in the vocabulary files"))
}

/// The examples of an annotation file; pictures are read relative to its folder, each once.
pub fn load_examples(
    annotations: &Path,
    names: &VocabularyNames,
    tokenizer: &T5Tokenizer,
    views: &ViewOptions,
    kind: TrainViews,
) -> Result<Vec<Example>, String> {
    let lines = read_annotations(annotations)?;
    let dir = annotations.parent().unwrap_or(Path::new("."));
    let mut by_image: BTreeMap<&str, Vec<(usize, &Annotation)>> = BTreeMap::new();
    for (i, a) in lines.iter().enumerate() {
        by_image.entry(a.image.as_str()).or_default().push((i + 1, a));
    }
    let images: Vec<(&str, Vec<(usize, &Annotation)>)> = by_image.into_iter().collect();
    let examples = crate::views::par::map(&images, |(image, regions)| -> Result<Vec<Example>, String> {
        let path = dir.join(image);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let photo = decode_photo(&bytes, DEFAULT_MAX_PIXELS).map_err(|e| format!("{}: {e}", path.display()))?;
        regions
            .iter()
            .map(|&(line, a)| {
                let region = crate::views::RegionBox(a.region);
                let views = match kind {
                    TrainViews::Fixed => build_views(&photo, region, views),
                    TrainViews::Stochastic => candidate_views(&photo, region, views.size),
                }
                .map_err(|e| format!("{}: line {line}: {e}", path.display()))?;
                let mut tags =
                    a.tags.iter().map(|t| index_of(&names.tags, t, "tag", line)).collect::<Result<Vec<_>, _>>()?;
                tags.sort_unstable();
                let attributes = a
                    .attributes
                    .iter()
                    .map(|t| index_of(&names.attributes, t, "attribute", line))
                    .collect::<Result<Vec<_>, _>>()?;
                let class = index_of(&names.classes, &a.class, "class", line)?;
                let caption = tokenizer.encode(&a.caption).map_err(|e| format!("line {line}: {e}"))?;
                Ok(Example { views, tags, attributes, class, caption })
            })
            .collect()
    });
    let examples: Vec<Example> =
        examples.into_iter().collect::<Result<Vec<Vec<Example>>, String>>()?.into_iter().flatten().collect();
    if examples.is_empty() {
        return Err(format!("{}: no annotated regions", annotations.display()));
    }
    Ok(examples)
}

/// A batch of regions as the model and the losses take them.
pub struct Batch {
    /// [regions · views, 3, S, S]
    pub pixels: Tensor<4>,
    /// Each view's region box, region after region.
    pub boxes: Vec<[f32; 4]>,
    /// [regions, tags] of 0 / 1
    pub tags: Tensor<2>,
    /// [regions, attributes] of 0 / 1
    pub attributes: Tensor<2>,
    /// [regions]
    pub classes: Tensor<1, Int>,
    /// The control words' T5 ids of each region.
    pub controls: Vec<Vec<u32>>,
    /// [regions, length]: the decoder's input (start token, then the caption shifted right).
    pub decoder_ids: Tensor<2, Int>,
    /// [regions, length]: the tokens to predict, padded.
    pub labels: Tensor<2, Int>,
    /// [regions, length]: 1 where `labels` holds a token, 0 on padding.
    pub label_mask: Tensor<2>,
}

/// How a batch is put together.
pub struct BatchOptions {
    /// The chance of leaving out each true tag from the control words, so that the caption learns
    /// to read the picture too (at describe time the tags are the model's own guesses).
    pub tag_drop: f64,
    /// T5's start (and padding) token.
    pub start_id: u32,
    /// Views per region, the region itself included.
    pub num_views: usize,
    pub views: TrainViews,
}

/// The views of `example` one step sees, by index into its views: all of the fixed ones, or the
/// region and `num_views - 1` distinct candidates in the order drawn (the official processor's
/// training split draws them so; any order can meet the model, as the prior's greedy one does).
fn step_views(example: &Example, options: &BatchOptions, rng: &mut Rng) -> Vec<usize> {
    let count = example.views.views.len();
    if options.views == TrainViews::Fixed {
        return (0..count).collect();
    }
    let mut candidates: Vec<usize> = (1..count).collect();
    let mut picked = vec![0];
    for _ in 1..options.num_views.min(count) {
        picked.push(candidates.swap_remove(rng.below(candidates.len())));
    }
    picked
}

pub fn batch(
    examples: &[&Example],
    names: &VocabularyNames,
    tokenizer: &T5Tokenizer,
    options: &BatchOptions,
    rng: &mut Rng,
    device: &Device,
) -> Result<Batch, String> {
    let b = examples.len();
    let seen: Vec<Views> = examples.iter().map(|e| e.views.subset(&step_views(e, options, rng))).collect();
    let (v, s) = (seen[0].views.len(), seen[0].size as usize);
    let pixels: Vec<f32> = seen.iter().flat_map(Views::pixels).collect();
    let boxes: Vec<[f32; 4]> = seen.iter().flat_map(|w| w.views.iter().map(|w| w.region_box)).collect();
    let hot = |count: usize, on: fn(&Example) -> &[usize]| {
        let mut data = vec![0f32; b * count];
        for (i, e) in examples.iter().enumerate() {
            on(e).iter().for_each(|&k| data[i * count + k] = 1.0);
        }
        Tensor::<2>::from_data(TensorData::new(data, [b, count]), device)
    };
    let tags = hot(names.tags.len(), |e| &e.tags);
    let attributes = hot(names.attributes.len(), |e| &e.attributes);
    let classes: Vec<i64> = examples.iter().map(|e| e.class as i64).collect();
    let controls = examples
        .iter()
        .map(|e| {
            let kept = e.tags.iter().filter(|_| !rng.chance(options.tag_drop)).map(|&t| names.tags[t].as_str());
            tokenizer.encode(&control_string(kept, None)).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let length = examples.iter().map(|e| e.caption.len()).max().unwrap_or(1);
    let (mut inputs, mut labels, mut mask) = (vec![], vec![], vec![]);
    for e in examples {
        let pad = length - e.caption.len();
        inputs.push(i64::from(options.start_id));
        inputs.extend(e.caption[..e.caption.len() - 1].iter().map(|&t| i64::from(t)));
        labels.extend(e.caption.iter().map(|&t| i64::from(t)));
        mask.extend(std::iter::repeat_n(1f32, e.caption.len()));
        inputs.extend(std::iter::repeat_n(i64::from(options.start_id), pad));
        labels.extend(std::iter::repeat_n(0i64, pad));
        mask.extend(std::iter::repeat_n(0f32, pad));
    }
    Ok(Batch {
        pixels: Tensor::from_data(TensorData::new(pixels, [b * v, 3, s, s]), device),
        boxes,
        tags,
        attributes,
        classes: Tensor::from_data(TensorData::new(classes, [b]), device),
        controls,
        decoder_ids: Tensor::from_data(TensorData::new(inputs, [b, length]), device),
        labels: Tensor::from_data(TensorData::new(labels, [b, length]), device),
        label_mask: Tensor::from_data(TensorData::new(mask, [b, length]), device),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_sees_the_region_and_distinct_candidates() {
        let img = image::RgbImage::from_fn(60, 50, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 9]));
        let views = candidate_views(&img, crate::views::RegionBox([20.0, 15.0, 35.0, 30.0]), 8).unwrap();
        let example = Example { views, tags: vec![], attributes: vec![], class: 0, caption: vec![1] };
        let mut options = BatchOptions { tag_drop: 0.0, start_id: 0, num_views: 3, views: TrainViews::Stochastic };
        let mut rng = Rng::new(7);
        let mut seen = std::collections::BTreeSet::<usize>::new();
        for _ in 0..200 {
            let picked = step_views(&example, &options, &mut rng);
            assert_eq!((picked.len(), picked[0]), (3, 0));
            assert!(picked[1] != picked[2] && (1..=10).contains(&picked[1]) && (1..=10).contains(&picked[2]));
            seen.extend(&picked[1..]);
        }
        assert_eq!(seen.len(), 10, "every candidate is drawn");
        options.views = TrainViews::Fixed;
        assert_eq!(step_views(&example, &options, &mut rng), (0..11).collect::<Vec<_>>());
    }
}
