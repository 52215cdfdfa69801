//! The engine for element-wise losses: loss value, reduction and gradient in one pass.
//!
//! A loss supplies a [`Term`]: ℓ and its derivatives at one element. The engine streams the inputs
//! block by block (see [`crate::reduce`]), and per element optionally adds `ℓ·value_weight` to the
//! sum, stores it, and stores `∂ℓ·grad_weight·grad_scale`. Weights that are not given read as ones
//! from a constant block, so one loop shape serves weighted and unweighted calls alike.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::float::Float;
use crate::reduce::{self, SharedOut};
use crate::simd;

/// One element-wise loss: ℓ(x, y, z) and its derivatives in x and z.
///
/// `y` is the target; `z` is a third per-element input (Gaussian NLL's variance) or ones.
/// Implementations must be branch-free (selects only) so that the lane loop vectorises; the
/// engine drops whatever part of the result a call does not use.
pub trait Term<T: Float>: Copy + Send + Sync {
    /// Whether ∂ℓ/∂z is a gradient the caller gets back.
    const GRAD_Z: bool = false;
    /// Whether the loss does part of its work in [`Term::pre`]. The engine then runs `pre` over a
    /// whole chunk first and hands each element's result to `eval`: a loss whose elements are one
    /// long dependency chain (an exponential feeding a logarithm and divisions) is limited by how
    /// many elements the processor's reorder window holds, not by its execution units, and two
    /// shorter chains in two passes let it overlap more elements (same operations, same bits).
    const STAGED: bool = false;
    /// The first part of the work at one element (used when `STAGED`).
    #[inline(always)]
    fn pre(&self, _x: T, _y: T, _z: T) -> (T, T) {
        (T::ZERO, T::ZERO)
    }
    /// Whether `pre` has a cheaper form, [`Term::pre_shortcut`], for chunks whose every element
    /// passes [`Term::shortcut_applies`] (BCE: with hard labels, 0 or 1, one logarithm per
    /// element instead of two). The engine tests a chunk first, then runs one form over all of it:
    /// the test costs a pass over the chunk in cache, a branch per element would cost both forms.
    const SHORTCUT: bool = false;
    /// Whether `pre_shortcut` may stand in for `pre` at this element (used when `SHORTCUT`).
    #[inline(always)]
    fn shortcut_applies(&self, _x: T, _y: T, _z: T) -> bool {
        false
    }
    /// A result for `eval` that gives the same bits as `pre`'s where `shortcut_applies`.
    #[inline(always)]
    fn pre_shortcut(&self, x: T, y: T, z: T) -> (T, T) {
        self.pre(x, y, z)
    }
    /// Whether the loss has a domain to check (`valid`). The engine then checks every element in
    /// the loop that evaluates it, on the values that loop loads anyway (a separate pass, before
    /// or per block, costs a read of the inputs from memory: about a fifth of BCE's time at 10⁶).
    const CHECKED: bool = false;
    /// Whether (x, y, z) lies in the loss's domain (used when `CHECKED`).
    #[inline(always)]
    fn valid(&self, _x: T, _y: T, _z: T) -> bool {
        true
    }
    /// (ℓ, ∂ℓ/∂x, ∂ℓ/∂z), given `pre`'s result at this element (zeros when not `STAGED`).
    fn eval(&self, x: T, y: T, z: T, pre: (T, T)) -> (T, T, T);
    /// Both parts at one element: `eval` on `pre`'s result (for single evaluations and tests).
    #[inline(always)]
    fn eval_at(&self, x: T, y: T, z: T) -> (T, T, T) {
        self.eval(x, y, z, self.pre(x, y, z))
    }
}

/// The inputs of one evaluation; all slices have the length of `x`.
pub struct Inputs<'a, T> {
    pub x: &'a [T],
    pub y: &'a [T],
    pub z: Option<&'a [T]>,
    /// Multiplies ℓ (per-element loss weights).
    pub value_weight: Option<&'a [T]>,
    /// Multiplies ∂ℓ (loss weights times an upstream gradient).
    pub grad_weight: Option<&'a [T]>,
    /// Multiplies ∂ℓ (1/N for a mean, a scalar upstream gradient).
    pub grad_scale: T,
}

/// Where results go; `None` means "not wanted".
pub struct Outputs<'a, T> {
    /// Per-element losses (reduction 'none').
    pub value: Option<&'a mut [T]>,
    pub grad_x: Option<&'a mut [T]>,
    pub grad_z: Option<&'a mut [T]>,
}

const SKIP: u8 = 0;
const SUM: u8 = 1;
const STORE: u8 = 2;

/// Evaluates `term` over the inputs; returns Σ ℓ·value_weight (in f64) when `sum` is set, else 0.
///
/// Err(i): element i is the first outside the term's domain (`Term::valid`). The outputs may then
/// hold results for some blocks: a caller that must not write partially passes fresh buffers, or
/// checks the inputs first.
pub fn evaluate<T: Float, K: Term<T>>(term: K, inp: &Inputs<T>, out: Outputs<T>, sum: bool) -> Result<f64, usize> {
    let n = inp.x.len();
    for s in [Some(inp.y), inp.z, inp.value_weight, inp.grad_weight].into_iter().flatten() {
        assert_eq!(s.len(), n, "input lengths differ");
    }
    for s in [&out.value, &out.grad_x, &out.grad_z].into_iter().flatten() {
        assert_eq!(s.len(), n, "output length differs from the input's");
    }
    let grad = out.grad_x.is_some();
    assert!(!K::GRAD_Z || grad == out.grad_z.is_some(), "both gradients or neither");
    let value_mode = match (out.value.is_some(), sum) {
        (true, _) => STORE,
        (false, true) => SUM,
        (false, false) => SKIP,
    };
    let outs = [SharedOut::new(out.value), SharedOut::new(out.grad_x), SharedOut::new(out.grad_z)];
    // Unweighted calls (the common case) get a loop without the weight streams.
    let weighted = inp.value_weight.is_some() || inp.grad_weight.is_some();
    match (value_mode, grad, weighted) {
        (SKIP, false, _) if !K::CHECKED => Ok(0.0),
        (SKIP, false, _) => run::<T, K, SKIP, false, false>(term, inp, outs),
        (SKIP, true, false) => run::<T, K, SKIP, true, false>(term, inp, outs),
        (SKIP, true, true) => run::<T, K, SKIP, true, true>(term, inp, outs),
        (SUM, false, false) => run::<T, K, SUM, false, false>(term, inp, outs),
        (SUM, false, true) => run::<T, K, SUM, false, true>(term, inp, outs),
        (SUM, true, false) => run::<T, K, SUM, true, false>(term, inp, outs),
        (SUM, true, true) => run::<T, K, SUM, true, true>(term, inp, outs),
        (_, false, false) => run::<T, K, STORE, false, false>(term, inp, outs),
        (_, false, true) => run::<T, K, STORE, false, true>(term, inp, outs),
        (_, true, false) => run::<T, K, STORE, true, false>(term, inp, outs),
        (_, true, true) => run::<T, K, STORE, true, true>(term, inp, outs),
    }
}

fn run<'a, T: Float, K: Term<T>, const VALUE: u8, const GRAD: bool, const WEIGHTED: bool>(
    term: K,
    inp: &Inputs<'a, T>,
    outs: [SharedOut<T>; 3],
) -> Result<f64, usize> {
    let ones = T::ONES_BLOCK;
    // The first element outside the term's domain: each block that has one records its first, and
    // the smallest over all blocks is the first overall, whichever thread saw it.
    let first_invalid = AtomicUsize::new(usize::MAX);
    let total = reduce::blocked(inp.x.len(), |r| {
        let n = r.len();
        let pick = |s: Option<&'a [T]>| -> &'a [T] { s.map_or(&ones[..n], |s| &s[r.clone()]) };
        // SAFETY: `blocked` hands out disjoint block ranges.
        let (value, gx, gz) = unsafe { (outs[0].slice(r.clone()), outs[1].slice(r.clone()), outs[2].slice(r.clone())) };
        let (x, y, z) = (&inp.x[r.clone()], &inp.y[r.clone()], pick(inp.z));
        let (vw, gw) = (pick(inp.value_weight), pick(inp.grad_weight));
        let (total, invalid) = simd::vectorized(
            #[inline(always)]
            || block::<T, K, VALUE, GRAD, WEIGHTED>(&term, x, y, z, vw, gw, inp.grad_scale, value, gx, gz),
        );
        if invalid {
            // Rare (the call fails): find where, for the error message.
            let (x, y, z) = (&x[..n], &y[..n], &z[..n]);
            let i = simd::first_index(n, #[inline(always)] |i| !term.valid(x[i], y[i], z[i]));
            first_invalid.fetch_min(r.start + i.expect("an invalid element"), Ordering::Relaxed);
        }
        total
    });
    match first_invalid.into_inner() {
        usize::MAX => Ok(total),
        i => Err(i),
    }
}

/// Elements per inner chunk: the per-element loop writes their terms to a small buffer that
/// the lane accumulators then consume (widened to f64). Splitting map from reduction lets LLVM's
/// loop vectoriser run the branch-free map at the full width of T while the reduction keeps its
/// fixed order.
const CHUNK: usize = 256;

/// One block: its sum (when `VALUE == SUM`) and whether an element lies outside the term's domain
/// (when `K::CHECKED`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<T: Float, K: Term<T>, const VALUE: u8, const GRAD: bool, const WEIGHTED: bool>(
    term: &K,
    x: &[T],
    y: &[T],
    z: &[T],
    vw: &[T],
    gw: &[T],
    scale: T,
    value: &mut [T],
    gx: &mut [T],
    gz: &mut [T],
) -> (f64, bool) {
    // The term by value: its fields become plain values. Behind the reference, a field read only
    // in one arm of a select (smooth L1's 1/β) was loaded per element as a masked gather.
    let term = *term;
    let n = x.len();
    let mut acc = reduce::BlockSum::new();
    let mut invalid = false;
    let mut terms = [T::ZERO; CHUNK];
    // `pre`'s results, in two arrays so that both passes load and store whole vectors.
    let (mut pre_a, mut pre_b) = ([T::ZERO; CHUNK], [T::ZERO; CHUNK]);
    let mut start = 0;
    while start < n {
        let m = CHUNK.min(n - start);
        let r = start..start + m;
        let (x, y, z, vw, gw) = (&x[r.clone()], &y[r.clone()], &z[r.clone()], &vw[r.clone()], &gw[r.clone()]);
        let value = if VALUE == STORE { &mut value[r.clone()] } else { &mut value[..0] };
        let gx = if GRAD { &mut gx[r.clone()] } else { &mut gx[..0] };
        let gz = if GRAD && K::GRAD_Z { &mut gz[r.clone()] } else { &mut gz[..0] };
        let terms = &mut terms[..m];
        let (pre_a, pre_b) = (&mut pre_a[..m], &mut pre_b[..m]);
        if K::STAGED {
            let mut shortcut = K::SHORTCUT;
            if K::SHORTCUT {
                for i in 0..m {
                    shortcut &= term.shortcut_applies(x[i], y[i], z[i]);
                }
            }
            if shortcut {
                for i in 0..m {
                    (pre_a[i], pre_b[i]) = term.pre_shortcut(x[i], y[i], z[i]);
                }
            } else {
                for i in 0..m {
                    (pre_a[i], pre_b[i]) = term.pre(x[i], y[i], z[i]);
                }
            }
        }
        for i in 0..m {
            let pre = if K::STAGED { (pre_a[i], pre_b[i]) } else { (T::ZERO, T::ZERO) };
            let (l, dx, dz) = term.eval(x[i], y[i], z[i], pre);
            if K::CHECKED {
                invalid |= !term.valid(x[i], y[i], z[i]);
            }
            let l = if WEIGHTED { l * vw[i] } else { l };
            if VALUE == SUM {
                terms[i] = l;
            }
            if VALUE == STORE {
                value[i] = l;
            }
            if GRAD {
                let f = if WEIGHTED { gw[i] * scale } else { scale };
                gx[i] = dx * f;
                if K::GRAD_Z {
                    gz[i] = dz * f;
                }
            }
        }
        if VALUE == SUM {
            // Element i of the block lands in lane i % LANES (CHUNK is a multiple of LANES).
            acc.add(terms);
        }
        start += m;
    }
    (acc.total(), invalid)
}

/// Σ x in f64 with the shared reduction scheme (e.g. the Σw divisor of a weighted mean).
pub fn sum<T: Float>(x: &[T]) -> f64 {
    #[derive(Copy, Clone)]
    struct Identity;
    impl<T: Float> Term<T> for Identity {
        #[inline(always)]
        fn eval(&self, x: T, _: T, _: T, _: (T, T)) -> (T, T, T) {
            (x, T::ZERO, T::ZERO)
        }
    }
    let inp = Inputs { x, y: x, z: None, value_weight: None, grad_weight: None, grad_scale: T::ONE };
    match evaluate(Identity, &inp, Outputs { value: None, grad_x: None, grad_z: None }, true) {
        Ok(total) => total,
        Err(_) => unreachable!("Identity has no domain to check"),
    }
}

