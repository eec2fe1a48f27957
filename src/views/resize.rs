//! Pillow's `Image.resize((S, S), BICUBIC)` on 8-bit RGB, bit for bit: Pillow
//! 4–12 coefficients in `f64`, normalised and turned into 22-bit fixed point, the horizontal pass
//! first into an 8-bit intermediate over only the rows the vertical pass reads, then the vertical
//! pass. The crop is read in place from the photo, never copied.

use super::par;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const BICUBIC_SUPPORT: f64 = 2.0;

/// A rectangle of an interleaved RGB8 image: `width * height` pixels starting at `offset`, rows
/// `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RgbView<'a> {
    pub data: &'a [u8],
    pub offset: usize,
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl RgbView<'_> {
    fn row(&self, y: usize) -> &[u8] {
        let start = self.offset + y * self.stride;
        &self.data[start..start + 3 * self.width]
    }
}

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point filter taps of one output sample: input `start..start + taps.len()`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Taps {
    pub start: usize,
    pub taps: Vec<i32>,
}

/// Pillow's `precompute_coeffs` for the bicubic filter, then its 8-bit normalisation.
pub(crate) fn coefficients(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let w: Vec<f64> = (0..xmax).map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            let one = f64::from(1u32 << PRECISION_BITS);
            let taps = w
                .iter()
                .map(|&v| {
                    let v = if total != 0.0 { v / total } else { v };
                    if v < 0.0 { (-0.5 + v * one) as i32 } else { (0.5 + v * one) as i32 }
                })
                .collect();
            Taps { start: xmin, taps }
        })
        .collect()
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUND: i32 = 1 << (PRECISION_BITS - 1);

/// Resamples the rows of `src` to `out_w` columns; returns `rows.len() * out_w` RGB pixels.
fn horizontal(src: &RgbView, rows: std::ops::Range<usize>, out_w: usize) -> Vec<u8> {
    let coeffs = coefficients(src.width, out_w);
    let mut out = vec![0u8; rows.len() * out_w * 3];
    par::fill_rows(&mut out, out_w * 3, |part, dst| {
        let part = rows.start + part.start..rows.start + part.end;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { horizontal_avx2(src, part, &coeffs, dst) };
        }
        horizontal_rows(src, part, &coeffs, dst)
    });
    out
}

/// [`horizontal_rows`] compiled for AVX2: the same integer arithmetic, eight taps at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn horizontal_avx2(src: &RgbView, rows: std::ops::Range<usize>, coeffs: &[Taps], out: &mut [u8]) {
    horizontal_rows(src, rows, coeffs, out);
}

/// Planar rows make each output sample three contiguous integer dot products, which vectorise.
#[inline(always)]
fn horizontal_rows(src: &RgbView, rows: std::ops::Range<usize>, coeffs: &[Taps], out: &mut [u8]) {
    let w = src.width;
    let mut planes = vec![0i32; 3 * w];
    for (y, dst) in rows.zip(out.chunks_exact_mut(coeffs.len() * 3)) {
        let (r, rest) = planes.split_at_mut(w);
        let (g, b) = rest.split_at_mut(w);
        for (i, p) in src.row(y).chunks_exact(3).enumerate() {
            r[i] = i32::from(p[0]);
            g[i] = i32::from(p[1]);
            b[i] = i32::from(p[2]);
        }
        for (c, px) in coeffs.iter().zip(dst.chunks_exact_mut(3)) {
            let span = c.start..c.start + c.taps.len();
            let dot = |plane: &[i32]| plane[span.clone()].iter().zip(&c.taps).map(|(p, k)| p * k).sum::<i32>() + ROUND;
            px.copy_from_slice(&[clip8(dot(r)), clip8(dot(g)), clip8(dot(b))]);
        }
    }
}

/// Resamples the columns of `src` to `coeffs.len()` rows, reading input row `y` at
/// `y - row_offset`.
fn vertical(src: &RgbView, coeffs: &[Taps], row_offset: usize) -> Vec<u8> {
    let n = src.width * 3;
    let mut out = vec![0u8; coeffs.len() * n];
    par::fill_rows(&mut out, n, |part, dst| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { vertical_avx2(src, &coeffs[part], row_offset, dst) };
        }
        vertical_rows(src, &coeffs[part], row_offset, dst)
    });
    out
}

/// [`vertical_rows`] compiled for AVX2: the same integer arithmetic on wider registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn vertical_avx2(src: &RgbView, coeffs: &[Taps], row_offset: usize, out: &mut [u8]) {
    vertical_rows(src, coeffs, row_offset, out);
}

#[inline(always)]
fn vertical_rows(src: &RgbView, coeffs: &[Taps], row_offset: usize, out: &mut [u8]) {
    let n = src.width * 3;
    let mut acc = vec![0i32; n];
    for (c, row) in coeffs.iter().zip(out.chunks_exact_mut(n)) {
        acc.fill(ROUND);
        for (i, k) in c.taps.iter().enumerate() {
            for (a, p) in acc.iter_mut().zip(src.row(c.start + i - row_offset)) {
                *a += i32::from(*p) * k;
            }
        }
        for (d, a) in row.iter_mut().zip(&acc) {
            *d = clip8(*a);
        }
    }
}

/// Pillow bicubic resize of an RGB8 rectangle to `out_w` x `out_h`; returns interleaved RGB8.
pub(crate) fn resize_bicubic(src: &RgbView, out_w: usize, out_h: usize) -> Vec<u8> {
    let need_h = out_w != src.width;
    let need_v = out_h != src.height;
    let vcoeffs = need_v.then(|| coefficients(src.height, out_h));
    if !need_h && !need_v {
        return (0..src.height).flat_map(|y| src.row(y).iter().copied()).collect();
    }
    if !need_h {
        return vertical(src, vcoeffs.as_deref().unwrap(), 0);
    }
    // Pillow resamples horizontally only the rows that the vertical pass will read.
    let rows = match &vcoeffs {
        Some(v) => v[0].start..v[v.len() - 1].start + v[v.len() - 1].taps.len(),
        None => 0..src.height,
    };
    let first = rows.start;
    let tmp = horizontal(src, rows.clone(), out_w);
    let Some(vcoeffs) = vcoeffs else { return tmp };
    let tmp_view = RgbView { data: &tmp, offset: 0, stride: out_w * 3, width: out_w, height: rows.len() };
    vertical(&tmp_view, &vcoeffs, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(data: &[u8], width: usize, height: usize) -> RgbView<'_> {
        RgbView { data, offset: 0, stride: width * 3, width, height }
    }

    #[test]
    fn coefficients_match_pillow() {
        // Pillow 10.4 precompute_coeffs(in=4, out=2, bicubic) after normalisation to 22 bits:
        // center 1.0 and 3.0, support 4, taps over 0..4 and 0..4.
        let c = coefficients(4, 2);
        assert_eq!(c[0].start, 0);
        assert_eq!(c[0].taps.len(), 4);
        assert_eq!(c[1].taps.len(), 4);
        // each row of taps sums to one in fixed point, up to rounding
        for t in &c {
            let s: i32 = t.taps.iter().sum();
            assert!((s - (1 << 22)).abs() <= 2, "{s}");
        }
        // upscale 2 -> 4, first output: center 0.25, taps bicubic(0.25) and bicubic(1.25)
        // normalised by their sum (values from the reference's `_pil_coeffs`)
        assert_eq!(coefficients(2, 4)[0], Taps { start: 0, taps: vec![4564390, -370086] });
    }

    #[test]
    fn constant_images_stay_constant() {
        let src = vec![77u8; 13 * 9 * 3];
        let out = resize_bicubic(&view(&src, 13, 9), 5, 21);
        assert_eq!(out.len(), 5 * 21 * 3);
        assert!(out.iter().all(|&v| v == 77));
    }

    #[test]
    fn same_size_is_a_copy_and_crops_read_in_place() {
        let src: Vec<u8> = (0..6 * 4 * 3).map(|i| i as u8).collect();
        let crop = RgbView { data: &src, offset: 3 * (6 + 1), stride: 18, width: 2, height: 2 };
        assert_eq!(resize_bicubic(&crop, 2, 2), vec![21, 22, 23, 24, 25, 26, 39, 40, 41, 42, 43, 44]);
    }
}
