"""The optimizers of `fastloss.optim` in plain NumPy: the readable specification and test oracle.

The bookkeeping (parameter groups, lazy state, argument checks, state_dict) is shared with
`fastloss.optim`, as the losses share `fastloss._args`; only the arithmetic differs: here it is
torch's single-tensor update (torch/optim/*.py) written out with NumPy, one parameter at a time.

Unlike the loss references (which compute in float64), each update runs in the parameter's dtype,
operation by operation in torch's order, with Python-float scalars rounded to that dtype (NumPy's
rule for a Python scalar with an array). That *is* what torch computes for a float32 parameter, and
an optimizer's state carries its rounding from step to step, so a float64 "truth" would drift away
from every real implementation. fastloss must match this reference to the last bit.
"""

from __future__ import annotations

import numpy as np

from ..optim import _optimizer as _fast

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def _lerp(start, end, weight):
    """torch's lerp on CPU: start + w·(end − start) for |w| < 0.5, else end + (w − 1)·(end − start),
    with w the weight rounded to the dtype (the test too)."""
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        return start + w * (end - start)
    return end + (w - start.dtype.type(1)) * (end - start)


def sgd_update(p, grad, buf, step, lr, momentum, dampening, weight_decay, nesterov, maximize):
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if step <= 1:  # the buffer is new: torch.clone(grad)
            buf[...] = g
        else:
            buf[...] = buf * momentum + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p[...] = p + (-lr) * g


def adam_update(p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                amsgrad, maximize, decoupled):
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            p[...] = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    exp_avg[...] = _lerp(exp_avg, g, 1 - beta1)
    exp_avg_sq[...] = exp_avg_sq * beta2 + (1 - beta2) * g * g
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    p[...] = p + (-step_size) * exp_avg / denom


def rmsprop_update(p, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum, centered,
                   maximize):
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    square_avg[...] = square_avg * alpha + (1 - alpha) * g * g
    if centered:
        grad_avg[...] = _lerp(grad_avg, g, 1 - alpha)
        avg = np.sqrt(square_avg + -grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg = avg + eps
    if momentum > 0:
        momentum_buffer[...] = momentum_buffer * momentum + g / avg
        p[...] = p + (-lr) * momentum_buffer
    else:
        p[...] = p + (-lr) * g / avg


def adagrad_update(p, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum[...] = state_sum + g * g
    std = np.sqrt(state_sum) + eps
    p[...] = p + (-clr) * g / std


def _run(kind, calls):
    with np.errstate(all="ignore"):  # NaN/inf flow through as in torch
        for hyper, params, grads, states, steps in calls:
            for i, (p, g, step) in enumerate(zip(params, grads, steps)):
                s = [st[i] if st is not None else None for st in states]
                if kind == "sgd":
                    lr, momentum, dampening, wd, nesterov, maximize = hyper
                    sgd_update(p, g, s[0], step, lr, momentum, dampening, wd, bool(nesterov), bool(maximize))
                elif kind == "adam":
                    lr, b1, b2, eps, wd, amsgrad, maximize, decoupled = hyper
                    adam_update(p, g, s[0], s[1], s[2], step, lr, b1, b2, eps, wd, bool(amsgrad), bool(maximize),
                                bool(decoupled))
                elif kind == "rmsprop":
                    lr, alpha, eps, wd, momentum, centered, maximize = hyper
                    rmsprop_update(p, g, s[0], s[1], s[2], lr, alpha, eps, wd, momentum, bool(centered),
                                   bool(maximize))
                else:
                    lr, lr_decay, wd, eps, maximize = hyper
                    adagrad_update(p, g, s[0], step, lr, lr_decay, wd, eps, bool(maximize))
    return -1, -1


class _Reference:
    _fast = False  # every step takes the checking path: gradients validated and converted in Python

    def _run(self, calls):
        return _run(self._kind, calls)


class SGD(_Reference, _fast.SGD):
    __doc__ = _fast.SGD.__doc__


class Adam(_Reference, _fast.Adam):
    __doc__ = _fast.Adam.__doc__


class AdamW(_Reference, _fast.AdamW):
    __doc__ = _fast.AdamW.__doc__


class RMSprop(_Reference, _fast.RMSprop):
    __doc__ = _fast.RMSprop.__doc__


class Adagrad(_Reference, _fast.Adagrad):
    __doc__ = _fast.Adagrad.__doc__
