//! Bindings for the multiclass kernels (`crate::multiclass`).
//!
//! The Python layer (`fastloss._multiclass`) validates shapes and options and passes C-contiguous
//! arrays of the computation dtype (class indices as int64) with the (n, c, s) view of the input.
//! These functions re-check every length (a wrong call raises, never reads out of bounds), check
//! the class indices before anything is written (IndexError), and run the kernel without the GIL.

use numpy::{Element, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::{
    Array, FloatDtype, RowArgs, RowLens, RowSlices, WeightLen, as_slice, check_len, detach_if_large, is_dtype,
    readonly, with_float_type,
};
use crate::float::Float;
use crate::multiclass::{self, CrossEntropy, Layout, RowOutputs, Target};

/// Adds this family's functions to `_core`.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(nll_loss, m)?)?;
    m.add_function(wrap_pyfunction!(multi_margin_loss, m)?)?;
    m.add_function(wrap_pyfunction!(multilabel_soft_margin_loss, m)?)?;
    Ok(())
}

fn out_of_bounds(t: i64, c: usize, ignore_index: Option<i64>) -> PyErr {
    let ignore = ignore_index.map_or(String::new(), |i| format!(", or ignore_index={i}"));
    PyIndexError::new_err(format!(
        "target: class index {t} is out of bounds for {c} classes (expected 0 <= index < {c}{ignore})"
    ))
}

/// The divisor of a mean over the class indices `y` (see `multiclass::index_divisor`), or the
/// IndexError for the first index out of bounds.
fn index_divisor<T: Float>(
    py: Python<'_>,
    y: &[i64],
    layout: Layout,
    ignore_index: i64,
    weight: Option<&[T]>,
) -> PyResult<f64> {
    detach_if_large(py, layout.samples(), || multiclass::index_divisor(y, layout.c, ignore_index, weight))
        .map_err(|t| out_of_bounds(t, layout.c, Some(ignore_index)))
}

/// The float arrays of a multiclass binding: one input (`input` in errors) and at most one
/// gradient buffer.
fn row_args<'a, 'py>(
    input: &'a Array<'py>,
    weight: Option<&'a Array<'py>>,
    grad_output: Option<&'a Array<'py>>,
    value_out: Option<&'a Array<'py>>,
    grad_out: Option<&'a Array<'py>>,
) -> RowArgs<'a, 'py> {
    let grads_out = grad_out.into_iter().collect();
    RowArgs { inputs: vec![("input", input)], weight, grad_output, value_out, grads_out }
}

/// The slices of a multiclass call, as the kernels take them.
struct Slices<'a, T> {
    x: &'a [T],
    weight: Option<&'a [T]>,
    grad_output: Option<&'a [T]>,
    outputs: RowOutputs<'a, T>,
}

impl<'a, T> Slices<'a, T> {
    /// The one input and the one gradient buffer (if any) of a multiclass call.
    fn new(s: RowSlices<'a, T>) -> Self {
        let RowSlices { inputs, weight, grad_output, value, mut grads } = s;
        Slices { x: inputs[0], weight, grad_output, outputs: RowOutputs { value, grad: grads.pop() } }
    }
}

// ------------------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn cross_entropy_typed<T: Float + Element>(
    py: Python<'_>,
    a: &RowArgs<'_, '_>,
    target: &Array<'_>,
    layout: Layout,
    ignore_index: i64,
    smoothing: f64,
    mean: bool,
    scale: f64,
    sum: bool,
) -> PyResult<(f64, f64)> {
    let mut arrays = a.borrow::<T>()?;
    let lens = RowLens { elements: layout.len(), rows: layout.samples(), weight: WeightLen::PerClass(layout.c) };
    let Slices { x: xs, weight, grad_output, outputs } = Slices::new(arrays.slices(lens)?);
    if layout.c == 0 && !layout.is_empty() {
        return Err(PyValueError::new_err("input: the class axis is empty"));
    }
    if layout.c >= u32::MAX as usize {
        // The kernels keep class indices as u32 (u32::MAX marks an ignored sample).
        return Err(PyValueError::new_err(format!("input: {} classes are more than supported", layout.c)));
    }
    let len = layout.len();
    if is_dtype::<i64>(py, target) {
        let t = readonly::<i64>(target, "target")?;
        check_len("target", t.len(), layout.samples())?;
        let y = as_slice(&t, "target")?;
        let divisor = index_divisor(py, y, layout, ignore_index, weight)?;
        let scale = if mean { scale / divisor } else { scale };
        let p = CrossEntropy {
            x: xs,
            layout,
            target: Target::Index { y, ignore_index },
            weight,
            smoothing,
            grad_output,
            scale,
        };
        let total = detach_if_large(py, len, || multiclass::cross_entropy(&p, outputs, sum));
        Ok((total, divisor))
    } else if is_dtype::<T>(py, target) {
        let t = readonly::<T>(target, "target")?;
        check_len("target", t.len(), len)?;
        let q = as_slice(&t, "target")?;
        let divisor = layout.samples() as f64;
        let scale = if mean { scale / divisor } else { scale };
        let p = CrossEntropy { x: xs, layout, target: Target::Prob(q), weight, smoothing, grad_output, scale };
        let total = detach_if_large(py, len, || multiclass::cross_entropy(&p, outputs, sum));
        Ok((total, divisor))
    } else {
        Err(PyTypeError::new_err(format!(
            "target: expected int64 class indices or probabilities of the input's dtype, got {}",
            target.dtype()
        )))
    }
}

/// Softmax cross-entropy over axis 1 of an (n, c, s) input. `target` is int64 class indices
/// (one per sample) or probabilities of the input's dtype and shape. Returns (Σ losses, divisor of
/// a mean); the gradient factor is `scale` (over the divisor when `mean`), or `grad_output` per
/// sample.
#[pyfunction]
#[pyo3(signature = (input, target, weight, n, c, s, ignore_index, label_smoothing, mean, scale, grad_output, sum, value_out, grad_out))]
#[allow(clippy::too_many_arguments)]
fn cross_entropy<'py>(
    py: Python<'py>,
    input: &Array<'py>,
    target: &Array<'py>,
    weight: Option<&Array<'py>>,
    n: usize,
    c: usize,
    s: usize,
    ignore_index: i64,
    label_smoothing: f64,
    mean: bool,
    scale: f64,
    grad_output: Option<&Array<'py>>,
    sum: bool,
    value_out: Option<&Array<'py>>,
    grad_out: Option<&Array<'py>>,
) -> PyResult<(f64, f64)> {
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(PyValueError::new_err(format!("label_smoothing: got {label_smoothing}, expected 0 <= value <= 1")));
    }
    let layout = Layout { n, c, s };
    let a = row_args(input, weight, grad_output, value_out, grad_out);
    with_float_type!(FloatDtype::of(py, input, "input")?, |T| {
        cross_entropy_typed::<T>(py, &a, target, layout, ignore_index, label_smoothing, mean, scale, sum)
    })
}

// ------------------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn nll_typed<T: Float + Element>(
    py: Python<'_>,
    a: &RowArgs<'_, '_>,
    target: &Array<'_>,
    layout: Layout,
    ignore_index: i64,
    mean: bool,
    scale: f64,
    grad_zeroed: bool,
) -> PyResult<(f64, f64)> {
    let mut arrays = a.borrow::<T>()?;
    let t = readonly::<i64>(target, "target")?;
    let lens = RowLens { elements: layout.len(), rows: layout.samples(), weight: WeightLen::PerClass(layout.c) };
    let Slices { x: xs, weight, grad_output, outputs } = Slices::new(arrays.slices(lens)?);
    check_len("target", t.len(), layout.samples())?;
    let y = as_slice(&t, "target")?;
    let divisor = index_divisor(py, y, layout, ignore_index, weight)?;
    let scale = if mean { scale / divisor } else { scale };
    let total = detach_if_large(py, layout.len(), || {
        multiclass::nll(xs, layout, y, ignore_index, weight, grad_output, scale, outputs, grad_zeroed)
    });
    Ok((total, divisor))
}

/// NLL over axis 1 of an (n, c, s) input of log-probabilities with int64 class indices.
/// Returns (Σ losses, divisor of a mean), like `cross_entropy`. `grad_zeroed`: `grad_out` already
/// holds zeros (only the target entries are written).
#[pyfunction]
#[pyo3(signature = (input, target, weight, n, c, s, ignore_index, mean, scale, grad_output, value_out, grad_out, grad_zeroed=false))]
#[allow(clippy::too_many_arguments)]
fn nll_loss<'py>(
    py: Python<'py>,
    input: &Array<'py>,
    target: &Array<'py>,
    weight: Option<&Array<'py>>,
    n: usize,
    c: usize,
    s: usize,
    ignore_index: i64,
    mean: bool,
    scale: f64,
    grad_output: Option<&Array<'py>>,
    value_out: Option<&Array<'py>>,
    grad_out: Option<&Array<'py>>,
    grad_zeroed: bool,
) -> PyResult<(f64, f64)> {
    let layout = Layout { n, c, s };
    let a = row_args(input, weight, grad_output, value_out, grad_out);
    with_float_type!(FloatDtype::of(py, input, "input")?, |T| {
        nll_typed::<T>(py, &a, target, layout, ignore_index, mean, scale, grad_zeroed)
    })
}

// ------------------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn multi_margin_typed<T: Float + Element>(
    py: Python<'_>,
    a: &RowArgs<'_, '_>,
    target: &Array<'_>,
    rows: usize,
    c: usize,
    p: u32,
    margin: f64,
    scale: f64,
) -> PyResult<f64> {
    let mut arrays = a.borrow::<T>()?;
    let t = readonly::<i64>(target, "target")?;
    let lens = RowLens { elements: rows * c, rows, weight: WeightLen::PerClass(c) };
    let Slices { x: xs, weight, grad_output, outputs } = Slices::new(arrays.slices(lens)?);
    check_len("target", t.len(), rows)?;
    let y = as_slice(&t, "target")?;
    // A negative index is a huge u64.
    if let Some(i) = crate::simd::first_where(y, #[inline(always)] |t: i64| t as u64 >= c as u64) {
        return Err(out_of_bounds(y[i], c, None));
    }
    Ok(detach_if_large(py, rows * c, || {
        multiclass::multi_margin(xs, rows, c, y, p, margin, weight, grad_output, scale, outputs)
    }))
}

/// PyTorch's multi_margin_loss on (rows, c) scores with int64 targets; returns Σ losses. The
/// gradient factor is `scale` (1/rows folded in for a mean) or `grad_output` per row.
#[pyfunction]
#[pyo3(signature = (input, target, rows, c, p, margin, weight, scale, grad_output, value_out, grad_out))]
#[allow(clippy::too_many_arguments)]
fn multi_margin_loss<'py>(
    py: Python<'py>,
    input: &Array<'py>,
    target: &Array<'py>,
    rows: usize,
    c: usize,
    p: u32,
    margin: f64,
    weight: Option<&Array<'py>>,
    scale: f64,
    grad_output: Option<&Array<'py>>,
    value_out: Option<&Array<'py>>,
    grad_out: Option<&Array<'py>>,
) -> PyResult<f64> {
    if p != 1 && p != 2 {
        return Err(PyValueError::new_err(format!("p: got {p}, expected 1 or 2")));
    }
    let a = row_args(input, weight, grad_output, value_out, grad_out);
    with_float_type!(FloatDtype::of(py, input, "input")?, |T| {
        multi_margin_typed::<T>(py, &a, target, rows, c, p, margin, scale)
    })
}

// ------------------------------------------------------------------------------------------------

fn multilabel_typed<T: Float + Element>(
    py: Python<'_>,
    a: &RowArgs<'_, '_>,
    target: &Array<'_>,
    rows: usize,
    c: usize,
    scale: f64,
) -> PyResult<f64> {
    let mut arrays = a.borrow::<T>()?;
    let t = readonly::<T>(target, "target")?;
    let lens = RowLens { elements: rows * c, rows, weight: WeightLen::PerClassOrElement(c) };
    let Slices { x: xs, weight, grad_output, outputs } = Slices::new(arrays.slices(lens)?);
    check_len("target", t.len(), rows * c)?;
    let ys = as_slice(&t, "target")?;
    Ok(detach_if_large(py, rows * c, || {
        multiclass::multilabel_soft_margin(xs, rows, c, ys, weight, grad_output, scale, outputs)
    }))
}

/// PyTorch's multilabel_soft_margin_loss on (rows, c) logits and targets; returns Σ losses.
#[pyfunction]
#[pyo3(signature = (input, target, rows, c, weight, scale, grad_output, value_out, grad_out))]
#[allow(clippy::too_many_arguments)]
fn multilabel_soft_margin_loss<'py>(
    py: Python<'py>,
    input: &Array<'py>,
    target: &Array<'py>,
    rows: usize,
    c: usize,
    weight: Option<&Array<'py>>,
    scale: f64,
    grad_output: Option<&Array<'py>>,
    value_out: Option<&Array<'py>>,
    grad_out: Option<&Array<'py>>,
) -> PyResult<f64> {
    let a = row_args(input, weight, grad_output, value_out, grad_out);
    with_float_type!(FloatDtype::of(py, input, "input")?, |T| multilabel_typed::<T>(py, &a, target, rows, c, scale))
}
