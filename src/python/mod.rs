//! The Python bindings: the only code that knows about Python.
//!
//! This file holds the shared argument helpers and the module; each family of kernels has its
//! bindings in a submodule with a `register` function that adds them to `_core`.
//!
//! The `fastloss` package validates and converts arguments before calling in, so these functions
//! receive C-contiguous arrays of one float dtype. They check that again (a wrong array gives a
//! Python exception, never undefined behaviour), borrow the data as slices, release the GIL and
//! run a kernel.

use numpy::{
    Element, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::classification::Classification;
use crate::float::Float;
use crate::pointwise::{Inputs, Outputs};
use crate::regression::Pointwise;

mod buffers;
mod classification;
mod embedding;
mod multiclass;
mod optim;

pub(crate) type Array<'py> = Bound<'py, PyUntypedArray>;

/// `a` as an array of `T`, checked to be C-contiguous; the errors name the argument `name`.
fn typed_c_contiguous<'a, 'py, T: Element>(a: &'a Array<'py>, name: &str) -> PyResult<&'a Bound<'py, PyArrayDyn<T>>> {
    let typed = a.cast::<PyArrayDyn<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a {} array, got {}", std::any::type_name::<T>(), a.dtype()))
    })?;
    if !typed.is_c_contiguous() {
        return Err(PyValueError::new_err(format!("{name}: array must be C-contiguous")));
    }
    Ok(typed)
}

pub(crate) fn readonly<'py, T: Element>(a: &Array<'py>, name: &str) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    typed_c_contiguous::<T>(a, name)?.try_readonly().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

fn readwrite<'py, T: Element>(a: &Array<'py>, name: &str) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    typed_c_contiguous::<T>(a, name)?.try_readwrite().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

pub(crate) fn ro<'py, T: Element>(a: Option<&Array<'py>>, name: &str) -> PyResult<Option<PyReadonlyArrayDyn<'py, T>>> {
    a.map(|a| readonly::<T>(a, name)).transpose()
}

fn rw<'py, T: Element>(a: Option<&Array<'py>>, name: &str) -> PyResult<Option<PyReadwriteArrayDyn<'py, T>>> {
    a.map(|a| readwrite::<T>(a, name)).transpose()
}

pub(crate) fn as_slice<'a, T: Element>(a: &'a PyReadonlyArrayDyn<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

fn as_slice_mut<'a, T: Element>(a: &'a mut PyReadwriteArrayDyn<'_, T>, name: &str) -> PyResult<&'a mut [T]> {
    a.as_slice_mut().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// [`as_slice`] of an optional argument.
fn as_slice_opt<'a, T: Element>(a: &'a Option<PyReadonlyArrayDyn<'_, T>>, name: &str) -> PyResult<Option<&'a [T]>> {
    a.as_ref().map(|a| as_slice(a, name)).transpose()
}

/// [`as_slice_mut`] of an optional argument.
fn as_slice_mut_opt<'a, T: Element>(
    a: &'a mut Option<PyReadwriteArrayDyn<'_, T>>,
    name: &str,
) -> PyResult<Option<&'a mut [T]>> {
    a.as_mut().map(|a| as_slice_mut(a, name)).transpose()
}

/// The error for an array argument `name` with `got` elements where the kernel needs `want`.
pub(crate) fn check_len(name: &str, got: usize, want: usize) -> PyResult<()> {
    if got != want {
        return Err(PyValueError::new_err(format!("{name}: has {got} elements, expected {want}")));
    }
    Ok(())
}

/// Below this many elements a kernel runs with the GIL held: releasing and re-taking it costs more
/// than the kernel.
const DETACH_MIN: usize = 4096;

/// Runs `kernel`, which works on `len` elements, with the GIL released when that pays.
pub(crate) fn detach_if_large<R: Send>(py: Python<'_>, len: usize, kernel: impl FnOnce() -> R + Send) -> R {
    if len < DETACH_MIN { kernel() } else { py.detach(kernel) }
}

// ------------------------------------------------------------------------------------------------
// The choice of kernel instance by dtype.

/// The float dtypes the kernels are instantiated for.
#[derive(Clone, Copy)]
pub(crate) enum FloatDtype {
    F32,
    F64,
}

impl FloatDtype {
    /// `descr` as a kernel dtype; None for any other dtype.
    fn from_descr(py: Python<'_>, descr: &Bound<'_, PyArrayDescr>) -> Option<FloatDtype> {
        if descr.is_equiv_to(&numpy::dtype::<f32>(py)) {
            Some(FloatDtype::F32)
        } else if descr.is_equiv_to(&numpy::dtype::<f64>(py)) {
            Some(FloatDtype::F64)
        } else {
            None
        }
    }

    /// The dtype `descr` of the argument `name`, or the TypeError every binding raises for a dtype
    /// that is not float32 or float64.
    fn of_descr_arg(py: Python<'_>, descr: &Bound<'_, PyArrayDescr>, name: &str) -> PyResult<FloatDtype> {
        Self::from_descr(py, descr)
            .ok_or_else(|| PyTypeError::new_err(format!("{name}: expected float32 or float64, got {descr}")))
    }

    /// The dtype of the array argument `name` (see [`FloatDtype::of_descr_arg`]).
    pub(crate) fn of(py: Python<'_>, a: &Array<'_>, name: &str) -> PyResult<FloatDtype> {
        Self::of_descr_arg(py, &a.dtype(), name)
    }
}

/// `with_float_type!(dtype, |T| expr)` evaluates `expr` with the type name `T` standing for `f32`
/// or `f64`, as the [`FloatDtype`] `dtype` says: one generic call, written once, instantiated for
/// both dtypes.
macro_rules! with_float_type {
    ($dtype:expr, |$t:ident| $body:expr) => {
        match $dtype {
            $crate::python::FloatDtype::F32 => {
                type $t = f32;
                $body
            }
            $crate::python::FloatDtype::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}
pub(crate) use with_float_type;

pub(crate) fn is_dtype<T: Element>(py: Python<'_>, a: &Array<'_>) -> bool {
    a.dtype().is_equiv_to(&numpy::dtype::<T>(py))
}

// ------------------------------------------------------------------------------------------------
// The arrays of an element-wise kernel call (`crate::pointwise::Inputs` and `Outputs`).

/// The names the errors of one family of element-wise bindings give the arrays whose role varies.
#[derive(Clone, Copy)]
pub(crate) struct ElementwiseNames {
    /// The input (`Inputs::x`).
    pub x: &'static str,
    /// The third operand (`Inputs::z`): var, pos_weight, input2.
    pub z: &'static str,
    /// The gradient weights (`Inputs::grad_weight`): grad_weight or grad_output.
    pub grad_weight: &'static str,
}

/// The arrays of one element-wise kernel call as the binding receives them; every one must have
/// the input's size.
pub(crate) struct ElementwiseArgs<'a, 'py> {
    pub names: ElementwiseNames,
    pub x: &'a Array<'py>,
    pub y: &'a Array<'py>,
    pub z: Option<&'a Array<'py>>,
    pub value_weight: Option<&'a Array<'py>>,
    pub grad_weight: Option<&'a Array<'py>>,
    pub value_out: Option<&'a Array<'py>>,
    pub grad_out: Option<&'a Array<'py>>,
    pub grad2_out: Option<&'a Array<'py>>,
}

impl<'py> ElementwiseArgs<'_, 'py> {
    /// Borrows the arrays as `T` (the inputs read-only, the outputs writable), checks that every
    /// one has the input's size and runs `kernel` on them, without the GIL when that pays.
    /// The Python layer checks a loss's domain before it calls, so the kernel's Err (an element
    /// outside it) only reaches a direct caller of `_core`.
    pub(crate) fn run<T: Float + Element>(
        &self,
        py: Python<'py>,
        grad_scale: f64,
        kernel: impl FnOnce(&Inputs<'_, T>, Outputs<'_, T>) -> Result<f64, usize> + Send,
    ) -> PyResult<f64> {
        let mut arrays = self.borrow::<T>()?;
        let (inputs, outputs) = arrays.kernel_args(grad_scale)?;
        detach_if_large(py, inputs.x.len(), || kernel(&inputs, outputs))
            .map_err(|i| PyValueError::new_err(format!("element {i} of the inputs lies outside the loss's domain")))
    }

    fn borrow<T: Element>(&self) -> PyResult<ElementwiseArrays<'py, T>> {
        let names = self.names;
        Ok(ElementwiseArrays {
            names,
            x: readonly(self.x, names.x)?,
            y: readonly(self.y, "target")?,
            z: ro(self.z, names.z)?,
            value_weight: ro(self.value_weight, "weight")?,
            grad_weight: ro(self.grad_weight, names.grad_weight)?,
            value_out: rw(self.value_out, "value out")?,
            grad_out: rw(self.grad_out, "out")?,
            grad2_out: rw(self.grad2_out, "out")?,
        })
    }
}

/// The arrays of one element-wise kernel call, borrowed as `T`.
struct ElementwiseArrays<'py, T: Element> {
    names: ElementwiseNames,
    x: PyReadonlyArrayDyn<'py, T>,
    y: PyReadonlyArrayDyn<'py, T>,
    z: Option<PyReadonlyArrayDyn<'py, T>>,
    value_weight: Option<PyReadonlyArrayDyn<'py, T>>,
    grad_weight: Option<PyReadonlyArrayDyn<'py, T>>,
    value_out: Option<PyReadwriteArrayDyn<'py, T>>,
    grad_out: Option<PyReadwriteArrayDyn<'py, T>>,
    grad2_out: Option<PyReadwriteArrayDyn<'py, T>>,
}

impl<T: Float + Element> ElementwiseArrays<'_, T> {
    /// Checks that every array has the input's size and hands out the kernel's arguments.
    fn kernel_args(&mut self, grad_scale: f64) -> PyResult<(Inputs<'_, T>, Outputs<'_, T>)> {
        let n = self.x.len();
        let read = [Some(&self.y), self.z.as_ref(), self.value_weight.as_ref(), self.grad_weight.as_ref()];
        let written = [self.value_out.as_ref(), self.grad_out.as_ref(), self.grad2_out.as_ref()];
        let read_lens = read.into_iter().flatten().map(|a| a.len());
        if read_lens.chain(written.into_iter().flatten().map(|a| a.len())).any(|len| len != n) {
            return Err(PyValueError::new_err("all arrays must have the input's size"));
        }
        let names = self.names;
        let inputs = Inputs {
            x: as_slice(&self.x, names.x)?,
            y: as_slice(&self.y, "target")?,
            z: as_slice_opt(&self.z, names.z)?,
            value_weight: as_slice_opt(&self.value_weight, "weight")?,
            grad_weight: as_slice_opt(&self.grad_weight, names.grad_weight)?,
            grad_scale: T::from_f64(grad_scale),
        };
        let outputs = Outputs {
            value: as_slice_mut_opt(&mut self.value_out, "value out")?,
            grad_x: as_slice_mut_opt(&mut self.grad_out, "out")?,
            grad_z: as_slice_mut_opt(&mut self.grad2_out, "out")?,
        };
        Ok((inputs, outputs))
    }
}

// ------------------------------------------------------------------------------------------------
// The arrays of a row-wise kernel call (the multiclass and embedding losses).

/// The float arrays of one row-wise kernel call as the binding receives them: the inputs with the
/// names their errors use, an optional weight, per-row grad_output and value out, and the gradient
/// buffers (one per input with a gradient, or none).
pub(crate) struct RowArgs<'a, 'py> {
    pub inputs: Vec<(&'static str, &'a Array<'py>)>,
    pub weight: Option<&'a Array<'py>>,
    pub grad_output: Option<&'a Array<'py>>,
    pub value_out: Option<&'a Array<'py>>,
    pub grads_out: Vec<&'a Array<'py>>,
}

/// How many elements a row-wise kernel's `weight` has.
#[derive(Clone, Copy)]
pub(crate) enum WeightLen {
    /// The loss takes no weight.
    NotTaken,
    /// One per class.
    PerClass(usize),
    /// One per class, or one per element of the input (multilabel_soft_margin_loss).
    PerClassOrElement(usize),
}

/// The element counts a row-wise kernel needs of its arrays.
#[derive(Clone, Copy)]
pub(crate) struct RowLens {
    /// Each input and each gradient buffer: one per element of the input.
    pub elements: usize,
    /// grad_output and value out: one per row (sample).
    pub rows: usize,
    pub weight: WeightLen,
}

impl<'py> RowArgs<'_, 'py> {
    /// Borrows the arrays as `T`: the inputs read-only, the outputs writable.
    pub(crate) fn borrow<T: Element>(&self) -> PyResult<RowArrays<'py, T>> {
        Ok(RowArrays {
            inputs: self.inputs.iter().map(|&(name, a)| Ok((name, readonly(a, name)?))).collect::<PyResult<_>>()?,
            weight: ro(self.weight, "weight")?,
            grad_output: ro(self.grad_output, "grad_output")?,
            value_out: rw(self.value_out, "value out")?,
            grads_out: self.grads_out.iter().map(|a| readwrite(a, "out")).collect::<PyResult<_>>()?,
        })
    }
}

/// The arrays of one row-wise kernel call, borrowed as `T`.
pub(crate) struct RowArrays<'py, T: Element> {
    inputs: Vec<(&'static str, PyReadonlyArrayDyn<'py, T>)>,
    weight: Option<PyReadonlyArrayDyn<'py, T>>,
    grad_output: Option<PyReadonlyArrayDyn<'py, T>>,
    value_out: Option<PyReadwriteArrayDyn<'py, T>>,
    grads_out: Vec<PyReadwriteArrayDyn<'py, T>>,
}

/// The slices of a [`RowArrays`], each of the length the kernel needs.
pub(crate) struct RowSlices<'a, T> {
    pub inputs: Vec<&'a [T]>,
    pub weight: Option<&'a [T]>,
    pub grad_output: Option<&'a [T]>,
    pub value: Option<&'a mut [T]>,
    pub grads: Vec<&'a mut [T]>,
}

impl<T: Element> RowArrays<'_, T> {
    /// Checks every array's element count against `lens` and hands out the slices.
    pub(crate) fn slices(&mut self, lens: RowLens) -> PyResult<RowSlices<'_, T>> {
        for (name, x) in &self.inputs {
            check_len(name, x.len(), lens.elements)?;
        }
        if let Some(w) = &self.weight {
            match lens.weight {
                WeightLen::NotTaken => return Err(PyValueError::new_err("weight: this loss takes no weight")),
                WeightLen::PerClass(c) => check_len("weight", w.len(), c)?,
                WeightLen::PerClassOrElement(c) if w.len() != c && w.len() != lens.elements => {
                    return Err(PyValueError::new_err(format!(
                        "weight: has {} elements, expected {c} (per class) or {} (per element)",
                        w.len(),
                        lens.elements
                    )));
                }
                WeightLen::PerClassOrElement(_) => {}
            }
        }
        if let Some(g) = &self.grad_output {
            check_len("grad_output", g.len(), lens.rows)?;
        }
        if let Some(v) = &self.value_out {
            check_len("value out", v.len(), lens.rows)?;
        }
        for g in &self.grads_out {
            check_len("out", g.len(), lens.elements)?;
        }
        Ok(RowSlices {
            inputs: self.inputs.iter().map(|(name, x)| as_slice(x, name)).collect::<PyResult<_>>()?,
            weight: as_slice_opt(&self.weight, "weight")?,
            grad_output: as_slice_opt(&self.grad_output, "grad_output")?,
            value: as_slice_mut_opt(&mut self.value_out, "value out")?,
            grads: self.grads_out.iter_mut().map(|g| as_slice_mut(g, "out")).collect::<PyResult<_>>()?,
        })
    }
}

fn parse_pointwise(name: &str, param: f64, full: bool) -> PyResult<Pointwise> {
    Ok(match name {
        "mse" => Pointwise::Mse,
        "l1" => Pointwise::L1,
        "smooth_l1" => Pointwise::SmoothL1 { beta: param },
        "huber" => Pointwise::Huber { delta: param },
        "log_cosh" => Pointwise::LogCosh,
        "squared_log_error" => Pointwise::SquaredLogError,
        "poisson_log_input" => Pointwise::PoissonLogInput { full },
        "poisson_rate_input" => Pointwise::PoissonRateInput { full, eps: param },
        "gaussian_nll" => Pointwise::GaussianNll { full, eps: param },
        _ => return Err(PyValueError::new_err(format!("unknown element-wise loss {name:?}"))),
    })
}

/// What the errors of `pointwise` call its arrays.
const POINTWISE_NAMES: ElementwiseNames = ElementwiseNames { x: "input", z: "var", grad_weight: "grad_weight" };

/// `value` as a NumPy scalar of type `T` (`np.float32(value)` without a trip through Python).
pub(crate) fn numpy_scalar<'py, T: Element>(py: Python<'py>, value: T) -> PyResult<Bound<'py, PyAny>> {
    let descr = numpy::dtype::<T>(py);
    let mut value = value;
    // SAFETY: PyArray_Scalar copies `size_of::<T>()` bytes from `value`, which `descr` describes;
    // it borrows `descr` and needs no base object for a plain number.
    unsafe {
        let ptr = numpy::PY_ARRAY_API.PyArray_Scalar(
            py,
            (&mut value as *mut T).cast(),
            descr.as_dtype_ptr(),
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)
    }
}

/// `mean` of an element-wise loss of same-shape, same-dtype, C-contiguous aligned arrays with
/// default options: the common call, without the Python argument handling. The arrays are (input,
/// target), or (input, target, var) for the Gaussian NLL, whose gradient is then the pair (in input,
/// in var). `None` when the arguments need that handling (conversion, broadcasting, errors).
fn pointwise_mean_typed<'py, T: Float + Element>(
    py: Python<'py>,
    loss: MeanLoss,
    arrays: &[Bound<'py, PyUntypedArray>],
    want_value: bool,
    want_grad: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let three = matches!(loss, MeanLoss::Regression(Pointwise::GaussianNll { .. }));
    if arrays.len() != if three { 3 } else { 2 } || (out.is_some() && !want_grad) {
        return Ok(None);
    }
    let shape = arrays[0].shape();
    let mut typed = Vec::with_capacity(arrays.len());
    for a in arrays {
        let Ok(t) = a.cast::<PyArrayDyn<T>>() else {
            return Ok(None);
        };
        if !(t.is_c_contiguous() && is_aligned(t)) || a.shape() != shape {
            return Ok(None);
        }
        typed.push(t);
    }
    let Ok(guards) = typed.iter().map(|t| t.try_readonly()).collect::<Result<Vec<_>, _>>() else {
        return Ok(None);
    };
    let slices = guards.iter().zip(["input", "target", "var"]).map(|(g, name)| as_slice(g, name)).collect::<PyResult<Vec<_>>>()?;
    let z = slices.get(2).copied();
    // Inputs the general path rejects with its own message (a negative variance, a BCE input or
    // target outside [0, 1]) make the kernel return Err, which hands the call to that path. The
    // kernel finds them block by block, so a caller's buffer is checked for first: it must not be
    // written at all then (a fresh gradient is simply dropped).
    let outside = |v: &[T]| crate::classification::first_outside_unit_interval(v).is_some();
    if out.is_some() && matches!(loss, MeanLoss::Classification(Classification::Bce)) && (outside(slices[0]) || outside(slices[1])) {
        return Ok(None);
    }
    if out.is_some() && three && crate::regression::first_negative_variance(slices[2]).is_some() {
        return Ok(None);
    }
    let n = slices[0].len();
    let new_grad = || buffers::empty::<T>(py, shape);
    let grads = match out {
        // Anything unusual about a caller's buffers (wrong type, shape, layout, an overlap) goes to
        // the general path, which names the problem.
        Some(out) if three => {
            let Ok(pair) = out.cast::<PyTuple>() else {
                return Ok(None);
            };
            let (Ok(a), Ok(b), 2) = (pair.get_item(0), pair.get_item(1), pair.len()) else {
                return Ok(None);
            };
            let Some(gx) = caller_buffer::<T>(&a, shape, &typed) else {
                return Ok(None);
            };
            let mut with_gx = typed.clone();
            with_gx.push(&gx);
            match caller_buffer::<T>(&b, shape, &with_gx) {
                Some(gz) => Some((gx, Some(gz))),
                None => return Ok(None),
            }
        }
        Some(out) => match caller_buffer::<T>(out, shape, &typed) {
            Some(g) => Some((g, None)),
            None => return Ok(None),
        },
        None if want_grad => Some((new_grad()?, if three { Some(new_grad()?) } else { None })),
        None => None,
    };
    let mut gx = grads.as_ref().map(|g| g.0.readwrite());
    let mut gz = grads.as_ref().and_then(|g| g.1.as_ref()).map(|g| g.readwrite());
    let inputs = Inputs {
        x: slices[0],
        y: slices[1],
        z,
        value_weight: None,
        grad_weight: None,
        grad_scale: T::from_f64(if n > 0 { 1.0 / n as f64 } else { f64::INFINITY }),
    };
    let outputs = Outputs {
        value: None,
        grad_x: gx.as_mut().map(|g| as_slice_mut(g, "out")).transpose()?,
        grad_z: gz.as_mut().map(|g| as_slice_mut(g, "out")).transpose()?,
    };
    let total = detach_if_large(py, n, || loss.evaluate(&inputs, outputs, want_value));
    drop((gx, gz));
    let Ok(total) = total else {
        return Ok(None);
    };
    let grad = match grads {
        Some((gx, Some(gz))) => Some((gx, gz).into_pyobject(py)?.into_any()),
        Some((gx, None)) => Some(gx.into_any()),
        None => None,
    };
    let value = || numpy_scalar(py, T::from_f64(if n > 0 { total / n as f64 } else { f64::NAN }));
    Ok(Some(match (want_value, grad) {
        (true, Some(g)) => (value()?, g).into_pyobject(py)?.into_any(),
        (true, None) => value()?,
        (false, Some(g)) => g,
        (false, None) => return Ok(None),
    }))
}

/// The element-wise losses the fast path (`pointwise_mean`) serves.
#[derive(Copy, Clone)]
enum MeanLoss {
    Regression(Pointwise),
    Classification(Classification),
}

impl MeanLoss {
    fn parse(name: &str, param: f64) -> PyResult<MeanLoss> {
        match parse_pointwise(name, param, false) {
            Ok(p) => Ok(MeanLoss::Regression(p)),
            Err(_) => Ok(MeanLoss::Classification(classification::parse(name, param, 0.0)?)),
        }
    }

    fn evaluate<T: Float>(self, inp: &Inputs<T>, out: Outputs<T>, sum: bool) -> Result<f64, usize> {
        match self {
            MeanLoss::Regression(p) => p.evaluate(inp, out, sum),
            MeanLoss::Classification(c) => c.evaluate(inp, out, sum),
        }
    }
}

/// A caller's `out=` the fast path can write into as it is: an exact ndarray of dtype `T` and
/// `shape`, C-contiguous, aligned, writeable and sharing no memory with `inputs`. Anything else
/// (including what must raise) is left to the general path.
fn caller_buffer<'py, T: Element>(
    out: &Bound<'py, PyAny>,
    shape: &[usize],
    inputs: &[&Bound<'py, PyArrayDyn<T>>],
) -> Option<Bound<'py, PyArrayDyn<T>>> {
    let o = out.cast::<PyArrayDyn<T>>().ok()?;
    if !(out.is_exact_instance_of::<PyUntypedArray>() && o.is_c_contiguous() && is_aligned(o) && o.shape() == shape) {
        return None;
    }
    drop(o.try_readwrite().ok()?); // writeable, and not borrowed elsewhere
    let span = |a: &Bound<'py, PyArrayDyn<T>>| {
        let start = a.data() as usize;
        start..start + a.len() * std::mem::size_of::<T>()
    };
    let mine = span(o);
    let overlaps = inputs.iter().map(|a| span(a)).any(|r| r.start < mine.end && mine.start < r.end);
    (!overlaps).then(|| o.clone())
}

/// A C-contiguous array is aligned when its data pointer is (its strides are multiples of the item size).
fn is_aligned<T: Element>(a: &Bound<'_, PyArrayDyn<T>>) -> bool {
    a.data() as usize % std::mem::align_of::<T>() == 0
}

#[pymodule]
mod _core {
    use super::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        classification::register(m)?;
        multiclass::register(m)?;
        embedding::register(m)?;
        optim::register(m)
    }

    /// Evaluates an element-wise loss: returns Σ ℓ·weight when `sum`, writes per-element losses
    /// to `value_out` and gradients (∂ℓ·grad_weight·grad_scale) to `grad_out` / `grad2_out`.
    #[pyfunction]
    #[pyo3(signature = (loss, input, target, var, weight, grad_weight, grad_scale, sum, value_out, grad_out, grad2_out, param=0.0, full=false))]
    #[allow(clippy::too_many_arguments)]
    fn pointwise<'py>(
        py: Python<'py>,
        loss: &str,
        input: &Array<'py>,
        target: &Array<'py>,
        var: Option<&Array<'py>>,
        weight: Option<&Array<'py>>,
        grad_weight: Option<&Array<'py>>,
        grad_scale: f64,
        sum: bool,
        value_out: Option<&Array<'py>>,
        grad_out: Option<&Array<'py>>,
        grad2_out: Option<&Array<'py>>,
        param: f64,
        full: bool,
    ) -> PyResult<f64> {
        let loss = parse_pointwise(loss, param, full)?;
        let args = ElementwiseArgs {
            names: POINTWISE_NAMES,
            x: input,
            y: target,
            z: var,
            value_weight: weight,
            grad_weight,
            value_out,
            grad_out,
            grad2_out,
        };
        with_float_type!(FloatDtype::of(py, input, "input")?, |T| {
            args.run::<T>(py, grad_scale, |inputs, outputs| loss.evaluate(inputs, outputs, sum))
        })
    }

    /// The mean of an element-wise loss with default options for `inputs = (input, target)` (or
    /// (input, target, var) for the Gaussian NLL) of one float dtype, shape and C-contiguous layout:
    /// the value (a NumPy scalar), the gradient (a pair of them for the Gaussian NLL), or both as a
    /// tuple. The gradient goes into `out` when given (two-input losses). `None` when the arguments
    /// need the general path.
    #[pyfunction]
    #[pyo3(signature = (loss, param, inputs, want_value, want_grad, out=None))]
    fn pointwise_mean<'py>(
        py: Python<'py>,
        loss: &str,
        param: f64,
        inputs: &Bound<'py, PyTuple>,
        want_value: bool,
        want_grad: bool,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut arrays = Vec::with_capacity(3);
        for item in inputs.iter().take(4) {
            let Ok(a) = item.cast_into::<PyUntypedArray>() else {
                return Ok(None);
            };
            if !a.is_exact_instance_of::<PyUntypedArray>() {
                return Ok(None); // subclasses (masked arrays, ...) take the general path
            }
            arrays.push(a);
        }
        let loss = MeanLoss::parse(loss, param)?;
        match arrays.first().and_then(|x| FloatDtype::from_descr(py, &x.dtype())) {
            Some(dtype) => {
                with_float_type!(dtype, |T| pointwise_mean_typed::<T>(py, loss, &arrays, want_value, want_grad, out))
            }
            None => Ok(None),
        }
    }

    /// An uninitialised C-contiguous array of `dtype` (float32 or float64); large ones come from
    /// fastloss's cache of freed gradient buffers.
    #[pyfunction]
    fn empty<'py>(py: Python<'py>, shape: Vec<usize>, dtype: &Bound<'py, numpy::PyArrayDescr>) -> PyResult<Bound<'py, PyAny>> {
        let dtype = FloatDtype::of_descr_arg(py, dtype, "dtype")?;
        with_float_type!(dtype, |T| Ok(buffers::empty::<T>(py, &shape)?.into_any()))
    }

    /// Sets the bytes of freed large gradient buffers kept for reuse (0: none); returns the old limit.
    #[pyfunction]
    fn set_buffer_cache_limit(limit: usize) -> usize {
        buffers::set_limit(limit)
    }

    /// Σ x in float64 with fastloss's deterministic blocked reduction.
    #[pyfunction]
    fn sum<'py>(py: Python<'py>, x: &Array<'py>) -> PyResult<f64> {
        with_float_type!(FloatDtype::of(py, x, "x")?, |T| {
            let a = readonly::<T>(x, "x")?;
            let s = as_slice(&a, "x")?;
            Ok(py.detach(|| crate::pointwise::sum(s)))
        })
    }

    /// The instruction set kernels run with: 'avx512', 'avx2', 'sse2', 'neon' or 'scalar'.
    #[pyfunction]
    fn simd_level() -> &'static str {
        crate::simd::level().name()
    }

    /// The best instruction set this CPU supports (before `FASTLOSS_SIMD`).
    #[pyfunction]
    fn simd_detected() -> &'static str {
        crate::simd::detected().name()
    }

    #[pyfunction]
    fn get_num_threads() -> usize {
        crate::threads::num_threads()
    }

    #[pyfunction]
    fn set_num_threads(n: usize) -> PyResult<()> {
        if n == 0 {
            return Err(PyValueError::new_err("set_num_threads: n must be at least 1, got 0"));
        }
        crate::threads::set_num_threads(n);
        Ok(())
    }
}
