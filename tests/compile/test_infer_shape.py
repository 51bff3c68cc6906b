"""Shape inference, for every op: ``infer_shape`` and the shape rules of compile/rules/shapes.py.

Table-driven: ``CASES`` builds, for each op, a graph whose last node applies that op to symbolic
inputs, with argument sets that include dimensions of length 0 and 1. Each case is checked three
ways against the shapes of the values the compiled graph computes:

- ``theano.function(inputs, out.shape)``: the shape rules answer it, and the compiled graph no
  longer computes the op itself (except for the ops listed in ``NEEDS_OUTPUT``);
- the op's ``infer_shape`` called directly (``call_infer_shape``), compiled without rewrites;
- the static shape of the output type, where it is known.

A completeness test fails when an Op class defined in theon has no case here and no entry, with
a reason, in ``NO_CASE``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.compile.ops import as_op
from theon.compile.rules.shapes import input_shapes
from theon.ifelse import ifelse
from theon.ops.base import call_infer_shape, theon_op_classes
from theon.ops.blas import DotAdd, Gemm, MatMul
from theon.ops.nnet import checked_labels, crossentropy_categorical_1hot
from theon.ops.shape import MakeVector, Reshape
from theon.printing import Print
from theon.symbolic.graph import Constant, ancestors

OP_CLASSES = theon_op_classes()

_rng = np.random.default_rng(42)
FAST_COMPILE = theano.Mode(optimizer="fast_compile")


def rnd(*shape):
    return _rng.uniform(0.5, 1.5, size=shape)


def ints(*values):
    return np.array(values, dtype="int32")


def i32(v):
    return np.int32(v)


class Case(NamedTuple):
    inputs: list
    out: object            # the variable (or list of a node's outputs) whose shape is checked
    argsets: list[tuple]   # argument tuples for the inputs


def _m(shape=(None, None), dtype="float64", name=None):
    return T.TensorType(dtype, shape=shape)(name)


# -- the table: name -> builder ------------------------------------------------------------------
CASES: dict[str, Callable[[], Case]] = {}


def case(name):
    def wrap(fn):
        assert name not in CASES
        CASES[name] = fn
        return fn
    return wrap


MATS = [(rnd(3, 4),), (rnd(0, 4),), (rnd(1, 1),), (rnd(3, 0),), (rnd(1, 5),)]
PAIRS = [(rnd(3, 4), rnd(3, 4)), (rnd(0, 4), rnd(0, 4)), (rnd(1, 1), rnd(1, 1)),
         (rnd(2, 0), rnd(2, 0))]
T3 = [(rnd(2, 3, 4),), (rnd(0, 3, 1),), (rnd(1, 1, 1),), (rnd(2, 0, 3),)]


# Elemwise: several scalar ops and arities, broadcasting, dtype changes.
@case("elemwise_add")
def _():
    x, y = T.dmatrices("x", "y")
    return Case([x, y], x + y, PAIRS)


@case("elemwise_exp")
def _():
    x = T.dmatrix("x")
    return Case([x], T.exp(x), MATS)


@case("elemwise_row_broadcast")
def _():
    x, r = T.dmatrix("x"), T.drow("r")
    return Case([x, r], x * r, [(rnd(3, 4), rnd(1, 4)), (rnd(0, 4), rnd(1, 4)),
                               (rnd(1, 1), rnd(1, 1))])


@case("elemwise_col_first")
def _():
    c, x = T.dcol("c"), T.dmatrix("x")
    return Case([c, x], c - x, [(rnd(3, 1), rnd(3, 4)), (rnd(0, 1), rnd(0, 2))])


@case("elemwise_vector_and_matrix")
def _():
    v, x = T.dvector("v"), T.dmatrix("x")
    return Case([v, x], T.arctan2(v, x), [(rnd(4), rnd(3, 4)), (rnd(0), rnd(2, 0))])


@case("elemwise_scalar_constant")
def _():
    x = T.dtensor3("x")
    return Case([x], x * 2 + 1, T3)


@case("elemwise_switch")
def _():
    x, y = T.dmatrices("x", "y")
    return Case([x, y], T.switch(T.gt(x, 1.0), x, y), PAIRS)


@case("elemwise_clip")
def _():
    x = T.dmatrix("x")
    return Case([x], T.clip(x, 0.7, 1.2), MATS)


@case("elemwise_cast")
def _():
    x = T.dmatrix("x")
    return Case([x], T.cast(x, "int32"), MATS)


@case("elemwise_int_div")
def _():
    a, b = T.imatrices("a", "b")
    return Case([a, b], a // b, [(ints(*range(1, 7)).reshape(2, 3), np.full((2, 3), 2, "int32")),
                                 (np.zeros((0, 3), "int32"), np.zeros((0, 3), "int32"))])


@case("elemwise_eq")
def _():
    x, y = T.dmatrices("x", "y")
    return Case([x, y], T.eq(x, y), PAIRS)


# DimShuffle
@case("dimshuffle_transpose")
def _():
    x = T.dtensor3("x")
    return Case([x], x.dimshuffle(2, 0, 1), T3)


@case("dimshuffle_insert")
def _():
    x = T.dmatrix("x")
    return Case([x], x.dimshuffle("x", 1, "x", 0), MATS)


@case("dimshuffle_drop")
def _():
    c = T.dcol("c")
    return Case([c], c.dimshuffle(0), [(rnd(3, 1),), (rnd(0, 1),), (rnd(1, 1),)])


@case("shape")
def _():
    x = T.dtensor3("x")
    return Case([x], T.shape(x), T3)


@case("rebroadcast_add")
def _():
    x = T.dmatrix("x")
    return Case([x], T.addbroadcast(x, 0), [(rnd(1, 4),), (rnd(1, 0),)])


@case("rebroadcast_remove")
def _():
    r = T.drow("r")
    return Case([r], T.unbroadcast(r, 0), [(rnd(1, 4),), (rnd(1, 0),)])


# Reshape: static shapes, -1, symbolic entries, a symbolic vector with a run-time -1.
@case("reshape_static_minus_one")
def _():
    x = T.dmatrix("x")
    return Case([x], x.reshape((2, -1)), [(rnd(4, 3),), (rnd(2, 0),), (rnd(1, 2),)])


@case("reshape_flat_minus_one")
def _():
    x = T.dtensor3("x")
    return Case([x], x.reshape((-1,)), T3)


@case("reshape_symbolic_scalars")
def _():
    x, n = T.dmatrix("x"), T.iscalar("n")
    return Case([x, n], x.reshape((n, -1)), [(rnd(4, 3), i32(6)), (rnd(4, 3), i32(1)),
                                             (rnd(4, 3), i32(12))])


@case("reshape_symbolic_vector")
def _():
    x, s = T.dmatrix("x"), T.lvector("s")
    out = T.reshape(x, s, ndim=3)
    return Case([x, s], out, [(rnd(4, 3), np.array([2, -1, 3])), (rnd(4, 3), np.array([1, 12, 1])),
                              (rnd(0, 3), np.array([3, 0, 5])), (rnd(4, 3), np.array([-1, 2, 2]))])


@case("flatten")
def _():
    x = T.dtensor3("x")
    return Case([x], T.flatten(x), T3)


@case("flatten_ndim2")
def _():
    x = T.dtensor3("x")
    return Case([x], T.flatten(x, 2), T3)


@case("make_vector")
def _():
    a, b = T.dscalars("a", "b")
    return Case([a, b], T.stack([a, b, a]), [(1.0, 2.0)])


# Join / concatenate / stack
@case("join_axis0")
def _():
    x, y = T.dmatrices("x", "y")
    return Case([x, y], T.concatenate([x, y], axis=0), [
        (rnd(3, 4), rnd(2, 4)), (rnd(0, 4), rnd(1, 4)), (rnd(0, 0), rnd(0, 0))])


@case("join_axis1_three")
def _():
    x, y, z = T.dmatrices("x", "y", "z")
    return Case([x, y, z], T.join(1, x, y, z), [
        (rnd(3, 4), rnd(3, 1), rnd(3, 0)), (rnd(1, 1), rnd(1, 2), rnd(1, 3))])


@case("stack_axis1")
def _():
    x, y = T.dvectors("x", "y")
    return Case([x, y], T.stack([x, y], axis=1), [(rnd(3), rnd(3)), (rnd(0), rnd(0))])


@case("split")
def _():
    x, s = T.dmatrix("x"), T.ivector("s")
    return Case([x, s], T.split(x, s, 3, axis=1), [
        (rnd(2, 6), ints(1, 2, 3)), (rnd(0, 6), ints(0, 6, 0)), (rnd(3, 1), ints(0, 1, 0))])


# Alloc family
@case("alloc_scalar")
def _():
    v, n, m = T.dscalar("v"), T.iscalar("n"), T.iscalar("m")
    return Case([v, n, m], T.alloc(v, n, m), [(1.0, i32(3), i32(4)), (1.0, i32(0), i32(2)),
                                               (1.0, i32(1), i32(1))])


@case("alloc_row")
def _():
    r, n = T.drow("r"), T.lscalar("n")
    return Case([r, n], T.alloc(r, n, 3), [(rnd(1, 3), np.int64(4)), (rnd(1, 3), np.int64(0))])


@case("zeros_like")
def _():
    x = T.dtensor3("x")
    return Case([x], T.zeros_like(x), T3)


@case("arange_int")
def _():
    a, b, s = T.iscalars("a", "b", "s")
    return Case([a, b, s], T.arange(a, b, s), [
        (i32(0), i32(10), i32(3)), (i32(5), i32(2), i32(1)), (i32(5), i32(-3), i32(-2)),
        (i32(0), i32(0), i32(1)), (i32(2), i32(3), i32(1))])


@case("arange_float")
def _():
    a, b, s = T.dscalars("a", "b", "s")
    return Case([a, b, s], T.arange(a, b, s), [(0.0, 1.0, 0.1), (0.5, 2.25, 0.25),
                                               (1.0, 0.0, 0.3), (0.0, 0.05, 0.1)])


@case("eye")
def _():
    n, m, k = T.iscalars("n", "m", "k")
    return Case([n, m, k], T.eye(n, m, k), [(i32(3), i32(4), i32(1)), (i32(0), i32(2), i32(0)),
                                            (i32(1), i32(1), i32(-1))])


@case("repeat_scalar_axis0")
def _():
    x = T.dmatrix("x")
    return Case([x], T.repeat(x, 3, axis=0), MATS)


@case("repeat_vector_axis1")
def _():
    x, r = T.dmatrix("x"), T.ivector("r")
    return Case([x, r], T.repeat(x, r, axis=1), [(rnd(2, 3), ints(1, 0, 2)),
                                                 (rnd(0, 2), ints(3, 3)), (rnd(1, 1), ints(0))])


@case("repeat_flat")
def _():
    x, n = T.dmatrix("x"), T.iscalar("n")
    return Case([x, n], T.repeat(x, n), [(rnd(2, 3), i32(2)), (rnd(0, 3), i32(2)),
                                         (rnd(2, 3), i32(0))])


@case("tile")
def _():
    x = T.dmatrix("x")
    return Case([x], T.tile(x, (2, 3)), MATS)


@case("tile_more_reps")
def _():
    v = T.dvector("v")
    return Case([v], T.tile(v, (2, 1, 3)), [(rnd(3),), (rnd(0),), (rnd(1),)])


# Reductions: every kind, axis None / int / tuple / negative, keepdims.
_NONEMPTY_T3 = [(rnd(2, 3, 4),), (rnd(1, 1, 1),), (rnd(3, 1, 2),)]
for _kind in ("sum", "prod", "max", "min", "all", "any"):
    for _axis in (None, 0, -1, (0, 2)):
        def _make(kind=_kind, axis=_axis):
            x = T.dtensor3("x")
            fn = getattr(T, kind)
            args = list(_NONEMPTY_T3)
            if kind not in ("max", "min"):
                args += [(rnd(2, 0, 3),), (rnd(0, 3, 1),)]
            return Case([x], fn(x, axis=axis), args)
        CASES[f"reduce_{_kind}_axis{_axis}".replace(" ", "")] = _make


@case("reduce_sum_keepdims")
def _():
    x = T.dtensor3("x")
    return Case([x], T.sum(x, axis=(0, 2), keepdims=True), T3)


@case("reduce_max_keepdims")
def _():
    x = T.dtensor3("x")
    return Case([x], T.max(x, axis=1, keepdims=True), _NONEMPTY_T3 + [(rnd(0, 2, 3),)])


@case("mean")
def _():
    x = T.dtensor3("x")
    return Case([x], T.mean(x, axis=1), _NONEMPTY_T3)


@case("argmax_axis1")
def _():
    x = T.dtensor3("x")
    return Case([x], T.argmax(x, axis=1), _NONEMPTY_T3 + [(rnd(0, 2, 3),)])


@case("argmin_axis0")
def _():
    x = T.dmatrix("x")
    return Case([x], T.argmin(x, axis=0), [(rnd(3, 4),), (rnd(1, 1),), (rnd(2, 0),)])


@case("argmax_none")
def _():
    x = T.dmatrix("x")
    return Case([x], T.argmax(x), [(rnd(3, 4),), (rnd(1, 1),)])


@case("argmax_keepdims")
def _():
    x = T.dmatrix("x")
    return Case([x], T.argmax(x, axis=1, keepdims=True), [(rnd(3, 4),), (rnd(0, 2),)])


@case("cumsum_axis1")
def _():
    x = T.dmatrix("x")
    return Case([x], T.cumsum(x, axis=1), MATS)


@case("cumsum_flat")
def _():
    x = T.dtensor3("x")
    return Case([x], T.cumsum(x), T3)


@case("cumprod_axis0")
def _():
    x = T.dmatrix("x")
    return Case([x], T.cumprod(x, axis=0), MATS)


# Linear algebra
@case("dot_mm")
def _():
    a, b = T.dmatrices("a", "b")
    return Case([a, b], T.dot(a, b), [(rnd(3, 4), rnd(4, 5)), (rnd(0, 4), rnd(4, 1)),
                                      (rnd(2, 0), rnd(0, 3)), (rnd(1, 1), rnd(1, 1))])


@case("dot_mv")
def _():
    a, v = T.dmatrix("a"), T.dvector("v")
    return Case([a, v], T.dot(a, v), [(rnd(3, 4), rnd(4)), (rnd(0, 4), rnd(4))])


@case("dot_vm")
def _():
    v, a = T.dvector("v"), T.dmatrix("a")
    return Case([v, a], T.dot(v, a), [(rnd(4), rnd(4, 3)), (rnd(0), rnd(0, 2))])


@case("dot_vv")
def _():
    v, w = T.dvectors("v", "w")
    return Case([v, w], T.dot(v, w), [(rnd(4), rnd(4)), (rnd(0), rnd(0))])


@case("dot_t3m")
def _():
    a, b = T.dtensor3("a"), T.dmatrix("b")
    return Case([a, b], T.dot(a, b), [(rnd(2, 3, 4), rnd(4, 5)), (rnd(0, 3, 4), rnd(4, 1))])


@case("matmul_batched")
def _():
    a, b = T.dtensor3s("a", "b")
    return Case([a, b], T.matmul(a, b), [(rnd(2, 3, 4), rnd(2, 4, 5)), (rnd(0, 3, 4), rnd(0, 4, 5)),
                                         (rnd(1, 3, 4), rnd(1, 4, 0))])


@case("matmul_broadcast_batch")
def _():
    a, b = _m((1, None, None), name="a"), T.dtensor3("b")
    return Case([a, b], T.matmul(a, b), [(rnd(1, 3, 4), rnd(5, 4, 2)),
                                         (rnd(1, 3, 4), rnd(0, 4, 2))])


@case("matmul_runtime_broadcast_batch")
def _():
    # Batch lengths of 1 in non-broadcastable dims broadcast at run time, as numpy does.
    a, b = T.dtensor3s("a", "b")
    return Case([a, b], T.matmul(a, b), [(rnd(1, 3, 4), rnd(5, 4, 2)), (rnd(4, 3, 4), rnd(1, 4, 2)),
                                         (rnd(1, 3, 4), rnd(0, 4, 2))])


@case("matmul_matrix_tensor3")
def _():
    a, b = T.dmatrix("a"), T.dtensor4("b")
    return Case([a, b], T.matmul(a, b), [(rnd(3, 4), rnd(2, 5, 4, 2)),
                                         (rnd(0, 4), rnd(1, 2, 4, 2))])


@case("matmul_vector_left")
def _():
    v, b = T.dvector("v"), T.dtensor3("b")
    return Case([v, b], T.matmul(v, b), [(rnd(4), rnd(2, 4, 5)), (rnd(0), rnd(3, 0, 1))])


@case("matmul_vector_right")
def _():
    a, v = T.dtensor3("a"), T.dvector("v")
    return Case([a, v], T.matmul(a, v), [(rnd(2, 3, 4), rnd(4)), (rnd(2, 0, 4), rnd(4))])


@case("tensordot_pairs")
def _():
    a, b = T.dtensor3("a"), T.dmatrix("b")
    return Case([a, b], T.tensordot(a, b, axes=[[2], [0]]), [(rnd(2, 3, 4), rnd(4, 5)),
                                                             (rnd(0, 3, 1), rnd(1, 2))])


@case("tensordot_int_axes")
def _():
    a, b = T.dtensor3s("a", "b")
    return Case([a, b], T.tensordot(a, b, axes=2), [(rnd(2, 3, 4), rnd(3, 4, 5)),
                                                    (rnd(1, 0, 2), rnd(0, 2, 3))])


@case("batched_dot")
def _():
    a, b = T.dtensor3s("a", "b")
    return Case([a, b], T.batched_dot(a, b), [(rnd(2, 3, 4), rnd(2, 4, 5)),
                                              (rnd(0, 3, 4), rnd(0, 4, 5))])


@case("batched_dot_matrices")
def _():
    a, b = T.dmatrices("a", "b")
    return Case([a, b], T.batched_dot(a, b), [(rnd(3, 4), rnd(3, 4)), (rnd(0, 4), rnd(0, 4))])


@case("outer")
def _():
    v, w = T.dvectors("v", "w")
    return Case([v, w], T.outer(v, w), [(rnd(3), rnd(4)), (rnd(0), rnd(2)), (rnd(1), rnd(1))])


@case("fused")
def _():
    from theon.ops import scalar as S
    from theon.ops.fused import Fused, ScalarGraph
    x, y = T.dmatrix("x"), T.drow("y")
    op = Fused(ScalarGraph(("float64",) * 2, ((S.mul, (0, 1)), (S.exp, (2,))), (3,)))
    return Case([x, y], op(x, y), [(rnd(3, 4), rnd(1, 4)), (rnd(0, 2), rnd(1, 2))])


@case("fused_reduce")
def _():
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    x, y = T.dmatrix("x"), T.dcol("y")
    graph = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    op = FusedReduce(graph, "sum", (1,), "float64")
    return Case([x, y], op(x, y), [(rnd(3, 4), rnd(3, 1)), (rnd(0, 2), rnd(0, 1)),
                                   (rnd(2, 0), rnd(2, 1))])


@case("fused_reduce_epilogue")
def _():
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    x, y, b = T.dmatrix("x"), T.dcol("y"), T.dvector("b")
    graph = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    epilogue = ScalarGraph(("float64",) * 2, ((S.sub, (1, 0)),), (2,))
    op = FusedReduce(graph, "sum", (1,), "float64", epilogue=epilogue)
    return Case([x, y, b], op(x, y, b), [(rnd(3, 4), rnd(3, 1), rnd(3)),
                                         (rnd(0, 2), rnd(0, 1), rnd(0))])


@case("fused_reduce_keep")
def _():
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    x, y = T.dmatrix("x"), T.dcol("y")
    graph = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    op = FusedReduce(graph, "max", (0,), "float64", initial=-np.inf, keep=True)
    return Case([x, y], op(x, y), [(rnd(3, 4), rnd(3, 1)), (rnd(0, 2), rnd(0, 1))])


@case("dot_add")
def _():
    a, b, c = T.dmatrix("a"), T.dmatrix("b"), T.dvector("c")
    return Case([a, b, c], DotAdd()(a, b, c), [(rnd(3, 4), rnd(4, 5), rnd(5)),
                                               (rnd(0, 4), rnd(4, 2), rnd(2))])


@case("gemm")
def _():
    z, x, y = T.dmatrix("z"), T.dmatrix("x"), T.dmatrix("y")
    a, b = T.dscalars("a", "b")
    return Case([z, a, x, y, b], Gemm()(z, a, x, y, b),
                [(rnd(3, 5), 0.5, rnd(3, 4), rnd(4, 5), 2.0),
                 (rnd(0, 2), 1.0, rnd(0, 4), rnd(4, 2), -1.0)])


# nnet
@case("softmax")
def _():
    x = T.dmatrix("x")
    return Case([x], T.nnet.softmax(x), MATS)


@case("log_softmax_axis0")
def _():
    x = T.dtensor3("x")
    return Case([x], T.nnet.log_softmax(x, axis=0), T3)


@case("crossentropy_1hot")
def _():
    p, y = T.dmatrix("p"), T.ivector("y")
    return Case([p, y], crossentropy_categorical_1hot(p, y), [
        (rnd(3, 4), ints(0, 3, 1)), (rnd(0, 4), ints()), (rnd(1, 1), ints(0))])


@case("checked_labels")
def _():
    y, p = T.ivector("y"), T.dmatrix("p")
    return Case([y, p], checked_labels(y, p), [
        (ints(0, 3, 1), rnd(3, 4)), (ints(), rnd(0, 4)), (ints(0), rnd(1, 1))])


@case("categorical_crossentropy_onehot")
def _():
    p, t = T.dmatrices("p", "t")
    return Case([p, t], T.nnet.categorical_crossentropy(p, t), PAIRS)


# Indexing: basic (constant and symbolic parts, negative steps, newaxis), advanced, boolean.
@case("subtensor_const_slice")
def _():
    x = T.dmatrix("x")
    return Case([x], x[1:3], MATS)


@case("subtensor_symbolic_slice")
def _():
    x, i, j = T.dmatrix("x"), T.iscalar("i"), T.iscalar("j")
    args = [(rnd(*s), i32(a), i32(b)) for s in ((5, 3), (0, 2), (1, 1))
            for a, b in ((1, -2), (-9, 9), (3, 1), (-1, 0), (0, 1))]
    return Case([x, i, j], x[i:j], args)


@case("subtensor_symbolic_step")
def _():
    x, i, j, k = T.dmatrix("x"), T.iscalar("i"), T.iscalar("j"), T.iscalar("k")
    args = [(rnd(*s), i32(a), i32(b), i32(c)) for s in ((6, 2), (0, 2), (1, 3))
            for a, b, c in ((1, 5, 2), (5, 0, -2), (-1, -7, -1), (0, 9, 3), (9, -9, -3))]
    return Case([x, i, j, k], x[i:j:k, ::-1], args)


@case("subtensor_negative_const_step")
def _():
    x, i = T.dmatrix("x"), T.iscalar("i")
    args = [(rnd(*s), i32(a)) for s in ((6, 2), (0, 2), (1, 1)) for a in (-8, -1, 0, 2, 8)]
    return Case([x, i], x[:i:-2, i:], args)


@case("subtensor_int_and_newaxis")
def _():
    x, i = T.dtensor3("x"), T.iscalar("i")
    return Case([x, i], x[i, None, 1:], [(rnd(2, 3, 4), i32(1)), (rnd(2, 0, 1), i32(-1)),
                                         (rnd(1, 2, 0), i32(0))])


@case("subtensor_scalar_index")
def _():
    x, i = T.dmatrix("x"), T.iscalar("i")
    return Case([x, i], x[i], [(rnd(3, 4), i32(2)), (rnd(1, 0), i32(0))])


@case("advanced_subtensor_rows")
def _():
    x, v = T.dmatrix("x"), T.ivector("v")
    return Case([x, v], x[v], [(rnd(3, 4), ints(0, 2, 2, 1)), (rnd(3, 0), ints(1)),
                               (rnd(3, 4), ints())])


@case("advanced_subtensor_columns")
def _():
    x, v = T.dmatrix("x"), T.ivector("v")
    return Case([x, v], x[:, v], [(rnd(3, 4), ints(0, 3)), (rnd(0, 4), ints(1, 1, 1))])


@case("advanced_subtensor_matrix_index")
def _():
    x, m = T.dmatrix("x"), T.imatrix("m")
    return Case([x, m], x[m], [(rnd(3, 4), ints(0, 1, 2, 0, 1, 2).reshape(2, 3)),
                               (rnd(3, 2), np.zeros((0, 5), "int32"))])


@case("advanced_subtensor_pairs")
def _():
    x, a, b = T.dmatrix("x"), T.ivector("a"), T.ivector("b")
    return Case([x, a, b], x[a, b], [(rnd(3, 4), ints(0, 1, 2), ints(3, 2, 1)),
                                     (rnd(3, 4), ints(), ints())])


@case("advanced_subtensor_runtime_broadcast")
def _():
    x, a, b = T.dmatrix("x"), T.ivector("a"), T.ivector("b")
    return Case([x, a, b], x[a, b], [(rnd(3, 4), ints(1), ints(3, 2, 1)),
                                     (rnd(3, 4), ints(0, 1, 2), ints(2)),
                                     (rnd(3, 4), ints(1), ints())])


@case("advanced_subtensor_broadcast_col")
def _():
    x, c, r = T.dmatrix("x"), _m((None, 1), "int32", "c"), T.ivector("r")
    return Case([x, c, r], x[c, r], [(rnd(3, 4), ints(0, 2).reshape(2, 1), ints(0, 1, 3)),
                                     (rnd(3, 4), np.zeros((0, 1), "int32"), ints(1))])


@case("advanced_subtensor_not_adjacent")
def _():
    x, a, b = T.dtensor3("x"), T.ivector("a"), T.ivector("b")
    return Case([x, a, b], x[a, :, b], [(rnd(2, 3, 4), ints(0, 1, 1), ints(3, 2, 0)),
                                        (rnd(2, 0, 4), ints(1), ints(0))])


@case("advanced_subtensor_with_int")
def _():
    x, v = T.dtensor3("x"), T.ivector("v")
    return Case([x, v], x[1:, 0, v], [(rnd(3, 2, 4), ints(0, 3)), (rnd(1, 1, 1), ints(0, 0, 0))])


@case("advanced_subtensor_bool_mask")
def _():
    x = T.dmatrix("x")
    return Case([x], x[T.gt(x, 1.0)], MATS)


@case("advanced_subtensor_bool_rows")
def _():
    x, m = T.dmatrix("x"), T.bvector("m")
    return Case([x, m], x[T.cast(m, "bool"), 1:], [
        (rnd(3, 4), np.array([1, 0, 1], "int8")), (rnd(0, 2), np.zeros(0, "int8"))])


@case("set_subtensor")
def _():
    x, y = T.dmatrix("x"), T.dvector("y")
    return Case([x, y], T.set_subtensor(x[1:3, 0], y), [(rnd(4, 3), rnd(2)), (rnd(1, 3), rnd(0))])


@case("inc_subtensor_symbolic")
def _():
    x, i, y = T.dmatrix("x"), T.iscalar("i"), T.dscalar("y")
    return Case([x, i, y], T.inc_subtensor(x[i:], y), [(rnd(4, 3), i32(1), 2.0),
                                                       (rnd(0, 3), i32(0), 1.0)])


@case("advanced_inc_subtensor")
def _():
    x, v, y = T.dmatrix("x"), T.ivector("v"), T.dmatrix("y")
    return Case([x, v, y], T.inc_subtensor(x[v], y), [(rnd(3, 4), ints(0, 0, 2), rnd(3, 4)),
                                                      (rnd(3, 0), ints(1), rnd(1, 0))])


@case("advanced_set_subtensor")
def _():
    x, v = T.dmatrix("x"), T.ivector("v")
    return Case([x, v], T.set_subtensor(x[:, v], 0.0), [(rnd(3, 4), ints(0, 3)),
                                                        (rnd(0, 4), ints(2))])


# Control flow, printing, gradient markers, as_op
@case("ifelse")
def _():
    c, x = T.iscalar("c"), T.dmatrix("x")
    return Case([c, x], ifelse(c, x, x[1:, None, 0]), [(i32(1), rnd(3, 4)), (i32(0), rnd(3, 4)),
                                                       (i32(0), rnd(0, 2)), (i32(1), rnd(1, 0))])


@case("ifelse_two_outputs")
def _():
    c, x, y = T.iscalar("c"), T.dmatrix("x"), T.dvector("y")
    outs = ifelse(c, [x, y], [x.T, y[::2]])
    return Case([c, x, y], outs, [(i32(1), rnd(3, 4), rnd(5)), (i32(0), rnd(3, 4), rnd(5)),
                                  (i32(0), rnd(0, 1), rnd(0))])


@case("print")
def _():
    x = T.dmatrix("x")
    return Case([x], Print("x", global_fn=lambda op, value: None)(x), MATS)


@case("transfer")
def _():
    x = T.dmatrix("x")
    return Case([x], x.transfer("cuda"), MATS)


@case("disconnected_grad")
def _():
    x = T.dmatrix("x")
    return Case([x], T.disconnected_grad(x * 2), MATS)


@case("zero_grad")
def _():
    x = T.dmatrix("x")
    return Case([x], T.zero_grad(x * 2), MATS)


@case("grad_clip")
def _():
    x = T.dmatrix("x")
    return Case([x], T.grad_clip(x * 2, -1.0, 1.0), MATS)


@case("grad_scale")
def _():
    x = T.dmatrix("x")
    return Case([x], T.grad_scale(x * 2, 0.5), MATS)


@case("as_op_with_infer_shape")
def _():
    @as_op(itypes=[T.dmatrix], otypes=[T.dvector],
           infer_shape=lambda fgraph, node, shapes: [(shapes[0][0],)])
    def row_sums(a):
        return a.sum(axis=1)
    x = T.dmatrix("x")
    return Case([x], row_sums(x), MATS)


@case("jacobian_map_rows")
def _():
    x = T.dvector("x")
    jac = T.jacobian(T.exp(x) * 2, x)
    assert any(type(n.op).__name__ == "MapRows" for n in _nodes(jac))
    return Case([x], jac, [(rnd(3),), (rnd(1),)])


# Scan (scan/basic.py): a state fed back with tap -1, taps [-2, -1] with a map output, until.
@case("scan_state")
def _():
    a, k = T.dvector("a"), T.iscalar("k")
    out, _ = theano.scan(lambda prev, a: prev * a, outputs_info=T.ones_like(a),
                         non_sequences=a, n_steps=k)
    return Case([a, k], out, [(rnd(3), i32(4)), (rnd(0), i32(2)), (rnd(1), i32(0))])


@case("scan_taps_and_map")
def _():
    x, h0 = T.dmatrix("x"), T.dmatrix("h0")
    outs, _ = theano.scan(lambda x_tm1, x_t, h_tm2, h_tm1: [h_tm2 + h_tm1 * x_t, x_tm1.sum()],
                          sequences=dict(input=x, taps=[-1, 0]),
                          outputs_info=[dict(initial=h0, taps=[-2, -1]), None])
    return Case([x, h0], outs, [(rnd(4, 3), rnd(2, 3)), (rnd(1, 3), rnd(3, 3)),
                                (rnd(5, 1), rnd(2, 1))])


@case("scan_until")
def _():
    lim = T.dscalar("lim")
    out, _ = theano.scan(lambda p, lim: (p * 2, theano.scan_module.until(p * 2 > lim)),
                         outputs_info=T.constant(1.0, dtype="float64"), non_sequences=lim,
                         n_steps=50)
    return Case([lim], out, [(np.float64(45),), (np.float64(0),)])


# Extra ops (ops/extra.py): sort, roll, diagonals, triangles.
@case("sort_axis0")
def _():
    x = T.dmatrix("x")
    return Case([x], T.sort(x, axis=0), MATS)


@case("argsort_flat")
def _():
    x = T.dtensor3("x")
    return Case([x], T.argsort(x, axis=None), T3)


@case("roll_symbolic_shift")
def _():
    x, s = T.dmatrix("x"), T.iscalar("s")
    return Case([x, s], T.roll(x, s, axis=-1), [(rnd(3, 4), i32(2)), (rnd(0, 4), i32(-1)),
                                                (rnd(1, 1), i32(5)), (rnd(3, 0), i32(1))])


@case("diag_of_vector")
def _():
    v = T.dvector("v")
    return Case([v], T.diag(v, -2), [(rnd(3),), (rnd(0),), (rnd(1),)])


@case("diag_of_matrix")
def _():
    x = T.dmatrix("x")
    return Case([x], T.diag(x, 1), MATS + [(rnd(4, 2),)])


@case("diagonal_3d")
def _():
    x = T.dtensor3("x")
    return Case([x], T.diagonal(x, -1, 2, 0), T3 + [(rnd(5, 2, 3),)])


@case("tril")
def _():
    x = T.dmatrix("x")
    return Case([x], T.tril(x, 1), MATS)


@case("triu_3d")
def _():
    x = T.dtensor3("x")
    return Case([x], T.triu(x, -1), T3)


# Linear algebra (ops/linalg.py): square matrices, symmetric positive definite where needed.
def _spd(n):
    a = rnd(n, n)
    return a @ a.T + n * np.eye(n)


SQUARE = [(_spd(3),), (_spd(1),), (_spd(5),)]


@case("matrix_inverse")
def _():
    x = T.dmatrix("x")
    return Case([x], T.nlinalg.matrix_inverse(x), SQUARE)


@case("det")
def _():
    x = T.dmatrix("x")
    return Case([x], T.nlinalg.det(x), SQUARE)


@case("eigh")
def _():
    x = T.dmatrix("x")
    return Case([x], list(T.nlinalg.eigh(x)), SQUARE)


@case("cholesky")
def _():
    x = T.dmatrix("x")
    return Case([x], T.slinalg.cholesky(x, lower=False), SQUARE)


@case("solve")
def _():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    return Case([a, b], T.slinalg.solve_lower_triangular(a, b),
                [(_spd(3), rnd(3, 2)), (_spd(1), rnd(1, 4)), (_spd(2), rnd(2, 0))])


RECTS = [(rnd(4, 3),), (rnd(2, 5),), (rnd(1, 1),)]


@case("pinv")
def _():
    x = T.dmatrix("x")
    return Case([x], T.nlinalg.pinv(x), RECTS)


@case("svd")
def _():
    x = T.dmatrix("x")
    return Case([x], list(T.nlinalg.svd(x, full_matrices=False)), RECTS)


@case("svd_full")
def _():
    x = T.dmatrix("x")
    return Case([x], list(T.nlinalg.svd(x)), RECTS)


@case("qr")
def _():
    x = T.dmatrix("x")
    return Case([x], list(T.nlinalg.qr(x)), RECTS)


@case("qr_r")
def _():
    x = T.dmatrix("x")
    return Case([x], T.nlinalg.qr(x, "r"), RECTS)


# Convolution: the forward op and its two gradient ops, 2-D and 3-D, symbolic lengths.
def _conv_ops(nd):
    from theon.tensor.nnet import abstract_conv as A
    if nd == 2:
        return T.nnet.conv2d, A.AbstractConv2d_gradInputs, A.AbstractConv2d_gradWeights
    return T.nnet.conv3d, A.AbstractConv3d_gradInputs, A.AbstractConv3d_gradWeights


@case("conv2d")
def _():
    x, w = _m((None,) * 4), _m((None,) * 4)
    return Case([x, w], T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 1)),
                [(rnd(2, 3, 7, 6), rnd(4, 3, 3, 2)), (rnd(0, 1, 1, 1), rnd(2, 1, 1, 1))])


@case("conv2d_grad_inputs")
def _():
    w, dy, s = _m((None,) * 4), _m((None,) * 4), T.lvector("s")
    op = _conv_ops(2)[1](border_mode="full", num_groups=2)
    return Case([w, dy, s], op(w, dy, s), [(rnd(4, 1, 3, 2), rnd(2, 4, 9, 7), ints(7, 6))])


@case("conv2d_grad_weights")
def _():
    x, dy = _m((None,) * 4), _m((None,) * 4)
    op = _conv_ops(2)[2](subsample=(2, 2))
    return Case([x, dy], op(x, dy, (3, 2)), [(rnd(2, 3, 7, 6), rnd(2, 5, 3, 3))])


@case("conv3d")
def _():
    x, w = _m((None,) * 5), _m((None,) * 5)
    return Case([x, w], T.nnet.conv3d(x, w, border_mode=(1, 0, 2), filter_dilation=(2, 1, 1)),
                [(rnd(1, 2, 4, 3, 5), rnd(3, 2, 2, 2, 3))])


@case("conv3d_grad_inputs")
def _():
    w, dy = _m((None,) * 5), _m((None,) * 5)
    op = _conv_ops(3)[1](border_mode="half")
    return Case([w, dy], op(w, dy, (3, 4, 2)), [(rnd(2, 3, 1, 3, 1), rnd(1, 2, 3, 4, 2))])


@case("conv3d_grad_weights")
def _():
    x, dy = _m((None,) * 5), _m((None,) * 5)
    op = _conv_ops(3)[2](subsample=(1, 2, 1))
    return Case([x, dy], op(x, dy, (2, 2, 2)), [(rnd(1, 2, 4, 5, 3), rnd(1, 3, 3, 2, 2))])


# Pooling (ops/pool.py): the forward op and its gradient ops, symbolic lengths and windows.
def _pool():
    from theon.tensor.signal import pool
    return pool


@case("pool_2d")
def _():
    x = _m((None,) * 4)
    return Case([x], _pool().pool_2d(x, (3, 2), ignore_border=False, stride=(2, 1)),
                [(rnd(2, 3, 7, 5),), (rnd(1, 1, 1, 1),), (rnd(0, 2, 4, 4),)])


@case("pool_3d_padded_symbolic_window")
def _():
    x, ws = _m((None,) * 4), T.lvector("ws")
    out = _pool().Pool(True, "average_inc_pad", 3)(x, ws, (2, 1, 2), (1, 0, 1))
    return Case([x, ws], out, [(rnd(2, 5, 4, 6), np.array([2, 3, 2]))])


@case("max_pool_grad")
def _():
    x, gz = _m((None,) * 3), _m((None,) * 3)
    z = _pool().pool_2d(x, (2, 2), ignore_border=True)
    return Case([x, gz], _pool().MaxPoolGrad(True)(x, z, gz, (2, 2)),
                [(rnd(2, 5, 4), rnd(2, 2, 2))])


@case("average_pool_grad")
def _():
    x, gz = _m((None,) * 3), _m((None,) * 3)
    return Case([x, gz], _pool().AveragePoolGrad(False, "sum")(x, gz, (2, 3)),
                [(rnd(2, 5, 4), rnd(2, 3, 2))])


@case("max_pool_grad_grad")
def _():
    x, ggx = _m((None,) * 3), _m((None,) * 3)
    z = _pool().pool_2d(x, (2, 2), ignore_border=True, pad=(1, 1))
    return Case([x, ggx], _pool().DownsampleFactorMaxGradGrad(True)(x, z, ggx, (2, 2), None,
                                                                   (1, 1)),
                [(rnd(2, 5, 4), rnd(2, 5, 4))])


# extra_ops (ops/extra.py): lengths from the values (bincount, nonzero) or from v (searchsorted)
@case("bincount")
def _():
    x, w = T.ivector("x"), T.dvector("w")
    return Case([x, w], T.extra_ops.bincount(x, w, minlength=3),
                [(ints(4, 0, 4), rnd(3)), (ints(), rnd(0)), (ints(1), rnd(1))])


@case("nonzero")
def _():
    x = _m()
    return Case([x], T.extra_ops.nonzero(x, return_matrix=True),
                [(np.array([[0.0, 1.5], [2.0, 0.0], [0.0, 0.0]]),), (rnd(0, 3),)])


@case("searchsorted")
def _():
    x, v = T.dvector("x"), _m()
    return Case([x, v], T.extra_ops.searchsorted(x, v, side="right"),
                [(np.array([1.0, 2.0, 3.0]), rnd(2, 4)), (np.array([1.0]), rnd(0, 2))])


# -- exemptions -----------------------------------------------------------------------------------
# Op classes without a case, with the reason.
# -- random draws (ops/random.py): the ops applied to a state given as an input, so that no
# shared variable's default update draws again in the shape graph

def _rs_state(seed=0):
    from theon.ops.random import encode_random_state
    return encode_random_state(np.random.RandomState(seed))


@case("mrg_uniform")
def _():
    from theon.ops.random import MRGUniform, mrg_substreams
    st, x = T.imatrix("st"), T.dmatrix("x")
    states = mrg_substreams(np.full(6, 5, dtype="int32"), 4)
    return Case([st, x], MRGUniform("float64", 2)(st, x.shape), [(states, m) for (m,) in MATS])


@case("random_function_sized")
def _():
    from theon.ops.random import RandomFunction
    st, x = T.lvector("st"), T.dmatrix("x")
    return Case([st, x], RandomFunction("uniform", "float64", 2)(st, x.shape, 0., 1.),
                [(_rs_state(), m) for (m,) in MATS])


@case("random_function_shape_of_args")
def _():
    from theon.ops.random import RandomFunction
    st, x, r = T.lvector("st"), T.dmatrix("x"), T.drow("r")
    out = RandomFunction("normal", "float64", 2)(st, np.zeros(0, dtype="int64"), x, r)
    return Case([st, x, r], out, [(_rs_state(), rnd(3, 4), rnd(1, 4)),
                                  (_rs_state(), rnd(1, 4), rnd(1, 4))])


@case("random_function_permutation")
def _():
    from theon.ops.random import RandomFunction
    st, n, x = T.lvector("st"), T.lscalar("n"), T.dvector("x")
    out = RandomFunction("permutation", "int64", 2, ndim_added=1)(st, x.shape, n)
    return Case([st, n, x], out, [(_rs_state(), 5, rnd(3)), (_rs_state(), 0, rnd(2))])


@case("multinomial_from_uniform")
def _():
    from theon.ops.random import MultinomialFromUniform
    p, u = T.dmatrix("p"), T.dvector("u")
    pv = np.array([[.2, .8], [.5, .5], [1., 0.]])
    return Case([p, u], MultinomialFromUniform("int64")(p, u, 2),
                [(pv, np.linspace(.1, .9, 6))])


@case("choice_from_uniform")
def _():
    from theon.ops.random import ChoiceFromUniform
    p, u, n = T.dmatrix("p"), T.dvector("u"), T.lscalar("n")
    pv = np.array([[.2, .3, .5], [.5, .25, .25]])
    return Case([p, u, n], ChoiceFromUniform("int64")(p, u, n),
                [(pv, np.linspace(.1, .9, 4), 2), (pv, np.linspace(.1, .9, 2), 1)])


@case("truncated_join")
def _():
    from theon.ops.random import TruncatedJoin
    z0, z1, c, s, r = T.dvectors("z0", "z1", "c", "s", "r")
    return Case([z0, z1, c, s, r], TruncatedJoin()(z0, z1, c, s, r),
                [(np.array([0.5, 3., -1.]), np.array([-2.5, 1.]), rnd(3), rnd(2), rnd(2))])


NO_CASE = {
    "GradModifier": "abstract base of DisconnectedGrad, ZeroGrad, GradClip and GradScale",
    "_PoolBase": "abstract base of the pooling ops, each of which has a case",
    "MapRows": "covered by jacobian_map_rows, whose output is a Reshape of the MapRows",
    "ShapeCheck": "made only by the shape rewrites; tested in tests/ops/test_audit_indexing.py",
}
# Ops whose output shape cannot be known without computing them: the shape graph may keep them.
NEEDS_OUTPUT = {
    "MapRows": "the length of each row comes from an inner graph run at call time",
    "Scan": "the row lengths of a map output (None in outputs_info) and the number of steps "
            "of a loop with until come from the inner graph run at call time",
}


# -- helpers --------------------------------------------------------------------------------------

def _nodes(outs):
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [v.owner for v in ancestors(outs) if v.owner is not None]


def _outputs(c: Case) -> list:
    return list(c.out) if isinstance(c.out, (list, tuple)) else [c.out]


def _tested_node(c: Case):
    return _outputs(c)[0].owner


def _needs_output(node) -> bool:
    return any(type(n.op).__name__ in NEEDS_OUTPUT for n in _nodes(node.outputs))


def _as_int64(entry):
    return T.cast(T.as_tensor_variable(entry), "int64")


def _build(name):
    c = CASES[name]()
    outs = _outputs(c)
    values = theano.function(c.inputs, outs, mode=FAST_COMPILE, on_unused_input="ignore")
    expected = [[tuple(np.shape(v)) for v in values(*args)] for args in c.argsets]
    return c, outs, expected


# -- the table-driven tests -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_shape_feature_matches_runtime(name):
    """function(inputs, out.shape) gives the run-time shape, without computing the op."""
    c, outs, expected = _build(name)
    f = theano.function(c.inputs, [o.shape for o in outs], on_unused_input="ignore")
    for args, want in zip(c.argsets, expected):
        got = [tuple(int(n) for n in s) for s in f(*args)]
        assert got == want, f"{name}{[np.shape(a) for a in args]}: {got} != {want}"
    node = _tested_node(c)
    if _needs_output(node):
        return
    compiled = f.maker.fgraph.toposort()
    out_types = {o.type for o in node.outputs}
    offenders = [n for n in compiled if n.op == node.op and
                 any(o.type in out_types for o in n.outputs)]
    assert not offenders, (f"{name}: the shape graph still computes {node.op}:\n"
                           + theano.printing.debugprint(f, file="str"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_infer_shape_called_directly(name):
    """The op's own infer_shape, compiled without rewrites, against the run-time shapes."""
    c, outs, expected = _build(name)
    node = _tested_node(c)
    shapes = call_infer_shape(node.op, None, node, input_shapes(node))
    assert len(shapes) == len(node.outputs)
    for shp, out in zip(shapes, node.outputs):
        assert len(shp) == out.ndim, f"{name}: {len(shp)} entries for {out.type}"
    entries = [_as_int64(e) for shp in shapes for e in shp]
    if not _needs_output(node):
        own = set(node.outputs)
        for e in entries:
            assert not any(v in own for v in ancestors([e], stop=node.inputs)), (
                f"{name}: infer_shape of {node.op} refers to its own output")
    if not entries:
        return
    f = theano.function(c.inputs, entries, mode=theano.Mode(optimizer=None),
                        on_unused_input="ignore")
    index = [next(i for i, v in enumerate(outs) if v is o) for o in node.outputs]
    for args, want in zip(c.argsets, expected):
        flat = [int(v) for v in f(*args)]
        got, k = [], 0
        for out in node.outputs:
            got.append(tuple(flat[k:k + out.ndim]))
            k += out.ndim
        assert got == [want[i] for i in index], f"{name}{[np.shape(a) for a in args]}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_static_shape_matches_runtime(name):
    """The static shape in each output's type never contradicts the run-time shape."""
    c, outs, expected = _build(name)
    for want in expected:
        for out, shp in zip(outs, want):
            assert len(shp) == out.ndim
            for s, n in zip(out.type.shape, shp):
                assert s is None or s == n, f"{name}: static {out.type.shape}, run time {shp}"


def test_every_op_has_a_case():
    covered = set()
    for name in CASES:
        c = CASES[name]()
        covered.add(type(_tested_node(c).op).__name__)
        for n in _nodes(_outputs(c)):
            if type(n.op).__name__ in NO_CASE:
                covered.add(type(n.op).__name__)
    ours = {cls.__name__ for cls in OP_CLASSES if cls.__module__.startswith("theon.")
            and not cls.__module__.startswith("theon.tests")}
    missing = sorted(ours - covered - set(NO_CASE))
    assert not missing, f"Op classes with no infer_shape case and no NO_CASE entry: {missing}"
    assert set(NO_CASE) <= ours, f"stale NO_CASE entries: {sorted(set(NO_CASE) - ours)}"


def test_ops_with_infer_shape_implement_it():
    """Every concrete op either implements infer_shape or is listed as needing its output."""
    for cls in OP_CLASSES:
        if not cls.__module__.startswith("theon.") or cls.__name__ in NO_CASE:
            continue
        assert "infer_shape" in {k for c in cls.__mro__[:-1] if c.__name__ != "Op"
                                 for k in vars(c)}, f"{cls.__name__} has no infer_shape"


# -- static and folded shapes ---------------------------------------------------------------------

def _ops(f):
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def test_reshape_static_length_is_a_constant():
    x = T.matrix("x")
    f = theano.function([x], x.reshape((2, -1)).shape[0])
    assert isinstance(f.maker.fgraph.outputs[0], Constant)
    assert "Reshape" not in _ops(f)
    assert int(f(np.zeros((4, 3), dtype=theano.config.floatX))) == 2


def test_reshape_inferred_length_needs_no_reshape():
    x = T.matrix("x")
    f = theano.function([x], x.reshape((2, -1)).shape)
    assert "Reshape" not in _ops(f)
    assert tuple(f(np.zeros((4, 3), dtype=theano.config.floatX))) == (2, 6)


def test_zeros_shape_folds_to_a_constant():
    f = theano.function([], T.zeros((3, 4)).shape)
    assert isinstance(f.maker.fgraph.outputs[0], Constant)
    assert f.maker.fgraph.toposort() == []
    assert tuple(f()) == (3, 4)


def test_dot_with_shared_of_static_shape_needs_only_x_shape():
    x = T.dmatrix("x")
    W = theano.shared(np.zeros((5, 2)), name="W", shape=(5, 2))
    f = theano.function([x], T.dot(x, W).shape)
    assert "Dot" not in _ops(f)
    assert set(_ops(f)) <= {"Shape", "Subtensor", "MakeVector"}
    assert [v for v in f.maker.fgraph.inputs if f.maker.fgraph.clients.get(v)] == [x]
    assert tuple(f(np.zeros((7, 5)))) == (7, 2)
    g = theano.function([x], T.dot(x, W).shape[1])
    assert isinstance(g.maker.fgraph.outputs[0], Constant) and int(g(np.zeros((7, 5)))) == 2


def test_dot_with_shared_first_length_is_x_length():
    x = T.dmatrix("x")
    W = theano.shared(np.zeros((5, 2)), name="W")
    f = theano.function([x], T.dot(x, W).shape[0])
    assert _ops(f) == ["Shape", "Subtensor"]
    assert f.maker.fgraph.toposort()[0].inputs[0] is x
    assert int(f(np.zeros((7, 5)))) == 7


def test_shape_through_a_chain_of_ops():
    x, y = T.dmatrices("x", "y")
    out = x
    for k in range(12):
        out = T.tanh(out) * y if k % 2 else T.exp(out).T + 1
    f = theano.function([x, y], out.shape)
    ops = set(_ops(f))
    # ShapeCheck: x and y must broadcast, which only their run-time lengths can tell
    assert ops <= {"Shape", "Subtensor", "MakeVector", "ShapeCheck"}, ops
    assert tuple(f(np.zeros((3, 3)), np.zeros((3, 3)))) == (3, 3)
    with pytest.raises(ValueError):
        f(np.zeros((3, 3)), np.zeros((4, 3)))


def test_shape_of_a_shape_computation_is_static():
    x = T.dtensor3("x")
    f = theano.function([x], T.shape(T.shape(x)))
    assert isinstance(f.maker.fgraph.outputs[0], Constant)
    assert tuple(f(np.zeros((1, 2, 3)))) == (3,)


def test_shape_of_make_vector_entries():
    x = T.dmatrix("x")
    n = T.lscalar("n")
    f = theano.function([x, n], T.reshape(x, T.stack([n, x.shape[0]]), ndim=2).shape[1])
    assert "Reshape" not in _ops(f)
    assert int(f(np.zeros((3, 4)), 4)) == 3


def test_shape_rules_keep_errors_of_the_values():
    """Only the shape is computed: an op's value (and its run-time checks) is not needed."""
    x = T.dmatrix("x")
    out = x.reshape((5, -1))
    f = theano.function([x], out.shape[0])
    assert int(f(np.zeros((2, 3)))) == 5  # reshape itself would fail; its shape is known
    with pytest.raises(ValueError):
        theano.function([x], out)(np.zeros((2, 3)))


def test_no_shape_inference_in_fast_compile():
    x = T.dmatrix("x")
    f = theano.function([x], T.exp(x).shape, mode="FAST_COMPILE")
    assert "Elemwise" in _ops(f)
    assert tuple(f(np.zeros((2, 3)))) == (2, 3)


def test_reshape_infer_shape_with_static_pieces():
    x, n = T.dmatrix("x"), T.lscalar("n")
    node = Reshape(3)(x, T.stack([n, -1, 2])).owner
    shapes = call_infer_shape(node.op, None, node, input_shapes(node))
    assert shapes[0][2] == 2
    f = theano.function([x, n], [_as_int64(e) for e in shapes[0]])
    assert [int(v) for v in f(np.zeros((4, 3)), 3)] == [3, 2, 2]


def test_call_infer_shape_accepts_theano_signature():
    """User ops may write infer_shape(self, node, shapes) (Theano) or with fgraph (PyTensor)."""
    class Old(theano.Op):
        __props__ = ()

        def make_node(self, x):
            x = T.as_tensor_variable(x)
            return theano.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, out):
            out[0][0] = inputs[0] * 2

        def infer_shape(self, node, shapes):
            return shapes

    x = T.dmatrix("x")
    f = theano.function([x], Old()(x).shape)
    assert "Old" not in _ops(f)
    assert tuple(f(np.zeros((2, 5)))) == (2, 5)


def test_matmul_and_make_vector_classes_are_in_the_table():
    names = {type(_tested_node(CASES[n]()).op) for n in CASES}
    assert MatMul in names and MakeVector in names


def test_op_without_infer_shape_is_computed_for_its_shape():
    """as_op without infer_shape: x.shape falls back on computing the op, and is right."""
    @as_op(itypes=[T.dmatrix], otypes=[T.dvector])
    def row_max(a):
        return a.max(axis=1)

    x = T.dmatrix("x")
    out = row_max(x)
    node = out.owner
    with pytest.raises(NotImplementedError):
        call_infer_shape(node.op, None, node, input_shapes(node))
    f = theano.function([x], [out.shape, (out * 2).shape[0]])
    assert "FromFunctionOp" in _ops(f)
    got = f(np.zeros((3, 2)))
    assert tuple(got[0]) == (3,) and int(got[1]) == 3
