"""Elemwise: a scalar row of ops/scalar.py lifted to tensors.

Broadcasting follows the static types, as in Theano: inputs of lower rank are padded on the left
with broadcastable dimensions, and a dimension broadcasts only if its type says so (length 1). A
run-time length of 1 in a dimension whose type is not broadcastable is an error, since the
gradient would otherwise have the wrong shape.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from ..config import config
from ..symbolic.graph import Apply, Variable
from ..symbolic.types import ALL_DTYPES, DISCRETE_DTYPES, TensorType
from . import scalar as S
from .base import Op, as_tensor_variable, graph_error
from .dimshuffle import DimShuffle, shape_padleft


class Elemwise(Op):
    """Apply ``scalar_op`` element by element, with broadcasting."""

    __props__ = ("scalar_op",)

    def __init__(self, scalar_op: S.ScalarOp):
        self.scalar_op = scalar_op

    def __str__(self) -> str:
        return f"Elemwise{{{self.scalar_op.name}}}"

    def make_node(self, *inputs) -> Apply:
        sop = self.scalar_op
        if len(inputs) > sop.nin == 2 and sop.associative:  # Theano's T.add(a, b, c, ...)
            return self.make_node(self(*inputs[:-1]), inputs[-1])
        if len(inputs) != sop.nin:
            raise graph_error(f"{sop.name} takes {sop.nin} inputs, got {len(inputs)}")
        for x in inputs:  # tensor variables pass as they are (the usual case, made cheap)
            if not (isinstance(x, Variable) and isinstance(x.type, TensorType)):
                inputs = [as_tensor_variable(x) for x in inputs]
                break
        # The output type depends only on the row, the input types and floatX (integer
        # division gives floatX): worked out (and checked) once per combination. The key holds
        # identities (cheap to hash); the entry keeps those objects alive, so an id is not
        # reused while its entry exists.
        if len(inputs) == 2:
            key = (id(sop), config.floatX, id(inputs[0].type), id(inputs[1].type))
        else:
            key = (id(sop), config.floatX, *[id(x.type) for x in inputs])
        hit = _OUT_TYPES.get(key)
        if hit is not None:
            pads = hit[2]
            if pads is not None:  # inputs of lower rank get their DimShuffle nodes each time
                inputs = [x if p is None else DimShuffle(*p)(x) for x, p in zip(inputs, pads)]
            return Apply(self, inputs, [hit[1]()])
        try:
            dtype = sop.output_dtype(*[x.dtype for x in inputs])
        except TypeError as err:
            names = ", ".join(str(x.type) for x in inputs)
            raise graph_error(f"{sop.name}({names}): {err}") from None
        types = [x.type for x in inputs]  # those of the key, kept alive by the entry
        ndim = max(x.ndim for x in inputs)
        pads = None
        if any(x.ndim < ndim for x in inputs):  # shape_padleft's pattern, for the table
            pads = tuple(None if x.ndim == ndim
                         else (x.ndim, ("x",) * (ndim - x.ndim) + tuple(range(x.ndim)))
                         for x in inputs)
        inputs = [shape_padleft(x, ndim - x.ndim) if x.ndim < ndim else x for x in inputs]
        shape = _broadcast_static_shapes(sop.name, inputs)
        out_type = TensorType(dtype, shape=shape)
        if len(_OUT_TYPES) < 10_000:
            _OUT_TYPES[key] = ((sop, types), out_type, pads)
        return Apply(self, inputs, [out_type()])

    def impl(self, node: Apply) -> Callable:
        fn = _numpy_kernel(self.scalar_op, tuple(x.dtype for x in node.inputs),
                           node.outputs[0].dtype)
        checks = _broadcast_checks(node)
        if not checks:
            return fn
        name = self.scalar_op.name

        def run(*args):
            out = fn(*args)
            shp = out.shape
            for i, dims in checks:
                a_shape = args[i].shape
                if a_shape != shp:
                    _check_runtime_broadcast(name, node, i, a_shape, shp, dims)
            return out

        return run

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [broadcast_shape(node, input_shapes)]

    def L_op(self, inputs, outputs, output_grads):
        return _elemwise_grad()(self, inputs, outputs, output_grads)

    def L_op_unfitted(self, inputs, outputs, output_grads):
        if type(self).L_op is not Elemwise.L_op:  # a subclass with its own rule
            return self.L_op(inputs, outputs, output_grads)
        return _elemwise_grad()(self, inputs, outputs, output_grads, fit=False)


def broadcast_shape(node: Apply, input_shapes) -> tuple:
    """The output shape of an elementwise node: per dimension, the length of an input that
    does not broadcast in it (all such lengths are equal, or computing fails), else 1."""
    out = []
    for d in range(node.outputs[0].ndim):
        dims = [shp[d] for x, shp in zip(node.inputs, input_shapes)
                if not x.type.broadcastable[d]]
        out.append(dims[0] if dims else 1)
    return tuple(out)


def broadcast_lengths(shapes: list[tuple]) -> tuple:
    """``np.broadcast_shapes(*shapes)`` (ValueError where they do not broadcast), without its
    4 us of overhead: a loop body calls a fused node or a product-plus-bias on tiny arrays
    every step."""
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    nd = max(map(len, shapes))
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for d, n in enumerate(s):
            m = out[off + d]
            if n != m:
                if m == 1:
                    out[off + d] = n
                elif n != 1:
                    raise ValueError(f"shapes {shapes} do not broadcast")
    return tuple(out)


# ids of (row, floatX, *input types) -> ((row, input types), output type, and None or, per
# input, None or the DimShuffle arguments that pad it on the left)
_OUT_TYPES: dict = {}
_GRAD_RULE: list = []


def _elemwise_grad() -> Callable:
    """gradrules.elemwise_grad, imported on first use: gradrules imports this module."""
    if not _GRAD_RULE:
        from .gradrules import elemwise_grad
        _GRAD_RULE.append(elemwise_grad)
    return _GRAD_RULE[0]


def _broadcast_static_shapes(name: str, inputs) -> tuple:
    shape = []
    for d in range(inputs[0].ndim):
        lengths = {x.type.shape[d] for x in inputs}
        known = {s for s in lengths if s is not None and s != 1}
        if len(known) > 1:
            shapes = ", ".join(str(x.type.shape) for x in inputs)
            raise graph_error(f"{name}: the inputs have static shapes {shapes}, which do not "
                              f"broadcast in dimension {d}", ValueError)
        if known:
            shape.append(known.pop())
        elif lengths == {1}:
            shape.append(1)
        else:
            shape.append(None)
    return tuple(shape)


def _broadcast_checks(node: Apply) -> list[tuple]:
    """(input index, dims that must equal the output's) for inputs that could be broadcast
    wrongly at run time; empty when numpy's own broadcasting cannot go wrong."""
    if node.outputs[0].ndim == 0 or len(node.inputs) == 1:
        return []
    checks = []
    for i, x in enumerate(node.inputs):
        dims = tuple(d for d, b in enumerate(x.type.broadcastable) if not b)
        if dims:
            checks.append((i, dims))
    return checks


def _check_runtime_broadcast(name, node, i, a_shape, out_shape, dims):
    for d in dims:
        if a_shape[d] != out_shape[d]:
            var = node.inputs[i]
            raise ValueError(
                f"{name}: input {i} has shape {a_shape} but the result has shape {out_shape}; "
                f"dimension {d} of input {i} ({var.type}) is not broadcastable, so it must have "
                f"length {out_shape[d]}. If it is meant to broadcast, declare it so "
                f"(T.addbroadcast(x, {d}), or a row/col type).")


@cache
def _numpy_kernel(sop: S.ScalarOp, in_dtypes: tuple, out_dtype: str) -> Callable:
    """The numpy call for ``sop`` on these dtypes, producing exactly ``out_dtype``."""
    fn = sop.np_fn
    want = np.dtype(out_dtype)
    probes = [np.ones((1,), dtype=d) for d in in_dtypes]
    if all(d in DISCRETE_DTYPES for d in in_dtypes) and want.kind in "fc":
        # e.g. exp(int8), sigmoid(uint16), int32 / int32: compute on floats (Theano's
        # semantics). On the integers numpy would use float16 for small ints (then cast, losing
        # precision), or wrap around (-abs(x) of a uint). The floats must hold every input value
        # exactly: int32 / int32 with floatX=float32 is divided in float64, then rounded once.
        exact = all(np.can_cast(d, want) for d in in_dtypes)
        work = want if exact else np.result_type(want, np.float64)

        def cast_in(*args, _fn=fn, _w=work, _t=want):
            out = _fn(*[np.asarray(a, dtype=_w) for a in args])
            return out if _w == _t else np.asarray(out).astype(_t, copy=False)
        if _probe(cast_in, probes) == want:
            return cast_in
    natural = _probe(fn, probes)
    if natural == want:
        return fn
    if isinstance(fn, np.ufunc):
        def with_dtype(*args, _fn=fn, _t=want):
            return _fn(*args, dtype=_t)
        if _probe(with_dtype, probes) == want:
            return with_dtype

    def cast_out(*args, _fn=fn, _t=want):
        return np.asarray(_fn(*args)).astype(_t, copy=False)
    return cast_out


def _probe(fn: Callable, args) -> np.dtype | None:
    try:
        with np.errstate(all="ignore"):
            return np.asarray(fn(*args)).dtype
    except (TypeError, ValueError, ArithmeticError):
        return None


# -- the tensor-level functions: one Elemwise per table row ----------------------------------------

def _make(sop: S.ScalarOp) -> Elemwise:
    return Elemwise(sop)


ELEMWISE = {name: _make(sop) for name, sop in S.TABLE.items()}
_CAST_ELEMWISE = {}


def cast(x, dtype: str):
    """Convert ``x`` to ``dtype`` (no node when it already has it)."""
    x = as_tensor_variable(x)
    dtype = str(np.dtype(dtype)) if dtype != "floatX" else config.floatX
    if dtype not in ALL_DTYPES:
        raise graph_error(f"cast: unknown dtype {dtype!r}")
    if x.dtype == dtype:
        return x
    if dtype not in _CAST_ELEMWISE:
        _CAST_ELEMWISE[dtype] = Elemwise(S.cast_op(dtype))
    return _CAST_ELEMWISE[dtype](x)


def round_mode(a, mode: str | None = None):
    """Round to the nearest integer; ties to even by default, as numpy does (Theano's
    ``T.round``)."""
    mode = mode or "half_to_even"
    if mode == "half_to_even":
        return ELEMWISE["round_half_to_even"](a)
    if mode == "half_away_from_zero":
        return ELEMWISE["round_half_away_from_zero"](a)
    raise graph_error(f"round: mode must be 'half_to_even' or 'half_away_from_zero', got "
                      f"{mode!r}", ValueError)


def tensor_copy(x, name: str | None = None):
    """A copy of ``x`` (a node of its own, so the copy can be named)."""
    out = ELEMWISE["identity"](x)
    out.name = name
    return out
