"""The loss object: one callable with `.grad` and `.value_and_grad`, as API.md describes."""

from __future__ import annotations


class Loss:
    """A loss function `f(*inputs, **options)` with two more entry points:

    - `f.grad(*inputs, **options, grad_output=None, out=None)`: the gradient of
      `sum(f(...) * grad_output)` with respect to the differentiable inputs;
    - `f.value_and_grad(...)`: `(value, gradient)` computed in one pass.

    `impl` computes both; it takes keyword arguments `want_value`, `want_grad`,
    `grad_output` and `out` besides the loss's own, and returns `(value, gradient)`.

    `fast`, when set, is tried first for calls with positional inputs only (default options, no
    `grad_output`): `fast(inputs, want_value, want_grad, out)` returns the value, the gradient (in
    `out` when given) or the pair, or None when the arguments need `impl`'s handling. It spares the
    common call on small arrays the microseconds of the general path.
    """

    def __init__(self, impl, module, fast=None):
        self._impl = impl
        self.fast = fast
        self.__name__ = self.__qualname__ = impl.__name__
        self.__doc__ = impl.__doc__
        self.__module__ = module

    def __call__(self, *inputs, **options):
        if not options and self.fast is not None:
            result = self.fast(inputs, True, False)
            if result is not None:
                return result
        return self._impl(*inputs, want_value=True, want_grad=False, grad_output=None, out=None, **options)[0]

    def grad(self, *inputs, grad_output=None, out=None, **options):
        if not options and grad_output is None and self.fast is not None:
            result = self.fast(inputs, False, True, out)
            if result is not None:
                return result
        return self._impl(*inputs, want_value=False, want_grad=True, grad_output=grad_output, out=out, **options)[1]

    def value_and_grad(self, *inputs, grad_output=None, out=None, **options):
        if not options and grad_output is None and self.fast is not None:
            result = self.fast(inputs, True, True, out)
            if result is not None:
                return result
        return self._impl(*inputs, want_value=True, want_grad=True, grad_output=grad_output, out=out, **options)

    def __repr__(self):
        return f"<loss {self.__module__}.{self.__name__}>"


def losses(module_name, *impls):
    """Wraps implementation functions as `Loss` objects, keyed by name."""
    return {f.__name__: Loss(f, module_name) for f in impls}
