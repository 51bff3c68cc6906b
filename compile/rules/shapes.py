"""Shape inference inside the graph: answer ``x.shape`` without computing ``x``.

``Shape(x)`` becomes a constant when x's static shape is known, and ``x.shape[i]`` becomes the
expression that ``infer_shape`` of x's op gives in terms of its inputs' shapes. The node that
computed x can then disappear when only its shape was needed.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ...ops.base import call_infer_shape, constant
from ...ops.shape import Shape, shape
from ...ops.subtensor import Subtensor
from ...symbolic.graph import Variable
from ..rewrite import register

ALL_PHASES = ("canonicalize", "stabilize", "specialize")


def shape_i(var: Variable, d: int) -> Variable:
    """Length of dimension ``d`` of ``var``: a constant if static, else ``var.shape[d]``."""
    n = var.type.shape[d]
    if n is not None:
        return constant(np.int64(n))
    return Subtensor((("i", d),))(shape(var))


def input_shapes(node) -> List[tuple]:
    return [tuple(shape_i(v, d) for d in range(v.ndim)) if hasattr(v.type, "shape") else None
            for v in node.inputs]


def _refers_to(expr: Variable, outputs) -> bool:
    """True when ``expr`` is ``outputs[k].shape[...]`` (infer_shape had nothing better)."""
    node = expr.owner
    if node is None or not isinstance(node.op, Subtensor):
        return False
    src = node.inputs[0]
    return src.owner is not None and isinstance(src.owner.op, Shape) and \
        src.owner.inputs[0] in outputs


@register(ALL_PHASES, "Shape")
def shape_to_constant(fgraph, node):
    """x.shape -> constant vector when x's static shape is fully known"""
    x = node.inputs[0]
    if all(s is not None for s in x.type.shape):
        return constant(np.array(x.type.shape, dtype=np.int64))
    return None


@register(ALL_PHASES, "Subtensor")
def shape_i_from_infer_shape(fgraph, node):
    """x.shape[i] -> the i-th entry of infer_shape(x's op) (or a constant when static)"""
    src = node.inputs[0]
    spec = node.op.spec
    if len(spec) != 1 or spec[0][0] != "i" or spec[0][1] == "$":
        return None
    if src.owner is None or not isinstance(src.owner.op, Shape):
        return None
    x = src.owner.inputs[0]
    d = spec[0][1] % max(x.ndim, 1)
    if x.type.shape[d] is not None:
        return constant(np.int64(x.type.shape[d]))
    if x.owner is None:
        return None
    try:
        shapes = call_infer_shape(x.owner.op, fgraph, x.owner, input_shapes(x.owner))
    except (NotImplementedError, TypeError, ValueError, IndexError):
        return None
    expr = shapes[x.index][d]
    if isinstance(expr, (int, np.integer)):
        return constant(np.int64(expr))
    if not isinstance(expr, Variable) or expr.ndim != 0 or _refers_to(expr, x.owner.outputs):
        return None
    if expr.dtype != "int64":
        from ...ops.elemwise import cast
        expr = cast(expr, "int64")
    return expr
