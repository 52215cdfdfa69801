"""Large result arrays come from fastloss's cache of freed buffers (see src/python/buffers.rs).

- they are ordinary writable C-contiguous arrays, independent of each other;
- a freed one is reused for the next result of the same size, and never while it is alive;
- `fl.set_buffer_cache` sets the cache's limit (0 turns it off) and validates its argument.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastloss as fl

N = 1 << 19  # 2 MiB of float32: above the 1 MiB threshold


@pytest.fixture
def cache_limit():
    previous = fl.set_buffer_cache(1 << 28)
    yield
    fl.set_buffer_cache(previous)


def _inputs(dtype=np.float32):
    rng = np.random.default_rng(3)
    return rng.normal(size=N).astype(dtype), rng.normal(size=N).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_gradients_are_plain_independent_arrays(cache_limit, dtype):
    x, y = _inputs(dtype)
    g1 = fl.mse_loss.grad(x, y)
    g2 = fl.huber_loss.grad(x, y, reduction="sum")
    assert g1.dtype == dtype and g1.shape == x.shape and g1.flags.c_contiguous and g1.flags.writeable
    assert not np.shares_memory(g1, g2)
    np.testing.assert_array_equal(g1, fl.reference.mse_loss.grad(x, y))
    g1[:] = 7  # writable, and writing one leaves the other alone
    np.testing.assert_array_equal(g2, np.clip(x - y, -1, 1).astype(dtype))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(g1)), g1)


def test_freed_buffers_are_reused_not_shared(cache_limit):
    x, y = _inputs()
    g = fl.mse_loss.grad(x, y)
    address = g.__array_interface__["data"][0]
    expected = g.copy()
    del g
    again = fl.mse_loss.grad(x, y)
    assert again.__array_interface__["data"][0] == address  # warm memory reused
    np.testing.assert_array_equal(again, expected)
    other = fl.mse_loss.grad(x, y)  # `again` is alive: a different buffer
    assert not np.shares_memory(again, other)


def test_views_keep_the_buffer_alive(cache_limit):
    x, y = _inputs()
    view = fl.mse_loss.grad(x, y)[::2]
    expected = view.copy()
    fl.l1_loss.grad(x, y)  # would reuse the buffer if the view had not kept it
    np.testing.assert_array_equal(view, expected)


def test_a_zero_limit_turns_the_cache_off(cache_limit):
    x, y = _inputs()
    assert fl.set_buffer_cache(0) == 1 << 28
    g = fl.mse_loss.grad(x, y)
    np.testing.assert_array_equal(g, fl.reference.mse_loss.grad(x, y))


def test_set_buffer_cache_validates(cache_limit):
    for bad in (-1, 2**63):
        with pytest.raises(ValueError, match="max_bytes"):
            fl.set_buffer_cache(bad)
    for bad in (1.5, "1", None, True):
        with pytest.raises(TypeError, match="max_bytes"):
            fl.set_buffer_cache(bad)
    assert fl.set_buffer_cache(1 << 20) == 1 << 28
