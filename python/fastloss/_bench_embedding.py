"""Benchmark workloads for the embedding family (registered with `fastloss.bench.register`).

Triplet, contrastive and cosine-embedding value_and_grad at a fixed shape (N, D) = (65536, 128): the
row count is what a training batch of embeddings looks like, and `n` in the table is N·D, the
elements of each input array (the `add` mark times np.add on arrays of that size). NumPy is written
the textbook way: norms with np.linalg.norm / np.sum, gradients of the mean by hand.
"""

from __future__ import annotations

import numpy as np

import fastloss as fl

from .bench import VG_OUT, Config, Workload, fastloss_impl, jax_impl, numpy_impl, register, torch_impl

N_ROWS, DIM = 65536, 128
EPS = 1e-6
MARGIN = 1.0


def _triplet_inputs(rng, n, dtype):
    a = rng.standard_normal((N_ROWS, DIM)).astype(dtype)
    p = (a + 0.5 * rng.standard_normal((N_ROWS, DIM))).astype(dtype)
    q = rng.standard_normal((N_ROWS, DIM)).astype(dtype)
    return a, p, q


def _pair_inputs(rng, n, dtype):
    x1 = rng.standard_normal((N_ROWS, DIM)).astype(dtype)
    x2 = (x1 + rng.standard_normal((N_ROWS, DIM))).astype(dtype)
    y = rng.integers(0, 2, N_ROWS).astype(dtype)
    return x1, x2, y


def _cosine_inputs(rng, n, dtype):
    x1, x2, y = _pair_inputs(rng, n, dtype)
    return x1, x2, (2 * y - 1).astype(dtype)


# --- NumPy, as users write these losses -------------------------------------------------------

def np_triplet_value(a, p, n):
    d_ap = np.linalg.norm(a - p + EPS, axis=1)
    d_an = np.linalg.norm(a - n + EPS, axis=1)
    return np.mean(np.maximum(MARGIN + d_ap - d_an, 0))


def np_triplet_grad(a, p, n):
    u, v = a - p + EPS, a - n + EPS
    d_ap, d_an = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    active = (MARGIN + d_ap - d_an >= 0) / len(a)
    gu = u * (active / d_ap)[:, None]
    gv = v * (active / d_an)[:, None]
    return gu - gv, -gu, gv


def np_contrastive_value(x1, x2, y):
    d = np.linalg.norm(x1 - x2 + EPS, axis=1)
    return np.mean((1 - y) * 0.5 * d**2 + y * 0.5 * np.maximum(MARGIN - d, 0) ** 2)


def np_contrastive_grad(x1, x2, y):
    u = x1 - x2 + EPS
    d = np.linalg.norm(u, axis=1)
    dl_dd = (1 - y) * d - y * np.maximum(MARGIN - d, 0)
    g = u * (dl_dd / d / len(x1))[:, None]
    return g, -g


def np_cosine_value(x1, x2, y):
    cos = np.sum(x1 * x2, axis=1) / np.sqrt((np.sum(x1**2, axis=1) + 1e-12) * (np.sum(x2**2, axis=1) + 1e-12))
    return np.mean(np.where(y == 1, 1 - cos, np.maximum(cos, 0)))


def np_cosine_grad(x1, x2, y):
    a, b = np.sum(x1**2, axis=1) + 1e-12, np.sum(x2**2, axis=1) + 1e-12
    denom = np.sqrt(a * b)
    cos = np.sum(x1 * x2, axis=1) / denom
    s = np.where(y == 1, -1.0, (cos >= 0).astype(float)) / len(x1)
    g1 = (x2 / denom[:, None] - x1 * (cos / a)[:, None]) * s[:, None]
    g2 = (x1 / denom[:, None] - x2 * (cos / b)[:, None]) * s[:, None]
    return g1, g2


# --- JAX / PyTorch -------------------------------------------------------------------------------

def _jax_fns(jnp):
    def triplet(a, p, n):
        d_ap = jnp.linalg.norm(a - p + EPS, axis=1)
        d_an = jnp.linalg.norm(a - n + EPS, axis=1)
        return jnp.mean(jnp.maximum(MARGIN + d_ap - d_an, 0))

    def contrastive(x1, x2, y):
        d = jnp.linalg.norm(x1 - x2 + EPS, axis=1)
        return jnp.mean((1 - y) * 0.5 * d**2 + y * 0.5 * jnp.maximum(MARGIN - d, 0) ** 2)

    def cosine(x1, x2, y):
        cos = jnp.sum(x1 * x2, axis=1) / jnp.sqrt((jnp.sum(x1**2, axis=1) + 1e-12) * (jnp.sum(x2**2, axis=1) + 1e-12))
        return jnp.mean(jnp.where(y == 1, 1 - cos, jnp.maximum(cos, 0)))

    return {"triplet_margin_loss": triplet, "contrastive_loss": contrastive, "cosine_embedding_loss": cosine}


def _torch_fns(torch, F):
    def contrastive(x1, x2, y):
        d = F.pairwise_distance(x1, x2, eps=EPS)
        return torch.mean((1 - y) * 0.5 * d**2 + y * 0.5 * torch.clamp_min(MARGIN - d, 0) ** 2)

    return {
        "triplet_margin_loss": F.triplet_margin_loss,
        "contrastive_loss": contrastive,
        "cosine_embedding_loss": F.cosine_embedding_loss,
    }


WORKLOADS = {
    #  loss: (inputs, differentiable argnums, numpy value, numpy grad)
    "triplet_margin_loss": (_triplet_inputs, (0, 1, 2), np_triplet_value, np_triplet_grad),
    "contrastive_loss": (_pair_inputs, (0, 1), np_contrastive_value, np_contrastive_grad),
    "cosine_embedding_loss": (_cosine_inputs, (0, 1), np_cosine_value, np_cosine_grad),
}


@register
def embedding_workloads(cfg: Config):
    jax_fns = _jax_fns(cfg.jax.numpy) if cfg.jax is not None else {}
    torch_fns = _torch_fns(cfg.torch, cfg.torch.nn.functional) if cfg.torch is not None else {}
    n = N_ROWS * DIM
    for name, (make_inputs, argnums, value, grad) in WORKLOADS.items():
        # value_and_grad(out=) as well: each gradient is 32 MiB, at glibc's largest mmap threshold,
        # so an allocating call also pays for the kernel zeroing fresh pages.
        for op in ("value_and_grad", VG_OUT):
            ad_op = "value_and_grad"
            impls = {"fastloss": fastloss_impl(getattr(fl, name), op), "numpy": numpy_impl(value, grad, ad_op)}
            if n <= cfg.reference_max_n:
                impls["reference"] = fastloss_impl(getattr(fl.reference, name), op)
            if name in jax_fns:
                impls["jax"] = jax_impl(cfg.jax, jax_fns[name], ad_op, argnums)
            if name in torch_fns:
                impls["torch"] = torch_impl(cfg.torch, torch_fns[name], ad_op, argnums)
            yield Workload(name, op, n, make_inputs, impls, mark="add", group="embedding")
