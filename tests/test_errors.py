"""Bad input (API.md, "Bad input"): a clear Python exception, never a crash, never a partial write.

For every bad call of the regression losses this proves, for fastloss and fastloss.reference alike:
- the exception type API.md promises (ValueError for shapes, unknown reduction and out-of-range
  options; TypeError for non-numeric dtypes and wrong argument types);
- a message that names the argument and what was given;
- identical exceptions (type and message) from fastloss and the reference;
- the inputs unmodified and a caller's `out=` buffer untouched (filled with a sentinel beforehand),
  through all three entry points.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastloss as fl
from helpers import SPECS, snapshot, assert_unchanged

N = 6
SENTINEL = -777.0
NAMES = list(SPECS)


def _inputs(name, dtype=np.float64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    if name == "gaussian_nll_loss":
        return [x, y, np.abs(y).astype(dtype) + 0.5]
    if name == "poisson_nll_loss":
        return [x, np.abs(np.round(y * 3)).astype(dtype)]
    return [x, y]


def _bad_calls():
    """(id, loss name, args, kwargs, exception, message regex)."""
    calls = []

    def add(id_, name, args, kwargs, exc, match):
        calls.append(pytest.param(name, args, kwargs, exc, match, id=f"{name}-{id_}"))

    for name in NAMES:
        spec = SPECS[name]
        base = _inputs(name)
        x = base[0]
        rest = base[2:]
        weighted = any("weight" in o for o in spec.options)

        # reduction
        for bad in ("avg", "MEAN", "batchmean", ""):
            add(f"reduction={bad!r}", name, base, {"reduction": bad}, ValueError, rf"reduction.*{re.escape(repr(bad))}")
        for bad in (None, 1, ["mean"]):
            add(f"reduction={bad!r}", name, base, {"reduction": bad}, (ValueError, TypeError), "reduction")

        # shapes
        add("target-longer", name, [x, np.zeros(N + 1), *rest], {}, ValueError, r"target.*\(7,\)")
        add("target-2d", name, [x, np.zeros((N, 1)), *rest], {}, ValueError, r"target.*\(6, 1\)")
        add("target-0d", name, [x, np.zeros(()), *rest], {}, ValueError, r"target.*\(\)")
        if weighted:
            add("weight-shape", name, base, {"weight": np.ones(N - 1)}, ValueError, r"weight.*\(5,\)")
            add("weight-complex", name, base, {"weight": np.ones(N, complex)}, TypeError, "weight.*complex")
            add("weight-str", name, base, {"weight": "heavy"}, TypeError, "weight")

        # non-numeric arrays, for each positional argument
        for i, arg in enumerate(spec.inputs):
            for bad, what in ((np.ones(N, complex), "complex"), (np.array([1.0] * N, dtype=object), "object"),
                              (np.array(["a"] * N), "<U1"), ("abc", "<U3"), (None, "object"),
                              (np.zeros(N, "datetime64[s]"), "datetime64")):
                args = list(base)
                args[i] = bad
                add(f"{arg}-{what}", name, args, {}, TypeError, rf"{arg}.*{re.escape(what)}")

        # grad_output
        add("grad_output-shape-none", name, base, {"reduction": "none", "grad_output": np.ones(N + 1)},
            ValueError, r"grad_output.*\(7,\)")
        add("grad_output-array-for-mean", name, base, {"reduction": "mean", "grad_output": np.ones(N)},
            ValueError, r"grad_output.*\(6,\)")
        add("grad_output-complex", name, base, {"reduction": "none", "grad_output": np.ones(N, complex)},
            TypeError, "grad_output.*complex")

        # unknown keyword / missing argument
        add("unknown-keyword", name, base, {"margin": 1.0}, TypeError, "margin")
        add("missing-argument", name, base[:1], {}, TypeError, "")

    # options: range and type
    base = _inputs("smooth_l1_loss")
    for bad in (-1.0, -1e-300, float("nan"), -np.inf):
        add(f"beta={bad}", "smooth_l1_loss", base, {"beta": bad}, ValueError, "beta")
    for bad in ("1", None, True, [1.0], np.ones(2)):
        add(f"beta={bad!r}", "smooth_l1_loss", base, {"beta": bad}, TypeError, "beta")
    for bad in (0.0, -0.0, -2.0, float("nan")):
        add(f"delta={bad}", "huber_loss", base, {"delta": bad}, ValueError, "delta")
    for bad in ("1", None, False):
        add(f"delta={bad!r}", "huber_loss", base, {"delta": bad}, TypeError, "delta")
    base = _inputs("poisson_nll_loss")
    for opt, bad in (("log_input", 1), ("log_input", None), ("full", "yes"), ("full", 0), ("eps", "1e-8"), ("eps", None)):
        add(f"{opt}={bad!r}", "poisson_nll_loss", base, {opt: bad}, TypeError, opt)
    base = _inputs("gaussian_nll_loss")
    x, y, v = base
    for opt, bad in (("full", 1), ("eps", "small"), ("eps", True)):
        add(f"{opt}={bad!r}", "gaussian_nll_loss", base, {opt: bad}, TypeError, opt)
    add("var-negative", "gaussian_nll_loss", [x, y, -v], {}, ValueError, "var.*negative")
    add("var-one-negative", "gaussian_nll_loss", [x, y, np.where(np.arange(N) == 3, -1e-300, v)], {},
        ValueError, "var.*negative")
    add("var-negative-0d", "gaussian_nll_loss", [x, y, np.array(-1.0)], {}, ValueError, "var.*negative")
    X, Y = np.ones((3, 4)), np.zeros((3, 4))
    for shape in ((4,), (3, 2), (2, 4), (1, 1), (2, 4, 1), (3, 4, 1), (12,)):
        add(f"var-shape-{shape}", "gaussian_nll_loss", [X, Y, np.ones(shape)], {}, ValueError,
            rf"var.*{re.escape(str(shape))}")
    return calls


BAD_CALLS = _bad_calls()


def _raise(f, args, kwargs):
    with pytest.raises(Exception) as info:
        f(*args, **kwargs)
    return info.value


def _outs(name, args, dtype=np.float64):
    """Sentinel-filled out= buffers of the gradient shapes (as far as the bad arguments allow)."""
    def shape(a):
        return np.shape(a) if isinstance(a, np.ndarray) and a.dtype.kind in "fiub" else (N,)
    if name == "gaussian_nll_loss":
        return (np.full(shape(args[0]), SENTINEL, dtype),
                np.full(shape(args[2]) if len(args) > 2 else (N,), SENTINEL, dtype))
    return np.full(shape(args[0]), SENTINEL, dtype)


@pytest.mark.parametrize("name, args, kwargs, exc, match", BAD_CALLS)
def test_bad_input_raises(name, args, kwargs, exc, match):
    before = snapshot(*args, *kwargs.values())
    errors = {}
    for impl in (fl, fl.reference):
        f = getattr(impl, name)
        grad_kw = dict(kwargs)
        value_kw = {k: v for k, v in kwargs.items() if k != "grad_output"}
        for entry, call, kw in (("f", f, value_kw), ("grad", f.grad, grad_kw), ("value_and_grad", f.value_and_grad, grad_kw)):
            if entry == "f" and "grad_output" in kwargs:
                continue  # grad_output is not an argument of the value-only call
            out = _outs(name, args) if entry != "f" else None
            call_kw = {**kw, "out": out} if out is not None else kw
            err = _raise(call, args, call_kw)
            assert isinstance(err, exc), f"{impl.__name__}.{name}.{entry}: {type(err).__name__}: {err}"
            assert re.search(match, str(err)), f"{impl.__name__}.{name}.{entry}: message {str(err)!r} !~ {match!r}"
            errors[(impl.__name__, entry)] = (type(err), str(err))
            for buf in (out if isinstance(out, tuple) else (out,)):
                if buf is not None:
                    assert (buf == SENTINEL).all(), f"{impl.__name__}.{name}.{entry} wrote into out= before failing"
            assert_unchanged(before, snapshot(*args, *kwargs.values()))
    # fastloss and the reference raise the same exception, entry point by entry point.
    for entry in ("f", "grad", "value_and_grad"):
        if ("fastloss", entry) in errors:
            assert errors[("fastloss", entry)] == errors[("fastloss.reference", entry)], entry


@pytest.mark.parametrize("name", NAMES)
def test_messages_say_what_is_allowed(name):
    """The reduction message lists the allowed values; a dtype message names the given dtype."""
    args = _inputs(name)
    with pytest.raises(ValueError) as info:
        getattr(fl, name)(*args, reduction="avg")
    for allowed in ("'none'", "'mean'", "'sum'"):
        assert allowed in str(info.value)
    with pytest.raises(TypeError, match="complex128"):
        getattr(fl, name)(args[0].astype(complex), *args[1:])


def test_errors_do_not_depend_on_layout():
    """A bad argument is reported the same way for contiguous, strided and float32 inputs."""
    for x in (np.zeros(N), np.zeros(2 * N)[::2], np.zeros(N, np.float32), np.zeros(N, ">f8")):
        with pytest.raises(ValueError, match="target"):
            fl.mse_loss(x, np.zeros(N + 1))
        with pytest.raises(ValueError, match="reduction"):
            fl.mse_loss(x, np.zeros(N), reduction="avg")
