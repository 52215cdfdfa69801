"""pytest configuration shared by every test module: hypothesis profiles and the thread-count fixture.

Hypothesis profiles (select with HYPOTHESIS_PROFILE=<name>):
- "default": moderate example counts, no deadline (kernels may wake a thread pool);
- "ci": the same, derandomized, for reproducible CI runs;
- "thorough": many more examples, for hunting tolerance or kernel bugs locally.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import fastloss as fl

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               print_blob=True)
settings.register_profile("default", max_examples=100, **_common)
settings.register_profile("ci", max_examples=100, derandomize=True, **_common)
settings.register_profile("thorough", max_examples=3000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def restore_threads():
    """Restores fastloss's thread count after a test that changes it."""
    n = fl.get_num_threads()
    yield n
    fl.set_num_threads(n)


@pytest.fixture(params=["fastloss", "reference"])
def impl(request):
    """fastloss and its NumPy twin: tests of the API contract run on both."""
    return fl if request.param == "fastloss" else fl.reference
