"""Smoke tests of `python -m fastloss bench` (the README's main command): it runs, every
implementation agrees with fastloss, and the table and the JSON say what was measured. Timings
are not checked here (speed is measured by the bench itself, not asserted in tests)."""

import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastloss as fl
from fastloss import bench


def test_quick_run_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "run.json"
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
    assert all(v["cpu_per_wall"] > 0 for r in data["workloads"] for v in r["impls"].values())


def test_report_names_implementations_that_kept_more_cpus_busy():
    def row(name, cpu):
        impl = {"median_ns": 1e6, "min_ns": 1e6, "q1_ns": 1e6, "q3_ns": 1e6, "reps": 1, "cpu_per_wall": cpu,
                "samples_ns": [1e6]}
        return {"name": name, "op": "value", "n": 1000, "dtype": "float32", "group": "regression",
                "baseline": "fastloss", "mark": None, "impls": {"fastloss": dict(impl, cpu_per_wall=1.0), "jax": impl},
                "agreement": {}, "ratios": {"jax_over_fastloss": 1.0}}
    text = bench.report("header", [row("mse_loss", 1.0), row("l1_loss", 1.7)], [], ["jax"], 1, 2.0, None, [], 1.0,
                        False)
    assert "more than 1.2 CPUs busy" in text and "jax in 1 of 2 rows (up to 1.70)" in text
    assert "fastloss in" not in text


def test_thread_scaling_workloads_agree():
    cfg = bench.Config(dtype=np.dtype(np.float32), sizes=(10**3,), threads=1, reference_max_n=0)
    workloads = bench.scaling_workloads(cfg, [1, 2])
    names = [w.name for w in workloads]
    assert names[-1] == "np.add" and "huber_loss" in names
    # The losses also into a reused buffer: same results as the allocating call.
    rows = {(w.name, w.op): w for w in workloads}
    assert ("cross_entropy", bench.VG_OUT) in rows
    out_row = rows[("binary_cross_entropy_with_logits", bench.VG_OUT)]
    x, y = out_row.make_inputs(np.random.default_rng(1), 1001, np.dtype(np.float32))
    for prepare in out_row.impls.values():
        value, grad = prepare((x, y)).fn()
        want_value, want_grad = fl.binary_cross_entropy_with_logits.value_and_grad(x, y)
        assert value == want_value
        np.testing.assert_array_equal(grad, want_grad)
    add = workloads[-1]
    rng = np.random.default_rng(0)
    a, b = add.make_inputs(rng, 1001, np.dtype(np.float32))
    for prepare in add.impls.values():
        np.testing.assert_array_equal(prepare((a, b))(), a + b)
    assert fl.get_num_threads() >= 1


@pytest.mark.parametrize("bad", [["--sizes", "abc"], ["--sizes", "1e3,0"], ["--repeat", "0"],
                                 ["--reference-max-n", "-1"], ["--reference-max-n", "1e3,1e5"],
                                 ["--losses", "no_such_loss"]])
def test_bad_options_are_rejected(bad, capsys):
    try:
        code = bench.main(bad + ["--no-jax", "--no-torch"])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code not in (0, None)
    err = capsys.readouterr().err
    assert bad[1].split(",")[-1] in err
    if bad[0] != "--losses":
        # argparse names the option the message is about
        assert err.splitlines()[-1].startswith(f"fastloss bench: error: argument {bad[0]}: ")


def test_reference_max_n_zero_means_no_reference():
    assert bench._max_n("0") == 0 and bench._max_n("1e5") == 100_000


def test_loops_script_runs_a_part_and_rejects_an_unknown_one():
    script = pathlib.Path(__file__).resolve().parent.parent / "benches" / "loops.py"
    ok = subprocess.run([sys.executable, str(script), "numpy"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "NumPy float32 at 1e6, ns per element: exp" in ok.stdout
    bad = subprocess.run([sys.executable, str(script), "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown part(s) nope" in bad.stderr


def test_loops_pause_part_counts_its_calls():
    script = pathlib.Path(__file__).resolve().parent.parent / "benches" / "loops.py"
    ok = subprocess.run([sys.executable, str(script), "pause"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    for label in ("after a 40 ms pause", "back to back"):
        assert re.search(f"2 threads, {label}: median [0-9.]+ ms, [0-9]+ of 48 calls with CPU/wall < 1.3", ok.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
def test_jax_client_starts_on_as_many_cpus_as_threads_then_runs_anywhere():
    """XLA sizes its thread pool by the affinity in force when its CPU client starts (see
    `_create_jax_client_on`): the start must see `threads` CPUs, and nothing may stay confined."""
    before = os.sched_getaffinity(0)
    seen = {}

    def create():  # stands in for JAX's first computation, which starts the client's threads
        seen["affinity"] = os.sched_getaffinity(0)
        seen["thread"] = threading.Thread(target=time.sleep, args=(0.5,))
        seen["thread"].start()

    note = bench._create_jax_client_on(1, create)
    try:
        assert len(seen["affinity"]) == 1
        assert os.sched_getaffinity(0) == before
        assert os.sched_getaffinity(seen["thread"].native_id) == before
        assert f"on 1 of {len(before)} CPUs" in note
    finally:
        seen["thread"].join()
    calls = []
    assert bench._create_jax_client_on(len(before), lambda: calls.append(1)) == ""
    assert calls == [1]
