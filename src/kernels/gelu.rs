//! Exact GELU, `0.5 x (1 + erf(x / √2))`, vectorised for the CPU.
//!
//! erf is Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7, 6e-7 once computed in f32), the formula
//! PyTorch's vectorised CPU kernels use for `erf` and for exact GELU, with a branch-free `exp`
//! (Cephes' polynomial and an integer power of two). Written so that the compiler vectorises the
//! loop: no calls, no branches.

/// The number of values one task takes when the work is split across threads.
#[cfg(not(target_arch = "wasm32"))]
const CHUNK: usize = 16 * 1024;

/// 1.5 · 2²³: adding it rounds an f32 below 2²² to the nearest integer, kept in the low bits.
const ROUND: f32 = 12_582_912.0;

/// `exp(x)` for `x ≤ 0`, with relative error about 2e-7; results below 2⁻¹²⁶ are flushed to 2⁻¹²⁶·p.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let k = x * std::f32::consts::LOG2_E + ROUND;
    let n = k - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    let power = (k.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23;
    y * f32::from_bits(power as u32)
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_72) * t + 0.254_829_6) * t;
    (1.0 - poly * exp_nonpositive(-a * a)).copysign(x)
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_slice(values: &mut [f32]) {
    for v in values {
        *v = gelu(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gelu_slice_avx512(values: &mut [f32]) {
    gelu_slice(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_slice_avx2(values: &mut [f32]) {
    gelu_slice(values)
}

/// One thread's share: the widest vector instructions this CPU has.
fn gelu_chunk(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { gelu_slice_avx512(values) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { gelu_slice_avx2(values) };
        }
    }
    gelu_slice(values)
}

/// GELU of every value, in place (on all cores natively; in wasm, with SIMD128 where it is built in).
pub fn gelu_in_place(values: &mut [f32]) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        values.par_chunks_mut(CHUNK).for_each(gelu_chunk);
    }
    #[cfg(target_arch = "wasm32")]
    gelu_chunk(values);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn erf_is_within_the_formula_bound_everywhere() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 5e-5;
            worst = worst.max((erf(x) as f64 - libm::erf(x as f64)).abs());
        }
        assert!(worst < 6.5e-7, "erf is off by {worst}");
        assert_eq!(erf(30.0), 1.0);
        assert_eq!(erf(-30.0), -1.0);
    }

    #[test]
    fn gelu_matches_the_exact_formula_and_keeps_odd_values() {
        let mut values: Vec<f32> = (-100_000..=100_000).map(|i| i as f32 * 1e-4).collect();
        values.extend([f32::MAX, f32::MIN, 1e-30, -1e-30, 90.0, -90.0, 1e6, -1e6]);
        let inputs = values.clone();
        gelu_in_place(&mut values);
        for (x, y) in inputs.iter().zip(&values) {
            let want = exact_gelu(*x as f64);
            let err = (*y as f64 - want).abs();
            assert!(err <= 2e-7 * (1.0 + x.abs() as f64), "gelu({x}) = {y}, want {want}");
        }
        let mut odd = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        gelu_in_place(&mut odd);
        assert!(odd[0].is_nan());
        assert_eq!(odd[1], f32::INFINITY);
        assert!(odd[2] == 0.0 || odd[2].is_nan(), "gelu(-inf) = {}", odd[2]);
    }
}
