//! Regression and likelihood losses as element-wise [`Term`]s (formulas as in PyTorch 2.13;
//! see `shared/docs/semantics.md` §2.2 and §2.7 for the subgradients at kinks).

use crate::float::Float;
use crate::pointwise::{Inputs, Outputs, Term, evaluate};

/// (x − y)²
#[derive(Copy, Clone)]
pub struct Mse;
impl<T: Float> Term<T> for Mse {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let r = x - y;
        (r * r, T::TWO * r, T::ZERO)
    }
}

/// |x − y|, subgradient 0 at x = y, and 0 where x − y is NaN (torch's sign).
#[derive(Copy, Clone)]
pub struct L1;
impl<T: Float> Term<T> for L1 {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let r = x - y;
        (r.abs(), r.sgn(), T::ZERO)
    }
}

/// 0.5·r²/β for |r| < β, else |r| − β/2 (β > 0; β = 0 is l1 and handled by the caller).
///
/// `POW2`: β is a power of two whose reciprocal is finite (the default β = 1 among them). Then
/// v/β and v·(1/β) are the same real number, so they round to the same bits, and the loop
/// multiplies instead of dividing: about 15% off value_and_grad in cache, 0.26 → 0.22 ns per element
/// (`examples/kernel_timing -- smooth_l1 100000`; the value alone gained less, 0.16–0.19 → 0.15–0.17).
/// A type parameter, not a field, for the reason given at [`PoissonLogInput`].
#[derive(Copy, Clone)]
pub struct SmoothL1<T, const POW2: bool> {
    pub beta: T,
    /// 1/β, read when `POW2`.
    pub inv_beta: T,
}
impl<T: Float, const POW2: bool> Term<T> for SmoothL1<T, POW2> {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let (b, inv_b) = (self.beta, self.inv_beta);
        let over_beta = |v: T| if POW2 { v * inv_b } else { v / b };
        let r = x - y;
        let a = r.abs();
        let l = if a < b { T::HALF * a * over_beta(a) } else { a - T::HALF * b }; // a/b < 1: no spurious under/overflow
        let d = if r <= -b { -T::ONE } else if r >= b { T::ONE } else { over_beta(r) };
        (l, d, T::ZERO)
    }
}

/// Whether `v` is a finite power of two with a finite reciprocal in T (so that dividing by it and
/// multiplying by its reciprocal give the same bits).
fn has_exact_reciprocal<T: Float>(v: T) -> bool {
    const MANTISSA: u64 = (1 << 52) - 1;
    // In f64, a finite v > 0 (an f32 or f64) is normal: a power of two has no mantissa bits.
    let pow2 = v > T::ZERO && v < T::INFINITY && v.to_f64().to_bits() & MANTISSA == 0;
    pow2 && T::ONE / v < T::INFINITY
}

/// 0.5·r² for |r| < δ, else δ·(|r| − δ/2).
#[derive(Copy, Clone)]
pub struct Huber<T> {
    pub delta: T,
}
impl<T: Float> Term<T> for Huber<T> {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let dl = self.delta;
        let r = x - y;
        let a = r.abs();
        let l = if a < dl { T::HALF * a * a } else { dl * (a - T::HALF * dl) };
        let d = if r <= -dl { -dl } else if r >= dl { dl } else { r };
        (l, d, T::ZERO)
    }
}

/// log cosh(x − y), gradient tanh(x − y) (see `Float::log_cosh_tanh`).
#[derive(Copy, Clone)]
pub struct LogCosh;
impl<T: Float> Term<T> for LogCosh {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, y: T, _: T) -> (T, T) {
        (x - y).log_cosh_pre()
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, pre: (T, T)) -> (T, T, T) {
        let (l, th) = (x - y).log_cosh_tanh_with(pre);
        (l, th, T::ZERO)
    }
}

/// (log1p(x) − log1p(y))²
#[derive(Copy, Clone)]
pub struct SquaredLogError;
impl<T: Float> Term<T> for SquaredLogError {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, y: T, _: T) -> (T, T) {
        (x.ln_1p(), y.ln_1p())
    }
    #[inline(always)]
    fn eval(&self, x: T, _: T, _: T, (lx, ly): (T, T)) -> (T, T, T) {
        let d = lx - ly;
        (d * d, T::TWO * d / (T::ONE + x), T::ZERO)
    }
}

/// Stirling's approximation of log(y!), y·log y − y + ½·log(2πy), used for y > 1 only.
#[inline(always)]
fn stirling<T: Float>(y: T) -> T {
    let half_log_2pi = T::from_f64(0.5 * (2.0 * std::f64::consts::PI).ln());
    let s = y * y.ln() - y + T::HALF * y.ln() + half_log_2pi;
    if y > T::ONE { s } else { T::ZERO }
}

/// Poisson NLL with log-rate input: e^x − y·x (+ Stirling term when `FULL`).
///
/// `FULL` is a type parameter, not a field: with a run-time flag LLVM if-converts the choice inside
/// the vectorised loop, computing the Stirling term's two logarithms for every element and then
/// discarding them (`full=False`, the default, took 0.9–1.0 ns per element against 0.4–0.45 now;
/// `examples/kernel_timing -- poisson 100000 value`).
#[derive(Copy, Clone)]
pub struct PoissonLogInput<const FULL: bool>;
impl<T: Float, const FULL: bool> Term<T> for PoissonLogInput<FULL> {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let e = x.exp();
        let l = e - y * x;
        (if FULL { l + stirling(y) } else { l }, e - y, T::ZERO)
    }
}

/// Poisson NLL with rate input: x − y·log(x + eps) (+ Stirling term when `FULL`, a type
/// parameter for the reason given at [`PoissonLogInput`]).
#[derive(Copy, Clone)]
pub struct PoissonRateInput<T, const FULL: bool> {
    pub eps: T,
}
impl<T: Float, const FULL: bool> Term<T> for PoissonRateInput<T, FULL> {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, _: T, _: T) -> (T, T) {
        ((x + self.eps).ln(), T::ZERO)
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, (ln_u, _): (T, T)) -> (T, T, T) {
        let u = x + self.eps;
        let l = x - y * ln_u;
        (if FULL { l + stirling(y) } else { l }, T::ONE - y / u, T::ZERO)
    }
}

/// Gaussian NLL ½·(log v + (x − y)²/v) (+ ½·log 2π), v = max(var, eps); the clamp is invisible
/// to the gradient in var (PyTorch clamps a copy under no_grad).
#[derive(Copy, Clone)]
pub struct GaussianNll<T> {
    pub full: bool,
    pub eps: T,
}
impl<T: Float> Term<T> for GaussianNll<T> {
    const GRAD_Z: bool = true;
    const STAGED: bool = true;
    const CHECKED: bool = true;
    #[inline(always)]
    fn valid(&self, _: T, _: T, var: T) -> bool {
        valid_variance(var)
    }
    #[inline(always)]
    fn pre(&self, _: T, _: T, var: T) -> (T, T) {
        (var.clamp_min(self.eps).ln(), T::ZERO)
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, var: T, (ln_v, _): (T, T)) -> (T, T, T) {
        let v = var.clamp_min(self.eps);
        let r = x - y;
        let rv = r / v;
        let l = T::HALF * (ln_v + r * rv);
        let l = if self.full { l + T::from_f64(0.5 * (2.0 * std::f64::consts::PI).ln()) } else { l };
        (l, rv, T::HALF * (T::ONE / v - rv * rv))
    }
}

/// A variance that is not negative (NaN passes, as in PyTorch's `torch.any(var < 0)`).
#[inline(always)]
fn valid_variance<T: Float>(v: T) -> bool {
    !(v < T::ZERO)
}

/// The first index of a negative variance, or None: the Gaussian NLL's domain check as a read-only
/// pass, for a caller that must not write any output when it fails (the kernel checks in its loop).
pub fn first_negative_variance<T: Float>(v: &[T]) -> Option<usize> {
    crate::simd::first_where(v, #[inline(always)] |v: T| !valid_variance(v))
}

/// The element-wise losses by name, with their scalar options.
#[derive(Copy, Clone, Debug)]
pub enum Pointwise {
    Mse,
    L1,
    SmoothL1 { beta: f64 },
    Huber { delta: f64 },
    LogCosh,
    SquaredLogError,
    PoissonLogInput { full: bool },
    PoissonRateInput { full: bool, eps: f64 },
    GaussianNll { full: bool, eps: f64 },
}

impl Pointwise {
    /// Evaluates this loss with [`crate::pointwise::evaluate`] (Err: the first negative variance
    /// of the Gaussian NLL).
    pub fn evaluate<T: Float>(self, inp: &Inputs<T>, out: Outputs<T>, sum: bool) -> Result<f64, usize> {
        let t = T::from_f64;
        match self {
            Pointwise::Mse => evaluate(Mse, inp, out, sum),
            Pointwise::L1 => evaluate(L1, inp, out, sum),
            Pointwise::SmoothL1 { beta } => {
                let (beta, inv_beta) = (t(beta), T::ONE / t(beta));
                if has_exact_reciprocal(beta) {
                    evaluate(SmoothL1::<T, true> { beta, inv_beta }, inp, out, sum)
                } else {
                    evaluate(SmoothL1::<T, false> { beta, inv_beta }, inp, out, sum)
                }
            }
            Pointwise::Huber { delta } => evaluate(Huber { delta: t(delta) }, inp, out, sum),
            Pointwise::LogCosh => evaluate(LogCosh, inp, out, sum),
            Pointwise::SquaredLogError => evaluate(SquaredLogError, inp, out, sum),
            Pointwise::PoissonLogInput { full: false } => evaluate(PoissonLogInput::<false>, inp, out, sum),
            Pointwise::PoissonLogInput { full: true } => evaluate(PoissonLogInput::<true>, inp, out, sum),
            Pointwise::PoissonRateInput { full: false, eps } => {
                evaluate(PoissonRateInput::<T, false> { eps: t(eps) }, inp, out, sum)
            }
            Pointwise::PoissonRateInput { full: true, eps } => {
                evaluate(PoissonRateInput::<T, true> { eps: t(eps) }, inp, out, sum)
            }
            Pointwise::GaussianNll { full, eps } => evaluate(GaussianNll { full, eps: t(eps) }, inp, out, sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_reciprocals_are_the_finite_powers_of_two_with_finite_inverses() {
        for v in [1.0f32, 0.5, 2.0, 1024.0, f32::MIN_POSITIVE, 2f32.powi(127), 2f32.powi(-127)] {
            assert!(has_exact_reciprocal(v), "{v:e}");
        }
        // 2^-130 is subnormal in f32 and 2^130 is not a float32; 3 and 0.75 are not powers of two.
        for v in [2f32.powi(-130), 3.0, 0.75, 0.0, -1.0, f32::INFINITY, f32::NAN, 1.0 + f32::EPSILON] {
            assert!(!has_exact_reciprocal(v), "{v:e}");
        }
        assert!(has_exact_reciprocal(2f64.powi(-1022)) && has_exact_reciprocal(2f64.powi(1023)));
        assert!(!has_exact_reciprocal(2f64.powi(-1030)) && !has_exact_reciprocal(0.1f64));
    }

    /// With β a power of two, the multiplying loop gives the dividing loop's bits (the same
    /// formula with `POW2 = false`), on magnitudes from subnormal to huge.
    #[test]
    fn smooth_l1_by_reciprocal_has_the_bits_of_division() {
        fn check<T: Float + std::fmt::LowerExp>(beta: T, xs: &[T]) {
            assert!(has_exact_reciprocal(beta));
            let (mul, div) = (SmoothL1::<T, true> { beta, inv_beta: T::ONE / beta }, SmoothL1::<T, false> { beta, inv_beta: T::NAN });
            for &x in xs {
                let (a, b) = (mul.eval_at(x, T::ZERO, T::ONE), div.eval_at(x, T::ZERO, T::ONE));
                assert!(a.0.to_f64().to_bits() == b.0.to_f64().to_bits() && a.1.to_f64().to_bits() == b.1.to_f64().to_bits(), "β = {beta:e}, x = {x:e}");
            }
        }
        let xs32: Vec<f32> = (0..4000).map(|i| f32::from_bits(i * 0x7f7f_ffff / 4000 + i % 7)).flat_map(|v| [v, -v]).collect();
        for beta in [1.0f32, 0.5, 8.0, f32::MIN_POSITIVE, 2f32.powi(-127), 2f32.powi(100)] {
            check(beta, &xs32);
        }
        let xs64: Vec<f64> = (0..4000u64).map(|i| f64::from_bits(i * (0x7fef_ffff_ffff_ffff / 4000) + i % 7)).flat_map(|v| [v, -v]).collect();
        for beta in [1.0f64, 0.25, f64::MIN_POSITIVE, 2f64.powi(1000)] {
            check(beta, &xs64);
        }
    }
}
