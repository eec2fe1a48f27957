//! DynRefer's nested views (pure Rust, no burn): around the region a person picks, ten candidate
//! boxes reach out toward the whole photo; a DCT perceptual hash scores how much each one differs
//! from the region, divided by how far it reaches, and the best are taken greedily. Every view is
//! cropped, resized like Pillow's bicubic filter and normalised for CLIP. Each step follows the
//! official processor, and was checked bit-identical against it.

mod boxes;
pub(crate) mod par;
mod phash;
mod resize;

pub use boxes::{BoxError, RegionBox};
pub use phash::{Phash, gray};

use image::RgbImage;

use boxes::{candidate_ratio, clip_trunc, interpolate, region_in_view, trunc, widen_thin};
use resize::{RgbView, resize_bicubic};

/// CLIP's per-channel normalisation, written as the official code's Python doubles.
const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// Candidate context views between the region and the whole photo.
const NUM_CANDIDATES: usize = 10;

/// Options of the view stage; the defaults are the official model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// Views to return, the region itself included.
    pub num_views: usize,
    /// Side of each square view in pixels (the ViT's input size).
    pub size: u32,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions { num_views: 3, size: 224 }
    }
}

/// Why the views of a region could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ViewsError {
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error(
        "{0} covers no whole pixel: after widening it to one pixel (as the official code does) its integer box is empty"
    )]
    NoPixels(RegionBox),
    #[error("the number of views must be at least 1, got {0}")]
    NoViews(usize),
    #[error("the view size must be between 1 and 4096 pixels, got {0}")]
    BadSize(u32),
}

/// One selected view. Serialises as the CLI's JSON: `{"box", "ratio", "region_box"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct View {
    /// Integer crop box in the photo, `[x1, y1, x2, y2]`, after clipping and truncation.
    #[serde(rename = "box")]
    pub crop_box: [i64; 4],
    /// 0 for the region itself, else how far the view reaches toward the whole photo (0.1 … 1.0).
    pub ratio: f64,
    /// The region's box inside the `size` x `size` view (may reach outside it by rounding).
    pub region_box: [f32; 4],
    /// The resized crop, `size * size` interleaved RGB8 pixels.
    #[serde(skip)]
    pub rgb: Vec<u8>,
}

/// The views of one region, view 0 being the region itself. Serialises as the CLI's JSON:
/// `{"image_size": [W, H], "views": [...]}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Views {
    pub image_size: [u32; 2],
    #[serde(skip)]
    pub size: u32,
    pub views: Vec<View>,
}

impl Views {
    /// CLIP-normalised pixels, `[views, 3, size, size]` flattened.
    pub fn pixels(&self) -> Vec<f32> {
        let n = (self.size * self.size) as usize;
        let mut out = vec![0.0f32; self.views.len() * 3 * n];
        for (view, dst) in self.views.iter().zip(out.chunks_exact_mut(3 * n)) {
            normalize_into(&view.rgb, dst);
        }
        out
    }

    /// The views at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Views {
        Views { views: indices.iter().map(|&i| self.views[i].clone()).collect(), ..*self }
    }

    /// Region boxes, `[views, 4]` flattened.
    pub fn region_boxes(&self) -> Vec<f32> {
        self.views.iter().flat_map(|v| v.region_box).collect()
    }
}

/// `(u8 * f32(1/255) - mean) / std` in `f32`, from interleaved RGB to planar `[3, n]`.
fn normalize_into(rgb: &[u8], dst: &mut [f32]) {
    let n = rgb.len() / 3;
    let inv255 = (1.0f64 / 255.0) as f32;
    for c in 0..3 {
        let (mean, std) = (CLIP_MEAN[c] as f32, CLIP_STD[c] as f32);
        for (d, px) in dst[c * n..(c + 1) * n].iter_mut().zip(rgb.chunks_exact(3)) {
            *d = (f32::from(px[c]) * inv255 - mean) / std;
        }
    }
}

/// The views chosen for `region` (view 0 = the region), as float boxes with their ratios.
fn select(img: &RgbImage, region: RegionBox, opts: &ViewOptions) -> Result<Vec<([f32; 4], f64)>, ViewsError> {
    let b = widen_thin(region, img.width(), img.height());
    let region_hash = phash::phash(img, trunc(b)).ok_or(ViewsError::NoPixels(region))?;
    let mut views = vec![(b, 0.0)];
    if opts.num_views == 1 {
        return Ok(views);
    }
    let candidates = candidates(b, img.width(), img.height());
    // Candidates contain the region, so their integer boxes are never empty.
    let mut score: Vec<f64> = par::map(&candidates, |(c, r)| {
        let hash = phash::phash(img, trunc(*c)).expect("a candidate contains the region");
        f64::from(region_hash.hamming(hash)) / r
    });
    let mut taken = Vec::new();
    for _ in 1..opts.num_views {
        // First maximum; once every score is zero this is candidate 0 again, as in the official code.
        let k = score.iter().enumerate().fold(0, |best, (i, s)| if *s > score[best] { i } else { best });
        taken.push(k);
        views.push(candidates[k]);
        for &t in &taken {
            score[t] = 0.0;
        }
    }
    Ok(views)
}

/// The ten candidate boxes around the widened region `b`, nearest first, with their ratios.
fn candidates(b: [f32; 4], width: u32, height: u32) -> Vec<([f32; 4], f64)> {
    (0..NUM_CANDIDATES)
        .map(|i| {
            let r = candidate_ratio(i, NUM_CANDIDATES);
            (interpolate(b, width, height, r), r)
        })
        .collect()
}

fn check_options(opts: &ViewOptions) -> Result<(), ViewsError> {
    if opts.num_views == 0 {
        return Err(ViewsError::NoViews(opts.num_views));
    }
    if !(1..=4096).contains(&opts.size) {
        return Err(ViewsError::BadSize(opts.size));
    }
    Ok(())
}

/// Builds the nested views of `region` in the upright RGB photo `img`.
pub fn build_views(img: &RgbImage, region: RegionBox, opts: &ViewOptions) -> Result<Views, ViewsError> {
    check_options(opts)?;
    let region = region.validate(img.width(), img.height())?;
    let chosen = select(img, region, opts)?;
    Ok(crop_views(img, &chosen, opts.size))
}

/// Every view a region may be seen through: the region, then the ten candidates from the nearest to
/// the whole photo. Training draws its context views from these at random, as the official
/// processor does on its training split (the prior's greedy choice is for inference only).
pub fn candidate_views(img: &RgbImage, region: RegionBox, size: u32) -> Result<Views, ViewsError> {
    check_options(&ViewOptions { num_views: 1, size })?;
    let (w, h) = img.dimensions();
    let region = region.validate(w, h)?;
    let b = widen_thin(region, w, h);
    if !phash::selects_pixels(img, trunc(b)) {
        return Err(ViewsError::NoPixels(region));
    }
    let mut all = vec![(b, 0.0)];
    all.extend(candidates(b, w, h));
    Ok(crop_views(img, &all, size))
}

/// Crops and resizes the float boxes `chosen` (view 0 = the region), with their ratios.
fn crop_views(img: &RgbImage, chosen: &[([f32; 4], f64)], size: u32) -> Views {
    let (w, h) = img.dimensions();
    let target = clip_trunc(chosen[0].0, w, h);
    let crop_boxes: Vec<[i64; 4]> = chosen.iter().map(|&(b, _)| clip_trunc(b, w, h)).collect();
    // Views repeat (a whole-image box takes candidate 0.1 twice): resize each crop once.
    let mut unique = crop_boxes.clone();
    unique.sort_unstable();
    unique.dedup();
    let resized: Vec<Vec<u8>> = unique
        .iter()
        .map(|crop| {
            let [x1, y1, x2, y2] = crop.map(|v| v as usize);
            let src = RgbView {
                data: img.as_raw(),
                offset: 3 * (y1 * w as usize + x1),
                stride: 3 * w as usize,
                width: x2 - x1,
                height: y2 - y1,
            };
            resize_bicubic(&src, size as usize, size as usize)
        })
        .collect();
    let views = crop_boxes
        .iter()
        .zip(chosen)
        .map(|(&crop_box, &(_, ratio))| View {
            crop_box,
            ratio,
            region_box: region_in_view(target, crop_box, size),
            rgb: resized[unique.iter().position(|u| *u == crop_box).expect("every crop was resized")].clone(),
        })
        .collect();
    Views { image_size: [w, h], size, views }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_clip() {
        let mut out = [0.0f32; 3];
        normalize_into(&[0, 128, 255], &mut out);
        let inv = (1.0f64 / 255.0) as f32;
        assert_eq!(out[0], (0.0 - 0.48145466f64 as f32) / 0.26862954f64 as f32);
        assert_eq!(out[1], (128.0 * inv - 0.4578275f64 as f32) / 0.26130258f64 as f32);
        assert_eq!(out[2], (255.0 * inv - 0.40821073f64 as f32) / 0.27577711f64 as f32);
    }

    #[test]
    fn a_whole_image_box_repeats_the_first_candidate() {
        // Every candidate of a whole-image box is the whole image: all scores are zero.
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 7]));
        let v = build_views(&img, RegionBox([0.0, 0.0, 64.0, 48.0]), &ViewOptions { size: 32, ..Default::default() })
            .unwrap();
        let ratios: Vec<f64> = v.views.iter().map(|v| v.ratio).collect();
        assert_eq!(ratios, vec![0.0, 0.1, 0.1]);
        assert!(v.views.iter().all(|v| v.crop_box == [0, 0, 64, 48]));
        assert_eq!(v.pixels().len(), 3 * 3 * 32 * 32);
    }

    #[test]
    fn the_candidates_hold_every_view_the_prior_can_pick() {
        let img =
            RgbImage::from_fn(90, 70, |x, y| image::Rgb([(x * 3) as u8, (y * 7 % 256) as u8, ((x * y) % 251) as u8]));
        let region = RegionBox([30.5, 20.0, 52.0, 41.7]);
        let all = candidate_views(&img, region, 24).unwrap();
        let ratios: Vec<f64> = all.views.iter().map(|v| v.ratio).collect();
        assert_eq!(ratios, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        for num_views in [1, 3, 5] {
            let chosen = build_views(&img, region, &ViewOptions { num_views, size: 24 }).unwrap();
            for view in &chosen.views {
                assert_eq!(view, &all.views[(view.ratio * 10.0).round() as usize], "ratio {}", view.ratio);
            }
        }
        assert!(matches!(candidate_views(&img, RegionBox([0.0, 0.0, 0.5, 5.0]), 24), Err(ViewsError::NoPixels(_))));
    }

    #[test]
    fn refuses_bad_requests() {
        let img = RgbImage::new(10, 10);
        let opts = ViewOptions::default();
        let err = |b: [f64; 4], o: &ViewOptions| build_views(&img, RegionBox(b), o).unwrap_err();
        assert!(matches!(err([0.0, 0.0, 0.5, 5.0], &opts), ViewsError::NoPixels(_)));
        assert!(matches!(err([0.0, 0.0, 11.0, 5.0], &opts), ViewsError::Box(BoxError::OutsideImage { .. })));
        assert!(matches!(err([0.0, 0.0, 5.0, 5.0], &ViewOptions { num_views: 0, ..opts }), ViewsError::NoViews(0)));
        assert!(matches!(err([0.0, 0.0, 5.0, 5.0], &ViewOptions { size: 0, ..opts }), ViewsError::BadSize(0)));
    }
}
