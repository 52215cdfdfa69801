//! Times softmax cross-entropy (value and gradient, class-index targets, mean) without Python:
//! `cargo run --release --no-default-features --example ce_timing -- [n] [c]` (default 65536 10).

use std::time::Instant;

use _core::multiclass::{self, CrossEntropy, Layout, RowOutputs, Target};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(65536, |s| s.parse().unwrap());
    let c: usize = args.get(2).map_or(10, |s| s.parse().unwrap());
    _core::threads::set_num_threads(1);
    let x: Vec<f32> = (0..n * c).map(|i| ((i * 7919) % 1000) as f32 * 1e-2 - 5.0).collect();
    let y: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
    let mut g = vec![0.0f32; n * c];
    let p = CrossEntropy {
        x: &x,
        layout: Layout { n, c, s: 1 },
        target: Target::Index { y: &y, ignore_index: -100 },
        weight: None,
        smoothing: 0.0,
        grad_output: None,
        scale: 1.0 / n as f64,
    };
    let reps = 50;
    let mut best = f64::INFINITY;
    let mut total = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        total += multiclass::cross_entropy(&p, RowOutputs { value: None, grad: Some(&mut g) }, true);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "cross_entropy {n}x{c}: {:.3} ms, {:.3} ns/element (best of {reps}), level {:?}, checksum {total}",
        best * 1e3,
        best * 1e9 / (n * c) as f64,
        _core::simd::level()
    );
}
