"""Shapes: a tensor's run-time shape (``Shape``; ``MakeVector`` builds symbolic shapes;
``ShapeCheck`` keeps the length checks of the value a shape-only graph stands for), and giving
a tensor a new shape (``Reshape``, ``Flatten``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..symbolic.graph import Apply, Constant
from ..symbolic.types import TensorType
from .base import (
    INTEGER_DTYPES,
    Op,
    as_int_scalar,
    as_tensor_variable,
    constant,
    graph_error,
    static_int,
)


def shape_product(lengths) -> Any:
    """The product of ``lengths``, Python ints and symbolic int scalars alike, built with ``*``
    (1 for none): the size of a shape, or of some of its dimensions."""
    out = 1
    for d in lengths:
        out = out * d
    return out


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
        lengths = [as_int_scalar(n, "ShapeCheck: a length") for n in lengths]
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
        if shp.ndim != 1 or shp.dtype not in INTEGER_DTYPES:
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
                    total = shape_product(shapes[0])
                known = shape_product([subtensor(shp, j) for j in range(self.ndim) if j != i])
                out.append(total // known)
            elif s is not None:
                out.append(s)
            elif static is not None and -1 in static:
                out.append(subtensor(shp, i))  # the one -1 is elsewhere
            else:
                # A run-time entry may be -1: then its length is total / -prod(entries).
                from .elemwise import ELEMWISE as E
                if total is None:
                    total = shape_product(shapes[0])
                entry = subtensor(shp, i)
                entries = [subtensor(shp, j) for j in range(self.ndim)]
                rest = E["maximum"](-shape_product(entries), 1)
                out.append(E["switch"](E["eq"](entry, -1), total // rest, entry))
        return [tuple(out)]

    def grad(self, inputs, grads):
        return [reshape(grads[0], shape(inputs[0]), ndim=inputs[0].ndim), None]

    def R_op(self, inputs, eval_points):
        return [None if eval_points[0] is None else self(eval_points[0], inputs[1])]


def _static_vector(v, n, through_casts: bool = False):
    """The entries of a shape vector known at build time (None where unknown), or None.

    With ``through_casts``, an entry that is a cast of a constant (as MakeVector makes of the
    Python ints in ``(n, -1)``) counts as known."""
    if isinstance(v, Constant):
        return [int(s) for s in v.data]
    if v.owner is not None and isinstance(v.owner.op, MakeVector):
        static = [static_int(e) for e in v.owner.inputs]
        if through_casts:
            static = [static_int(e.owner.inputs[0]) if s is None and e.owner is not None and
                      getattr(getattr(e.owner.op, "scalar_op", None), "name", "").startswith(
                          "cast_") else s for s, e in zip(static, v.owner.inputs)]
        return static
    return None


def reshape(x, newshape, ndim: int | None = None):
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
        return [tuple(shapes[0][:self.ndim - 1]) + (shape_product(shapes[0][self.ndim - 1:]),)]

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
