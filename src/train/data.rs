//! Training examples: each annotated region's views, built once by the same code that serves
//! `describe` and kept as 8-bit pixels, with its targets in the model's vocabularies; and batches
//! of examples as tensors.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;

use crate::bundle::VocabularyNames;
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::scenes::{Annotation, Rng, read_annotations};
use crate::text::caption::{T5Tokenizer, control_string};
use crate::views::{ViewOptions, Views, build_views};

/// One annotated region, ready to train on.
pub struct Example {
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
                let views =
                    build_views(&photo, region, views).map_err(|e| format!("{}: line {line}: {e}", path.display()))?;
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
    let views = &examples[0].views;
    let (v, s) = (views.views.len(), views.size as usize);
    let pixels: Vec<f32> = examples.iter().flat_map(|e| e.views.pixels()).collect();
    let boxes: Vec<[f32; 4]> = examples.iter().flat_map(|e| e.views.views.iter().map(|w| w.region_box)).collect();
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
