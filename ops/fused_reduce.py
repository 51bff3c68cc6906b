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
output, and a GPU saves the launch of a kernel of its own. With ``keep`` the node also
outputs the prologue's value (output 1), for the prologue's other readers: the kernel writes
each element as it folds it (a ReLU's gradient read by a product and summed for the bias's
gradient: one pass over it instead of two).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..symbolic.graph import Apply, Variable
from ..symbolic.trace import format_trace
from ..symbolic.types import TensorType
from .base import Op, graph_error
from .fused import Fused, ScalarGraph, elemwise_of
from .reduce import Reduce


class FusedReduce(Op):
    """``Reduce(kind, axis, dtype, initial)`` of the single output of ``graph`` applied
    elementwise to the node's first inputs (one rank, broadcasting as ``Fused``), then the
    ``epilogue`` graph, if any, applied to the result and the node's other inputs; with
    ``keep``, the prologue's value is output 1."""

    __props__ = ("graph", "kind", "axis", "dtype", "initial", "epilogue", "keep")

    def __init__(self, graph: ScalarGraph, kind: str, axis: tuple, dtype: str,
                 initial: float | None = None, epilogue: ScalarGraph | None = None,
                 keep: bool = False):
        if len(graph.outputs) != 1:
            raise ValueError(f"FusedReduce reduces one output, the graph has "
                             f"{len(graph.outputs)}")
        if epilogue is not None and (len(epilogue.outputs) != 1 or not epilogue.in_dtypes
                                     or epilogue.in_dtypes[0] != dtype):
            raise ValueError(f"an epilogue has one output and reads the {dtype} result as "
                             "its input 0")
        self.graph, self.kind, self.axis = graph, kind, tuple(axis)
        self.dtype, self.initial, self.epilogue = dtype, initial, epilogue
        self.keep = bool(keep)

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
        return text + (" (and its prologue)" if self.keep else "")

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
        outputs = [out_type()]
        if self.keep:
            outputs.append(element.outputs[0].type())
        return Apply(self, inputs, outputs)

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
        if self.epilogue is not None or self.keep:
            return self._staged(node)
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

    def _staged(self, node: Apply) -> Callable:
        """The prologue as a Fused node computes it, the reduction as a node of its own, then
        the epilogue as a Fused node (its failures name the lines of its steps, kept after
        the prologue's and the reduction's in ``node.tag``)."""
        k = self.n_prologue
        element, reduced = self._parts(node)
        prologue, reduce = element.op.impl(element), reduced.op.impl(reduced)
        finish = None
        if self.epilogue is not None:
            traces = node.tag if isinstance(node.tag, tuple) else ()
            after = Fused(self.epilogue).make_node(reduced.outputs[0], *node.inputs[k:])
            after.tag = traces[len(self.graph.steps) + 1:]
            finish = after.op.impl(after)
        keep = self.keep

        def run(*args):
            value = prologue(*args[:k])
            try:
                result = reduce(value)
            except (ValueError, TypeError) as err:
                if finish is None:
                    raise  # the backend names this node's line: the reduction's
                # the node's line is the epilogue's: name the reduction's own (max of an
                # empty axis is the user's max, not the product read after it)
                raise type(err)(f"{err}\nwhile computing {reduced.op} (node created at "
                                f"{format_trace(reduced.outputs[0].trace)}), fused into "
                                f"{self}") from err
            if finish is not None:
                result = finish(result, *args[k:])
            return (result, value) if keep else result
        return run

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        k = self.n_prologue
        element, reduced = self._parts(node)
        (shape,) = element.op.infer_shape(fgraph, element, input_shapes[:k])
        return list(reduced.op.infer_shape(fgraph, reduced, [shape])) + (
            [shape] if self.keep else [])

    def expand(self, inputs: Sequence[Variable]) -> Variable:
        """The unfused graph over ``inputs``: one Elemwise node per step of the prologue, then
        the reduction, then the epilogue's steps (output 0 only)."""
        k = self.n_prologue
        refs = self.fused_op.expand(inputs[:k])
        out = self.reduce_op(refs[self.graph.outputs[0]])
        if self.epilogue is None:
            return out
        return Fused(self.epilogue).expand([out, *inputs[k:]])[self.epilogue.outputs[0]]

    def L_op(self, inputs, outputs, output_grads):
        # the gradient of the unfused graph: the epilogue's rule, the reduction's, then each
        # row's of the prologue (whose value's gradient adds what ``keep``'s output gets)
        k = self.n_prologue

        def given(g):
            return g if g is not None and isinstance(getattr(g, "type", None), TensorType) \
                else None
        g = given(output_grads[0])
        g_value = given(output_grads[1]) if self.keep and len(output_grads) > 1 else None
        tail = [None] * (len(inputs) - k)
        if g is None and g_value is None:
            return [None] * len(inputs)
        refs = self.fused_op.expand(inputs[:k])
        value = refs[self.graph.outputs[0]]
        if g is not None:
            if self.epilogue is not None:
                reduced = self.reduce_op(value)
                grads = Fused(self.epilogue).L_op([reduced, *inputs[k:]], [outputs[0]], [g])
                g, tail = grads[0], list(grads[1:])
            else:
                reduced = outputs[0]  # the reduction's rule reads its output: this node's
            if g is not None:
                (g_from,) = self.reduce_op.L_op([value], [reduced], [g])
                if g_from is not None:
                    g_value = g_from if g_value is None else g_value + g_from
        if g_value is None:
            return [None] * k + tail
        return list(Fused(self.graph).L_op(inputs[:k], [value], [g_value])) + tail
