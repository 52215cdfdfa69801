"""Benchmark workloads for the embedding family (registered with `fastloss.bench.register`)."""

from __future__ import annotations
