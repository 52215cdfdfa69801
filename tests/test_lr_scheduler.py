"""fastloss.optim.lr_scheduler: torch's schedules value for value.

PyTorch's own values are checked in tests/test_golden.py (one case per schedule). Here:
- each schedule's recursive (torch "chainable") values agree with its closed form within a few ulps of
  float64 rounding, over long runs and with several parameter groups (get_last_lr gives one lr per group);
- the mechanics torch users rely on: the initial step at construction, `initial_lr` recorded once,
  external lr edits compounding, OneCycleLR cycling momentum (SGD) or beta1 (Adam) and refusing to step
  past total_steps, SequentialLR handing over at its milestones, state_dict round trips;
- bad arguments raise clear exceptions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastloss as fl
from fastloss.optim import lr_scheduler as S


def _opt(lrs=(0.1,), cls=fl.optim.SGD, **kw):
    return cls([{"params": [np.zeros(2)], "lr": lr} for lr in lrs], **kw)


def _run(sched, opt, steps):
    out = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step([np.zeros(2)] * len(opt.param_groups))
        sched.step()
        out.append(sched.get_last_lr())
    return np.array(out)


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("make", "closed"), [
    (lambda o: S.StepLR(o, step_size=3, gamma=0.5), lambda b, t: b * 0.5 ** (t // 3)),
    (lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     lambda b, t: b * 0.3 ** sum(m <= t for m in [2, 5, 5, 9])),
    (lambda o: S.ExponentialLR(o, gamma=0.9), lambda b, t: b * 0.9**t),
    (lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
     lambda b, t: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2),
    (lambda o: S.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=6),
     lambda b, t: b * (0.25 + 0.5 * min(t, 6) / 6)),
    (lambda o: S.PolynomialLR(o, total_iters=8, power=2.0), lambda b, t: b * (1 - min(t, 8) / 8) ** 2),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=1, eta_min=0.001),
     lambda b, t: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * (t % 3) / 3)) / 2),
    (lambda o: S.ConstantLR(o, factor=0.3, total_iters=4), lambda b, t: b * (0.3 if t < 4 else 1.0)),
    (lambda o: S.LambdaLR(o, lambda e: 0.95**e / (1 + e)), lambda b, t: b * 0.95**t / (1 + t)),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
     lambda b, t: b * (1 + math.cos(math.pi * _sgdr(t, 2, 2)[0] / _sgdr(t, 2, 2)[1])) / 2),
])
def test_recursive_values_match_closed_form(make, closed):
    opt = _opt((0.1, 0.02))
    sched = make(opt)
    got = _run(sched, opt, 30)
    want = np.array([[closed(b, t) for b in (0.1, 0.02)] for t in range(31)])
    _close(got, want)
    assert isinstance(sched.get_last_lr(), list) and len(sched.get_last_lr()) == 2
    assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]


def _sgdr(t, T0, mult):
    """(T_cur, T_i) of SGDR at epoch t."""
    T_i, T_cur = T0, t
    while T_cur >= T_i:
        T_cur -= T_i
        T_i *= mult
    return T_cur, T_i


def test_cosine_annealing_is_not_clamped_past_T_max():
    opt = _opt()
    lrs = _run(S.CosineAnnealingLR(opt, T_max=4), opt, 12)[:, 0]
    want = [0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(13)]
    np.testing.assert_allclose(lrs, want, rtol=1e-12, atol=1e-15)
    assert lrs[4] == pytest.approx(0.0, abs=1e-15) and lrs[8] == pytest.approx(0.1)


def test_external_lr_edits_compound_in_recursive_forms():
    opt = _opt()
    sched = S.ExponentialLR(opt, gamma=0.5)
    opt.param_groups[0]["lr"] = 1.0
    sched.step()
    assert sched.get_last_lr() == [0.5]
    assert sched.base_lrs == [0.1]


def test_construction_takes_the_initial_step_once():
    opt = _opt()
    S.LinearLR(opt, start_factor=0.5, total_iters=2)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["initial_lr"] == 0.1
    # a second schedule keeps the recorded initial_lr
    s2 = S.StepLR(opt, step_size=1)
    assert s2.base_lrs == [0.1]


def test_one_cycle_lr_and_momentum():
    opt = _opt(cls=fl.optim.SGD, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3, anneal_strategy="linear")
    lrs, moms = [sched.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(9):
        opt.step([np.zeros(2)])
        sched.step()
        lrs.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
    assert lrs[0] == pytest.approx(1.0 / 25) and moms[0] == pytest.approx(0.95)
    assert lrs[2] == pytest.approx(1.0) and moms[2] == pytest.approx(0.85)  # peak at pct_start·T − 1
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
    assert moms[-1] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        sched.step()
        sched.step()


def test_one_cycle_cycles_adam_beta1_and_three_phase():
    opt = _opt(cls=fl.optim.Adam, betas=(0.9, 0.98))
    sched = S.OneCycleLR(opt, max_lr=0.5, total_steps=20, three_phase=True)
    assert opt.param_groups[0]["betas"] == (0.95, 0.98)
    got = _run(sched, opt, 19)[:, 0]
    assert got.max() == pytest.approx(0.5)
    assert got[10] == pytest.approx(0.5 / 25)  # back to the initial lr at 2·pct_start·T − 2
    assert opt.param_groups[0]["betas"][1] == 0.98
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(_opt(cls=fl.optim.Adagrad), max_lr=0.1, total_steps=5)
    S.OneCycleLR(_opt(cls=fl.optim.Adagrad), max_lr=0.1, total_steps=5, cycle_momentum=False)
    s = S.OneCycleLR(_opt(), max_lr=[0.1], epochs=2, steps_per_epoch=3)
    assert s.total_steps == 6


def test_sequential_warmup_then_cosine():
    opt = _opt()
    warm = S.LinearLR(opt, start_factor=0.01, total_iters=4)
    cos = S.CosineAnnealingLR(opt, T_max=12)
    sched = S.SequentialLR(opt, [warm, cos], milestones=[4])
    got = _run(sched, opt, 16)[:, 0]
    want = [0.1 * (0.01 + 0.99 * t / 4) for t in range(4)] + [0.05 * (1 + math.cos(math.pi * t / 12)) for t in range(13)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_state_dict_round_trip():
    def build():
        opt = _opt((0.1, 0.3))
        return opt, S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.01)

    opt, sched = build()
    _run(sched, opt, 5)
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in saved_sched
    rest = _run(sched, opt, 10)
    opt2, sched2 = build()
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    np.testing.assert_array_equal(_run(sched2, opt2, 10), rest)
    # SequentialLR saves its sub-schedules too
    opt = _opt()
    seq = S.SequentialLR(opt, [S.LinearLR(opt, total_iters=2), S.ExponentialLR(opt, gamma=0.5)], milestones=[2])
    _run(seq, opt, 1)
    sd, od = seq.state_dict(), opt.state_dict()
    rest = _run(seq, opt, 4)
    opt2 = _opt()
    seq2 = S.SequentialLR(opt2, [S.LinearLR(opt2, total_iters=2), S.ExponentialLR(opt2, gamma=0.5)], milestones=[2])
    opt2.load_state_dict(od)
    seq2.load_state_dict(sd)
    np.testing.assert_array_equal(_run(seq2, opt2, 4), rest)


def test_schedules_drive_the_optimizer():
    """The lr a schedule sets is the one the next step uses."""
    p = np.zeros(1)
    opt = fl.optim.SGD([p], lr=1.0)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        opt.step([np.ones(1)])
        sched.step()
    assert p[0] == -(1.0 + 0.5 + 0.25)


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda o: S.StepLR(o, step_size=0), ValueError, r"step_size: got 0"),
    (lambda o: S.StepLR(o, step_size=2.5), TypeError, r"step_size: expected an integer"),
    (lambda o: S.StepLR(o, step_size=2, gamma="x"), TypeError, r"gamma: expected a real number"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, r"T_max: got 0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, r"T_0: got 0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError, r"T_mult: got 0"),
    (lambda o: S.LinearLR(o, start_factor=0.0), ValueError, r"start_factor: got 0.0, expected a number in \(0, 1\]"),
    (lambda o: S.LinearLR(o, end_factor=1.5), ValueError, r"end_factor: got 1.5"),
    (lambda o: S.PolynomialLR(o, total_iters=0), ValueError, r"total_iters: got 0"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0), ValueError, r"total_steps OR \(epochs AND steps_per_epoch\)"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, r"pct_start: got 1.5"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError, r"anneal_strategy"),
    (lambda o: S.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=10), ValueError, r"max_lr: expected 1 values"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], milestones=[3]), ValueError, r"milestones: expected 0"),
    (lambda o: S.SequentialLR(o, [S.StepLR(_opt(), 2)], milestones=[]), ValueError, r"different optimizer"),
    (lambda o: S.SequentialLR(o, [], milestones=[]), ValueError, r"at least one"),
    (lambda o: S.ConstantLR(o, factor=1.5), ValueError, r"factor: got 1.5"),
    (lambda o: S.LambdaLR(o, 0.5), TypeError, r"lr_lambda: expected a function"),
    (lambda o: S.LambdaLR(o, [abs, abs]), ValueError, r"lr_lambda: expected 1 functions"),
    (lambda o: S.StepLR(object(), 2), TypeError, r"optimizer: expected a fastloss.optim optimizer"),
    (lambda o: S.StepLR(o, 2, last_epoch=3), KeyError, r"initial_lr"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_opt())


def test_lambda_lr_per_group_and_state_dict():
    opt = _opt((0.1, 0.2))
    sched = S.LambdaLR(opt, [lambda e: 1.0 / (e + 1), lambda e: 2.0**-e])
    got = _run(sched, opt, 3)
    _close(got, [[0.1 / (t + 1), 0.2 * 2.0**-t] for t in range(4)])
    assert "lr_lambdas" not in sched.state_dict()


def test_epoch_argument_uses_the_closed_form():
    """The deprecated step(epoch) jumps straight to an epoch (what SequentialLR uses at a milestone)."""
    for make, want in [(lambda o: S.StepLR(o, step_size=2, gamma=0.5), 0.1 * 0.5**3),
                       (lambda o: S.CosineAnnealingLR(o, T_max=10), 0.05 * (1 + math.cos(math.pi * 7 / 10))),
                       (lambda o: S.LinearLR(o, start_factor=0.5, total_iters=10), 0.1 * (0.5 + 0.5 * 0.7)),
                       (lambda o: S.ExponentialLR(o, gamma=0.9), 0.1 * 0.9**7)]:
        opt = _opt()
        sched = make(opt)
        sched.step(7)
        assert sched.get_last_lr()[0] == pytest.approx(want, rel=1e-12)
