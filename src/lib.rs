//! fastloss: fused loss values, gradients and optimizer steps for NumPy arrays.
//!
//! The kernels (everything but `python`) are plain Rust with no Python in them; `python` is the
//! one thin PyO3 layer that turns NumPy arrays into slices and releases the GIL around a kernel.

pub mod classification;
pub mod embedding;
pub mod float;
pub mod multiclass;
pub mod optim;
pub mod pointwise;
pub mod reduce;
pub mod regression;
pub mod simd;
pub mod threads;

#[cfg(feature = "python")]
mod python;
