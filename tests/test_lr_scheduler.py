"""fastloss.optim.lr_scheduler: torch's schedules value for value.

PyTorch's own values are checked in tests/test_golden.py (one case per schedule). Here:
- each schedule's recursive (torch "chainable") values agree with its closed form within a few ulps of
  float64 rounding, over long runs and with several parameter groups (get_last_lr gives one lr per group);
- the mechanics torch users rely on: the initial step at construction, `initial_lr` recorded once,
  external lr edits compounding, OneCycleLR cycling momentum (SGD) or beta1 (Adam) and refusing to step
  past total_steps, SequentialLR handing over at its milestones, state_dict round trips;
- bad arguments raise clear exceptions;
- ChainedScheduler, ReduceLROnPlateau and CyclicLR against values worked out by hand, epoch by epoch.
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


# PyTorch 2.13's values (lr of the one group, from the construction on, one step at a time), for what the
# golden cases do not cover: resuming with last_epoch and SequentialLR's less common arrangements.
TORCH_RESUMED = {  # schedule built, stepped 3 times, then a new one built with last_epoch=3: lr and 8 steps
    "exponential": (lambda o, e: S.ExponentialLR(o, gamma=0.9, last_epoch=e), [
        0.07290000000000002, 0.06561000000000002, 0.05904900000000002, 0.05314410000000002, 0.04782969000000002,
        0.043046721000000024, 0.03874204890000002, 0.03486784401000002, 0.03138105960900001]),
    "cosine": (lambda o, e: S.CosineAnnealingLR(o, T_max=10, last_epoch=e), [
        0.07938926261462367, 0.0606479999539898, 0.04190673729335593, 0.025000000000000015, 0.011582737316361029,
        0.002968324397479629, 0.0, 0.0024471741852423235, 0.009549150281252666]),
    "linear": (lambda o, e: S.LinearLR(o, start_factor=0.1, total_iters=10, last_epoch=e), [
        0.03700000000000001, 0.04423913043478262, 0.05147826086956523, 0.05871739130434784, 0.06595652173913046,
        0.07319565217391308, 0.0804347826086957, 0.0804347826086957, 0.0804347826086957]),
    "polynomial": (lambda o, e: S.PolynomialLR(o, total_iters=10, last_epoch=e), [
        0.07, 0.05833333333333334, 0.046666666666666676, 0.03500000000000001, 0.02333333333333333,
        0.011666666666666665, 0.0, 0.0, 0.0]),
    "warm_restarts": (lambda o, e: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=1, last_epoch=e), [
        0.1, 0.08535533905932738, 0.05, 0.014644660940672627, 0.1, 0.08535533905932738, 0.05,
        0.014644660940672627, 0.1]),
    "warm_restarts_doubling": (lambda o, e: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, last_epoch=e), [
        0.1, 0.09619397662556434, 0.08535533905932738, 0.0691341716182545, 0.05, 0.030865828381745515,
        0.014644660940672627, 0.0038060233744356634, 0.1]),
}


@pytest.mark.parametrize("name", list(TORCH_RESUMED))
def test_resuming_with_last_epoch_gives_torchs_values(name):
    """The initial step of a resumed schedule leaves the saved lr as it is (torch 2.13's
    `_is_initial`); warm restarts wrap T_cur modulo T_i."""
    make, want = TORCH_RESUMED[name]
    opt = _opt()
    sched = make(opt, -1)
    for _ in range(3):
        sched.step()
    resumed = make(opt, 3)
    assert resumed.last_epoch == 4
    assert list(_run(resumed, opt, 8)[:, 0]) == want


def test_sequential_with_a_milestone_at_zero_starts_with_the_second_schedule():
    opt = _opt()
    sched = S.SequentialLR(opt, [S.ConstantLR(opt, factor=0.5, total_iters=2), S.ExponentialLR(opt, gamma=0.9)],
                           milestones=[0])
    assert list(_run(sched, opt, 4)[:, 0]) == [0.1, 0.09000000000000001, 0.08100000000000002, 0.07290000000000002,
                                               0.06561000000000002]


def test_sequential_holding_composites():
    """A SequentialLR or ChainedScheduler inside a SequentialLR: the initial steps of the schedules
    they hold are undone too (torch's recursive undo)."""
    opt = _opt()
    inner = S.SequentialLR(opt, [S.ConstantLR(opt, factor=0.5, total_iters=2), S.ExponentialLR(opt, gamma=0.9)],
                           milestones=[2])
    sched = S.SequentialLR(opt, [inner, S.StepLR(opt, step_size=2, gamma=0.5)], milestones=[6])
    assert list(_run(sched, opt, 5)[:, 0]) == [0.05, 0.1, 0.09000000000000001, 0.08100000000000002,
                                               0.07290000000000002, 0.06561000000000002]
    opt = _opt()
    chained = S.ChainedScheduler([S.ConstantLR(opt, factor=0.5, total_iters=4), S.ExponentialLR(opt, gamma=0.9)])
    sched = S.SequentialLR(opt, [chained, S.StepLR(opt, step_size=2)], milestones=[10])
    assert list(_run(sched, opt, 5)[:, 0]) == [0.045000000000000005, 0.04050000000000001, 0.03645000000000001,
                                               0.03280500000000001, 0.05904900000000002, 0.05314410000000002]


def test_sequential_restarts_warm_restarts_without_resetting_its_cycle():
    """At a milestone torch calls the schedule's `_update_lr(0)`: CosineAnnealingWarmRestarts has no
    closed form, so it keeps the T_cur of its (undone) initial step."""
    opt = _opt()
    sched = S.SequentialLR(opt, [S.ConstantLR(opt, factor=0.5, total_iters=2), S.CosineAnnealingWarmRestarts(opt, T_0=3)],
                           milestones=[4])
    assert list(_run(sched, opt, 8)[:, 0]) == [0.05, 0.05, 0.1, 0.1, 0.1, 0.07500000000000001, 0.025000000000000012,
                                               0.1, 0.07500000000000001]


def test_integer_arguments_take_whole_floats():
    opt = _opt()
    assert S.StepLR(opt, step_size=2.0).step_size == 2
    assert S.StepLR(opt, step_size=np.float32(3.0)).step_size == 3
    assert S.MultiStepLR(opt, milestones=[2.0, np.int64(4)]).milestones == {2: 1, 4: 1}


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
    (lambda o: S.StepLR(o, step_size=2.5), ValueError, r"step_size: got 2.5, expected a whole number"),
    (lambda o: S.StepLR(o, step_size="2"), TypeError, r"step_size: expected an integer, got str"),
    (lambda o: S.MultiStepLR(o, milestones=[2, float("inf")]), ValueError, r"milestones\[\]: got inf"),
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
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.ChainedScheduler([S.StepLR(o, 3)])], milestones=[2]), TypeError,
     r"schedulers\[1\]: a ChainedScheduler can only come first"),
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



# ------------------------------------------------------------------------------------------------
# ChainedScheduler
# ------------------------------------------------------------------------------------------------


def test_chained_constant_and_exponential_multiply():
    opt = _opt((0.05, 0.2))
    sched = S.ChainedScheduler([S.ConstantLR(opt, factor=0.1, total_iters=20), S.ExponentialLR(opt, gamma=0.9)])
    got = _run(sched, opt, 30)
    want = [[b * (0.1 if t < 20 else 1.0) * 0.9**t for b in (0.05, 0.2)] for t in range(31)]
    _close(got, want)
    assert got[19, 0] == pytest.approx(6.7543e-4, rel=1e-4) and got[20, 0] == pytest.approx(6.0788e-3, rel=1e-4)
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
    assert sched.optimizer is opt


def test_chained_takes_no_initial_step_and_accepts_the_optimizer():
    opt = _opt()
    warm = S.LinearLR(opt, start_factor=0.5, total_iters=2)   # lr 0.05 after its own initial step
    step = S.StepLR(opt, step_size=2, gamma=0.1)
    sched = S.ChainedScheduler([warm, step], optimizer=opt)
    got = _run(sched, opt, 5)[:, 0]
    # LinearLR factors 0.5, 0.75, 1, 1, ...; StepLR ×0.1 at epochs 2 and 4
    _close(got, [0.05, 0.075, 0.01, 0.01, 0.001, 0.001])


def test_chained_state_dict_round_trip():
    def build():
        opt = _opt((0.1, 0.3))
        return opt, S.ChainedScheduler([S.ConstantLR(opt, factor=0.5, total_iters=3),
                                        S.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)])

    opt, sched = build()
    _run(sched, opt, 4)
    sd, od = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in sd and len(sd["_schedulers"]) == 2
    assert all("optimizer" not in d for d in sd["_schedulers"])
    rest = _run(sched, opt, 8)
    opt2, sched2 = build()
    opt2.load_state_dict(od)
    sched2.load_state_dict(sd)
    np.testing.assert_array_equal(_run(sched2, opt2, 8), rest)
    assert "_schedulers" in sd  # loading does not consume the caller's dict


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda o: S.ChainedScheduler([]), ValueError, r"schedulers: expected at least one"),
    (lambda o: S.ChainedScheduler(3), TypeError, r"schedulers: expected a sequence"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2), 7]), TypeError, r"schedulers\[1\]: expected an LR scheduler"),
    (lambda o: S.ChainedScheduler([S.ReduceLROnPlateau(o)]), ValueError, r"schedulers\[0\]: ReduceLROnPlateau"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2), S.StepLR(_opt(), 2)]), ValueError,
     r"schedulers\[1\]: was built on a different optimizer"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2)], optimizer=_opt()), ValueError,
     r"schedulers\[0\]: was built on a different optimizer"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2)], optimizer=object()), TypeError, r"optimizer: expected"),
])
def test_chained_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_opt())


# ------------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# ------------------------------------------------------------------------------------------------


def _plateau(sched, opt, metrics):
    """The lrs (one list per group) after each step(metric)."""
    out = []
    for m in metrics:
        sched.step(m)
        out.append(sched.get_last_lr())
        assert out[-1] == [g["lr"] for g in opt.param_groups]
    return out


def test_plateau_min_rel():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1)
    assert sched.get_last_lr() == [1.0] and "initial_lr" not in opt.param_groups[0]  # no initial step
    # better iff metric < best·0.9; the lr halves on the 3rd bad epoch in a row
    got = _plateau(sched, opt, [10, 9.5, 9.2, 9.1, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0])
    assert got == [[1.0]] * 3 + [[0.5]] * 4 + [[0.25]] * 3
    assert sched.best == 8.0 and sched.num_bad_epochs == 2 and sched.last_epoch == 10


def test_plateau_min_abs():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, threshold=0.5, threshold_mode="abs", patience=0)
    # better iff metric < best − 0.5: 5 (best), 4.6 (bad), 4.4 (best), 4.0 (bad), 3.95 (bad)
    got = _plateau(sched, opt, [5.0, 4.6, 4.4, 4.0, 3.95])
    _close(got, [[1.0], [0.1], [0.1], [0.01], [0.001]])
    assert sched.best == 4.4


def test_plateau_max_rel_and_abs():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1, threshold=0.1)
    # better iff metric > best·1.1: 1.0 (best), 1.05 (bad 1), 1.2 (best), 1.25 (bad 1), 1.3 (bad 2 → ×0.5), 1.35
    got = _plateau(sched, opt, [1.0, 1.05, 1.2, 1.25, 1.3, 1.35])
    assert got == [[1.0]] * 4 + [[0.5]] * 2
    assert sched.best == 1.35
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0, threshold=0.1, threshold_mode="abs")
    # better iff metric > best + 0.1: 0.5 (best), 0.55 (bad), 0.7 (best), 0.75 (bad)
    assert _plateau(sched, opt, [0.5, 0.55, 0.7, 0.75]) == [[1.0], [0.5], [0.5], [0.25]]


def test_plateau_default_patience_is_ten():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt)
    got = _plateau(sched, opt, [3.0] * 13)
    # epoch 1 sets the best, epochs 2..11 are 10 bad epochs (= patience), the 11th bad one reduces
    assert got == [[1.0]] * 11 + [[0.1]] * 2


def test_plateau_cooldown():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, cooldown=2, threshold=0.0)
    got = _plateau(sched, opt, [1.0] * 9)
    # a reduction at epoch 2, then 2 cooldown epochs in which bad epochs do not count, and so on
    assert got == [[1.0], [0.5], [0.5], [0.5], [0.25], [0.25], [0.25], [0.125], [0.125]]
    assert sched.in_cooldown and sched.cooldown_counter == 1


def test_plateau_min_lr_per_group_and_scalar():
    opt = _opt((1.0, 0.1))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=[0.3, 0.05])
    got = _plateau(sched, opt, [1.0] * 4)
    assert got == [[1.0, 0.1], [0.5, 0.05], [0.3, 0.05], [0.3, 0.05]]
    opt = _opt((1.0, 0.1))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=0.2)
    got = _plateau(sched, opt, [1.0] * 4)
    # group 1 starts below min_lr: max(0.05, 0.2) = 0.2 is no decrease, so it is left alone
    assert got == [[1.0, 0.1], [0.5, 0.1], [0.25, 0.1], [0.2, 0.1]]


def test_plateau_min_lr_when_a_group_is_added():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=0.1)
    opt.add_param_group({"params": [np.zeros(2)], "lr": 0.4})
    assert _plateau(sched, opt, [1.0, 1.0]) == [[1.0, 0.4], [0.5, 0.2]]
    assert sched.min_lrs == [0.1, 0.1]
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=[0.1])
    opt.add_param_group({"params": [np.zeros(2)], "lr": 0.4})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match="min_lrs"):
        sched.step(1.0)


def test_plateau_eps_skips_tiny_reductions():
    opt = _opt((1e-7,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, eps=1e-7)
    assert _plateau(sched, opt, [1.0, 1.0, 1.0]) == [[1e-7]] * 3  # 1e-7 − 5e-8 is not > 1e-7
    opt = _opt((1e-7,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0)  # eps=1e-8
    assert _plateau(sched, opt, [1.0, 1.0, 1.0]) == [[1e-7], [5e-8], [2.5e-8]]
    opt = _opt((1e-8,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    assert _plateau(sched, opt, [1.0, 1.0]) == [[1e-8]] * 2


def test_plateau_metric_types_and_nan():
    opt = _opt((1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    sched.step(np.float32(2.0))
    sched.step(np.array(1.0))  # a 0-d array improves on 2.0
    assert sched.best == 1.0 and sched.get_last_lr() == [1.0]
    sched.step(float("nan"))  # NaN never improves
    assert sched.get_last_lr() == [0.5]
    with pytest.raises(TypeError, match="metrics: expected a real number, got str"):
        sched.step("0.5")
    with pytest.raises(TypeError, match="metrics: expected a real number, got NoneType"):
        sched.step(None)


def test_plateau_state_dict_round_trip():
    metrics = [5.0, 4.0, 4.1, 4.2, 3.0, 3.5, 3.6, 3.7, 3.8, 2.0, 2.5, 2.6]

    def build():
        opt = _opt((1.0, 0.5))
        return opt, S.ReduceLROnPlateau(opt, mode="min", factor=0.3, patience=1, cooldown=1, min_lr=[0.01, 0.02])

    opt, sched = build()
    _plateau(sched, opt, metrics[:5])
    sd, od = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in sd and sd["best"] == 3.0
    rest = _plateau(sched, opt, metrics[5:])
    opt2, sched2 = build()
    opt2.load_state_dict(od)
    sched2.load_state_dict(sd)
    assert _plateau(sched2, opt2, metrics[5:]) == rest
    assert sched2.last_epoch == 12


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor: got 1.0, expected a number < 1"),
    (lambda o: S.ReduceLROnPlateau(o, factor="x"), TypeError, r"factor: expected a real number"),
    (lambda o: S.ReduceLROnPlateau(o, mode="avg"), ValueError, r"mode: got 'avg', expected 'min' or 'max'"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, r"threshold_mode: got 'pct'"),
    (lambda o: S.ReduceLROnPlateau(o, threshold=None), TypeError, r"threshold: expected a real number"),
    (lambda o: S.ReduceLROnPlateau(o, patience=-1), ValueError, r"patience: got -1"),
    (lambda o: S.ReduceLROnPlateau(o, patience=1.5), ValueError, r"patience: got 1.5, expected a whole number"),
    (lambda o: S.ReduceLROnPlateau(o, cooldown=-2), ValueError, r"cooldown: got -2"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, r"min_lr: expected 1 values"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr="0"), TypeError, r"min_lr: expected a real number"),
    (lambda o: S.ReduceLROnPlateau(o, eps=None), TypeError, r"eps: expected a real number"),
    (lambda o: S.ReduceLROnPlateau(object()), TypeError, r"optimizer: expected a fastloss.optim optimizer"),
])
def test_plateau_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_opt())


# ------------------------------------------------------------------------------------------------
# CyclicLR
# ------------------------------------------------------------------------------------------------


def _cyclic(sched, opt, steps, key=None):
    """The lr of group 0 (and its momentum or beta1 when `key`) at steps 0..steps."""
    lrs, moms = [], []
    for k in range(steps + 1):
        if k:
            opt.step([np.zeros(2)] * len(opt.param_groups))
            sched.step()
        lrs.append(sched.get_last_lr()[0])
        if key == "momentum":
            moms.append(opt.param_groups[0]["momentum"])
        elif key == "betas":
            moms.append(opt.param_groups[0]["betas"][0])
    return (lrs, moms) if key else lrs


def test_cyclic_triangular():
    opt = _opt((0.5,))  # the optimizer's lr is replaced by base_lr at construction
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2, cycle_momentum=False)
    assert opt.param_groups[0]["initial_lr"] == 0.1 and sched.base_lrs == [0.1]
    _close(_cyclic(sched, opt, 9), [0.1, 0.55, 1.0, 0.55, 0.1, 0.55, 1.0, 0.55, 0.1, 0.55])


def test_cyclic_asymmetric_and_two_groups():
    opt = _opt((0.5, 0.5))
    sched = S.CyclicLR(opt, base_lr=[0.1, 0.0], max_lr=[1.0, 2.0], step_size_up=1, step_size_down=3,
                       cycle_momentum=False)
    # up in 1 step, down in 3: the cycle position goes 0, 1, 2/3, 1/3, 0
    got = _run(sched, opt, 8)
    want = [[b + (m - b) * f for b, m in ((0.1, 1.0), (0.0, 2.0))] for f in [0, 1, 2 / 3, 1 / 3] * 2 + [0]]
    _close(got, want)


def test_cyclic_triangular2_halves_each_cycle():
    opt = _opt()
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=0.9, step_size_up=2, mode="triangular2", cycle_momentum=False)
    _close(_cyclic(sched, opt, 12), [0.1, 0.5, 0.9, 0.5, 0.1, 0.3, 0.5, 0.3, 0.1, 0.2, 0.3, 0.2, 0.1])


def test_cyclic_exp_range_scales_by_gamma_per_step():
    opt = _opt()
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.1, step_size_up=2, mode="exp_range", gamma=0.5,
                       scale_mode="cycle", cycle_momentum=False)
    assert sched.scale_mode == "iterations"  # fixed by the mode, as in torch
    tri = [0, 0.5, 1, 0.5] * 2
    _close(_cyclic(sched, opt, 7), [0.1 + 1.0 * tri[t] * 0.5**t for t in range(8)])
    # the default gamma=1 is triangular
    opt = _opt()
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.1, step_size_up=2, mode="exp_range", cycle_momentum=False)
    _close(_cyclic(sched, opt, 7), [0.1 + tri[t] for t in range(8)])


def test_cyclic_exp_range_gamma_is_fixed_at_construction():
    # torch binds gamma into the scale function when it is built: a later edit of sched.gamma has no
    # effect until load_state_dict rebuilds it
    opt = _opt()
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.1, step_size_up=2, mode="exp_range", gamma=0.5,
                       cycle_momentum=False)
    sched.gamma = 0.9
    tri = [0, 0.5, 1, 0.5] * 2
    _close(_cyclic(sched, opt, 7)[1:], [0.1 + 1.0 * tri[t] * 0.5**t for t in range(1, 8)])
    state = sched.state_dict()
    assert state["gamma"] == 0.9
    sched.load_state_dict(state)
    assert sched.scale_fn(2) == 0.9**2


def test_cyclic_custom_scale_fn():
    opt = _opt()
    sched = S.CyclicLR(opt, base_lr=0.2, max_lr=1.0, step_size_up=2, scale_fn=lambda c: 1 / c, mode="ignored",
                       cycle_momentum=False)
    # scale_mode 'cycle': the amplitude 0.8 is divided by the cycle number 1, 2, 3
    _close(_cyclic(sched, opt, 9), [0.2, 0.6, 1.0, 0.6, 0.2, 0.4, 0.6, 0.4, 0.2, 0.2 + 0.8 * 0.5 / 3])
    opt = _opt()
    sched = S.CyclicLR(opt, base_lr=0.2, max_lr=1.0, step_size_up=2, scale_fn=lambda t: 1 / (1 + t),
                       scale_mode="iterations", cycle_momentum=False)
    # scale_mode 'iterations': divided by 1 + the step
    _close(_cyclic(sched, opt, 6), [0.2, 0.2 + 0.8 * 0.5 / 2, 0.2 + 0.8 / 3, 0.2 + 0.8 * 0.5 / 4, 0.2,
                                    0.2 + 0.8 * 0.5 / 6, 0.2 + 0.8 / 7])
    # a built-in mode fixes scale_mode: triangular2 scales per cycle whatever scale_mode says
    sched = S.CyclicLR(_opt(), 0.1, 0.9, step_size_up=2, mode="triangular2", scale_mode="iterations",
                       cycle_momentum=False)
    assert sched.scale_mode == "cycle"


def test_cyclic_sgd_momentum():
    opt = _opt((0.5,), momentum=0.3)
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2)
    g = opt.param_groups[0]
    assert g["max_momentum"] == 0.9 and g["base_momentum"] == 0.8
    lrs, moms = _cyclic(sched, opt, 8, "momentum")
    _close(lrs, [0.1, 0.55, 1.0, 0.55] * 2 + [0.1])
    _close(moms, [0.9, 0.85, 0.8, 0.85] * 2 + [0.9])  # inverse to the lr
    # triangular2 scales the momentum's amplitude too
    opt = _opt(momentum=0.0)
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=0.9, step_size_up=2, mode="triangular2", base_momentum=0.5,
                       max_momentum=0.9)
    _, moms = _cyclic(sched, opt, 8, "momentum")
    _close(moms, [0.9, 0.7, 0.5, 0.7, 0.9, 0.8, 0.7, 0.8, 0.9])


def test_cyclic_adam_beta1_per_group():
    opt = _opt((0.5, 0.5), cls=fl.optim.Adam, betas=(0.9, 0.98))
    sched = S.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2, base_momentum=[0.8, 0.7],
                       max_momentum=[0.9, 0.95])
    assert [g["betas"] for g in opt.param_groups] == [(0.9, 0.98), (0.95, 0.98)]
    beta1 = []
    for k in range(5):
        if k:
            opt.step([np.zeros(2)] * 2)
            sched.step()
        beta1.append([g["betas"][0] for g in opt.param_groups])
        assert [g["betas"][1] for g in opt.param_groups] == [0.98, 0.98]
    _close(beta1, [[0.9, 0.95], [0.85, 0.825], [0.8, 0.7], [0.85, 0.825], [0.9, 0.95]])


def test_cyclic_momentum_needs_an_optimizer_with_momentum():
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.CyclicLR(_opt(cls=fl.optim.Adagrad), base_lr=0.1, max_lr=1.0)
    opt = _opt(cls=fl.optim.Adagrad)
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=1, cycle_momentum=False)
    assert _cyclic(sched, opt, 2) == [0.1, 1.0, 0.1]
    opt = _opt(momentum=0.5)
    S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, cycle_momentum=False)
    assert opt.param_groups[0]["momentum"] == 0.5 and "max_momentum" not in opt.param_groups[0]


def test_cyclic_first_value_uses_an_earlier_initial_lr():
    """torch quirk: the initial step runs with base_lrs = the groups' initial_lr, which an earlier
    schedule may have recorded; base_lr takes over from the next step."""
    opt = _opt((0.5,))
    S.StepLR(opt, step_size=10)
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2, cycle_momentum=False)
    _close(_cyclic(sched, opt, 4), [0.5, 0.55, 1.0, 0.55, 0.1])


def test_cyclic_resume_with_last_epoch():
    opt = _opt(momentum=0.9)
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2, last_epoch=-1)
    full = _cyclic(sched, opt, 8, "momentum")
    resumed = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2, last_epoch=4)  # takes step 5
    lrs, moms = _cyclic(resumed, opt, 3, "momentum")
    _close(lrs, full[0][5:])
    _close(moms, full[1][5:])
    with pytest.raises(KeyError, match="initial_lr"):
        S.CyclicLR(_opt(momentum=0.9), base_lr=0.1, max_lr=1.0, last_epoch=3)


class _HalvingScale:
    """A callable object: its attributes are what CyclicLR.state_dict keeps of a custom scale_fn."""

    def __init__(self, ratio):
        self.ratio = ratio

    def __call__(self, cycle):
        return self.ratio ** (cycle - 1)


def test_cyclic_state_dict_round_trip():
    def build(fn):
        opt = _opt((0.1, 0.2), momentum=0.9)
        return opt, S.CyclicLR(opt, base_lr=[0.1, 0.2], max_lr=[1.0, 0.5], step_size_up=3, step_size_down=2,
                               scale_fn=fn)

    opt, sched = build(_HalvingScale(0.5))
    _cyclic(sched, opt, 7, "momentum")
    sd, od = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in sd and sd["_scale_fn_custom"] == {"ratio": 0.5}
    rest = _cyclic(sched, opt, 9, "momentum")
    opt2, sched2 = build(_HalvingScale(0.9))  # the saved ratio replaces this one
    opt2.load_state_dict(od)
    sched2.load_state_dict(sd)
    assert sched2._scale_fn_custom.ratio == 0.5 and "_scale_fn_custom" in sd
    assert _cyclic(sched2, opt2, 9, "momentum") == rest
    # a plain function is not saved; the one given at construction stays
    opt, sched = build(lambda c: 1.0)
    assert sched.state_dict()["_scale_fn_custom"] is None
    # built-in modes
    opt = _opt(momentum=0.9)
    sched = S.CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=2, mode="exp_range", gamma=0.9)
    _run(sched, opt, 3)
    sd, od = sched.state_dict(), opt.state_dict()
    rest = _run(sched, opt, 6)
    opt2 = _opt(momentum=0.9)
    sched2 = S.CyclicLR(opt2, base_lr=0.1, max_lr=1.0, step_size_up=2)
    opt2.load_state_dict(od)
    sched2.load_state_dict(sd)
    assert sched2.mode == "exp_range" and sched2.scale_mode == "iterations"
    np.testing.assert_array_equal(_run(sched2, opt2, 6), rest)


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda o: S.CyclicLR(o, 0.1, 1.0, mode="triangle"), ValueError, r"mode: got 'triangle', expected 'triangular'"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, step_size_up=0), ValueError, r"step_size_up: got 0.0, expected a number > 0"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, step_size_down=-1), ValueError, r"step_size_down: got -1.0"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, step_size_up="2"), TypeError, r"step_size_up: expected a real number"),
    (lambda o: S.CyclicLR(o, [0.1, 0.2], 1.0), ValueError, r"base_lr: expected 1 values"),
    (lambda o: S.CyclicLR(o, 0.1, [1.0, 2.0]), ValueError, r"max_lr: expected 1 values"),
    (lambda o: S.CyclicLR(o, 0.1, None), TypeError, r"max_lr: expected a real number"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, scale_fn=2.0), TypeError, r"scale_fn: expected a function"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, scale_mode="iteration"), ValueError, r"scale_mode: got 'iteration'"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, gamma="x"), TypeError, r"gamma: expected a real number"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, base_momentum=[0.8, 0.7]), ValueError, r"base_momentum: expected 1 values"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, max_momentum=[0.9, 0.9]), ValueError, r"max_momentum: expected 1 values"),
    (lambda o: S.CyclicLR(object(), 0.1, 1.0), TypeError, r"optimizer: expected a fastloss.optim optimizer"),
])
def test_cyclic_bad_arguments(make, exc, match):
    opt = _opt(momentum=0.9)
    with pytest.raises(exc, match=match):
        make(opt)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9  # left as it was
