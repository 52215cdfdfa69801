//! Times the element-wise kernels without Python: `cargo run --release --no-default-features
//! --example kernel_timing -- [loss] [n] [value]` (value and gradient, or the value alone with
//! `value`; useful with `perf record` to inspect the hot loop). Targets are 0.25, or hard labels
//! (0 and 1 mixed) with `hard` as a further argument.

use std::time::Instant;

use _core::pointwise::{Inputs, Outputs};
use _core::classification::Classification;
use _core::regression::Pointwise;

enum Loss {
    Regression(Pointwise),
    Classification(Classification),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("log_cosh", |s| s.as_str());
    let n: usize = args.get(2).map_or(1_000_000, |s| s.parse().unwrap());
    let value_only = args.iter().skip(3).any(|s| s == "value");
    let hard = args.iter().skip(3).any(|s| s == "hard");
    let loss = match name {
        "mse" => Loss::Regression(Pointwise::Mse),
        "l1" => Loss::Regression(Pointwise::L1),
        "smooth_l1" => Loss::Regression(Pointwise::SmoothL1 { beta: 1.0 }),
        "huber" => Loss::Regression(Pointwise::Huber { delta: 1.0 }),
        "log_cosh" => Loss::Regression(Pointwise::LogCosh),
        "poisson" => Loss::Regression(Pointwise::PoissonLogInput { full: false }),
        "gaussian" => Loss::Regression(Pointwise::GaussianNll { full: false, eps: 1e-6 }),
        "bce" => Loss::Classification(Classification::Bce),
        "bce_logits" => Loss::Classification(Classification::BceLogits),
        "bce_logits_pos_weight" => Loss::Classification(Classification::BceLogitsPosWeight),
        "focal" => Loss::Classification(Classification::Focal { alpha: 0.25, gamma: 2.0 }),
        "soft_margin" => Loss::Classification(Classification::SoftMargin),
        "exponential" => Loss::Classification(Classification::Exponential),
        "kl_div" => Loss::Classification(Classification::KlDiv),
        "kl_div_log_target" => Loss::Classification(Classification::KlDivLogTarget),
        "msle" => Loss::Regression(Pointwise::SquaredLogError),
        "poisson_rate" => Loss::Regression(Pointwise::PoissonRateInput { full: false, eps: 1e-8 }),
        other => panic!("unknown loss {other}"),
    };
    let gaussian = matches!(loss, Loss::Regression(Pointwise::GaussianNll { .. }));
    _core::threads::set_num_threads(1);
    // Inputs in [0.05, 0.95) (valid probabilities for BCE), targets 0.25 or hard labels.
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 900) as f32 * 1e-3 + 0.05).collect();
    let y: Vec<f32> = (0..n).map(|i| if hard { ((i * 104_729) % 7 < 3) as u8 as f32 } else { 0.25 }).collect();
    let z = vec![1.5f32; n];
    let mut g = vec![0.0f32; n];
    let mut g2 = vec![0.0f32; n];
    let reps = 50;
    let mut best = f64::INFINITY;
    let mut total = 0.0;
    for _ in 0..reps {
        let inp = Inputs { x: &x, y: &y, z: Some(&z), value_weight: None, grad_weight: None, grad_scale: 1.0 };
        let gz = if gaussian { Some(&mut g2[..]) } else { None };
        let out = if value_only {
            Outputs { value: None, grad_x: None, grad_z: None }
        } else {
            Outputs { value: None, grad_x: Some(&mut g), grad_z: gz }
        };
        let t = Instant::now();
        total += match loss {
            Loss::Regression(l) => l.evaluate(&inp, out, true),
            Loss::Classification(l) => l.evaluate(&inp, out, true),
        }
        .expect("inputs inside the loss's domain");
        best = best.min(t.elapsed().as_secs_f64());
    }
    // The np.add(a, b, out=c) mark: the same two reads and one write, nothing computed.
    let mut add_best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        for ((g, a), b) in g2.iter_mut().zip(&x).zip(&y) {
            *g = a + b;
        }
        std::hint::black_box(&mut g2);
        add_best = add_best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{name} n={n}: {:.3} ns/element (best of {reps}) = {:.2}x add, level {:?}, checksum {total}",
        best * 1e9 / n as f64,
        best / add_best,
        _core::simd::level()
    );
}
