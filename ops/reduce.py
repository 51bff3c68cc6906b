"""Reductions (sum prod max min all any argmax argmin), mean/var/std, cumsum/cumprod.

``keepdims`` is a DimShuffle after the reduction, so each reduction op has one output type rule.
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import COMPLEX_DTYPES, FLOAT_DTYPES, TensorType
from .base import Op, as_tensor_variable, graph_error
from .elemwise import ELEMWISE as E
from .elemwise import cast
from .shape import shape_product

_REDUCERS = {
    "sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "all": np.all, "any": np.any,
}


def _acc_dtype(kind: str, dtype: str) -> str:
    """Theano's output dtype: sums and products of ints widen to 64 bits."""
    if kind in ("all", "any"):
        return "bool"
    if kind in ("sum", "prod"):
        if dtype in FLOAT_DTYPES or dtype in COMPLEX_DTYPES:
            return dtype
        return "uint64" if dtype.startswith("uint") else "int64"
    return dtype


def normalize_axis(x, axis, what: str) -> tuple:
    """Axes as a sorted tuple of non-negative ints; errors name the input's type."""
    if axis is None:
        return tuple(range(x.ndim))
    if isinstance(axis, (int, np.integer)):
        axis = [axis]
    try:
        if isinstance(axis, (str, bytes)):
            raise TypeError
        axes = [operator.index(a) for a in axis]  # refuses floats and strings ("01")
    except TypeError:
        raise graph_error(f"{what}: axis must be None, an int or a list of ints, "
                          f"got {axis!r}") from None
    out = []
    for a in axes:
        if not -x.ndim <= a < builtins.max(x.ndim, 1) or (x.ndim == 0 and a not in (0, -1)):
            raise graph_error(f"{what}: axis {a} is out of range for {x.type} "
                              f"({x.ndim} dimensions)", ValueError)
        out.append(a % x.ndim if x.ndim else 0)
    if len(set(out)) != len(out):
        raise graph_error(f"{what}: repeated axis in {axis!r}", ValueError)
    return tuple(sorted(out)) if x.ndim else ()


class Reduce(Op):
    """Reduce ``x`` over ``axis`` with one of sum, prod, max, min, all, any.

    ``initial`` (max and min of floats only) is the value of an empty reduction, which
    otherwise is an error: rewrites use it where the graph they replace was defined on empty
    inputs (logsumexp of an empty row is -inf)."""

    __props__ = ("kind", "axis", "dtype", "initial")

    def __init__(self, kind: str, axis: tuple, dtype: str, initial: float | None = None):
        self.kind, self.axis, self.dtype, self.initial = kind, tuple(axis), dtype, initial

    def __str__(self) -> str:
        init = "" if self.initial is None else f", initial={self.initial}"
        return f"{self.kind.capitalize()}{{axis={list(self.axis)}{init}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if self.kind in ("max", "min") and x.dtype in COMPLEX_DTYPES:
            raise graph_error(f"{self.kind} is not defined for complex {x.type}")
        if self.initial is not None and (self.kind not in ("max", "min")
                                         or x.dtype not in FLOAT_DTYPES):
            raise graph_error(f"Reduce: an initial value is for max/min of floats, not "
                              f"{self.kind} of {x.type}")
        shape = tuple(s for d, s in enumerate(x.type.shape) if d not in self.axis)
        return Apply(self, [x], [TensorType(self.dtype, shape=shape)()])

    def impl(self, node):
        fn, axis = _REDUCERS[self.kind], self.axis
        dtype = np.dtype(self.dtype)
        name = self.kind
        if name in ("sum", "prod"):
            return lambda a: np.asarray(fn(a, axis=axis, dtype=dtype))
        if name in ("max", "min") and self.initial is not None:
            initial = self.initial
            return lambda a: np.asarray(fn(a, axis=axis, initial=initial))
        if name in ("max", "min"):
            def run(a):
                if a.size == 0 and builtins.any(a.shape[d] == 0 for d in axis):
                    raise ValueError(f"{name} of an empty array (shape {a.shape}) over axes "
                                     f"{list(axis)} has no identity")
                return np.asarray(fn(a, axis=axis))
            return run
        return lambda a: np.asarray(fn(a, axis=axis))

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(s for d, s in enumerate(shapes[0]) if d not in self.axis)]

    def L_op(self, inputs, outputs, grads):
        (x,), (z,), (g,) = inputs, outputs, grads
        if x.dtype not in FLOAT_DTYPES + COMPLEX_DTYPES or self.kind in ("all", "any"):
            return [None]
        order = _keep_order(x.ndim, self.axis)
        g_b, z_b = g.dimshuffle(order), z.dimshuffle(order)
        if self.kind == "sum":
            return [_broadcast_like(cast(g_b, x.dtype), x)]
        if self.kind == "prod":
            # d prod / d x_i = prod of the other entries: prod / x_i where no entry is zero;
            # with one zero, the product of the non-zero entries at the zero, 0 elsewhere; with
            # several zeros, 0 (Theano's rule for inputs that may hold zeros).
            zero = E["eq"](x, 0)
            one = np.asarray(1, dtype=x.dtype)
            x_safe = E["switch"](zero, one, x)
            n_zero = Reduce("sum", self.axis, "int64")(zero).dimshuffle(order)
            prod_nz = Reduce("prod", self.axis, x.dtype)(x_safe).dimshuffle(order)
            others = E["switch"](E["eq"](n_zero, 0), cast(z_b, x.dtype) / x_safe,
                                 E["switch"](E["eq"](n_zero, 1),
                                             E["switch"](zero, prod_nz, 0 * one), 0 * one))
            return [cast(g_b, x.dtype) * others]
        # max/min: the gradient goes to every position equal to the extremum.
        return [cast(g_b, x.dtype) * cast(E["eq"](x, z_b), x.dtype)]

    def R_op(self, inputs, eval_points):
        if self.kind == "sum" and eval_points[0] is not None:
            return [self(eval_points[0])]
        raise NotImplementedError(f"R_op of {self}")


def _broadcast_like(g, x):
    from .alloc import alloc
    from .shape import shape
    sh = shape(x)
    return alloc(g, *[sh[i] for i in range(x.ndim)])


def _keep_order(ndim: int, axis: tuple) -> list:
    """The dimshuffle that puts reduced axes back as broadcastable dimensions."""
    order, k = [], 0
    for d in range(ndim):
        if d in axis:
            order.append("x")
        else:
            order.append(k)
            k += 1
    return order


def _keepdims(out, x, axis: tuple):
    return out.dimshuffle(_keep_order(x.ndim, axis))


def _reduce(kind: str, x, axis, dtype: str | None, keepdims: bool):
    x = as_tensor_variable(x)
    axes = normalize_axis(x, axis, kind)
    out_dtype = dtype or _acc_dtype(kind, x.dtype)
    out = Reduce(kind, axes, out_dtype)(x)
    return _keepdims(out, x, axes) if keepdims else out


def sum(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """Sum over ``axis`` (all axes by default). Ints accumulate in 64 bits."""
    return _reduce("sum", x, axis, dtype, keepdims)


def prod(x, axis=None, dtype=None, keepdims=False, acc_dtype=None, no_zeros_in_input=False):
    return _reduce("prod", x, axis, dtype, keepdims)


def max(x, axis=None, keepdims=False):
    return _reduce("max", x, axis, None, keepdims)


def min(x, axis=None, keepdims=False):
    return _reduce("min", x, axis, None, keepdims)


def all(x, axis=None, keepdims=False):
    return _reduce("all", x, axis, None, keepdims)


def any(x, axis=None, keepdims=False):
    return _reduce("any", x, axis, None, keepdims)


def _count(x, axes):
    from .shape import shape
    sh = shape(x)
    return shape_product(x.type.shape[a] if x.type.shape[a] is not None else sh[a] for a in axes)


def _acc_float(dtype: str) -> str:
    """Where a float16 mean or variance is computed: float32, as numpy and Theano do. A float16
    sum overflows past 65504 (1000 values of 100), and so does the count (100000 values)."""
    return "float32" if dtype == "float16" else dtype


def mean(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """Arithmetic mean; ints give float64 (Theano), floats keep their dtype. float16 is
    summed and divided in float32, then rounded once to float16."""
    x = as_tensor_variable(x)
    axes = normalize_axis(x, axis, "mean")
    out_dtype = dtype or (x.dtype if x.dtype in FLOAT_DTYPES + COMPLEX_DTYPES else "float64")
    work = _acc_float(out_dtype)
    total = sum(x, axis=axes, dtype=work)
    out = cast(total / cast(_count(x, axes), work), out_dtype)
    return _keepdims(out, x, axes) if keepdims else out


def var(x, axis=None, ddof: int = 0, keepdims=False, corrected=False):
    """Variance: mean of squared deviations, divided by ``n - ddof`` instead of ``n``.

    float16 data is centred and squared in float32 too: squared deviations above 256 would
    overflow float16 even where the variance itself fits."""
    x = as_tensor_variable(x)
    axes = normalize_axis(x, axis, "var")
    out_dtype = x.dtype
    if x.dtype == "float16":
        x = cast(x, _acc_float(x.dtype))
    centered = x - mean(x, axis=axes, keepdims=True)
    sq = E["sqr"](centered)
    if ddof:
        n = cast(_count(x, axes), sq.dtype)
        out = sum(sq, axis=axes) / (n - ddof)
    else:
        out = mean(sq, axis=axes)
    if out_dtype == "float16":
        out = cast(out, out_dtype)
    return _keepdims(out, x, axes) if keepdims else out


def std(x, axis=None, ddof: int = 0, keepdims=False, corrected=False):
    return E["sqrt"](var(x, axis=axis, ddof=ddof, keepdims=keepdims))


class Argmax(Op):
    """Index of the largest (or, with ``kind='min'``, smallest) entry along one axis."""

    __props__ = ("kind", "axis")

    def __init__(self, kind: str, axis: int | None):
        self.kind, self.axis = kind, axis

    def __str__(self) -> str:
        return f"Arg{self.kind}{{axis={self.axis}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if self.axis is None:
            shape = ()
        else:
            shape = tuple(s for d, s in enumerate(x.type.shape) if d != self.axis)
        return Apply(self, [x], [TensorType("int64", shape=shape)()])

    def impl(self, node):
        fn = np.argmax if self.kind == "max" else np.argmin
        axis = self.axis

        def run(a):
            # numpy: an empty result is fine (argmax over a non-empty axis of an empty array)
            if a.size == 0 and (axis is None or a.shape[axis] == 0):
                raise ValueError(f"arg{self.kind} of an empty array (shape {a.shape})"
                                 + ("" if axis is None else f" along axis {axis}"))
            return np.asarray(fn(a, axis=axis), dtype=np.int64)
        return run

    def infer_shape(self, fgraph, node, shapes):
        if self.axis is None:
            return [()]
        return [tuple(s for d, s in enumerate(shapes[0]) if d != self.axis)]

    def grad(self, inputs, grads):
        return [None]


def _arg(kind, x, axis, keepdims):
    x = as_tensor_variable(x)
    if axis is not None and not isinstance(axis, (int, np.integer)):
        axes = normalize_axis(x, axis, f"arg{kind}")
        if len(axes) != 1:
            if axes == tuple(range(x.ndim)):
                axis = None
            else:
                raise graph_error(f"arg{kind} over several axes {list(axes)} is not supported")
        else:
            axis = axes[0]
    if axis is not None:
        axis = normalize_axis(x, axis, f"arg{kind}")[0] if x.ndim else None
    src = x.flatten() if axis is None and x.ndim > 1 else x
    out = Argmax(kind, axis if axis is None or x.ndim else None)(src)
    if keepdims:
        axes = tuple(range(x.ndim)) if axis is None else (axis,)
        return _keepdims(out, x, axes)
    return out


def argmax(x, axis=None, keepdims=False):
    return _arg("max", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    return _arg("min", x, axis, keepdims)


def max_and_argmax(x, axis=None, keepdims=False):
    return max(x, axis, keepdims), argmax(x, axis, keepdims)


class CumOp(Op):
    """Cumulative sum or product along ``axis`` (None: over the flattened array)."""

    __props__ = ("mode", "axis")

    def __init__(self, mode: str, axis: int | None):
        self.mode, self.axis = mode, axis

    def __str__(self) -> str:
        return f"Cum{self.mode}{{axis={self.axis}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        dtype = _acc_dtype("sum", x.dtype)
        shape = (None,) if self.axis is None else x.type.shape
        if self.axis is None and x.ndim <= 1:
            shape = x.type.shape or (1,)
        return Apply(self, [x], [TensorType(dtype, shape=shape)()])

    def impl(self, node):
        fn = np.cumsum if self.mode == "add" else np.cumprod
        axis, dtype = self.axis, np.dtype(node.outputs[0].dtype)
        return lambda a: fn(a, axis=axis, dtype=dtype)

    def infer_shape(self, fgraph, node, shapes):
        if self.axis is None:
            return [(shape_product(shapes[0]),)]
        return [shapes[0]]

    def L_op(self, inputs, outputs, grads):
        (x,), (z,), (g,) = inputs, outputs, grads
        if x.dtype not in FLOAT_DTYPES:
            return [None]
        from .shape import reshape, shape
        from .subtensor import subtensor
        axis = 0 if self.axis is None else self.axis
        rev = (slice(None),) * axis + (slice(None, None, -1),)
        def suffix_sum(v):  # sum over j >= i along the axis
            return subtensor(cumsum(subtensor(v, rev), axis=axis), rev)
        if self.mode == "add":
            gx = suffix_sum(g)
        else:
            # d/dx_i sum_j g_j z_j = sum_{j>=i} g_j prod_{k<=j, k!=i} x_k. Before the first zero
            # along the axis that is suffix_sum(g z)_i / x_i; at the first zero, the same sum
            # with that zero taken as 1; after it every product holds the zero: 0.
            xs = x.flatten() if self.axis is None else x
            zero = E["eq"](xs, 0)
            seen = cumsum(zero, axis=axis)
            before, first = E["eq"](seen, 0), E["and_"](zero, E["eq"](seen, 1))
            one = np.asarray(1, dtype=xs.dtype)
            at_first = suffix_sum(g * CumOp("mul", axis)(E["switch"](first, one, xs)))
            gx = E["switch"](before, suffix_sum(g * z) / E["switch"](before, xs, one),
                             E["switch"](first, at_first, 0 * one))
        if self.axis is None:
            gx = reshape(gx, shape(x), ndim=x.ndim)
        return [gx]


def cumsum(x, axis=None):
    x = as_tensor_variable(x)
    if axis is not None:
        axis = normalize_axis(x, axis, "cumsum")[0]
    return CumOp("add", axis)(x)


def cumprod(x, axis=None):
    x = as_tensor_variable(x)
    if axis is not None:
        axis = normalize_axis(x, axis, "cumprod")[0]
    return CumOp("mul", axis)(x)
