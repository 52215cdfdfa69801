"""Benchmark workloads for the classification family (registered with `fastloss.bench.register`)."""

from __future__ import annotations
