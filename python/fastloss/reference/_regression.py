"""Regression and likelihood losses in plain NumPy."""

from __future__ import annotations

import math

import numpy as np

from .._args import bool_arg, float_arg, float_arrays, outs_arg, reduction_arg, same_shape
from .._loss import losses
from .._regression import gaussian_var, reduce_to_var_shape
from ._common import elementwise, grad_factor, reduce_losses, torch_sign


def mse_loss(input, target, *, reduction="mean", weight=None, want_value, want_grad, grad_output, out):
    def mse(x, y):
        return (x - y) ** 2, 2 * (x - y)

    return elementwise(mse, input, target, weight, reduction, want_value, want_grad, grad_output, out)


def l1_loss(input, target, *, reduction="mean", weight=None, want_value, want_grad, grad_output, out):
    def l1(x, y):
        return np.abs(x - y), torch_sign(x - y)

    return elementwise(l1, input, target, weight, reduction, want_value, want_grad, grad_output, out)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0, want_value, want_grad, grad_output, out):
    beta = float_arg(beta, "beta", minimum=0.0)

    def smooth_l1(x, y):
        r = x - y
        if beta == 0:
            return np.abs(r), torch_sign(r)
        loss = np.where(np.abs(r) < beta, 0.5 * r * (r / beta), np.abs(r) - 0.5 * beta)
        return loss, np.clip(r / beta, -1, 1)

    return elementwise(smooth_l1, input, target, None, reduction, want_value, want_grad, grad_output, out)


def huber_loss(input, target, *, reduction="mean", delta=1.0, weight=None, want_value, want_grad, grad_output,
               out):
    delta = float_arg(delta, "delta", minimum=0.0, exclusive=True)

    def huber(x, y):
        r = x - y
        loss = np.where(np.abs(r) < delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
        return loss, np.clip(r, -delta, delta)

    return elementwise(huber, input, target, weight, reduction, want_value, want_grad, grad_output, out,
                        weighted_mean_divides_by_weight=False)


def log_cosh_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    def log_cosh(x, y):
        a = np.abs(x - y)
        # log cosh a = log1p(cosh a − 1) with cosh a − 1 = expm1(a)²/(2·e^a): no cancellation near 0.
        m = np.expm1(np.minimum(a, 300.0))
        loss = np.where(a < 300.0, np.log1p(m * m / (2 * (1 + m))), a - math.log(2))
        return loss, np.tanh(x - y)

    return elementwise(log_cosh, input, target, None, reduction, want_value, want_grad, grad_output, out)


def mean_squared_log_error(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    def squared_log_error(x, y):
        d = np.log1p(x) - np.log1p(y)
        return d**2, 2 * d / (1 + x)

    return elementwise(squared_log_error, input, target, None, reduction, want_value, want_grad, grad_output,
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

    return elementwise(poisson, input, target, None, reduction, want_value, want_grad, grad_output, out)


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
        value = reduce_losses(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        factor = grad_factor(x.shape, dtype, reduction, grad_output, x.size)
        grad_x = factor * (x - y) / v_clamped
        grad_v = factor * 0.5 * (1 / v_clamped - ((x - y) / v_clamped) ** 2)
    gx, gv = outs_arg(out, [x.shape, var_shape], dtype)
    gx[...] = grad_x
    gv[...] = reduce_to_var_shape(grad_v, var_shape)
    return value, (gx, gv)


LOSSES = losses(
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
