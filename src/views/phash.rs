//! The image prior that picks the context views: a DCT perceptual hash of each candidate box.
//! The official code converts the whole photo to gray, crops, resizes the crop
//! to 224x224 with OpenCV's bilinear filter, takes OpenCV's DCT and compares the top-left 8x8
//! coefficients with their mean. Gray is a per-pixel function and only 2x2 source pixels feed each
//! output pixel, so this computes gray lazily at the pixels the resize reads: the same numbers,
//! without touching the rest of a large photo.

use std::ops::Range;

use image::RgbImage;

use super::boxes::python_slice;

/// Side of the square the crop is resized to before the DCT.
pub(crate) const HASH_RESOLUTION: usize = 224;
/// Side of the top-left block of DCT coefficients that forms the hash.
const HASH_BLOCK: usize = 8;

/// A 64-bit perceptual hash, bit `8*row + col` set when that coefficient exceeds the block mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phash(pub u64);

impl Phash {
    pub fn hamming(self, other: Phash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

/// OpenCV's `COLOR_RGB2GRAY` on 8-bit pixels: fixed point with 14 fractional bits, rounded.
pub fn gray(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 4899 + u32::from(g) * 9617 + u32::from(b) * 1868 + (1 << 13)) >> 14) as u8
}

/// The two source taps and weights of each output sample of OpenCV's `INTER_LINEAR` resize.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearTaps {
    pub index: Vec<[usize; 2]>,
    pub weight: Vec<[f32; 2]>,
}

impl LinearTaps {
    pub fn new(src_len: usize, dst_len: usize) -> Self {
        let scale = 1.0 / (dst_len as f64 / src_len as f64);
        let (mut index, mut weight) = (Vec::with_capacity(dst_len), Vec::with_capacity(dst_len));
        for d in 0..dst_len {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            let (s, f) = if s < 0.0 {
                (0, 0.0)
            } else if s as usize >= src_len - 1 {
                (src_len - 1, 0.0)
            } else {
                (s as usize, f - s)
            };
            index.push([s, (s + 1).min(src_len - 1)]);
            weight.push([1.0 - f, f]);
        }
        LinearTaps { index, weight }
    }
}

/// `cv2.resize(gray_crop, (224, 224))` in `f32`, horizontal pass then vertical, reading gray values
/// straight from the RGB photo. Returns row-major `[224 * 224]`.
#[inline(always)]
fn resize_gray(img: &RgbImage, xs: Range<usize>, ys: Range<usize>) -> Vec<f32> {
    let n = HASH_RESOLUTION;
    let tx = LinearTaps::new(xs.len(), n);
    let ty = LinearTaps::new(ys.len(), n);
    let (stride, raw) = (3 * img.width() as usize, img.as_raw());
    // Each output row reads two source rows; consecutive output rows mostly share them.
    let mut cache: Vec<Option<Vec<f32>>> = vec![None; ys.len()];
    let mut out = vec![0.0f32; n * n];
    for (dy, (iy, wy)) in ty.index.iter().zip(&ty.weight).enumerate() {
        for &sy in iy {
            cache[sy].get_or_insert_with(|| {
                let start = (ys.start + sy) * stride + 3 * xs.start;
                let row = &raw[start..start + 3 * xs.len()];
                let gray_at = |x: usize| f32::from(gray(row[3 * x], row[3 * x + 1], row[3 * x + 2]));
                tx.index
                    .iter()
                    .zip(&tx.weight)
                    .map(|(ix, wx)| gray_at(ix[0]) * wx[0] + gray_at(ix[1]) * wx[1])
                    .collect()
            });
        }
        let (r0, r1) = (cache[iy[0]].as_ref().unwrap(), cache[iy[1]].as_ref().unwrap());
        for (dx, o) in out[dy * n..(dy + 1) * n].iter_mut().enumerate() {
            *o = r0[dx] * wy[0] + r1[dx] * wy[1];
        }
    }
    out
}

/// Rows `0..8` of the orthonormal DCT-II basis of length `size`, in `f64`.
fn dct_basis(size: usize) -> Vec<[f64; HASH_BLOCK]> {
    let norm = (2.0 / size as f64).sqrt();
    let dc = (1.0 / size as f64).sqrt();
    (0..size)
        .map(|x| {
            std::array::from_fn(|k| {
                if k == 0 {
                    dc
                } else {
                    (std::f64::consts::PI * (2 * x + 1) as f64 * k as f64 / (2.0 * size as f64)).cos() * norm
                }
            })
        })
        .collect()
}

/// Top-left 8x8 block of the orthonormal 2-D DCT-II of a square `n x n` image, row-major.
fn dct_top_left(img: &[f32], basis: &[[f64; HASH_BLOCK]]) -> [f64; HASH_BLOCK * HASH_BLOCK] {
    let n = basis.len();
    // rows[y][k] = sum_x img[y][x] * basis[x][k]
    let rows: Vec<[f64; HASH_BLOCK]> = img
        .chunks_exact(n)
        .map(|row| {
            let mut acc = [0.0; HASH_BLOCK];
            for (v, b) in row.iter().zip(basis) {
                for k in 0..HASH_BLOCK {
                    acc[k] += f64::from(*v) * b[k];
                }
            }
            acc
        })
        .collect();
    let mut out = [0.0; HASH_BLOCK * HASH_BLOCK];
    for (r, b) in rows.iter().zip(basis) {
        for ky in 0..HASH_BLOCK {
            for kx in 0..HASH_BLOCK {
                out[ky * HASH_BLOCK + kx] += b[ky] * r[kx];
            }
        }
    }
    out
}

/// Whether the integer box `[x1, y1, x2, y2]` selects a pixel, by the slicing rules of [`phash`].
pub(crate) fn selects_pixels(img: &RgbImage, b: [i64; 4]) -> bool {
    !python_slice(b[0], b[2], img.width() as usize).is_empty()
        && !python_slice(b[1], b[3], img.height() as usize).is_empty()
}

/// The hash of the integer box `[x1, y1, x2, y2]` (truncated, not clipped: Python slicing rules).
/// `None` when the box selects no pixel.
pub(crate) fn phash(img: &RgbImage, b: [i64; 4]) -> Option<Phash> {
    let xs = python_slice(b[0], b[2], img.width() as usize);
    let ys = python_slice(b[1], b[3], img.height() as usize);
    if xs.is_empty() || ys.is_empty() {
        return None;
    }
    static BASIS: std::sync::OnceLock<Vec<[f64; HASH_BLOCK]>> = std::sync::OnceLock::new();
    let basis = BASIS.get_or_init(|| dct_basis(HASH_RESOLUTION));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return Some(unsafe { hash_avx2(img, xs, ys, basis) });
    }
    Some(hash(img, xs, ys, basis))
}

/// [`hash`] compiled for AVX2: the same operations in the same order, on wider registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn hash_avx2(img: &RgbImage, xs: Range<usize>, ys: Range<usize>, basis: &[[f64; HASH_BLOCK]]) -> Phash {
    hash(img, xs, ys, basis)
}

#[inline(always)]
fn hash(img: &RgbImage, xs: Range<usize>, ys: Range<usize>, basis: &[[f64; HASH_BLOCK]]) -> Phash {
    let resized = resize_gray(img, xs, ys);
    let coeffs = dct_top_left(&resized, basis);
    let mean = coeffs.iter().sum::<f64>() / coeffs.len() as f64;
    Phash(coeffs.iter().enumerate().filter(|(_, c)| **c > mean).fold(0u64, |h, (i, _)| h | (1 << i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_matches_opencv_fixed_point() {
        // values computed with cv2.cvtColor(..., COLOR_RGB2GRAY)
        assert_eq!(gray(0, 0, 0), 0);
        assert_eq!(gray(255, 255, 255), 255);
        assert_eq!(gray(255, 0, 0), 76);
        assert_eq!(gray(0, 255, 0), 150);
        assert_eq!(gray(0, 0, 255), 29);
        assert_eq!(gray(12, 200, 99), 132);
    }

    #[test]
    fn linear_taps_follow_opencv() {
        // upscale 2 -> 4: f = (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
        let t = LinearTaps::new(2, 4);
        assert_eq!(t.index, vec![[0, 1], [0, 1], [0, 1], [1, 1]]);
        assert_eq!(t.weight, vec![[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [1.0, 0.0]]);
        // downscale 4 -> 2: f = 0.5, 2.5
        let t = LinearTaps::new(4, 2);
        assert_eq!(t.index, vec![[0, 1], [2, 3]]);
        assert_eq!(t.weight, vec![[0.5, 0.5], [0.5, 0.5]]);
        // a single source pixel
        let t = LinearTaps::new(1, 3);
        assert_eq!(t.index, vec![[0, 0]; 3]);
    }

    #[test]
    fn dct_is_orthonormal() {
        // A constant image has only the DC term: n * value.
        let n = 16;
        let basis = dct_basis(n);
        let c = dct_top_left(&vec![3.0; n * n], &basis);
        assert!((c[0] - 48.0).abs() < 1e-12);
        assert!(c[1..].iter().all(|v| v.abs() < 1e-12));
        // A single cosine of frequency (ky=2, kx=1) lands in that coefficient.
        let img: Vec<f32> = (0..n * n).map(|i| (basis[i / n][2] * basis[i % n][1]) as f32).collect();
        let c = dct_top_left(&img, &basis);
        assert!((c[2 * 8 + 1] - 1.0).abs() < 1e-6);
        assert!(c.iter().enumerate().filter(|(i, _)| *i != 17).all(|(_, v)| v.abs() < 1e-6));
    }

    #[test]
    fn hash_of_a_constant_crop_is_the_dc_bit() {
        let img = RgbImage::from_pixel(40, 30, image::Rgb([90, 120, 30]));
        assert_eq!(phash(&img, [3, 4, 20, 25]), Some(Phash(1)));
        assert_eq!(phash(&img, [0, 0, 0, 5]), None);
        assert_eq!(Phash(0b1011).hamming(Phash(0b0110)), 3);
    }
}
