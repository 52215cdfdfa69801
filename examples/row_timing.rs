//! Times the row-wise kernels and the Adam step without Python: `cargo run --release
//! --no-default-features --example row_timing -- [multi_margin|multilabel|nll|triplet|adam]` (1
//! thread; best of many calls; multi-margin, multilabel and NLL (with its class-index check) on
//! 10000×100, triplet on 1000×128 with p = 2, ∞ and 1, Adam on 10⁵ and 10⁷ parameters).

use std::time::Instant;

use _core::embedding::{GradFactor, PNorm, Triplet, triplet};
use _core::multiclass::{Layout, RowOutputs, index_divisor, multi_margin, multilabel_soft_margin, nll};
use _core::optim::{Adam, Rule, Update, apply};

/// Best time in µs of `reps` calls of `f`.
fn best_us(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e6
}

fn ramp(n: usize, k: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n).map(|i| ((i * k) % 1000) as f32 * scale + offset).collect()
}

fn main() {
    _core::threads::set_num_threads(1);
    let which = std::env::args().nth(1).unwrap_or_else(|| "multi_margin".into());
    match which.as_str() {
        "multi_margin" | "multilabel" => {
            let (rows, c) = (10_000usize, 100usize);
            let x = ramp(rows * c, 7919, 4e-3, -2.0);
            let labels: Vec<i64> = (0..rows).map(|i| ((i * 31) % c) as i64).collect();
            let targets: Vec<f32> = (0..rows * c).map(|i| ((i * 31) % 2) as f32).collect();
            let mut g = vec![0.0f32; rows * c];
            for grad in [false, true] {
                let us = best_us(200, || {
                    let out = RowOutputs { value: None, grad: if grad { Some(&mut g[..]) } else { None } };
                    let scale = 1.0 / rows as f64;
                    std::hint::black_box(if which == "multi_margin" {
                        multi_margin(&x, rows, c, &labels, 1, 1.0, None, None, scale, out)
                    } else {
                        multilabel_soft_margin(&x, rows, c, &targets, None, None, scale, out)
                    });
                });
                println!("{which} {rows}x{c} {}: {us:.1} us", if grad { "value_and_grad" } else { "value" });
            }
        }
        "nll" => {
            let (rows, c) = (10_000usize, 100usize);
            let x = ramp(rows * c, 7919, 4e-3, -2.0);
            let labels: Vec<i64> = (0..rows).map(|i| ((i * 31) % c) as i64).collect();
            let layout = Layout { n: rows, c, s: 1 };
            let us = best_us(200, || {
                std::hint::black_box(index_divisor::<f32>(&labels, c, -100, None).unwrap());
            });
            println!("nll {rows}x{c} index check: {us:.1} us");
            let mut g = vec![0.0f32; rows * c];
            for grad in [false, true] {
                let us = best_us(200, || {
                    let out = RowOutputs { value: None, grad: if grad { Some(&mut g[..]) } else { None } };
                    std::hint::black_box(nll(&x, layout, &labels, -100, None, None, 1.0 / rows as f64, out, false));
                });
                println!("nll {rows}x{c} {}: {us:.1} us", if grad { "value_and_grad" } else { "value" });
            }
        }
        "triplet" => {
            let (n, d) = (1000usize, 128usize);
            let (a, p, q) = (ramp(n * d, 7919, 1e-3, -0.5), ramp(n * d, 31, 1e-3, -0.5), ramp(n * d, 131, 1e-3, -0.5));
            let (mut ga, mut gp, mut gn) = (vec![0.0f32; n * d], vec![0.0f32; n * d], vec![0.0f32; n * d]);
            for norm in [PNorm::Two, PNorm::Inf, PNorm::One] {
                let us = best_us(200, || {
                    let out = _core::embedding::RowOutputs { value: None, grads: Some(vec![&mut ga[..], &mut gp[..], &mut gn[..]]) };
                    let opts = Triplet { margin: 1.0, norm, eps: 1e-6, swap: false };
                    let factor = GradFactor { grad_output: None, scale: 1.0 / n as f32 };
                    std::hint::black_box(triplet(&a, &p, &q, n, d, opts, factor, out, true));
                });
                println!("triplet {n}x{d} {norm:?} value_and_grad: {us:.1} us");
            }
        }
        "adam" => {
            let rule = Rule::Adam(Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                amsgrad: false,
                maximize: false,
                decoupled: false,
            });
            for n in [100_000usize, 10_000_000] {
                let (mut p, g) = (ramp(n, 7919, 1e-3, -0.5), ramp(n, 31, 1e-3, -0.5));
                let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
                let mut step = 0.0;
                let us = best_us(if n > 1_000_000 { 40 } else { 400 }, || {
                    step += 1.0;
                    let u = Update { rule: &rule, step, param: &mut p, grad: &g, state: [&mut m, &mut v, &mut []] };
                    apply(vec![u]).unwrap();
                });
                println!("adam n={n}: {:.3} ns/element", us * 1e3 / n as f64);
            }
        }
        other => panic!("unknown workload {other}: multi_margin, multilabel, triplet or adam"),
    }
}
