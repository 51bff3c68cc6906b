"""Shape inference inside the graph: answer ``x.shape`` without computing ``x``.

``Shape(x)`` becomes a constant when x's static shape is known, and otherwise the vector of the
lengths that ``infer_shape`` of x's op gives in terms of its inputs' shapes; ``x.shape[i]``
becomes the i-th of those lengths. The node that computed x can then disappear when only its
shape was needed. Each rewrite looks one op up; the next sweep continues from the inputs.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ...ops.base import call_infer_shape, constant
from ...ops.shape import MakeVector, Shape, shape
from ...ops.subtensor import Subtensor
from ...symbolic.graph import Constant, Variable, ancestors
from ..rewrite import register

ALL_PHASES = ("canonicalize", "stabilize", "specialize")


def shape_i(var: Variable, d: int) -> Variable:
    """Length of dimension ``d`` of ``var``: a constant if static, else ``var.shape[d]``."""
    n = var.type.shape[d]
    if n is not None:
        return constant(np.int64(n))
    return Subtensor((("i", d),))(shape(var))


def input_shapes(node, fgraph=None) -> List[tuple]:
    """The shapes of node's inputs as tuples of length variables, as infer_shape takes them.

    With ``fgraph``, each ``v.shape[d]`` is made once per graph: a variable many nodes read
    (a network's input) would otherwise get a new pair of nodes for every shape query."""
    cache = None if fgraph is None else fgraph.__dict__.setdefault("_shape_i_cache", {})
    out = []
    for v in node.inputs:
        if not hasattr(v.type, "shape"):
            out.append(None)
            continue
        if cache is None:
            out.append(tuple(shape_i(v, d) for d in range(v.ndim)))
            continue
        dims = cache.get(v)
        if dims is None:
            dims = cache[v] = tuple(shape_i(v, d) for d in range(v.ndim))
        out.append(dims)
    return out


def _refers_to(expr: Variable, node) -> bool:
    """True when ``expr`` needs an output of ``node`` (infer_shape had nothing better than
    ``out.shape[...]``). Paths into the rest of the graph go through ``node.inputs``."""
    outputs = set(node.outputs)
    return any(v in outputs for v in ancestors([expr], stop=node.inputs))


def _as_length(expr, node) -> Optional[Variable]:
    """``expr`` (an int or an integer scalar variable) as an int64 scalar, or None when it is
    unusable (not a scalar, or computed from the node's own outputs)."""
    if isinstance(expr, (int, np.integer)):
        return constant(np.int64(expr))
    if not isinstance(expr, Variable) or expr.ndim != 0 or _refers_to(expr, node):
        return None
    if isinstance(expr, Constant) and expr.dtype != "int64":
        return constant(np.int64(expr.data))
    if expr.dtype != "int64":
        from ...ops.elemwise import cast
        expr = cast(expr, "int64")
    return expr


def _inferred_shape(fgraph, x: Variable) -> Optional[tuple]:
    """The entries ``infer_shape`` of x's op gives for x (ints or variables), or None."""
    if x.owner is None:
        return None
    try:
        shapes = call_infer_shape(x.owner.op, fgraph, x.owner, input_shapes(x.owner, fgraph))
        return tuple(shapes[x.index])
    except (NotImplementedError, TypeError, ValueError, IndexError):
        return None


@register(ALL_PHASES, "Shape")
def shape_to_constant(fgraph, node):
    """x.shape -> constant vector when x's static shape is fully known"""
    x = node.inputs[0]
    if all(s is not None for s in x.type.shape):
        return constant(np.array(x.type.shape, dtype=np.int64))
    return None


@register(ALL_PHASES, "Shape")
def shape_from_infer_shape(fgraph, node):
    """x.shape -> make_vector(lengths from infer_shape of x's op), when all are known"""
    x = node.inputs[0]
    entries = _inferred_shape(fgraph, x)
    if entries is None or len(entries) != x.ndim:
        return None
    lengths = []
    for d, expr in enumerate(entries):
        n = x.type.shape[d]
        length = constant(np.int64(n)) if n is not None else _as_length(expr, x.owner)
        if length is None:
            return None
        lengths.append(length)
    # An elementwise op and the like have their input's shape: say so with one Shape node
    # rather than a vector of its entries, so a chain of them costs one node per step.
    whole = _whole_shape(lengths)
    return whole if whole is not None else MakeVector("int64")(*lengths)


def _whole_shape(lengths) -> Optional[Variable]:
    """``y.shape`` when ``lengths`` are ``y.shape[0], ..., y.shape[n-1]`` (an entry may be
    the constant that y's static shape gives), else None."""
    src = None
    for k, e in enumerate(lengths):
        o = e.owner
        if o is None:
            continue  # a constant: checked against src's static shape below
        if not isinstance(o.op, Subtensor) or o.op.spec != (("i", k),):
            return None
        s = o.inputs[0]
        if s.owner is None or not isinstance(s.owner.op, Shape) or (
                src is not None and s.owner.inputs[0] is not src.owner.inputs[0]):
            return None
        src = s
    if src is None or src.type.shape[0] != len(lengths) or src.dtype != "int64":
        return None
    static = src.owner.inputs[0].type.shape
    for k, e in enumerate(lengths):
        if e.owner is None and not (isinstance(e, Constant) and static[k] is not None
                                    and int(e.data) == static[k]):
            return None
    return src


@register(ALL_PHASES, "MakeVector")
def make_vector_of_shape_to_shape(fgraph, node):
    """make_vector(x.shape[0], ..., x.shape[n-1]) -> x.shape"""
    if node.outputs[0].dtype != "int64":
        return None
    return _whole_shape(node.inputs)


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
    entries = _inferred_shape(fgraph, x)
    if entries is None or len(entries) != x.ndim:
        return None
    return _as_length(entries[d], x.owner)


@register(ALL_PHASES, "Subtensor")
def make_vector_index_to_element(fgraph, node):
    """make_vector(a, b, ...)[i] -> the i-th scalar; [i:j] -> make_vector of those scalars"""
    src = node.inputs[0]
    if src.owner is None or not isinstance(src.owner.op, MakeVector) or len(node.inputs) > 1:
        return None
    spec = node.op.spec
    if len(spec) != 1:
        return None
    elems = src.owner.inputs
    kind = spec[0][0]
    if kind == "i":
        k = spec[0][1]
        return elems[k] if -len(elems) <= k < len(elems) else None
    if kind == "s":
        picked = elems[slice(*spec[0][1:])]
        return MakeVector(src.owner.op.dtype)(*picked) if picked else None
    return None
