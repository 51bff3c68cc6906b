"""Gradient plumbing shared by ops: lifting a scalar row's rule to Elemwise, the namespace the
rules build with, and unbroadcasting.

Broadcasting is undone here, once: a row's rule computes the gradient as if all shapes were
equal, and ``unbroadcast_to`` sums it over the dimensions where the input was broadcast.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..symbolic.graph import Variable
from ..symbolic.types import DISCRETE_DTYPES, TensorType
from .base import as_tensor_variable
from .dimshuffle import patternbroadcast
from .elemwise import ELEMWISE, cast
from .reduce import sum as sum_

_NAMESPACE: list = []
_DISCRETE = frozenset(DISCRETE_DTYPES)  # a set: hot paths test dtypes against it


def rule_namespace() -> SimpleNamespace:
    """``T`` for the scalar table's gradient rules: every row as a tensor operation by name
    (``T.cos``, ``T.switch``...), plus ``cast`` and ``zeros_like``. Built once, from the ops
    layer, and passed to each rule, so that the rules need no import of the Theano face."""
    if not _NAMESPACE:
        from .alloc import zeros_like  # alloc imports this module; runs once
        _NAMESPACE.append(SimpleNamespace(**ELEMWISE, cast=cast, zeros_like=zeros_like))
    return _NAMESPACE[0]


def unbroadcast_to(g, x):
    """Sum ``g`` over the dimensions where ``x`` is broadcastable (and leading extra ones)."""
    xb, gb = x.type.broadcastable, g.type.broadcastable
    if gb == xb:  # the common case: nothing to sum, nothing to declare
        return g
    lead = g.ndim - x.ndim
    axes = list(range(lead)) + [lead + d for d, b in enumerate(x.broadcastable)
                                if b and not g.broadcastable[lead + d]]
    if axes:
        g = sum_(g, axis=axes, keepdims=True)
        if lead:
            g = g.dimshuffle(list(range(lead, g.ndim)))
    if g.broadcastable != x.broadcastable:
        g = patternbroadcast(g, x.broadcastable)
    return g


def fit_gradient(g, x):
    """Give the gradient ``g`` of ``x`` the type of ``x``: same broadcast pattern and dtype."""
    xt = x.type
    if isinstance(g, Variable):
        gt = g.type
        # Most gradients already fit: same pattern, same dtype (a tensor of x's kind).
        if isinstance(gt, TensorType) and gt.broadcastable == xt.broadcastable \
                and (gt.dtype == xt.dtype or xt.dtype in _DISCRETE):
            return g
    g = as_tensor_variable(g)
    if g.ndim < x.ndim:
        g = g.dimshuffle(["x"] * (x.ndim - g.ndim) + list(range(g.ndim)))
    g = unbroadcast_to(g, x)
    if g.dtype != x.dtype and x.dtype not in DISCRETE_DTYPES:
        g = cast(g, x.dtype)
    return g


def elemwise_grad(op, inputs, outputs, output_grads, fit: bool = True):
    """Apply the scalar row's rule; integer outputs and inputs carry no gradient.

    With ``fit`` false the gradients are left as the rule gives them, for a caller that fits
    those it keeps (reverse mode): fitting sums over broadcast dimensions, work lost on an
    input nobody differentiates (a constant factor)."""
    (z,), (g,) = outputs, output_grads
    n = len(inputs)
    if z.type.dtype in _DISCRETE or g is None:
        return [None] * n
    rule = op.scalar_op.grad
    if rule is None:  # undefined, an error only where the gradient is used
        raise NotImplementedError(f"{op.scalar_op.name} has no gradient rule")
    grads = rule(rule_namespace(), *inputs, z, g)
    if grads is None:  # piecewise-constant rows (``_zero``): nothing flows
        return [None] * n
    out = []
    for x, gx in zip(inputs, grads):
        if gx is None or x.type.dtype in _DISCRETE:
            out.append(None)
        else:
            out.append(fit_gradient(gx, x) if fit else gx)
    return out
