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

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import prod

import numpy as np

from ..symbolic.graph import Apply, Variable
from ..symbolic.trace import format_trace
from ..symbolic.types import TensorType
from .base import Op, as_tensor_variable, graph_error
from .buffers import free_buffer
from .elemwise import (
    ELEMWISE,
    Elemwise,
    _broadcast_static_shapes,
    _numpy_kernel,
    broadcast_lengths,
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
            # a dead buffer; so can a numpy implementation of the table declaring ``writes_out``
            # (an ``out=`` of its result's shape and dtype, which may be its operand)
            ufunc = fn is sop.np_fn and patterns[-1] == out_pattern and \
                (isinstance(fn, np.ufunc) or getattr(fn, "writes_out", False) is True)
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
        # costs a page fault per 4 KiB on first write; see ops.buffers)
        pool: list = []
        wide = [p == out_pattern for p in patterns]
        blocked = _Blocked(graph, steps, wide, pool) if len(out_pattern) else None
        blocked_min = BLOCKED_MIN  # read when compiled, as BLOCK (tests set both)
        # an input of the output's pattern has its size once the checks pass: reading it
        # costs a tiny call less than the product of the shape
        sized = next((i for i, x in enumerate(node.inputs)
                      if x.type.broadcastable == out_pattern), None)

        def run(*args):
            try:
                full = broadcast_lengths([np.shape(a) for a in args])
            except ValueError:
                full = None
            if full is None or checks:
                for i, dims in checks:
                    shape = args[i].shape
                    if full is None or any(shape[d] != full[d] for d in dims):
                        self.blame(node, args)  # raises, naming the user's node that fails
            if blocked is not None and (args[sized].size if sized is not None else
                                        prod(full) if full is not None else 0) >= blocked_min:
                return blocked(args, full)
            values = list(args)
            for fn, refs, ufunc, dead, dtype in steps:
                operands = list(map(values.__getitem__, refs))  # no comprehension frame
                if ufunc:
                    for r in dead:
                        v = values[r]
                        if v.dtype == dtype and v.shape == full:
                            values.append(fn(*operands, out=v))
                            break
                    else:
                        buf = free_buffer(pool, full, dtype)
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

        return _small_path(node, steps, wide, run, min(SMALL, blocked_min)) or run

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


#: Elements per block when a Fused node runs its scalar graph block by block on numpy: each
#: step streams a block's intermediates through the cache instead of whole arrays through
#: memory (a fresh 40 MB array also costs a page fault per 4 KiB). Larger blocks pay the
#: Python cost of a block (about 11 us for W1's 13 ufunc calls) less often. W1 on float32 at
#: 1e7 on the numpy path, theon/numpy with every block size timed in turn in one process
#: (medians of 15, loaded 2-core machine, 1 MiB L2 per core, 32 MiB L3): whole arrays 0.69,
#: blocks of 2**14 0.52, 2**15 0.47, 2**16 0.45, 2**17 0.42, 2**18 0.40; at 1e6 2**17 was
#: the best (1.15 against 1.28 whole).
BLOCK = 1 << 17
#: Outputs of fewer elements run whole: below a few blocks, blocking saved nothing measurable
#: (6e5 elements: 1.23 blocked, 1.22 whole) and only adds the cost of the blocks.
BLOCKED_MIN = 4 * BLOCK

_UFUNC, _CALL, _COPY = 0, 1, 2  # how a step of a block stores its result


class _Blocked:
    """A Fused node's scalar graph computed over blocks of its output, each block through
    every step before the next, so the intermediates are block-sized buffers that stay in
    cache. Every element goes through the same ufunc loops as on whole arrays, so the values
    do not change. Steps broadcast where the output is not (``exp`` of a row) run once, on
    whole arrays, before the blocks, which read them as they read inputs."""

    def __init__(self, graph: ScalarGraph, steps: list, wide: list, pool: list):
        n_in = len(graph.in_dtypes)
        last = graph.last_reads()
        self.n_in = n_in
        self.n_refs = n_in + len(steps)
        self.outputs = graph.outputs
        self.pool = pool
        self.pool_size = len(steps)
        # the output arrays: one per distinct step the blocks compute
        self.out_refs = list(dict.fromkeys(r for r in graph.outputs if r >= n_in and wide[r]))
        self.out_dtypes = [steps[r - n_in][4] for r in self.out_refs]
        self.pre = [(fn, refs, n_in + k) for k, (fn, refs, *_) in enumerate(steps)
                    if not wide[n_in + k]]
        # Block-sized scratch buffers ("slots"), assigned once: a ufunc step writes into the
        # slot of an operand it reads last, or a free slot of its dtype, or a new one
        slot_dtypes: list[np.dtype] = []
        owner: dict[int, int] = {}
        free: list[int] = []
        loop = []
        read: set[int] = set()
        for k, (fn, refs, ufunc, _, dtype) in enumerate(steps):
            ref = n_in + k
            if not wide[ref]:
                continue
            read.update(r for r in refs if r < n_in or not wide[r])
            for r in dict.fromkeys(refs):
                if r in owner and last[r] == k:
                    free.append(owner.pop(r))
            if ref in self.out_refs:
                kind = _UFUNC if ufunc else _COPY
                target = ("out", self.out_refs.index(ref))
            elif ufunc:
                kind = _UFUNC
                target = next((s for s in free if slot_dtypes[s] == dtype), None)
                if target is None:
                    target = len(slot_dtypes)
                    slot_dtypes.append(dtype)
                else:
                    free.remove(target)
                owner[ref] = target
            else:
                kind, target = _CALL, None
            loop.append((fn, refs, ref, kind, target))
        # targets index one list per block: the slots' views, then the outputs'
        self.loop = [(fn, refs, ref, kind,
                      len(slot_dtypes) + target[1] if isinstance(target, tuple) else target)
                     for fn, refs, ref, kind, target in loop]
        self.slot_dtypes = slot_dtypes
        self.read = sorted(read)  # the whole arrays the blocks slice: inputs, early steps
        self.scratch: list = []  # block-sized buffers of earlier calls (see ops.buffers)
        self.block = BLOCK

    def __call__(self, args: Sequence, full: tuple):
        n_in = self.n_in
        whole = [np.asarray(a) for a in args] + [None] * (self.n_refs - n_in)
        for fn, refs, ref in self.pre:
            whole[ref] = np.asarray(fn(*[whole[r] for r in refs]))
        # Work in the memory order of the largest input of the output's shape, so a block is
        # contiguous in memory for transposed inputs too; the outputs take that order
        ndim = len(full)
        perm = tuple(range(ndim))
        model = max((whole[r] for r in self.read if whole[r].shape == full),
                    key=lambda a: a.itemsize, default=None)
        if model is not None and not model.flags.c_contiguous:
            perm = tuple(sorted(perm, key=lambda d: -abs(model.strides[d]) * (full[d] > 1)))
        shape = tuple(full[d] for d in perm)
        pool = self.pool
        # the outputs in that order: the pool holds the arrays themselves, never views (a view
        # of an output a caller keeps holds the array under it, not the view, so only the
        # array's count tells that it is still in use)
        targets = []
        for dtype in self.out_dtypes:
            buf = free_buffer(pool, shape, dtype)
            if buf is None:
                buf = np.empty(shape, dtype)
                if len(pool) < self.pool_size:
                    pool.append(buf)
            targets.append(buf)
        outs = targets if perm == tuple(range(ndim)) else \
            [t.transpose(np.argsort(perm)) for t in targets]
        scratch = []
        for dtype in self.slot_dtypes:
            buf = free_buffer(self.scratch, (self.block,), dtype)
            if buf is None:
                buf = np.empty(self.block, dtype)
                if len(self.scratch) < 2 * len(self.slot_dtypes):
                    self.scratch.append(buf)
            scratch.append(buf)
        read = [(r, whole[r].transpose(perm)) for r in self.read]
        # flat: every array read is contiguous in this order or a single element
        flat = all(a.size == 1 or (a.shape == shape and a.flags.c_contiguous)
                   for _, a in read) and all(o.flags.c_contiguous for o in targets)
        if flat:
            self._flat(read, targets, scratch, prod(shape))
        else:
            self._strided(read, targets, scratch, shape)
        values = {r: o for r, o in zip(self.out_refs, outs)}
        results = []
        for r in self.outputs:
            v = values.get(r)
            if v is None:  # an input (never handed out) or a step broadcast to the output
                v = np.array(np.broadcast_to(whole[r], full))
            results.append(v)
        return results[0] if len(results) == 1 else tuple(results)

    def _flat(self, read, targets, scratch, size) -> None:
        vals = [None] * self.n_refs
        ones = [(r, a.reshape(())) for r, a in read if a.size == 1]
        for r, a in ones:
            vals[r] = a
        sliced = [(r, a.reshape(-1)) for r, a in read if a.size != 1]
        outs = [o.reshape(-1) for o in targets]
        loop = self.loop
        block = self.block
        for start in range(0, size, block):
            stop = start + block
            for r, a in sliced:
                vals[r] = a[start:stop]
            if stop <= size:
                dest = scratch + [o[start:stop] for o in outs]
            else:
                dest = [s[:size - start] for s in scratch] + [o[start:] for o in outs]
            _run_block(loop, vals, dest)

    def _strided(self, read, targets, scratch, shape) -> None:
        # Blocks of whole trailing dimensions: axis k is the first whose trailing product fits
        # a block, blocks take a run of its indices at each index of the axes before it
        k = 0
        while prod(shape[k + 1:]) > self.block:
            k += 1
        inner = prod(shape[k + 1:])
        n_blocks = -(-shape[k] // max(1, self.block // inner))
        rows = -(-shape[k] // n_blocks)  # even blocks: never a last one of a few elements
        vals = [None] * self.n_refs
        sliced = []
        for r, a in read:
            if a.size == 1:
                vals[r] = a
            else:
                sliced.append((r, a, tuple(a.shape[d] == shape[d] for d in range(k + 1))))
        loop = self.loop
        for outer in itertools.product(*[range(n) for n in shape[:k]]):
            head = tuple(slice(i, i + 1) for i in outer)
            for start in range(0, shape[k], rows):
                index = head + (slice(start, start + rows),)
                for r, a, real in sliced:
                    vals[r] = a[tuple(i if keep else slice(None)
                                      for i, keep in zip(index, real))]
                block = (1,) * k + (min(rows, shape[k] - start),) + shape[k + 1:]
                size = prod(block)
                dest = [s[:size].reshape(block) for s in scratch] + [o[index] for o in targets]
                _run_block(loop, vals, dest)


def _run_block(loop: list, vals: list, dest: list) -> None:
    get = vals.__getitem__
    for fn, refs, ref, kind, target in loop:
        if kind == _UFUNC:
            vals[ref] = fn(*map(get, refs), out=dest[target])
        elif kind == _CALL:
            vals[ref] = fn(*map(get, refs))
        else:
            out = dest[target]
            np.copyto(out, fn(*map(get, refs)))
            vals[ref] = out


#: below this many elements a fresh array comes from the heap without page faults, so the
#: straight-line path of small calls makes its arrays instead of looking for pooled ones
SMALL = 1 << 14


def _small_path(node: Apply, steps: list, wide: list, general: Callable, limit: int
                ) -> Callable | None:
    """The fused computation on small arrays as one generated function: the shape checks,
    one line per step and the buffer choices written out (all known when compiling), for
    the calls a loop body makes every step, where interpreting ``steps`` cost four times the
    arithmetic. Anything else (large or unusual operands, a failing check) goes to
    ``general``, which computes, blocks or raises with the user's line. Outputs of ``limit``
    elements or more go there too."""
    inputs, nd = node.inputs, node.outputs[0].ndim
    n_in = len(inputs)
    if nd == 0 or any(x.ndim != nd for x in inputs):
        return None
    names = ", ".join(f"v{i}" for i in range(n_in))
    lines = [f"def fused_small({names}):", "    try:",
             "        " + "; ".join(f"s{i} = v{i}.shape" for i in range(n_in)),
             "    except AttributeError:", f"        return general({names})"]
    full, bad = [], []
    for d in range(nd):
        owners = [i for i, x in enumerate(inputs) if not x.type.broadcastable[d]]
        full.append(f"s{owners[0]}[{d}]" if owners else "1")
        # the other operands: the same length, or 1 where their type broadcasts
        bad += [f"s{i}[{d}] != {full[d] if i in owners else 1}" for i in range(n_in)
                if not owners or i != owners[0]]
    lines.append(f"    if {' or '.join(bad)}:" if bad else "    if False:")
    lines.append(f"        return general({names})")
    lines.append(f"    if {' * '.join(full)} >= {limit}:")
    lines.append(f"        return general({names})")
    namespace = {"general": general, "asarray": np.asarray, "array": np.array,
                 "broadcast_to": np.broadcast_to}
    for k, (fn, refs, ufunc, dead, dtype) in enumerate(steps):
        namespace[f"f{k}"] = fn
        args = ", ".join(f"v{r}" for r in refs)
        reuse = next((r for r in dead if steps[r - n_in][4] == dtype), None) if ufunc else None
        if reuse is not None:
            call = f"f{k}({args}, out=v{reuse})"
        elif ufunc:
            call = f"f{k}({args})"
        else:
            call = f"asarray(f{k}({args}))"
        lines.append(f"    v{n_in + k} = {call}")
    shape = "(" + "".join(f"{f}, " for f in full) + ")"
    results = [f"v{r}" if r >= n_in and wide[r] else f"array(broadcast_to(v{r}, {shape}))"
               for r in node.op.graph.outputs]
    lines.append(f"    return {results[0]}" if len(results) == 1 else
                 f"    return ({', '.join(results)},)")
    exec(compile("\n".join(lines), f"<fused {node.op}>", "exec"), namespace)  # noqa: S102
    return namespace["fused_small"]


def _label(var: Variable) -> str:
    return var.name or repr(var)
