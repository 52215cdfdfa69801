"""Smoke tests of `python -m fastloss bench` (the README's main command): it runs, every
implementation agrees with fastloss, and the table and the JSON say what was measured. Timings
are not checked here (speed is measured by the bench itself, not asserted in tests)."""

import json
import os
import threading

import numpy as np
import pytest

import fastloss as fl
from fastloss import bench


def test_quick_run_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    losses = "mse_loss,huber_loss,cross_entropy,binary_cross_entropy_with_logits,triplet_margin_loss,adam"
    code = bench.main(["--quick", "--sizes", "1e3", "--repeat", "1", "--sample-ms", "0.1", "--no-jax",
                       "--no-torch", "--losses", losses, "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| loss | op | n |" in text
    for name in losses.split(","):
        assert f"| {name} |" in text
    data = json.loads(out.read_text())
    assert data["workloads"]
    disagreements = [(r["name"], r["op"], k) for r in data["workloads"]
                     for k, a in r.get("agreement", {}).items() if not a.get("ok", True)]
    assert disagreements == []
    assert data["machine"]["jax_bound_to_cpu"] is None  # no JAX, nothing bound
    if cpus is not None:
        assert os.sched_getaffinity(0) == cpus


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux's per-thread affinity")
def test_binding_reaches_every_thread_and_is_undone():
    cpus = os.sched_getaffinity(0)
    started, stop = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (started.set(), stop.wait()))
    worker.start()
    started.wait()
    try:
        one = {min(cpus)}
        assert bench.bind_process(one) == cpus
        assert os.sched_getaffinity(0) == one and os.sched_getaffinity(worker.native_id) == one
        bench.bind_process(cpus)
        assert os.sched_getaffinity(0) == cpus and os.sched_getaffinity(worker.native_id) == cpus
        # A confined call runs bound and gives the CPUs back, each sample.
        seen = []
        call = bench.confined(bench.Call(lambda: seen.append(os.sched_getaffinity(worker.native_id))), min(cpus))
        for _ in range(2):
            call.before()
            call.fn()
            call.after()
            assert os.sched_getaffinity(0) == cpus and os.sched_getaffinity(worker.native_id) == cpus
        assert seen == [one, one]
    finally:
        bench.bind_process(cpus)
        stop.set()
        worker.join()


def test_thread_scaling_workloads_agree():
    cfg = bench.Config(dtype=np.dtype(np.float32), sizes=(10**3,), threads=1, reference_max_n=0)
    workloads = bench.scaling_workloads(cfg, [1, 2])
    names = [w.name for w in workloads]
    assert names[-1] == "np.add" and "huber_loss" in names
    add = workloads[-1]
    rng = np.random.default_rng(0)
    a, b = add.make_inputs(rng, 1001, np.dtype(np.float32))
    for prepare in add.impls.values():
        np.testing.assert_array_equal(prepare((a, b))(), a + b)
    assert fl.get_num_threads() >= 1


@pytest.mark.parametrize("bad", [["--sizes", "abc"], ["--repeat", "0"], ["--losses", "no_such_loss"]])
def test_bad_options_are_rejected(bad, capsys):
    try:
        code = bench.main(bad + ["--no-jax", "--no-torch"])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code not in (0, None)
    assert bad[1] in capsys.readouterr().err
