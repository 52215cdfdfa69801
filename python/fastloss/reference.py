"""The pure-NumPy twin of fastloss: same names, signatures and semantics, written for reading.

This module is the test oracle. Each loss computes its per-element value and derivative with the
textbook formula in float64 (whatever the input dtype), reduces with NumPy, and returns results in
the computation dtype, so a float32 result here is the float64 truth rounded once. Argument checking
is shared with the fast implementation (`fastloss._args`), so both raise the same exceptions.
"""

from __future__ import annotations

import math

import numpy as np

from ._args import bool_arg, float_arg, float_arrays, grad_output_arg, outs_arg, out_arg, reduction_arg, same_shape
from ._loss import losses
from ._regression import gaussian_var, reduce_to_var_shape


def _reduce(per_element, reduction, dtype, divisor=None):
    """Applies `reduction` to float64 per-element losses; returns a value of `dtype`."""
    if reduction == "none":
        return np.asarray(per_element).astype(dtype)  # an ndarray even for 0-d inputs
    total = per_element.sum()
    if reduction == "sum":
        return dtype.type(total)
    divisor = per_element.size if divisor is None else divisor
    return dtype.type(total / divisor) if divisor else dtype.type(math.nan)


def _grad_factor(shape, dtype, reduction, grad_output, divisor):
    """The factor every per-element derivative is multiplied by: grad_output, over the divisor for a mean."""
    scale, go = grad_output_arg(grad_output, shape, dtype, reduction)
    factor = np.full(shape, scale) if go is None else go.astype(np.float64)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = factor / np.float64(divisor)
    return factor


def _store(grad, out, dtype, name="out"):
    buf = out_arg(out, grad.shape, dtype, name)
    buf[...] = grad
    return buf


def _elementwise(formula, input, target, weight, reduction, want_value, want_grad, grad_output, out,
                 weighted_mean_divides_by_weight=True):
    """`formula(x, y)` returns float64 (loss, d loss / d x) per element."""
    reduction_arg(reduction)
    named = {"input": input, "target": target}
    if weight is not None:
        named["weight"] = weight
    dtype, arrays = float_arrays(named)
    x, y = arrays[0], arrays[1]
    same_shape(x.shape, y, "target")
    w = np.ones(x.shape) if weight is None else arrays[2].astype(np.float64)
    if weight is not None:
        same_shape(x.shape, arrays[2], "weight")
    with np.errstate(all="ignore"):
        loss, dloss = formula(x.astype(np.float64), y.astype(np.float64))
        divisor = w.sum() if weight is not None and weighted_mean_divides_by_weight else x.size
        value = _reduce(w * loss, reduction, dtype, divisor) if want_value else None
        if not want_grad:
            return value, None
        factor = _grad_factor(x.shape, dtype, reduction, grad_output, divisor)
        return value, _store(w * factor * dloss, out, dtype)


def mse_loss(input, target, *, reduction="mean", weight=None, want_value, want_grad, grad_output, out):
    def mse(x, y):
        return (x - y) ** 2, 2 * (x - y)

    return _elementwise(mse, input, target, weight, reduction, want_value, want_grad, grad_output, out)


def l1_loss(input, target, *, reduction="mean", weight=None, want_value, want_grad, grad_output, out):
    def l1(x, y):
        return np.abs(x - y), np.sign(x - y)

    return _elementwise(l1, input, target, weight, reduction, want_value, want_grad, grad_output, out)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0, want_value, want_grad, grad_output, out):
    beta = float_arg(beta, "beta", minimum=0.0)

    def smooth_l1(x, y):
        r = x - y
        if beta == 0:
            return np.abs(r), np.sign(r)
        loss = np.where(np.abs(r) < beta, 0.5 * r * (r / beta), np.abs(r) - 0.5 * beta)
        return loss, np.clip(r / beta, -1, 1)

    return _elementwise(smooth_l1, input, target, None, reduction, want_value, want_grad, grad_output, out)


def huber_loss(input, target, *, reduction="mean", delta=1.0, weight=None, want_value, want_grad, grad_output,
               out):
    delta = float_arg(delta, "delta", minimum=0.0, exclusive=True)

    def huber(x, y):
        r = x - y
        loss = np.where(np.abs(r) < delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
        return loss, np.clip(r, -delta, delta)

    return _elementwise(huber, input, target, weight, reduction, want_value, want_grad, grad_output, out,
                        weighted_mean_divides_by_weight=False)


def log_cosh_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    def log_cosh(x, y):
        a = np.abs(x - y)
        # log cosh a = log1p(cosh a − 1) with cosh a − 1 = expm1(a)²/(2·e^a): no cancellation near 0.
        m = np.expm1(np.minimum(a, 300.0))
        loss = np.where(a < 300.0, np.log1p(m * m / (2 * (1 + m))), a - math.log(2))
        return loss, np.tanh(x - y)

    return _elementwise(log_cosh, input, target, None, reduction, want_value, want_grad, grad_output, out)


def mean_squared_log_error(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    def squared_log_error(x, y):
        d = np.log1p(x) - np.log1p(y)
        return d**2, 2 * d / (1 + x)

    return _elementwise(squared_log_error, input, target, None, reduction, want_value, want_grad, grad_output,
                        out)


def _stirling(y):
    """y·log y − y + ½·log(2πy) where y > 1, else 0 (PyTorch's `full` term)."""
    safe = np.where(y > 1, y, 2.0)
    return np.where(y > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * math.pi * safe), 0.0)


def poisson_nll_loss(input, target, *, log_input=True, full=False, eps=1e-8, reduction="mean", want_value,
                     want_grad, grad_output, out):
    log_input = bool_arg(log_input, "log_input")
    full = bool_arg(full, "full")
    eps = float_arg(eps, "eps")

    def poisson(x, y):
        if log_input:
            loss, dloss = np.exp(x) - y * x, np.exp(x) - y
        else:
            loss, dloss = x - y * np.log(x + eps), 1 - y / (x + eps)
        return (loss + _stirling(y) if full else loss), dloss

    return _elementwise(poisson, input, target, None, reduction, want_value, want_grad, grad_output, out)


def gaussian_nll_loss(input, target, var, *, full=False, eps=1e-6, reduction="mean", want_value, want_grad,
                      grad_output, out):
    reduction_arg(reduction)
    full = bool_arg(full, "full")
    eps = float_arg(eps, "eps")
    dtype, (x, y, v) = float_arrays({"input": input, "target": target, "var": var})
    same_shape(x.shape, y, "target")
    var_shape = v.shape
    v_full = gaussian_var(v, x.shape)
    if np.any(v < 0):
        raise ValueError("var: has negative entries; variances must be >= 0")
    x, y, v_clamped = x.astype(np.float64), y.astype(np.float64), np.maximum(v_full.astype(np.float64), eps)
    with np.errstate(all="ignore"):
        loss = 0.5 * (np.log(v_clamped) + (x - y) ** 2 / v_clamped) + (0.5 * math.log(2 * math.pi) if full else 0)
        value = _reduce(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        factor = _grad_factor(x.shape, dtype, reduction, grad_output, x.size)
        grad_x = factor * (x - y) / v_clamped
        grad_v = factor * 0.5 * (1 / v_clamped - ((x - y) / v_clamped) ** 2)
    gx, gv = outs_arg(out, [x.shape, var_shape], dtype)
    gx[...] = grad_x
    gv[...] = reduce_to_var_shape(grad_v, var_shape)
    return value, (gx, gv)


globals().update(
    losses(
        "fastloss.reference",
        mse_loss,
        l1_loss,
        smooth_l1_loss,
        huber_loss,
        log_cosh_loss,
        mean_squared_log_error,
        poisson_nll_loss,
        gaussian_nll_loss,
    )
)
