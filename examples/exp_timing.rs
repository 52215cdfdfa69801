//! Times the float32 elementary functions in a lane loop compiled for the active SIMD level, as the
//! kernels run them: `cargo run --release --no-default-features --example exp_timing`
//! (`FASTLOSS_SIMD=sse2` for the baseline).

use std::time::Instant;

use _core::float::Float;

fn bench(name: &str, x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    let mut best = f64::INFINITY;
    for _ in 0..300 {
        let t = Instant::now();
        _core::simd::vectorized(
            #[inline(always)]
            || {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = f(v);
                }
            },
        );
        std::hint::black_box(&mut *out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{name:>12}: {:.3} ns/element (best of 300, level {:?})", best * 1e9 / x.len() as f64, _core::simd::level());
}

fn main() {
    let n = 16384; // in L1/L2: the functions' cost, not memory's
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-2 - 5.0).collect();
    let mut out = vec![0.0f32; n];
    // Explicit `Float::` calls: f32's inherent methods (libm) would shadow the trait's.
    bench("x + 1", &x, &mut out, #[inline(always)] |v| v + 1.0);
    bench("1 / x", &x, &mut out, #[inline(always)] |v| 1.0 / v);
    bench("exp", &x, &mut out, #[inline(always)] |v| Float::exp(v));
    bench("exp_m1", &x, &mut out, #[inline(always)] |v| Float::exp_m1(v));
    bench("ln", &x, &mut out, #[inline(always)] |v| Float::ln(Float::abs(v)));
    bench("ln_1p", &x, &mut out, #[inline(always)] |v| Float::ln_1p(Float::abs(v)));
    bench("sigmoid", &x, &mut out, #[inline(always)] |v| Float::sigmoid(v));
    bench("softplus", &x, &mut out, #[inline(always)] |v| Float::softplus(v));
    bench("logistic", &x, &mut out, #[inline(always)] |v| {
        let (l, s, t) = Float::logistic(v);
        l + s + t
    });
}
