"""Indexing: ``x[...]`` (basic and advanced), ``set_subtensor`` and ``inc_subtensor``.

An index is described by a static ``spec`` (one entry per index item) plus the symbolic pieces,
which become node inputs after ``x``. Entries:

- ``("x",)``: a new axis (None);
- ``("i", k)``: an integer, ``k`` a Python int or ``"$"`` for the next symbolic input;
- ``("s", start, stop, step)``: a slice, each part None, a Python int or ``"$"``;
- ``("a",)``: the next input is an integer or boolean index array (advanced indexing);
- ``("e",)``: an Ellipsis that covers no dimension, kept only where it separates advanced
  indices: numpy then puts the advanced dimensions first, as for any non-adjacent ones.

Constant parts stay in the spec, so ``x[0, 1:3]`` has no inputs besides ``x`` and a static shape.
"""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.types import DISCRETE_DTYPES, TensorType
from .base import INTEGER_DTYPES, Op, as_int_scalar, as_tensor_variable, graph_error


class IndexingError(TypeError, IndexError):
    """A bad index found while building the graph (a float index array, too many indices, ...).

    Both a TypeError, as Theano raised for these, and an IndexError, as numpy does."""


def parse_index(x, index) -> tuple[tuple, list[Variable]]:
    """Turn a Python index into (spec, symbolic inputs); see the module docstring."""
    if not isinstance(index, tuple):
        index = (index,)
    spec, inputs = [], []

    def piece(v, what):
        if v is None:
            return None
        if isinstance(v, (bool, np.bool_)):
            raise graph_error(f"{what} may not be a boolean", IndexingError)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu":
            return int(v)
        if isinstance(v, Constant) and v.ndim == 0 and v.dtype in INTEGER_DTYPES:
            return int(v.data)
        inputs.append(as_int_scalar(v, what, IndexingError))
        return "$"

    n_ellipsis = sum(1 for i in index if i is Ellipsis)
    if n_ellipsis > 1:
        raise graph_error("an index can only have a single ellipsis ('...')", IndexingError)
    consumed = sum(_dims_consumed(i) for i in index if i is not Ellipsis)
    for pos, item in enumerate(index):
        if item is Ellipsis:
            covered = max(x.ndim - consumed, 0)
            spec.extend([("s", None, None, None)] * covered)
            if not covered and _separates_advanced(index, pos):
                spec.append(("e",))
        elif item is None:
            spec.append(("x",))
        elif isinstance(item, slice):
            spec.append(("s", piece(item.start, "a slice start"),
                         piece(item.stop, "a slice stop"), piece(item.step, "a slice step")))
        elif _is_array_index(item):
            arr = as_tensor_variable(item)
            if arr.dtype not in DISCRETE_DTYPES:
                raise graph_error(f"index arrays must hold integers or booleans, got {arr.type}",
                                  IndexingError)
            inputs.append(arr)
            spec.append(("a",))
        else:
            spec.append(("i", piece(item, "an index")))
    if consumed > x.ndim:
        raise graph_error(f"too many indices ({consumed}) for {x.type} with {x.ndim} "
                          "dimensions", IndexingError)
    return tuple(spec), inputs


def _separates_advanced(index: tuple, pos: int) -> bool:
    """True when index[pos] has an advanced index on each side (integers count once an array
    is present, as in numpy)."""
    if not any(_is_array_index(i) for i in index):
        return False

    def advanced(i) -> bool:
        return _is_array_index(i) or (i is not None and i is not Ellipsis
                                      and not isinstance(i, slice))
    return any(advanced(i) for i in index[:pos]) and any(advanced(i) for i in index[pos + 1:])


def _is_array_index(item) -> bool:
    if isinstance(item, Variable):
        return item.ndim > 0 or item.dtype == "bool"
    if isinstance(item, np.ndarray):  # a 0-d integer array indexes like an int (numpy)
        return item.ndim > 0 or item.dtype == bool
    if isinstance(item, list):
        return True
    return False


def _dims_consumed(item) -> int:
    if item is None:
        return 0
    # A boolean mask consumes as many dimensions as it has (a 0-d one none: like numpy, it
    # adds a dimension of length 0 or 1).
    if isinstance(item, Variable) and item.dtype == "bool":
        return item.ndim
    if isinstance(item, np.ndarray) and item.dtype == bool:
        return item.ndim
    return 1


def _is_advanced(spec) -> bool:
    return any(e[0] == "a" for e in spec)


def _index_builder(spec):
    """A function (dynamic values...) -> numpy index tuple, and whether it is constant."""
    static = []
    dynamic = False
    for e in spec:
        if e[0] == "x":
            static.append(None)
        elif e[0] == "e":
            static.append(Ellipsis)
        elif e[0] == "i":
            dynamic |= e[1] == "$"
            static.append(e[1])
        elif e[0] == "s":
            dynamic |= "$" in e[1:]
            static.append(slice(*e[1:]))
        else:
            dynamic = True
            static.append("$")
    if not dynamic:
        const = tuple(static)
        return (lambda: const), True

    def build(*vals):
        it = iter(vals)
        out = []
        for e in spec:
            kind = e[0]
            if kind == "x":
                out.append(None)
            elif kind == "e":
                out.append(Ellipsis)
            elif kind == "i":
                out.append(int(next(it)) if e[1] == "$" else e[1])
            elif kind == "s":
                out.append(slice(*[int(next(it)) if p == "$" else p for p in e[1:]]))
            else:
                out.append(next(it))
        return tuple(out)
    return build, False


def _out_shape(x, spec, inputs) -> tuple:
    """Static shape of ``x[index]`` following numpy's rules."""
    arrays = iter([v for v in inputs if v.ndim > 0 or v.dtype == "bool"])
    shape, dim = [], 0
    adv_dims: list[tuple] = []  # static shapes of advanced indices (broadcast together)
    adv_pos, adv_entries = None, []
    for k, e in enumerate(spec):
        kind = e[0]
        if kind == "x":
            shape.append(1)
        elif kind == "i":
            if _is_advanced(spec):
                adv_entries.append(k)
                adv_pos = len(shape) if adv_pos is None else adv_pos
                adv_dims.append(())
            dim += 1
        elif kind == "s":
            n = x.type.shape[dim]
            if n is not None and "$" not in e[1:]:
                shape.append(len(range(*slice(*e[1:]).indices(n))))
            else:
                shape.append(None)
            dim += 1
        elif kind == "a":
            arr = next(arrays)
            adv_entries.append(k)
            adv_pos = len(shape) if adv_pos is None else adv_pos
            if arr.dtype == "bool":
                adv_dims.append((None,))
                dim += arr.ndim
            else:
                adv_dims.append(arr.type.shape)
                dim += 1
    shape.extend(x.type.shape[dim:])
    if adv_dims:
        bshape = _broadcast_shapes(adv_dims)
        at = adv_pos if _adjacent(adv_entries) else 0
        shape[at:at] = bshape
    return tuple(shape)


def _index_shape(spec, inputs, shapes) -> list:
    """Symbolic shape of ``x[index]`` from the shapes of x and of the index inputs (numpy's
    rules, as ``_out_shape``)."""
    from .reduce import sum as sum_
    x_shape = shapes[0]
    nxt = iter(range(1, len(inputs)))
    advanced = _is_advanced(spec)
    out: list = []
    adv: list[list] = []  # per advanced index: [(length, broadcastable)] per dimension
    adv_entries: list[int] = []
    adv_pos = 0
    dim = 0
    for k, e in enumerate(spec):
        kind = e[0]
        if kind == "x":
            out.append(1)
        elif kind == "i":
            if e[1] == "$":
                next(nxt)
            if advanced:
                adv_pos = len(out) if not adv_entries else adv_pos
                adv_entries.append(k)
                adv.append([])
            dim += 1
        elif kind == "s":
            parts = [inputs[next(nxt)] if p == "$" else p for p in e[1:]]
            out.append(_slice_length(x_shape[dim], *parts))
            dim += 1
        elif kind == "a":
            j = next(nxt)
            arr = inputs[j]
            adv_pos = len(out) if not adv_entries else adv_pos
            adv_entries.append(k)
            if arr.dtype == "bool":
                adv.append([(sum_(arr), False)])
                dim += arr.ndim
            else:
                adv.append(list(zip(shapes[j], arr.type.broadcastable)))
                dim += 1
    out.extend(x_shape[dim:])
    if adv:
        ndim = max(len(a) for a in adv)
        bshape = []
        for d in range(ndim):
            length = None
            for a in adv:
                j = d - ndim + len(a)
                if j < 0 or a[j][1]:
                    continue
                length = a[j][0] if length is None else _broadcast_length(length, a[j][0])
            bshape.append(1 if length is None else length)
        at = adv_pos if _adjacent(adv_entries) else 0
        out[at:at] = bshape
    return out


def _adjacent(entries: list[int]) -> bool:
    """numpy keeps the advanced dimensions in place only when the advanced indices are
    consecutive items of the index (a newaxis or an Ellipsis between them separates them,
    even an Ellipsis that covers no dimension); otherwise they go first."""
    return entries[-1] - entries[0] == len(entries) - 1


def _static(v):
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, Constant) and v.ndim == 0:
        return int(v.data)
    return None


def _broadcast_length(a, b):
    """The broadcast of two lengths that broadcast (equal, or one of them 1)."""
    from .elemwise import ELEMWISE as E
    if _static(a) == 1:
        return b
    if _static(b) == 1:
        return a
    return E["switch"](E["eq"](a, 1), b, a)


def _slice_length(n, start, stop, step):
    """len(range(n)[start:stop:step]) for symbolic or static parts (numpy's clamping)."""
    from .elemwise import ELEMWISE as E
    static = [None if p is None else _static(p) for p in (start, stop, step)]
    if _static(n) is not None and all(s is not None or p is None
                                      for s, p in zip(static, (start, stop, step))):
        return len(range(*slice(*static).indices(_static(n))))
    if start is None and stop is None and step is None:
        return n
    mx, mn, sw, lt = E["maximum"], E["minimum"], E["switch"], E["lt"]

    def clamp(p, default, lo, hi):
        if p is None:
            return default
        s = _static(p)
        if s is not None:
            return mx(n + s, lo) if s < 0 else mn(s, hi)
        return sw(lt(p, 0), mx(p + n, lo), mn(p, hi))

    def positive(st):
        lo, hi = clamp(start, 0, 0, n), clamp(stop, n, 0, n)
        return mx((hi - lo + st - 1) // st, 0)

    def negative(st):  # st = -step > 0
        lo, hi = clamp(start, n - 1, -1, n - 1), clamp(stop, -1, -1, n - 1)
        return mx((lo - hi + st - 1) // st, 0)

    s = 1 if step is None else _static(step)
    if s is not None:
        return positive(s) if s > 0 else negative(-s)
    return sw(E["gt"](step, 0), positive(step), negative(-step))


def _broadcast_shapes(shapes) -> tuple:
    ndim = max(len(s) for s in shapes)
    out = []
    for d in range(ndim):
        lengths = {s[d - ndim + len(s)] for s in shapes if d - ndim + len(s) >= 0}
        known = {n for n in lengths if n not in (None, 1)}
        if len(known) > 1:
            raise graph_error(f"index arrays with static shapes {shapes} do not broadcast",
                              IndexingError)
        out.append(known.pop() if known else (1 if lengths == {1} else None))
    return tuple(out)


class Subtensor(Op):
    """``x[index]``; basic indexing returns a view, advanced indexing a copy."""

    __props__ = ("spec",)

    def __init__(self, spec: tuple):
        self.spec = spec
        self.view_map = {} if _is_advanced(spec) else {0: [0]}

    def __str__(self) -> str:
        return f"{'Advanced' if _is_advanced(self.spec) else ''}Subtensor{{{_spec_str(self.spec)}}}"

    def make_node(self, x, *inputs) -> Apply:
        x = as_tensor_variable(x)
        inputs = [as_tensor_variable(i) for i in inputs]
        shape = _out_shape(x, self.spec, inputs)
        return Apply(self, [x] + inputs, [TensorType(x.dtype, shape=shape)()])

    def impl(self, node):
        build, is_const = _index_builder(self.spec)
        if node.outputs[0].ndim == 0 and not _is_advanced(self.spec):
            # Integers alone give a numpy scalar; a trailing Ellipsis gives a 0-d array (a
            # view), which is what every other op expects.
            if is_const:
                idx = build() + (Ellipsis,)
                return lambda a: a[idx]
            return lambda a, *vals: a[build(*vals) + (Ellipsis,)]
        if is_const:
            idx = build()
            return lambda a: a[idx]
        return lambda a, *vals: a[build(*vals)]

    def infer_shape(self, fgraph, node, shapes):
        out_type = node.outputs[0].type
        if all(s is not None for s in out_type.shape):
            return [out_type.shape]
        inferred = _index_shape(self.spec, node.inputs, shapes)
        return [tuple(s if s is not None else n for s, n in zip(out_type.shape, inferred))]

    def grad(self, inputs, grads):
        from .alloc import zeros_like
        from .dimshuffle import patternbroadcast
        x, g = inputs[0], grads[0]
        if _is_whole(self.spec, x):  # x[:] or x[...]: no zeros to add the gradient into
            return [patternbroadcast(g, x.broadcastable)]
        gx = IncSubtensor(self.spec, False)(zeros_like(x), g, *inputs[1:])
        return [gx] + [None] * (len(inputs) - 1)

    def R_op(self, inputs, eval_points):
        if eval_points[0] is None:
            return [None]
        return [self(eval_points[0], *inputs[1:])]


class IncSubtensor(Op):
    """A copy of ``x`` with ``x[index]`` set to (or incremented by) ``y``.

    Increments accumulate over repeated advanced indices (``numpy.add.at``)."""

    __props__ = ("spec", "set_instead_of_inc")

    def __init__(self, spec: tuple, set_instead_of_inc: bool):
        self.spec = spec
        self.set_instead_of_inc = bool(set_instead_of_inc)

    def __str__(self) -> str:
        kind = "Set" if self.set_instead_of_inc else "Inc"
        adv = "Advanced" if _is_advanced(self.spec) else ""
        return f"{adv}{kind}Subtensor{{{_spec_str(self.spec)}}}"

    def make_node(self, x, y, *inputs) -> Apply:
        x = as_tensor_variable(x)
        y = as_tensor_variable(y)
        inputs = [as_tensor_variable(i) for i in inputs]
        target = _out_shape(x, self.spec, inputs)
        if y.ndim > len(target):
            raise graph_error(f"{'set' if self.set_instead_of_inc else 'inc'}_subtensor: the "
                              f"value {y.type} has more dimensions than x[index] "
                              f"({len(target)})", ValueError)
        if y.dtype != x.dtype:
            if not np.can_cast(y.dtype, x.dtype, "same_kind") and y.dtype not in DISCRETE_DTYPES:
                raise graph_error(f"cannot put values of dtype {y.dtype} into {x.type} "
                                  f"without losing precision; cast them first")
            from .elemwise import cast
            y = cast(y, x.dtype)
        return Apply(self, [x, y] + inputs, [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        write = self.writer(np.add.at)

        def run(a, y, *vals):
            out = a.copy()
            write(out, y, vals)
            return out
        return run

    def writer(self, add_at):
        """``write(out, y, index_values)``: ``out[index] = y`` or ``+= y`` in place, repeated
        advanced indices accumulating through ``add_at`` (numpy's ``add.at``, or a device
        array library's: one implementation for every backend's arrays)."""
        build, _ = _index_builder(self.spec)
        advanced = _is_advanced(self.spec)
        setting = self.set_instead_of_inc

        def write(out, y, vals) -> None:
            idx = build(*vals)
            if setting:
                out[idx] = y
            elif advanced:
                add_at(out, idx, y)
            else:
                out[idx] += y
        return write

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, grads):
        from .gradrules import unbroadcast_to
        y, rest = inputs[1], inputs[2:]
        g = grads[0]
        gx = IncSubtensor(self.spec, True)(g, 0, *rest) if self.set_instead_of_inc else g
        gy = Subtensor(self.spec)(g, *rest)
        if self.set_instead_of_inc and _is_advanced(self.spec):
            gy = gy * _last_writes_mask(self, inputs[0], gy, rest)
        return [gx, unbroadcast_to(gy, y)] + [None] * len(rest)


def _last_writes_mask(op, x, gy, rest):
    """1 where an element of the indexed region is the one a repeated index kept (the last
    write, as numpy assigns), 0 where a later write overwrote it: only kept values have a
    gradient. Found by writing a distinct id per element and reading the ids back."""
    from .alloc import arange, zeros_like
    from .elemwise import ELEMWISE as E
    from .elemwise import cast
    from .reduce import prod
    from .shape import reshape, shape
    ids = reshape(arange(prod(shape(gy))), shape(gy), ndim=gy.ndim)
    written = IncSubtensor(op.spec, True)(zeros_like(x, dtype="int64"), ids, *rest)
    return cast(E["eq"](Subtensor(op.spec)(written, *rest), ids), gy.dtype)


def _is_whole(spec, x) -> bool:
    """True when ``x[spec]`` is ``x`` itself (full slices only)."""
    return len(spec) <= x.ndim and all(e == ("s", None, None, None) for e in spec)


def _spec_str(spec) -> str:
    parts = []
    for e in spec:
        if e[0] == "x":
            parts.append("newaxis")
        elif e[0] == "i":
            parts.append("int" if e[1] == "$" else str(e[1]))
        elif e[0] == "e":
            parts.append("...")
        elif e[0] == "s":
            parts.append(":".join("" if p is None else ("int" if p == "$" else str(p))
                                  for p in e[1:]).rstrip(":") or ":")
        else:
            parts.append("array")
    return ", ".join(parts)


def subtensor(x, index):
    """``x[index]`` as a graph node (what ``TensorVariable.__getitem__`` calls).

    ``x[:]`` and ``x[...]`` are nodes too (views, as in Theano), so that set_subtensor and
    inc_subtensor can read the index back; the rewrite ``useless_slice`` removes them."""
    x = as_tensor_variable(x)
    spec, inputs = parse_index(x, index)
    return Subtensor(spec)(x, *inputs)


def _inc_or_set(target, y, setting: bool, name: str):
    node = getattr(target, "owner", None)
    if node is None or not isinstance(node.op, Subtensor):
        raise graph_error(f"{name}: the first argument must be an indexed tensor such as x[i] "
                          f"or x[1:3], got {target!r}")
    return IncSubtensor(node.op.spec, setting)(node.inputs[0], y, *node.inputs[1:])


def set_subtensor(x_indexed, y, inplace: bool = False, tolerate_inplace_aliasing: bool = False):
    """A copy of the tensor that ``x_indexed`` indexes, with that part replaced by ``y``."""
    return _inc_or_set(x_indexed, y, True, "set_subtensor")


def inc_subtensor(x_indexed, y, inplace: bool = False, set_instead_of_inc: bool = False,
                  tolerate_inplace_aliasing: bool = False):
    """A copy of the tensor that ``x_indexed`` indexes, with ``y`` added to that part."""
    return _inc_or_set(x_indexed, y, set_instead_of_inc, "inc_subtensor")


def take(a, indices, axis=None):
    """``numpy.take`` along one axis."""
    a = as_tensor_variable(a)
    if axis is None:
        return a.flatten()[indices]
    axis = axis % a.ndim
    return a[(slice(None),) * axis + (as_tensor_variable(indices),)]

