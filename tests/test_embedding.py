"""The embedding and ranking losses agree with fastloss.reference (and with PyTorch: test_golden.py runs
their golden cases) on every input a user can give.

Comparisons go through `check`, which applies an error model derived per loss (`_model_*`): the
per-element bound is a few ulps of the result plus the propagated rounding of the operands the kernel
forms in the computation dtype (u = x − y + eps, the distances rounded to the dtype, the per-row
coefficients), and the float64 summation error of the row sums ((D + 64)·2⁻⁵³ relative). Rows where
the reference sits within that bound of a kink (the margin, a `swap` tie, a zero distance) have their
gradients skipped, since either side of the kink is a correct answer there; rows whose differences
overflow the dtype (float32 near its max) are skipped as the regression tests do.

Inputs: D = 1, 7, 8, 9, 15, 16, 17, 128, 1000 (around the 16 lanes), identical rows, zero rows, huge
and tiny magnitudes, NaN/inf, float32/float64, every reduction, grad_output None / scalar / per row,
hypothesis-drawn shapes and values; plus 1 vs 2 threads bitwise, out=, errors, finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastloss as fl
from fastloss._args import sum_to_shape
from helpers import (FLOATS, assert_bitwise_equal, assert_close, assert_unchanged, order_decides_overflow, snapshot,
                     specials, summation_gamma, ulp)

ROW_LOSSES = ("triplet_margin_loss", "contrastive_loss", "cosine_embedding_loss")
EW_LOSSES = ("margin_ranking_loss", "hinge_embedding_loss")
ANY_RANK = ("triplet_margin_loss", "contrastive_loss")  # (..., D) and 0-d, as torch's pairwise_distance
DIMS = (1, 7, 8, 9, 15, 16, 17, 128, 1000)
REDUCTIONS = ("none", "mean", "sum")
U64 = 2.0**-53

OPTIONS = {
    "triplet_margin_loss": ({}, {"swap": True}, {"p": 1.0, "margin": 0.5}, {"p": 3.0, "eps": 1e-4},
                            {"p": 3.0, "swap": True, "eps": 0.0}, {"p": math.inf}, {"p": math.inf, "swap": True}),
    "contrastive_loss": ({}, {"margin": 2.0, "eps": 0.0}),
    "cosine_embedding_loss": ({}, {"margin": 0.3}, {"margin": -0.5}),
    "margin_ranking_loss": ({}, {"margin": 0.7}),
    "hinge_embedding_loss": ({}, {"margin": 1.5}),
}


def _n_inputs(name):
    """How many of the loss's leading arguments are float inputs (the rest is a target)."""
    return {"triplet_margin_loss": 3, "hinge_embedding_loss": 1}.get(name, 2)


def _unit(dtype):
    return float(np.finfo(dtype).eps) / 2


def _f64(a):
    return np.asarray(a).astype(np.float64)


# --------------------------------------------------------------------------------------------------
# Error models: (value tol, value skip, [grad tol], [grad skip]); tolerances per value element / per
# gradient element (rows broadcast), computed in float64 from the inputs converted to the dtype.
# --------------------------------------------------------------------------------------------------


def _u_err(x, y, eps, dtype):
    """Bound on the error of u = (x − y) + eps formed in `dtype` (x − y rounded, eps converted, the sum
    rounded)."""
    r = x - y
    return ulp(r, dtype) + ulp(r + eps, dtype) + ulp(eps, dtype)


def _dist(u, p):
    a = np.abs(u)
    if p == 2:
        return np.sqrt(np.sum(a * a, axis=-1))
    if p == 1:
        return np.sum(a, axis=-1)
    m = np.max(a, axis=-1, initial=0.0)
    if np.isinf(p):
        return m
    safe = np.where((m > 0) & np.isfinite(m), m, 1.0)
    return np.where(np.isfinite(m), np.where(m > 0, safe * np.sum((a / safe[..., None]) ** p, axis=-1) ** (1 / p), 0.0), m)


def _dist_err(u, e_u, d, p, dtype):
    """Bound on |fast distance − reference distance| before the distance is rounded to the dtype."""
    if np.isinf(p):  # the max of the |u_i|, each off by at most its e_u
        return np.max(e_u, axis=-1, initial=0.0)
    D = u.shape[-1]
    gamma = (D + 64) * U64 * (8 if p not in (1, 2) else 1)
    prop = np.sum(e_u, axis=-1) if p == 1 else np.sqrt(np.sum(e_u * e_u, axis=-1))
    return prop + gamma * d


def _overflow(*diffs, dtype):
    big = float(np.finfo(dtype).max)
    out = False
    for r in diffs:
        out = out | np.any(np.abs(r) > big / 2, axis=-1)
    return out


def _norm_grad_term(u, e_u, d, err_d, G, p, dtype):
    """|G|·∂‖u‖/∂u per element (reference) and a bound on the kernel's error in it."""
    ut = _unit(dtype)
    Gc = np.abs(G)[..., None]
    dd, ed = d[..., None], err_d[..., None]
    with np.errstate(all="ignore"):
        if p == 1:
            t = Gc * np.ones_like(u)
            return t, 3 * ut * t
        if np.isinf(p):  # G/(number of ties) at the max, rounded once
            ties = np.abs(u) == dd
            t = Gc * ties / np.maximum(np.sum(ties, axis=-1, keepdims=True), 1)
            return t, 2 * ut * t
        if p == 2:
            t = Gc * np.abs(u) / dd
            return t, Gc * e_u / dd + t * (ed / dd + 4 * ut)
        y = np.abs(u) / dd  # p = 3 in these tests: G·y², error G·(2y·Δy + Δy²) + pow's float64 error
        dy = e_u / dd + y * ed / dd
        t = Gc * y ** (p - 1)
        return t, Gc * ((p - 1) * y * dy + dy * dy) + t * (4 * ut + 8 * (np.abs(np.log(y)) + 8) * U64)


def _model_triplet(args, kw, G, dtype):
    a, pp, n = (_f64(x) for x in args)
    p, eps, m, swap = kw.get("p", 2.0), kw.get("eps", 1e-6), kw.get("margin", 1.0), kw.get("swap", False)
    with np.errstate(all="ignore"):
        u, v, w = a - pp + eps, a - n + eps, pp - n + eps
        eu, ev, ew = _u_err(a, pp, eps, dtype), _u_err(a, n, eps, dtype), _u_err(pp, n, eps, dtype)
        d_ap, d_an, d_pn = _dist(u, p), _dist(v, p), _dist(w, p)
        e_ap, e_an, e_pn = (_dist_err(x, e, d, p, dtype) + ulp(d, dtype)
                            for x, e, d in ((u, eu, d_ap), (v, ev, d_an), (w, ew, d_pn)))
        d_neg, e_neg = (np.minimum(d_an, d_pn), np.maximum(e_an, e_pn)) if swap else (d_an, e_an)
        pre = m + d_ap - d_neg
        e_pre = e_ap + e_neg + ulp(m, dtype) + ulp(m + d_ap, dtype) + ulp(pre, dtype)
        skip_v = _overflow(a - pp, a - n, pp - n, dtype=dtype)
        kink = np.abs(pre) <= e_pre
        if swap:
            kink |= np.abs(d_an - d_pn) <= e_an + e_pn
        if p == 1:  # sign(u) flips within the error of u
            kink |= np.any(np.abs(u) <= eu, axis=-1) | np.any(np.abs(v) <= ev, axis=-1)
            if swap:
                kink |= np.any(np.abs(w) <= ew, axis=-1)
        if np.isinf(p):  # which elements tie for the max can change within the errors of u
            for x, e, d in ((u, eu, d_ap), (v, ev, d_an)) + (((w, ew, d_pn),) if swap else ()):
                a, dd = np.abs(x), d[..., None]
                kink |= np.any((a != dd) & (a >= dd - e - np.max(e, axis=-1, keepdims=True, initial=0.0)), axis=-1)
                kink |= np.any(np.abs(x) <= e, axis=-1) & (d <= np.max(e, axis=-1, initial=0.0))
        tu, eu_t = _norm_grad_term(u, eu, d_ap, e_ap, G, p, dtype)
        tv, ev_t = _norm_grad_term(v, ev, d_an, e_an, G, p, dtype)
        tw, ew_t = _norm_grad_term(w, ew, d_pn, e_pn, G, p, dtype)
        if not swap:
            tw, ew_t = 0 * tw, 0 * ew_t
        ta = eu_t + ev_t + 2 * _unit(dtype) * (tu + tv)
        tp = eu_t + ew_t + 2 * _unit(dtype) * (tu + tw)
        tn = ev_t + ew_t + 2 * _unit(dtype) * (tv + tw)
    skip_g = (skip_v | kink | (d_ap <= 4 * e_ap) | (d_neg <= 4 * e_neg))[..., None]
    return e_pre, skip_v, [ta, tp, tn], [skip_g] * 3


def _model_contrastive(args, kw, G, dtype):
    x1, x2, y = (_f64(x) for x in args)
    eps, m = kw.get("eps", 1e-6), kw.get("margin", 1.0)
    ut = _unit(dtype)
    with np.errstate(all="ignore"):
        u = x1 - x2 + eps
        eu = _u_err(x1, x2, eps, dtype)
        d = _dist(u, 2)
        ed = _dist_err(u, eu, d, 2, dtype)
        h = np.maximum(m - d, 0)
        value_tol = np.where(y == 1, h * ed + ed * ed, d * ed + ed * ed)
        Gc, dd, edd, hh = np.abs(G)[..., None], d[..., None], ed[..., None], h[..., None]
        sim = Gc * eu + 3 * ut * Gc * np.abs(u)
        dis = Gc * (hh * eu / dd + np.abs(u) * (edd / dd + hh * edd / dd**2)) + 3 * ut * Gc * hh * np.abs(u) / dd
        gtol = np.where((y == 1)[..., None], dis, sim)
    skip_v = _overflow(x1 - x2, dtype=dtype)
    skip_g = (skip_v | ((y == 1) & (d <= 4 * ed)))[..., None]
    return value_tol, skip_v, [gtol, gtol], [skip_g] * 2


def _model_cosine(args, kw, G, dtype):
    x1, x2, y = (_f64(x) for x in args)
    m = kw.get("margin", 0.0)
    D = x1.shape[-1]
    gamma = (D + 64) * U64
    ut = _unit(dtype)
    with np.errstate(all="ignore"):
        A = np.sum(x1 * x1, axis=-1) + float(np.float32(1e-12))
        B = np.sum(x2 * x2, axis=-1) + float(np.float32(1e-12))
        denom = np.sqrt(A) * np.sqrt(B)
        cos = np.sum(x1 * x2, axis=-1) / denom
        e_cos = gamma * (np.sum(np.abs(x1 * x2), axis=-1) / denom + np.abs(cos) * 2) + 4 * U64
        value_tol = e_cos
        s = np.abs(G)
        c12, c11, c22 = s / denom, s * np.abs(cos) / A, s * np.abs(cos) / B
        t1 = np.abs(x2) * c12[..., None] + np.abs(x1) * c11[..., None]
        t2 = np.abs(x1) * c12[..., None] + np.abs(x2) * c22[..., None]
        g1 = t1 * (4 * ut + gamma) + np.abs(x1) * (s * e_cos / A)[..., None]
        g2 = t2 * (4 * ut + gamma) + np.abs(x2) * (s * e_cos / B)[..., None]
    skip_v = _overflow(x1 * x1, x2 * x2, dtype=np.float64) if np.dtype(dtype) == np.float64 else False
    skip_v = skip_v | np.zeros(cos.shape, bool)
    kink = (y == -1) & (np.abs(cos - m) <= e_cos)
    skip_g = (skip_v | kink)[..., None]
    return value_tol, skip_v, [g1, g2], [skip_g] * 2


def _model_margin_ranking(args, kw, G, dtype):
    x1, x2, y = (_f64(x) for x in args)
    m = kw.get("margin", 0.0)
    with np.errstate(all="ignore"):
        pre = -y * (x1 - x2) + m
        e_pre = ulp(x1 - x2, dtype) + ulp(pre, dtype) + ulp(m, dtype)
        gt = 2 * ulp(G, dtype) * np.ones_like(x1)
    skip_v = np.abs(x1 - x2) > float(np.finfo(dtype).max)
    skip_g = skip_v | (np.abs(pre) <= e_pre)
    return e_pre, skip_v, [gt, gt], [skip_g] * 2


def _model_hinge_embedding(args, kw, G, dtype):
    x, y = (_f64(a) for a in args)
    m = kw.get("margin", 1.0)
    with np.errstate(all="ignore"):
        h = m - x
        e = np.where(y == 1, 0.0, ulp(m, dtype) + ulp(h, dtype))
        gt = 2 * ulp(G, dtype) * np.ones_like(x)
    skip_v = np.abs(h) > float(np.finfo(dtype).max)
    skip_g = skip_v | ((y == -1) & (np.abs(h) <= e))
    return e, skip_v, [gt], [skip_g]


MODELS = {
    "triplet_margin_loss": _model_triplet,
    "contrastive_loss": _model_contrastive,
    "cosine_embedding_loss": _model_cosine,
    "margin_ranking_loss": _model_margin_ranking,
    "hinge_embedding_loss": _model_hinge_embedding,
}


# --------------------------------------------------------------------------------------------------
# fastloss vs reference
# --------------------------------------------------------------------------------------------------


def _value_shape(name, args):
    shape = np.shape(args[0])
    return shape[:-1] if name in ROW_LOSSES else shape


def check(name, args, kwargs, grad_output=None, what=""):
    fast, ref = getattr(fl, name), getattr(fl.reference, name)
    before = snapshot(*args, grad_output)
    with np.errstate(all="ignore"):
        gv, gg = fast.value_and_grad(*args, grad_output=grad_output, **kwargs)
        wv, wg = ref.value_and_grad(*args, grad_output=grad_output, **kwargs)
    assert_unchanged(before, snapshot(*args, grad_output))
    nx = _n_inputs(name)
    dtype = np.result_type(*[np.asarray(a).dtype for a in args[:nx]])
    dtype = np.dtype(np.float32) if dtype.itemsize < 4 else dtype
    label = f"{name}({what}, {kwargs}, grad_output={'array' if np.ndim(grad_output) else grad_output}, {dtype})"
    reduction = kwargs.get("reduction", "mean")
    vshape = _value_shape(name, args)
    n = int(np.prod(vshape, dtype=np.int64))
    gg = gg if isinstance(gg, tuple) else (gg,)
    wg = wg if isinstance(wg, tuple) else (wg,)
    if reduction == "none":
        assert isinstance(gv, np.ndarray) and gv.shape == vshape, label
    else:
        assert isinstance(gv, np.generic), label
    assert np.asarray(gv).dtype == dtype, label
    for g, a in zip(gg, args):
        assert g.dtype == dtype and g.shape == np.shape(a), label

    go = 1.0 if grad_output is None else _f64(np.asarray(grad_output).astype(dtype))
    G = np.broadcast_to(go / (n if reduction == "mean" and n else 1), vshape).astype(np.float64)
    conv = [np.asarray(a).astype(dtype) for a in args]
    if name in ROW_LOSSES and np.ndim(args[0]) == 0:  # a 0-d input is one row of one element
        conv = [a.reshape(1) for a in conv[:nx]] + conv[nx:]
    vt, skip_v, gtols, gskips = MODELS[name](conv, kwargs, G, dtype)
    vt, skip_v = np.broadcast_to(np.nan_to_num(vt, nan=np.inf), vshape), np.broadcast_to(skip_v, vshape)

    if reduction == "none":
        assert_close(gv, wv, vt + 2 * ulp(wv, dtype), dtype=dtype, what=f"{label} value", skip=skip_v)
    elif not skip_v.any():
        with np.errstate(all="ignore"):
            terms = _f64(ref(*args, **{**kwargs, "reduction": "none"}))
            if np.all(np.isfinite(terms)) and order_decides_overflow(terms):
                pass
            elif np.all(np.isfinite(terms)):
                div = n if reduction == "mean" else 1
                tol = (np.sum(vt + ulp(terms, dtype)) + summation_gamma(max(n, 1)) * np.sum(np.abs(terms))) / max(div, 1)
                assert_close(gv, wv, tol + 2 * ulp(wv, dtype), dtype=dtype, what=f"{label} reduced value")
            else:
                assert np.isnan(gv) == np.isnan(wv) or float(gv) == float(wv), label
    rows = np.shape(conv[0]) if name in ROW_LOSSES else vshape
    for i, (a, b) in enumerate(zip(gg, wg)):
        tol = np.nan_to_num(np.broadcast_to(gtols[i], rows), nan=np.inf).reshape(a.shape) + 2 * ulp(b, dtype)
        skip = np.broadcast_to(gskips[i], rows).reshape(a.shape)
        assert_close(a, b, tol, dtype=dtype, what=f"{label} grad[{i}]", skip=skip)
    return (gv, gg), (wv, wg)


def _grad_outputs(rng, vshape, dtype, reduction):
    out = [None, dtype(rng.uniform(0.25, 3.0) * rng.choice([-1, 1]))]
    if reduction == "none":
        out.append(rng.uniform(-3, 3, vshape).astype(dtype))
    return out


def _scaled(rng, shape, dtype, kind):
    x = rng.standard_normal(shape)
    if kind == "huge":
        x *= 1e30 if dtype == np.float32 else 1e150
    elif kind == "tiny":
        x *= 1e-30 if dtype == np.float32 else 1e-150
    elif kind == "adversarial":
        sp = specials(dtype).astype(np.float64)
        x = np.where(rng.random(shape) < 0.1, rng.choice(sp, shape), x * 10.0 ** rng.uniform(-5, 5, shape))
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def make_args(name, rng, shape, dtype, kind="normal"):
    """Inputs for `name` with row shape `shape`: kind 'normal', 'huge', 'tiny', 'adversarial',
    'identical' (positive = anchor / input2 = input1) or 'zero' (some rows zero)."""
    base = "normal" if kind in ("identical", "zero") else kind
    vshape = shape[:-1] if name in ROW_LOSSES else shape
    if name == "triplet_margin_loss":
        a, p, n = (_scaled(rng, shape, dtype, base) for _ in range(3))
        if kind == "identical":
            p = a.copy()
            if len(shape) == 2 and shape[0] > 1:
                n[::2] = a[::2]
        if kind == "zero" and len(shape) == 2:
            a[::3] = 0
            p[::3] = 0
            n[1::3] = 0
        return [a, p, n]
    if name in ("contrastive_loss", "cosine_embedding_loss"):
        x1, x2 = _scaled(rng, shape, dtype, base), _scaled(rng, shape, dtype, base)
        if kind == "identical":
            x2 = x1.copy()
        if kind == "zero" and len(shape) == 2:
            x1[::3] = 0
            x2[::2] = 0
        y = rng.integers(0, 2, vshape).astype(dtype)
        return [x1, x2, y if name == "contrastive_loss" else (2 * y - 1).astype(dtype)]
    x1 = _scaled(rng, shape, dtype, base)
    y = (2 * rng.integers(0, 2, shape) - 1).astype(dtype)
    if name == "hinge_embedding_loss":
        return [x1, y]
    x2 = x1.copy() if kind == "identical" else _scaled(rng, shape, dtype, base)
    return [x1, x2, y]


KINDS = ("normal", "identical", "zero", "huge", "tiny", "adversarial")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", ROW_LOSSES)
def test_row_losses_match_reference(name, d, dtype):
    rng = np.random.default_rng(d)
    for kind in KINDS:
        for n_rows in (5, 33) if d < 1000 else (3,):
            args = make_args(name, rng, (n_rows, d), dtype, kind)
            for opts in OPTIONS[name]:
                for reduction in REDUCTIONS:
                    for go in _grad_outputs(rng, (n_rows,), dtype, reduction):
                        check(name, args, {**opts, "reduction": reduction}, go, what=f"{kind}, N={n_rows}, D={d}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", EW_LOSSES)
def test_elementwise_losses_match_reference(name, dtype):
    rng = np.random.default_rng(1)
    for shape in [(0,), (), (1,), (7,), (8,), (9,), (15,), (16,), (17,), (33,), (1000,), (3, 5), (16385,)]:
        for kind in KINDS:
            args = make_args(name, rng, shape, dtype, kind)
            for opts in OPTIONS[name]:
                for reduction in REDUCTIONS:
                    for go in _grad_outputs(rng, shape, dtype, reduction):
                        check(name, args, {**opts, "reduction": reduction}, go, what=f"{kind}, shape={shape}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ROW_LOSSES)
def test_unbatched_and_empty(name, dtype):
    rng = np.random.default_rng(2)
    args = make_args(name, rng, (4, 9), dtype)
    for opts in OPTIONS[name]:
        for reduction in REDUCTIONS:
            row = [a[1] for a in args]
            v1, g1 = getattr(fl, name).value_and_grad(*row, **opts, reduction=reduction)
            vb, gb = getattr(fl, name).value_and_grad(*[a[1:2] for a in args], **opts, reduction=reduction)
            assert np.shape(v1) == () and all(g.shape == (9,) for g in g1)
            assert_bitwise_equal(np.asarray(v1).reshape(-1), np.asarray(vb).reshape(-1), "unbatched value")
            for a, b in zip(g1, gb):
                assert_bitwise_equal(a, b[0], "unbatched grad")
            check(name, row, {**opts, "reduction": reduction}, what="unbatched")
        empty = [a[:0] for a in args]
        for reduction in REDUCTIONS:
            v, g = getattr(fl, name).value_and_grad(*empty, **opts, reduction=reduction)
            assert all(x.shape == (0, 9) for x in g)
            if reduction == "mean":
                assert np.isnan(v)
            elif reduction == "sum":
                assert v == 0
            else:
                assert v.shape == (0,)
            check(name, empty, {**opts, "reduction": reduction}, what="empty")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ANY_RANK)
def test_any_rank_is_rows_of_the_last_axis(name, dtype):
    """Inputs of shape (..., D) give the bits of their (-1, D) rows, a loss per row in the shape
    (...); a 0-d input is one row of one element, with a 0-d loss and gradients (torch's
    pairwise_distance takes both)."""
    rng = np.random.default_rng(3)
    loss = getattr(fl, name)
    for shape in [(2, 3, 9), (4, 1, 2, 17), (2, 0, 5), (3, 2, 0), ()]:
        n, d = math.prod(shape[:-1]), (shape[-1] if shape else 1)
        for kind in ("normal", "adversarial"):
            args = make_args(name, rng, shape, dtype, kind)
            nx = _n_inputs(name)
            rows = [a.reshape(n, d) for a in args[:nx]] + [a.reshape(n) for a in args[nx:]]
            for opts in OPTIONS[name]:
                for reduction in REDUCTIONS:
                    with np.errstate(all="ignore"):
                        v, g = loss.value_and_grad(*args, **opts, reduction=reduction)
                        vr, gr = loss.value_and_grad(*rows, **opts, reduction=reduction)
                    assert np.shape(v) == (shape[:-1] if reduction == "none" else ())
                    assert_bitwise_equal(np.reshape(v, -1), np.reshape(vr, -1), f"{name} {shape} value")
                    for a, b in zip(g, gr):
                        assert a.shape == shape
                        assert_bitwise_equal(a.reshape(n, d), b, f"{name} {shape} grad")
                    for go in _grad_outputs(rng, shape[:-1], dtype, reduction):
                        check(name, args, {**opts, "reduction": reduction}, go, what=f"{kind}, shape={shape}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ANY_RANK)
def test_broadcast_leading_axes_sum_the_gradients(name, dtype):
    """Inputs whose leading axes broadcast (as torch's triplet_margin_loss takes them) give the bits
    of the same call on copies broadcast to the common shape, and a stretched input's gradient is
    that call's gradient summed by `sum_to_shape` (in float64 over the axes it was stretched along);
    the reference agrees."""
    rng = np.random.default_rng(4)
    cases = [((5, 7), (1, 7), (5, 7)), ((2, 1, 9), (1, 3, 9), (2, 3, 9)), ((1, 17), (4, 17), (1, 17)),
             ((0, 4), (1, 4), (0, 4)), ((3, 1, 2, 8), (1, 2, 1, 8), (3, 2, 2, 8))]
    loss, ref = getattr(fl, name), getattr(fl.reference, name)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for shapes in cases:
        shapes = shapes[: _n_inputs(name)]
        shape = np.broadcast_shapes(*shapes)
        xs = [_scaled(rng, s, dtype, "normal") for s in shapes]
        target = [rng.integers(0, 2, shape[:-1]).astype(dtype)] if name == "contrastive_loss" else []
        full = [np.ascontiguousarray(np.broadcast_to(x, shape)) for x in xs]
        for opts in OPTIONS[name]:
            for reduction in REDUCTIONS:
                v, g = loss.value_and_grad(*xs, *target, **opts, reduction=reduction)
                vf, gf = loss.value_and_grad(*full, *target, **opts, reduction=reduction)
                assert_bitwise_equal(np.reshape(v, -1), np.reshape(vf, -1), f"{name} {shapes} value")
                for a, b, x in zip(g, gf, xs):
                    want = sum_to_shape(b, x.shape)  # tested on its own in test_classification.py
                    assert a.shape == x.shape and a.dtype == dtype
                    assert_bitwise_equal(a, want, f"{name} {shapes} {opts} {reduction} grad")
                wv, wg = ref.value_and_grad(*xs, *target, **opts, reduction=reduction)
                np.testing.assert_allclose(v, wv, **tol)
                for a, b in zip(g, wg):
                    np.testing.assert_allclose(a, b, **tol)
                for impl in (loss, ref):  # out= buffers of the inputs' own shapes
                    bufs = tuple(np.full(x.shape, np.nan, dtype) for x in xs)
                    got = impl.grad(*xs, *target, **opts, reduction=reduction, out=bufs)
                    assert all(o is b for o, b in zip(got, bufs))
                    for a, b in zip(got, impl.grad(*xs, *target, **opts, reduction=reduction)):
                        assert_bitwise_equal(a, b, f"{name} {shapes} out=")


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_triplet_broadcast_is_torchs(impl):
    """One positive (1, 3) for two anchors and negatives (2, 3): torch 2.13's losses and gradients."""
    a = np.array([[1.0, 0, 0], [0, 1, 0]])
    p = np.array([[0.0, 0, 1]])
    n = np.array([[1.0, 1, 0], [0, 0, 0]])
    v = impl.triplet_margin_loss(a, p, n, reduction="none")
    np.testing.assert_allclose(v, [1.4142145623731555, 1.4142125623731554], rtol=1e-15)
    ga, gp, gn = impl.triplet_margin_loss.grad(a, p, n, reduction="sum")
    np.testing.assert_allclose(ga, [[0.7071064882917983, 1.0000007071057813, -0.707107074080236],
                                    [-2.928922188139827e-07, -0.29289251170620156, -0.707107074078236]],
                               rtol=1e-14, atol=1e-22)
    np.testing.assert_allclose(gp, [[-0.7071081953995796, -0.7071081953995796, 1.414212148158472]], rtol=1e-14)
    np.testing.assert_allclose(gn, [[1.000001e-06, -0.999999999999, 1.000001e-06],
                                    [9.99999e-07, 0.9999999999989999, 9.99999e-07]], rtol=1e-12)


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_triplet_of_scalars_is_torchs(impl):
    """0-d anchor, positive and negative: torch 2.13 gives 1.2499980926513672 (float32) and gradients
    −2, 1, 1 of shape (), with or without swap. fastloss rounds the distances to float32 as torch
    does, the reference (float64 throughout) only its result: one ulp apart here."""
    a, p, n = np.float32(0.5), np.float32(1.0), np.float32(0.25)
    want = np.float32(1.2499980926513672)
    for swap in (False, True):
        v, grads = impl.triplet_margin_loss.value_and_grad(a, p, n, swap=swap)
        assert v.dtype == np.float32 and (v == want if impl is fl else abs(v - want) <= np.spacing(want))
        for g, want_g in zip(grads, (-2.0, 1.0, 1.0)):
            assert g.shape == () and g.dtype == np.float32 and g == want_g


# --------------------------------------------------------------------------------------------------
# Hypothesis
# --------------------------------------------------------------------------------------------------


def _elements(dtype):
    width = 32 if dtype == np.float32 else 64
    return st.one_of(
        st.floats(-4, 4, width=width),
        st.sampled_from([float(v) for v in specials(dtype)]),
        st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    )


@st.composite
def _case(draw, name, dtype):
    if name in ROW_LOSSES:
        shapes = [st.tuples(st.integers(0, 6), st.integers(0, 40)), st.tuples(st.integers(1, 40))]
        if name in ANY_RANK:
            shapes += [st.just(()), st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 20))]
        shape = draw(st.one_of(*shapes))
        vshape = shape[:-1]
    else:
        shape = draw(st.one_of(st.tuples(st.integers(0, 70)), st.just(()), st.tuples(st.integers(1, 5), st.integers(1, 9))))
        vshape = shape
    nx = _n_inputs(name)
    args = [draw(hnp.arrays(dtype, shape, elements=_elements(dtype))) for _ in range(nx)]
    if name != "triplet_margin_loss":
        vals = [0.0, 1.0] if name == "contrastive_loss" else [-1.0, 1.0]
        args.append(draw(hnp.arrays(dtype, vshape, elements=st.sampled_from(vals))))
    opts = dict(draw(st.sampled_from(OPTIONS[name])))
    reduction = draw(st.sampled_from(REDUCTIONS))
    kinds = ["none", "scalar", "array"] if reduction == "none" else ["none", "scalar"]
    go_kind = draw(st.sampled_from(kinds))
    mod = st.one_of(st.just(0.0), st.floats(0.125, 3.0, width=32), st.floats(-3.0, -0.125, width=32))
    go = {"none": None, "scalar": dtype(draw(mod)), "array": draw(hnp.arrays(dtype, vshape, elements=mod))}[go_kind]
    return args, {**opts, "reduction": reduction}, go


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ROW_LOSSES + EW_LOSSES)
@given(data=st.data())
def test_matches_reference_hypothesis(name, dtype, data):
    args, kwargs, go = data.draw(_case(name, dtype))
    check(name, args, kwargs, go, what="hypothesis")


def test_coefficients_below_float32s_normal_range_stay_in_float64():
    """Found by the `thorough` hypothesis profile: ∂cos/∂x2 = x1·c12 − x2·c22 cancels to about 0 here,
    with c22 = 8.6e-40, subnormal in float32. Rounded to float32 (2^−17 relative error) it gave
    −1.9e-29, six ulps of the cancelling terms; the row's gradient now runs in float64."""
    args = [np.array([-88.0, 1e-4], np.float32), np.array([0.0, 3.628641e16], np.float32), np.array(-1.0, np.float32)]
    check("cosine_embedding_loss", args, {"reduction": "none"}, None, what="subnormal coefficient")


def test_found_by_the_thorough_profile():
    # A subnormal input times a coefficient above 1: the reference formed cos·x1 first (rounding it to
    # the subnormal spacing, 32 units after /A where the exact value is 22.6; fastloss gives 23).
    args = [np.array([5e-324, 0.125, 0.125]), np.array([0.0, 1.0, 0.0]), np.array(-1.0)]
    check("cosine_embedding_loss", args, {"reduction": "none"}, None, what="subnormal input")
    # Terms (a, a, −a), a = 1.8e308: NumPy's order overflows ((a + a) − a), fastloss's lanes do not.
    args = [np.full(3, -np.finfo(np.float64).max), np.array([-1.0, -1.0, 1.0])]
    check("hinge_embedding_loss", args, {"reduction": "mean"}, None, what="order decides overflow")
    assert np.isfinite(fl.hinge_embedding_loss(*args))


# --------------------------------------------------------------------------------------------------
# Layouts, threads, out=
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROW_LOSSES + EW_LOSSES)
def test_layouts_give_the_contiguous_result(name):
    rng = np.random.default_rng(3)
    shape = (6, 10) if name in ROW_LOSSES else (60,)
    args = make_args(name, rng, shape, np.float32)
    want = getattr(fl, name).value_and_grad(*args, reduction="none")
    strided = [np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a for a in args]
    swapped = [a.astype(a.dtype.newbyteorder(">")) for a in args]
    int_target = args[:-1] + [args[-1].astype(np.int64)] if name != "triplet_margin_loss" else args
    for variant in (strided, swapped, int_target):
        got = getattr(fl, name).value_and_grad(*variant, reduction="none")
        assert_bitwise_equal(got[0], want[0], "value")
        for a, b in zip(got[1] if isinstance(got[1], tuple) else (got[1],), want[1] if isinstance(want[1], tuple) else (want[1],)):
            assert_bitwise_equal(a, b, "grad")
    mixed = [args[0].astype(np.float64)] + args[1:]
    v, _ = getattr(fl, name).value_and_grad(*mixed)
    assert np.asarray(v).dtype == np.float64


@pytest.mark.parametrize("name", ROW_LOSSES + EW_LOSSES)
def test_bitwise_identical_for_any_thread_count(name, restore_threads):
    rng = np.random.default_rng(4)
    shape = (3001, 100) if name in ROW_LOSSES else (300_001,)
    args = make_args(name, rng, shape, np.float32, "adversarial")
    for opts in OPTIONS[name]:
        results = []
        for t in (1, 2, 3):
            fl.set_num_threads(t)
            with np.errstate(all="ignore"):
                results.append([getattr(fl, name).value_and_grad(*args, **opts, reduction=r) for r in REDUCTIONS])
        for other in results[1:]:
            for (v1, g1), (v2, g2) in zip(results[0], other):
                assert_bitwise_equal(v1, v2, "value")
                for a, b in zip(g1 if isinstance(g1, tuple) else (g1,), g2 if isinstance(g2, tuple) else (g2,)):
                    assert_bitwise_equal(a, b, "grad")


@pytest.mark.parametrize("impl_name", ["fastloss", "reference"])
@pytest.mark.parametrize("name", ROW_LOSSES + EW_LOSSES)
def test_out_is_honoured_and_checked(name, impl_name):
    impl = fl if impl_name == "fastloss" else fl.reference
    f = getattr(impl, name)
    rng = np.random.default_rng(5)
    shape = (5, 7) if name in ROW_LOSSES else (11,)
    args = make_args(name, rng, shape, np.float64)
    want = f.grad(*args)
    k = len(want) if isinstance(want, tuple) else 1
    bufs = tuple(np.full(shape, -7.0) for _ in range(k))
    got = f.grad(*args, out=bufs if k > 1 else bufs[0])
    for g, b, w in zip(got if k > 1 else (got,), bufs, want if k > 1 else (want,)):
        assert g is b
        assert_bitwise_equal(b, w, "out")
    bad_cases = [
        (tuple(np.zeros(shape, np.float32) for _ in range(k)), TypeError),
        (tuple(np.zeros(shape[:-1] + (shape[-1] + 1,)) for _ in range(k)), ValueError),
    ]
    if len(shape) == 2:
        bad_cases.append((tuple(np.zeros(shape, order="F") for _ in range(k)), ValueError))
    if k > 1:
        bad_cases.append(((np.zeros(shape),) * (k - 1), TypeError))
        same = np.zeros(shape)
        bad_cases.append(((same,) * k, ValueError))
    for bad, exc in bad_cases:
        before = snapshot(*bad)
        with pytest.raises(exc):
            f.grad(*args, out=bad if k > 1 else bad[0])
        assert_unchanged(before, snapshot(*bad), "out")


def test_out_aliasing_an_input_is_safe():
    rng = np.random.default_rng(6)
    a, p, n = make_args("triplet_margin_loss", rng, (5, 9), np.float64)
    want = fl.triplet_margin_loss.grad(a, p, n)
    a2, p2, n2 = a.copy(), p.copy(), n.copy()
    got = fl.triplet_margin_loss.grad(a2, p2, n2, out=(a2, p2, n2))
    for g, w in zip(got, want):
        assert_bitwise_equal(g, w, "aliased out")


# --------------------------------------------------------------------------------------------------
# Gradients by central finite differences (float64, away from kinks)
# --------------------------------------------------------------------------------------------------

FD_CASES = [
    ("triplet_margin_loss", {"margin": 5.0}),
    ("triplet_margin_loss", {"margin": 5.0, "p": 1.5}),
    ("triplet_margin_loss", {"margin": 5.0, "p": 3.0, "swap": True}),
    ("triplet_margin_loss", {"margin": 5.0, "p": 1.0}),
    ("contrastive_loss", {"margin": 4.0}),
    ("cosine_embedding_loss", {"margin": -2.0}),
    ("margin_ranking_loss", {"margin": 10.0}),
    ("hinge_embedding_loss", {"margin": 10.0}),
]


@pytest.mark.parametrize("name,opts", FD_CASES)
def test_gradient_matches_finite_differences(name, opts):
    rng = np.random.default_rng(7)
    shape = (4, 6) if name in ROW_LOSSES else (12,)
    args = make_args(name, rng, shape, np.float64)
    f = getattr(fl, name)
    grads = f.grad(*args, **opts, reduction="sum")
    grads = grads if isinstance(grads, tuple) else (grads,)
    h = 1e-6
    for i, g in enumerate(grads):
        fd = np.empty_like(g)
        for idx in np.ndindex(g.shape):
            up = [a.copy() for a in args]
            dn = [a.copy() for a in args]
            up[i][idx] += h
            dn[i][idx] -= h
            fd[idx] = (f(*up, **opts, reduction="sum") - f(*dn, **opts, reduction="sum")) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7, err_msg=f"{name} {opts} grad {i}")


# --------------------------------------------------------------------------------------------------
# Subgradients at kinks (PyTorch's choices)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_margin_boundary_passes_the_gradient(impl):
    # margin_ranking: −y·(x1 − x2) + m = 0 exactly → active (clamp_min passes at the boundary).
    g1, g2 = impl.margin_ranking_loss.grad(np.array([1.0]), np.array([2.0]), np.array([1.0]), margin=-1.0,
                                           reduction="sum")
    assert g1[0] == -1.0 and g2[0] == 1.0
    g = impl.hinge_embedding_loss.grad(np.array([1.5]), np.array([-1.0]), margin=1.5, reduction="sum")
    assert g[0] == -1.0
    # triplet, p = 1, eps = 0, integers: d(a,p) = 2, d(a,n) = 5, margin 3 → pre = 0 → active.
    a, p, n = np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]), np.array([[2.0, 3.0]])
    ga, gp, gn = impl.triplet_margin_loss.grad(a, p, n, margin=3.0, p=1.0, eps=0.0, reduction="sum")
    np.testing.assert_array_equal(ga, [[0.0, 0.0]])
    np.testing.assert_array_equal(gp, [[1.0, 1.0]])
    np.testing.assert_array_equal(gn, [[-1.0, -1.0]])  # +∂d(a,n)/∂n·(−1) = sign(a − n)
    # cosine, y = −1, cos = 0 = margin → active: ∂cos/∂x1 = x2/|x1||x2|.
    g1, _ = impl.cosine_embedding_loss.grad(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([-1.0]),
                                            margin=0.0, reduction="sum")
    assert g1[0, 1] > 0.99


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_zero_distance_gives_a_finite_gradient(impl, dtype):
    x = np.ones((2, 5), dtype)
    for p in (1.0, 2.0, 3.0, 0.5):
        grads = impl.triplet_margin_loss.grad(x, x, x, eps=0.0, p=p)
        for g in grads:
            assert np.all(np.isfinite(g))
            np.testing.assert_array_equal(g, 0.0) if p != 1.0 else None
    for y in (0.0, 1.0):
        grads = impl.contrastive_loss.grad(x, x, np.full(2, y, dtype), eps=0.0)
        for g in grads:
            np.testing.assert_array_equal(g, 0.0)
    grads = impl.cosine_embedding_loss.grad(np.zeros((2, 5), dtype), x, np.ones(2, dtype))
    for g in grads:
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_cosine_epsilon_is_torchs_float_constant_in_float64_too(impl):
    # torch 2.13 (float64 autograd): at a zero input1 the gradient is −x2/√(ε·(‖x2‖² + ε)) with
    # ε = float32(1e-12) = 9.99999996e-13; exactly 1e-12 would give −948683.29804577, ....
    g1, _ = impl.cosine_embedding_loss.grad(np.zeros((1, 2)), np.array([[0.3, 0.1]]), np.array([1.0]))
    np.testing.assert_allclose(g1, [[-948683.29994115, -316227.76664705]], rtol=1e-13)


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_inf_norm_shares_the_gradient_among_ties(impl, dtype):
    # u = a − p = (3, −3, 1): ‖u‖_∞ = 3 at two elements, each gets sign(u)/2 (PyTorch's amax backward);
    # v = a − n = (0, 0, 0.5): one max. NaN in a row: its distance is NaN (gradients: the test below).
    a, p, n = (np.array([x], dtype) for x in ([3.0, -3.0, 1.0], [0.0, 0.0, 0.0], [3.0, -3.0, 0.5]))
    value, (ga, gp, gn) = impl.triplet_margin_loss.value_and_grad(a, p, n, p=math.inf, eps=0.0, reduction="sum")
    assert value == 1.0 + 3.0 - 0.5
    np.testing.assert_array_equal(gp, [[-0.5, 0.5, 0.0]])
    np.testing.assert_array_equal(gn, [[0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(ga, -(gp + gn))
    a[0, 2] = np.nan
    value, (ga, gp, gn) = impl.triplet_margin_loss.value_and_grad(a, p, n, p=math.inf, eps=0.0, reduction="sum")
    assert np.isnan(value)


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_triplet_p1_with_a_nan_row_is_torchs(impl):
    """A NaN anchor element: its row's loss is NaN and clamp_min passes no gradient there (NaN ≥ 0 is
    false); the other row's p = 1 gradients are torch's signs. Values from PyTorch 2.13."""
    a = np.array([[np.nan, 1.0, 2.0], [0.5, 1.0, -2.0]])
    p, n = np.zeros((2, 3)), np.ones((2, 3))
    value, (ga, gp, gn) = impl.triplet_margin_loss.value_and_grad(a, p, n, p=1.0, eps=0.0, reduction="sum")
    assert np.isnan(value)
    np.testing.assert_array_equal(ga, [[0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    np.testing.assert_array_equal(gp, [[0.0, 0.0, 0.0], [-1.0, -1.0, 1.0]])
    np.testing.assert_array_equal(gn, [[0.0, 0.0, 0.0], [-1.0, 0.0, -1.0]])


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_triplet_nan_rows_are_torchs(impl, dtype):
    """Rows with NaN (or inf − inf) in a − p: the loss is NaN and clamp_min passes 0 there. For p = inf
    torch's max-norm backward multiplies by sign(u), 0 at the NaN, so the row's gradient is 0; for
    real p the NaN norm makes the whole row NaN, u = 0 elements included (torch masks u = 0 only
    through the norm). The finite rows are ordinary. Values from PyTorch 2.13 (float64)."""
    inf = math.inf
    a = np.array([[np.nan, 1.0, 2.0], [inf, 1.0, -2.0], [0.5, 1.0, -2.0]], dtype)
    p = np.array([[0.0, 0.0, 0.0], [inf, 0.0, 0.0], [0.0, 0.0, 3.0]], dtype)
    n = np.ones((3, 3), dtype)
    zero = [[0.0] * 3] * 2
    for swap, want in [(False, ([[0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]], [[0.0, 0.0, -1.0]])),
                       (True, ([[0.0, 0.0, -1.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]))]:
        value, grads = impl.triplet_margin_loss.value_and_grad(a, p, n, p=inf, eps=0.0, swap=swap, reduction="sum")
        assert np.isnan(value)
        for g, w in zip(grads, want):
            np.testing.assert_array_equal(g, zero + w)
    a, p, n = a[[0, 2]], np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 3.0]], dtype), n[:2]
    nan_row = [np.nan] * 3
    for q, want in [
        (3.0, ([0.037685712187721813, 0.0, -0.0024084494599141415],
               [-0.009993338883955143, 0.0, 0.9993338883955143],
               [-0.02769237330376667, 0.0, -0.9969254389356002])),
        (0.5, ([7.611767402951557, 0.0, 0.09202052444702513],
               [-4.162277660168379, 0.0, 1.316227766016838],
               [-3.4494897427831774, 0.0, -1.4082482904638631])),
        (1.5, ([0.7123510241179534, 0.0, -0.011379155311301403],
               [-0.3129630214583719, 0.0, 0.9896759712166066],
               [-0.3993880026595814, 0.0, -0.9782968159053052])),
    ]:
        value, grads = impl.triplet_margin_loss.value_and_grad(a, p, n, p=q, eps=0.0, reduction="sum")
        assert np.isnan(value)
        rtol = 1e-12 if dtype == np.float64 else 1e-6
        for g, w in zip(grads, want):
            np.testing.assert_allclose(g, [nan_row, w], rtol=rtol, atol=0)


def test_swap_tie_splits_the_gradient():
    # d(a,n) = d(p,n): torch.min gives half of the gradient to each.
    a, p, n = np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]]), np.array([[1.0, 5.0]])
    for impl in (fl, fl.reference):
        ga, gp, gn = impl.triplet_margin_loss.grad(a, p, n, margin=10.0, eps=0.0, swap=True, reduction="sum")
        dn = np.hypot(1.0, 5.0)
        # gn = ½·(a − n)/d(a,n) + ½·(p − n)/d(p,n)
        np.testing.assert_allclose(gn, [[0.5 * ((0 - 1) + (2 - 1)) / dn, 0.5 * (-5 - 5) / dn]], rtol=1e-15)
        np.testing.assert_allclose(gp, [[1.0 - 0.5 * 1 / dn, 0.5 * 5 / dn]], rtol=1e-15)  # gp = −(a − p)/d(a,p) − ½·(p − n)/d(p,n)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def _bad_calls():
    x, y3 = np.zeros((3, 4)), np.zeros((2, 4))
    pm, zo = np.array([1.0, -1.0, 1.0]), np.array([0.0, 1.0, 1.0])
    calls = [
        ("triplet_margin_loss", (x, x, y3), {}, ValueError, r"negative.*\(2, 4\)"),
        ("triplet_margin_loss", (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros((2, 2, 4))), {}, ValueError,
         r"negative: shape \(2, 2, 4\) does not broadcast with \(2, 3, 4\)"),
        ("triplet_margin_loss", (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros((2, 4, 3))), {}, ValueError,
         r"negative: rows of length 3, anchor's are 4"),
        ("triplet_margin_loss", (np.zeros((2, 1)), np.zeros((2, 4)), np.zeros((2, 4))), {}, ValueError,
         r"positive: rows of length 4, anchor's are 1"),
        ("triplet_margin_loss", (x, x[0], x), {}, ValueError, r"positive: expected 2 dimensions as anchor has"),
        ("contrastive_loss", (x, np.zeros((1, 1, 4)), zo), {}, ValueError, r"input2: expected 2 dimensions"),
        ("contrastive_loss", (x, np.zeros((1, 4)), zo[:2]), {}, ValueError, r"target.*\(2,\).*\(3,\)"),
        ("contrastive_loss", (np.zeros((2, 3, 4)),) * 2 + (np.zeros(3),), {}, ValueError, r"target.*\(3,\)"),
        ("cosine_embedding_loss", (np.zeros((2, 3, 4)),) * 2 + (np.ones((2, 3)),), {}, ValueError,
         r"input1.*\(2, 3, 4\)"),
        ("cosine_embedding_loss", (np.zeros(()),) * 2 + (np.ones(()),), {}, ValueError, r"input1.*\(\)"),
        ("triplet_margin_loss", (x, x, x), {"p": 0.0}, ValueError, "p"),
        ("triplet_margin_loss", (x, x, x), {"p": -1.0}, ValueError, "p"),
        ("triplet_margin_loss", (x, x, x), {"p": math.nan}, ValueError, "p"),
        ("triplet_margin_loss", (x, x, x), {"swap": 1}, TypeError, "swap"),
        ("triplet_margin_loss", (x, x, x), {"margin": 0.0}, ValueError, r"margin: got 0.0, expected a number > 0"),
        ("triplet_margin_loss", (x, x, x), {"margin": -1.0}, ValueError, r"margin: got -1.0"),
        ("triplet_margin_loss", (x, x, x), {"margin": "1"}, TypeError, "margin"),
        ("triplet_margin_loss", (x, x, x.astype(complex)), {}, TypeError, "negative.*complex"),
        ("triplet_margin_loss", (x, x, x), {"reduction": "avg"}, ValueError, "reduction"),
        ("contrastive_loss", (x, x, np.array([0.0, 1.0, 2.0])), {}, ValueError, r"target.*0 or 1.*2"),
        ("contrastive_loss", (x, x, np.array([0.0, 1.0, -1.0])), {}, ValueError, r"target.*-1"),
        ("contrastive_loss", (x, x, np.array([0.0, np.nan, 1.0])), {}, ValueError, r"target.*nan"),
        ("contrastive_loss", (x, x, np.zeros(4)), {}, ValueError, r"target.*\(4,\)"),
        ("contrastive_loss", (x, y3, zo), {}, ValueError, r"input2.*\(2, 4\)"),
        ("contrastive_loss", (x, x, zo), {"eps": None}, TypeError, "eps"),
        ("cosine_embedding_loss", (x, x, np.array([[1.0], [1.0], [1.0]])), {}, ValueError, r"target.*\(3, 1\)"),
        ("cosine_embedding_loss", (x[0], x[0], pm), {}, ValueError, r"target.*\(3,\)"),
        ("cosine_embedding_loss", (x, x, pm.astype(complex)), {}, TypeError, "target.*complex"),
        ("cosine_embedding_loss", (x, x, pm), {"grad_output": np.ones(4), "reduction": "none"}, ValueError,
         r"grad_output.*\(4,\)"),
        ("margin_ranking_loss", (pm, pm[:2], pm), {}, ValueError, r"input2.*\(2,\)"),
        ("margin_ranking_loss", (pm, pm, pm[:2]), {}, ValueError, r"target.*\(2,\)"),
        ("margin_ranking_loss", (pm, pm, pm), {"margin": [1]}, TypeError, "margin"),
        ("hinge_embedding_loss", (pm, pm[:1]), {}, ValueError, r"target.*\(1,\)"),
        ("hinge_embedding_loss", (np.array(["a", "b", "c"]), pm), {}, TypeError, "input"),
        ("hinge_embedding_loss", (pm, pm), {"reduction": "batchmean"}, ValueError, "reduction"),
    ]
    return [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(calls)]


def test_targets_other_than_plus_minus_one_follow_torch():
    """torch computes these losses for any target value: hinge_embedding_loss gives a target that is
    neither 1 nor −1 both terms, cosine_embedding_loss gives it 0, margin_ranking_loss puts it in its
    formula. Values from PyTorch 2.13; gradients against the reference and by hand."""
    x = np.array([0.3, -0.2], np.float32)
    got = fl.hinge_embedding_loss(x, np.zeros(2, np.float32), reduction="none")
    np.testing.assert_array_equal(got, np.array([1.0, 1.0], np.float32))  # (1 − x) + x
    g = fl.hinge_embedding_loss.grad(x, np.zeros(2, np.float32), reduction="sum")
    np.testing.assert_array_equal(g, np.zeros(2, np.float32))  # 1 − 1
    got = fl.margin_ranking_loss(x, -x, np.zeros(2, np.float32), reduction="none")
    np.testing.assert_array_equal(got, np.zeros(2, np.float32))
    a = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    b = np.array([[0.8, 0.6], [1.0, 0.0]], np.float32)
    got = fl.cosine_embedding_loss(a, b, np.array([1.0, 0.0], np.float32), reduction="none")
    np.testing.assert_allclose(got, np.array([0.2, 0.0], np.float32), rtol=1e-6)
    g1, g2 = fl.cosine_embedding_loss.grad(a, b, np.array([0.0, 2.0], np.float32), reduction="sum")
    assert not g1.any() and not g2.any()
    rng = np.random.default_rng(5)
    t = rng.choice(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), size=64)
    u, v = rng.standard_normal(64), rng.standard_normal(64)
    for name, args in [("hinge_embedding_loss", (u, t)), ("margin_ranking_loss", (u, v, t)),
                       ("cosine_embedding_loss", (rng.standard_normal((64, 5)), rng.standard_normal((64, 5)), t))]:
        for reduction in ("none", "sum"):
            want_v, want_g = getattr(fl.reference, name).value_and_grad(*args, reduction=reduction)
            got_v, got_g = getattr(fl, name).value_and_grad(*args, reduction=reduction)
            np.testing.assert_allclose(got_v, want_v, rtol=1e-13, atol=1e-15)
            for gg, wg in zip(got_g if isinstance(got_g, tuple) else (got_g,),
                              want_g if isinstance(want_g, tuple) else (want_g,)):
                np.testing.assert_allclose(gg, wg, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name,args,kwargs,exc,match", _bad_calls())
def test_bad_input_raises(name, args, kwargs, exc, match):
    before = snapshot(*args)
    for impl in (fl, fl.reference):
        f = getattr(impl, name)
        for call in (f.grad, f.value_and_grad) if "grad_output" in kwargs else (f, f.grad, f.value_and_grad):
            with pytest.raises(exc, match=match):
                call(*args, **kwargs)
    assert_unchanged(before, snapshot(*args))
    # A caller's out= is left untouched when the call fails.
    if "grad_output" not in kwargs:
        k = {"triplet_margin_loss": 3, "hinge_embedding_loss": 1}.get(name, 2)
        bufs = tuple(np.full(np.shape(args[0]), -777.0) for _ in range(k))
        with pytest.raises(exc):
            getattr(fl, name).grad(*args, **kwargs, out=bufs if k > 1 else bufs[0])
        for b in bufs:
            assert np.all(b == -777.0)


# --------------------------------------------------------------------------------------------------
# SIMD levels give the same bits (the lanes' order is fixed and no FMA is used)
# --------------------------------------------------------------------------------------------------

_SIMD_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
import fastloss as fl
from test_embedding import make_args, OPTIONS, ROW_LOSSES
out = {{}}
rng = np.random.default_rng(11)
for name in OPTIONS:
    for dtype in (np.float32, np.float64):
        shape = (40, 37) if name in ROW_LOSSES else (1001,)
        args = make_args(name, rng, shape, dtype, "adversarial")
        for j, opts in enumerate(OPTIONS[name]):
            with np.errstate(all="ignore"):
                v, g = getattr(fl, name).value_and_grad(*args, **opts, reduction="none")
                s = getattr(fl, name)(*args, **opts, reduction="sum")
            g = g if isinstance(g, tuple) else (g,)
            key = f"{{name}}.{{np.dtype(dtype).name}}.{{j}}"
            out[key + ".v"] = v
            out[key + ".s"] = np.asarray(s)
            for i, x in enumerate(g):
                out[key + f".g{{i}}"] = x
np.savez({path!r}, **out)
"""


def test_simd_levels_agree_bitwise(tmp_path):
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    results = {}
    for level in ("sse2", "avx2", "avx512"):
        path = str(tmp_path / f"{level}.npz")
        env = {**os.environ, "FASTLOSS_SIMD": level}
        subprocess.run([sys.executable, "-c", _SIMD_SCRIPT.format(tests=tests, path=path)], env=env, check=True)
        with np.load(path) as z:
            results[level] = {k: z[k] for k in z.files}
    base = results["sse2"]
    for level in ("avx2", "avx512"):
        for k, v in base.items():
            # Differently compiled instances: NaNs by position (see assert_bitwise_equal).
            assert_bitwise_equal(results[level][k], v, f"{k} at {level} vs sse2", nan_payload=False)


@pytest.mark.parametrize("p", [0.5, 3.0])
@pytest.mark.parametrize("swap", [False, True])
def test_real_p_distance_of_subnormal_differences(p, swap):
    """The real-p norm scales each row by its largest |u_i|; a subnormal largest element must not
    turn the scaling into inf (found by hypothesis: loss 0 instead of 1)."""
    tiny = np.finfo(np.float64).smallest_subnormal
    a, pos, neg = np.zeros(1), np.zeros(1), np.array([tiny])
    kwargs = {"p": p, "swap": swap, "eps": 0.0, "reduction": "none"}
    got = fl.triplet_margin_loss(a, pos, neg, **kwargs)
    want = fl.reference.triplet_margin_loss(a, pos, neg, **kwargs)
    np.testing.assert_array_equal(got, want)
    assert float(got) == 1.0
