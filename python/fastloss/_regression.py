"""Regression and likelihood losses on the compiled element-wise engine."""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _core
from ._args import (
    F32,
    F64,
    bool_arg,
    empty,
    finish_value,
    float_arg,
    float_arrays,
    grad_output_arg,
    out_arg,
    outs_arg,
    reduction_arg,
    same_shape,
    sum_to_shape,
    unalias,
)
from ._loss import losses

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _elementwise(kernel, input, target, weight, reduction, want_value, want_grad, grad_output, out,
                 *, param=0.0, full=False, weighted_mean_divides_by_weight=True):
    """An element-wise loss of (input, target) with optional per-element weights."""
    if (weight is None and grad_output is None and out is None and type(input) is np.ndarray
            and type(target) is np.ndarray and (reduction == "mean" or reduction == "sum")):
        # Fast path for the common call: same native dtype, same shape, contiguous and aligned
        # (`carray`; read-only inputs take the general path below, which handles them too).
        dtype = input.dtype
        if ((dtype is F32 or dtype is F64) and target.dtype is dtype and input.shape == target.shape
                and input.flags.carray and target.flags.carray):
            n = input.size
            scale = 1.0 if reduction == "sum" else (1.0 / n if n else math.inf)
            g = empty(input.shape, dtype) if want_grad else None
            total = _core.pointwise(kernel, input, target, None, None, None, scale, want_value, None, g, None,
                                    param, full)
            if not want_value:
                return None, g
            if reduction == "sum":
                return dtype.type(total), g
            return dtype.type(total / n if n else math.nan), g
    reduction_arg(reduction)
    if weight is None:
        dtype, (x, y) = float_arrays({"input": input, "target": target})
        w = None
    else:
        dtype, (x, y, w) = float_arrays({"input": input, "target": target, "weight": weight})
        same_shape(x.shape, w, "weight")
    same_shape(x.shape, y, "target")
    scale, go = grad_output_arg(grad_output, x.shape, dtype, reduction)
    divisor = x.size
    if reduction == "mean" and w is not None and weighted_mean_divides_by_weight:
        divisor = _core.sum(w)
    if reduction == "mean":
        scale = scale / divisor if divisor else scale * math.inf
    grad_weight = w if go is None else (go if w is None else w * go)
    value_out = empty(x.shape, dtype) if want_value and reduction == "none" else None
    g = out_arg(out, x.shape, dtype) if want_grad else None
    if out is not None:  # fresh buffers cannot overlap the inputs
        x, y, w, grad_weight = unalias([x, y, w, grad_weight], [g])
    total = _core.pointwise(kernel, x, y, None, w, grad_weight, scale,
                            want_value and reduction != "none", value_out, g, None, param, full)
    value = finish_value(total, divisor, reduction, dtype, value_out) if want_value else None
    return value, g


def mse_loss(input, target, *, reduction="mean", weight=None, want_value, want_grad, grad_output, out):
    """Mean squared error (x − y)²; a weighted mean divides by Σ weight, as PyTorch does."""
    return _elementwise("mse", input, target, weight, reduction, want_value, want_grad, grad_output, out)


def l1_loss(input, target, *, reduction="mean", weight=None, want_value, want_grad, grad_output, out):
    """Mean absolute error |x − y| (subgradient 0 at x = y); a weighted mean divides by Σ weight."""
    return _elementwise("l1", input, target, weight, reduction, want_value, want_grad, grad_output, out)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0, want_value, want_grad, grad_output, out):
    """0.5·r²/β where |r| < β, else |r| − β/2; β = 0 is the L1 loss."""
    beta = float_arg(beta, "beta", minimum=0.0)
    kernel = "smooth_l1" if beta > 0 else "l1"
    return _elementwise(kernel, input, target, None, reduction, want_value, want_grad, grad_output, out,
                        param=beta)


def huber_loss(input, target, *, reduction="mean", delta=1.0, weight=None, want_value, want_grad, grad_output,
               out):
    """0.5·r² where |r| < δ, else δ·(|r| − δ/2); a weighted mean divides by N, as PyTorch does."""
    delta = float_arg(delta, "delta", minimum=0.0, exclusive=True)
    return _elementwise("huber", input, target, weight, reduction, want_value, want_grad, grad_output, out,
                        param=delta, weighted_mean_divides_by_weight=False)


def log_cosh_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    """log cosh(x − y); gradient tanh(x − y)."""
    return _elementwise("log_cosh", input, target, None, reduction, want_value, want_grad, grad_output, out)


def mean_squared_log_error(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    """(log1p(x) − log1p(y))²."""
    return _elementwise("squared_log_error", input, target, None, reduction, want_value, want_grad,
                        grad_output, out)


def poisson_nll_loss(input, target, *, log_input=True, full=False, eps=1e-8, reduction="mean", want_value,
                     want_grad, grad_output, out):
    """Poisson NLL: e^x − y·x (log_input) or x − y·log(x + eps); `full` adds Stirling's term for y > 1."""
    log_input = bool_arg(log_input, "log_input")
    full = bool_arg(full, "full")
    eps = float_arg(eps, "eps")
    kernel = "poisson_log_input" if log_input else "poisson_rate_input"
    return _elementwise(kernel, input, target, None, reduction, want_value, want_grad, grad_output, out,
                        param=eps, full=full)


def gaussian_var(var, shape):
    """`var` broadcast to the input's `shape`, for the shapes PyTorch 2.13 accepts: the input's; a
    scalar (torch's float var); the input's without its last dim (homoscedastic, a trailing 1 added);
    or the input's rank with exactly one dim of size 1 where the input's differs (e.g. (N, 1, H, W)
    for (N, C, H, W))."""
    if var.shape == shape:
        return var
    if var.ndim == 0:
        return np.broadcast_to(var, shape)
    if var.shape == shape[:-1]:
        return np.broadcast_to(var[..., None], shape)
    if var.ndim == len(shape):
        differ = [v for v, s in zip(var.shape, shape) if v != s]
        if differ == [1]:
            return np.broadcast_to(var, shape)
    raise ValueError(f"var: shape {var.shape} is incompatible with the input's shape {shape} (expected the "
                     f"same shape, the input's shape without its last dim, or the input's shape with one "
                     f"dim of size 1)")


def reduce_to_var_shape(grad_full, var_shape):
    """Sums a gradient computed at the input's shape back to `var`'s (see `gaussian_var`)."""
    if var_shape and len(var_shape) < grad_full.ndim:  # one dim short: the trailing dim was added
        return sum_to_shape(grad_full, var_shape + (1,)).reshape(var_shape)
    return sum_to_shape(grad_full, var_shape)  # the same rank, or a scalar


def gaussian_nll_loss(input, target, var, *, full=False, eps=1e-6, reduction="mean", want_value, want_grad,
                      grad_output, out):
    """Gaussian NLL ½·(log v + (x − y)²/v) with v = max(var, eps); gradients in input and var."""
    reduction_arg(reduction)
    full = bool_arg(full, "full")
    eps = float_arg(eps, "eps")
    dtype, (x, y, v) = float_arrays({"input": input, "target": target, "var": var})
    same_shape(x.shape, y, "target")
    var_shape = v.shape
    v_full = gaussian_var(v, x.shape)
    if (v < 0).any():
        raise ValueError("var: has negative entries; variances must be >= 0")
    v_full = np.ascontiguousarray(v_full)
    scale, go = grad_output_arg(grad_output, x.shape, dtype, reduction)
    divisor = x.size
    if reduction == "mean":
        scale = scale / divisor if divisor else scale * math.inf
    value_out = empty(x.shape, dtype) if want_value and reduction == "none" else None
    gx = gv = gv_full = None
    if want_grad:
        gx, gv = outs_arg(out, [x.shape, var_shape], dtype)
        gv_full = gv if var_shape == x.shape else np.empty(x.shape, dtype)  # a temporary: freed here
    if out is not None:
        x, y, v_full, go = unalias([x, y, v_full, go], [gx, gv])
    total = _core.pointwise("gaussian_nll", x, y, v_full, None, go, scale, want_value and reduction != "none",
                            value_out, gx, gv_full, eps, full)
    value = finish_value(total, divisor, reduction, dtype, value_out) if want_value else None
    if want_grad and gv_full is not gv:
        gv[...] = reduce_to_var_shape(gv_full, var_shape)
    return value, ((gx, gv) if want_grad else None)


LOSSES = losses(
    "fastloss",
    mse_loss,
    l1_loss,
    smooth_l1_loss,
    huber_loss,
    log_cosh_loss,
    mean_squared_log_error,
    poisson_nll_loss,
    gaussian_nll_loss,
)

# The common call (positional arrays of one dtype and shape, default options, mean) goes straight to the
# compiled `pointwise_mean`; anything else falls back to the functions above.
_DEFAULT_KERNELS = {
    "mse_loss": ("mse", 0.0),
    "l1_loss": ("l1", 0.0),
    "smooth_l1_loss": ("smooth_l1", 1.0),
    "huber_loss": ("huber", 1.0),
    "log_cosh_loss": ("log_cosh", 0.0),
    "mean_squared_log_error": ("squared_log_error", 0.0),
    "poisson_nll_loss": ("poisson_log_input", 0.0),
    "gaussian_nll_loss": ("gaussian_nll", 1e-6),  # eps
}
for _name, (_kernel, _param) in _DEFAULT_KERNELS.items():
    LOSSES[_name].fast = functools.partial(_core.pointwise_mean, _kernel, _param)
