"""Shape operations: dimshuffle, reshape, join/split, repeat/tile, alloc and friends."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..symbolic.graph import Apply, Constant
from ..symbolic.types import INT_DTYPES, UINT_DTYPES, TensorType
from .base import (NotConstantError, Op, as_tensor_variable, constant, get_scalar_constant_value,
                   graph_error)
from .scalar import upcast

_INTS = INT_DTYPES + UINT_DTYPES


def _as_int_scalar(v, what: str):
    v = as_tensor_variable(v)
    if v.ndim != 0 or v.dtype not in _INTS:
        raise graph_error(f"{what} must be an integer scalar, got {v.type}")
    return v


def _static_int(v) -> Optional[int]:
    try:
        return int(get_scalar_constant_value(v))
    except NotConstantError:
        return None


class DimShuffle(Op):
    """Reorder dimensions, insert broadcastable ones ('x'), drop broadcastable ones."""

    __props__ = ("input_ndim", "new_order")
    view_map = {0: [0]}

    def __init__(self, input_ndim: int, new_order: Sequence):
        self.input_ndim = int(input_ndim)
        self.new_order = tuple("x" if d == "x" else int(d) for d in new_order)

    def __str__(self) -> str:
        return f"DimShuffle{{{','.join(str(d) for d in self.new_order)}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
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
        return Apply(self, [x], [TensorType(x.dtype, shape=shape)()])

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
    if pattern == tuple(range(x.ndim)):
        return x
    return DimShuffle(x.ndim, pattern)(x)


def transpose(x, axes=None):
    """Reverse (or permute, with ``axes``) the dimensions of ``x``."""
    x = as_tensor_variable(x)
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(a % max(x.ndim, 1) for a in axes)
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


class Shape(Op):
    """The run-time shape of a tensor, as an int64 vector."""

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", shape=(x.ndim,))()])

    def impl(self, node):
        return lambda a: np.array(a.shape, dtype=np.int64)

    def infer_shape(self, fgraph, node, shapes):
        return [(len(shapes[0]),)]

    def grad(self, inputs, grads):
        return [None]


_shape = Shape()


def shape(x):
    return _shape(as_tensor_variable(x))


class ShapeCheck(Op):
    """``value`` passed through once run-time lengths pass ``checks``: what a shape-only graph
    keeps of the errors the value it stands for would raise (see compile/rules/shapes.py).

    The inputs after ``value`` are int scalars; each check is ``(kind, positions, reason)``
    over them: ``"eq"``, the lengths must be equal; ``"ge0"``, each must be >= 0. ``labels``
    names each length for the message, ``what`` the computation whose shape this is."""

    __props__ = ("checks", "labels", "what")
    view_map = {0: [0]}

    def __init__(self, checks, labels, what: str):
        self.checks = tuple((k, tuple(int(p) for p in pos), str(r)) for k, pos, r in checks)
        self.labels = tuple(str(lb) for lb in labels)
        self.what = str(what)
        if any(k not in ("eq", "ge0") for k, _, _ in self.checks):
            raise ValueError(f"ShapeCheck: unknown check kind in {self.checks}")

    def __str__(self) -> str:
        return f"ShapeCheck{{{self.what.split('(')[0]}}}"

    def make_node(self, value, *lengths) -> Apply:
        value = as_tensor_variable(value)
        lengths = [_as_int_scalar(n, "ShapeCheck: a length") for n in lengths]
        if len(lengths) != len(self.labels):
            raise graph_error(f"ShapeCheck: {len(self.labels)} lengths expected, got "
                              f"{len(lengths)}")
        return Apply(self, [value] + lengths, [value.type()])

    def impl(self, node):
        checks, labels, what = self.checks, self.labels, self.what

        def run(value, *lengths):
            for kind, pos, reason in checks:
                vals = [int(lengths[p]) for p in pos]
                if kind == "eq" and any(v != vals[0] for v in vals):
                    got = ", ".join(f"{labels[p]} is {v}" for p, v in zip(pos, vals))
                    raise ValueError(f"{what}: {got}; {reason}")
                if kind == "ge0" and any(v < 0 for v in vals):
                    got = ", ".join(f"{labels[p]} is {v}" for p, v in zip(pos, vals) if v < 0)
                    raise ValueError(f"{what}: {got}; {reason}")
            return value
        return run

    def infer_shape(self, fgraph, node, shapes):
        # whatever part of the value's shape is asked for keeps the checks
        lengths = node.inputs[1:]
        return [tuple(self(n, *lengths) for n in shapes[0])]

    def grad(self, inputs, grads):
        return [grads[0]] + [None] * (len(inputs) - 1)  # the value passes through


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


class Reshape(Op):
    """Give ``x`` a new shape (a symbolic int vector of static length ``ndim``; -1 once)."""

    __props__ = ("ndim",)
    view_map = {0: [0]}

    def __init__(self, ndim: int):
        self.ndim = int(ndim)

    def make_node(self, x, shp) -> Apply:
        x = as_tensor_variable(x)
        shp = as_tensor_variable(shp, ndim=1) if not isinstance(shp, (list, tuple)) else shp
        if isinstance(shp, (list, tuple)):
            shp = as_tensor_variable([int(s) if isinstance(s, (int, np.integer)) else s
                                      for s in shp]) if shp else constant(
                np.zeros(0, dtype="int64"))
        if shp.ndim != 1 or shp.dtype not in _INTS:
            raise graph_error(f"reshape: the shape must be a vector of integers, got {shp.type}")
        if shp.dtype != "int64":
            from .elemwise import cast
            shp = cast(shp, "int64")
        static = _static_vector(shp, self.ndim)
        length = len(static) if static is not None else shp.type.shape[0]
        if length is not None and length != self.ndim:
            raise graph_error(f"reshape: the new shape has {length} entries but ndim="
                              f"{self.ndim}", ValueError)
        if static is not None and sum(1 for s in static if s == -1) > 1:
            raise graph_error(f"reshape to {tuple(static)}: only one dimension may be -1",
                              ValueError)
        if static is not None and any(s is not None and s < -1 for s in static):
            # numpy takes any negative entry for the one to infer; Theano only -1
            raise graph_error(f"reshape to {tuple(static)}: a length may not be negative (-1 "
                              "alone asks for the length to be inferred)", ValueError)
        if static is not None and all(s is not None for s in static):
            known_in = x.type.shape
            if all(s is not None for s in known_in) and -1 not in static:
                if int(np.prod(known_in)) != int(np.prod(static)):
                    raise graph_error(f"reshape: cannot reshape {x.type} (static shape "
                                      f"{known_in}) into shape {tuple(static)}", ValueError)
        out_shape = tuple(None if static is None or static[i] in (None, -1) else static[i]
                          for i in range(self.ndim))
        return Apply(self, [x, shp], [TensorType(x.dtype, shape=out_shape)()])

    def impl(self, node):
        def run(a, shp):
            if (shp < -1).any():
                raise ValueError(f"reshape: the new shape {tuple(int(s) for s in shp)} has a "
                                 "negative length (-1 alone asks for the length to be "
                                 "inferred)")
            try:
                return a.reshape(shp)
            except ValueError:
                raise ValueError(f"reshape: cannot reshape an array of shape {a.shape} "
                                 f"({a.size} elements) into shape {tuple(int(s) for s in shp)}"
                                 ) from None
        return run

    def infer_shape(self, fgraph, node, shapes):
        x, shp = node.inputs
        out = []
        from .subtensor import subtensor
        static = _static_vector(shp, self.ndim, through_casts=True)
        total = None
        for i in range(self.ndim):
            s = None if static is None else static[i]
            if s == -1:
                if total is None:
                    total = _prod(shapes[0])
                known = _prod([subtensor(shp, j) for j in range(self.ndim) if j != i])
                out.append(total // known)
            elif s is not None:
                out.append(s)
            elif static is not None and -1 in static:
                out.append(subtensor(shp, i))  # the one -1 is elsewhere
            else:
                # A run-time entry may be -1: then its length is total / -prod(entries).
                from .elemwise import ELEMWISE as E
                if total is None:
                    total = _prod(shapes[0])
                entry = subtensor(shp, i)
                rest = E["maximum"](-_prod([subtensor(shp, j) for j in range(self.ndim)]), 1)
                out.append(E["switch"](E["eq"](entry, -1), total // rest, entry))
        return [tuple(out)]

    def grad(self, inputs, grads):
        return [reshape(grads[0], shape(inputs[0]), ndim=inputs[0].ndim), None]

    def R_op(self, inputs, eval_points):
        return [None if eval_points[0] is None else self(eval_points[0], inputs[1])]


def _prod(dims):
    out = 1
    for d in dims:
        out = out * d
    return out


def _static_vector(v, n, through_casts: bool = False):
    """The entries of a shape vector known at build time (None where unknown), or None.

    With ``through_casts``, an entry that is a cast of a constant (as MakeVector makes of the
    Python ints in ``(n, -1)``) counts as known."""
    if isinstance(v, Constant):
        return [int(s) for s in v.data]
    if v.owner is not None and isinstance(v.owner.op, MakeVector):
        static = [_static_int(e) for e in v.owner.inputs]
        if through_casts:
            static = [_static_int(e.owner.inputs[0]) if s is None and e.owner is not None and
                      getattr(getattr(e.owner.op, "scalar_op", None), "name", "").startswith(
                          "cast_") else s for s, e in zip(static, v.owner.inputs)]
        return static
    return None


def reshape(x, newshape, ndim: Optional[int] = None):
    """``x`` with shape ``newshape`` (ints and/or symbolic scalars, or a symbolic vector)."""
    x = as_tensor_variable(x)
    if isinstance(newshape, (int, np.integer)):
        newshape = (newshape,)
    if ndim is None:
        if isinstance(newshape, (list, tuple)):
            ndim = len(newshape)
        else:
            newshape = as_tensor_variable(newshape)
            if newshape.ndim == 0:  # a symbolic scalar: a 1-d result
                newshape, ndim = (newshape,), 1
            elif newshape.ndim != 1:
                raise graph_error(f"reshape: the new shape must be an integer vector, got "
                                  f"{newshape.type}")
            elif isinstance(newshape, Constant):
                ndim = len(newshape.data)
            elif newshape.type.shape[0] is None:
                raise graph_error("reshape: the length of the new shape is not known; pass "
                                  "ndim=...")
            else:
                ndim = newshape.type.shape[0]
    return Reshape(ndim)(x, newshape)


class Flatten(Op):
    """Keep the first ``ndim - 1`` dimensions and flatten the rest into one."""

    __props__ = ("ndim",)
    view_map = {0: [0]}

    def __init__(self, ndim: int = 1):
        self.ndim = int(ndim)

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if not 1 <= self.ndim <= max(x.ndim, 1):
            raise graph_error(f"flatten(ndim={self.ndim}) is invalid for {x.type}", ValueError)
        rest = x.type.shape[self.ndim - 1:]
        last = int(np.prod(rest)) if all(s is not None for s in rest) else None
        shape = x.type.shape[:self.ndim - 1] + (last,)
        return Apply(self, [x], [TensorType(x.dtype, shape=shape)()])

    def impl(self, node):
        keep = self.ndim - 1
        # An explicit length, not -1: numpy cannot infer -1 when another dimension is 0.
        return lambda a: a.reshape(a.shape[:keep] + (int(np.prod(a.shape[keep:])),))

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(shapes[0][:self.ndim - 1]) + (_prod(shapes[0][self.ndim - 1:]),)]

    def grad(self, inputs, grads):
        return [reshape(grads[0], shape(inputs[0]), ndim=inputs[0].ndim)]


def flatten(x, ndim: int = 1):
    return Flatten(ndim)(as_tensor_variable(x))


class MakeVector(Op):
    """Stack scalars into a vector (used for symbolic shapes)."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = dtype

    def make_node(self, *scalars) -> Apply:
        from .elemwise import cast
        scalars = [cast(as_tensor_variable(s), self.dtype) for s in scalars]
        for s in scalars:
            if s.ndim != 0:
                raise graph_error(f"MakeVector takes scalars, got {s.type}")
        return Apply(self, scalars, [TensorType(self.dtype, shape=(len(scalars),))()])

    def impl(self, node):
        dtype = np.dtype(self.dtype)
        return lambda *xs: np.array(xs, dtype=dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [(len(node.inputs),)]

    def grad(self, inputs, grads):
        from .subtensor import subtensor
        return [subtensor(grads[0], i) for i in range(len(inputs))]


class Join(Op):
    """Concatenate tensors along a fixed ``axis``."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, *tensors) -> Apply:
        from .elemwise import cast
        if not tensors:
            raise graph_error("join needs at least one tensor")
        tensors = [as_tensor_variable(t) for t in tensors]
        ndim = tensors[0].ndim
        if ndim == 0 or any(t.ndim != ndim for t in tensors):
            raise graph_error("join: all tensors must have the same number (>0) of dimensions; "
                              f"got {', '.join(str(t.type) for t in tensors)}")
        if not 0 <= self.axis < ndim:
            raise graph_error(f"join: axis {self.axis} is out of range for {ndim}-d tensors",
                              ValueError)
        dtype = upcast(*[t.dtype for t in tensors])
        tensors = [cast(t, dtype) for t in tensors]
        shape = []
        for d in range(ndim):
            lengths = [t.type.shape[d] for t in tensors]
            if d == self.axis:
                shape.append(sum(lengths) if None not in lengths else None)
            else:
                known = {s for s in lengths if s is not None}
                if len(known) > 1:
                    raise graph_error(f"join along axis {self.axis}: the tensors have static "
                                      f"shapes {[t.type.shape for t in tensors]}, which differ "
                                      f"in dimension {d}", ValueError)
                shape.append(known.pop() if known and len(known) == 1 and
                             None not in lengths else None)
        return Apply(self, tensors, [TensorType(dtype, shape=tuple(shape))()])

    def impl(self, node):
        axis = self.axis

        def run(*arrays):
            try:
                return np.concatenate(arrays, axis=axis)
            except ValueError:
                shapes = ", ".join(str(a.shape) for a in arrays)
                raise ValueError(f"join along axis {axis}: the arrays have shapes {shapes}; all "
                                 f"dimensions but {axis} must match") from None
        return run

    def infer_shape(self, fgraph, node, shapes):
        out = list(shapes[0])
        out[self.axis] = _sum([s[self.axis] for s in shapes])
        return [tuple(out)]

    def grad(self, inputs, grads):
        g = grads[0]
        sizes = [shape(t)[self.axis] for t in inputs]
        if len(inputs) == 1:
            return [g]
        parts = split(g, as_tensor_variable(sizes), len(inputs), axis=self.axis)
        return [patternbroadcast(p, t.broadcastable) for p, t in zip(parts, inputs)]

    def R_op(self, inputs, eval_points):
        if all(e is None for e in eval_points):
            return [None]
        # an input without a tangent contributes zeros to its block
        return [self(*[zeros_like(x) if e is None else e
                       for x, e in zip(inputs, eval_points)])]


def _sum(values):
    total = 0
    for v in values:
        total = total + v
    return total


def join(axis, *tensors):
    """Theano's ``join(axis, *tensors)``: concatenate along ``axis``."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    tensors = [as_tensor_variable(t) for t in tensors]
    axis = int(get_scalar_constant_value(axis))
    if axis < 0:
        axis += tensors[0].ndim
    return Join(axis)(*tensors) if len(tensors) > 1 else tensors[0]


def concatenate(tensor_list, axis: int = 0):
    return join(axis, *tensor_list)


def stack(tensors, axis: int = 0):
    """Join tensors along a new axis (scalars become a vector)."""
    if not tensors:
        raise graph_error("stack needs at least one tensor")
    tensors = [as_tensor_variable(t) for t in tensors]
    if axis == 0 and all(t.ndim == 0 for t in tensors):
        return MakeVector(upcast(*[t.dtype for t in tensors]))(*tensors)
    return join(axis, *[shape_padaxis(t, axis) for t in tensors])


class Split(Op):
    """Split ``x`` along ``axis`` into ``n_splits`` pieces of the given sizes."""

    __props__ = ("n_splits", "axis")

    def __init__(self, n_splits: int, axis: int):
        self.n_splits, self.axis = int(n_splits), int(axis)
        # np.split returns views of the input: declare them, so outputs get copied.
        self.view_map = {i: [0] for i in range(self.n_splits)}

    def make_node(self, x, sizes) -> Apply:
        x = as_tensor_variable(x)
        sizes = as_tensor_variable(sizes)
        if sizes.ndim != 1 or sizes.dtype not in _INTS:
            raise graph_error(f"split: sizes must be an integer vector, got {sizes.type}")
        if not 0 <= self.axis < x.ndim:
            raise graph_error(f"split: axis {self.axis} is out of range for {x.type}", ValueError)
        shape = tuple(None if d == self.axis else s for d, s in enumerate(x.type.shape))
        outs = [TensorType(x.dtype, shape=shape)() for _ in range(self.n_splits)]
        return Apply(self, [x, sizes], outs)

    def impl(self, node):
        n, axis = self.n_splits, self.axis

        def run(a, sizes):
            if len(sizes) != n or sizes.sum() != a.shape[axis] or (sizes < 0).any():
                raise ValueError(f"split: sizes {list(sizes)} must be {n} non-negative lengths "
                                 f"adding up to {a.shape[axis]} (axis {axis} of shape {a.shape})")
            return tuple(np.split(a, np.cumsum(sizes)[:-1], axis=axis))
        return run

    def infer_shape(self, fgraph, node, shapes):
        from .subtensor import subtensor
        out = []
        for i in range(self.n_splits):
            s = list(shapes[0])
            s[self.axis] = subtensor(node.inputs[1], i)
            out.append(tuple(s))
        return out

    def grad(self, inputs, grads):
        parts = [g if g is not None else zeros_like(o) for g, o in
                 zip(grads, self.make_node(*inputs).outputs)]
        return [join(self.axis, *parts), None]


def split(x, splits_size, n_splits: int, axis: int = 0):
    x = as_tensor_variable(x)
    if axis < 0:
        axis += x.ndim
    out = Split(n_splits, axis)(x, splits_size)
    return out if isinstance(out, list) else [out]


class Alloc(Op):
    """A new array of the given shape filled with ``value`` (broadcast)."""

    def make_node(self, value, *shape) -> Apply:
        value = as_tensor_variable(value)
        shape = [_as_int_scalar(s, "alloc: each dimension") for s in shape]
        if len(shape) < value.ndim:
            raise graph_error(f"alloc: value {value.type} has more dimensions than the shape "
                              f"({len(shape)})")
        static = [_static_int(s) for s in shape]
        return Apply(self, [value] + shape, [TensorType(value.dtype, shape=static)()])

    def impl(self, node):
        def run(value, *shape):
            out = np.empty(tuple(int(s) for s in shape), dtype=value.dtype)
            out[...] = value
            return out
        return run

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(node.inputs[1:])]

    def grad(self, inputs, grads):
        from .reduce import sum as sum_
        value, g = inputs[0], grads[0]
        lead = g.ndim - value.ndim
        axes = list(range(lead)) + [lead + d for d, b in enumerate(value.broadcastable)
                                    if b and not g.broadcastable[lead + d]]
        gv = sum_(g, axis=axes, keepdims=True) if axes else g
        if lead:
            gv = gv.dimshuffle(list(range(lead, g.ndim)))
        return [patternbroadcast(gv, value.broadcastable)] + [None] * (len(inputs) - 1)


_alloc = Alloc()


def alloc(value, *shape):
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    return _alloc(value, *shape)


def _shape_args(shape):
    if isinstance(shape, (int, np.integer)):
        return (shape,)
    if isinstance(shape, (list, tuple)):
        return tuple(shape)
    shape = as_tensor_variable(shape)
    if shape.ndim == 0:
        return (shape,)
    if isinstance(shape, Constant):
        return tuple(int(s) for s in shape.data.reshape(-1))
    if shape.ndim != 1 or shape.type.shape[0] is None:
        raise graph_error(f"the shape {shape.type} must be an integer vector of known length "
                          "(or a tuple of scalars)")
    return tuple(shape[i] for i in range(shape.type.shape[0]))


def zeros(shape, dtype: Optional[str] = None):
    from ..config import config
    return alloc(np.array(0, dtype=dtype or config.floatX), *_shape_args(shape))


def ones(shape, dtype: Optional[str] = None):
    from ..config import config
    return alloc(np.array(1, dtype=dtype or config.floatX), *_shape_args(shape))


def zeros_like(x, dtype: Optional[str] = None):
    x = as_tensor_variable(x)
    return alloc(np.array(0, dtype=dtype or x.dtype), *[shape(x)[i] for i in range(x.ndim)])


def ones_like(x, dtype: Optional[str] = None):
    x = as_tensor_variable(x)
    return alloc(np.array(1, dtype=dtype or x.dtype), *[shape(x)[i] for i in range(x.ndim)])


def fill(model, value):
    """An array shaped like ``model`` holding ``value`` (Theano's ``fill``/``second``)."""
    model = as_tensor_variable(model)
    return alloc(value, *[shape(model)[i] for i in range(model.ndim)])


class ARange(Op):
    """``numpy.arange(start, stop, step)`` with symbolic bounds."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = dtype

    def make_node(self, start, stop, step) -> Apply:
        args = [as_tensor_variable(a) for a in (start, stop, step)]
        for a in args:
            if a.ndim != 0:
                raise graph_error(f"arange: start, stop and step must be scalars, got {a.type}")
        length = None
        values = [_static_value(a) for a in args]
        if values[2] is not None and values[2] == 0:
            raise graph_error("arange: step must not be zero", ValueError)
        if None not in values:
            length = _arange_length(*[np.asarray(v, dtype=a.dtype) for v, a in
                                      zip(values, args)])
        return Apply(self, args, [TensorType(self.dtype, shape=(length,))()])

    def impl(self, node):
        dtype = np.dtype(self.dtype)

        def run(start, stop, step):
            if step == 0:
                raise ValueError("arange: step must not be zero")
            return np.arange(start, stop, step, dtype=dtype)
        return run

    def infer_shape(self, fgraph, node, shapes):
        from .elemwise import ELEMWISE as E, cast
        start, stop, step = node.inputs
        diff = stop - start
        if diff.dtype in INT_DTYPES + UINT_DTYPES:  # exact, not floatX: as numpy counts
            diff = cast(diff, "float64")
        n = E["ceil"](E["true_div"](diff, step))
        n = E["maximum"](cast(n, "int64"), 0)
        return [(n,)]

    def grad(self, inputs, grads):
        return [None, None, None]


def _arange_length(start, stop, step) -> Optional[int]:
    """``len(numpy.arange(start, stop, step))`` without building the array (a constant
    ``arange(10**9)`` would take 8 GB at graph-build time). numpy's own rule: the quotient
    ``(stop - start) / step`` in the arguments' arithmetic, rounded up, at least 0. None when
    numpy would refuse it at run time (a NaN or infinite length)."""
    with np.errstate(all="ignore"):
        q = np.true_divide(np.subtract(stop, start), step)
    q = float(q.real if np.iscomplexobj(q) else q)
    if not np.isfinite(q):
        return None
    return max(int(np.ceil(q)), 0)


def _static_value(v):
    try:
        return get_scalar_constant_value(v)
    except NotConstantError:
        return None


def arange(start, stop=None, step=1, dtype: Optional[str] = None):
    """Theano's ``arange``: int arguments give int64, float ones their float dtype."""
    if stop is None:
        start, stop = 0, start
    args = [as_tensor_variable(a) for a in (start, stop, step)]
    if dtype is None:
        dtype = upcast(*[a.dtype for a in args])
        if dtype in _INTS or dtype == "bool":
            dtype = "int64"
    return ARange(dtype)(*args)


class Eye(Op):
    """``numpy.eye(n, m, k)``."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = dtype

    def make_node(self, n, m, k) -> Apply:
        n, m, k = (_as_int_scalar(a, "eye: n, m and k") for a in (n, m, k))
        return Apply(self, [n, m, k], [TensorType(self.dtype, shape=(_static_int(n),
                                                                      _static_int(m)))()])

    def impl(self, node):
        dtype = np.dtype(self.dtype)
        return lambda n, m, k: np.eye(int(n), int(m), int(k), dtype=dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [(node.inputs[0], node.inputs[1])]

    def grad(self, inputs, grads):
        return [None, None, None]


def eye(n, m=None, k=0, dtype: Optional[str] = None):
    from ..config import config
    return Eye(dtype or config.floatX)(n, n if m is None else m, k)


def identity_like(x):
    x = as_tensor_variable(x)
    return eye(shape(x)[0], shape(x)[1], 0, dtype=x.dtype)


class Repeat(Op):
    """``numpy.repeat(x, repeats, axis)``."""

    __props__ = ("axis",)

    def __init__(self, axis: Optional[int]):
        self.axis = axis

    def make_node(self, x, repeats) -> Apply:
        x = as_tensor_variable(x)
        repeats = as_tensor_variable(repeats)
        if repeats.dtype not in _INTS or repeats.ndim > 1:
            raise graph_error(f"repeat: repeats must be an int scalar or vector, got "
                              f"{repeats.type}")
        if self.axis is None:
            shape = (None,)
        else:
            if not 0 <= self.axis < x.ndim:
                raise graph_error(f"repeat: axis {self.axis} out of range for {x.type}",
                                  ValueError)
            shape = tuple(None if d == self.axis else s for d, s in enumerate(x.type.shape))
        return Apply(self, [x, repeats], [TensorType(x.dtype, shape=shape)()])

    def impl(self, node):
        axis = self.axis
        return lambda a, r: np.repeat(a, r, axis=axis)

    def infer_shape(self, fgraph, node, shapes):
        from .reduce import sum as sum_
        x, r = node.inputs
        if self.axis is None:
            total = _prod(shapes[0])
            return [((total * r) if r.ndim == 0 else sum_(r),)]
        out = list(shapes[0])
        out[self.axis] = out[self.axis] * r if r.ndim == 0 else sum_(r)
        return [tuple(out)]

    def grad(self, inputs, grads):
        x, r = inputs
        g = grads[0]
        if r.ndim != 0:
            # Each output entry came from input entry repeat(arange(n), r)[k]: scatter-add back.
            from .subtensor import inc_subtensor
            if self.axis is None:
                flat = x.flatten()
                src = repeat(arange(shape(flat)[0]), r, axis=0)
                gx = inc_subtensor(zeros_like(flat)[src], g)
                return [reshape(gx, shape(x), ndim=x.ndim), None]
            src = repeat(arange(shape(x)[self.axis]), r, axis=0)
            idx = (slice(None),) * self.axis + (src,)
            return [inc_subtensor(zeros_like(x)[idx], g), None]
        from .reduce import sum as sum_
        axis = 0 if self.axis is None else self.axis
        xs = shape(x)
        if self.axis is None:
            gx = sum_(reshape(g, stack([_prod([xs[i] for i in range(x.ndim)]), r]), ndim=2),
                      axis=1)
            return [reshape(gx, xs, ndim=x.ndim), None]
        parts = [xs[i] for i in range(x.ndim)]
        new = parts[:axis] + [parts[axis], r] + parts[axis + 1:]
        return [sum_(reshape(g, stack(new), ndim=x.ndim + 1), axis=axis + 1), None]


def repeat(x, repeats, axis=None):
    x = as_tensor_variable(x)
    if axis is not None and axis < 0:
        axis += x.ndim
    return Repeat(axis)(x, repeats)


class Tile(Op):
    """``numpy.tile(x, reps)`` with constant ``reps``."""

    __props__ = ("reps",)

    def __init__(self, reps):
        self.reps = tuple(int(r) for r in reps)

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        ndim = max(x.ndim, len(self.reps))
        xs = (1,) * (ndim - x.ndim) + x.type.shape
        reps = (1,) * (ndim - len(self.reps)) + self.reps
        shape = tuple(None if s is None else s * r for s, r in zip(xs, reps))
        return Apply(self, [x], [TensorType(x.dtype, shape=shape)()])

    def impl(self, node):
        reps = self.reps
        return lambda a: np.tile(a, reps)

    def infer_shape(self, fgraph, node, shapes):
        ndim = node.outputs[0].ndim
        xs = (1,) * (ndim - len(shapes[0])) + tuple(shapes[0])
        reps = (1,) * (ndim - len(self.reps)) + self.reps
        return [tuple(s * r for s, r in zip(xs, reps))]

    def grad(self, inputs, grads):
        from .reduce import sum as sum_
        x, g = inputs[0], grads[0]
        ndim = g.ndim
        reps = (1,) * (ndim - len(self.reps)) + self.reps
        xs = shape(shape_padleft(x, ndim - x.ndim)) if ndim > x.ndim else shape(x)
        new = []
        for d in range(ndim):
            new += [reps[d], xs[d]]
        gx = sum_(reshape(g, stack(new), ndim=2 * ndim), axis=list(range(0, 2 * ndim, 2)))
        return [reshape(gx, shape(x), ndim=x.ndim)]


def tile(x, reps, ndim=None):
    """numpy.tile: ``reps`` an int or a sequence of ints known when the graph is built;
    ``ndim`` (Theano's) the number of dimensions of the result, padding ``reps`` with ones."""
    x = as_tensor_variable(x)
    if isinstance(reps, (int, np.integer)) or getattr(reps, "ndim", None) == 0:
        reps = [reps]
    try:
        reps = [int(get_scalar_constant_value(r)) for r in reps]
    except NotConstantError:
        raise graph_error("tile: reps must be known when the graph is built") from None
    if ndim is not None:
        if ndim < max(len(reps), x.ndim):
            raise graph_error(f"tile: ndim={ndim} is less than the {max(len(reps), x.ndim)} "
                              f"dimensions that {x.type} tiled by {reps} has", ValueError)
        reps = [1] * (ndim - len(reps)) + reps
    return Tile(reps)(x)
