//! Bindings for the embedding kernels (`crate::embedding`).
//!
//! The Python layer (`fastloss._embedding`) validates shapes, dtypes and targets and passes
//! C-contiguous arrays of one float dtype; these functions re-check sizes (a wrong call raises,
//! never panics), borrow slices, release the GIL for large inputs and run a kernel.

use numpy::{Element, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{
    Array, ElementwiseArgs, ElementwiseNames, FloatDtype, as_slice, as_slice_mut, check_len, detach_if_large,
    readonly, ro, rw, with_float_type,
};
use crate::embedding::{self, GradFactor, HingeEmbedding, MarginRanking, PNorm, RowOutputs, Triplet};
use crate::float::Float;
use crate::pointwise::evaluate;

/// Which row kernel to run, with its options.
#[derive(Copy, Clone)]
enum RowLoss {
    Triplet(Triplet),
    Contrastive { margin: f64, eps: f64 },
    Cosine { margin: f64 },
}

impl RowLoss {
    fn ngrads(self) -> usize {
        match self {
            RowLoss::Triplet(_) => 3,
            _ => 2,
        }
    }
}

struct RowArgs<'a, 'py> {
    inputs: Vec<&'a Array<'py>>,
    target: Option<&'a Array<'py>>,
    grad_output: Option<&'a Array<'py>>,
    value_out: Option<&'a Array<'py>>,
    grads_out: Option<Vec<&'a Array<'py>>>,
}

fn rows_typed<'py, T: Float + Element>(
    py: Python<'py>,
    loss: RowLoss,
    a: RowArgs<'_, 'py>,
    nrows: usize,
    d: usize,
    scale: f64,
    sum: bool,
) -> PyResult<f64> {
    let names = ["input1", "input2", "input3"];
    let inputs: Vec<PyReadonlyArrayDyn<'py, T>> =
        a.inputs.iter().zip(names).map(|(x, n)| readonly::<T>(x, n)).collect::<PyResult<_>>()?;
    let target = ro::<T>(a.target, "target")?;
    let go = ro::<T>(a.grad_output, "grad_output")?;
    let mut vo = rw::<T>(a.value_out, "value out")?;
    let mut gos: Vec<PyReadwriteArrayDyn<'py, T>> = match &a.grads_out {
        Some(gs) => gs.iter().map(|g| super::readwrite::<T>(g, "out")).collect::<PyResult<_>>()?,
        None => Vec::new(),
    };
    let total = nrows.checked_mul(d).ok_or_else(|| PyValueError::new_err("nrows·d overflows"))?;
    for (x, n) in inputs.iter().zip(names) {
        check_len(n, x.len(), total)?;
    }
    if let Some(t) = &target {
        check_len("target", t.len(), nrows)?;
    }
    if let Some(g) = &go {
        check_len("grad_output", g.len(), nrows)?;
    }
    if let Some(v) = &vo {
        check_len("value out", v.len(), nrows)?;
    }
    if !gos.is_empty() && gos.len() != loss.ngrads() {
        return Err(PyValueError::new_err(format!("out: expected {} gradient buffers", loss.ngrads())));
    }
    for g in &gos {
        check_len("out", g.len(), total)?;
    }
    let xs: Vec<&[T]> = inputs.iter().zip(names).map(|(x, n)| as_slice(x, n)).collect::<PyResult<_>>()?;
    let need_inputs = if matches!(loss, RowLoss::Triplet(_)) { 3 } else { 2 };
    if xs.len() != need_inputs {
        return Err(PyValueError::new_err(format!("expected {need_inputs} input arrays, got {}", xs.len())));
    }
    let t = target.as_ref().map(|t| as_slice(t, "target")).transpose()?;
    if !matches!(loss, RowLoss::Triplet(_)) && t.is_none() {
        return Err(PyValueError::new_err("target: required"));
    }
    let factor = GradFactor { grad_output: go.as_ref().map(|g| as_slice(g, "grad_output")).transpose()?, scale: T::from_f64(scale) };
    let value = vo.as_mut().map(|v| as_slice_mut(v, "value out")).transpose()?;
    let grads: Option<Vec<&mut [T]>> = if gos.is_empty() {
        None
    } else {
        Some(gos.iter_mut().map(|g| as_slice_mut(g, "out")).collect::<PyResult<_>>()?)
    };
    let out = RowOutputs { value, grads };
    let run = move || match loss {
        RowLoss::Triplet(opts) => embedding::triplet(xs[0], xs[1], xs[2], nrows, d, opts, factor, out, sum),
        RowLoss::Contrastive { margin, eps } => {
            embedding::contrastive(xs[0], xs[1], t.unwrap(), nrows, d, margin, eps, factor, out, sum)
        }
        RowLoss::Cosine { margin } => embedding::cosine_embedding(xs[0], xs[1], t.unwrap(), nrows, d, margin, factor, out, sum),
    };
    Ok(detach_if_large(py, total, run))
}

#[allow(clippy::too_many_arguments)]
fn rows_dispatch<'py>(
    py: Python<'py>,
    loss: RowLoss,
    args: RowArgs<'_, 'py>,
    nrows: usize,
    d: usize,
    scale: f64,
    sum: bool,
) -> PyResult<f64> {
    let first = args.inputs[0];
    with_float_type!(FloatDtype::of(py, first, "input")?, |T| rows_typed::<T>(py, loss, args, nrows, d, scale, sum))
}

/// Triplet margin loss over `nrows` rows of length `d`; returns the sum of row losses when `sum`.
#[pyfunction]
#[pyo3(signature = (anchor, positive, negative, nrows, d, margin, p, eps, swap, grad_output, scale, sum, value_out, grads_out))]
#[allow(clippy::too_many_arguments)]
fn triplet_margin<'py>(
    py: Python<'py>,
    anchor: &Array<'py>,
    positive: &Array<'py>,
    negative: &Array<'py>,
    nrows: usize,
    d: usize,
    margin: f64,
    p: f64,
    eps: f64,
    swap: bool,
    grad_output: Option<&Array<'py>>,
    scale: f64,
    sum: bool,
    value_out: Option<&Array<'py>>,
    grads_out: Option<Vec<Array<'py>>>,
) -> PyResult<f64> {
    if !(p > 0.0 && p.is_finite()) {
        return Err(PyValueError::new_err(format!("p: got {p}, expected a finite number > 0")));
    }
    let norm = if p == 2.0 {
        PNorm::Two
    } else if p == 1.0 {
        PNorm::One
    } else {
        PNorm::Real(p)
    };
    let gs = grads_out.as_ref().map(|v| v.iter().collect());
    let args = RowArgs { inputs: vec![anchor, positive, negative], target: None, grad_output, value_out, grads_out: gs };
    rows_dispatch(py, RowLoss::Triplet(Triplet { margin, norm, eps, swap }), args, nrows, d, scale, sum)
}

/// Contrastive loss (target 1 = dissimilar) over `nrows` rows of length `d`.
#[pyfunction]
#[pyo3(signature = (input1, input2, target, nrows, d, margin, eps, grad_output, scale, sum, value_out, grads_out))]
#[allow(clippy::too_many_arguments)]
fn contrastive<'py>(
    py: Python<'py>,
    input1: &Array<'py>,
    input2: &Array<'py>,
    target: &Array<'py>,
    nrows: usize,
    d: usize,
    margin: f64,
    eps: f64,
    grad_output: Option<&Array<'py>>,
    scale: f64,
    sum: bool,
    value_out: Option<&Array<'py>>,
    grads_out: Option<Vec<Array<'py>>>,
) -> PyResult<f64> {
    let gs = grads_out.as_ref().map(|v| v.iter().collect());
    let args = RowArgs { inputs: vec![input1, input2], target: Some(target), grad_output, value_out, grads_out: gs };
    rows_dispatch(py, RowLoss::Contrastive { margin, eps }, args, nrows, d, scale, sum)
}

/// Cosine embedding loss over `nrows` rows of length `d`.
#[pyfunction]
#[pyo3(signature = (input1, input2, target, nrows, d, margin, grad_output, scale, sum, value_out, grads_out))]
#[allow(clippy::too_many_arguments)]
fn cosine_embedding<'py>(
    py: Python<'py>,
    input1: &Array<'py>,
    input2: &Array<'py>,
    target: &Array<'py>,
    nrows: usize,
    d: usize,
    margin: f64,
    grad_output: Option<&Array<'py>>,
    scale: f64,
    sum: bool,
    value_out: Option<&Array<'py>>,
    grads_out: Option<Vec<Array<'py>>>,
) -> PyResult<f64> {
    let gs = grads_out.as_ref().map(|v| v.iter().collect());
    let args = RowArgs { inputs: vec![input1, input2], target: Some(target), grad_output, value_out, grads_out: gs };
    rows_dispatch(py, RowLoss::Cosine { margin }, args, nrows, d, scale, sum)
}

/// The element-wise losses of this family.
#[derive(Copy, Clone)]
enum Elementwise {
    MarginRanking,
    HingeEmbedding,
}

/// What the errors of `ranking_elementwise` call its arrays.
const ELEMENTWISE_NAMES: ElementwiseNames = ElementwiseNames { x: "input1", z: "input2", grad_weight: "grad_output" };

/// Margin ranking (`input2` given) or hinge embedding (`input2` None) loss, element-wise.
#[pyfunction]
#[pyo3(signature = (loss, input1, target, input2, margin, grad_output, scale, sum, value_out, grad_out, grad2_out))]
#[allow(clippy::too_many_arguments)]
fn ranking_elementwise<'py>(
    py: Python<'py>,
    loss: &str,
    input1: &Array<'py>,
    target: &Array<'py>,
    input2: Option<&Array<'py>>,
    margin: f64,
    grad_output: Option<&Array<'py>>,
    scale: f64,
    sum: bool,
    value_out: Option<&Array<'py>>,
    grad_out: Option<&Array<'py>>,
    grad2_out: Option<&Array<'py>>,
) -> PyResult<f64> {
    let loss = match loss {
        "margin_ranking" => Elementwise::MarginRanking,
        "hinge_embedding" => Elementwise::HingeEmbedding,
        _ => return Err(PyValueError::new_err(format!("unknown element-wise loss {loss:?}"))),
    };
    let needs_input2 = matches!(loss, Elementwise::MarginRanking);
    if needs_input2 != input2.is_some() || (grad_out.is_some() && needs_input2 != grad2_out.is_some()) {
        return Err(PyValueError::new_err("input2 and the second gradient go together"));
    }
    let args = ElementwiseArgs {
        names: ELEMENTWISE_NAMES,
        x: input1,
        y: target,
        z: input2,
        value_weight: None,
        grad_weight: grad_output,
        value_out,
        grad_out,
        grad2_out,
    };
    with_float_type!(FloatDtype::of(py, input1, "input1")?, |T| {
        let margin = T::from_f64(margin);
        args.run::<T>(py, scale, |inputs, outputs| match loss {
            Elementwise::MarginRanking => evaluate(MarginRanking { margin }, inputs, outputs, sum),
            Elementwise::HingeEmbedding => evaluate(HingeEmbedding { margin }, inputs, outputs, sum),
        })
    })
}

/// Adds this family's functions to `_core`.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(triplet_margin, m)?)?;
    m.add_function(wrap_pyfunction!(contrastive, m)?)?;
    m.add_function(wrap_pyfunction!(cosine_embedding, m)?)?;
    m.add_function(wrap_pyfunction!(ranking_elementwise, m)?)?;
    Ok(())
}
