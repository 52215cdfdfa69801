"""Helpers shared by the reference losses: reductions, the gradient factor, `out=` handling."""

from __future__ import annotations

import math

import numpy as np

from .._args import float_arrays, grad_output_arg, out_arg, reduction_arg, same_shape


def torch_sign(r):
    """torch.sign: −1, 0 or +1, and 0 for NaN (NumPy's sign keeps NaN): the subgradient of |r| in
    torch's l1 loss and p = 1 norm backward."""
    return np.where(np.isnan(r), 0.0, np.sign(r))


def reduce_losses(per_element, reduction, dtype, divisor=None):
    """Applies `reduction` to float64 per-element losses; returns a value of `dtype`."""
    if reduction == "none":
        return np.asarray(per_element).astype(dtype)  # an ndarray even for 0-d inputs
    total = per_element.sum()
    if reduction == "sum":
        return dtype.type(total)
    divisor = per_element.size if divisor is None else divisor
    return dtype.type(total / divisor) if divisor else dtype.type(math.nan)


def grad_factor(shape, dtype, reduction, grad_output, divisor):
    """The factor every per-element derivative is multiplied by: grad_output, over the divisor for a mean."""
    scale, go = grad_output_arg(grad_output, shape, dtype, reduction)
    factor = np.full(shape, scale) if go is None else go.astype(np.float64)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = factor / np.float64(divisor)
    return factor


def store_grad(grad, out, dtype, name="out"):
    buf = out_arg(out, grad.shape, dtype, name)
    buf[...] = grad
    return buf


def elementwise(formula, input, target, weight, reduction, want_value, want_grad, grad_output, out,
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
        value = reduce_losses(w * loss, reduction, dtype, divisor) if want_value else None
        if not want_grad:
            return value, None
        factor = grad_factor(x.shape, dtype, reduction, grad_output, divisor)
        return value, store_grad(w * factor * dloss, out, dtype)
