//! Test photos made here, so that CI needs neither Python nor downloaded images.
//!
//! Each photo is a small procedural scene: a lit gradient "sky", soft value-noise texture,
//! overlapping ellipses and boxes of different colours, stripes and per-pixel grain, which gives
//! the perceptual hash real structure at every scale. The parity expectations
//! (`tests/data/views_expected.json`) were computed by the reference `views.py` on PNGs written by
//! [`write_photos`]; each photo's SHA-256 is stored there so that a change here is caught.

#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod eval_reference;
pub mod hostile;
pub mod pth;
#[cfg(feature = "cli")]
pub mod real_widths;

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbImage};
use sha2::{Digest, Sha256};

/// A photo of the parity set: its name, and how it is stored as a PNG.
pub struct Photo {
    pub name: &'static str,
    pub png: Vec<u8>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

fn hash2(seed: u64, x: i64, y: i64) -> f32 {
    let mut r = Rng(seed ^ (x as u64).wrapping_mul(0x9E37_79B9) ^ (y as u64).wrapping_mul(0x85EB_CA6B) << 1);
    r.unit()
}

/// Bilinear value noise with cells of `cell` pixels, in 0..1.
fn value_noise(seed: u64, x: u32, y: u32, cell: u32) -> f32 {
    let (gx, gy) = ((x / cell) as i64, (y / cell) as i64);
    let (fx, fy) = ((x % cell) as f32 / cell as f32, (y % cell) as f32 / cell as f32);
    let v = |i, j| hash2(seed, gx + i, gy + j);
    let top = v(0, 0) * (1.0 - fx) + v(1, 0) * fx;
    let bottom = v(0, 1) * (1.0 - fx) + v(1, 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

enum Shape {
    Ellipse { cx: f32, cy: f32, rx: f32, ry: f32 },
    Rect { x0: f32, y0: f32, x1: f32, y1: f32 },
}

/// A procedural scene of `width` x `height` pixels.
pub fn scene(seed: u64, width: u32, height: u32) -> RgbImage {
    let mut rng = Rng(seed);
    let (w, h) = (width as f32, height as f32);
    let sky = [rng.range(40.0, 120.0), rng.range(80.0, 160.0), rng.range(150.0, 230.0)];
    let ground = [rng.range(60.0, 140.0), rng.range(50.0, 120.0), rng.range(20.0, 80.0)];
    let horizon = rng.range(0.35, 0.7) * h;
    let shapes: Vec<(Shape, [f32; 3])> = (0..rng.range(5.0, 11.0) as usize)
        .map(|i| {
            let colour = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
            let (cx, cy) = (rng.range(0.0, w), rng.range(0.0, h));
            let (sx, sy) = (rng.range(0.03, 0.3) * w, rng.range(0.03, 0.3) * h);
            let shape = if i % 2 == 0 {
                Shape::Ellipse { cx, cy, rx: sx, ry: sy }
            } else {
                Shape::Rect { x0: cx - sx, y0: cy - sy, x1: cx + sx, y1: cy + sy }
            };
            (shape, colour)
        })
        .collect();
    let stripe_period = rng.range(6.0, 20.0);
    let noise_seed = rng.next();
    let mut grain = Rng(rng.next());
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let t = value_noise(noise_seed, x, y, 23) * 0.7 + value_noise(noise_seed ^ 1, x, y, 5) * 0.3;
        let mut px = if fy < horizon {
            let k = 0.6 + 0.4 * fy / horizon;
            sky.map(|c| c * k + 30.0 * t)
        } else {
            let stripes = if ((fx + fy * 0.5) / stripe_period) as i64 % 2 == 0 { 18.0 } else { -18.0 };
            ground.map(|c| c + 90.0 * (t - 0.5) + stripes)
        };
        for (shape, colour) in &shapes {
            let inside = match *shape {
                Shape::Ellipse { cx, cy, rx, ry } => ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0,
                Shape::Rect { x0, y0, x1, y1 } => fx >= x0 && fx < x1 && fy >= y0 && fy < y1,
            };
            if inside {
                let shade = 0.75 + 0.5 * t;
                px = colour.map(|c| c * shade);
            }
        }
        let g = grain.range(-6.0, 6.0);
        image::Rgb(px.map(|c| (c + g).round().clamp(0.0, 255.0) as u8))
    })
}

fn encode(img: DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).expect("PNG encodes");
    out.into_inner()
}

/// The parity photos: RGB scenes of several shapes and sizes, a gray one and one with alpha.
pub fn photos() -> Vec<Photo> {
    let rgb = |name, seed, w, h| Photo { name, png: encode(DynamicImage::ImageRgb8(scene(seed, w, h))) };
    let mut out = vec![
        rgb("field", 11, 640, 480),
        rgb("tower", 23, 333, 517),
        rgb("panorama", 37, 1024, 200),
        rgb("thumb", 41, 96, 64),
        rgb("square", 53, 224, 224),
    ];
    let gray = DynamicImage::ImageRgb8(scene(67, 300, 300)).into_luma8();
    out.push(Photo { name: "gray", png: encode(DynamicImage::ImageLuma8(gray)) });
    let mut rgba = DynamicImage::ImageRgb8(scene(79, 200, 150)).into_rgba8();
    for (x, y, p) in rgba.enumerate_pixels_mut() {
        p.0[3] = ((x * 7 + y * 3) % 256) as u8;
    }
    out.push(Photo { name: "alpha", png: encode(DynamicImage::ImageRgba8(rgba)) });
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the parity photos as `DIR/<name>.png` (used to regenerate the expectations).
pub fn write_photos(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for p in photos() {
        std::fs::write(dir.join(format!("{}.png", p.name)), &p.png).unwrap();
    }
}

/// An empty scratch folder for one test, unique to this process.
pub fn scratch_dir(test: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dynrefer-{test}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file of the tiny official-format DynRefer in tests/data/e2e.
pub fn e2e_file(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/e2e").join(file)
}

/// `dynrefer convert` arguments for a folder of official-format files named as the fixtures are
/// (with `eva_vit_g.pth` where the folder has the ViT apart).
pub fn convert_args(src: &Path, quant: &str, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["convert".into()];
    for (flag, file) in [
        ("--blip2", "blip2.pth"),
        ("--dynrefer", "dynrefer.pth"),
        ("--t5", "t5"),
        ("--clip-text", "clip_text.pt"),
        ("--bpe", "bpe_simple_vocab_16e6.txt.gz"),
        ("--tags", "ram_tag_list.txt"),
        ("--attributes", "ovad2000.json"),
        ("--classes", "coco.json"),
        ("--arch", "arch.json"),
    ] {
        args.extend([flag.to_string(), src.join(file).display().to_string()]);
    }
    if src.join("eva_vit_g.pth").exists() {
        args.extend(["--vit".to_string(), src.join("eva_vit_g.pth").display().to_string()]);
    }
    args.extend(["--quant".into(), quant.into(), "--out".into(), out.display().to_string()]);
    args
}

/// A CLI run that must fail the CLI's way: non-zero exit, nothing on stdout, one line on stderr
/// naming every needle.
pub fn assert_fails(out: &std::process::Output, what: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} should fail");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{stderr:?} should name {n:?}");
    }
}

/// The real DynRefer-FlanT5-XL's sizes (4.1 B parameters), for models built from their shapes only.
#[cfg(feature = "model")]
pub fn real_config() -> dynrefer::model::dynrefer::DynReferConfig {
    use dynrefer::model::{clip_text, dynrefer::DynReferConfig, heads, qformer, t5, visual, vit};
    DynReferConfig::new(
        visual::VisualConfig::new(vit::VitConfig::new()),
        qformer::QformerConfig::new(),
        heads::HeadsConfig::new(),
        clip_text::ClipTextConfig::new(),
        t5::T5Config::new(),
        [4585, 536, 80],
    )
}
