"""The pure-NumPy twin of fastloss: same names, signatures and semantics, written for reading.

This module is the test oracle. Each loss computes its per-element value and derivative with the
textbook formula in float64 (whatever the input dtype), reduces with NumPy, and returns results in
the computation dtype, so a float32 result here is the float64 truth rounded once. Argument checking
is shared with the fast implementation (`fastloss._args`), so both raise the same exceptions.
"""

from __future__ import annotations

from . import _classification, _embedding, _multiclass, _regression
from . import optim

LOSSES = {**_regression.LOSSES, **_classification.LOSSES, **_multiclass.LOSSES, **_embedding.LOSSES}
globals().update(LOSSES)

__all__ = list(LOSSES)
