"""Shape inference inside the graph: answer ``x.shape`` without computing ``x``.

``Shape(x)`` becomes a constant when x's static shape is known, and otherwise the vector of the
lengths that ``infer_shape`` of x's op gives in terms of its inputs' shapes; ``x.shape[i]``
becomes the i-th of those lengths. The node that computed x can then disappear when only its
shape was needed. Each rewrite looks one op up; the next sweep continues from the inputs.

Which errors of the value a shape-only graph keeps. Where the computation needs several lengths
to agree, ``infer_shape`` picks one of them: asking only for the shape would answer for inputs
the value cannot be computed from, and the answer would depend on which length was picked.
Those checks are kept (Theano and PyTensor raise for elementwise broadcasting), as is a negative
length, which no shape may hold. A ``ShapeCheck`` node raises the value's error, naming the
inputs, their lengths and the line that built the value:

- elementwise ops: in each dimension, the inputs that are not broadcastable have one length;
- join: every dimension but the axis has one length;
- reshape: no entry given at run time is negative other than -1.

Errors about lengths the result's shape does not contain are dropped, as in Theano: dot's
inner dimension, reshape's element count, an index out of range, a set_subtensor value that
does not fit x[index], split sizes. No check is added where the graph computes the value
anyway (its computation raises), and one whose lengths are one variable (``exp(x) * x``) is
removed, so graphs that compute their values, gradients among them, pay nothing.

The checks of every node below the value are kept, not only those of the node asked about:
an input whose ``Shape`` the answer reads gets its own when that Shape is rewritten in turn,
and any other input is walked into at once. The answer can be a constant while an input's
shape is unknown (a rewrite such as ``(a + b) - b -> a`` gives a term whose type promises less
than the node it replaced), and it must raise all the same.
"""
from __future__ import annotations

import numpy as np

from ...ops.base import call_infer_shape, constant
from ...ops.dimshuffle import DimShuffle
from ...ops.elemwise import Elemwise
from ...ops.join import Join
from ...ops.shape import (
    MakeVector,
    Reshape,
    Shape,
    ShapeCheck,
    _static_vector,
    shape,
)
from ...ops.subtensor import Subtensor
from ...symbolic.graph import Constant, Variable, ancestors
from ...symbolic.trace import format_trace
from ..rewrite import register

ALL_PHASES = ("canonicalize", "stabilize", "specialize")


def shape_i(var: Variable, d: int) -> Variable:
    """Length of dimension ``d`` of ``var``: a constant if static, else ``var.shape[d]``."""
    n = var.type.shape[d]
    if n is not None:
        return constant(np.int64(n))
    return Subtensor((("i", d),))(shape(var))


def _int_length(n: int, ints: dict) -> Variable:
    """The int64 constant ``n``, made once per graph (``ints`` caches them)."""
    c = ints.get(n)
    if c is None:
        c = ints[n] = constant(np.int64(n))
    return c


def _lengths(var: Variable, ints: dict | None = None) -> tuple:
    """``shape_i(var, d)`` for every d, the unknown lengths read from one ``Shape`` node;
    ``ints`` caches the constants of static lengths (a graph's shapes repeat a few)."""
    whole = None
    out = []
    for d, n in enumerate(var.type.shape):
        if n is not None:
            out.append(constant(np.int64(n)) if ints is None else _int_length(n, ints))
            continue
        if whole is None:
            whole = shape(var)
        out.append(Subtensor((("i", d),))(whole))
    return tuple(out)


def input_shapes(node, fgraph=None) -> list[tuple]:
    """The shapes of node's inputs as tuples of length variables, as infer_shape takes them.

    With ``fgraph``, an input that the graph computes anyway gets the lengths its own
    ``infer_shape`` gives, resolved all the way down (``_known_lengths``), so asking for the
    shape at the end of a chain of n nodes is one rewrite, not n. An input only ever asked for
    its shape gets ``v.shape[d]``, made once per graph, so that the rewrite of that Shape
    node adds the run-time checks computing ``v`` would make (see ``_checked``)."""
    if fgraph is None:
        return [tuple(shape_i(v, d) for d in range(v.ndim)) if hasattr(v.type, "shape")
                else None for v in node.inputs]
    out = []
    for v in node.inputs:
        if not hasattr(v.type, "shape"):
            out.append(None)
        elif _value_is_computed(fgraph, v, node):
            out.append(_known_lengths(fgraph, v))
        else:
            out.append(_cached_lengths(fgraph, v))
    return out


def _cached_lengths(fgraph, v: Variable) -> tuple:
    """``_lengths(v)``, made once per graph: a variable many nodes read (a network's input)
    would otherwise get a new pair of nodes for every shape query."""
    cache = fgraph.memo("shape_i")
    dims = cache.get(v)
    if dims is None:
        dims = cache[v] = _lengths(v, fgraph.memo("int64 constants"))
    return dims


def _known_lengths(fgraph, var: Variable) -> tuple:
    """The lengths of ``var`` (which the graph computes) in terms of the shapes of the
    graph's roots wherever ``infer_shape`` allows, memoized per graph.

    The walk goes down iteratively (a chain of 10,000 nodes needs no recursion), and an entry
    is reused only while the variables whose ``Shape`` it reads are still in the graph: a
    rewrite that replaced one of them would otherwise bring its dead nodes back."""
    memo = fgraph.memo("lengths")
    stack = [var]
    while stack:
        v = stack[-1]
        hit = memo.get(v)
        if hit is not None and _alive(fgraph, hit[1]):
            stack.pop()
            continue
        node = v.owner
        if node is None or all(n is not None for n in v.type.shape):
            # a root is always there, and static lengths are constants: no anchor
            stack.pop()
            memo[v] = (_cached_lengths(fgraph, v), ())
            continue
        todo = [i for i in node.inputs if hasattr(i.type, "shape") and (
            i not in memo or not _alive(fgraph, memo[i][1]))]
        if todo:
            stack.extend(todo)
            continue
        stack.pop()
        memo[v] = _infer_from_memo(fgraph, v, memo)
    return memo[var][0]


def _infer_from_memo(fgraph, v: Variable, memo: dict) -> tuple:
    """(lengths, anchors) of ``v`` from its op's ``infer_shape`` on its inputs' memoized
    lengths; ``v.shape[d]`` for an entry that is unusable."""
    node = v.owner
    shapes, anchors = [], set()
    for i in node.inputs:
        if hasattr(i.type, "shape"):
            lengths, anc = memo[i]
            shapes.append(lengths)
            anchors.update(anc)
        else:
            shapes.append(None)
    ints = fgraph.memo("int64 constants")
    try:
        entries = tuple(call_infer_shape(node.op, fgraph, node, shapes)[v.index])
    except (NotImplementedError, TypeError, ValueError, IndexError):
        entries = None
    if entries is None or len(entries) != v.ndim:
        return _cached_lengths(fgraph, v), (v,)
    known = {length for shp in shapes if shp is not None for length in shp}
    out = []
    own = None
    for d, expr in enumerate(entries):
        n = v.type.shape[d]
        if n is None and isinstance(expr, (int, np.integer)):
            n = int(expr)
        length = _int_length(n, ints) if n is not None else _as_length(expr, node, known)
        if length is None:
            if own is None:
                own = _cached_lengths(fgraph, v)
                anchors.add(v)
            length = own[d]
        out.append(length)
    return tuple(out), tuple(anchors)


def _alive(fgraph, anchors) -> bool:
    nodes = fgraph.nodes
    return all(a.owner is None or a.owner in nodes for a in anchors)


def _refers_to(expr: Variable, node, known=()) -> bool:
    """True when ``expr`` needs an output of ``node`` (infer_shape had nothing better than
    ``out.shape[...]``). Paths into the rest of the graph go through ``node.inputs`` or the
    input lengths infer_shape was given (``known``), where the walk stops."""
    outputs = set(node.outputs)
    stop = list(node.inputs)
    stop.extend(known)
    return any(v in outputs for v in ancestors([expr], stop=stop))


def _as_length(expr, node, known=()) -> Variable | None:
    """``expr`` (an int or an integer scalar variable) as an int64 scalar, or None when it is
    unusable (not a scalar, or computed from the node's own outputs)."""
    if isinstance(expr, (int, np.integer)):
        return constant(np.int64(expr))
    if not isinstance(expr, Variable) or expr.ndim != 0:
        return None
    if expr not in known and _refers_to(expr, node, known):
        return None
    if isinstance(expr, Constant) and expr.dtype != "int64":
        return constant(np.int64(expr.data))
    if expr.dtype != "int64":
        from ...ops.elemwise import cast
        expr = cast(expr, "int64")
    return expr


def _inferred_shape(fgraph, x: Variable) -> tuple | None:
    """The entries ``infer_shape`` of x's op gives for x (ints or variables), or None."""
    found = _inferred(fgraph, x)
    return None if found is None else found[0]


def _inferred(fgraph, x: Variable) -> tuple | None:
    """(entries, the input lengths they were inferred from), or None."""
    if x.owner is None:
        return None
    shapes = input_shapes(x.owner, fgraph)
    try:
        entries = tuple(call_infer_shape(x.owner.op, fgraph, x.owner, shapes)[x.index])
    except (NotImplementedError, TypeError, ValueError, IndexError):
        return None
    return entries, {length for shp in shapes if shp is not None for length in shp}


def _label(var: Variable, i: int) -> str:
    if var.name:
        return var.name
    o = var.owner
    if o is not None and isinstance(o.op, DimShuffle) and o.inputs[0].name:
        return f"{o.inputs[0].name}.dimshuffle{o.op.new_order}"
    return f"input {i}"


class _Checks:
    """The run-time checks on lengths that one node's value makes (see the module docstring),
    gathered as ShapeCheck's arguments."""

    def __init__(self) -> None:
        self.checks: list = []
        self.lengths: list = []
        self.labels: list = []

    def _pos(self, var: Variable, label: str) -> int:
        for k, v in enumerate(self.lengths):
            if v is var:
                return k
        self.lengths.append(var)
        self.labels.append(label)
        return len(self.lengths) - 1

    def equal(self, members, reason: str) -> None:
        """``members``: (length, label) pairs that must be equal; lengths known to be equal
        when the graph is built (one variable, or equal constants) need no check."""
        keys = {("c", int(v.data)) if isinstance(v, Constant) else id(v) for v, _ in members}
        if len(keys) > 1:
            self.checks.append(("eq", tuple(self._pos(v, lb) for v, lb in members), reason))

    def nonneg(self, members, reason: str) -> None:
        todo = [(v, lb) for v, lb in members if not isinstance(v, Constant)]
        if todo:
            self.checks.append(("ge0", tuple(self._pos(v, lb) for v, lb in todo), reason))


def _length_checks(fgraph, node, entries) -> _Checks | None:
    """The checks on lengths that computing ``node`` makes, or None when there are none."""
    op = node.op
    if not isinstance(op, (Elemwise, Join, Reshape)):
        return None
    shapes = input_shapes(node, fgraph)
    names = [_label(v, i) for i, v in enumerate(node.inputs)]
    c = _Checks()
    if isinstance(op, Elemwise):
        for d in range(node.outputs[0].ndim):
            c.equal([(shapes[i][d], f"{names[i]}.shape[{d}]")
                     for i, v in enumerate(node.inputs) if not v.type.broadcastable[d]],
                    "the inputs do not broadcast: a dimension that is not broadcastable must "
                    "have the same length in every input")
    elif isinstance(op, Join):
        for d in range(node.outputs[0].ndim):
            if d != op.axis:
                c.equal([(s[d], f"{n}.shape[{d}]") for s, n in zip(shapes, names)],
                        f"join along axis {op.axis} needs the same length in every other "
                        "dimension")
    else:
        # Only the entries given at run time can be negative (make_node refuses static ones);
        # the one a -1 asks for is negative only when another entry is.
        static = _static_vector(node.inputs[1], op.ndim)
        todo = [d for d in range(op.ndim) if static is None or static[d] is None]
        known = {length for shp in shapes if shp is not None for length in shp}
        out = [_as_length(entries[d], node, known) for d in todo]
        if any(e is None for e in out):
            return None
        c.nonneg([(e, f"length {d} of the result") for d, e in zip(todo, out)],
                 "a new shape may not hold a negative length (-1 alone asks for the length "
                 "to be inferred)")
    return c if c.checks else None


def _value_is_computed(fgraph, x: Variable, via=None) -> bool:
    """True when the graph computes ``x`` itself (an output, or read by an op other than
    Shape and than ``via``, the node whose shape is being answered): that computation raises,
    and a second check would only cost nodes (a gradient graph reads most values' shapes)."""
    return any(c == "output" or not isinstance(c.op, Shape) and c is not via
               for c, _ in fgraph.clients.get(x, ()))


def _shapes_read(lengths) -> set:
    """The variables whose ``Shape`` the integer expressions ``lengths`` read. The walk stops
    at a Shape node and at a value that is not an integer (computing it raises its own
    errors), so it stays within the length arithmetic."""
    found: set = set()
    stack, seen = list(lengths), set()
    while stack:
        v = stack.pop()
        if v in seen or v.owner is None:
            continue
        seen.add(v)
        if isinstance(v.owner.op, Shape):
            found.add(v.owner.inputs[0])
        elif getattr(v, "dtype", "").startswith(("int", "uint")):
            stack.extend(v.owner.inputs)
    return found


def _checked(fgraph, x: Variable, result: Variable, entries=None, via=None,
             seen=None, read=None) -> Variable:
    """``result`` (x's shape, or one of its lengths) behind the run-time checks that computing
    ``x`` would make, so that asking for the shape raises where the value would.

    The checks of an input ``v`` whose ``v.shape`` the result reads come when a later rewrite
    answers that Shape. Every other input is walked into here: one of static shape (its
    lengths are constants), and also one of unknown shape that the result does not read, as
    when x's static shape made the result a constant (``exp`` of a term that a cancelled sum
    left with less static shape than exp's type says): its checks would be lost otherwise.
    ``read``: the variables whose Shape the result reads so far."""
    if x.owner is None or _value_is_computed(fgraph, x, via):
        return result
    seen = set() if seen is None else seen
    if x.owner in seen:
        return result
    seen.add(x.owner)
    if isinstance(x.owner.op, ShapeCheck):  # a value's own checks hold for its shape too
        result = x.owner.op(result, *x.owner.inputs[1:])
        if read is not None:
            read |= _shapes_read(x.owner.inputs[1:])
    if entries is None and isinstance(x.owner.op, Reshape):
        entries = _inferred_shape(fgraph, x)
    c = None if entries is None and isinstance(x.owner.op, Reshape) else \
        _length_checks(fgraph, x.owner, entries)
    if c is not None:
        what = (f"{x.owner.op}({', '.join(_label(v, i) for i, v in enumerate(x.owner.inputs))})"
                f" (created at {format_trace(x.trace)}; only its shape was asked for)")
        result = ShapeCheck(c.checks, c.labels, what)(result, *c.lengths)
        if read is not None:
            read |= _shapes_read(c.lengths)
    for inp in x.owner.inputs:
        if inp.owner is None or not hasattr(inp.type, "shape"):
            continue  # a root makes no checks
        if None in inp.type.shape:
            if read is None:  # walked only when needed: most inputs are roots or static
                read = _shapes_read([result])
            if inp in read:
                continue
        result = _checked(fgraph, inp, result, via=x.owner, seen=seen, read=read)
    return result


@register(ALL_PHASES, "Shape")
def shape_to_constant(fgraph, node):
    """x.shape -> constant vector when x's static shape is fully known (behind the run-time
    length checks that computing x makes)"""
    x = node.inputs[0]
    if all(s is not None for s in x.type.shape):
        return _checked(fgraph, x, constant(np.array(x.type.shape, dtype=np.int64)))
    return None


def _same(a: Variable, b: Variable, depth: int = 4) -> bool:
    """True when ``a`` and ``b`` surely hold the same value: one variable, equal constants, or
    equal ops on the same inputs (the merge pass has not made them one node yet)."""
    if a is b:
        return True
    if isinstance(a, Constant) and isinstance(b, Constant):
        return a.signature() == b.signature()
    oa, ob = a.owner, b.owner
    if depth == 0 or oa is None or ob is None or a.index != b.index or oa.op != ob.op \
            or len(oa.inputs) != len(ob.inputs):
        return False
    return all(_same(i, j, depth - 1) for i, j in zip(oa.inputs, ob.inputs))


@register(ALL_PHASES, "ShapeCheck")
def useless_shape_check(fgraph, node):
    """ShapeCheck(v, ...) -> v when each check holds whatever the inputs: the lengths that
    must agree are one variable, the ones that must not be negative are constants >= 0"""
    lengths = node.inputs[1:]
    for kind, pos, _ in node.op.checks:
        vals = [lengths[p] for p in pos]
        if kind == "eq":
            if not all(_same(v, vals[0]) for v in vals[1:]):
                return None
        elif not all(isinstance(v, Constant) and int(v.data) >= 0 for v in vals):
            return None
    return node.inputs[0]


@register(ALL_PHASES, "Shape")
def shape_from_infer_shape(fgraph, node):
    """x.shape -> make_vector(lengths from infer_shape of x's op), when all are known"""
    x = node.inputs[0]
    found = _inferred(fgraph, x)
    if found is None or len(found[0]) != x.ndim:
        return None
    entries, known = found
    lengths = []
    for d, expr in enumerate(entries):
        n = x.type.shape[d]
        length = constant(np.int64(n)) if n is not None else _as_length(expr, x.owner, known)
        if length is None:
            return None
        lengths.append(length)
    # An elementwise op and the like have their input's shape: say so with one Shape node
    # rather than a vector of its entries, so a chain of them costs one node per step.
    whole = _whole_shape(lengths)
    result = whole if whole is not None else MakeVector("int64")(*lengths)
    return _checked(fgraph, x, result, entries)


def _whole_shape(lengths) -> Variable | None:
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
        return _checked(fgraph, x, constant(np.int64(x.type.shape[d])))
    found = _inferred(fgraph, x)
    if found is None or len(found[0]) != x.ndim:
        return None
    entries, known = found
    length = _as_length(entries[d], x.owner, known)
    return None if length is None else _checked(fgraph, x, length, entries)


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
