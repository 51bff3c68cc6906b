"""FusedReduce: a reduction taking the elementwise work that produces its input as a prologue.

``sum(exp(x - m), axis=1)`` unfused writes ``exp(x - m)`` to memory and reads it back; the
fusion pass (compile/rules/fusion.py) turns the pair into one ``FusedReduce`` node, which a
generated backend computes in one pass over ``x`` (backends/kernels.py renders the reduction
loop from the same per-element statements as the elementwise loop). On numpy the node computes
exactly what the unfused pair computes: the scalar graph as ``Fused`` computes it, then the
reduction as ``Reduce`` does, so results and errors are the same bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..symbolic.graph import Apply, Variable
from ..symbolic.types import TensorType
from .base import Op, graph_error
from .fused import Fused, ScalarGraph, elemwise_of
from .reduce import Reduce


class FusedReduce(Op):
    """``Reduce(kind, axis, dtype, initial)`` of the single output of ``graph`` applied
    elementwise to the node's inputs (one rank, broadcasting as ``Fused``)."""

    __props__ = ("graph", "kind", "axis", "dtype", "initial")

    def __init__(self, graph: ScalarGraph, kind: str, axis: tuple, dtype: str,
                 initial: float | None = None):
        if len(graph.outputs) != 1:
            raise ValueError(f"FusedReduce reduces one output, the graph has "
                             f"{len(graph.outputs)}")
        self.graph, self.kind, self.axis = graph, kind, tuple(axis)
        self.dtype, self.initial = dtype, initial

    @property
    def reduce_op(self) -> Reduce:
        """The reduction this node applies to its prologue's output."""
        return Reduce(self.kind, self.axis, self.dtype, self.initial)

    @property
    def fused_op(self) -> Fused:
        """The prologue as a node of its own would compute it."""
        return Fused(self.graph)

    def __str__(self) -> str:
        return f"{self.reduce_op}({self.graph.expression()})"

    def make_node(self, *inputs) -> Apply:
        # the prologue's checks and static shape are Fused's, the output type Reduce's
        try:
            element = self.fused_op.make_node(*inputs)
        except (TypeError, ValueError) as err:
            raise type(err)(str(err).replace("Fused", "FusedReduce", 1)) from None
        if element.outputs[0].ndim == 0:
            raise graph_error("FusedReduce: the inputs must have at least one dimension")
        reduced = self.reduce_op.make_node(element.outputs[0])
        return Apply(self, list(element.inputs), [reduced.outputs[0].type()])

    def _parts(self, node: Apply) -> tuple[Apply, Apply]:
        """The unfused pair on the node's inputs: the prologue's node, the reduction's node.
        The fusion pass keeps the traces of the steps, then of the reduction, in
        ``node.tag``: the prologue's failures name their lines (Fused.blame)."""
        element = self.fused_op.make_node(*node.inputs)
        traces = node.tag if isinstance(node.tag, tuple) else ()
        element.tag = traces[:len(self.graph.steps)]
        reduced = self.reduce_op.make_node(element.outputs[0])
        if len(traces) > len(self.graph.steps):
            reduced.outputs[0].trace = traces[len(self.graph.steps)]
        return element, reduced

    def impl(self, node: Apply) -> Callable:
        element, reduced = self._parts(node)
        graph = self.graph
        n_in = len(graph.in_dtypes)
        if len(graph.steps) == 1 and graph.steps[0][1] == tuple(range(n_in)):
            # one row over the inputs: the row's own numpy kernel, without Fused's checks
            # and buffer pool, which cost more than they save here (a product then a sum,
            # 256 x 10 float32: 12.6 us through Fused against 8.6 us unfused)
            row = elemwise_of(graph.steps[0][0]).make_node(*node.inputs)
            if row.outputs[0].type == element.outputs[0].type:
                element = row
        prologue = element.op.impl(element)
        reduce = reduced.op.impl(reduced)
        # The reduction's own errors (max of an empty axis) go up as they are: the backend
        # names this node's line, which the fusion pass took from the reduction's node.
        return lambda *args: reduce(prologue(*args))

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        element, reduced = self._parts(node)
        (shape,) = element.op.infer_shape(fgraph, element, input_shapes)
        return reduced.op.infer_shape(fgraph, reduced, [shape])

    def expand(self, inputs: Sequence[Variable]) -> Variable:
        """The unfused graph over ``inputs``: one Elemwise node per step of the prologue, then
        the reduction (for the checking mode and the sympy bridge)."""
        refs = self.fused_op.expand(inputs)
        return self.reduce_op(refs[self.graph.outputs[0]])

    def L_op(self, inputs, outputs, output_grads):
        # the gradient of the unfused graph: the reduction's rule, then each row's
        (g,) = output_grads
        if g is None or not isinstance(getattr(g, "type", None), TensorType):
            return [None] * len(inputs)
        refs = self.fused_op.expand(inputs)
        out = refs[self.graph.outputs[0]]
        # the reduction's rule reads its output (max, min, prod): this node's, not a copy
        (g_out,) = self.reduce_op.L_op([out], list(outputs), [g])
        if g_out is None:
            return [None] * len(inputs)
        return Fused(self.graph).L_op(inputs, [out], [g_out])
