//! Row-wise losses over a class axis: cross-entropy, NLL, multi-margin and multilabel soft-margin
//! (PyTorch 2.13 semantics: shared/docs/semantics.md §1.5 Q4–Q11 and Q21, §2.3, §2.6).
//!
//! An input is seen as (n, c, s): sample (i, k) has its c class values at x[(i·c + j)·s + k],
//! j = 0..c. That is PyTorch's class axis 1, with s = 1 for (N, C) and s = d1·…·dK for
//! (N, C, d1, …, dK). Samples are numbered i·s + k, the order of the target and of the
//! reduction='none' output.
//!
//! Work is split into blocks of about `reduce::BLOCK` elements that depend on the shape only: runs
//! of whole rows when s = 1, runs of samples along s within one i otherwise. A block sums its
//! samples' losses in f64 lanes in sample order and `reduce::blocked` combines the blocks with its
//! fixed tree, so every result is bitwise identical for any thread count.
//!
//! Softmax cross-entropy, per sample: m = max x, e_j = exp(x_j − m) computed once (and stored in
//! the gradient buffer when a gradient is wanted), s = Σ e_j (in f64), L = ln s. Then
//! lse − x_j = (m − x_j) + L is a sum of two non-negative terms (no cancellation), and the
//! gradient is e_j·a minus the target's share, written over the stored e_j. Rows with many classes
//! run one at a time with vector loops along the row; rows with few classes are transposed in
//! tiles of up to `TILE` samples so that the vector loops run across samples; the (N, C, d…) layout
//! already has samples along the contiguous axis and runs in place with class stride s.

// Indexed loops over several slices at once are the shape LLVM vectorises (see crate::pointwise).
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use crate::float::Float;
use crate::reduce::{self, BLOCK, LANES, SharedOut};
use crate::simd;

/// The (n, c, s) view of an input (see the module documentation).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

impl Layout {
    pub fn samples(&self) -> usize {
        self.n * self.s
    }
    pub fn len(&self) -> usize {
        self.n * self.c * self.s
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Samples processed together by the column kernels (their per-sample state lives on the stack).
const TILE: usize = 64;
/// Rows with fewer classes than this (and s = 1) go through the transposed column kernel: the
/// row kernel's fixed cost per row (horizontal max and sum, one scalar log) outweighs the
/// transposes there. Measured with `examples/ce_timing` (AVX-512, float32, best of 50, the two
/// builds alternating): 16 to 28 classes took 2.0–2.9 ns per element transposed against 2.4–4.1
/// by rows; at 32 and 48 classes rows were faster (1.2–2.2 against 2.1–3.0).
const TILED_C: usize = 32;
/// Below this many classes the transposes are compiled for each constant c (see `transpose`).
const SMALL_C: usize = 16;
/// Elements mapped into a buffer before being summed (see `sum64`).
const CHUNK: usize = 512;

// ------------------------------------------------------------------------------------------------
// Blocks, accumulation, outputs
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Block {
    /// Whole rows i (s = 1).
    Rows(Range<usize>),
    /// Samples (i, k) for k in ks.
    Columns { i: usize, ks: Range<usize> },
}

impl Block {
    /// The block's samples, contiguous in sample numbering.
    fn samples(&self, s: usize) -> Range<usize> {
        match self {
            Block::Rows(r) => r.clone(),
            Block::Columns { i, ks } => i * s + ks.start..i * s + ks.end,
        }
    }
}

/// The fixed partition of a layout into blocks.
struct Plan {
    layout: Layout,
    per_block: usize,
    per_n: usize,
    count: usize,
}

impl Plan {
    fn new(layout: Layout) -> Self {
        let per = (BLOCK / layout.c.max(1)).max(1);
        if layout.samples() == 0 {
            Plan { layout, per_block: per, per_n: 0, count: 0 }
        } else if layout.s == 1 {
            Plan { layout, per_block: per, per_n: 0, count: layout.n.div_ceil(per) }
        } else {
            let per = per.min(layout.s);
            let per_n = layout.s.div_ceil(per);
            Plan { layout, per_block: per, per_n, count: layout.n * per_n }
        }
    }

    fn block(&self, b: usize) -> Block {
        if self.layout.s == 1 {
            let start = b * self.per_block;
            Block::Rows(start..(start + self.per_block).min(self.layout.n))
        } else {
            let k0 = (b % self.per_n) * self.per_block;
            Block::Columns { i: b / self.per_n, ks: k0..(k0 + self.per_block).min(self.layout.s) }
        }
    }

    /// Runs `f` on every block (in parallel when that pays) and returns the fixed-tree sum of its
    /// results. This is `reduce::blocked` over a stand-in length of one BLOCK per block: its block
    /// index is ours, its threading threshold then counts about as many elements as ours hold,
    /// and its tree combines the partial sums.
    fn run<F: Fn(Block) -> f64 + Sync>(&self, f: F) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        reduce::blocked(self.count * BLOCK, |r| f(self.block(r.start / BLOCK)))
    }
}

/// Per-sample losses summed in f64 lanes, sample j of a block in lane j % LANES.
struct Acc {
    lanes: [f64; LANES],
    k: usize,
}

impl Acc {
    fn new() -> Self {
        Acc { lanes: [0.0; LANES], k: 0 }
    }
    #[inline(always)]
    fn add(&mut self, v: f64) {
        self.lanes[self.k % LANES] += v;
        self.k += 1;
    }
    /// `add(term(i))` for i in 0..n, in order (whole lane groups as vector adds: the same sums;
    /// a scalar add per term costs a branch on the lane index each, several times the term).
    #[inline(always)]
    fn add_each(&mut self, n: usize, mut term: impl FnMut(usize) -> f64) {
        let mut i = 0;
        while i < n && !self.k.is_multiple_of(LANES) {
            self.add(term(i));
            i += 1;
        }
        while i + LANES <= n {
            let mut terms = [0.0; LANES];
            for (j, t) in terms.iter_mut().enumerate() {
                *t = term(i + j);
            }
            reduce::add_lanes(&mut self.lanes, &terms);
            self.k += LANES;
            i += LANES;
        }
        while i < n {
            self.add(term(i));
            i += 1;
        }
    }
    /// `add` for each of `v` in order.
    #[inline(always)]
    fn add_all<T: Float>(&mut self, v: &[T]) {
        self.add_each(v.len(), |i| v[i].to_f64());
    }
    fn total(self) -> f64 {
        reduce::sum_lanes(self.lanes)
    }
}

/// A block's per-row losses from their row sums: each sum ÷ c in f64 (a row sum beyond T's range
/// need not overflow), rounded to T, added to the block's `Acc` and written to `value` (when
/// non-empty), LANES rows at a time. Done row by row, the division and rounding end a dependency
/// chain that the next row's work cannot overlap. Rows arrive in order, from the block's first.
struct RowMeans<'v, T> {
    c: f64,
    sums: [f64; LANES],
    pending: usize,
    done: usize,
    acc: Acc,
    value: &'v mut [T],
}

impl<'v, T: Float> RowMeans<'v, T> {
    fn new(c: usize, value: &'v mut [T]) -> Self {
        RowMeans { c: c as f64, sums: [0.0; LANES], pending: 0, done: 0, acc: Acc::new(), value }
    }
    #[inline(always)]
    fn push(&mut self, row_sum: f64) {
        self.sums[self.pending] = row_sum;
        self.pending += 1;
        if self.pending == LANES {
            self.flush();
        }
    }
    #[inline(always)]
    fn flush(&mut self) {
        let mut losses = [T::ZERO; LANES];
        for (l, s) in losses.iter_mut().zip(&self.sums) {
            *l = T::from_f64(s / self.c);
        }
        let n = self.pending;
        self.acc.add_each(n, |k| losses[k].to_f64());
        if !self.value.is_empty() {
            self.value[self.done..self.done + n].copy_from_slice(&losses[..n]);
        }
        self.done += n;
        self.pending = 0;
    }
    #[inline(always)]
    fn total(mut self) -> f64 {
        self.flush();
        self.acc.total()
    }
}

/// A gradient buffer that blocks on different threads write through, each to its own elements.
/// (In the (N, C, d…) layout a block's elements are interleaved with other blocks' along s, so
/// `SharedOut`'s contiguous ranges do not fit; runs along s are disjoint.)
#[derive(Copy, Clone)]
struct RawOut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: only turned into slices over elements that belong to one block (see `run`).
unsafe impl<T: Send> Send for RawOut<T> {}
unsafe impl<T: Send> Sync for RawOut<T> {}

impl<T> RawOut<T> {
    fn new(out: Option<&mut [T]>) -> Self {
        match out {
            Some(s) => RawOut { ptr: s.as_mut_ptr(), len: s.len() },
            None => RawOut { ptr: std::ptr::NonNull::dangling().as_ptr(), len: 0 },
        }
    }

    /// Elements start..start + len.
    ///
    /// # Safety
    /// Runs in use at the same time must not overlap.
    #[inline(always)]
    unsafe fn run<'a>(&self, start: usize, len: usize) -> &'a mut [T] {
        assert!(start + len <= self.len);
        // SAFETY: in bounds (checked above), disjoint by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

// ------------------------------------------------------------------------------------------------
// Vector helpers
// ------------------------------------------------------------------------------------------------

/// max over x (a NaN is skipped; it makes the loss NaN through the exponentials anyway).
#[inline(always)]
fn max_of<T: Float>(x: &[T]) -> T {
    let mut lanes = [-T::INFINITY; LANES];
    let mut it = x.chunks_exact(LANES);
    for ch in &mut it {
        for j in 0..LANES {
            let v = ch[j];
            lanes[j] = if v > lanes[j] { v } else { lanes[j] };
        }
    }
    let mut m = -T::INFINITY;
    for &v in it.remainder() {
        m = if v > m { v } else { m };
    }
    for v in lanes {
        m = if v > m { v } else { m };
    }
    m
}

/// Σ v in f64: LANES lane accumulators in element order, then their fixed pairwise tree.
#[inline(always)]
fn sum64<T: Float>(v: &[T]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut it = v.chunks_exact(LANES);
    for ch in &mut it {
        let ch: &[T; LANES] = ch.try_into().unwrap();
        reduce::add_lanes(&mut acc, &ch.map(T::to_f64));
    }
    for (j, t) in it.remainder().iter().enumerate() {
        acc[j] += t.to_f64();
    }
    reduce::sum_lanes(acc)
}

/// Σ f(j) over j in 0..n in f64, mapping CHUNK elements at a time into `buf` (the map loop
/// vectorises; the sum keeps its fixed order).
#[inline(always)]
fn map_sum<T: Float>(n: usize, buf: &mut [T; CHUNK], mut f: impl FnMut(Range<usize>, &mut [T])) -> f64 {
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        let b = &mut buf[..end - start];
        f(start..end, b);
        total += sum64(b);
        start = end;
    }
    total
}

// ------------------------------------------------------------------------------------------------
// Cross-entropy
// ------------------------------------------------------------------------------------------------

/// What a sample is compared with.
#[derive(Copy, Clone)]
pub enum Target<'a, T> {
    /// One class index per sample; samples whose index is `ignore_index` are left out.
    Index { y: &'a [i64], ignore_index: i64 },
    /// Class probabilities laid out like the input (not normalised, as in PyTorch).
    Prob(&'a [T]),
}

/// A cross-entropy evaluation.
pub struct CrossEntropy<'a, T> {
    pub x: &'a [T],
    pub layout: Layout,
    pub target: Target<'a, T>,
    /// Per-class weights (length c).
    pub weight: Option<&'a [T]>,
    /// Label smoothing ε in [0, 1].
    pub smoothing: f64,
    /// Per-sample factors of the gradient (grad_output for reduction 'none'); None: `scale`.
    pub grad_output: Option<&'a [T]>,
    /// The factor of every gradient otherwise (grad_output, over the divisor for a mean).
    pub scale: f64,
}

/// Where results go; `None` means "not wanted".
pub struct RowOutputs<'a, T> {
    /// Per-sample losses (reduction 'none'), length `layout.samples()`.
    pub value: Option<&'a mut [T]>,
    /// The gradient, laid out like the input.
    pub grad: Option<&'a mut [T]>,
}

/// Checks class indices and returns the divisor of a mean: Σ w[y] over the samples whose index is
/// not `ignore_index` (their count without weights). Err(the first index outside [0, c) that is
/// not `ignore_index`).
pub fn index_divisor<T: Float>(y: &[i64], c: usize, ignore_index: i64, weight: Option<&[T]>) -> Result<f64, i64> {
    // A negative index is a huge u64.
    if let Some(i) = simd::first_where(y, #[inline(always)] |t: i64| (t != ignore_index) & (t as u64 >= c as u64)) {
        return Err(y[i]);
    }
    let Some(w) = weight else {
        // A count: exact, so the same number as any order of summing ones.
        return Ok(simd::vectorized(
            #[inline(always)]
            || y.iter().map(|&t| (t != ignore_index) as usize).sum::<usize>(),
        ) as f64);
    };
    // Σ in f64 lanes within fixed blocks, like every other sum.
    Ok(reduce::blocked(y.len(), |r| {
        let y = &y[r];
        let mut acc = Acc::new();
        acc.add_each(y.len(), |i| if y[i] != ignore_index { w[y[i] as usize].to_f64() } else { 0.0 });
        acc.total()
    }))
}

/// The per-call constants of a cross-entropy evaluation.
struct Ce<'a, T> {
    x: &'a [T],
    q: &'a [T],
    y: &'a [i64],
    ignore_index: i64,
    prob: bool,
    c: usize,
    s: usize,
    w: &'a [T],
    wsum: T,
    smooth: bool,
    /// 1 − ε and ε/C.
    ome: T,
    epc: T,
    go: Option<&'a [T]>,
    scale: T,
}

/// Per-sample state of a tile of samples.
struct TileState<T> {
    y: [usize; TILE],
    ignored: [bool; TILE],
    /// The target as u32 (u32::MAX for an ignored sample) and 1 / 0 for kept / ignored samples:
    /// what the column kernel's vector loops compare against.
    yi: [u32; TILE],
    keep: [u32; TILE],
    sc: [T; TILE],
    loss: [T; TILE],
}

impl<T: Float> TileState<T> {
    fn new() -> Self {
        TileState {
            y: [0; TILE],
            ignored: [false; TILE],
            yi: [0; TILE],
            keep: [1; TILE],
            sc: [T::ZERO; TILE],
            loss: [T::ZERO; TILE],
        }
    }
}

impl<T: Float> Ce<'_, T> {
    /// Target and gradient factor of the samples first..first + rr into `st` (branches hoisted
    /// out of the loops, which vectorise).
    #[inline(always)]
    fn load(&self, first: usize, rr: usize, st: &mut TileState<T>) {
        let go = self.go.map(|g| &g[first..first + rr]);
        if self.prob {
            for r in 0..rr {
                st.ignored[r] = false;
                st.y[r] = 0;
                st.yi[r] = u32::MAX;
                st.keep[r] = 1;
                st.sc[r] = self.scale;
            }
            if let Some(go) = go {
                st.sc[..rr].copy_from_slice(go);
            }
            return;
        }
        let (y, ig) = (&self.y[first..first + rr], self.ignore_index);
        for r in 0..rr {
            let t = y[r];
            let ign = t == ig;
            st.ignored[r] = ign;
            st.y[r] = if ign { 0 } else { t as usize };
            st.yi[r] = if ign { u32::MAX } else { t as u32 };
            st.keep[r] = !ign as u32;
            st.sc[r] = if ign { T::ZERO } else { self.scale };
        }
        if let Some(go) = go {
            for r in 0..rr {
                st.sc[r] = if st.ignored[r] { T::ZERO } else { go[r] };
            }
        }
    }

    /// One sample whose c logits are contiguous (`x`, and `q` in probability mode); writes the
    /// gradient into `g` when GRAD. Returns the loss.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn row<const GRAD: bool>(&self, x: &[T], q: &[T], g: &mut [T], y: usize, ignored: bool, sc: T, buf: &mut [T; CHUNK]) -> T {
        let c = self.c;
        if ignored {
            if GRAD {
                g.fill(T::ZERO);
            }
            return T::ZERO;
        }
        let m = max_of(x);
        // e_j = exp(x_j − m), once: into the gradient buffer, or a scratch chunk for the value only.
        let mut s = 0.0f64;
        let mut start = 0;
        while start < c {
            let end = (start + CHUNK).min(c);
            let e: &mut [T] = if GRAD { &mut g[start..end] } else { &mut buf[..end - start] };
            let xs = &x[start..end];
            for j in 0..e.len() {
                e[j] = (xs[j] - m).exp_nonpositive();
            }
            s += sum64(e);
            start = end;
        }
        let st = T::from_f64(s);
        let l = st.ln();
        let w = self.w;
        if self.prob {
            let (ome, epc) = (self.ome, self.epc);
            // loss = Σ w_j·q'_j·((m − x_j) + L) with q' = q·(1 − ε) + ε/C.
            let a = map_sum(c, buf, #[inline(always)] |r, b| {
                let (xs, qs, ws) = (&x[r.clone()], &q[r.clone()], &w[r]);
                for j in 0..b.len() {
                    b[j] = ws[j] * (qs[j] * ome + epc) * (m - xs[j]);
                }
            });
            let qsum = T::from_f64(map_sum(c, buf, #[inline(always)] |r, b| {
                let (qs, ws) = (&q[r.clone()], &w[r]);
                for j in 0..b.len() {
                    b[j] = ws[j] * (qs[j] * ome + epc);
                }
            }));
            if GRAD {
                // ∂/∂x_j = sc·(p_j·Σ w q' − w_j·q'_j)
                let a = sc * qsum / st;
                for j in 0..c {
                    g[j] = g[j] * a - sc * (w[j] * (q[j] * ome + epc));
                }
            }
            return T::from_f64(a) + qsum * l;
        }
        let wy = w[y];
        let nll = (m - x[y]) + l;
        if !self.smooth {
            if GRAD {
                let a = sc * wy / st;
                for gj in g.iter_mut() {
                    *gj = *gj * a;
                }
                g[y] = g[y] - sc * wy;
            }
            return wy * nll;
        }
        // Label smoothing: (1 − ε)·w_y·nll + (ε/C)·Σ_j w_j·((m − x_j) + L).
        let (ome, epc) = (self.ome, self.epc);
        let sm = map_sum(c, buf, #[inline(always)] |r, b| {
            let (xs, ws) = (&x[r.clone()], &w[r]);
            for j in 0..b.len() {
                b[j] = ws[j] * (m - xs[j]);
            }
        });
        if GRAD {
            let a = sc * (ome * wy + epc * self.wsum) / st;
            let b = sc * epc;
            for j in 0..c {
                g[j] = g[j] * a - b * w[j];
            }
            g[y] = g[y] - sc * ome * wy;
        }
        // The smoothing term scaled in f64 before rounding: Σ_j w_j·(m − x_j) may exceed T's range
        // where (ε/C)·Σ does not.
        ome * wy * nll + T::from_f64(epc.to_f64() * (sm + (self.wsum * l).to_f64()))
    }

    /// A tile of rr samples whose class j values are x[base + j·cs + r], r < rr (likewise q and
    /// the gradient g). Writes the losses to st.loss.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn tile<const GRAD: bool>(&self, x: &[T], q: &[T], g: RawOut<T>, base: usize, cs: usize, rr: usize, st: &mut TileState<T>) {
        let c = self.c;
        let w = self.w;
        let run = |j: usize| base + j * cs;
        let mut m = [-T::INFINITY; TILE];
        let m = &mut m[..rr];
        for j in 0..c {
            let xs = &x[run(j)..run(j) + rr];
            for r in 0..rr {
                m[r] = m[r].max_num(xs[r]);
            }
        }
        let mut s = [0.0f64; TILE];
        let s = &mut s[..rr];
        let mut ebuf = [T::ZERO; TILE];
        for j in 0..c {
            let xs = &x[run(j)..run(j) + rr];
            // SAFETY: this tile's run of class j; no other tile touches it.
            let e: &mut [T] = if GRAD { unsafe { g.run(run(j), rr) } } else { &mut ebuf[..rr] };
            // Two loops: the exponentials alone vectorise at T's full width (mixed with the f64
            // accumulation they would run at f64's).
            for r in 0..rr {
                e[r] = (xs[r] - m[r]).exp_nonpositive();
            }
            for r in 0..rr {
                s[r] += e[r].to_f64();
            }
        }
        let mut st_s = [T::ONE; TILE];
        let mut l = [T::ZERO; TILE];
        for r in 0..rr {
            st_s[r] = T::from_f64(s[r]);
            l[r] = st_s[r].ln();
        }
        let (ome, epc) = (self.ome, self.epc);
        let mut coef = [T::ZERO; TILE];
        let mut b = [T::ZERO; TILE];
        if self.prob {
            let mut a = [0.0f64; TILE];
            let mut qsum = [0.0f64; TILE];
            for j in 0..c {
                let (xs, qs, wj) = (&x[run(j)..run(j) + rr], &q[run(j)..run(j) + rr], w[j]);
                for r in 0..rr {
                    let wq = wj * (qs[r] * ome + epc);
                    a[r] += (wq * (m[r] - xs[r])).to_f64();
                    qsum[r] += wq.to_f64();
                }
            }
            for r in 0..rr {
                let qs = T::from_f64(qsum[r]);
                st.loss[r] = T::from_f64(a[r]) + qs * l[r];
                coef[r] = st.sc[r] * qs / st_s[r];
                b[r] = st.sc[r];
            }
            if GRAD {
                for j in 0..c {
                    let (qs, wj) = (&q[run(j)..run(j) + rr], w[j]);
                    // SAFETY: as above.
                    let gs = unsafe { g.run(run(j), rr) };
                    for r in 0..rr {
                        gs[r] = gs[r] * coef[r] - b[r] * (wj * (qs[r] * ome + epc));
                    }
                }
            }
            return;
        }
        // Index targets, with vector loops across the tile's samples only: the target's logit and
        // weight are picked by a select while sweeping the classes (no gathers), and the target's
        // share of the gradient is subtracted the same way.
        let mut xy = [T::ZERO; TILE];
        let mut wy = [T::ZERO; TILE];
        let mut sm = [0.0f64; TILE];
        for j in 0..c {
            let (xs, wj, jj) = (&x[run(j)..run(j) + rr], w[j], j as u32);
            // Sums with one non-zero term instead of selects: a select that keeps the old value is
            // compiled to a masked store, which is slow on AMD processors (about 5× this loop).
            for r in 0..rr {
                let hit = st.yi[r] == jj;
                xy[r] += if hit { xs[r] } else { T::ZERO };
                wy[r] += if hit { wj } else { T::ZERO };
            }
            if self.smooth {
                for r in 0..rr {
                    sm[r] += (wj * (m[r] - xs[r])).to_f64();
                }
            }
        }
        let mut share = [T::ZERO; TILE];
        // The smoothing branch outside the loops, so that each loop is one straight vector body.
        if self.smooth {
            for r in 0..rr {
                let nll = (m[r] - xy[r]) + l[r];
                let sc = st.sc[r];
                coef[r] = sc * (ome * wy[r] + epc * self.wsum) / st_s[r];
                b[r] = sc * epc;
                share[r] = sc * ome * wy[r];
                let loss = ome * wy[r] * nll + T::from_f64(epc.to_f64() * (sm[r] + (self.wsum * l[r]).to_f64()));
                st.loss[r] = if st.keep[r] != 0 { loss } else { T::ZERO };
            }
        } else {
            for r in 0..rr {
                let nll = (m[r] - xy[r]) + l[r];
                let sc = st.sc[r];
                coef[r] = sc * wy[r] / st_s[r];
                share[r] = sc * wy[r];
                st.loss[r] = if st.keep[r] != 0 { wy[r] * nll } else { T::ZERO };
            }
        }
        if !GRAD {
            return;
        }
        for j in 0..c {
            let (wj, jj) = (w[j], j as u32);
            // SAFETY: as above.
            let gs = unsafe { g.run(run(j), rr) };
            if self.smooth {
                for r in 0..rr {
                    let v = gs[r] * coef[r] - b[r] * wj;
                    let v = v - if st.yi[r] == jj { share[r] } else { T::ZERO };
                    gs[r] = if st.keep[r] != 0 { v } else { T::ZERO };
                }
            } else {
                for r in 0..rr {
                    let v = gs[r] * coef[r] - if st.yi[r] == jj { share[r] } else { T::ZERO };
                    gs[r] = if st.keep[r] != 0 { v } else { T::ZERO };
                }
            }
        }
    }

    /// One block: returns the sum of its losses; stores them in `value` when given.
    #[inline(always)]
    fn block<const GRAD: bool>(&self, blk: Block, value: &mut [T], g: RawOut<T>) -> f64 {
        let (c, s) = (self.c, self.s);
        let samples = blk.samples(s);
        let store = !value.is_empty();
        let mut acc = Acc::new();
        let mut st = TileState::new();
        let mut buf = [T::ZERO; CHUNK];
        let mut finish = |first: usize, rr: usize, st: &TileState<T>| {
            acc.add_all(&st.loss[..rr]);
            if store {
                value[first - samples.start..][..rr].copy_from_slice(&st.loss[..rr]);
            }
        };
        match blk {
            Block::Rows(rows) if c >= TILED_C => {
                for i in rows {
                    self.load(i, 1, &mut st);
                    let x = &self.x[i * c..(i + 1) * c];
                    let q = if self.prob { &self.q[i * c..(i + 1) * c] } else { &self.q[..0] };
                    // SAFETY: row i belongs to this block only.
                    let g = if GRAD { unsafe { g.run(i * c, c) } } else { &mut [] };
                    st.loss[0] = self.row::<GRAD>(x, q, g, st.y[0], st.ignored[0], st.sc[0], &mut buf);
                    finish(i, 1, &st);
                }
            }
            Block::Rows(rows) => {
                // Few classes: transpose tiles of rows so that the loops run across samples.
                let mut xt = [T::ZERO; SMALL_C * TILE];
                let mut qt = [T::ZERO; SMALL_C * TILE];
                let mut gt = [T::ZERO; SMALL_C * TILE];
                // From SMALL_C classes on, fewer rows per tile, so that a tile still fits these.
                let tile_rows = TILE.min(SMALL_C * TILE / c.max(1));
                let mut first = rows.start;
                while first < rows.end {
                    let rr = tile_rows.min(rows.end - first);
                    self.load(first, rr, &mut st);
                    let x = &self.x[first * c..(first + rr) * c];
                    transpose::<T, true>(x, &mut xt, c, rr);
                    if self.prob {
                        transpose::<T, true>(&self.q[first * c..(first + rr) * c], &mut qt, c, rr);
                    }
                    self.tile::<GRAD>(&xt, &qt, RawOut::new(Some(&mut gt[..])), 0, rr, rr, &mut st);
                    if GRAD {
                        // SAFETY: these rows belong to this block only.
                        let g = unsafe { g.run(first * c, rr * c) };
                        transpose::<T, false>(&gt, g, c, rr);
                    }
                    finish(first, rr, &st);
                    first += rr;
                }
            }
            Block::Columns { i, ks } => {
                let mut k0 = ks.start;
                while k0 < ks.end {
                    let rr = TILE.min(ks.end - k0);
                    self.load(i * s + k0, rr, &mut st);
                    self.tile::<GRAD>(self.x, self.q, g, i * c * s + k0, s, rr, &mut st);
                    finish(i * s + k0, rr, &st);
                    k0 += rr;
                }
            }
        }
        acc.total()
    }
}

/// Calls `$f::<T, C, $flag>` with the constant C equal to `$c` (1 ≤ c < SMALL_C = 16).
macro_rules! with_small_c {
    ($c:expr, $f:ident, $flag:expr, ($($arg:expr),*)) => {
        match $c {
            1 => $f::<T, 1, $flag>($($arg),*),
            2 => $f::<T, 2, $flag>($($arg),*),
            3 => $f::<T, 3, $flag>($($arg),*),
            4 => $f::<T, 4, $flag>($($arg),*),
            5 => $f::<T, 5, $flag>($($arg),*),
            6 => $f::<T, 6, $flag>($($arg),*),
            7 => $f::<T, 7, $flag>($($arg),*),
            8 => $f::<T, 8, $flag>($($arg),*),
            9 => $f::<T, 9, $flag>($($arg),*),
            10 => $f::<T, 10, $flag>($($arg),*),
            11 => $f::<T, 11, $flag>($($arg),*),
            12 => $f::<T, 12, $flag>($($arg),*),
            13 => $f::<T, 13, $flag>($($arg),*),
            14 => $f::<T, 14, $flag>($($arg),*),
            15 => $f::<T, 15, $flag>($($arg),*),
            _ => unreachable!("c < SMALL_C"),
        }
    };
}

/// Copies a tile of rr samples × c classes (c < TILED_C) between row-major order (sample r's
/// class j at r·c + j) and class-major order (at j·rr + r): `TO_CLASSES` reads rows and writes
/// classes, else the reverse. With c a constant (c < SMALL_C), LLVM turns the row-major side into
/// wide loads or stores and shuffles (an interleaved access group) instead of one element at a
/// time; larger c are copied element by element.
#[inline(always)]
fn transpose<T: Float, const TO_CLASSES: bool>(src: &[T], dst: &mut [T], c: usize, rr: usize) {
    #[inline(always)]
    fn copy<T: Float, const TO_CLASSES: bool>(src: &[T], dst: &mut [T], c: usize, rr: usize) {
        let (src, dst) = (&src[..rr * c], &mut dst[..rr * c]);
        for r in 0..rr {
            for j in 0..c {
                let (row_major, class_major) = (r * c + j, j * rr + r);
                if TO_CLASSES {
                    dst[class_major] = src[row_major];
                } else {
                    dst[row_major] = src[class_major];
                }
            }
        }
    }
    #[inline(always)]
    fn fixed<T: Float, const C: usize, const TO_CLASSES: bool>(src: &[T], dst: &mut [T], rr: usize) {
        by_tile(
            rr,
            #[inline(always)]
            |rr| copy::<T, TO_CLASSES>(src, dst, C, rr),
        );
    }
    simd::vectorized_256(
        #[inline(always)]
        || {
            if c < SMALL_C {
                with_small_c!(c, fixed, TO_CLASSES, (src, dst, rr))
            } else {
                copy::<T, TO_CLASSES>(src, dst, c, rr)
            }
        },
    )
}

/// `copy(rr)`, with rr a constant for a whole tile (the usual case), so that the transposes'
/// loops have constant trip counts and strides (`vectorized_256` keeps them out of line, where
/// the caller's TILE is not visible).
#[inline(always)]
fn by_tile(rr: usize, mut copy: impl FnMut(usize)) {
    if rr == TILE { copy(TILE) } else { copy(rr) }
}

/// Evaluates a cross-entropy: returns Σ of the per-sample losses (f64) when `sum` is set, writes
/// them to `out.value` and the gradient to `out.grad` when given. Class indices must have been
/// checked (see `index_divisor`).
pub fn cross_entropy<T: Float>(p: &CrossEntropy<T>, out: RowOutputs<T>, sum: bool) -> f64 {
    let Layout { c, s, .. } = p.layout;
    assert_eq!(p.x.len(), p.layout.len(), "input length");
    assert!(c > 0 || p.layout.is_empty(), "no classes");
    assert!(c < u32::MAX as usize, "class indices are kept as u32");
    let (y, ignore_index, q, prob) = match p.target {
        Target::Index { y, ignore_index } => {
            assert_eq!(y.len(), p.layout.samples(), "target length");
            (y, ignore_index, &[][..], false)
        }
        Target::Prob(q) => {
            assert_eq!(q.len(), p.layout.len(), "target length");
            (&[][..], 0, q, true)
        }
    };
    let ones;
    let w = match p.weight {
        Some(w) => {
            assert_eq!(w.len(), c, "weight length");
            w
        }
        None => {
            ones = vec![T::ONE; c];
            &ones[..]
        }
    };
    if let Some(g) = p.grad_output {
        assert_eq!(g.len(), p.layout.samples(), "grad_output length");
    }
    if let Some(v) = &out.value {
        assert_eq!(v.len(), p.layout.samples(), "value length");
    }
    if let Some(g) = &out.grad {
        assert_eq!(g.len(), p.layout.len(), "grad length");
    }
    if !sum && out.value.is_none() && out.grad.is_none() {
        return 0.0;
    }
    let eps = p.smoothing;
    let cx = Ce {
        x: p.x,
        q,
        y,
        ignore_index,
        prob,
        c,
        s,
        w,
        wsum: T::from_f64(w.iter().map(|v| v.to_f64()).sum::<f64>()),
        smooth: eps > 0.0,
        ome: T::from_f64(1.0 - eps),
        epc: T::from_f64(eps / c.max(1) as f64),
        go: p.grad_output,
        scale: T::from_f64(p.scale),
    };
    let grad = out.grad.is_some();
    let values = SharedOut::new(out.value);
    let g = RawOut::new(out.grad);
    let plan = Plan::new(p.layout);
    plan.run(|blk| {
        // SAFETY: blocks own disjoint sample ranges.
        let value = unsafe { values.slice(blk.samples(s)) };
        if grad {
            simd::vectorized(
                #[inline(always)]
                || cx.block::<true>(blk, value, g),
            )
        } else {
            simd::vectorized(
                #[inline(always)]
                || cx.block::<false>(blk, value, g),
            )
        }
    })
}

// ------------------------------------------------------------------------------------------------
// NLL
// ------------------------------------------------------------------------------------------------

/// NLL on log-probabilities x: loss −w[y]·x_y per sample (0 for ignored samples), gradient
/// −w[y]·factor at the target and 0 elsewhere (`grad_zeroed`: the gradient buffer is known to
/// hold zeros already, e.g. fresh from calloc, so only the targets are written). Class indices
/// must have been checked.
#[allow(clippy::too_many_arguments)]
pub fn nll<T: Float>(
    x: &[T],
    layout: Layout,
    y: &[i64],
    ignore_index: i64,
    weight: Option<&[T]>,
    grad_output: Option<&[T]>,
    scale: f64,
    out: RowOutputs<T>,
    grad_zeroed: bool,
) -> f64 {
    let Layout { c, s, .. } = layout;
    assert_eq!(x.len(), layout.len());
    assert_eq!(y.len(), layout.samples());
    let scale = T::from_f64(scale);
    let values = SharedOut::new(out.value);
    let grad = out.grad.is_some();
    let g = RawOut::new(out.grad);
    Plan::new(layout).run(|blk| {
        let samples = blk.samples(s);
        // SAFETY: blocks own disjoint sample ranges.
        let value = unsafe { values.slice(samples.clone()) };
        if grad && !grad_zeroed {
            match &blk {
                // SAFETY: the block's rows / runs along s belong to it only.
                Block::Rows(rows) => unsafe { g.run(rows.start * c, rows.len() * c) }.fill(T::ZERO),
                Block::Columns { i, ks } => {
                    for j in 0..c {
                        unsafe { g.run((i * c + j) * s + ks.start, ks.len()) }.fill(T::ZERO);
                    }
                }
            }
        }
        // Sample d of this block (q = i·s + k) has class j at base + d·step + j·s: a block is rows
        // (s = 1, step c) or samples k of one i (step 1). No division per sample.
        let (base, step) = match &blk {
            Block::Rows(rows) => (rows.start * c, c),
            Block::Columns { i, ks } => (i * c * s + ks.start, 1),
        };
        let first = samples.start;
        // `move`: the closure's own copies cannot alias the outputs it writes, so they stay in
        // registers (a tight loop keeps more of the gather's cache misses in flight).
        let term = move |d: usize, weight: Option<&[T]>, value: &mut [T], grad: bool| {
            let t = y[first + d];
            let loss = if t == ignore_index {
                T::ZERO
            } else {
                let t = t as usize;
                let wy = weight.map_or(T::ONE, |w| w[t]);
                let pos = base + d * step + t * s;
                if grad {
                    let sc = grad_output.map_or(scale, |go| go[first + d]);
                    // SAFETY: this sample's target element.
                    unsafe { g.run(pos, 1)[0] = -(wy * sc) };
                }
                -(wy * x[pos])
            };
            if !value.is_empty() {
                value[d] = loss;
            }
            loss.to_f64()
        };
        let mut acc = Acc::new();
        // The common call (a value alone, no weights) in a loop of its own, with nothing else
        // to test per sample: its cost is the gather's, a cache miss per sample.
        if weight.is_none() && !grad && value.is_empty() {
            acc.add_each(samples.len(), |d| term(d, None, &mut [], false));
        } else {
            acc.add_each(samples.len(), |d| term(d, weight, value, grad));
        }
        acc.total()
    })
}

// ------------------------------------------------------------------------------------------------
// Multi-margin
// ------------------------------------------------------------------------------------------------

/// PyTorch's multi_margin_loss on rows of c scores: (1/c)·Σ_{j≠y, z_j>0} w[y]·z_j^p with
/// z_j = margin − x_y + x_j (p = 1 or 2; a NaN z counts as not > 0, as in PyTorch). Gradient
/// w[y]·factor/c·(1 or 2·z_j) at j, minus their sum at y. Class indices must have been checked.
#[allow(clippy::too_many_arguments)]
pub fn multi_margin<T: Float>(
    x: &[T],
    rows: usize,
    c: usize,
    y: &[i64],
    p: u32,
    margin: f64,
    weight: Option<&[T]>,
    grad_output: Option<&[T]>,
    scale: f64,
    out: RowOutputs<T>,
) -> f64 {
    assert_eq!(x.len(), rows * c);
    assert_eq!(y.len(), rows);
    if let Some(w) = weight {
        assert_eq!(w.len(), c, "weight length");
    }
    let mm = MultiMargin {
        x,
        c,
        y,
        squared: p == 2,
        margin: T::from_f64(margin),
        weight,
        go: grad_output,
        scale: T::from_f64(scale),
        inv_c: T::ONE / T::from_f64(c as f64),
    };
    let grad = out.grad.is_some();
    let values = SharedOut::new(out.value);
    let g = RawOut::new(out.grad);
    Plan::new(Layout { n: rows, c, s: 1 }).run(|blk| {
        let Block::Rows(rows) = blk else { unreachable!("s = 1") };
        // SAFETY: blocks own disjoint rows.
        let value = unsafe { values.slice(rows.clone()) };
        if grad {
            simd::vectorized(
                #[inline(always)]
                || mm.block::<true>(rows, value, g),
            )
        } else {
            simd::vectorized(
                #[inline(always)]
                || mm.block::<false>(rows, value, g),
            )
        }
    })
}

struct MultiMargin<'a, T> {
    x: &'a [T],
    c: usize,
    y: &'a [i64],
    squared: bool,
    margin: T,
    weight: Option<&'a [T]>,
    go: Option<&'a [T]>,
    scale: T,
    inv_c: T,
}

impl<T: Float> MultiMargin<'_, T> {
    #[inline(always)]
    fn block<const GRAD: bool>(&self, rows: Range<usize>, value: &mut [T], g: RawOut<T>) -> f64 {
        let c = self.c;
        let (margin, squared) = (self.margin, self.squared);
        // The gradient's row sum as a count (below): about a third of value_and_grad's time at
        // 100 classes went to summing the row again.
        let counted = !squared && T::MANTISSA_DIGITS + 29 <= 53 && c < 1 << 29;
        let mut buf = [T::ZERO; CHUNK];
        let mut means = RowMeans::new(c, value);
        for i in rows.clone() {
            let xr = &self.x[i * c..(i + 1) * c];
            let t = self.y[i] as usize;
            let xy = xr[t];
            let wy = self.weight.map_or(T::ONE, |w| w[t]);
            // The gradient's factor: w[y]·grad_output/C; (2·factor)·z for p = 2, in PyTorch's
            // order (2·z alone can overflow where the result does not).
            let sc = if GRAD { self.go.map_or(self.scale, |go| go[i]) * wy * self.inv_c } else { T::ZERO };
            let sc2 = T::TWO * sc;
            // SAFETY: row i belongs to this block only.
            let gr = if GRAD { unsafe { g.run(i * c, c) } } else { &mut [][..] };
            let mut positive = 0u32;
            // One pass for the value's terms and the gradient.
            let total = map_sum(c, &mut buf, #[inline(always)] |r, b| {
                let (j0, xs) = (r.start, &xr[r.clone()]);
                let gs = if GRAD { &mut gr[r] } else { &mut [][..] };
                for j in 0..b.len() {
                    let z = margin - xy + xs[j];
                    // Weighted per term before summing, as PyTorch does (so Σ cannot overflow
                    // where the weighted terms do not).
                    let h = if squared { z * z } else { z } * wy;
                    b[j] = if z > T::ZERO { h } else { T::ZERO };
                    if GRAD {
                        let d = if squared { sc2 * z } else { sc };
                        gs[j] = if z > T::ZERO { d } else { T::ZERO };
                        positive += (z > T::ZERO) as u32;
                    }
                }
                // The target's own term is left out after the loop: an index test inside it
                // compares 64-bit lanes and halves the loop's speed.
                if let Some(b_t) = t.checked_sub(j0).and_then(|k| b.get_mut(k)) {
                    *b_t = T::ZERO;
                }
            });
            means.push(total);
            if GRAD {
                gr[t] = T::ZERO;
                let others = if counted {
                    // p = 1 in float32: every term is sc or 0, so each of sum64's f64 lanes and
                    // their sums hold exact multiples of sc (24 significant bits times a count
                    // below 2^29), and the sum is count·sc exactly. Only a zero sum must keep
                    // sum64's +0 (0·∞ would be NaN, −0·count −0).
                    let n = positive - (margin - xy + xy > T::ZERO) as u32; // the target's own term
                    if n == 0 || sc == T::ZERO { 0.0 } else { n as f64 * sc.to_f64() }
                } else {
                    sum64(gr)
                };
                gr[t] = -T::from_f64(others);
            }
        }
        means.total()
    }
}

// ------------------------------------------------------------------------------------------------
// Multilabel soft margin
// ------------------------------------------------------------------------------------------------

/// log σ(x), log σ(−x), σ(x) and σ(−x) from `Float::logistic_with` (e = x.exp_neg_abs()):
/// log σ(x) = min(x, 0) − log1p(e^−|x|), no overflow for any x. A NaN x makes all four NaN.
#[inline(always)]
fn log_sigmoid_parts<T: Float>(x: T, e: (T, T)) -> (T, T, T, T) {
    let (sp, sig, sig_neg) = x.logistic_with(e);
    let ls_pos = if x < T::ZERO { x } else { T::ZERO } - sp;
    let ls_neg = if x > T::ZERO { -x } else { T::ZERO } - sp;
    (ls_pos, ls_neg, sig, sig_neg)
}

/// PyTorch's multilabel_soft_margin_loss on rows of c logits (class axis last): per row
/// Σ_j w_j·−(y_j·log σ(x_j) + (1 − y_j)·log σ(−x_j)) / c; gradient
/// w_j·(σ(x_j)·(1 − y_j) − σ(−x_j)·y_j)·factor/c, which is σ(x_j) − y_j without its cancellation
/// for confident logits (x = 15, y = 1: σ(x) − 1 keeps none of the digits of −σ(−15)).
/// `weight` has length c (per class) or rows·c (per element).
#[allow(clippy::too_many_arguments)]
pub fn multilabel_soft_margin<T: Float>(
    x: &[T],
    rows: usize,
    c: usize,
    y: &[T],
    weight: Option<&[T]>,
    grad_output: Option<&[T]>,
    scale: f64,
    out: RowOutputs<T>,
) -> f64 {
    assert_eq!(x.len(), rows * c);
    assert_eq!(y.len(), rows * c);
    let per_element = match weight {
        Some(w) if w.len() == c => false,
        Some(w) => {
            assert_eq!(w.len(), rows * c, "weight length");
            true
        }
        None => false,
    };
    let ones;
    let w = match weight {
        Some(w) => w,
        None => {
            ones = vec![T::ONE; c];
            &ones[..]
        }
    };
    let ml = MultiLabel {
        x,
        c,
        y,
        w,
        per_element,
        go: grad_output,
        scale: T::from_f64(scale),
        cf: T::from_f64(c as f64),
    };
    let grad = out.grad.is_some();
    let values = SharedOut::new(out.value);
    let g = RawOut::new(out.grad);
    Plan::new(Layout { n: rows, c, s: 1 }).run(|blk| {
        let Block::Rows(rows) = blk else { unreachable!("s = 1") };
        // SAFETY: blocks own disjoint rows.
        let value = unsafe { values.slice(rows.clone()) };
        if grad {
            simd::vectorized(
                #[inline(always)]
                || ml.block::<true>(rows, value, g),
            )
        } else {
            simd::vectorized(
                #[inline(always)]
                || ml.block::<false>(rows, value, g),
            )
        }
    })
}

struct MultiLabel<'a, T> {
    x: &'a [T],
    c: usize,
    y: &'a [T],
    w: &'a [T],
    per_element: bool,
    go: Option<&'a [T]>,
    scale: T,
    cf: T,
}

impl<T: Float> MultiLabel<'_, T> {
    #[inline(always)]
    fn block<const GRAD: bool>(&self, rows: Range<usize>, value: &mut [T], g: RawOut<T>) -> f64 {
        let c = self.c;
        let mut buf = [T::ZERO; CHUNK];
        // e^−|x| for a chunk, computed in a pass of its own (see `pointwise::Term::STAGED`).
        let (mut e_hi, mut e_lo) = ([T::ZERO; CHUNK], [T::ZERO; CHUNK]);
        let mut means = RowMeans::new(c, value);
        for i in rows.clone() {
            let (xr, yr) = (&self.x[i * c..(i + 1) * c], &self.y[i * c..(i + 1) * c]);
            let wr = if self.per_element { &self.w[i * c..(i + 1) * c] } else { self.w };
            let sc = self.go.map_or(self.scale, |go| go[i]) / self.cf;
            // SAFETY: row i belongs to this block only.
            let gr = if GRAD { unsafe { g.run(i * c, c) } } else { &mut [][..] };
            let total = map_sum(c, &mut buf, #[inline(always)] |r, b| {
                let (xs, ys, ws) = (&xr[r.clone()], &yr[r.clone()], &wr[r.clone()]);
                let (e_hi, e_lo) = (&mut e_hi[..b.len()], &mut e_lo[..b.len()]);
                for j in 0..b.len() {
                    (e_hi[j], e_lo[j]) = xs[j].exp_neg_abs();
                }
                let gs = if GRAD { &mut gr[r] } else { &mut [][..] };
                for j in 0..b.len() {
                    let (lp, ln, sig, sig_neg) = log_sigmoid_parts(xs[j], (e_hi[j], e_lo[j]));
                    b[j] = -(ys[j] * lp + (T::ONE - ys[j]) * ln) * ws[j];
                    if GRAD {
                        gs[j] = ws[j] * (sig * (T::ONE - ys[j]) - sig_neg * ys[j]) * sc;
                    }
                }
            });
            means.push(total);
        }
        means.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_every_sample_once() {
        for layout in [
            Layout { n: 5, c: 3, s: 1 },
            Layout { n: 40_000, c: 10, s: 1 },
            Layout { n: 3, c: 7, s: 5000 },
            Layout { n: 2, c: 1000, s: 37 },
            Layout { n: 0, c: 4, s: 3 },
        ] {
            let plan = Plan::new(layout);
            let mut next = 0;
            for b in 0..plan.count {
                let r = plan.block(b).samples(layout.s);
                assert_eq!(r.start, next);
                assert!(r.end > r.start);
                next = r.end;
            }
            assert_eq!(next, layout.samples());
        }
    }

    /// The target's gradient entry is minus the row's other entries summed by `sum64`, rounded. For
    /// p = 1 in float32 the kernel forms that sum as a count times the factor: the same bits for
    /// every factor (0, −0, ±∞, NaN, subnormal), margin, weight and input, NaN and ±∞ included.
    #[test]
    fn multi_margin_target_gradient_is_minus_the_sum_of_the_others() {
        fn check<T: Float>(c: usize, p: u32, margin: f64, weight: Option<&[T]>) {
            let specials = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-40, 3e38, 1.5, -2.0];
            let rows = specials.len();
            let x: Vec<T> = (0..rows * c)
                .map(|i| match i % 53 {
                    0 => T::NAN,
                    1 => T::INFINITY,
                    2 => -T::INFINITY,
                    3 => T::from_f64(3e38),
                    k => T::from_f64(((i * 7919) % 211) as f64 * 0.02 - 2.0 + k as f64 * 1e-3),
                })
                .collect();
            let y: Vec<i64> = (0..rows).map(|i| ((i * 31 + 5) % c) as i64).collect();
            let go: Vec<T> = specials.iter().map(|&v| T::from_f64(v)).collect();
            for grad_output in [None, Some(&go[..])] {
                let mut g = vec![T::ZERO; rows * c];
                let out = RowOutputs { value: None, grad: Some(&mut g[..]) };
                multi_margin(&x, rows, c, &y, p, margin, weight, grad_output, 0.125, out);
                for i in 0..rows {
                    let mut row = g[i * c..(i + 1) * c].to_vec();
                    let t = y[i] as usize;
                    let got = row[t];
                    row[t] = T::ZERO;
                    let want = -T::from_f64(sum64(&row));
                    let same = (got.is_nan() && want.is_nan()) || got.to_f64().to_bits() == want.to_f64().to_bits();
                    assert!(same, "c={c} p={p} margin={margin} row {i}: {got:?} vs {want:?}");
                }
            }
        }
        for c in [1usize, 2, 17, 100, 600] {
            for p in [1, 2] {
                for margin in [1.0, 0.0, -0.5, 3e38] {
                    let w32: Vec<f32> = (0..c).map(|j| [1.0, 0.0, f32::INFINITY, 0.3, -1.0][j % 5]).collect();
                    check::<f32>(c, p, margin, None);
                    check::<f32>(c, p, margin, Some(&w32));
                    check::<f64>(c, p, margin, None);
                }
            }
        }
    }

    fn ce_f64(x: &[f64], y: usize) -> f64 {
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        m + s.ln() - x[y]
    }

    #[test]
    fn cross_entropy_matches_a_direct_computation_in_every_layout() {
        for c in [1usize, 2, 7, 16, 17, 100] {
            let n = 70;
            let x: Vec<f64> = (0..n * c).map(|i| ((i * 7919) % 101) as f64 * 0.13 - 6.0).collect();
            let y: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
            let want: f64 = (0..n).map(|i| ce_f64(&x[i * c..(i + 1) * c], y[i] as usize)).sum();
            let p = CrossEntropy {
                x: &x,
                layout: Layout { n, c, s: 1 },
                target: Target::Index { y: &y, ignore_index: -100 },
                weight: None,
                smoothing: 0.0,
                grad_output: None,
                scale: 1.0,
            };
            let mut g = vec![0.0; n * c];
            let got = cross_entropy(&p, RowOutputs { value: None, grad: Some(&mut g) }, true);
            assert!((got - want).abs() <= 1e-12 * want.abs(), "c={c}: {got} vs {want}");
            for i in 0..n {
                let row_sum: f64 = g[i * c..(i + 1) * c].iter().sum();
                assert!(row_sum.abs() < 1e-12, "gradient rows sum to 0");
            }
            // The same samples as (1, c, n): class stride n.
            let mut xt = vec![0.0; n * c];
            for i in 0..n {
                for j in 0..c {
                    xt[j * n + i] = x[i * c + j];
                }
            }
            let pt = CrossEntropy { x: &xt, layout: Layout { n: 1, c, s: n }, ..p };
            let mut gt = vec![0.0; n * c];
            let got_t = cross_entropy(&pt, RowOutputs { value: None, grad: Some(&mut gt) }, true);
            assert!((got_t - want).abs() <= 1e-12 * want.abs());
            for i in 0..n {
                for j in 0..c {
                    assert!((gt[j * n + i] - g[i * c + j]).abs() < 1e-15);
                }
            }
        }
    }
}
