//! `dynrefer train`: DynRefer trained end to end on annotated regions (such as the shapes world's,
//! [`crate::scenes`]), from scratch at [`world::shapes_config`]'s size or from a bundle, on burn's
//! autodiff. AdamW with a linear warm-up and a cosine schedule; checkpoints (model, optimizer,
//! step, the run's flags, text resources) every few steps, written so that a crash leaves the
//! previous one whole (see the `checkpoint` module), from which a later run with the same flags resumes; the
//! result is a bundle.

mod checkpoint;
pub mod data;
pub mod loss;
pub mod world;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, grad_clipping::GradientClippingConfig};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::bundle::{MANIFEST, MAX_SHARD_BYTES, Manifest, Quant, VocabularyNames};
use crate::convert::vocab::{AttributePrompts, attribute_prompts};
use crate::convert::write::{BundleInfo, write_bundle};
use crate::model::dynrefer::{DynRefer, DynReferConfig, VocabEmbeddings};
use crate::scenes::Rng;
use crate::text::caption::T5Tokenizer;
use crate::text::clip_bpe::ClipBpe;
use crate::views::ViewOptions;
pub use data::TrainViews;
use data::{Batch, BatchOptions, Example};
use loss::{Losses, VocabTokens};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Data(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Open(#[from] crate::bundle::load::OpenError),
    #[error(transparent)]
    Convert(#[from] crate::convert::ConvertError),
    #[error(
        "{path}: the checkpoint at step {step} was saved by a run with other flags: {}; resume with the saved \
         values, or pass --allow-changed-flags to go on with the new ones",
        changed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    ChangedFlags { path: String, step: usize, changed: Vec<ChangedFlag> },
}

/// A flag whose value differs from the one a checkpoint was saved with.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedFlag {
    pub flag: &'static str,
    pub saved: String,
    pub given: String,
}

impl std::fmt::Display for ChangedFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--{} {} (saved {})", self.flag, self.given, self.saved)
    }
}

/// How a run of [`train`] ended.
pub enum Trained {
    /// Every step done: the bundle written.
    Bundle(Manifest),
    /// Stopped after a step as asked (`stop_after`); the checkpoint goes on from there.
    Paused { step: usize },
}

fn file_err(path: &Path, message: impl ToString) -> TrainError {
    TrainError::File { path: path.display().to_string(), message: message.to_string() }
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// `annotations.jsonl`, with the vocabulary files (`ram_tag_list.txt`, `ovad2000.json`,
    /// `coco.json`) in its folder.
    pub data: PathBuf,
    /// The bundle to write.
    pub out: PathBuf,
    /// Checkpoints: resumed from when they are there.
    pub checkpoints: PathBuf,
    /// Start from this bundle's weights and text resources instead of from scratch.
    pub from: Option<PathBuf>,
    pub steps: usize,
    /// End this run after this many steps (of `steps`); a later run goes on from its checkpoint.
    pub stop_after: Option<usize>,
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    pub weight_decay: f32,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub quant: Quant,
    pub name: String,
    pub tag_threshold: f32,
    pub tag_drop: f64,
    pub views: TrainViews,
    /// Resume a checkpoint saved with other values of the flags that change the result (seed, lr,
    /// steps, warm-up, batch, weight decay, tag drop, views, data) instead of refusing it.
    pub allow_changed_flags: bool,
}

/// The flags of a run that change its result, saved with each checkpoint: a resumed run must
/// give the same ones to end where an uninterrupted run would.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunFlags {
    seed: u64,
    lr: f64,
    steps: usize,
    warmup: usize,
    batch: usize,
    weight_decay: f32,
    tag_drop: f64,
    /// Checkpoints from before the choice existed trained on fixed views.
    #[serde(default = "fixed_views")]
    views: TrainViews,
    /// The annotations file's SHA-256: the same data may sit elsewhere on a resume.
    data_sha256: String,
}

fn fixed_views() -> TrainViews {
    TrainViews::Fixed
}

impl RunFlags {
    fn new(opts: &TrainOptions) -> Result<RunFlags, TrainError> {
        let data = std::fs::read(&opts.data).map_err(|e| file_err(&opts.data, e))?;
        Ok(RunFlags {
            seed: opts.seed,
            lr: opts.lr,
            steps: opts.steps,
            warmup: opts.warmup,
            batch: opts.batch,
            weight_decay: opts.weight_decay,
            tag_drop: opts.tag_drop,
            views: opts.views,
            data_sha256: crate::bundle::sha256_hex(&data),
        })
    }

    /// The flags of `given` that differ from these, named as on the command line.
    fn changed(&self, given: &RunFlags) -> Vec<ChangedFlag> {
        let mut changed = Vec::new();
        let mut check = |flag: &'static str, saved: String, given: String| {
            if saved != given {
                changed.push(ChangedFlag { flag, saved, given });
            }
        };
        check("seed", self.seed.to_string(), given.seed.to_string());
        check("lr", self.lr.to_string(), given.lr.to_string());
        check("steps", self.steps.to_string(), given.steps.to_string());
        check("warmup", self.warmup.to_string(), given.warmup.to_string());
        check("batch", self.batch.to_string(), given.batch.to_string());
        check("weight-decay", self.weight_decay.to_string(), given.weight_decay.to_string());
        check("tag-drop", self.tag_drop.to_string(), given.tag_drop.to_string());
        check("views", self.views.to_string(), given.views.to_string());
        let sha = |s: &str| format!("annotations with SHA-256 {}…", s.get(..16).unwrap_or(s));
        check("data", sha(&self.data_sha256), sha(&given.data_sha256));
        changed
    }
}

/// What the progress display shows after each step.
pub struct StepReport {
    pub step: usize,
    pub steps: usize,
    pub loss: [f32; 4],
    pub lr: f64,
    /// Regions a second over this run's steps so far.
    pub rate: f64,
}

/// Steps that spread the vocabularies' embeddings apart before a new model's training.
const SPREAD_STEPS: usize = 200;

/// What `train` says besides progress.
pub enum Event<'a> {
    Examples(usize),
    /// The vocabularies' overlap before and after spreading them.
    Spread {
        before: f32,
        after: f32,
    },
    Resumed(usize),
    Step(&'a StepReport),
    Checkpoint(usize),
}

/// The checkpoint's own record of where training stands.
#[derive(Serialize, Deserialize)]
struct State {
    step: usize,
    flags: RunFlags,
    config: DynReferConfig,
    names: VocabularyNames,
}

/// Learning rate at `step`: linear warm-up, then a cosine down to a tenth.
pub fn learning_rate(step: usize, opts: &TrainOptions) -> f64 {
    if step < opts.warmup {
        return opts.lr * (step + 1) as f64 / opts.warmup as f64;
    }
    let progress = (step - opts.warmup) as f64 / (opts.steps - opts.warmup).max(1) as f64;
    opts.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()))
}

/// The vocabularies of the data: names and the attribute prompts, from the official-format files.
fn vocabularies(dir: &Path) -> Result<(VocabularyNames, Vec<String>), TrainError> {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).map_err(|e| file_err(&dir.join(file), e));
    let tags: Vec<String> =
        read("ram_tag_list.txt")?.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    let ovad: serde_json::Value =
        serde_json::from_str(&read("ovad2000.json")?).map_err(|e| file_err(&dir.join("ovad2000.json"), e))?;
    let AttributePrompts { templates, templates_per_attribute, names } =
        attribute_prompts(&ovad).map_err(|e| file_err(&dir.join("ovad2000.json"), e))?;
    let classes: Vec<String> =
        serde_json::from_str(&read("coco.json")?).map_err(|e| file_err(&dir.join("coco.json"), e))?;
    Ok((VocabularyNames { tags, attributes: names, templates_per_attribute, classes }, templates))
}

/// The prompts the text tower embeds, as the converter builds them.
fn prompts(names: &VocabularyNames, templates: &[String]) -> Vec<String> {
    let classes = names.classes.iter().map(|c| format!("the {}", c.to_lowercase()));
    names.tags.iter().cloned().chain(templates.iter().cloned()).chain(classes).collect()
}

/// Random values where the loading-oriented `init` leaves zeros that training cannot start from
/// (identical query tokens would stay identical), scaled as BLIP-2 and CLIP initialise them.
struct TrainingInit {
    path: Vec<String>,
    device: Device,
}

impl ModuleMapper for TrainingInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.last().map(String::as_str).unwrap_or_default();
        let owner = self.path.iter().rev().nth(1).map(String::as_str).unwrap_or_default();
        if name == "pos_embed" {
            let device = self.device.clone();
            return param.map(|t| {
                let dims = t.dims();
                let (tokens, width) = (dims[D - 2], dims[D - 1]);
                Tensor::from_data(TensorData::new(sin_cos_grid(tokens, width), t.shape()), &device)
                    .set_require_grad(true)
            });
        }
        let std = match (owner, name) {
            // small vocabulary embeddings leave room beside them for what the heads see
            (_, "query_tokens" | "cls_token" | "positional_embedding" | "text_projection") => 0.02,
            (_, "in_proj_weight") => (param.shape().dims::<D>()[D - 1] as f64).powf(-0.5),
            // the attribute and class logits are `attr_fc` of a unit vector: with a default-sized
            // weight they could not leave ±0.6 for hundreds of steps
            ("attr_fc", "weight") => 1.0,
            _ => return param,
        };
        let device = self.device.clone();
        param.map(|t| Tensor::random(t.shape(), Distribution::Normal(0.0, std), &device).set_require_grad(true))
    }
}

/// 2-D sine-cosine position embeddings of a square grid of patches (the CLS token's are zero):
/// half the channels encode the row, half the column, at geometric frequencies. A ViT trained
/// from scratch on little data learns shapes far sooner from these than from random ones.
fn sin_cos_grid(tokens: usize, width: usize) -> Vec<f32> {
    let grid = (tokens - 1).isqrt();
    let quarter = width / 4;
    let mut out = vec![0f32; tokens * width];
    for (i, row) in out.chunks_mut(width).skip(1).enumerate() {
        let (y, x) = ((i / grid) as f64, (i % grid) as f64);
        for k in 0..quarter {
            let frequency = 1.0 / 10000f64.powf(k as f64 / quarter as f64);
            for (j, angle) in [y * frequency, x * frequency].into_iter().enumerate() {
                row[j * 2 * quarter + k] = angle.sin() as f32;
                row[j * 2 * quarter + quarter + k] = angle.cos() as f32;
            }
        }
    }
    out
}

/// The model and text resources to start from: a bundle's, a checkpoint's, or new ones.
struct Start {
    model: DynRefer,
    config: DynReferConfig,
    tokenizer_json: Vec<u8>,
    bpe: Vec<u8>,
    step: usize,
    optimizer: Option<PathBuf>,
}

fn start(
    opts: &TrainOptions,
    flags: &RunFlags,
    names: &VocabularyNames,
    prompt_texts: &[String],
    captions: &[String],
    device: &Device,
) -> Result<Start, TrainError> {
    if let Some(dir) = checkpoint::current(&opts.checkpoints)? {
        use checkpoint::{BPE, MODEL, OPTIMIZER, STATE, TOKENIZER};
        let read = |file: &str| std::fs::read(dir.join(file)).map_err(|e| file_err(&dir.join(file), e));
        let state: State = serde_json::from_slice(&read(STATE)?).map_err(|e| file_err(&dir.join(STATE), e))?;
        if state.names != *names {
            return Err(file_err(
                &opts.checkpoints,
                "was trained on other vocabulary files than the data's: pick another --checkpoints folder",
            ));
        }
        let changed = state.flags.changed(flags);
        if !changed.is_empty() && !opts.allow_changed_flags {
            let path = opts.checkpoints.display().to_string();
            return Err(TrainError::ChangedFlags { path, step: state.step, changed });
        }
        let mut model = state.config.init(device);
        let mut store = BurnpackStore::from_file(dir.join(MODEL));
        model.load_from(&mut store).map_err(|e| file_err(&dir.join(MODEL), e))?;
        return Ok(Start {
            model,
            config: state.config,
            tokenizer_json: read(TOKENIZER)?,
            bpe: read(BPE)?,
            step: state.step,
            optimizer: Some(dir.join(OPTIMIZER)),
        });
    }
    if let Some(bundle) = &opts.from {
        let describer = crate::describe::Describer::open_dir(bundle, &Device::flex(), |_| {})?;
        if describer.manifest.vocabularies != *names {
            return Err(file_err(bundle, "has other vocabularies than the data's files"));
        }
        if describer.model().clip_text.is_none() {
            return Err(file_err(
                bundle,
                "has no text tower, which learns the vocabularies: convert it with --with-text-tower",
            ));
        }
        let read = |file: &str| std::fs::read(bundle.join(file)).map_err(|e| file_err(&bundle.join(file), e));
        let (tokenizer_json, bpe) =
            (read(&describer.manifest.t5_tokenizer.file)?, read(&describer.manifest.clip_bpe.file)?);
        let config = describer.manifest.config.clone();
        let model = crate::bundle::dequantized(describer.into_model()).fork(device).train();
        return Ok(Start { model, config, tokenizer_json, bpe, step: 0, optimizer: None });
    }
    let all_words = world::words(prompt_texts.iter().chain(captions).map(String::as_str));
    let (tokenizer_json, t5_vocab) = world::t5_tokenizer_json(&all_words);
    let bpe = world::clip_bpe_merges(&world::words(prompt_texts.iter().map(String::as_str)));
    let bpe_vocab = world::bpe_vocab_size(&bpe).map_err(TrainError::Data)?;
    let sizes = [names.tags.len(), names.templates_per_attribute.iter().sum(), names.classes.len()];
    let config = world::shapes_config(t5_vocab, bpe_vocab, sizes);
    device.seed(opts.seed);
    let model = config.init(device).map(&mut TrainingInit { path: vec![], device: device.clone() });
    Ok(Start { model, config, tokenizer_json: tokenizer_json.into_bytes(), bpe, step: 0, optimizer: None })
}

/// The examples of the whole run in order: epochs of a seeded shuffle, so that a resumed run
/// draws the examples it would have drawn.
struct Sampler {
    count: usize,
    seed: u64,
    epoch: Option<(usize, Vec<usize>)>,
}

impl Sampler {
    /// The `k`-th example of the run.
    fn pick(&mut self, k: usize) -> usize {
        let epoch = k / self.count;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.count).collect();
            let mut rng = Rng::new(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
            for i in (1..self.count).rev() {
                order.swap(i, rng.below(i + 1));
            }
            self.epoch = Some((epoch, order));
        }
        self.epoch.as_ref().expect("this epoch's order").1[k % self.count]
    }
}

/// A model being trained, with its optimizer, vocabularies and text resources.
pub struct Trainer {
    pub model: DynRefer,
    pub config: DynReferConfig,
    pub names: VocabularyNames,
    pub tokenizer: T5Tokenizer,
    /// Steps done so far (a resumed run starts at its checkpoint's).
    pub step: usize,
    flags: RunFlags,
    optim: ModuleOptimizer,
    vocab: VocabTokens,
    tokenizer_json: Vec<u8>,
    bpe: Vec<u8>,
    resumed: bool,
    device: Device,
    plain: Device,
}

impl Trainer {
    /// The model to train for `opts.data`: the checkpoint's when there is one, else the bundle's
    /// of `opts.from`, else a new one of [`world::shapes_config`]'s size.
    pub fn new(opts: &TrainOptions, device: &Device) -> Result<Trainer, TrainError> {
        let data_dir = opts.data.parent().unwrap_or(Path::new("."));
        let (names, templates) = vocabularies(data_dir)?;
        let prompt_texts = prompts(&names, &templates);
        let annotations = crate::scenes::read_annotations(&opts.data).map_err(TrainError::Data)?;
        let captions: Vec<String> = annotations.iter().map(|a| a.caption.clone()).collect();
        let plain = device.clone();
        let device = device.clone().autodiff();
        let flags = RunFlags::new(opts)?;
        let Start { model, config, tokenizer_json, bpe, step, optimizer } =
            start(opts, &flags, &names, &prompt_texts, &captions, &device)?;
        let tokenizer =
            T5Tokenizer::from_json(&tokenizer_json, config.max_txt_len).map_err(|e| TrainError::Data(e.to_string()))?;
        let clip_bpe = ClipBpe::from_gzip(&bpe).map_err(|e| TrainError::Data(e.to_string()))?;
        let (rows, context) = clip_bpe.rows(&prompt_texts, config.clip_text.context);
        let vocab = VocabTokens {
            rows,
            context,
            sizes: [names.tags.len(), templates.len(), names.classes.len()],
            templates_per_attribute: names.templates_per_attribute.clone(),
        };
        let mut optim = AdamWConfig::new()
            .with_weight_decay(opts.weight_decay)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
            .init();
        let resumed = optimizer.is_some();
        if let Some(path) = optimizer {
            optim = optim.load(&path).map_err(|e| file_err(&path, e))?;
        }
        Ok(Trainer {
            model,
            config,
            names,
            tokenizer,
            step,
            flags,
            optim,
            vocab,
            tokenizer_json,
            bpe,
            resumed,
            device,
            plain,
        })
    }

    /// The data's regions with their views built at the model's size: the chosen ones, or every
    /// candidate to draw from, as the run's views flag says.
    pub fn examples(&self, data: &Path) -> Result<Vec<Example>, TrainError> {
        let views = ViewOptions { num_views: self.config.num_views, size: self.config.image_size as u32 };
        data::load_examples(data, &self.names, &self.tokenizer, &views, self.flags.views).map_err(TrainError::Data)
    }

    /// `examples` as a batch on the training device.
    pub fn batch(&self, examples: &[&Example], tag_drop: f64, rng: &mut Rng) -> Result<Batch, TrainError> {
        let options = BatchOptions {
            tag_drop,
            start_id: self.config.t5.decoder_start_token_id,
            num_views: self.config.num_views,
            views: self.flags.views,
        };
        data::batch(examples, &self.names, &self.tokenizer, &options, rng, &self.device).map_err(TrainError::Data)
    }

    /// One optimizer step on `batch` at learning rate `lr`; returns the losses before it
    /// (caption, tags, attributes, class).
    pub fn step(&mut self, batch: &Batch, lr: f64) -> [f32; 4] {
        let losses: Losses = loss::losses(&self.model, &self.vocab, batch);
        let grads = GradientsParams::from_grads(losses.total().backward(), &self.model);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        let value = |t: &Tensor<1>| t.clone().into_scalar::<f32>();
        [value(&losses.caption), value(&losses.tags), value(&losses.attributes), value(&losses.class)]
    }

    /// Steps on the text tower alone that spread each vocabulary's embeddings apart (see
    /// [`loss::vocabulary_overlap`]); returns the overlap before and after.
    pub fn spread_vocabularies(&mut self, steps: usize, lr: f64) -> (f32, f32) {
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..steps {
            let overlap = loss::vocabulary_overlap(&self.vocab.embed(&self.model, &self.device));
            last = overlap.clone().into_scalar::<f32>();
            first.get_or_insert(last);
            let grads = GradientsParams::from_grads(overlap.backward(), &self.model);
            self.model = self.optim.step(lr, self.model.clone(), grads);
        }
        (first.unwrap_or(last), last)
    }

    /// Saves a checkpoint into `dir` and makes it the one a later run resumes from.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let state = State {
            step: self.step,
            flags: self.flags.clone(),
            config: self.config.clone(),
            names: self.names.clone(),
        };
        checkpoint::save(dir, &state, &self.model, &self.optim, (&self.tokenizer_json, &self.bpe))
    }

    /// The trained model as a bundle of `opts.quant` in `opts.out`.
    pub fn export(self, opts: &TrainOptions) -> Result<Manifest, TrainError> {
        let text = (self.tokenizer_json.as_slice(), self.bpe.as_slice());
        export(self.model.valid(), &self.vocab, &self.plain, opts, self.config.clone(), self.names.clone(), text)
    }
}

/// Trains and writes the bundle; `event` hears the examples, each step and each checkpoint.
pub fn train(opts: &TrainOptions, device: &Device, mut event: impl FnMut(Event)) -> Result<Trained, TrainError> {
    let mut trainer = Trainer::new(opts, device)?;
    if trainer.resumed {
        event(Event::Resumed(trainer.step));
    } else if opts.from.is_none() {
        let (before, after) = trainer.spread_vocabularies(SPREAD_STEPS, opts.lr);
        event(Event::Spread { before, after });
    }
    let (first, last) = (trainer.step, opts.stop_after.map_or(opts.steps, |s| s.min(opts.steps)));
    // a finished checkpoint only needs writing out
    let examples = if first < last {
        let examples = trainer.examples(&opts.data)?;
        event(Event::Examples(examples.len()));
        examples
    } else {
        Vec::new()
    };
    let mut sampler = Sampler { count: examples.len(), seed: opts.seed, epoch: None };
    let started = std::time::Instant::now();
    while trainer.step < last {
        let step = trainer.step;
        let mut rng = Rng::new(opts.seed ^ (step as u64).wrapping_mul(0xD134_2543_DE82_EF95));
        let picked: Vec<&Example> = (0..opts.batch).map(|i| &examples[sampler.pick(step * opts.batch + i)]).collect();
        let batch = trainer.batch(&picked, opts.tag_drop, &mut rng)?;
        let lr = learning_rate(step, opts);
        let loss = trainer.step(&batch, lr);
        let rate = ((step + 1 - first) * opts.batch) as f64 / started.elapsed().as_secs_f64();
        event(Event::Step(&StepReport { step: step + 1, steps: opts.steps, loss, lr, rate }));
        if (step + 1) % opts.checkpoint_every == 0 || step + 1 == last {
            trainer.save_checkpoint(&opts.checkpoints)?;
            event(Event::Checkpoint(step + 1));
        }
    }
    if trainer.step < opts.steps {
        return Ok(Trained::Paused { step: trainer.step });
    }
    trainer.export(opts).map(Trained::Bundle)
}

/// The trained model as a bundle: vocabulary embeddings from its own text tower.
fn export(
    model: DynRefer,
    vocab: &VocabTokens,
    device: &Device,
    opts: &TrainOptions,
    config: DynReferConfig,
    names: VocabularyNames,
    (tokenizer_json, bpe): (&[u8], &[u8]),
) -> Result<Manifest, TrainError> {
    let embedded = vocab.embed(&model, device);
    let model = DynRefer {
        vocab: VocabEmbeddings {
            tags: Param::from_tensor(embedded.tags),
            attribute_templates: Param::from_tensor(embedded.attribute_templates),
            classes: Param::from_tensor(embedded.classes),
        },
        ..model
    };
    let info = BundleInfo {
        name: opts.name.clone(),
        config,
        tag_threshold: opts.tag_threshold,
        vocabularies: names,
        tokenizer_json: tokenizer_json.to_vec(),
        clip_bpe: bpe.to_vec(),
    };
    let manifest = write_bundle(&model, opts.quant, info, &opts.out, MAX_SHARD_BYTES)?;
    debug_assert!(opts.out.join(MANIFEST).exists());
    Ok(manifest)
}
