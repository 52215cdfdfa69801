"""The classification losses on the compiled element-wise engine (kernels: src/classification.rs).

Shared with `fastloss.reference._classification` (so both validate identically): the argument
handling (`elementwise_args`: conversion, the broadcasting of `weight` / `pos_weight` and of
kl_div's input and target, the [0, 1] check of binary_cross_entropy with its error message) and the
reduction divisors.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _core
from ._args import (
    F32,
    F64,
    REDUCTIONS,
    float_arg,
    bool_arg,
    empty,
    finish_value,
    float_arrays,
    grad_output_arg,
    out_arg,
    reduction_arg,
    same_shape,
    sum_to_shape,
    unalias,
)
from ._loss import losses

KL_REDUCTIONS = ("none", "mean", "sum", "batchmean")


def broadcast_arg(arr, shape, name):
    """`arr` (a weight) broadcast to the input's `shape`, materialised once as a C-contiguous array
    when its shape differs (PyTorch broadcasts BCE weights against the target)."""
    if arr.shape == shape:
        return arr
    try:
        return np.ascontiguousarray(np.broadcast_to(arr, shape)) if shape else np.array(np.broadcast_to(arr, shape))
    except ValueError:
        raise ValueError(f"{name}: shape {arr.shape} cannot be broadcast to the input's shape {shape}") from None


def unit_interval_error(index, value, name):
    return ValueError(f"{name}: all elements must be between 0 and 1 (probabilities), got {value!r} at flat "
                      f"index {index}")


def check_unit_interval(arr, name):
    """PyTorch's BCE check: every element in [0, 1] (NaN is rejected too). One read-only pass."""
    i = _core.first_outside_unit(arr.reshape(-1) if arr.ndim != 1 else arr)
    if i is not None:
        raise unit_interval_error(i, float(arr.reshape(-1)[i]), name)


def divisor_for(reduction, shape, size):
    """The mean's divisor: numel for 'mean', input.shape[0] for 'batchmean' (1 for a 0-d input)."""
    if reduction == "mean":
        return size
    if reduction == "batchmean":
        return shape[0] if len(shape) else 1
    return 1


def elementwise_args(input, target, weight, pos_weight, reduction, reductions, unit_interval_check,
                     broadcast=False):
    """The checked, converted arrays of an element-wise classification loss: (dtype, input, target,
    weight, pos_weight, the input's own shape), weight and pos_weight broadcast to the shape of the
    input returned (None when not given). With `broadcast` (kl_div, as torch's), input and target
    may differ in shape and come broadcast to their common shape; otherwise they must match.
    `unit_interval_check(arr, name)`, unless None, checks the input and the target (BCE)."""
    reduction_arg(reduction, reductions)
    named = {"input": input, "target": target}
    if weight is not None:
        named["weight"] = weight
    if pos_weight is not None:
        named["pos_weight"] = pos_weight
    dtype, arrays = float_arrays(named)
    x, y = arrays[0], arrays[1]
    input_shape = x.shape
    if broadcast and y.shape != x.shape:
        try:
            shape = np.broadcast_shapes(x.shape, y.shape)
        except ValueError:
            raise ValueError(f"target: shape {y.shape} does not broadcast with the input's shape {x.shape}") from None
        x, y = broadcast_arg(x, shape, "input"), broadcast_arg(y, shape, "target")
    same_shape(x.shape, y, "target")
    w = broadcast_arg(arrays[2], x.shape, "weight") if weight is not None else None
    pw = broadcast_arg(arrays[-1], x.shape, "pos_weight") if pos_weight is not None else None
    if unit_interval_check is not None:
        unit_interval_check(x, "input")
        unit_interval_check(y, "target")
    return dtype, x, y, w, pw, input_shape


def _elementwise(kernel, input, target, reduction, want_value, want_grad, grad_output, out, *, weight=None,
                 pos_weight=None, p1=0.0, p2=0.0, unit_interval=False, reductions=REDUCTIONS, broadcast=False):
    """An element-wise classification loss of (input, target), optional broadcast weights."""
    if (weight is None and pos_weight is None and grad_output is None and out is None
            and type(input) is np.ndarray and type(target) is np.ndarray
            and (reduction == "mean" or reduction == "sum")):
        # Fast path for the common call: same native dtype and shape, contiguous and aligned.
        dtype = input.dtype
        if ((dtype is F32 or dtype is F64) and target.dtype is dtype and input.shape == target.shape
                and input.flags.carray and target.flags.carray):
            if unit_interval:
                check_unit_interval(input, "input")
                check_unit_interval(target, "target")
            n = input.size
            scale = 1.0 if reduction == "sum" else (1.0 / n if n else math.inf)
            g = empty(input.shape, dtype) if want_grad else None
            total = _core.classification(kernel, input, target, None, None, None, scale, want_value, None, g,
                                         p1, p2)
            if not want_value:
                return None, g
            if reduction == "sum":
                return dtype.type(total), g
            return dtype.type(total / n if n else math.nan), g
    dtype, x, y, w, pw, input_shape = elementwise_args(input, target, weight, pos_weight, reduction, reductions,
                                                       check_unit_interval if unit_interval else None, broadcast)
    scale, go = grad_output_arg(grad_output, x.shape, dtype, reduction)
    divisor = divisor_for(reduction, input_shape, x.size)
    if reduction in ("mean", "batchmean"):
        scale = scale / divisor if divisor else scale * math.inf
    grad_weight = w if go is None else (go if w is None else w * go)
    value_out = np.empty(x.shape, dtype) if want_value and reduction == "none" else None
    g = out_arg(out, input_shape, dtype) if want_grad else None
    # An input broadcast against its target has its gradient formed at the common shape, then
    # summed over the broadcast axes.
    kernel_g = empty(x.shape, dtype) if want_grad and x.shape != input_shape else g
    x, y, w, pw, grad_weight = unalias([x, y, w, pw, grad_weight], [kernel_g])
    total = _core.classification(kernel, x, y, pw, w, grad_weight, scale, want_value and reduction != "none",
                                 value_out, kernel_g, p1, p2)
    value = finish_value(total, divisor, reduction, dtype, value_out) if want_value else None
    if kernel_g is not g:
        g[...] = sum_to_shape(kernel_g, input_shape)
    return value, g


def binary_cross_entropy(input, target, *, weight=None, reduction="mean", want_value, want_grad, grad_output,
                         out):
    """BCE on probabilities: −w·[y·max(log x, −100) + (1 − y)·max(log(1 − x), −100)] (PyTorch's clamp);
    input and target must lie in [0, 1]; the gradient w·(x − y)/max(x(1 − x), 1e-12) ignores the clamp."""
    return _elementwise("bce", input, target, reduction, want_value, want_grad, grad_output, out, weight=weight,
                        unit_interval=True)


def binary_cross_entropy_with_logits(input, target, *, weight=None, reduction="mean", pos_weight=None,
                                     want_value, want_grad, grad_output, out):
    """BCE on logits, w·[(1 − y)·x + (1 + (p − 1)·y)·softplus(−x)], stable for logits of any size;
    `pos_weight` p broadcasts against the input (per class along the last dim)."""
    kernel = "bce_logits" if pos_weight is None else "bce_logits_pos_weight"
    return _elementwise(kernel, input, target, reduction, want_value, want_grad, grad_output, out,
                        weight=weight, pos_weight=pos_weight)


def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="mean", want_value, want_grad,
                       grad_output, out):
    """torchvision's focal loss α_t·(1 − p_t)^γ·BCE-with-logits(x, y), p = σ(x); alpha < 0 disables α."""
    alpha = float_arg(alpha, "alpha")
    gamma = float_arg(gamma, "gamma")
    return _elementwise("focal", input, target, reduction, want_value, want_grad, grad_output, out, p1=alpha,
                        p2=gamma)


def hinge_loss(input, target, *, margin=1.0, reduction="mean", want_value, want_grad, grad_output, out):
    """max(0, margin − x·y) for targets ±1 (other values enter the formula as they are); the gradient −y
    passes at the boundary (PyTorch's clamp_min)."""
    margin = float_arg(margin, "margin")
    return _elementwise("hinge", input, target, reduction, want_value, want_grad, grad_output, out, p1=margin)


def squared_hinge_loss(input, target, *, margin=1.0, reduction="mean", want_value, want_grad, grad_output, out):
    """max(0, margin − x·y)² for targets ±1."""
    margin = float_arg(margin, "margin")
    return _elementwise("squared_hinge", input, target, reduction, want_value, want_grad, grad_output, out,
                        p1=margin)


def exponential_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    """exp(−x·y) for targets ±1."""
    return _elementwise("exponential", input, target, reduction, want_value, want_grad, grad_output, out)


def soft_margin_loss(input, target, *, reduction="mean", want_value, want_grad, grad_output, out):
    """log(1 + exp(−x·y)), computed as softplus(−x·y): finite where PyTorch's log1p(exp(·)) overflows."""
    return _elementwise("soft_margin", input, target, reduction, want_value, want_grad, grad_output, out)


def kl_div(input, target, *, reduction="mean", log_target=False, want_value, want_grad, grad_output, out):
    """KL divergence with log-probability input: xlogy(t, t) − t·x (0 where t = 0), or e^t·(t − x) with
    `log_target`; input and target broadcast together, as torch's; 'batchmean' divides the sum by
    input.shape[0] (the input's own), 'mean' by the element count of the broadcast shape."""
    log_target = bool_arg(log_target, "log_target")
    kernel = "kl_div_log_target" if log_target else "kl_div"
    return _elementwise(kernel, input, target, reduction, want_value, want_grad, grad_output, out,
                        reductions=KL_REDUCTIONS, broadcast=True)


LOSSES = losses(
    "fastloss",
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    sigmoid_focal_loss,
    hinge_loss,
    squared_hinge_loss,
    exponential_loss,
    soft_margin_loss,
    kl_div,
)

# The common call (positional arrays of one dtype and shape, default options, mean) goes straight to the
# compiled `pointwise_mean`, as for the regression losses (which leaves inputs outside [0, 1] of
# binary_cross_entropy to the general path, to raise). Not sigmoid_focal_loss: its default reduction
# is 'none'.
_DEFAULT_KERNELS = {
    "binary_cross_entropy": ("bce", 0.0),
    "binary_cross_entropy_with_logits": ("bce_logits", 0.0),
    "hinge_loss": ("hinge", 1.0),  # margin
    "squared_hinge_loss": ("squared_hinge", 1.0),
    "exponential_loss": ("exponential", 0.0),
    "soft_margin_loss": ("soft_margin", 0.0),
    "kl_div": ("kl_div", 0.0),
}
for _name, (_kernel, _param) in _DEFAULT_KERNELS.items():
    LOSSES[_name].fast = functools.partial(_core.pointwise_mean, _kernel, _param)
