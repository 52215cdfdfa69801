//! Bindings for the optim kernels (`crate::optim`).
//!
//! `optim_step` takes a whole optimizer step (every parameter group, every array) in one call:
//! it borrows every array first — checking dtypes, sizes, layout, writability and that no written
//! array overlaps another — and only then releases the GIL once and runs the kernels. Any problem
//! found while borrowing is reported before a single element is written.

use numpy::{Element, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::float::Float;
use crate::optim::{Adagrad, Adam, Rule, RmsProp, Sgd, Update, apply};

/// Adds this family's functions to `_core`.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(optim_step, m)?)
}

/// The hyper-parameters of one group, in the order `fastloss.optim` passes them.
fn parse_rule(kind: &str, h: &[f64]) -> PyResult<Rule> {
    let want = match kind {
        "sgd" => 6,
        "adam" => 8,
        "rmsprop" => 7,
        "adagrad" => 5,
        _ => return Err(PyValueError::new_err(format!("unknown optimizer kind {kind:?}"))),
    };
    if h.len() != want {
        return Err(PyValueError::new_err(format!("{kind}: expected {want} hyper-parameters, got {}", h.len())));
    }
    let b = |x: f64| x != 0.0;
    Ok(match kind {
        "sgd" => Rule::Sgd(Sgd {
            lr: h[0],
            momentum: h[1],
            dampening: h[2],
            weight_decay: h[3],
            nesterov: b(h[4]),
            maximize: b(h[5]),
        }),
        "adam" => Rule::Adam(Adam {
            lr: h[0],
            beta1: h[1],
            beta2: h[2],
            eps: h[3],
            weight_decay: h[4],
            amsgrad: b(h[5]),
            maximize: b(h[6]),
            decoupled: b(h[7]),
        }),
        "rmsprop" => Rule::RmsProp(RmsProp {
            lr: h[0],
            alpha: h[1],
            eps: h[2],
            weight_decay: h[3],
            momentum: h[4],
            centered: b(h[5]),
            maximize: b(h[6]),
        }),
        _ => Rule::Adagrad(Adagrad { lr: h[0], lr_decay: h[1], weight_decay: h[2], eps: h[3], maximize: b(h[4]) }),
    })
}

/// The borrows of one parameter's arrays (held until the kernels have run).
struct Borrowed<'py, T: Element> {
    group: usize,
    step: f64,
    param: PyReadwriteArrayDyn<'py, T>,
    grad: PyReadonlyArrayDyn<'py, T>,
    state: [Option<PyReadwriteArrayDyn<'py, T>>; 3],
}

/// What the arrays of a step turned out to be.
enum Checked<'py> {
    Ready(Vec<Borrowed<'py, f32>>, Vec<Borrowed<'py, f64>>),
    /// (group, index) of a gradient that is not a C-contiguous aligned array of its parameter's
    /// dtype and shape (or is None): the Python layer converts or rejects it and calls again.
    SlowGrad(usize, usize),
}

fn borrow_rw<'py, T: Element>(a: &Bound<'py, PyUntypedArray>, what: &dyn Fn() -> String) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    let typed = a.cast::<PyArrayDyn<T>>().map_err(|_| PyTypeError::new_err(format!("{}: dtype {} differs from the parameter's", what(), a.dtype())))?;
    if !typed.is_c_contiguous() || !typed.is_aligned() {
        return Err(PyValueError::new_err(format!("{}: must be a C-contiguous, aligned array (it is updated in place)", what())));
    }
    typed.try_readwrite().map_err(|e| match e {
        numpy::BorrowError::NotWriteable => PyValueError::new_err(format!("{}: array is not writeable", what())),
        _ => PyValueError::new_err(format!("{}: shares memory with another parameter or optimizer state", what())),
    })
}

/// Borrows parameter `i` of group `gi` with its gradient and state, pushing onto `out`.
#[allow(clippy::too_many_arguments)]
fn borrow_one<'py, T: Element>(
    gi: usize,
    i: usize,
    step: f64,
    param: &Bound<'py, PyUntypedArray>,
    grad: &Bound<'py, PyAny>,
    states: &[Option<Bound<'py, PyList>>; 3],
    used: [bool; 3],
    out: &mut Vec<Borrowed<'py, T>>,
) -> PyResult<bool> {
    let pname = || format!("param_groups[{gi}]['params'][{i}]");
    let p = borrow_rw::<T>(param, &pname)?;
    // The gradient: anything but a C-contiguous aligned array of the same dtype and shape goes
    // back to the Python layer.
    let Ok(g) = grad.cast::<PyArrayDyn<T>>() else { return Ok(false) };
    if !g.is_c_contiguous() || !g.is_aligned() || g.shape() != param.shape() {
        return Ok(false);
    }
    let g = g.try_readonly().map_err(|_| {
        PyValueError::new_err(format!(
            "gradient of {}: shares memory with a parameter or optimizer state; pass a copy",
            pname()
        ))
    })?;
    let mut state: [Option<PyReadwriteArrayDyn<'py, T>>; 3] = [None, None, None];
    for k in 0..3 {
        if !used[k] {
            continue;
        }
        let what = || format!("optimizer state slot {k} of {}", pname());
        let list = states[k].as_ref().ok_or_else(|| PyValueError::new_err(format!("{}: missing", what())))?;
        let item = list.get_item(i).map_err(|_| PyValueError::new_err(format!("{}: missing", what())))?;
        let arr = item.cast::<PyUntypedArray>().map_err(|_| PyTypeError::new_err(format!("{}: expected an array", what())))?;
        if arr.len() != param.len() {
            return Err(PyValueError::new_err(format!("{}: {} elements, the parameter has {}", what(), arr.len(), param.len())));
        }
        state[k] = Some(borrow_rw::<T>(arr, &what)?);
    }
    out.push(Borrowed { group: gi, step, param: p, grad: g, state });
    Ok(true)
}

fn check_all<'py>(py: Python<'py>, groups: &[(Rule, GroupArgs<'py>)]) -> PyResult<Checked<'py>> {
    let (mut f32s, mut f64s) = (Vec::new(), Vec::new());
    for (gi, (rule, g)) in groups.iter().enumerate() {
        let n = g.params.len();
        if g.grads.len() != n || g.steps.len() != n {
            return Err(PyValueError::new_err(format!(
                "group {gi}: {n} params, {} grads, {} steps",
                g.grads.len(),
                g.steps.len()
            )));
        }
        let used = rule.slots();
        for k in 0..3 {
            if let (true, Some(list)) = (used[k], &g.states[k]) {
                if list.len() != n {
                    return Err(PyValueError::new_err(format!("group {gi}: state slot {k} has {} arrays for {n} params", list.len())));
                }
            }
        }
        for i in 0..n {
            let param = g.params.get_item(i)?;
            let param = param.cast::<PyUntypedArray>().map_err(|_| {
                PyTypeError::new_err(format!("param_groups[{gi}]['params'][{i}]: expected a NumPy array, got {}", param.get_type().name().map(|s| s.to_string()).unwrap_or_default()))
            })?;
            let grad = g.grads.get_item(i)?;
            let ok = if super::is_dtype::<f32>(py, param) {
                borrow_one::<f32>(gi, i, g.steps[i], param, &grad, &g.states, used, &mut f32s)?
            } else if super::is_dtype::<f64>(py, param) {
                borrow_one::<f64>(gi, i, g.steps[i], param, &grad, &g.states, used, &mut f64s)?
            } else {
                return Err(PyTypeError::new_err(format!(
                    "param_groups[{gi}]['params'][{i}]: expected a native float32 or float64 array, got dtype {}",
                    param.dtype()
                )));
            };
            if !ok {
                return Ok(Checked::SlowGrad(gi, i));
            }
        }
    }
    Ok(Checked::Ready(f32s, f64s))
}

struct GroupArgs<'py> {
    params: Bound<'py, PyList>,
    grads: Bound<'py, PyList>,
    states: [Option<Bound<'py, PyList>>; 3],
    steps: Vec<f64>,
}

fn updates<'a, T: Float + Element>(rules: &'a [Rule], borrowed: &'a mut [Borrowed<'_, T>]) -> PyResult<Vec<Update<'a, T>>> {
    let mut out = Vec::with_capacity(borrowed.len());
    for b in borrowed.iter_mut() {
        let [s0, s1, s2] = &mut b.state;
        let slice = |s: &'a mut Option<PyReadwriteArrayDyn<'_, T>>| -> PyResult<&'a mut [T]> {
            match s {
                Some(a) => a.as_slice_mut().map_err(|e| PyValueError::new_err(format!("optimizer state: {e}"))),
                None => Ok(Default::default()),
            }
        };
        let state = [slice(s0)?, slice(s1)?, slice(s2)?];
        out.push(Update {
            rule: &rules[b.group],
            step: b.step,
            param: b.param.as_slice_mut().map_err(|e| PyValueError::new_err(format!("parameter: {e}")))?,
            grad: b.grad.as_slice().map_err(|e| PyValueError::new_err(format!("gradient: {e}")))?,
            state,
        });
    }
    Ok(out)
}

/// One optimizer step. `groups` is a list of tuples `(hyper, params, grads, states, steps)`, one per
/// parameter group: `hyper` the group's hyper-parameters as floats (order: see `parse_rule`),
/// `params` / `grads` lists of arrays, `states` three lists of state arrays parallel to `params`
/// (None for a slot the rule does not use), `steps` the per-parameter step number (after the
/// increment). Returns (-1, -1) when the step ran, or (group, index) of the first gradient that
/// must be converted first (nothing written then). Other problems raise before anything is written.
#[pyfunction]
fn optim_step<'py>(py: Python<'py>, kind: &str, groups: &Bound<'py, PyList>) -> PyResult<(isize, isize)> {
    let mut parsed = Vec::with_capacity(groups.len());
    for (gi, item) in groups.iter().enumerate() {
        let t = item.cast::<PyTuple>().map_err(|_| PyTypeError::new_err(format!("group {gi}: expected a tuple")))?;
        if t.len() != 5 {
            return Err(PyValueError::new_err(format!("group {gi}: expected 5 items, got {}", t.len())));
        }
        let hyper: Vec<f64> = t.get_item(0)?.extract()?;
        let rule = parse_rule(kind, &hyper)?;
        let list = |k: usize| -> PyResult<Bound<'py, PyList>> {
            t.get_item(k)?.cast_into::<PyList>().map_err(|_| PyTypeError::new_err(format!("group {gi}: item {k} must be a list")))
        };
        let st = t.get_item(3)?;
        let st = st.cast::<PyList>().map_err(|_| PyTypeError::new_err(format!("group {gi}: states must be a list")))?;
        if st.len() != 3 {
            return Err(PyValueError::new_err(format!("group {gi}: expected 3 state slots, got {}", st.len())));
        }
        let mut states: [Option<Bound<'py, PyList>>; 3] = [None, None, None];
        for (k, s) in states.iter_mut().enumerate() {
            let v = st.get_item(k)?;
            if !v.is_none() {
                *s = Some(v.cast_into::<PyList>().map_err(|_| PyTypeError::new_err(format!("group {gi}: state slot {k} must be a list or None")))?);
            }
        }
        let args = GroupArgs { params: list(1)?, grads: list(2)?, states, steps: t.get_item(4)?.extract()? };
        parsed.push((rule, args));
    }
    let (mut f32s, mut f64s) = match check_all(py, &parsed)? {
        Checked::Ready(a, b) => (a, b),
        Checked::SlowGrad(g, i) => return Ok((g as isize, i as isize)),
    };
    let rules: Vec<Rule> = parsed.iter().map(|(r, _)| *r).collect();
    let total: usize = f32s.iter().map(|b| b.param.len()).sum::<usize>() + f64s.iter().map(|b| b.param.len()).sum::<usize>();
    let u32s = updates(&rules, &mut f32s)?;
    let u64s = updates(&rules, &mut f64s)?;
    let run = move || -> Result<(), String> {
        // Lengths are checked for both dtypes before either writes.
        for (i, u) in u32s.iter().enumerate() {
            u.check().map_err(|e| format!("float32 array {i}: {e}"))?;
        }
        for (i, u) in u64s.iter().enumerate() {
            u.check().map_err(|e| format!("float64 array {i}: {e}"))?;
        }
        apply(u32s)?;
        apply(u64s)
    };
    let result = if total < 4096 { run() } else { py.detach(run) };
    result.map_err(PyValueError::new_err)?;
    Ok((-1, -1))
}
