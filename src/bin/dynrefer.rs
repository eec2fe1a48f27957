//! `dynrefer`: the native command line (views, bench). Its JSON output is a contract that tools
//! and checks rely on (DESIGN.md §4): results on stdout, one error line on stderr, non-zero exit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use image::RgbImage;
use safetensors::{Dtype, tensor::TensorView};

use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};
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
    /// Time a stage and print per-stage median milliseconds as JSON.
    Bench {
        #[command(subcommand)]
        stage: BenchStage,
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
    }))
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
        Command::Bench { stage: BenchStage::Views { input, iters } } => {
            println!("{}", bench_views(&input, iters)?);
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
