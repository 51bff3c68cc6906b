"""``scan``: loops over sequences with states fed back through taps (Theano's ``theano.scan``).

``scan(fn, ...)`` calls ``fn`` once, on fresh inner variables standing for one step's slices of
the sequences, the states it reads (one per tap) and the non-sequences. What ``fn`` returns is
the loop body: one ``Scan`` node holds it as its inner graph, which ``function()`` compiles
once, with the outer mode; the node's ``impl`` runs it once per step.

How the arguments map onto the node (the same conventions as Theano's Scan):

- a sequence read with taps ``[-1, 0, 2]`` becomes one outer input per tap, each the slice of
  the sequence that step ``t`` reads at row ``t`` (reversed for ``go_backwards``); the node then
  only ever reads row ``t`` of a sequence, and the gradient of the slicing is the Subtensor's;
- a state read with taps ``[-1]`` has its initial value as the state itself; with other taps
  the initial value stacks the rows before the start (``initial[:-min(taps)]``, as Theano);
  either way the output stacks the steps only, not the initial rows;
- an output with None in ``outputs_info`` is not fed back (a map);
- a shared variable updated by ``fn`` is a state too, whose output is only its final value:
  ``scan`` returns it in the updates, for ``function(updates=...)``;
- ``fn`` receives the non-sequences themselves (as in Theano: it may differentiate with
  respect to one); they and every other variable of the outer graph that ``fn`` reads
  (shared variables included) become inputs of the node: the inner graph gets a stand-in for
  each outermost variable that does not depend on the step, computed once, before the loop.

The gradient (``Scan.L_op``) is another Scan running the steps in reverse (see
``_reverse_scan``); ``Rop`` transposes it. The node's thunk runs the steps as one generated
function with the body's lines inlined (``loop.py``). A loop that ends with ``until`` is
differentiated as the same body run for the steps it ran. Not yet: a loop in generated C.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..grad.reverse import grad
from ..ops.alloc import zeros_like
from ..ops.base import Op, as_int_scalar, as_tensor_variable, graph_error, static_int
from ..ops.blas import Dot, Gemm
from ..ops.dimshuffle import patternbroadcast, shape_padleft, unbroadcast
from ..ops.elemwise import ELEMWISE, cast
from ..ops.join import concatenate
from ..ops.shape import shape
from ..ops.subtensor import inc_subtensor, set_subtensor
from ..symbolic.graph import (
    Apply,
    Constant,
    Variable,
    ancestors,
    clone_replace,
    graph_inputs,
    toposort,
)
from ..symbolic.shared import SharedVariable
from ..symbolic.trace import describe, format_trace, user_trace
from ..symbolic.types import TensorType
from .cloop import CLoop
from .loop import compile_steps, reused

MAP = None  # the taps of an output that is not fed back
# A loop copies a transposed matrix it multiplies at every step into C order up to this size
# (bytes): the copy lives for the call, beside the original.
DENSE_MAX = 1 << 26


class until:  # noqa: N801 - Theano's name
    """Returned by ``fn`` beside its outputs: the loop ends after the step where ``condition``
    (a scalar) is true; that step's outputs are kept."""

    def __init__(self, condition: Any):
        self.condition = as_tensor_variable(condition)
        if self.condition.ndim != 0:
            raise graph_error(f"until() takes a scalar condition; got {self.condition.type}")


class ScanSpec(NamedTuple):
    """The layout of a Scan node's inputs and outputs (see the module docstring).

    ``outputs`` holds, per user output in order, its taps (a tuple of negative ints) or None
    for a map. Node inputs: n_steps, ``n_seqs`` sequences, one initial value per fed-back
    output, ``n_shared`` shared values, ``n_nonseqs`` non-sequences. Node outputs: one stacked
    output per user output, then one final value per shared variable. Inner inputs: one per
    sequence, one per tap of each fed-back output, one per shared variable, one per
    non-sequence; inner outputs: one per user output, one per shared variable, then the
    ``until`` condition if ``as_while``."""

    n_seqs: int
    outputs: tuple
    n_shared: int
    n_nonseqs: int
    as_while: bool


class Scan(Op):
    """A loop: the inner graph run once per step, its outputs stacked over the steps."""

    reverse = False  # (for loops pickled before the attribute)

    def __init__(self, inner_inputs: Sequence[Variable], inner_outputs: Sequence[Variable],
                 spec: ScanSpec, name: str = "scan", labels: Sequence[str] = (),
                 truncate_gradient: int = -1, go_backwards: bool = False,
                 reverse: bool = False):
        self.inner_inputs, self.inner_outputs = list(inner_inputs), list(inner_outputs)
        self.spec, self.name = spec, name
        # how errors name each user output ("output 0 (h_t)")
        self.labels = list(labels) or [f"output {k}" for k in range(len(spec.outputs))]
        self.truncate_gradient, self.go_backwards = truncate_gradient, go_backwards
        # step t reads row n-1-t of each sequence and writes row n-1-t of each map output (a
        # reverse loop: its rows stay in the forward loop's order, so that the products
        # after it read them without a reversed copy); states keep the steps' order
        if reverse and spec.as_while:
            raise ValueError("Scan: a reverse loop cannot end early (until)")
        self.reverse = reverse

    def __eq__(self, other) -> bool:  # each loop holds its own inner graph
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __str__(self) -> str:
        return f"Scan{{{self.name}}}"

    __repr__ = __str__

    # -- layout -----------------------------------------------------------------------------
    @property
    def n_fed(self) -> int:
        """How many user outputs are fed back (have taps)."""
        return sum(taps is not MAP for taps in self.spec.outputs)

    def make_node(self, n_steps, *inputs) -> Apply:
        spec = self.spec
        n_steps = as_int_scalar(n_steps, "scan's n_steps")
        inputs = [as_tensor_variable(v) for v in inputs]
        want = spec.n_seqs + self.n_fed + spec.n_shared + spec.n_nonseqs
        if len(inputs) != want:
            raise graph_error(f"{self}: {len(inputs)} inputs after n_steps, expected {want}")
        outs, fed = [], 0
        state_types = self._state_types()
        for j, taps in enumerate(spec.outputs):
            row = state_types[fed] if taps is not MAP else self.inner_outputs[j].type
            fed += taps is not MAP
            outs.append(TensorType(row.dtype, shape=(None,) + row.shape)())
        first_shared = 1 + spec.n_seqs + self.n_fed
        outs += [v.type() for v in inputs[first_shared - 1:first_shared - 1 + spec.n_shared]]
        return Apply(self, [n_steps] + inputs, outs)

    def _state_types(self) -> list[TensorType]:
        """The type of one step of each fed-back output (its first tap's inner input)."""
        spec, k, types = self.spec, self.spec.n_seqs, []
        for taps in spec.outputs:
            if taps is not MAP:
                types.append(self.inner_inputs[k].type)
                k += len(taps)
        return types

    def inner_graphs(self, node: Apply) -> list:
        return [(self.inner_inputs, self.inner_outputs)]

    # -- computing --------------------------------------------------------------------------
    def impl(self, node: Apply, inner: Sequence[Callable] = ()) -> Callable:
        return self.loop(node, inner)

    def loop(self, node: Apply, inner: Sequence[Callable], device: Any = None) -> Callable:
        """The thunk running the steps with the compiled body ``inner``. ``device``: the
        runtime whose arrays the values are (``scan/device.py``): the states and stacked
        outputs are made in its memory and the body runs there; the C loop is the host's."""
        fn, = inner
        spec, name, labels = self.spec, self.name, self.labels
        n_seqs, n_fed = spec.n_seqs, self.n_fed
        fed_taps = [taps for taps in spec.outputs if taps is not MAP]
        fed_index = [j for j, taps in enumerate(spec.outputs) if taps is not MAP]
        map_index = [j for j, taps in enumerate(spec.outputs) if taps is MAP]
        map_types = [self.inner_outputs[j].type for j in map_index]
        n_user = len(spec.outputs)
        single = len(node.outputs) == 1
        ins = node.inputs[1:]
        # each map output's array of the previous call, reused by either loop: the C loop
        # takes over from the Python one once compiled
        kept_maps: list = [None] * n_user
        steps_of = compile_steps(self, fn, [v.ndim for v in ins[:n_seqs]],
                                 [v.ndim + (taps == (-1,)) for v, taps in
                                  zip(ins[n_seqs:n_seqs + n_fed], fed_taps)], device,
                                 kept_maps)
        # the steps in C, once compiled, where it takes a call
        c_steps = CLoop.of(self, fn) if device is None else None

        def on_host(v) -> bool:
            return device is None or not device.is_device_array(v)
        reverse = self.reverse
        dense = self._product_operands()
        kept: list = [None] * n_fed  # each state's buffer of the previous call

        def run(n_steps, *args):
            n = int(n_steps)
            if n < 0:
                raise ValueError(f"scan {name!r}: n_steps is {n}; the number of steps cannot be "
                                 "negative (Theano's scan no longer runs backwards for a negative "
                                 "n_steps: use go_backwards=True)")
            seqs = args[:n_seqs]
            for k, s in enumerate(seqs):
                if s.shape[0] < n:
                    raise ValueError(
                        f"scan {name!r}: n_steps is {n} but sequence input {k} has only "
                        f"{s.shape[0]} steps (after cutting it for its taps). Give fewer "
                        "n_steps, or leave n_steps out: then the shortest sequence sets it.")
            if reverse:
                seqs = [s[n - 1::-1] if n else s[:0] for s in seqs]
            inits = args[n_seqs:n_seqs + n_fed]
            rest = args[n_seqs + n_fed:]
            if dense and n > 1 and device is None:
                # a matrix multiplied at every step is read in the layout BLAS is fastest on
                # (a transposed view, W.T of a gradient, took 1.2-4x as long a product on
                # OpenBLAS); the copy costs one read of it, which each step's product pays
                rest = list(rest)
                for k in dense:
                    v = rest[k]
                    if v.ndim == 2 and not v.flags.c_contiguous and v.nbytes <= DENSE_MAX:
                        rest[k] = np.ascontiguousarray(v)
            bufs, offsets = [], []
            for k, (taps, init) in enumerate(zip(fed_taps, inits)):
                if on_host(init):
                    init = np.asarray(init)
                if taps == (-1,):
                    buf = reused(kept, k, (n + 1,) + init.shape, init.dtype, device, init)
                    buf[0] = init
                    offset = 1
                else:
                    offset = -min(taps)
                    if init.shape[0] < offset:
                        raise ValueError(
                            f"scan {name!r}: {labels[fed_index[k]]} reads taps {list(taps)}, "
                            f"which reach {offset} steps before the start, but its initial value "
                            f"in outputs_info has only {init.shape[0]} rows (shape "
                            f"{init.shape}). Give it at least {offset} rows.")
                    buf = reused(kept, k, (n + offset,) + init.shape[1:], init.dtype,
                                 device, init)
                    buf[:offset] = init[:offset]
                bufs.append(buf)
                offsets.append(offset)
            done = c_steps(n, seqs, bufs, offsets, rest, kept_maps) if c_steps is not None else None
            if done is not None:
                steps = n
            else:
                # (a reverse loop's maps are written through reversed views: see new_map)
                steps, done = steps_of(n, *seqs, *bufs, *offsets, *rest)
            maps, shared = done[:len(map_index)], done[len(map_index):]
            if reverse:
                maps = [m if m is None else m[::-1] for m in maps]
            results: list = [None] * n_user
            for k, j in enumerate(fed_index):
                results[j] = bufs[k][offsets[k]:offsets[k] + steps]
            for k, j in enumerate(map_index):
                stacked = maps[k]
                if stacked is None:  # no step ran: the lengths not known statically are 0
                    empty = (0,) + tuple(s or 0 for s in map_types[k].shape)
                    stacked = np.empty(empty, dtype=map_types[k].dtype) if device is None \
                        else device.empty(empty, map_types[k].dtype)
                results[j] = stacked[:steps]
            results += [(np.array(v, copy=True) if on_host(v) else v.copy()) if v is rest[k] else v
                        for k, v in enumerate(shared)]
            return results[0] if single else tuple(results)
        run.steps = steps_of  # (its generated source, for tests and the curious)
        run.c_steps = c_steps
        return run

    def _product_operands(self) -> list[int]:
        """Positions, among the node inputs after the states (shared values, then
        non-sequences), of the non-sequence matrices that the body multiplies with another
        matrix by ``dot``."""
        n_nonseqs, n_shared = self.spec.n_nonseqs, self.spec.n_shared
        nonseqs = self.inner_inputs[len(self.inner_inputs) - n_nonseqs:] if n_nonseqs else []
        where = {v: n_shared + k for k, v in enumerate(nonseqs) if v.ndim == 2}
        found: set[int] = set()
        for node in toposort(self.inner_outputs):
            if isinstance(node.op, Gemm):
                factors = node.op.parts(node.inputs)[2:4]
            elif isinstance(node.op, Dot):
                factors = node.inputs
            else:
                continue
            if all(i.ndim == 2 for i in factors):
                found.update(where[i] for i in factors if i in where)
        return sorted(found)

    def infer_shape(self, fgraph, node: Apply, shapes):
        spec = self.spec
        outs = node.outputs
        n = shape(outs[0])[0] if spec.as_while and spec.outputs else cast(node.inputs[0], "int64")
        result, fed = [], 0
        first_init = 1 + spec.n_seqs
        for j, taps in enumerate(spec.outputs):
            if taps is MAP:
                inner = self.inner_outputs[j].type.shape
                rest = tuple(shape(outs[j])[i + 1] if s is None else s
                             for i, s in enumerate(inner))
            else:
                init = shapes[first_init + fed]
                rest = tuple(init) if taps == (-1,) else tuple(init)[1:]
                fed += 1
            result.append((n,) + rest)
        first_shared = first_init + self.n_fed
        result += [tuple(shapes[first_shared + k]) for k in range(spec.n_shared)]
        return result


    # -- gradient ----------------------------------------------------------------------------
    def L_op(self, inputs, outputs, output_grads):
        """Backpropagation through time, as a reverse loop (another Scan node).

        The reverse loop walks the steps from the last to the first (only the last
        ``truncate_gradient`` ones when it is set). Each step differentiates the body at the
        forward step's inputs (its sequence rows and the state values it read, given to the
        reverse loop as sequences cut from the forward outputs) with the step's output
        gradients as cotangents: its own output gradient plus what later steps sent back
        through their taps. Those pending gradients travel as a window per fed-back output,
        one row per step of its longest tap; the gradients of the non-sequences are summed
        in accumulators. Both are states of the reverse loop whose final value only is kept;
        differentiating such a loop (second order, or shared variables updated by fn) runs
        the loop again keeping every step of those states (``_through_final_states``).
        """
        spec = self.spec
        if spec.as_while:
            # the steps the loop ran are its outputs' length: the gradient is that of the
            # same body run that many steps (the condition, a boolean, passes none)
            if not spec.outputs:
                raise NotImplementedError(
                    "scan with until and no output (only updates of shared variables): the "
                    "number of steps it ran is not known to the gradient; return a state too")
            plain = Scan(self.inner_inputs, self.inner_outputs[:-1],
                         spec._replace(as_while=False), name=self.name, labels=self.labels,
                         truncate_gradient=self.truncate_gradient,
                         go_backwards=self.go_backwards)
            return plain.L_op([shape(outputs[0])[0]] + list(inputs[1:]), outputs,
                              output_grads)
        if spec.n_shared:
            return _through_final_states(self, inputs, outputs, output_grads)
        return _reverse_scan(self, inputs, outputs, output_grads)


# -- the scan() function ---------------------------------------------------------------------

def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _taps(value) -> list[int] | None:
    if value is None:
        return None
    taps = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not all(isinstance(k, (int, np.integer)) for k in taps):
        raise graph_error(f"scan: taps must be integers; got {value!r}")
    return [int(k) for k in taps] or None


def _label(v: Variable) -> str:
    return v.name or str(v.type)


def _normalize_sequences(sequences) -> list[tuple[Variable, list[int]]]:
    out = []
    for k, s in enumerate(_as_list(sequences)):
        if isinstance(s, dict):
            if "input" not in s:
                raise graph_error(f"scan: sequence {k} is a dict without an 'input' entry: {s!r}")
            var, taps = s["input"], _taps(s.get("taps", [0])) or [0]
        else:
            var, taps = s, [0]
        var = _tensor(var, f"sequence {k}")
        if var.ndim < 1:
            raise graph_error(f"scan: sequence {k} ({_label(var)}) is a scalar ({var.type}); a "
                              "sequence is iterated over its first dimension")
        out.append((var, taps))
    return out


def _tensor(v: Any, what: str) -> Variable:
    if isinstance(v, Variable):
        if not isinstance(v.type, TensorType):
            raise graph_error(f"scan: {what} is {v!r} of type {v.type}, not a tensor")
        return v
    return as_tensor_variable(v)


def _normalize_outputs_info(outputs_info) -> list[tuple[Variable | None, tuple | None]]:
    if outputs_info is None:
        return []
    entries = [outputs_info] if isinstance(outputs_info, (dict, Variable)) or not isinstance(
        outputs_info, (list, tuple)) else list(outputs_info)
    out = []
    for k, e in enumerate(entries):
        if e is None:
            out.append((None, MAP))
            continue
        if isinstance(e, dict):
            init = e.get("initial")
            taps = _taps(e.get("taps", [-1]))
            if init is None:
                if taps and "taps" in e:
                    raise graph_error(f"scan: outputs_info[{k}] reads taps {taps} but gives no "
                                      "'initial' value to read before the first step", ValueError)
                out.append((None, MAP))
                continue
            if taps is None:  # taps=None: not fed back, its initial value unused (Theano)
                out.append((None, MAP))
                continue
        else:
            init, taps = e, [-1]
        if any(t >= 0 for t in taps):
            raise graph_error(f"scan: outputs_info[{k}] has taps {taps}; the taps of an output "
                              "must be negative (a step reads earlier steps only)", ValueError)
        init = _tensor(init, f"outputs_info[{k}]")
        if taps != [-1]:
            if init.ndim < 1:
                raise graph_error(
                    f"scan: outputs_info[{k}] reads taps {taps}, so its initial value stacks "
                    f"the {-min(taps)} steps before the start along a first dimension; got "
                    f"{init.type}, which has none")
            rows = init.type.shape[0]
            if rows is not None and rows < -min(taps):
                raise graph_error(
                    f"scan: outputs_info[{k}] reads taps {taps}, which reach {-min(taps)} steps "
                    f"before the start, but its initial value has only {rows} rows ({init.type})"
                    f". Give at least {-min(taps)} rows.", ValueError)
        out.append((init, tuple(taps)))
    return out


def _parse_return(ret) -> tuple[list, dict, Any]:
    """fn's return value -> (outputs, updates, until condition), in any of Theano's forms:
    outputs, updates, until, or a tuple of these in any order."""
    def is_part(x):
        return isinstance(x, (dict, until))
    if isinstance(ret, (list, tuple)) and any(is_part(x) for x in ret):
        parts = list(ret)
    else:
        parts = [ret]
    outputs, updates, cond = [], OrderedDict(), None
    for p in parts:
        if isinstance(p, until):
            cond = p.condition
        elif isinstance(p, dict):
            updates.update(p)  # dicts keep their insertion order
        elif isinstance(p, (list, tuple)):
            outputs.extend(p)
        else:
            outputs.append(p)
    return outputs, updates, cond


_RETURN_HELP = ("fn must return variables (a variable, or a list or tuple of them), optionally "
                "with a dict of updates of shared variables and a theon.scan_module.until "
                "condition. For a constant, return T.constant(value) (or T.as_tensor_variable); "
                "to return nothing for a step, leave the output out.")


def _check_state(k: int, init: Variable, state_type: TensorType, out: Variable,
                 where: tuple) -> None:
    """The type fn returns for a fed-back output must fit the state it feeds."""
    # Theano's rule (dtype, ndim, broadcast pattern), with static lengths that must not
    # contradict each other; a length the result does not know is checked at each step
    if (state_type.dtype == out.type.dtype and state_type.ndim == out.type.ndim
            and all(s is None or o == s or (o is None and s != 1)
                    for s, o in zip(state_type.shape, out.type.shape))):
        return
    st, ot = state_type, out.type
    if st.dtype != ot.dtype:
        what = f"its dtype changes from {st.dtype} to {ot.dtype}"
        fix = (f"Cast one side: T.cast(<what fn returns>, '{st.dtype}') in fn, or give "
               f"outputs_info the dtype fn computes (T.cast(initial, '{ot.dtype}')); an "
               "upcast often comes from a float64 constant or a mix of float32 and int inputs.")
    elif st.ndim != ot.ndim:
        what = f"its number of dimensions changes from {st.ndim} to {ot.ndim}"
        fix = ("Make fn return a value shaped like one step of the state (reshape, flatten, "
               "dimshuffle), or give outputs_info an initial value of that shape.")
    else:
        pattern_in, pattern_out = st.broadcastable, ot.broadcastable
        if any(a and not b for a, b in zip(pattern_in, pattern_out)):
            axes = tuple(i for i, (a, b) in enumerate(zip(pattern_in, pattern_out)) if a and not b)
            fix = (f"The initial value is broadcastable along {axes} (a length-1 dimension "
                   f"known when the graph is built, e.g. T.zeros((1, n))) but the step's result "
                   f"is not. Use T.unbroadcast(initial, {', '.join(str(a) for a in axes)}) in "
                   f"outputs_info, or T.patternbroadcast(<result>, {pattern_in}) in fn.")
        else:
            fix = ("The static lengths differ; give outputs_info an initial value of the "
                   "step's shape (T.patternbroadcast / T.unbroadcast adjust the pattern).")
        what = f"its broadcast pattern changes from {pattern_in} to {pattern_out}"
    raise TypeError(
        f"scan: output {k} of fn is fed back as a state, but {what}; a state keeps its type "
        f"from step to step.\n  initial value (outputs_info): {describe(init)}; one step: "
        f"{st}\n  fn returns: {describe(out)}\n  {fix}\n  (scan called at "
        f"{format_trace(where)})")


def scan(fn: Callable, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient: int = -1, go_backwards: bool = False, mode=None,
         name: str | None = None, profile=False, allow_gc=None, strict: bool = False,
         return_list: bool = False):
    """Loop ``fn`` over ``sequences`` for ``n_steps``, feeding ``outputs_info`` states back.

    ``fn`` receives, in order: each sequence's slices (one per tap, taps in the order given),
    each fed-back output's earlier steps (one per tap), then the non-sequences. It returns its
    outputs, optionally with a dict of shared-variable updates and an ``until`` condition.
    Returns ``(outputs, updates)``: one variable per output, stacked over the steps (a list
    when there are several, or with ``return_list``; None when there are none), and the
    updates to pass to ``function(updates=...)``. ``mode``, ``profile`` and ``allow_gc`` are
    accepted for Theano's sake: the loop body compiles with the outer function's mode.
    """
    where = user_trace()
    name = name or "scan_fn"
    seqs = _normalize_sequences(sequences)
    outs_info = _normalize_outputs_info(outputs_info)
    nonseqs = [_tensor(v, f"non_sequences[{k}]") for k, v in enumerate(_as_list(non_sequences))]
    if n_steps is not None:
        n_steps = as_int_scalar(n_steps, "scan's n_steps", TypeError)
        known = static_int(n_steps)
        if known is not None and known < 0:
            raise graph_error(f"scan: n_steps is {known}; the number of steps cannot be "
                              "negative (to run in reverse, use go_backwards=True)", ValueError)
    elif not seqs:
        raise graph_error("scan: with no sequences, give n_steps (the number of steps to run)",
                          ValueError)

    # one outer slice and one inner variable per sequence tap
    seq_slices, seq_inner = [], []
    for var, taps in seqs:
        lo, hi = min(min(taps), 0), max(max(taps), 0)
        for k in taps:
            end = k - hi
            piece = var[k - lo:end if end else None]
            seq_slices.append(piece[::-1] if go_backwards else piece)
            label = f"{var.name}[t{k:+d}]" if k else f"{var.name}[t]"
            seq_inner.append(TensorType(var.dtype, shape=var.type.shape[1:])(
                label if var.name else None))
    if n_steps is None:
        lengths = [cast(shape(s)[0], "int64") for s in seq_slices]
        n = lengths[0]
        for length in lengths[1:]:
            n = ELEMWISE["minimum"](n, length)
    else:
        n = n_steps

    # inner variables of the fed-back outputs, one per tap
    state_inner, state_types = [], []
    for init, taps in outs_info:
        if taps is MAP:
            continue
        row = init.type if taps == (-1,) else TensorType(init.dtype, shape=init.type.shape[1:])
        state_types.append(row)
        for tap in taps:
            label = f"{init.name}[t{tap}]" if init.name else None
            state_inner.append(row(label))
    # fn gets the non-sequences themselves (as in Theano, so that it may differentiate with
    # respect to one: the jacobian of the tutorial); they are found among the outer variables
    # the body reads, with the others
    args = seq_inner + state_inner + nonseqs
    _check_arity(fn, args, len(seq_inner), len(state_inner), where)
    outputs, updates, cond = _parse_return(fn(*args))
    for k, o in enumerate(outputs):
        if not isinstance(o, Variable) or not isinstance(o.type, TensorType):
            raise TypeError(f"scan: output {k} of fn is {type(o).__name__} {o!r:.80}, not a "
                            f"symbolic variable. {_RETURN_HELP}\n  (scan called at "
                            f"{format_trace(where)})")
    if not outs_info:
        outs_info = [(None, MAP)] * len(outputs)
    elif len(outs_info) != len(outputs):
        raise graph_error(
            f"scan: fn returns {len(outputs)} outputs but outputs_info has {len(outs_info)} "
            "entries; give one entry per output, None for an output that is not fed back (a map)",
            ValueError)
    fed = 0
    for k, ((init, taps), out) in enumerate(zip(outs_info, outputs)):
        if taps is not MAP:
            _check_state(k, init, state_types[fed], out, where)
            fed += 1
    shared_vars, shared_values = [], []
    for var, value in updates.items():
        if not isinstance(var, SharedVariable):
            raise TypeError(f"scan: fn returns an update of {var!r}, which is not a shared "
                            f"variable; only shared variables can be updated\n  (scan called at "
                            f"{format_trace(where)})")
        value = as_tensor_variable(value)
        if value.dtype != var.dtype or value.ndim != var.ndim:
            raise TypeError(f"scan: fn updates {describe(var)} with {describe(value)}: the "
                            f"update must keep the shared variable's dtype and number of "
                            f"dimensions (cast it: T.cast(new, '{var.dtype}'))\n  (scan called "
                            f"at {format_trace(where)})")
        shared_vars.append(var)
        shared_values.append(value)
    # A shared variable the body reads with a default update of its own (a random stream's
    # state) is updated by the loop too, as in Theano: each step draws anew, and the updates
    # scan returns carry the final state.
    reads = list(outputs) + shared_values + ([cond] if cond is not None else [])
    while reads:
        found = [v for v in graph_inputs(reads) if isinstance(v, SharedVariable)
                 and v not in shared_vars and getattr(v, "default_update", None) is not None]
        reads = [as_tensor_variable(v.default_update) for v in found]
        shared_vars += found
        shared_values += reads

    # the shared variables fn updates are states inside the loop
    shared_inner = [v.type(name=v.name) for v in shared_vars]
    inner_outs = list(outputs) + shared_values + ([cast(cond, "bool")] if cond is not None
                                                  else [])
    if shared_vars:
        inner_outs = clone_replace(inner_outs, dict(zip(shared_vars, shared_inner)))
    outer = _outer_reads(inner_outs, seq_inner + state_inner + shared_inner)
    if strict:
        passed = set(nonseqs)
        stray = [v for v in graph_inputs(outer, stop=passed)
                 if v not in passed and not isinstance(v, Constant)]
        if stray:
            raise graph_error(
                f"scan (strict=True): fn uses {describe(stray[0])} without it being passed; "
                "add it to non_sequences (or pass strict=False)", ValueError)
    outer_inner = [v.type(name=v.name) for v in outer]
    if outer:
        inner_outs = clone_replace(inner_outs, dict(zip(outer, outer_inner)))

    spec = ScanSpec(n_seqs=len(seq_slices), outputs=tuple(t for _, t in outs_info),
                    n_shared=len(shared_vars), n_nonseqs=len(outer),
                    as_while=cond is not None)
    labels = [f"output {k} ({o.name})" if o.name else f"output {k}"
              for k, o in enumerate(outputs)]
    op = Scan(seq_inner + state_inner + shared_inner + outer_inner,
              inner_outs, spec, name=name, labels=labels, truncate_gradient=truncate_gradient,
              go_backwards=go_backwards)
    inits = [init for init, taps in outs_info if taps is not MAP]
    node_outs = op.make_node(n, *seq_slices, *inits, *shared_vars, *outer).outputs
    user = node_outs[:len(outputs)]
    for o, inner in zip(user, outputs):
        o.name = f"{inner.name}[steps]" if inner.name else None
    new_updates = OrderedDict(zip(shared_vars, node_outs[len(outputs):]))
    if return_list:
        return list(user), new_updates
    if not user:
        return None, new_updates
    return (user[0] if len(user) == 1 else list(user)), new_updates


def _check_arity(fn: Callable, args: list, n_seq: int, n_state: int, where: tuple) -> None:
    """Refuse, before calling it, an ``fn`` that cannot take the arguments scan passes."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args)
    except TypeError as err:
        raise TypeError(
            f"scan: fn cannot take the {len(args)} arguments scan passes it ({err}): {n_seq} "
            f"sequence slices (one per tap), {n_state} earlier steps of the fed-back outputs "
            f"(one per tap), then {len(args) - n_seq - n_state} non-sequences, in that order\n"
            f"  (scan called at {format_trace(where)})") from None


def _outer_reads(outputs: list[Variable], inner: list[Variable]) -> list[Variable]:
    """The outermost variables of the enclosing graph that ``outputs`` read: each one that
    does not depend on the step (no path from ``inner``) but feeds a computation that does,
    or is an output itself; constants stay in the loop body."""
    inside = set(inner)
    order = toposort(outputs, stop=inside)
    for node in order:
        if any(i in inside for i in node.inputs):
            inside.update(node.outputs)
    # What only a lazy branch of the body reads stays in the body (up to the graph's own
    # inputs), so that a step taking the other branch never computes it: computed once before
    # the loop, a branch that would fail (or cost much) would run whatever the condition says.
    lazy_reads = {node.inputs[p] for node in order if node.op.lazy and node.outputs[0] in inside
                  for branch in node.op.branch_inputs(node) for p in branch}
    pulled = set(ancestors([v for v in lazy_reads if v not in inside and v.owner is not None]))
    if pulled:
        for node in order:
            if any(o in pulled for o in node.outputs):
                inside.update(node.outputs)
    found: dict[Variable, None] = {}
    for node in order:
        if node.outputs[0] in inside:
            for i in node.inputs:
                if i not in inside and not isinstance(i, Constant):
                    found[i] = None
    for o in outputs:
        if o not in inside and not isinstance(o, Constant):
            found[o] = None
    return list(found)


def map(fn: Callable, sequences, non_sequences=None, truncate_gradient: int = -1,  # noqa: A001
        go_backwards: bool = False, mode=None, name: str | None = None):
    """``fn`` applied to each step of ``sequences``: scan with no state fed back."""
    return scan(fn, sequences=sequences, outputs_info=None, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, mode=mode,
                name=name)


def reduce(fn: Callable, sequences, outputs_info, non_sequences=None,  # noqa: A001
           go_backwards: bool = False, mode=None, name: str | None = None):
    """The last step of scan: ``fn`` folded over ``sequences`` from ``outputs_info``."""
    outs, updates = scan(fn, sequences=sequences, outputs_info=outputs_info,
                         non_sequences=non_sequences, go_backwards=go_backwards,
                         truncate_gradient=-1, mode=mode, name=name)
    if isinstance(outs, (list, tuple)):
        return [o[-1] for o in outs], updates
    return outs[-1], updates


def foldl(fn: Callable, sequences, outputs_info, non_sequences=None, mode=None,
          name: str | None = None):
    """reduce from the first step to the last."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=False, mode=mode,
                  name=name)


def foldr(fn: Callable, sequences, outputs_info, non_sequences=None, mode=None,
          name: str | None = None):
    """reduce from the last step to the first."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=True, mode=mode,
                  name=name)


# -- the reverse loop ---------------------------------------------------------------------------

def _is_float(v: Variable) -> bool:
    return v.dtype.startswith(("float", "complex"))


def _fit(v: Variable, ttype: TensorType) -> Variable:
    """``v`` with the dtype and broadcast pattern of ``ttype`` (the values already fit)."""
    if v.dtype != ttype.dtype:
        v = cast(v, ttype.dtype)
    if v.broadcastable != ttype.broadcastable:
        v = patternbroadcast(v, ttype.broadcastable)
    return v


def _row(v: Variable, name: str | None = None) -> Variable:
    """A fresh variable for one row (step) of ``v``."""
    return TensorType(v.dtype, shape=v.type.shape[1:])(name)


def _through_final_states(op: Scan, inputs, outputs, output_grads) -> list:
    """The gradient of a loop with states whose final value only is kept (shared variables
    updated by fn; the sums and windows of a reverse loop, hence second order): the same body
    again, keeping every step of those states (the forward loop is computed a second time),
    differentiated as a loop of ordinary states."""
    spec = op.spec
    n_user, first = len(spec.outputs), 1 + spec.n_seqs + op.n_fed
    twin = Scan(op.inner_inputs, op.inner_outputs,
                spec._replace(outputs=spec.outputs + ((-1,),) * spec.n_shared, n_shared=0),
                name=f"{op.name}_steps", truncate_gradient=op.truncate_gradient,
                labels=op.labels + [f"final state {k}" for k in range(spec.n_shared)],
                go_backwards=op.go_backwards, reverse=op.reverse)
    steps = twin.make_node(*inputs).outputs
    n = cast(inputs[0], "int64")
    grads, direct = list(output_grads[:n_user]), {}
    for k, g in enumerate(output_grads[n_user:]):
        hist = steps[n_user + k]
        if g is None or not _is_float(hist):
            grads.append(None)
            continue
        # the final value is the last step's, or the initial value when no step ran
        grads.append(inc_subtensor(zeros_like(hist)[n - 1:], shape_padleft(g)))
        direct[first + k] = ELEMWISE["switch"](ELEMWISE["eq"](n, 0), g, zeros_like(g))
    result = _reverse_scan(twin, inputs, steps, grads)
    for i, g in direct.items():
        result[i] = g if result[i] is None else result[i] + g
    return result


def _reverse_of_reverse(op: Scan, inputs, outputs, output_grads) -> list:
    """The gradient of a reverse loop (second order): that of the same body run forward
    over the sequences' rows reversed, its maps reversed."""
    spec = op.spec
    n_seqs, n_user = spec.n_seqs, len(spec.outputs)
    forward = Scan(op.inner_inputs, op.inner_outputs, spec, name=op.name, labels=op.labels,
                   truncate_gradient=op.truncate_gradient, go_backwards=op.go_backwards)
    n = cast(inputs[0], "int64")
    seqs = inputs[1:1 + n_seqs]
    flipped = [s[:n][::-1] for s in seqs]

    def in_steps(v, taps):
        return v[::-1] if v is not None and taps is MAP else v
    outs = [in_steps(o, t) for o, t in zip(outputs[:n_user], spec.outputs)]
    grads = [in_steps(g, t) for g, t in zip(output_grads[:n_user], spec.outputs)]
    result = _reverse_scan(forward, [inputs[0], *flipped, *inputs[1 + n_seqs:]],
                           outs + list(outputs[n_user:]), grads + list(output_grads[n_user:]))
    for k, s in enumerate(seqs):
        g = result[1 + k]
        if g is not None:
            result[1 + k] = set_subtensor(zeros_like(s)[:n], g[::-1])
    return result


def _reverse_scan(op: Scan, inputs, outputs, output_grads) -> list:
    if op.reverse:
        return _reverse_of_reverse(op, inputs, outputs, output_grads)
    spec = op.spec
    n_seqs, n_user = spec.n_seqs, len(spec.outputs)
    n, seqs = inputs[0], inputs[1:1 + n_seqs]
    inits = inputs[1 + n_seqs:1 + n_seqs + op.n_fed]
    nonseqs = inputs[1 + n_seqs + op.n_fed:]
    f_in = op.inner_inputs
    seq_in = f_in[:n_seqs]
    nonseq_in = f_in[len(f_in) - len(nonseqs):]
    grads = [g if g is not None and _is_float(o) else None
             for o, g in zip(outputs[:n_user], output_grads[:n_user])]
    if all(g is None for g in grads):
        return [None] * len(inputs)
    n = cast(n, "int64")
    trunc = op.truncate_gradient
    n_rev = n if trunc is None or trunc < 0 else ELEMWISE["minimum"](n, np.int64(trunc))

    def last_steps(v: Variable) -> Variable:
        """The rows of the n_rev last steps of ``v`` (n rows): a reverse loop's sequence,
        read from its last row to its first."""
        return v if n_rev is n else v[n - n_rev:]

    rev_seqs, rev_in = [], []  # outer sequences of the reverse loop, inner rows
    replace: dict[Variable, Variable] = {}
    for x, x_in in zip(seqs, seq_in):
        row = _row(x, x_in.name)
        rev_seqs.append(last_steps(x[:n]))  # (a sequence may be longer than the steps run)
        rev_in.append(row)
        replace[x_in] = row
    windows = []  # per fed-back output: (user index, taps, initial rows, tap rows)
    k, fed = n_seqs, 0
    for j, taps in enumerate(spec.outputs):
        if taps is MAP:
            continue
        init, out = inits[fed], outputs[j]
        fed += 1
        rows = shape_padleft(init) if taps == (-1,) else init[:-min(taps)]
        m = -min(taps)
        full = concatenate([_fit(rows, TensorType(out.dtype, shape=(None,) + out.type.shape[1:])),
                            out])
        tap_rows = []
        for tap, t_in in zip(taps, f_in[k:k + len(taps)]):
            piece = full[m + tap:m + tap + n]
            row = t_in.type(t_in.name)
            rev_seqs.append(last_steps(piece))
            rev_in.append(row)
            replace[t_in] = row
            tap_rows.append(row)
        k += len(taps)
        if _is_float(out):
            windows.append((j, taps, rows, tap_rows))
    g_rows = {}
    for j, g in enumerate(grads):
        if g is not None:
            row = _row(g)
            rev_seqs.append(last_steps(g))
            rev_in.append(row)
            g_rows[j] = row
    p_in = [v.type(v.name) for v in nonseq_in]
    replace.update(zip(nonseq_in, p_in))

    # carried states: one window of pending gradients per float fed-back output, one sum per
    # float non-sequence
    carried_init, carried_in = [], []
    for _j, _taps, rows, _ in windows:
        # the window's length is m at run time, whatever the initial rows' pattern says
        zero = unbroadcast(zeros_like(rows), 0) if rows.broadcastable[0] else zeros_like(rows)
        carried_init.append(zero)
        carried_in.append(zero.type("pending"))
    float_p = [i for i, p in enumerate(nonseqs) if _is_float(p)]
    for i in float_p:
        carried_init.append(zeros_like(nonseqs[i]))
        carried_in.append(nonseqs[i].type("sum_grad"))

    body = clone_replace(op.inner_outputs[:n_user], replace)
    known: dict[Variable, Variable] = {}
    for w, (j, *_rest) in enumerate(windows):
        pending = carried_in[w][0]
        g = g_rows[j] + pending if j in g_rows else pending
        known[body[j]] = known[body[j]] + g if body[j] in known else g
    for j, row in g_rows.items():
        if spec.outputs[j] is MAP:
            known[body[j]] = known[body[j]] + row if body[j] in known else row
    known = {v: _fit(g, v.type) if v.ndim == g.ndim else g for v, g in known.items()
             if not isinstance(v, Constant)}
    seq_rows = [replace[x_in] for x_in in seq_in]
    wrt_seq = [r for r in seq_rows if _is_float(r)]
    wrt_taps = [r for _, _, _, tap_rows in windows for r in tap_rows]
    wrt_p = [p_in[i] for i in float_p]
    wrt = wrt_seq + wrt_taps + wrt_p
    got = grad(None, wrt, known_grads=known, disconnected_inputs="ignore") if wrt and known \
        else [zeros_like(v) for v in wrt]
    # A gradient rule that reads the step's output (tanh's 1 - y^2, softmax's) reads the
    # forward loop's row instead, given as one more sequence: the reverse step then does not
    # compute the forward step again for it.
    outputs_read = {}
    for j, b in enumerate(body):
        if b.owner is not None and b not in outputs_read.values() and j not in outputs_read:
            outputs_read[j] = b
    if outputs_read:
        rows_of = {b: _row(outputs[j], b.name) for j, b in outputs_read.items()}
        swapped = clone_replace(list(got), rows_of)
        used = set(ancestors(swapped))
        for j, b in outputs_read.items():
            if rows_of[b] in used:
                rev_seqs.append(last_steps(outputs[j]))
                rev_in.append(rows_of[b])
        got = swapped
    got = dict(zip(wrt, got))

    new_carried = []
    for w, (_j, taps, _rows, tap_rows) in enumerate(windows):
        pending = carried_in[w]
        if taps == (-1,):  # the window is one row: what this step sent back through tap -1
            nxt = shape_padleft(got[tap_rows[0]])
        else:  # row i waits for position t - 1 - i: shift by one, add this step's taps
            nxt = concatenate([pending[1:], zeros_like(pending[:1])])
            for tap, row in zip(taps, tap_rows):
                nxt = inc_subtensor(nxt[-1 - tap], got[row])
        new_carried.append(_fit(nxt, pending.type))
    for c, i in zip(carried_in[len(windows):], float_p):
        new_carried.append(_fit(c + got[p_in[i]], c.type))
    seq_grads = [_fit(got[r], r.type) for r in wrt_seq]

    rev_spec = ScanSpec(n_seqs=len(rev_seqs), outputs=(MAP,) * len(seq_grads),
                        n_shared=len(carried_in), n_nonseqs=len(p_in), as_while=False)
    rev = Scan(rev_in + carried_in + p_in, seq_grads + new_carried, rev_spec,
               name=f"grad_of_{op.name}", reverse=True)
    rev_outs = rev.make_node(n_rev, *rev_seqs, *carried_init, *nonseqs).outputs
    complete = None if n_rev is n else ELEMWISE["ge"](n_rev, n)

    result: list = [None]  # n_steps
    it = iter(rev_outs[:len(seq_grads)])
    for x, r in zip(seqs, seq_rows):
        if not _is_float(r):
            result.append(None)
            continue
        # the rows of the steps run, in order; the rows before a truncation and those after
        # the last step (a sequence longer than n_steps) get no gradient
        result.append(set_subtensor(zeros_like(x)[n - n_rev:n], next(it)))
    finals = rev_outs[len(seq_grads):]
    by_output = {j: finals[w] for w, (j, *_rest) in enumerate(windows)}
    fed = 0
    for j, taps in enumerate(spec.outputs):
        if taps is MAP:
            continue
        init = inits[fed]
        fed += 1
        if j not in by_output:
            result.append(None)
            continue
        window = by_output[j]
        g = window[0] if taps == (-1,) else set_subtensor(
            zeros_like(init)[:-min(taps)], window[::-1])
        if complete is not None:
            g = ELEMWISE["switch"](complete, g, zeros_like(g))
        result.append(g)
    sums = dict(zip(float_p, finals[len(windows):]))
    result += [sums.get(i) for i in range(len(nonseqs))]
    return result
