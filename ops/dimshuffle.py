"""The order and broadcast pattern of dimensions: ``DimShuffle`` reorders, inserts and drops
dimensions (``transpose``, ``shape_padleft``, ``squeeze``...), ``Rebroadcast`` declares them
broadcastable or not (``addbroadcast``, ``patternbroadcast``...). Both return views of their
input: they change its type, never its data."""
from __future__ import annotations

from collections.abc import Sequence

from ..symbolic.graph import Apply
from ..symbolic.types import TensorType
from .base import Op, as_tensor_variable, graph_error

# (new_order, id of the input type) -> (input type, output type), for valid patterns
_OUT_TYPES: dict = {}
_ORDERS: dict = {}  # a pattern as given -> as stored ("x" and ints)


def _normalized_order(pattern) -> tuple:
    """The pattern as a DimShuffle stores it ("x" and ints); a tuple is normalized once."""
    cacheable = type(pattern) is tuple
    if cacheable:
        try:
            hit = _ORDERS.get(pattern)
        except TypeError:  # unhashable entries
            hit, cacheable = None, False
        if hit is not None:
            return hit
    order = tuple("x" if d == "x" else int(d) for d in pattern)
    if cacheable and len(_ORDERS) < 10_000:
        _ORDERS[pattern] = order
    return order


class DimShuffle(Op):
    """Reorder dimensions, insert broadcastable ones ('x'), drop broadcastable ones."""

    __props__ = ("input_ndim", "new_order")
    view_map = {0: [0]}

    def __init__(self, input_ndim: int, new_order: Sequence):
        self.input_ndim = int(input_ndim)
        self.new_order = _normalized_order(new_order)

    def __str__(self) -> str:
        return f"DimShuffle{{{','.join(str(d) for d in self.new_order)}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        # The output type depends only on the pattern and the input type: checked once.
        xt = x.type
        key = (self.new_order, id(xt))  # the entry keeps the type alive: its id is not reused
        hit = _OUT_TYPES.get(key)
        if hit is not None and xt.ndim == self.input_ndim:
            return Apply(self, [x], [hit[1]()])
        if x.ndim != self.input_ndim:
            raise graph_error(f"dimshuffle{self.new_order} expects a {self.input_ndim}-d input, "
                              f"got {x.type}")
        kept = [d for d in self.new_order if d != "x"]
        if len(set(kept)) != len(kept) or any(not 0 <= d < x.ndim for d in kept):
            raise graph_error(f"dimshuffle pattern {self.new_order} is invalid for a "
                              f"{x.ndim}-d input: each dimension may appear once")
        for d in range(x.ndim):
            if d not in kept and not x.type.broadcastable[d]:
                raise graph_error(f"dimshuffle{self.new_order} drops dimension {d} of {x.type}, "
                                  "which is not broadcastable (length 1)", ValueError)
        shape = tuple(1 if d == "x" else x.type.shape[d] for d in self.new_order)
        out_type = TensorType(x.dtype, shape=shape)
        if len(_OUT_TYPES) < 10_000:
            _OUT_TYPES[key] = (xt, out_type)
        return Apply(self, [x], [out_type()])

    def impl(self, node: Apply):
        kept = [d for d in self.new_order if d != "x"]
        dropped = [d for d in range(self.input_ndim) if d not in kept]
        drop_idx = tuple(0 if d in dropped else slice(None) for d in range(self.input_ndim))
        survivors = [d for d in range(self.input_ndim) if d not in dropped]
        perm = tuple(survivors.index(d) for d in kept)
        expand = tuple(None if d == "x" else slice(None) for d in self.new_order)
        steps = []
        if dropped:
            steps.append(lambda a: a[drop_idx])
        if perm != tuple(range(len(perm))):
            steps.append(lambda a: a.transpose(perm))
        if "x" in self.new_order:
            steps.append(lambda a: a[expand])
        if not steps:
            return lambda a: a
        if len(steps) == 1:
            return steps[0]

        def run(a):
            for step in steps:
                a = step(a)
            return a
        return run

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(1 if d == "x" else shapes[0][d] for d in self.new_order)]

    def grad(self, inputs, grads):
        g = grads[0]
        kept = [d for d in self.new_order if d != "x"]
        # Sum over inserted dims (length 1, unless the gradient was broadcast along them, as an
        # eval point of Lop may be), then drop them and undo the permutation.
        summed = [i for i, d in enumerate(self.new_order) if d == "x" and not g.broadcastable[i]]
        if summed:
            from .reduce import sum as sum_
            g = sum_(g, axis=summed, keepdims=True)
        g = g.dimshuffle([i for i, d in enumerate(self.new_order) if d != "x"])
        order = []
        for d in range(self.input_ndim):
            order.append(kept.index(d) if d in kept else "x")
        return [g.dimshuffle(order)]

    def R_op(self, inputs, eval_points):
        return [None if eval_points[0] is None else self(eval_points[0])]


def dimshuffle(x, pattern):
    x = as_tensor_variable(x)
    pattern = tuple(pattern)
    ndim = x.type.ndim
    if pattern == _IDENTITY[ndim] if ndim < 8 else pattern == tuple(range(ndim)):
        return x
    return DimShuffle(ndim, pattern)(x)


_IDENTITY = [tuple(range(n)) for n in range(8)]  # the identity pattern of each small rank


def transpose(x, axes=None):
    """Reverse (or permute, with ``axes``) the dimensions of ``x``."""
    x = as_tensor_variable(x)
    ndim = x.type.ndim
    if axes is None:
        axes = _IDENTITY[ndim][::-1] if ndim < 8 else tuple(range(ndim))[::-1]
    else:
        axes = tuple(a % max(ndim, 1) for a in axes)
    return dimshuffle(x, axes)


def shape_padleft(x, n_ones: int = 1):
    x = as_tensor_variable(x)
    return dimshuffle(x, ("x",) * n_ones + tuple(range(x.ndim)))


def shape_padright(x, n_ones: int = 1):
    x = as_tensor_variable(x)
    return dimshuffle(x, tuple(range(x.ndim)) + ("x",) * n_ones)


def shape_padaxis(x, axis: int):
    x = as_tensor_variable(x)
    axis = axis + x.ndim + 1 if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise graph_error(f"axis {axis} is out of range for a new axis in {x.type}", ValueError)
    order = list(range(x.ndim))
    order.insert(axis, "x")
    return dimshuffle(x, order)


def squeeze(x):
    """Drop the broadcastable dimensions of ``x``."""
    x = as_tensor_variable(x)
    return dimshuffle(x, [d for d, b in enumerate(x.broadcastable) if not b])


class Rebroadcast(Op):
    """Declare dimensions broadcastable (or not); checks the lengths at run time."""

    __props__ = ("axes",)
    view_map = {0: [0]}

    def __init__(self, axes):
        self.axes = tuple(sorted((int(a), bool(f)) for a, f in axes))

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        shape = list(x.type.shape)
        for axis, flag in self.axes:
            if not 0 <= axis < x.ndim:
                raise graph_error(f"axis {axis} is out of range for {x.type}", ValueError)
            if flag:
                if shape[axis] not in (None, 1):
                    raise graph_error(f"dimension {axis} of {x.type} has length {shape[axis]}; "
                                      "it cannot be made broadcastable", ValueError)
                shape[axis] = 1
            elif shape[axis] == 1:
                shape[axis] = None
        return Apply(self, [x], [TensorType(x.dtype, shape=tuple(shape))()])

    def impl(self, node):
        need = [a for a, f in self.axes if f]

        def run(a):
            for axis in need:
                if a.shape[axis] != 1:
                    raise ValueError(f"dimension {axis} was declared broadcastable but has "
                                     f"length {a.shape[axis]} (array shape {a.shape})")
            return a
        return run

    def infer_shape(self, fgraph, node, shapes):
        out = list(shapes[0])
        for axis, flag in self.axes:
            if flag:
                out[axis] = 1
        return [tuple(out)]

    def grad(self, inputs, grads):
        x, g = inputs[0], grads[0]
        return [patternbroadcast(g, x.broadcastable)]


def _norm_axes(x, axes):
    out = []
    for a in axes:
        a = int(a)
        if not -x.ndim <= a < x.ndim:
            raise graph_error(f"axis {a} is out of range for {x.type}", ValueError)
        out.append(a % x.ndim)
    return out


def addbroadcast(x, *axes):
    x = as_tensor_variable(x)
    axes = _norm_axes(x, axes)
    todo = [(a, True) for a in axes if not x.broadcastable[a]]
    return Rebroadcast(todo)(x) if todo else x


def unbroadcast(x, *axes):
    x = as_tensor_variable(x)
    axes = _norm_axes(x, axes)
    todo = [(a, False) for a in axes if x.broadcastable[a]]
    return Rebroadcast(todo)(x) if todo else x


def patternbroadcast(x, broadcastable):
    x = as_tensor_variable(x)
    todo = [(a, bool(b)) for a, b in enumerate(broadcastable) if bool(b) != x.broadcastable[a]]
    return Rebroadcast(todo)(x) if todo else x
