//! `dynrefer`: the native command line (views, convert, describe, bench). Its JSON output is a contract that tools
//! and checks rely on: results on stdout, one error line on stderr, non-zero exit.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use image::RgbImage;
use safetensors::{Dtype, tensor::TensorView};

use burn::prelude::Device;
use dynrefer::bundle::{FileEntry, MANIFEST, Manifest, Quant};
use dynrefer::convert::write::{BundleInfo, write_bundle};
use dynrefer::convert::{Inputs, plan};
use dynrefer::describe::{DescribeOptions, Describer};
use dynrefer::eval::meteor;
use dynrefer::eval::official::{self, Task};
use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use dynrefer::train::{Event, TrainOptions, TrainViews, Trained};
use dynrefer::views::{RegionBox, ViewOptions, Views, build_views};

#[derive(Parser)]
#[command(name = "dynrefer", version, about = "DynRefer region description: nested views, model, benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the nested views of a region and print them as JSON.
    Views {
        #[command(flatten)]
        input: ViewInput,
        /// Write the normalised pixels [N,3,S,S] and region boxes [N,4] to this safetensors file.
        #[arg(long, value_name = "OUT.safetensors")]
        dump: Option<PathBuf>,
    },
    /// Convert the official checkpoints into a model bundle.
    Convert(ConvertArgs),
    /// Describe a region of a photo with a converted model and print the result as JSON.
    Describe {
        #[command(flatten)]
        run: DescribeArgs,
    },
    /// Check a bundle: every file's size and SHA-256, and what it holds (parameters, bytes per
    /// dtype, shards), as JSON.
    Inspect {
        /// The bundle folder (with manifest.json).
        bundle: PathBuf,
    },
    /// Time a stage and print per-stage median milliseconds as JSON.
    Bench {
        #[command(subcommand)]
        stage: BenchStage,
    },
    /// Draw scenes of the "shapes" world: pictures, annotations.jsonl and the vocabulary files.
    Scenes {
        /// How many pictures.
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train DynRefer on annotated regions (from scratch, or from a bundle) and write a bundle.
    Train(TrainArgs),
    /// Describe every annotated region of a file and print the scores, as JSON: the shapes world's
    /// (caption, class, color, pattern, tags), or a benchmark of the paper from the release's
    /// annotation files (refcocog, vg: METEOR and CIDEr; densecap: mAP; ovad: attribute mAP;
    /// coco: class accuracy).
    Eval {
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// shapes, refcocog, vg, densecap, ovad or coco.
        #[arg(long, default_value = "shapes")]
        task: EvalTask,
        /// The annotations: the shapes world's annotations.jsonl (pictures beside it), or a
        /// benchmark's JSON file in the release's layout.
        #[arg(long, visible_alias = "annotations", value_name = "FILE")]
        data: PathBuf,
        /// A benchmark's pictures (default: the file's dataset.image_root, beside the file).
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// Describe at most this many regions (the first ones).
        #[arg(long)]
        limit: Option<usize>,
        /// Beams (default: 5 for shapes, 2 for a benchmark as the release evaluates).
        #[arg(long)]
        beams: Option<usize>,
        /// A benchmark's predictions, one JSON line per region, written as they are made; a run
        /// with the same file goes on where the last one stopped.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// meteor-1.5.jar (default: DYNREFER_METEOR_JAR, or the one pycocoevalcap ships).
        #[arg(long, value_name = "FILE")]
        meteor_jar: Option<PathBuf>,
        /// Also list every region's answer (shapes).
        #[arg(long)]
        details: bool,
    },
    /// Write a bundle's model again with another weight storage (e.g. an f32 bundle as q8).
    Quantize {
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        #[arg(long, value_parser = parse_quant)]
        quant: Quant,
        #[arg(long)]
        out: PathBuf,
        /// Largest shard in MB (a larger tensor gets a shard of its own), for hosts that limit
        /// file sizes
        #[arg(long, value_name = "MB", default_value_t = 64.0)]
        shard_mb: f64,
    },
}

#[derive(Subcommand)]
enum BenchStage {
    /// Decode the photo and build its views, `--iters` times.
    Views {
        #[command(flatten)]
        input: ViewInput,
        /// Timed repetitions (after one warm-up run).
        #[arg(long, default_value_t = 15)]
        iters: usize,
    },
    /// Load a bundle and time each stage of `describe` (median of `--iters`, after a warm-up run;
    /// `--iters 0`: one run without warm-up, for slow devices).
    Model {
        #[command(flatten)]
        run: DescribeArgs,
        #[arg(long, default_value_t = 5)]
        iters: usize,
    },
}

#[derive(Args)]
struct ConvertArgs {
    /// LAVIS BLIP-2 checkpoint (blip2_pretrained_flant5xl.pth).
    #[arg(long)]
    blip2: PathBuf,
    /// DynRefer checkpoint (vg1.2_5e.pth, refcocog_ft.pth); its Q-Former and t5_proj win.
    #[arg(long)]
    dynrefer: PathBuf,
    /// LAVIS' eva_vit_g.pth, when the BLIP-2 file holds no visual_encoder.
    #[arg(long)]
    vit: Option<PathBuf>,
    /// Hugging Face flan-t5-xl folder (config.json, tokenizer.json, safetensors).
    #[arg(long)]
    t5: PathBuf,
    /// EVA-CLIP checkpoint (eva_clip_psz14.pt), for the text tower.
    #[arg(long)]
    clip_text: PathBuf,
    /// CLIP BPE merges (bpe_simple_vocab_16e6.txt.gz).
    #[arg(long)]
    bpe: PathBuf,
    /// RAM tag list (ram_tag_list.txt).
    #[arg(long)]
    tags: PathBuf,
    /// OVAD attributes (ovad2000.json).
    #[arg(long)]
    attributes: PathBuf,
    /// Class names, a JSON list (coco.json).
    #[arg(long)]
    classes: PathBuf,
    /// What shapes cannot tell (heads, views, image size...); defaults are the official model's.
    #[arg(long)]
    arch: Option<PathBuf>,
    /// Weight storage: f32, f16, q8 or q4 (linear and embedding weights block-quantized).
    #[arg(long, default_value = "f32", value_parser = parse_quant)]
    quant: Quant,
    /// A name for the page and `describe`.
    #[arg(long, default_value = "DynRefer-FlanT5")]
    name: String,
    /// Refuse tensors the model does not use (by default they are skipped with a warning, as the
    /// official loader skips them).
    #[arg(long)]
    strict: bool,
    /// Keep the EVA-CLIP text tower in the bundle, so that `describe --classes` and the page can
    /// score class names of a person's own (the bundle's vocabularies need no tower).
    #[arg(long)]
    with_text_tower: bool,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct TrainArgs {
    /// annotations.jsonl (from `dynrefer scenes`), with ram_tag_list.txt, ovad2000.json and coco.json beside it.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The bundle to write.
    #[arg(long)]
    out: PathBuf,
    /// Where checkpoints go, and are resumed from (default: OUT.checkpoints).
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// Start from this bundle instead of from scratch.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    #[arg(long, default_value_t = 6000)]
    steps: usize,
    /// End this run after this many steps; a later run goes on from the checkpoint.
    #[arg(long)]
    stop_after: Option<usize>,
    /// Regions per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 4e-4)]
    lr: f64,
    /// Steps of linear warm-up before the cosine schedule.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    #[arg(long, default_value_t = 0.05)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Weight storage of the bundle written.
    #[arg(long, default_value = "f32", value_parser = parse_quant)]
    quant: Quant,
    #[arg(long, default_value = "DynRefer-shapes (trained on generated scenes)")]
    name: String,
    /// The bundle's tag threshold.
    #[arg(long, default_value_t = 0.5)]
    tag_threshold: f32,
    /// The chance of leaving each true tag out of the caption's control words while training.
    #[arg(long, default_value_t = 0.3)]
    tag_drop: f64,
    /// stochastic: each step sees the region and context views drawn at random from the ten
    /// candidates (DynRefer's training); fixed: the views describe picks, every step.
    #[arg(long, default_value = "stochastic")]
    views: TrainViews,
    /// Resume the checkpoint even where it was saved with other values of --seed, --lr, --steps,
    /// --warmup, --batch, --weight-decay, --tag-drop, --views or other --data (refused otherwise, since the
    /// result would then differ from an uninterrupted run's); the new values apply from there on.
    #[arg(long)]
    allow_changed_flags: bool,
    /// cpu (burn's CPU backend) or gpu (burn's wgpu backend; build with --features wgpu).
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct DescribeArgs {
    /// A bundle folder written by `dynrefer convert`.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The photo (PNG, JPEG, WebP, GIF or BMP); turned upright by its EXIF orientation.
    #[arg(long, value_name = "IMG")]
    image: PathBuf,
    /// The region in image pixels: X1,Y1,X2,Y2 (fractions allowed).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", allow_hyphen_values = true)]
    region: String,
    /// Number of views (default: the model's).
    #[arg(long)]
    num_views: Option<usize>,
    /// Beam width; 1 = greedy.
    #[arg(long, default_value_t = 5)]
    beams: usize,
    #[arg(long, default_value_t = 30)]
    max_new_tokens: usize,
    /// Tags scoring above this are listed and steer the caption (default: the model's).
    #[arg(long)]
    tag_threshold: Option<f32>,
    /// Words that steer the caption, e.g. "red hat,|dog".
    #[arg(long, allow_hyphen_values = true)]
    controls: Option<String>,
    /// Class names to score instead of the bundle's, comma-separated, e.g. "cup,bottle,vase"
    /// (needs a bundle converted with --with-text-tower).
    #[arg(long, allow_hyphen_values = true)]
    classes: Option<String>,
    /// Where to run: cpu (burn's CPU backend) or gpu (burn's wgpu backend; build with --features wgpu).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Refuse photos larger than this, before decoding them.
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS as f64 / 1e6, value_name = "MP")]
    max_megapixels: f64,
}

impl DescribeArgs {
    fn options(&self) -> Result<DescribeOptions, Failure> {
        if self.beams == 0 {
            return Err(Failure("--beams must be at least 1".into()));
        }
        if self.num_views == Some(0) {
            return Err(Failure("--num-views must be at least 1".into()));
        }
        Ok(DescribeOptions {
            num_views: self.num_views,
            beams: self.beams,
            max_new_tokens: self.max_new_tokens,
            tag_threshold: self.tag_threshold,
            controls: self.controls.clone(),
            ..DescribeOptions::default()
        })
    }

    /// `--classes`: comma-separated names, each trimmed; an empty one is a mistake, not a class.
    fn class_names(&self) -> Result<Option<Vec<String>>, Failure> {
        let Some(list) = &self.classes else { return Ok(None) };
        let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
        if let Some(i) = names.iter().position(String::is_empty) {
            return Err(Failure(format!("--classes {list:?}: class {} of {} is empty", i + 1, names.len())));
        }
        Ok(Some(names))
    }

    fn load(&self) -> Result<(Describer, RgbImage, RegionBox, DescribeOptions), Failure> {
        let mut options = self.options()?;
        let class_names = self.class_names()?;
        let region: RegionBox = self.region.parse().map_err(|e| Failure(format!("--box {}: {e}", self.region)))?;
        let bytes = std::fs::read(&self.image)
            .map_err(|e| Failure(format!("{}: cannot read the file: {e}", self.image.display())))?;
        let photo = decode_photo(&bytes, (self.max_megapixels * 1e6) as u64)
            .map_err(|e| Failure(format!("{}: {e}", self.image.display())))?;
        let tty = std::io::stderr().is_terminal();
        let describer = Describer::open_dir(&self.model, &device(&self.device)?, |p| {
            if tty {
                let (done, total) = (p.done as f64 / 1e6, p.total as f64 / 1e6);
                eprint!("\rloading {}: {done:.1} / {total:.1} MB {:<30}", self.model.display(), p.file);
                if p.done == p.total {
                    eprintln!();
                }
            }
        })
        .map_err(|e| Failure(e.to_string()))?;
        if let Some(names) = class_names {
            let set = describer.class_set(&names).map_err(|e| Failure(format!("--classes: {e}")))?;
            options.classes = Some(set);
        }
        Ok((describer, photo, region, options))
    }
}

#[derive(Args)]
struct ViewInput {
    /// The photo (PNG, JPEG, WebP, GIF or BMP); turned upright by its EXIF orientation.
    #[arg(long, value_name = "IMG")]
    image: PathBuf,
    /// The region in image pixels: X1,Y1,X2,Y2 (fractions allowed).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", allow_hyphen_values = true)]
    region: String,
    /// Number of views, the region itself included.
    #[arg(long, default_value_t = 3)]
    num_views: usize,
    /// Side of each view in pixels.
    #[arg(long, default_value_t = 224)]
    size: u32,
    /// Refuse photos larger than this, before decoding them.
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS as f64 / 1e6, value_name = "MP")]
    max_megapixels: f64,
}

/// A failure, already worded for the person who ran the command.
struct Failure(String);

/// `--device`: cpu (burn's CPU backend) or gpu (burn's wgpu backend, when built with it).
fn device(name: &str) -> Result<Device, Failure> {
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "gpu" => Device::wgpu_options().init().map_err(|e| Failure(format!("--device gpu: no wgpu adapter: {e}"))),
        #[cfg(not(feature = "wgpu"))]
        "gpu" => Err(Failure("--device gpu: this build has no GPU backend (build with --features wgpu)".into())),
        other => Err(Failure(format!("--device {other}: expected cpu or gpu"))),
    }
}

impl ViewInput {
    fn options(&self) -> ViewOptions {
        ViewOptions { num_views: self.num_views, size: self.size }
    }

    fn region(&self) -> Result<RegionBox, Failure> {
        self.region.parse().map_err(|e| Failure(format!("--box {}: {e}", self.region)))
    }

    fn read(&self) -> Result<Vec<u8>, Failure> {
        std::fs::read(&self.image).map_err(|e| Failure(format!("{}: cannot read the file: {e}", self.image.display())))
    }

    fn decode(&self, bytes: &[u8]) -> Result<RgbImage, Failure> {
        let max_pixels = (self.max_megapixels * 1e6) as u64;
        decode_photo(bytes, max_pixels).map_err(|e| Failure(format!("{}: {e}", self.image.display())))
    }

    fn views(&self, photo: &RgbImage, region: RegionBox) -> Result<Views, Failure> {
        build_views(photo, region, &self.options()).map_err(|e| Failure(format!("{}: {e}", self.image.display())))
    }
}

fn write_dump(path: &Path, views: &Views) -> Result<(), Failure> {
    let (n, s) = (views.views.len(), views.size as usize);
    let bytes = |v: Vec<f32>| v.into_iter().flat_map(f32::to_le_bytes).collect::<Vec<u8>>();
    let (pixels, boxes) = (bytes(views.pixels()), bytes(views.region_boxes()));
    let tensors = [
        ("pixels", TensorView::new(Dtype::F32, vec![n, 3, s, s], &pixels)),
        ("region_boxes", TensorView::new(Dtype::F32, vec![n, 4], &boxes)),
    ];
    let tensors: Vec<(&str, TensorView)> =
        tensors.into_iter().map(|(k, v)| (k, v.expect("shapes match the data"))).collect();
    safetensors::serialize_to_file(tensors, None::<HashMap<String, String>>, path)
        .map_err(|e| Failure(format!("{}: cannot write the dump: {e}", path.display())))
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn bench_views(input: &ViewInput, iters: usize) -> Result<serde_json::Value, Failure> {
    let region = input.region()?;
    let bytes = input.read()?;
    let photo = input.decode(&bytes)?;
    input.views(&photo, region)?;
    // Separate loops, so that decoding a large photo does not flush the caches the views use.
    let iters = iters.max(1);
    let mut decode = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(input.decode(&bytes)?);
        decode.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut views = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let v = input.views(&photo, region)?;
        std::hint::black_box(v.pixels());
        views.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(serde_json::json!({
        "stage": "views",
        "image_size": [photo.width(), photo.height()],
        "num_views": input.num_views,
        "size": input.size,
        "iters": views.len(),
        "median_ms": { "decode": median_ms(decode), "views": median_ms(views) },
        "machine": machine(),
    }))
}

fn inspect(dir: &Path) -> Result<serde_json::Value, Failure> {
    let bundle = dir.display().to_string();
    let read = |file: &str| std::fs::read(dir.join(file)).map_err(|e| format!("{bundle}: {file}: cannot read: {e}"));
    let manifest = Manifest::parse(&bundle, &read(MANIFEST).map_err(Failure)?).map_err(|e| Failure(e.to_string()))?;
    let files: Vec<&FileEntry> = manifest.shards.iter().chain([&manifest.t5_tokenizer, &manifest.clip_bpe]).collect();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|entry| {
            let checked = read(&entry.file)
                .and_then(|b| Manifest::verify(&bundle, entry, b).map(drop).map_err(|e| e.to_string()));
            checked.err()
        })
        .collect();
    if !failures.is_empty() {
        return Err(Failure(format!(
            "{} of {} files fail their check: {}",
            failures.len(),
            files.len(),
            failures.join("; ")
        )));
    }
    let mut dtypes = std::collections::BTreeMap::<&str, [u64; 3]>::new();
    for entry in manifest.tensors.values() {
        let numel = entry.shape.iter().map(|&d| d as u64).product::<u64>();
        let row = dtypes.entry(entry.dtype.name()).or_default();
        row[0] += 1;
        row[1] += numel;
        row[2] += manifest.quant.stored_bytes(&entry.shape, entry.is_quantized());
    }
    let parameters: u64 = dtypes.values().map(|r| r[1]).sum();
    let weight_bytes: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    Ok(serde_json::json!({
        "bundle": bundle,
        "name": manifest.name,
        "format": format!("{} v{}", manifest.format, manifest.version),
        "quant": manifest.quant.name(),
        "parameters": parameters,
        "weight_bytes": weight_bytes,
        "bytes_per_parameter": weight_bytes as f64 / parameters.max(1) as f64,
        "dtypes": dtypes
            .iter()
            .map(|(d, [tensors, params, bytes])| (d.to_string(), serde_json::json!({"tensors": tensors, "parameters": params, "bytes": bytes})))
            .collect::<serde_json::Map<_, _>>(),
        "shards": manifest.shards.iter().map(|s| serde_json::json!({"file": s.file, "bytes": s.bytes, "sha256": s.sha256})).collect::<Vec<_>>(),
        "verified": files.len(),
    }))
}

fn parse_quant(text: &str) -> Result<Quant, String> {
    Quant::parse(text).ok_or_else(|| format!("{text:?}: expected f32, f16, q8 or q4"))
}

fn run_convert(args: &ConvertArgs) -> Result<(), Failure> {
    let inputs = Inputs {
        blip2: args.blip2.clone(),
        dynrefer: args.dynrefer.clone(),
        vit: args.vit.clone(),
        t5: args.t5.clone(),
        clip_text: args.clip_text.clone(),
        bpe: args.bpe.clone(),
        tags: args.tags.clone(),
        attributes: args.attributes.clone(),
        classes: args.classes.clone(),
        arch: args.arch.clone(),
        quant: args.quant,
        strict: args.strict,
        with_text_tower: args.with_text_tower,
    };
    let plan = plan(&inputs).map_err(|e| Failure(e.to_string()))?;
    if let Some((file, key)) = plan.ignored.first() {
        let more = match plan.ignored.len() - 1 {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        eprintln!(
            "dynrefer: warning: skipped {} tensor(s) no part of DynRefer reads, as the official loader does \
             (--strict refuses them): {file}: {key}{more}",
            plan.ignored.len()
        );
    }
    let manifest = plan.write(&args.out, &args.name).map_err(|e| Failure(e.to_string()))?;
    let summary = serde_json::json!({
        "out": args.out,
        "shards": manifest.shards.len(),
        "tensors": manifest.tensors.len(),
        "bytes": manifest.total_bytes(),
    });
    println!("{summary}");
    Ok(())
}

fn describe_error(args: &DescribeArgs, e: impl std::fmt::Display) -> Failure {
    Failure(format!("{}: {e}", args.image.display()))
}

fn bench_model(args: &DescribeArgs, iters: usize) -> Result<serde_json::Value, Failure> {
    let (describer, photo, region, options) = args.load()?;
    let mut stages: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut tokens = Vec::new();
    let mut caption_ids = Vec::new();
    let start = Instant::now();
    // a warm-up run first, unless asked for none (`--iters 0`: one timed run, compilation included)
    let warm_up = usize::from(iters > 0);
    for i in 0..iters.max(1) + warm_up {
        let mut clock = || start.elapsed().as_secs_f64() * 1e3;
        let (description, timings) =
            describer.describe_timed(&photo, region, &options, &mut clock).map_err(|e| describe_error(args, e))?;
        if i < warm_up {
            continue;
        }
        tokens.push(description.caption_ids.len());
        caption_ids = description.caption_ids;
        for (stage, ms) in timings {
            stages.entry(stage).or_default().push(ms);
        }
    }
    let mut median: serde_json::Map<String, serde_json::Value> =
        stages.into_iter().map(|(s, v)| (s.to_string(), median_ms(v).into())).collect();
    let tokens = tokens.iter().sum::<usize>() as f64 / tokens.len() as f64;
    let ms = |k: &str| median.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let per_token = (ms("first_token") + ms("decoder")) / tokens.max(1.0);
    median.insert("per_token".into(), per_token.into());
    let config = &describer.manifest.config;
    Ok(serde_json::json!({
        "stage": "model",
        "model": describer.manifest.name,
        "config": {
            "vit": [config.visual.vit.width, config.visual.vit.depth],
            "qformer": [config.qformer.width, config.qformer.layers],
            "t5": [config.t5.d_model, config.t5.num_layers, config.t5.num_decoder_layers],
            "views": options.num_views.unwrap_or(config.num_views),
            "image_size": config.image_size,
            "beams": options.beams,
        },
        "device": args.device,
        "iters": iters,
        "mean_tokens": tokens,
        "caption_ids": caption_ids,
        "median_ms": median,
        "machine": machine(),
    }))
}

/// `bench model`'s stages in pipeline order, with the names its table shows.
const MODEL_STAGES: &[(&str, &str)] = &[
    ("views", "views"),
    ("vit", "EVA ViT + ln_vision"),
    ("align_fuse", "RoIAlign + alignment + fusion"),
    ("qformer", "Q-Former"),
    ("heads", "tag / attribute / class heads"),
    ("t5_encoder", "T5 encoder"),
    ("per_token", "per decoded token"),
];

/// A benchmark as a table for people (the JSON on stdout is for tools): `stages` in order, with
/// the names the table shows.
fn stage_table(report: &serde_json::Value, stages: &[(&str, &str)]) -> String {
    let machine = &report["machine"];
    let mut table = format!(
        "{} on {} ({} threads), peak memory {:.2} GB\n| stage | median ms |\n|---|---:|\n",
        report["device"].as_str().unwrap_or("cpu"),
        machine["cpu"].as_str().unwrap_or("an unknown CPU"),
        machine["threads"],
        machine["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1e9,
    );
    for (key, name) in stages {
        if let Some(ms) = report["median_ms"][key].as_f64() {
            table += &format!("| {name} | {ms:.1} |\n");
        }
    }
    table
}

/// What the benchmark ran on: the CPU's name, its hardware threads (the CPU kernels use them all), and the
/// resident memory of this process, at its peak and now (Linux only; 0 elsewhere).
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    serde_json::json!({
        "cpu": cpu,
        "threads": std::thread::available_parallelism().map_or(1, usize::from),
        "peak_rss_bytes": kb("VmHWM:") * 1024,
        "rss_bytes": kb("VmRSS:") * 1024,
    })
}

fn run_train(args: &TrainArgs) -> Result<(), Failure> {
    let mut checkpoints = args.out.clone().into_os_string();
    checkpoints.push(".checkpoints");
    let opts = TrainOptions {
        data: args.data.clone(),
        out: args.out.clone(),
        checkpoints: args.checkpoints.clone().unwrap_or_else(|| checkpoints.into()),
        from: args.from.clone(),
        steps: args.steps,
        stop_after: args.stop_after,
        batch: args.batch.max(1),
        lr: args.lr,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every.max(1),
        quant: args.quant,
        name: args.name.clone(),
        tag_threshold: args.tag_threshold,
        tag_drop: args.tag_drop,
        views: args.views,
        allow_changed_flags: args.allow_changed_flags,
    };
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let trained = dynrefer::train::train(&opts, &device(&args.device)?, |event| match event {
        Event::Examples(n) => eprintln!("train: {n} annotated regions, views built"),
        Event::Resumed(step) => eprintln!("train: resumed from the checkpoint at step {step}"),
        Event::Spread { before, after } => {
            eprintln!("train: vocabulary embeddings spread apart: overlap {before:.3} -> {after:.3}")
        }
        Event::Checkpoint(step) if !tty => eprintln!("train: checkpoint at step {step}"),
        Event::Checkpoint(_) => {}
        Event::Step(r) => {
            let [caption, tags, attributes, class] = r.loss;
            let left = (r.steps - r.step) as f64 * args.batch as f64 / r.rate.max(1e-9);
            let line = format!(
                "step {}/{} loss {:.3} (caption {caption:.3} tags {tags:.3} attributes {attributes:.3} class {class:.3}) \
                 lr {:.2e} {:.1} regions/s, {:.0} min left",
                r.step,
                r.steps,
                caption + tags + attributes + class,
                r.lr,
                r.rate,
                left / 60.0
            );
            if tty {
                eprint!("\r{line:<150.150}");
                if r.step == r.steps {
                    eprintln!();
                }
            } else if r.step % 50 == 0 || r.step == r.steps {
                eprintln!("train: {line}");
            }
        }
    })
    .map_err(|e| Failure(e.to_string()))?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let summary = match trained {
        Trained::Bundle(manifest) => serde_json::json!({
            "out": args.out, "steps": args.steps, "minutes": minutes, "bytes": manifest.total_bytes(),
        }),
        Trained::Paused { step } => serde_json::json!({
            "checkpoints": opts.checkpoints, "step": step, "steps": args.steps, "minutes": minutes,
        }),
    };
    println!("{summary}");
    Ok(())
}

fn run_eval(
    model: &Path,
    data: &Path,
    limit: Option<usize>,
    beams: usize,
    details: bool,
) -> Result<serde_json::Value, Failure> {
    let describer = Describer::open_dir(model, &Device::flex(), |_| {}).map_err(|e| Failure(e.to_string()))?;
    let mut annotations = dynrefer::scenes::read_annotations(data).map_err(Failure)?;
    annotations.truncate(limit.unwrap_or(usize::MAX));
    let options = DescribeOptions { beams: beams.max(1), ..DescribeOptions::default() };
    let dir = data.parent().unwrap_or(Path::new("."));
    let tty = std::io::stderr().is_terminal();
    let mut report = dynrefer::eval::shapes::evaluate(&describer, &annotations, dir, &options, |done, total| {
        if tty {
            eprint!("\reval {done}/{total}");
        }
    })
    .map_err(Failure)?;
    if tty {
        eprintln!();
    }
    if !details {
        report.answers.clear();
    }
    Ok(serde_json::to_value(report).expect("a report serialises"))
}

/// What `eval` scores.
#[derive(Clone, Copy, Debug)]
enum EvalTask {
    Shapes,
    Paper(Task),
}

impl std::str::FromStr for EvalTask {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "shapes" {
            return Ok(EvalTask::Shapes);
        }
        s.parse()
            .map(EvalTask::Paper)
            .map_err(|_| format!("unknown task {s:?}: shapes, refcocog, vg, densecap, ovad or coco"))
    }
}

#[allow(clippy::too_many_arguments)]
fn run_benchmark(
    task: Task,
    model: &Path,
    data: &Path,
    images: Option<PathBuf>,
    limit: Option<usize>,
    beams: Option<usize>,
    out: Option<&Path>,
    meteor_jar: Option<PathBuf>,
) -> Result<official::Scores, Failure> {
    let failure = |e: official::EvalError| Failure(e.to_string());
    let dataset = official::read_dataset(data).map_err(failure)?;
    dataset.check_for(task).map_err(|e| Failure(format!("{}: {e}", data.display())))?;
    let images = images.unwrap_or_else(|| {
        let beside = data.parent().unwrap_or(Path::new("."));
        dataset.image_root.as_ref().map_or(beside.to_path_buf(), |root| beside.join(root))
    });
    if !images.is_dir() {
        return Err(Failure(format!("{}: no such folder of pictures (give it with --images)", images.display())));
    }
    // The jar is looked for before the long part, so that a missing one is said at once.
    let jar = match task {
        Task::RefCocog | Task::Vg | Task::DenseCap => {
            Some(meteor_jar.map_or_else(meteor::find_jar, Ok).map_err(|e| Failure(e.to_string()))?)
        }
        Task::Ovad | Task::Coco => None,
    };
    let regions = &dataset.regions[..dataset.regions.len().min(limit.unwrap_or(usize::MAX))];
    let describer = Describer::open_dir(model, &Device::flex(), |_| {}).map_err(|e| Failure(e.to_string()))?;
    let mut options = task.options();
    options.beams = beams.unwrap_or(options.beams).max(1);
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let predictions = official::predict(&describer, &dataset, regions, &images, task, &options, out, |done, total| {
        if tty {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r{} {done}/{total} regions, {rate:.2}/s", task.name());
        }
    })
    .map_err(failure)?;
    if tty {
        eprintln!();
    }
    official::score(task, &dataset, regions, &predictions, || jar.clone().ok_or(meteor::MeteorError::NoJar))
        .map_err(failure)
}

/// A bundle's model written again with another weight storage.
fn quantize(model: &Path, quant: Quant, out: &Path, max_shard_bytes: usize) -> Result<Manifest, Failure> {
    let describer = Describer::open_dir(model, &Device::flex(), |_| {}).map_err(|e| Failure(e.to_string()))?;
    let manifest = describer.manifest.clone();
    let read =
        |file: &str| std::fs::read(model.join(file)).map_err(|e| Failure(format!("{}: {file}: {e}", model.display())));
    let info = BundleInfo {
        name: manifest.name.clone(),
        config: manifest.config.clone(),
        tag_threshold: manifest.tag_threshold,
        vocabularies: manifest.vocabularies.clone(),
        tokenizer_json: read(&manifest.t5_tokenizer.file)?,
        clip_bpe: read(&manifest.clip_bpe.file)?,
    };
    write_bundle(&describer.into_model(), quant, info, out, max_shard_bytes).map_err(|e| Failure(e.to_string()))
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Views { input, dump } => {
            let region = input.region()?;
            let views = input.views(&input.decode(&input.read()?)?, region)?;
            if let Some(path) = dump {
                write_dump(&path, &views)?;
            }
            println!("{}", serde_json::to_string(&views).expect("views serialise"));
        }
        Command::Convert(args) => run_convert(&args)?,
        Command::Describe { run } => {
            let (describer, photo, region, options) = run.load()?;
            let description = describer.describe(&photo, region, &options).map_err(|e| describe_error(&run, e))?;
            println!("{}", serde_json::to_string(&description).expect("a description serialises"));
        }
        Command::Inspect { bundle } => println!("{}", inspect(&bundle)?),
        Command::Bench { stage: BenchStage::Views { input, iters } } => {
            let report = bench_views(&input, iters)?;
            eprint!("{}", stage_table(&report, &[("decode", "decoding the photo"), ("views", "building the views")]));
            println!("{report}");
        }
        Command::Bench { stage: BenchStage::Model { run, iters } } => {
            let report = bench_model(&run, iters)?;
            eprint!("{}", stage_table(&report, MODEL_STAGES));
            println!("{report}");
        }
        Command::Scenes { count, seed, out } => {
            let tty = std::io::stderr().is_terminal();
            let objects = dynrefer::scenes::write_scenes(count, seed, &out, |done| {
                if tty {
                    eprint!("\rscenes {done}/{count}");
                }
            })
            .map_err(|e| Failure(e.to_string()))?;
            if tty {
                eprintln!();
            }
            println!("{}", serde_json::json!({ "out": out, "scenes": count, "regions": objects }));
        }
        Command::Train(args) => run_train(&args)?,
        Command::Eval { model, task: EvalTask::Shapes, data, limit, beams, details, .. } => {
            println!("{}", run_eval(&model, &data, limit, beams.unwrap_or(5), details)?);
        }
        Command::Eval { model, task: EvalTask::Paper(task), data, images, limit, beams, out, meteor_jar, .. } => {
            let scores = run_benchmark(task, &model, &data, images, limit, beams, out.as_deref(), meteor_jar)?;
            println!("{}", serde_json::to_string(&scores).expect("scores serialise"));
        }
        Command::Quantize { model, quant, out, shard_mb } => {
            if !(shard_mb > 0.0 && shard_mb <= 2048.0) {
                return Err(Failure(format!("--shard-mb {shard_mb}: give a size between 0 and 2048 MB")));
            }
            let manifest = quantize(&model, quant, &out, (shard_mb * 1024.0 * 1024.0) as usize)?;
            let summary = serde_json::json!({"out": out, "quant": quant.name(), "bytes": manifest.total_bytes()});
            println!("{summary}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // Usage errors too are one line, like every other error of this tool.
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!("dynrefer: {} (see dynrefer --help)", first.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("dynrefer: {message}");
            ExitCode::FAILURE
        }
    }
}
