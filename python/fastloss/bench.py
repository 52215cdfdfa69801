"""`python -m fastloss bench`: times fastloss against NumPy as users write it (and JAX / PyTorch when installed).

Protocol (docs/stack.md §7):

- every implementation of one workload runs in this one process, interleaved round-robin
  (A, B, C, A, B, C, ...), each sample timing an auto-calibrated number of back-to-back calls
  (>= ~2 ms per sample, >= 1 call) with `time.perf_counter_ns`, after one warm-up call
  (which also compiles the JAX functions); medians are reported;
- every implementation's result is checked against fastloss's once, before timing;
- each workload also times a memory-bandwidth mark on the same n and dtype: `np.dot(a, b)` (reads two
  streams and reduces, like a loss value) or `np.add(a, b, out=c)` (reads two, writes one, like a loss
  gradient). `fastloss / mark` close to 1 means the kernel runs at memory (or cache) speed;
- fastloss, BLAS (for the dot mark), PyTorch and XLA are pinned to `--threads` (XLA by starting its
  CPU client on that many CPUs: see `_create_jax_client_on`).

Workloads are plain `Workload` records produced by builder functions registered with `@register`;
to benchmark more losses or optimizer steps, add a builder (see `regression_workloads`).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

import fastloss as fl

DEFAULT_SIZES = (10**3, 10**5, 10**6, 10**7)
QUICK_SIZES = (10**3, 10**5)
DEFAULT_REPEAT = 11
QUICK_REPEAT = 7
SAMPLE_SECONDS = 2e-3        # each sample runs >= this long (at least one call)
REFERENCE_MAX_N = 10**6      # fastloss.reference is slow; skipped above this n unless --reference-max-n
SEED = 20240611


# =============================================================================================
# Workloads
# =============================================================================================

@dataclass
class Call:
    """A prepared zero-argument call; `before` (untimed) runs before each sample, e.g. to set threads."""

    fn: Callable[[], Any]
    before: Callable[[], None] | None = None


Prepare = Callable[[tuple], "Callable[[], Any] | Call"]


@dataclass
class Workload:
    """One row of the table.

    name        what is timed: the loss (or optimizer, ...) name; `--losses` filters on it
    op          "value", "value_and_grad", "step", ...
    n           elements per input array
    make_inputs (rng, n, dtype) -> tuple of NumPy arrays, the positional inputs of every implementation
    impls       {implementation name: prepare}; prepare(inputs) converts the inputs once (to JAX / torch
                arrays, ...) and returns the zero-argument call that is timed. The `baseline` entry is
                the one every other result is checked against and every ratio is relative to.
    mark        "dot", "add" or None: the bandwidth mark timed alongside
    """

    name: str
    op: str
    n: int
    make_inputs: Callable[[np.random.Generator, int, np.dtype], tuple]
    impls: dict[str, Prepare]
    mark: str | None = "dot"
    group: str = "regression"
    baseline: str = "fastloss"

    @property
    def label(self) -> str:
        return f"{self.name} {self.op} n={fmt_n(self.n)}"


@dataclass
class Config:
    dtype: np.dtype
    sizes: tuple[int, ...]
    threads: int
    reference_max_n: int           # 0: no reference
    jax: Any = None                # the imported module, or None
    torch: Any = None
    extra: dict = field(default_factory=dict)


BUILDERS: list[Callable[[Config], Iterable[Workload]]] = []


def register(builder: Callable[[Config], Iterable[Workload]]):
    """Registers a function `builder(config) -> iterable of Workload`; returns it unchanged."""
    BUILDERS.append(builder)
    return builder


# The other families' workloads live in their own modules (they import this one); the regression
# losses' are below. `load_workloads` imports them, so `--losses` sees every name.
WORKLOAD_MODULES = ("_bench_classification", "_bench_multiclass", "_bench_embedding", "_bench_optim")


def load_workloads() -> None:
    for module in WORKLOAD_MODULES:
        importlib.import_module(f"fastloss.{module}")


# ---------------------------------------------------------------------------------------------
# Regression losses
# ---------------------------------------------------------------------------------------------

def _normal_pair(rng, n, dtype):
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


def _nonnegative_pair(rng, n, dtype):        # mean_squared_log_error needs x, y > -1
    return rng.exponential(1.0, n).astype(dtype), rng.exponential(1.0, n).astype(dtype)


def _poisson_log_input(rng, n, dtype):       # x = log-rate, y = counts drawn at that rate
    x = 0.5 * rng.standard_normal(n)
    return x.astype(dtype), rng.poisson(np.exp(x)).astype(dtype)


def _gaussian_triple(rng, n, dtype):         # input, target, positive variance
    x, y = _normal_pair(rng, n, dtype)
    return x, y, rng.uniform(0.5, 2.0, n).astype(dtype)


# How each loss's inputs are drawn, and which inputs are differentiated.
REGRESSION_INPUTS: dict[str, tuple[Callable, tuple[int, ...]]] = {
    "mse_loss": (_normal_pair, (0,)),
    "l1_loss": (_normal_pair, (0,)),
    "smooth_l1_loss": (_normal_pair, (0,)),
    "huber_loss": (_normal_pair, (0,)),
    "log_cosh_loss": (_normal_pair, (0,)),
    "mean_squared_log_error": (_nonnegative_pair, (0,)),
    "poisson_nll_loss": (_poisson_log_input, (0,)),
    "gaussian_nll_loss": (_gaussian_triple, (0, 2)),
}


def _r(f):
    """f(r) of the residual r = x - y, as a function of (x, y)."""
    return lambda x, y: f(x - y)


D = 1.0  # huber delta and smooth_l1 beta: the defaults

# NumPy written the way users write these losses: the textbook value, and the textbook gradient of the
# mean with respect to the input(s). value_and_grad calls both, as user code does.
NUMPY_TEXTBOOK: dict[str, tuple[Callable, Callable]] = {
    #  loss: (value, gradient)
    "mse_loss": (
        _r(lambda r: np.mean(r**2)),
        _r(lambda r: 2 * r / r.size)),
    "l1_loss": (
        _r(lambda r: np.mean(np.abs(r))),
        _r(lambda r: np.sign(r) / r.size)),
    "smooth_l1_loss": (
        _r(lambda r: np.mean(np.where(np.abs(r) < D, 0.5 * r**2 / D, np.abs(r) - 0.5 * D))),
        _r(lambda r: np.clip(r / D, -1, 1) / r.size)),
    "huber_loss": (
        _r(lambda r: np.mean(np.where(np.abs(r) < D, 0.5 * r**2, D * (np.abs(r) - 0.5 * D)))),
        _r(lambda r: np.clip(r, -D, D) / r.size)),
    "log_cosh_loss": (
        _r(lambda r: np.mean(np.log(np.cosh(r)))),
        _r(lambda r: np.tanh(r) / r.size)),
    "mean_squared_log_error": (
        lambda x, y: np.mean((np.log1p(x) - np.log1p(y)) ** 2),
        lambda x, y: 2 * (np.log1p(x) - np.log1p(y)) / (1 + x) / x.size),
    "poisson_nll_loss": (
        lambda x, y: np.mean(np.exp(x) - y * x),
        lambda x, y: (np.exp(x) - y) / x.size),
    "gaussian_nll_loss": (
        lambda x, y, v: np.mean(0.5 * (np.log(v) + (x - y) ** 2 / v)),
        lambda x, y, v: ((x - y) / v / x.size, 0.5 * (1 / v - (x - y) ** 2 / v**2) / x.size)),
}


def jax_textbook(jnp) -> dict[str, Callable]:
    """The same losses in jax.numpy (values only; JAX differentiates them)."""
    def smooth_l1(x, y):
        a = jnp.abs(x - y)
        return jnp.mean(jnp.where(a < D, 0.5 * a**2 / D, a - 0.5 * D))

    def huber(x, y):
        a = jnp.abs(x - y)
        return jnp.mean(jnp.where(a < D, 0.5 * a**2, D * (a - 0.5 * D)))

    return {
        "mse_loss": lambda x, y: jnp.mean((x - y) ** 2),
        "l1_loss": lambda x, y: jnp.mean(jnp.abs(x - y)),
        "smooth_l1_loss": smooth_l1,
        "huber_loss": huber,
        "log_cosh_loss": lambda x, y: jnp.mean(jnp.log(jnp.cosh(x - y))),
        "mean_squared_log_error": lambda x, y: jnp.mean((jnp.log1p(x) - jnp.log1p(y)) ** 2),
        "poisson_nll_loss": lambda x, y: jnp.mean(jnp.exp(x) - y * x),
        "gaussian_nll_loss": lambda x, y, v: jnp.mean(0.5 * (jnp.log(v) + (x - y) ** 2 / v)),
    }


def torch_losses(torch, F) -> dict[str, Callable]:
    """torch.nn.functional where it has the loss, else the textbook formula in torch."""
    return {
        "mse_loss": F.mse_loss,
        "l1_loss": F.l1_loss,
        "smooth_l1_loss": F.smooth_l1_loss,
        "huber_loss": F.huber_loss,
        "log_cosh_loss": lambda x, y: torch.mean(torch.log(torch.cosh(x - y))),
        "mean_squared_log_error": lambda x, y: F.mse_loss(torch.log1p(x), torch.log1p(y)),
        "poisson_nll_loss": F.poisson_nll_loss,
        "gaussian_nll_loss": F.gaussian_nll_loss,
    }


def fastloss_impl(loss, op) -> Prepare:
    if op == "value":
        return lambda a: (lambda: loss(*a))
    if op == VG_OUT:
        def prepare(a):
            _, grad = loss.value_and_grad(*a)  # buffers shaped like the gradient(s)
            out = tuple(map(np.empty_like, grad)) if isinstance(grad, tuple) else np.empty_like(grad)
            return lambda: loss.value_and_grad(*a, out=out)
        return prepare
    return lambda a: (lambda: loss.value_and_grad(*a))


def numpy_impl(value, grad, op) -> Prepare:
    if op == "value":
        return lambda a: (lambda: value(*a))
    return lambda a: (lambda: (value(*a), grad(*a)))


def jax_impl(jax, fn, op, argnums) -> Prepare:
    f = jax.jit(fn) if op == "value" else jax.jit(jax.value_and_grad(fn, argnums=argnums))

    def prepare(a):
        ja = [jax.device_put(x) for x in a]
        return lambda: jax.block_until_ready(f(*ja))

    return prepare


def torch_impl(torch, fn, op, argnums) -> Prepare:
    def prepare(a):
        ts = [torch.from_numpy(x) for x in a]
        if op == "value":
            def call():
                with torch.no_grad():
                    return fn(*ts)
            return call
        leaves = [ts[i].clone().requires_grad_(True) for i in argnums]
        for i, t in zip(argnums, leaves):
            ts[i] = t

        def call_vg():
            for t in leaves:
                t.grad = None
            loss = fn(*ts)
            loss.backward()
            grads = tuple(t.grad for t in leaves)
            return loss.detach(), grads[0] if len(grads) == 1 else grads
        return call_vg

    return prepare


# value_and_grad into a caller's buffer: the like-for-like comparison with np.add(a, b, out=c). A
# fresh gradient of 1e7 float32 (40 MB) is above glibc's largest mmap threshold, so every call gets
# new pages the kernel must zero on first touch; reusing `out` is what a training loop does.
VG_OUT = "value_and_grad(out=)"
# The regression losses whose value_and_grad the issue compares with np.add(a, b, out=c).
ADD_TARGETS = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "log_cosh_loss", "poisson_nll_loss",
               "gaussian_nll_loss")


@register
def regression_workloads(cfg: Config) -> Iterable[Workload]:
    jax_fns = jax_textbook(cfg.jax.numpy) if cfg.jax is not None else {}
    torch_fns = torch_losses(cfg.torch, cfg.torch.nn.functional) if cfg.torch is not None else {}
    for name, (make_inputs, argnums) in REGRESSION_INPUTS.items():
        loss, ref = getattr(fl, name), getattr(fl.reference, name)
        value, grad = NUMPY_TEXTBOOK[name]
        jargs = argnums[0] if len(argnums) == 1 else argnums
        for op in ("value", "value_and_grad", VG_OUT) if name in ADD_TARGETS else ("value", "value_and_grad"):
            ad_op = "value_and_grad" if op == VG_OUT else op  # what the other libraries compute
            jax_prepare = jax_impl(cfg.jax, jax_fns[name], ad_op, jargs) if name in jax_fns else None
            for n in cfg.sizes:
                impls = {"fastloss": fastloss_impl(loss, op), "numpy": numpy_impl(value, grad, ad_op)}
                if n <= cfg.reference_max_n:
                    impls["reference"] = fastloss_impl(ref, op)
                if jax_prepare is not None:
                    impls["jax"] = jax_prepare
                if name in torch_fns:
                    impls["torch"] = torch_impl(cfg.torch, torch_fns[name], ad_op, argnums)
                yield Workload(name, op, n, make_inputs, impls, mark="dot" if op == "value" else "add")


# ---------------------------------------------------------------------------------------------
# Bandwidth marks and thread scaling
# ---------------------------------------------------------------------------------------------

MARKS = {
    "dot": "np.dot(a, b): reads two streams and reduces",
    "add": "np.add(a, b, out=c): reads two streams, writes one",
}


def mark_impl(mark: str) -> Prepare:
    def prepare(inputs):
        n, dtype = inputs[0].size, inputs[0].dtype
        rng = np.random.default_rng(SEED + 1)
        a, b = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
        if mark == "dot":
            return lambda: np.dot(a, b)
        c = np.empty_like(a)
        return lambda: np.add(a, b, out=c)

    return prepare


SCALING_N = 10**7


# (name, op, n) timed with each thread count. The losses also into a reused buffer (VG_OUT): a fresh
# gradient of 10^7 elements is new pages each call, zeroed by the OS on first touch, and that part
# scales with threads by the kernel's rules, not fastloss's.
SCALING = (
    ("huber_loss", "value_and_grad", SCALING_N),
    ("huber_loss", VG_OUT, SCALING_N),
    ("log_cosh_loss", "value_and_grad", SCALING_N),
    ("log_cosh_loss", VG_OUT, SCALING_N),
    ("binary_cross_entropy_with_logits", "value_and_grad", SCALING_N),
    ("binary_cross_entropy_with_logits", VG_OUT, SCALING_N),
    ("cross_entropy", "value_and_grad", 4096 * 1000),
    ("cross_entropy", VG_OUT, 4096 * 1000),
    ("adam", "step", SCALING_N),
)


def scaling_workloads(cfg: Config, thread_counts: list[int]) -> list[Workload]:
    """fastloss on the SCALING workloads with each thread count; the baseline is 1 thread. The
    workloads are the registered ones, built for n = SCALING_N."""
    at_n = Config(dtype=cfg.dtype, sizes=(SCALING_N,), threads=cfg.threads, reference_max_n=0)
    built = {(w.name, w.op, w.n): w for b in BUILDERS for w in b(at_n)}
    out = []
    for name, op, n in SCALING:
        # An out= row is the loss's value_and_grad workload into a reused buffer (whether or not
        # the main table has that row).
        w = built.get((name, "value_and_grad" if op == VG_OUT else op, n))
        if w is None:
            continue
        own = fastloss_impl(getattr(fl, name), op) if op == VG_OUT else w.impls["fastloss"]
        impls = {}
        for t in thread_counts:
            def prepare(a, t=t, fast=own):
                call = fast(a)
                fn = call.fn if isinstance(call, Call) else call

                def before():
                    # A thread count is set once in real use: an untimed call at the new count first,
                    # so the sample times calls at a steady count, not the first one after a switch.
                    # (Right after 1-thread calls, the second worker missed a whole ~5 ms call about a
                    # third of the time here: where the scheduler puts a woken thread is its business.)
                    fl.set_num_threads(t)
                    fn()

                return Call(fn, before=before)
            impls[_threads_label(t)] = prepare
        out.append(Workload(w.name, op, w.n, w.make_inputs, impls, mark=None, group="thread_scaling",
                            baseline=_threads_label(thread_counts[0])))
    # What the memory gives: np.add(a, b, out=c) on SCALING_N elements cut into one slice per thread.
    # A streaming kernel at memory speed cannot scale further than this.
    impls = {_threads_label(t): (lambda a, t=t: _add_on_threads(*a, t)) for t in thread_counts}
    out.append(Workload("np.add", "add", SCALING_N, _normal_pair, impls, mark=None, group="thread_scaling",
                        baseline=_threads_label(thread_counts[0])))
    return out


def _add_on_threads(a, b, threads):
    """np.add(a, b, out=c) with the arrays cut into `threads` slices, each added on its own Python
    thread (NumPy releases the GIL; starting the threads costs some 0.1 ms of a call's ~5 ms)."""
    import threading

    c = np.empty_like(a)
    cuts = [len(a) * i // threads for i in range(threads + 1)]
    parts = [slice(lo, hi) for lo, hi in zip(cuts, cuts[1:])]

    def run():
        workers = [threading.Thread(target=np.add, args=(a[s], b[s]), kwargs={"out": c[s]}) for s in parts[1:]]
        for w in workers:
            w.start()
        np.add(a[parts[0]], b[parts[0]], out=c[parts[0]])
        for w in workers:
            w.join()
        return c

    return run


def _threads_label(t):
    return f"{t} thread" + ("s" if t != 1 else "")


# =============================================================================================
# Timing
# =============================================================================================

def _as_numpy_leaves(result) -> list[np.ndarray]:
    """Flattens a result (scalar, array, JAX / torch array, nested tuples) to NumPy arrays."""
    if isinstance(result, (tuple, list)):
        return [leaf for r in result for leaf in _as_numpy_leaves(r)]
    if hasattr(result, "detach"):                       # torch.Tensor
        result = result.detach().cpu().numpy()
    return [np.asarray(result)]


def compare(expected, got, rtol: float) -> tuple[bool, float, str]:
    """(agrees, worst relative difference, why not). Each array is compared with rtol and an absolute
    tolerance of rtol × its largest magnitude (gradients of a mean have many tiny entries)."""
    a, b = _as_numpy_leaves(expected), _as_numpy_leaves(got)
    if len(a) != len(b):
        return False, math.inf, f"returns {len(b)} arrays, fastloss {len(a)}"
    worst = 0.0
    for i, (e, g) in enumerate(zip(a, b)):
        if e.shape != g.shape:
            return False, math.inf, f"output {i} has shape {g.shape}, fastloss {e.shape}"
        e64, g64 = e.astype(np.float64), g.astype(np.float64)
        scale = float(np.max(np.abs(e64))) if e64.size else 0.0
        diff = np.abs(g64 - e64)
        denom = np.abs(e64) + scale
        rel = float(np.max(diff / np.where(denom > 0, denom, 1.0))) if e64.size else 0.0
        if not np.isfinite(rel):
            rel = math.inf
        worst = max(worst, rel)
        if not np.allclose(g64, e64, rtol=rtol, atol=rtol * scale, equal_nan=True):
            return False, worst, f"output {i} differs (max rel. diff {worst:.2g} > rtol {rtol:g})"
    return True, worst, ""


def _time_reps(fn, reps: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        fn()
    return time.perf_counter_ns() - t0


def calibrate(call: Call, target_ns: float) -> int:
    """The number of back-to-back calls that take at least `target_ns` (at least 1)."""
    if call.before:
        call.before()
    reps = 1
    while True:
        t = _time_reps(call.fn, reps)
        if t >= target_ns:
            return reps
        if t <= 0:
            reps *= 10
        else:
            reps = max(reps + 1, min(reps * 10, math.ceil(reps * 1.2 * target_ns / t)))


def run_workload(w: Workload, cfg: Config, repeat: int, sample_ns: float, warn: Callable[[str], None]) -> dict:
    rng = np.random.default_rng(SEED)
    inputs = w.make_inputs(rng, w.n, cfg.dtype)
    prepares = dict(w.impls)
    if w.mark:
        prepares[w.mark] = mark_impl(w.mark)
    calls = {}
    for name, prep in prepares.items():
        c = prep(inputs)
        calls[name] = c if isinstance(c, Call) else Call(c)

    # warm-up call (compiles JAX) and the agreement check against the baseline
    rtol = 1e-4 if cfg.dtype == np.float32 else 1e-9
    results = {}
    for name, c in calls.items():
        if c.before:
            c.before()
        results[name] = c.fn()
    agreement = {}
    base = results[w.baseline]
    for name in w.impls:
        if name == w.baseline:
            continue
        ok, worst, why = compare(base, results[name], rtol)
        agreement[name] = {"ok": ok, "max_rel_diff": worst, "rtol": rtol, "message": why}
        if not ok:
            warn(f"{w.label}: {name} disagrees with {w.baseline}: {why}")
    del results, base

    reps = {name: calibrate(c, sample_ns) for name, c in calls.items()}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}   # process CPU time / wall time per sample
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, c in calls.items():          # round robin: A, B, C, A, B, C, ...
                if c.before:
                    c.before()
                c0 = time.process_time_ns()
                wall = _time_reps(c.fn, reps[name])
                cpu[name].append((time.process_time_ns() - c0) / wall)
                samples[name].append(wall / reps[name])
    finally:
        if gc_was_enabled:
            gc.enable()
        fl.set_num_threads(cfg.threads)

    impls = {}
    for name, s in samples.items():
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
        impls[name] = {"median_ns": statistics.median(s), "min_ns": min(s), "q1_ns": q[0], "q3_ns": q[2],
                       "reps": reps[name], "cpu_per_wall": statistics.median(cpu[name]), "samples_ns": s}
    med = {name: v["median_ns"] for name, v in impls.items()}
    fast = med[w.baseline]
    ratios = {}
    if w.mark:
        ratios[f"{w.baseline}_over_{w.mark}"] = fast / med[w.mark]
    for name in w.impls:
        if name != w.baseline:
            ratios[f"{name}_over_{w.baseline}"] = med[name] / fast
    return {"name": w.name, "op": w.op, "n": w.n, "dtype": str(np.dtype(cfg.dtype)), "group": w.group,
            "baseline": w.baseline, "mark": w.mark, "impls": impls, "agreement": agreement, "ratios": ratios}


# =============================================================================================
# Environment
# =============================================================================================

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes on the machine have used so far (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        if fields[0] != "cpu":
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _openblas_libs():
    """ctypes handles of the OpenBLAS libraries loaded in this process (NumPy's), via /proc/self/maps."""
    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "openblas" in os.path.basename(p).lower() and ".so" in p:
                    paths.add(p)
    except OSError:
        return []
    libs = []
    for p in sorted(paths):
        try:
            libs.append(ctypes.CDLL(p))
        except OSError:
            pass
    return libs


def set_blas_threads(n: int) -> str:
    """Pins the BLAS behind np.dot to n threads (threadpoolctl if installed, else OpenBLAS via ctypes)."""
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(n, user_api="blas")
        return f"{n} (threadpoolctl)"
    except ImportError:
        pass
    for lib in _openblas_libs():
        for suffix in ("64_", ""):
            for prefix in ("scipy_openblas", "openblas"):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None:
                    setter(ctypes.c_int(n))
                    return str(getter()) if getter is not None else str(n)
    return "unknown (not OpenBLAS)"


def import_jax(dtype, threads):
    if importlib.util.find_spec("jax") is None:
        return None, "not installed"
    note = ""
    if threads == 1 and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if os.environ.get("XLA_FLAGS"):
        note = f" (XLA_FLAGS={os.environ['XLA_FLAGS']!r})"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax

        jax.config.update("jax_enable_x64", np.dtype(dtype) == np.float64)
        note += _create_jax_client_on(threads, lambda: jax.numpy.zeros(1).block_until_ready())
    except Exception as e:  # noqa: BLE001  (a broken install must not stop the benchmark)
        return None, f"unusable ({type(e).__name__}: {e})"
    return jax, f"{jax.__version__}{note}"


def _create_jax_client_on(threads, create) -> str:
    """Runs `create` (the first JAX computation, which starts XLA's CPU client and its threads) with
    the calling thread confined to `threads` of its CPUs, then lifts the confinement.

    The XLA_FLAGS above do not keep XLA's CPU runtime on one thread: measured here, jax 0.10.2 kept
    both CPUs of a 2-CPU machine busy (1.5-2.0 CPUs per wall second in its value_and_grad rows) and
    jax 0.11.2 up to 12 of 16. XLA sizes its thread pool by the CPU affinity at the client's start,
    and the pool's threads inherit that affinity (JAX's maintainers give affinity as the way to limit
    its CPU use: jax-ml/jax#1539), so JAX then runs on `threads` CPUs as fastloss, BLAS and torch do.
    """
    getaff, setaff = getattr(os, "sched_getaffinity", None), getattr(os, "sched_setaffinity", None)
    cpus = sorted(getaff(0)) if getaff is not None else []
    if setaff is None or len(cpus) <= threads:
        create()
        return ""
    before = set(os.listdir("/proc/self/task"))
    setaff(0, cpus[:threads])
    try:
        create()
    finally:
        setaff(0, cpus)
        # The new threads may run on any CPU: confined to the same ones, a JAX worker contends with
        # the Python thread that waits for it whenever the scheduler puts that thread there too.
        for tid in set(os.listdir("/proc/self/task")) - before:
            try:
                setaff(int(tid), cpus)
            except OSError:
                pass
    return f", XLA's CPU client started on {threads} of {len(cpus)} CPUs"


def import_torch(threads):
    if importlib.util.find_spec("torch") is None:
        return None, "not installed"
    try:
        import torch

        torch.set_num_threads(threads)
        cap = ""
        try:
            cap = f", cpu capability {torch.backends.cpu.get_cpu_capability()}"
        except Exception:  # noqa: BLE001
            pass
        return torch, f"{torch.__version__} ({torch.get_num_threads()} threads{cap})"
    except Exception as e:  # noqa: BLE001
        return None, f"unusable ({type(e).__name__}: {e})"


# =============================================================================================
# Formatting
# =============================================================================================

def fmt_n(n: int) -> str:
    e = round(math.log10(n)) if n > 0 else 0
    return f"1e{e}" if n > 0 and 10**e == n else str(n)


def fmt_time(ns: float) -> str:
    for unit, scale in (("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)):
        v = ns / scale
        if v < 999.5 or unit == "s":
            return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    raise AssertionError


def fmt_ratio(r: float) -> str:
    if not math.isfinite(r):
        return "—"
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×" if r < 100 else f"{r:.0f}×"


def geomean(xs):
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


COMPARED = ("numpy", "reference", "jax", "torch")
SHORT = {"reference": "ref"}


def markdown_table(rows: list[dict], compared: list[str]) -> str:
    head = ["loss", "op", "n", "fastloss", "mark", "fastloss/mark"]
    for c in compared:
        head += [c, f"vs {SHORT.get(c, c)}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "--:" for i in range(len(head))) + "|"]
    for r in rows:
        im = r["impls"]
        fast = im["fastloss"]["median_ns"]
        cells = [r["name"], r["op"], fmt_n(r["n"]), fmt_time(fast)]
        if r["mark"]:
            cells += [f"{r['mark']} {fmt_time(im[r['mark']]['median_ns'])}",
                      fmt_ratio(fast / im[r["mark"]]["median_ns"]) + f" {r['mark']}"]
        else:
            cells += ["", ""]
        for c in compared:
            if c in im:
                bad = not r["agreement"].get(c, {"ok": True})["ok"]
                cells += [fmt_time(im[c]["median_ns"]), fmt_ratio(im[c]["median_ns"] / fast) + (" ⚠" if bad else "")]
            else:
                cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
        for c, a in r["agreement"].items():
            if not a["ok"]:
                warn_cells = [f"⚠ {r['name']}", r["op"], fmt_n(r["n"]),
                              f"**{c} result differs from fastloss**: {a['message']}"]
                lines.append("| " + " | ".join(warn_cells + [""] * (len(head) - len(warn_cells))) + " |")
    return "\n".join(lines)


def summary_lines(rows: list[dict], compared: list[str]) -> list[str]:
    out = []
    for c in compared:
        parts = []
        for label, keep in (("all", lambda n: True), ("n ≤ 1e5 (in cache)", lambda n: n <= 10**5),
                            ("n ≥ 1e6 (DRAM)", lambda n: n >= 10**6)):
            for op in ("value", "value_and_grad", VG_OUT):
                xs = [r["ratios"][f"{c}_over_fastloss"] for r in rows
                      if r["op"] == op and keep(r["n"]) and f"{c}_over_fastloss" in r["ratios"]]
                if xs and label != "all":
                    parts.append(f"{op} {label} {fmt_ratio(geomean(xs))}")
            xs = [r["ratios"][f"{c}_over_fastloss"] for r in rows if keep(r["n"]) and f"{c}_over_fastloss" in r["ratios"]]
            if xs and label == "all":
                parts.insert(0, f"all {fmt_ratio(geomean(xs))}")
        if parts:
            out.append(f"- speedup vs {c} (geometric mean): " + "; ".join(parts))
    return out


def _short_name(name: str) -> str:
    return "msle" if name == "mean_squared_log_error" else name.replace("_loss", "")


def plot(rows: list[dict], compared: list[str], path: str, title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed; no chart drawn (pip install matplotlib)"
    import textwrap

    compared = [c for c in compared if any(c in r["impls"] for r in rows)]
    ops = list(dict.fromkeys(r["op"] for r in rows))
    per_op = max(sum(r["op"] == op for r in rows) for op in ops)
    fig, axes = plt.subplots(len(ops), 1, squeeze=False,
                             figsize=(max(8.0, 0.22 * per_op * max(1, len(compared)) + 2), 4.2 * len(ops) + 0.8))
    width = 0.8 / max(1, len(compared))
    for ax, op in zip(axes[:, 0], ops):
        sel = [r for r in rows if r["op"] == op]
        for k, c in enumerate(compared):
            xs = [i + (k - (len(compared) - 1) / 2) * width for i in range(len(sel))]
            ys = [r["ratios"].get(f"{c}_over_fastloss", math.nan) for r in sel]
            ax.bar(xs, ys, width, label=f"{c} time ÷ fastloss time")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("fastloss speedup (log)")
        ax.set_title(op, fontsize=10)
        ax.set_xticks(range(len(sel)))
        ax.set_xticklabels([f"{_short_name(r['name'])}\n{fmt_n(r['n'])}" for r in sel], rotation=90,
                           fontsize=7)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, 160)), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# =============================================================================================
# Command line
# =============================================================================================

def report(header, rows, scaling_rows, compared, repeat, sample_ms, background, warnings, elapsed,
           interrupted) -> str:
    """The Markdown report: header, main table, notes and summary, thread-scaling table, warnings."""
    warnings = list(warnings)
    out = [header, ""]
    if rows:
        out.append(markdown_table(rows, compared))
        out.append("")
        out.append(f"Medians of {repeat} interleaved samples (each ≥ {sample_ms:g} ms of back-to-back calls). "
                   "fastloss/mark = fastloss time ÷ bandwidth mark on the same n and dtype "
                   f"(dot = {MARKS['dot']}; add = {MARKS['add']}); "
                   "vs X = X time ÷ fastloss time (> 1: fastloss is faster). numpy = the textbook NumPy "
                   "formulas (value_and_grad = value + gradient, as user code computes them).")
        out.append("")
        out += summary_lines(rows, compared)
    spreads = [((v["q3_ns"] - v["q1_ns"]) / v["median_ns"], f"{r['name']} {r['op']} n={fmt_n(r['n'])} {name}")
               for r in rows + scaling_rows for name, v in r["impls"].items()]
    if spreads:
        out.append(f"- sample spread (interquartile range ÷ median): median "
                   f"{statistics.median(s for s, _ in spreads):.0%}, largest {max(s for s, _ in spreads):.0%}")
    busy = {}  # implementation -> CPU/wall of the rows where it kept more than 1.2 CPUs busy
    for r in rows:
        for name, v in r["impls"].items():
            busy.setdefault(name, [0, []])[0] += 1
            if v["cpu_per_wall"] > 1.2:
                busy[name][1].append(v["cpu_per_wall"])
    over = [f"{name} in {len(c)} of {total} rows (up to {max(c):.2f})" for name, (total, c) in busy.items() if c]
    if over:
        out.append("- more than 1.2 CPUs busy while timed (process CPU time ÷ wall time, median of the samples; "
                   "it counts every thread, also another library's still spinning after its own sample): "
                   + "; ".join(over))
    if background is not None:
        out.append(f"- background load: other processes kept {background:.2f} of {os.cpu_count()} CPUs busy "
                   "on average during the run")
        if background > 0.25:
            warnings.append(f"other processes used {background:.2f} CPUs during the run: timings (and thread "
                            "scaling above all) are disturbed; rerun on a quiet machine")
    noisy = [label for s, label in spreads if s > 0.5]
    if noisy:
        warnings.append(f"{len(noisy)} of {len(spreads)} timings have an interquartile range above half their "
                        f"median (a busy or throttled machine?): {', '.join(noisy[:6])}"
                        + (", ..." if len(noisy) > 6 else ""))
    if scaling_rows:
        labels = list(scaling_rows[0]["impls"])
        base = scaling_rows[0]["baseline"]
        others = [lab for lab in labels if lab != base]
        out += ["", f"Thread scaling: fastloss, {scaling_rows[0]['dtype']}", ""]
        head = ["workload", "op", "n"] + labels + [f"speedup {lab}" for lab in others] + [f"CPU/wall {lab}" for lab in others]
        out.append("| " + " | ".join(head) + " |")
        out.append("|---|---|" + "|".join("--:" for _ in head[2:]) + "|")
        for r in scaling_rows:
            t1 = r["impls"][base]["median_ns"]
            cells = [r["name"], r["op"], fmt_n(r["n"])] + [fmt_time(r["impls"][lab]["median_ns"]) for lab in labels]
            cells += [fmt_ratio(t1 / r["impls"][lab]["median_ns"]) for lab in others]
            cells += [f"{r['impls'][lab]['cpu_per_wall']:.2f}" for lab in others]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", "CPU/wall: process CPU time ÷ wall time while timing (about how many cores were busy). "
                "np.add: the array cut into one slice per thread, each added on its own thread: how far "
                "the memory lets a streaming kernel scale."]
    if warnings:
        out += ["", "Warnings:"] + [f"- {w}" for w in warnings]
    if interrupted:
        out += ["", "(interrupted: partial results)"]
    out += ["", f"({len(rows) + len(scaling_rows)} workloads in {elapsed:.0f} s)"]
    return "\n".join(out)


def _count(text: str, least: int = 1) -> int:
    """An element count, written as an integer or in e-notation (1e6). argparse names the option."""
    try:
        v = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a number (e.g. 1000 or 1e6)") from None
    if v < least or v != int(v):
        kind = "a positive integer" if least == 1 else f"an integer of at least {least}"
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not {kind}")
    return int(v)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(_count(part) for part in text.split(","))


def _max_n(text: str) -> int:
    return _count(text, least=0)  # 0: never time the reference, as --no-reference


def _positive_ms(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default: float32")
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="comma-separated element counts (default: 1e3,1e5,1e6,1e7)")
    p.add_argument("--quick", action="store_true",
                   help=f"short run: n in 1e3,1e5 and {QUICK_REPEAT} samples (unless --sizes/--repeat given)")
    p.add_argument("--losses", default=None,
                   help="comma-separated workload names to run (default: all; see --list)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="threads for fastloss (and BLAS, torch, XLA), default 1")
    p.add_argument("--repeat", type=_positive_int, default=None,
                   help=f"samples per implementation (default {DEFAULT_REPEAT}, {QUICK_REPEAT} with --quick)")
    p.add_argument("--sample-ms", type=_positive_ms, default=SAMPLE_SECONDS * 1e3,
                   help="minimum duration of one sample in ms (default 2)")
    p.add_argument("--no-reference", action="store_true", help="don't time fastloss.reference")
    p.add_argument("--reference-max-n", type=_max_n, default=REFERENCE_MAX_N,
                   help="time fastloss.reference only up to this n (default 1e6; it is slow)")
    p.add_argument("--no-jax", action="store_true", help="don't time JAX even if installed")
    p.add_argument("--no-torch", action="store_true", help="don't time PyTorch even if installed")
    p.add_argument("--thread-scaling", action="store_true",
                   help="also time fastloss with 1 and 2 threads (and more, up to the CPU count, in powers "
                        "of 2): value_and_grad at n=1e7 of huber_loss, log_cosh_loss and "
                        "binary_cross_entropy_with_logits, cross_entropy 4096x1000 (each also with out=), "
                        "and an Adam step on 1e7 parameters")
    p.add_argument("--json", metavar="PATH", help="write every sample, median, ratio and version here")
    p.add_argument("--plot", metavar="PATH", help="draw a bar chart of the speedups (needs matplotlib)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")


def prime_allocator() -> None:
    """Puts the C allocator in the state of a process that has already freed a large array.

    glibc's malloc serves blocks above its mmap threshold (128 KiB at start) with fresh, page-faulting
    mmap()s, and raises that threshold (up to 32 MiB) the first time such a block is freed. Without
    this, NumPy temporaries of 1e5-1e6 elements run up to 10x slower in the first workloads than in
    later ones, making results depend on the order workloads run in.
    """
    block = np.ones(30 * 2**20 // 8)
    del block


def run(args: argparse.Namespace) -> int:
    dtype = np.dtype(args.dtype)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    threads = args.threads

    prime_allocator()
    fl.set_num_threads(threads)
    blas_threads = set_blas_threads(threads)
    jax, jax_info = (None, "skipped (--no-jax)") if args.no_jax else import_jax(dtype, threads)
    torch, torch_info = (None, "skipped (--no-torch)") if args.no_torch else import_torch(threads)
    cfg = Config(dtype=dtype, sizes=tuple(sizes), threads=threads,
                 reference_max_n=0 if args.no_reference else args.reference_max_n, jax=jax, torch=torch)

    load_workloads()
    workloads = [w for b in BUILDERS for w in b(cfg)]
    if args.losses:
        wanted = [s.strip() for s in args.losses.split(",") if s.strip()]
        known = list(dict.fromkeys(w.name for w in workloads))
        unknown = [s for s in wanted if s not in known]
        if unknown:
            print(f"fastloss bench: --losses: unknown {', '.join(unknown)}; known: {', '.join(known)}",
                  file=sys.stderr)
            return 2
        workloads = [w for w in workloads if w.name in wanted]
    if args.thread_scaling:
        counts = [1, 2]
        cpus = os.cpu_count() or 1
        while counts[-1] * 2 <= cpus:
            counts.append(counts[-1] * 2)
        scaling = scaling_workloads(cfg, counts)
    else:
        scaling = []
    if args.list:
        for w in workloads + scaling:
            print(f"{w.group:16} {w.label:45} {', '.join(w.impls)}" + (f" + mark {w.mark}" if w.mark else ""))
        return 0

    facts = {
        "fastloss": fl.__version__, "simd_level": fl.simd_level(), "threads": threads, "dtype": str(dtype),
        "numpy": np.__version__, "blas_threads": blas_threads, "jax": jax_info, "torch": torch_info,
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }
    header = (f"fastloss {facts['fastloss']} bench · simd {facts['simd_level']} · threads {threads} · {dtype} · "
              f"numpy {np.__version__} (BLAS threads {blas_threads}) · jax {jax_info} · torch {torch_info} · "
              f"CPU {facts['cpu']} ({facts['logical_cpus']} logical CPUs) · Python {facts['python']} · "
              f"{facts['platform']}")

    warnings: list[str] = []

    def warn(msg):
        warnings.append(msg)
        print(f"  WARNING: {msg}", file=sys.stderr, flush=True)

    sample_ns = args.sample_ms * 1e6
    everything = workloads + scaling
    rows, scaling_rows = [], []
    t_start = time.perf_counter()
    busy_start, own_start = _busy_cpu_seconds(), time.process_time()
    interrupted = False
    print(header, file=sys.stderr, flush=True)
    for i, w in enumerate(everything, 1):
        print(f"[{i}/{len(everything)}] {w.label} {dtype} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            r = run_workload(w, cfg, repeat, sample_ns, warn)
        except KeyboardInterrupt:
            print(" interrupted", file=sys.stderr)
            interrupted = True
            break
        (rows if w.group != "thread_scaling" else scaling_rows).append(r)
        note = f" {w.baseline} {fmt_time(r['impls'][w.baseline]['median_ns'])}"
        for k, v in r["ratios"].items():
            other = k.split("_over_")[0]
            if w.group == "thread_scaling":
                note += f", {other} {fmt_ratio(1 / v)} faster"
            elif other == "numpy":
                note += f", {fmt_ratio(v)} vs numpy"
        print(f"{note} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_start
    busy_end = _busy_cpu_seconds()
    background = None
    if busy_start is not None and busy_end is not None and elapsed > 0:
        background = max(0.0, (busy_end - busy_start - (time.process_time() - own_start)) / elapsed)

    compared = [c for c in COMPARED if any(c in r["impls"] for r in rows)]
    text = report(header, rows, scaling_rows, compared, repeat, args.sample_ms, background, warnings, elapsed,
                  interrupted)
    print(text, flush=True)

    if args.json:
        doc = {"machine": facts, "header": header,
               "config": {"sizes": list(sizes), "repeat": repeat, "sample_ms": args.sample_ms,
                          "reference_max_n": cfg.reference_max_n, "seed": SEED,
                          "xla_flags": os.environ.get("XLA_FLAGS") if jax is not None else None},
               "marks": MARKS, "workloads": rows, "thread_scaling": scaling_rows, "warnings": warnings,
               "elapsed_s": elapsed, "background_cpus": background, "interrupted": interrupted}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=float)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot and rows:
        problem = plot(rows, compared, args.plot, header)
        print(problem or f"wrote {args.plot}", file=sys.stderr)
    return 130 if interrupted else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point taking the bench options directly (used by benches/bench_losses.py)."""
    p = argparse.ArgumentParser(prog="fastloss bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))
