//! The two float types fastloss computes in, and branch-free elementary functions for them.
//!
//! Every function here is written without data-dependent branches (selects only), so that LLVM
//! vectorises it inside the kernels' lane loops. Multiply-adds that matter are fused
//! (`Float::mul_add`): one instruction on AVX2, AVX-512 and NEON, a libm call on the x86-64
//! baseline (correct but slow there). A fused multiply-add is exactly rounded, so every SIMD level
//! produces the same bits and one level's accuracy sweep covers all.
//!
//! Closures inside a `simd::vectorized` region must be `#[inline(always)]`: one compiled outside
//! it runs at the baseline level (scalar, with libm fused multiply-adds). A test in `simd.rs`
//! checks the closures passed to `vectorized` itself.
//!
//! Algorithms (formulas and constants, not code, taken from the literature):
//! - `exp`/`expm1`: Cody–Waite reduction x = k·ln2 + r with ln2 split in a high part with
//!   trailing zero bits (so k·ln2_hi is exact) and a low part, then e^r − 1 = r + r²·P(r) on
//!   |r| ≤ ln2/2 (P: a float32 minimax fit of degree 4 for f32, relative error 2^−28; the Taylor
//!   series to degree 13 for f64: truncation below 0.1 ulp), then scaling by 2^k in two steps so
//!   that 2^k never overflows on its own.
//! - `ln`/`ln_1p`: the fdlibm/musl scheme: x = 2^k·(1+f) with 1+f in [√½, √2), s = f/(2+f),
//!   log(1+f) = f − f²/2 + s·(f²/2 + R(s²)) with fdlibm's minimax coefficients Lg1..Lg7 (f64)
//!   and musl's logf coefficients (f32); `ln_1p` adds the rounding error of 1+x as c/(1+x).
//! - `log_cosh_tanh` in f32: ratios of polynomials fitted here (see `f32_impl::log_cosh_tanh_abs`)
//!   below |x| = 1.09, |x| − ln 2 + log1p(e^−2|x|) and 1 − 2e^−2|x|/(1 + e^−2|x|) above.

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
    /// Significand bits, the implicit one included (24 and 53).
    const MANTISSA_DIGITS: u32;
    /// A block of ones, read where a kernel's optional per-element factor is absent.
    const ONES_BLOCK: &'static [Self; crate::reduce::BLOCK];

    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn abs(self) -> Self;
    fn is_nan(self) -> bool;
    fn sqrt(self) -> Self;
    /// self·a + b with one rounding (a fused multiply-add: one instruction on every SIMD level
    /// above the x86-64 baseline, a libm call there), so every level gives the same bits.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// e^x for x ≤ 0 (or NaN), with `exp`'s bits there, in fewer operations: no upper clamp,
    /// and 2^k applied as one computed factor and one constant. What the softmax's e^(x − max)
    /// and the logistic functions' e^−|x| need.
    fn exp_nonpositive(self) -> Self;
    /// e^x − 1, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate near 0.
    fn ln_1p(self) -> Self;
    /// `self.ln()` where `of_self`, else `(-self).ln_1p()`, for `self` in [0, 1] (what it gives
    /// elsewhere is unspecified), lane by lane with one logarithm's work: the two share their
    /// reduction and polynomial. BCE needs both logarithms of a probability, but a hard label
    /// weights only one of them. Same bits as the two calls.
    fn ln_or_ln_1p_neg(self, of_self: bool) -> Self;

    /// The logistic function σ(x) = 1/(1 + e^−x), from e = e^−|x| (never overflows): 1/(1+e) for
    /// x ≥ 0 and e/(1+e) below, one division either way.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        let e = (-self.abs()).exp_nonpositive();
        let num = if self >= Self::ZERO { Self::ONE } else { e };
        num / (Self::ONE + e)
    }
    /// softplus(x) = log(1 + e^x), stably as max(x, 0) + log1p(e^−|x|).
    #[inline(always)]
    fn softplus(self) -> Self {
        let e = (-self.abs()).exp_nonpositive();
        // max(x, 0) reads NaN as 0, but e (and so the sum) is NaN then.
        let pos = if self > Self::ZERO { self } else { Self::ZERO };
        pos + e.ln_1p()
    }
    /// log σ(x) = −softplus(−x) = min(x, 0) − log1p(e^−|x|).
    #[inline(always)]
    fn log_sigmoid(self) -> Self {
        -(-self).softplus()
    }
    /// (softplus(−x), σ(x)) sharing one exponential: the loss and gradient parts of a
    /// logistic loss (BCE-with-logits, soft margin). Same bits as the two separate calls.
    #[inline(always)]
    fn softplus_neg_sigmoid(self) -> (Self, Self) {
        let e = (-self.abs()).exp_nonpositive();
        let neg = if self < Self::ZERO { -self } else { Self::ZERO };
        let num = if self >= Self::ZERO { Self::ONE } else { e };
        (neg + e.ln_1p(), num / (Self::ONE + e))
    }

    /// (softplus(x), σ(x)) sharing one exponential (soft margin: ℓ = softplus(t), ∂ℓ/∂t = σ(t)).
    /// Same bits as the two separate calls.
    #[inline(always)]
    fn softplus_sigmoid(self) -> (Self, Self) {
        let e = (-self.abs()).exp_nonpositive();
        let pos = if self > Self::ZERO { self } else { Self::ZERO };
        let num = if self >= Self::ZERO { Self::ONE } else { e };
        (pos + e.ln_1p(), num / (Self::ONE + e))
    }

    /// (log1p(e^−|x|), σ(x), σ(−x)) from one exponential and one division: the pieces of the
    /// logistic losses. Written with them, BCE-with-logits is max(x,0) − x·y + log1p(e^−|x|) and its
    /// gradient σ(x)·(1 − y) − σ(−x)·y: sums of same-signed terms for targets in [0, 1], so neither
    /// cancels where PyTorch's (1 − y)·x − log σ(x) and σ(x) − y do (|x| large). σ(x) and σ(−x)
    /// have the bits of `sigmoid`.
    #[inline(always)]
    fn logistic(self) -> (Self, Self, Self) {
        self.logistic_with(self.exp_neg_abs())
    }
    /// e^−|x| as an unevaluated sum hi + lo (lo = 0 in f64): the first half of `logistic`, for a
    /// kernel that runs the two halves as separate passes (`pointwise::Term::STAGED`).
    #[inline(always)]
    fn exp_neg_abs(self) -> (Self, Self) {
        ((-self.abs()).exp_nonpositive(), Self::ZERO)
    }
    /// `logistic` given `self.exp_neg_abs()`.
    #[inline(always)]
    fn logistic_with(self, (e, _): (Self, Self)) -> (Self, Self, Self) {
        let d = Self::ONE + e;
        // Two independent selects (at x = ±0, e = 1 serves as either numerator).
        let num = if self > Self::ZERO { Self::ONE } else { e };
        let num_neg = if self < Self::ZERO { Self::ONE } else { e };
        (e.ln_1p(), num / d, num_neg / d)
    }

    /// (log cosh x, tanh x): log-cosh's loss and gradient.
    #[inline(always)]
    fn log_cosh_tanh(self) -> (Self, Self) {
        self.log_cosh_tanh_with(self.log_cosh_pre())
    }
    /// The first half of `log_cosh_tanh` (its exponential), for a kernel that runs the two halves
    /// as separate passes (`pointwise::Term::STAGED`).
    ///
    /// This generic form has m = e^|x| − 1: cosh x − 1 = m²/(2(1+m)) and tanh|x| = t/(t+2) with
    /// t = m(m+2); both keep full relative accuracy for small x, where |x| + log1p(e^−2|x|) − ln 2
    /// would cancel, and t/(t+2) never rounds above 1 (the first half forms those two, the second
    /// the logarithm). Beyond |x| = 20, e^−2|x| is below half an ulp of either result in f32 and
    /// f64, so log cosh x = |x| − ln 2 and tanh |x| = 1. About five ulps in either type.
    #[inline(always)]
    fn log_cosh_pre(self) -> (Self, Self) {
        let a = self.abs();
        let far = a >= Self::from_f64(20.0); // false for NaN, which then propagates below
        let m = if far { Self::ZERO } else { a }.exp_m1();
        let t = m * (m + Self::TWO);
        (m * m / (Self::TWO + Self::TWO * m), t / (t + Self::TWO))
    }
    /// `log_cosh_tanh` given `self.log_cosh_pre()`.
    #[inline(always)]
    fn log_cosh_tanh_with(self, (c, th): (Self, Self)) -> (Self, Self) {
        let a = self.abs();
        let far = a >= Self::from_f64(20.0);
        let l = if far { a - Self::LN2 } else { c.ln_1p() };
        let th = if far { Self::ONE } else { th };
        (l, if self < Self::ZERO { -th } else { th })
    }

    /// `self` if `self > other`, else `other`; a NaN in `self` is kept (torch's clamp_min).
    #[inline(always)]
    fn clamp_min(self, lo: Self) -> Self {
        if self < lo { lo } else { self }
    }
    /// The larger of `self` and `o`, the other one where one is NaN (IEEE maxNum; the sign of a
    /// zero result is either). A max, not a select: a select that keeps a stored value is
    /// compiled to a masked store, which is slow on AMD processors.
    fn max_num(self, o: Self) -> Self;
    /// torch's `sign`, the subgradient its l1 loss and p = 1 norm pass back: −1 or +1, and +0 for
    /// ±0 and for NaN (so a NaN element's gradient is 0 there, as in torch).
    #[inline(always)]
    fn sgn(self) -> Self {
        if self > Self::ZERO {
            Self::ONE
        } else if self < Self::ZERO {
            -Self::ONE
        } else {
            Self::ZERO
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
        acc = acc.mul_add(x, T::from_f64(c[i]));
    }
    acc
}

// 1/k! for k = 2..=13, the Taylor coefficients of (e^r − 1 − r)/r².
const INV_FACT: [f64; 12] = [
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
];

/// P(r) ≈ (e^r − 1 − r)/r² on |r| ≤ ln2/2 in float32 coefficients, with a relative error of
/// 3.1·10^−9 (2^−28.3) in e^r: as accurate as the Taylor series to degree 7 with one term fewer.
/// Fitted by `tools/fit_float32.py`.
const EXP_POLY_F32: [f64; 5] = [0.49999994, 0.16666521, 0.041668262, 0.008368671, 0.001382104];

macro_rules! impl_float {
    (
        $t:ty, $bits:ty, $sbits:ty,
        mantissa_bits = $mbits:expr, exp_bias = $bias:expr,
        ln2_hi = $ln2hi:expr, ln2_lo = $ln2lo:expr,
        exp_clamp = ($lo:expr, $hi:expr), nonpositive_shift = $shift:expr, round_magic = $magic:expr,
        exp_poly = $expoly:expr, log_poly_odd = $lgodd:expr, log_poly_even = $lgeven:expr,
        sqrt_half_bits = $sqrth:expr, subnormal_scale_log2 = $subexp:expr, ones = $ones:ident
        $(, overrides = { $($overrides:tt)* })?
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
            const MANTISSA_DIGITS: u32 = <$t>::MANTISSA_DIGITS;
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
            fn max_num(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }

            #[inline(always)]
            fn exp(self) -> Self {
                let (k, r_hi, tail) = exp_reduce_impl(self);
                let (s1, s2) = pow2_split(k);
                (1.0 + (r_hi + tail)) * s1 * s2
            }

            #[inline(always)]
            fn exp_nonpositive(self) -> Self {
                let (k, r_hi, tail) = exp_reduce_clamped(if self < $lo { $lo } else { self });
                let (s, c) = pow2_nonpositive(k);
                (1.0 + (r_hi + tail)) * s * c
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

            #[inline(always)]
            fn ln_or_ln_1p_neg(self, of_self: bool) -> Self {
                // `ln` and `ln_1p` above, with the argument (x, or u = 1 + (−x)) selected before
                // the shared part. On [0, 1], ln_1p(−x) has u in [0, 1] (k ≤ 0, so c is the
                // k < 2 form) and neither function meets an infinity or a NaN.
                let x = self;
                let nx = -x;
                let u = 1.0 + nx;
                let sub = x < <$t>::MIN_POSITIVE;
                let xs = if sub { x * ((1 as $bits) << $subexp) as $t } else { x };
                let kadj: $sbits = if sub & of_self { -$subexp } else { 0 };
                let (k, f) = split_log(if of_self { xs } else { u });
                let c = if of_self { 0.0 } else { (nx - (u - 1.0)) / u };
                let r = log1p_core(f, small_int_to_float(k + kadj), c);
                if (if of_self { x } else { u }) == 0.0 { -<$t>::INFINITY } else { r }
            }

            $($($overrides)*)?
        }

        /// Splits e^x = 2^k·(1 + r_hi + tail): r_hi = x − k·ln2_hi is exact, tail is small.
        /// x is clamped first so that 2^k splits into two normal numbers (see `pow2_split`).
        #[inline(always)]
        fn exp_reduce_impl(x: $t) -> ($sbits, $t, $t) {
            // Two selects that keep a NaN (each is one min/max instruction).
            let xc = if x < $lo { $lo } else { x };
            exp_reduce_clamped(if xc > $hi { $hi } else { xc })
        }

        /// `exp_reduce_impl` for x already within the clamp's range (or NaN).
        #[inline(always)]
        fn exp_reduce_clamped(xc: $t) -> ($sbits, $t, $t) {
            const LOG2E: $t = std::f64::consts::LOG2_E as $t;
            // Round to the nearest integer with the magic-number trick: the sum's low mantissa
            // bits hold k, read as an integer (a float-to-int `as` cast saturates, which LLVM
            // can only do one lane at a time).
            let t = xc.mul_add(LOG2E, $magic);
            let kf = t - $magic;
            let k = (t.to_bits() as $sbits).wrapping_sub(($magic as $t).to_bits() as $sbits);
            let r_hi = (-kf).mul_add($ln2hi, xc);
            let r_lo = kf * $ln2lo;
            let r = r_hi - r_lo;
            let tail = (r * r).mul_add(horner(r, &$expoly), -r_lo);
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

        /// 2^k for k ≤ 0 within exp's clamped range as 2^(k + shift), normal, and the constant
        /// 2^−shift: a product with the first is exact, so the second rounds once, as with
        /// `pow2_split`'s two factors (the same bits) for a third of its integer operations.
        #[inline(always)]
        fn pow2_nonpositive(k: $sbits) -> ($t, $t) {
            let s = <$t>::from_bits((k.wrapping_add($bias + $shift) as $bits) << $mbits);
            (s, <$t>::from_bits((($bias - $shift) as $bits) << $mbits))
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
            let r = z.mul_add(horner(w, &ODD), w * horner(w, &EVEN));
            let hfsq = 0.5 * f * f;
            s.mul_add(hfsq + r, dk.mul_add($ln2lo, c)) - hfsq + f + dk * $ln2hi
        }
    };
}

mod f32_impl {
    use super::*;
    impl_float!(
        f32, u32, i32,
        mantissa_bits = 23, exp_bias = 127,
        ln2_hi = 6.9313812256e-01f32, ln2_lo = 9.0580006145e-06f32,
        // exp's k lies in [−216, 0] for x in [−150, 0]: 2^(k + 100) is normal.
        exp_clamp = (-150.0f32, 100.0f32), nonpositive_shift = 100, round_magic = 12582912.0f32,
        exp_poly = EXP_POLY_F32,
        // musl logf: Lg1, Lg3 and Lg2, Lg4
        log_poly_odd = [0.666_666_626_93f64, 0.284_987_866_88],
        log_poly_even = [0.400_009_721_52f64, 0.242_790_788_41],
        sqrt_half_bits = 0x3f35_04f3u32, subnormal_scale_log2 = 25,
        ones = ONES_F32,
        overrides = {
            #[inline(always)]
            fn sigmoid(self) -> Self {
                let p = Logistic::of(self);
                if self >= 0.0 { p.ratio(1.0, 0.0) } else { p.ratio(p.e_hi, p.e_lo) }
            }
            #[inline(always)]
            fn softplus(self) -> Self {
                let p = Logistic::of(self);
                let (l_hi, l_lo) = p.log1p_e();
                add_positive(if self > 0.0 { self } else { 0.0 }, l_hi, l_lo)
            }
            #[inline(always)]
            fn log_sigmoid(self) -> Self {
                -(-self).softplus()
            }
            #[inline(always)]
            fn exp_neg_abs(self) -> (Self, Self) {
                exp_neg_abs_parts(self)
            }
            #[inline(always)]
            fn logistic_with(self, (e_hi, e_lo): (Self, Self)) -> (Self, Self, Self) {
                let p = Logistic::from_exp(e_hi, e_lo);
                let (l_hi, l_lo) = p.log1p_e();
                let big = p.ratio(1.0, 0.0); // σ(|x|)
                let small = p.ratio(p.e_hi, p.e_lo); // σ(−|x|)
                let s = if self >= 0.0 { big } else { small };
                let s_neg = if self <= 0.0 { big } else { small };
                (l_hi + l_lo, s, s_neg)
            }
            #[inline(always)]
            fn softplus_sigmoid(self) -> (Self, Self) {
                let p = Logistic::of(self);
                let (l_hi, l_lo) = p.log1p_e();
                let s = if self >= 0.0 { p.ratio(1.0, 0.0) } else { p.ratio(p.e_hi, p.e_lo) };
                (add_positive(if self > 0.0 { self } else { 0.0 }, l_hi, l_lo), s)
            }
            #[inline(always)]
            fn softplus_neg_sigmoid(self) -> (Self, Self) {
                let p = Logistic::of(self);
                let (l_hi, l_lo) = p.log1p_e();
                let s = if self >= 0.0 { p.ratio(1.0, 0.0) } else { p.ratio(p.e_hi, p.e_lo) };
                (add_positive(if self < 0.0 { -self } else { 0.0 }, l_hi, l_lo), s)
            }
            // The exponential in the first pass, the polynomials in the second: about half the
            // generic form's time (and a quarter of its error).
            #[inline(always)]
            fn log_cosh_pre(self) -> (Self, Self) {
                (exp_nonpositive_floored(-2.0 * self.abs()), 0.0)
            }
            #[inline(always)]
            fn log_cosh_tanh_with(self, (e, _): (Self, Self)) -> (Self, Self) {
                let (l, th) = log_cosh_tanh_abs(self.abs(), e);
                (l, if self < 0.0 { -th } else { th })
            }
        }
    );

    /// e^x for x ≤ 0 (or NaN) as `log_cosh_tanh_abs` needs it: `exp_nonpositive` with x clamped at
    /// −87 instead of −150, so that 2^k is a single normal number and one multiplication scales
    /// (2.6% of log_cosh's value_and_grad time against `exp_nonpositive`, 5% against `exp`). Below
    /// x = −87 it gives e^−87 ≈ 1.6·10^−38, which log cosh only reads where a ≥ 43: there e lies
    /// far below half an ulp of a − ln 2 and of 1.
    #[inline(always)]
    fn exp_nonpositive_floored(x: f32) -> f32 {
        let (k, r_hi, tail) = exp_reduce_clamped(if x < -87.0 { -87.0 } else { x });
        (1.0 + (r_hi + tail)) * f32::from_bits((k.wrapping_add(127) as u32) << 23)
    }

    /// (log cosh a, tanh a) for a ≥ 0 (or NaN) given e = e^−2a, without a logarithm:
    /// - below a = 1.09, ratios of polynomials in w = a²: log cosh a = a²/2 + w²·QN(w)/QD(w)
    ///   and tanh a = a + a·w·RN(w)/RD(w), each a correction (under a fifth and two fifths of the
    ///   result) added to an exact leading term by one fused multiply-add;
    /// - from a = 1.09, log cosh a = a + (log1p(e) − ln 2) with log1p(e) = e + e²·S(e)
    ///   (e ≤ 0.114), and tanh a = 1 − 2·e/(1 + e). 1.09 is where log cosh reaches 0.5, so the
    ///   rounding of log1p(e) − ln 2 (at most 2^−25) is at most half an ulp of the result.
    ///
    /// The ratios replace polynomials of degrees 6 and 7 (as accurate): this loop is bound by its
    /// multiply-adds, and a division runs beside them, in a unit of its own. Both sides are computed
    /// and one selected, so the ratios' seven multiply-adds and two divisions instead of thirteen
    /// multiply-adds took about 5% off log_cosh's time. They cost accuracy in the last bits: the
    /// worst errors rose from 1.10 and 1.14 ulp to 1.24 and 1.38 (near a = 1.08, where the
    /// corrections are largest), still within 1 ulp of the correctly rounded results.
    ///
    /// QN/QD, RN/RD and S: weighted least-squares fits approaching minimax (`tools/fit_float32.py`:
    /// Lawson's iteration against 40-digit mpmath values, linearised for the ratios), with
    /// relative errors of 1.3·10^−9, 1.0·10^−9 and 4.4·10^−10 of the result: a few hundredths of
    /// an ulp. NaN takes the large side and stays NaN; e = 0 (a beyond 52) gives a − ln 2 and 1.
    /// Every float32 input is within 1 ulp of the correctly rounded results (the sweep in
    /// `accuracy`); the generic form in float32 was about 5 ulps away.
    #[inline(always)]
    fn log_cosh_tanh_abs(a: f32, e: f32) -> (f32, f32) {
        // Float32 coefficients, fitted one at a time with the earlier ones fixed at their rounded
        // values (rounding them all after a float64 fit put a polynomial's error at 3·10^−8).
        // Printed by tools/fit_float32.py.
        const S: [f64; 4] = [-0.49999696, 0.33313525, -0.2455191, 0.15659104];
        const QN: [f64; 3] = [-0.083333306, -0.020405764, -0.00013121069];
        const QD: [f64; 3] = [1.0, 0.51153123, 0.05705202];
        const RN: [f64; 2] = [-0.3333333, -0.014638092];
        const RD: [f64; 3] = [1.0, 0.4439138, 0.015662039];
        let w = a * a;
        let l_small = (0.5 * a).mul_add(a, (w * w) * (horner(w, &QN) / horner(w, &QD)));
        let th_small = a.mul_add(w * (horner(w, &RN) / horner(w, &RD)), a);
        let log1p_e_minus_ln2 = e.mul_add(e.mul_add(horner(e, &S), 1.0), -std::f32::consts::LN_2);
        let l_large = a + log1p_e_minus_ln2;
        let th_large = (-2.0f32).mul_add(e / (1.0 + e), 1.0);
        if a < 1.09 { (l_small, th_small) } else { (l_large, th_large) }
    }

    // The logistic functions in float32 carry e^−|x| and log(1 + e^−|x|) as unevaluated sums of
    // two float32s (about 2^−30 relative error) and round once at the end: composing the float32
    // exp, ln_1p and a division rounds three or four times (up to 2 ulp, e.g. σ(x) = e/(1+e) where
    // e lies just above a power of two and σ just below). Everything stays in float32 lanes, with
    // fused multiply-adds giving exact residuals; the exhaustive test in `accuracy` bounds the
    // result.

    /// The work the logistic functions of x share: e^−|x| = e_hi + e_lo, and 1 + e^−|x| = d + c
    /// with d its float32 rounding, and q = 1/d rounded.
    struct Logistic {
        e_hi: f32,
        e_lo: f32,
        d: f32,
        c: f32,
        q: f32,
    }

    /// e^−|x| = 2^k·(1 + r_hi + tail) = 2^k·(hi + lo) as (e_hi, e_lo): t = r_hi + tail and
    /// hi = 1 + t rounded, with both rounding errors (Fast2Sum twice) in lo.
    ///
    /// −|x| ≤ 0 needs only exp's lower clamp, and 2^k is applied as in `exp_nonpositive`. The
    /// first product is exact (lo's too, wherever e^−|x| is normal), so each part rounds once.
    #[inline(always)]
    fn exp_neg_abs_parts(x: f32) -> (f32, f32) {
        let y = -x.abs();
        let (k, r_hi, tail) = exp_reduce_clamped(if y < -150.0 { -150.0 } else { y });
        let t = r_hi + tail;
        let t_err = (r_hi - t) + tail; // exact where |r_hi| ≥ |tail|; else both are tiny
        let hi = 1.0 + t;
        let lo = ((1.0 - hi) + t) + t_err;
        let (s, c) = pow2_nonpositive(k);
        (hi * s * c, lo * s * c)
    }

    impl Logistic {
        #[inline(always)]
        fn of(x: f32) -> Logistic {
            let (e_hi, e_lo) = exp_neg_abs_parts(x);
            Logistic::from_exp(e_hi, e_lo)
        }

        /// The shared work from e^−|x| = e_hi + e_lo.
        #[inline(always)]
        fn from_exp(e_hi: f32, e_lo: f32) -> Logistic {
            let d = 1.0 + e_hi;
            let c = ((1.0 - d) + e_hi) + e_lo; // exact error of d (e_hi ≤ 1), plus e_lo
            Logistic { e_hi, e_lo, d, c, q: 1.0 / d }
        }

        /// (n_hi + n_lo)/(d + c) rounded once (to within 2^−40 or so): y = n_hi·q corrected by one
        /// Newton step whose residual n − (d + c)·y is formed with fused multiply-adds.
        #[inline(always)]
        fn ratio(&self, n_hi: f32, n_lo: f32) -> f32 {
            let y = n_hi * self.q;
            let rho = (-self.d).mul_add(y, n_hi) + (-self.c).mul_add(y, n_lo);
            rho.mul_add(self.q, y)
        }

        /// log(1 + e^−|x|) = log(d + c) = log d + c/d as l_hi + l_lo. With d = 2^k·(1 + f)
        /// (k = 0, 1; f exact) and s = f/(2 + f) carried as s + s_lo: log(1 + f) = 2·atanh(s)
        /// = 2s + 2s_lo + s·z·A(z) with z = s², where the last term is below 1% of the total and
        /// A stands in for the series 2/3 + 2z/5 + 2z²/7 + ...
        #[inline(always)]
        fn log1p_e(&self) -> (f32, f32) {
            let d = self.d;
            let big = d >= std::f32::consts::SQRT_2;
            let f = if big { d * 0.5 } else { d } - 1.0;
            let kf = if big { 1.0f32 } else { 0.0 };
            let inv = 1.0 / (2.0 + f);
            let s = f * inv;
            // f − s·(2 + f), with f − 2s exact (Sterbenz: 2s/f = 2/(2 + f) lies in [0.8, 1.2]).
            let rho = (-s).mul_add(f, f - 2.0 * s);
            let s_lo = rho * inv;
            let z = s * s;
            // A(z) = (2·atanh(s)/s − 2)/z on z ≤ 0.0295 (|s| ≤ 0.172) to 8·10^−10 of the
            // result, where the series needs five terms; tools/fit_float32.py.
            const ATANH: [f64; 3] = [0.66666776, 0.39977553, 0.29872137];
            let poly = s * (z * horner(z, &ATANH));
            // k·ln2 (hi part exact) + 2s, then the small terms; |k·ln2_hi| ≥ |2s| when k = 1.
            const LN2_HI: f32 = std::f32::consts::LN_2;
            const LN2_LO: f32 = (std::f64::consts::LN_2 - LN2_HI as f64) as f32;
            let a = kf * LN2_HI;
            let b = 2.0 * s;
            let l_hi = a + b;
            let small = kf.mul_add(LN2_LO, 2.0 * s_lo) + poly + self.c * self.q;
            let l_lo = ((a - l_hi) + b) + small;
            // For tiny e, log d and c/d nearly cancel (d − 1 is e with its low bits cut off) and
            // the rounding of c·q would show: there log(1 + e) = e − e²/2 + e³/3 (next term
            // below 2^−36·e for e < 2^−12).
            let (e_hi, e_lo) = (self.e_hi, self.e_lo);
            let tiny_lo = (e_hi * e_hi).mul_add(e_hi.mul_add(1.0 / 3.0, -0.5), e_lo);
            if e_hi < 1.0 / 4096.0 { (e_hi, tiny_lo) } else { (l_hi, l_lo) }
        }
    }

    /// pos + l_hi + l_lo for pos ≥ 0 and log terms l > 0, rounded once: the error of pos + l_hi
    /// (Fast2Sum on the larger and smaller of the two) joins l_lo.
    #[inline(always)]
    fn add_positive(pos: f32, l_hi: f32, l_lo: f32) -> f32 {
        let (big, small) = if pos > l_hi { (pos, l_hi) } else { (l_hi, pos) };
        let sum = big + small;
        let err = (big - sum) + small;
        // sum = +inf (pos = +inf, or pos + l_hi overflowing) would turn err into NaN.
        if sum == f32::INFINITY { sum } else { sum + (err + l_lo) }
    }
}

mod f64_impl {
    use super::*;
    impl_float!(
        f64, u64, i64,
        mantissa_bits = 52, exp_bias = 1023,
        ln2_hi = 6.93147180369123816490e-01f64, ln2_lo = 1.90821492927058770002e-10f64,
        // exp's k lies in [−1076, 0] for x in [−746, 0]: 2^(k + 600) is normal.
        exp_clamp = (-746.0f64, 710.0f64), nonpositive_shift = 600, round_magic = 6755399441055744.0f64,
        exp_poly = INV_FACT,
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

/// Accuracy of the float32 functions over every float32 input, and of the float64 ones on random
/// and edge-case inputs, against f64 / libm references.
///
/// The exhaustive sweep (all 2^32 bit patterns per function, through the same vectorised code path
/// the kernels use, on the active SIMD level) is `#[ignore]`d because it takes minutes:
///
/// ```text
/// cargo test --release --no-default-features -- --ignored exhaustive --nocapture
/// ```
///
/// Metrics per function: `dist` = the largest distance in units in the last place between our
/// result and the correctly rounded one (the f64 reference rounded to f32), `err` = the largest
/// error against the f64 reference itself, in ulps of the result. `FASTLOSS_SWEEP=exp,ln` limits
/// the sweep to some functions.
///
/// Full sweep over all 2^32 inputs of every float32 function as it is now (fused multiply-adds,
/// the logistic functions in float32 lanes with the double-float32 assembly in `f32_impl`), each
/// in its own lane loop compiled for the level (`eval_at`); AVX-512 on a 2-core AMD EPYC,
/// 2026-11-22, 304 s for all nine:
///
/// ```text
///          exp: max dist 1 ulp (at 5.9604645e-8),  max err 0.875 ulp (at 1.559662e1)
///       exp_m1: max dist 1 ulp (at 8.42937e-8),    max err 1.233 ulp (at 1.663553e1)
///           ln: max dist 1 ulp (at 9.14e-43),      max err 0.835 ulp (at 1.4054595e0)
///        ln_1p: max dist 1 ulp (at 7.450581e-8),   max err 0.835 ulp (at 4.0545952e-1)
///      sigmoid: max dist 1 ulp (at 3.5762787e-7),  max err 0.802 ulp (at -8.629525e1)
///     softplus: max dist 1 ulp (at 6.341396e-8),   max err 0.802 ulp (at -8.629525e1)
///  log_sigmoid: max dist 1 ulp (at 5.579534e-8),   max err 0.802 ulp (at 8.629525e1)
///     log_cosh: max dist 1 ulp (at 2.2209882e-16), max err 1.235 ulp (at 1.082527e0)
///         tanh: max dist 1 ulp (at 6.398295e-4),   max err 1.384 ulp (at 1.0854976e0)
/// ```
///
/// (Earlier sweeps on an AVX2 machine, 2026-11-21/22, called each function through a fn pointer:
/// not inlined, that ran its baseline code, and gave the same figures for the code of then.)
/// The figures hold for every level:
/// `every_simd_level_gives_the_same_bits` checks that the baseline, AVX2 and AVX-512 code agree bit
/// for bit, as they must with every multiply-add fused (one rounding on each level).
///
/// (Composed from the float32 exp, ln_1p and a division, sigmoid / softplus / log_sigmoid reached
/// 2 ulp; assembled in float64 they met 1 ulp at about twice the cost of the float32 version.)
#[cfg(test)]
mod accuracy {
    use super::Float;

    /// An order-preserving map of f32 to integers (−0 and +0 coincide), so ulp distances are
    /// differences.
    fn ord32(x: f32) -> i64 {
        let b = x.to_bits() as i32;
        if b < 0 { i32::MIN as i64 - b as i64 } else { b as i64 }
    }

    /// (ulp distance to the correctly rounded result, error in ulps against the exact value);
    /// infinite where the NaN-ness or an infinity differs.
    fn score32(got: f32, exact: f64) -> (f64, f64) {
        let want = exact as f32;
        if got.is_nan() || want.is_nan() {
            return if got.is_nan() && want.is_nan() { (0.0, 0.0) } else { (f64::INFINITY, f64::INFINITY) };
        }
        if got.is_infinite() || want.is_infinite() {
            return if got == want { (0.0, 0.0) } else { (f64::INFINITY, f64::INFINITY) };
        }
        let dist = (ord32(got) - ord32(want)).abs() as f64;
        // ulp of the correctly rounded result (subnormal spacing at the bottom).
        let a = want.abs();
        let ulp = if a == f32::MAX { (a - f32::from_bits(a.to_bits() - 1)) as f64 } else {
            (f32::from_bits(a.to_bits() + 1) - a) as f64
        };
        (dist, ((got as f64) - exact).abs() / ulp)
    }

    // f64 references: libm where it has the function, else the same stable formula in f64
    // (its ~1e-16 relative error is invisible at f32 resolution).
    fn ref_sigmoid(x: f64) -> f64 {
        if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { let e = x.exp(); e / (1.0 + e) }
    }
    fn ref_softplus(x: f64) -> f64 {
        if x.is_nan() { return x; }
        if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }
    }
    fn ref_log_sigmoid(x: f64) -> f64 {
        -ref_softplus(-x)
    }

    fn ref_log_cosh(x: f64) -> f64 {
        let a = x.abs();
        if a > 30.0 { return a - std::f64::consts::LN_2; }
        let m = a.exp_m1();
        (m * m / (2.0 * (1.0 + m))).ln_1p()
    }

    type F32Fn = fn(f32) -> f32;

    /// The float32 functions with their f64 references: `FUNCTIONS`, and `eval_at`, which runs one
    /// of them over a slice in a lane loop of its own.
    macro_rules! f32_functions {
        ($($name:literal: |$x:ident| $body:expr, $r:expr;)*) => {
            const FUNCTIONS: [(&str, F32Fn, fn(f64) -> f64); [$($name),*].len()] =
                [$(($name, |$x: f32| $body, $r)),*];

            /// out[i] = FUNCTIONS[k](x[i]) in a lane loop compiled for `level` (None: the active
            /// level, as the kernels run); false where the CPU lacks `level`. Each function is
            /// passed as an `#[inline(always)]` closure, whose type is its own, so it is inlined
            /// into the loop (called through its fn pointer, or not inlined, it would run as
            /// baseline code).
            fn eval_at(k: usize, level: Option<crate::simd::Level>, x: &[f32], out: &mut [f32]) -> bool {
                let mut i = 0;
                $(
                    if k == i {
                        return lanes(level, x, out, #[inline(always)] |$x: f32| $body);
                    }
                    i += 1;
                )*
                unreachable!("no function {k} of {i}")
            }
        };
    }

    f32_functions! {
        "exp": |x| Float::exp(x), f64::exp;
        "exp_m1": |x| Float::exp_m1(x), f64::exp_m1;
        "ln": |x| Float::ln(x), f64::ln;
        "ln_1p": |x| Float::ln_1p(x), f64::ln_1p;
        "sigmoid": |x| Float::sigmoid(x), ref_sigmoid;
        "softplus": |x| Float::softplus(x), ref_softplus;
        "log_sigmoid": |x| Float::log_sigmoid(x), ref_log_sigmoid;
        "log_cosh": |x| x.log_cosh_tanh().0, ref_log_cosh;
        "tanh": |x| x.log_cosh_tanh().1, f64::tanh;
    }

    /// `eval_at`'s loop for one function.
    #[inline(always)]
    fn lanes(level: Option<crate::simd::Level>, x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) -> bool {
        match level {
            None => crate::simd::vectorized(
                #[inline(always)]
                || {
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = f(v);
                    }
                },
            ),
            Some(level) => {
                return crate::simd::vectorized_at(
                    level,
                    #[inline(always)]
                    || {
                        for (o, &v) in out.iter_mut().zip(x) {
                            *o = f(v);
                        }
                    },
                )
                .is_some();
            }
        }
        true
    }

    /// `ln_or_ln_1p_neg` (BCE's logarithm for hard labels) gives the bits of `ln` and of
    /// `ln_1p(−x)` over [0, 1]: every 61st float32 there, ±0, the subnormals' edges and 1, in a
    /// lane loop of the active SIMD level with both sides mixed in every vector; random and edge
    /// float64 values.
    #[test]
    fn ln_or_ln_1p_neg_gives_the_bits_of_ln_and_ln_1p() {
        let mut x: Vec<f32> = (0..=1.0f32.to_bits()).step_by(61).map(f32::from_bits).collect();
        for e in [0.0, -0.0, 1.0, f32::from_bits(1), f32::MIN_POSITIVE, 0.5, 1.0 - f32::EPSILON / 2.0] {
            x.extend([e; 3]); // both sides (the side follows the index)
        }
        let n = x.len();
        let (mut got, mut want) = (vec![0.0f32; n], vec![0.0f32; n]);
        crate::simd::vectorized(
            #[inline(always)]
            || {
                for i in 0..n {
                    let of_self = i % 3 != 1;
                    got[i] = x[i].ln_or_ln_1p_neg(of_self);
                    want[i] = if of_self { Float::ln(x[i]) } else { Float::ln_1p(-x[i]) };
                }
            },
        );
        for i in 0..n {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "x = {:e}, of_self = {}", x[i], i % 3 != 1);
        }
        let mut rng = xorshift(0x9E37_79B9_7F4A_7C15);
        let mut x64: Vec<f64> = vec![0.0, -0.0, 1.0, 5e-324, f64::MIN_POSITIVE, 0.5, 1.0 - f64::EPSILON / 2.0];
        x64.extend((0..1 << 16).map(|_| (rng() >> 11) as f64 / (1u64 << 53) as f64));
        x64.extend((0..1 << 12).map(|_| f64::from_bits(rng() % 1.0f64.to_bits())));
        for x in x64 {
            for of_self in [true, false] {
                let want = if of_self { Float::ln(x) } else { Float::ln_1p(-x) };
                assert_eq!(x.ln_or_ln_1p_neg(of_self).to_bits(), want.to_bits(), "x = {x:e}, of_self = {of_self}");
            }
        }
    }

    /// `exp_nonpositive` gives the bits of `exp` for x ≤ 0: every 61st float32 from −0 to −∞ (all
    /// of them: `cargo test --release --no-default-features -- --ignored exp_nonpositive_every`) and
    /// NaN in a lane loop of the active SIMD level; random and edge float64 values down to −∞.
    #[test]
    fn exp_nonpositive_gives_the_bits_of_exp() {
        check_exp_nonpositive(61);
        let mut rng = xorshift(0x2545_F491_4F6C_DD1D);
        let mut x64: Vec<f64> = vec![-0.0, 0.0, -5e-324, -708.4, -709.8, -745.1, -745.2, -746.0, -1e300, f64::NEG_INFINITY];
        x64.extend((0..1 << 16).map(|_| -((rng() >> 11) as f64 / (1u64 << 53) as f64) * 800.0));
        x64.extend((0..1 << 12).map(|_| f64::from_bits(rng() | (1 << 63))).filter(|v| !v.is_nan()));
        for x in x64 {
            assert_eq!(x.exp_nonpositive().to_bits(), Float::exp(x).to_bits(), "x = {x:e}");
        }
        assert!(f64::NAN.exp_nonpositive().is_nan());
    }

    #[test]
    #[ignore = "every float32 ≤ 0; run with --release -- --ignored exp_nonpositive_every"]
    fn exp_nonpositive_every_float32() {
        check_exp_nonpositive(1);
    }

    /// In vectors of 2^20 inputs, so that the full sweep needs no more memory than a sample.
    fn check_exp_nonpositive(step: usize) {
        let all = ((-0.0f32).to_bits()..=f32::NEG_INFINITY.to_bits()).step_by(step).map(f32::from_bits);
        let edges = [f32::NAN, f32::NEG_INFINITY, -f32::from_bits(1), -103.972, -103.973, -87.3, -88.8];
        let mut inputs = all.chain(edges).peekable();
        let (mut got, mut want) = (vec![0.0f32; 1 << 20], vec![0.0f32; 1 << 20]);
        while inputs.peek().is_some() {
            let x: Vec<f32> = inputs.by_ref().take(1 << 20).collect();
            let (got, want) = (&mut got[..x.len()], &mut want[..x.len()]);
            crate::simd::vectorized(
                #[inline(always)]
                || {
                    for i in 0..x.len() {
                        got[i] = x[i].exp_nonpositive();
                        want[i] = Float::exp(x[i]);
                    }
                },
            );
            for i in 0..x.len() {
                assert_eq!(bits(got[i]), bits(want[i]), "x = {:e}", x[i]);
            }
        }
    }

    /// The same for every float32 in [0, 1] and −0, each side in its own vectorised loop (the
    /// test above mixes the sides within vectors). Seconds with AVX2, far longer at the baseline
    /// level (its fused multiply-adds are libm calls), hence ignored:
    /// `cargo test --release --no-default-features -- --ignored ln_or_ln_1p_neg_every --nocapture`.
    #[test]
    #[ignore = "every float32 in [0, 1]; run with --release -- --ignored ln_or_ln_1p_neg_every"]
    fn ln_or_ln_1p_neg_every_float32_in_the_unit_interval() {
        const STEP: u32 = 1 << 20;
        let end = 1.0f32.to_bits() + 1;
        let mut x = vec![0.0f32; STEP as usize];
        let (mut got, mut want) = (vec![0.0f32; STEP as usize], vec![0.0f32; STEP as usize]);
        let mut checked = 0u64;
        for start in (0..end).step_by(STEP as usize).chain([(-0.0f32).to_bits()]) {
            let m = if start > end { 1 } else { STEP.min(end - start) as usize };
            for (i, v) in x[..m].iter_mut().enumerate() {
                *v = f32::from_bits(start + i as u32);
            }
            for of_self in [true, false] {
                let (x, got, want) = (&x[..m], &mut got[..m], &mut want[..m]);
                crate::simd::vectorized(
                    #[inline(always)]
                    || {
                        for i in 0..m {
                            got[i] = x[i].ln_or_ln_1p_neg(of_self);
                            want[i] = if of_self { Float::ln(x[i]) } else { Float::ln_1p(-x[i]) };
                        }
                    },
                );
                for i in 0..m {
                    assert_eq!(got[i].to_bits(), want[i].to_bits(), "x = {:e}, of_self = {of_self}", x[i]);
                }
                checked += m as u64;
            }
        }
        println!("ln_or_ln_1p_neg: {checked} evaluations, all with the bits of ln / ln_1p(-x)");
    }

    #[derive(Clone, Copy, Debug, Default)]
    struct Worst {
        dist: f64,
        dist_at: f32,
        err: f64,
        err_at: f32,
    }

    impl Worst {
        fn merge(&mut self, o: Worst) {
            if o.dist > self.dist {
                (self.dist, self.dist_at) = (o.dist, o.dist_at);
            }
            if o.err > self.err {
                (self.err, self.err_at) = (o.err, o.err_at);
            }
        }
    }

    /// Scores every function on the inputs `bits(i)` for i in `range`, split over threads.
    fn sweep(range: std::ops::Range<u64>, bits: impl Fn(u64) -> u32 + Sync) -> Vec<Worst> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let len = range.end - range.start;
        let per = len.div_ceil(threads);
        let parts: Vec<Vec<Worst>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let lo = range.start + t * per;
                    let hi = (lo + per).min(range.end);
                    let bits = &bits;
                    s.spawn(move || {
                        const CH: usize = 1 << 14;
                        let mut worst = vec![Worst::default(); FUNCTIONS.len()];
                        let (mut x, mut y) = (vec![0.0f32; CH], vec![0.0f32; CH]);
                        let mut start = lo;
                        while start < hi {
                            let m = CH.min((hi - start) as usize);
                            for (i, v) in x[..m].iter_mut().enumerate() {
                                *v = f32::from_bits(bits(start + i as u64));
                            }
                            for (k, (name, _, r)) in FUNCTIONS.iter().enumerate() {
                                if !selected(name) {
                                    continue;
                                }
                                eval_at(k, None, &x[..m], &mut y[..m]);
                                let mut w = Worst::default();
                                for i in 0..m {
                                    let (d, e) = score32(y[i], r(x[i] as f64));
                                    w.merge(Worst { dist: d, dist_at: x[i], err: e, err_at: x[i] });
                                }
                                worst[k].merge(w);
                            }
                            start += m as u64;
                        }
                        worst
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut worst = vec![Worst::default(); FUNCTIONS.len()];
        for p in parts {
            for (w, o) in worst.iter_mut().zip(p) {
                w.merge(o);
            }
        }
        for ((name, _, _), w) in FUNCTIONS.iter().zip(&worst).filter(|((name, _, _), _)| selected(name)) {
            println!(
                "{name:>12}: max dist {} ulp (at {:e}), max err {:.3} ulp (at {:e}) [{}]",
                w.dist, w.dist_at, w.err, w.err_at, crate::simd::level().name()
            );
        }
        worst
    }

    /// `FASTLOSS_SWEEP=sigmoid,softplus` limits a sweep to the named functions (default: all).
    fn selected(name: &str) -> bool {
        std::env::var("FASTLOSS_SWEEP").map_or(true, |v| v.split(',').any(|s| s.trim() == name))
    }

    fn assert_within_one_ulp(worst: &[Worst]) {
        for ((name, _, _), w) in FUNCTIONS.iter().zip(worst) {
            assert!(w.dist <= 1.0, "{name}: {} ulp from the correctly rounded result at {:e}", w.dist, w.dist_at);
        }
    }

    #[test]
    #[ignore = "minutes: every float32 input; run with --release -- --ignored exhaustive"]
    fn exhaustive_f32_within_one_ulp() {
        let worst = sweep(0..1u64 << 32, |i| i as u32);
        assert_within_one_ulp(&worst);
    }

    /// A xorshift generator (no dependency for a test).
    fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// The CI-sized version of the sweep: 4M random bit patterns (every exponent, both signs,
    /// NaNs and infinities among them) plus a dense walk over [−120, 120], where the losses
    /// evaluate these functions.
    #[test]
    fn sampled_f32_within_one_ulp() {
        let n = 1u64 << 22;
        let mut rng = xorshift(0x9E37_79B9_7F4A_7C15);
        let random: Vec<u32> = (0..n).map(|_| (rng() >> 32) as u32).collect();
        let worst = sweep(0..n, |i| random[i as usize]);
        assert_within_one_ulp(&worst);
        let dense = sweep(0..n, |i| (-120.0f32 + 240.0 * (i as f32 / n as f32)).to_bits());
        assert_within_one_ulp(&dense);
    }

    /// Every SIMD level gives the bits of the baseline (scalar code, libm's fused multiply-add) for
    /// every float32 function, on 2^20 inputs spread over all bit patterns and a walk over
    /// [−120, 120]: so the exhaustive sweep, run at one level, covers them all. (Kernels at
    /// `FASTLOSS_SIMD`-forced levels are compared through Python; this compares the functions
    /// themselves, in one process, including levels above one that CI forces.)
    #[test]
    fn every_simd_level_gives_the_same_bits() {
        use crate::simd::Level;
        let n = 1usize << 20;
        let mut x: Vec<f32> = (0..n as u64).map(|i| f32::from_bits((i * 4099) as u32)).collect();
        x.extend((0..n).map(|i| -120.0f32 + 240.0 * (i as f32 / n as f32)));
        let (mut want, mut got) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
        for (k, (name, _, _)) in FUNCTIONS.iter().enumerate() {
            assert!(eval_at(k, Some(Level::Baseline), &x, &mut want));
            let t = std::time::Instant::now();
            eval_at(k, Some(Level::Baseline), &x, &mut want);
            let mut times = vec![format!("baseline {:.2} ns", t.elapsed().as_nanos() as f64 / x.len() as f64)];
            for level in [Level::Avx2, Level::Avx512] {
                let t = std::time::Instant::now();
                if !eval_at(k, Some(level), &x, &mut got) {
                    continue;
                }
                times.push(format!("{} {:.2} ns", level.name(), t.elapsed().as_nanos() as f64 / x.len() as f64));
                for i in 0..x.len() {
                    assert_eq!(got[i].to_bits(), want[i].to_bits(), "{name}({:e}) at {level:?}", x[i]);
                }
            }
            // Per-element times: a level far faster than the baseline ran vectorised code.
            println!("{name}: same bits at every level; {}", times.join(", "));
        }
    }

    /// The bits of v, with any NaN as the canonical one: which NaN an operation on a NaN returns
    /// is the hardware's choice (x86-64 keeps the operand's sign, aarch64 can flip it), and the
    /// functions promise a NaN, not its bits.
    fn bits<T: Float>(v: T) -> u64 {
        if v.is_nan() { u64::MAX } else { v.to_f64().to_bits() }
    }

    #[test]
    fn f32_special_values() {
        for &(x, s, sp, ls) in &[
            (0.0f32, 0.5f32, std::f32::consts::LN_2, -std::f32::consts::LN_2),
            (-0.0, 0.5, std::f32::consts::LN_2, -std::f32::consts::LN_2),
            (f32::INFINITY, 1.0, f32::INFINITY, 0.0),
            (f32::NEG_INFINITY, 0.0, 0.0, f32::NEG_INFINITY),
            (1e4, 1.0, 1e4, 0.0),
            (-1e4, 0.0, 0.0, -1e4),
            (f32::MAX, 1.0, f32::MAX, 0.0),
            (-f32::MAX, 0.0, 0.0, -f32::MAX),
        ] {
            assert_eq!(x.sigmoid(), s, "sigmoid({x})");
            assert_eq!(x.softplus(), sp, "softplus({x})");
            assert_eq!(x.log_sigmoid(), ls, "log_sigmoid({x})");
            let (a, b) = x.softplus_neg_sigmoid();
            assert_eq!(a.to_bits(), (-x).softplus().to_bits());
            assert_eq!(b.to_bits(), x.sigmoid().to_bits());
            let (a, b) = x.softplus_sigmoid();
            assert_eq!(a.to_bits(), x.softplus().to_bits());
            assert_eq!(b.to_bits(), x.sigmoid().to_bits());
        }
        for f in [Float::sigmoid, Float::softplus, Float::log_sigmoid] {
            assert!(f(f32::NAN).is_nan());
        }
        // The fused forms give the bits of the separate functions (the kernels rely on it).
        let mut rng = xorshift(7);
        for _ in 0..1 << 20 {
            let x = f32::from_bits((rng() >> 32) as u32);
            let (a, b) = x.softplus_neg_sigmoid();
            let (c, d) = x.softplus_sigmoid();
            assert_eq!((bits(a), bits(b)), (bits((-x).softplus()), bits(x.sigmoid())), "{x:e}");
            assert_eq!((bits(c), bits(d)), (bits(x.softplus()), bits(x.sigmoid())), "{x:e}");
            let (l, s, sn) = x.logistic();
            assert_eq!((bits(s), bits(sn)), (bits(x.sigmoid()), bits((-x).sigmoid())), "{x:e}");
            let (dist, _) = score32(l, (-(x as f64).abs()).exp().ln_1p());
            assert!(dist <= 1.0, "log1p(exp(-|x|)) at {x:e}: {dist} ulp");
            let x = x as f64 * 1e-30; // f64 too
            let (_, s, sn) = x.logistic();
            assert_eq!((bits(s), bits(sn)), (bits(x.sigmoid()), bits((-x).sigmoid())), "{x:e}");
            let (a, b) = x.softplus_neg_sigmoid();
            assert_eq!((bits(a), bits(b)), (bits((-x).softplus()), bits(x.sigmoid())), "{x:e}");
        }
        // Deep in the tails the results are subnormal, not flushed to zero.
        assert!((-100.0f32).sigmoid() > 0.0 && (-100.0f32).softplus() > 0.0);
    }

    #[test]
    fn log_cosh_tanh_special_values() {
        let ln2 = std::f32::consts::LN_2;
        for &(x, l, t) in &[
            (0.0f32, 0.0f32, 0.0f32),
            (1e-30, 0.0, 1e-30), // (1e-30)²/2 underflows to 0
            (1e-20, 5e-41, 1e-20), // a subnormal log cosh
            (1e4, 1e4 - ln2, 1.0),
            (f32::MAX, f32::MAX, 1.0),
            (f32::INFINITY, f32::INFINITY, 1.0),
        ] {
            for (x, t) in [(x, t), (-x, -t)] {
                // (tanh of −0 is +0 here: the sign of a zero gradient is not kept, hence == on it.)
                let (gl, gt) = x.log_cosh_tanh();
                assert_eq!((gl.to_bits(), gt), (l.to_bits(), t), "log_cosh_tanh({x:e})");
                let (gl, gt) = (x as f64).log_cosh_tanh();
                assert_eq!((gl as f32, gt as f32), (l, t), "f64 log_cosh_tanh({x:e})");
            }
        }
        let (l, t) = f32::NAN.log_cosh_tanh();
        assert!(l.is_nan() && t.is_nan());
        let (l, t) = f64::NAN.log_cosh_tanh();
        assert!(l.is_nan() && t.is_nan());
        // Either side of the float32 split point (1.09) and of the generic form's (20).
        for x in [1.09f32, 20.0] {
            for x in [f32::from_bits(x.to_bits() - 1), x, f32::from_bits(x.to_bits() + 1)] {
                let (l, t) = x.log_cosh_tanh();
                assert!(score32(l, ref_log_cosh(x as f64)).0 <= 1.0 && score32(t, (x as f64).tanh()).0 <= 1.0, "{x:e}");
            }
        }
    }

    fn ulp64(got: f64, want: f64) -> f64 {
        if (got.is_nan() && want.is_nan()) || got == want {
            return 0.0;
        }
        if !got.is_finite() || !want.is_finite() {
            return f64::INFINITY;
        }
        let a = want.abs();
        let ulp = if a == f64::MAX { a - f64::from_bits(a.to_bits() - 1) } else { f64::from_bits(a.to_bits() + 1) - a };
        (got - want).abs() / ulp
    }

    /// float64: random bit patterns, a dense walk over the losses' range and the edges (±0,
    /// subnormals, the overflow / underflow cut-offs, ±inf, NaN). exp, exp_m1, ln and ln_1p against
    /// libm (≤ 1 ulp); sigmoid, softplus and log_sigmoid against the same formula on libm's
    /// functions, which has up to ~1.5 ulp of its own, hence ≤ 2 ulp. log_cosh_tanh in float64 is
    /// the generic form, about 5 ulps from the exact value (4.8 for log cosh, 3.6 for tanh,
    /// measured against long double), and its reference here the same formula on libm's functions
    /// (log cosh) or libm's tanh: hence ≤ 10 and ≤ 5 ulp.
    #[test]
    fn f64_functions_against_libm() {
        type F = fn(f64) -> f64;
        let funcs: [(&str, F, F, f64); 9] = [
            ("exp", |x| Float::exp(x), f64::exp, 1.0),
            ("exp_m1", |x| Float::exp_m1(x), f64::exp_m1, 1.0),
            ("ln", |x| Float::ln(x), f64::ln, 1.0),
            ("ln_1p", |x| Float::ln_1p(x), f64::ln_1p, 1.0),
            ("sigmoid", |x| Float::sigmoid(x), ref_sigmoid, 2.0),
            ("softplus", |x| Float::softplus(x), ref_softplus, 2.0),
            ("log_sigmoid", |x| Float::log_sigmoid(x), ref_log_sigmoid, 2.0),
            ("log_cosh", |x| x.log_cosh_tanh().0, ref_log_cosh, 10.0),
            ("tanh", |x| x.log_cosh_tanh().1, f64::tanh, 5.0),
        ];
        let mut xs: Vec<f64> = vec![
            0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308, 1e-300, 1.0, -1.0,
            0.5, 709.782712893384, 709.79, -708.39641853226408, -745.1332191019411, -745.14, 1e300, -1e300,
            f64::MAX, -f64::MAX, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 36.7, -36.7, 37.5, -37.5,
        ];
        let mut rng = xorshift(0x2545_F491_4F6C_DD1D);
        for _ in 0..1 << 21 {
            xs.push(f64::from_bits(rng()));
        }
        for i in 0..1 << 20 {
            xs.push(-800.0 + 1600.0 * (i as f64 / (1u64 << 20) as f64));
        }
        for (name, f, r, tol) in funcs {
            let mut worst = (0.0f64, 0.0f64);
            for &x in &xs {
                let e = ulp64(f(x), r(x));
                if e > worst.0 {
                    worst = (e, x);
                }
            }
            println!("{name:>12} f64: max err {:.3} ulp (at {:e})", worst.0, worst.1);
            assert!(worst.0 <= tol, "{name}: {} ulp at {:e}", worst.0, worst.1);
        }
    }
}
