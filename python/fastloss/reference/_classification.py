"""The classification losses in plain NumPy: float64 textbook formulas (PyTorch 2.13 semantics)."""

from __future__ import annotations

import numpy as np

from .._args import REDUCTIONS, bool_arg, float_arg, sum_to_shape
from .._classification import KL_REDUCTIONS, divisor_for, elementwise_args, unit_interval_error
from .._loss import losses
from ._common import grad_factor, reduce_losses, store_grad


def _check_unit_interval(arr, name):
    flat = arr.reshape(-1)
    bad = np.flatnonzero(~((flat >= 0) & (flat <= 1)))
    if bad.size:
        raise unit_interval_error(int(bad[0]), float(flat[bad[0]]), name)


def _elementwise(formula, input, target, reduction, want_value, want_grad, grad_output, out, *, weight=None,
                 pos_weight=None, unit_interval=False, reductions=REDUCTIONS, broadcast=False):
    """`formula(x, y, p)` returns float64 (loss, d loss / d x) per element; p is pos_weight (or ones)."""
    dtype, x, y, w, p, input_shape = elementwise_args(input, target, weight, pos_weight, reduction, reductions,
                                                      _check_unit_interval if unit_interval else None, broadcast)
    w = np.ones(x.shape) if w is None else w.astype(np.float64)
    p = np.ones(x.shape) if p is None else p.astype(np.float64)
    divisor = divisor_for(reduction, input_shape, x.size)
    with np.errstate(all="ignore"):
        loss, dloss = formula(x.astype(np.float64), y.astype(np.float64), p)
        value = reduce_losses(w * loss, reduction, dtype, divisor) if want_value else None
        if not want_grad:
            return value, None
        # A 'batchmean' gradient is scaled like a mean, by 1/divisor.
        factor = grad_factor(x.shape, dtype, "mean" if reduction == "batchmean" else reduction, grad_output,
                             divisor)
        # An input broadcast against its target: the sum of its copies' gradients.
        return value, store_grad(sum_to_shape(w * factor * dloss, input_shape), out, dtype)


def _sigmoid(x):
    """σ(x) from e^−|x| (no overflow)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^−|x|)."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy(input, target, *, weight=None, reduction="mean", want_value, want_grad, grad_output,
                         out):
    def bce(x, y, p):
        loss = (y - 1) * np.maximum(np.log1p(-x), -100) - y * np.maximum(np.log(x), -100)
        # PyTorch clamps at its float constant 1e-12, float32(1e-12) = 9.99999996e-13, in float64 too
        return loss, (x - y) / np.maximum(x * (1 - x), float(np.float32(1e-12)))

    return _elementwise(bce, input, target, reduction, want_value, want_grad, grad_output, out, weight=weight,
                        unit_interval=True)


def binary_cross_entropy_with_logits(input, target, *, weight=None, reduction="mean", pos_weight=None,
                                     want_value, want_grad, grad_output, out):
    def bce_logits(x, y, p):
        # PyTorch's (1 − y)·x + (1 + (p − 1)·y)·softplus(−x) with softplus(−x) = max(−x, 0) + log1p(e^−|x|)
        # and the linear terms combined by the sign of x: the same function, without the cancellation
        # of x against softplus(−x) ≈ −x for x ≪ 0 (which would make the float64 oracle lose digits).
        log_weight = 1 + (p - 1) * y
        linear = np.where(x >= 0, (1 - y) * x, -p * y * x)
        loss = linear + log_weight * np.log1p(np.exp(-np.abs(x)))
        # (p·y + 1 − y)·σ(x) − p·y = σ(x)·(1 − y) − p·y·σ(−x): no cancellation for targets in [0, 1].
        return loss, _sigmoid(x) * (1 - y) - p * y * _sigmoid(-x)

    return _elementwise(bce_logits, input, target, reduction, want_value, want_grad, grad_output, out,
                        weight=weight, pos_weight=pos_weight)


def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="mean", want_value, want_grad,
                       grad_output, out):
    alpha = float_arg(alpha, "alpha")
    gamma = float_arg(gamma, "gamma")

    def focal(x, y, p):
        s, s_neg = _sigmoid(x), _sigmoid(-x)       # p and 1 − p, each accurate
        ce = np.where(x >= 0, (1 - y) * x, -y * x) + np.log1p(np.exp(-np.abs(x)))  # BCE with logits, stably
        q = s * (1 - y) + s_neg * y                # 1 − p_t, without cancellation
        q_gamma = np.power(q, gamma)
        # d q^γ / d q as PyTorch's pow backward: 0 for γ = 0, else γ·q^(γ−1).
        dq_gamma = np.zeros_like(q) if gamma == 0 else gamma * np.power(q, gamma - 1)
        alpha_t = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else np.ones_like(y)
        loss = alpha_t * ce * q_gamma
        s_minus_y = s * (1 - y) - s_neg * y        # σ(x) − y
        # The path through q^γ: none for γ = 0 (ce may be infinite at x = ±inf; 0·inf is not 0).
        through_q = 0.0 if gamma == 0 else ce * dq_gamma * s * s_neg * (1 - 2 * y)
        grad = alpha_t * (s_minus_y * q_gamma + through_q)
        return loss, grad

    return _elementwise(focal, input, target, reduction, want_value, want_grad, grad_output, out)


def hinge_loss(input, target, *, margin=1.0, reduction="mean", want_value, want_grad, grad_output, out):
    margin = float_arg(margin, "margin")

    def hinge(x, y, p):
        u = margin - x * y
        return np.maximum(u, 0), -np.where(u >= 0, 1.0, 0.0) * y

    return _elementwise(hinge, input, target, reduction, want_value, want_grad, grad_output, out)


def squared_hinge_loss(input, target, *, margin=1.0, reduction="mean", want_value, want_grad, grad_output, out):
    margin = float_arg(margin, "margin")

    def squared_hinge(x, y, p):
        u = margin - x * y
        c = np.maximum(u, 0)
        return c * c, -np.where(u >= 0, 2 * c, 0.0) * y

    return _elementwise(squared_hinge, input, target, reduction, want_value, want_grad, grad_output, out)


def exponential_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    def exponential(x, y, p):
        e = np.exp(-x * y)
        return e, -y * e

    return _elementwise(exponential, input, target, reduction, want_value, want_grad, grad_output, out)


def soft_margin_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    def soft_margin(x, y, p):
        t = -x * y
        return _softplus(t), -y * _sigmoid(t)

    return _elementwise(soft_margin, input, target, reduction, want_value, want_grad, grad_output, out)


def kl_div(input, target, *, reduction="mean", log_target=False, want_value, want_grad, grad_output, out):
    log_target = bool_arg(log_target, "log_target")

    def kl(x, t, p):
        if log_target:
            return np.exp(t) * (t - x), -np.exp(t)
        xlogy = np.where(t == 0, 0.0, t * np.log(t))  # xlogy(t, t): 0·log 0 = 0; t < 0 gives NaN
        return xlogy - t * x, -t

    return _elementwise(kl, input, target, reduction, want_value, want_grad, grad_output, out,
                        reductions=KL_REDUCTIONS, broadcast=True)


LOSSES = losses(
    "fastloss.reference",
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    sigmoid_focal_loss,
    hinge_loss,
    squared_hinge_loss,
    exponential_loss,
    soft_margin_loss,
    kl_div,
)
