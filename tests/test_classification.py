"""fastloss's classification losses agree with fastloss.reference (and PyTorch's semantics).

Every comparison goes through `check`: per element |fast − reference| <= k·ulp(reference) + floor,
where k counts the kernel's roundings in the computation dtype (plus the reference's own) and the
floor is nonzero only where a formula subtracts computed quantities (then it is a few ulps of the
operands, computed per element by the loss's `model`). Reduced values must lie within the sum of the
per-element tolerances plus the difference of two float64 summation orders. NaN must appear exactly
where the reference has it, the promised dtype / shape / result type must come back, and no argument
may be modified. Inputs: hypothesis-drawn arrays, adversarial arrays (NaN, ±inf, extreme logits ±1e4,
huge and tiny magnitudes) at every SIMD width and block boundary, strided / byte-swapped / 0-d /
integer inputs, float32 and float64; results must be bitwise identical for 1 and 2 threads. Every
error (probabilities outside [0, 1], shape mismatches, bad options and reductions, bad out=) is
checked to raise the same exception from fastloss and the reference without touching out=.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastloss as fl
from fastloss._args import sum_to_shape
from helpers import (
    FLOATS,
    as_f64,
    assert_bitwise_equal,
    assert_close,
    assert_unchanged,
    expected_dtype,
    read_only,
    snapshot,
    order_decides_overflow,
    summation_gamma,
    ulp,
)

REDUCTIONS = ("none", "mean", "sum")
BOUNDARY_LENGTHS = (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 255, 256, 257, 16383, 16384, 16385, 140_001)


# --------------------------------------------------------------------------------------------------
# Error models: (k_value, k_grad, floor_value, floor_grad, skip) for the bare ℓ and ∂ℓ/∂x
# --------------------------------------------------------------------------------------------------


def _U(dtype):
    return lambda a: ulp(np.nan_to_num(np.asarray(a, np.float64), nan=0.0, posinf=0.0, neginf=0.0), dtype)


def _sig(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _big(dtype):
    return np.finfo(dtype).max / 64


def model_bce(x, y, kw, dtype):
    # Two clamped logs (<= 1 ulp each), two products, a sum of same-signed terms; the gradient's
    # x − y and x(1 − x) round once each, then the quotient.
    return 4, 5, 0.0, 0.0, False


def model_bce_logits(x, y, kw, dtype):
    U = _U(dtype)
    p = kw.get("_pos_weight_full", 1.0)
    with np.errstate(all="ignore"):
        l1p = np.log1p(np.exp(-np.abs(x)))
        lin = np.where(x >= 0, (1 - y) * x, -p * y * x)
        lw = 1 + (p - 1) * y
        s, sn = _sig(x), _sig(-x)
        # The terms have one sign for targets in [0, 1]; other targets may cancel: C ulps of each term.
        # lw = (p − 1)·y + 1 cancels for p < 1 (rounded in the dtype, as PyTorch does): C ulps of its
        # operands, times log1p(e^−|x|).
        fv = 2 * (U(lin) + U(lw * l1p)) + 2 * (U((p - 1) * y) + U(1.0)) * l1p
        fg = 2 * (U(s * (1 - y)) + U(p * y * sn))
        # A factor that is subnormal in the dtype carries an absolute error of its own ulp there, which
        # the multiplication by a large factor magnifies (in PyTorch too).
        fv = fv + 2 * np.abs(lw) * U(l1p)
        fg = fg + 2 * (np.abs(1 - y) * U(s) + np.abs(p * y) * U(sn))
        skip = (np.abs(x) * (np.abs(y) + 1) * (np.abs(p) + 1) > _big(dtype))
    return 5, 5, fv, fg, skip


def model_focal(x, y, kw, dtype):
    U = _U(dtype)
    gamma = kw.get("gamma", 2.0)
    eps = np.finfo(dtype).eps
    with np.errstate(all="ignore"):
        s, sn = _sig(x), _sig(-x)
        ce = np.where(x >= 0, (1 - y) * x, -y * x) + np.log1p(np.exp(-np.abs(x)))
        q = s * (1 - y) + sn * y
        qg = np.power(q, gamma)
        dqg = gamma * np.power(q, gamma - 1) if gamma != 0 else np.zeros_like(q)
        t1 = (s * (1 - y) - sn * y) * qg
        t2 = ce * dqg * s * sn * (1 - 2 * y)
        # q^γ = e^(γ·log q) for non-integer γ: a relative error of |γ·log q|·eps (and |(γ−1)·log q|·eps
        # in γ·q^(γ−1)).
        lq = np.abs(np.log(q))
        rel = 0.0 if gamma in (0.0, 1.0, 2.0, 3.0) else 2 * (np.abs(gamma) + np.abs(gamma - 1)) * lq * eps
        fv = 2 * U(ce) * qg + rel * np.abs(ce * qg)
        fg = 2 * (U(t1) + U(t2) + (U(s * (1 - y)) + U(sn * y)) * qg) + rel * (np.abs(t1) + np.abs(t2))
        # A q^γ or γ·q^(γ−1) that is subnormal in the dtype carries an absolute error of its own ulp
        # there, which ce (up to |x|·y) magnifies (in PyTorch too): e.g. x = −8.7e14, y = 1e-12,
        # γ = 3.5 gives q^γ = 1e-42 (float32) and a loss of 8.7e-41 that is 33 subnormal ulps off.
        tiny = np.finfo(dtype).tiny
        sub_qg = np.where(qg < tiny, U(qg), 0.0)
        sub_dqg = np.where(np.abs(dqg) < tiny, U(dqg), 0.0)
        fv = fv + 2 * np.abs(ce) * sub_qg
        fg = fg + 2 * (np.abs(s * (1 - y) - sn * y) * sub_qg + np.abs(ce * s * sn * (1 - 2 * y)) * sub_dqg)
        skip = np.abs(x) * (np.abs(y) + 1) > _big(dtype)
        # For γ < 1, γ·q^(γ−1)·dq/dx is ∞·0 = NaN where q underflows to 0 (as in PyTorch); q underflows in
        # float32 at smaller |x| than in the float64 reference: there the two legitimately differ.
        if gamma < 1:
            skip = skip | ((q.astype(dtype) == 0) & (q != 0))
    return 8, 10, np.nan_to_num(fv), np.nan_to_num(fg), skip


def _margin_parts(x, y, kw, dtype):
    U = _U(dtype)
    m = kw.get("margin", 1.0)
    with np.errstate(all="ignore"):
        u = m - x * y
        fu = 2 * (U(m) + U(x * y))  # u = m − x·y cancels near the kink
        # Near u = 0 the kernel's rounded u may pick the other side of the kink than the reference.
        near = np.abs(u) <= 2 * fu
        skip = np.abs(x * y) > _big(dtype)
    return u, fu, near, skip


def model_hinge(x, y, kw, dtype):
    u, fu, near, skip = _margin_parts(x, y, kw, dtype)
    return 3, 3, fu, 0.0, skip | near


def model_squared_hinge(x, y, kw, dtype):
    u, fu, near, skip = _margin_parts(x, y, kw, dtype)
    with np.errstate(all="ignore"):
        c = np.maximum(u, 0)
        fv = 2 * c * fu + fu * fu
        fg = 2 * fu * np.abs(y)
        skip = skip | (c * c > _big(dtype))
    return 4, 4, np.nan_to_num(fv), np.nan_to_num(fg), skip | near


def model_exponential(x, y, kw, dtype):
    # e^t with t = −x·y rounded: a relative error of |t|·eps, i.e. about |t| ulps.
    with np.errstate(all="ignore"):
        t = np.abs(x * y)
        e = np.exp(-x * y)
        fv = 2 * np.nan_to_num(t) * _U(dtype)(e)
        fg = 2 * np.nan_to_num(t) * _U(dtype)(y * e) + 2 * np.abs(y) * _U(dtype)(e)  # e subnormal
        # Within the rounding of t (half an ulp of t, i.e. a factor e^(t·eps/2)) of the dtype's largest
        # number, that rounding decides between a finite e^t and ∞ (NumPy and PyTorch round t in the dtype
        # too: float32 x = 5.291518e16, y = −1.6766992e-15 gives t = 88.72284 and e^t = ∞, while the float64
        # reference's t gives 3.4028124e38).
        near_overflow = e * np.exp(t * np.finfo(dtype).eps) >= np.finfo(dtype).max
        skip = (t > 700) | ~np.isfinite(e) | near_overflow | (np.abs(y * e) > _big(dtype))
    return 3, 4, np.nan_to_num(fv), np.nan_to_num(fg), skip


def model_soft_margin(x, y, kw, dtype):
    with np.errstate(all="ignore"):
        m = x * y
        # softplus(−m) and σ(−m) from a rounded m: an absolute error σ(−m)·ulp(m) in the value and a
        # relative one σ(m)·|m|·eps in σ(−m).
        fv = 2 * _sig(-m) * _U(dtype)(m)
        fg = 2 * np.abs(m) * _U(dtype)(y * _sig(-m)) + 2 * np.abs(y) * _U(dtype)(_sig(-m))
        skip = np.abs(m) > _big(dtype)
    return 3, 4, np.nan_to_num(fv), np.nan_to_num(fg), skip


def model_kl(x, t, kw, dtype):
    U = _U(dtype)
    with np.errstate(all="ignore"):
        if kw.get("log_target", False):
            et = np.exp(t)
            fv = 2 * et * (U(t) + U(x)) + 2 * np.abs(t - x) * U(et)  # t − x cancels; e^t may be subnormal
            # e^t overflowing the dtype gives ∞·0 = NaN at t = x (as in PyTorch) where float64 has 0.
            skip = (np.abs(et * (t - x)) > _big(dtype)) | (np.abs(x) > _big(dtype)) | (et > _big(dtype))
            return 3, 3, np.nan_to_num(fv), 0.0, skip
        tlt = np.where(t == 0, 0.0, t * np.log(t))
        fv = 2 * (U(tlt) + U(t * x))  # t·log t − t·x cancels where log t ≈ x (KL near 0)
        skip = np.abs(t * x) > _big(dtype)
    return 3, 3, np.nan_to_num(fv), 0.0, skip


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

EXTREMES = np.array([0.0, -0.0, 1e4, -1e4, 100.0, -100.0, 88.0, -88.0, 30.0, -30.0, 1e30, -1e30, 1e-30, -1e-30,
                     1e-40, np.inf, -np.inf, np.nan])


def logits(rng, n, dtype, adversarial):
    a = rng.standard_normal(n) * rng.choice([0.1, 1.0, 10.0])
    if adversarial:
        a = np.where(rng.random(n) < 0.3, rng.choice(EXTREMES, n), a)
        a = np.where(rng.random(n) < 0.1, 10.0 ** rng.uniform(-40, 38, n) * rng.choice([-1, 1], n), a)
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def labels01(rng, n, dtype, adversarial):
    """Hard 0/1 labels mixed with soft ones in [0, 1]."""
    hard = (rng.random(n) < 0.5).astype(np.float64)
    return np.where(rng.random(n) < 0.6, hard, rng.random(n)).astype(dtype)


def labels_pm1(rng, n, dtype, adversarial):
    y = rng.choice([-1.0, 1.0], n)
    if adversarial:  # other values enter the formulas as they are
        y = np.where(rng.random(n) < 0.1, rng.standard_normal(n) * 3, y)
        y = np.where(rng.random(n) < 0.05, rng.choice([np.nan, np.inf, 0.0, -np.inf], n), y)
    return y.astype(dtype)


def probabilities(rng, n, dtype, adversarial):
    p = rng.random(n)
    if adversarial:
        p = np.where(rng.random(n) < 0.3, rng.choice([0.0, 1.0, 1e-30, 1e-12, 0.5, 1 - 1e-7, 1e-45], n), p)
    with np.errstate(under="ignore"):
        return p.astype(dtype)


def log_probs(rng, n, dtype, adversarial):
    a = np.log(rng.random(n) + 1e-12) * rng.choice([0.5, 1.0, 5.0])
    if adversarial:
        a = np.where(rng.random(n) < 0.2, rng.choice([-np.inf, -1e4, 0.0, -1e-30, np.nan, 5.0], n), a)
    return a.astype(dtype)


def kl_targets(rng, n, dtype, adversarial):
    t = rng.random(n) * rng.choice([0.1, 1.0])
    t = np.where(rng.random(n) < 0.2, 0.0, t)  # xlogy(0, 0) = 0
    if adversarial:
        t = np.where(rng.random(n) < 0.1, rng.choice([-0.5, np.nan, np.inf, 1e-45, 1e30], n), t)
    with np.errstate(under="ignore"):
        return t.astype(dtype)


class Loss:
    def __init__(self, name, gen_x, gen_y, model, options=({},), weighted=False, log_target_gen=None):
        self.name, self.gen_x, self.gen_y, self.model = name, gen_x, gen_y, model
        self.options, self.weighted, self.log_target_gen = options, weighted, log_target_gen

    @property
    def fast(self):
        return getattr(fl, self.name)

    @property
    def ref(self):
        return getattr(fl.reference, self.name)

    def inputs(self, rng, shape, dtype, adversarial, opts=None):
        n = int(np.prod(shape))
        gen_y = self.log_target_gen if (opts or {}).get("log_target") else self.gen_y
        return (self.gen_x(rng, n, dtype, adversarial).reshape(shape),
                gen_y(rng, n, dtype, adversarial).reshape(shape))


LOSSES = {
    s.name: s
    for s in [
        Loss("binary_cross_entropy", probabilities, labels01, model_bce, options=({}, {"weight": "full"},
             {"weight": "row"}), weighted=True),
        Loss("binary_cross_entropy_with_logits", logits, labels01, model_bce_logits,
             options=({}, {"weight": "full"}, {"pos_weight": "row"}, {"pos_weight": "row", "weight": "col"}),
             weighted=True),
        Loss("sigmoid_focal_loss", logits, labels01, model_focal,
             options=({}, {"alpha": -1.0, "gamma": 0.0}, {"alpha": 0.5, "gamma": 1.0}, {"gamma": 3.0},
                      {"alpha": 0.9, "gamma": 3.5}, {"gamma": 0.5})),
        Loss("hinge_loss", logits, labels_pm1, model_hinge, options=({}, {"margin": 0.5}, {"margin": 2.0})),
        Loss("squared_hinge_loss", logits, labels_pm1, model_squared_hinge, options=({}, {"margin": 0.3})),
        Loss("exponential_loss", logits, labels_pm1, model_exponential),
        Loss("soft_margin_loss", logits, labels_pm1, model_soft_margin),
        Loss("kl_div", log_probs, kl_targets, model_kl, options=({}, {"log_target": True}),
             log_target_gen=log_probs),
    ]
}
NAMES = list(LOSSES)


def fill_options(loss, opts, shape, dtype, rng):
    """Replaces the weight markers by arrays: 'full' (the input's shape), 'row' (the last dim, broadcast),
    'col' (shape (shape[-2], 1) for n-d inputs, else the last dim)."""
    out = {}
    for k, v in opts.items():
        if v in ("full", "row", "col"):
            last = shape[-1] if len(shape) else 1
            if v == "full" or not len(shape):
                s = shape
            elif v == "row" or len(shape) < 2:
                s = (last,)
            else:
                s = (shape[-2], 1)
            out[k] = rng.uniform(0.0, 3.0, s).astype(dtype)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------


def check(name, x, y, kwargs, grad_output=None, what=""):
    loss = LOSSES[name]
    before = snapshot(x, y, *kwargs.values(), grad_output)
    with np.errstate(all="ignore"):
        got_v, got_g = loss.fast.value_and_grad(x, y, grad_output=grad_output, **kwargs)
        want_v, want_g = loss.ref.value_and_grad(x, y, grad_output=grad_output, **kwargs)
    assert_unchanged(before, snapshot(x, y, *kwargs.values(), grad_output))
    reduction = kwargs.get("reduction", "mean")
    dtype = expected_dtype(x, y, kwargs.get("weight"), kwargs.get("pos_weight"))
    label = f"{name}({what}{ {k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)} }, dtype={dtype})"
    if reduction == "none":
        assert isinstance(got_v, np.ndarray), label
    else:
        assert isinstance(got_v, np.generic), label
    assert np.asarray(got_v).dtype == dtype and got_g.dtype == dtype, label
    assert got_g.shape == np.shape(x), label

    xs = as_f64(np.asarray(x).astype(dtype))
    ys = as_f64(np.asarray(y).astype(dtype))
    shape = xs.shape
    w = kwargs.get("weight")
    w = np.ones(shape) if w is None else np.broadcast_to(as_f64(np.asarray(w).astype(dtype)), shape)
    mkw = dict(kwargs)
    if kwargs.get("pos_weight") is not None:
        mkw["_pos_weight_full"] = np.broadcast_to(as_f64(np.asarray(kwargs["pos_weight"]).astype(dtype)), shape)
    kv, kg, fv, fg, skip = loss.model(xs, ys, mkw, dtype)
    skip = np.broadcast_to(skip, shape)
    n = xs.size
    divisor = {"mean": n, "sum": 1, "none": 1, "batchmean": (shape[0] if len(shape) else 1)}[reduction]
    go = 1.0 if grad_output is None else as_f64(np.asarray(grad_output).astype(dtype))
    with np.errstate(all="ignore"):
        factor = np.abs(w * go / (divisor or 1)) * np.ones(shape)
        # The per-element terms in the dtype, as fastloss forms them (reference per element, rounded).
        terms = as_f64(loss.ref(x, y, **{**kwargs, "reduction": "none"}))
        raw_v, raw_g = loss.ref.value_and_grad(x, y, **{**{k: v for k, v in kwargs.items() if k != "weight"},
                                                        "reduction": "none"})
    # Where the bare ℓ or ∂ℓ overflows the dtype but the weighted / scaled one need not (fastloss computes
    # ℓ and ∂ℓ in the dtype, then multiplies): not compared.
    skip_v = skip | (np.isinf(as_f64(raw_v)) & (w != 1))
    skip_g = skip | (np.isinf(as_f64(raw_g)) & (factor != 1))

    if reduction == "none":
        tol = kv * ulp(want_v, dtype) + w * fv
        assert_close(got_v, want_v, tol, dtype=dtype, what=f"{label} value", skip=skip_v)
    elif not skip_v.any():
        if not (np.isfinite(terms) | np.isnan(terms)).all() or np.isnan(terms).any():
            with np.errstate(all="ignore"):
                expect = np.float64(terms.sum())
            assert (np.isnan(expect) and np.isnan(got_v)) or float(got_v) == expect, f"{label}: {got_v} vs {expect}"
        elif not order_decides_overflow(terms):
            with np.errstate(all="ignore"):
                per = kv * ulp(terms, dtype) + w * np.broadcast_to(fv, shape)
                tol = (per.sum() + summation_gamma(n) * np.abs(terms).sum()) / (divisor or 1) + 2 * ulp(want_v, dtype)
            assert_close(got_v, want_v, tol, dtype=dtype, what=f"{label} reduced value")
    with np.errstate(all="ignore"):
        tol = kg * ulp(want_g, dtype) + factor * np.broadcast_to(fg, shape)
    assert_close(got_g, want_g, tol, dtype=dtype, what=f"{label} grad", skip=skip_g)
    return (got_v, got_g), (want_v, want_g)


def _grad_outputs(rng, shape, dtype, reduction):
    out = [None, dtype(rng.normal())]
    if reduction == "none":
        out.append(rng.standard_normal(shape).astype(dtype))
    return out


def check_all(name, dtype, rng, shape, adversarial, reductions=REDUCTIONS, grad_outputs=True, what=""):
    loss = LOSSES[name]
    for opts in loss.options:
        x, y = loss.inputs(rng, shape, dtype, adversarial, opts)
        kw = fill_options(loss, opts, shape, dtype, rng)
        reds = reductions + (("batchmean",) if name == "kl_div" else ())
        for reduction in reds:
            for go in _grad_outputs(rng, shape, dtype, reduction) if grad_outputs else [None]:
                check(name, x, y, {**kw, "reduction": reduction}, go, what=what)


# --------------------------------------------------------------------------------------------------
# Reference comparisons
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", BOUNDARY_LENGTHS)
def test_boundary_lengths(name, dtype, n, restore_threads):
    fl.set_num_threads(2)
    rng = np.random.default_rng(n)
    for adversarial in (True, False):
        check_all(name, dtype, rng, (n,), adversarial, grad_outputs=n < 20_000, what=f"n={n}, adv={adversarial}, ")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_every_length_up_to_40_and_2d(name, dtype):
    rng = np.random.default_rng(40)
    for n in range(41):
        check_all(name, dtype, rng, (n,), bool(n % 2), grad_outputs=False, what=f"n={n}, ")
    check_all(name, dtype, rng, (7, 9), True, what="2-d, ")
    check_all(name, dtype, rng, (3, 4, 5), False, what="3-d, ")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_zero_d(name, dtype):
    rng = np.random.default_rng(4)
    for _ in range(6):
        check_all(name, dtype, rng, (), True, what="0-d, ")


def _elements(dtype):
    width = 32 if dtype == np.float32 else 64
    return st.one_of(st.floats(-30, 30, width=width), st.sampled_from([float(v) for v in EXTREMES]),
                     st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True))


@st.composite
def _case(draw, name, dtype):
    loss = LOSSES[name]
    shape = draw(st.one_of(st.tuples(st.integers(0, 50)), st.just(()), st.tuples(st.integers(1, 4), st.integers(1, 7))))
    opts = draw(st.sampled_from(loss.options))
    x = draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))
    unit = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1, width=32))
    if name == "binary_cross_entropy":
        x = draw(hnp.arrays(dtype, shape, elements=unit))
        y = draw(hnp.arrays(dtype, shape, elements=unit))
    elif name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
        y = draw(hnp.arrays(dtype, shape, elements=unit))
    elif name == "kl_div":
        y = draw(hnp.arrays(dtype, shape, elements=st.one_of(unit, _elements(dtype)) if not opts
                            else _elements(dtype)))
    else:
        y = draw(hnp.arrays(dtype, shape, elements=st.one_of(st.sampled_from([-1.0, 1.0]), _elements(dtype))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kw = fill_options(loss, opts, shape, dtype, rng)
    reduction = draw(st.sampled_from(REDUCTIONS + (("batchmean",) if name == "kl_div" else ())))
    go = None
    if draw(st.booleans()):
        go = dtype(draw(st.floats(0.125, 3.0, width=32)))
        if reduction == "none" and draw(st.booleans()):
            go = rng.uniform(-3, 3, shape).astype(dtype)
    return x, y, {**kw, "reduction": reduction}, go


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_matches_reference_hypothesis(name, dtype, data):
    x, y, kw, go = data.draw(_case(name, dtype))
    check(name, x, y, kw, go)


def test_focal_with_a_subnormal_modulating_factor():
    """Found by the `thorough` hypothesis profile: (1 − p_t)^γ = (1e-12)^3.5 = 1e-42 is subnormal in
    float32, so its rounding is a large relative error that ce = 866 magnifies (PyTorch rounds it the
    same way); the error model now counts it."""
    x, y = np.array(-8.665189e14, np.float32), np.array(1e-12, np.float32)
    check("sigmoid_focal_loss", x, y, {"alpha": 0.9, "gamma": 3.5, "reduction": "none"}, None)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "sigmoid_focal_loss", "soft_margin_loss",
                                  "hinge_loss", "squared_hinge_loss"])
def test_extreme_logits_stay_finite(name, dtype):
    """Logits of ±1e4 (and the dtype's max) give finite values and gradients with hard labels."""
    x = np.array([1e4, -1e4, 1e4, -1e4, 3e38, -3e38, 200.0, -200.0], dtype)
    y = np.array([1, 0, 0, 1, 1, 0, 1, 1], dtype)
    if name in ("soft_margin_loss", "hinge_loss", "squared_hinge_loss"):
        y = 2 * y - 1
    v, g = getattr(fl, name).value_and_grad(x, y, reduction="none")
    if name != "squared_hinge_loss":  # (m − x·y)² overflows float32 at 3e38 by definition
        assert np.isfinite(v).all() and np.isfinite(g).all(), (v, g)
    check(name, x, y, {"reduction": "none"})
    check(name, x, y, {"reduction": "mean"})


def test_bce_with_logits_known_values():
    x = np.array([-1e4, 1e4, 0.0, -30.0, 30.0], np.float32)
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0], np.float32)
    v, g = fl.binary_cross_entropy_with_logits.value_and_grad(x, y, reduction="none")
    np.testing.assert_array_equal(v[:2], [1e4, 1e4])
    np.testing.assert_array_equal(g[:2], [-1.0, 1.0])
    assert v[2] == np.float32(math.log(2)) and g[2] == -0.5
    # No cancellation: log(1 + e^−30) = 9.36e-14, not 0 (PyTorch's (1 − y)·x − log σ(x) gives 0 here).
    np.testing.assert_allclose(v[3:], math.log1p(math.exp(-30)), rtol=1e-6)
    np.testing.assert_allclose(g[3:], [1 / (1 + math.exp(30)), -1 / (1 + math.exp(30))], rtol=1e-6)


def test_soft_margin_does_not_overflow():
    x, y = np.array([-200.0, 1e4], np.float32), np.array([1.0, -1.0], np.float32)
    v, g = fl.soft_margin_loss.value_and_grad(x, y, reduction="none")
    np.testing.assert_array_equal(v, [200.0, 1e4])
    np.testing.assert_array_equal(g, [-1.0, 1.0])


def test_hinge_gradient_passes_at_the_kink():
    x, y = np.array([1.0, -1.0, 2.0]), np.array([1.0, -1.0, 1.0])
    v, g = fl.hinge_loss.value_and_grad(x, y, reduction="sum")
    np.testing.assert_array_equal(g, [-1.0, 1.0, 0.0])
    v, g = fl.squared_hinge_loss.value_and_grad(x, y, reduction="sum")
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


def test_kl_div_target_zero_and_batchmean():
    x = np.log(np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]]))
    t = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    v, g = fl.kl_div.value_and_grad(x, t, reduction="batchmean")
    want = (-math.log(0.8) + 0.0 + -math.log(0.9)) / 3
    np.testing.assert_allclose(v, want, rtol=1e-15)
    np.testing.assert_allclose(g, -t / 3, rtol=1e-15)
    assert np.isnan(fl.kl_div(np.zeros(2), np.array([-0.5, 0.5]), reduction="sum"))
    assert fl.kl_div(np.float64(-1.0), np.float64(0.5), reduction="batchmean") == fl.kl_div(
        np.float64(-1.0), np.float64(0.5), reduction="sum")  # 0-d: no division


KL_BROADCAST = [((4, 3), (3,)), ((3,), (4, 3)), ((1, 3), (4, 3)), ((4, 1), (1, 3)), ((), (5,)), ((5,), ()),
                ((2, 1, 17), (4, 1)), ((0, 3), (3,)), ((3,), (0, 3)), ((2, 3, 40), (3, 1))]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_kl_div_broadcast_sums_the_gradient(dtype):
    """Input and target of different shapes broadcast together, as torch's kl_div: the value has the
    common shape and the bits of the same call on copies broadcast to it; a stretched input's gradient
    is that call's gradient summed by `sum_to_shape` (in float64 over the axes the broadcast added or
    stretched). The reference agrees, and so does out=. 'batchmean' divides by the input's own
    shape[0], as torch."""
    rng = np.random.default_rng(11)
    tol = dict(rtol=3e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for xs, ts in KL_BROADCAST:
        shape = np.broadcast_shapes(xs, ts)
        x = np.log(rng.random(xs) + 0.01).astype(dtype)
        for log_target in (False, True):
            t = rng.random(ts).astype(dtype)
            if log_target:
                t = np.log(t + 0.01).astype(dtype)
            if t.size > 2 and x.size > 2:  # a zero target, an infinite and a NaN log-probability
                t.flat[-1] = 0.0
                x = x.copy()
                x.flat[0], x.flat[-1] = -np.inf, (np.nan if log_target else -0.5)
            xf, tf = (np.ascontiguousarray(np.broadcast_to(a, shape)) for a in (x, t))
            for reduction in ("none", "mean", "sum", "batchmean"):
                go = rng.random(shape).astype(dtype) if reduction == "none" else None
                kw = dict(reduction=reduction, log_target=log_target, grad_output=go)
                v, g = fl.kl_div.value_and_grad(x, t, **kw)
                assert np.shape(v) == (shape if reduction == "none" else ())
                assert g.shape == x.shape and g.dtype == dtype
                if reduction != "batchmean":  # the copies' own batch is shape[0]
                    vf, gf = fl.kl_div.value_and_grad(xf, tf, **kw)
                    want = sum_to_shape(gf, xs)  # checked on its own below
                    assert_bitwise_equal(np.asarray(v), np.asarray(vf), f"{xs} {ts} {reduction} value")
                    assert_bitwise_equal(g, want, f"{xs} {ts} {reduction} {log_target} grad")
                else:
                    d = xs[0] if xs else 1
                    vs = fl.reference.kl_div(xf, tf, reduction="sum", log_target=log_target)
                    with np.errstate(invalid="ignore"):  # 0/0 for the empty batch: NaN, as torch
                        np.testing.assert_allclose(v, vs / d, **tol)
                if reduction == "mean" and not log_target:  # the option-free call (the fast path's)
                    assert_bitwise_equal(np.asarray(fl.kl_div(x, t)), np.asarray(v), f"{xs} {ts} call")
                    assert_bitwise_equal(fl.kl_div.grad(x, t), g, f"{xs} {ts} grad call")
                wv, wg = fl.reference.kl_div.value_and_grad(x, t, **kw)
                np.testing.assert_allclose(v, wv, **tol)
                np.testing.assert_allclose(g, wg, **tol)
                for impl in (fl, fl.reference):
                    buf = np.full(xs, np.nan, dtype)
                    assert impl.kl_div.grad(x, t, **kw, out=buf) is buf
                    assert_bitwise_equal(buf, impl.kl_div.grad(x, t, **kw), f"{xs} {ts} out=")


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_kl_div_broadcast_conversions_and_overlaps(impl):
    """Broadcast calls convert like any other: integer, bool, mixed float32/float64, byte-swapped and
    strided arguments give the bits of native float arrays; an out= that overlaps the target or the
    input gets the gradient of a clean call; a grad_output of the input's shape (not the broadcast
    one) is rejected for 'none'."""
    rng = np.random.default_rng(3)
    x = np.log(rng.random((4, 1)) + 0.01)
    t = rng.random(5)
    v, g = impl.kl_div.value_and_grad(x, t, reduction="sum")
    for xa, ta in ((x, t.astype(">f8")), (np.asfortranarray(np.repeat(x, 2, axis=1))[:, ::2], t),
                   (x.astype(">f8"), t[::-1].copy()[::-1])):
        va, ga = impl.kl_div.value_and_grad(xa, ta, reduction="sum")
        assert_bitwise_equal(np.asarray(va), np.asarray(v))
        assert_bitwise_equal(ga, g)
    for xa, ta, dt in ((np.zeros((3, 1), np.int64), np.ones(2, bool), np.float64),
                       (np.full((3, 1), -1.0, np.float32), np.full(2, 0.5), np.float64),
                       (np.full((3, 1), -1.0, np.float32), np.full(2, 0.5, np.float32), np.float32)):
        va, ga = impl.kl_div.value_and_grad(xa, ta, reduction="sum")
        vb, gb = impl.kl_div.value_and_grad(xa.astype(dt), ta.astype(dt), reduction="sum")
        assert ga.dtype == dt and ga.shape == (3, 1)
        assert_bitwise_equal(np.asarray(va), np.asarray(vb))
        assert_bitwise_equal(ga, gb)
    # out= overlapping the target (of the broadcast shape) or the input
    tt = np.log(rng.random((4, 5)) + 0.01)
    want = impl.kl_div.grad(x, tt.copy(), reduction="sum", log_target=True)
    got = impl.kl_div.grad(x, tt, reduction="sum", log_target=True, out=tt.reshape(-1)[3:7].reshape(4, 1))
    assert_bitwise_equal(got, want)
    xx = x.copy()
    assert_bitwise_equal(impl.kl_div.grad(xx, t, reduction="sum", out=xx), g)
    with pytest.raises(ValueError, match="grad_output"):
        impl.kl_div.grad(x, t, reduction="none", grad_output=np.ones((4, 1)))


def test_sum_to_shape_sums_pairwise_in_float64():
    """The helper behind every broadcast input's gradient: NumPy's broadcasting rules (leading axes,
    stretched axes, 0-d, empty), g's dtype, an ndarray result; the sum is as accurate as a pairwise
    float64 sum (over 10⁶ rows: within 1 ulp of the exact sum with NumPy 2.4, 3 with NumPy 2.0, where
    adding row after row, np.sum over axis 0, is 150–280 ulps off here; the bound is 16), and an infinite
    or NaN sum comes without a warning."""
    g = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for shape in ((3, 4), (1, 3, 4), (2, 1, 4), (4,), (1, 1, 1), (3, 1), (), (2, 3, 4)):
        got = sum_to_shape(g, shape)
        lead = g.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n != g.shape[lead + i])
        assert isinstance(got, np.ndarray) and got.shape == shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, np.sum(g, axis=axes, dtype=np.float64).reshape(shape))
    assert sum_to_shape(np.ones((0, 3)), (3,)).tolist() == [0.0, 0.0, 0.0]
    assert sum_to_shape(np.ones((2, 0)), (1, 0)).shape == (1, 0)
    big = np.random.default_rng(0).random((10**6, 3))
    got = sum_to_shape(big, (1, 3))[0]
    exact = np.array([math.fsum(big[:, j]) for j in range(3)])
    assert (np.abs(got - exact) <= 16 * np.spacing(exact)).all(), (got - exact) / np.spacing(exact)
    with np.errstate(all="raise"):
        assert sum_to_shape(np.array([3e38, 3e38], np.float32), (1,)).tolist() == [np.inf]
        assert np.isnan(sum_to_shape(np.array([np.inf, -np.inf]), ()))


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_kl_div_broadcast_out_has_the_inputs_shape(impl):
    """The gradient belongs to the input: an out= of the broadcast shape is rejected, unwritten."""
    x, t = np.log(np.full((4, 1), 0.5)), np.full(3, 1 / 3)
    buf = np.full((4, 3), SENTINEL)
    with pytest.raises(ValueError, match=r"out.*\(4, 3\).*\(4, 1\)|out.*\(4, 1\).*\(4, 3\)"):
        impl.kl_div.grad(x, t, out=buf)
    assert (buf == SENTINEL).all()


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_kl_div_broadcast_is_torchs(impl):
    """torch 2.13's values (float64): one target distribution (3,) for two rows of log-probabilities
    (2, 3), and one input row (3,) for two targets (2, 3), where 'batchmean' divides by the input's
    own shape[0], 3."""
    x = np.array([[-1.0, -2.0, -0.5], [-0.25, -3.0, -1.5]])
    t = np.array([0.2, 0.0, 0.8])
    np.testing.assert_allclose(impl.kl_div(x, t, reduction="none"),
                               [[-0.12188758248682008, 0.0, 0.22148515894863224],
                                [-0.2718875824868201, 0.0, 1.0214851589486325]], rtol=1e-14)
    v, g = impl.kl_div.value_and_grad(x, t, reduction="batchmean")
    np.testing.assert_allclose(v, 0.4245975764618123, rtol=1e-15)
    np.testing.assert_allclose(g, [[-0.1, -0.0, -0.4], [-0.1, -0.0, -0.4]], rtol=1e-15)
    t2 = np.array([[0.2, 0.0, 0.8], [0.5, 0.25, 0.25]])
    v, g = impl.kl_div.value_and_grad(x[0], t2, reduction="batchmean")
    np.testing.assert_allclose(v, 0.06162560187396474, rtol=1e-15)
    np.testing.assert_allclose(g, [-0.23333333333333334, -0.08333333333333333, -0.35], rtol=1e-15)


def test_focal_gamma_zero_alpha_negative_is_bce_with_logits():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(100), (rng.random(100) < 0.5).astype(float)
    a = fl.sigmoid_focal_loss.value_and_grad(x, y, alpha=-1.0, gamma=0.0, reduction="none")
    b = fl.binary_cross_entropy_with_logits.value_and_grad(x, y, reduction="none")
    assert_bitwise_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_focal_gamma_zero_at_infinite_logits(impl, dtype):
    """γ = 0: no gradient through (1 − p_t)^0, even where the BCE term is infinite (x = ±inf with the
    wrong label): PyTorch 2.13 gives [0.75, −0.25] here, not NaN."""
    x, y = np.array([np.inf, -np.inf], dtype), np.array([0.0, 1.0], dtype)
    g = impl.sigmoid_focal_loss.grad(x, y, gamma=0.0, reduction="sum")
    np.testing.assert_array_equal(g, np.array([0.75, -0.25], dtype))


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
def test_bce_gradient_clamp_is_torchs_float_constant(impl):
    """PyTorch's BCE backward divides by max(x(1 − x), 1e-12) with 1e-12 a float constant, so in
    float64 too the clamp is float32(1e-12): at x = 0, y = 1 the gradient is −1000000003995.8."""
    x, y = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    g = impl.binary_cross_entropy.grad(x, y, reduction="sum")
    clamp = float(np.float32(1e-12))
    np.testing.assert_allclose(g, [-1 / clamp, 1 / clamp], rtol=1e-15)
    assert g[1] != 1e12


def test_bce_log_clamp():
    x, y = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(fl.binary_cross_entropy(x, y, reduction="none"), [100, 100, 0, 0])


@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_hard_labels(dtype):
    # Runs of 256 hard labels (0 or 1) take the kernel's one-logarithm shortcut; a soft label in a
    # run sends it the general way. Both must agree with the reference and give each other's bits,
    # at every SIMD level the suite runs under. Probabilities include the clamp's edges.
    rng = np.random.default_rng(31)
    n = 3 * 256 * 7 + 101  # whole runs and a partial one
    x = probabilities(rng, n, dtype, True)
    y = (rng.random(n) < 0.5).astype(dtype)
    for reduction in REDUCTIONS:
        check("binary_cross_entropy", x, y, {"reduction": reduction})
        check("binary_cross_entropy", x, y, {"reduction": reduction, "weight": rng.random(n).astype(dtype)})
    soft = y.copy()
    soft[::256] = 0.5  # one soft label in every run
    v, g = fl.binary_cross_entropy.value_and_grad(x, y, reduction="none")
    v_soft, g_soft = fl.binary_cross_entropy.value_and_grad(x, soft, reduction="none")
    hard = np.arange(n) % 256 != 0
    assert_bitwise_equal(v[hard], v_soft[hard])
    assert_bitwise_equal(g[hard], g_soft[hard])


# --------------------------------------------------------------------------------------------------
# Layouts, dtypes, threads, empty
# --------------------------------------------------------------------------------------------------


def _same(name, a_args, b_args, kw):
    f = getattr(fl, name)
    for reduction in REDUCTIONS:
        k = {**kw, "reduction": reduction}
        v1, g1 = f.value_and_grad(*a_args, **k)
        v2, g2 = f.value_and_grad(*b_args, **k)
        assert_bitwise_equal(np.asarray(v1).reshape(np.shape(v2)), np.asarray(v2), f"{name} value {reduction}")
        assert_bitwise_equal(g1.reshape(g2.shape), g2, f"{name} grad {reduction}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_layouts_give_the_same_bits(name, dtype):
    rng = np.random.default_rng(5)
    loss = LOSSES[name]
    x, y = loss.inputs(rng, (12, 70), dtype, True)
    views = [(x[::2, 1::2], y[::2, 1::2]), (x.T, y.T), (x.ravel()[::3], y.ravel()[::3])]
    for a, b in views:
        assert not a.flags.c_contiguous
        check(name, a, b, {"reduction": "none"})
        _same(name, (a, b), (np.ascontiguousarray(a), np.ascontiguousarray(b)), {})
    sw = x.astype(x.dtype.newbyteorder()), y.astype(y.dtype.newbyteorder())
    _same(name, sw, (x, y), {})
    ro = x.copy(), y.copy()
    for a in ro:
        a.flags.writeable = False
    _same(name, ro, (x, y), {})


@pytest.mark.parametrize("name", NAMES)
def test_integer_and_mixed_dtypes(name):
    rng = np.random.default_rng(8)
    loss = LOSSES[name]
    x, y = loss.inputs(rng, (30,), np.float32, False)
    if name == "binary_cross_entropy":
        yi = (y > 0.5).astype(np.int64)
    elif name in ("kl_div",):
        yi = (y > 0.05).astype(np.int8)
    elif name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
        yi = (y > 0.5)  # bool
    else:
        yi = np.where(y > 0, 1, -1).astype(np.int16)
    check(name, x, yi, {"reduction": "none"})
    _same(name, (x, yi), (x, yi.astype(np.float32)), {})
    assert fl.__dict__[name](x, y.astype(np.float64), reduction="none").dtype == np.float64
    _same(name, (x, y.astype(np.float64)), (x.astype(np.float64), y.astype(np.float64)), {})


@pytest.mark.parametrize("name", NAMES)
def test_one_and_two_threads_bitwise_identical(name, restore_threads):
    rng = np.random.default_rng(11)
    loss = LOSSES[name]
    for dtype in FLOATS:
        x, y = loss.inputs(rng, (300_001,), dtype, True)
        for opts in loss.options[:3]:
            kw = fill_options(loss, opts, (300_001,), dtype, rng)
            res = []
            for threads in (1, 2):
                fl.set_num_threads(threads)
                res.append([getattr(fl, name).value_and_grad(x, y, reduction=r, **kw) for r in REDUCTIONS])
            for (v1, g1), (v2, g2) in zip(*res):
                assert_bitwise_equal(v1, v2)
                assert_bitwise_equal(g1, g2)


@pytest.mark.parametrize("name", NAMES)
def test_empty_input(name):
    for dtype in FLOATS:
        x = np.zeros((0,), dtype)
        assert np.isnan(getattr(fl, name)(x, x))
        assert getattr(fl, name)(x, x, reduction="sum") == 0
        assert getattr(fl, name)(x, x, reduction="none").shape == (0,)
        check(name, x, x, {"reduction": "mean"})
    if name == "kl_div":
        assert np.isnan(fl.kl_div(np.zeros((0, 3)), np.zeros((0, 3)), reduction="batchmean"))


# --------------------------------------------------------------------------------------------------
# Weights and pos_weight broadcasting
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_weight_and_pos_weight_broadcast(dtype):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = (rng.random((6, 5)) < 0.4).astype(dtype)
    pw = rng.uniform(0.5, 3, 5).astype(dtype)
    for w in (rng.uniform(0, 2, (6, 5)), rng.uniform(0, 2, 5), rng.uniform(0, 2, (6, 1)), np.array(2.0)):
        w = w.astype(dtype)
        for reduction in REDUCTIONS:
            check("binary_cross_entropy_with_logits", x, y, {"weight": w, "pos_weight": pw, "reduction": reduction})
            check("binary_cross_entropy_with_logits", x, y, {"weight": w, "reduction": reduction})
            p = _sigmoid_np(x)
            check("binary_cross_entropy", p, y, {"weight": w, "reduction": reduction})
            # Same as the explicitly broadcast weight.
            full = np.ascontiguousarray(np.broadcast_to(w, x.shape))
            _same("binary_cross_entropy_with_logits", (x, y), (x, y), {"weight": w, "pos_weight": pw})
            a = fl.binary_cross_entropy_with_logits.value_and_grad(x, y, weight=w, reduction=reduction)
            b = fl.binary_cross_entropy_with_logits.value_and_grad(x, y, weight=full, reduction=reduction)
            assert_bitwise_equal(a[0], b[0])
            assert_bitwise_equal(a[1], b[1])
    # pos_weight = 1 is no pos_weight.
    a = fl.binary_cross_entropy_with_logits.value_and_grad(x, y, pos_weight=np.ones(5, dtype), reduction="none")
    b = fl.binary_cross_entropy_with_logits.value_and_grad(x, y, reduction="none")
    assert_bitwise_equal(a[0], b[0])
    assert_bitwise_equal(a[1], b[1])


def _sigmoid_np(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


# --------------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------------

SENTINEL = -12345.0


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_out(name, dtype, impl):
    f = getattr(impl, name)
    rng = np.random.default_rng(14)
    x, y = LOSSES[name].inputs(rng, (23,), dtype, False)
    for reduction in REDUCTIONS:
        ev, eg = f.value_and_grad(x, y, reduction=reduction)
        buf = np.full(23, SENTINEL, dtype)
        v, g = f.value_and_grad(x, y, reduction=reduction, out=buf)
        assert g is buf
        assert_bitwise_equal(v, ev)
        assert_bitwise_equal(buf, eg)
        buf2 = np.full(23, SENTINEL, dtype)
        assert f.grad(x, y, reduction=reduction, out=buf2) is buf2
        assert_bitwise_equal(buf2, eg)
    other = np.float64 if dtype == np.float32 else np.float32
    strided = np.full(46, SENTINEL, dtype)[::2]
    read_only = np.full(23, SENTINEL, dtype)
    read_only.flags.writeable = False
    for bad, exc in ((np.full(24, SENTINEL, dtype), ValueError), (np.full(23, SENTINEL, other), TypeError),
                     (strided, ValueError), (read_only, ValueError), ([0.0] * 23, TypeError)):
        with pytest.raises(exc, match="out"):
            f.grad(x, y, out=bad)
        if isinstance(bad, np.ndarray):
            assert (bad == SENTINEL).all()
    # out= aliasing an input: the result is as if it did not.
    xa, ya = x.copy(), y.copy()
    ev, eg = f.value_and_grad(x, y, reduction="none")
    v, g = f.value_and_grad(xa, ya, reduction="none", out=xa)
    assert g is xa
    assert_bitwise_equal(v, ev)
    assert_bitwise_equal(g, eg)


# --------------------------------------------------------------------------------------------------
# Errors: the same exception from fastloss and the reference, out= untouched
# --------------------------------------------------------------------------------------------------


def _bad_calls():
    calls = []
    x = np.array([0.2, 0.5, 0.9, 0.1])
    y = np.array([1.0, 0.0, 1.0, 0.0])

    def add(id_, name, args, kw, exc, match):
        calls.append(pytest.param(name, args, kw, exc, match, id=f"{name}-{id_}"))

    for name in NAMES:
        add("reduction", name, (x, y), {"reduction": "avg"}, ValueError, r"reduction.*'avg'")
        add("reduction-none-type", name, (x, y), {"reduction": None}, ValueError, "reduction")
        if name != "kl_div":
            add("batchmean", name, (x, y), {"reduction": "batchmean"}, ValueError, "reduction")
        add("target-shape", name, (x, y[:3]), {}, ValueError, r"target.*\(3,\)")
        if name != "kl_div":  # kl_div broadcasts (4,) and (4, 1) to (4, 4), as torch
            add("target-2d", name, (x, y[:, None]), {}, ValueError, r"target.*\(4, 1\)")
        add("input-complex", name, (x.astype(complex), y), {}, TypeError, "input.*complex")
        add("target-str", name, (x, np.array(["a"] * 4)), {}, TypeError, "target")
        add("input-object", name, (np.array([0.5] * 4, dtype=object), y), {}, TypeError, "input.*object")
        add("grad_output-shape", name, (x, y), {"reduction": "none", "grad_output": np.ones(5)}, ValueError,
            "grad_output")
        add("unknown-keyword", name, (x, y), {"beta": 1.0}, TypeError, "beta")
    for bad, where in ((1.5, "input"), (-0.1, "input"), (np.nan, "input")):
        xb = x.copy()
        xb[2] = bad
        add(f"bce-{where}-{bad}", "binary_cross_entropy", (xb, y), {}, ValueError,
            r"input: all elements must be between 0 and 1.*index 2")
    yb = y.copy()
    yb[1] = 2.0
    add("bce-target-2", "binary_cross_entropy", (x, yb), {}, ValueError, r"target.*between 0 and 1.*index 1")
    add("bce-weight-shape", "binary_cross_entropy", (x, y), {"weight": np.ones(3)}, ValueError,
        r"weight.*\(3,\).*broadcast")
    add("bce-weight-complex", "binary_cross_entropy", (x, y), {"weight": np.ones(4, complex)}, TypeError, "weight")
    add("bcel-pos_weight-shape", "binary_cross_entropy_with_logits", (x, y), {"pos_weight": np.ones(3)},
        ValueError, r"pos_weight.*\(3,\)")
    add("bcel-pos_weight-str", "binary_cross_entropy_with_logits", (x, y), {"pos_weight": "x"}, TypeError,
        "pos_weight")
    for opt, bad in (("alpha", "a"), ("gamma", None), ("alpha", True)):
        add(f"focal-{opt}-{bad!r}", "sigmoid_focal_loss", (x, y), {opt: bad}, TypeError, opt)
    for name in ("hinge_loss", "squared_hinge_loss"):
        add("margin-str", name, (x, y), {"margin": "1"}, TypeError, "margin")
    add("log_target-int", "kl_div", (x, y), {"log_target": 1}, TypeError, "log_target")
    add("target-no-broadcast", "kl_div", (x.reshape(2, 2), np.ones((3, 1))), {}, ValueError,
        r"target: shape \(3, 1\) does not broadcast with the input's shape \(2, 2\)")
    return calls


@pytest.mark.parametrize("name, args, kw, exc, match", _bad_calls())
def test_bad_input_raises(name, args, kw, exc, match):
    before = snapshot(*args, *kw.values())
    errors = {}
    for impl in (fl, fl.reference):
        f = getattr(impl, name)
        for entry in ("f", "grad", "value_and_grad"):
            if entry == "f" and "grad_output" in kw:
                continue
            out = None if entry == "f" else np.full(4, SENTINEL)
            call = f if entry == "f" else getattr(f, entry)
            k = dict(kw) if out is None else {**kw, "out": out}
            with pytest.raises(Exception) as info:
                call(*args, **k)
            err = info.value
            assert isinstance(err, exc), f"{impl.__name__}.{name}.{entry}: {type(err).__name__}: {err}"
            assert re.search(match, str(err)), f"{impl.__name__}.{name}.{entry}: {str(err)!r} !~ {match!r}"
            if out is not None:
                assert (out == SENTINEL).all(), "out= written before failing"
            errors[(impl.__name__, entry)] = (type(err), str(err))
            assert_unchanged(before, snapshot(*args, *kw.values()))
    for entry in ("f", "grad", "value_and_grad"):
        if ("fastloss", entry) in errors:
            assert errors[("fastloss", entry)] == errors[("fastloss.reference", entry)], entry


def test_bce_fast_path_checks_range_too():
    """The unweighted contiguous call (the fast path) rejects out-of-range values like the general one."""
    x = np.full(10_000, 0.5, np.float32)
    x[9_999] = 1.0001
    with pytest.raises(ValueError, match="index 9999"):
        fl.binary_cross_entropy(x, np.zeros_like(x))
    with pytest.raises(ValueError, match="target"):
        fl.binary_cross_entropy(np.full(5, 0.5), np.array([0, 1, 0.5, np.nan, 1]))


# --------------------------------------------------------------------------------------------------
# The compiled fast path for the common call (positional arrays, default options)
# --------------------------------------------------------------------------------------------------

FAST = [name for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss",
                          "hinge_loss", "squared_hinge_loss", "exponential_loss", "soft_margin_loss", "kl_div")
        if getattr(fl, name).fast is not None]


def _fast_inputs(name, rng, shape, dtype, specials=True):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if name == "binary_cross_entropy":
        x = rng.random(shape).astype(dtype)
        x.flat[:2] = [0.0, 1.0][: x.size]
        t = rng.random(shape).astype(dtype)
        return x, t
    if name == "kl_div":
        t = rng.random(shape).astype(dtype)
        x = -np.abs(x)
    elif name in ("binary_cross_entropy_with_logits",):
        t = rng.random(shape).astype(dtype)
    else:
        t = np.where(rng.random(shape) < 0.5, -1, 1).astype(dtype)
    if specials and x.size > 3:
        x.flat[1], x.flat[2], t.flat[3] = np.nan, np.inf, 0
    return x, t


def test_fast_path_covers_the_losses_with_a_mean_default():
    assert set(FAST) == {"binary_cross_entropy", "binary_cross_entropy_with_logits", "hinge_loss",
                         "squared_hinge_loss", "exponential_loss", "soft_margin_loss", "kl_div"}


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(0,), (1,), (17,), (5, 7), (5000,)])
def test_fast_path_gives_the_general_paths_bits(name, dtype, shape):
    loss = getattr(fl, name)
    x, t = _fast_inputs(name, np.random.default_rng(5), shape, dtype)
    general = loss.value_and_grad(x, t, reduction="mean")
    buf = np.empty_like(x)
    got = [(loss(x, t), None), (None, loss.grad(x, t)), loss.value_and_grad(x, t), loss.value_and_grad(x, t, out=buf)]
    for i, (v, g) in enumerate(got):
        if v is not None:
            assert_bitwise_equal(v, general[0], f"{name} value {i}", nan_payload=False)
            assert type(v) is np.dtype(dtype).type
        if g is not None:
            assert_bitwise_equal(g, general[1], f"{name} grad {i}", nan_payload=False)
    assert got[3][1] is buf


@pytest.mark.parametrize("name", FAST)
def test_fast_path_declines_what_it_cannot_take(name):
    loss, ref = getattr(fl, name), getattr(fl.reference, name)
    x, t = _fast_inputs(name, np.random.default_rng(6), (4, 6), np.dtype(np.float32), specials=False)
    cases = {
        "mixed dtypes": (x, t.astype(np.float64)),
        "transposed": (x.T, t.T),
        "list target": (x[0], list(t[0])),
        "masked": (np.ma.masked_array(x), t),
        "read-only": (read_only(x), read_only(t)),
    }
    for what, args in cases.items():
        got, want = loss.value_and_grad(*args), ref.value_and_grad(*args)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, err_msg=what)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7, err_msg=what)
    with pytest.raises(ValueError, match="target"):
        loss(x, t[:, :3])
    with pytest.raises(TypeError, match="out"):
        loss.value_and_grad(x, t, out=np.empty(x.shape, np.float64))
    if name == "binary_cross_entropy":  # the [0, 1] check of the general path
        for bad in (1.5, -0.25, np.nan):
            x2, t2 = x.copy(), t.copy()
            x2[1, 2] = t2[3, 1] = bad
            with pytest.raises(ValueError, match="input"):
                loss.value_and_grad(x2, t)
            with pytest.raises(ValueError, match="target"):
                loss.value_and_grad(x, t2)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_domain_error_reaches_a_direct_caller_of_core(threads):
    """The Python layer checks domains itself, so the kernel's own report of an element outside the
    domain (the smallest such index over all blocks) only reaches a caller of `_core`: it must be
    a ValueError naming that index, for the classification and the element-wise entry points."""
    from fastloss import _core

    n = 300_000
    x = np.full(n, 0.25, np.float32)
    y = np.full(n, 0.5, np.float32)
    x[250_001] = 1.5
    y[90_000] = np.nan
    old = fl.get_num_threads()
    fl.set_num_threads(threads)
    try:
        with pytest.raises(ValueError, match=r"^element 90000 of the inputs lies outside the loss's domain$"):
            _core.classification("bce", x, y, None, None, None, 1.0, True, None, None)
        var = np.ones(n, np.float32)
        var[123_457] = -1.0
        var[200_000] = -0.0  # zero is allowed (clamped to eps), only var < 0 is not
        with pytest.raises(ValueError, match=r"^element 123457 of the inputs lies outside the loss's domain$"):
            _core.pointwise("gaussian_nll", x, y, var, None, None, 1.0, True, None, None, None, 1e-6)
    finally:
        fl.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_domain_is_checked_block_by_block(threads, dtype):
    """The common call (no out=) leaves the [0, 1] check to the kernel, block by block, and hands a
    failure to the general path: whichever block (and thread) meets a bad element, the call raises
    the usual error (the input's first bad element, else the target's) and changes nothing."""
    n = 300_000  # several blocks, enough to be split across threads
    x = np.full(n, 0.25, dtype)
    y = np.full(n, 0.5, dtype)
    x[250_001] = 1.5          # a later block
    y[70_000] = -0.5          # an earlier block, in the target
    x[70_001] = np.nan
    before = snapshot(x, y)
    old = fl.get_num_threads()
    fl.set_num_threads(threads)
    try:
        calls = (fl.binary_cross_entropy, fl.binary_cross_entropy.grad, fl.binary_cross_entropy.value_and_grad)
        # The general path's order: the whole input first, then the target.
        for fix, message in ((None, r"input: all .*between 0 and 1.*got nan at flat index 70001"),
                             ((x, 70_001), r"input: all .*between 0 and 1.*got 1.5 at flat index 250001"),
                             ((x, 250_001), r"target: all .*between 0 and 1.*got -0.5 at flat index 70000")):
            if fix is not None:
                fix[0][fix[1]] = 0.25
            for call in calls:
                with pytest.raises(ValueError, match=message):
                    call(x, y)
        x[70_001], x[250_001] = np.nan, 1.5
        assert_unchanged(before, snapshot(x, y))
        x[70_001], x[250_001], y[70_000] = 0.25, 0.25, 0.5
        v, g = fl.binary_cross_entropy.value_and_grad(x, y)  # valid again: computed as usual
        assert_bitwise_equal(v, fl.binary_cross_entropy(x, y))
        assert (g == g[0]).all() and g[0] == fl.binary_cross_entropy.grad(x[:1], y[:1]) / n
    finally:
        fl.set_num_threads(old)
