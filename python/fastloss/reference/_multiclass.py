"""The multiclass losses in plain NumPy."""

from __future__ import annotations

from .._loss import losses

LOSSES = losses("fastloss.reference")
