//! `x · W` for a block-quantized weight matrix `W` [k, n] (burn's Linear layout) that stays
//! quantized: it is dequantized a strip at a time inside the matmul, never whole.
//!
//! Each task takes a strip of `NR` columns of `W`. With up to `MR` rows of `x` (a decoding step)
//! the strip streams through `MR × NR` accumulators held in registers, one row of `W` at a time.
//! With more rows the strip is dequantized once into an f32 panel that every tile of `MR` rows
//! reuses. Strips are split across cores. Many rows (`MAX_ROWS` and up) are better served by dequantizing the weight and
//! calling burn's general matmul: `dequantize` below.

/// The most rows of `x` this kernel is meant for; more go to burn's general matmul.
pub const MAX_ROWS: usize = 64;

/// Columns per strip and rows per register tile: 4 × 64 f32 accumulators fill 16 AVX-512 registers.
const NR: usize = 64;
const MR: usize = 4;

/// The values of a block-quantized weight matrix, row-major [k, n].
#[derive(Clone, Copy)]
pub enum Values<'a> {
    /// One value per byte (8-bit weights, and 4-bit ones that were not packed).
    I8(&'a [i8]),
    /// 4-bit values two to a byte, offset by 8 to be unsigned: in each block of 32 columns of a
    /// row, byte `j` holds column `j` in its low half and column `j + 16` in its high half, so
    /// that a block unpacks as two runs of 16 consecutive columns (whole vectors, no shuffles).
    Packed4(&'a [u8]),
}

/// Byte `j` of a packed block holds columns `j` and `j + 16` (see [`Values::Packed4`]).
pub const PACKED_BLOCK: usize = 32;

/// A block-quantized weight matrix [k, n] with one scale per block of `block_cols` consecutive
/// columns of a row (`block_cols` divides `NR`; packed values need blocks of [`PACKED_BLOCK`]).
#[derive(Clone, Copy)]
pub struct QWeight<'a> {
    pub values: Values<'a>,
    pub scales: &'a [f32],
    pub block_cols: usize,
}

impl QWeight<'_> {
    /// Row `p`, columns `n0..n0 + row.len()`, dequantized into `row`.
    #[inline(always)]
    fn unpack_row(&self, n: usize, p: usize, n0: usize, row: &mut [f32]) {
        let start = p * n + n0;
        let first_block = p * n.div_ceil(self.block_cols) + n0 / self.block_cols;
        let scales = &self.scales[first_block..];
        let values = match self.values {
            Values::Packed4(bytes) => {
                // a packed weight's rows and strips are whole blocks
                let bytes = &bytes[start / 2..(start + row.len()) / 2];
                let (out_blocks, _) = row.as_chunks_mut::<PACKED_BLOCK>();
                let (q_blocks, _) = bytes.as_chunks::<{ PACKED_BLOCK / 2 }>();
                for ((out, q), scale) in out_blocks.iter_mut().zip(q_blocks).zip(scales) {
                    let (low, high) = out.split_at_mut(PACKED_BLOCK / 2);
                    for j in 0..PACKED_BLOCK / 2 {
                        low[j] = ((q[j] & 15) as i32 - 8) as f32 * scale;
                        high[j] = ((q[j] >> 4) as i32 - 8) as f32 * scale;
                    }
                }
                return;
            }
            Values::I8(values) => &values[start..start + row.len()],
        };
        if self.block_cols == 32 {
            // the bundles' blocks: fixed-size chunks, so that the loop compiles to whole vectors
            let (out_blocks, out_tail) = row.as_chunks_mut::<32>();
            let (q_blocks, q_tail) = values.as_chunks::<32>();
            for ((out, q), scale) in out_blocks.iter_mut().zip(q_blocks).zip(scales) {
                for j in 0..32 {
                    out[j] = q[j] as f32 * scale;
                }
            }
            let scale = scales.get(out_blocks.len()).copied().unwrap_or_default();
            for (o, &v) in out_tail.iter_mut().zip(q_tail) {
                *o = v as f32 * scale;
            }
            return;
        }
        for ((out, q), scale) in row.chunks_mut(self.block_cols).zip(values.chunks(self.block_cols)).zip(scales) {
            for (o, &v) in out.iter_mut().zip(q) {
                *o = v as f32 * scale;
            }
        }
    }

    /// The number of values.
    fn len(&self) -> usize {
        match self.values {
            Values::I8(values) => values.len(),
            Values::Packed4(bytes) => 2 * bytes.len(),
        }
    }
}

/// 4-bit values (-8..=7, one per byte, row-major with rows of `n` columns, `n` a multiple of
/// [`PACKED_BLOCK`]) two to a byte, as [`Values::Packed4`] lays them out.
pub fn pack4(values: &[i8], n: usize) -> Vec<u8> {
    assert!(n % PACKED_BLOCK == 0 && values.len() % n == 0, "rows of whole blocks");
    let nibble = |v: i8| (v as i32 + 8).clamp(0, 15) as u8;
    let (blocks, _) = values.as_chunks::<PACKED_BLOCK>();
    let pack = |block: &[i8; PACKED_BLOCK]| {
        let (low, high) = block.split_at(PACKED_BLOCK / 2);
        std::array::from_fn::<u8, { PACKED_BLOCK / 2 }, _>(|j| nibble(low[j]) | nibble(high[j]) << 4)
    };
    blocks.iter().flat_map(pack).collect()
}

/// `x` transposed into steps of k, each holding rows `r0..r0 + MR` (zero-padded past `m`).
#[inline(always)]
fn tile_rows(x: &[f32], m: usize, k: usize, r0: usize, out: &mut Vec<[f32; MR]>) {
    let rows = MR.min(m - r0);
    out.clear();
    out.extend((0..k).map(|p| std::array::from_fn(|r| if r < rows { x[(r0 + r) * k + p] } else { 0.0 })));
}

#[inline(always)]
fn fma<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { c + a * b }
}

/// One step of k: `acc[r] += a[r] · w` for the `MR` rows.
#[inline(always)]
fn accumulate<const FUSED: bool>(acc: &mut [[f32; NR]; MR], a: &[f32; MR], w: &[f32; NR]) {
    for r in 0..MR {
        for j in 0..NR {
            acc[r][j] = fma::<FUSED>(a[r], w[j], acc[r][j]);
        }
    }
}

/// Scratch of one task: the unpacked panel and `x` transposed into tiles of `MR` rows.
struct Scratch {
    panel: Vec<f32>,
    rows: Vec<[f32; MR]>,
}

/// Columns `n0..n0 + width` of `x · W` for all `m` rows, as `m` row pieces of `width` values.
/// Up to `MR` rows, the strip of `W` streams through the accumulators a row at a time; more rows
/// share a panel of the strip dequantized once.
#[inline(always)]
fn strip<const FUSED: bool>(
    x: &[f32],
    m: usize,
    k: usize,
    w: QWeight,
    n: usize,
    n0: usize,
    s: &mut Scratch,
) -> Vec<f32> {
    let width = NR.min(n - n0);
    let mut out = vec![0f32; m * width];
    let mut store = |r0: usize, acc: &[[f32; NR]; MR]| {
        for r in 0..MR.min(m - r0) {
            out[(r0 + r) * width..(r0 + r + 1) * width].copy_from_slice(&acc[r][..width]);
        }
    };
    if m == 1 {
        let (mut acc, mut row) = ([0f32; NR], [0f32; NR]);
        for (p, &a) in x.iter().enumerate() {
            w.unpack_row(n, p, n0, &mut row[..width]);
            for j in 0..NR {
                acc[j] = fma::<FUSED>(a, row[j], acc[j]);
            }
        }
        out.copy_from_slice(&acc[..width]);
        return out;
    }
    if m <= MR {
        tile_rows(x, m, k, 0, &mut s.rows);
        let (mut acc, mut row) = ([[0f32; NR]; MR], [0f32; NR]);
        for (p, a) in s.rows.iter().enumerate() {
            w.unpack_row(n, p, n0, &mut row[..width]);
            accumulate::<FUSED>(&mut acc, a, &row);
        }
        store(0, &acc);
        return out;
    }
    s.panel.clear();
    s.panel.resize(k * NR, 0.0);
    for (p, row) in s.panel.chunks_exact_mut(NR).enumerate() {
        w.unpack_row(n, p, n0, &mut row[..width]);
    }
    for r0 in (0..m).step_by(MR) {
        tile_rows(x, m, k, r0, &mut s.rows);
        let mut acc = [[0f32; NR]; MR];
        for (a, w) in s.rows.iter().zip(s.panel.chunks_exact(NR)) {
            accumulate::<FUSED>(&mut acc, a, w.try_into().unwrap());
        }
        store(r0, &acc);
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn strip_avx512(x: &[f32], m: usize, k: usize, w: QWeight, n: usize, n0: usize, s: &mut Scratch) -> Vec<f32> {
    strip::<true>(x, m, k, w, n, n0, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn strip_avx2(x: &[f32], m: usize, k: usize, w: QWeight, n: usize, n0: usize, s: &mut Scratch) -> Vec<f32> {
    strip::<true>(x, m, k, w, n, n0, s)
}

/// The widest vector instructions this CPU has.
#[derive(Clone, Copy, Debug)]
enum Isa {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// Whether this CPU has these instructions.
    fn supported(self) -> bool {
        match self {
            Isa::Plain => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx512f"),
        }
    }

    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx512, Isa::Avx2] {
            if isa.supported() {
                return isa;
            }
        }
        Isa::Plain
    }

    #[allow(clippy::too_many_arguments)]
    fn strip(self, x: &[f32], m: usize, k: usize, w: QWeight, n: usize, n0: usize, s: &mut Scratch) -> Vec<f32> {
        match self {
            Isa::Plain => strip::<false>(x, m, k, w, n, n0, s),
            // SAFETY: `matmul_on`, the only caller, checked that this CPU has these features.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { strip_avx2(x, m, k, w, n, n0, s) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { strip_avx512(x, m, k, w, n, n0, s) },
        }
    }
}

/// `x` [m, k] times `w` [k, n] → [m, n], row-major.
pub fn matmul(x: &[f32], m: usize, k: usize, w: QWeight, n: usize) -> Vec<f32> {
    matmul_on(Isa::detect(), x, m, k, w, n)
}

/// [`matmul`] with the instructions of `isa`, which this CPU must have: the tests force each path.
fn matmul_on(isa: Isa, x: &[f32], m: usize, k: usize, w: QWeight, n: usize) -> Vec<f32> {
    assert!(isa.supported(), "{isa:?} instructions on a CPU without them");
    let starts: Vec<usize> = (0..n).step_by(NR).collect();
    let scratch = || Scratch { panel: Vec::new(), rows: Vec::new() };
    #[cfg(not(target_arch = "wasm32"))]
    let strips: Vec<Vec<f32>> = {
        use rayon::prelude::*;
        starts.par_iter().map_init(scratch, |s, &n0| isa.strip(x, m, k, w, n, n0, s)).collect()
    };
    #[cfg(target_arch = "wasm32")]
    let strips: Vec<Vec<f32>> = {
        let mut s = scratch();
        starts.iter().map(|&n0| isa.strip(x, m, k, w, n, n0, &mut s)).collect()
    };
    let mut out = vec![0f32; m * n];
    for (&n0, piece) in starts.iter().zip(&strips) {
        let width = NR.min(n - n0);
        for r in 0..m {
            out[r * n + n0..r * n + n0 + width].copy_from_slice(&piece[r * width..(r + 1) * width]);
        }
    }
    out
}

/// `x` [m, k] times `w` [k, n] for many rows: `w` is dequantized a panel of columns at a time
/// into a buffer each thread keeps, and each panel goes through gemm (burn's CPU matmul).
#[cfg(not(target_arch = "wasm32"))]
pub fn matmul_many_rows(x: &[f32], m: usize, k: usize, w: QWeight, n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    const PANEL: usize = 1024;
    thread_local! {
        static PANEL_BUFFER: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut out = vec![0f32; m * n];
    PANEL_BUFFER.with_borrow_mut(|panel| {
        panel.resize(k * PANEL, 0.0);
        for n0 in (0..n).step_by(PANEL) {
            let width = PANEL.min(n - n0);
            panel.par_chunks_mut(PANEL).enumerate().for_each(|(p, row)| w.unpack_row(n, p, n0, &mut row[..width]));
            // SAFETY: `out` is [m, n] and `x` [m, k], row-major, and `panel` holds k rows of
            // PANEL values of which the first `width` are written; gemm reads and writes within.
            unsafe {
                gemm::gemm(
                    m,
                    width,
                    k,
                    out.as_mut_ptr().add(n0),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    panel.as_ptr(),
                    1,
                    PANEL as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            }
        }
    });
    out
}

/// The whole of a quantized weight as f32.
pub fn dequantize(w: QWeight, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    let rows = |(p, row): (usize, &mut [f32])| w.unpack_row(n, p, 0, row);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(n).enumerate().for_each(rows);
    }
    #[cfg(target_arch = "wasm32")]
    out.chunks_mut(n).enumerate().for_each(rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for r in 0..m {
            for p in 0..k {
                for c in 0..n {
                    out[r * n + c] += x[r * k + p] as f64 * w[p * n + c] as f64;
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn quantized_weights_multiply_as_their_dequantized_values_at_every_edge() {
        let shapes =
            [(1, 1, 32, 32), (4, 7, 64, 16), (5, 40, 96, 32), (6, 33, 130, 2), (9, 5, 70, 32), (64, 300, 200, 8)];
        for (m, k, n, block_cols) in shapes {
            let x = values(m * k, 3);
            let (q, scales) = quantized(k, n, block_cols);
            let w = QWeight { values: Values::I8(&q), scales: &scales, block_cols };
            let wide = dequantize(w, n);
            for p in 0..k {
                for c in 0..n {
                    assert_eq!(
                        wide[p * n + c],
                        q[p * n + c] as f32 * scales[p * n.div_ceil(block_cols) + c / block_cols]
                    );
                }
            }
            let got = matmul(&x, m, k, w, n);
            for (g, want) in got.iter().zip(reference(&x, m, k, &wide, n)) {
                assert!((*g as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "{m}x{k}x{n}: {g} vs {want}");
            }
        }
    }

    /// 4-bit values packed two to a byte give the very products of the same values one to a byte,
    /// on every path (one row, a few rows, a shared panel, gemm, the whole weight), with partial
    /// strips and panels.
    #[test]
    fn packed_4_bit_weights_multiply_exactly_as_unpacked_ones() {
        let mut isas = vec![Isa::Plain];
        #[cfg(target_arch = "x86_64")]
        isas.extend([Isa::Avx2, Isa::Avx512]);
        for (m, k, n) in [(1, 37, 96), (3, 64, 160), (7, 50, 32), (64, 300, 224), (70, 33, 1056)] {
            let x = values(m * k, 3);
            let q: Vec<i8> = values(k * n, 4).iter().map(|v| (v * 7.0).round() as i8).collect();
            let scales: Vec<f32> = values(k * n / 32, 5).iter().map(|v| v.abs() / 100.0 + 1e-3).collect();
            let packed = pack4(&q, n);
            assert_eq!(packed.len(), k * n / 2);
            let one = QWeight { values: Values::I8(&q), scales: &scales, block_cols: 32 };
            let two = QWeight { values: Values::Packed4(&packed), scales: &scales, block_cols: 32 };
            assert_eq!(dequantize(two, n), dequantize(one, n), "{k}x{n}");
            for isa in isas.iter().filter(|isa| isa.supported()) {
                assert_eq!(matmul_on(*isa, &x, m, k, two, n), matmul_on(*isa, &x, m, k, one, n), "{isa:?} {m}x{k}x{n}");
            }
            #[cfg(not(target_arch = "wasm32"))]
            assert_eq!(matmul_many_rows(&x, m, k, two, n), matmul_many_rows(&x, m, k, one, n), "{m}x{k}x{n}");
        }
    }

    /// A random 8-bit weight [k, n] with a scale per `block_cols` columns: values and scales.
    fn quantized(k: usize, n: usize, block_cols: usize) -> (Vec<i8>, Vec<f32>) {
        let q = values(k * n, 4).iter().map(|v| (v * 127.0) as i8).collect();
        let scales = values(k * n.div_ceil(block_cols), 5).iter().map(|v| v.abs() / 100.0 + 1e-3).collect();
        (q, scales)
    }

    /// The largest error of `got` against the f64 product, relative to the sum of the products'
    /// magnitudes (`Σ|x·w|`, the scale of f32's rounding error in a dot product).
    fn relative_error(got: &[f32], x: &[f32], m: usize, k: usize, wide: &[f32], n: usize) -> f64 {
        let want = reference(x, m, k, wide, n);
        let abs_x: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let abs_w: Vec<f32> = wide.iter().map(|v| v.abs()).collect();
        let magnitude = reference(&abs_x, m, k, &abs_w, n);
        let errors = got.iter().zip(want).zip(magnitude).map(|((g, w), s)| (*g as f64 - w).abs() / s.max(1e-30));
        errors.fold(0.0, f64::max)
    }

    /// Measured: at most 1.6e-7 on each instruction set's path and 2.9e-7 through gemm (2.6 and
    /// 4.8 times f32's rounding unit 2⁻²⁴). A sum of k products in f32 may be off by up to
    /// k·2⁻²⁴ of `Σ|x·w|`, a few units in practice; a product off by 1e-5 of one operand, a lost
    /// block scale or a missed column is well beyond this.
    const REL_TOL: f64 = 1e-6;

    /// Each instruction set's strip kernel, forced, on shapes that take each of its branches (one
    /// row, up to `MR` rows, a shared panel with a partial last tile, `MAX_ROWS`) and leave a partial
    /// last strip.
    #[test]
    fn every_instruction_set_matches_an_f64_matmul() {
        let mut isas = vec![Isa::Plain];
        #[cfg(target_arch = "x86_64")]
        isas.extend([Isa::Avx2, Isa::Avx512]);
        for isa in isas {
            if !isa.supported() {
                println!("skipped {isa:?}: this CPU does not have it");
                continue;
            }
            let mut worst = 0f64;
            for (m, k, n, block_cols) in [(1, 37, 200, 8), (3, 64, 130, 2), (7, 50, 96, 32), (64, 300, 70, 32)] {
                let x = values(m * k, 3);
                let (q, scales) = quantized(k, n, block_cols);
                let w = QWeight { values: Values::I8(&q), scales: &scales, block_cols };
                let error = relative_error(&matmul_on(isa, &x, m, k, w, n), &x, m, k, &dequantize(w, n), n);
                assert!(error <= REL_TOL, "{isa:?} {m}x{k}x{n}: relative error {error:e}");
                worst = worst.max(error);
            }
            println!("{isa:?}: largest relative error {worst:e}");
        }
    }

    /// Many rows go through gemm a panel of 1024 columns at a time: more than one panel, the last
    /// one partial, and more rows than [`MAX_ROWS`].
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn many_rows_match_an_f64_matmul() {
        let mut worst = 0f64;
        for (m, k, n, block_cols) in [(65, 33, 1025, 1), (130, 96, 2100, 32), (200, 40, 1030, 2)] {
            let x = values(m * k, 3);
            let (q, scales) = quantized(k, n, block_cols);
            let w = QWeight { values: Values::I8(&q), scales: &scales, block_cols };
            let error = relative_error(&matmul_many_rows(&x, m, k, w, n), &x, m, k, &dequantize(w, n), n);
            assert!(error <= REL_TOL, "{m}x{k}x{n}: relative error {error:e}");
            worst = worst.max(error);
        }
        println!("gemm: largest relative error {worst:e}");
    }

    #[test]
    #[ignore]
    fn time_quantized_matmul() {
        for (m, k, n) in [(1usize, 2048usize, 5120usize), (5, 2048, 5120), (32, 768, 3072), (771, 1408, 6144)] {
            let x = values(m * k, 1);
            let q = vec![3i8; k * n];
            let packed = pack4(&q, n);
            let s = vec![0.01f32; k * n / 32];
            for values in [Values::I8(&q), Values::Packed4(&packed)] {
                let w = QWeight { values, scales: &s, block_cols: 32 };
                let t = std::time::Instant::now();
                for _ in 0..10 {
                    std::hint::black_box(if m <= MAX_ROWS {
                        matmul(&x, m, k, w, n)
                    } else {
                        matmul_many_rows(&x, m, k, w, n)
                    });
                }
                let ms = t.elapsed().as_secs_f64() / 10.0 * 1e3;
                let kind = if matches!(values, Values::I8(_)) { "8-bit" } else { "packed 4-bit" };
                println!("{m}x{k}x{n} {kind}: {ms:.2} ms, {:.1} GFLOP/s", 2.0 * (m * k * n) as f64 / ms / 1e6);
            }
        }
    }
}
