"""Shared test machinery: ULP comparison, adversarial arrays, golden cases and the per-loss error model.

Everything a test module needs to compare `fastloss` with `fastloss.reference` lives here, so that
losses added later (classification, embedding) only need a `Spec` entry in `SPECS` to get the
reference comparisons, and nothing at all to get their golden tests (see `golden_loss_cases`).

The error model (`Spec.k_value`, `Spec.k_grad`, `Spec.floors`) is the tolerance a correct
implementation meets: at each element |fast − reference| <= k·ulp(reference) + floor, where

- ulp(v) is the spacing of the computation dtype at |v| (see `ulp`);
- k counts the roundings of the kernel's formula in that dtype (fastloss evaluates float32 natively)
  plus the reference's own rounding; it is 2 wherever the formula allows (see each spec's comment);
- floor is nonzero only where the formula subtracts two computed quantities of similar size
  (cancellation): there the error is a few ulps *of the operands*, not of the result, so the floor is
  computed per element from the operands' magnitudes (`_floors_*` below say which operands).
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import fastloss as fl

TESTS = pathlib.Path(__file__).resolve().parent
GOLDEN_DIR = TESTS / "data" / "torch_golden"
FLOATS = (np.float32, np.float64)


# --------------------------------------------------------------------------------------------------
# ULPs and comparisons
# --------------------------------------------------------------------------------------------------


def ulp(mag, dtype):
    """The spacing of `dtype` at magnitude(s) `mag`, as float64, continued past dtype's max.

    ulp(0) and subnormal magnitudes give the smallest subnormal; ulp(inf) is inf, ulp(nan) nan.
    Computed from the binary exponent (frexp), so it is exact, not a log2 estimate.
    """
    fi = np.finfo(dtype)
    mag = np.abs(np.asarray(mag, dtype=np.float64))
    _, e = np.frexp(mag)  # mag = m·2**e with m in [0.5, 1)
    e = np.where(mag == 0, fi.minexp, np.maximum(e - 1, fi.minexp))
    out = np.ldexp(1.0, (e - fi.nmant).astype(np.int64))
    return np.where(np.isfinite(mag), out, mag)


def read_only(a):
    """A read-only copy of `a`."""
    a = a.copy()
    a.flags.writeable = False
    return a


def as_f64(a):
    return np.asarray(a).astype(np.float64)


def _fmt_positions(bad, got, want, tol, dtype, limit=6):
    idx = np.argwhere(bad)[:limit]
    lines = []
    for i in idx:
        i = tuple(i)
        g, w, t = float(got[i]), float(want[i]), float(tol[i])
        u = float(ulp(w, dtype))
        err = abs(g - w) if math.isfinite(g) and math.isfinite(w) else float("nan")
        lines.append(f"  at {i}: got {g!r}, want {w!r}, |diff| = {err / u:.3g} ulp, allowed {t / u:.3g} ulp")
    return "\n".join(lines)


def assert_close(got, want, tol, *, dtype, what="", skip=None):
    """Element-wise: NaN where `want` is NaN (and only there), equal infinities, |got − want| <= tol.

    `tol` is an absolute tolerance per element (broadcast); `skip` marks elements not compared.
    """
    got64, want64 = as_f64(got), as_f64(want)
    assert got64.shape == want64.shape, f"{what}: shape {got64.shape} != {want64.shape}"
    tol = np.broadcast_to(np.asarray(tol, np.float64), want64.shape)
    nan_g, nan_w = np.isnan(got64), np.isnan(want64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got64 - want64)
        ok = np.where(
            nan_w | nan_g,
            nan_w == nan_g,
            np.where(np.isinf(want64), got64 == want64, err <= tol),
        )
    if skip is not None:
        ok = ok | np.broadcast_to(skip, ok.shape)
    if not ok.all():
        bad = ~ok
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ beyond tolerance\n"
            + _fmt_positions(bad, got64, want64, tol, dtype)
        )


def assert_ulp_close(got, want, *, k=2, floor=0.0, dtype=None, what=""):
    """|got − want| <= k·ulp(want) + floor per element (NaN and infinities must match exactly)."""
    dtype = np.asarray(want).dtype if dtype is None else dtype
    assert_close(got, want, k * ulp(want, dtype) + floor, dtype=dtype, what=what)


def assert_bitwise_equal(a, b, what="", nan_payload=True):
    """Same type kind, dtype, shape and bytes (so NaN payloads and signed zeros count).

    nan_payload=False compares NaNs by position only, for two differently compiled instances of a
    kernel: IEEE 754 leaves the sign and payload of a NaN result unspecified, and LLVM may commute
    the operands of a multiply or fused multiply-add, which changes which NaN propagates (seen at
    the baseline level, where the fused multiply-add is a libm call)."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    assert isinstance(a, np.ndarray) == isinstance(b, np.ndarray), f"{what}: {type(a)} vs {type(b)}"
    assert a_arr.dtype == b_arr.dtype, f"{what}: dtype {a_arr.dtype} != {b_arr.dtype}"
    assert a_arr.shape == b_arr.shape, f"{what}: shape {a_arr.shape} != {b_arr.shape}"
    if not nan_payload and a_arr.dtype.kind == "f":
        nan_a, nan_b = np.isnan(a_arr), np.isnan(b_arr)
        assert np.array_equal(nan_a, nan_b), f"{what}: NaNs at different positions"
        a_arr, b_arr = np.where(nan_a, np.nan, a_arr), np.where(nan_b, np.nan, b_arr)
    if a_arr.tobytes() != b_arr.tobytes():
        diff = np.argwhere(np.ravel(a_arr).view(np.uint8).reshape(a_arr.size, -1) != np.ravel(b_arr).view(np.uint8).reshape(b_arr.size, -1))
        first = int(diff[0][0]) if len(diff) else 0
        raise AssertionError(f"{what}: not bitwise equal; first difference at flat index {first}: "
                             f"{np.ravel(a_arr)[first]!r} vs {np.ravel(b_arr)[first]!r}")


def snapshot(*arrays):
    """Copies of the arguments, to check later that a call left them alone (see `assert_unchanged`)."""
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in arrays]


def assert_unchanged(before, after, what="input"):
    for i, (b, a) in enumerate(zip(before, after)):
        if isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray)
            assert_bitwise_equal(a, b, f"{what} {i} was modified")


# --------------------------------------------------------------------------------------------------
# Golden cases (PyTorch), see data/torch_golden/README.md
# --------------------------------------------------------------------------------------------------


@functools.cache
def golden_manifest():
    with open(GOLDEN_DIR / "manifest.json") as f:
        return json.load(f)


@functools.cache
def _golden_npz(file):
    with np.load(GOLDEN_DIR / file, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def resolve(module, dotted):
    """`module.a.b.c` for dotted = 'a.b.c', or None where any part is missing."""
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def golden_loss_cases():
    """Every loss case in the manifest (optimizer and schedule cases are `golden_optim_cases`)."""
    return [c for c in golden_manifest()["cases"] if not c["fn"].startswith("optim.")]


def golden_optim_cases():
    return [c for c in golden_manifest()["cases"] if c["fn"].startswith("optim.")]


@dataclass
class GoldenLoss:
    case: dict
    args: list
    kwargs: dict
    value: np.ndarray
    grads: dict  # differentiable input name -> expected gradient
    grad_output: np.ndarray | None


def golden_loss(case):
    """The arrays of a loss case: positional args, kwargs (array kwargs filled in), expectations."""
    z = _golden_npz(case["file"])
    cid = case["id"]
    # Copies: a test that (wrongly) wrote into an argument must not corrupt later cases.
    args = [z[f"{cid}/{name}"].copy() for name in case["args"]]
    kwargs = dict(case["kwargs"])
    for name in case.get("array_kwargs", []):
        kwargs[name] = z[f"{cid}/kw_{name}"].copy()
    grad_output = z[f"{cid}/grad_output"].copy() if case.get("has_grad_output") else None
    grads = {name: z[f"{cid}/grad_{name}"] for name in case["diff"]}
    return GoldenLoss(case, args, kwargs, z[f"{cid}/value"], grads, grad_output)


# --------------------------------------------------------------------------------------------------
# Arrays: dtypes, specials, adversarial generators
# --------------------------------------------------------------------------------------------------


def expected_dtype(*float_args):
    """The computation dtype API.md promises: NumPy promotion of the float arguments, float16 computing
    as float32, float64 when no argument is a float (ints and bools are converted)."""
    dts = [np.asarray(a).dtype for a in float_args if a is not None and np.asarray(a).dtype.kind == "f"]
    if not dts:
        return np.dtype(np.float64)
    dt = np.result_type(*dts)
    return np.dtype(np.float32) if dt.itemsize < 4 else np.dtype(dt.type)


def specials(dtype):
    """Values that break naive kernels: signed zeros, ±1, tiny, subnormal, huge, max, ±inf, NaN."""
    fi = np.finfo(dtype)
    tiny = [1e-30, float(fi.smallest_subnormal), float(fi.smallest_subnormal) * 3, float(fi.tiny) / 4]
    huge = [1e30, float(fi.max)] + ([1e300] if np.dtype(dtype) == np.float64 else [])
    vals = [0.0, 1.0, 0.5, 2.0, 3.0, 1e-7, 88.0, 100.0] + tiny + huge
    out = vals + [-v for v in vals] + [math.inf, -math.inf, math.nan, -1.0 + float(fi.eps)]
    return np.array(out, dtype=dtype)


def random_array(rng, shape, dtype, kind="normal"):
    """A float array of `shape`: 'normal' (moderate values), 'adversarial' (specials mixed with
    values of every magnitude) or 'counts' (Poisson counts as floats)."""
    n = int(np.prod(shape, dtype=np.int64))
    if kind == "normal":
        a = rng.standard_normal(n) * rng.choice([0.1, 1.0, 10.0])
    elif kind == "counts":
        a = rng.poisson(rng.choice([0.5, 3.0, 50.0]), n).astype(np.float64)
    elif kind == "adversarial":
        sp = specials(dtype).astype(np.float64)
        mags = 10.0 ** rng.uniform(-40 if dtype == np.float32 else -300, 38 if dtype == np.float32 else 300, n)
        a = np.where(rng.random(n) < 0.5, rng.choice(sp, n), mags * rng.choice([-1.0, 1.0], n))
        a = np.where(rng.random(n) < 0.3, rng.standard_normal(n), a)
    else:
        raise ValueError(kind)
    with np.errstate(over="ignore"):
        return a.astype(dtype).reshape(shape)


def positive(a):
    """|a| (a variance must be >= 0; -0.0 becomes 0.0)."""
    return np.abs(a)


# --------------------------------------------------------------------------------------------------
# The per-loss error model
# --------------------------------------------------------------------------------------------------

WEIGHT = "<weight>"  # marker in an option grid: replaced by a weight array of the input's shape
C_OPERAND = 2.0      # ulps of error per computed operand of a cancelling sum: <= 1 in fastloss's kernel
                     # (its exp/ln/log1p are within 1 ulp; a product rounds once) and <= 1 in the reference


@dataclass
class Model:
    """Per-element absolute floors (added to k·ulp) and masks of elements not compared, for the value
    and for each gradient (broadcast against the input's shape)."""

    floor_value: object = 0.0
    floor_grads: list = field(default_factory=lambda: [0.0, 0.0])
    skip_value: object = False
    skip_grads: list = field(default_factory=lambda: [False, False])


def _u(dtype):
    return lambda m: ulp(m, dtype)


def _nan0(a):
    return np.nan_to_num(a, nan=0.0, posinf=np.inf)


def _model_plain(x, y, v, opts, dtype, w, factor):
    """No cancellation, no intermediate that overflows before the result does."""
    return Model()


def _model_huber(x, y, v, opts, dtype, w, factor):
    # δ·(|r| − δ/2) with |x − y| beyond the dtype's max: fastloss's r is ±inf (it subtracts in the
    # dtype) while the exact value is finite for δ < 1; not compared.
    with np.errstate(all="ignore"):
        r_overflows = np.abs(x - y) > np.finfo(dtype).max
    return Model(skip_value=r_overflows)


def _model_msle(x, y, v, opts, dtype, w, factor):
    # d = log1p(x) − log1p(y) cancels when x ≈ y: each log carries C_OPERAND ulps of its own size.
    U = _u(dtype)
    with np.errstate(all="ignore"):
        lx, ly = np.log1p(x), np.log1p(y)
        e_d = C_OPERAND * (U(lx) + U(ly))
        d = np.abs(lx - ly)
        value = 2 * d * e_d + e_d**2    # error of d² from the error of d
        grad = 2 * e_d / np.abs(1 + x)  # error of 2d/(1 + x) from the error of d
    with np.errstate(all="ignore"):
        return Model(_nan0(value * np.abs(w)), [_nan0(grad * factor)])


def _stirling_floor(y, dtype):
    # y·log y − y + ½·log y + ½·log 2π (for y > 1): the first two terms cancel near y = e.
    U = _u(dtype)
    with np.errstate(all="ignore"):
        ly = np.log(y)
        t = C_OPERAND * (U(y * ly) + U(y) + U(0.5 * ly) + U(0.5 * math.log(2 * math.pi)))
    return np.where(y > 1, _nan0(t), 0.0)


def _model_poisson(x, y, v, opts, dtype, w, factor):
    U = _u(dtype)
    big = np.finfo(dtype).max / 4
    eps = opts.get("eps", 1e-8)
    with np.errstate(all="ignore"):
        if opts.get("log_input", True):
            # e^x − y·x (and e^x − y) cancel when e^x ≈ y·x (y): C_OPERAND ulps of each operand.
            e = np.exp(x)
            value = C_OPERAND * (U(e) + U(y * x))
            grad = C_OPERAND * (U(e) + U(y))
            # Skipped: y·x or e^x overflows the dtype in the kernel although e^x − y·x need not.
            skip = (np.abs(y * x) > big) | ((x > np.log(np.finfo(dtype).max)) & (np.abs(y) > 1))
        else:
            # x − y·log(x + eps) cancels (C_OPERAND ulps of each operand); besides, x + eps is rounded to
            # the dtype, and a relative error r in it is an absolute error r in log(x + eps) and a
            # relative error r in y/(x + eps).
            u = x + eps
            rel_u = (U(x) + U(eps)) / np.abs(u)
            value = C_OPERAND * (U(x) + U(y * np.log(u))) + np.abs(y) * rel_u
            grad = C_OPERAND * (U(1.0) + U(y / u)) + np.abs(y / u) * rel_u
            # Skipped: x + eps cancels to a few ulps (x ≈ −eps), so its rounding decides the sign of the
            # log's argument; or y·log(x + eps) overflows the dtype.
            skip = (np.abs(y * np.log(np.abs(u))) > big) | (np.abs(u) <= 4 * (U(x) + U(eps)))
        if opts.get("full", False):
            value = value + _stirling_floor(y, dtype)
            skip = skip | (np.abs(y * np.log(np.abs(y))) > big)  # y·log y overflows the dtype
    with np.errstate(all="ignore"):
        return Model(_nan0(value * np.abs(w)), [_nan0(grad * factor)], skip, [skip])


def _model_gaussian(x, y, v, opts, dtype, w, factor):
    U = _u(dtype)
    f64 = np.dtype(dtype) == np.float64
    big = np.finfo(dtype).max / 4
    with np.errstate(all="ignore"):
        vc = np.maximum(v, opts.get("eps", 1e-6))
        r = x - y
        # ½·(log v + (x−y)²/v) cancels when log v < 0 and ½·(1/v − (x−y)²/v²) always can.
        value = 0.5 * C_OPERAND * (U(np.log(vc)) + U(r * r / vc))
        if opts.get("full", False):
            value = value + C_OPERAND * U(0.5 * math.log(2 * math.pi))
        grad_v = 0.5 * C_OPERAND * (U(1 / vc) + U((r / vc) ** 2))
        # The reference forms factor·(x − y) before dividing by v: in float64, where that product is
        # subnormal it is rounded to an absolute 2**-1075, which /v magnifies.
        grad_x = np.where(f64 & (np.abs(factor * r) < np.finfo(np.float64).tiny), 2.0**-1074 / vc, 0.0)
        # Skipped: the kernel's x − y, (x−y)²/v or ((x−y)/v)² overflow the dtype although the result
        # need not; or (float64) the reference's value forms (x − y)² first, which overflows float64
        # for |x − y| > ~1e154 although (x − y)²/v need not (fastloss forms (x−y)·((x−y)/v)).
        kernel = (np.abs(r) > big) | (r * r / vc > big) | ((r / vc) ** 2 > big)
        reference = f64 & (np.abs(r) > 1e154)
    with np.errstate(all="ignore"):
        return Model(_nan0(value), [_nan0(grad_x), _nan0(grad_v * factor)], kernel | reference, [kernel, kernel])


@dataclass(frozen=True)
class Spec:
    """How to test one loss against the reference.

    inputs: positional argument names; grads: the differentiable ones, in the order `.grad` returns
    them; options: option grid (dicts; `WEIGHT` marks a weight array); kinds: how to draw each input
    (see `make_inputs`); k_value / k_grad: ulps allowed per element for float32 and float64 (2 unless
    the formula rounds more often, see the comments in SPECS); model: floors and skipped elements
    (see `Model`); mean_divisor_is_weight_sum: a weighted mean divides by Σw (else by N).
    """

    name: str
    inputs: tuple = ("input", "target")
    grads: tuple = ("input",)
    options: tuple = ({},)
    kinds: tuple = ("normal", "normal")
    k_value: tuple = (2, 2)
    k_grad: tuple = (2, 2)
    model: Callable = _model_plain
    mean_divisor_is_weight_sum: bool = False

    @property
    def fast(self):
        return getattr(fl, self.name)

    @property
    def ref(self):
        return getattr(fl.reference, self.name)

    def k(self, which, dtype):
        pair = self.k_value if which == "value" else self.k_grad
        return pair[0] if np.dtype(dtype) == np.float32 else pair[1]


# k = (float32, float64). A weight adds one rounding to the value (w·ℓ) and a weight, a grad_output or
# a mean's 1/N add up to three to a gradient (∂ℓ·(w·g·s), s rounded): hence 3 for the losses taking a
# weight, where the bare formula alone would meet 2.
SPECS = {
    s.name: s
    for s in [
        # (x−y)², 2(x−y): x−y rounds once in the kernel's dtype (exactly in the reference), r·r once.
        Spec("mse_loss", options=({}, {"weight": WEIGHT}), k_value=(3, 3), k_grad=(3, 3),
             mean_divisor_is_weight_sum=True),
        # |x−y|, sign(x−y).
        Spec("l1_loss", options=({}, {"weight": WEIGHT}), k_value=(3, 3), k_grad=(3, 3),
             mean_divisor_is_weight_sum=True),
        # ½r²/β: roundings of r, r·r, /β and of β itself in float32 → 4 ulps for β not a power of 2.
        Spec("smooth_l1_loss", options=({}, {"beta": 0.0}, {"beta": 0.5}, {"beta": 1.7}),
             k_value=(4, 3), k_grad=(3, 3)),
        # ½r² or δ·(|r| − δ/2): roundings of r, of the products and of δ in float32.
        Spec("huber_loss", options=({}, {"delta": 0.3}, {"delta": 2.5, "weight": WEIGHT}),
             k_value=(3, 3), k_grad=(3, 3), model=_model_huber),
        # float32: log cosh and tanh within 1.1 ulp of the exact value at the float32 r (every input
        # swept in float.rs), but r = x − y rounds once (the reference subtracts exactly) and log cosh
        # r ≈ r²/2 near 0 doubles that rounding: 2.7 / 1.5 ulps measured (value / gradient), and a
        # mean's scale rounds once more. float64: log1p(m²/(2+2m)) with m = expm1|r|, and tanh|r| =
        # t/(t+2) with t = m(m+2): expm1 and log1p are within 1 ulp each, then four roundings → ~5 ulps
        # from the true value, and the float64 reference evaluates the same formula with its own ~5
        # ulps. Measured against long double: fastloss 4.8 / 3.6 ulps (value / gradient), the float64
        # reference 4.7 / 1.9; fast vs reference differences reach 6 / 5 ulps (with a grad_output and
        # a mean's scale).
        Spec("log_cosh_loss", k_value=(3, 8), k_grad=(3, 6)),
        Spec("mean_squared_log_error", kinds=("log1p_domain", "log1p_domain"), model=_model_msle,
             k_value=(3, 3), k_grad=(3, 3)),
        Spec("poisson_nll_loss",
             options=({}, {"full": True}, {"log_input": False}, {"log_input": False, "full": True, "eps": 1e-3}),
             kinds=("normal", "counts"), model=_model_poisson, k_value=(3, 3), k_grad=(3, 3)),
        # r/v: roundings of r and of the quotient, then the mean's scale.
        Spec("gaussian_nll_loss", inputs=("input", "target", "var"), grads=("input", "var"),
             options=({}, {"full": True}, {"eps": 0.5}), kinds=("normal", "normal", "var"),
             model=_model_gaussian, k_value=(3, 3), k_grad=(3, 3)),
    ]
}


def spec_options(spec, shape, dtype, rng):
    """The option grid of `spec`, weights filled in (non-negative, moderate: an adversarial weight would
    only test NumPy's multiplication)."""
    out = []
    for opts in spec.options:
        opts = dict(opts)
        if opts.get("weight") is WEIGHT:
            opts["weight"] = rng.uniform(0, 3, shape).astype(dtype)
        out.append(opts)
    return out


def make_inputs(spec, rng, shape, dtype, adversarial=False):
    """Positional inputs for `spec`, drawn as `spec.kinds` says: normal draws, or adversarial ones
    (specials, every magnitude) in the input's domain, mostly."""
    out = []
    for kind in spec.kinds:
        base = "adversarial" if adversarial else "normal"
        if kind == "log1p_domain":  # mostly > −1; the rest gives NaN on both sides
            a = random_array(rng, shape, dtype, base)
            a = np.where(rng.random(shape) < 0.9, np.abs(a) - 0.5 * (rng.random(shape) < 0.5), a)
        elif kind == "var":
            a = positive(random_array(rng, shape, dtype, base))
        elif kind == "counts":
            a = random_array(rng, shape, dtype, "counts")
            if adversarial:
                a = np.where(rng.random(shape) < 0.5, a, random_array(rng, shape, dtype, "adversarial"))
        else:
            a = random_array(rng, shape, dtype, base)
        out.append(np.asarray(a, dtype=dtype).reshape(shape))
    return out


# --------------------------------------------------------------------------------------------------
# fastloss vs reference
# --------------------------------------------------------------------------------------------------


def var_full(var, shape):
    """gaussian_nll_loss's var broadcast to the input's shape, following PyTorch 2.13: the same shape, a
    0-d var, the input's shape without its last dim, or the input's with one dim of 1 where it differs."""
    var = np.asarray(var)
    if var.shape == tuple(shape) or var.ndim == 0:
        return np.broadcast_to(var, shape)
    if var.shape == tuple(shape[:-1]):
        return np.broadcast_to(var[..., None], shape)
    return np.broadcast_to(var, shape)


def sum_to_var(a, var_shape):
    """The inverse of `var_full` for gradients: sums over the broadcast dims."""
    a = np.asarray(a)
    if a.shape == tuple(var_shape):
        return a
    if len(var_shape) == 0:
        return a.sum()
    if len(var_shape) < a.ndim:
        return a.sum(axis=-1).reshape(var_shape)
    return a.sum(axis=tuple(i for i, (v, s) in enumerate(zip(var_shape, a.shape)) if v != s), keepdims=True)


def order_decides_overflow(terms):
    """Whether Σ|terms| overflows float64. Then whether a partial sum overflows depends on the order of
    the additions, which differs between fastloss (lanes, then pairwise trees) and NumPy (pairwise):
    for terms (a, a, −a) with a = 1.8e308, (a + a) − a = inf while a + (a − a) = a. Neither reduced
    value is wrong, and the error bound is infinite: there is nothing to compare."""
    with np.errstate(over="ignore", invalid="ignore"):
        return not np.isfinite(np.sum(np.abs(np.asarray(terms, np.float64))))


def summation_gamma(n):
    """A bound on the relative error (w.r.t. Σ|terms|) between two float64 summation orders of n terms:
    fastloss's 16 lanes of sequential adds per 16384-element block then pairwise trees, and NumPy's
    pairwise sum (8-way unrolled blocks of 128). The standard bound: (depth₁ + depth₂)·2⁻⁵³."""
    n = max(int(n), 1)
    depth_fast = math.ceil(min(n, 1 << 14) / 16) + 4 + math.ceil(math.log2(math.ceil(n / (1 << 14))))
    depth_numpy = 16 + 8 + math.ceil(math.log2(n))
    return (depth_fast + depth_numpy) * 2.0**-53


def check_against_reference(name, args, kwargs, grad_output=None, got=None, what=""):
    """Compares fastloss's `value_and_grad` (or `got`, a (value, grad) pair computed elsewhere, e.g. in
    a subprocess) with fastloss.reference's, with the error model of SPECS[name]. Also checks result
    types, dtypes and shapes, and that no argument was modified."""
    spec = SPECS[name]
    before = snapshot(*args, *kwargs.values(), grad_output)
    with np.errstate(all="ignore"):  # the reference's casts to float32 may overflow, as intended
        if got is None:
            got = spec.fast.value_and_grad(*args, grad_output=grad_output, **kwargs)
        want = spec.ref.value_and_grad(*args, grad_output=grad_output, **kwargs)
    assert_unchanged(before, snapshot(*args, *kwargs.values(), grad_output))

    reduction = kwargs.get("reduction", "mean")
    weight = kwargs.get("weight")
    dtype = expected_dtype(*args, weight)
    shown = {k: v for k, v in kwargs.items() if k != "weight"}
    label = (f"{name}({what + ', ' if what else ''}{shown}, weighted={weight is not None}, "
             f"grad_output={'array' if np.ndim(grad_output) else grad_output}, dtype={dtype.name})")

    # Types, dtypes, shapes.
    (gv, gg), (wv, wg) = got, want
    if reduction == "none":
        assert isinstance(gv, np.ndarray), f"{label}: value is {type(gv)}, expected an ndarray"
    else:
        assert isinstance(gv, np.generic), f"{label}: value is {type(gv)}, expected a NumPy scalar"
    assert np.asarray(gv).dtype == dtype, f"{label}: value dtype {np.asarray(gv).dtype}, expected {dtype}"
    gg = gg if isinstance(gg, tuple) else (gg,)
    wg = wg if isinstance(wg, tuple) else (wg,)
    assert len(gg) == len(spec.grads), f"{label}: {len(gg)} gradients"
    for g, a in zip(gg, [args[spec.inputs.index(name)] for name in spec.grads]):
        assert isinstance(g, np.ndarray), f"{label}: gradient is {type(g)}"
        assert g.dtype == dtype, f"{label}: gradient dtype {g.dtype}, expected {dtype}"
        assert g.shape == np.shape(a), f"{label}: gradient shape {g.shape}, expected {np.shape(a)}"

    # The error model, in float64 on the inputs as converted to the computation dtype.
    x = as_f64(np.asarray(args[0]).astype(dtype))
    y = as_f64(np.asarray(args[1]).astype(dtype))
    var_shape = np.shape(args[2]) if len(args) > 2 else None
    # (.copy(), not np.ascontiguousarray, which would turn a 0-d array into shape (1,).)
    v_t = var_full(np.asarray(args[2]).astype(dtype), x.shape).copy() if len(args) > 2 else None
    v = as_f64(v_t) if v_t is not None else None
    w = np.ones(x.shape) if weight is None else as_f64(np.asarray(weight).astype(dtype))
    n = x.size
    divisor = 1.0
    if reduction == "mean":
        divisor = float(w.sum()) if (weight is not None and spec.mean_divisor_is_weight_sum) else float(n)
    go = 1.0 if grad_output is None else as_f64(np.asarray(grad_output).astype(dtype))
    with np.errstate(all="ignore"):
        factor = np.abs(w * go / divisor) * np.ones(x.shape)  # what ∂ℓ is multiplied by, per element
    m = spec.model(x, y, v, kwargs, dtype, w, factor)
    kv, kg = spec.k("value", dtype), spec.k("grad", dtype)

    # Elements where the kernel's *unscaled* per-element loss or derivative overflows the dtype, while
    # the weighted / scaled result the reference rounds once need not: fastloss computes ℓ and ∂ℓ in
    # the dtype and then multiplies (an inherent property of computing in float32); not compared.
    full_args = list(args[:2]) + ([v_t] if v_t is not None else [])
    bare = {k: val for k, val in kwargs.items() if k != "weight"}
    bare["reduction"] = "none"
    with np.errstate(all="ignore"):
        raw_v, raw_g = spec.ref.value_and_grad(*full_args, **bare)
    raw_g = raw_g if isinstance(raw_g, tuple) else (raw_g,)
    skip_v = np.broadcast_to(m.skip_value, x.shape)
    if weight is not None:
        skip_v = skip_v | np.isinf(as_f64(raw_v))
    scaled = factor != 1
    skip_g = [np.broadcast_to(m.skip_grads[i], x.shape) | (np.isinf(as_f64(raw_g[i])) & scaled)
              for i in range(len(gg))]

    # Value.
    if reduction == "none":
        tol = kv * ulp(wv, dtype) + m.floor_value
        if weight is not None:
            # A subnormal ℓ carries an absolute rounding error of its own ulp (2**-149 / 2**-1074), which
            # the weight then scales: ulp(w·ℓ) does not bound it when w > 1.
            with np.errstate(all="ignore"):
                raw = np.abs(as_f64(raw_v))
                tol = tol + np.where(raw < np.finfo(dtype).tiny, kv * np.abs(w) * ulp(raw, dtype), 0.0)
        assert_close(gv, wv, tol, dtype=dtype, what=f"{label} value", skip=skip_v)
    elif not skip_v.any():
        with np.errstate(all="ignore"):
            terms = as_f64(spec.ref(*args, **{**kwargs, "reduction": "none"}))  # w·ℓ in the dtype, like fastloss's
        finite = np.isfinite(terms) | np.isnan(terms)
        if not finite.all():
            # A per-element term overflows the dtype while the float64 reference may still reduce to a
            # finite value: fastloss sums the dtype's terms, so it returns that sum's inf (or NaN).
            # This is by design (PyTorch does the same): test_regression's
            # test_float32_terms_are_computed_in_float32_like_pytorch pins it.
            with np.errstate(invalid="ignore", over="ignore"):
                overflowed = np.float64(terms.sum())
            same_special = (np.isnan(overflowed) and np.isnan(gv)) or float(gv) == overflowed
            if not same_special:
                assert_close(gv, wv, 0.0, dtype=dtype, what=f"{label} reduced value (overflowing terms)")
        elif not order_decides_overflow(terms):
            with np.errstate(all="ignore"):
                per_elem = kv * ulp(terms, dtype) + np.broadcast_to(m.floor_value, x.shape)
                tol = (np.sum(per_elem) + summation_gamma(n) * np.sum(np.abs(terms))) / abs(divisor or 1.0)
                if weight is not None and spec.mean_divisor_is_weight_sum and reduction == "mean":
                    tol += summation_gamma(n) * abs(float(wv))  # Σw is summed both ways too
            tol = tol + 2 * ulp(wv, dtype)  # the sum (or mean) rounded to the dtype, on each side
            assert_close(gv, wv, tol, dtype=dtype, what=f"{label} reduced value")

    # Gradients.
    for i, (g_got, g_want, g_name) in enumerate(zip(gg, wg, spec.grads)):
        floor = np.broadcast_to(m.floor_grads[i], x.shape)
        if g_name == "var" and var_shape != x.shape:
            # Summed over the broadcast dims: the sum of the per-element tolerances (per-element
            # gradients from the reference with var broadcast to the input's shape).
            with np.errstate(all="ignore"):
                g_full = as_f64(spec.ref.grad(*full_args, grad_output=grad_output, **kwargs)[1])
                per = kg * ulp(g_full, dtype) + floor + summation_gamma(x.shape[-1] if x.ndim else 1) * np.abs(g_full)
            tol = sum_to_var(per, var_shape) + 2 * ulp(g_want, dtype)
            skip = sum_to_var(skip_g[i].astype(np.int64), var_shape) > 0
            assert_close(g_got, g_want, tol, dtype=dtype, what=f"{label} grad[{g_name}]", skip=skip)
        else:
            tol = kg * ulp(g_want, dtype) + floor
            if weight is not None and spec.mean_divisor_is_weight_sum and reduction == "mean":
                tol = tol + summation_gamma(n) * np.abs(as_f64(g_want))  # the Σw divisor, summed both ways
            assert_close(g_got, g_want, tol, dtype=dtype, what=f"{label} grad[{g_name}]", skip=skip_g[i])
    return got, want


# --------------------------------------------------------------------------------------------------
# Cases for comparing SIMD levels (computed in subprocesses by simd_worker.py)
# --------------------------------------------------------------------------------------------------

SIMD_LEVELS = ("sse2", "avx2", "avx512")  # x86-64, lowest first


def simd_cases(seed=20):
    """Deterministic (key, loss name, args, kwargs) cases exercising the vector loops, their tails and
    several reduction blocks: every loss, dtype, option and reduction, adversarial and normal data."""
    rng = np.random.default_rng(seed)
    cases = []
    for name, spec in SPECS.items():
        for dtype in FLOATS:
            for n, adversarial in ((37, True), (1000, True), (20_000, True), (1000, False)):
                args = make_inputs(spec, rng, (n,), dtype, adversarial=adversarial)
                for j, opts in enumerate(spec_options(spec, (n,), dtype, rng)):
                    for reduction in ("none", "mean", "sum"):
                        key = f"{name}.{np.dtype(dtype).name}.{n}.{int(adversarial)}.{j}.{reduction}"
                        cases.append((key, name, args, {**opts, "reduction": reduction}))
    return cases


# --------------------------------------------------------------------------------------------------
# fastloss's reduction scheme, emulated (src/reduce.rs)
# --------------------------------------------------------------------------------------------------

REDUCE_LANES = 16
REDUCE_BLOCK = 1 << 14


def _tree_sum(parts):
    """reduce::tree_sum: split at next_power_of_two(n)/2, recursively."""
    if len(parts) <= 1:
        return parts[0] if parts else 0.0
    half = 1 << ((len(parts) - 1).bit_length() - 1)
    return _tree_sum(parts[:half]) + _tree_sum(parts[half:])


def blocked_sum(terms):
    """Σ terms in float64 exactly as fastloss adds them: blocks of 16384 elements; in a block, element
    i goes to lane i % 16, each lane adding in element order from 0.0; lanes folded pairwise
    (acc[i] += acc[i + w] for w = 8, 4, 2, 1); block partials combined by a pairwise tree."""
    t = np.asarray(terms).astype(np.float64).ravel()
    parts = []
    for b in range(0, len(t), REDUCE_BLOCK):
        block = t[b:b + REDUCE_BLOCK]
        rows = np.concatenate([np.zeros(REDUCE_LANES), block, np.zeros(-len(block) % REDUCE_LANES)])
        acc = np.cumsum(rows.reshape(-1, REDUCE_LANES), axis=0)[-1]  # sequential per lane
        w = REDUCE_LANES // 2
        while w:
            acc[:w] = acc[:w] + acc[w:2 * w]
            w //= 2
        parts.append(float(acc[0]))
    return _tree_sum(parts)
