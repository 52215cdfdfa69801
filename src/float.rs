//! The two float types fastloss computes in, and branch-free elementary functions for them.
//!
//! Every function here is written without data-dependent branches (selects only) and without
//! fused multiply-adds, so that LLVM vectorises it inside the kernels' lane loops and every SIMD
//! level produces the same bits as the scalar code.
//!
//! Algorithms (formulas and constants, not code, taken from the literature):
//! - `exp`/`expm1`: Cody–Waite reduction x = k·ln2 + r with ln2 split in a high part with
//!   trailing zero bits (so k·ln2_hi is exact) and a low part, then the Taylor series of
//!   e^r − 1 on |r| ≤ ln2/2 (degree 7 for f32, 13 for f64: truncation below 0.1 ulp), then
//!   scaling by 2^k in two steps so that 2^k never overflows on its own.
//! - `ln`/`ln_1p`: the fdlibm/musl scheme: x = 2^k·(1+f) with 1+f in [√½, √2), s = f/(2+f),
//!   log(1+f) = f − f²/2 + s·(f²/2 + R(s²)) with fdlibm's minimax coefficients Lg1..Lg7 (f64)
//!   and musl's logf coefficients (f32); `ln_1p` adds the rounding error of 1+x as c/(1+x).

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// A float type a kernel is generic over: `f32` or `f64`.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const HALF: Self;
    const TWO: Self;
    const LN2: Self;
    const NAN: Self;
    const INFINITY: Self;
    /// A block of ones, read where a kernel's optional per-element factor is absent.
    const ONES_BLOCK: &'static [Self; crate::reduce::BLOCK];

    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn abs(self) -> Self;
    fn is_nan(self) -> bool;
    fn sqrt(self) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// e^x − 1, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate near 0.
    fn ln_1p(self) -> Self;

    /// `self` if `self > other`, else `other`; a NaN in `self` is kept (torch's clamp_min).
    #[inline(always)]
    fn clamp_min(self, lo: Self) -> Self {
        if self < lo { lo } else { self }
    }
    /// The sign of `self` as −1, 0 or +1; NaN stays NaN.
    #[inline(always)]
    fn signum0(self) -> Self {
        if self > Self::ZERO {
            Self::ONE
        } else if self < Self::ZERO {
            -Self::ONE
        } else {
            self * Self::ZERO // ±0 → 0, NaN → NaN
        }
    }
}

/// Horner evaluation of c[0] + c[1]·x + ... (unrolled: `c` is a constant array).
#[inline(always)]
fn horner<T: Float, const N: usize>(x: T, c: &[f64; N]) -> T {
    let mut acc = T::from_f64(c[N - 1]);
    let mut i = N - 1;
    while i > 0 {
        i -= 1;
        acc = acc * x + T::from_f64(c[i]);
    }
    acc
}

// 1/k! for k = 2..=14, the Taylor coefficients of (e^r − 1 − r)/r².
const INV_FACT: [f64; 13] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
    1.0 / 87178291200.0,
];

macro_rules! impl_float {
    (
        $t:ty, $bits:ty, $sbits:ty,
        mantissa_bits = $mbits:expr, exp_bias = $bias:expr,
        ln2_hi = $ln2hi:expr, ln2_lo = $ln2lo:expr,
        exp_clamp = ($lo:expr, $hi:expr), round_magic = $magic:expr,
        exp_terms = $nterms:expr, log_poly_odd = $lgodd:expr, log_poly_even = $lgeven:expr,
        sqrt_half_bits = $sqrth:expr, subnormal_scale_log2 = $subexp:expr, ones = $ones:ident
    ) => {
        static $ones: [$t; crate::reduce::BLOCK] = [1.0; crate::reduce::BLOCK];

        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            const TWO: Self = 2.0;
            const LN2: Self = std::f64::consts::LN_2 as $t;
            const NAN: Self = <$t>::NAN;
            const INFINITY: Self = <$t>::INFINITY;
            const ONES_BLOCK: &'static [Self; crate::reduce::BLOCK] = &$ones;

            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::from_bits(self.to_bits() & !((1 as $bits) << (<$bits>::BITS - 1)))
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                self != self
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }

            #[inline(always)]
            fn exp(self) -> Self {
                let (k, r_hi, tail) = exp_reduce_impl(self);
                let (s1, s2) = pow2_split(k);
                (1.0 + (r_hi + tail)) * s1 * s2
            }

            #[inline(always)]
            fn exp_m1(self) -> Self {
                let (k, r_hi, tail) = exp_reduce_impl(self);
                let (s1, s2) = pow2_split(k);
                let p = s1 * s2; // 2^k, exact while k is small
                // (2^k − 1) + 2^k·r_hi is exact for k ≤ 1 (where e^x − 1 would cancel), so
                // the only rounding of note is the final addition.
                let near = ((p - 1.0) + p * r_hi) + p * tail;
                // For large k form e^x first (2^k alone could overflow where e^x does not).
                let far = (1.0 + (r_hi + tail)) * s1 * s2 - 1.0;
                if k > $mbits + 1 { far } else { near }
            }

            #[inline(always)]
            fn ln(self) -> Self {
                let x = self;
                let sub = x < <$t>::MIN_POSITIVE;
                let xs = if sub { x * ((1 as $bits) << $subexp) as $t } else { x };
                let kadj: $sbits = if sub { -$subexp } else { 0 };
                let (k, f) = split_log(xs);
                let r = log1p_core(f, small_int_to_float(k + kadj), 0.0);
                let r = if x == 0.0 { -<$t>::INFINITY } else { r };
                let r = if x == <$t>::INFINITY { x } else { r };
                if x < 0.0 || x != x { <$t>::NAN } else { r }
            }

            #[inline(always)]
            fn ln_1p(self) -> Self {
                let x = self;
                let u = 1.0 + x;
                let (k, f) = split_log(u);
                // c = the rounding error of u = 1 + x, exact for k < 2 by Sterbenz' lemma
                // and as 1 − (u − x) above; it no longer matters once 1 is below u's ulp.
                let c = if k >= 2 { 1.0 - (u - x) } else { x - (u - 1.0) };
                let c = if k < $mbits + 2 { c / u } else { 0.0 };
                let r = log1p_core(f, small_int_to_float(k), c);
                let r = if x == -1.0 { -<$t>::INFINITY } else { r };
                let r = if x == <$t>::INFINITY { x } else { r };
                if x < -1.0 || x != x { <$t>::NAN } else { r }
            }
        }

        /// Splits e^x = 2^k·(1 + r_hi + tail): r_hi = x − k·ln2_hi is exact, tail is small.
        /// x is clamped first so that 2^k splits into two normal numbers (see `pow2_split`).
        #[inline(always)]
        fn exp_reduce_impl(x: $t) -> ($sbits, $t, $t) {
            const LOG2E: $t = std::f64::consts::LOG2_E as $t;
            let xc = if x < $lo { $lo } else if x > $hi { $hi } else { x };
            // Round to the nearest integer with the magic-number trick: the sum's low mantissa
            // bits hold k, read as an integer (a float-to-int `as` cast saturates, which LLVM
            // can only do one lane at a time).
            let t = xc * LOG2E + $magic;
            let kf = t - $magic;
            let k = (t.to_bits() as $sbits).wrapping_sub(($magic as $t).to_bits() as $sbits);
            let r_hi = xc - kf * $ln2hi;
            let r_lo = kf * $ln2lo;
            let r = r_hi - r_lo;
            const COEFFS: [f64; $nterms] = {
                let mut c = [0.0f64; $nterms];
                let mut i = 0;
                while i < $nterms {
                    c[i] = INV_FACT[i];
                    i += 1;
                }
                c
            };
            let tail = r * r * horner(r, &COEFFS) - r_lo;
            (k, r_hi, tail)
        }

        /// 2^k as a product of two normal numbers (k within exp's clamped range).
        #[inline(always)]
        fn pow2_split(k: $sbits) -> ($t, $t) {
            let k1 = k >> 1;
            let k2 = k.wrapping_sub(k1);
            let s1 = <$t>::from_bits((k1.wrapping_add($bias) as $bits) << $mbits);
            let s2 = <$t>::from_bits((k2.wrapping_add($bias) as $bits) << $mbits);
            (s1, s2)
        }

        /// `k as float` for |k| < 2^(mantissa bits − 1), by the magic-number trick so that it
        /// vectorises on every level (AVX2 has no int64 → f64 conversion).
        #[inline(always)]
        fn small_int_to_float(k: $sbits) -> $t {
            <$t>::from_bits(($magic as $t).to_bits().wrapping_add(k as $bits)) - $magic
        }

        /// Splits x > 0 (normal) as 2^k·(1+f) with 1+f in [√½, √2).
        #[inline(always)]
        fn split_log(x: $t) -> ($sbits, $t) {
            let one_bits = (1.0 as $t).to_bits();
            let ix = x.to_bits().wrapping_add(one_bits.wrapping_sub($sqrth));
            let k = ((ix >> $mbits) as $sbits).wrapping_sub($bias);
            let m = (ix & (((1 as $bits) << $mbits) - 1)) + $sqrth;
            (k, <$t>::from_bits(m) - 1.0)
        }

        /// log(1+f) + k·ln2 + c, for f in [√½−1, √2−1).
        #[inline(always)]
        fn log1p_core(f: $t, dk: $t, c: $t) -> $t {
            let s = f / (2.0 + f);
            let z = s * s;
            let w = z * z;
            const ODD: [f64; $lgodd.len()] = $lgodd;
            const EVEN: [f64; $lgeven.len()] = $lgeven;
            let r = z * horner(w, &ODD) + w * horner(w, &EVEN);
            let hfsq = 0.5 * f * f;
            s * (hfsq + r) + (dk * $ln2lo + c) - hfsq + f + dk * $ln2hi
        }
    };
}

mod f32_impl {
    use super::*;
    impl_float!(
        f32, u32, i32,
        mantissa_bits = 23, exp_bias = 127,
        ln2_hi = 6.9313812256e-01f32, ln2_lo = 9.0580006145e-06f32,
        exp_clamp = (-150.0f32, 100.0f32), round_magic = 12582912.0f32,
        exp_terms = 6,
        // musl logf: Lg1, Lg3 and Lg2, Lg4
        log_poly_odd = [0.666_666_626_93f64, 0.284_987_866_88],
        log_poly_even = [0.400_009_721_52f64, 0.242_790_788_41],
        sqrt_half_bits = 0x3f35_04f3u32, subnormal_scale_log2 = 25,
        ones = ONES_F32
    );
}

mod f64_impl {
    use super::*;
    impl_float!(
        f64, u64, i64,
        mantissa_bits = 52, exp_bias = 1023,
        ln2_hi = 6.93147180369123816490e-01f64, ln2_lo = 1.90821492927058770002e-10f64,
        exp_clamp = (-746.0f64, 710.0f64), round_magic = 6755399441055744.0f64,
        exp_terms = 12,
        // fdlibm log: Lg1, Lg3, Lg5, Lg7 and Lg2, Lg4, Lg6
        log_poly_odd = [6.666666666666735130e-01f64, 2.857142874366239149e-01, 1.818357216161805012e-01, 1.479819860511658591e-01],
        log_poly_even = [3.999999999940941908e-01f64, 2.222219843214978396e-01, 1.531383769920937332e-01],
        sqrt_half_bits = 0x3fe6_a09e_667f_3bcdu64, subnormal_scale_log2 = 54,
        ones = ONES_F64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulp_diff32(a: f32, b: f64) -> f64 {
        if a.is_nan() && b.is_nan() {
            return 0.0;
        }
        let bf = b as f32;
        if a as f64 == b || a == bf {
            return 0.0;
        }
        let ulp = (f32::from_bits(bf.abs().to_bits() + 1) - bf.abs()) as f64;
        ((a as f64) - b).abs() / ulp
    }

    #[test]
    fn f32_functions_match_f64_libm_within_one_ulp() {
        let mut worst = [0.0f64; 4];
        let mut x = 1.0e-30f32;
        let mut samples = vec![0.0f32, -0.0, f32::MIN_POSITIVE, 1.0e-40, 88.7, -103.9, 1.0, -0.5, 3.0];
        while x < 1.0e30 {
            samples.push(x);
            samples.push(-x);
            x *= 1.013;
        }
        for &x in &samples {
            let e = [
                ulp_diff32(x.exp(), (x as f64).exp()),
                ulp_diff32(x.exp_m1(), (x as f64).exp_m1()),
                ulp_diff32(Float::ln(x), (x as f64).ln()),
                ulp_diff32(Float::ln_1p(x), (x as f64).ln_1p()),
            ];
            for i in 0..4 {
                if !(e[i] <= 1.0) {
                    panic!("function {i} at {x:e}: {} ulp", e[i]);
                }
                worst[i] = worst[i].max(e[i]);
            }
        }
    }

    fn ulp_diff64(a: f64, b: f64) -> f64 {
        if (a.is_nan() && b.is_nan()) || a == b {
            return 0.0;
        }
        let ulp = f64::from_bits(b.abs().to_bits() + 1) - b.abs();
        (a - b).abs() / ulp
    }

    #[test]
    fn f64_functions_match_libm_within_one_ulp() {
        let mut x = 1.0e-300f64;
        let mut worst = [0.0f64; 4];
        while x < 1.0e300 {
            for v in [x, -x] {
                let e = [
                    ulp_diff64(Float::exp(v), v.exp()),
                    ulp_diff64(Float::exp_m1(v), v.exp_m1()),
                    ulp_diff64(Float::ln(v), v.ln()),
                    ulp_diff64(Float::ln_1p(v), v.ln_1p()),
                ];
                for i in 0..4 {
                    assert!(e[i] <= 1.0, "function {i} at {v:e}: {} ulp", e[i]);
                    worst[i] = worst[i].max(e[i]);
                }
            }
            x *= 1.0071;
        }
        assert_eq!(Float::exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(Float::exp(f64::INFINITY), f64::INFINITY);
        assert!(Float::exp(f64::NAN).is_nan());
        assert_eq!(Float::ln(0.0f64), f64::NEG_INFINITY);
        assert_eq!(Float::ln_1p(-1.0f64), f64::NEG_INFINITY);
        assert_eq!(Float::ln(5e-324f64), 5e-324f64.ln());
        assert_eq!(Float::exp_m1(-1e300f64), -1.0);
    }
}
