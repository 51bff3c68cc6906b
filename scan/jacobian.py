"""``jacobian`` and ``hessian``, from one Lop graph evaluated once per output element.

The Lop graph ``u -> u . d expr / d wrt`` is built once; a ``MapRows`` node runs it for every
row of the identity matrix and stacks the results. The graph stays O(size of the Lop graph)
whatever the size of ``expr``; the loop runs at call time. The row graph is the node's inner
graph: ``function()`` compiles it once, with the outer mode and backend (scan will take this
role later).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..grad.reverse import Lop, grad
from ..ops.alloc import eye
from ..ops.base import Op, as_tensor_variable
from ..ops.join import concatenate
from ..ops.shape import reshape, shape
from ..symbolic.graph import Apply, Constant, Variable, clone_replace, graph_inputs
from ..symbolic.shared import SharedVariable
from ..symbolic.types import TensorType


class MapRows(Op):
    """out[i] = inner(rows[i], *free): an inner graph mapped over the rows of a matrix.

    ``free`` are the row graph's other leaves; the node's inputs after ``rows`` are what they
    stand for in the outer graph."""

    def __init__(self, row: Variable, output: Variable, free: Sequence[Variable]):
        self.row, self.output, self.free = row, output, list(free)

    def __eq__(self, other) -> bool:  # each map holds its own inner graph
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __str__(self) -> str:
        return f"MapRows{{{self.output.type}}}"

    def make_node(self, rows, *free) -> Apply:
        rows = as_tensor_variable(rows)
        out_type = TensorType(self.output.dtype, shape=(rows.type.shape[0],) +
                              self.output.type.shape)
        return Apply(self, [rows] + [as_tensor_variable(f) for f in free], [out_type()])

    def inner_graphs(self, node) -> list:
        return [([self.row] + self.free, self.output)]

    def impl(self, node, inner=()):
        out_dtype = np.dtype(self.output.dtype)
        fn, = inner

        def run(rows, *free):
            if rows.shape[0] == 0:
                probe = fn(np.zeros(rows.shape[1:], dtype=rows.dtype), *free)
                return np.zeros((0,) + probe.shape, dtype=out_dtype)
            return np.stack([fn(r, *free) for r in rows]).astype(out_dtype, copy=False)
        return run

    def infer_shape(self, fgraph, node, shapes):
        out = node.outputs[0]
        return [tuple(shape(out)[i] for i in range(out.ndim))]


def jacobian(expression, wrt, consider_constant=None, disconnected_inputs: str = "raise"):
    """d expression / d wrt, shaped ``expression.shape + wrt.shape`` (a list for a list wrt)."""
    expr = as_tensor_variable(expression)
    single = not isinstance(wrt, (list, tuple))
    wrts: list[Variable] = [wrt] if single else list(wrt)
    if expr.ndim == 0:
        out = grad(expr, wrts, consider_constant=consider_constant,
                   disconnected_inputs=disconnected_inputs)
        return out[0] if single else out
    flat = expr.flatten()
    u = flat.type(name="jacobian_row")
    lops = Lop(flat, wrts, u, consider_constant=consider_constant,
               disconnected_inputs=disconnected_inputs)
    lops = lops if isinstance(lops, list) else [lops]
    n = shape(flat)[0]
    rows = eye(n, n, 0, dtype=flat.dtype)
    results = []
    for w, lop in zip(wrts, lops):
        if lop is None:
            results.append(None)
            continue
        # Every non-constant leaf of the row graph, shared variables included, becomes an
        # input of the node: givens, clone(replace=) and f.copy(swap=) then reach it like any
        # other input, and the row graph holds no shared variable whose default update would
        # run once per row.
        free = [v for v in graph_inputs([lop], stop=set(wrts) | {u})
                if v is not u and not isinstance(v, Constant)]
        stand_ins = {v: v.type(name=v.name) for v in free if isinstance(v, SharedVariable)}
        row, = clone_replace([lop], stand_ins) if stand_ins else [lop]
        stacked = MapRows(u, row, [stand_ins.get(v, v) for v in free])(rows, *free)
        full_shape = concatenate([shape(expr), shape(w)]) if w.ndim else shape(expr)
        results.append(reshape(stacked, full_shape, ndim=expr.ndim + w.ndim))
    return results[0] if single else results


def hessian(cost, wrt, consider_constant=None, disconnected_inputs: str = "raise"):
    """Second derivatives of the scalar ``cost``: ``jacobian(grad(cost, w), w)`` for each w."""
    single = not isinstance(wrt, (list, tuple))
    wrts = [wrt] if single else list(wrt)
    out = []
    for w in wrts:
        g = grad(cost, w, consider_constant=consider_constant,
                 disconnected_inputs=disconnected_inputs)
        out.append(jacobian(g, w, consider_constant=consider_constant,
                            disconnected_inputs="ignore"))
    return out[0] if single else out
