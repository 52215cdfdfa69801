"""Argument checking and conversion shared by the fast losses and `fastloss.reference`.

Every public entry point turns its arguments into C-contiguous, native-endian float32/float64
arrays here, or raises the exception API.md promises (ValueError, TypeError) with a message that
names the argument, what was given and what is allowed. Nothing here writes to a caller's array.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from . import _core

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
REDUCTIONS = ("none", "mean", "sum")


def reduction_arg(reduction, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"reduction: got {reduction!r}, expected one of {', '.join(map(repr, allowed))}")
    return reduction


def float_arg(value, name, *, minimum=None, exclusive=False):
    """A real-valued option (margin, delta, eps, ...) as a Python float, range-checked."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if minimum is not None and (value < minimum or (exclusive and value == minimum) or value != value):
        bound = f"> {minimum}" if exclusive else f">= {minimum}"
        raise ValueError(f"{name}: got {value!r}, expected a number {bound}")
    return value


def bool_arg(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def _numeric(value, name):
    """`value` as an ndarray with a real numeric (or bool) dtype."""
    arr = value if type(value) is np.ndarray else np.asarray(value)
    kind = arr.dtype.kind
    if kind not in "fiub" or arr.dtype.itemsize > 8 and kind == "f":
        raise TypeError(
            f"{name}: expected a real numeric array (float32/float64, or integers/bools to convert), "
            f"got dtype {arr.dtype}"
        )
    return arr


def float_arrays(named, float_names=None):
    """Converts `{name: array-like}` to C-contiguous native arrays of one computation dtype.

    The dtype is NumPy's promotion of the float arguments among `float_names` (default: all), Python
    numbers not taking part, float16 computing as float32; integer and bool arguments are converted to it, and float64 is
    used when no argument is a float. Returns (dtype, [arrays in order]).
    """
    values = list(named.values())
    dtype = getattr(values[0], "dtype", None)
    if (dtype is F32 or dtype is F64) and all(type(v) is np.ndarray and v.dtype is dtype for v in values):
        # Fast path: every argument already has the native computation dtype.
        return dtype, [v if _is_c_aligned(v) else _copy(v, dtype) for v in values]
    arrays = [_numeric(v, k) for k, v in named.items()]
    # Python numbers are "weak" as in NumPy (NEP 50) and PyTorch: a float var with float32 arrays stays float32.
    float_dtypes = [
        a.dtype for (k, v), a in zip(named.items(), arrays)
        if a.dtype.kind == "f" and (float_names is None or k in float_names) and type(v) not in (int, float, bool)
    ]
    dtype = np.result_type(*float_dtypes) if float_dtypes else F64
    dtype = F32 if dtype.itemsize < 4 else np.dtype(dtype.type)  # native byte order
    return dtype, [contiguous(a, dtype) for a in arrays]


def _is_c_aligned(arr):
    flags = arr.flags
    return flags.c_contiguous and flags.aligned


def contiguous(arr, dtype):
    """`arr` as a C-contiguous, aligned, native `dtype` array: itself when it already is."""
    if arr.dtype is dtype or arr.dtype == dtype:
        flags = arr.flags
        if flags.c_contiguous and flags.aligned:
            return arr
    return _copy(arr, dtype)


def _copy(arr, dtype):
    # np.array(copy=True) keeps 0-d arrays 0-d and always yields an aligned C-order buffer
    # (np.ascontiguousarray makes 0-d arrays 1-d and leaves misaligned contiguous arrays as they are).
    return np.array(arr, dtype=dtype, order="C", copy=True)


def same_shape(shape, arr, name, what="input"):
    if arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape} does not match the {what}'s shape {shape}")


def grad_output_arg(grad_output, value_shape, dtype, reduction):
    """Splits grad_output into (scalar factor, per-element array or None)."""
    if grad_output is None:
        return 1.0, None
    go = _numeric(grad_output, "grad_output")
    if go.ndim == 0 or go.size == 1 and reduction != "none":
        if reduction != "none" and go.ndim > 0:
            raise ValueError(f"grad_output: the loss is a scalar, got an array of shape {go.shape}")
        return float(go), None
    if reduction != "none":
        raise ValueError(f"grad_output: the loss is a scalar, got an array of shape {go.shape}")
    if go.shape != tuple(value_shape):
        raise ValueError(f"grad_output: shape {go.shape} does not match the loss's shape {tuple(value_shape)}")
    return 1.0, contiguous(go, dtype)


def finish_value(total, divisor, reduction, dtype, value_out):
    """The loss value of `reduction` from a kernel's run: `value_out` (the per-element losses) for
    'none', else `total` (Σ losses) or its mean over `divisor`, as a `dtype` scalar."""
    if reduction == "none":
        return value_out
    if reduction == "sum":
        return dtype.type(total)
    return dtype.type(total / divisor) if divisor else dtype.type(math.nan)


def empty(shape, dtype):
    """An uninitialised C-contiguous array for a result. Large ones (≥ 1 MiB) come from the compiled
    module's cache of freed buffers: fresh pages for tens of MB cost more than the loss kernels."""
    if math.prod(shape) * dtype.itemsize < _LARGE_BYTES:
        return np.empty(shape, dtype)
    return _core.empty(shape, dtype)


_LARGE_BYTES = 1 << 20


def out_arg(out, shape, dtype, name="out"):
    """Checks a caller's output buffer (or allocates one when `out` is None)."""
    if out is None:
        return empty(shape, dtype)
    if type(out) is not np.ndarray and not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype or not out.dtype.isnative:
        raise TypeError(f"{name}: dtype {out.dtype} does not match the gradient's dtype {dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: shape {out.shape} does not match the gradient's shape {tuple(shape)}")
    flags = out.flags
    if not (flags.c_contiguous and flags.aligned):
        raise ValueError(f"{name}: array must be C-contiguous and aligned")
    if not flags.writeable:
        raise ValueError(f"{name}: array is read-only")
    return out


def outs_arg(out, shapes, dtype):
    """`out` for several gradients: None or a tuple with one buffer per gradient."""
    if out is None:
        return [empty(s, dtype) for s in shapes]
    if not isinstance(out, (tuple, list)) or len(out) != len(shapes):
        raise TypeError(f"out: expected a tuple of {len(shapes)} arrays, got {type(out).__name__}")
    bufs = [out_arg(o, s, dtype, f"out[{i}]") for i, (o, s) in enumerate(zip(out, shapes))]
    for i in range(len(bufs)):
        for j in range(i):
            if np.may_share_memory(bufs[i], bufs[j]):
                raise ValueError(f"out[{i}] and out[{j}] overlap")
    return bufs


def sum_to_shape(g, shape):
    """`g`, the gradient of an input of `shape` broadcast to g's shape by NumPy's rules, summed in
    float64 over the axes the broadcast added (leading) or stretched (size 1 in `shape`) and
    rounded once to g's dtype. The summed axes are moved last and made contiguous first: NumPy sums
    a contiguous axis pairwise, but along an outer axis row after row, which in float64 lost about
    130–280 ulps over 10⁶ rows (pairwise: 1–3)."""
    assert len(shape) <= g.ndim, "broadcasting never removes axes"
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, (a, b) in enumerate(zip(shape, g.shape[lead:])) if a != b)
    if not axes:
        return g
    kept = tuple(n for i, n in enumerate(g.shape) if i not in axes)
    rows = np.ascontiguousarray(np.moveaxis(g, axes, range(g.ndim - len(axes), g.ndim)))
    rows = rows.reshape(kept + (math.prod(g.shape[i] for i in axes),))
    # An infinite or NaN sum is the result (as in torch), not a warning.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(np.sum(rows, axis=-1, dtype=np.float64)).astype(g.dtype).reshape(shape)


def unalias(inputs, outs):
    """Copies any input that shares memory with an output, so the kernel's reads are not
    disturbed by its writes."""
    outs = [o for o in outs if o is not None]
    if not outs:
        return inputs
    return [
        a.copy() if a is not None and any(np.may_share_memory(a, o) for o in outs) else a for a in inputs
    ]


def index_arg(value, name):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
