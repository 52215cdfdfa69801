//! Bindings for the optim kernels (`crate::optim`).
//!
//! `optim_step` takes a whole optimizer step (every parameter group, every array) in one call:
//! it checks every array first — dtypes, sizes, layout, writability, and that no written array
//! overlaps another or a gradient — and only then releases the GIL once and runs the kernels. Any
//! problem is reported before a single element is written.
//!
//! The arrays are checked by hand and accessed through raw data pointers rather than through
//! rust-numpy's borrow tracking: a step over many small arrays would otherwise spend about 0.3 µs
//! per array in that bookkeeping (4 arrays per parameter for Adam), more than the update itself.
//! What the borrow tracking guarantees is established explicitly in `check_all` (the overlap check
//! over sorted address ranges) and by holding a reference to every array while the kernels run.

use std::os::raw::c_int;

use numpy::npyffi::{_PyArray_GET_ITEM_DATA, NPY_ARRAY_WRITEABLE, NPY_TYPES};
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
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

#[derive(Copy, Clone, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
}

/// float32 or float64 in native byte order, else None.
fn float_dtype(a: &Bound<'_, PyUntypedArray>) -> Option<Dtype> {
    let d = a.dtype();
    if d.is_native_byteorder() == Some(false) {
        return None;
    }
    match d.num() {
        n if n == NPY_TYPES::NPY_FLOAT as c_int => Some(Dtype::F32),
        n if n == NPY_TYPES::NPY_DOUBLE as c_int => Some(Dtype::F64),
        _ => None,
    }
}

fn data_ptr(a: &Bound<'_, PyUntypedArray>) -> *mut u8 {
    // SAFETY: `a` is a live ndarray; reading its data field is what every NumPy accessor does.
    unsafe { (*_PyArray_GET_ITEM_DATA(a.as_array_ptr())).data as *mut u8 }
}

fn writeable(a: &Bound<'_, PyUntypedArray>) -> bool {
    // SAFETY: as above, a flags read.
    unsafe { (*_PyArray_GET_ITEM_DATA(a.as_array_ptr())).flags & NPY_ARRAY_WRITEABLE != 0 }
}

/// One parameter with its gradient and state, checked: raw data pointers of `len` elements of `dtype`.
struct Item {
    dtype: Dtype,
    group: usize,
    step: f64,
    len: usize,
    param: *mut u8,
    grad: *const u8,
    state: [*mut u8; 3],
}

/// The memory an array covers, for the overlap check.
struct Span {
    start: usize,
    end: usize,
    /// (group, index, what): what = 0 parameter, 1 gradient, 2.. state slot + 2
    who: (usize, usize, usize),
}

fn describe(who: (usize, usize, usize)) -> String {
    let (gi, i, what) = who;
    let p = format!("param_groups[{gi}]['params'][{i}]");
    match what {
        0 => p,
        1 => format!("gradient of {p}"),
        k => format!("optimizer state slot {} of {p}", k - 2),
    }
}

/// A parameter or state array that is written in place: the right dtype (known for a parameter), C-contiguous, aligned, writeable.
fn check_written(a: &Bound<'_, PyUntypedArray>, dtype: Dtype, who: (usize, usize, usize)) -> PyResult<*mut u8> {
    if who.2 != 0 && float_dtype(a) != Some(dtype) {
        return Err(PyTypeError::new_err(format!("{}: dtype {} differs from the parameter's", describe(who), a.dtype())));
    }
    if !a.is_c_contiguous() || !a.is_aligned() {
        return Err(PyValueError::new_err(format!(
            "{}: must be a C-contiguous, aligned array (it is updated in place)",
            describe(who)
        )));
    }
    if !writeable(a) {
        return Err(PyValueError::new_err(format!("{}: array is not writeable", describe(who))));
    }
    Ok(data_ptr(a))
}

/// What the arrays of a step turned out to be.
enum Checked {
    Ready(Vec<Item>),
    /// (group, index) of a gradient that is not a C-contiguous aligned array of its parameter's
    /// dtype and shape (or is None): the Python layer converts or rejects it and calls again.
    SlowGrad(usize, usize),
}

/// Checks every array of the step; `keep` receives a reference to each, so that none can be freed
/// (or resized: NumPy refuses to resize a referenced array) while the kernels run without the GIL.
fn check_all<'py>(groups: &[(Rule, GroupArgs<'py>)], keep: &mut Vec<Bound<'py, PyAny>>) -> PyResult<Checked> {
    let mut items = Vec::new();
    let (mut written, mut read) = (Vec::new(), Vec::new());
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
            if used[k] {
                match &g.states[k] {
                    Some(list) if list.len() == n => {}
                    _ => return Err(PyValueError::new_err(format!("group {gi}: state slot {k} must hold {n} arrays"))),
                }
            }
        }
        for i in 0..n {
            let param = g.params.get_item(i)?;
            let param = param.cast::<PyUntypedArray>().map_err(|_| {
                PyTypeError::new_err(format!("{}: expected a NumPy array", describe((gi, i, 0))))
            })?;
            let Some(dtype) = float_dtype(param) else {
                return Err(PyTypeError::new_err(format!(
                    "{}: expected a native float32 or float64 array, got dtype {}",
                    describe((gi, i, 0)),
                    param.dtype()
                )));
            };
            let len = param.len();
            let p = check_written(param, dtype, (gi, i, 0))?;
            // The gradient: anything but a C-contiguous aligned array of the same dtype and shape goes
            // back to the Python layer.
            let grad = g.grads.get_item(i)?;
            let Ok(grad) = grad.cast::<PyUntypedArray>() else { return Ok(Checked::SlowGrad(gi, i)) };
            if float_dtype(grad) != Some(dtype) || !grad.is_c_contiguous() || !grad.is_aligned() || grad.shape() != param.shape() {
                return Ok(Checked::SlowGrad(gi, i));
            }
            let gp = data_ptr(grad);
            let size = len * if dtype == Dtype::F32 { 4 } else { 8 };
            let mut state = [std::ptr::null_mut(); 3];
            for k in 0..3 {
                if !used[k] {
                    continue;
                }
                let who = (gi, i, k + 2);
                let item = g.states[k].as_ref().map(|l| l.get_item(i)).transpose()?;
                let item = item.ok_or_else(|| PyValueError::new_err(format!("{}: missing", describe(who))))?;
                let arr = item.cast::<PyUntypedArray>().map_err(|_| PyTypeError::new_err(format!("{}: expected an array", describe(who))))?;
                if arr.len() != len {
                    return Err(PyValueError::new_err(format!("{}: {} elements, the parameter has {len}", describe(who), arr.len())));
                }
                state[k] = check_written(arr, dtype, who)?;
                keep.push(item.clone());
                if size > 0 {
                    written.push(Span { start: state[k] as usize, end: state[k] as usize + size, who });
                }
            }
            if size > 0 {
                written.push(Span { start: p as usize, end: p as usize + size, who: (gi, i, 0) });
                read.push(Span { start: gp as usize, end: gp as usize + size, who: (gi, i, 1) });
            }
            items.push(Item { dtype, group: gi, step: g.steps[i], len, param: p, grad: gp, state });
            keep.push(param.clone().into_any());
            keep.push(grad.clone().into_any());
        }
    }
    // Written arrays must not overlap each other or a gradient (a kernel reads and writes each
    // element once, so any overlap would make the result depend on the order of the work).
    written.sort_unstable_by_key(|s| (s.start, s.who));
    for w in written.windows(2) {
        if w[1].start < w[0].end {
            let later = if w[1].who > w[0].who { w[1].who } else { w[0].who };
            return Err(PyValueError::new_err(format!(
                "{}: shares memory with another parameter or optimizer state",
                describe(later)
            )));
        }
    }
    for r in &read {
        // `written` is sorted and disjoint, so its ends are sorted too.
        let j = written.partition_point(|w| w.end <= r.start);
        if j < written.len() && written[j].start < r.end {
            return Err(PyValueError::new_err(format!(
                "{}: shares memory with a parameter or optimizer state; pass a copy",
                describe(r.who)
            )));
        }
    }
    Ok(Checked::Ready(items))
}

struct GroupArgs<'py> {
    params: Bound<'py, PyList>,
    grads: Bound<'py, PyList>,
    states: [Option<Bound<'py, PyList>>; 3],
    steps: Vec<f64>,
}

/// The kernel view of the checked items of one dtype.
///
/// # Safety
/// Every pointer in `items` must point to `len` live, aligned elements of `T` (checked by
/// `check_all`), the written ones disjoint from each other and from every gradient, and the arrays
/// must stay alive and unresized while the slices are used (the caller holds a reference to each,
/// see `check_all`'s `keep`; NumPy refuses to resize an array that others reference).
unsafe fn updates<'a, T: Float>(rules: &'a [Rule], items: &[Item], dtype: Dtype) -> Vec<Update<'a, T>> {
    let mut out = Vec::new();
    for it in items.iter().filter(|it| it.dtype == dtype && it.len > 0) {
        let n = it.len;
        // SAFETY: see the function's contract.
        let slice = |p: *mut u8| -> &'a mut [T] {
            if p.is_null() { Default::default() } else { unsafe { std::slice::from_raw_parts_mut(p as *mut T, n) } }
        };
        out.push(Update {
            rule: &rules[it.group],
            step: it.step,
            param: slice(it.param),
            grad: unsafe { std::slice::from_raw_parts(it.grad as *const T, n) },
            state: [slice(it.state[0]), slice(it.state[1]), slice(it.state[2])],
        });
    }
    out
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
    let mut keep = Vec::new();
    let items = match check_all(&parsed, &mut keep)? {
        Checked::Ready(items) => items,
        Checked::SlowGrad(g, i) => return Ok((g as isize, i as isize)),
    };
    let rules: Vec<Rule> = parsed.iter().map(|(r, _)| *r).collect();
    let total: usize = items.iter().map(|it| it.len).sum();
    // SAFETY: `check_all` verified every pointer (dtype, size, alignment, writability, no overlap);
    // `keep` holds a reference to every array until the kernels have returned.
    let (u32s, u64s) = unsafe { (updates::<f32>(&rules, &items, Dtype::F32), updates::<f64>(&rules, &items, Dtype::F64)) };
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
    drop(keep);
    result.map_err(PyValueError::new_err)?;
    Ok((-1, -1))
}
