"""Identity ops that change only how gradients flow: disconnected_grad, zero_grad, grad_clip,
grad_scale (consider_constant is disconnected_grad, as in Theano)."""
from __future__ import annotations

from ..symbolic.graph import Apply
from .base import Op, as_tensor_variable


class GradModifier(Op):
    """Computes the identity; subclasses say what happens to the gradient."""

    view_map = {0: [0]}

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def impl(self, node):
        return lambda a: a

    def infer_shape(self, fgraph, node, shapes):
        return shapes


class DisconnectedGrad(GradModifier):
    """The input is treated as a constant: the cost is not connected to it through here."""

    def connection_pattern(self, node):
        return [[False]]

    def grad(self, inputs, grads):
        return [None]


class ZeroGrad(GradModifier):
    """The gradient through here is zero (but the input stays connected)."""

    def grad(self, inputs, grads):
        from .alloc import zeros_like
        return [zeros_like(grads[0])]


class GradClip(GradModifier):
    """The gradient through here is clipped to [lower, upper]."""

    __props__ = ("lower", "upper")

    def __init__(self, lower: float, upper: float):
        if lower > upper:
            raise ValueError(f"grad_clip: lower bound {lower} is above upper bound {upper}")
        self.lower, self.upper = float(lower), float(upper)

    def grad(self, inputs, grads):
        from .elemwise import ELEMWISE
        return [ELEMWISE["clip"](grads[0], self.lower, self.upper)]

    def R_op(self, inputs, eval_points):
        # The clipped gradient is not linear in the output gradient, so Rop cannot transpose
        # it; forward, the op is the identity.
        return [eval_points[0]]


class GradScale(GradModifier):
    """The gradient through here is multiplied by ``multiplier``."""

    __props__ = ("multiplier",)

    def __init__(self, multiplier: float):
        self.multiplier = float(multiplier)

    def grad(self, inputs, grads):
        return [grads[0] * self.multiplier]


_disconnected = DisconnectedGrad()
_zero = ZeroGrad()


def disconnected_grad(x):
    return _disconnected(x)


consider_constant = disconnected_grad


def zero_grad(x):
    return _zero(x)


def grad_clip(x, lower_bound: float, upper_bound: float):
    return GradClip(lower_bound, upper_bound)(x)


def grad_scale(x, multiplier: float):
    return GradScale(multiplier)(x)
