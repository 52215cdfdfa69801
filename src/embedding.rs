//! Embedding and ranking losses: row-wise distances and dot products with gradients for every input.
//!
//! The row-wise losses (triplet margin, contrastive, cosine embedding) take C-contiguous `(N, D)`
//! inputs as flat slices. Each row is read twice while it sits in L1: once for its sums (squared
//! distances, dot products), accumulated in float64 over [`L`] lanes in a fixed order, and once to
//! write the gradients of every input from a few per-row coefficients. Rows are grouped in fixed
//! blocks of about [`BLOCK`] elements (a partition that depends on N and D only); each block's row
//! losses are summed over the lanes of `crate::reduce`, and block partials by its pairwise tree, so
//! the result is bitwise identical for any thread count and SIMD level (no FMA, fixed order).
//!
//! Semantics follow PyTorch 2.13 (`shared/docs/semantics.md` Q22, Q23, §2.6): `pairwise_distance`
//! adds eps to the difference; `clamp_min` passes the gradient at the margin; the norm's gradient at
//! a zero vector is 0. Margin ranking and hinge embedding are element-wise [`Term`]s for the shared
//! engine in `crate::pointwise`.

use std::ops::Range;

use rayon::prelude::*;

use crate::float::Float;
use crate::pointwise::Term;
use crate::reduce::{self, BLOCK, LANES, PARALLEL_MIN, SharedOut};
use crate::{simd, threads};

/// Lanes of a row sum. Element i of a row always lands in lane i % L, added in element order, then
/// the lanes are folded by `reduce::sum_lanes`: the same bits at every vector width.
const L: usize = LANES;

/// Rows per block: about `BLOCK` elements, never fewer than one row.
fn rows_per_block(d: usize) -> usize {
    (BLOCK / d.max(1)).max(1)
}

/// Runs `block` over the fixed row blocks of `0..nrows` (in parallel when that pays) and returns the
/// pairwise tree sum of its results.
fn row_blocked<F>(nrows: usize, d: usize, block: F) -> f64
where
    F: Fn(Range<usize>) -> f64 + Sync,
{
    let rpb = rows_per_block(d);
    let nblocks = nrows.div_ceil(rpb);
    let range = |b: usize| b * rpb..((b + 1) * rpb).min(nrows);
    if nblocks <= 1 {
        return block(0..nrows);
    }
    let parallel = nrows.saturating_mul(d.max(1)) >= PARALLEL_MIN && threads::num_threads() > 1;
    let partials: Vec<f64> = if parallel {
        threads::pool().install(|| (0..nblocks).into_par_iter().map(|b| block(range(b))).collect())
    } else {
        (0..nblocks).map(|b| block(range(b))).collect()
    };
    reduce::tree_sum(&partials)
}

/// Σ f(a_i, b_i) over two rows of equal length, in float64: element i lands in lane i % L, lanes
/// added in element order, then folded by `reduce::sum_lanes`. Written over fixed-size chunks (no
/// bounds checks, a constant inner trip count) so that LLVM vectorises it. One statistic per call:
/// several statistics of a row are several calls, which re-read the row from L1 (measured faster
/// than one loop carrying several lane arrays, which LLVM vectorises poorly).
#[inline(always)]
fn lane_sum<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    let d = a.len();
    let b = &b[..d];
    let full = d - d % L;
    let mut acc = [0.0f64; L];
    for (ca, cb) in a[..full].chunks_exact(L).zip(b[..full].chunks_exact(L)) {
        let ca: &[T; L] = ca.try_into().unwrap();
        let cb: &[T; L] = cb.try_into().unwrap();
        for j in 0..L {
            acc[j] += f(ca[j], cb[j]);
        }
    }
    // The tail goes through a zero-padded chunk so that `acc` is only ever indexed by constants
    // and stays in registers (adding +0.0 to the unused lanes leaves them unchanged).
    let (ra, rb) = (&a[full..], &b[full..d]);
    let mut tail = [0.0f64; L];
    for j in 0..ra.len() {
        tail[j] = f(ra[j], rb[j]);
    }
    for j in 0..L {
        acc[j] += tail[j];
    }
    reduce::sum_lanes(acc)
}

/// Where a row kernel's results go.
pub struct RowOutputs<'a, T> {
    /// Per-row losses (reduction 'none').
    pub value: Option<&'a mut [T]>,
    /// Gradients of every differentiable input (all or none), each of the inputs' length.
    pub grads: Option<Vec<&'a mut [T]>>,
}

/// The per-row factor of the gradient: grad_output[r]·scale, or scale.
#[derive(Copy, Clone)]
pub struct GradFactor<'a, T> {
    pub grad_output: Option<&'a [T]>,
    pub scale: T,
}

impl<T: Float> GradFactor<'_, T> {
    #[inline(always)]
    fn at(&self, r: usize) -> T {
        match self.grad_output {
            Some(g) => g[r] * self.scale,
            None => self.scale,
        }
    }
}

/// Shared driver: splits rows into blocks, hands each block its output sub-slices, sums the row
/// losses. `row(r, out_value, grads)` computes row r (a block-local view is passed in).
fn drive<T: Float, F>(nrows: usize, d: usize, ngrads: usize, out: RowOutputs<T>, sum: bool, row_block: F) -> f64
where
    F: Fn(Range<usize>, &mut [T], &mut [&mut [T]], bool) -> f64 + Sync,
{
    let want_grad = out.grads.is_some();
    let value = SharedOut::new(out.value);
    let grads: Vec<SharedOut<T>> = match out.grads {
        Some(gs) => {
            assert_eq!(gs.len(), ngrads);
            gs.into_iter()
                .map(|g| {
                    assert_eq!(g.len(), nrows * d, "gradient length differs from the input's");
                    SharedOut::new(Some(g))
                })
                .collect()
        }
        None => Vec::new(),
    };
    row_blocked(nrows, d, |rows| {
        // SAFETY: `row_blocked` hands out disjoint row ranges, so these element ranges are disjoint.
        let v = unsafe { value.slice(rows.clone()) };
        let mut gs: Vec<&mut [T]> = grads.iter().map(|g| unsafe { g.slice(rows.start * d..rows.end * d) }).collect();
        let s = row_block(rows, v, &mut gs, want_grad);
        if sum { s } else { 0.0 }
    })
}

/// Adds `t` to lane `r % L` of `acc` (row losses of a block, in row order).
#[inline(always)]
fn add_row(acc: &mut [f64; L], r: usize, t: f64) {
    acc[r % L] += t;
}

// ------------------------------------------------------------------------------------------------
// Norms of u = x − y + eps, and their gradients
// ------------------------------------------------------------------------------------------------

/// Which p-norm a triplet distance uses.
#[derive(Copy, Clone, Debug)]
pub enum PNorm {
    One,
    Two,
    /// Any other positive real p.
    Real(f64),
    /// p = ∞: max |u_i|.
    Inf,
}

/// |x|^e for x ≥ 0 in float64 via exp/ln (0^e = 0 for e > 0, inf for e < 0).
#[inline(always)]
fn powf(x: f64, e: f64) -> f64 {
    Float::exp(e * Float::ln(x))
}

/// A row's distance ‖x − y + eps‖_p in float64 for real p (not 1 or 2). The row is scaled by its
/// largest |u_i| first, so that |u_i|^p neither overflows nor underflows and each term's relative
/// error from exp/ln, p·|ln(|u_i|/max)|·2⁻⁵³, is made negligible by the factor (|u_i|/max)^p.
#[inline(always)]
fn distance_real<T: Float>(p: f64, x: &[T], y: &[T], eps: T) -> f64 {
    let (m, nan) = max_abs(x, y, eps);
    // Divided, not multiplied by 1/m: for a subnormal m the reciprocal overflows to inf.
    let s = lane_sum(x, y, #[inline(always)] |a, b| powf(((a - b) + eps).to_f64().abs() / m, p));
    let r = m * powf(s, 1.0 / p);
    let r = if m == 0.0 { 0.0 } else { r };
    let r = if m == f64::INFINITY { m } else { r };
    if nan { f64::NAN } else { r }
}

/// (max |u_i|, whether some u_i is NaN) for u = x − y + eps (0 for an empty row), over L lanes
/// of T: a maximum does not depend on the order, and lanes let the loop vectorise.
#[inline(always)]
fn max_abs<T: Float>(x: &[T], y: &[T], eps: T) -> (f64, bool) {
    let d = x.len();
    let y = &y[..d];
    let full = d - d % L;
    let (mut m, mut nan) = ([T::ZERO; L], [T::ZERO; L]);
    for (cx, cy) in x[..full].chunks_exact(L).zip(y[..full].chunks_exact(L)) {
        for j in 0..L {
            let a = ((cx[j] - cy[j]) + eps).abs();
            m[j] = m[j].max_num(a); // maxNum skips a NaN: counted apart
            nan[j] = nan[j].max_num(if a.is_nan() { T::ONE } else { T::ZERO });
        }
    }
    let (mut mx, mut any) = (T::ZERO, false);
    for i in full..d {
        let a = ((x[i] - y[i]) + eps).abs();
        mx = mx.max_num(a);
        any |= a.is_nan();
    }
    for j in 0..L {
        mx = mx.max_num(m[j]);
        any |= nan[j] > T::ZERO;
    }
    (mx.to_f64(), any)
}

/// How many u_i = x_i − y_i + eps attain the max norm `dist` (a T value) or are NaN: PyTorch's
/// ∞-norm backward shares the gradient equally among them.
#[inline(always)]
fn max_ties<T: Float>(x: &[T], y: &[T], eps: T, dist: f64) -> f64 {
    let dist = T::from_f64(dist);
    let ties = x.iter().zip(&y[..x.len()]).filter(
        #[inline(always)]
        |&(&a, &b)| {
            let u = ((a - b) + eps).abs();
            u == dist || u.is_nan()
        },
    );
    ties.count() as f64
}

/// ‖x − y + eps‖_p in float64.
#[inline(always)]
fn dist<T: Float>(norm: PNorm, x: &[T], y: &[T], eps: T) -> f64 {
    match norm {
        PNorm::Two => lane_sum(x, y, #[inline(always)] |x, y| {
            let u = ((x - y) + eps).to_f64();
            u * u
        })
        .sqrt(),
        PNorm::One => lane_sum(x, y, #[inline(always)] |x, y| ((x - y) + eps).to_f64().abs()),
        PNorm::Real(q) => distance_real(q, x, y, eps),
        PNorm::Inf => match max_abs(x, y, eps) {
            (_, true) => f64::NAN,
            (m, false) => m,
        },
    }
}

/// d(a, p), d(a, n) and (with `SWAP`) d(p, n) of one triplet row.
#[inline(always)]
fn triplet_distances<T: Float, const SWAP: bool>(norm: PNorm, a: &[T], p: &[T], n: &[T], eps: T) -> [f64; 3] {
    [dist(norm, a, p, eps), dist(norm, a, n, eps), if SWAP { dist(norm, p, n, eps) } else { 0.0 }]
}

/// The per-row coefficient that turns ∂loss/∂distance = `g` into element gradients (see `apply`);
/// the row's distance is between x and y.
#[inline(always)]
fn coefficient<T: Float>(norm: PNorm, x: &[T], y: &[T], eps: T, dist: f64, g: f64) -> f64 {
    match norm {
        PNorm::Inf => g / max_ties(x, y, eps, dist),
        // u/‖u‖, masked to 0 at ‖u‖ = 0 (PyTorch's norm backward).
        PNorm::Two => {
            if dist == 0.0 { 0.0 } else { g / dist }
        }
        PNorm::One => g,
        PNorm::Real(_) => {
            if dist == 0.0 { 0.0 } else { g }
        }
    }
}

/// ∂distance/∂u_i times the row's coefficient `c`: u·c (p = 2), sign(u)·c (p = 1),
/// sign(u)·(|u|/‖u‖)^(p−1)·c (0 where u = 0 in a row whose norm is not NaN), sign(u)·c where |u|
/// attains the max or is NaN and 0 elsewhere (p = ∞). `sign` is torch's, 0 for a NaN u_i, so a
/// NaN element gets 0 where torch's backward gives 0 (p = 1 and ∞). In float64: a float32
/// coefficient such as g/‖u‖ can under- or overflow where the product does not (‖u‖ near 1e±38).
#[inline(always)]
fn apply(norm: PNorm, u: f64, dist: f64, c: f64) -> f64 {
    match norm {
        PNorm::Two => u * c,
        PNorm::One => u.sgn() * c,
        PNorm::Real(p) => {
            let a = u.abs();
            let t = powf(a / dist, p - 1.0);
            // torch masks u = 0 to 0 unless the row's norm is NaN: then its scale, and the row, is NaN.
            let t = if a == 0.0 && !dist.is_nan() { 0.0 } else { t };
            t * u.sgn() * c
        }
        PNorm::Inf => {
            let a = u.abs();
            u.sgn() * if a == dist || a.is_nan() { c } else { 0.0 }
        }
    }
}

/// `x`, with any NaN replaced by the one canonical NaN: which NaN an operation on two NaNs returns
/// depends on operand order, which LLVM may commute differently in the serial and the parallel
/// copy of a kernel; outputs must be bitwise identical for any thread count.
#[inline(always)]
fn canon<T: Float>(x: T) -> T {
    if x.is_nan() { T::NAN } else { x }
}

/// `apply` in T for p = 1, 2 and ∞ (`dist`, the row's max |u_i|, is a T value then).
#[inline(always)]
fn apply_narrow<T: Float>(norm: PNorm, u: T, dist: T, c: T) -> T {
    match norm {
        PNorm::Two => u * c,
        PNorm::Inf => {
            let a = u.abs();
            u.sgn() * if a == dist || a.is_nan() { c } else { T::ZERO }
        }
        _ => u.sgn() * c, // p = 1
    }
}

/// `c` rounded to T when that costs no more than T's rounding of a normal number (half an ulp,
/// at most 2^−24 of |c| in float32; a subnormal or overflowed result fails): then a row's
/// gradient loop can run in T at full vector width; otherwise it runs in float64. (A bound of
/// 10^−6 let subnormal float32 coefficients through, with up to 2^−17 relative error, and a
/// cosine gradient that cancels to about 0 came out as 6 ulps of its terms.)
#[inline(always)]
fn narrow<T: Float>(c: f64) -> Option<T> {
    let t = T::from_f64(c);
    let half_ulp = 0.5f64.powi(T::MANTISSA_DIGITS as i32);
    if c == 0.0 || (t.to_f64() - c).abs() <= c.abs() * half_ulp { Some(t) } else { None }
}

// ------------------------------------------------------------------------------------------------
// Triplet margin loss
// ------------------------------------------------------------------------------------------------

/// Options of `triplet_margin_loss`.
#[derive(Copy, Clone, Debug)]
pub struct Triplet {
    pub margin: f64,
    pub norm: PNorm,
    pub eps: f64,
    pub swap: bool,
}

/// Triplet margin loss over `nrows` rows of length `d`: returns Σ of the row losses (in f64) when
/// `sum`; writes per-row losses and the gradients (anchor, positive, negative) when asked.
#[allow(clippy::too_many_arguments)]
pub fn triplet<T: Float>(
    anchor: &[T],
    positive: &[T],
    negative: &[T],
    nrows: usize,
    d: usize,
    opts: Triplet,
    factor: GradFactor<T>,
    out: RowOutputs<T>,
    sum: bool,
) -> f64 {
    for s in [anchor, positive, negative] {
        assert_eq!(s.len(), nrows * d, "input length differs from nrows·d");
    }
    if let Some(g) = factor.grad_output {
        assert_eq!(g.len(), nrows);
    }
    if let Some(v) = &out.value {
        assert_eq!(v.len(), nrows);
    }
    drive(nrows, d, 3, out, sum, |rows, value, grads, want_grad| {
        simd::vectorized(
            #[inline(always)]
            || match (opts.norm, opts.swap) {
                (PNorm::Two, false) => triplet_block::<T, false>(PNorm::Two, anchor, positive, negative, d, opts, factor, rows, value, grads, want_grad),
                (PNorm::Two, true) => triplet_block::<T, true>(PNorm::Two, anchor, positive, negative, d, opts, factor, rows, value, grads, want_grad),
                (norm, false) => triplet_block::<T, false>(norm, anchor, positive, negative, d, opts, factor, rows, value, grads, want_grad),
                (norm, true) => triplet_block::<T, true>(norm, anchor, positive, negative, d, opts, factor, rows, value, grads, want_grad),
            },
        )
    })
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn triplet_block<T: Float, const SWAP: bool>(
    norm: PNorm,
    anchor: &[T],
    positive: &[T],
    negative: &[T],
    d: usize,
    opts: Triplet,
    factor: GradFactor<T>,
    rows: Range<usize>,
    value: &mut [T],
    grads: &mut [&mut [T]],
    want_grad: bool,
) -> f64 {
    let eps = T::from_f64(opts.eps);
    let margin = T::from_f64(opts.margin);
    let mut acc = [0.0f64; L];
    for (k, r) in rows.clone().enumerate() {
        let e = r * d..(r + 1) * d;
        let (a, p, n) = (&anchor[e.clone()], &positive[e.clone()], &negative[e]);
        let [d_ap, d_an, d_pn] = triplet_distances::<T, SWAP>(norm, a, p, n, eps);
        // PyTorch computes the distances and the clamp in the inputs' dtype: so do we (the
        // float64 sums above are only more accurate distances).
        let (ap, an, pn) = (T::from_f64(d_ap), T::from_f64(d_an), T::from_f64(d_pn));
        // swap: min(d(a,n), d(p,n)); torch.min's gradient goes to the smaller one, half each at a tie.
        let (neg, share_an, share_pn) = if SWAP {
            if pn < an {
                (pn, 0.0, 1.0)
            } else if pn == an {
                (an, 0.5, 0.5)
            } else {
                (an, 1.0, 0.0)
            }
        } else {
            (an, 1.0, 0.0)
        };
        let pre = (margin + ap) - neg;
        let loss = canon(pre.clamp_min(T::ZERO));
        if !value.is_empty() {
            value[k] = loss;
        }
        add_row(&mut acc, k, loss.to_f64());
        if want_grad {
            // clamp_min passes the gradient where pre ≥ 0 (the boundary included); NaN gives 0.
            let g = if pre >= T::ZERO { factor.at(r).to_f64() } else { 0.0 };
            let cu = coefficient(norm, a, p, eps, d_ap, g);
            let cv = coefficient(norm, a, n, eps, d_an, g * share_an);
            let cw = if SWAP { coefficient(norm, p, n, eps, d_pn, g * share_pn) } else { 0.0 };
            let e = k * d..(k + 1) * d;
            let [ga, gp, gn] = grads else { unreachable!() };
            let (ga, gp, gn) = (&mut ga[e.clone()], &mut gp[e.clone()], &mut gn[e]);
            triplet_grad_row::<T, SWAP>(norm, a, p, n, ga, gp, gn, [d_ap, d_an, d_pn], [cu, cv, cw], eps);
        }
    }
    reduce::sum_lanes(acc)
}

/// Writes one row's triplet gradients. The slices are arguments of their own function so that LLVM
/// knows they do not alias (noalias scopes survive inlining) and vectorises the loop without
/// runtime overlap checks, which it gives up on for six streams.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn triplet_grad_row<T: Float, const SWAP: bool>(
    norm: PNorm,
    a: &[T],
    p: &[T],
    n: &[T],
    ga: &mut [T],
    gp: &mut [T],
    gn: &mut [T],
    [d_ap, d_an, d_pn]: [f64; 3],
    [cu, cv, cw]: [f64; 3],
    eps: T,
) {
    let d = a.len();
    let (p, n, ga, gp, gn) = (&p[..d], &n[..d], &mut ga[..d], &mut gp[..d], &mut gn[..d]);
    if let (PNorm::Two | PNorm::One | PNorm::Inf, Some(cu), Some(cv), Some(cw)) =
        (norm, narrow::<T>(cu), narrow::<T>(cv), narrow::<T>(cw))
    {
        // The common case: the coefficients fit T, so the products are T products. (The ∞-norm
        // distances are maxima of T values, so exactly T values.)
        let (t_ap, t_an, t_pn) = (T::from_f64(d_ap), T::from_f64(d_an), T::from_f64(d_pn));
        for i in 0..d {
            let u = (a[i] - p[i]) + eps;
            let v = (a[i] - n[i]) + eps;
            let (du, dv) = (apply_narrow(norm, u, t_ap, cu), apply_narrow(norm, v, t_an, cv));
            if SWAP {
                let dw = apply_narrow(norm, (p[i] - n[i]) + eps, t_pn, cw);
                ga[i] = canon(du - dv);
                gp[i] = canon(-du - dw);
                gn[i] = canon(dv + dw);
            } else {
                ga[i] = canon(du - dv);
                gp[i] = canon(-du);
                gn[i] = canon(dv);
            }
        }
        return;
    }
    // u, v, w are formed in T as PyTorch does; the products with the row coefficients and the
    // final sums are float64, rounded once to T.
    for i in 0..d {
        let u = ((a[i] - p[i]) + eps).to_f64();
        let v = ((a[i] - n[i]) + eps).to_f64();
        let du = apply(norm, u, d_ap, cu);
        let dv = apply(norm, v, d_an, cv);
        if SWAP {
            let w = ((p[i] - n[i]) + eps).to_f64();
            let dw = apply(norm, w, d_pn, cw);
            ga[i] = canon(T::from_f64(du - dv));
            gp[i] = canon(T::from_f64(-du - dw));
            gn[i] = canon(T::from_f64(dv + dw));
        } else {
            ga[i] = canon(T::from_f64(du - dv));
            gp[i] = canon(T::from_f64(-du));
            gn[i] = canon(T::from_f64(dv));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Contrastive loss (Hadsell et al. 2006; target 1 = dissimilar)
// ------------------------------------------------------------------------------------------------

/// Contrastive loss (1−y)·½d² + y·½·max(0, margin − d)², d = ‖x1 − x2 + eps‖₂, y ∈ {0, 1} (the
/// caller checks; any y ≠ 0 is treated as 1). Gradients (input1, input2).
#[allow(clippy::too_many_arguments)]
pub fn contrastive<T: Float>(
    x1: &[T],
    x2: &[T],
    target: &[T],
    nrows: usize,
    d: usize,
    margin: f64,
    eps: f64,
    factor: GradFactor<T>,
    out: RowOutputs<T>,
    sum: bool,
) -> f64 {
    assert_eq!(x1.len(), nrows * d);
    assert_eq!(x2.len(), nrows * d);
    assert_eq!(target.len(), nrows);
    if let Some(g) = factor.grad_output {
        assert_eq!(g.len(), nrows);
    }
    if let Some(v) = &out.value {
        assert_eq!(v.len(), nrows);
    }
    drive(nrows, d, 2, out, sum, |rows, value, grads, want_grad| {
        simd::vectorized(
            #[inline(always)]
            || contrastive_block(x1, x2, target, d, margin, eps, factor, rows, value, grads, want_grad),
        )
    })
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn contrastive_block<T: Float>(
    x1: &[T],
    x2: &[T],
    target: &[T],
    d: usize,
    margin: f64,
    eps: f64,
    factor: GradFactor<T>,
    rows: Range<usize>,
    value: &mut [T],
    grads: &mut [&mut [T]],
    want_grad: bool,
) -> f64 {
    let eps = T::from_f64(eps);
    let mut acc = [0.0f64; L];
    for (k, r) in rows.clone().enumerate() {
        let e = r * d..(r + 1) * d;
        let (a, b) = (&x1[e.clone()], &x2[e]);
        let ss = lane_sum(a, b, #[inline(always)] |x, y| {
            let u = ((x - y) + eps).to_f64();
            u * u
        });
        let dist = ss.sqrt();
        let dissimilar = target[r] != T::ZERO;
        let h = margin - dist;
        let hinge = if h > 0.0 { h } else { 0.0 }; // max(0, m − d); NaN d gives NaN below via dist
        let l = if dissimilar { 0.5 * hinge * hinge } else { 0.5 * ss };
        let l = if dist.is_nan() { dist } else { l };
        let loss = canon(T::from_f64(l));
        if !value.is_empty() {
            value[k] = loss;
        }
        add_row(&mut acc, k, loss.to_f64());
        if want_grad {
            let g = factor.at(r).to_f64();
            // ∂/∂u: u for a similar pair (½‖u‖²); −max(0, m − d)·u/d for a dissimilar one, 0 at d = 0.
            let c = if dissimilar { -g * hinge / dist } else { g };
            let c = if dist == 0.0 { 0.0 } else { c };
            let c = if dist.is_nan() { dist } else { c };
            let e = k * d..(k + 1) * d;
            let [g1, g2] = grads else { unreachable!() };
            contrastive_grad_row(a, b, &mut g1[e.clone()], &mut g2[e], c, eps);
        }
    }
    reduce::sum_lanes(acc)
}

/// One row's contrastive gradients: ±(x1 − x2 + eps)·c (own function: see `triplet_grad_row`).
#[inline(always)]
fn contrastive_grad_row<T: Float>(a: &[T], b: &[T], g1: &mut [T], g2: &mut [T], c: f64, eps: T) {
    let d = a.len();
    let (b, g1, g2) = (&b[..d], &mut g1[..d], &mut g2[..d]);
    if let Some(ct) = narrow::<T>(c) {
        for i in 0..d {
            let t = ((a[i] - b[i]) + eps) * ct;
            g1[i] = canon(t);
            g2[i] = canon(-t);
        }
        return;
    }
    for i in 0..d {
        // The product in float64 (see `apply`), rounded once.
        let t = T::from_f64(((a[i] - b[i]) + eps).to_f64() * c);
        g1[i] = canon(t);
        g2[i] = canon(-t);
    }
}

// ------------------------------------------------------------------------------------------------
// Cosine embedding loss
// ------------------------------------------------------------------------------------------------

/// PyTorch's guard added to each squared magnitude (ATen Loss.cpp, EPSILON): a float constant,
/// so float32(1e-12) = 9.99999996e-13, in float64 too (torch 2.13's gradients at a zero vector
/// match it, not 1e-12).
const COS_EPS: f64 = 1e-12f32 as f64;

/// Cosine embedding loss: 1 − cos for y = 1, max(0, cos − margin) for y = −1 (the caller checks
/// y ∈ {1, −1}), cos = ⟨x1,x2⟩ / √((Σx1² + ε)(Σx2² + ε)) with ε = `COS_EPS`. Gradients (input1, input2).
#[allow(clippy::too_many_arguments)]
pub fn cosine_embedding<T: Float>(
    x1: &[T],
    x2: &[T],
    target: &[T],
    nrows: usize,
    d: usize,
    margin: f64,
    factor: GradFactor<T>,
    out: RowOutputs<T>,
    sum: bool,
) -> f64 {
    assert_eq!(x1.len(), nrows * d);
    assert_eq!(x2.len(), nrows * d);
    assert_eq!(target.len(), nrows);
    if let Some(g) = factor.grad_output {
        assert_eq!(g.len(), nrows);
    }
    if let Some(v) = &out.value {
        assert_eq!(v.len(), nrows);
    }
    drive(nrows, d, 2, out, sum, |rows, value, grads, want_grad| {
        simd::vectorized(
            #[inline(always)]
            || cosine_block(x1, x2, target, d, margin, factor, rows, value, grads, want_grad),
        )
    })
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cosine_block<T: Float>(
    x1: &[T],
    x2: &[T],
    target: &[T],
    d: usize,
    margin: f64,
    factor: GradFactor<T>,
    rows: Range<usize>,
    value: &mut [T],
    grads: &mut [&mut [T]],
    want_grad: bool,
) -> f64 {
    let mut acc = [0.0f64; L];
    for (k, r) in rows.clone().enumerate() {
        let e = r * d..(r + 1) * d;
        let (a, b) = (&x1[e.clone()], &x2[e]);
        let s12 = lane_sum(a, b, #[inline(always)] |x, y| x.to_f64() * y.to_f64());
        let s11 = lane_sum(a, a, #[inline(always)] |x, _| x.to_f64() * x.to_f64());
        let s22 = lane_sum(b, b, #[inline(always)] |y, _| y.to_f64() * y.to_f64());
        let (ma, mb) = (s11 + COS_EPS, s22 + COS_EPS);
        // √A·√B rather than √(A·B): the product overflows float64 for float64 inputs near 1e77.
        let denom = ma.sqrt() * mb.sqrt();
        let cos = s12 / denom;
        // Target 1: 1 − cos; −1: max(0, cos − margin); any other value: 0 (as torch's two wheres).
        let (similar, dissimilar) = (target[r] == T::ONE, target[r] == -T::ONE);
        let pre = cos - margin;
        let l = if similar { 1.0 - cos } else if dissimilar && pre >= 0.0 { pre } else { 0.0 };
        let l = if dissimilar && pre.is_nan() { pre } else { l };
        let loss = canon(T::from_f64(l));
        if !value.is_empty() {
            value[k] = loss;
        }
        add_row(&mut acc, k, loss.to_f64());
        if want_grad {
            let g = factor.at(r).to_f64();
            // ∂loss/∂cos: −1 (y = 1); +1 where cos − margin ≥ 0 (clamp_min passes at the boundary).
            let s = if similar { -g } else if dissimilar && pre >= 0.0 { g } else { 0.0 };
            // ∂cos/∂x1 = x2/denom − cos·x1/A, ∂cos/∂x2 = x1/denom − cos·x2/B.
            // Kept in float64: for float32 inputs near 1e±30 these under- or overflow float32.
            let (c12, c11, c22) = (s / denom, s * cos / ma, s * cos / mb);
            let e = k * d..(k + 1) * d;
            let [g1, g2] = grads else { unreachable!() };
            cosine_grad_row(a, b, &mut g1[e.clone()], &mut g2[e], [c12, c11, c22]);
        }
    }
    reduce::sum_lanes(acc)
}

/// One row's cosine gradients: x2·c12 − x1·c11 and x1·c12 − x2·c22 (own function: see
/// `triplet_grad_row`).
#[inline(always)]
fn cosine_grad_row<T: Float>(a: &[T], b: &[T], g1: &mut [T], g2: &mut [T], [c12, c11, c22]: [f64; 3]) {
    let d = a.len();
    let (b, g1, g2) = (&b[..d], &mut g1[..d], &mut g2[..d]);
    if let (Some(c12), Some(c11), Some(c22)) = (narrow::<T>(c12), narrow::<T>(c11), narrow::<T>(c22)) {
        for i in 0..d {
            g1[i] = canon(b[i] * c12 - a[i] * c11);
            g2[i] = canon(a[i] * c12 - b[i] * c22);
        }
        return;
    }
    for i in 0..d {
        let (x, y) = (a[i].to_f64(), b[i].to_f64());
        g1[i] = canon(T::from_f64(y * c12 - x * c11));
        g2[i] = canon(T::from_f64(x * c12 - y * c22));
    }
}

// ------------------------------------------------------------------------------------------------
// Element-wise: margin ranking and hinge embedding (for crate::pointwise::evaluate)
// ------------------------------------------------------------------------------------------------

/// max(0, −y·(x1 − x2) + margin) with x = input1, y = target, z = input2; ∂x = −y, ∂z = +y where
/// the argument is ≥ 0 (clamp_min passes at the boundary).
#[derive(Copy, Clone)]
pub struct MarginRanking<T> {
    pub margin: T,
}
impl<T: Float> Term<T> for MarginRanking<T> {
    const GRAD_Z: bool = true;
    #[inline(always)]
    fn eval(&self, x: T, y: T, z: T, _: (T, T)) -> (T, T, T) {
        let pre = -y * (x - z) + self.margin;
        let active = pre >= T::ZERO;
        (pre.clamp_min(T::ZERO), if active { -y } else { T::ZERO }, if active { y } else { T::ZERO })
    }
}

/// x for y = 1, max(0, margin − x) for y = −1; ∂ = 1, or −1 where margin − x ≥ 0. Written as torch's
/// where(y ≠ 1, max(0, margin − x), 0) + where(y ≠ −1, x, 0), so any other target gets both terms.
#[derive(Copy, Clone)]
pub struct HingeEmbedding<T> {
    pub margin: T,
}
impl<T: Float> Term<T> for HingeEmbedding<T> {
    #[inline(always)]
    fn eval(&self, x: T, y: T, _: T, _: (T, T)) -> (T, T, T) {
        let h = self.margin - x;
        let (hinge, linear) = (y != T::ONE, y != -T::ONE);
        let l = if hinge { h.clamp_min(T::ZERO) } else { T::ZERO } + if linear { x } else { T::ZERO };
        let d = if linear { T::ONE } else { T::ZERO } + if hinge && h >= T::ZERO { -T::ONE } else { T::ZERO };
        (l, d, T::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_triplet(n: usize, d: usize, opts: Triplet) -> (f64, Vec<f64>, Vec<Vec<f64>>) {
        let a: Vec<f64> = (0..n * d).map(|i| ((i * 7919) % 101) as f64 * 0.03 - 1.4).collect();
        let p: Vec<f64> = (0..n * d).map(|i| ((i * 6007) % 97) as f64 * 0.02 - 1.0).collect();
        let q: Vec<f64> = (0..n * d).map(|i| ((i * 3001) % 89) as f64 * 0.025 - 1.1).collect();
        let mut value = vec![0.0; n];
        let (mut ga, mut gp, mut gn) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * d]);
        let out = RowOutputs { value: Some(&mut value), grads: Some(vec![&mut ga, &mut gp, &mut gn]) };
        let total = triplet(&a, &p, &q, n, d, opts, GradFactor { grad_output: None, scale: 1.0 }, out, true);
        (total, value, vec![ga, gp, gn])
    }

    #[test]
    fn f32_rows_agree_with_f64_rows() {
        let (n, d) = (64, 37);
        let opts = Triplet { margin: 1.0, norm: PNorm::Two, eps: 1e-6, swap: false };
        let a: Vec<f32> = (0..n * d).map(|i| ((i * 7919) % 101) as f32 * 0.03 - 1.4).collect();
        let p: Vec<f32> = (0..n * d).map(|i| ((i * 6007) % 97) as f32 * 0.02 - 1.0).collect();
        let q: Vec<f32> = (0..n * d).map(|i| ((i * 3001) % 89) as f32 * 0.025 - 1.1).collect();
        let (mut ga, mut gp, mut gn) = (vec![0.0f32; n * d], vec![0.0f32; n * d], vec![0.0f32; n * d]);
        let out = RowOutputs { value: None, grads: Some(vec![&mut ga, &mut gp, &mut gn]) };
        let t32 = triplet(&a, &p, &q, n, d, opts, GradFactor { grad_output: None, scale: 1.0 }, out, true);
        let up = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let t64 = triplet(&up(&a), &up(&p), &up(&q), n, d, opts, GradFactor { grad_output: None, scale: 1.0 },
                          RowOutputs { value: None, grads: None }, true);
        assert!((t32 - t64).abs() <= 1e-5 * t64.abs(), "{t32} vs {t64}");
    }

    #[test]
    fn triplet_is_identical_for_any_thread_count() {
        let opts = Triplet { margin: 1.0, norm: PNorm::Two, eps: 1e-6, swap: true };
        threads::set_num_threads(1);
        let one = run_triplet(3000, 77, opts);
        threads::set_num_threads(2);
        let two = run_triplet(3000, 77, opts);
        assert_eq!(one.0.to_bits(), two.0.to_bits());
        assert_eq!(one.1, two.1);
        assert_eq!(one.2, two.2);
    }

    #[test]
    fn triplet_gradient_matches_finite_differences() {
        for norm in [PNorm::One, PNorm::Two, PNorm::Real(3.0), PNorm::Real(1.5)] {
            let opts = Triplet { margin: 5.0, norm, eps: 1e-6, swap: false };
            let (_, _, g) = run_triplet(1, 9, opts);
            let base = |a: &[f64]| {
                let p: Vec<f64> = (0..9).map(|i| ((i * 6007) % 97) as f64 * 0.02 - 1.0).collect();
                let q: Vec<f64> = (0..9).map(|i| ((i * 3001) % 89) as f64 * 0.025 - 1.1).collect();
                triplet(a, &p, &q, 1, 9, opts, GradFactor { grad_output: None, scale: 1.0 },
                        RowOutputs { value: None, grads: None }, true)
            };
            let a: Vec<f64> = (0..9).map(|i| ((i * 7919) % 101) as f64 * 0.03 - 1.4).collect();
            for i in 0..9 {
                let h = 1e-6;
                let (mut up, mut dn) = (a.clone(), a.clone());
                up[i] += h;
                dn[i] -= h;
                let fd = (base(&up) - base(&dn)) / (2.0 * h);
                assert!((fd - g[0][i]).abs() < 1e-6, "{norm:?} {i}: {fd} vs {}", g[0][i]);
            }
        }
    }
}
