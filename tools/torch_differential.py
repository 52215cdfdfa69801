"""Differential check of fastloss against an installed PyTorch (a developer tool: CI has no torch).

    python tools/torch_differential.py [--quick] [--seed N] [--only losses|optim|schedules]

Needs torch besides fastloss and NumPy. Prints one line per check group, then every mismatch (name,
options, dtype, shapes, what differed, fastloss vs torch, max abs/rel difference); exits 1 if there is
any. Deterministic for a given seed; about a minute in full, 10 s with --quick (2 cores).

- Losses: value and gradients (torch autograd, with `grad_output`) for reductions none/mean/sum, float32
  and float64, random shapes and adversarial values. Inputs hold float32 values, so torch in float64 on
  the same numbers is the arbiter: a float32 result is flagged when it is further from it than 4 ulp of
  the magnitude of the terms (the results', or the table's hint where terms cancel) and than twice torch
  float32's own error; float64 results to 1e-12 relative, plus the float32 errors scaled to float64.
- Optimizers: 20-step trajectories compared bitwise with torch's single-tensor path (foreach=False),
  run with ATEN_CPU_CAPABILITY=default (no fused multiply-adds; set below, before torch is imported)
  and an IEEE square root patched into torch; a state_dict round trip mid-run.
- Schedules: every schedule torch has, 120 epochs, 2 parameter groups, bitwise (lr, momentum/betas).

README ("Checked against PyTorch 2.13 itself") lists where fastloss differs on purpose. Such inputs are
not generated (targets of another shape but kl_div's, invalid or NaN hyper-parameters, Adagrad's per-group
initial_accumulator_value) or are counted as "known differences", not mismatches: torch non-finite
through overflow or 0 * inf where fastloss is finite, BCE-with-logits at -inf (also inside the focal
formula), ignored cross-entropy rows holding NaN/inf, multi-margin over an empty batch.
"""
import os

os.environ["ATEN_CPU_CAPABILITY"] = "default"  # before `import torch`: its CPU kernels then fuse no multiply-adds
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fastloss as fl  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
EPS = {F32: float(np.finfo(F32).eps), F64: float(np.finfo(F64).eps)}
TINY = {F32: float(np.finfo(F32).tiny), F64: float(np.finfo(F64).tiny)}
STATS, MISMATCHES = {}, []  # group -> [checks, mismatches, known differences]; mismatch texts


def tally(group, bad=None, known=False):
    s = STATS.setdefault(group, [0, 0, 0])
    s[0] += 1
    s[1 if bad else 2] += bool(bad or known)
    if bad:
        MISMATCHES.append(f"[{group}] {bad}")


def fmt(v):
    if not isinstance(v, np.ndarray):
        return repr(v)
    return f"arr{v.shape}" if v.size > 4 else np.array2string(v, separator=",")


def compare(f, t, r, dt, scale=0.0, floor=0.0):
    """fastloss `f` vs torch `t` (dtype dt) with the arbiter `r` (torch float64 on the same numbers); `scale`:
    the magnitude of the terms, `floor`: an error torch float32 is known to make. Returns (verdict, error scale,
    detail), verdict None (agree), 'overflow' (torch non-finite where fastloss is finite at the float64 value, or
    overflows with it), 'nonfinite', 'value' or 'shape'."""
    f, t, r = (np.asarray(a, np.float64) for a in (f, t, r))
    if f.shape != t.shape:
        return "shape", 0.0, f"shape {f.shape}, torch {t.shape}"
    if f.size == 0:
        return None, 0.0, ""
    with np.errstate(all="ignore"):
        r = np.where(np.isfinite(r), r, t)
        fin = np.isfinite(f) & np.isfinite(t) & np.isfinite(r)
        same = (f == t) | (np.isnan(f) & np.isnan(t))
        E = float(np.max(np.abs(t - r)[fin], initial=0.0))
        mag = np.abs(r) + np.max(np.abs(r[fin]), initial=0.0) + scale
        tol = (np.maximum(4 * EPS[F32] * mag + 4 * TINY[F32], max(2 * E, floor)) if dt == F32
               else 1e-12 * mag + 2 * E + floor + 4 * TINY[F64])
        err = np.abs(f - r)
        nonfin = ~same & ~(np.isfinite(f) & np.isfinite(t))
        ovf = nonfin & ((np.isfinite(f) & np.isfinite(r) & (err <= tol)) |
                        (np.isinf(f) & (f * r > 0) & (np.abs(r) > np.finfo(dt).max)))
        E = max(E, float(np.max(err[fin], initial=0.0)))
        for verdict, mask in (("nonfinite", nonfin & ~ovf), ("value", ~same & fin & (err > tol)), ("overflow", ovf)):
            if mask.any():
                i = np.unravel_index(np.argmax(np.where(mask, np.nan_to_num(err, nan=np.inf), -1.0)), f.shape)
                d = np.abs(f - t)[mask]
                at = f" at {tuple(map(int, i))}" if f.ndim else ""
                return verdict, E, (f"{int(mask.sum())}/{f.size} differ{at}: fastloss {f[i]!r} torch {t[i]!r} float64 "
                                    f"{r[i]!r}; max abs diff {np.nanmax(d):.3g}, max rel diff "
                                    f"{np.nanmax(d / np.maximum(np.abs(t[mask]), TINY[F64])):.3g}")
    return None, E, ""


# ------------------------------------------------------------------------------------------------------------
# Losses. torch formulas for those torch.nn.functional lacks, and float64 arbiters where torch's own formula
# loses digits that fastloss keeps (log(1 + tiny) in BCE-with-logits, 1 - sigmoid in the focal formula)
# ------------------------------------------------------------------------------------------------------------

def _red(loss, reduction):
    return loss if reduction == "none" else (loss.sum() if reduction == "sum" else loss.mean())


def t_hinge(x, y, margin=1.0, reduction="mean", power=1):
    return _red(torch.clamp_min(margin - x * y, 0) ** power, reduction)


def t_log_cosh(x, y, reduction="mean"):  # log1p(2 sinh²(r/2)) below |r| = 1 (no cancellation), else the usual form
    r = x - y
    small = r.abs() < 1
    a = torch.where(small, torch.ones_like(r), r.abs())
    return _red(torch.where(small, torch.log1p(2 * torch.sinh(torch.where(small, r, torch.zeros_like(r)) / 2) ** 2),
                            a + torch.log1p(torch.exp(-2 * a)) - math.log(2)), reduction)


def t_contrastive(x1, x2, y, margin=1.0, eps=1e-6, reduction="mean"):
    d = F.pairwise_distance(x1, x2, eps=eps)
    return _red((1 - y) * 0.5 * d ** 2 + y * 0.5 * torch.clamp_min(margin - d, 0) ** 2, reduction)


def t_focal(x, y, alpha=0.25, gamma=2.0, reduction="mean", arbiter=False):  # torchvision.ops.sigmoid_focal_loss
    if arbiter:
        loss = r_bce_logits(x, y, reduction="none") * (torch.sigmoid(-x) * y + torch.sigmoid(x) * (1 - y)) ** gamma
    else:
        p = torch.sigmoid(x)
        loss = F.binary_cross_entropy_with_logits(x, y, reduction="none") * (1 - (p * y + (1 - p) * (1 - y))) ** gamma
    return _red((alpha * y + (1 - alpha) * (1 - y)) * loss if alpha >= 0 else loss, reduction)


def r_bce_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    sp = lambda z: torch.logaddexp(torch.zeros_like(z), z)  # noqa: E731  softplus
    loss = (1 - y) * sp(x) + (1 if pos_weight is None else pos_weight) * y * sp(-x)
    return _red(loss if weight is None else weight * loss, reduction)


KINDS = ["normal", "big", "equal", "tiny", "huge", "zeros", "grid", "mixed", "nonfinite"]


def vals(rng, shape, kind):
    """float32 values (as float64) of one kind: random, ±1e4 logits, equal, tiny, huge, zeros, a grid of kinks,
    mixed magnitudes, NaN/±inf sprinkled."""
    a = {"normal": lambda: rng.standard_normal(shape) * 2, "equal": lambda: np.full(shape, 3.25),
         "big": lambda: rng.choice([-1e4, 1e4, -100.0, 100.0, -30.0, 30.0, 0.0], size=shape),
         "tiny": lambda: rng.standard_normal(shape) * 1e-20, "huge": lambda: rng.standard_normal(shape) * 1e30,
         "zeros": lambda: np.zeros(shape), "grid": lambda: rng.integers(-3, 4, size=shape) * 0.5,
         "mixed": lambda: rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 9, size=shape),
         "nonfinite": lambda: np.where(rng.random(shape) < 0.2, rng.choice([np.nan, np.inf, -np.inf], size=shape),
                                       rng.standard_normal(shape))}[kind]()
    return np.asarray(np.asarray(a, np.float32), np.float64)


def probs(rng, shape, kind="any"):
    kind = kind if kind in ("binary", "edge", "uniform") else rng.choice(["binary", "edge", "uniform"])
    a = {"binary": lambda: rng.integers(0, 2, size=shape), "uniform": lambda: rng.random(shape),
         "edge": lambda: rng.choice([0.0, 1.0, 1e-30, 1e-7, 1 - 2 ** -24, 0.5, 1e-45], size=shape)}[kind]()
    return np.asarray(np.asarray(a, np.float32), np.float64)


def pm1(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape)


def elem_shapes(rng):
    n, m = int(rng.integers(2, 9)), int(rng.integers(2, 40))
    return [(), (0,), (1,), (m,), (n, m), (2, 0, 3), (2, n, 3)]


def row_shapes(rng):  # (N, D) inputs and the unbatched (D,)
    n, d = int(rng.integers(2, 12)), int(rng.integers(2, 20))
    return [(d,), (0, d), (1, d), (n, d), (n, 1)]


def any_rank_shapes(rng):  # triplet's and contrastive's (..., D), as torch's pairwise_distance; 0-d is one row
    return row_shapes(rng) + [(), (2, 3, int(rng.integers(1, 12)))]


def cases(make, opts=({},), diff=(0,), shapes=elem_shapes, tidy=None):
    """Cases (arrays, differentiable positions, options, kind): make(rng, shape, kind) for every kind and shape,
    with each option set of `opts` (a list, or a function of the kind); an option given as a function of
    (rng, shape) is drawn per shape. tidy(arrays, options) may drop rows (None: the whole case)."""
    def gen(rng, kinds):
        for kind in kinds:
            for shape in shapes(rng):
                arrs = make(rng, shape, kind)
                for kw in (opts(kind) if callable(opts) else opts):
                    kw = {k: v(rng, shape) if callable(v) else v for k, v in kw.items()}
                    if (a := tidy(arrs, kw) if tidy else arrs) is not None:
                        yield a, list(diff), kw, kind
    return gen


XY = lambda r, s, k: [vals(r, s, k), vals(r, s, k)]  # noqa: E731
XT = lambda r, s, k: [vals(r, s, k), pm1(r, s)]  # noqa: E731  a ±1 target
WEIGHT = {"weight": lambda r, s: np.abs(vals(r, s, "normal"))}
LAST = lambda scale: lambda r, s: probs(r, s[-1:], "uniform") * scale  # noqa: E731  a (C,)-shaped weight


def g_gaussian(rng, kinds):
    n, m = int(rng.integers(2, 7)), int(rng.integers(2, 9))
    var_shapes = {(m,): [(m,), (), (1,)], (n, m): [(n, m), (n,), (n, 1), (1, m)], (0, m): [(0, m), (0,)], (): [()],
                  (2, n, m): [(2, n, m), (2, n), (2, n, 1), (2, 1, m), (1, n, m)]}
    for kind in kinds:
        for shape, vss in var_shapes.items():
            x, y = vals(rng, shape, kind), vals(rng, shape, "normal")
            for vs in vss:
                v = np.abs(vals(rng, vs, "normal")) + rng.choice([0.0, 0.1])
                for kw in ({}, {"full": True}, {"eps": 1e-2}):
                    yield [x, y, v], [0, 2], kw, kind


def g_kl(rng, kinds):
    for kind in kinds:
        for shape in elem_shapes(rng):
            x, y = -np.abs(vals(rng, shape, kind)), probs(rng, shape)
            pairs = [(x, y)]
            if x.ndim >= 2 and x.shape[0] > 1:  # torch broadcasts the two: one target row, or one input row
                pairs += [(x, y[0]), (x[:1], y)]
            if x.ndim == 3 and x.shape[1] > 1:  # a middle axis stretched
                pairs += [(x[:, :1], y), (x, y[:1, :, :1])]
            for xi, yi in pairs:
                with np.errstate(divide="ignore"):
                    log_y = np.log(yi).astype(np.float32).astype(np.float64)
                yield [xi, yi], [0], {"log_target": False}, kind
                yield [xi, log_y], [0], {"log_target": True}, kind


def g_ce(nll):
    def gen(rng, kinds):
        for kind in kinds:
            n, c, d1, d2 = (int(rng.integers(2, k)) for k in (9, 12, 4, 4))
            for shape in [(c,), (1,), (1, c), (n, c), (n, 1), (0, c), (n, c, d1, d2), (1, c, 0, d2)]:
                c = shape[0] if len(shape) == 1 else shape[1]
                x, w = vals(rng, shape, kind), probs(rng, (c,), "uniform") * 2
                t = np.asarray(rng.integers(0, c, size=() if len(shape) == 1 else (shape[0],) + shape[2:]))
                for ii in (-100, int(rng.integers(0, c))):  # ignore_index: no class, or one
                    for kw in ({}, {"weight": w}):
                        for ls in (0.0,) if nll else (0.0, 0.1, 1.0):
                            ls_kw = {"label_smoothing": ls} if ls else {}
                            yield [x, t], [0], dict(kw, ignore_index=ii, **ls_kw), kind
                if not nll:  # probability targets
                    p = probs(rng, shape, "uniform")
                    p = np.asarray(p / np.maximum(p.sum(axis=min(1, len(shape) - 1), keepdims=True), 1e-30), np.float32)
                    for kw in ({}, {"weight": w}, {"label_smoothing": 0.2}, {"weight": w, "label_smoothing": 1.0}):
                        yield [x, p.astype(np.float64)], [0], kw, kind
    return gen


def make_triplet(rng, shape, kind):
    a, p, n = (vals(rng, shape, kind) for _ in range(3))
    if len(shape) == 2 and shape[0] >= 2:
        p[0] = a[0]  # a zero distance
        if kind in ("normal", "mixed"):
            p = p[:1]  # one positive for every anchor: broadcast along the batch axis
    return [a, p, n]


def untie_triplet(arrs, kw):
    """Drops the rows that sit on the hinge or on swap's choice up to rounding: either side is right there."""
    a, p, n = (np.reshape(x, np.shape(x) or (1,)) for x in arrs)  # a 0-d input is one row of one element
    a, p, n = np.broadcast_arrays(a, p, n)
    with np.errstate(all="ignore"):
        dap, dan, dpn = (np.linalg.norm(u - v + kw.get("eps", 1e-6), ord=kw["p"], axis=-1)
                         for u, v in ((a, p), (a, n), (p, n)))
        tol = 1e-5 * (dap + dan + dpn + 1)
        tie = np.abs(dap - (np.minimum(dan, dpn) if kw["swap"] else dan) + kw.get("margin", 1.0)) < tol
        tie |= kw["swap"] & (np.abs(dan - dpn) < tol)
    if not np.any(tie):
        return arrs
    if any(np.shape(x) != a.shape for x in arrs):  # a broadcast input: its rows are everyone's
        return None
    return [x[~tie] for x in arrs] if np.ndim(tie) else None


def make_pair(target):
    def make(rng, shape, kind):
        x1, x2 = vals(rng, shape, kind), vals(rng, shape, kind)
        if len(shape) == 2 and shape[0] >= 2:
            x1[0], x2[1] = 0.0, x1[1] * 2  # a zero vector, parallel rows
        return [x1, x2, target(rng, shape[:-1])]
    return make


def amax(*arrays):
    """The largest finite magnitude in the arrays (0 if none)."""
    fin = [np.abs(a[np.isfinite(a)]) for a in (np.asarray(x, np.float64) for x in arrays if x is not None)]
    return float(max((v.max() for v in fin if v.size), default=0.0))


def rows(x):  # the largest row sum of |x| (finite values)
    return float(np.max(np.nan_to_num(np.abs(x), posinf=0.0).sum(-1), initial=0.0))


def inv_norm(x1, x2):  # 1 / the smallest non-zero row norm
    n = np.sqrt(np.concatenate([np.sum(x1 * x1, -1).ravel(), np.sum(x2 * x2, -1).ravel()]))
    n = n[np.isfinite(n) & (n > 0)]
    return float(1 / n.min()) if n.size else 0.0


def var_terms(a, k):  # d/dvar = (1/v - (x-y)²/v²) / 2 cancels; d/dinput does not
    v = max(np.min(a[2], initial=1.0), k.get("eps", 1e-6))
    return [0.0, 1 / v + amax(a[0] - a[1]) ** 2 / v ** 2]


def focal_terms(a, k):  # the two terms of d/dx (alpha_t ce q^gamma), q = 1 - p_t, have opposite signs
    x, y, g = a[0], a[1], k["gamma"]
    with np.errstate(all="ignore"):
        p = 1 / (1 + np.exp(-x))
        q = p * (1 - y) + (1 - p) * y
        ce = np.logaddexp(0, x) - y * x
        return amax(np.abs(p - y) * q ** g + ce * g * q ** (g - 1) * p * (1 - p))


def kl_terms(a, k):  # target * (log target - input), or exp(target) * (target - input)
    x, y = a
    with np.errstate(all="ignore"):
        w = np.exp(y) if k["log_target"] else y
        return amax(w * (y if k["log_target"] else np.log(y)), w * x)


def poisson_terms(a, k):
    x, y, e = a[0], a[1], k["eps"]
    with np.errstate(all="ignore"):
        return 1 + amax(*((np.exp(x), x * y) if k["log_input"] else (x, y * np.log(x + e))), y * np.log(y + 1))


# name: (torch function, float64 arbiter or None, case generator, magnitude of the terms of one loss element and
# of its gradient where they may cancel (None: the results' own magnitude; the gradient's: a list, one per input))
LOSSES = {
    "mse_loss": (F.mse_loss, None, cases(XY, [{}, WEIGHT]), None, None),
    "l1_loss": (F.l1_loss, None, cases(XY, [{}, WEIGHT]), None, None),
    "smooth_l1_loss": (F.smooth_l1_loss, None, cases(XY, [{}, {"beta": 0.0}, {"beta": 0.5}, {"beta": 2.0}]),
                       None, None),
    "huber_loss": (F.huber_loss, None, cases(XY, [{}, {"delta": 0.5}, {"delta": 2.0}, WEIGHT]), None, None),
    "log_cosh_loss": (t_log_cosh, None, cases(XY), None, None),
    "mean_squared_log_error": (lambda x, y, reduction="mean": _red((torch.log1p(x) - torch.log1p(y)) ** 2, reduction),
                               None, cases(lambda r, s, k: [np.abs(vals(r, s, k)), np.abs(vals(r, s, k))]), None, None),
    "poisson_nll_loss": (F.poisson_nll_loss, None, cases(
        lambda r, s, k: [vals(r, s, k), np.abs(vals(r, s, "grid" if k == "normal" else k))],
        [dict(log_input=li, full=fu, eps=e) for li in (True, False) for fu in (False, True) for e in (1e-8, 0.5)]),
        poisson_terms, lambda a, k: 1 + amax(np.exp(a[0]) if k["log_input"] else a[1] / (a[0] + k["eps"]), a[1])),
    "gaussian_nll_loss": (F.gaussian_nll_loss, None, g_gaussian, lambda a, k: sum(var_terms(a, k)) + amax(np.log(a[2])),
                          var_terms),
    "binary_cross_entropy": (F.binary_cross_entropy, None, cases(
        lambda r, s, k: [probs(r, s), probs(r, s)],
        [{}, {"weight": lambda r, s: probs(r, s, "uniform") * 2}, {"weight": LAST(2)},
         {"weight": lambda r, s: probs(r, (), "uniform")}]),
        None, None),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits, r_bce_logits, cases(
        lambda r, s, k: [vals(r, s, k), probs(r, s)],
        [{}, {"weight": lambda r, s: probs(r, s, "uniform") * 2}, {"weight": LAST(2)}, {"pos_weight": LAST(3)},
         {"weight": lambda r, s: probs(r, s[:1] + (1,) * (len(s) - 1), "uniform")},  # (N, 1, ...)
         {"pos_weight": lambda r, s: probs(r, s, "uniform") * 3}, {"weight": LAST(2), "pos_weight": LAST(3)},
         {"pos_weight": lambda r, s: probs(r, (), "uniform") * 3}]),
        lambda a, k: amax(a[0]) * (1 + amax(k.get("pos_weight"))),
        lambda a, k: (1 + amax(k.get("weight"))) * (1 + amax(k.get("pos_weight")))),
    "sigmoid_focal_loss": (t_focal, lambda *a, **k: t_focal(*a, **k, arbiter=True), cases(
        lambda r, s, k: [vals(r, s, k), probs(r, s, r.choice(["binary", "uniform"]))],
        [dict(alpha=a, gamma=g) for a, g in ((0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.25, 0.5), (0.9, 1.0),
                                             (0.25, 3.5))]),
        None, focal_terms),
    "hinge_loss": (t_hinge, None, cases(XT, [{}, {"margin": 0.5}, {"margin": 0.0}]), lambda a, k: amax(a[0]), None),
    "squared_hinge_loss": (lambda *a, **k: t_hinge(*a, **k, power=2), None, cases(XT, [{}, {"margin": 0.5}]),
                           None, None),
    "exponential_loss": (lambda x, y, reduction="mean": _red(torch.exp(-x * y), reduction), None, cases(XT),
                         None, None),
    "soft_margin_loss": (F.soft_margin_loss, None, cases(XT), None, None),
    "hinge_embedding_loss": (F.hinge_embedding_loss, None, cases(XT, [{}, {"margin": 0.5}, {"margin": 0.0}]),
                             lambda a, k: amax(a[0]), None),
    "margin_ranking_loss": (F.margin_ranking_loss, None, cases(
        lambda r, s, k: [vals(r, s, k), vals(r, s, k), pm1(r, s)], [{}, {"margin": 0.5}, {"margin": -0.5}], (0, 1)),
        lambda a, k: 2 * amax(a[0], a[1]), None),
    "kl_div": (F.kl_div, None, g_kl, kl_terms, None),
    "cross_entropy": (F.cross_entropy, None, g_ce(False), lambda a, k: amax(a[0]) + 1,
                      lambda a, k: 1 + amax(k.get("weight"))),
    "nll_loss": (F.nll_loss, None, g_ce(True), None, None),
    "multi_margin_loss": (F.multi_margin_loss, None, cases(
        lambda r, s, k: [vals(r, s, k), np.asarray(r.integers(0, s[-1], size=s[:-1]))],
        [dict(w, p=p, margin=m) for p in (1, 2) for m in (1.0, 0.5) for w in ({}, {"weight": LAST(2)})],
        shapes=row_shapes),
        lambda a, k: (2 * amax(a[0]) + 1) ** k["p"],
        lambda a, k: (1 + amax(k.get("weight"))) * k["p"] * (2 * amax(a[0]) + 1) ** (k["p"] - 1)),
    "multilabel_soft_margin_loss": (F.multilabel_soft_margin_loss, None, cases(
        lambda r, s, k: [vals(r, s, k), probs(r, s, r.choice(["binary", "uniform"]))], [{}, {"weight": LAST(2)}],
        shapes=row_shapes), None, lambda a, k: 1 + amax(k.get("weight"))),
    "triplet_margin_loss": (F.triplet_margin_loss, None, cases(
        make_triplet, lambda kind: [dict(kw, p=p, swap=sw) for p in (1.0, 2.0, 3.0, math.inf)
                                    for kw in ({}, {"margin": 0.5, "eps": 0.0})
                                    for sw in ((False, True) if kind != "tiny" else (False,))],  # tiny: all tie
        (0, 1, 2), any_rank_shapes, untie_triplet), lambda a, k: rows(a[0]) + rows(a[1]) + rows(a[2]), lambda a, k: 1.0),
    "contrastive_loss": (t_contrastive, None, cases(
        make_pair(lambda r, s: r.integers(0, 2, size=s).astype(np.float64)), [{}, {"margin": 3.0}, {"eps": 0.0}],
        (0, 1), any_rank_shapes),
        # margin − d cancels near d = margin: d's rounding, times margin + d (value) or 1 (gradients)
        lambda a, k: (abs(k.get("margin", 1.0)) + rows(a[0]) + rows(a[1])) ** 2,
        lambda a, k: abs(k.get("margin", 1.0)) + rows(a[0]) + rows(a[1])),
    "cosine_embedding_loss": (F.cosine_embedding_loss, None, cases(
        make_pair(pm1), [{}, {"margin": 0.5}, {"margin": -0.5}], (0, 1), row_shapes),
        lambda a, k: 1.0, lambda a, k: inv_norm(a[0], a[1])),
}


def known_difference(name, arrs, kw, dt, red, what):
    """The verdicts a case may show through a deliberate difference (README), else ()."""
    x = arrs[0]
    if ((name == "soft_margin_loss" and np.any(np.abs(x) > 80)) or (name == "sigmoid_focal_loss" and kw["gamma"] < 1
                                                                     and np.any(np.abs(x) > 15))
            or (name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss") and np.any(x == -np.inf))
            or (name == "cross_entropy" and arrs[1].dtype.kind == "i" and not np.isfinite(x).all()
                and np.any(arrs[1] == kw.get("ignore_index", -100)))):
        return ("nonfinite",)  # torch overflows, or multiplies 0 by inf
    if name == "contrastive_loss" and (amax(x, arrs[1]) > 1e18 or not np.isfinite(arrs[0] + arrs[1]).all()):
        return ("nonfinite",)  # the composite multiplies 0 by an infinite distance
    if name == "multi_margin_loss" and x.ndim == 2 and x.shape[0] == 0 and red != "none" and what == "value":
        return ("nonfinite", "value")  # torch returns uninitialised memory for an empty batch
    return ()


def torch_eval(fn, arrs, diff, kw, dt, go):
    tdt = torch.float32 if dt == F32 else torch.float64
    ts = [torch.tensor(a, dtype=tdt, requires_grad=i in diff) if a.dtype.kind == "f" else torch.from_numpy(a)
          for i, a in enumerate(arrs)]
    v = fn(*ts, **{k: torch.tensor(v, dtype=tdt) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
    g = go(tuple(v.shape))
    grads = torch.autograd.grad(v, [ts[i] for i in diff], torch.ones_like(v) if g is None else
                                torch.as_tensor(g, dtype=tdt).expand(v.shape), allow_unused=True)
    return [v.detach().numpy()] + [np.zeros(arrs[i].shape) if gr is None else gr.numpy() for i, gr in zip(diff, grads)]


def fl_eval(obj, arrs, kw, dt, go):
    """[value, *gradients] from value_and_grad, and the differences from __call__ and .grad (any NaN equal)."""
    a = [x.astype(dt) if x.dtype.kind == "f" else x for x in arrs]
    k = {key: v.astype(dt) if isinstance(v, np.ndarray) else v for key, v in kw.items()}
    extra = {} if go is None else {"grad_output": np.asarray(go, dt) if np.ndim(go) else go}
    tup = lambda g: list(g) if isinstance(g, tuple) else [g]  # noqa: E731
    bits = lambda x: (np.shape(x), np.asarray(x).dtype, np.where(np.isnan(x), np.nan, x).tobytes())  # noqa: E731
    v, g = obj.value_and_grad(*a, **k, **extra)
    out = [v] + tup(g)
    names = ["value"] + [f"grad[{j}]" for j in range(len(out) - 1)]
    api = [f"{w} dtype {np.asarray(x).dtype}" for w, x in zip(names, out) if np.asarray(x).dtype != dt]
    if bits(obj(*a, **k)) != bits(v):
        api.append(f"__call__ differs from value_and_grad: {fmt(obj(*a, **k))} vs {fmt(v)}")
    api += [f"grad[{j}] differs from value_and_grad's"
            for j, (p, q) in enumerate(zip(tup(obj.grad(*a, **k, **extra)), out[1:])) if bits(p) != bits(q)]
    return out, api


def run_loss_case(rng, name, arrs, diff, kw, tag):
    tfn, rfn, _, vscale, gscale = LOSSES[name]
    arrs = [np.asarray(a) for a in arrs]
    kw = {k: np.asarray(v) if isinstance(v, (np.ndarray, np.generic)) else v for k, v in kw.items()}
    vs, gs = vscale(arrs, kw) if vscale else 0.0, gscale(arrs, kw) if gscale else 0.0
    gs = gs if isinstance(gs, list) else [gs] * len(diff)
    desc = f"{name} {tag} {{{', '.join(f'{k}={fmt(v)}' for k, v in kw.items())}}} shapes={[a.shape for a in arrs]}"
    none_err, n_terms, n_batch = None, 1, max(1, arrs[0].shape[0]) if arrs[0].ndim else 1
    for red in ["none", "mean", "sum"] + (["batchmean"] if name == "kl_div" else []):
        kwr, cache = dict(kw, reduction=red), {}
        go = (lambda s: cache[s] if s in cache else cache.setdefault(s, vals(rng, s, "normal"))) if red == "none" else \
            (lambda s: 0.75) if red == "sum" else (lambda s: None)  # grad_output: an array, a scalar, the default
        try:
            r = torch_eval(rfn or tfn, arrs, diff, kwr, F64, go)
            res = {F64: torch_eval(tfn, arrs, diff, kwr, F64, go) if rfn else r,
                   F32: torch_eval(tfn, arrs, diff, kwr, F32, go)}
        except Exception as e:  # the generators make only inputs torch takes
            tally("losses/" + name, f"{desc} reduction={red}: torch raised {type(e).__name__}: {e}")
            continue
        g = go(r[0].shape)
        n_terms = max(1, r[0].size) if red == "none" else n_terms
        per = {"none": 1, "mean": 1 / n_terms, "sum": 1, "batchmean": 1 / n_batch}[red]  # d value / d term
        go_max = amax(1.0 if g is None else g)
        scales = [vs * per * (n_terms if red != "none" else 1)] + [x * per * go_max for x in gs]
        E32 = {}
        for dt in (F32, F64):
            where = f"{desc} reduction={red} {dt.name}"
            try:
                out, problems = fl_eval(getattr(fl, name), arrs, kwr, dt, g)
            except Exception as e:
                tally("losses/" + name, f"{where}: fastloss raised {type(e).__name__}: {e}")
                continue
            known = False
            for j, (f, t, rr) in enumerate(zip(out, res[dt], r)):
                what = "value" if j == 0 else f"grad[{j - 1}]"
                floor = (16 * EPS[F64] / EPS[F32] * E32.get(what, 0.0) if dt == F64 else  # float32 errors, scaled
                         2 * none_err.sum() * per if j == 0 and red != "none" else 0.0)  # torch's, in the terms
                verdict, E32[what], detail = compare(f, t, rr, dt, scales[j], floor)
                E32[what] = max(E32[what], floor)
                if verdict == "overflow" or (verdict and verdict in known_difference(name, arrs, kw, dt, red, what)):
                    known = True
                elif verdict:
                    problems.append(f"{what}: {detail}")
            if dt == F32 and red == "none":
                with np.errstate(all="ignore"):
                    e = np.abs(res[F32][0].astype(np.float64) - np.where(np.isfinite(r[0]), r[0], res[F32][0]))
                none_err = np.where(np.isfinite(e), e, 0.0)
            tally("losses/" + name, "; ".join(f"{where}: {p}" for p in problems) if problems else None, known)


def check_losses(rng, quick):
    for name, (_, _, gen, _, _) in LOSSES.items():
        t0 = time.time()
        for _ in range(1 if quick else 4):  # new shapes each time
            for arrs, diff, kw, tag in gen(rng, list(rng.choice(KINDS, 4, replace=False)) if quick else KINDS):
                run_loss_case(rng, name, arrs, diff, kw, tag)
        report_line("losses/" + name, time.time() - t0)


# ------------------------------------------------------------------------------------------------------------
# Optimizers: bitwise trajectories against torch foreach=False (no FMA, IEEE sqrt)
# ------------------------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "SGD": [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.3),
            dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), dict(lr=0.1, weight_decay=0.2, maximize=True),
            dict(lr=0.05, momentum=0.5, dampening=0.5, weight_decay=0.1, maximize=True),
            dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)],
    "Adam": [dict(), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6), dict(lr=1e-2, weight_decay=0.1),
             dict(lr=1e-2, amsgrad=True),
             dict(lr=1e-2, amsgrad=True, weight_decay=0.05, maximize=True), dict(lr=1e-2, maximize=True, eps=0.0)],
    "AdamW": [dict(), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), dict(lr=1e-2, amsgrad=True),
              dict(lr=1e-2, amsgrad=True, weight_decay=0.05, maximize=True), dict(lr=1e-2, weight_decay=0.0)],
    "RMSprop": [dict(), dict(lr=1e-2, alpha=0.9, eps=1e-6), dict(lr=1e-2, momentum=0.9), dict(lr=1e-2, centered=True),
                dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.1),
                dict(lr=1e-2, alpha=0.5, centered=True, momentum=0.9, maximize=True, weight_decay=0.01)],
    "Adagrad": [dict(), dict(lr=0.1, lr_decay=0.01), dict(lr=0.1, weight_decay=0.1),
                dict(lr=0.1, initial_accumulator_value=0.5),
                dict(lr=0.1, eps=1e-3, maximize=True, weight_decay=0.05),
                dict(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.1, maximize=True)],
}
STATE_KEYS = ["momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "grad_avg", "sum", "step"]
OPT_SHAPES = [(3, 4), (), (0,), (7,), (2, 3, 5)]
STEPS, RESTORE_AT = 20, 10


@contextlib.contextmanager
def ieee_sqrt():
    """torch's CPU sqrt is not correctly rounded, fastloss's is (README): torch with NumPy's sqrt meanwhile."""
    saved = torch.Tensor.sqrt, torch.Tensor.sqrt_, torch.sqrt
    torch.Tensor.sqrt = torch.sqrt = lambda x: torch.from_numpy(np.asarray(np.sqrt(x.detach().numpy())))
    torch.Tensor.sqrt_ = lambda x: x.copy_(torch.sqrt(x))
    try:
        yield
    finally:
        torch.Tensor.sqrt, torch.Tensor.sqrt_, torch.sqrt = saved


def bits_diff(a, b, other="torch"):
    """None if bitwise equal, else what differs."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return None
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"{a.shape} {a.dtype}, {other} {b.shape} {b.dtype}"
    d = np.abs(a.astype(np.float64) - b)
    i = np.unravel_index(np.argmax(np.nan_to_num(d, nan=np.inf)), a.shape)
    return (f"fastloss {a[i]!r} {other} {b[i]!r}; max abs diff {np.nanmax(d):.3g}, max rel diff "
            f"{np.nanmax(d / np.maximum(np.abs(b.astype(np.float64)), TINY[F64])):.3g}")


def run_trajectory(rng, name, kw, dt):
    p0 = [np.asarray(rng.standard_normal(s), dt) for s in OPT_SHAPES]
    grads = [[np.asarray(rng.standard_normal(s) * (t % 7 != 6), dt) for s in OPT_SHAPES] for t in range(STEPS)]
    fparams = [p.copy() for p in p0]
    tparams = [torch.tensor(p, requires_grad=True) for p in p0]
    fopt, topt = getattr(fl.optim, name)(fparams, **kw), getattr(torch.optim, name)(tparams, foreach=False, **kw)
    for t in range(STEPS):
        if t == RESTORE_AT:  # state_dict round trip into a new optimizer over copies, stepped along with the first
            bparams = [p.copy() for p in fparams]
            bopt = getattr(fl.optim, name)(bparams, **kw)
            bopt.load_state_dict(fopt.state_dict())
        if t in (7, 14):  # hyper-parameters changed mid-run
            key, new = ("lr", fopt.param_groups[0]["lr"] * 0.3) if t == 7 else ("weight_decay", 0.05)
            for opt in [fopt, topt] + ([bopt] if t > RESTORE_AT else []):
                opt.param_groups[0][key] = new
        fopt.step([g.copy() for g in grads[t]])
        if t >= RESTORE_AT:
            bopt.step([g.copy() for g in grads[t]])
        for tp, g in zip(tparams, grads[t]):
            tp.grad = torch.from_numpy(g.copy())
        with ieee_sqrt():
            topt.step()
        for i, (fp, tp) in enumerate(zip(fparams, tparams)):
            if d := bits_diff(fp, tp.detach().numpy()):
                return f"step {t + 1}: param {i} {OPT_SHAPES[i]}: {d}"
        for i, tp in enumerate(tparams):
            ts, fs = topt.state.get(tp, {}), fopt.state.get(i, {})
            for k in (k for k in STATE_KEYS if ts.get(k) is not None):
                if d := "missing" if k not in fs else bits_diff(np.asarray(fs[k], dt), ts[k].numpy().astype(dt)):
                    return f"step {t + 1}: state[{i}][{k!r}]: {d}"
    for i, (bp, fp) in enumerate(zip(bparams, fparams)):
        if d := bits_diff(bp, fp, "uninterrupted"):
            return f"state_dict round trip at step {RESTORE_AT}, then {STEPS - RESTORE_AT} steps: param {i}: {d}"
    return None


def check_optim(rng, quick):
    for name, configs in OPTIMIZERS.items():
        t0 = time.time()
        for kw in configs[:3] if quick else configs:
            for dt in (F32, F64):
                for _ in range(1 if quick else 3):
                    d = run_trajectory(rng, name, kw, dt)
                    tally("optim/" + name, d and f"{name} {kw} {dt.name} shapes={OPT_SHAPES}: {d}")
        report_line("optim/" + name, time.time() - t0)


# ------------------------------------------------------------------------------------------------------------
# Schedules: lr (get_last_lr and the groups') and momentum/betas, bitwise, epoch by epoch
# ------------------------------------------------------------------------------------------------------------

SCHEDULES = [  # (constructor, options): n = epochs (default 120), opt = optimizer, metrics for ReduceLROnPlateau
    ("StepLR(o, step_size=3, gamma=0.5)", {}), ("MultiStepLR(o, milestones=[5, 10, 10, 30], gamma=0.3)", {}),
    ("ExponentialLR(o, gamma=0.95)", {}), ("ConstantLR(o, factor=0.5, total_iters=4)", {}),
    ("LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.95 ** e])", {}),
    ("CosineAnnealingLR(o, T_max=10, eta_min=0.001)", {}), ("CosineAnnealingLR(o, T_max=1)", {}),
    ("CosineAnnealingLR(o, T_max=100, eta_min=1e-5)", {}),
    ("CosineAnnealingWarmRestarts(o, T_0=5)", {}),
    ("CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01)", {}),
    ("LinearLR(o, start_factor=0.1, total_iters=10)", {}),
    ("LinearLR(o, start_factor=0.9, end_factor=0.05, total_iters=37)", {}),
    ("PolynomialLR(o, total_iters=33, power=0.5)", {}), ("PolynomialLR(o, total_iters=10, power=2.0)", {}),
    ("OneCycleLR(o, max_lr=1.0, total_steps=100)", dict(n=99)),
    ("OneCycleLR(o, max_lr=0.5, total_steps=120, anneal_strategy='linear')", dict(n=119)),
    ("OneCycleLR(o, max_lr=[1.0, 0.3], total_steps=101, three_phase=True, pct_start=0.25, div_factor=10.0, "
     "final_div_factor=100.0)", dict(n=100)),
    ("OneCycleLR(o, max_lr=0.01, total_steps=120, three_phase=True, base_momentum=0.8, max_momentum=0.99)",
     dict(opt="Adam", n=119)),
    ("OneCycleLR(o, max_lr=0.1, epochs=7, steps_per_epoch=13)", dict(n=90)),
    ("OneCycleLR(o, max_lr=0.01, total_steps=50, cycle_momentum=False)", dict(opt="Adagrad", n=49)),
    ("CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5)", {}),
    ("CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4, step_size_down=3, mode='triangular2')", {}),
    ("CyclicLR(o, base_lr=[0.01, 0.02], max_lr=[0.1, 0.2], step_size_up=7, mode='exp_range', gamma=0.99)", {}),
    ("CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=6)", dict(opt="Adam")),
    ("CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2.5, step_size_down=1.5, "
     "scale_fn=lambda x: 1 / (1 + 0.01 * x), scale_mode='iterations')", {}),
    ("SequentialLR(o, [LinearLR(o, start_factor=0.1, total_iters=5), CosineAnnealingLR(o, T_max=20)], "
     "milestones=[5])", {}),
    ("SequentialLR(o, [ConstantLR(o, factor=0.2, total_iters=2), ExponentialLR(o, gamma=0.9), "
     "CosineAnnealingWarmRestarts(o, T_0=6, T_mult=2)], milestones=[3, 10])", {}),
    ("SequentialLR(o, [ConstantLR(o, factor=0.5, total_iters=2), ExponentialLR(o, gamma=0.9)], milestones=[0])", {}),
    ("SequentialLR(o, [ChainedScheduler([ConstantLR(o, factor=0.5, total_iters=4), ExponentialLR(o, gamma=0.9)]), "
     "StepLR(o, step_size=4, gamma=0.5)], milestones=[6])", {}),
    ("ChainedScheduler([LinearLR(o, start_factor=0.2, total_iters=5), CosineAnnealingLR(o, T_max=30)])", {}),
    ("ReduceLROnPlateau(o, patience=2)", dict(metrics=[1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.5, 0.6, 0.7])),
    ("ReduceLROnPlateau(o, mode='max', factor=0.5, patience=1, threshold=0.1, threshold_mode='abs', cooldown=2, "
     "min_lr=[0.001, 0.0005])", dict(metrics=[1.0, 1.05, 1.2, 1.1, 1.0, 1.3, 1.31])),
]
RESUME_AT = 7  # the recursive and closed-form schedules are also built again mid-run with last_epoch=7


def sched_run(mod, expr, kind, n, metrics):
    groups = [dict(params=[np.ones(2) if mod is fl else torch.ones(2)], lr=lr) for lr in (0.1, 0.03)]
    o = {"SGD": lambda: mod.optim.SGD(groups, lr=0.5, momentum=0.9), "Adam": lambda: mod.optim.Adam(groups),
         "Adagrad": lambda: mod.optim.Adagrad(groups)}[kind]()
    ns = {**vars(mod.optim.lr_scheduler), "o": o}
    resume = expr.split("(")[0] not in ("SequentialLR", "ChainedScheduler", "ReduceLROnPlateau")
    out = []
    try:
        s = eval(expr, ns)
        for ep in range(n + 1):
            if ep == RESUME_AT and resume:
                s = eval(expr[:-1] + f", last_epoch={ep})", ns)
            elif ep > 0:
                s.step() if metrics is None else s.step(metrics[ep % len(metrics)])
            out.append(([float(v) for v in s.get_last_lr()], [float(g["lr"]) for g in o.param_groups],
                        [float(g["betas"][0] if "betas" in g else g.get("momentum", -1)) for g in o.param_groups]))
    except Exception as e:  # noqa: BLE001  (compared with torch's)
        out.append(f"{type(e).__name__}: {e}")
    return out


def check_schedules(rng, quick):
    for expr, opts in SCHEDULES:
        args = (opts.get("opt", "SGD"), min(opts.get("n", 120), 40 if quick else 120), opts.get("metrics"))
        a, b = sched_run(fl, expr, *args), sched_run(torch, expr, *args)
        bad = next((f"{expr} on {args[0]}, epoch {ep}: fastloss (last lr, group lr, momentum) {x}; torch {y}"
                    for ep, (x, y) in enumerate(zip(a, b)) if x != y), None)
        bad = bad or (len(a) != len(b) and f"{expr}: fastloss ran {len(a)} epochs, torch {len(b)}: {a[-1]} / {b[-1]}")
        tally("schedules/" + expr.split("(")[0], bad)
    for name in sorted({e.split("(")[0] for e, _ in SCHEDULES}):
        report_line("schedules/" + name)


# ------------------------------------------------------------------------------------------------------------

def report_line(group, seconds=None):
    c, m, k = STATS.get(group, [0, 0, 0])
    print(f"{group:44s} {c:6d} checks, {m} mismatches{f', {k} known differences' if k else ''}"
          f"{f'  ({seconds:.1f} s)' if seconds is not None else ''}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a sample (about 10 s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["losses", "optim", "schedules"])
    args = ap.parse_args()
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        sys.exit("torch's CPU capability is not DEFAULT: ATEN_CPU_CAPABILITY was set after torch was imported")
    print(f"fastloss vs torch {torch.__version__} (ATEN_CPU_CAPABILITY=default), seed {args.seed}"
          f"{', quick' if args.quick else ''}", flush=True)
    t0 = time.time()
    parts = (("losses", check_losses), ("optim", check_optim), ("schedules", check_schedules))
    for i, (part, check) in enumerate(parts):
        if args.only in (None, part):
            check(np.random.default_rng([args.seed, i]), args.quick)
    total = [sum(s[i] for s in STATS.values()) for i in range(3)]
    print(f"\n{total[0]} checks, {total[1]} mismatches, {total[2]} known differences (deliberate, README), "
          f"{time.time() - t0:.0f} s")
    for m in MISMATCHES:
        print("MISMATCH " + m)
    return 1 if MISMATCHES else 0


if __name__ == "__main__":
    sys.exit(main())
