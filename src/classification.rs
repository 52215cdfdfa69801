//! Element-wise classification losses: binary cross-entropy (on probabilities and on logits),
//! focal, the hinge family, exponential, soft-margin and KL divergence.
//!
//! Each loss is a [`Term`] of the element-wise engine (`crate::pointwise`), so value, gradient and
//! the deterministic blocked reduction come from one pass. Formulas and subgradients follow
//! PyTorch 2.13 (`shared/docs/semantics.md` §1.5 Q12, Q13, Q16, §2.1, §2.4–§2.6): where PyTorch
//! builds a loss from `clamp_min`, the gradient passes at the boundary; where it differentiates a
//! composite with autograd, the gradient is that composite's, operation by operation (so a
//! masked-out element gives `−0·y`, NaN when y is NaN, exactly as autograd does).
//!
//! The logistic losses evaluate e^−|x| once per element (`Float::softplus_sigmoid` and friends)
//! and never overflow: BCE-with-logits, soft margin and focal are finite for logits of any size.

use crate::float::Float;
use crate::pointwise::{Inputs, Outputs, Term, evaluate};

/// PyTorch's BCE on probabilities: −[y·max(log x, −100) + (1 − y)·max(log(1 − x), −100)],
/// gradient (x − y)/max(x(1 − x), 1e-12), which ignores the clamp (PyTorch's backward kernel).
#[derive(Copy, Clone)]
pub struct Bce;
impl<T: Float> Term<T> for Bce {
    const STAGED: bool = true;
    const CHECKED: bool = true;
    /// Input and target in [0, 1] (NaN is outside), as PyTorch checks.
    #[inline(always)]
    fn valid(&self, x: T, y: T, _: T) -> bool {
        in_unit_interval(x) & in_unit_interval(y)
    }
    #[inline(always)]
    fn pre(&self, x: T, _: T, _: T) -> (T, T) {
        (x.ln(), (-x).ln_1p())
    }
    /// A hard label weights one logarithm by 1 and the other by 0.
    const SHORTCUT: bool = true;
    #[inline(always)]
    fn shortcut_applies(&self, _: T, y: T, _: T) -> bool {
        (y == T::ZERO) | (y == T::ONE)
    }
    /// The weighted logarithm, and −100 for the other: `eval` multiplies it by 0, which gives
    /// −0 as the true one does (it is negative), or where the true one is ±0 (x = 0 with y = 1,
    /// x = 1 with y = 0), a zero added to the other term's 100, which it cannot change.
    #[inline(always)]
    fn pre_shortcut(&self, x: T, y: T, _: T) -> (T, T) {
        let of_x = y == T::ONE;
        let l = x.ln_or_ln_1p_neg(of_x);
        let unused = T::from_f64(-100.0);
        if of_x { (l, unused) } else { (unused, l) }
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, (ln_x, ln_1mx): (T, T)) -> (T, T, T) {
        let floor = T::from_f64(-100.0);
        let log_x = ln_x.clamp_min(floor);
        let log_1mx = ln_1mx.clamp_min(floor);
        let l = (y - T::ONE) * log_1mx - y * log_x;
        // PyTorch's clamp is the float constant 1e-12: 9.99999996e-13 (float32's), in float64 too.
        let d = (x - y) / ((T::ONE - x) * x).clamp_min(T::from_f64(1e-12f32 as f64));
        (l, d, T::ZERO)
    }
}

/// BCE on logits without `pos_weight`: PyTorch's (1 − y)·x − log σ(x), evaluated as
/// max(x, 0) − x·y + log1p(e^−|x|) (the same function; for targets in [0, 1] a sum of non-negative
/// terms, so no cancellation where PyTorch's form loses the small result, e.g. x ≪ 0 with y = 0).
/// Gradient σ(x) − y, as σ(x)·(1 − y) − σ(−x)·y (exact for hard labels even where σ(x) rounds to 1).
#[derive(Copy, Clone)]
pub struct BceLogits;
impl<T: Float> Term<T> for BceLogits {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, _: T, _: T) -> (T, T) {
        x.exp_neg_abs()
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, e: (T, T)) -> (T, T, T) {
        let (l1p, s, sn) = x.logistic_with(e);
        let lin = if x >= T::ZERO { (T::ONE - y) * x } else { -(y * x) };
        (lin + l1p, s * (T::ONE - y) - sn * y, T::ZERO)
    }
}

/// BCE on logits with `pos_weight` p (the third input, broadcast to the input's shape): PyTorch's
/// (1 − y)·x + (1 + (p − 1)·y)·softplus(−x), evaluated as ((1 − y)·x or −p·y·x by the sign of x)
/// + (1 + (p − 1)·y)·log1p(e^−|x|); gradient (1 + (p − 1)·y)·σ(x) − p·y as σ(x)·(1 − y) − p·y·σ(−x).
#[derive(Copy, Clone)]
pub struct BceLogitsPosWeight;
impl<T: Float> Term<T> for BceLogitsPosWeight {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, _: T, _: T) -> (T, T) {
        x.exp_neg_abs()
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, p: T, e: (T, T)) -> (T, T, T) {
        let (l1p, s, sn) = x.logistic_with(e);
        let lw = (p - T::ONE) * y + T::ONE;
        let py = p * y;
        // p·y·x in float64: p·y alone can fall below float32's normal range (a tiny target) where
        // the whole product does not (a large logit), and its rounding there would be magnified
        // by x. (σ(−x) ≤ 1 in the gradient cannot magnify it.)
        let pyx = T::from_f64(p.to_f64() * y.to_f64() * x.to_f64());
        let lin = if x >= T::ZERO { (T::ONE - y) * x } else { -pyx };
        (lin + lw * l1p, s * (T::ONE - y) - py * sn, T::ZERO)
    }
}

/// How the focal loss raises q = 1 − p_t to γ: small integer exponents by multiplication (exact
/// where PyTorch's `pow` is, and the usual γ = 2), any other γ as e^(γ·log q).
pub trait FocalPower<T: Float>: Copy + Send + Sync {
    /// γ = 0: q^γ is the constant 1, and PyTorch's `pow` backward passes nothing through it (not
    /// even an infinite upstream gradient, which a product with its 0 would turn into NaN).
    const CONSTANT: bool = false;
    /// (q^γ, γ·q^(γ−1)), with PyTorch's `pow` backward: 0 for γ = 0.
    fn pow(&self, q: T) -> (T, T);
}

/// γ = N for N in 0..=3.
#[derive(Copy, Clone)]
pub struct IntPower<const N: u8>;
impl<T: Float, const N: u8> FocalPower<T> for IntPower<N> {
    const CONSTANT: bool = N == 0;
    #[inline(always)]
    fn pow(&self, q: T) -> (T, T) {
        match N {
            0 => (T::ONE, T::ZERO),
            1 => (q, T::ONE),
            2 => (q * q, T::TWO * q),
            _ => (q * q * q, T::from_f64(3.0) * (q * q)),
        }
    }
}

/// Any γ > 0: q^γ = e^(γ·log q) and γ·q^(γ−1) = γ·e^((γ−1)·log q), which give PyTorch's limits at
/// q = 0 (0, and 0 or ∞ for γ above or below 1).
#[derive(Copy, Clone)]
pub struct RealPower<T> {
    pub gamma: T,
}
impl<T: Float> FocalPower<T> for RealPower<T> {
    #[inline(always)]
    fn pow(&self, q: T) -> (T, T) {
        let lq = q.ln();
        let g = self.gamma;
        ((g * lq).exp(), g * ((g - T::ONE) * lq).exp())
    }
}

/// torchvision's `sigmoid_focal_loss`: α_t·(1 − p_t)^γ·BCE-with-logits, p = σ(x),
/// p_t = p·y + (1 − p)(1 − y), α_t = α·y + (1 − α)(1 − y) (or 1 when α < 0).
///
/// 1 − p_t is formed as σ(x)·(1 − y) + σ(−x)·y, a sum of two non-negative terms for y in
/// [0, 1], so it keeps full relative accuracy where PyTorch's 1 − p_t cancels (|x| large).
/// ∂ℓ/∂x = α_t·[(σ(x) − y)·q^γ + ce·γ·q^(γ−1)·σ(x)σ(−x)(1 − 2y)], with ce and σ(x) − y formed
/// as in [`BceLogits`].
#[derive(Copy, Clone)]
pub struct Focal<T, P> {
    /// α_t = a·y + b·(1 − y): (α, 1 − α), or (1, 1) when α is disabled (no flag in the lane loop).
    pub a: T,
    pub b: T,
    pub power: P,
}
impl<T: Float, P: FocalPower<T>> Term<T> for Focal<T, P> {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, _: T, _: T) -> (T, T) {
        x.exp_neg_abs()
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, e: (T, T)) -> (T, T, T) {
        let (l1p, s, sn) = x.logistic_with(e);
        let ce = if x >= T::ZERO { (T::ONE - y) * x } else { -(y * x) } + l1p; // BceLogits' value
        let q = s * (T::ONE - y) + sn * y;
        let s_minus_y = s * (T::ONE - y) - sn * y;
        let (qg, dqg) = self.power.pow(q);
        let at = self.a * y + self.b * (T::ONE - y);
        let dq = s * sn * (T::ONE - T::TWO * y);
        let l = at * (ce * qg);
        // ce·(dqg·dq): the path through q^γ, none for γ = 0 (where ce may be infinite: x = ±∞).
        let through_q = if P::CONSTANT { T::ZERO } else { ce * (dqg * dq) };
        let d = at * (s_minus_y * qg + through_q);
        (l, d, T::ZERO)
    }
}

/// max(0, m − x·y) (`clamp_min`: the gradient −y passes at the boundary u = 0).
#[derive(Copy, Clone)]
pub struct Hinge<T> {
    pub margin: T,
}
impl<T: Float> Term<T> for Hinge<T> {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let u = self.margin - x * y;
        let gate = if u >= T::ZERO { T::ONE } else { T::ZERO };
        (u.clamp_min(T::ZERO), -gate * y, T::ZERO)
    }
}

/// max(0, m − x·y)², gradient −2·max(0, m − x·y)·y.
#[derive(Copy, Clone)]
pub struct SquaredHinge<T> {
    pub margin: T,
}
impl<T: Float> Term<T> for SquaredHinge<T> {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let u = self.margin - x * y;
        let c = u.clamp_min(T::ZERO);
        let gu = if u >= T::ZERO { T::TWO * c } else { T::ZERO };
        (c * c, -gu * y, T::ZERO)
    }
}

/// e^(−x·y), gradient −y·e^(−x·y).
#[derive(Copy, Clone)]
pub struct Exponential;
impl<T: Float> Term<T> for Exponential {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let l = (-(x * y)).exp();
        (l, -y * l, T::ZERO)
    }
}

/// log(1 + e^(−x·y)) as softplus(−x·y) (finite where PyTorch's log1p(exp) overflows), gradient
/// −y·σ(−x·y).
#[derive(Copy, Clone)]
pub struct SoftMargin;
impl<T: Float> Term<T> for SoftMargin {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, x: T, y: T, _: T) -> (T, T) {
        (x * y).exp_neg_abs()
    }
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, e: (T, T)) -> (T, T, T) {
        let m = x * y;
        let (l1p, _, sn) = m.logistic_with(e);
        let pos = if m < T::ZERO { -m } else { T::ZERO };
        (pos + l1p, -y * sn, T::ZERO)
    }
}

/// KL divergence with log-probability input x and probability target t: xlogy(t, t) − t·x
/// (0·log 0 = 0; t < 0 gives NaN), gradient −t.
#[derive(Copy, Clone)]
pub struct KlDiv;
impl<T: Float> Term<T> for KlDiv {
    const STAGED: bool = true;
    #[inline(always)]
    fn pre(&self, _: T, t: T, _: T) -> (T, T) {
        (t.ln(), T::ZERO)
    }
    #[inline(always)]
    fn eval(&self, x: T, t: T, _: T, (ln_t, _): (T, T)) -> (T, T, T) {
        let xlogy = if t == T::ZERO { T::ZERO } else { t * ln_t };
        (xlogy - t * x, -t, T::ZERO)
    }
}

/// KL divergence with a log-probability target: e^t·(t − x), gradient −e^t.
#[derive(Copy, Clone)]
pub struct KlDivLogTarget;
impl<T: Float> Term<T> for KlDivLogTarget {
    #[inline(always)]
    fn eval(&self, x: T, t: T, _: T, _: (T, T)) -> (T, T, T) {
        let et = t.exp();
        (et * (t - x), -et, T::ZERO)
    }
}

/// The classification losses by name, with their scalar options.
#[derive(Copy, Clone, Debug)]
pub enum Classification {
    Bce,
    BceLogits,
    /// `pos_weight` is `Inputs::z`.
    BceLogitsPosWeight,
    /// `alpha < 0` disables α.
    Focal { alpha: f64, gamma: f64 },
    Hinge { margin: f64 },
    SquaredHinge { margin: f64 },
    Exponential,
    SoftMargin,
    KlDiv,
    KlDivLogTarget,
}

impl Classification {
    /// Evaluates this loss with [`crate::pointwise::evaluate`] (Err: the first element outside
    /// BCE's domain).
    pub fn evaluate<T: Float>(self, inp: &Inputs<T>, out: Outputs<T>, sum: bool) -> Result<f64, usize> {
        let t = T::from_f64;
        match self {
            Classification::Bce => evaluate(Bce, inp, out, sum),
            Classification::BceLogits => evaluate(BceLogits, inp, out, sum),
            Classification::BceLogitsPosWeight => evaluate(BceLogitsPosWeight, inp, out, sum),
            Classification::Focal { alpha, gamma } => {
                // α_t = α·y + (1 − α)·(1 − y), (1 − α) rounded once as PyTorch's Python float is. α < 0
                // disables it: α_t = y + (1 − y), which is 1 for hard labels and within an ulp of 1 for
                // soft ones (torchvision skips the product; a flag in the lane loop kept it scalar).
                let (a, b) = if alpha >= 0.0 { (t(alpha), t(1.0 - alpha)) } else { (T::ONE, T::ONE) };
                macro_rules! focal {
                    ($power:expr) => {
                        evaluate(Focal { a, b, power: $power }, inp, out, sum)
                    };
                }
                if gamma == 0.0 {
                    focal!(IntPower::<0>)
                } else if gamma == 1.0 {
                    focal!(IntPower::<1>)
                } else if gamma == 2.0 {
                    focal!(IntPower::<2>)
                } else if gamma == 3.0 {
                    focal!(IntPower::<3>)
                } else {
                    focal!(RealPower { gamma: t(gamma) })
                }
            }
            Classification::Hinge { margin } => evaluate(Hinge { margin: t(margin) }, inp, out, sum),
            Classification::SquaredHinge { margin } => evaluate(SquaredHinge { margin: t(margin) }, inp, out, sum),
            Classification::Exponential => evaluate(Exponential, inp, out, sum),
            Classification::SoftMargin => evaluate(SoftMargin, inp, out, sum),
            Classification::KlDiv => evaluate(KlDiv, inp, out, sum),
            Classification::KlDivLogTarget => evaluate(KlDivLogTarget, inp, out, sum),
        }
    }
}

/// The first index i with x[i] outside [0, 1] (NaN included), or None: BCE's input check, a
/// read-only pass that stops at the first bad chunk (no temporaries).
pub fn first_outside_unit_interval<T: Float>(x: &[T]) -> Option<usize> {
    crate::simd::first_where(x, #[inline(always)] |v: T| !in_unit_interval(v))
}

/// 0 ≤ v ≤ 1 (false for NaN).
#[inline(always)]
fn in_unit_interval<T: Float>(v: T) -> bool {
    (v >= T::ZERO) & (v <= T::ONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval<K: Term<f64>>(k: K, x: f64, y: f64) -> (f64, f64) {
        let (l, d, _) = k.eval_at(x, y, 1.0);
        (l, d)
    }

    #[test]
    fn logistic_losses_are_finite_for_huge_logits() {
        for &x in &[-1e4, -100.0, 100.0, 1e4, -1e300, 1e300] {
            for &y in &[0.0, 0.3, 1.0] {
                let (l, d) = eval(BceLogits, x, y);
                assert!(l.is_finite() && d.is_finite(), "bce_logits({x}, {y})");
                let (l, d) = eval(SoftMargin, x, if y == 0.0 { -1.0 } else { 1.0 });
                assert!(l.is_finite() && d.is_finite(), "soft_margin({x}, {y})");
            }
        }
        assert_eq!(eval(BceLogits, -1e4, 1.0), (1e4, -1.0));
        assert_eq!(eval(SoftMargin, 1e4, -1.0), (1e4, 1.0));
        let (l, d, _) = BceLogits.eval_at(-1e4f32, 1.0, 1.0);
        assert_eq!((l, d), (1e4, -1.0));
    }

    #[test]
    fn clamp_kinks_pass_the_gradient_at_the_boundary() {
        assert_eq!(eval(Hinge { margin: 1.0 }, 1.0, 1.0), (0.0, -1.0));
        assert_eq!(eval(Hinge { margin: 1.0 }, 2.0, 1.0).1, 0.0);
        assert_eq!(eval(SquaredHinge { margin: 1.0 }, 1.0, 1.0), (0.0, -0.0));
    }

    #[test]
    fn pos_weight_product_keeps_its_digits_below_the_normal_range() {
        // p·y is a subnormal float32 with a few significant bits; p·y·x is not (hypothesis found it).
        let (x, y, p) = (-1e4f32, f32::from_bits(1), 1.910_885_1f32);
        let (l, _, _) = BceLogitsPosWeight.eval_at(x, y, p);
        let exact = p as f64 * y as f64 * -(x as f64);
        assert_eq!(l, exact as f32);
    }

    #[test]
    fn bce_clamps_logs_at_minus_100() {
        assert_eq!(eval(Bce, 0.0, 1.0).0, 100.0);
        assert_eq!(eval(Bce, 1.0, 0.0).0, 100.0);
        assert_eq!(eval(Bce, 0.0, 0.0).0, 0.0);
    }

    /// Hard labels take `Bce::pre_shortcut` (one logarithm); every element must get the bits of
    /// the general form (`eval_at`), including the clamp's edges x = 0 and 1, subnormals and −0,
    /// in chunks of hard labels only and in a chunk where one soft label sends it all the general
    /// way.
    fn bce_shortcut_keeps_the_bits<T: Float>(tiny: T) {
        let mut x: Vec<T> = (0..4000).map(|i| T::from_f64(((i * 7919) % 4001) as f64 / 4000.0)).collect();
        let edges = [T::ZERO, -T::ZERO, T::ONE, tiny, T::HALF, T::from_f64(1e-30), T::from_f64(1.0 - 1e-7)];
        for (i, &e) in edges.iter().enumerate() {
            x[3 * i] = e; // a chunk of hard labels
            x[3 * i + 1] = e;
            x[1500 + 3 * i] = e; // the chunk with a soft label
            x[1500 + 3 * i + 1] = e;
        }
        let mut y: Vec<T> = (0..x.len()).map(|i| T::from_f64(((i * 104_729) % 5 < 2) as u8 as f64)).collect();
        for i in 0..edges.len() {
            (y[3 * i], y[3 * i + 1], y[1500 + 3 * i], y[1500 + 3 * i + 1]) = (T::ZERO, T::ONE, T::ZERO, T::ONE);
        }
        y[1500 + 3 * edges.len()] = T::from_f64(0.375); // in the chunk of 1280..1536
        let n = x.len();
        let (mut value, mut grad) = (vec![T::ZERO; n], vec![T::ZERO; n]);
        let inp = Inputs { x: &x, y: &y, z: None, value_weight: None, grad_weight: None, grad_scale: T::ONE };
        let out = Outputs { value: Some(&mut value), grad_x: Some(&mut grad), grad_z: None };
        assert!(evaluate(Bce, &inp, out, false).is_ok());
        let bits = |v: T| v.to_f64().to_bits();
        for i in 0..n {
            let (l, d, _) = Bce.eval_at(x[i], y[i], T::ONE);
            assert_eq!((bits(value[i]), bits(grad[i])), (bits(l), bits(d)), "x = {:?}, y = {:?}", x[i], y[i]);
        }
    }

    #[test]
    fn bce_shortcut_for_hard_labels_keeps_the_bits() {
        bce_shortcut_keeps_the_bits(f32::from_bits(1));
        bce_shortcut_keeps_the_bits(f64::from_bits(1));
    }

    #[test]
    fn kl_div_zero_target_contributes_nothing() {
        assert_eq!(eval(KlDiv, -3.0, 0.0), (0.0, -0.0));
        assert!(eval(KlDiv, -3.0, -0.5).0.is_nan());
    }

    #[test]
    fn bce_reports_the_first_element_outside_its_domain() {
        let n = 3 * crate::reduce::PARALLEL_MIN;
        let (mut x, mut y) = (vec![0.25f32; n], vec![0.5f32; n]);
        let none = || Outputs { value: None, grad_x: None, grad_z: None };
        fn inp<'a>(x: &'a [f32], y: &'a [f32]) -> Inputs<'a, f32> {
            Inputs { x, y, z: None, value_weight: None, grad_weight: None, grad_scale: 1.0 }
        }
        assert!(evaluate(Bce, &inp(&x, &y), none(), true).is_ok());
        x[n - 5] = 2.0; // a later block
        y[40_000] = f32::NAN; // an earlier one, in the target
        x[40_001] = -1.0;
        for threads in [1, 2] {
            crate::threads::set_num_threads(threads);
            assert_eq!(evaluate(Bce, &inp(&x, &y), none(), true), Err(40_000));
            assert_eq!(evaluate(Bce, &inp(&x, &y), none(), false), Err(40_000)); // nothing wanted
        }
        y[40_000] = 1.0;
        assert_eq!(evaluate(Bce, &inp(&x, &y), none(), true), Err(40_001));
    }

    #[test]
    fn unit_interval_check() {
        let mut v = vec![0.5f32; 5000];
        assert_eq!(first_outside_unit_interval(&v), None);
        v[4321] = f32::NAN;
        assert_eq!(first_outside_unit_interval(&v), Some(4321));
        v[17] = -0.0;
        v[18] = 1.0000001;
        assert_eq!(first_outside_unit_interval(&v), Some(18));
    }
}

/// Kernel timings (not a correctness test): `cargo test --release --no-default-features -- --ignored
/// timing --nocapture`.
#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    fn time<K: Term<f32>>(name: &str, k: K, x: &[f32], y: &[f32]) {
        let n = x.len();
        let mut g = vec![0.0f32; n];
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            let inp = Inputs { x, y, z: None, value_weight: None, grad_weight: None, grad_scale: 1.0 / n as f32 };
            let s = evaluate(k, &inp, Outputs { value: None, grad_x: Some(&mut g), grad_z: None }, true).unwrap();
            std::hint::black_box(s);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:>16}: {:.2} ns/element ({})", best * 1e9 / n as f64, crate::simd::level().name());
    }

    #[test]
    #[ignore = "timing"]
    fn timing_kernels() {
        crate::threads::set_num_threads(1);
        let n = 1 << 20;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01).collect();
        let y: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
        let pm: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 1.0 } else { -1.0 }).collect();
        let p: Vec<f32> = (0..n).map(|i| 0.01 + 0.98 * ((i * 31 % 97) as f32 / 97.0)).collect();
        time("bce_logits", BceLogits, &x, &y);
        time("bce", Bce, &p, &y);
        time("focal", Focal { a: 0.25, b: 0.75, power: IntPower::<2> }, &x, &y);
        time("soft_margin", SoftMargin, &x, &pm);
        time("exponential", Exponential, &x, &pm);
        time("hinge", Hinge { margin: 1.0 }, &x, &pm);
        time("kl_div", KlDiv, &x, &p);
        time("focal_g3", Focal { a: 0.25, b: 0.75, power: IntPower::<3> }, &x, &y);
    }
}
