//! Bindings for the embedding kernels (`crate::embedding`).
//!
//! The Python layer (`fastloss._embedding`) validates shapes, dtypes and targets and passes
//! C-contiguous arrays of one float dtype; these functions re-check sizes (a wrong call raises,
//! never panics), borrow slices, release the GIL for large inputs and run a kernel.

use numpy::{Element, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{
    Array, ElementwiseArgs, ElementwiseNames, FloatDtype, RowArgs, RowLens, WeightLen, as_slice, check_len,
    detach_if_large, ro, with_float_type,
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

/// The arrays of a row loss: the row-wise arrays (inputs named input1, input2, input3) and the
/// target, one element per row.
struct EmbeddingArgs<'a, 'py> {
    rows: RowArgs<'a, 'py>,
    target: Option<&'a Array<'py>>,
}

impl<'a, 'py> EmbeddingArgs<'a, 'py> {
    fn new(
        inputs: &[&'a Array<'py>],
        target: Option<&'a Array<'py>>,
        grad_output: Option<&'a Array<'py>>,
        value_out: Option<&'a Array<'py>>,
        grads_out: &'a Option<Vec<Array<'py>>>,
    ) -> Self {
        let inputs = ["input1", "input2", "input3"].into_iter().zip(inputs.iter().copied()).collect();
        let grads_out = grads_out.iter().flatten().collect();
        EmbeddingArgs { rows: RowArgs { inputs, weight: None, grad_output, value_out, grads_out }, target }
    }
}

fn rows_typed<T: Float + Element>(
    py: Python<'_>,
    loss: RowLoss,
    a: &EmbeddingArgs<'_, '_>,
    nrows: usize,
    d: usize,
    scale: f64,
    sum: bool,
) -> PyResult<f64> {
    let mut arrays = a.rows.borrow::<T>()?;
    let target = ro::<T>(a.target, "target")?;
    let total = nrows.checked_mul(d).ok_or_else(|| PyValueError::new_err("nrows·d overflows"))?;
    let s = arrays.slices(RowLens { elements: total, rows: nrows, weight: WeightLen::NotTaken })?;
    if let Some(t) = &target {
        check_len("target", t.len(), nrows)?;
    }
    let t = target.as_ref().map(|t| as_slice(t, "target")).transpose()?;
    let factor = GradFactor { grad_output: s.grad_output, scale: T::from_f64(scale) };
    let xs = s.inputs;
    let out = RowOutputs { value: s.value, grads: if s.grads.is_empty() { None } else { Some(s.grads) } };
    let run = move || match loss {
        RowLoss::Triplet(opts) => embedding::triplet(xs[0], xs[1], xs[2], nrows, d, opts, factor, out, sum),
        RowLoss::Contrastive { margin, eps } => {
            embedding::contrastive(xs[0], xs[1], t.unwrap(), nrows, d, margin, eps, factor, out, sum)
        }
        RowLoss::Cosine { margin } => {
            embedding::cosine_embedding(xs[0], xs[1], t.unwrap(), nrows, d, margin, factor, out, sum)
        }
    };
    Ok(detach_if_large(py, total, run))
}

/// Checks that a row loss has the arrays it needs, then runs it for the inputs' dtype.
fn rows_dispatch(
    py: Python<'_>,
    loss: RowLoss,
    args: EmbeddingArgs<'_, '_>,
    nrows: usize,
    d: usize,
    scale: f64,
    sum: bool,
) -> PyResult<f64> {
    let ngrads = args.rows.grads_out.len();
    if ngrads != 0 && ngrads != loss.ngrads() {
        return Err(PyValueError::new_err(format!("out: expected {} gradient buffers", loss.ngrads())));
    }
    if !matches!(loss, RowLoss::Triplet(_)) && args.target.is_none() {
        return Err(PyValueError::new_err("target: required"));
    }
    let (_, first) = args.rows.inputs[0];
    with_float_type!(FloatDtype::of(py, first, "input")?, |T| rows_typed::<T>(py, loss, &args, nrows, d, scale, sum))
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
    if !(p > 0.0) {
        return Err(PyValueError::new_err(format!("p: got {p}, expected a number > 0 (inf included)")));
    }
    let norm = if p == f64::INFINITY {
        PNorm::Inf
    } else if p == 2.0 {
        PNorm::Two
    } else if p == 1.0 {
        PNorm::One
    } else {
        PNorm::Real(p)
    };
    let args = EmbeddingArgs::new(&[anchor, positive, negative], None, grad_output, value_out, &grads_out);
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
    let args = EmbeddingArgs::new(&[input1, input2], Some(target), grad_output, value_out, &grads_out);
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
    let args = EmbeddingArgs::new(&[input1, input2], Some(target), grad_output, value_out, &grads_out);
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
