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

use std::ops::ControlFlow;

use burn::prelude::*;
use futures::future::LocalBoxFuture;
use image::RgbImage;
use serde::Serialize;

use crate::bundle::Manifest;
pub use crate::bundle::load::OpenError;
use crate::bundle::load::{ByteSource, LoadedBundle};
use crate::model::dynrefer::DynRefer;
use crate::model::heads::{HeadScores, Vocabularies};
use crate::model::t5::T5;
use crate::model::visual::VisualOutput;
use crate::text::caption::{T5Tokenizer, TokenizerError, control_string};
use crate::text::clip_bpe::{ClipBpe, class_prompt};
use crate::text::search::{Search, SearchOptions};
use crate::views::{RegionBox, ViewOptions, Views, ViewsError, build_views};

/// The most regions whose views go through the encoders at once. A batch's activations grow with
/// it: at eight regions of three views, the real ViT's attention scores take 101 MB, under the
/// 128 MiB that any WebGPU adapter binds in one buffer.
pub const MAX_BATCH_REGIONS: usize = 8;

/// The most class names of a [`ClassSet`]: the heads score every name against every region, and
/// an open vocabulary of a thousand is already far more than a person types.
pub const MAX_CLASSES: usize = 1000;

/// The person's own class names, embedded by the bundle's text tower as the bundle's classes were.
#[derive(Clone, Debug)]
pub struct ClassSet {
    pub names: Vec<String>,
    /// [names, text width], on the model's device.
    embeddings: Tensor<2>,
}

/// DynRefer's decoding settings (the demo's: beams 5, 30 new tokens, penalty 1.5).
#[derive(Clone, Debug)]
pub struct DescribeOptions {
    pub num_views: Option<usize>,
    pub beams: usize,
    pub max_new_tokens: usize,
    /// `None`: the bundle's threshold.
    pub tag_threshold: Option<f32>,
    /// Words to steer the caption, separated by `,|` as in the official code.
    pub controls: Option<String>,
    pub repetition_penalty: f32,
    /// Classes to score instead of the bundle's (see [`Describer::class_set`]).
    pub classes: Option<ClassSet>,
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
            classes: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Scored {
    pub name: String,
    pub score: f32,
}

/// A region's description, as `dynrefer describe` prints it.
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
    /// Every class (raw logits), in file order, or the custom classes in their given order.
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
    /// Custom class names that cannot be scored (none, too many, an empty one, or a bundle
    /// without a text tower).
    #[error("{0}")]
    Classes(String),
    #[error("the compute device failed: {0}")]
    Device(String),
    /// The watcher stopped the description between two stages (a newer region replaced it).
    #[error("stopped")]
    Stopped,
}

/// A loaded model with its vocabularies and tokenizer.
pub struct Describer {
    pub manifest: Manifest,
    model: DynRefer,
    vocab: Vocabularies,
    tokenizer: T5Tokenizer,
    /// The tokenizer of the text tower, when the bundle has one.
    clip_bpe: Option<ClipBpe>,
    device: Device,
}

/// Wall-clock milliseconds of each stage, by [`Stage::key`], for benchmarks.
pub type Timings = Vec<(&'static str, f64)>;

/// The tensors the encoders compute for a batch of regions, kept for parity checks.
pub struct Intermediates {
    pub visual: VisualOutput,
    /// [regions, queries, qformer width]
    pub qformer: Tensor<3>,
    pub scores: HeadScores,
}

/// How results come back from the device: blocking natively, awaited in the browser (where a
/// blocking read of a WebGPU buffer is not allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBack {
    Blocking,
    Async,
}

impl ReadBack {
    /// A tensor's values; a device that fails to return them (a lost GPU) is an error, not a panic.
    async fn floats<const D: usize>(self, t: Tensor<D>) -> Result<Vec<f32>, DescribeError> {
        let data = match self {
            ReadBack::Blocking => t.into_data(),
            ReadBack::Async => t.into_data_async().await.map_err(|e| DescribeError::Device(format!("{e:?}")))?,
        };
        Ok(data.convert::<f32>().try_into_vec().expect("f32 data"))
    }
}

/// How long a watched description may run between two of its host's turns.
const TURN_MS: f64 = 30.0;

/// Who watches a batch description (see [`Describer::describe_batch_watched`]).
pub struct Watcher<'a> {
    /// Hears which stage starts; `Break` stops the description there.
    pub on_stage: &'a mut dyn FnMut(Stage) -> ControlFlow<()>,
    /// A monotonic time in milliseconds, to time each stage.
    pub clock: &'a mut dyn FnMut() -> f64,
    /// Awaited before a stage once [`TURN_MS`] have passed since the last turn: a browser page
    /// handles input there (a newer box) while a description runs on the CPU backend, whose
    /// read-backs never wait.
    pub take_turn: Option<&'a dyn Fn() -> LocalBoxFuture<'static, ()>>,
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

/// Each view's region box, as the visual side takes them.
fn region_boxes(views: &Views) -> Vec<[f32; 4]> {
    views.views.iter().map(|v| v.region_box).collect()
}

/// A stage of a description, as the page's status names it while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Views,
    Vit,
    Align,
    Qformer,
    Heads,
    T5Encoder,
    /// Decoding step `step` of at most `of` new tokens.
    Token {
        step: usize,
        of: usize,
    },
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Views => f.write_str("views"),
            Stage::Vit => f.write_str("ViT"),
            Stage::Align => f.write_str("alignment"),
            Stage::Qformer => f.write_str("Q-Former"),
            Stage::Heads => f.write_str("heads"),
            Stage::T5Encoder => f.write_str("T5 encoder"),
            Stage::Token { step, of } => write!(f, "token {step} of {of}"),
        }
    }
}

impl Stage {
    /// The stage's name among the timings: the first token is timed apart from the rest, which
    /// read the cache it starts.
    pub fn key(self) -> &'static str {
        match self {
            Stage::Views => "views",
            Stage::Vit => "vit",
            Stage::Align => "align_fuse",
            Stage::Qformer => "qformer",
            Stage::Heads => "heads",
            Stage::T5Encoder => "t5_encoder",
            Stage::Token { step: 1, .. } => "first_token",
            Stage::Token { .. } => "decoder",
        }
    }
}

/// How a description runs: how results come back, who hears each stage, the clock that times
/// stages (a stage is timed once the device has finished its work) and the host's turns.
struct Watch<'a> {
    read: ReadBack,
    on_stage: Option<&'a mut dyn FnMut(Stage) -> ControlFlow<()>>,
    clock: Option<&'a mut dyn FnMut() -> f64>,
    take_turn: Option<&'a dyn Fn() -> LocalBoxFuture<'static, ()>>,
    last: f64,
    /// When the page last had a turn (see `start`).
    last_turn: f64,
    timings: Timings,
}

impl<'a> Watch<'a> {
    fn new(read: ReadBack) -> Watch<'a> {
        Watch { read, on_stage: None, clock: None, take_turn: None, last: 0.0, last_turn: 0.0, timings: Timings::new() }
    }

    fn timed(&mut self, clock: &'a mut dyn FnMut() -> f64) {
        self.last = clock();
        self.last_turn = self.last;
        self.clock = Some(clock);
    }

    /// Starts a stage, unless the watcher says to stop; the host first gets a turn when the last
    /// one was a while ago.
    async fn start(&mut self, stage: Stage) -> Result<(), DescribeError> {
        if let (Some(take_turn), Some(clock)) = (self.take_turn, self.clock.as_mut())
            && clock() - self.last_turn >= TURN_MS
        {
            take_turn().await;
            self.last_turn = clock();
        }
        match self.on_stage.as_mut().map(|on_stage| on_stage(stage)) {
            Some(ControlFlow::Break(())) => Err(DescribeError::Stopped),
            _ => Ok(()),
        }
    }

    /// Ends a stage whose result is `output`: when someone watches, waits for the device to
    /// finish it (natively a sync; in the browser a read-back of one value, which also lets the
    /// page repaint its status), then records its time.
    async fn lap<const D: usize>(&mut self, stage: Stage, output: Option<&Tensor<D>>) {
        if self.clock.is_none() && self.on_stage.is_none() {
            return;
        }
        match (self.read, output) {
            (ReadBack::Blocking, Some(t)) => {
                let _ = t.device().sync();
            }
            (ReadBack::Async, Some(t)) => {
                let first = t.clone().flatten::<1>(0, D - 1).narrow(0, 0, 1);
                let _ = first.into_data_async().await;
            }
            (_, None) => {}
        }
        if let Some(clock) = self.clock.as_mut() {
            let now = clock();
            self.timings.push((stage.key(), now - self.last));
            self.last = now;
        }
    }
}

impl Describer {
    /// A loaded bundle ready to describe: its tokenizers (the CLIP BPE is kept only for a model
    /// with a text tower, which alone can use it) and its vocabularies as the heads read them.
    pub fn open(bundle: LoadedBundle) -> Result<Describer, OpenError> {
        let LoadedBundle { name, device, manifest, model, tokenizer_json, clip_bpe } = bundle;
        let tokenizer = T5Tokenizer::from_json(tokenizer_json.bytes(), manifest.config.max_txt_len)
            .map_err(|e| OpenError::Tokenizer(name.clone(), e))?;
        let clip_bpe = match model.clip_text {
            Some(_) => Some(
                ClipBpe::from_gzip(clip_bpe.bytes())
                    .map_err(|e| OpenError::Bpe(format!("{name}: {}", manifest.clip_bpe.file), e))?,
            ),
            None => None,
        };
        let vocab = model.vocabularies(manifest.vocabularies.templates_per_attribute.clone());
        Ok(Describer { manifest, model, vocab, tokenizer, clip_bpe, device })
    }

    /// Loads a bundle from `source` (see [`crate::bundle::load::load`]) and opens it.
    pub async fn load(
        source: &impl ByteSource,
        device: &Device,
        target: Option<&crate::bundle::Target>,
        progress: impl Fn(crate::bundle::Progress),
    ) -> Result<Describer, OpenError> {
        let bundle = crate::bundle::load::load(source, device, target, progress).await?;
        Describer::open(bundle)
    }

    /// Opens a bundle folder, verifying every file; `progress` hears after each shard.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_dir(
        dir: &std::path::Path,
        device: &Device,
        progress: impl FnMut(crate::bundle::Progress),
    ) -> Result<Describer, OpenError> {
        let progress = std::cell::RefCell::new(progress);
        let source = crate::bundle::load::DirSource::new(dir);
        futures::executor::block_on(Describer::load(&source, device, None, |p| (progress.borrow_mut())(p)))
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

    /// `names` as classes to score instead of the bundle's: each embedded as the official model
    /// embeds a class (`"the {name}"`, lower case) by the bundle's text tower. The embeddings stay
    /// on the model's device (nothing is read back), so this runs on every backend.
    pub fn class_set(&self, names: &[String]) -> Result<ClassSet, DescribeError> {
        let refuse = |why: String| Err(DescribeError::Classes(why));
        let (Some(tower), Some(bpe)) = (&self.model.clip_text, &self.clip_bpe) else {
            return refuse("this bundle has no text tower: convert it with --with-text-tower".into());
        };
        if names.is_empty() {
            return refuse("no class names".into());
        }
        if names.len() > MAX_CLASSES {
            return refuse(format!("{} class names; at most {MAX_CLASSES}", names.len()));
        }
        if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
            return refuse(format!("class {} of {} is empty", i + 1, names.len()));
        }
        let prompts: Vec<String> = names.iter().map(|n| class_prompt(n)).collect();
        let embeddings = tower.embed(bpe, &prompts).map_err(|e| DescribeError::Classes(e.to_string()))?;
        Ok(ClassSet { names: names.to_vec(), embeddings })
    }

    /// The model, for training it further.
    pub fn into_model(self) -> DynRefer {
        self.model
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
        let views = self.views(photo, region, options.num_views)?;
        ready(self.run_model(&self.model, views, options, &mut Watch::new(ReadBack::Blocking))).map(|(d, _)| d)
    }

    /// Describes the regions of views already built, in one batch (see [`Describer::views`]):
    /// their encoders run together, at most [`MAX_BATCH_REGIONS`] regions at a time, with awaited
    /// read-backs (as the browser needs). The watcher may stop the description before a stage
    /// ([`DescribeError::Stopped`]); each stage is timed once the device has finished its work,
    /// and the timings are the whole batch's.
    pub async fn describe_batch_watched(
        &self,
        regions: Vec<Views>,
        options: &DescribeOptions,
        watcher: Watcher<'_>,
    ) -> Result<(Vec<Description>, Timings), DescribeError> {
        let mut watch =
            Watch { on_stage: Some(watcher.on_stage), take_turn: watcher.take_turn, ..Watch::new(ReadBack::Async) };
        watch.timed(watcher.clock);
        let mut described = Vec::with_capacity(regions.len());
        let mut regions = regions.into_iter().peekable();
        while regions.peek().is_some() {
            let batch: Vec<Views> = regions.by_ref().take(MAX_BATCH_REGIONS).collect();
            described.extend(self.run_batch(&self.model, batch, options, &mut watch).await?);
        }
        Ok((described, watch.timings))
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
        let mut watch = Watch::new(ReadBack::Blocking);
        watch.timed(clock);
        let views = self.views(photo, region, options.num_views)?;
        ready(watch.lap(Stage::Views, None::<&Tensor<1>>));
        ready(self.run_model(&self.model, views, options, &mut watch))
    }

    /// The region's encoding (ViT … Q-Former) and head scores, as a description computes them.
    pub fn encode(&self, views: &Views) -> Intermediates {
        let mut watch = Watch::new(ReadBack::Blocking);
        ready(self.encode_batch(&self.model, std::slice::from_ref(views), &self.vocab, &mut watch))
            .expect("only a watcher stops an encoding")
    }

    /// The encoders on the regions' views together: ViT, alignment and fusion, Q-Former, and the
    /// heads scored against `vocab`.
    async fn encode_batch(
        &self,
        model: &DynRefer,
        regions: &[Views],
        vocab: &Vocabularies,
        watch: &mut Watch<'_>,
    ) -> Result<Intermediates, DescribeError> {
        let (pixels, boxes): (Vec<Tensor<4>>, Vec<Vec<[f32; 4]>>) =
            regions.iter().map(|v| (self.pixels(v), region_boxes(v))).unzip();
        watch.start(Stage::Vit).await?;
        let vit = model.visual.encode(Tensor::cat(pixels, 0)); // [regions · views, tokens, width]
        watch.lap(Stage::Vit, Some(&vit)).await;
        watch.start(Stage::Align).await?;
        let visual = model.visual.fuse(vit, &boxes.concat());
        watch.lap(Stage::Align, Some(&visual.fused)).await;
        watch.start(Stage::Qformer).await?;
        let qformer = model.qformer.forward(visual.fused.clone()); // [regions, queries, width]
        watch.lap(Stage::Qformer, Some(&qformer)).await;
        watch.start(Stage::Heads).await?;
        let scores = model.heads.forward(qformer.clone(), vocab);
        Ok(Intermediates { visual, qformer, scores })
    }

    /// The views' pixels on the device, [views, 3, S, S].
    fn pixels(&self, views: &Views) -> Tensor<4> {
        let (n, size) = (views.views.len(), views.size as usize);
        Tensor::<4>::from_data(TensorData::new(views.pixels(), [n, 3, size, size]), &self.device)
    }

    /// Runs every kind of kernel once on the least work that reaches it: a blank photo through
    /// the model cut to one block of each stack (two Q-Former layers, so that its
    /// cross-attention runs too), one beam, two tokens (the second reads the cache). WebGPU
    /// compiles a shader on its first use; done while the model loads, this keeps the person's
    /// first box as fast as the next ones, at a small part of a whole description's cost.
    pub async fn warm_up(&self) {
        let mut shallow = self.model.clone();
        shallow.visual.visual_encoder.blocks.truncate(1);
        shallow.qformer.encoder.layer.truncate(2);
        shallow.t5.encoder.block.truncate(1);
        shallow.t5.decoder.block.truncate(1);
        let photo = RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]));
        if let Ok(views) = self.views(&photo, RegionBox([8.0, 8.0, 40.0, 40.0]), None) {
            let options = DescribeOptions { beams: 1, max_new_tokens: 2, ..DescribeOptions::default() };
            let _ = self.run_model(&shallow, views, &options, &mut Watch::new(ReadBack::Async)).await;
        }
    }

    /// Everything after the views, on `model` (this bundle's, or a part of it).
    async fn run_model(
        &self,
        model: &DynRefer,
        views: Views,
        options: &DescribeOptions,
        watch: &mut Watch<'_>,
    ) -> Result<(Description, Timings), DescribeError> {
        let mut described = self.run_batch(model, vec![views], options, watch).await?;
        let description = described.pop().expect("one region in, one out");
        Ok((description, std::mem::take(&mut watch.timings)))
    }

    /// Several regions of one photo: their views go through the ViT, the alignment, the Q-Former
    /// and the heads together, then each caption is decoded on its own (beam search keeps its
    /// beams per region). The result of each region equals its description alone.
    async fn run_batch(
        &self,
        model: &DynRefer,
        regions: Vec<Views>,
        options: &DescribeOptions,
        watch: &mut Watch<'_>,
    ) -> Result<Vec<Description>, DescribeError> {
        if options.beams == 0 {
            return Err(DescribeError::Options("beams must be at least 1".into()));
        }
        // the fusion MLP reads the views side by side: their number is part of the model
        let fused = self.manifest.config.num_views;
        if let Some(views) = regions.iter().find(|v| v.views.len() != fused) {
            let asked = views.views.len();
            return Err(DescribeError::Options(format!(
                "num-views {asked}: this model fuses exactly {fused} views per region"
            )));
        }
        let custom = match &options.classes {
            Some(set) if set.embeddings.dims()[1] != self.vocab.classes.dims()[1] => {
                return Err(DescribeError::Classes(
                    "these classes were embedded by another bundle's text tower".into(),
                ));
            }
            Some(set) => Some(self.vocab.with_classes(set.embeddings.clone())),
            None => None,
        };
        let n = regions.len();
        let vocab = custom.as_ref().unwrap_or(&self.vocab);
        let Intermediates { qformer: queries, scores, .. } = self.encode_batch(model, &regions, vocab, watch).await?;
        let read = watch.read;
        let names = &self.manifest.vocabularies;
        let class_names = options.classes.as_ref().map_or(&names.classes, |set| &set.names);
        // [regions, entries], read back at once and cut per region
        let per_region = |all: Vec<f32>, names: &[String]| -> Vec<Vec<Scored>> {
            all.chunks(names.len().max(1))
                .map(|row| names.iter().zip(row).map(|(n, &score)| Scored { name: n.clone(), score }).collect())
                .collect()
        };
        let tags = per_region(read.floats(scores.tags).await?, &names.tags);
        let attributes = per_region(read.floats(scores.attributes).await?, &names.attributes);
        let classes = per_region(read.floats(scores.classes).await?, class_names);
        watch.lap(Stage::Heads, None::<&Tensor<1>>).await;

        let threshold = options.tag_threshold.unwrap_or(self.manifest.tag_threshold);
        let mut described = Vec::with_capacity(n);
        let rows = tags.into_iter().zip(attributes).zip(classes).zip(regions);
        for (i, (((tags, attributes), classes), views)) in rows.enumerate() {
            let tags: Vec<Scored> = tags.into_iter().filter(|t| t.score > threshold).collect();
            watch.start(Stage::T5Encoder).await?;
            let control = control_string(tags.iter().map(|t| t.name.as_str()), options.controls.as_deref());
            let control_ids = self.tokenizer.encode(&control)?;
            let region_queries = queries.clone().narrow(0, i, 1); // [1, queries, width]
            let encoded_t5 = model.t5.encode(model.t5_inputs(region_queries, &control_ids));
            watch.lap(Stage::T5Encoder, Some(&encoded_t5)).await;
            let decoded = self.generate(&model.t5, encoded_t5, options, watch).await?;
            let caption = self.tokenizer.decode(&decoded.ids)?;
            // the tokens after the first, timed together
            let rest = Stage::Token { step: 2, of: options.max_new_tokens };
            watch.lap(rest, None::<&Tensor<1>>).await;
            described.push(Description {
                views: views.views,
                caption,
                caption_ids: decoded.ids,
                caption_score: decoded.score,
                tags,
                attributes,
                classes,
            });
        }
        Ok(described)
    }

    async fn generate(
        &self,
        t5_model: &T5,
        encoded: Tensor<3>,
        options: &DescribeOptions,
        watch: &mut Watch<'_>,
    ) -> Result<crate::text::search::Decoded, DescribeError> {
        let t5 = &self.manifest.config.t5;
        let mut search = Search::new(SearchOptions {
            beams: options.beams,
            max_new_tokens: options.max_new_tokens,
            repetition_penalty: options.repetition_penalty,
            start_id: t5.decoder_start_token_id,
            eos_id: t5.eos_token_id,
            pad_id: t5.pad_token_id,
        });
        let mut cache = t5_model.start(encoded, options.beams);
        let mut first = true;
        let mut token = 0;
        while let Some(step) = search.next_step() {
            token += 1;
            watch.start(Stage::Token { step: token, of: options.max_new_tokens }).await?;
            if let Some(order) = step.reorder {
                let order: Vec<i64> = order.into_iter().map(|i| i as i64).collect();
                let n = order.len();
                T5::reorder(&mut cache, Tensor::from_data(TensorData::new(order, [n]), &self.device));
            }
            let ids: Vec<i64> = step.tokens.iter().map(|&t| i64::from(t)).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [step.tokens.len(), 1]), &self.device);
            let logits = t5_model.decode(ids, &mut cache);
            search.advance(&watch.read.floats(logits).await?);
            if first {
                watch.lap(Stage::Token { step: 1, of: options.max_new_tokens }, None::<&Tensor<1>>).await;
                first = false;
            }
        }
        Ok(search.finish())
    }
}
