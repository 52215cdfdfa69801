"""Fork safety: a process forked after fastloss's thread pool has run can still use threads.

A rayon pool's worker threads do not survive fork(); fastloss must notice (it records the pool's pid)
and build a fresh pool in the child instead of waiting on threads that do not exist there. Each test
uses 2 threads on a large array in the parent, forks, runs a large threaded loss in the child and
requires the child to exit 0 (results bitwise equal to the parent's) within a timeout.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

import fastloss as fl

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

N = 1_000_003  # well past the 131072-element threading threshold
TIMEOUT_S = 60


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal(N), rng.standard_normal(N)


def _child_ok(x, y, expected, threads):
    fl.set_num_threads(threads)
    v, g = fl.mse_loss.value_and_grad(x, y)
    v2, g2 = fl.huber_loss.value_and_grad(x.astype(np.float32), y.astype(np.float32), reduction="sum")
    return v == expected[0] and np.array_equal(g, expected[1]) and np.isfinite(v2) and g2.shape == (N,)


def _wait(pid):
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish within {TIMEOUT_S} s (deadlocked thread pool?)")
        time.sleep(0.02)


@pytest.mark.parametrize("child_threads", [2, 3, 1])
def test_os_fork_after_threaded_work(child_threads, restore_threads):
    x, y = _data()
    fl.set_num_threads(2)
    expected = fl.mse_loss.value_and_grad(x, y)  # runs on the pool
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            code = 0 if _child_ok(x, y, expected, child_threads) else 2
        finally:
            os._exit(code)
    status = _wait(pid)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status) if os.WIFSIGNALED(status) else '?'}"
    assert os.WEXITSTATUS(status) == 0, "the child computed different results (exit 2) or raised (exit 1)"
    # The parent's pool still works after the fork.
    assert_same = fl.mse_loss.value_and_grad(x, y)
    assert assert_same[0] == expected[0] and np.array_equal(assert_same[1], expected[1])


def _mp_child(x, y, expected, queue):
    queue.put(bool(_child_ok(x, y, expected, 2)))


def test_multiprocessing_fork_context(restore_threads):
    x, y = _data()
    fl.set_num_threads(2)
    expected = fl.mse_loss.value_and_grad(x, y)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_mp_child, args=(x, y, expected, queue))
    proc.start()
    try:
        ok = queue.get(timeout=TIMEOUT_S)
    finally:
        proc.join(TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert ok
    assert proc.exitcode == 0
