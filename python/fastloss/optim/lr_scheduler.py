"""Learning-rate schedules with torch.optim.lr_scheduler's semantics, value for value.

As in torch, constructing a schedule records each group's `initial_lr` and performs an initial step
(epoch 0; when resuming with `last_epoch=k`, epoch k + 1, in which the recursive schedules leave the
saved lr as it is, as torch 2.13's do); `step()` then moves one epoch on and writes the new lr into
`optimizer.param_groups`.
Most schedules use torch's *recursive* ("chainable") form, which scales the group's current lr, so
their values carry torch's float64 rounding (and compound with external lr edits, as in torch).
`get_last_lr()` returns a list with one lr per group.

Three schedules differ from that pattern, as in torch:
- `ChainedScheduler` steps every schedule it holds once per `step()` (their factors multiply), and
  takes no initial step of its own (each schedule took its own at construction);
- `ReduceLROnPlateau` is driven by a metric, `step(metrics)`: it takes no initial step, records no
  `initial_lr`, and multiplies the lr by `factor` once the metric has not improved for more than
  `patience` epochs;
- `CyclicLR` (per batch) sets the lr to `base_lr` at construction and cycles it between `base_lr`
  and `max_lr` in closed form (cycling the momentum, or Adam's beta1, inversely).
"""

from __future__ import annotations

import math
import numbers
import operator
import types
from bisect import bisect_right
from collections import Counter

from .._args import float_arg

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LinearLR",
    "OneCycleLR",
    "PolynomialLR",
    "SequentialLR",
    "ConstantLR",
    "LambdaLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "CyclicLR",
]


def _int_arg(value, name, minimum):
    """An integer argument; a float with an integral value (2.0, as configuration files give) is
    taken as that integer, as torch's arithmetic would."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got bool")
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if not float(value).is_integer():  # (False for inf and NaN)
            raise ValueError(f"{name}: got {value!r}, expected a whole number")
        value = int(value)
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name}: got {value}, expected an integer >= {minimum}")
    return value


def _check_optimizer(optimizer):
    if not hasattr(optimizer, "param_groups"):
        raise TypeError(f"optimizer: expected a fastloss.optim optimizer, got {type(optimizer).__name__}")


class LRScheduler:
    """Base class (torch's LRScheduler): subclasses define `get_lr()` for the epoch `last_epoch`."""

    # True during the step taken at construction. The recursive schedules that check it (as torch's
    # do) leave the lr as it is then: a fresh start's epoch 0, or a resumed run's lr as saved.
    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if not isinstance(last_epoch, int) or isinstance(last_epoch, bool):
            raise TypeError(f"last_epoch: expected an integer, got {type(last_epoch).__name__}")
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        raise NotImplementedError

    def get_last_lr(self):
        """The lr of every group after the last step (a list)."""
        return list(self._last_lr)

    def step(self, epoch=None):
        """Moves to the next epoch (or, deprecated as in torch, to `epoch` via the closed form)."""
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        """The work of `step` without counting the call (SequentialLR restarts a schedule with it)."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Every attribute but the optimizer (as torch)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)

    def _lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """lr·gamma every `step_size` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _int_arg(step_size, "step_size", 1)
        self.gamma = float_arg(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr·gamma at each milestone (a milestone listed twice applies gamma twice)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(_int_arg(m, "milestones[]", 0) for m in milestones)
        self.gamma = float_arg(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._lrs()]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(milestones, self.last_epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr·gamma every epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = float_arg(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base lr down to `eta_min` over `T_max` epochs, torch's recursive form (not
    clamped: past T_max the lr rises again with period 2·T_max, as in torch)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = _int_arg(T_max, "T_max", 1)
        self.eta_min = float_arg(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, eta = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._lrs()
        if self._step_count == 1 and t > 0:
            return [eta + (base - eta) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
                    for lr, base in zip(self._lrs(), self.base_lrs)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta
                for lr in self._lrs()]

    def _get_closed_form_lr(self):
        t, T, eta = self.last_epoch, self.T_max, self.eta_min
        return [eta + (base - eta) * (1 + math.cos(math.pi * t / T)) / 2 for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: cosine from the base lr to `eta_min` over T_i epochs, restarting with T_i ← T_i·T_mult."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        self.T_0 = _int_arg(T_0, "T_0", 1)
        self.T_mult = _int_arg(T_mult, "T_mult", 1)
        self.eta_min = float_arg(eta_min, "eta_min")
        self.T_i = self.T_0
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base in self.base_lrs]

    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i  # (a resumed run may start past T_i)
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"epoch: expected a non-negative number, got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult**n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._step_count += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._lrs()


class LinearLR(LRScheduler):
    """Multiplies the lr by a factor going linearly from `start_factor` to `end_factor` over
    `total_iters` epochs (the usual warm-up), torch's recursive form."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        start_factor = float_arg(start_factor, "start_factor")
        end_factor = float_arg(end_factor, "end_factor")
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor: got {start_factor!r}, expected a number in (0, 1]")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"end_factor: got {end_factor!r}, expected a number in [0, 1]")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = _int_arg(total_iters, "total_iters", 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, s, e, T = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return [lr * s for lr in self._lrs()]
        if self._is_initial or t > T:
            return self._lrs()
        return [lr * (1.0 + (e - s) / (T * s + (t - 1) * (e - s))) for lr in self._lrs()]

    def _get_closed_form_lr(self):
        t, s, e, T = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        return [base * (s + (e - s) * min(T, t) / T) for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr·(1 − t/total_iters)^power, recursive form; constant after total_iters."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters = _int_arg(total_iters, "total_iters", 1)
        self.power = float_arg(power, "power")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T = self.last_epoch, self.total_iters
        if self._is_initial or t > T:
            return self._lrs()
        factor = ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.power
        return [lr * factor for lr in self._lrs()]

    def _get_closed_form_lr(self):
        t, T = self.last_epoch, self.total_iters
        return [base * (1.0 - min(T, t) / T) ** self.power for base in self.base_lrs]


def _anneal_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start, end, pct):
    return (end - start) * pct + start


def _per_group(name, optimizer, value):
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name}: expected {len(optimizer.param_groups)} values (one per group), got {len(value)}")
        return [float_arg(v, name) for v in value]
    return [float_arg(value, name)] * len(optimizer.param_groups)


def _set_momentum(group, use_beta1, momentum):
    """The group's momentum, or Adam's beta1 (`betas[0]`), as the cycling schedules set it."""
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def _start_momentum_cycle(optimizer, use_beta1, max_momentums, base_momentums):
    """Each group starts at its max momentum and records both ends (as torch's groups do)."""
    for mm, bm, group in zip(max_momentums, base_momentums, optimizer.param_groups):
        _set_momentum(group, use_beta1, mm)
        group["max_momentum"] = mm
        group["base_momentum"] = bm


class OneCycleLR(LRScheduler):
    """The 1cycle policy: lr from max_lr/div_factor up to max_lr over pct_start of the steps, then down
    to initial_lr/final_div_factor (three_phase: back to initial_lr first), cosine or linear; the
    momentum (or Adam's beta1) cycles inversely when `cycle_momentum`. Stepping past `total_steps`
    raises ValueError, as in torch."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        _check_optimizer(optimizer)
        if total_steps is not None:
            self.total_steps = _int_arg(total_steps, "total_steps", 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _int_arg(epochs, "epochs", 1) * _int_arg(steps_per_epoch, "steps_per_epoch", 1)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        pct_start = float_arg(pct_start, "pct_start")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"pct_start: got {pct_start!r}, expected a number in [0, 1]")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy: got {anneal_strategy!r}, expected 'cos' or 'linear'")
        self._anneal = _anneal_cos if anneal_strategy == "cos" else _anneal_linear
        T = self.total_steps
        if three_phase:
            self._phases = [
                (float(pct_start * T) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * T) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                (float(pct_start * T) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        div_factor, final_div_factor = float_arg(div_factor, "div_factor"), float_arg(final_div_factor, "final_div_factor")
        if last_epoch == -1:
            for m, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = m / div_factor
                group["max_lr"] = m
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in defaults
            max_m = _per_group("max_momentum", optimizer, max_momentum)
            base_m = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                _start_momentum_cycle(optimizer, self.use_beta1, max_m, base_m)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    lr = self._anneal(group[lr0], group[lr1], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[m0], group[m1], pct)
                    break
                start = end
            lrs.append(lr)
            if self.cycle_momentum:
                _set_momentum(group, self.use_beta1, momentum)
        return lrs


class _Composite(LRScheduler):
    """A schedule made of other schedules (`self._schedulers`): its state holds theirs (as torch)."""

    def state_dict(self):
        """Every attribute but the optimizer, with the held schedules' own state dicts."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        d["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return d

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        subs = state_dict.pop("_schedulers")
        self.__dict__.update(state_dict)
        for s, sd in zip(self._schedulers, subs):
            s.load_state_dict(sd)


class SequentialLR(_Composite):
    """Runs `schedulers` one after another, switching at `milestones` (len(schedulers) − 1 epochs);
    at a switch the next schedule restarts from epoch 0 (its closed form where it has one, as torch's
    `_update_lr(0)`). Construction resets every group's lr to its `initial_lr`, undoes the initial
    step of every schedule it holds (of nested ones too) and takes one with the schedule that runs at
    epoch 0."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_optimizer(optimizer)
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError("schedulers: expected at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler):
                raise TypeError(f"schedulers[{i}]: expected an LR scheduler, got {type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}]: was built on a different optimizer")
            if i > 0 and isinstance(s, _Composite):
                # torch accepts it, then raises NotImplementedError at the milestone: a composite
                # has no lr of its own to restart from epoch 0.
                raise TypeError(f"schedulers[{i}]: a {type(s).__name__} can only come first in a SequentialLR "
                                "(it cannot be restarted at a milestone)")
        milestones = [_int_arg(m, "milestones[]", 0) for m in milestones]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"milestones: expected {len(schedulers) - 1} milestones for {len(schedulers)} "
                             f"schedulers, got {len(milestones)}")
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        _undo_initial_steps(self)
        first = schedulers[bisect_right(milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self):
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


def _undo_initial_steps(scheduler):
    """Moves every schedule a composite holds, at any depth, one epoch back (not the composites)."""
    if isinstance(scheduler, _Composite):
        for s in scheduler._schedulers:
            _undo_initial_steps(s)
    elif hasattr(scheduler, "last_epoch"):
        scheduler.last_epoch -= 1


class ConstantLR(LRScheduler):
    """lr·factor for the first `total_iters` epochs, then the base lr (torch's recursive form)."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        factor = float_arg(factor, "factor")
        if not 0 <= factor <= 1:
            raise ValueError(f"factor: got {factor!r}, expected a number in [0, 1]")
        self.factor = factor
        self.total_iters = _int_arg(total_iters, "total_iters", 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._lrs()]
        if self.last_epoch != self.total_iters:
            return self._lrs()
        return [lr * (1.0 / self.factor) for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr = base_lr · lr_lambda(epoch); `lr_lambda` is a function or a list of one per group.
    (The functions are not part of `state_dict()`.)"""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"lr_lambda: expected {n} functions (one per group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        for f in self.lr_lambdas:
            if not callable(f):
                raise TypeError(f"lr_lambda: expected a function of the epoch, got {type(f).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class ChainedScheduler(_Composite):
    """Steps every schedule in `schedulers` (all on one optimizer) once per `step()`, in order, so
    chainable schedules compose: e.g. ConstantLR(factor) + ExponentialLR(gamma) gives
    base·factor·gamma^t while the ConstantLR is active. It takes no initial step of its own (each
    schedule already took one at construction); `optimizer` defaults to the first schedule's."""

    def __init__(self, schedulers, optimizer=None):
        try:
            schedulers = list(schedulers)
        except TypeError:
            raise TypeError(f"schedulers: expected a sequence of LR schedulers, "
                            f"got {type(schedulers).__name__}") from None
        if not schedulers:
            raise ValueError("schedulers: expected at least one scheduler")
        if optimizer is not None:
            _check_optimizer(optimizer)
        for i, s in enumerate(schedulers):
            if not hasattr(s, "optimizer"):
                raise TypeError(f"schedulers[{i}]: expected an LR scheduler (with an `optimizer`), "
                                f"got {type(s).__name__}")
            if isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"schedulers[{i}]: ReduceLROnPlateau cannot be chained (its step() needs the metric)")
        if optimizer is None:
            optimizer = schedulers[0].optimizer
        for i, s in enumerate(schedulers):
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}]: was built on a different optimizer")
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._last_lr = self._lrs()

    def step(self):
        for s in self._schedulers:
            s.step()
        self._last_lr = self._lrs()


class ReduceLROnPlateau(LRScheduler):
    """Multiplies each group's lr by `factor` (not below its `min_lr`) when the metric passed to
    `step(metrics)` has not improved for more than `patience` epochs, then waits `cooldown` epochs
    (bad epochs are not counted) before counting again. Improvement is judged against the best
    value so far: in 'min' mode a < best·(1 − threshold) ('rel') or a < best − threshold ('abs');
    in 'max' mode a > best·(1 + threshold) or a > best + threshold. A reduction smaller than `eps`
    is skipped. No initial step and no `initial_lr`, as in torch."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        factor = float_arg(factor, "factor")
        if not factor < 1.0:
            raise ValueError(f"factor: got {factor!r}, expected a number < 1")
        self.factor = factor
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        else:
            self.default_min_lr = float_arg(min_lr, "min_lr")
            self.min_lrs = [self.default_min_lr] * len(optimizer.param_groups)
        self.patience = _int_arg(patience, "patience", 0)
        self.cooldown = _int_arg(cooldown, "cooldown", 0)
        self.eps = float_arg(eps, "eps")
        self.last_epoch = 0
        self._last_lr = self._lrs()
        self._init_is_better(mode, float_arg(threshold, "threshold"), threshold_mode)
        self._reset()

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in ("min", "max"):
            raise ValueError(f"mode: got {mode!r}, expected 'min' or 'max'")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: got {threshold_mode!r}, expected 'rel' or 'abs'")
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def is_better(self, a, best):
        """Whether the metric value `a` improves on `best` by more than the threshold."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return a < best * (1.0 - self.threshold)
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    _is_better = is_better  # torch's later name

    def step(self, metrics, epoch=None):
        """Records the metric of one more epoch (or, deprecated as in torch, of epoch `epoch`) and
        reduces the lr if it has stopped improving."""
        if isinstance(metrics, (str, bytes)):
            raise TypeError(f"metrics: expected a real number, got {type(metrics).__name__}")
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"metrics: expected a real number, got {type(metrics).__name__}") from None
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"min_lrs: the optimizer has {len(groups)} param groups but ReduceLROnPlateau "
                                   f"was given {len(self.min_lrs)} min_lr values (a group was added?); set "
                                   "`min_lrs` to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(LRScheduler):
    """Cyclical learning rates (per batch): the lr goes linearly from `base_lr` up to `max_lr` over
    `step_size_up` steps and back down over `step_size_down` (default: the same), the amplitude
    scaled by 1 ('triangular'), 1/2^(cycle−1) ('triangular2'), gamma^step ('exp_range') or
    `scale_fn` of the cycle number (from 1) or of the step (`scale_mode`); `mode` is ignored when
    `scale_fn` is given. With `cycle_momentum`, the momentum (or Adam's beta1) goes inversely from
    `max_momentum` to `base_momentum`. Not chainable: the lr is set in closed form from `base_lr`."""

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
                 gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True, base_momentum=0.8,
                 max_momentum=0.9, last_epoch=-1):
        _check_optimizer(optimizer)
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        up = float_arg(step_size_up, "step_size_up", minimum=0, exclusive=True)
        down = up if step_size_down is None else float_arg(step_size_down, "step_size_down", minimum=0)
        if scale_fn is None and mode not in _CYCLIC_MODES:
            raise ValueError(f"mode: got {mode!r}, expected 'triangular', 'triangular2' or 'exp_range' "
                             "(or a scale_fn)")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn: expected a function of the cycle or the step, got {type(scale_fn).__name__}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode: got {scale_mode!r}, expected 'cycle' or 'iterations'")
        gamma = float_arg(gamma, "gamma")
        cycle_momentum = bool(cycle_momentum)
        if cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)

        self.max_lrs = max_lrs
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
            if cycle_momentum:
                _start_momentum_cycle(optimizer, self.use_beta1, max_momentums, base_momentums)
        # As in torch, the initial step runs with base_lrs = the groups' initial_lr (which is base_lr
        # unless an earlier schedule recorded another), then base_lrs becomes base_lr.
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self):
        # the built-in modes fix scale_mode, and exp_range its gamma, here (as torch does: a later
        # change of `gamma` takes effect only through load_state_dict)
        self._exp_range_gamma = self.gamma
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x):
        """The amplitude scale at cycle (or step) x."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self._exp_range_gamma**x

    def get_lr(self):
        t = self.last_epoch
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle  # position within the cycle, in [0, 1)
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        at = cycle if self.scale_mode == "cycle" else t
        # scale_fn is called once per group and value, in torch's order (a custom one may keep state)
        lrs = [base + (top - base) * scale_factor * self.scale_fn(at)
               for base, top in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            momentums = [mm - (mm - bm) * scale_factor * self.scale_fn(at)
                         for bm, mm in zip(self.base_momentums, self.max_momentums)]
            for group, momentum in zip(self.optimizer.param_groups, momentums):
                _set_momentum(group, self.use_beta1, momentum)
        return lrs

    def state_dict(self):
        """As torch: a custom scale_fn is saved only as the `__dict__` of a callable object (None for a
        plain function or lambda, which load_state_dict leaves as constructed)."""
        state = super().state_dict()
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = None
        if fn is not None and not isinstance(fn, types.FunctionType) and hasattr(fn, "__dict__"):
            state["_scale_fn_custom"] = dict(fn.__dict__)
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        fn = state_dict.pop("_scale_fn_custom", None)
        super().load_state_dict(state_dict)
        if fn is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()
