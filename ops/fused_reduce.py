"""FusedReduce: a reduction taking the elementwise work that produces its input as a prologue.

``sum(exp(x - m), axis=1)`` unfused writes ``exp(x - m)`` to memory and reads it back; the
fusion pass (compile/rules/fusion.py) turns the pair into one ``FusedReduce`` node, which a
generated backend computes in one pass over ``x`` (backends/kernels.py renders the reduction
loop from the same per-element statements as the elementwise loop). On numpy the node computes
exactly what the unfused pair computes: the scalar graph as ``Fused`` computes it, then the
reduction as ``Reduce`` does, so results and errors are the same bit for bit.

An ``epilogue`` (a second scalar graph: its input 0 is the reduced value, its others are the
node's inputs after the prologue's, each shaped like the reduction's output) is elementwise
work on the result, which the device's fusion pass gives the node (a bias gradient's update
``b - lr * sum(g, axis=0)``, a mean's division): the kernel applies it where it writes each
output, and a GPU saves the launch of a kernel of its own.
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
    elementwise to the node's first inputs (one rank, broadcasting as ``Fused``), then the
    ``epilogue`` graph, if any, applied to the result and the node's other inputs."""

    __props__ = ("graph", "kind", "axis", "dtype", "initial", "epilogue")

    def __init__(self, graph: ScalarGraph, kind: str, axis: tuple, dtype: str,
                 initial: float | None = None, epilogue: ScalarGraph | None = None):
        if len(graph.outputs) != 1:
            raise ValueError(f"FusedReduce reduces one output, the graph has "
                             f"{len(graph.outputs)}")
        if epilogue is not None and (len(epilogue.outputs) != 1 or not epilogue.in_dtypes
                                     or epilogue.in_dtypes[0] != dtype):
            raise ValueError(f"an epilogue has one output and reads the {dtype} result as "
                             "its input 0")
        self.graph, self.kind, self.axis = graph, kind, tuple(axis)
        self.dtype, self.initial, self.epilogue = dtype, initial, epilogue

    @property
    def n_prologue(self) -> int:
        """How many of the node's inputs the prologue reads (the rest: the epilogue's)."""
        return len(self.graph.in_dtypes)

    @property
    def reduce_op(self) -> Reduce:
        """The reduction this node applies to its prologue's output."""
        return Reduce(self.kind, self.axis, self.dtype, self.initial)

    @property
    def fused_op(self) -> Fused:
        """The prologue as a node of its own would compute it."""
        return Fused(self.graph)

    def __str__(self) -> str:
        graph = self.graph
        if len(graph.steps) == 1 and graph.steps[0][0].name == "identity":
            text = str(self.reduce_op)  # a plain reduction given an epilogue
        else:
            text = f"{self.reduce_op}({graph.expression()})"
        if self.epilogue is not None:
            names = ["r"] + [f"i{self.n_prologue + k}"
                             for k in range(len(self.epilogue.in_dtypes) - 1)]
            text += f" -> {self.epilogue.expression(names)}"
        return text

    def make_node(self, *inputs) -> Apply:
        # the prologue's checks and static shape are Fused's, the output type Reduce's
        try:
            element = self.fused_op.make_node(*inputs[:self.n_prologue])
        except (TypeError, ValueError) as err:
            raise type(err)(str(err).replace("Fused", "FusedReduce", 1)) from None
        if element.outputs[0].ndim == 0:
            raise graph_error("FusedReduce: the inputs must have at least one dimension")
        reduced = self.reduce_op.make_node(element.outputs[0])
        out_type = reduced.outputs[0].type
        extras = inputs[self.n_prologue:]
        inputs = list(element.inputs)
        if self.epilogue is not None:
            try:
                after = Fused(self.epilogue).make_node(reduced.outputs[0], *extras)
            except (TypeError, ValueError) as err:
                raise type(err)(f"FusedReduce's epilogue: {err}") from None
            if after.outputs[0].type.broadcastable != out_type.broadcastable:
                raise graph_error("FusedReduce: the epilogue's inputs broadcast the "
                                  "reduction's result")
            out_type = after.outputs[0].type
            inputs += list(after.inputs[1:])
        elif extras:
            raise graph_error(f"FusedReduce: {len(self.graph.in_dtypes)} inputs expected, got "
                              f"{len(self.graph.in_dtypes) + len(extras)}")
        return Apply(self, inputs, [out_type()])

    def _parts(self, node: Apply) -> tuple[Apply, Apply]:
        """The unfused pair on the node's inputs: the prologue's node, the reduction's node.
        The fusion pass keeps the traces of the steps, then of the reduction, in
        ``node.tag``: the prologue's failures name their lines (Fused.blame)."""
        element = self.fused_op.make_node(*node.inputs[:self.n_prologue])
        traces = node.tag if isinstance(node.tag, tuple) else ()
        element.tag = traces[:len(self.graph.steps)]
        reduced = self.reduce_op.make_node(element.outputs[0])
        if len(traces) > len(self.graph.steps):
            reduced.outputs[0].trace = traces[len(self.graph.steps)]
        return element, reduced

    def impl(self, node: Apply) -> Callable:
        if self.epilogue is not None:
            return self._with_epilogue(node)
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

    def without_epilogue(self) -> FusedReduce:
        return FusedReduce(self.graph, self.kind, self.axis, self.dtype, self.initial)

    def _with_epilogue(self, node: Apply) -> Callable:
        """The reduction as a node of its own computes it, then the epilogue as a Fused node
        does (its failures name the lines of its steps, kept after the prologue's and the
        reduction's in ``node.tag``)."""
        k = self.n_prologue
        first = self.without_epilogue().make_node(*node.inputs[:k])
        traces = node.tag if isinstance(node.tag, tuple) else ()
        n_first = len(self.graph.steps) + 1
        first.tag = traces[:n_first]
        after = Fused(self.epilogue).make_node(first.outputs[0], *node.inputs[k:])
        after.tag = traces[n_first:]
        reduce, finish = first.op.impl(first), after.op.impl(after)
        return lambda *args: finish(reduce(*args[:k]), *args[k:])

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        k = self.n_prologue
        element, reduced = self._parts(node)
        (shape,) = element.op.infer_shape(fgraph, element, input_shapes[:k])
        return reduced.op.infer_shape(fgraph, reduced, [shape])

    def expand(self, inputs: Sequence[Variable]) -> Variable:
        """The unfused graph over ``inputs``: one Elemwise node per step of the prologue, then
        the reduction, then the epilogue's steps (for the checking mode and the sympy
        bridge)."""
        k = self.n_prologue
        refs = self.fused_op.expand(inputs[:k])
        out = self.reduce_op(refs[self.graph.outputs[0]])
        if self.epilogue is None:
            return out
        return Fused(self.epilogue).expand([out, *inputs[k:]])[self.epilogue.outputs[0]]

    def L_op(self, inputs, outputs, output_grads):
        # the gradient of the unfused graph: the reduction's rule, then each row's
        (g,) = output_grads
        if g is None or not isinstance(getattr(g, "type", None), TensorType):
            return [None] * len(inputs)
        if self.epilogue is not None:
            k = self.n_prologue
            first = self.without_epilogue()(*inputs[:k])
            grads = Fused(self.epilogue).L_op([first, *inputs[k:]], list(outputs), [g])
            head = self.without_epilogue().L_op(inputs[:k], [first], [grads[0]]) \
                if grads[0] is not None else [None] * k
            return list(head) + list(grads[1:])
        refs = self.fused_op.expand(inputs)
        out = refs[self.graph.outputs[0]]
        # the reduction's rule reads its output (max, min, prod): this node's, not a copy
        (g_out,) = self.reduce_op.L_op([out], list(outputs), [g])
        if g_out is None:
            return [None] * len(inputs)
        return Fused(self.graph).L_op(inputs, [out], [g_out])
