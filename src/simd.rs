//! Runtime choice of the instruction set, made once per process.
//!
//! Kernels are generic `#[inline(always)]` Rust written over fixed-width lane arrays; [`vectorized`]
//! runs such a body inside a function compiled for the chosen level, so LLVM emits AVX-512,
//! AVX2+FMA or baseline code from the same source. `FASTLOSS_SIMD` lowers the level (tests use it
//! to exercise every path); asking for a level the CPU lacks gives the best one it has.

use std::sync::OnceLock;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The target's baseline: SSE2 on x86-64, NEON on aarch64, plain scalar code elsewhere.
    Baseline,
    Avx2,
    Avx512,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Baseline if cfg!(target_arch = "x86_64") => "sse2",
            Level::Baseline if cfg!(target_arch = "aarch64") => "neon",
            Level::Baseline => "scalar",
        }
    }

    /// Parses a `FASTLOSS_SIMD` value; `scalar` names the baseline on every target.
    pub fn parse(name: &str) -> Option<Level> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" => Some(Level::Avx512),
            "avx2" => Some(Level::Avx2),
            "sse2" | "neon" | "scalar" | "baseline" => Some(Level::Baseline),
            _ => None,
        }
    }
}

/// The best level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// The level in use: the detected one, lowered by `FASTLOSS_SIMD` if that is set (an
/// unknown value is ignored here; the Python package rejects it with a clear message).
pub fn level() -> Level {
    *LEVEL.get_or_init(|| {
        let best = detected();
        match std::env::var("FASTLOSS_SIMD").ok().as_deref().and_then(Level::parse) {
            Some(wanted) => wanted.min(best),
            None => best,
        }
    })
}

/// Runs `body` compiled for the active level. `body` must be a closure whose work is done by
/// `#[inline(always)]` functions, so that all of it is inlined into the per-level copy.
#[inline(always)]
pub fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` only returns Avx512/Avx2 when the CPU reported those features.
        Level::Avx512 => unsafe { x86::avx512(body) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Level::Avx2 => unsafe { x86::avx2(body) },
        _ => body(),
    }
}

/// Runs `body` compiled for the active level but with vectors of at most 256 bits: for data
/// movement with a stride (the small-class cross-entropy's tile transposes). At AVX-512, LLVM's
/// generic x86-64 cost model compiles such copies to gathers and scatters, which AMD's Zen 4 runs
/// far slower than AVX2's wide loads and shuffles (cross-entropy on 65536×10: 2.5 ns per element
/// at AVX-512 against 1.6 at AVX2). The AVX2 copy is kept out of line so that it is not inlined
/// back into (and recompiled for) an AVX-512 caller.
#[inline(always)]
pub fn vectorized_256<R>(body: impl FnOnce() -> R) -> R {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` only returns Avx512/Avx2 when the CPU reported AVX2 and FMA.
        Level::Avx512 => unsafe { x86::avx2_out_of_line(body) },
        // Every other level is at most 256 bits wide already: inline, in the caller's copy.
        _ => body(),
    }
}

/// Runs `body` compiled for `level` if this CPU has it (Some), else None: tests that compare the
/// levels within one process (`level()` is fixed for the process).
#[cfg(test)]
#[inline(always)]
pub fn vectorized_at<R>(level: Level, body: impl FnOnce() -> R) -> Option<R> {
    if level > detected() {
        return None;
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU reported this level's features (checked above).
        Level::Avx512 => Some(unsafe { x86::avx512(body) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Level::Avx2 => Some(unsafe { x86::avx2(body) }),
        _ => Some(body()),
    }
}

/// The index of the first element of `x` for which `bad` holds (see `first_index`).
#[inline(always)]
pub fn first_where<E: Copy>(x: &[E], bad: impl Fn(E) -> bool + Copy) -> Option<usize> {
    first_index(x.len(), #[inline(always)] move |i| bad(x[i]))
}

/// The first i in 0..n for which `bad(i)` holds (`bad` must be `#[inline(always)]`, see
/// `vectorized`). Each chunk of indices is first tested with a branch-free vector pass; only a
/// chunk that has such an index is searched one by one, so valid inputs (the common case: this is
/// how inputs are checked) cost one fast read-only pass, and an early bad element stops the scan.
#[inline(always)]
pub fn first_index(n: usize, bad: impl Fn(usize) -> bool + Copy) -> Option<usize> {
    const CHUNK: usize = 1024;
    vectorized(
        #[inline(always)]
        || {
            let mut start = 0;
            while start < n {
                let end = (start + CHUNK).min(n);
                if (start..end).fold(false, |any, i| any | bad(i)) {
                    return (start..end).find(|&i| bad(i));
                }
                start = end;
            }
            None
        },
    )
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    pub unsafe fn avx512<R>(body: impl FnOnce() -> R) -> R {
        body()
    }

    #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    pub unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
        body()
    }

    #[inline(never)]
    #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    pub unsafe fn avx2_out_of_line<R>(body: impl FnOnce() -> R) -> R {
        body()
    }
}

#[cfg(test)]
mod tests {
    /// Every closure handed to `vectorized` (or `vectorized_256`, `vectorized_at`) must be
    /// `#[inline(always)]`:
    /// without it the closure is compiled as a function of its own at the baseline level, and its
    /// loop runs as SSE2 code whatever the CPU has (the optimizer steps once ran at half their
    /// speed this way). The compiler cannot check this, so the sources are read.
    #[test]
    fn every_vectorized_closure_is_inline_always() {
        fn visit(dir: &std::path::Path, bad: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    visit(&path, bad);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for name in ["vectorized(", "vectorized_256(", "vectorized_at("] {
                        let call = ["simd::", name].concat(); // not spelled out: this file would match
                        for (at, _) in text.match_indices(&call) {
                            let before = &text[..at];
                            // The attribute between the call and its closure's `|` (vectorized_at
                            // takes the level first).
                            let after = &text[at + call.len()..];
                            let head = &after[..after.find('|').unwrap_or(after.len())];
                            if !head.contains("#[inline(always)]") {
                                let line = before.matches('\n').count() + 1;
                                bad.push(format!("{}:{line}", path.display()));
                            }
                        }
                    }
                }
            }
        }
        let mut bad = Vec::new();
        visit(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")), &mut bad);
        assert!(bad.is_empty(), "closures passed to vectorized without #[inline(always)]: {bad:?}");
    }
}
