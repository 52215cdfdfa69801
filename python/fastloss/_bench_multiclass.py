"""Benchmark workloads for the multiclass family (registered with `fastloss.bench.register`).

cross_entropy runs at three fixed (N, C) shapes (independent of --sizes): 4096×1000, 65536×10 and
256×32000, with class-index targets, value and value_and_grad. NumPy is written the textbook way (a
stable log-softmax, then softmax − one-hot divided by N for the gradient); JAX jits value_and_grad of a
jax.nn.log_softmax formulation; PyTorch is F.cross_entropy with autograd. The other three losses run at
one moderate shape (~1e6 elements) against their NumPy textbook forms.
"""

from __future__ import annotations

import numpy as np

import fastloss as fl
from .bench import Workload, fastloss_impl, jax_impl, numpy_impl, register, torch_impl

CE_SHAPES = ((4096, 1000), (65536, 10), (256, 32000))
OTHER_SHAPE = (10_000, 100)


def _logits_and_labels(shape):
    n, c = shape

    def make(rng, _n, dtype):
        x = (rng.standard_normal((n, c)) * 2.0).astype(dtype)
        return x, rng.integers(0, c, n).astype(np.int64)

    return make


def _multilabel_inputs(shape):
    def make(rng, _n, dtype):
        x = rng.standard_normal(shape).astype(dtype)
        return x, (rng.random(shape) < 0.3).astype(dtype)

    return make


def _log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _ce_value(x, y):
    return -np.mean(_log_softmax(x)[np.arange(len(y)), y])


def _ce_grad(x, y):
    p = np.exp(_log_softmax(x))
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def _nll_value(x, y):
    return -np.mean(x[np.arange(len(y)), y])


def _nll_grad(x, y):
    g = np.zeros_like(x)
    g[np.arange(len(y)), y] = -1.0 / len(y)
    return g


def _margins(x, y):
    r = np.arange(len(y))
    z = 1.0 - x[r, y][:, None] + x
    z[r, y] = 0.0
    return z


def _mm_value(x, y):
    return np.mean(np.maximum(_margins(x, y), 0).sum(axis=1) / x.shape[1])


def _mm_grad(x, y):
    g = (_margins(x, y) > 0).astype(x.dtype) / (x.shape[1] * len(y))
    g[np.arange(len(y)), y] = -g.sum(axis=1)
    return g


def _logsigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _ml_value(x, y):
    return np.mean(-(y * _logsigmoid(x) + (1 - y) * _logsigmoid(-x)).mean(axis=1))


def _ml_grad(x, y):
    return (1 / (1 + np.exp(-x)) - y) / x.size


def _jax_ce(jax):
    jnp = jax.numpy

    def ce(x, y):
        logp = jax.nn.log_softmax(x, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    return ce


@register
def multiclass_workloads(cfg):
    F = cfg.torch.nn.functional if cfg.torch is not None else None
    for shape in CE_SHAPES:
        n = shape[0] * shape[1]
        for op in ("value", "value_and_grad"):
            impls = {"fastloss": fastloss_impl(fl.cross_entropy, op), "numpy": numpy_impl(_ce_value, _ce_grad, op)}
            if n <= cfg.reference_max_n * 5:
                impls["reference"] = fastloss_impl(fl.reference.cross_entropy, op)
            if cfg.jax is not None:
                impls["jax"] = jax_impl(cfg.jax, _jax_ce(cfg.jax), op, 0)
            if F is not None:
                impls["torch"] = torch_impl(cfg.torch, F.cross_entropy, op, (0,))
            yield Workload("cross_entropy", op, n, _logits_and_labels(shape), impls,
                           mark="dot" if op == "value" else "add", group="multiclass")
    others = (
        ("nll_loss", _logits_and_labels(OTHER_SHAPE), _nll_value, _nll_grad, "nll_loss"),
        ("multi_margin_loss", _logits_and_labels(OTHER_SHAPE), _mm_value, _mm_grad, "multi_margin_loss"),
        ("multilabel_soft_margin_loss", _multilabel_inputs(OTHER_SHAPE), _ml_value, _ml_grad,
         "multilabel_soft_margin_loss"),
    )
    n = OTHER_SHAPE[0] * OTHER_SHAPE[1]
    for name, make, value, grad, torch_name in others:
        for op in ("value", "value_and_grad"):
            impls = {"fastloss": fastloss_impl(getattr(fl, name), op), "numpy": numpy_impl(value, grad, op)}
            if n <= cfg.reference_max_n:
                impls["reference"] = fastloss_impl(getattr(fl.reference, name), op)
            if F is not None:
                impls["torch"] = torch_impl(cfg.torch, getattr(F, torch_name), op, (0,))
            yield Workload(name, op, n, make, impls, mark="dot" if op == "value" else "add", group="multiclass")
