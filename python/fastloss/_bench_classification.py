"""Benchmark workloads for the classification family (registered with `fastloss.bench.register`).

NumPy is written the way users write these losses (the stable textbook forms, one expression per
quantity); `value_and_grad` calls the value and the gradient expressions, as user code does. JAX and
PyTorch differentiate the same formula (PyTorch's own function where `torch.nn.functional` has one).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

import fastloss as fl
from fastloss.bench import Config, Workload, fastloss_impl, jax_impl, numpy_impl, register, torch_impl


def _logits_labels(rng, n, dtype):              # logits ~ N(0, 2²), hard 0/1 labels
    return (2 * rng.standard_normal(n)).astype(dtype), (rng.random(n) < 0.5).astype(dtype)


def _probs_labels(rng, n, dtype):               # probabilities away from 0 and 1, hard labels
    return rng.uniform(0.01, 0.99, n).astype(dtype), (rng.random(n) < 0.5).astype(dtype)


def _scores_signs(rng, n, dtype):               # scores ~ N(0, 1), targets ±1
    return rng.standard_normal(n).astype(dtype), rng.choice([-1.0, 1.0], n).astype(dtype)


def _kl_pair(rng, n, dtype):                    # log-probabilities and probabilities of 10 classes
    c = 10
    x = rng.standard_normal((n // c, c))
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    t = rng.dirichlet(np.ones(c), n // c)
    return logp.ravel().astype(dtype), t.ravel().astype(dtype)


INPUTS: dict[str, Callable] = {
    "binary_cross_entropy_with_logits": _logits_labels,
    "binary_cross_entropy": _probs_labels,
    "sigmoid_focal_loss": _logits_labels,
    "hinge_loss": _scores_signs,
    "squared_hinge_loss": _scores_signs,
    "exponential_loss": _scores_signs,
    "soft_margin_loss": _scores_signs,
    "kl_div": _kl_pair,
}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _focal_value(x, y, alpha=0.25, gamma=2.0):
    p = _sigmoid(x)
    ce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return np.mean(alpha_t * ce * (1 - p_t) ** gamma)


def _focal_grad(x, y, alpha=0.25, gamma=2.0):
    p = _sigmoid(x)
    ce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    q = 1 - (p * y + (1 - p) * (1 - y))
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return alpha_t * ((p - y) * q**gamma + ce * gamma * q ** (gamma - 1) * p * (1 - p) * (1 - 2 * y)) / x.size


NUMPY_TEXTBOOK: dict[str, tuple[Callable, Callable]] = {
    "binary_cross_entropy_with_logits": (
        lambda x, y: np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))),
        lambda x, y: (_sigmoid(x) - y) / x.size),
    "binary_cross_entropy": (
        lambda x, y: -np.mean(y * np.log(x) + (1 - y) * np.log(1 - x)),
        lambda x, y: (x - y) / (x * (1 - x)) / x.size),
    "sigmoid_focal_loss": (_focal_value, _focal_grad),
    "hinge_loss": (
        lambda x, y: np.mean(np.maximum(0, 1 - x * y)),
        lambda x, y: np.where(1 - x * y >= 0, -y, 0) / x.size),
    "squared_hinge_loss": (
        lambda x, y: np.mean(np.maximum(0, 1 - x * y) ** 2),
        lambda x, y: -2 * y * np.maximum(0, 1 - x * y) / x.size),
    "exponential_loss": (
        lambda x, y: np.mean(np.exp(-x * y)),
        lambda x, y: -y * np.exp(-x * y) / x.size),
    "soft_margin_loss": (
        lambda x, y: np.mean(np.logaddexp(0, -x * y)),
        lambda x, y: -y * _sigmoid(-x * y) / x.size),
    "kl_div": (
        lambda x, t: np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * x) / x.size,
        lambda x, t: -t / x.size),
}


def jax_textbook(jnp, jax) -> dict[str, Callable]:
    def focal(x, y, alpha=0.25, gamma=2.0):
        p = jax.nn.sigmoid(x)
        ce = jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
        p_t = p * y + (1 - p) * (1 - y)
        return jnp.mean((alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma)

    return {
        "binary_cross_entropy_with_logits":
            lambda x, y: jnp.mean(jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))),
        "binary_cross_entropy": lambda x, y: -jnp.mean(y * jnp.log(x) + (1 - y) * jnp.log1p(-x)),
        "sigmoid_focal_loss": focal,
        "hinge_loss": lambda x, y: jnp.mean(jnp.maximum(0, 1 - x * y)),
        "squared_hinge_loss": lambda x, y: jnp.mean(jnp.maximum(0, 1 - x * y) ** 2),
        "exponential_loss": lambda x, y: jnp.mean(jnp.exp(-x * y)),
        "soft_margin_loss": lambda x, y: jnp.mean(jax.nn.softplus(-x * y)),
        "kl_div": lambda x, t: jnp.mean(jax.scipy.special.xlogy(t, t) - t * x),
    }


def torch_losses(torch, F) -> dict[str, Callable]:
    def focal(x, y, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        return torch.mean((alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma)

    return {
        "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
        "binary_cross_entropy": F.binary_cross_entropy,
        "sigmoid_focal_loss": focal,
        "hinge_loss": lambda x, y: torch.mean(torch.clamp_min(1 - x * y, 0)),
        "squared_hinge_loss": lambda x, y: torch.mean(torch.clamp_min(1 - x * y, 0) ** 2),
        "exponential_loss": lambda x, y: torch.mean(torch.exp(-x * y)),
        "soft_margin_loss": F.soft_margin_loss,
        "kl_div": F.kl_div,
    }


@register
def classification_workloads(cfg: Config) -> Iterable[Workload]:
    jax_fns = jax_textbook(cfg.jax.numpy, cfg.jax) if cfg.jax is not None else {}
    torch_fns = torch_losses(cfg.torch, cfg.torch.nn.functional) if cfg.torch is not None else {}
    for name, make_inputs in INPUTS.items():
        loss, ref = getattr(fl, name), getattr(fl.reference, name)
        value, grad = NUMPY_TEXTBOOK[name]
        for op in ("value", "value_and_grad"):
            jax_prepare = jax_impl(cfg.jax, jax_fns[name], op, 0) if name in jax_fns else None
            for n in cfg.sizes:
                impls = {"fastloss": fastloss_impl(loss, op), "numpy": numpy_impl(value, grad, op)}
                if n <= cfg.reference_max_n:
                    impls["reference"] = fastloss_impl(ref, op)
                if jax_prepare is not None:
                    impls["jax"] = jax_prepare
                if name in torch_fns:
                    impls["torch"] = torch_impl(cfg.torch, torch_fns[name], op, (0,))
                yield Workload(name, op, n, make_inputs, impls, mark="dot" if op == "value" else "add",
                               group="classification")
