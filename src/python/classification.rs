//! Bindings for the classification kernels (`crate::classification`).
//!
//! The Python layer (`fastloss._classification`) validates, converts and broadcasts; these
//! functions re-check dtypes, contiguity and sizes (raising, never panicking), borrow the arrays
//! as slices and run the kernel with the GIL released for large inputs.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{
    Array, ElementwiseArgs, ElementwiseNames, FloatDtype, as_slice, detach_if_large, readonly, with_float_type,
};
use crate::classification::{Classification, first_outside_unit_interval};

/// Adds this family's functions to `_core`.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(classification, m)?)?;
    m.add_function(wrap_pyfunction!(first_outside_unit, m)?)?;
    Ok(())
}

pub(super) fn parse(name: &str, p1: f64, p2: f64) -> PyResult<Classification> {
    Ok(match name {
        "bce" => Classification::Bce,
        "bce_logits" => Classification::BceLogits,
        "bce_logits_pos_weight" => Classification::BceLogitsPosWeight,
        "focal" => Classification::Focal { alpha: p1, gamma: p2 },
        "hinge" => Classification::Hinge { margin: p1 },
        "squared_hinge" => Classification::SquaredHinge { margin: p1 },
        "exponential" => Classification::Exponential,
        "soft_margin" => Classification::SoftMargin,
        "kl_div" => Classification::KlDiv,
        "kl_div_log_target" => Classification::KlDivLogTarget,
        _ => return Err(PyValueError::new_err(format!("unknown classification loss {name:?}"))),
    })
}

/// What the errors of `classification` call its arrays.
const NAMES: ElementwiseNames = ElementwiseNames { x: "input", z: "pos_weight", grad_weight: "grad_weight" };

/// Evaluates a classification loss: returns Σ ℓ·weight when `sum`, writes per-element losses to
/// `value_out` and gradients (∂ℓ·grad_weight·grad_scale) to `grad_out`. `pos_weight` is the
/// per-element `pos_weight` of "bce_logits_pos_weight"; `p1`, `p2` are the scalar options
/// (margin; focal's alpha and gamma).
#[pyfunction]
#[pyo3(signature = (loss, input, target, pos_weight, weight, grad_weight, grad_scale, sum, value_out, grad_out, p1=0.0, p2=0.0))]
#[allow(clippy::too_many_arguments)]
fn classification<'py>(
    py: Python<'py>,
    loss: &str,
    input: &Array<'py>,
    target: &Array<'py>,
    pos_weight: Option<&Array<'py>>,
    weight: Option<&Array<'py>>,
    grad_weight: Option<&Array<'py>>,
    grad_scale: f64,
    sum: bool,
    value_out: Option<&Array<'py>>,
    grad_out: Option<&Array<'py>>,
    p1: f64,
    p2: f64,
) -> PyResult<f64> {
    let loss = parse(loss, p1, p2)?;
    if matches!(loss, Classification::BceLogitsPosWeight) && pos_weight.is_none() {
        return Err(PyValueError::new_err("bce_logits_pos_weight needs pos_weight"));
    }
    let args = ElementwiseArgs {
        names: NAMES,
        x: input,
        y: target,
        z: pos_weight,
        value_weight: weight,
        grad_weight,
        value_out,
        grad_out,
        grad2_out: None,
    };
    with_float_type!(FloatDtype::of(py, input, "input")?, |T| {
        args.run::<T>(py, grad_scale, |inputs, outputs| loss.evaluate(inputs, outputs, sum))
    })
}

/// The flat index of the first element of `x` outside [0, 1] (NaN counts), or None.
#[pyfunction]
fn first_outside_unit<'py>(py: Python<'py>, x: &Array<'py>) -> PyResult<Option<usize>> {
    with_float_type!(FloatDtype::of(py, x, "x")?, |T| {
        let a = readonly::<T>(x, "x")?;
        let s = as_slice(&a, "x")?;
        Ok(detach_if_large(py, s.len(), || first_outside_unit_interval(s)))
    })
}
