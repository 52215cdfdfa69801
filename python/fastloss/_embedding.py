"""Embedding and ranking losses on the compiled kernels (src/embedding.rs).

Row-wise losses take one loss per row of the last axis. triplet_margin_loss and contrastive_loss
take inputs of any shape (..., D) with one D and one number of dimensions, whose leading axes
broadcast together, as torch's triplet_margin_loss (a 0-d input is one row of one element);
cosine_embedding_loss takes (N, D) or unbatched (D,), all of one shape, as torch. margin_ranking_loss
and hinge_embedding_loss are element-wise on any shape. The argument checks here are shared with
`fastloss.reference`.
"""

from __future__ import annotations

import math

import numpy as np

from . import _core
from ._args import (
    bool_arg,
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
from ._classification import broadcast_arg
from ._loss import losses

ZERO_ONE = (0.0, 1.0)


def check_targets(t, allowed, name="target"):
    """Raises ValueError unless every entry of `t` is one of the two `allowed` values."""
    ok = (t == allowed[0]) | (t == allowed[1])
    if not ok.all():
        bad = t[~ok].flat[0]
        raise ValueError(f"{name}: entries must be {allowed[0]:g} or {allowed[1]:g}, got {bad!r}")


def row_arrays(named, target=None, allowed=None, any_rank=False):
    """Converts the row-wise losses' inputs: every array in `named` (the float inputs) with one
    shape, (N, D) or (D,) (if `any_rank`, shapes (..., D) of one number of dimensions and one D
    whose leading axes broadcast together, 0-d as one row of one element), and a target of the
    loss's shape (with values in `allowed` unless None).

    Returns (dtype, inputs, target array or None, shape): the inputs keep their own shapes, `shape`
    is their broadcast shape (see `rows_of`)."""
    args = dict(named)
    if target is not None:
        args["target"] = target
    dtype, arrays = float_arrays(args, float_names=tuple(named))
    names = list(named)
    xs = arrays[: len(names)]
    first = names[0]
    shape = xs[0].shape
    if not any_rank and len(shape) not in (1, 2):
        raise ValueError(f"{first}: expected shape (N, D) or (D,), got {shape}")
    for name, x in zip(names[1:], xs[1:]):
        if not any_rank:
            same_shape(shape, x, name, first)
        elif x.ndim != len(shape):
            raise ValueError(f"{name}: expected {len(shape)} dimensions as {first} has, got shape {x.shape}")
        elif x.shape[-1:] != shape[-1:]:
            # torch would broadcast D too, but each distance over its own pair's D
            raise ValueError(f"{name}: rows of length {x.shape[-1]}, {first}'s are {shape[-1]} (only the leading "
                             f"axes broadcast)")
        else:
            try:
                shape = np.broadcast_shapes(shape, x.shape)
            except ValueError:
                raise ValueError(f"{name}: shape {x.shape} does not broadcast with {shape}, the shape of the "
                                 f"inputs before it") from None
    value_shape = shape[:-1]
    t = None
    if target is not None:
        t = arrays[-1]
        if t.shape != value_shape:
            raise ValueError(f"target: shape {t.shape} does not match the loss's shape {value_shape} "
                             f"(one target per row of {first})")
        if allowed is not None:
            check_targets(t, allowed)
    return dtype, xs, t, shape


def rows_of(shape):
    """(rows, row length, loss shape) of inputs of `shape` (..., D); 0-d is one row of one element."""
    return math.prod(shape[:-1]), (shape[-1] if shape else 1), shape[:-1]


def _scale(grad_output, value_shape, dtype, reduction, n):
    scale, go = grad_output_arg(grad_output, value_shape, dtype, reduction)
    if reduction == "mean":
        scale = scale / n if n else scale * math.inf
    return scale, go


def _rows(kernel, named, target, allowed, options, reduction, want_value, want_grad, grad_output, out,
          any_rank=False):
    reduction_arg(reduction)
    dtype, xs, t, shape = row_arrays(named, target, allowed, any_rank)
    nrows, d, value_shape = rows_of(shape)
    scale, go = _scale(grad_output, value_shape, dtype, reduction, nrows)
    value_out = np.empty(value_shape, dtype) if want_value and reduction == "none" else None
    grads = outs_arg(out, [x.shape for x in xs], dtype) if want_grad else None
    # An input broadcast to the others' shape is copied at that shape, and its gradient is the sum
    # of those of the rows it stands for: the kernel writes them to a temporary.
    stretched = [x.shape != shape for x in xs]
    xs = [broadcast_arg(x, shape, name) for x, name in zip(xs, named)]
    kernel_grads = [np.empty(shape, dtype) if s else g for g, s in zip(grads, stretched)] if want_grad else None
    *xs, t, go = unalias([*xs, t, go], grads or [])
    extra = (t,) if t is not None else ()
    total = kernel(*xs, *extra, nrows, d, *options, go, scale, want_value and reduction != "none", value_out,
                   kernel_grads)
    value = finish_value(total, nrows, reduction, dtype, value_out) if want_value else None
    if want_grad:
        for g, kg, s in zip(grads, kernel_grads, stretched):
            if s:
                g[...] = sum_to_shape(kg, g.shape)
    return value, (tuple(grads) if want_grad else None)


def triplet_options(margin, p, eps, swap):
    margin = float_arg(margin, "margin", minimum=0.0, exclusive=True)  # as torch
    p = float_arg(p, "p", minimum=0.0, exclusive=True)
    eps = float_arg(eps, "eps")
    return margin, p, eps, bool_arg(swap, "swap")


def triplet_margin_loss(anchor, positive, negative, *, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean",
                        want_value, want_grad, grad_output, out):
    """max(0, margin + d(a, p) − d(a, n)) with d(x, y) = ‖x − y + eps‖_p (PyTorch's pairwise_distance;
    p > 0, inf for the max norm, whose gradient is shared equally among the elements that attain the
    max, as in PyTorch); `swap` uses min(d(a, n), d(p, n)). Gradients (anchor, positive, negative)."""
    opts = triplet_options(margin, p, eps, swap)
    named = {"anchor": anchor, "positive": positive, "negative": negative}
    return _rows(_core.triplet_margin, named, None, None, opts, reduction, want_value, want_grad, grad_output, out,
                 any_rank=True)


def contrastive_loss(input1, input2, target, *, margin=1.0, eps=1e-6, reduction="mean", want_value, want_grad,
                     grad_output, out):
    """(1 − y)·½d² + y·½·max(0, margin − d)², d = ‖x1 − x2 + eps‖₂; target 1 = dissimilar pair,
    0 = similar (Hadsell et al. 2006). Gradients (input1, input2)."""
    opts = (float_arg(margin, "margin"), float_arg(eps, "eps"))
    named = {"input1": input1, "input2": input2}
    return _rows(_core.contrastive, named, target, ZERO_ONE, opts, reduction, want_value, want_grad, grad_output,
                 out, any_rank=True)


def cosine_embedding_loss(input1, input2, target, *, margin=0.0, reduction="mean", want_value, want_grad,
                          grad_output, out):
    """1 − cos for target 1, max(0, cos − margin) for target −1 and 0 for any other target (as
    torch), with PyTorch's cos = ⟨x1, x2⟩ / √((‖x1‖² + ε)(‖x2‖² + ε)), ε = float32(1e-12) in both dtypes
    (as torch). Gradients (input1, input2)."""
    opts = (float_arg(margin, "margin"),)
    named = {"input1": input1, "input2": input2}
    return _rows(_core.cosine_embedding, named, target, None, opts, reduction, want_value, want_grad,
                 grad_output, out)


def elementwise_arrays(named, target):
    """The element-wise ranking losses' inputs: every array with one shape (targets of any value, as
    torch: ±1 are the meaningful ones)."""
    args = {**named, "target": target}
    dtype, arrays = float_arrays(args, float_names=tuple(named))
    names = list(args)
    for name, a in zip(names[1:], arrays[1:]):
        same_shape(arrays[0].shape, a, name, names[0])
    return dtype, arrays


def _elementwise(kernel, named, target, margin, reduction, want_value, want_grad, grad_output, out):
    reduction_arg(reduction)
    margin = float_arg(margin, "margin")
    dtype, arrays = elementwise_arrays(named, target)
    x, y = arrays[0], arrays[-1]
    z = arrays[1] if len(arrays) == 3 else None
    n = x.size
    scale, go = _scale(grad_output, x.shape, dtype, reduction, n)
    value_out = np.empty(x.shape, dtype) if want_value and reduction == "none" else None
    g1 = g2 = None
    if want_grad:
        if z is None:
            g1 = out_arg(out, x.shape, dtype)
        else:
            g1, g2 = outs_arg(out, [x.shape, x.shape], dtype)
    x, y, z, go = unalias([x, y, z, go], [g1, g2])
    total = _core.ranking_elementwise(kernel, x, y, z, margin, go, scale, want_value and reduction != "none",
                                      value_out, g1, g2)
    value = finish_value(total, n, reduction, dtype, value_out) if want_value else None
    if not want_grad:
        return value, None
    return value, (g1 if z is None else (g1, g2))


def margin_ranking_loss(input1, input2, target, *, margin=0.0, reduction="mean", want_value, want_grad,
                        grad_output, out):
    """max(0, −y·(x1 − x2) + margin), element-wise, target y (±1). Gradients (input1, input2)."""
    named = {"input1": input1, "input2": input2}
    return _elementwise("margin_ranking", named, target, margin, reduction, want_value, want_grad, grad_output, out)


def hinge_embedding_loss(input, target, *, margin=1.0, reduction="mean", want_value, want_grad, grad_output, out):
    """x where target is 1, max(0, margin − x) where it is −1, element-wise; as torch, any other target
    gets both terms."""
    return _elementwise("hinge_embedding", {"input": input}, target, margin, reduction, want_value, want_grad,
                        grad_output, out)


LOSSES = losses(
    "fastloss",
    triplet_margin_loss,
    contrastive_loss,
    cosine_embedding_loss,
    margin_ranking_loss,
    hinge_embedding_loss,
)
