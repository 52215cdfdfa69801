"""Computes fastloss's results on `helpers.simd_cases()` and saves them to an .npz file.

Run by test_determinism.py in a subprocess with FASTLOSS_SIMD set (the level is fixed at import):
    python simd_worker.py OUT.npz
The file also records `simd_level` under the key "__level__".
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastloss as fl  # noqa: E402
from helpers import SPECS, simd_cases  # noqa: E402


def main(path):
    out = {"__level__": np.array(fl.simd_level())}
    with np.errstate(all="ignore"):
        for key, name, args, kwargs in simd_cases():
            value, grads = SPECS[name].fast.value_and_grad(*args, **kwargs)
            out[f"{key}/value"] = np.asarray(value)
            for i, g in enumerate(grads if isinstance(grads, tuple) else (grads,)):
                out[f"{key}/grad{i}"] = g
    np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
