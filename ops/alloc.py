"""New arrays: ``Alloc`` (``alloc``, ``zeros``, ``ones``, ``zeros_like``, ``fill``...),
``ARange`` and ``Eye``."""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply, Constant
from ..symbolic.types import TensorType
from .base import (
    INTEGER_DTYPES,
    Op,
    as_int_scalar,
    as_tensor_variable,
    graph_error,
    static_int,
    static_value,
)
from .gradrules import unbroadcast_to
from .scalar import upcast
from .shape import shape


class Alloc(Op):
    """A new array of the given shape filled with ``value`` (broadcast)."""

    def make_node(self, value, *shape) -> Apply:
        value = as_tensor_variable(value)
        shape = [as_int_scalar(s, "alloc: each dimension") for s in shape]
        if len(shape) < value.ndim:
            raise graph_error(f"alloc: value {value.type} has more dimensions than the shape "
                              f"({len(shape)})")
        static = [static_int(s) for s in shape]
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
        return [unbroadcast_to(grads[0], inputs[0])] + [None] * (len(inputs) - 1)


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


def zeros(shape, dtype: str | None = None):
    from ..config import config
    return alloc(np.array(0, dtype=dtype or config.floatX), *_shape_args(shape))


def ones(shape, dtype: str | None = None):
    from ..config import config
    return alloc(np.array(1, dtype=dtype or config.floatX), *_shape_args(shape))


def zeros_like(x, dtype: str | None = None):
    x = as_tensor_variable(x)
    return alloc(np.array(0, dtype=dtype or x.dtype), *[shape(x)[i] for i in range(x.ndim)])


def ones_like(x, dtype: str | None = None):
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
        values = [static_value(a) for a in args]
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
        from .elemwise import ELEMWISE as E
        from .elemwise import cast
        start, stop, step = node.inputs
        diff = stop - start
        if diff.dtype in INTEGER_DTYPES:  # exact, not floatX: as numpy counts
            diff = cast(diff, "float64")
        n = E["ceil"](E["true_div"](diff, step))
        n = E["maximum"](cast(n, "int64"), 0)
        return [(n,)]

    def grad(self, inputs, grads):
        return [None, None, None]


def _arange_length(start, stop, step) -> int | None:
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


def arange(start, stop=None, step=1, dtype: str | None = None):
    """Theano's ``arange``: int arguments give int64, float ones their float dtype."""
    if stop is None:
        start, stop = 0, start
    args = [as_tensor_variable(a) for a in (start, stop, step)]
    if dtype is None:
        dtype = upcast(*[a.dtype for a in args])
        if dtype in INTEGER_DTYPES or dtype == "bool":
            dtype = "int64"
    return ARange(dtype)(*args)


class Eye(Op):
    """``numpy.eye(n, m, k)``."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = dtype

    def make_node(self, n, m, k) -> Apply:
        n, m, k = (as_int_scalar(a, "eye: n, m and k") for a in (n, m, k))
        return Apply(self, [n, m, k], [TensorType(self.dtype, shape=(static_int(n),
                                                                      static_int(m)))()])

    def impl(self, node):
        dtype = np.dtype(self.dtype)
        return lambda n, m, k: np.eye(int(n), int(m), int(k), dtype=dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [(node.inputs[0], node.inputs[1])]

    def grad(self, inputs, grads):
        return [None, None, None]


def eye(n, m=None, k=0, dtype: str | None = None):
    from ..config import config
    return Eye(dtype or config.floatX)(n, n if m is None else m, k)


def identity_like(x):
    x = as_tensor_variable(x)
    return eye(shape(x)[0], shape(x)[1], 0, dtype=x.dtype)
