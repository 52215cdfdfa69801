"""Determinism, threads and SIMD levels.

Proves that:
- results (values and gradients) are bitwise identical for 1, 2 and 3 threads, at sizes that use the
  thread pool (n = 10**6 + 7 and ~300 000), for every loss in float32 and float64, and for repeated
  calls;
- calls from several Python threads at once give the bits of the same calls made one at a time;
- set_num_threads / get_num_threads validate and round-trip; FASTLOSS_NUM_THREADS sets the default;
- simd_level() names an allowed level, FASTLOSS_SIMD lowers it (sse2 on x86-64) and an invalid value
  raises ValueError at import;
- every SIMD level this CPU reaches gives results within the error model of the reference (the same
  check as test_regression, run on results computed in a subprocess per level), and the levels agree
  with each other bitwise (up to NaN payloads);
- 'sum' and 'mean' are bitwise the documented blocked float64 sum of the per-element terms;
- a float32 mean over 10**7 elements is within 1e-7 relative of the exactly rounded (math.fsum) mean
  of its float32 terms: the float64 accumulation loses nothing that float32 can show.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import fastloss as fl
from helpers import (
    FLOATS,
    SIMD_LEVELS,
    SPECS,
    TESTS,
    assert_bitwise_equal,
    blocked_sum,
    check_against_reference,
    make_inputs,
    simd_cases,
    spec_options,
)

NAMES = list(SPECS)
ALLOWED_LEVELS = ("avx512", "avx2", "sse2", "neon", "scalar")
RANK = {"scalar": 0, "sse2": 0, "neon": 0, "baseline": 0, "avx2": 1, "avx512": 2}
X86 = platform.machine().lower() in ("x86_64", "amd64")


def _run_python(code, env_extra, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTLOSS_SIMD", "FASTLOSS_NUM_THREADS")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------------


def _all_results(name, args, kwargs):
    """Value and gradients for every reduction (a flat list)."""
    f = SPECS[name].fast
    out = []
    for reduction in ("mean", "sum", "none"):
        v, g = f.value_and_grad(*args, reduction=reduction, **kwargs)
        out.append(v)
        out.extend(g if isinstance(g, tuple) else (g,))
        out.append(f(*args, reduction=reduction, **kwargs))
    return out


@pytest.mark.parametrize("n", [10**6 + 7, 300_001])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_bitwise_identical_for_any_thread_count(name, dtype, n, restore_threads):
    spec = SPECS[name]
    rng = np.random.default_rng(n)
    args = make_inputs(spec, rng, (n,), dtype)
    kwargs = {}
    if any("weight" in o for o in spec.options):  # the weighted mean's Σw is a threaded sum too
        kwargs["weight"] = rng.uniform(0, 2, n).astype(dtype)
    results = {}
    for threads in (1, 2, 3):
        fl.set_num_threads(threads)
        assert fl.get_num_threads() == threads
        results[threads] = _all_results(name, args, kwargs)
    for threads in (2, 3):
        for i, (a, b) in enumerate(zip(results[1], results[threads])):
            assert_bitwise_equal(a, b, f"{name}: result {i}, 1 thread vs {threads}")
    # Repeated calls are identical too.
    for i, (a, b) in enumerate(zip(results[3], _all_results(name, args, kwargs))):
        assert_bitwise_equal(a, b, f"{name}: result {i}, repeated call")
    # And a threaded call writing into out= gives the same bits as one allocating its gradient.
    fl.set_num_threads(2)
    _, expected = spec.fast.value_and_grad(*args, reduction="none", **kwargs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    bufs = tuple(np.full_like(e, -1.0) for e in expected)
    spec.fast.grad(*args, reduction="none", out=bufs if len(bufs) > 1 else bufs[0], **kwargs)
    for b, e in zip(bufs, expected):
        assert_bitwise_equal(b, e, f"{name}: out= with 2 threads")


def test_calls_from_several_python_threads_give_the_bits_of_one(restore_threads):
    """The GIL is released while kernels run, so calls from several Python threads overlap: on shared
    inputs (past the pool's threshold, so fastloss's own pool is busy too), each with its own out=,
    while another thread switches the pool's size, every loss and optimizer step gives the bits of
    the same call made alone."""
    import concurrent.futures

    rng = np.random.default_rng(8)
    n = 300_001
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    logits, labels = rng.standard_normal((512, 100)).astype(np.float32), rng.integers(0, 100, 512)
    params = [rng.standard_normal(n).astype(np.float32) for _ in range(8)]
    grad = rng.standard_normal(n).astype(np.float32)

    def losses(out):
        v1, g1 = fl.huber_loss.value_and_grad(x, y, out=out)
        v2, g2 = fl.cross_entropy.value_and_grad(logits, labels, label_smoothing=0.1)
        return [np.asarray(v1), g1.copy(), np.asarray(v2), g2]

    def adam(i):
        p = params[i].copy()
        opt = fl.optim.AdamW([p], lr=1e-3)
        for _ in range(3):
            opt.step([grad])
        return p

    fl.set_num_threads(2)
    want = losses(np.empty(n, np.float32))
    want_params = [adam(i) for i in range(len(params))]

    def task(i):
        if i % 4 == 3:
            fl.set_num_threads(1 + i % 2)
        got = losses(np.empty(n, np.float32))
        return got, adam(i % len(params))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(task, range(16)))
    for i, (got, p) in enumerate(results):
        for k, (a, b) in enumerate(zip(got, want)):
            assert_bitwise_equal(a, b, f"task {i}, result {k}")
        assert_bitwise_equal(p, want_params[i % len(params)], f"task {i}, AdamW")


def test_set_num_threads_validates(restore_threads):
    with pytest.raises(ValueError, match="n"):
        fl.set_num_threads(0)
    with pytest.raises(ValueError, match="-1"):
        fl.set_num_threads(-1)
    with pytest.raises(ValueError, match="4096"):
        fl.set_num_threads(10**30)
    for bad in ("2", 2.0, None, 1.5, True):
        with pytest.raises(TypeError, match="n must be an integer"):
            fl.set_num_threads(bad)
    assert fl.get_num_threads() == restore_threads  # rejected calls changed nothing
    fl.set_num_threads(np.int64(3))
    assert fl.get_num_threads() == 3 and type(fl.get_num_threads()) is int
    fl.set_num_threads(1)
    assert fl.get_num_threads() == 1


@pytest.mark.parametrize("value", ["1", "3"])
def test_fastloss_num_threads_env_sets_the_default(value):
    r = _run_python("import fastloss; print(fastloss.get_num_threads())", {"FASTLOSS_NUM_THREADS": value})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == value


@pytest.mark.parametrize("bad", ["abc", "0", "-2", "1.5", ""])
def test_invalid_fastloss_num_threads_raises_at_import(bad):
    r = _run_python("import fastloss", {"FASTLOSS_NUM_THREADS": bad})
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "FASTLOSS_NUM_THREADS" in r.stderr


# --------------------------------------------------------------------------------------------------
# SIMD levels
# --------------------------------------------------------------------------------------------------


def test_simd_level_is_an_allowed_name():
    level = fl.simd_level()
    assert level in ALLOWED_LEVELS
    assert fl._core.simd_detected() in ALLOWED_LEVELS
    assert RANK[level] <= RANK[fl._core.simd_detected()]
    forced = os.environ.get("FASTLOSS_SIMD")
    if forced:  # e.g. the suite run under FASTLOSS_SIMD=sse2: that level or lower
        assert RANK[level] <= RANK[forced.strip().lower()]
        if X86 and RANK[forced.strip().lower()] <= RANK[fl._core.simd_detected()]:
            assert level == ("sse2" if RANK[forced.strip().lower()] == 0 else forced.strip().lower())


@pytest.mark.skipif(not X86, reason="sse2 is the x86-64 baseline")
def test_fastloss_simd_env_forces_sse2():
    r = _run_python("import fastloss; print(fastloss.simd_level())", {"FASTLOSS_SIMD": "sse2"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "sse2"


def test_fastloss_simd_env_never_raises_the_level():
    r = _run_python("import fastloss; print(fastloss.simd_level(), fastloss._core.simd_detected())",
                    {"FASTLOSS_SIMD": "avx512"})
    assert r.returncode == 0, r.stderr
    level, detected = r.stdout.split()
    assert level == detected  # avx512 requested: the best level this CPU has


@pytest.mark.parametrize("bad", ["avx1024", "fast", ""])
def test_invalid_fastloss_simd_raises_at_import(bad):
    r = _run_python("import fastloss", {"FASTLOSS_SIMD": bad})
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "FASTLOSS_SIMD" in r.stderr


def _reachable_levels():
    if not X86:
        return [fl._core.simd_detected()]
    best = RANK[fl._core.simd_detected()]
    return [level for level in SIMD_LEVELS if RANK[level] <= best]


@pytest.fixture(scope="module")
def per_level_results(tmp_path_factory):
    """Results of simd_worker.py for each reachable level (one subprocess each)."""
    results = {}
    for level in _reachable_levels():
        path = tmp_path_factory.mktemp("simd") / f"{level}.npz"
        env = {k: v for k, v in os.environ.items() if k != "FASTLOSS_SIMD"}
        env["FASTLOSS_SIMD"] = level
        r = subprocess.run([sys.executable, str(TESTS / "simd_worker.py"), str(path)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        with np.load(path) as z:
            results[level] = {k: z[k] for k in z.files}
        assert str(results[level]["__level__"]) == level
    return results


@pytest.mark.parametrize("level", _reachable_levels())
def test_every_simd_level_matches_the_reference(level, per_level_results):
    res = per_level_results[level]
    for key, name, args, kwargs in simd_cases():
        value = res[f"{key}/value"]
        if kwargs["reduction"] != "none":
            value = value[()]  # the NumPy scalar the API returns
        grads = tuple(res[f"{key}/grad{i}"] for i in range(len(SPECS[name].grads)))
        check_against_reference(name, args, kwargs, got=(value, grads if len(grads) > 1 else grads[0]),
                                what=f"FASTLOSS_SIMD={level}, {key}")


def _same_up_to_nan_payload(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, what
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert (nan_a == nan_b).all(), f"{what}: NaN positions differ"
    assert_bitwise_equal(np.where(nan_a, 0, a), np.where(nan_b, 0, b), what)


def test_simd_levels_agree_bitwise(per_level_results):
    """The kernels use no FMA and branch-free elementary functions, so every level gives the same
    bits (NaN payloads aside) as the baseline."""
    levels = list(per_level_results)
    if len(levels) < 2:
        pytest.skip("only one SIMD level on this CPU")
    base = per_level_results[levels[0]]
    for level in levels[1:]:
        other = per_level_results[level]
        for key in base:
            if key != "__level__":
                _same_up_to_nan_payload(other[key], base[key], f"{key}: {level} vs {levels[0]}")


# --------------------------------------------------------------------------------------------------
# The reduction scheme, exactly
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_reductions_follow_the_documented_scheme_exactly(name, dtype, restore_threads):
    """'sum' and 'mean' are, bitwise, the blocked float64 sum (helpers.blocked_sum, src/reduce.rs) of
    the per-element terms that reduction='none' returns, divided by N (or by the same blocked sum of
    the weights for a weighted mse/l1 mean). This pins float64 reductions far tighter than the
    reference comparison can (NumPy sums in another order) and proves the threaded path sums the
    same way."""
    spec = SPECS[name]
    rng = np.random.default_rng(21)
    fl.set_num_threads(2)
    for n in (1, 17, 1000, 16_385, 300_001):
        for adversarial in (False, True):
            args = make_inputs(spec, rng, (n,), dtype, adversarial=adversarial)
            for opts in spec_options(spec, (n,), dtype, rng):
                with np.errstate(all="ignore"):
                    total = blocked_sum(spec.fast(*args, reduction="none", **opts))
                    divisor = blocked_sum(opts["weight"]) if ("weight" in opts and spec.mean_divisor_is_weight_sum) else n
                    mean = total / divisor if divisor else math.nan
                what = f"{name} n={n} adversarial={adversarial} {sorted(opts)}"
                _same_up_to_nan_payload(spec.fast(*args, reduction="sum", **opts), dtype(total), what + " sum")
                _same_up_to_nan_payload(spec.fast(*args, reduction="mean", **opts), dtype(mean), what + " mean")


# --------------------------------------------------------------------------------------------------
# Accuracy of a long float32 reduction
# --------------------------------------------------------------------------------------------------


def test_float32_mean_over_ten_million_is_exactly_rounded():
    n = 10**7
    rng = np.random.default_rng(7)
    x = rng.standard_normal(n, dtype=np.float32) * np.float32(3)
    y = rng.standard_normal(n, dtype=np.float32)
    terms = (x - y) ** 2  # float32, as the kernel computes each term
    assert terms.dtype == np.float32
    exact = math.fsum(terms.astype(np.float64).tolist()) / n
    got = fl.mse_loss(x, y)
    assert got.dtype == np.float32
    assert abs(float(got) - exact) <= 1e-7 * exact, (float(got), exact)
    # The same for the sum.
    got_sum = fl.mse_loss(x, y, reduction="sum")
    assert abs(float(got_sum) - exact * n) <= 1e-7 * exact * n
