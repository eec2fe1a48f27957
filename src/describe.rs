//! The public API: a loaded bundle describes a region of a photo.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dynrefer::describe::{DescribeOptions, Describer};
//! let describer = Describer::open_dir("model".as_ref(), &burn::prelude::Device::flex(), |_| {})?;
//! let photo = dynrefer::photo::decode_photo(&std::fs::read("photo.jpg")?, dynrefer::photo::DEFAULT_MAX_PIXELS)?;
//! let description = describer.describe(&photo, "10,20,200,180".parse()?, &DescribeOptions::default())?;
//! println!("{}", description.caption);
//! # Ok(())
//! # }
//! ```

use burn::prelude::*;
use image::RgbImage;
use serde::Serialize;

use crate::bundle::{BundleError, Loader, MANIFEST, Manifest, Progress};
use crate::decode::caption::{T5Tokenizer, TokenizerError, control_string};
use crate::decode::search::{Search, SearchOptions};
use crate::model::dynrefer::{DynRefer, Intermediates};
use crate::model::heads::Vocabularies;
use crate::model::t5::T5;
use crate::views::{RegionBox, ViewOptions, Views, ViewsError, build_views};

/// DynRefer's decoding settings (the demo's: beams 5, 30 new tokens, penalty 1.5).
#[derive(Clone, Debug, PartialEq)]
pub struct DescribeOptions {
    pub num_views: Option<usize>,
    pub beams: usize,
    pub max_new_tokens: usize,
    /// `None`: the bundle's threshold.
    pub tag_threshold: Option<f32>,
    /// Words to steer the caption, separated by `,|` as in the official code.
    pub controls: Option<String>,
    pub repetition_penalty: f32,
}

impl Default for DescribeOptions {
    fn default() -> Self {
        DescribeOptions {
            num_views: None,
            beams: 5,
            max_new_tokens: 30,
            tag_threshold: None,
            controls: None,
            repetition_penalty: 1.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Scored {
    pub name: String,
    pub score: f32,
}

/// The describe JSON of DESIGN §4.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Description {
    pub views: Vec<crate::views::View>,
    pub caption: String,
    pub caption_ids: Vec<u32>,
    pub caption_score: f64,
    /// Tags above the threshold, in tag-list order.
    pub tags: Vec<Scored>,
    /// Every attribute, in file order.
    pub attributes: Vec<Scored>,
    /// Every class (raw logits), in file order.
    pub classes: Vec<Scored>,
}

#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error(transparent)]
    Views(#[from] ViewsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("options: {0}")]
    Options(String),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}: cannot read: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Tokenizer(String, TokenizerError),
}

/// A loaded model with its vocabularies and tokenizer.
pub struct Describer {
    pub manifest: Manifest,
    model: DynRefer,
    vocab: Vocabularies,
    tokenizer: T5Tokenizer,
    device: Device,
}

/// Wall-clock milliseconds of each stage, for benchmarks.
pub type Timings = Vec<(&'static str, f64)>;

/// How results come back from the device: blocking natively, awaited in the browser (where a
/// blocking read of a WebGPU buffer is not allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBack {
    Blocking,
    Async,
}

impl ReadBack {
    async fn floats<const D: usize>(self, t: Tensor<D>) -> Vec<f32> {
        let data = match self {
            ReadBack::Blocking => t.into_data(),
            ReadBack::Async => t.into_data_async().await.expect("the device returns its results"),
        };
        data.convert::<f32>().try_into_vec().expect("f32 data")
    }
}

/// Runs a future whose every await is already complete (blocking read-backs).
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

impl Describer {
    /// A bundle's model from a loader that has all its shards, and its tokenizer file.
    pub fn from_loader(loader: Loader, tokenizer_json: &[u8]) -> Result<Describer, OpenError> {
        let bundle = loader.bundle.clone();
        Manifest::verify(&bundle, &loader.manifest.t5_tokenizer, tokenizer_json)?;
        let device = loader.device.clone();
        let (model, manifest) = loader.finish()?;
        let tokenizer = T5Tokenizer::from_json(tokenizer_json, manifest.config.max_txt_len)
            .map_err(|e| OpenError::Tokenizer(bundle, e))?;
        let vocab = model.vocabularies(manifest.vocabularies.templates_per_attribute.clone());
        Ok(Describer { manifest, model, vocab, tokenizer, device })
    }

    /// Opens a bundle folder, verifying every file; `progress` hears after each shard.
    pub fn open_dir(
        dir: &std::path::Path,
        device: &Device,
        mut progress: impl FnMut(Progress),
    ) -> Result<Describer, OpenError> {
        let bundle = dir.display().to_string();
        let read =
            |file: &str| std::fs::read(dir.join(file)).map_err(|e| OpenError::Io(format!("{bundle}: {file}"), e));
        let manifest = Manifest::parse(&bundle, &read(MANIFEST)?)?;
        let total = manifest.total_bytes();
        let tokenizer = read(&manifest.t5_tokenizer.file)?;
        let mut loader = Loader::new(&bundle, manifest, device);
        let mut done = tokenizer.len();
        for i in 0..loader.manifest.shards.len() {
            let file = loader.manifest.shards[i].file.clone();
            let bytes = read(&file)?;
            done += bytes.len();
            loader.add_shard(i, bytes)?;
            progress(Progress { done, total, file });
        }
        Describer::from_loader(loader, &tokenizer)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn model(&self) -> &DynRefer {
        &self.model
    }

    pub fn vocabularies(&self) -> &Vocabularies {
        &self.vocab
    }

    /// The region's views, at the model's size.
    pub fn views(&self, photo: &RgbImage, region: RegionBox, num_views: Option<usize>) -> Result<Views, ViewsError> {
        let config = &self.manifest.config;
        let opts = ViewOptions { num_views: num_views.unwrap_or(config.num_views), size: config.image_size as u32 };
        build_views(photo, region, &opts)
    }

    pub fn describe(
        &self,
        photo: &RgbImage,
        region: RegionBox,
        options: &DescribeOptions,
    ) -> Result<Description, DescribeError> {
        ready(self.run(photo, region, options, None, ReadBack::Blocking)).map(|(d, _)| d)
    }

    /// Describes the region of views already built by [`Describer::views`], with awaited
    /// read-backs, for the browser (which shows the views first).
    pub async fn describe_views_async(
        &self,
        views: Views,
        options: &DescribeOptions,
    ) -> Result<Description, DescribeError> {
        self.run_views(views, options, None, None, ReadBack::Async).await.map(|(d, _)| d)
    }

    /// Like [`Describer::describe`], with each stage's milliseconds measured by `clock` (a
    /// monotonic time in milliseconds) after the device has finished the stage's work.
    pub fn describe_timed(
        &self,
        photo: &RgbImage,
        region: RegionBox,
        options: &DescribeOptions,
        clock: &mut dyn FnMut() -> f64,
    ) -> Result<(Description, Timings), DescribeError> {
        ready(self.run(photo, region, options, Some(clock), ReadBack::Blocking))
    }

    /// The views, the region's encoding (ViT … Q-Former) and head scores.
    pub fn encode(&self, views: &Views) -> Intermediates {
        self.encode_staged(views, &mut |_| {})
    }

    fn encode_staged(&self, views: &Views, stage: &mut dyn FnMut(&'static str)) -> Intermediates {
        let n = views.views.len();
        let size = views.size as usize;
        let pixels = Tensor::<4>::from_data(TensorData::new(views.pixels(), [n, 3, size, size]), &self.device);
        let boxes: Vec<[f32; 4]> = views.views.iter().map(|v| v.region_box).collect();
        self.model.encode_region(pixels, &boxes, &self.vocab, stage)
    }

    async fn run(
        &self,
        photo: &RgbImage,
        region: RegionBox,
        options: &DescribeOptions,
        mut clock: Option<&mut dyn FnMut() -> f64>,
        read: ReadBack,
    ) -> Result<(Description, Timings), DescribeError> {
        let start = clock.as_mut().map(|c| c());
        let views = self.views(photo, region, options.num_views)?;
        self.run_views(views, options, clock, start, read).await
    }

    /// Everything after the views; `start` is when the views began, if they are timed.
    async fn run_views(
        &self,
        views: Views,
        options: &DescribeOptions,
        mut clock: Option<&mut dyn FnMut() -> f64>,
        start: Option<f64>,
        read: ReadBack,
    ) -> Result<(Description, Timings), DescribeError> {
        if options.beams == 0 {
            return Err(DescribeError::Options("beams must be at least 1".into()));
        }
        // the fusion MLP reads the views side by side: their number is part of the model
        let fused = self.manifest.config.num_views;
        if views.views.len() != fused {
            let asked = views.views.len();
            return Err(DescribeError::Options(format!(
                "num-views {asked}: this model fuses exactly {fused} views per region"
            )));
        }
        let mut timings = Timings::new();
        let mut last = start.unwrap_or(0.0);
        let mut lap = |stage: &'static str| {
            if let Some(clock) = clock.as_mut() {
                // the stage's work may still be queued on the device
                let _ = self.device.sync();
                let now = clock();
                timings.push((stage, now - last));
                last = now;
            }
        };
        lap("views");
        let encoded = self.encode_staged(&views, &mut lap);
        let scores = &encoded.scores;
        let threshold = options.tag_threshold.unwrap_or(self.manifest.tag_threshold);
        let names = &self.manifest.vocabularies;
        let tags: Vec<Scored> = names
            .tags
            .iter()
            .zip(read.floats(scores.tags.clone()).await)
            .filter(|(_, s)| *s > threshold)
            .map(|(n, score)| Scored { name: n.clone(), score })
            .collect();
        let scored = |names: &[String], scores: Vec<f32>| {
            names.iter().zip(scores).map(|(n, score)| Scored { name: n.clone(), score }).collect::<Vec<_>>()
        };
        let attributes = scored(&names.attributes, read.floats(scores.attributes.clone()).await);
        let classes = scored(&names.classes, read.floats(scores.classes.clone()).await);

        let control = control_string(tags.iter().map(|t| t.name.as_str()), options.controls.as_deref());
        let control_ids = self.tokenizer.encode(&control)?;
        let encoded_t5 = self.model.t5.encode(self.model.t5_inputs(encoded.qformer, &control_ids));
        lap("t5_encoder");
        let decoded = self.generate(encoded_t5, options, &mut lap, read).await;
        let caption = self.tokenizer.decode(&decoded.ids)?;
        lap("decoder");
        let description = Description {
            views: views.views,
            caption,
            caption_ids: decoded.ids,
            caption_score: decoded.score,
            tags,
            attributes,
            classes,
        };
        Ok((description, timings))
    }

    async fn generate(
        &self,
        encoded: Tensor<3>,
        options: &DescribeOptions,
        lap: &mut dyn FnMut(&'static str),
        read: ReadBack,
    ) -> crate::decode::search::Decoded {
        let t5 = &self.manifest.config.t5;
        let mut search = Search::new(SearchOptions {
            beams: options.beams,
            max_new_tokens: options.max_new_tokens,
            repetition_penalty: options.repetition_penalty,
            start_id: t5.decoder_start_token_id,
            eos_id: t5.eos_token_id,
            pad_id: t5.pad_token_id,
        });
        let mut cache = self.model.t5.start(encoded, options.beams);
        let mut first = true;
        while let Some(step) = search.next_step() {
            if let Some(order) = step.reorder {
                let order: Vec<i64> = order.into_iter().map(|i| i as i64).collect();
                let n = order.len();
                T5::reorder(&mut cache, Tensor::from_data(TensorData::new(order, [n]), &self.device));
            }
            let ids: Vec<i64> = step.tokens.iter().map(|&t| i64::from(t)).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [step.tokens.len(), 1]), &self.device);
            let logits = self.model.t5.decode(ids, &mut cache);
            search.advance(&read.floats(logits).await);
            if first {
                lap("first_token");
                first = false;
            }
        }
        search.finish()
    }
}
