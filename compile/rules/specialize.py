"""Specialize: cheaper forms of the same computation."""
from __future__ import annotations

from ...ops.base import same_type
from ...ops.blas import Dot, DotAdd
from ...ops.elemwise import ELEMWISE as E
from ..rewrite import const_value, register

_POWERS = {
    2: lambda x: E["sqr"](x),
    0.5: lambda x: E["sqrt"](x),
    1: lambda x: x,
    -1: lambda x: E["inv"](x),
    3: lambda x: x * E["sqr"](x),
    -0.5: lambda x: E["inv"](E["sqrt"](x)),
}


@register("specialize", "pow")
def pow_to_cheaper(fgraph, node):
    """x ** 2 -> sqr(x); x ** 0.5 -> sqrt(x); x ** 1 -> x; x ** -1 -> inv(x); x ** 3 -> x sqr(x)"""
    x, p = node.inputs
    k = const_value(p)
    if k is None or k not in _POWERS or p.ndim > x.ndim:
        return None
    return same_type(_POWERS[k](x), node.outputs[0])


@register("specialize", "mul")
def mul_self_to_sqr(fgraph, node):
    """x * x -> sqr(x)"""
    x, y = node.inputs
    return same_type(E["sqr"](x), node.outputs[0]) if x is y else None


@register("specialize", "add")
def dot_plus_bias_to_dotadd(fgraph, node):
    """dot(a, b) + c -> DotAdd(a, b, c): adds c into the product in place (no second array)"""
    out = node.outputs[0]
    for d, c in (node.inputs, node.inputs[::-1]):
        if d.owner is None or not isinstance(d.owner.op, Dot) or d.ndim == 0:
            continue
        if fgraph.n_clients(d) != 1 or d.dtype != out.dtype:
            continue
        a, b = d.owner.inputs
        return same_type(DotAdd()(a, b, c), out)
    return None
