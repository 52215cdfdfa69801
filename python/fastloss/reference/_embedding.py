"""The embedding and ranking losses in plain NumPy (float64, textbook formulas).

Chain rules follow PyTorch's autograd of its composite implementations: the norm's gradient is 0 at
a zero vector, `clamp_min` passes the gradient where its argument is >= 0 (the margin included), and
`torch.min` (triplet `swap`) splits the gradient half and half at a tie.
"""

from __future__ import annotations

import numpy as np

from .._args import float_arg, outs_arg, reduction_arg, sum_to_shape
from .._embedding import ZERO_ONE, elementwise_arrays, row_arrays, rows_of, triplet_options
from .._loss import losses
from ._common import grad_factor, reduce_losses, store_grad, torch_sign


def _norm(u, p):
    """‖u‖_p over the last axis (max|u| for p = inf). For p other than 1, 2 and inf, computed as
    m·(Σ(|u|/m)^p)^(1/p) with m = max|u| so that |u|^p cannot overflow or underflow (fastloss does
    the same)."""
    a = np.abs(u)
    if p == 2:
        return np.sqrt(np.sum(a * a, axis=-1))
    if p == 1:
        return np.sum(a, axis=-1)
    m = np.max(a, axis=-1, initial=0.0) if a.shape[-1] else np.zeros(a.shape[:-1])
    if np.isinf(p):
        return m
    safe = np.where((m > 0) & np.isfinite(m), m, 1.0)
    scaled = safe * np.sum((a / safe[..., None]) ** p, axis=-1) ** (1 / p)
    return np.where(np.isfinite(m), np.where(m > 0, scaled, 0.0), m)


def _norm_grad(u, dist, p):
    """∂‖u‖_p/∂u: u/‖u‖ (p = 2), sign(u) (p = 1), sign(u)·(|u|/‖u‖)^(p−1); 0 at a zero vector (and, for
    real p, where u = 0 in a row whose norm is not NaN), as PyTorch's norm backward. For p = inf,
    sign(u) shared equally among the elements that attain the max (or are NaN), 0 elsewhere. sign is
    torch's: 0 for NaN, so a NaN element's gradient is 0 for p = 1 and inf, as in torch."""
    d = dist[..., None]
    if p == 1:
        return torch_sign(u)
    if np.isinf(p):
        a = np.abs(u)
        ties = (a == d) | np.isnan(a)
        return torch_sign(u) * ties / np.maximum(np.sum(ties, axis=-1, keepdims=True), 1)
    zero = d == 0
    safe_d = np.where(zero, 1.0, d)
    if p == 2:
        return np.where(zero, 0.0, u / safe_d)
    a = np.abs(u)
    safe_a = np.where(a == 0, 1.0, a)
    g = np.sign(u) * (safe_a / safe_d) ** (p - 1)
    return np.where(zero | ((a == 0) & ~np.isnan(d)), 0.0, g)


def _store_all(grads, out, dtype, shape, shapes):
    """The gradients of inputs of `shapes` broadcast to `shape` (computed as rows of it), in `out`
    or new arrays of `dtype`."""
    bufs = outs_arg(out, shapes, dtype)
    for b, g in zip(bufs, grads):
        b[...] = sum_to_shape(g.reshape(shape), b.shape)
    return tuple(bufs)


def triplet_margin_loss(anchor, positive, negative, *, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean",
                        want_value, want_grad, grad_output, out):
    margin, p, eps, swap = triplet_options(margin, p, eps, swap)
    reduction_arg(reduction)
    dtype, xs, _, shape = row_arrays({"anchor": anchor, "positive": positive, "negative": negative}, any_rank=True)
    _, d, value_shape = rows_of(shape)
    a, pos, neg = (np.broadcast_to(x.astype(np.float64), shape).reshape(value_shape + (d,)) for x in xs)
    with np.errstate(all="ignore"):
        u, v, w = a - pos + eps, a - neg + eps, pos - neg + eps
        d_ap, d_an, d_pn = _norm(u, p), _norm(v, p), _norm(w, p)
        if swap:
            d_neg = np.minimum(d_an, d_pn)
            share_an = np.where(d_pn < d_an, 0.0, np.where(d_pn == d_an, 0.5, 1.0))
        else:
            d_neg, share_an = d_an, np.ones(value_shape)
        pre = margin + d_ap - d_neg
        loss = np.maximum(pre, 0.0)
        value = reduce_losses(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        g = np.where(pre >= 0, grad_factor(value_shape, dtype, reduction, grad_output, loss.size), 0.0)[..., None]
        gu, gv = g * _norm_grad(u, d_ap, p), g * share_an[..., None] * _norm_grad(v, d_an, p)
        gw = g * (1 - share_an[..., None]) * _norm_grad(w, d_pn, p) if swap else np.zeros_like(gu)
        grads = (gu - gv, -gu - gw, gv + gw)
    return value, _store_all(grads, out, dtype, shape, [x.shape for x in xs])


def contrastive_loss(input1, input2, target, *, margin=1.0, eps=1e-6, reduction="mean", want_value, want_grad,
                     grad_output, out):
    margin, eps = float_arg(margin, "margin"), float_arg(eps, "eps")
    reduction_arg(reduction)
    dtype, (x1, x2), y, shape = row_arrays({"input1": input1, "input2": input2}, target, ZERO_ONE, any_rank=True)
    _, d, value_shape = rows_of(shape)
    with np.errstate(all="ignore"):
        u = (x1.astype(np.float64) - x2.astype(np.float64) + eps).reshape(value_shape + (d,))
        d = np.sqrt(np.sum(u * u, axis=-1))
        hinge = np.maximum(margin - d, 0.0)
        dissimilar = y == 1
        loss = np.where(dissimilar, 0.5 * hinge**2, 0.5 * d**2)
        value = reduce_losses(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        # ∂loss/∂u = ∂loss/∂d · u/d: d·u/d = u for a similar pair, −max(0, m − d)·u/d for a dissimilar one.
        factor = grad_factor(value_shape, dtype, reduction, grad_output, loss.size)
        c = factor * np.where(dissimilar, -hinge / np.where(d == 0, 1.0, d), 1.0)
        c = np.where(d == 0, 0.0, np.where(np.isnan(d), np.nan, c))  # a NaN distance poisons its row, as in torch
        g1 = c[..., None] * u
    return value, _store_all((g1, -g1), out, dtype, shape, [x1.shape, x2.shape])


def cosine_embedding_loss(input1, input2, target, *, margin=0.0, reduction="mean", want_value, want_grad,
                          grad_output, out):
    margin = float_arg(margin, "margin")
    reduction_arg(reduction)
    dtype, (x1, x2), y, shape = row_arrays({"input1": input1, "input2": input2}, target)
    value_shape = shape[:-1]
    x1, x2 = x1.astype(np.float64), x2.astype(np.float64)
    with np.errstate(all="ignore"):
        # PyTorch adds its float constant 1e-12, float32(1e-12) = 9.99999996e-13, in float64 too
        A = np.sum(x1 * x1, axis=-1) + float(np.float32(1e-12))
        B = np.sum(x2 * x2, axis=-1) + float(np.float32(1e-12))
        denom = np.sqrt(A) * np.sqrt(B)
        cos = np.sum(x1 * x2, axis=-1) / denom
        loss = np.where(y == 1, 1 - cos, np.where(y == -1, np.maximum(cos - margin, 0.0), 0.0))
        value = reduce_losses(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        factor = grad_factor(value_shape, dtype, reduction, grad_output, loss.size)
        s = np.where(y == 1, -factor, np.where((y == -1) & (cos - margin >= 0), factor, 0.0))[..., None]
        # The coefficients first: cos·x1 of a subnormal x1 would round to the subnormal spacing
        # before /A scales it up (32 units where the exact value is 22.6).
        dcos1 = x2 / denom[..., None] - x1 * (cos / A)[..., None]
        dcos2 = x1 / denom[..., None] - x2 * (cos / B)[..., None]
    return value, _store_all((s * dcos1, s * dcos2), out, dtype, shape, [shape, shape])


def margin_ranking_loss(input1, input2, target, *, margin=0.0, reduction="mean", want_value, want_grad,
                        grad_output, out):
    reduction_arg(reduction)
    margin = float_arg(margin, "margin")
    dtype, (x1, x2, y) = elementwise_arrays({"input1": input1, "input2": input2}, target)
    x1, x2, y = (a.astype(np.float64) for a in (x1, x2, y))
    with np.errstate(all="ignore"):
        pre = -y * (x1 - x2) + margin
        loss = np.maximum(pre, 0.0)
        value = reduce_losses(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        g = np.where(pre >= 0, grad_factor(x1.shape, dtype, reduction, grad_output, x1.size), 0.0)
        grads = (-y * g, y * g)
    return value, _store_all(grads, out, dtype, x1.shape, [x1.shape, x1.shape])


def hinge_embedding_loss(input, target, *, margin=1.0, reduction="mean", want_value, want_grad, grad_output, out):
    reduction_arg(reduction)
    margin = float_arg(margin, "margin")
    dtype, (x, y) = elementwise_arrays({"input": input}, target)
    x, y = x.astype(np.float64), y.astype(np.float64)
    with np.errstate(all="ignore"):
        h = margin - x
        # torch: where(y ≠ 1, max(0, h), 0) + where(y ≠ −1, x, 0) (a target of 0 gets both terms)
        loss = np.where(y != 1, np.maximum(h, 0.0), 0.0) + np.where(y != -1, x, 0.0)
        value = reduce_losses(loss, reduction, dtype) if want_value else None
        if not want_grad:
            return value, None
        factor = grad_factor(x.shape, dtype, reduction, grad_output, x.size)
        grad = factor * (np.where(y != -1, 1.0, 0.0) + np.where((y != 1) & (h >= 0), -1.0, 0.0))
    return value, store_grad(grad, out, dtype)


LOSSES = losses(
    "fastloss.reference",
    triplet_margin_loss,
    contrastive_loss,
    cosine_embedding_loss,
    margin_ranking_loss,
    hinge_embedding_loss,
)
