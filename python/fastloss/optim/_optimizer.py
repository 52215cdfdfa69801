"""The optimizer classes: PyTorch's `torch.optim` API over NumPy arrays, updated in place by Rust.

Bookkeeping (parameter groups, lazily created state, `state_dict`) lives here; the arithmetic is one
call to `_core.optim_step` per `step()` for all groups and dtypes, which borrows every array first,
then releases the GIL once and runs the fused kernels (src/optim.rs).

Differences from torch, by design:
- `step(grads)` takes the gradients as a list, one per parameter in `param_groups` order (NumPy arrays
  have no `.grad`); a `None` gradient skips that parameter (its state and step count are untouched),
  as torch skips a parameter whose `.grad` is None.
- `state` is keyed by the parameter's position (as in torch's `state_dict()`), not by the array.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._args import F32, F64, float_arg
from .._args import bool_arg as _bool_arg

_SLOTS = 3


def _param_arg(p, name):
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{name}: expected a writable float32 or float64 NumPy array, got {type(p).__name__}")
    if p.dtype != F32 and p.dtype != F64:
        raise TypeError(f"{name}: expected a native float32 or float64 array, got dtype {p.dtype}")
    flags = p.flags
    if not flags.writeable:
        raise ValueError(f"{name}: array is read-only; parameters are updated in place")
    if not (flags.c_contiguous and flags.aligned):
        raise ValueError(f"{name}: array must be C-contiguous and aligned; parameters are updated in place")
    return p


def _grad_arg(g, p, name):
    """A gradient as a C-contiguous aligned native array of its parameter's dtype and shape."""
    if not isinstance(g, np.ndarray):
        try:
            g = np.asarray(g)
        except Exception:  # noqa: BLE001  (anything NumPy cannot read is a type error here)
            raise TypeError(f"{name}: expected a NumPy array, got {type(g).__name__}") from None
    if g.dtype.kind != "f" or g.dtype.itemsize != p.dtype.itemsize:
        raise TypeError(f"{name}: dtype {g.dtype} differs from its parameter's dtype {p.dtype}")
    if g.shape != p.shape:
        raise ValueError(f"{name}: shape {g.shape} differs from its parameter's shape {p.shape}")
    flags = g.flags
    if g.dtype != p.dtype or not (flags.c_contiguous and flags.aligned):
        g = np.array(g, dtype=p.dtype, order="C", copy=True)
    return g


def _real(value, name, minimum=None):
    """A hyper-parameter as a float: a real number or a one-element array (torch allows a Tensor lr)."""
    if type(value) is float or type(value) is int:  # the common case, checked every step: keep it cheap
        v = float(value)
        if minimum is None or v >= minimum:
            return v
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(()).item()
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = float(value)
    return float_arg(value, name, minimum=minimum)


def _step_lr(value):
    """The learning rate a step uses: any number but NaN. As in torch, lr ≥ 0 is checked only where a
    group is created (`add_param_group`): torch's own LinearLR and CosineAnnealingLR recursions can
    end a hair below 0 (LinearLR(start_factor=0.3, end_factor=0.0, total_iters=3) on lr 0.1 ends at
    −2.2e-18), and training must not stop there."""
    v = _real(value, "lr")
    if v != v:
        raise ValueError("lr: got nan, expected a number")
    return v


def bool_arg(value, name):
    if value is True or value is False:
        return value
    return _bool_arg(value, name)


def _unit(value, name):
    """A float in [0, 1) (a beta or a decay)."""
    v = _real(value, name)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}: got {v!r}, expected a number in [0, 1)")
    return v


_PLAIN = frozenset({float, int, bool, str, type(None)})


def _immutable(v):
    return type(v) in _PLAIN or (type(v) is tuple and all(_immutable(x) for x in v))


def _snapshot(keys, values):
    """A group's values other than its params, in a form that a later in-place edit of one of them
    cannot change."""
    return tuple(v if type(v) in _PLAIN else _frozen(v) for k, v in zip(keys, values) if k != "params")


def _frozen(v):
    """A snapshot of a hyper-parameter value that a later in-place edit cannot change."""
    if isinstance(v, np.ndarray):
        return ("ndarray", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return tuple(x if type(x) in _PLAIN else _frozen(x) for x in v)
    return v


class _GroupState:
    """The state of one parameter group, stored as lists parallel to its `params` so a step can
    hand them to Rust without a Python loop: `arrays[k][i]` is state slot k of parameter i (or
    None), `steps[i]` its step count, `full[k]` whether slot k exists for every parameter."""

    __slots__ = ("arrays", "steps", "full", "cache")

    def __init__(self, n):
        self.arrays = [[None] * n for _ in range(_SLOTS)]
        self.steps = [0.0] * n
        self.full = [n == 0] * _SLOTS
        self.cache = None  # (keys, values or None, snapshot or None, (hyper, state lists)): Optimizer._cached


class Optimizer:
    """Base class: parameter groups, state and the step protocol (see the module docstring)."""

    _kind = ""                          # the rule's name in _core.optim_step
    _slot_names = (None, None, None)    # torch's names of the state arrays in each slot
    _has_step = True                    # torch keeps state['step']
    _fast = True                        # try the direct Rust call before converting gradients

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self._gstates = []
        if isinstance(params, np.ndarray) or isinstance(params, dict):
            raise TypeError("params: expected an iterable of arrays or of dicts (parameter groups), "
                            f"got {type(params).__name__}")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"params: expected an iterable of arrays or dicts, got {type(params).__name__}") from None
        if not params:
            raise ValueError("params: the optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    # ----------------------------------------------------------------------------------------
    # Groups and hyper-parameters
    # ----------------------------------------------------------------------------------------

    def add_param_group(self, param_group):
        """Adds a group (a dict with 'params' and optional hyper-parameters; missing ones take the
        optimizer's defaults), as torch's `add_param_group`."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param group: expected a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param group: missing 'params'")
        gi = len(self.param_groups)
        params = param_group["params"]
        if isinstance(params, np.ndarray):
            params = [params]
        elif isinstance(params, (set, dict)):
            raise TypeError("params: expected an ordered collection of arrays, got a set or dict")
        else:
            params = list(params)
        for i, p in enumerate(params):
            _param_arg(p, f"param_groups[{gi}]['params'][{i}]")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(f"param_groups[{gi}]['params'][{i}]: some parameters appear more than once")
            seen.add(id(p))
        group = {k: v for k, v in param_group.items() if k != "params"}
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        group = {"params": params, **group}
        self._hyper(group)  # validates
        _real(group["lr"], "lr", 0.0)  # a new group's lr must not be negative (steps allow it: `_step_lr`)
        self.param_groups.append(group)
        self._gstates.append(_GroupState(len(params)))
        self._init_state(group, self._gstates[-1])

    def _hyper(self, group):
        """The group's hyper-parameters as the list of floats `_core.optim_step` reads (validated)."""
        raise NotImplementedError

    def _used(self, hyper):
        """Which state slots the rule uses with these hyper-parameters."""
        raise NotImplementedError

    def _new_state(self, k, p, group):
        return np.zeros_like(p)

    def _init_state(self, group, st):
        """State created at construction (torch's Adagrad does this); lazily otherwise."""

    def _commit_steps(self, st, idx, steps, hyper):
        """Records the step counts of the parameters that were updated (idx None: all of them)."""
        if idx is None:
            st.steps = steps
        else:
            for i, s in zip(idx, steps):
                st.steps[i] = s

    def _run(self, calls):
        return _core.optim_step(self._kind, calls)

    # ----------------------------------------------------------------------------------------
    # The step
    # ----------------------------------------------------------------------------------------

    def step(self, grads):
        """Updates every parameter in place from `grads` (a list, one gradient per parameter in
        `param_groups` order; None skips that parameter). Nothing is written unless every gradient,
        parameter and hyper-parameter is valid."""
        if type(grads) is not list:
            if isinstance(grads, (np.ndarray, dict, str)) or not hasattr(grads, "__iter__"):
                raise TypeError(f"grads: expected a list of arrays (one per parameter), got {type(grads).__name__}")
            grads = list(grads)
        if self._fast:
            # The direct call: each group's cached hyper-parameters and state, the gradients as
            # they are (the kernel's binding checks them and rejects the step before writing
            # anything if one is not a ready float array). Anything unusual (a group whose length
            # changed, state to create, a gradient to convert or a wrong count) takes the
            # checking path below, which also raises the errors.
            calls = []
            offset = 0
            for group, st in zip(self.param_groups, self._gstates):
                params = group["params"]
                n = len(params)
                cached = self._cached(group, st) if n == len(st.steps) else None
                if cached is None:
                    break
                calls.append((cached[0], params, grads[offset:offset + n], cached[1], [s + 1.0 for s in st.steps]))
                offset += n
            else:
                if offset == len(grads) and len(calls) == len(self.param_groups) and self._run(calls)[0] < 0:
                    for call, st in zip(calls, self._gstates):
                        self._commit_steps(st, None, call[4], call[0])
                    return None
        self._check_lengths(grads)
        self._slow_step(grads, [self._hyper(group) for group in self.param_groups])
        return None

    def _check_lengths(self, grads):
        total = 0
        for gi, group in enumerate(self.param_groups):
            n = len(group["params"])
            if gi >= len(self._gstates) or n != len(self._gstates[gi].steps):
                raise ValueError(f"param_groups[{gi}]['params'] changed length; use add_param_group to add parameters")
            total += n
        if len(grads) != total:
            raise ValueError(f"grads: expected {total} gradients (one per parameter), got {len(grads)}")

    def _cached(self, group, st):
        """(hyper, state lists) for the fast path, or None when some state must be created first.
        Validated hyper-parameters are reused while the group is unchanged, since validating costs
        more than a small step. A group whose values are all immutable (numbers, strings, tuples of
        them) is compared with its keys and values at validation: tuple comparisons that meet the
        same objects and return at once. One holding a list or an array is compared by a snapshot
        of its values, so that in-place edits count."""
        keys, values = tuple(group), tuple(group.values())
        c = st.cache
        if c is not None:
            same_keys, same_values, snapshot, result = c
            try:
                if keys == same_keys and (values == same_values if snapshot is None
                                          else _snapshot(keys, values) == snapshot):
                    return result
            except Exception:  # noqa: BLE001  (a value whose == is not a bool: validate afresh)
                pass
        hyper = self._hyper(group)
        used = self._used(hyper)
        if not all(st.full[k] for k in range(_SLOTS) if used[k]):
            return None
        result = (hyper, [st.arrays[k] if used[k] else None for k in range(_SLOTS)])
        if all(_immutable(v) for k, v in zip(keys, values) if k != "params"):
            st.cache = (keys, values, None, result)
        else:
            st.cache = (keys, None, _snapshot(keys, values), result)
        return result

    def _slow_step(self, grads, hypers):
        # 1. Every gradient checked and converted (raises before any state is created).
        plan = []
        offset = 0
        for gi, group in enumerate(self.param_groups):
            params = group["params"]
            idx, gs = [], []
            for i, p in enumerate(params):
                g = grads[offset + i]
                if g is not None:
                    gs.append(_grad_arg(g, p, f"grads[{offset + i}]"))
                    idx.append(i)
            offset += len(params)
            plan.append((idx, gs))
        # 2. Missing state made (zeros; torch creates it lazily on a parameter's first step), but
        #    kept aside until the step has run, so a failed step leaves the state as it was.
        calls, created = [], []
        for group, st, hyper, (idx, gs) in zip(self.param_groups, self._gstates, hypers, plan):
            params = group["params"]
            used = self._used(hyper)
            new = []
            states = [None] * _SLOTS
            for k in range(_SLOTS):
                if used[k]:
                    arrays = st.arrays[k]
                    lst = []
                    for i in idx:
                        a = arrays[i]
                        if a is None:
                            a = self._new_state(k, params[i], group)
                            new.append((k, i, a))
                        lst.append(a)
                    states[k] = lst
            created.append(new)
            calls.append((hyper, [params[i] for i in idx], gs, states, [st.steps[i] + 1.0 for i in idx]))
        gi, i = self._run(calls)
        if gi >= 0:  # cannot happen: every gradient was converted above
            raise RuntimeError(f"internal error: gradient {i} of group {gi} rejected after conversion")
        for (hyper, _, _, _, steps), st, (idx, _), new in zip(calls, self._gstates, plan, created):
            st.cache = None
            for k, i, a in new:
                st.arrays[k][i] = a
            for k in {k for k, _, _ in new}:
                st.full[k] = all(a is not None for a in st.arrays[k])
            self._commit_steps(st, idx, steps, hyper)

    # ----------------------------------------------------------------------------------------
    # State
    # ----------------------------------------------------------------------------------------

    def _entry(self, st, i):
        """Parameter i's state as torch names it, or None where it has none (live arrays)."""
        if st.arrays[0][i] is None:
            return None
        d = {"step": st.steps[i]} if self._has_step else {}
        for k, name in enumerate(self._slot_names):
            if name is not None and st.arrays[k][i] is not None:
                d[name] = st.arrays[k][i]
        return d

    @property
    def state(self):
        """{parameter position: {name: value}}: the live state (torch's names; arrays are not copies)."""
        out = {}
        pos = 0
        for group, st in zip(self.param_groups, self._gstates):
            for i in range(len(group["params"])):
                e = self._entry(st, i)
                if e is not None:
                    out[pos] = e
                pos += 1
        return out

    def state_dict(self):
        """torch's format: {'state': {position: {...}}, 'param_groups': [{..., 'params': [positions]}]},
        with copies of every state array."""
        state = {pos: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in e.items()}
                 for pos, e in self.state.items()}
        groups = []
        pos = 0
        for group in self.param_groups:
            n = len(group["params"])
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(pos, pos + n))
            groups.append(g)
            pos += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores a `state_dict()` (copies its arrays, converted to each parameter's dtype).
        Everything is checked before anything is replaced."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise TypeError("state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict: has {len(saved_groups)} parameter groups, the optimizer {len(self.param_groups)}")
        new_groups, new_states = [], []
        pos = 0
        saved_state = dict(state_dict["state"])
        slot_of = {name: k for k, name in enumerate(self._slot_names) if name is not None}
        for gi, (mine, saved) in enumerate(zip(self.param_groups, saved_groups)):
            params = mine["params"]
            if len(saved["params"]) != len(params):
                raise ValueError(f"state_dict: parameter group {gi} has {len(saved['params'])} parameters, "
                                 f"the optimizer's {len(params)}")
            group = {k: v for k, v in saved.items() if k != "params"}
            group = {"params": params, **group}
            self._hyper(group)
            st = _GroupState(len(params))
            for i, p in enumerate(params):
                entry = saved_state.get(pos + i, saved_state.get(str(pos + i)))
                if entry is None:
                    continue
                for name, value in entry.items():
                    if name == "step":
                        st.steps[i] = _real(value, f"state_dict: state[{pos + i}]['step']", minimum=0.0)
                    elif name in slot_of:
                        arr = np.asarray(value)
                        if arr.shape != p.shape:
                            raise ValueError(f"state_dict: state[{pos + i}][{name!r}] has shape {arr.shape}, "
                                             f"its parameter {p.shape}")
                        if arr.dtype.kind not in "fiu":
                            raise TypeError(f"state_dict: state[{pos + i}][{name!r}] has dtype {arr.dtype}")
                        st.arrays[slot_of[name]][i] = np.array(arr, dtype=p.dtype, order="C", copy=True)
                self._loaded_entry(st, i, entry)
            for k in range(_SLOTS):
                st.full[k] = all(a is not None for a in st.arrays[k])
            new_groups.append(group)
            new_states.append(st)
            pos += len(params)
        for gi, (group, st) in enumerate(zip(new_groups, new_states)):
            self.param_groups[gi].clear()
            self.param_groups[gi].update(group)
            self._init_state(self.param_groups[gi], st)
        self._gstates = new_states

    def _loaded_entry(self, st, i, entry):
        pass

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for gi, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            for k, v in group.items():
                if k != "params":
                    lines.append(f"    {k}: {v}")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """torch.optim.SGD: momentum (the buffer starts as the first gradient), dampening, Nesterov,
    coupled weight decay, maximize."""

    _kind = "sgd"
    _slot_names = ("momentum_buffer", None, None)
    _has_step = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _hyper(self, g):
        lr = _step_lr(g["lr"])
        momentum = _real(g["momentum"], "momentum", 0.0)
        dampening = _real(g["dampening"], "dampening")
        wd = _real(g["weight_decay"], "weight_decay", 0.0)
        nesterov = bool_arg(g["nesterov"], "nesterov")
        maximize = bool_arg(g["maximize"], "maximize")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"nesterov: Nesterov momentum requires momentum > 0 and dampening == 0 "
                             f"(got momentum={momentum!r}, dampening={dampening!r})")
        return [lr, momentum, dampening, wd, float(nesterov), float(maximize)]

    def _used(self, h):
        return (h[1] != 0.0, False, False)

    def _new_state(self, k, p, group):
        return np.empty_like(p)  # set to the gradient by its first step

    def _commit_steps(self, st, idx, steps, hyper):
        # st.steps counts the momentum updates (0: the buffer is new and takes the gradient).
        if hyper[1] != 0.0:
            super()._commit_steps(st, idx, steps, hyper)

    def _entry(self, st, i):
        if st.arrays[0][i] is None or st.steps[i] == 0:
            return None
        return {"momentum_buffer": st.arrays[0][i]}

    def _loaded_entry(self, st, i, entry):
        if "momentum_buffer" in entry:
            st.steps[i] = 1.0


class Adam(Optimizer):
    """torch.optim.Adam: bias-corrected moments (corrections in float64, as torch's CPU path),
    coupled L2 weight decay (or decoupled with `decoupled_weight_decay=True`, i.e. AdamW), AMSGrad
    (max over the raw second moment), maximize."""

    _kind = "adam"
    _slot_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def _hyper(self, g):
        lr = _step_lr(g["lr"])
        betas = g["betas"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        b1, b2 = _unit(betas[0], "betas[0]"), _unit(betas[1], "betas[1]")
        eps = _real(g["eps"], "eps", 0.0)
        wd = _real(g["weight_decay"], "weight_decay", 0.0)
        amsgrad = bool_arg(g["amsgrad"], "amsgrad")
        maximize = bool_arg(g["maximize"], "maximize")
        decoupled = bool_arg(g["decoupled_weight_decay"], "decoupled_weight_decay")
        return [lr, b1, b2, eps, wd, float(amsgrad), float(maximize), float(decoupled)]

    def _used(self, h):
        return (True, True, h[5] != 0.0)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay, p ← p·(1 − lr·weight_decay)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: eps outside the square root, centered variant, momentum, coupled weight
    decay, maximize."""

    _kind = "rmsprop"
    _slot_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _hyper(self, g):
        lr = _step_lr(g["lr"])
        alpha = _real(g["alpha"], "alpha", 0.0)
        eps = _real(g["eps"], "eps", 0.0)
        wd = _real(g["weight_decay"], "weight_decay", 0.0)
        momentum = _real(g["momentum"], "momentum", 0.0)
        centered = bool_arg(g["centered"], "centered")
        maximize = bool_arg(g["maximize"], "maximize")
        return [lr, alpha, eps, wd, momentum, float(centered), float(maximize)]

    def _used(self, h):
        return (True, h[4] > 0.0, h[5] != 0.0)


class Adagrad(Optimizer):
    """torch.optim.Adagrad: lr / (1 + (step − 1)·lr_decay), accumulator starting at
    `initial_accumulator_value` (created at construction, as torch does), eps outside the root."""

    _kind = "adagrad"
    _slot_names = ("sum", None, None)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _hyper(self, g):
        lr = _step_lr(g["lr"])
        lr_decay = _real(g["lr_decay"], "lr_decay", 0.0)
        wd = _real(g["weight_decay"], "weight_decay", 0.0)
        _real(g["initial_accumulator_value"], "initial_accumulator_value", 0.0)
        eps = _real(g["eps"], "eps", 0.0)
        maximize = bool_arg(g["maximize"], "maximize")
        return [lr, lr_decay, wd, eps, float(maximize)]

    def _used(self, h):
        return (True, False, False)

    def _new_state(self, k, p, group):
        return np.full_like(p, float(group["initial_accumulator_value"]))

    def _init_state(self, group, st):
        arrays = st.arrays[0]
        for i, p in enumerate(group["params"]):
            if arrays[i] is None:
                arrays[i] = self._new_state(0, p, group)
        st.full[0] = True
