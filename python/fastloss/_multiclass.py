"""The multiclass losses on the compiled row-wise kernels: cross_entropy, nll_loss, multi_margin_loss and
multilabel_soft_margin_loss, with PyTorch 2.13's semantics (shared/docs/semantics.md Q4–Q11, Q21).

The argument checking here (`*_args` functions) is shared with `fastloss.reference`, so both raise the
same exceptions. An input with a class axis is viewed as (n, c, s): the class axis is axis 1 of
(N, C, d1, ..., dK) (s = d1·…·dK), or axis 0 of an unbatched (C,) input; the kernels read the class
axis with stride s in place (no transposed copy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from ._args import (
    F32,
    F64,
    _numeric,
    contiguous,
    empty,
    finish_value,
    float_arg,
    float_arrays,
    grad_output_arg,
    index_arg,
    out_arg,
    reduction_arg,
    unalias,
)
from ._loss import losses

I64 = np.dtype(np.int64)


# --------------------------------------------------------------------------------------------------
# Argument checking (shared with fastloss.reference)
# --------------------------------------------------------------------------------------------------


def class_layout(shape):
    """(n, c, s) of an input of shape (C,), (N, C) or (N, C, d1, ...)."""
    if len(shape) == 0:
        raise ValueError("input: expected shape (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    if len(shape) == 1:
        return 1, shape[0], 1
    return shape[0], shape[1], math.prod(shape[2:])


def sample_shape(shape):
    """The shape of class-index targets and of reduction='none' results: the input's without axis 1."""
    return () if len(shape) == 1 else (shape[0], *shape[2:])


def out_of_bounds_message(t, c, ignore_index=None):
    ignore = "" if ignore_index is None else f", or ignore_index={ignore_index}"
    return f"target: class index {t} is out of bounds for {c} classes (expected 0 <= index < {c}{ignore})"


def class_indices(t, want_shape, what, c):
    """Integer class indices `t` (an ndarray) as C-contiguous int64, or the exception API.md promises."""
    if t.shape != tuple(want_shape):
        raise ValueError(f"target: shape {t.shape} does not match {what}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"target: class indices must be integers, got dtype {t.dtype}")
    if t.dtype == np.uint64 and t.size and int(t.max()) > np.iinfo(np.int64).max:
        raise IndexError(out_of_bounds_message(int(t.max()), c))  # would wrap to a negative int64
    return contiguous(t, I64)


def _class_weight(w, c):
    if w is not None and w.shape != (c,):
        raise ValueError(f"weight: shape {w.shape} does not match the number of classes ({c},)")
    return w


def _check_classes(c):
    if c == 0:
        raise ValueError("input: the class axis is empty (0 classes)")


@dataclass
class Rowwise:
    """Checked arguments of a loss with a class axis."""

    dtype: np.dtype
    x: np.ndarray
    target: np.ndarray      # int64 class indices, or probabilities of the input's dtype and shape
    weight: np.ndarray | None
    prob: bool
    layout: tuple           # (n, c, s)
    value_shape: tuple


def cross_entropy_args(input, target, weight, ignore_index, reduction, label_smoothing):
    reduction_arg(reduction)
    ignore_index = index_arg(ignore_index, "ignore_index")
    label_smoothing = float_arg(label_smoothing, "label_smoothing")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: got {label_smoothing!r}, expected a number in [0, 1]")
    x = _numeric(input, "input")
    t = _numeric(target, "target")
    layout = class_layout(x.shape)
    _check_classes(layout[1])
    named = {"input": x}
    if t.shape == x.shape:
        # Same shape as the input: class probabilities (PyTorch's rule).
        if ignore_index >= 0:
            raise ValueError(f"ignore_index: got {ignore_index}, but probability targets ignore nothing "
                             f"(use a negative value)")
        named["target"] = t
    if weight is not None:
        named["weight"] = weight
    dtype, arrays = float_arrays(named)
    prob = "target" in named
    x = arrays[0]
    w = _class_weight(arrays[-1] if weight is not None else None, layout[1])
    value_shape = sample_shape(x.shape)
    if prob:
        t = arrays[1]
    else:
        t = class_indices(t, value_shape, f"the input's shape {x.shape} (probabilities) or its samples "
                                          f"{value_shape} (class indices)", layout[1])
    return Rowwise(dtype, x, t, w, prob, layout, value_shape), ignore_index, label_smoothing


def nll_args(input, target, weight, ignore_index, reduction):
    reduction_arg(reduction)
    ignore_index = index_arg(ignore_index, "ignore_index")
    x = _numeric(input, "input")
    t = _numeric(target, "target")
    layout = class_layout(x.shape)
    _check_classes(layout[1])
    named = {"input": x} if weight is None else {"input": x, "weight": weight}
    dtype, arrays = float_arrays(named)
    x = arrays[0]
    w = _class_weight(arrays[1] if weight is not None else None, layout[1])
    value_shape = sample_shape(x.shape)
    t = class_indices(t, value_shape, f"the input's samples {value_shape} (class indices)", layout[1])
    return Rowwise(dtype, x, t, w, False, layout, value_shape), ignore_index


def multi_margin_args(input, target, p, margin, weight, reduction):
    reduction_arg(reduction)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"p: expected 1 or 2, got {type(p).__name__}")
    if p not in (1, 2):
        raise ValueError(f"p: got {p!r}, expected 1 or 2")
    margin = float_arg(margin, "margin")
    x = _numeric(input, "input")
    t = _numeric(target, "target")
    if x.ndim > 2 or (x.ndim >= 1 and x.shape[-1] == 0):
        raise ValueError(f"input: expected shape (C,) or (N, C) with C >= 1, got {x.shape}")
    rows = x.shape[0] if x.ndim == 2 else 1
    c = x.shape[-1] if x.ndim >= 1 else 1
    named = {"input": x} if weight is None else {"input": x, "weight": weight}
    dtype, arrays = float_arrays(named)
    x = arrays[0]
    w = _class_weight(arrays[1] if weight is not None else None, c)
    # PyTorch: a target of at most one dim with one index per row; 'none' gives (rows,) unless the
    # target is 0-d.
    if t.ndim > 1 or t.size != rows:
        raise ValueError(f"target: shape {t.shape} does not match the input's {rows} row(s) (expected ({rows},)"
                         + (" or ()" if rows == 1 else "") + ")")
    t = class_indices(t, t.shape, "", c)
    value_shape = (rows,) if t.ndim > 0 else ()
    return Rowwise(dtype, x, t, w, False, (rows, c, 1), value_shape), int(p), margin


def multilabel_args(input, target, weight, reduction):
    """Returns the checked arguments; `weight` comes back as (C,) (per class) or the input's shape."""
    reduction_arg(reduction)
    named = {"input": input, "target": target}
    if weight is not None:
        named["weight"] = weight
    dtype, arrays = float_arrays(named)
    x, t = arrays[0], arrays[1]
    if x.ndim == 0:
        raise ValueError("input: expected at least one dim (the class axis is the last), got a 0-d array")
    if t.shape != x.shape:
        raise ValueError(f"target: shape {t.shape} does not match the input's shape {x.shape}")
    c = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    w = None
    if weight is not None:
        w = arrays[2]
        try:
            ok = np.broadcast_shapes(w.shape, x.shape) == x.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"weight: shape {w.shape} does not broadcast to the input's shape {x.shape}")
        if all(d == 1 for d in w.shape[:-1]):  # the same weights for every row
            w = np.ascontiguousarray(np.broadcast_to(w.reshape(w.shape[-1:]), (c,)))
        else:
            w = np.ascontiguousarray(np.broadcast_to(w, x.shape))
    return Rowwise(dtype, x, t, w, True, (rows, c, 1), x.shape[:-1])


# --------------------------------------------------------------------------------------------------
# The losses
# --------------------------------------------------------------------------------------------------


def _outputs(a, reduction, want_value, want_grad, grad_output, out):
    scale, go = grad_output_arg(grad_output, a.value_shape, a.dtype, reduction)
    value_out = np.empty(a.value_shape, a.dtype) if want_value and reduction == "none" else None
    g = out_arg(out, a.x.shape, a.dtype) if want_grad else None
    return scale, go, value_out, g


def cross_entropy(input, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  want_value, want_grad, grad_output, out):
    """Softmax cross-entropy over the class axis (axis 1; axis 0 of a (C,) input) with class-index or
    probability targets, class weights, ignore_index and label smoothing, as torch.nn.functional."""
    a, ignore_index, eps = cross_entropy_args(input, target, weight, ignore_index, reduction, label_smoothing)
    scale, go, value_out, g = _outputs(a, reduction, want_value, want_grad, grad_output, out)
    x, t, w, go = unalias([a.x, a.target, a.weight, go], [g])
    n, c, s = a.layout
    total, divisor = _core.cross_entropy(x, t, w, n, c, s, ignore_index, eps, reduction == "mean", scale, go,
                                         want_value and reduction != "none", value_out, g)
    value = finish_value(total, divisor, reduction, a.dtype, value_out) if want_value else None
    return value, g


def nll_loss(input, target, *, weight=None, ignore_index=-100, reduction="mean", want_value, want_grad,
             grad_output, out):
    """Negative log-likelihood −w[y]·input[y] over the class axis (input holds log-probabilities)."""
    a, ignore_index = nll_args(input, target, weight, ignore_index, reduction)
    # The gradient is zero but at the targets: a fresh buffer comes from np.zeros (calloc: pages the
    # OS hands out zeroed), so the kernel writes the targets only; a caller's out= is cleared by it.
    fresh = want_grad and out is None
    scale, go, value_out, g = _outputs(a, reduction, want_value, want_grad, grad_output,
                                       np.zeros(a.x.shape, a.dtype) if fresh else out)
    x, t, w, go = unalias([a.x, a.target, a.weight, go], [g])
    n, c, s = a.layout
    total, divisor = _core.nll_loss(x, t, w, n, c, s, ignore_index, reduction == "mean", scale, go, value_out, g,
                                    fresh)
    value = finish_value(total, divisor, reduction, a.dtype, value_out) if want_value else None
    return value, g


def multi_margin_loss(input, target, *, p=1, margin=1.0, weight=None, reduction="mean", want_value, want_grad,
                      grad_output, out):
    """Multiclass hinge (1/C)·Σ_{j≠y} w[y]·max(0, margin − x_y + x_j)^p per row, p in {1, 2}."""
    a, p, margin = multi_margin_args(input, target, p, margin, weight, reduction)
    scale, go, value_out, g = _outputs(a, reduction, want_value, want_grad, grad_output, out)
    rows, c, _ = a.layout
    if reduction == "mean":
        scale = scale / rows if rows else math.nan
    x, t, w, go = unalias([a.x, a.target, a.weight, go], [g])
    total = _core.multi_margin_loss(x, t, rows, c, p, margin, w, scale, go, value_out, g)
    value = finish_value(total, rows, reduction, a.dtype, value_out) if want_value else None
    return value, g


def multilabel_soft_margin_loss(input, target, *, weight=None, reduction="mean", want_value, want_grad,
                                grad_output, out):
    """Per row, the mean over the last axis of w·−(y·log σ(x) + (1 − y)·log σ(−x)) (stable log-sigmoid)."""
    a = multilabel_args(input, target, weight, reduction)
    scale, go, value_out, g = _outputs(a, reduction, want_value, want_grad, grad_output, out)
    rows, c, _ = a.layout
    if reduction == "mean":
        scale = scale / rows if rows else math.nan
    x, t, w, go = unalias([a.x, a.target, a.weight, go], [g])
    total = _core.multilabel_soft_margin_loss(x, t, rows, c, w, scale, go, value_out, g)
    value = finish_value(total, rows, reduction, a.dtype, value_out) if want_value else None
    return value, g


LOSSES = losses("fastloss", cross_entropy, nll_loss, multi_margin_loss, multilabel_soft_margin_loss)


def _common_call(inputs, out):
    """(x, t) when the call is the common one, without the general argument handling: (N, C) inputs
    of a float dtype and (N,) int64 class indices, both C-contiguous and aligned, default options
    (mean), no `out`. None for anything else. Out-of-range indices raise in the kernel's binding, as
    they do on the general path."""
    if len(inputs) != 2 or out is not None:
        return None
    x, t = inputs
    if type(x) is not np.ndarray or type(t) is not np.ndarray or x.ndim != 2 or t.ndim != 1:
        return None
    dtype = x.dtype
    if ((dtype is not F32 and dtype is not F64) or t.dtype is not I64 or t.shape[0] != x.shape[0]
            or x.shape[1] == 0 or not (x.flags.carray and t.flags.carray)):
        return None
    return x, t


def _mean_result(total, divisor, dtype, g, want_value, want_grad):
    if not want_value:
        return g
    value = finish_value(total, divisor, "mean", dtype, None)
    return (value, g) if want_grad else value


def _cross_entropy_fast(inputs, want_value, want_grad, out=None):
    """cross_entropy's common call (see `_common_call`), or None."""
    if (args := _common_call(inputs, out)) is None:
        return None
    x, t = args
    n, c = x.shape
    g = empty(x.shape, x.dtype) if want_grad else None
    total, divisor = _core.cross_entropy(x, t, None, n, c, 1, -100, 0.0, True, 1.0, None, want_value, None, g)
    return _mean_result(total, divisor, x.dtype, g, want_value, want_grad)


def _nll_loss_fast(inputs, want_value, want_grad, out=None):
    """nll_loss's common call (see `_common_call`), or None. The gradient comes from np.zeros, as on
    the general path."""
    if (args := _common_call(inputs, out)) is None:
        return None
    x, t = args
    n, c = x.shape
    g = np.zeros(x.shape, x.dtype) if want_grad else None
    total, divisor = _core.nll_loss(x, t, None, n, c, 1, -100, True, 1.0, None, None, g, want_grad)
    return _mean_result(total, divisor, x.dtype, g, want_value, want_grad)


LOSSES["cross_entropy"].fast = _cross_entropy_fast
LOSSES["nll_loss"].fast = _nll_loss_fast
