"""The classification losses on the compiled kernels."""

from __future__ import annotations

from ._loss import losses

LOSSES = losses("fastloss")
