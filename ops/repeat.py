"""Repeating a tensor: ``Repeat`` (``numpy.repeat``, each entry) and ``Tile`` (``numpy.tile``,
the whole array)."""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import TensorType
from .alloc import arange, zeros_like
from .base import (
    INTEGER_DTYPES,
    NotConstantError,
    Op,
    as_tensor_variable,
    get_scalar_constant_value,
    graph_error,
)
from .dimshuffle import shape_padleft
from .join import stack
from .shape import reshape, shape, shape_product


class Repeat(Op):
    """``numpy.repeat(x, repeats, axis)``."""

    __props__ = ("axis",)

    def __init__(self, axis: int | None):
        self.axis = axis

    def make_node(self, x, repeats) -> Apply:
        x = as_tensor_variable(x)
        repeats = as_tensor_variable(repeats)
        if repeats.dtype not in INTEGER_DTYPES or repeats.ndim > 1:
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
            total = shape_product(shapes[0])
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
            size = shape_product([xs[i] for i in range(x.ndim)])
            gx = sum_(reshape(g, stack([size, r]), ndim=2), axis=1)
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
