"""Benchmark workloads for the optim family (registered with `fastloss.bench.register`)."""

from __future__ import annotations
