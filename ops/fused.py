"""Fused: connected elementwise work as one node holding a small scalar graph.

The fusion pass (compile/rules/fusion.py) turns a cluster of Elemwise nodes into one ``Fused``
node. What one element of its outputs is lives in a ``ScalarGraph``: rows of the scalar table
(ops/scalar.py) applied to the node's inputs and to earlier steps. Generated backends render
that graph as one loop (backends/kernels.py), so the intermediates never reach memory; this
module computes it with numpy, row by row, reusing the buffers of intermediates that are no
longer needed, so the numpy path is the fallback and the reference.

Broadcasting is Elemwise's: every input has the output's rank, and a dimension broadcasts only
where an input's type says so.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from sys import getrefcount

import numpy as np

from ..symbolic.graph import Apply, Variable
from ..symbolic.trace import format_trace
from ..symbolic.types import TensorType
from .base import Op, as_tensor_variable, graph_error
from .elemwise import (
    ELEMWISE,
    Elemwise,
    _broadcast_static_shapes,
    _numpy_kernel,
    broadcast_shape,
)
from .scalar import ScalarOp


@dataclass(frozen=True)
class ScalarGraph:
    """What one element of a fused computation's outputs is.

    ``in_dtypes``: the dtypes of the inputs. ``steps``: rows applied in order, each to
    operands given as references: ``r < len(in_dtypes)`` is input ``r``, else step
    ``r - len(in_dtypes)``. ``outputs``: the references stored as outputs."""

    in_dtypes: tuple[str, ...]
    steps: tuple[tuple[ScalarOp, tuple[int, ...]], ...]
    outputs: tuple[int, ...]
    # every reference's dtype, fixed when the graph is made: a row's output dtype can depend
    # on config.floatX (int32 / int32), and a kernel must not change with a later setting
    ref_dtypes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.in_dtypes)
        for k, (op, refs) in enumerate(self.steps):
            if len(refs) != op.nin:
                raise ValueError(f"step {k}: {op.name} takes {op.nin} operands, got "
                                 f"{len(refs)}")
            if any(not 0 <= r < n + k for r in refs):
                raise ValueError(f"step {k} ({op.name}) reads {refs}: only the inputs and "
                                 "earlier steps can be read")
        if not self.outputs or any(not 0 <= r < n + len(self.steps) for r in self.outputs):
            raise ValueError(f"outputs {self.outputs} refer to nothing computed")
        dtypes = list(self.in_dtypes)
        for op, refs in self.steps:
            dtypes.append(op.output_dtype(*[dtypes[r] for r in refs]))
        object.__setattr__(self, "ref_dtypes", tuple(dtypes))
        # hashed once: graphs key kernel tables, and equal graphs are looked up per node
        object.__setattr__(self, "_hash", hash((self.in_dtypes, self.steps, self.outputs,
                                                self.ref_dtypes)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of_row(cls, op: ScalarOp, in_dtypes: Sequence[str]) -> ScalarGraph:
        """The graph of one row (an unfused Elemwise node)."""
        n = len(in_dtypes)
        return cls(tuple(in_dtypes), ((op, tuple(range(n))),), (n,))

    @property
    def out_dtypes(self) -> tuple[str, ...]:
        return tuple(self.ref_dtypes[r] for r in self.outputs)

    def expression(self, names: Sequence[str] | None = None) -> str:
        """The outputs as formulas over the inputs (``i0``, ``i1``... unless ``names``), for
        printing: ``tanh(((i0 * i1) + i2))``. A step read more than once is named once
        (``t3 = (i0 * i1); (tanh(t3) * t3)``), so the text grows with the graph, not with
        the number of paths through it."""
        n_in = len(self.in_dtypes)
        text = list(names) if names is not None else [f"i{k}" for k in range(n_in)]
        uses = [0] * (n_in + len(self.steps))
        for _, refs in self.steps:
            for r in refs:
                uses[r] += 1
        for r in self.outputs:
            uses[r] += 1
        lets = []
        for k, (op, refs) in enumerate(self.steps):
            args = [text[r] for r in refs]
            if op.name.startswith("cast_"):
                expr = f"{op.params[0]}({args[0]})"
            elif op.c.startswith("(") and op.nin == 2 and op.c.count("{") == 2:
                # an infix template: show the operator
                symbol = op.c.replace("({0} ", "").replace(" {1})", "")
                expr = f"({args[0]} {symbol} {args[1]})"
            else:
                expr = f"{op.name}({', '.join(args)})"
            if uses[n_in + k] > 1:
                lets.append(f"t{k} = {expr}")
                expr = f"t{k}"
            text.append(expr)
        outs = ", ".join(text[r] for r in self.outputs)
        return "; ".join(lets + [outs])

    def last_reads(self) -> tuple[int, ...]:
        """Per reference, the last step reading it (-1: none); outputs count as read at the
        end, so their buffers are never reused."""
        last = [-1] * (len(self.in_dtypes) + len(self.steps))
        for k, (_, refs) in enumerate(self.steps):
            for r in refs:
                last[r] = k
        for r in self.outputs:
            last[r] = len(self.steps)
        return tuple(last)


def elemwise_of(sop: ScalarOp) -> Elemwise:
    """The Elemwise op lifting the row ``sop``."""
    return ELEMWISE.get(sop.name) or Elemwise(sop)


class Fused(Op):
    """Elementwise work fused into one node: ``graph`` says what each element is."""

    __props__ = ("graph",)

    def __init__(self, graph: ScalarGraph):
        self.graph = graph

    def __str__(self) -> str:
        return f"Fused{{{self.graph.expression()}}}"

    def make_node(self, *inputs) -> Apply:
        graph = self.graph
        inputs = [as_tensor_variable(x) for x in inputs]
        if len(inputs) != len(graph.in_dtypes):
            raise graph_error(f"Fused takes {len(graph.in_dtypes)} inputs, got {len(inputs)}")
        for k, (x, d) in enumerate(zip(inputs, graph.in_dtypes)):
            if x.dtype != d:
                raise graph_error(f"Fused: input {k} has dtype {x.dtype}, the scalar graph "
                                  f"reads {d}")
        if len({x.ndim for x in inputs}) > 1:
            raise graph_error("Fused: the inputs must have one rank (pad them with "
                              f"dimshuffle), got {[x.type for x in inputs]}", ValueError)
        shape = _broadcast_static_shapes("Fused", inputs) if inputs else ()
        return Apply(self, inputs, [TensorType(d, shape=shape)() for d in graph.out_dtypes])

    def impl(self, node: Apply) -> Callable:
        graph = self.graph
        n_in = len(graph.in_dtypes)
        steps = []
        last = graph.last_reads()
        fresh: list[bool] = []
        # Each reference's broadcast pattern (a step broadcasts where all its operands do). A
        # step broadcast where the output is not (exp of a row, times a matrix) is smaller than
        # the output: it computes on its own shape, never into an output-sized buffer, where
        # the ufunc would repeat its work for every row of the output.
        out_pattern = node.outputs[0].type.broadcastable
        patterns = [x.type.broadcastable for x in node.inputs]
        for k, (sop, refs) in enumerate(graph.steps):
            ins = tuple(graph.ref_dtypes[r] for r in refs)
            out = graph.ref_dtypes[n_in + k]
            fn = _numpy_kernel(sop, ins, out)
            patterns.append(tuple(all(patterns[r][d] for r in refs)
                                  for d in range(len(out_pattern))))
            # a ufunc giving the output dtype by itself, on the output's shape, can write into
            # a dead buffer
            ufunc = fn is sop.np_fn and isinstance(fn, np.ufunc) and \
                patterns[-1] == out_pattern
            # buffers a ufunc step made (never an input's, nor a view) and nothing reads later
            dead = tuple(r for r in set(refs) if r >= n_in and last[r] == k and fresh[r - n_in])
            fresh.append(ufunc)
            steps.append((fn, refs, ufunc, dead, np.dtype(out)))
        outputs = graph.outputs
        checks = [(i, tuple(d for d, b in enumerate(x.type.broadcastable) if not b))
                  for i, x in enumerate(node.inputs)]
        checks = [(i, dims) for i, dims in checks if dims]
        single = len(outputs) == 1
        # Arrays earlier calls made, written again once nobody holds them (a fresh large array
        # costs a page fault per 4 KiB on first write; see _free_buffer)
        pool: list = []

        def run(*args):
            try:
                full = np.broadcast_shapes(*[np.shape(a) for a in args])
            except ValueError:
                full = None
            if full is None or checks:
                for i, dims in checks:
                    shape = args[i].shape
                    if full is None or any(shape[d] != full[d] for d in dims):
                        self.blame(node, args)  # raises, naming the user's node that fails
            values = list(args)
            for fn, refs, ufunc, dead, dtype in steps:
                operands = [values[r] for r in refs]
                if ufunc:
                    for r in dead:
                        v = values[r]
                        if v.dtype == dtype and v.shape == full:
                            values.append(fn(*operands, out=v))
                            break
                    else:
                        buf = _free_buffer(pool, dtype, full)
                        if buf is None:
                            buf = np.asarray(fn(*operands))
                            if buf.shape == full and len(pool) < len(steps):
                                pool.append(buf)
                            values.append(buf)
                        else:
                            values.append(fn(*operands, out=buf))
                else:
                    values.append(np.asarray(fn(*operands)))
            results = []
            for r in outputs:
                v = values[r]
                if r < n_in or v.shape != full:  # never hand out an input; fill broadcasts
                    v = np.array(np.broadcast_to(v, full))
                results.append(v)
            return results[0] if single else tuple(results)

        return run

    def blame(self, node: Apply, args: Sequence) -> None:
        """Run the unfused steps one by one on ``args`` and raise the error of the first that
        fails, naming the line of the user's code that built it (the fusion pass keeps each
        step's trace in ``node.tag``). Called when the fused computation cannot run."""
        refs = self.expand(node.inputs)
        n_in = len(node.inputs)
        traces = node.tag if isinstance(node.tag, tuple) else ()
        values = list(args)
        for k in range(len(self.graph.steps)):
            step = refs[n_in + k].owner
            if k < len(traces):
                step.outputs[0].trace = traces[k]
            operands = [values[r] for r in self.graph.steps[k][1]]
            try:
                values.append(step.op.impl(step)(*operands))
            except Exception as err:
                described = "; ".join(
                    f"{_label(node.inputs[r]) if r < n_in else f'step {r - n_in}'}: "
                    f"{np.asarray(v).dtype} array of shape {np.shape(v)}"
                    for r, v in zip(self.graph.steps[k][1], operands))
                raise type(err)(f"{err}\nwhile computing {step.op} (node created at "
                                f"{format_trace(step.trace)}), fused into {self}\n"
                                f"  inputs: {described}") from err
        raise ValueError(f"{self}: the inputs do not broadcast together: "
                         f"{[np.shape(a) for a in args]}")

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [broadcast_shape(node, input_shapes)] * len(node.outputs)

    def expand(self, inputs: Sequence[Variable]) -> list[Variable]:
        """The unfused graph over ``inputs``: every reference of the scalar graph as a
        variable (the inputs, then one Elemwise node per step)."""
        refs = list(inputs)
        for sop, r in self.graph.steps:
            refs.append(elemwise_of(sop)(*[refs[i] for i in r]))
        return refs

    def L_op(self, inputs, outputs, output_grads):
        # differentiate the unfused graph: each row's own rule, the steps in reverse
        refs = self.expand(inputs)
        grads: dict[int, Variable] = {}

        def add(r: int, g) -> None:
            grads[r] = grads[r] + g if r in grads else g

        for r, g in zip(self.graph.outputs, output_grads):
            if g is not None and isinstance(getattr(g, "type", None), TensorType):
                add(r, g)
        n_in = len(inputs)
        for k in reversed(range(len(self.graph.steps))):
            g = grads.get(n_in + k)
            if g is None:
                continue
            node = refs[n_in + k].owner
            step_refs = self.graph.steps[k][1]
            for r, gx in zip(step_refs, node.op.L_op(node.inputs, node.outputs, [g])):
                if gx is not None:
                    add(r, gx)
        return [grads.get(k) for k in range(n_in)]


def _free_buffer(pool: list, dtype: np.dtype, shape: tuple):
    """An array of ``pool`` with this dtype and shape that nobody else holds: three references
    are the pool's, the loop's and getrefcount's argument. A returned output the caller
    dropped qualifies; one the caller keeps, or any view of it, does not. Checking and taking
    happen without releasing the GIL, so two threads never take the same array."""
    for v in pool:
        if v.shape == shape and v.dtype == dtype and getrefcount(v) == 3:
            return v
    return None


def _label(var: Variable) -> str:
    return var.name or repr(var)
