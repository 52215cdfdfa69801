"""fastloss: fast exact loss functions, gradients and optimizer steps for NumPy arrays.

Every loss `fl.<name>` is called as `fl.<name>(*inputs, **options)` for the value,
`fl.<name>.grad(...)` for the gradient and `fl.<name>.value_and_grad(...)` for both from one
fused pass, with PyTorch's semantics (see API.md). `fastloss.reference` has the same API in
plain NumPy.
"""

from __future__ import annotations

import os as _os

import numpy as _np

from . import _core
from . import _classification, _embedding, _multiclass, _regression

__version__ = "0.1.0"

MAX_THREADS = 4096

_threads_env = _os.environ.get("FASTLOSS_NUM_THREADS")
if _threads_env is not None and not (_threads_env.strip().isdigit() and 1 <= int(_threads_env) <= MAX_THREADS):
    raise ValueError(f"FASTLOSS_NUM_THREADS={_threads_env!r} is not a thread count; use an integer in 1..{MAX_THREADS}")

_simd_env = _os.environ.get("FASTLOSS_SIMD")
if _simd_env is not None and _simd_env.strip().lower() not in ("avx512", "avx2", "sse2", "neon", "scalar", "baseline"):
    raise ValueError(
        f"FASTLOSS_SIMD={_simd_env!r} is not a SIMD level; use one of avx512, avx2, sse2, neon, scalar"
    )

_LOSSES = {**_regression.LOSSES, **_classification.LOSSES, **_multiclass.LOSSES, **_embedding.LOSSES}
globals().update(_LOSSES)


def simd_level() -> str:
    """The instruction set kernels use: 'avx512', 'avx2', 'sse2', 'neon' or 'scalar'."""
    return _core.simd_level()


def get_num_threads() -> int:
    """The number of threads kernels may use (default: FASTLOSS_NUM_THREADS, else all cores)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the number of threads kernels may use; results are bitwise identical for any n."""
    import operator

    if isinstance(n, (bool, _np.bool_)):
        raise TypeError("set_num_threads: n must be an integer, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be in 1..{MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def set_buffer_cache(max_bytes: int) -> int:
    """Sets how many bytes of freed large result arrays (≥ 1 MiB) fastloss keeps for reuse; returns
    the previous limit. The default, 256 MiB, lets a loop that drops last step's gradient reuse warm
    memory instead of paying for fresh pages; 0 turns the cache off."""
    import operator

    if isinstance(max_bytes, (bool, _np.bool_)):
        raise TypeError("set_buffer_cache: max_bytes must be an integer, got bool")
    try:
        max_bytes = operator.index(max_bytes)
    except TypeError:
        raise TypeError(f"set_buffer_cache: max_bytes must be an integer, got {type(max_bytes).__name__}") from None
    if not 0 <= max_bytes < 2**63:
        raise ValueError(f"set_buffer_cache: max_bytes must be in 0..2**63, got {max_bytes}")
    return _core.set_buffer_cache_limit(max_bytes)


from . import optim, reference  # noqa: E402  (they import the package's helpers)

__all__ = [
    *_LOSSES,
    "simd_level",
    "get_num_threads",
    "set_num_threads",
    "set_buffer_cache",
    "optim",
    "reference",
]
