"""Specialize: cheaper forms of the same computation."""
from __future__ import annotations

import numpy as np

from ...ops.base import constant, same_type
from ...ops.blas import Dot, DotAdd, Gemm
from ...ops.dimshuffle import DimShuffle
from ...ops.elemwise import ELEMWISE as E
from ...ops.elemwise import cast
from ...ops.nnet import Softmax
from ...symbolic.graph import Constant
from ..rewrite import const_value, op_key, register

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


def _scalar(v):
    """The 0-d variable whose value fills ``v`` (a 0-d variable, one padded with broadcastable
    dimensions, a constant with one entry), or None."""
    if v.ndim == 0:
        return v
    if not all(v.broadcastable):
        return None
    if isinstance(v, Constant):
        return constant(v.data.reshape(()), dtype=v.dtype)
    node = v.owner
    if node is not None and isinstance(node.op, DimShuffle) and node.inputs[0].ndim == 0:
        return node.inputs[0]
    return None


def _scaled_dot(fgraph, v):
    """``(s, dot node)`` when ``v`` is ``dot(x, y)`` (s None) or ``s * dot(x, y)`` with ``s`` a
    scalar, each computed for this use alone; else None."""
    node = v.owner
    if node is None or fgraph.n_clients(v) != 1:
        return None
    if isinstance(node.op, Dot):
        return (None, node) if v.ndim else None
    if op_key(v) != "mul" or len(node.inputs) != 2:
        return None
    for d, s in (node.inputs, node.inputs[::-1]):
        if d.owner is not None and isinstance(d.owner.op, Dot) and d.ndim and \
                fgraph.n_clients(d) == 1 and d.dtype == v.dtype:
            s = _scalar(s)
            return None if s is None else (s, d.owner)
    return None


def _scaled(fgraph, v):
    """``(s, z)`` when ``v`` is ``s * z`` with ``s`` a scalar (``z`` used here alone), else
    ``(None, v)``."""
    node = v.owner
    if node is not None and op_key(v) == "mul" and len(node.inputs) == 2 and \
            fgraph.n_clients(v) == 1:
        for z, s in (node.inputs, node.inputs[::-1]):
            s = _scalar(s)
            if s is not None and z.ndim == v.ndim and z.dtype == v.dtype:
                return s, z
    return None, v


def _negated(s, dtype: str):
    """-s in ``dtype`` (negating an unsigned scale in its own dtype would wrap around)."""
    if isinstance(s, Constant):
        return constant(-np.asarray(s.data, dtype=dtype), dtype=dtype)
    return E["neg"](cast(s, dtype))


@register("specialize", "add", "sub")
def scaled_dot_add_to_gemm(fgraph, node):
    """z + s * dot(x, y) -> Gemm(z, s, x, y, 1); z - s * dot(x, y) -> Gemm(z, -s, x, y, 1);
    s * dot(x, y) - z -> Gemm(z, s, x, y, -1); r * z + s * dot(x, y) -> Gemm(z, s, x, y, r)
    (s, r scalars; s is 1 for a plain dot): one BLAS call, which accumulates the product into
    z's own buffer when nothing reads z after it (a weight update)"""
    out = node.outputs[0]
    # floats only, every part in the output's dtype: then computing in that dtype is what the
    # separate nodes did (integers wrap in each intermediate's own dtype)
    if len(node.inputs) != 2 or out.ndim == 0 or out.type.numpy_dtype.kind != "f":
        return None
    sub = op_key(out) == "sub"
    for k, (d, z) in enumerate((node.inputs, node.inputs[::-1])):
        found = _scaled_dot(fgraph, d)
        if found is None:
            continue
        s, dot_node = found
        r, z = _scaled(fgraph, z)
        if z.dtype != out.dtype or dot_node.outputs[0].dtype != out.dtype:
            return None
        if s is None and r is None and not sub:
            return None  # dot(x, y) + z: a DotAdd (dot_plus_bias_to_dotadd)
        one = constant(np.asarray(1, dtype=out.dtype))
        s = one if s is None else s
        r = one if r is None else r
        if sub and k == 0:      # s dot - r z
            r = _negated(r, out.dtype)
        elif sub:               # r z - s dot
            s = _negated(s, out.dtype)
        x, y = dot_node.inputs
        return same_type(Gemm()(z, s, x, y, r), out)
    return None


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


@register("specialize", "Softmax")
def softmax_from_log_softmax(fgraph, node):
    """softmax(x) -> exp(log_softmax(x)) where log_softmax(x) is computed anyway (a loss and
    its gradient): one elementwise pass, which fuses with its readers, instead of a second
    pass of maximum, sum and division; exact to an ulp, as log_softmax(x) <= 0"""
    op = node.op
    if op.log:
        return None
    x = node.inputs[0]
    for client, _ in fgraph.clients.get(x, ()):
        if client != "output" and client is not node and isinstance(client.op, Softmax) and \
                client.op.log and client.op.axis == op.axis:
            return same_type(E["exp"](client.outputs[0]), node.outputs[0])
    return None
