"""Benchmark workloads for the optim family (registered with `fastloss.bench.register`).

Op "step": one optimizer step on a parameter of n elements, in place. Every implementation starts
from the same parameter and gradient with fresh state; the first (untimed) call of each is one step,
whose result is compared with fastloss's; timed calls just keep stepping (state evolves, the work per
step does not). Implementations:
- fastloss: `fl.optim.<Class>([p]).step([g])`;
- numpy: the update as users write it from the paper / torch docs (textbook expressions, temporaries);
- reference: `fl.reference.optim` (torch's update order in NumPy);
- torch: `torch.optim.<Class>` with `fused=True` where torch has a fused CPU kernel (Adam, AdamW, SGD),
  else the default; `torch_foreach` with `foreach=True` (both when torch is installed).
The mark is `np.add(a, b, out=c)`. `adam_200x1000` steps 200 arrays of 1000 elements in one call (the
per-array overhead case); its `fastloss_one_array` row does the same arithmetic on one 200 000-element
array, so the difference / 200 is the overhead per array.
"""

from __future__ import annotations

import numpy as np

import fastloss as fl
from fastloss.bench import Config, Workload, register

LR = 1e-3


def _param_grad(rng, n, dtype):
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


def _fastloss(cls_name, kwargs, module=fl.optim):
    def prepare(a):
        p, g = a[0].copy(), a[1]
        opt = getattr(module, cls_name)([p], **kwargs)
        step = opt.step
        grads = [g]

        def call():
            step(grads)
            return p
        return call
    return prepare


# The updates as users write them in NumPy (one function per optimizer; state in a closure).
def _numpy_adam_on(p, g, decoupled_wd=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
    """A textbook NumPy Adam step on `p` (in place) with gradient `g`."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    t = 0

    def call():
        nonlocal m, v, t
        t += 1
        if decoupled_wd:
            p[...] -= LR * decoupled_wd * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p[...] -= LR * m_hat / (np.sqrt(v_hat) + eps)
        return p
    return call


def _numpy_adam(decoupled_wd=0.0):
    return lambda a: _numpy_adam_on(a[0].copy(), a[1], decoupled_wd)


def _numpy_rmsprop(alpha=0.99, eps=1e-8, lr=1e-2):
    def prepare(a):
        p, g = a[0].copy(), a[1]
        v = np.zeros_like(p)

        def call():
            nonlocal v
            v = alpha * v + (1 - alpha) * g**2
            p[...] -= lr * g / (np.sqrt(v) + eps)
            return p
        return call
    return prepare


def _numpy_sgd_momentum(momentum=0.9):
    def prepare(a):
        p, g = a[0].copy(), a[1]
        buf = np.zeros_like(p)

        def call():
            nonlocal buf
            buf = momentum * buf + g
            p[...] -= LR * buf
            return p
        return call
    return prepare


def _torch(torch, cls_name, kwargs, mode):
    def prepare(a):
        tp = torch.from_numpy(a[0].copy()).requires_grad_(True)
        tp.grad = torch.from_numpy(a[1].copy())
        opt = getattr(torch.optim, cls_name)([tp], **kwargs, **{mode: True})

        def call():
            with torch.no_grad():
                opt.step()
            return tp
        return call
    return prepare


def _torch_works(torch, cls_name, kwargs, mode):
    try:
        t = torch.zeros(2, requires_grad=True)
        t.grad = torch.ones(2)
        getattr(torch.optim, cls_name)([t], **kwargs, **{mode: True}).step()
        return True
    except Exception:  # noqa: BLE001  (an older torch without that CPU path)
        return False


# name: (class, fastloss/torch kwargs, numpy prepare)
OPTIMIZERS = {
    "adam": ("Adam", {"lr": LR}, _numpy_adam()),
    "adamw": ("AdamW", {"lr": LR, "weight_decay": 1e-2}, _numpy_adam(decoupled_wd=1e-2)),
    "rmsprop": ("RMSprop", {"lr": 1e-2}, _numpy_rmsprop()),
    "sgd_momentum": ("SGD", {"lr": LR, "momentum": 0.9}, _numpy_sgd_momentum()),
}


def _torch_impls(cfg, cls_name, kwargs):
    impls = {}
    if cfg.torch is None:
        return impls
    fused = cls_name in ("Adam", "AdamW", "SGD") and _torch_works(cfg.torch, cls_name, kwargs, "fused")
    impls["torch"] = _torch(cfg.torch, cls_name, kwargs, "fused" if fused else "foreach")
    if fused:
        impls["torch_foreach"] = _torch(cfg.torch, cls_name, kwargs, "foreach")
    return impls


@register
def optim_workloads(cfg: Config):
    for name, (cls_name, kwargs, numpy_prepare) in OPTIMIZERS.items():
        for n in cfg.sizes:
            impls = {"fastloss": _fastloss(cls_name, kwargs), "numpy": numpy_prepare}
            if n <= cfg.reference_max_n:
                impls["reference"] = _fastloss(cls_name, kwargs, fl.reference.optim)
            impls.update(_torch_impls(cfg, cls_name, kwargs))
            yield Workload(name, "step", n, _param_grad, impls, mark="add", group="optim")
    yield many_small_arrays(cfg)


ARRAYS, SIZE = 200, 1000


def _split(a):
    return [np.ascontiguousarray(x) for x in a.reshape(ARRAYS, SIZE)]


def many_small_arrays(cfg: Config) -> Workload:
    """Adam on 200 arrays × 1000 elements in one step call; each implementation returns the first array."""

    def fast(a):
        ps, gs = _split(a[0].copy()), _split(a[1])
        opt = fl.optim.Adam(ps, lr=LR)

        def call():
            opt.step(gs)
            return ps[0]
        return call

    def one_array(a):
        p, g = a[0].copy(), a[1]
        opt = fl.optim.Adam([p], lr=LR)

        def call():
            opt.step([g])
            return p[:SIZE]
        return call

    def numpy_loop(a):
        ps, gs = _split(a[0].copy()), _split(a[1])
        calls = [_numpy_adam_on(p, g) for p, g in zip(ps, gs)]

        def call():
            for c in calls:
                c()
            return ps[0]
        return call

    impls = {"fastloss": fast, "fastloss_one_array": one_array, "numpy": numpy_loop}
    if cfg.torch is not None:
        torch = cfg.torch
        fused = _torch_works(torch, "Adam", {"lr": LR}, "fused")

        def torch_prepare(a, mode="fused" if fused else "foreach"):
            tps = [torch.from_numpy(x).requires_grad_(True) for x in _split(a[0].copy())]
            for t, gr in zip(tps, _split(a[1])):
                t.grad = torch.from_numpy(gr)
            opt = torch.optim.Adam(tps, lr=LR, **{mode: True})

            def call():
                with torch.no_grad():
                    opt.step()
                return tps[0]
            return call
        impls["torch"] = torch_prepare
    return Workload("adam_200x1000", "step", ARRAYS * SIZE, _param_grad, impls, mark="add", group="optim")
