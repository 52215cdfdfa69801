"""Benchmark workloads for the multiclass family (registered with `fastloss.bench.register`)."""

from __future__ import annotations
