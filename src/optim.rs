//! Fused in-place optimizer updates: one pass reads parameter, gradient and state once and writes them once.
//!
//! Each rule follows PyTorch's single-tensor CPU implementation (`torch/optim/{sgd,adam,rmsprop,adagrad}.py`,
//! the path torch takes for CPU tensors), operation by operation and in the parameter's dtype:
//! scalars are formed in float64 as torch forms them in Python (bias corrections, `lr / bc1`,
//! `1 - lr·wd`, ...) and rounded once to the parameter's dtype, as torch passes a Python float to a
//! float32 kernel. torch's vector kernels contract some `a + b·c` into fused multiply-adds on AVX2
//! builds; fastloss never does (every SIMD level gives the same bits), so float32 results can
//! differ from torch's in the last bit of an operation, never more.
//!
//! Updates are element-wise, so splitting them across threads cannot change a single bit: large
//! arrays are cut into fixed pieces of [`PIECE`] elements and runs of pieces (possibly from several
//! small arrays) are handed to the pool together.

use rayon::prelude::*;

use crate::float::Float;
use crate::reduce::PARALLEL_MIN;
use crate::{simd, threads};

/// Elements per piece when an array is split for the pool.
pub const PIECE: usize = 1 << 14;
/// Elements a pool task gets at least (consecutive pieces are packed together).
const TASK: usize = 1 << 16;

/// `torch.optim.SGD`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

/// `torch.optim.Adam` (`decoupled`: `AdamW`, weight decay applied to the parameter).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    pub decoupled: bool,
}

/// `torch.optim.RMSprop`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RmsProp {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
}

/// `torch.optim.Adagrad`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Adagrad {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub maximize: bool,
}

/// An update rule with its hyper-parameters (one per parameter group).
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Rule {
    Sgd(Sgd),
    Adam(Adam),
    RmsProp(RmsProp),
    Adagrad(Adagrad),
}

impl Rule {
    /// Which of the three state slots this rule reads and writes:
    /// - SGD: [momentum_buffer (when momentum != 0), -, -]
    /// - Adam: [exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)]
    /// - RMSprop: [square_avg, momentum_buffer (momentum > 0), grad_avg (centered)]
    /// - Adagrad: [sum, -, -]
    pub fn slots(&self) -> [bool; 3] {
        match self {
            Rule::Sgd(h) => [h.momentum != 0.0, false, false],
            Rule::Adam(h) => [true, true, h.amsgrad],
            Rule::RmsProp(h) => [true, h.momentum > 0.0, h.centered],
            Rule::Adagrad(_) => [true, false, false],
        }
    }
}

/// One parameter's update: its gradient, its state slots (empty where the rule has none) and
/// `step`, the number of this step for this parameter (1 on its first; torch's `state['step']`
/// after the increment). For SGD, `step <= 1` means the momentum buffer is new: it is set to the
/// gradient (torch's `clone(grad)`) instead of being decayed.
pub struct Update<'a, T> {
    pub rule: &'a Rule,
    pub step: f64,
    pub param: &'a mut [T],
    pub grad: &'a [T],
    pub state: [&'a mut [T]; 3],
}

impl<'a, T: Float> Update<'a, T> {
    /// Why this update cannot run (a length that differs from the parameter's), if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let n = self.param.len();
        if self.grad.len() != n {
            return Err(format!("gradient has {} elements, parameter {n}", self.grad.len()));
        }
        for (k, (&used, s)) in self.rule.slots().iter().zip(self.state.iter()).enumerate() {
            if used && s.len() != n {
                return Err(format!("state slot {k} has {} elements, parameter {n}", s.len()));
            }
        }
        Ok(())
    }

    /// Cuts the update into pieces of at most `piece` elements (none for an empty parameter).
    fn split(self, piece: usize, out: &mut Vec<Update<'a, T>>) {
        let Update { rule, step, param, grad, state } = self;
        let [mut s0, mut s1, mut s2] = state;
        let (mut p, mut g) = (param, grad);
        while !p.is_empty() {
            let k = piece.min(p.len());
            let (ph, pt) = p.split_at_mut(k);
            let (gh, gt) = g.split_at(k);
            let cut = |s: &mut &'a mut [T]| -> &'a mut [T] {
                if s.is_empty() {
                    Default::default()
                } else {
                    let (h, t) = std::mem::take(s).split_at_mut(k);
                    *s = t;
                    h
                }
            };
            let state = [cut(&mut s0), cut(&mut s1), cut(&mut s2)];
            out.push(Update { rule, step, param: ph, grad: gh, state });
            p = pt;
            g = gt;
        }
    }
}

/// Applies every update, in place. Checks all lengths first: on an error nothing is written.
pub fn apply<T: Float>(updates: Vec<Update<'_, T>>) -> Result<(), String> {
    for (i, u) in updates.iter().enumerate() {
        u.check().map_err(|e| format!("array {i}: {e}"))?;
    }
    let total: usize = updates.iter().map(|u| u.param.len()).sum();
    if total < PARALLEL_MIN || threads::num_threads() == 1 {
        run_all(updates);
        return Ok(());
    }
    let mut pieces = Vec::with_capacity(updates.len() + total / PIECE);
    for u in updates {
        u.split(PIECE, &mut pieces);
    }
    // Pack consecutive pieces into tasks of at least TASK elements, so that many small arrays do
    // not each cost a task; which thread runs what does not affect any result.
    let mut tasks: Vec<Vec<Update<'_, T>>> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for u in pieces {
        size += u.param.len();
        current.push(u);
        if size >= TASK {
            tasks.push(std::mem::take(&mut current));
            size = 0;
        }
    }
    if !current.is_empty() {
        tasks.push(current);
    }
    threads::pool().install(|| {
        tasks.into_par_iter().for_each(run_all)
    });
    Ok(())
}

/// The scalars of a rule that depend on the step, formed in float64 as torch forms them in Python:
/// Adam (lr / bc1, bc2^0.5), Adagrad (the decayed lr, unused). Computed once per run of updates
/// that share a rule and a step (the common case: every parameter of a group), not per array.
#[derive(Copy, Clone)]
struct StepScalars(f64, f64);

fn step_scalars(rule: &Rule, step: f64) -> StepScalars {
    match rule {
        // torch: bias_correction1 = 1 − β1**step, step_size = lr / bias_correction1,
        // bias_correction2_sqrt = (1 − β2**step) ** 0.5, with `step` a float after `.item()`.
        // The 0.5 is hidden from LLVM, which would otherwise turn pow(x, 0.5) into sqrt(x): libm's
        // pow (what Python's `**` calls) is not always correctly rounded, so the two can differ.
        Rule::Adam(h) => StepScalars(
            h.lr / (1.0 - h.beta1.powf(step)),
            (1.0 - h.beta2.powf(step)).powf(std::hint::black_box(0.5)),
        ),
        // torch: clr = lr / (1 + (step − 1)·lr_decay)
        Rule::Adagrad(h) => StepScalars(h.lr / (1.0 + (step - 1.0) * h.lr_decay), 0.0),
        _ => StepScalars(0.0, 0.0),
    }
}

/// Runs (pieces of) updates on the calling thread.
fn run_all<T: Float>(updates: Vec<Update<'_, T>>) {
    let mut cached: Option<(*const Rule, u64, StepScalars)> = None;
    for u in updates {
        let key = (u.rule as *const Rule, u.step.to_bits());
        let sc = match cached {
            Some((r, s, sc)) if (r, s) == key => sc,
            _ => {
                let sc = step_scalars(u.rule, u.step);
                cached = Some((key.0, key.1, sc));
                sc
            }
        };
        run(u, sc);
    }
}

fn run<T: Float>(u: Update<'_, T>, sc: StepScalars) {
    let Update { rule, step, param, grad, state: [s0, s1, s2] } = u;
    let n = param.len();
    let grad = &grad[..n];
    match rule {
        Rule::Sgd(h) => sgd(h, step, param, grad, s0),
        Rule::Adam(h) => adam(h, sc, param, grad, s0, s1, s2),
        Rule::RmsProp(h) => rmsprop(h, param, grad, s0, s1, s2),
        Rule::Adagrad(h) => adagrad(h, sc, param, grad, s0),
    }
}

/// torch's `lerp_(end, weight)` on CPU: `start + w·(end − start)` for |w| < 0.5, else
/// `end + (w − 1)·(end − start)` (both rounded per operation, no FMA), where w is the weight
/// rounded to T first, the test included (β₁ = 0.5 + 10⁻⁹ gives 1 − β₁ below 0.5 in float64 but
/// 0.5 in float32, and torch takes the second form there).
#[derive(Copy, Clone)]
struct Lerp<T> {
    small: bool,
    w: T,
    w_minus_1: T,
}

impl<T: Float> Lerp<T> {
    fn new(weight: f64) -> Self {
        let w = T::from_f64(weight);
        Lerp { small: w.abs() < T::HALF, w, w_minus_1: w - T::ONE }
    }

    #[inline(always)]
    fn apply(self, start: T, end: T) -> T {
        let diff = end - start;
        if self.small { start + self.w * diff } else { end + self.w_minus_1 * diff }
    }
}

/// max(a, b) propagating a NaN from either side (torch.maximum).
#[inline(always)]
fn maximum<T: Float>(a: T, b: T) -> T {
    if b > a || b.is_nan() { b } else { a }
}

#[inline(always)]
fn signed<T: Float>(g: T, maximize: bool) -> T {
    if maximize { -g } else { g }
}

// ---------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------

#[derive(Copy, Clone)]
struct SgdK<T> {
    maximize: bool,
    wd: T,
    momentum: T,
    one_minus_dampening: T,
    neg_lr: T,
}

fn sgd<T: Float>(h: &Sgd, step: f64, p: &mut [T], g: &[T], buf: &mut [T]) {
    let k = SgdK {
        maximize: h.maximize,
        wd: T::from_f64(h.weight_decay),
        momentum: T::from_f64(h.momentum),
        one_minus_dampening: T::from_f64(1.0 - h.dampening),
        neg_lr: T::from_f64(-h.lr),
    };
    let wd = h.weight_decay != 0.0;
    let first = step <= 1.0;
    macro_rules! go {
        ($wd:literal, $mom:literal, $nest:literal, $first:literal) => {
            simd::vectorized(#[inline(always)] || sgd_loop::<T, $wd, $mom, $nest, $first>(k, p, g, buf))
        };
    }
    match (wd, h.momentum != 0.0, h.nesterov, first) {
        (false, false, _, _) => go!(false, false, false, false),
        (true, false, _, _) => go!(true, false, false, false),
        (false, true, false, false) => go!(false, true, false, false),
        (false, true, false, true) => go!(false, true, false, true),
        (false, true, true, false) => go!(false, true, true, false),
        (false, true, true, true) => go!(false, true, true, true),
        (true, true, false, false) => go!(true, true, false, false),
        (true, true, false, true) => go!(true, true, false, true),
        (true, true, true, false) => go!(true, true, true, false),
        (true, true, true, true) => go!(true, true, true, true),
    }
}

#[inline(always)]
fn sgd_loop<T: Float, const WD: bool, const MOM: bool, const NEST: bool, const FIRST: bool>(
    k: SgdK<T>,
    p: &mut [T],
    g: &[T],
    buf: &mut [T],
) {
    let n = p.len();
    let g = &g[..n];
    let buf = if MOM { &mut buf[..n] } else { buf };
    for i in 0..n {
        let mut d = signed(g[i], k.maximize);
        if WD {
            d = d + k.wd * p[i];
        }
        if MOM {
            // torch: buf = clone(d) on the first step, else buf.mul_(m).add_(d, alpha=1 − dampening).
            let b = if FIRST { d } else { buf[i] * k.momentum + k.one_minus_dampening * d };
            buf[i] = b;
            d = if NEST { d + k.momentum * b } else { b };
        }
        p[i] = p[i] + k.neg_lr * d;
    }
}

// ---------------------------------------------------------------------------------------------
// Adam / AdamW
// ---------------------------------------------------------------------------------------------

#[derive(Copy, Clone)]
struct AdamK<T> {
    maximize: bool,
    wd: T,
    decay: T,
    lerp: Lerp<T>,
    beta2: T,
    one_minus_beta2: T,
    bc2_sqrt: T,
    eps: T,
    neg_step_size: T,
}

const WD_NONE: u8 = 0;
const WD_COUPLED: u8 = 1;
const WD_DECOUPLED: u8 = 2;

fn adam<T: Float>(h: &Adam, sc: StepScalars, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], vmax: &mut [T]) {
    let StepScalars(step_size, bc2_sqrt) = sc;
    let k = AdamK {
        maximize: h.maximize,
        wd: T::from_f64(h.weight_decay),
        decay: T::from_f64(1.0 - h.lr * h.weight_decay),
        lerp: Lerp::new(1.0 - h.beta1),
        beta2: T::from_f64(h.beta2),
        one_minus_beta2: T::from_f64(1.0 - h.beta2),
        bc2_sqrt: T::from_f64(bc2_sqrt),
        eps: T::from_f64(h.eps),
        neg_step_size: T::from_f64(-step_size),
    };
    let wd = match (h.weight_decay != 0.0, h.decoupled) {
        (false, _) => WD_NONE,
        (true, false) => WD_COUPLED,
        (true, true) => WD_DECOUPLED,
    };
    macro_rules! go {
        ($wd:expr, $ams:literal) => {
            simd::vectorized(#[inline(always)] || adam_loop::<T, { $wd }, $ams>(k, p, g, m, v, vmax))
        };
    }
    match (wd, h.amsgrad) {
        (WD_NONE, false) => go!(WD_NONE, false),
        (WD_NONE, true) => go!(WD_NONE, true),
        (WD_COUPLED, false) => go!(WD_COUPLED, false),
        (WD_COUPLED, true) => go!(WD_COUPLED, true),
        (_, false) => go!(WD_DECOUPLED, false),
        (_, true) => go!(WD_DECOUPLED, true),
    }
}

#[inline(always)]
fn adam_loop<T: Float, const WD: u8, const AMS: bool>(
    k: AdamK<T>,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    vmax: &mut [T],
) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    let vmax = if AMS { &mut vmax[..n] } else { vmax };
    for i in 0..n {
        let mut d = signed(g[i], k.maximize);
        let mut pi = p[i];
        if WD == WD_COUPLED {
            d = d + k.wd * pi;
        }
        if WD == WD_DECOUPLED {
            pi = pi * k.decay; // param.mul_(1 − lr·wd)
        }
        let mi = k.lerp.apply(m[i], d); // exp_avg.lerp_(grad, 1 − β1)
        let vi = v[i] * k.beta2 + k.one_minus_beta2 * d * d; // mul_(β2).addcmul_(g, g, value=1 − β2)
        m[i] = mi;
        v[i] = vi;
        let vv = if AMS {
            let mx = maximum(vmax[i], vi);
            vmax[i] = mx;
            mx
        } else {
            vi
        };
        let denom = vv.sqrt() / k.bc2_sqrt + k.eps;
        p[i] = pi + k.neg_step_size * mi / denom; // addcdiv_(exp_avg, denom, value=−lr/bc1)
    }
}

// ---------------------------------------------------------------------------------------------
// RMSprop
// ---------------------------------------------------------------------------------------------

#[derive(Copy, Clone)]
struct RmsK<T> {
    maximize: bool,
    wd: T,
    alpha: T,
    one_minus_alpha: T,
    lerp: Lerp<T>,
    eps: T,
    momentum: T,
    neg_lr: T,
}

fn rmsprop<T: Float>(h: &RmsProp, p: &mut [T], g: &[T], sq: &mut [T], buf: &mut [T], gavg: &mut [T]) {
    let k = RmsK {
        maximize: h.maximize,
        wd: T::from_f64(h.weight_decay),
        alpha: T::from_f64(h.alpha),
        one_minus_alpha: T::from_f64(1.0 - h.alpha),
        lerp: Lerp::new(1.0 - h.alpha),
        eps: T::from_f64(h.eps),
        momentum: T::from_f64(h.momentum),
        neg_lr: T::from_f64(-h.lr),
    };
    macro_rules! go {
        ($wd:literal, $c:literal, $mom:literal) => {
            simd::vectorized(#[inline(always)] || rms_loop::<T, $wd, $c, $mom>(k, p, g, sq, buf, gavg))
        };
    }
    match (h.weight_decay != 0.0, h.centered, h.momentum > 0.0) {
        (false, false, false) => go!(false, false, false),
        (false, false, true) => go!(false, false, true),
        (false, true, false) => go!(false, true, false),
        (false, true, true) => go!(false, true, true),
        (true, false, false) => go!(true, false, false),
        (true, false, true) => go!(true, false, true),
        (true, true, false) => go!(true, true, false),
        (true, true, true) => go!(true, true, true),
    }
}

#[inline(always)]
fn rms_loop<T: Float, const WD: bool, const CENTERED: bool, const MOM: bool>(
    k: RmsK<T>,
    p: &mut [T],
    g: &[T],
    sq: &mut [T],
    buf: &mut [T],
    gavg: &mut [T],
) {
    let n = p.len();
    let (g, sq) = (&g[..n], &mut sq[..n]);
    let buf = if MOM { &mut buf[..n] } else { buf };
    let gavg = if CENTERED { &mut gavg[..n] } else { gavg };
    for i in 0..n {
        let mut d = signed(g[i], k.maximize);
        if WD {
            d = d + k.wd * p[i];
        }
        let s = sq[i] * k.alpha + k.one_minus_alpha * d * d; // mul_(α).addcmul_(g, g, value=1 − α)
        sq[i] = s;
        let avg = if CENTERED {
            let ga = k.lerp.apply(gavg[i], d); // grad_avg.lerp_(grad, 1 − α)
            gavg[i] = ga;
            (s + -ga * ga).sqrt() // square_avg.addcmul(grad_avg, grad_avg, value=−1).sqrt_()
        } else {
            s.sqrt()
        };
        let avg = avg + k.eps;
        if MOM {
            let b = buf[i] * k.momentum + d / avg; // buf.mul_(m).addcdiv_(grad, avg)
            buf[i] = b;
            p[i] = p[i] + k.neg_lr * b;
        } else {
            p[i] = p[i] + k.neg_lr * d / avg;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adagrad
// ---------------------------------------------------------------------------------------------

#[derive(Copy, Clone)]
struct AdagradK<T> {
    maximize: bool,
    wd: T,
    eps: T,
    neg_clr: T,
}

fn adagrad<T: Float>(h: &Adagrad, sc: StepScalars, p: &mut [T], g: &[T], sum: &mut [T]) {
    let clr = sc.0;
    let k = AdagradK {
        maximize: h.maximize,
        wd: T::from_f64(h.weight_decay),
        eps: T::from_f64(h.eps),
        neg_clr: T::from_f64(-clr),
    };
    if h.weight_decay != 0.0 {
        simd::vectorized(#[inline(always)] || adagrad_loop::<T, true>(k, p, g, sum))
    } else {
        simd::vectorized(#[inline(always)] || adagrad_loop::<T, false>(k, p, g, sum))
    }
}

#[inline(always)]
fn adagrad_loop<T: Float, const WD: bool>(k: AdagradK<T>, p: &mut [T], g: &[T], sum: &mut [T]) {
    let n = p.len();
    let (g, sum) = (&g[..n], &mut sum[..n]);
    for i in 0..n {
        let mut d = signed(g[i], k.maximize);
        if WD {
            d = d + k.wd * p[i];
        }
        let s = sum[i] + d * d; // state_sum.addcmul_(grad, grad, value=1)
        sum[i] = s;
        let std = s.sqrt() + k.eps;
        p[i] = p[i] + k.neg_clr * d / std; // addcdiv_(grad, std, value=−clr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adam_rule() -> Rule {
        Rule::Adam(Adam {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            amsgrad: true,
            maximize: false,
            decoupled: true,
        })
    }

    /// Scalar Adam written straight from torch's pseudo-code, for comparison.
    fn adam_scalar(p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], vmax: &mut [f64], step: f64) {
        let (lr, b1, b2, eps, wd) = (1e-2, 0.9, 0.999, 1e-8, 0.1);
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] += (1.0 - b1) * (g[i] - m[i]);
            v[i] = v[i] * b2 + (1.0 - b2) * g[i] * g[i];
            vmax[i] = vmax[i].max(v[i]);
            let denom = vmax[i].sqrt() / (1.0 - b2.powf(step)).powf(0.5) + eps;
            p[i] += -(lr / (1.0 - b1.powf(step))) * m[i] / denom;
        }
    }

    #[test]
    fn adam_matches_scalar_form_and_threads_do_not_matter() {
        let n = 300_001;
        let g: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0).collect();
        let rule = adam_rule();
        let mut results = Vec::new();
        for threads in [1, 2] {
            crate::threads::set_num_threads(threads);
            let (mut p, mut m, mut v, mut vm) = (vec![0.5; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            for step in 1..=3 {
                let u = Update {
                    rule: &rule,
                    step: step as f64,
                    param: &mut p,
                    grad: &g,
                    state: [&mut m, &mut v, &mut vm],
                };
                apply(vec![u]).unwrap();
            }
            results.push(p);
        }
        assert_eq!(results[0], results[1]);
        let (mut p, mut m, mut v, mut vm) = (vec![0.5; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for step in 1..=3 {
            adam_scalar(&mut p, &g, &mut m, &mut v, &mut vm, step as f64);
        }
        assert_eq!(results[0], p);
    }

    #[test]
    fn length_mismatch_writes_nothing() {
        let rule = Rule::Sgd(Sgd { lr: 0.1, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false });
        let (mut p1, mut p2) = (vec![1.0f32; 4], vec![1.0f32; 3]);
        let (g1, g2) = (vec![1.0f32; 4], vec![1.0f32; 2]);
        let us = vec![
            Update { rule: &rule, step: 1.0, param: &mut p1, grad: &g1, state: Default::default() },
            Update { rule: &rule, step: 1.0, param: &mut p2, grad: &g2, state: Default::default() },
        ];
        assert!(apply(us).is_err());
        assert_eq!(p1, vec![1.0; 4]);
    }

    #[test]
    fn sgd_momentum_first_step_clones_gradient() {
        let rule = Rule::Sgd(Sgd { lr: 0.5, momentum: 0.9, dampening: 0.5, weight_decay: 0.0, nesterov: false, maximize: false });
        let (mut p, mut b) = (vec![1.0f64; 3], vec![f64::NAN; 3]);
        let g = vec![2.0f64; 3];
        apply(vec![Update { rule: &rule, step: 1.0, param: &mut p, grad: &g, state: [&mut b, &mut [], &mut []] }]).unwrap();
        assert_eq!(b, vec![2.0; 3]);
        assert_eq!(p, vec![0.0; 3]);
        apply(vec![Update { rule: &rule, step: 2.0, param: &mut p, grad: &g, state: [&mut b, &mut [], &mut []] }]).unwrap();
        assert_eq!(b, vec![2.0 * 0.9 + 0.5 * 2.0; 3]);
    }
}
