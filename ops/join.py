"""Joining and splitting tensors: ``Join`` (``join``, ``concatenate``, ``stack``) and
``Split``, each the other's gradient."""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import TensorType
from .alloc import zeros_like
from .base import INTEGER_DTYPES, Op, as_tensor_variable, get_scalar_constant_value, graph_error
from .buffers import MIN_BYTES, Recent
from .dimshuffle import patternbroadcast, shape_padaxis
from .scalar import upcast
from .shape import MakeVector, shape


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
        dtype = np.dtype(node.outputs[0].dtype)
        recent = Recent()
        large = MIN_BYTES // dtype.itemsize  # elements of a result kept for the next call

        def run(*arrays):
            first = arrays[0]
            if first.__class__ is np.ndarray and first.size * len(arrays) >= large and \
                    0 <= axis < first.ndim and \
                    all(a.__class__ is np.ndarray and a.dtype == dtype for a in arrays):
                # the shape the concatenation has if it succeeds (else it raises below)
                shape = list(first.shape)
                shape[axis] = sum(a.shape[axis] if a.ndim == first.ndim else 0
                                  for a in arrays)
                try:
                    return np.concatenate(arrays, axis=axis, out=recent.array(tuple(shape), dtype))
                except ValueError:
                    pass  # the plain call below gives the message
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
        if sizes.ndim != 1 or sizes.dtype not in INTEGER_DTYPES:
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
