"""Rewrites of scan loops (issue 9, part 4): work moves out of the loop, dead parts go.

Each rule takes a ``Scan`` node of the graph being compiled apart (``_Loop``), edits its lists
of sequences, states, outputs and non-sequences, and builds a new node through the public
constructor. The loop body itself is not rewritten here: ``function()`` compiles it with the
outer mode, which runs every phase on it. The rules:

- ``scan_invariants_out_of_loop``: inner nodes that read only non-sequences and constants are
  computed once, before the loop, and passed in as new non-sequences;
- ``scan_sequence_work_before_loop``: row-wise work on the rows of step t (elementwise ops,
  dimshuffles, ``dot(x_t, W)``) is computed over the whole sequence before the loop
  (``dot(X, W)``, the sequence reshaped to a matrix) and read as a new sequence;
- ``scan_unused_parts_removed``: outputs nobody reads, states that only feed themselves,
  inputs the body does not read and inputs passed twice are dropped;
- ``scan_sums_after_loop``: a state of which only the final value is kept and that adds
  ``dot(u_t, v_t)`` or ``sum(v_t)`` each step (a reverse loop's weight and bias gradients)
  becomes one matrix product or one sum after the loop, over the factors' rows stored per step
  (or read from the sequences);
- ``scan_only_last_state_kept``: a state fed back through tap -1 of which only ``out[-1]``
  is read keeps its final value alone, not one row per step;
- ``scan_loops_merged``: two loops over the same number of steps, neither reading the
  other, become one loop.

They are filed in the canonicalize phase, so what moves out of a loop meets the outer graph's
stabilize, specialize and fusion phases (``dot(X, W) + b`` becomes a DotAdd there).

A Scan node reads row t of each sequence input at step t (``scan()`` slices the sequences for
their taps and reverses them for ``go_backwards``), so a sequence's taps and direction need no
care here. A sequence may be longer than the number of steps: work moved before the loop
reads ``x[:n_steps]``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..compile.fgraph import node_key
from ..compile.rewrite import RULES, register
from ..ops.alloc import Alloc
from ..ops.blas import Dot, dot
from ..ops.dimshuffle import DimShuffle, patternbroadcast, shape_padleft
from ..ops.elemwise import Elemwise
from ..ops.reduce import Reduce
from ..ops.shape import Shape, reshape, shape
from ..ops.subtensor import Subtensor
from ..symbolic.graph import Apply, Constant, Variable, ancestors, clone_replace, toposort
from .basic import MAP, Scan, ScanSpec

PHASE = "canonicalize"


# -- a loop taken apart ------------------------------------------------------------------------

@dataclass
class _Out:
    """One user output: ``taps`` (MAP when not fed back), its initial value and the inner
    inputs of its taps when fed back, its inner output and the node output it replaces."""

    taps: tuple | None
    init: Variable | None
    tap_ins: list
    inner: Variable
    out: Variable | None
    label: str


@dataclass
class _Shared:
    """A state whose final value only is kept (a shared variable fn updates, a reverse loop's
    sums): initial value, inner input, inner output, node output."""

    init: Variable
    inner_in: Variable
    inner: Variable
    out: Variable | None


@dataclass
class _Loop:
    """A Scan node as editable lists (see ScanSpec for the layout they come from)."""

    op: Scan
    n_steps: Variable
    seqs: list = field(default_factory=list)      # [outer, inner input]
    outs: list = field(default_factory=list)      # _Out
    shared: list = field(default_factory=list)    # _Shared
    nonseqs: list = field(default_factory=list)   # [outer, inner input]
    cond: Variable | None = None

    @classmethod
    def of(cls, node: Apply) -> _Loop:
        op, spec = node.op, node.op.spec
        ins, outs = op.inner_inputs, op.inner_outputs
        loop = cls(op, node.inputs[0])
        outer = iter(node.inputs[1:])
        inner = iter(ins)
        loop.seqs = [[next(outer), next(inner)] for _ in range(spec.n_seqs)]
        n_user = len(spec.outputs)
        fed = []
        for j, taps in enumerate(spec.outputs):
            tap_ins = [] if taps is MAP else [next(inner) for _ in taps]
            o = _Out(taps, None, tap_ins, outs[j], node.outputs[j], op.labels[j])
            loop.outs.append(o)
            if taps is not MAP:
                fed.append(o)
        for o in fed:
            o.init = next(outer)
        loop.shared = [_Shared(next(outer), next(inner), outs[n_user + k],
                               node.outputs[n_user + k]) for k in range(spec.n_shared)]
        loop.nonseqs = [[next(outer), next(inner)] for _ in range(spec.n_nonseqs)]
        loop.cond = outs[-1] if spec.as_while else None
        return loop

    # the inner graph
    def inner_outputs(self) -> list[Variable]:
        return ([o.inner for o in self.outs] + [s.inner for s in self.shared]
                + ([self.cond] if self.cond is not None else []))

    def inner_inputs(self) -> list[Variable]:
        return ([i for _, i in self.seqs] + [t for o in self.outs for t in o.tap_ins]
                + [s.inner_in for s in self.shared] + [i for _, i in self.nonseqs])

    def substitute(self, replace: dict[Variable, Variable]) -> None:
        """Swap inner variables in the body (one clone of the graph for all outputs)."""
        new = iter(clone_replace(self.inner_outputs(), replace))
        for o in self.outs:
            o.inner = next(new)
        for s in self.shared:
            s.inner = next(new)
        if self.cond is not None:
            self.cond = next(new)

    def build(self, name: str | None = None, labels: Sequence[str] | None = None) -> Apply:
        """The new Scan node; each entry's ``out`` becomes the new node's output for it."""
        op = self.op
        spec = ScanSpec(n_seqs=len(self.seqs), outputs=tuple(o.taps for o in self.outs),
                        n_shared=len(self.shared), n_nonseqs=len(self.nonseqs),
                        as_while=self.cond is not None)
        new_op = Scan(self.inner_inputs(), self.inner_outputs(), spec, name=name or op.name,
                      labels=list(labels) if labels is not None else [o.label for o in self.outs],
                      truncate_gradient=op.truncate_gradient, go_backwards=op.go_backwards,
                      reverse=op.reverse)
        node = new_op.make_node(self.n_steps, *[s for s, _ in self.seqs],
                                *[o.init for o in self.outs if o.taps is not MAP],
                                *[s.init for s in self.shared], *[s for s, _ in self.nonseqs])
        outs = iter(node.outputs)
        for o in self.outs:
            o.out = next(outs)
        for s in self.shared:
            s.out = next(outs)
        return node


def _replacements(node: Apply, loop: _Loop) -> list:
    """Build ``loop``'s node; the new outputs for ``node``'s outputs (None for one whose
    entry was dropped). Until then each entry's ``out`` is the old node's output."""
    entries = loop.outs + loop.shared
    before = [e.out for e in entries]
    loop.build()
    new_of = {old: e.out for old, e in zip(before, entries)}
    return [new_of.get(o) for o in node.outputs]


# -- walks of the body ---------------------------------------------------------------------------

def _eager(order: list[Apply], outputs: Iterable[Variable]) -> set[Apply]:
    """The nodes of the body computed at every step: not only inside a lazy branch."""
    need = set(outputs)
    eager = set()
    for node in reversed(order):
        if not any(o in need for o in node.outputs):
            continue
        eager.add(node)
        skip = {p for branch in node.op.branch_inputs(node) for p in branch} if node.op.lazy \
            else ()
        need.update(v for i, v in enumerate(node.inputs) if i not in skip)
    return eager


def _invariants(order: list[Apply], eager: set[Apply], fixed: set[Variable],
                constant_work: bool = False) -> set[Variable]:
    """The variables computed by eager nodes from ``fixed`` ones and constants alone; with
    ``constant_work`` also those computed from constants alone (else that work stays for the
    body's constant folding)."""
    inv: set[Variable] = set()
    for node in order:
        if node not in eager or not node.inputs:
            continue
        reads = False
        for i in node.inputs:
            if i in fixed or i in inv:
                reads = True
            elif not isinstance(i, Constant):
                break
        else:
            if reads or constant_work:
                inv.update(node.outputs)
    return inv


def _frontier(order: list[Apply], moved: set[Variable], outputs: list[Variable]
              ) -> list[Variable]:
    """The variables of ``moved`` that something staying in the body reads, or that are
    inner outputs, in a deterministic order."""
    found: dict[Variable, None] = {}
    for node in order:
        if node.outputs[0] in moved:
            continue
        for i in node.inputs:
            if i in moved:
                found[i] = None
    for o in outputs:
        if o in moved:
            found[o] = None
    return list(found)


def _clone_outside(outputs: list[Variable], replace: dict[Variable, Variable]) -> list[Variable]:
    """A copy of the body's nodes between ``replace``'s keys (and constants) and
    ``outputs``, for the outer graph. Every node is new: the outer graph's rewrites edit its
    nodes in place, and none of them may belong to a loop body."""
    memo = dict(replace)
    for node in toposort(outputs, stop=memo):
        new = node.clone_with_new_inputs([memo.get(i, i) for i in node.inputs])
        memo.update(zip(node.outputs, new.outputs))
    return [memo[o] for o in outputs]


def _fresh(v: Variable) -> Variable:
    """A new inner input standing for ``v``."""
    return v.type(name=v.name)


# -- rule 1: loop-invariant code motion ------------------------------------------------------------

def _same_rows(seq: Variable, n: Variable) -> Variable | None:
    """The row of ``seq`` that every step reads, when ``seq`` is an ``Alloc`` broadcasting a
    value along its first axis to ``n`` (the loop's n_steps) rows, under nothing but
    reversals and ``[:n]`` (a loss's gradient through a loop: T.grad of a mean); else None."""
    v = seq
    while v.owner is not None and isinstance(v.owner.op, Subtensor):
        spec = v.owner.op.spec
        if len(spec) != 1 or spec[0][0] != "s" or spec[0][1] is not None:
            return None
        _, _, stop, step = spec[0]
        if step not in (None, -1) or stop not in (None, "$") or (
                stop == "$" and v.owner.inputs[1] is not n):
            return None
        v = v.owner.inputs[0]
    node = v.owner
    if node is None or node.op.__class__ is not Alloc or node.inputs[1] is not n:
        return None
    value, dims = node.inputs[0], node.inputs[2:]
    if value.ndim == len(dims) + 1:
        if not value.broadcastable[0]:
            return None
        value = DimShuffle(value.ndim, tuple(range(1, value.ndim)))(value)
    row = Alloc()(value, *dims)
    inner = seq.type.broadcastable[1:]
    return row if row.broadcastable == inner else patternbroadcast(row, inner)


def scan_invariants_out_of_loop(fgraph, node):
    """scan(body(x_t, h, f(W)), non_sequences=W) -> scan(body(x_t, h, V), non_sequences=f(W)):
    work of the body that reads only non-sequences and constants is computed once, before the
    loop; a sequence whose rows are one broadcast value, alloc(v, n_steps, ...), is read as
    the non-sequence alloc(v, ...)"""
    loop = _Loop.of(node)
    same = [(k, row) for k, (outer, _) in enumerate(loop.seqs)
            if (row := _same_rows(outer, loop.n_steps)) is not None]
    for k, row in reversed(same):
        loop.nonseqs.append([row, loop.seqs.pop(k)[1]])
    outputs = loop.inner_outputs()
    order = toposort(outputs)
    fixed = {i for _, i in loop.nonseqs}
    inv = _invariants(order, _eager(order, outputs), fixed)
    if not inv:
        return _replacements(node, loop) if same else None
    moved = _frontier(order, inv, outputs)
    outer = _clone_outside(moved, {i: o for o, i in loop.nonseqs})
    stand_in = {v: _fresh(v) for v in moved}
    loop.substitute(stand_in)
    loop.nonseqs += [[o, stand_in[v]] for v, o in zip(moved, outer)]
    return _replacements(node, loop)


# -- rule 2: sequence work before the loop ---------------------------------------------------

def _bounding(n: Variable) -> set[Variable]:
    """Variables ``v`` with ``n <= len(v)`` whatever the values: the sequences whose lengths
    ``n`` is the minimum of (how ``scan()`` makes n_steps when it is not given)."""
    out: set[Variable] = set()
    stack = [n]
    while stack:
        v = stack.pop()
        node = v.owner
        if node is None:
            continue
        key = node_key(node)
        if key == "minimum" or key.startswith("cast_int") and v.dtype in ("int64", "int32") \
                and node.inputs[0].dtype in ("int64", "int32"):
            stack.extend(node.inputs)
        elif isinstance(node.op, Subtensor) and node.op.spec == (("i", 0),) and \
                node.inputs[0].owner is not None and isinstance(node.inputs[0].owner.op, Shape):
            out.add(node.inputs[0].owner.inputs[0])
    return out


def _fuses_in_the_loop(v: Variable, order: list[Apply], row_nodes: set[Apply],
                       outputs: list[Variable]) -> bool:
    """Whether row-wise ``v`` is elementwise work (no product) read only by elementwise
    nodes of the body: left in the loop it joins their kernel, where moved out it would be
    one more pass over the whole sequence, written and read back (a BPTT loop's ``1 - h**2``
    over the stored states, one pass of W3's gradient)."""
    if v in outputs:
        return False
    readers = [n for n in order if n not in row_nodes and v in n.inputs]
    if not readers or not all(isinstance(n.op, Elemwise) for n in readers):
        return False
    todo, seen = [v], set()
    while todo:
        node = todo.pop().owner
        if node is None or node not in row_nodes or node in seen:
            continue
        if not isinstance(node.op, (Elemwise, DimShuffle)):
            return False
        seen.add(node)
        todo += node.inputs
    return True


def _row_node(node: Apply, kind: Callable[[Variable], str | None]) -> bool:
    """Whether ``node`` is row-wise: applied to the stacked rows of the steps, it gives the
    stacked results (``kind`` says "row" for a variable that is a step's row, "fixed" for one
    that is the same at every step)."""
    op = node.op
    kinds = [kind(i) for i in node.inputs]
    if None in kinds or "row" not in kinds:
        return False
    if isinstance(op, Elemwise):
        # the stacked result is no larger than a stacked operand (no row broadcast against a
        # larger non-sequence into a much larger array kept for every step)
        out = node.outputs[0].broadcastable
        return any(k == "row" and i.broadcastable == out for k, i in zip(kinds, node.inputs))
    if isinstance(op, DimShuffle):
        return True
    if isinstance(op, Dot):
        a, b = node.inputs
        if kinds == ["row", "fixed"]:
            return b.ndim in (1, 2)
        return kinds == ["fixed", "row"] and b.ndim == 1 and a.ndim in (1, 2)
    return False


class _Stacker:
    """Builds, in the outer graph, the stacked value (one row per step) of row-wise body
    variables."""

    def __init__(self, loop: _Loop, row_nodes: set[Apply], fixed_outer: Callable):
        self.n = loop.n_steps
        self.memo: dict[Variable, Variable] = {}
        self.seq_outer = {inner: outer for outer, inner in loop.seqs}
        self.row_nodes = row_nodes
        self.fixed_outer = fixed_outer
        # stacked values made as a matrix and reshaped (the products of a batch's rows):
        # stacked value -> (the matrix, the stacked shape)
        self.flat: dict[Variable, tuple[Variable, list]] = {}

    def __call__(self, v: Variable) -> Variable:
        got = self.memo.get(v)
        if got is not None:
            return got
        if v in self.seq_outer:
            stacked = self.seq_outer[v][:self.n]
        else:
            stacked = self._stack_node(v)
        # the row's broadcast pattern, which the body's types were built with
        want = (stacked.broadcastable[0],) + v.broadcastable
        if stacked.broadcastable != want:
            stacked = patternbroadcast(stacked, want)
        self.memo[v] = stacked
        return stacked

    def _arg(self, v: Variable) -> Variable:
        if v in self.seq_outer or (v.owner is not None and v.owner in self.row_nodes):
            return self(v)
        return shape_padleft(self.fixed_outer(v))  # the same for every step

    def _stack_node(self, v: Variable) -> Variable:
        node = v.owner
        op = node.op
        if isinstance(op, Elemwise):
            args = [self._arg(i) for i in node.inputs]
            on_flat = self._on_flat(node, v, args)
            if on_flat is not None:
                return on_flat
            return op.make_node(*args).outputs[node.outputs.index(v)]
        if isinstance(op, DimShuffle):
            order = (0,) + tuple("x" if d == "x" else d + 1 for d in op.new_order)
            return DimShuffle(op.input_ndim + 1, order)(self(node.inputs[0]))
        a, b = node.inputs
        if self._is_row(b):  # dot(W, x_t) with x_t a vector: the rows of X times W.T
            rows, w = self(b), self.fixed_outer(a)
            return dot(rows, w.T if w.ndim == 2 else w)
        rows, w = self(a), self.fixed_outer(b)
        if rows.ndim == 2:
            return dot(rows, w)
        # dot of each step's matrix (or higher) with W: one product of the sequence seen as a
        # matrix (numpy's dot of a 3-d array does not use a matrix product)
        lengths = shape(rows)
        lead = [lengths[d] for d in range(rows.ndim - 1)]
        count = lead[0]
        for n in lead[1:]:
            count = count * n
        flat = dot(reshape(rows, [count, lengths[rows.ndim - 1]], ndim=2), w)
        tail = [shape(w)[1]] if w.ndim == 2 else []
        stacked = reshape(flat, lead + tail, ndim=len(lead) + len(tail))
        if w.ndim == 2:
            self.flat[stacked] = (flat, lead + tail)
        return stacked

    def _on_flat(self, node: Apply, v: Variable, args: list) -> Variable | None:
        """Elementwise work on a product of a batch's rows and operands that vary along the
        last axis only (a bias), done on the product's matrix before it is reshaped: an
        elementwise node reading the reshaped product is not fused with the product (the
        bias add of an RNN's input projection then becomes part of its matrix product)."""
        at = [k for k, a in enumerate(args) if a in self.flat]
        if len(at) != 1 or any(self._is_row(i) for k, i in enumerate(node.inputs)
                               if k != at[0]):
            return None
        flat, lengths = self.flat[args[at[0]]]
        operands = []
        for k, i in enumerate(node.inputs):
            if k == at[0]:
                operands.append(flat)
                continue
            if i.ndim > 1 and not all(i.broadcastable[:-1]):
                return None  # varies along the batch: not a row of the matrix
            value = self.fixed_outer(i)
            if value.ndim > 1 and not all(value.broadcastable[:-1]):
                return None
            if value.ndim > 1:  # its broadcast leading axes dropped: one row, or a scalar
                value = value.dimshuffle([value.ndim - 1] if not value.broadcastable[-1]
                                         else [])
            operands.append(value)
        out = node.op.make_node(*operands).outputs[node.outputs.index(v)]
        if out.ndim != 2:
            return None
        stacked = reshape(out, lengths, ndim=len(lengths))
        self.flat[stacked] = (out, lengths)
        return stacked

    def _is_row(self, v: Variable) -> bool:
        return v in self.seq_outer or (v.owner is not None and v.owner in self.row_nodes)


@dataclass
class _RowWork:
    """What of a body is row-wise (see ``_row_node``): the body's order, outputs and eager
    nodes, the row-wise variables (each with the sequences it reads), their nodes, ``kind``."""

    order: list
    outputs: list
    eager: set
    rows: dict
    row_nodes: set
    kind: Callable[[Variable], str | None]


def _row_work(loop: _Loop) -> _RowWork:
    outputs = loop.inner_outputs()
    order = toposort(outputs)
    eager = _eager(order, outputs)
    nonseq = {i for _, i in loop.nonseqs}
    fixed = _invariants(order, eager, nonseq, constant_work=True) | nonseq
    seq_index = {inner: k for k, (_, inner) in enumerate(loop.seqs)}
    bounded = None

    rows: dict[Variable, frozenset] = {}  # row-wise variable -> the sequences it reads
    row_nodes: set[Apply] = set()

    def kind(v):
        if v in seq_index or v in rows:
            return "row"
        if v in fixed or isinstance(v, Constant):
            return "fixed"
        return None

    for n in order:
        if n not in eager or n.outputs[0] in fixed or not _row_node(n, kind):
            continue
        reads = frozenset().union(*[rows.get(i, frozenset({seq_index[i]}) if i in seq_index
                                             else frozenset()) for i in n.inputs])
        if len(reads) > 1:
            # rows of several sequences meet: exact only when each has n_steps rows at least,
            # else the loop's own error (too few steps) would become another one
            if bounded is None:
                bounded = _bounding(loop.n_steps)
            if not all(loop.seqs[k][0] in bounded for k in reads):
                continue
        row_nodes.add(n)
        for o in n.outputs:
            rows[o] = reads
    return _RowWork(order, outputs, eager, rows, row_nodes, kind)


def _add_terms(v: Variable, work: _RowWork, uses: dict, inside: set) -> list[Variable]:
    """The terms of the sum ``v``: through the adds of v's dtype that only this sum reads and
    that add something the loop computes (each put in ``inside``); an add of row-wise and
    fixed terms alone (one this rule made, or one the other rules could not move) is a term
    as it is."""
    out = []
    for i in v.owner.inputs:
        n = i.owner
        if n is not None and node_key(n) == "add" and uses[i] == 1 and i not in work.rows \
                and i.dtype == v.dtype and any(work.kind(j) is None for j in n.inputs):
            inside.add(i)
            out += _add_terms(i, work, uses, inside)
        else:
            out.append(i)
    return out


def scan_sums_regrouped(fgraph, node):
    """scan(body(dot(x_t, W) + dot(h_tm1, U) + b)) -> scan(body((dot(x_t, W) + b) +
    dot(h_tm1, U))): the terms of a sum that the steps' rows and the non-sequences make are
    added first, so that ``scan_sequence_work_before_loop`` moves their sum before the loop
    (an RNN's bias joins its input projection, and the step adds one term less)"""
    loop = _Loop.of(node)
    if not loop.seqs:
        return None
    work = _row_work(loop)
    if not work.rows:
        return None
    uses = _uses(work.order, work.outputs)
    inside: set[Variable] = set()  # adds taken into the sum of an add that reads them
    replace: dict[Variable, Variable] = {}
    for n in reversed(work.order):
        v = n.outputs[0]
        if node_key(n) != "add" or n not in work.eager or v in inside or v in work.rows:
            continue
        terms = _add_terms(v, work, uses, inside)
        # rows of v's dtype first, so that no partial sum is of a narrower type than v
        moving = sorted((t for t in terms if work.kind(t) is not None),
                        key=lambda t: (work.kind(t) != "row" or t.dtype != v.dtype))
        staying = [t for t in terms if work.kind(t) is None]
        if len(moving) < 2 or not staying or work.kind(moving[0]) != "row" or \
                moving[0].dtype != v.dtype or any(t.dtype != v.dtype and not isinstance(
                    t, Constant) for t in moving):
            continue
        first = moving[0]
        for t in moving[1:]:
            first = first + t
        # the partial sum must be row-wise itself (no larger than a row it adds), else it
        # would stay in the loop and this rule would regroup it again
        if not any(work.kind(t) == "row" and t.broadcastable == first.broadcastable
                   for t in moving) or first.dtype != v.dtype:
            continue
        total = first
        for t in staying:
            total = total + t
        if total.broadcastable != v.broadcastable:
            total = patternbroadcast(total, v.broadcastable)
        if total.type != v.type:
            continue
        replace[v] = total
    if not replace:
        return None
    loop.substitute(replace)
    return _replacements(node, loop)


def scan_sequence_work_before_loop(fgraph, node):
    """scan(body(dot(x_t, W), ...), sequences=X) -> scan(body(p_t, ...), sequences=dot(X, W)):
    row-wise work on the rows of step t and non-sequences (elementwise ops, dimshuffles, dot
    with a non-sequence) is computed over the whole sequence, before the loop"""
    loop = _Loop.of(node)
    if not loop.seqs:
        return None
    work = _row_work(loop)
    order, outputs, rows, row_nodes = work.order, work.outputs, work.rows, work.row_nodes
    if not rows:
        return None
    moved = [v for v in _frontier(order, set(rows), outputs)
             if not _fuses_in_the_loop(v, order, row_nodes, outputs)]
    if not moved:
        return None
    nonseq_outer = {i: o for o, i in loop.nonseqs}
    cache: dict[Variable, Variable] = {}

    def fixed_outer(v):
        if isinstance(v, Constant):
            return v
        if v not in cache:
            cache[v] = nonseq_outer[v] if v in nonseq_outer else \
                _clone_outside([v], nonseq_outer)[0]
        return cache[v]

    stack = _Stacker(loop, row_nodes, fixed_outer)
    stand_in = {v: _fresh(v) for v in moved}
    new_seqs = [[stack(v), stand_in[v]] for v in moved]
    loop.substitute(stand_in)
    loop.seqs += new_seqs
    return _replacements(node, loop)


# -- rule 3: unused parts removed ----------------------------------------------------------------

def scan_unused_parts_removed(fgraph, node):
    """scan with outputs nobody reads, states that only feed themselves, inputs the body
    does not read, or one outer input passed twice -> the same scan without them"""
    loop = _Loop.of(node)
    used = {id(e) for e in loop.outs + loop.shared if fgraph.n_clients(e.out)}
    # a state is kept when something kept reads it; so is everything the condition reads
    while True:
        roots = [e.inner for e in loop.outs + loop.shared if id(e) in used]
        if loop.cond is not None:
            roots.append(loop.cond)
        read = set(ancestors(roots))
        more = {id(o) for o in loop.outs if id(o) not in used and o.taps is not MAP
                and any(t in read for t in o.tap_ins)}
        more |= {id(s) for s in loop.shared if id(s) not in used and s.inner_in in read}
        if not more:
            break
        used |= more
    if not used:
        return None
    changed = len(used) < len(loop.outs) + len(loop.shared)
    loop.outs = [o for o in loop.outs if id(o) in used]
    loop.shared = [s for s in loop.shared if id(s) in used]
    # one outer variable passed twice: one inner input for both
    same: dict[Variable, Variable] = {}
    for entries in (loop.seqs, loop.nonseqs):
        first: dict[tuple, Variable] = {}
        for outer, inner in entries:
            key = (outer, inner.type)
            if key in first:
                same[inner] = first[key]
            else:
                first[key] = inner
    if same:
        loop.substitute(same)
        changed = True
    read = set(ancestors(loop.inner_outputs()))
    seqs = [e for e in loop.seqs if e[1] in read]
    nonseqs = [e for e in loop.nonseqs if e[1] in read]
    if not changed and len(seqs) == len(loop.seqs) and len(nonseqs) == len(loop.nonseqs):
        return None
    loop.seqs, loop.nonseqs = seqs, nonseqs
    return _replacements(node, loop)


# -- rule 4: loops merged --------------------------------------------------------------------------

def _depends(fgraph, node: Apply, other: Apply) -> bool:
    """Whether ``node`` reads (through the graph) an output of ``other``."""
    return other in toposort(node.inputs, stop=fgraph.inputs)


def scan_loops_merged(fgraph, node):
    """scan(f, n) and scan(g, n), neither reading the other -> one scan of f and g over n"""
    if node.op.spec.as_while:
        return None
    others = [c for c, i in fgraph.clients.get(node.inputs[0], ())
              if c != "output" and i == 0 and c is not node and isinstance(c.op, Scan)
              and not c.op.spec.as_while and c.op.reverse == node.op.reverse]
    for other in others:
        if _depends(fgraph, node, other) or _depends(fgraph, other, node):
            continue
        first, second = _Loop.of(node), _Loop.of(other)
        # the second body gets inner inputs of its own (two loops may share them: a loop
        # and its twin made for the gradient)
        fresh = {v: _fresh(v) for v in second.inner_inputs()}
        second.substitute(fresh)
        for entries in (second.seqs, second.nonseqs):
            for e in entries:
                e[1] = fresh[e[1]]
        for o in second.outs:
            o.tap_ins = [fresh[t] for t in o.tap_ins]
        for s in second.shared:
            s.inner_in = fresh[s.inner_in]
        olds = [o.out for o in second.outs + second.shared]
        mine = [o.out for o in first.outs + first.shared]
        # user outputs first, then final values, as the layout wants
        merged = _Loop(first.op, first.n_steps, first.seqs + second.seqs,
                       first.outs + second.outs, first.shared + second.shared,
                       first.nonseqs + second.nonseqs)
        merged.build(name=f"{node.op.name}+{other.op.name}")
        for e, o in zip(second.outs + second.shared, olds):
            if fgraph.n_clients(o):
                fgraph.replace(o, e.out, "scan_loops_merged")
        # replacing gave every output of the new node the other loop's creation line; the
        # node is in the graph now, so the engine's replacements will not set this one's
        for e, o in zip(first.outs + first.shared, mine):
            e.out.trace = o.trace
        return [e.out if fgraph.n_clients(o) else None
                for e, o in zip(first.outs + first.shared, mine)]
    return None


# -- rule 5: sums of products after the loop -----------------------------------------------------

def _uses(order: list[Apply], outputs: list[Variable]) -> dict[Variable, int]:
    """How many times each variable is read in the body (an inner output counts as a read)."""
    count: dict[Variable, int] = {}
    for node in order:
        for i in node.inputs:
            count[i] = count.get(i, 0) + 1
    for o in outputs:
        count[o] = count.get(o, 0) + 1
    return count


def _sum_of_products(U: Variable, V: Variable) -> Variable:
    """sum over t of dot(U[t], V[t]), as one matrix product: the step axis joins the summed
    one (U[t] is a vector or matrix (.., K), V[t] a vector or matrix (K, ..))."""
    su, sv = shape(U), shape(V)
    rows = su[0] * sv[1]  # steps x K
    S = _transposed_steps(U) if U.ndim == 3 else None
    if S is not None:
        # U[t] = S[t].T (a gradient's h_t.T): S's rows stacked are the left factor
        # transposed, a view where S is contiguous, where U's steps side by side are a copy
        # that transposes every step
        left = reshape(S, [rows, su[1]], ndim=2).T
    elif U.ndim == 3:
        left = reshape(DimShuffle(3, (1, 0, 2))(U), [su[1], rows], ndim=2)
    else:
        left = reshape(U, [rows], ndim=1)
    right = reshape(V, [rows, sv[2]], ndim=2) if V.ndim == 3 else reshape(V, [rows], ndim=1)
    return dot(left, right)


def _transposed_steps(U: Variable) -> Variable | None:
    """``S`` with ``S[t] = U[t].T`` when ``U`` is ``S`` with its last two axes swapped, under
    a slice of the steps (which stays on ``S``); None otherwise."""
    cut = None
    node = U.owner
    if node is not None and isinstance(node.op, Subtensor) and len(node.op.spec) == 1 \
            and node.op.spec[0][0] == "s":
        cut, U = node, node.inputs[0]
    node = U.owner
    if node is None or not isinstance(node.op, DimShuffle) or node.op.new_order != (0, 2, 1):
        return None
    S = node.inputs[0]
    return S if cut is None else cut.op(S, *cut.inputs[1:])


def _summable(g: Variable, seq_outer: dict) -> tuple | None:
    """``g`` as (layout ops, core, factors): ``g`` is ``core`` under a chain of dimshuffles
    (outermost first), and ``core`` a ``dot(u, v)`` of vectors or matrices or a ``sum`` of
    ``v`` over some axes, whose sum over the steps is one product or one sum over the factors'
    stacked rows. None for anything else."""
    layout = []
    while g.owner is not None and isinstance(g.owner.op, DimShuffle):
        layout.append(g.owner.op)
        g = g.owner.inputs[0]
    node = g.owner
    if node is None:
        return None
    if isinstance(node.op, Dot):
        factors = node.inputs
        if any(x.ndim not in (1, 2) or x.dtype != g.dtype for x in factors):
            return None
    elif isinstance(node.op, Reduce) and node.op.kind == "sum" and node.op.initial is None:
        factors = node.inputs
    else:
        return None
    if not all(x in seq_outer or x.owner is not None for x in factors):
        return None
    return layout, node, factors


def scan_sums_after_loop(fgraph, node):
    """scan(body: s <- s + dot(u_t, v_t)) keeping only s's final value -> the scan storing
    u_t and v_t per step (or reading them from its sequences), then s0 + one matrix product
    over all steps after the loop (a reverse loop's weight gradients: one large product
    instead of a small one and a fresh sum per step); likewise s <- s + sum(v_t) (a bias's
    gradient) -> s0 + one sum over the stored rows"""
    if node.op.spec.as_while:
        return None
    loop = _Loop.of(node)
    outputs = loop.inner_outputs()
    order = toposort(outputs)
    eager = _eager(order, outputs)
    uses = _uses(order, outputs)
    seq_outer = {inner: outer for outer, inner in loop.seqs}
    found = []
    for s in loop.shared:
        add = s.inner.owner
        if add is None or add not in eager or node_key(add) != "add" or len(add.inputs) != 2 \
                or uses.get(s.inner_in) != 1 or uses.get(s.inner) != 1:
            continue
        terms = [i for i in add.inputs if i is not s.inner_in]
        if len(terms) != 1:
            continue
        g = terms[0]
        # g may broadcast where the state does not (a bias's row into a matrix), never the
        # reverse; where neither does, init + sum refuses unequal lengths at run time as the
        # loop's add did. (Static lengths may differ: the state keeps its type.)
        if g.dtype != s.inner.dtype or g.ndim != s.inner.ndim or any(
                sb and not gb for gb, sb in zip(g.broadcastable, s.inner.broadcastable)) \
                or s.inner_in.broadcastable != s.inner.broadcastable:
            continue
        parts = _summable(g, seq_outer)
        if parts is not None:
            found.append((s, *parts))
    if not found:
        return None
    # a factor that is not a sequence's row is stored per step: as the map output that
    # already stores it, or as a map output of its own
    stored: dict[Variable, _Out] = {o.inner: o for o in loop.outs if o.taps is MAP}
    for *_, factors in found:
        for x in factors:
            if x not in seq_outer and x not in stored:
                stored[x] = _Out(MAP, None, [], x, None, f"factor {len(stored)}")
                loop.outs.append(stored[x])
    gone = {id(s) for s, *_ in found}
    kept = [s for s in loop.shared if id(s) not in gone]
    before = {id(e): e.out for e in loop.outs + loop.shared}
    loop.shared = kept
    loop.build()
    n = loop.n_steps

    def stacked(x):
        return seq_outer[x][:n] if x in seq_outer else stored[x].out

    new_of = {before[id(e)]: e.out for e in loop.outs + loop.shared if before[id(e)] is not None}
    for s, layout, core, factors in found:
        if isinstance(core.op, Dot):
            total = _sum_of_products(*[stacked(x) for x in factors])
        else:
            axis = (0,) + tuple(a + 1 for a in core.op.axis)
            total = Reduce("sum", axis, core.op.dtype)(stacked(factors[0]))
        for op in reversed(layout):
            total = op(total)
        new_of[s.out] = s.init + total
    return [new_of.get(o) for o in node.outputs]


# -- rule 6: only the last state kept ---------------------------------------------------------

def _last_rows(fgraph, out: Variable) -> list[Variable] | None:
    """The ``out[-1]`` variables reading ``out``, if nothing else reads it."""
    rows = []
    for client, _ in fgraph.clients.get(out, ()):
        if client == "output" or not isinstance(client.op, Subtensor) or \
                client.op.spec != (("i", -1),):
            return None
        rows.append(client.outputs[0])
    return rows or None


def scan_only_last_state_kept(fgraph, node):
    """scan(...)[-1] of a state fed back through tap -1 alone -> the scan keeping only that
    state's final value (memory: one state instead of one per step)"""
    loop = _Loop.of(node)
    moved = []
    for o in loop.outs:
        if o.taps != (-1,) or o.out is None:
            continue
        rows = _last_rows(fgraph, o.out)
        if rows and all(r.type == o.init.type for r in rows):
            moved.append((o, rows))
    if not moved:
        return None
    for o, _ in moved:
        loop.outs.remove(o)
        loop.shared.append(_Shared(o.init, o.tap_ins[0], o.inner, None))
    kept = loop.outs + loop.shared[:len(loop.shared) - len(moved)]
    before = [e.out for e in kept]
    loop.build()
    for (_, rows), s in zip(moved, loop.shared[len(loop.shared) - len(moved):]):
        for r in rows:
            # (with no step, the initial value: where out[-1] of an empty output would fail)
            fgraph.replace(r, s.out, "scan_only_last_state_kept")
    new_of = {old: e.out for old, e in zip(before, kept)}
    return [new_of.get(o) for o in node.outputs]


# Tried in this order on each Scan node: dropping dead parts first leaves less to move.
RULE_FUNCTIONS = (scan_unused_parts_removed, scan_invariants_out_of_loop,
                  scan_sums_regrouped, scan_sequence_work_before_loop, scan_sums_after_loop,
                  scan_only_last_state_kept, scan_loops_merged)


def install() -> None:
    """File the rules in their phase (once; a second call changes nothing)."""
    for fn in RULE_FUNCTIONS:
        if fn not in _installed:
            register(PHASE, "Scan")(fn)
            _installed.append(fn)


def uninstall() -> None:
    """Take the rules out of the rule table again."""
    for fn in _installed:
        for rules in RULES.get(PHASE, {}).values():
            while fn.rule in rules:
                rules.remove(fn.rule)
    _installed.clear()


_installed: list = []


def installed() -> bool:
    """Whether the rules are in the rule table."""
    return bool(_installed)
