"""Steady-state timings in loops of back-to-back calls, the figures the README and the issue notes
quote beside the bench's interleaved medians:

    python benches/loops.py            # every part
    python benches/loops.py threads    # or some: threads, marks, cross_entropy, multiclass, alloc, numpy, pause

Every part runs fastloss on 1 thread, as the bench and the issues' targets do, except where it says
otherwise (threads, pause).

- threads: value_and_grad into a reused buffer (and an Adam step) at 10^7 with 1, 2, 4, ...
  threads up to the CPU count, each count held for a second of calls (twice, best kept): how the
  kernels scale once the pool is awake, without the bench's switching between implementations and
  thread counts.
- marks: mse_loss's value and value_and_grad(out=) at 10^7 against np.dot and np.add in the same
  loop form.
- cross_entropy: value_and_grad on the bench's three shapes (4096×1000, 65536×10, 256×32000), and
  32768×20 (the tile kernel with transposes copied element by element, 16 to 31 classes).
- multiclass: multi_margin_loss and multilabel_soft_margin_loss on the bench's 10000×100, value and
  value_and_grad, against the bench's textbook NumPy forms, alternating in rounds.
- alloc: mse_loss value_and_grad at 10^7 with its gradient from the buffer cache (warm after the
  first call), with the cache off (fresh memory every call: page faults and the OS zeroing pages),
  and into out=; np.empty(n).fill(1) beside them for what fresh NumPy memory costs.
- numpy: NumPy's float32 exp, log, log1p and cosh per element at 10^6 (into a buffer). Run it again
  with NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL" to see them without AVX-512.
- pause: cross_entropy 4096×1000 on 2 threads, six calls after each of eight 40 ms sleeps against
  48 calls back to back, with how many calls kept only about one CPU busy (process CPU time / wall
  time below 1.3): on the 2-CPU VM of the README's table the second worker often missed whole calls
  right after a pause, and never back to back.
"""

import os
import sys
import time
import timeit

import numpy as np

import fastloss as fl


def held(f, seconds=1.0):
    """Seconds per call of f, in a loop of calls lasting `seconds`."""
    f()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        f()
        calls += 1
    return (time.perf_counter() - start) / calls


def threads(rng):
    n = 10**7
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    labels = (rng.random(n) < 0.5).astype(np.float32)
    logits = rng.standard_normal((4096, 1000)).astype(np.float32)
    classes = rng.integers(0, 1000, 4096)
    g, g2 = np.empty_like(a), np.empty_like(logits)
    params, grads = [a.copy()], [b * 1e-3]
    adam = fl.optim.Adam(params, lr=1e-4)
    cases = {
        "huber_loss value_and_grad(out=) 1e7": lambda: fl.huber_loss.value_and_grad(a, b, out=g),
        "log_cosh_loss value_and_grad(out=) 1e7": lambda: fl.log_cosh_loss.value_and_grad(a, b, out=g),
        "binary_cross_entropy_with_logits value_and_grad(out=) 1e7":
            lambda: fl.binary_cross_entropy_with_logits.value_and_grad(a, labels, out=g),
        "cross_entropy value_and_grad(out=) 4096x1000": lambda: fl.cross_entropy.value_and_grad(logits, classes, out=g2),
        "adam step 1e7": lambda: adam.step(grads),
    }
    counts = [1, 2]
    while counts[-1] * 2 <= (os.cpu_count() or 1):
        counts.append(counts[-1] * 2)
    before = fl.get_num_threads()
    try:
        for name, f in cases.items():
            best = {}
            for t in counts + counts:
                fl.set_num_threads(t)
                best[t] = min(best.get(t, float("inf")), held(f))
            print(f"{name}: " + ", ".join(f"{t} {'thread' if t == 1 else 'threads'} {best[t] * 1e3:.2f} ms"
                                         + ("" if t == 1 else f" ({best[1] / best[t]:.2f}x)") for t in counts))
    finally:
        fl.set_num_threads(before)


def marks(rng):
    n = 10**7
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    c = np.empty_like(a)
    cases = {
        "np.dot": lambda: np.dot(a, b),
        "mse_loss value": lambda: fl.mse_loss(a, b),
        "np.add(out=)": lambda: np.add(a, b, out=c),
        "mse_loss value_and_grad(out=)": lambda: fl.mse_loss.value_and_grad(a, b, out=c),
    }
    for _ in range(3):
        print("  ".join(f"{k} {min(timeit.repeat(f, number=5, repeat=5)) / 5 * 1e3:.2f} ms" for k, f in cases.items()))


def cross_entropy(rng):
    for n, c in ((4096, 1000), (65536, 10), (256, 32000), (32768, 20)):
        x = rng.standard_normal((n, c)).astype(np.float32)
        y = rng.integers(0, c, n)
        t = min(timeit.repeat(lambda: fl.cross_entropy.value_and_grad(x, y), number=10, repeat=7)) / 10
        print(f"cross_entropy value_and_grad {n}x{c}: {t * 1e3:.3f} ms")


def multiclass(rng):
    from fastloss import _bench_multiclass as bm

    shape = bm.OTHER_SHAPE
    cases = (
        ("multi_margin_loss", bm._logits_and_labels(shape), bm._mm_value, bm._mm_grad),
        ("multilabel_soft_margin_loss", bm._multilabel_inputs(shape), bm._ml_value, bm._ml_grad),
    )
    for name, make, value, grad in cases:
        x, y = make(rng, 0, np.float32)
        loss = getattr(fl, name)
        timed = {
            "value": lambda: loss(x, y),
            "numpy value": lambda: value(x, y),
            "value_and_grad": lambda: loss.value_and_grad(x, y),
            "numpy value_and_grad": lambda: (value(x, y), grad(x, y)),
        }
        for _ in range(3):
            ms = {k: min(timeit.repeat(f, number=10, repeat=5)) / 10 * 1e3 for k, f in timed.items()}
            print(f"{name} {shape[0]}x{shape[1]}: " + "  ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
                  + f"  (NumPy/fastloss {ms['numpy value'] / ms['value']:.2f} / "
                  f"{ms['numpy value_and_grad'] / ms['value_and_grad']:.2f})")


def alloc(rng):
    n = 10**7
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    g = np.empty_like(a)
    limit = fl.set_buffer_cache(0)
    fl.set_buffer_cache(limit)
    cases = {
        "cached": lambda: fl.mse_loss.value_and_grad(a, b),
        "cache off": lambda: fl.mse_loss.value_and_grad(a, b),
        "out=": lambda: fl.mse_loss.value_and_grad(a, b, out=g),
        "np.empty(n).fill(1)": lambda: np.empty(n, np.float32).fill(1),
    }
    try:
        for _ in range(3):
            ms = {}
            for k, f in cases.items():
                fl.set_buffer_cache(0 if k == "cache off" else limit)
                ms[k] = min(timeit.repeat(f, number=5, repeat=5)) / 5 * 1e3
            print("mse_loss value_and_grad 1e7: " + "  ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
    finally:
        fl.set_buffer_cache(limit)


def numpy_functions(rng):
    x = (rng.random(10**6) + 0.5).astype(np.float32)
    out = np.empty_like(x)
    times = {f.__name__: min(timeit.repeat(lambda f=f: f(x, out=out), number=20, repeat=7)) / 20 / x.size * 1e9
             for f in (np.exp, np.log, np.log1p, np.cosh)}
    print("NumPy float32 at 1e6, ns per element: " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))


def pause(rng):
    logits = rng.standard_normal((4096, 1000)).astype(np.float32)
    classes = rng.integers(0, 1000, 4096)
    g = np.empty_like(logits)

    def call():
        cpu, wall = time.process_time(), time.perf_counter()
        fl.cross_entropy.value_and_grad(logits, classes, out=g)
        wall = time.perf_counter() - wall
        return wall, (time.process_time() - cpu) / wall

    before = fl.get_num_threads()
    try:
        fl.set_num_threads(2)
        call()
        for label, sleep in (("after a 40 ms pause", 0.04), ("back to back", 0.0)):
            calls = []
            for _ in range(8):
                time.sleep(sleep)
                calls += [call() for _ in range(6)]
            walls = sorted(w for w, _ in calls)
            one_cpu = sum(busy < 1.3 for _, busy in calls)
            print(f"cross_entropy 4096x1000, 2 threads, {label}: median {walls[len(walls) // 2] * 1e3:.2f} ms, "
                  f"{one_cpu} of {len(calls)} calls with CPU/wall < 1.3")
    finally:
        fl.set_num_threads(before)


PARTS = {"threads": threads, "marks": marks, "cross_entropy": cross_entropy, "multiclass": multiclass,
         "alloc": alloc, "numpy": numpy_functions, "pause": pause}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(PARTS)
    unknown = [w for w in wanted if w not in PARTS]
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    fl.set_num_threads(1)
    print(f"fastloss {fl.__version__} · simd {fl.simd_level()} · threads 1 · numpy {np.__version__}")
    for w in wanted:
        PARTS[w](np.random.default_rng(0))
