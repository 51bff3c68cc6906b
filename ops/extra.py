"""Theano's extra ops: sort and argsort, roll, diagonals (diag, diagonal, trace), tril and triu.

Each op works along axes fixed when the graph is built; the helper functions handle
``axis=None`` (numpy's "flatten first") by flattening, so the ops themselves always have an
integer axis.
"""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import UINT_DTYPES, TensorType
from .base import INTEGER_DTYPES, Op, as_int_scalar, as_tensor_variable, graph_error

_SORT_KINDS = ("quicksort", "mergesort", "heapsort", "stable")


def _norm_axis(x, axis, what: str) -> int:
    """``axis`` as an int in [0, x.ndim), or a ValueError naming ``x``'s type."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise graph_error(f"{what}: axis must be an int or None, got {axis!r}")
    axis = int(axis)
    if not -x.ndim <= axis < x.ndim:
        raise graph_error(f"{what}: axis {axis} is out of range for {x.type} "
                          f"({x.ndim} dimensions)", ValueError)
    return axis % x.ndim


def _take_along_axis(a, indices, axis: int):
    """``numpy.take_along_axis(a, indices, axis)`` with ``indices`` the shape of ``a``, built
    from advanced indexing (an arange on every other axis, broadcast against ``indices``)."""
    from .alloc import arange
    from .shape import shape
    idx = []
    for d in range(a.ndim):
        if d == axis:
            idx.append(indices)
        else:
            pattern = ["x"] * a.ndim
            pattern[d] = 0
            idx.append(arange(shape(a)[d]).dimshuffle(pattern))
    return a[tuple(idx)]


# -- sort and argsort -----------------------------------------------------------------------------

class _SortBase:
    """What Sort and Argsort share (a mixin, so it is not an op class of its own)."""

    __props__ = ("axis", "kind")

    def __init__(self, axis: int, kind: str = "quicksort"):
        self.axis, self.kind = int(axis), kind

    def __str__(self) -> str:
        return f"{type(self).__name__}{{axis={self.axis}}}"

    def _check(self, x):
        x = as_tensor_variable(x)
        name = type(self).__name__.lower()
        if x.ndim == 0:
            raise graph_error(f"{name}: cannot sort along axis {self.axis} of {x.type} "
                              "(0 dimensions)", ValueError)
        if not 0 <= self.axis < x.ndim:
            raise graph_error(f"{name}: axis {self.axis} is out of range for {x.type}",
                              ValueError)
        return x

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]


class Sort(_SortBase, Op):
    """``numpy.sort(x, axis)``."""

    def make_node(self, x) -> Apply:
        x = self._check(x)
        return Apply(self, [x], [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        axis, kind = self.axis, self.kind
        return lambda a: np.sort(a, axis=axis, kind=kind)

    def grad(self, inputs, grads):
        # out = take_along_axis(x, p, axis) with p = argsort(x): entry j of x went to position
        # inv[j], inv = argsort(p) the inverse permutation, so gx = take_along_axis(g, inv).
        x, g = inputs[0], grads[0]
        perm = Argsort(self.axis, self.kind)(x)
        inv = Argsort(self.axis, "quicksort")(perm)
        return [_take_along_axis(g, inv, self.axis)]


class Argsort(_SortBase, Op):
    """``numpy.argsort(x, axis)``: int64 indices."""

    def make_node(self, x) -> Apply:
        x = self._check(x)
        return Apply(self, [x], [TensorType("int64", shape=x.type.shape)()])

    def impl(self, node):
        axis, kind = self.axis, self.kind
        return lambda a: np.argsort(a, axis=axis, kind=kind).astype(np.int64, copy=False)

    def grad(self, inputs, grads):
        return [None]  # integer output


def _sorting(op_cls, a, axis, kind, order, what):
    if order is not None:
        raise graph_error(f"{what}: order= (structured arrays) is not supported", ValueError)
    if kind not in _SORT_KINDS:
        raise graph_error(f"{what}: kind must be one of {_SORT_KINDS}, got {kind!r}", ValueError)
    a = as_tensor_variable(a)
    if axis is None:
        return op_cls(0, kind)(a.flatten())
    if a.ndim == 0:
        raise graph_error(f"{what}: axis {axis} is out of range for {a.type} (0 dimensions); "
                          "use axis=None", ValueError)
    return op_cls(_norm_axis(a, axis, what), kind)(a)


def sort(a, axis=-1, kind="quicksort", order=None):
    """``numpy.sort``: ``a`` sorted along ``axis`` (None: the flattened array)."""
    return _sorting(Sort, a, axis, kind, order, "sort")


def argsort(a, axis=-1, kind="quicksort", order=None):
    """``numpy.argsort``: the int64 indices that sort ``a`` along ``axis`` (None: flattened)."""
    return _sorting(Argsort, a, axis, kind, order, "argsort")


# -- roll ------------------------------------------------------------------------------------------

class Roll(Op):
    """``numpy.roll(x, shift, axis)`` for one axis; ``shift`` an integer scalar input."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, x, shift) -> Apply:
        x = as_tensor_variable(x)
        shift = as_int_scalar(shift, "roll: shift")
        if shift.dtype in UINT_DTYPES:
            from .elemwise import cast
            shift = cast(shift, "int64")
        if not 0 <= self.axis < x.ndim:
            raise graph_error(f"roll: axis {self.axis} is out of range for {x.type}", ValueError)
        return Apply(self, [x, shift], [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        axis = self.axis
        return lambda a, s: np.roll(a, int(s), axis=axis)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, grads):
        return [self(grads[0], -inputs[1]), None]


def roll(x, shift, axis=None):
    """``numpy.roll``: ``shift`` an int or integer scalar variable (or a sequence of them, one
    per axis of ``axis``); ``axis`` None rolls the flattened array and restores the shape."""
    from .shape import reshape, shape
    x = as_tensor_variable(x)
    if axis is None:
        if isinstance(shift, (list, tuple)):
            raise graph_error("roll: axis=None takes a single shift", ValueError)
        flat = Roll(0)(x.flatten(), shift)
        return reshape(flat, shape(x), ndim=x.ndim)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    shifts = list(shift) if isinstance(shift, (list, tuple)) else [shift] * len(axes)
    if len(axes) == 1 and len(shifts) > 1:
        axes = axes * len(shifts)
    if len(shifts) != len(axes):
        raise graph_error(f"roll: {len(shifts)} shifts for {len(axes)} axes", ValueError)
    if x.ndim == 0:
        raise graph_error(f"roll: axis {axis} is out of range for {x.type} (0 dimensions); "
                          "use axis=None", ValueError)
    out = x
    for ax, sh in zip(axes, shifts):
        out = Roll(_norm_axis(x, ax, "roll"))(out, sh)
    return out


# -- diagonals -------------------------------------------------------------------------------------

def _diag_length(n1, n2, offset: int):
    """The length of the diagonal ``offset`` of an (n1, n2) matrix: ints or int scalars."""
    from .elemwise import ELEMWISE as E
    a = n1 if offset >= 0 else n1 + offset
    b = n2 - offset if offset >= 0 else n2
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return max(0, min(int(a), int(b)))
    return E["maximum"](E["minimum"](a, b), 0)


class ExtractDiag(Op):
    """``numpy.diagonal(x, offset, axis1, axis2)``: a copy, the diagonal as the last axis."""

    __props__ = ("offset", "axis1", "axis2")

    def __init__(self, offset: int = 0, axis1: int = 0, axis2: int = 1):
        self.offset, self.axis1, self.axis2 = int(offset), int(axis1), int(axis2)

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim < 2:
            raise graph_error(f"diagonal: needs at least 2 dimensions, got {x.type}", ValueError)
        if not (0 <= self.axis1 < x.ndim and 0 <= self.axis2 < x.ndim) \
                or self.axis1 == self.axis2:
            raise graph_error(f"diagonal: axes {self.axis1} and {self.axis2} must be two "
                              f"different axes of {x.type}", ValueError)
        s = x.type.shape
        n1, n2 = s[self.axis1], s[self.axis2]
        length = None if n1 is None or n2 is None else _diag_length(n1, n2, self.offset)
        rest = tuple(n for d, n in enumerate(s) if d not in (self.axis1, self.axis2))
        return Apply(self, [x], [TensorType(x.dtype, shape=rest + (length,))()])

    def impl(self, node):
        offset, a1, a2 = self.offset, self.axis1, self.axis2
        return lambda a: np.diagonal(a, offset, a1, a2).copy()

    def infer_shape(self, fgraph, node, shapes):
        s = shapes[0]
        rest = tuple(n for d, n in enumerate(s) if d not in (self.axis1, self.axis2))
        return [rest + (_diag_length(s[self.axis1], s[self.axis2], self.offset),)]

    def grad(self, inputs, grads):
        # Move axis1, axis2 last; there the diagonal is xt[..., rows, cols] (adjacent advanced
        # indices keep their place, after the other axes, as numpy.diagonal puts it).
        from .alloc import arange, zeros_like
        from .shape import shape
        from .subtensor import inc_subtensor
        x, g = inputs[0], grads[0]
        others = [d for d in range(x.ndim) if d not in (self.axis1, self.axis2)]
        order = others + [self.axis1, self.axis2]
        xt = x.dimshuffle(order)
        i = arange(shape(g)[g.ndim - 1])
        rows = i + max(0, -self.offset)
        cols = i + max(0, self.offset)
        gxt = inc_subtensor(zeros_like(xt)[(slice(None),) * len(others) + (rows, cols)], g)
        back = [order.index(d) for d in range(x.ndim)]
        return [gxt.dimshuffle(back)]


class AllocDiag(Op):
    """``numpy.diag(v, offset)`` for a vector ``v``: the square matrix with ``v`` on the
    diagonal ``offset`` and zeros elsewhere."""

    __props__ = ("offset",)

    def __init__(self, offset: int = 0):
        self.offset = int(offset)

    def make_node(self, v) -> Apply:
        v = as_tensor_variable(v)
        if v.ndim != 1:
            raise graph_error(f"diag: AllocDiag needs a vector, got {v.type}", ValueError)
        n = v.type.shape[0]
        m = None if n is None else n + abs(self.offset)
        return Apply(self, [v], [TensorType(v.dtype, shape=(m, m))()])

    def impl(self, node):
        offset = self.offset
        return lambda a: np.diag(a, offset)

    def infer_shape(self, fgraph, node, shapes):
        m = shapes[0][0] + abs(self.offset)
        return [(m, m)]

    def grad(self, inputs, grads):
        return [ExtractDiag(self.offset, 0, 1)(grads[0])]


def diag(v, k=0):
    """``numpy.diag``: a vector gives the square matrix with it on diagonal ``k``; a matrix
    gives its diagonal ``k``."""
    v = as_tensor_variable(v)
    k = _as_k(k, "diag")
    if v.ndim == 1:
        return AllocDiag(k)(v)
    if v.ndim == 2:
        return ExtractDiag(k, 0, 1)(v)
    raise graph_error(f"diag: input must be 1- or 2-d, got {v.type}", ValueError)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """``numpy.diagonal``: the diagonal ``offset`` of the 2-d slices over ``axis1`` and
    ``axis2``, as the last axis."""
    a = as_tensor_variable(a)
    if a.ndim < 2:
        raise graph_error(f"diagonal: needs at least 2 dimensions, got {a.type}", ValueError)
    a1, a2 = _norm_axis(a, axis1, "diagonal"), _norm_axis(a, axis2, "diagonal")
    if a1 == a2:
        raise graph_error(f"diagonal: axis1 and axis2 are the same axis {a1} of {a.type}",
                          ValueError)
    return ExtractDiag(_as_k(offset, "diagonal"), a1, a2)(a)


def trace(a, offset=0, axis1=0, axis2=1):
    """``numpy.trace``: the sum of ``diagonal(a, offset, axis1, axis2)`` along its last axis."""
    from .reduce import sum as sum_
    d = diagonal(a, offset, axis1, axis2)
    return sum_(d, axis=d.ndim - 1)


# -- tril and triu ---------------------------------------------------------------------------------

class Triangle(Op):
    """``numpy.tril(x, k)`` (``lower``) or ``numpy.triu(x, k)``, over the last two axes."""

    __props__ = ("lower", "k")

    def __init__(self, lower: bool, k: int = 0):
        self.lower, self.k = bool(lower), int(k)

    def __str__(self) -> str:
        return f"{'Tril' if self.lower else 'Triu'}{{k={self.k}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim < 2:
            raise graph_error(f"{'tril' if self.lower else 'triu'}: needs at least 2 "
                              f"dimensions, got {x.type}", ValueError)
        return Apply(self, [x], [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        fn, k = (np.tril if self.lower else np.triu), self.k
        return lambda a: fn(a, k)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, grads):
        return [self(grads[0])]

    def R_op(self, inputs, eval_points):
        return [None if eval_points[0] is None else self(eval_points[0])]


def _as_k(k, what) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise graph_error(f"{what}: k must be an int known when the graph is built, got {k!r}")
    return int(k)


def tril(m, k=0):
    """``numpy.tril``: ``m`` with the entries above diagonal ``k`` zeroed (last two axes)."""
    return Triangle(True, _as_k(k, "tril"))(m)


def triu(m, k=0):
    """``numpy.triu``: ``m`` with the entries below diagonal ``k`` zeroed (last two axes)."""
    return Triangle(False, _as_k(k, "triu"))(m)


# -- searchsorted, nonzero, bincount, to_one_hot, diff (Theano's extra_ops) ----------------------

class SearchSorted(Op):
    """``numpy.searchsorted(x, v, side, sorter)``: int64 insertion points of ``v`` in the
    vector ``x`` (sorted, or put in order by the int vector ``sorter``)."""

    __props__ = ("side",)

    def __init__(self, side: str = "left"):
        if side not in ("left", "right"):
            raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        self.side = side

    def make_node(self, x, v, sorter=None) -> Apply:
        x, v = as_tensor_variable(x), as_tensor_variable(v)
        if x.ndim != 1:
            raise graph_error(f"searchsorted: x must be a vector, got {x.type}", ValueError)
        inputs = [x, v]
        if sorter is not None:
            sorter = as_tensor_variable(sorter)
            if sorter.ndim != 1 or sorter.dtype not in INTEGER_DTYPES:
                raise graph_error(f"searchsorted: sorter must be an int vector, got "
                                  f"{sorter.type}")
            inputs.append(sorter)
        return Apply(self, inputs, [TensorType("int64", shape=v.type.shape)()])

    def impl(self, node):
        side = self.side

        def run(x, v, sorter=None):
            return np.asarray(np.searchsorted(x, v, side=side, sorter=sorter), dtype=np.int64)
        return run

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def grad(self, inputs, grads):
        return [None] * len(inputs)  # integer positions, constant almost everywhere


def searchsorted(x, v, side="left", sorter=None):
    """``numpy.searchsorted``: where the values ``v`` would go in the sorted vector ``x`` to keep
    it sorted (int64, ``v``'s shape)."""
    return SearchSorted(side)(x, v, sorter)


class Nonzero(Op):
    """The indices of the non-zero elements of ``a``, as an int64 matrix with one row per axis
    (``numpy.nonzero`` stacked)."""

    def make_node(self, a) -> Apply:
        a = as_tensor_variable(a)
        if a.ndim == 0:
            raise graph_error("Nonzero only supports non-scalar arrays.", ValueError)
        return Apply(self, [a], [TensorType("int64", shape=(a.ndim, None))()])

    def impl(self, node):
        def run(a):
            return np.array(np.nonzero(a), dtype=np.int64).reshape(a.ndim, -1)
        return run

    def infer_shape(self, fgraph, node, shapes):
        from .elemwise import ELEMWISE as E
        from .reduce import sum as sum_
        a = node.inputs[0]
        return [(a.ndim, sum_(E["neq"](a, 0), dtype="int64"))]

    def grad(self, inputs, grads):
        return [None]


def nonzero(a, return_matrix=False):
    """``numpy.nonzero``: a tuple of int64 vectors, the indices of the non-zero elements along
    each axis; ``return_matrix=True`` gives them as the rows of one matrix."""
    matrix = Nonzero()(a)
    if return_matrix:
        return matrix
    return tuple(matrix[i] for i in range(matrix.owner.inputs[0].ndim))


def flatnonzero(a):
    """``numpy.flatnonzero``: the indices of the non-zero elements of ``a`` flattened."""
    a = as_tensor_variable(a)
    if a.ndim == 0:
        raise graph_error("Nonzero only supports non-scalar arrays.", ValueError)
    return Nonzero()(a.flatten())[0]


def nonzero_values(a):
    """The non-zero elements of ``a`` flattened, in order."""
    a = as_tensor_variable(a)
    return a.flatten()[flatnonzero(a)]


class BinCount(Op):
    """``numpy.bincount(x, weights, minlength)``: how often each value of the non-negative int
    vector ``x`` occurs (or the sum of its ``weights``). The dtype is ``x``'s, or the weights'
    (Theano's rule, where numpy gives int64 or float64)."""

    def make_node(self, x, minlength, weights=None) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim != 1 or x.dtype not in INTEGER_DTYPES:
            raise graph_error(f"bincount: x must be a vector of ints, got {x.type}")
        minlength = as_int_scalar(minlength, "bincount: minlength")
        inputs, dtype = [x, minlength], x.dtype
        if weights is not None:
            weights = as_tensor_variable(weights)
            if weights.ndim != 1:
                raise graph_error(f"bincount: weights must be a vector, got {weights.type}",
                                  ValueError)
            inputs.append(weights)
            dtype = weights.dtype
        return Apply(self, inputs, [TensorType(dtype, shape=(None,))()])

    def impl(self, node):
        dtype = np.dtype(node.outputs[0].dtype)

        def run(x, minlength, weights=None):
            if x.size and x.min() < 0:
                raise ValueError(f"bincount: x has a negative value {x.min()}; bincount counts "
                                 "non-negative ints")
            if weights is not None and weights.shape != x.shape:
                raise ValueError(f"bincount: {x.shape[0]} values but {weights.shape[0]} "
                                 "weights")
            if int(minlength) < 0:
                raise ValueError(f"bincount: minlength must be non-negative, got {minlength}")
            out = np.bincount(x.astype(np.int64, copy=False), weights, int(minlength))
            return out.astype(dtype, copy=False)
        return run

    def infer_shape(self, fgraph, node, shapes):
        from .elemwise import ELEMWISE as E
        from .elemwise import cast
        from .join import concatenate
        from .reduce import max as max_
        x, minlength = node.inputs[:2]
        # max(x) + 1, or 0 for an empty x: the maximum of x and -1
        top = max_(concatenate([cast(x, "int64"), np.array([-1], dtype="int64")]))
        return [(E["maximum"](top + 1, cast(minlength, "int64")),)]

    def grad(self, inputs, grads):
        if len(inputs) == 2:
            return [None, None]
        x, g = inputs[0], grads[0]
        return [None, None, g[x]]


def bincount(x, weights=None, minlength=None, assert_nonneg=False):
    """``numpy.bincount`` (Theano's ``extra_ops.bincount``): counts of each value of the int
    vector ``x``, at least ``minlength`` long. Negative values are refused at run time whatever
    ``assert_nonneg`` says (Theano without it wrapped them around the end of the result)."""
    x = as_tensor_variable(x)
    if x.ndim != 1:
        raise graph_error("Inputs must be of dimension 1.")
    return BinCount()(x, 0 if minlength is None else minlength, weights)


def to_one_hot(y, nb_class, dtype=None):
    """One row per label of the int vector ``y``: 1 in column ``y[i]`` of ``nb_class``, 0
    elsewhere (dtype floatX unless given)."""
    from ..config import config
    from .alloc import arange, zeros
    from .shape import shape
    from .subtensor import set_subtensor
    y = as_tensor_variable(y)
    if y.ndim != 1 or y.dtype not in INTEGER_DTYPES:
        raise graph_error(f"to_one_hot: y must be a vector of int labels, got {y.type}")
    n = shape(y)[0]
    out = zeros((n, nb_class), dtype=dtype or config.floatX)
    return set_subtensor(out[arange(n), y], 1)


def diff(x, n=1, axis=-1):
    """``numpy.diff``: the ``n``-th difference along ``axis``."""
    x = as_tensor_variable(x)
    axis = _norm_axis(x, axis, "diff")
    head = (slice(None),) * axis
    for _ in range(int(n)):
        x = x[head + (slice(1, None),)] - x[head + (slice(None, -1),)]
    return x
