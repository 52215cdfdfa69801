"""fastloss's regression losses agree with fastloss.reference on every input a user can give.

Every comparison goes through `helpers.check_against_reference`: per element |fast − reference| <=
k·ulp(reference) (+ a floor only where the formula cancels, computed from the operands), reduced values
within the sum of the per-element tolerances plus a few ulps, NaN exactly where the reference has NaN,
the promised dtype, shape and result type, and the arguments left unmodified. The inputs are
- hypothesis-drawn arrays (lengths 0..70, 0-d and 2-d shapes, any float incl. NaN/inf/subnormals);
- adversarial arrays at every SIMD width and block boundary and past the threading threshold;
- layouts: 0-d, n-d, strided and transposed views, byte-swapped, int/bool/float16 targets, mixed
  float32/float64 (promoting to float64), which must also give bitwise the same result as the
  equivalent contiguous native array;
- huge and tiny magnitudes, every reduction, every option, grad_output None / scalar / array.
It also proves `out=` is honoured, validated (TypeError/ValueError, buffer untouched) and safe when it
aliases an input. Regression tests for bugs found along the way are at the end.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastloss as fl
from helpers import (
    FLOATS,
    SPECS,
    assert_bitwise_equal,
    check_against_reference,
    make_inputs,
    assert_unchanged,
    read_only,
    snapshot,
    spec_options,
    specials,
    var_full,
)

NAMES = list(SPECS)
REDUCTIONS = ("none", "mean", "sum")
# Around the 16-lane loop (LANES = 16, AVX-512 f64 pairs), the 16384-element reduction block, and past
# 131072 (PARALLEL_MIN), where the thread pool takes over.
BOUNDARY_LENGTHS = (15, 16, 17, 31, 32, 33, 63, 64, 65, 16383, 16384, 16385, 140_001)


def _grad_outputs(rng, shape, dtype, reduction):
    """None, a scalar, and (for 'none') an array: the grad_output variants of API.md."""
    out = [None, dtype(rng.normal())]
    if reduction == "none":
        out.append(rng.standard_normal(shape).astype(dtype))
    return out


def _check_all(name, args, dtype, rng, what="", reductions=REDUCTIONS, grad_outputs=True):
    spec = SPECS[name]
    shape = np.shape(args[0])
    for opts in spec_options(spec, shape, dtype, rng):
        for reduction in reductions:
            for go in _grad_outputs(rng, shape, dtype, reduction) if grad_outputs else [None]:
                check_against_reference(name, args, {**opts, "reduction": reduction}, go, what=what)


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


# Weights and upstream gradients are multiplied into ∂ℓ in the computation dtype (w·g·(1/N), rounded),
# so a subnormal one loses its precision before it meets ∂ℓ (e.g. float32 grad_output=1e-45 with a mean
# over 2 elements rounds the scale to 0): inherent to computing in float32, and reported. Their own
# adversarial values are not the point of these tests: keep them 0 or of magnitude 1/8 to 4.
_MODERATE_WEIGHTS = st.one_of(st.just(0.0), st.floats(0.125, 4.0, width=32))
_MODERATE_GRAD_OUTPUTS = st.one_of(st.just(0.0), st.floats(0.125, 3.0, width=32), st.floats(-3.0, -0.125, width=32))


@st.composite
def _case(draw, name, dtype):
    spec = SPECS[name]
    shape = draw(st.one_of(
        st.tuples(st.integers(0, 70)),
        st.just(()),
        st.tuples(st.integers(1, 5), st.integers(1, 9)),
    ))
    args = [draw(hnp.arrays(dtype, shape, elements=_elements(dtype))) for _ in spec.inputs]
    if "var" in spec.inputs:  # a variance must be >= 0 (negative ones are test_errors' business)
        args[2] = np.abs(args[2])
        # The var shapes torch 2.13 accepts besides the input's: one dim short, or one dim of 1 (any).
        if len(shape) >= 1 and 0 not in shape and draw(st.booleans()):
            axis = draw(st.integers(-1, len(shape) - 1))
            args[2] = args[2][..., 0] if axis < 0 else args[2].take([0], axis=axis)
    opts = dict(draw(st.sampled_from(spec.options)))
    if "weight" in opts:
        opts["weight"] = draw(hnp.arrays(dtype, shape, elements=_MODERATE_WEIGHTS))
    reduction = draw(st.sampled_from(REDUCTIONS))
    go_kind = draw(st.sampled_from(["none", "scalar", "array"] if reduction == "none" else ["none", "scalar"]))
    go = {"none": None,
          "scalar": dtype(draw(_MODERATE_GRAD_OUTPUTS)),
          "array": draw(hnp.arrays(dtype, shape, elements=_MODERATE_GRAD_OUTPUTS))}[go_kind]
    return args, {**opts, "reduction": reduction}, go


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_matches_reference_hypothesis(name, dtype, data):
    args, kwargs, go = data.draw(_case(name, dtype))
    check_against_reference(name, args, kwargs, go)


# --------------------------------------------------------------------------------------------------
# Lengths at SIMD / block / threading boundaries, and every length up to 70
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", BOUNDARY_LENGTHS)
def test_boundary_lengths(name, dtype, n, restore_threads):
    fl.set_num_threads(2)
    rng = np.random.default_rng(n)
    spec = SPECS[name]
    big = n > 20_000
    for adversarial in (True, False):
        args = make_inputs(spec, rng, (n,), dtype, adversarial=adversarial)
        # Past the block size the options grid is covered by the smaller lengths; check the reductions.
        _check_all(name, args, dtype, rng, what=f"n={n}, adversarial={adversarial}", grad_outputs=not big)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_every_length_up_to_70(name, dtype):
    rng = np.random.default_rng(70)
    spec = SPECS[name]
    for n in range(71):
        args = make_inputs(spec, rng, (n,), dtype, adversarial=bool(n % 2))
        for opts in spec_options(spec, (n,), dtype, rng):
            for reduction in REDUCTIONS:
                check_against_reference(name, args, {**opts, "reduction": reduction}, what=f"n={n}")


# --------------------------------------------------------------------------------------------------
# Magnitudes and special values
# --------------------------------------------------------------------------------------------------

SCALES = {
    np.float32: [1e30, 1e-30, 1e-40, 1e19, 3e38],
    np.float64: [1e300, 1e-300, 1e-310, 1e30, 1e-30, 1e154, 1.7e308],
}


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_huge_and_tiny_magnitudes(name, dtype):
    rng = np.random.default_rng(1)
    spec = SPECS[name]
    for scale in SCALES[dtype]:
        args = make_inputs(spec, rng, (67,), dtype)
        with np.errstate(over="ignore", under="ignore"):
            # Scale every input (the variance too); keep the targets of count-valued losses.
            scaled = [(a.astype(np.float64) * scale).astype(dtype) if kind != "counts" else a
                      for a, kind in zip(args, spec.kinds)]
        _check_all(name, scaled, dtype, rng, what=f"scale={scale:g}")
        # One side huge/tiny, the other moderate.
        _check_all(name, [scaled[0], *args[1:]], dtype, rng, what=f"input scale={scale:g}")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_nan_and_inf_propagate(name, dtype):
    """A NaN input gives NaN exactly there (value and gradient) and a NaN reduction; infinities give
    what the reference gives."""
    rng = np.random.default_rng(2)
    spec = SPECS[name]
    args = make_inputs(spec, rng, (40,), dtype)
    args[0][[3, 17]] = np.nan
    args[0][[5]] = np.inf
    args[0][[6]] = -np.inf
    args[1][[8]] = np.nan
    args[1][[9]] = np.inf
    _check_all(name, args, dtype, rng)
    v, g = spec.fast.value_and_grad(*args, reduction="none")
    g = g if isinstance(g, tuple) else (g,)
    assert np.isnan(v[[3, 17, 8]]).all()
    if name == "l1_loss":  # torch's sign(NaN) is 0, and so is its l1 gradient there
        assert (g[0][[3, 17, 8]] == 0).all()
    else:
        assert np.isnan(g[0][[3, 17, 8]]).all()
    assert np.isnan(spec.fast(*args, reduction="mean")) and np.isnan(spec.fast(*args, reduction="sum"))


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_l1_gradient_is_torchs_sign(impl, dtype):
    """PyTorch's l1 gradient is sign(x − y) with sign(NaN) = 0 (inf − inf included); smooth_l1 with
    beta = 0 is l1. Values from PyTorch 2.13."""
    x, y = np.array([np.inf, np.nan, 2.0, -0.0], dtype), np.array([np.inf, 1.0, 1.0, 0.0], dtype)
    want = np.array([0.0, 0.0, 1.0, 0.0], dtype)
    np.testing.assert_array_equal(impl.l1_loss.grad(x, y, reduction="sum"), want)
    np.testing.assert_array_equal(impl.smooth_l1_loss.grad(x, y, beta=0.0, reduction="sum"), want)


# --------------------------------------------------------------------------------------------------
# Shapes, layouts and dtypes: all accepted, converted once, bitwise the same as the plain array
# --------------------------------------------------------------------------------------------------


def _same_as_plain(name, args, plain_args, kwargs=None):
    """fastloss on `args` gives bitwise what it gives on the equivalent C-contiguous native arrays
    (`plain_args` may be flattened: results are compared flattened then)."""
    spec = SPECS[name]
    kwargs = kwargs or {}
    for reduction in REDUCTIONS:
        kw = {**kwargs, "reduction": reduction}
        v1, g1 = spec.fast.value_and_grad(*args, **kw)
        v2, g2 = spec.fast.value_and_grad(*plain_args, **kw)
        if reduction == "none":
            v1 = v1.reshape(np.shape(v2))
        assert_bitwise_equal(v1, v2, f"{name} value ({reduction})")
        for a, b in zip(g1 if isinstance(g1, tuple) else (g1,), g2 if isinstance(g2, tuple) else (g2,)):
            assert_bitwise_equal(a.reshape(b.shape), b, f"{name} gradient ({reduction})")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_multidimensional(name, dtype):
    rng = np.random.default_rng(3)
    args = make_inputs(SPECS[name], rng, (3, 4, 5), dtype, adversarial=True)
    _check_all(name, args, dtype, rng, what="shape (3, 4, 5)")
    _same_as_plain(name, args, [a.ravel() for a in args])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_zero_d(name, dtype):
    rng = np.random.default_rng(4)
    spec = SPECS[name]
    for _ in range(5):
        args = [a.reshape(()) for a in make_inputs(spec, rng, (1,), dtype)]
        _check_all(name, args, dtype, rng, what="0-d")
        scalars = [dtype(a[()]) for a in args]  # NumPy scalars are 0-d inputs too
        _check_all(name, scalars, dtype, rng, what="NumPy scalars")


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_strided_and_transposed_views(name, dtype):
    rng = np.random.default_rng(5)
    spec = SPECS[name]
    base = make_inputs(spec, rng, (2 * 6, 2 * 35), dtype, adversarial=True)
    strided = [a[::2, 1::2] for a in base]
    transposed = [a.T for a in base]
    for views, what in ((strided, "a[::2, 1::2]"), (transposed, "a.T"), ([a.ravel()[::3] for a in base], "a[::3]")):
        assert not views[0].flags.c_contiguous
        _check_all(name, views, dtype, rng, what=what)
        _same_as_plain(name, views, [np.ascontiguousarray(a) for a in views])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_byte_swapped(name, dtype):
    rng = np.random.default_rng(6)
    spec = SPECS[name]
    args = make_inputs(spec, rng, (37,), dtype, adversarial=True)
    swapped = [a.astype(a.dtype.newbyteorder(">" if np.little_endian else "<")) for a in args]
    assert not swapped[0].dtype.isnative
    _check_all(name, swapped, dtype, rng, what="byte-swapped")
    _same_as_plain(name, swapped, args)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_read_only_inputs(name, dtype):
    """Read-only arguments (e.g. memory-mapped data) are accepted and give the same bits."""
    rng = np.random.default_rng(17)
    spec = SPECS[name]
    args = make_inputs(spec, rng, (41,), dtype)
    frozen = [a.copy() for a in args]
    for a in frozen:
        a.flags.writeable = False
    _check_all(name, frozen, dtype, rng, what="read-only")
    _same_as_plain(name, frozen, args)


def _unaligned_copy(a):
    """`a` in a buffer that starts one byte off the dtype's alignment (C-contiguous, misaligned)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    u = raw[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned and u.flags.c_contiguous
    return u


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_int_and_bool_targets_are_converted(name, dtype):
    rng = np.random.default_rng(7)
    spec = SPECS[name]
    args = make_inputs(spec, rng, (45,), dtype)
    for target in (rng.integers(0, 5, 45).astype(np.int64), rng.integers(-3, 5, 45).astype(np.int8),
                   rng.integers(0, 9, 45).astype(np.uint16), rng.random(45) < 0.5):
        conv = [args[0], target, *args[2:]]
        _check_all(name, conv, dtype, rng, what=f"target dtype {target.dtype}")
        _same_as_plain(name, conv, [args[0], target.astype(dtype), *args[2:]])


@pytest.mark.parametrize("name", NAMES)
def test_integer_inputs_compute_in_float64(name):
    rng = np.random.default_rng(8)
    spec = SPECS[name]
    args = [rng.integers(0, 6, 30) for _ in spec.inputs]
    _check_all(name, args, np.float64, rng, what="all-integer")  # checks the dtype is float64
    _same_as_plain(name, args, [a.astype(np.float64) for a in args])


@pytest.mark.parametrize("name", NAMES)
def test_mixed_float32_float64_promotes_to_float64(name):
    rng = np.random.default_rng(9)
    spec = SPECS[name]
    args64 = make_inputs(spec, rng, (50,), np.float64)
    for i in range(len(args64)):  # each argument in turn is the float32 one
        mixed = [a.astype(np.float32) if j == i else a for j, a in enumerate(args64)]
        _check_all(name, mixed, np.float64, rng, what=f"argument {i} float32")
        _same_as_plain(name, mixed, [a.astype(np.float64) for a in mixed])
        v = spec.fast(*mixed, reduction="none")
        assert v.dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_float16_computes_in_float32(name):
    rng = np.random.default_rng(10)
    spec = SPECS[name]
    args = [a.astype(np.float16) for a in make_inputs(spec, rng, (33,), np.float32)]
    _check_all(name, args, np.float32, rng, what="float16")
    _same_as_plain(name, args, [a.astype(np.float32) for a in args])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_python_lists_and_scalars(dtype):
    """Array-likes are accepted: lists of floats (float64), Python scalars with arrays."""
    check_against_reference("mse_loss", [[1.0, 2.5, -3.0], [0.5, 0.5, 0.5]], {"reduction": "none"})
    x = np.array([1.0, 2.5, -3.0], dtype)
    check_against_reference("l1_loss", [x, np.zeros(3, dtype)], {"reduction": "sum"})


@pytest.mark.parametrize("impl", [fl, fl.reference], ids=["fastloss", "reference"])
@pytest.mark.parametrize("scalar", [2.0, 3, True])
def test_python_scalars_do_not_promote(impl, scalar):
    """Python numbers are weak (NumPy's NEP 50, PyTorch): they take the arrays' dtype."""
    x = np.array([1.0, 2.5, -3.0], np.float32)
    value, (gx, gv) = impl.gaussian_nll_loss.value_and_grad(x, np.zeros(3, np.float32), scalar)
    assert type(value) is np.float32 and gx.dtype == np.float32 and gv.dtype == np.float32
    assert type(impl.gaussian_nll_loss(x, x, np.float64(1.0))) is np.float64  # NumPy scalars are not weak


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------

API_DEFAULTS = {  # API.md's table (PyTorch's defaults)
    "mse_loss": {"reduction": "mean", "weight": None},
    "l1_loss": {"reduction": "mean", "weight": None},
    "smooth_l1_loss": {"reduction": "mean", "beta": 1.0},
    "huber_loss": {"reduction": "mean", "delta": 1.0, "weight": None},
    "log_cosh_loss": {"reduction": "mean"},
    "mean_squared_log_error": {"reduction": "mean"},
    "poisson_nll_loss": {"log_input": True, "full": False, "eps": 1e-8, "reduction": "mean"},
    "gaussian_nll_loss": {"full": False, "eps": 1e-6, "reduction": "mean"},
}


@pytest.mark.parametrize("name", NAMES)
def test_api_surface(name):
    """Each loss exists in fastloss and the reference with API.md's inputs, options and defaults, and
    the defaults are what a call without options uses."""
    import inspect

    for impl in (fl, fl.reference):
        f = getattr(impl, name)
        assert callable(f) and callable(f.grad) and callable(f.value_and_grad)
        params = inspect.signature(f._impl).parameters
        inputs = [p for p, v in params.items() if v.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        assert tuple(inputs) == SPECS[name].inputs
        defaults = {p: v.default for p, v in params.items()
                    if v.kind is inspect.Parameter.KEYWORD_ONLY and v.default is not inspect.Parameter.empty}
        assert defaults == API_DEFAULTS[name], f"{impl.__name__}.{name}"
    args = make_inputs(SPECS[name], np.random.default_rng(18), (30,), np.float64)
    explicit = {k: v for k, v in API_DEFAULTS[name].items() if v is not None}
    assert_bitwise_equal(getattr(fl, name)(*args), getattr(fl, name)(*args, **explicit))


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_smooth_l1_beta_zero_is_l1(dtype):
    rng = np.random.default_rng(11)
    x, y = make_inputs(SPECS["l1_loss"], rng, (100,), dtype, adversarial=True)
    for reduction in REDUCTIONS:
        for go in _grad_outputs(rng, x.shape, dtype, reduction):
            a = fl.smooth_l1_loss.value_and_grad(x, y, beta=0.0, reduction=reduction, grad_output=go)
            b = fl.l1_loss.value_and_grad(x, y, reduction=reduction, grad_output=go)
            assert_bitwise_equal(a[0], b[0])
            assert_bitwise_equal(a[1], b[1])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_option_values(dtype):
    """Option values beyond the grid: small/large beta and delta, eps, log_input/full combinations."""
    rng = np.random.default_rng(12)
    x, y = make_inputs(SPECS["mse_loss"], rng, (200,), dtype)
    for beta in (1e-3, 0.25, 1.0, 3.0, 100.0):
        for reduction in REDUCTIONS:
            check_against_reference("smooth_l1_loss", [x, y], {"beta": beta, "reduction": reduction})
    for delta in (1e-3, 0.25, 1.0, 3.0, 100.0):
        for reduction in REDUCTIONS:
            check_against_reference("huber_loss", [x, y], {"delta": delta, "reduction": reduction})
            check_against_reference("huber_loss", [x, y], {"delta": delta, "reduction": reduction,
                                                           "weight": rng.uniform(0, 2, 200).astype(dtype)})
    counts = rng.poisson(4, 200).astype(dtype)
    rates = np.abs(x)
    for log_input in (True, False):
        for full in (False, True):
            for eps in (1e-8, 1e-3, 0.5):
                inp = x if log_input else rates
                for reduction in REDUCTIONS:
                    check_against_reference("poisson_nll_loss", [inp, counts],
                                            {"log_input": log_input, "full": full, "eps": eps, "reduction": reduction})
    var = np.abs(y) + 0.01
    for full in (False, True):
        for eps in (1e-6, 1e-2, 1.0):
            for reduction in REDUCTIONS:
                check_against_reference("gaussian_nll_loss", [x, y, var], {"full": full, "eps": eps, "reduction": reduction})


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("var_shape", ["same", "one dim short", "trailing 1", "leading 1", "middle 1", "0-d"])
def test_gaussian_var_shapes(dtype, var_shape):
    """The var shapes of PyTorch 2.13 (and a 0-d var, as torch's float var): the input's, one dim short,
    one dim of 1 where the input's differs; gradients come back in var's shape."""
    rng = np.random.default_rng(13)
    shape = (3, 4, 5) if var_shape == "middle 1" else (6, 7)
    x, y, v = make_inputs(SPECS["gaussian_nll_loss"], rng, shape, dtype)
    var = {"same": v, "one dim short": v[..., 0], "trailing 1": v[..., :1], "leading 1": v[:1],
           "middle 1": v[:, :1], "0-d": v.flat[0].reshape(())}[var_shape]
    _check_all("gaussian_nll_loss", [x, y, var], dtype, rng, what=f"var {var_shape}")
    # Same value and input-gradient as the explicitly broadcast var.
    full = var_full(var, x.shape).copy()
    for reduction in REDUCTIONS:
        a_v, (a_gx, a_gv) = fl.gaussian_nll_loss.value_and_grad(x, y, var, reduction=reduction)
        b_v, (b_gx, b_gv) = fl.gaussian_nll_loss.value_and_grad(x, y, full, reduction=reduction)
        assert_bitwise_equal(a_v, b_v)
        assert_bitwise_equal(a_gx, b_gx)
        assert a_gv.shape == var.shape


@pytest.mark.parametrize("name", NAMES)
def test_empty_input(name):
    """Empty arrays: mean is NaN, sum is 0, 'none' is empty (PyTorch's results)."""
    spec = SPECS[name]
    for dtype in FLOATS:
        args = [np.zeros((0,), dtype) for _ in spec.inputs]
        assert np.isnan(spec.fast(*args))
        assert spec.fast(*args, reduction="sum") == 0
        assert spec.fast(*args, reduction="none").shape == (0,)
        _check_all(name, args, dtype, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------------

SENTINEL = -12345.0


def _inputs_and_grad_shapes(name, dtype, n=23, seed=14):
    spec = SPECS[name]
    args = make_inputs(spec, np.random.default_rng(seed), (n,), dtype)
    if name == "gaussian_nll_loss":
        return args, [(n,), (n,)]
    return args, [(n,)]


def _out_for(shapes, dtype):
    bufs = [np.full(s, SENTINEL, dtype) for s in shapes]
    return bufs, (tuple(bufs) if len(bufs) > 1 else bufs[0])


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_out_is_written_and_returned(name, dtype, impl):
    f = getattr(impl, name)
    args, shapes = _inputs_and_grad_shapes(name, dtype)
    for reduction in REDUCTIONS:
        expected_v, expected_g = f.value_and_grad(*args, reduction=reduction)
        expected_g = expected_g if isinstance(expected_g, tuple) else (expected_g,)
        for call in ("grad", "value_and_grad"):
            bufs, out = _out_for(shapes, dtype)
            res = getattr(f, call)(*args, reduction=reduction, out=out)
            if call == "value_and_grad":
                assert_bitwise_equal(res[0], expected_v)
                res = res[1]
            res = res if isinstance(res, tuple) else (res,)
            for r, buf, e in zip(res, bufs, expected_g):
                assert r is buf
                assert_bitwise_equal(buf, e)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_out_is_validated_and_left_untouched(name, dtype, impl):
    f = getattr(impl, name)
    args, shapes = _inputs_and_grad_shapes(name, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    n = shapes[0][0]

    def bad_buffers():
        wrong_shape = np.full((n + 1,), SENTINEL, dtype)
        wrong_dtype = np.full((n,), SENTINEL, other)
        swapped = np.full((n,), SENTINEL, np.dtype(dtype).newbyteorder())
        strided = np.full((2 * n,), SENTINEL, dtype)[::2]
        read_only = np.full((n,), SENTINEL, dtype)
        read_only.flags.writeable = False
        unaligned = _unaligned_copy(np.full((n,), SENTINEL, dtype))
        return [(wrong_shape, ValueError, "shape"), (wrong_dtype, TypeError, "dtype"),
                (swapped, TypeError, "dtype"), (strided, ValueError, "contiguous"),
                (read_only, ValueError, "read-only"), (unaligned, ValueError, "aligned"),
                ([0.0] * n, TypeError, "out")]

    for bad, exc, msg in bad_buffers():
        good = [np.full(s, SENTINEL, dtype) for s in shapes]
        if len(shapes) == 1:
            out, watched = bad, [bad]
        else:  # gaussian: a bad buffer in either position; the good one must stay untouched too
            out, watched = (good[0], bad), [good[0], bad]
        with pytest.raises(exc, match=msg):
            f.grad(*args, out=out)
        with pytest.raises(exc, match=msg):
            f.value_and_grad(*args, out=out, reduction="none")
        for w in watched:
            if isinstance(w, np.ndarray):
                assert (np.asarray(w) == SENTINEL).all(), "a rejected out= buffer was written"


def test_gaussian_out_must_be_a_pair_of_distinct_buffers(impl):
    x = np.arange(5.0)
    a, b = np.full(5, SENTINEL), np.full(5, SENTINEL)
    with pytest.raises(TypeError, match="out"):
        impl.gaussian_nll_loss.grad(x, x, x + 1, out=a)
    with pytest.raises(TypeError, match="out"):
        impl.gaussian_nll_loss.grad(x, x, x + 1, out=(a,))
    with pytest.raises(ValueError, match="overlap"):
        impl.gaussian_nll_loss.grad(x, x, x + 1, out=(a, a))
    assert (a == SENTINEL).all() and (b == SENTINEL).all()


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_out_aliasing_an_input(name, dtype, impl):
    """out= may be one of the inputs (or the weight / grad_output): the result is as if it were not."""
    f = getattr(impl, name)
    spec = SPECS[name]
    rng = np.random.default_rng(15)
    n = 29
    args = make_inputs(spec, rng, (n,), dtype)
    go = rng.standard_normal(n).astype(dtype)
    weight = rng.uniform(0, 2, n).astype(dtype)
    uses_weight = any("weight" in o for o in spec.options)
    kw = {"reduction": "none", "grad_output": go, **({"weight": weight} if uses_weight else {})}
    expected_v, expected_g = f.value_and_grad(*[a.copy() for a in args], **kw)
    expected_g = expected_g if isinstance(expected_g, tuple) else (expected_g,)

    candidates = [("input", 0), ("target", 1)] + ([("var", 2)] if len(args) > 2 else []) + \
                 [("grad_output", "go")] + ([("weight", "w")] if uses_weight else [])
    for what, which in candidates:
        a = [x.copy() for x in args]
        g = go.copy()
        wt = weight.copy()
        alias = a[which] if isinstance(which, int) else (g if which == "go" else wt)
        kw2 = {"reduction": "none", "grad_output": g, **({"weight": wt} if uses_weight else {})}
        if len(spec.grads) == 1:
            out = alias
        else:  # gaussian: alias the input-gradient buffer; the var one is fresh
            out = (alias, np.empty(n, dtype))
        v, res = f.value_and_grad(*a, out=out, **kw2)
        res = res if isinstance(res, tuple) else (res,)
        assert res[0] is alias
        assert_bitwise_equal(v, expected_v, f"value with out aliasing {what}")
        for r, e in zip(res, expected_g):
            assert_bitwise_equal(r, e, f"gradient with out aliasing {what}")


# --------------------------------------------------------------------------------------------------
# Regression tests for bugs found while writing this suite (each fixed; kept so they stay fixed)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["float32 input, int target", "float32 input, float64 target",
                                  "byte-swapped 0-d input", "bool target"])
def test_zero_d_arguments_that_need_conversion(impl, case):
    x, y = {
        "float32 input, int target": (np.float32(3), 1),
        "float32 input, float64 target": (np.float32(3), np.float64(1)),
        "byte-swapped 0-d input": (np.array(3.0, ">f8"), np.array(1.0)),
        "bool target": (np.array(3.0), True),
    }[case]
    value, grad = impl.mse_loss.value_and_grad(x, y, reduction="none")
    assert value.shape == () and grad.shape == () and float(value) == 4.0


@pytest.mark.parametrize("name", NAMES)
def test_misaligned_inputs(name):
    rng = np.random.default_rng(16)
    spec = SPECS[name]
    args = make_inputs(spec, rng, (37,), np.float64)
    for i in range(len(args)):
        _same_as_plain(name, [_unaligned_copy(a) if j == i else a for j, a in enumerate(args)], args)


def test_gaussian_0d_var_gradient_shape(impl):
    _, (gx, gv) = impl.gaussian_nll_loss.value_and_grad(np.arange(3.0), np.zeros(3), np.float32(2.0))
    assert gv.shape == ()


def test_gaussian_negative_var_next_to_nan_is_rejected():
    x = np.zeros(2)
    with pytest.raises(ValueError, match="var"):
        fl.gaussian_nll_loss(x, x, np.array([np.nan, -1.0]))


@pytest.mark.parametrize("dtype, a, beta", [(np.float32, 5e-31, 1e-30), (np.float32, 1e25, 1e30),
                                            (np.float64, 1e-200, 1e-190), (np.float64, 1e155, 1e300)])
def test_smooth_l1_quadratic_branch_with_extreme_beta(dtype, a, beta):
    x, y = np.array([a], dtype), np.zeros(1, dtype)
    got = fl.smooth_l1_loss(x, y, beta=beta, reduction="none")
    want = fl.reference.smooth_l1_loss(x, y, beta=beta, reduction="none")
    assert np.isfinite(want).all() and want[0] > 0
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_smooth_l1_terms_have_the_bits_of_the_division_formula(dtype):
    """For a power of two β the kernel multiplies by 1/β instead of dividing (the same real number,
    so the same rounding); for other β it divides. Either way each term and gradient has the bits of
    0.5·a·(a/β) and r/β computed in the dtype, on magnitudes from subnormal to huge."""
    fi = np.finfo(dtype)
    rng = np.random.default_rng(5)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    r = rng.integers(0, np.array(fi.max, dtype).view(bits), 3000, dtype=bits).view(dtype)
    r = np.concatenate([r, -r, [0.0, fi.smallest_subnormal, fi.tiny, 1.0, 0.5, 2.0]]).astype(dtype)
    y = np.zeros_like(r)
    exps = (-149, -127, -126, -20, -1, 0, 1, 20, 127) if dtype == np.float32 else (-1074, -1023, -1022, -1, 0, 1, 1000, 1023)
    betas = [float(np.ldexp(1.0, e)) for e in exps] + [0.75, 3.0, 1e-3]
    for beta in betas:
        b = dtype(beta)
        with np.errstate(all="ignore"):
            a = np.abs(r)
            want = np.where(a < b, dtype(0.5) * a * (a / b), a - dtype(0.5) * b)
            want_grad = np.where(r <= -b, dtype(-1), np.where(r >= b, dtype(1), r / b))
        value, grad = fl.smooth_l1_loss.value_and_grad(r, y, beta=beta, reduction="none",
                                                       grad_output=np.ones_like(r))
        assert_bitwise_equal(value, want)
        assert_bitwise_equal(grad, want_grad)


def test_log_cosh_gradient_never_exceeds_one():
    r = np.linspace(0, 25, 200_001).astype(np.float32)
    g = fl.log_cosh_loss.grad(r, np.zeros_like(r), reduction="sum")
    assert np.abs(g).max() <= 1, f"tanh > 1 at x = {r[np.argmax(g)]!r}: {g.max()!r}"


def test_float32_terms_are_computed_in_float32_like_pytorch():
    """fastloss computes per-element terms in the computation dtype (as PyTorch does) and only
    accumulates in float64, so a float32 term that overflows is inf, as in PyTorch. The reference
    computes terms in float64 and so differs here (documented in README)."""
    x, y = np.array([2e19, 0], np.float32), np.zeros(2, np.float32)
    assert fl.reference.mse_loss(x, y) == np.float32(2e38)
    assert np.isinf(fl.mse_loss(x, y))


@pytest.mark.parametrize("x, y, var", [(2.77e214, 0.0, 7.76e198), (-1.15, -5.27e134, 1.3e252)])
def test_reference_gaussian_var_gradient_at_large_magnitudes(x, y, var):
    args = [np.array([x]), np.array([y]), np.array([var])]
    got_fast = fl.gaussian_nll_loss.grad(*args, reduction="sum")[1]
    got_ref = fl.reference.gaussian_nll_loss.grad(*args, reduction="sum")[1]
    L = np.longdouble
    truth = 0.5 * (1 / L(var) - ((L(x) - L(y)) / L(var)) ** 2)
    np.testing.assert_allclose(got_fast, np.float64(truth), rtol=1e-15)  # fastloss is right
    np.testing.assert_allclose(got_ref, np.float64(truth), rtol=1e-15)


def test_reference_none_reduction_on_0d_returns_ndarray():
    v = fl.reference.mse_loss(np.array(3.0), np.array(1.0), reduction="none")
    assert isinstance(v, np.ndarray)


# --------------------------------------------------------------------------------------------------
# The compiled fast path for the common call (positional arrays, default options)
# --------------------------------------------------------------------------------------------------

FAST_NAMES = [name for name in NAMES if getattr(fl, name).fast is not None]


@pytest.mark.parametrize("name", FAST_NAMES)
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(0,), (1,), (3, 0), (17,), (5, 7), (5000,)])
def test_fast_path_gives_the_general_paths_bits(name, dtype, shape):
    """A call with positional arrays only takes `pointwise_mean`; spelling out the default
    reduction takes the general path. Both must give identical bits and types (NaNs by position:
    grad alone and value_and_grad are different compiled instances of the kernel)."""
    loss = getattr(fl, name)
    args = make_inputs(SPECS[name], np.random.default_rng(7), shape, dtype, adversarial=True)
    fast_v, fast_g = loss(*args), loss.grad(*args)
    fast_vg = loss.value_and_grad(*args)
    general_vg = loss.value_and_grad(*args, reduction="mean")
    assert_bitwise_equal(fast_v, general_vg[0], f"{name} value", nan_payload=False)
    assert_bitwise_equal(fast_vg[0], general_vg[0], f"{name} value_and_grad value", nan_payload=False)
    assert type(fast_v) is np.dtype(dtype).type
    # One gradient, or one per differentiable input (gaussian_nll_loss: input and var).
    several = isinstance(general_vg[1], tuple)
    for got in (fast_g, fast_vg[1]):
        assert isinstance(got, tuple) == several
        for i, (g, want) in enumerate(zip(got, general_vg[1]) if several else [(got, general_vg[1])]):
            assert_bitwise_equal(g, want, f"{name} grad {i}", nan_payload=False)
            assert g.flags.c_contiguous and g.flags.writeable
    # The gradient(s) into the caller's buffer(s), also on the fast path.
    bufs = [np.full(args[0].shape, 7, dtype) for _ in range(2 if several else 1)]
    out = tuple(bufs) if several else bufs[0]
    wants = general_vg[1] if several else (general_vg[1],)
    assert loss.fast(tuple(args), True, True, out) is not None, "the fast path declined out="
    v, g = loss.value_and_grad(*args, out=out)
    assert g is out if not several else all(a is b for a, b in zip(g, bufs))
    assert_bitwise_equal(v, general_vg[0], f"{name} value with out=", nan_payload=False)
    for i, (buf, want) in enumerate(zip(bufs, wants)):
        assert_bitwise_equal(buf, want, f"{name} grad {i} into out=", nan_payload=False)
        buf[...] = 7
    loss.grad(*args, out=out)
    for i, (buf, want) in enumerate(zip(bufs, wants)):
        assert_bitwise_equal(buf, want, f"{name} grad {i} alone into out=", nan_payload=False)


@pytest.mark.parametrize("name", FAST_NAMES)
def test_fast_path_declines_what_it_cannot_take(name):
    """Arguments the fast path does not handle reach the general path: conversions, views,
    subclasses, mismatched shapes (which must still raise)."""
    loss, ref = getattr(fl, name), getattr(fl.reference, name)
    x, y, *rest = make_inputs(SPECS[name], np.random.default_rng(8), (4, 6), np.dtype(np.float32))
    cases = {
        "mixed dtypes": (x, y.astype(np.float64), *rest),
        "transposed": (x.T, y.T, *(r.T for r in rest)),
        "list target": (x[0], list(y[0]), *(r[0] for r in rest)),
        "masked": (np.ma.masked_array(x), y, *rest),
        "read-only": (read_only(x), read_only(y), *map(read_only, rest)),
        "byte-swapped": (x.astype(x.dtype.newbyteorder()), y, *rest),
    }
    if rest:  # gaussian_nll_loss: a var that broadcasts, and a negative one (which must raise)
        cases["var per row"] = (x, y, rest[0][:, :1])
    for what, args in cases.items():
        got, want = loss.value_and_grad(*args), ref.value_and_grad(*args)
        assert np.asarray(got[0]).dtype == np.asarray(want[0]).dtype, what
        for g, w in zip(got[1], want[1]) if isinstance(want[1], tuple) else [(got[1], want[1])]:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, err_msg=what)
    with pytest.raises(ValueError, match="target"):
        loss(x, y[:, :3], *rest)
    with pytest.raises(TypeError, match="input"):
        loss(x.astype(np.complex64), y, *rest)
    if rest:
        with pytest.raises(ValueError, match="var"):
            loss(x, y, -rest[0])
        _gaussian_out_the_fast_path_declines(loss, ref, x, y, rest[0])
        return
    # out= the fast path cannot write into as it is: the general path raises, or copies the input
    # that the buffer overlaps.
    want = ref.value_and_grad(x, y)
    bad_outs = {
        "dtype": (np.empty((4, 6), np.float64), TypeError),
        "shape": (np.empty((6, 4), np.float32), ValueError),
        "strided": (np.empty((4, 12), np.float32)[:, ::2], ValueError),
        "read-only": (read_only(np.empty((4, 6), np.float32)), ValueError),
        "list": ([0.0] * 24, TypeError),
    }
    for what, (buf, error) in bad_outs.items():
        with pytest.raises(error, match="out"):
            loss.value_and_grad(x, y, out=buf)
    for what, buf in {"input": x.copy(), "target": y.copy()}.items():
        args = (buf, y) if what == "input" else (x, buf)
        v, g = loss.value_and_grad(*args, out=buf)
        assert g is buf
        np.testing.assert_allclose(g, want[1], rtol=1e-5, err_msg=f"out= aliasing the {what}")


def _gaussian_out_the_fast_path_declines(loss, ref, x, y, v):
    """gaussian_nll_loss's out=(grad_input, grad_var): buffers the fast path cannot take go to the
    general path, which raises or copies an input a buffer overlaps; a negative variance raises
    before either buffer is written."""
    want = ref.value_and_grad(x, y, v)
    good = np.full(x.shape, SENTINEL, x.dtype)
    bad_outs = {
        "one array": (good, TypeError, "tuple"),
        "three arrays": ((good, good.copy(), good.copy()), TypeError, "tuple"),
        "overlapping": ((good, good), ValueError, "overlap"),
        "second strided": ((good, np.empty((4, 12), x.dtype)[:, ::2]), ValueError, "contiguous"),
        "second read-only": ((good, read_only(good.copy())), ValueError, "read-only"),
    }
    for what, (out, error, msg) in bad_outs.items():
        with pytest.raises(error, match=msg):
            loss.value_and_grad(x, y, v, out=out)
        assert (good == SENTINEL).all(), what
    for what, out in {"list": [good.copy(), good.copy()], "aliasing var": (v.copy(), good.copy())}.items():
        args = (x, y, out[0]) if what == "aliasing var" else (x, y, v)
        _, g = loss.value_and_grad(*args, out=out)
        assert g[0] is out[0] and g[1] is out[1], what
        for got, w in zip(g, want[1]):
            np.testing.assert_allclose(got, w, rtol=1e-5, err_msg=what)
    n = 300_000  # a negative variance far into the array: neither buffer may be written
    xs, vs = np.zeros(n, x.dtype), np.ones(n, x.dtype)
    vs[n - 7] = -1.0
    bufs = (np.full(n, SENTINEL, x.dtype), np.full(n, SENTINEL, x.dtype))
    with pytest.raises(ValueError, match="var: has negative entries"):
        loss.value_and_grad(xs, xs, vs, out=bufs)
    assert all((b == SENTINEL).all() for b in bufs)


def test_weighted_subnormal_terms():
    """Found by hypothesis: huber with delta 2.5, weight ~2 and a subnormal ½r²: the weight scales the
    term's own subnormal rounding (the error model in helpers.check_against_reference allows for it)."""
    x, y = np.array(0.0), np.array(1.22581035e-157)
    w = np.array(2.0)
    check_against_reference("huber_loss", [x, y], {"delta": 2.5, "weight": w, "reduction": "none"})


@pytest.mark.parametrize("threads", [1, 2])
def test_gaussian_var_is_checked_block_by_block(threads):
    """The common call leaves the var >= 0 check to the kernel, block by block; a negative variance
    in any block (NaN is allowed, as in PyTorch) raises the general path's error."""
    n = 300_000
    x, y, v = np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32)
    v[123_457] = np.nan
    v[280_000] = -1e-30
    before = snapshot(x, y, v)
    old = fl.get_num_threads()
    fl.set_num_threads(threads)
    try:
        for call in (fl.gaussian_nll_loss, fl.gaussian_nll_loss.grad, fl.gaussian_nll_loss.value_and_grad):
            with pytest.raises(ValueError, match="var: has negative entries"):
                call(x, y, v)
        assert_unchanged(before, snapshot(x, y, v))
        v[280_000] = 0.0
        assert np.isnan(fl.gaussian_nll_loss(x, y, v))
    finally:
        fl.set_num_threads(old)
