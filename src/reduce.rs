//! The one reduction scheme every kernel uses, deterministic for any thread count.
//!
//! An array of n elements is cut into blocks of [`BLOCK`] elements (a partition that depends on n
//! only). Within a block, terms are accumulated in float64 into [`LANES`] lane accumulators in
//! element order, and the lanes are added with a fixed pairwise tree. Block partials are combined
//! with a fixed pairwise tree over their index. Threads only decide *who* computes a block, never
//! how it is summed, so the result is bitwise identical for 1, 2 or 64 threads.

use std::ops::Range;

use rayon::prelude::*;

use crate::float::Float;
use crate::threads;

/// Lane accumulators per block (two AVX-512 registers of f64).
pub const LANES: usize = 16;
/// Elements per block: the unit of both reduction and work splitting.
pub const BLOCK: usize = 1 << 14;
/// Below this many elements a kernel runs on the calling thread: waking a pool costs more.
pub const PARALLEL_MIN: usize = 1 << 17;
/// Blocks per task handed to a worker.
const BLOCKS_PER_TASK: usize = 4;

/// acc[j] += terms[j] for every lane, as vector adds (LLVM's SLP vectoriser does not reliably
/// turn this loop-carried pattern into vector code; SSE2 is part of every x86-64).
#[inline(always)]
pub fn add_lanes(acc: &mut [f64; LANES], terms: &[f64; LANES]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_add_pd, _mm_loadu_pd, _mm_storeu_pd};
        for j in (0..LANES).step_by(2) {
            // SAFETY: j + 1 < LANES, so both 2-lane loads and the store are in bounds.
            unsafe {
                let sum = _mm_add_pd(_mm_loadu_pd(acc.as_ptr().add(j)), _mm_loadu_pd(terms.as_ptr().add(j)));
                _mm_storeu_pd(acc.as_mut_ptr().add(j), sum);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for j in 0..LANES {
        acc[j] += terms[j];
    }
}

/// Lane accumulators for one long run of terms (a block of an element-wise loss): term i lands in
/// lane i % LANES, in order, widened to f64. Unlike `add_lanes` it adds whole groups at the full
/// vector width of the SIMD level (on AVX2 half the instructions of 128-bit adds; a loss value at
/// 10⁶ elements measured 10–30% faster). Short per-row sums keep `add_lanes`: there the padded
/// tail's store and reload cost more than the wider adds save.
pub struct BlockSum {
    acc: [f64; LANES],
}

impl BlockSum {
    #[inline(always)]
    pub fn new() -> Self {
        BlockSum { acc: [0.0; LANES] }
    }

    /// Adds `terms` after those already added. Every call but the last must pass a multiple of
    /// LANES terms (the lane of a term is its index within the call).
    #[inline(always)]
    pub fn add<T: Float>(&mut self, terms: &[T]) {
        let mut groups = terms.chunks_exact(LANES);
        for g in &mut groups {
            for (a, t) in self.acc.iter_mut().zip(g) {
                *a += t.to_f64();
            }
        }
        // The tail through a +0.0-padded group keeps every lane index a constant, so the lanes
        // stay in vector registers; adding +0.0 changes no lane's bits (a lane starts at +0.0
        // and can never become −0.0).
        let rest = groups.remainder();
        if !rest.is_empty() {
            let mut padded = [0.0f64; LANES];
            for (p, t) in padded.iter_mut().zip(rest) {
                *p = t.to_f64();
            }
            for (a, p) in self.acc.iter_mut().zip(&padded) {
                *a += p;
            }
        }
    }

    #[inline(always)]
    pub fn total(self) -> f64 {
        // An optimisation barrier, no arithmetic: without it LLVM's SLP vectoriser gives the
        // lanes the register layout of `sum_lanes`' last 2-wide steps, and `add` runs with
        // 128-bit adds even on AVX2.
        sum_lanes(std::hint::black_box(self.acc))
    }
}

/// Fixed pairwise sum of the lane accumulators.
#[inline(always)]
pub fn sum_lanes(mut acc: [f64; LANES]) -> f64 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
}

/// Pairwise sum whose association depends only on `parts.len()`.
pub fn tree_sum(parts: &[f64]) -> f64 {
    match parts.len() {
        0 => 0.0,
        1 => parts[0],
        n => {
            let half = n.next_power_of_two() / 2;
            tree_sum(&parts[..half]) + tree_sum(&parts[half..])
        }
    }
}

/// Runs `block` over the fixed blocks of `0..n` (in parallel when that pays) and returns the
/// tree sum of its results. `block` receives each block's index range.
pub fn blocked<F>(n: usize, block: F) -> f64
where
    F: Fn(Range<usize>) -> f64 + Sync,
{
    let nblocks = n.div_ceil(BLOCK);
    let range = |b: usize| b * BLOCK..((b + 1) * BLOCK).min(n);
    if nblocks <= 1 {
        return block(0..n);
    }
    let partials: Vec<f64> = if n < PARALLEL_MIN || threads::num_threads() == 1 {
        (0..nblocks).map(|b| block(range(b))).collect()
    } else {
        threads::pool().install(|| {
            (0..nblocks)
                .into_par_iter()
                .with_min_len(BLOCKS_PER_TASK)
                .map(|b| block(range(b)))
                .collect()
        })
    };
    tree_sum(&partials)
}

/// A raw output pointer that blocks on different threads write through, each to its own range.
#[derive(Copy, Clone)]
pub struct SharedOut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: `SharedOut` is only turned into slices over disjoint block ranges (see `slice`).
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    pub fn new(out: Option<&mut [T]>) -> Self {
        match out {
            Some(s) => SharedOut { ptr: s.as_mut_ptr(), len: s.len() },
            None => SharedOut { ptr: std::ptr::NonNull::dangling().as_ptr(), len: 0 },
        }
    }

    /// The sub-slice for `range`, or an empty slice when there is no output.
    ///
    /// # Safety
    /// Ranges taken while the original `&mut` borrow lives must not overlap.
    #[inline(always)]
    pub unsafe fn slice<'a>(&self, range: Range<usize>) -> &'a mut [T] {
        if self.len == 0 {
            return &mut [];
        }
        assert!(range.end <= self.len);
        // SAFETY: in bounds (checked above) and disjoint by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_sum_is_pairwise() {
        assert_eq!(tree_sum(&[]), 0.0);
        assert_eq!(tree_sum(&[1.0, 1e100, 1.0, -1e100]), 0.0);
        assert_eq!(tree_sum(&[1.0, 2.0, 3.0]), 6.0);
    }

    #[test]
    fn block_sum_adds_each_term_to_its_lane_in_order() {
        // Lengths around the lane count, −0.0 terms (the padding must not turn a lane's −0.0
        // into +0.0 or back) and values that make the order of additions visible.
        for n in 0..3 * LANES + 2 {
            let terms: Vec<f32> =
                (0..n).map(|i| if i % 5 == 0 { -0.0 } else { (i as f32 * 0.37).sin() * 10f32.powi(i as i32 % 9 - 4) }).collect();
            let mut lanes = [0.0f64; LANES];
            for (i, t) in terms.iter().enumerate() {
                lanes[i % LANES] += *t as f64;
            }
            let mut sum = BlockSum::new();
            let split = (n / 2) / LANES * LANES; // two calls, the first a multiple of LANES
            sum.add(&terms[..split]);
            sum.add(&terms[split..]);
            assert_eq!(sum.total().to_bits(), sum_lanes(lanes).to_bits(), "n = {n}");
        }
    }

    #[test]
    fn blocked_is_identical_for_any_thread_count() {
        let n = 3 * PARALLEL_MIN + 12345;
        let data: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 * 1e-3 - 0.4).collect();
        let run = || blocked(n, |r| data[r].iter().sum());
        threads::set_num_threads(1);
        let one = run();
        threads::set_num_threads(2);
        let two = run();
        threads::set_num_threads(3);
        let three = run();
        assert_eq!(one.to_bits(), two.to_bits());
        assert_eq!(one.to_bits(), three.to_bits());
    }
}
