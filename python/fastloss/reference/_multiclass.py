"""The multiclass losses in plain NumPy (float64 textbook formulas, PyTorch semantics).

Every input with a class axis is first rearranged to a (samples, C) float64 matrix `X` whose rows are
the samples in the order of the target (and of reduction='none'); gradients are computed in that form
and put back in the input's layout.
"""

from __future__ import annotations

import numpy as np

from .._loss import losses
from .._multiclass import (
    cross_entropy_args,
    finish_value,
    multi_margin_args,
    multilabel_args,
    nll_args,
    out_of_bounds_message,
)
from ._common import grad_factor, store_grad


def _rows(x, layout):
    """(n, c, s) input → (n·s, c) matrix, row i·s + k = sample (i, k)."""
    n, c, s = layout
    return x.astype(np.float64).reshape(n, c, s).transpose(0, 2, 1).reshape(n * s, c)


def _unrows(g, layout, shape):
    n, c, s = layout
    return g.reshape(n, s, c).transpose(0, 2, 1).reshape(shape)


def _check_indices(y, c, ignore_index=None):
    bad = (y < 0) | (y >= c)
    if ignore_index is not None:
        bad &= y != ignore_index
    if bad.any():
        raise IndexError(out_of_bounds_message(int(y[np.argmax(bad)]), c, ignore_index))


def _factor(a, reduction, grad_output, divisor):
    """The per-sample factor of the gradient, as a column."""
    return grad_factor(a.value_shape, a.dtype, reduction, grad_output, divisor).reshape(-1, 1)


def _value(per_sample, divisor, reduction, a):
    if reduction == "none":
        return per_sample.reshape(a.value_shape).astype(a.dtype)
    return finish_value(per_sample.sum(), divisor, reduction, a.dtype, None)


def _log_softmax_parts(X):
    """(lse − X, softmax(X)) per row with the row max m: lse − x = (m − x) + log Σ exp(x − m)."""
    m = np.max(X, axis=1, keepdims=True)
    e = np.exp(X - m)
    s = e.sum(axis=1, keepdims=True)
    return (m - X) + np.log(s), e / s


def cross_entropy(input, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  want_value, want_grad, grad_output, out):
    a, ignore_index, eps = cross_entropy_args(input, target, weight, ignore_index, reduction, label_smoothing)
    n, c, s = a.layout
    X = _rows(a.x, a.layout)
    w = np.ones(c) if a.weight is None else a.weight.astype(np.float64)
    with np.errstate(all="ignore"):
        neg_logp, p = _log_softmax_parts(X)
        if a.prob:
            # −Σ_c w_c·q'_c·log p_c with q' = q·(1 − ε) + ε/C; a mean divides by the number of samples.
            wq = w * (_rows(a.target, a.layout) * (1 - eps) + eps / c)
            losses_ = (wq * neg_logp).sum(axis=1)
            divisor = n * s
            grad = p * wq.sum(axis=1, keepdims=True) - wq
            ignored = np.zeros(n * s, bool)
        else:
            y = a.target.reshape(-1)
            _check_indices(y, c, ignore_index)
            ignored = y == ignore_index
            yy = np.where(ignored, 0, y)
            rows = np.arange(n * s)
            wy = w[yy]
            onehot = np.zeros_like(X)
            onehot[rows, yy] = 1.0
            # (1 − ε)·w_y·(lse − x_y) + (ε/C)·Σ_c w_c·(lse − x_c); a mean divides by Σ w_y (not ignored).
            losses_ = wy * neg_logp[rows, yy]
            losses_ = np.where(ignored, 0.0, losses_)
            divisor = wy[~ignored].sum()
            if eps > 0:
                losses_ = (1 - eps) * losses_ + eps / c * np.where(ignored, 0.0, (w * neg_logp).sum(axis=1))
        value = _value(losses_, divisor, reduction, a) if want_value else None
        if not want_grad:
            return value, None
        factor = _factor(a, reduction, grad_output, divisor)
        if a.prob:
            grad = factor * grad
        else:
            # PyTorch's chain: the NLL gradient −w_y·factor at the target (NaN when a mean's Σ w_y is 0
            # while w_y is 0), then log-softmax's backward; the smoothing term's gradient added.
            grad = (factor * wy[:, None]) * (p - onehot)
            if eps > 0:
                grad = (1 - eps) * grad + eps / c * factor * (w.sum() * p - w)
    grad[ignored] = 0.0
    return value, store_grad(_unrows(grad, a.layout, a.x.shape), out, a.dtype)


def nll_loss(input, target, *, weight=None, ignore_index=-100, reduction="mean", want_value, want_grad,
             grad_output, out):
    a, ignore_index = nll_args(input, target, weight, ignore_index, reduction)
    n, c, s = a.layout
    X = _rows(a.x, a.layout)
    w = np.ones(c) if a.weight is None else a.weight.astype(np.float64)
    y = a.target.reshape(-1)
    _check_indices(y, c, ignore_index)
    ignored = y == ignore_index
    yy = np.where(ignored, 0, y)
    rows = np.arange(n * s)
    wy = np.where(ignored, 0.0, w[yy])
    divisor = wy.sum()
    with np.errstate(all="ignore"):
        value = _value(np.where(ignored, 0.0, -wy * X[rows, yy]), divisor, reduction, a) if want_value else None
        if not want_grad:
            return value, None
        grad = np.zeros_like(X)
        grad[rows, yy] = -wy * _factor(a, reduction, grad_output, divisor)[:, 0]
    grad[ignored] = 0.0
    return value, store_grad(_unrows(grad, a.layout, a.x.shape), out, a.dtype)


def multi_margin_loss(input, target, *, p=1, margin=1.0, weight=None, reduction="mean", want_value, want_grad,
                      grad_output, out):
    a, p, margin = multi_margin_args(input, target, p, margin, weight, reduction)
    rows, c, _ = a.layout
    X = a.x.astype(np.float64).reshape(rows, c)
    w = np.ones(c) if a.weight is None else a.weight.astype(np.float64)
    y = a.target.reshape(-1)
    _check_indices(y, c)
    r = np.arange(rows)
    with np.errstate(all="ignore"):
        z = margin - X[r, y][:, None] + X
        # Classes other than y with z > 0 (a NaN z is not > 0, as in PyTorch).
        active = (z > 0) & (np.arange(c) != y[:, None])
        wy = w[y][:, None]
        losses_ = (np.where(active, z**p, 0.0) * wy).sum(axis=1) / c
        value = _value(losses_, rows, reduction, a) if want_value else None
        if not want_grad:
            return value, None
        # ∂/∂x_j = factor·w_y/C·(1 or 2·z_j), formed as PyTorch does ((2·g)·z: 2·z alone may overflow).
        g = _factor(a, reduction, grad_output, rows) * wy / c
        d = np.where(active, g if p == 1 else (2 * g) * z, 0.0)
        d[r, y] = -d.sum(axis=1)
    return value, store_grad(d.reshape(a.x.shape), out, a.dtype)


def multilabel_soft_margin_loss(input, target, *, weight=None, reduction="mean", want_value, want_grad,
                                grad_output, out):
    a = multilabel_args(input, target, weight, reduction)
    rows, c, _ = a.layout
    X = a.x.astype(np.float64).reshape(rows, c)
    Y = a.target.astype(np.float64).reshape(rows, c)
    w = np.ones(c) if a.weight is None else a.weight.astype(np.float64)
    if w.ndim > 1:  # per element (else per class)
        w = w.reshape(rows, c)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(X))
        log_sig = np.minimum(X, 0) - np.log1p(e)       # log σ(x)
        log_sig_neg = np.minimum(-X, 0) - np.log1p(e)  # log σ(−x)
        losses_ = (w * -(Y * log_sig + (1 - Y) * log_sig_neg)).sum(axis=1) / c
        value = _value(losses_, rows, reduction, a) if want_value else None
        if not want_grad:
            return value, None
        sig = np.where(X >= 0, 1 / (1 + e), e / (1 + e))
        sig_neg = np.where(X <= 0, 1 / (1 + e), e / (1 + e))
        # σ(x)·(1 − y) − σ(−x)·y: σ(x) − y without its cancellation where σ(x) is near y
        grad = w * (sig * (1 - Y) - sig_neg * Y) / c * _factor(a, reduction, grad_output, rows)
    return value, store_grad(grad.reshape(a.x.shape), out, a.dtype)


LOSSES = losses("fastloss.reference", cross_entropy, nll_loss, multi_margin_loss, multilabel_soft_margin_loss)
