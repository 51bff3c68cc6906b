"""Gradients of every op, checked against finite differences (``verify_grad``).

Table-driven: every row of ``theon.ops.scalar.TABLE`` is either differentiable (``DIFF_ROWS``:
first- and second-order ``verify_grad`` at points inside its domain, away from kinks) or has a
zero gradient by definition (``ZERO_ROWS``: checked to give zeros). Structural ops get a case each
in ``STRUCTURAL``; completeness tests fail when a table row or an Op class has no entry here and is
not listed, with a reason, in ``NO_GRADIENT``.
"""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import GradientError, verify_grad
from theon.ops import scalar as S
from theon.ops.base import theon_op_classes
from theon.ops.blas import DotAdd, Gemm
from theon.ops.elemwise import ELEMWISE as E
from theon.symbolic.graph import toposort

OP_CLASSES = theon_op_classes()

_rng = np.random.default_rng(1234)


def U(lo, hi, shape=(3, 4)):
    return _rng.uniform(lo, hi, size=shape)


def away_from_zero(shape=(3, 4), lo=0.2, hi=2.0):
    return U(lo, hi, shape) * _rng.choice([-1.0, 1.0], size=shape)


def fixed(value, shape=(3, 4)):
    return np.full(shape, float(value))


# -- the scalar table -------------------------------------------------------------------------
# name -> a function returning the points (one array per input) inside the op's domain.
DIFF_ROWS = {
    "add": lambda: [U(-2, 2), U(-2, 2)],
    "sub": lambda: [U(-2, 2), U(-2, 2)],
    "mul": lambda: [U(-2, 2), U(-2, 2)],
    "true_div": lambda: [U(-2, 2), U(0.5, 2) * _rng.choice([-1.0, 1.0], size=(3, 4))],
    # x mod y, away from the jumps at multiples of y
    "mod": lambda: [np.arange(12.0).reshape(3, 4) * 1.3 + U(0.2, 1.0), fixed(1.3)],
    "pow": lambda: [U(0.5, 2), U(-1.5, 1.5)],
    "neg": lambda: [U(-2, 2)],
    "abs": lambda: [away_from_zero()],
    "exp": lambda: [U(-2, 2)],
    "exp2": lambda: [U(-2, 2)],
    "log": lambda: [U(0.5, 2)],
    "log2": lambda: [U(0.5, 2)],
    "log10": lambda: [U(0.5, 2)],
    "log1p": lambda: [U(-0.5, 2)],
    "expm1": lambda: [U(-2, 2)],
    "sqrt": lambda: [U(0.5, 2)],
    "sqr": lambda: [U(-2, 2)],
    "inv": lambda: [U(0.5, 2) * _rng.choice([-1.0, 1.0], size=(3, 4))],
    "sin": lambda: [U(-2, 2)],
    "cos": lambda: [U(-2, 2)],
    "tan": lambda: [U(-1, 1)],
    "arcsin": lambda: [U(-0.8, 0.8)],
    "arccos": lambda: [U(-0.8, 0.8)],
    "arctan": lambda: [U(-2, 2)],
    "arctan2": lambda: [U(0.5, 2), U(-2, 2)],
    "sinh": lambda: [U(-2, 2)],
    "cosh": lambda: [U(-2, 2)],
    "tanh": lambda: [U(-2, 2)],
    "arcsinh": lambda: [U(-2, 2)],
    "arccosh": lambda: [U(1.5, 3)],
    "arctanh": lambda: [U(-0.8, 0.8)],
    "sigmoid": lambda: [U(-3, 3)],
    "softplus": lambda: [U(-3, 3)],
    "erf": lambda: [U(-1.5, 1.5)],
    "gamma": lambda: [U(0.5, 3)],
    "gammaln": lambda: [U(0.5, 3)],
    "psi": lambda: [U(0.5, 3)],
    "tri_gamma": None,  # its derivative (polygamma of order 2) is not a row: no gradient
    "erfinv": lambda: [U(-0.8, 0.8)],
    "erfcinv": lambda: [U(0.2, 1.8)],
    # no ties between the operands
    "maximum": lambda: [np.arange(12.0).reshape(3, 4) % 5, fixed(2.5) + U(-0.2, 0.2)],
    "minimum": lambda: [np.arange(12.0).reshape(3, 4) % 5, fixed(2.5) + U(-0.2, 0.2)],
    # x on both sides of [lo, hi], never at the bounds
    "clip": lambda: [np.linspace(-2.05, 2.05, 12).reshape(3, 4), fixed(-1.0), fixed(1.0)],
    "switch": None,  # the condition is boolean; see test_switch_row
    "identity": lambda: [U(-2, 2)],
}

# Rows whose gradient is zero by definition: name -> (input dtypes, points).
_F = "float64"
ZERO_ROWS = {
    "int_div": ((_F, _F), lambda: [U(0.1, 5), fixed(1.7)]),
    "sgn": ((_F,), lambda: [away_from_zero()]),
    "floor": ((_F,), lambda: [U(-3, 3)]),
    "ceil": ((_F,), lambda: [U(-3, 3)]),
    "trunc": ((_F,), lambda: [U(-3, 3)]),
    "round_half_to_even": ((_F,), lambda: [U(-3, 3)]),
    "round_half_away_from_zero": ((_F,), lambda: [U(-3, 3)]),
    "eq": ((_F, _F), lambda: [U(-1, 1), U(-1, 1)]),
    "neq": ((_F, _F), lambda: [U(-1, 1), U(-1, 1)]),
    "lt": ((_F, _F), lambda: [U(-1, 1), U(-1, 1)]),
    "le": ((_F, _F), lambda: [U(-1, 1), U(-1, 1)]),
    "gt": ((_F, _F), lambda: [U(-1, 1), U(-1, 1)]),
    "ge": ((_F, _F), lambda: [U(-1, 1), U(-1, 1)]),
    "isnan": ((_F,), lambda: [U(-1, 1)]),
    "isinf": ((_F,), lambda: [U(-1, 1)]),
    "and_": (("int32", "int32"), lambda: [np.arange(12).reshape(3, 4), fixed(6)]),
    "or_": (("int32", "int32"), lambda: [np.arange(12).reshape(3, 4), fixed(6)]),
    "xor": (("int32", "int32"), lambda: [np.arange(12).reshape(3, 4), fixed(6)]),
    "invert": (("int32",), lambda: [np.arange(12).reshape(3, 4)]),
}

# Rows with a non-default second order, or a reason to skip it: name -> reason.
NO_SECOND_ORDER = {"psi": "its gradient is tri_gamma, which has none"}


def _second_order(op):
    def fn(*xs):
        return T.grad((op(*xs) * T.constant(np.linspace(0.5, 1.5, 12).reshape(3, 4))).sum(),
                      xs[0])
    return fn


@pytest.mark.parametrize("name", sorted(k for k, v in DIFF_ROWS.items() if v is not None))
def test_table_row_first_order(name):
    verify_grad(lambda *xs: E[name](*xs), DIFF_ROWS[name]())


@pytest.mark.parametrize("name", sorted(k for k, v in DIFF_ROWS.items()
                                        if v is not None and k not in NO_SECOND_ORDER))
def test_table_row_second_order(name):
    verify_grad(_second_order(E[name]), DIFF_ROWS[name](), n_tests=1)


def test_switch_row():
    cond = np.array([[True, False, True, False]] * 3)
    a, b = U(-2, 2), U(-2, 2)
    verify_grad(lambda a, b: T.switch(cond, a * a, b * 3), [a, b])
    verify_grad(lambda a, b: T.grad(T.switch(cond, a * a * a, b * b).sum(), a), [a, b],
                n_tests=1)
    c = T.matrix("c")
    x = T.matrix("x")
    g = T.grad(T.switch(T.gt(c, 0), x, 2 * x).sum(), [x, c])
    gx, gc = theano.function([c, x], g)(np.array([[1.0, -1.0]]), np.ones((1, 2)))
    np.testing.assert_allclose(gx, [[1.0, 2.0]])
    np.testing.assert_allclose(gc, [[0.0, 0.0]])


@pytest.mark.parametrize("name", sorted(ZERO_ROWS))
def test_zero_gradient_rows(name):
    dtypes, points = ZERO_ROWS[name]
    pts = points()
    inputs = [T.TensorType(dt, shape=(None, None))(f"in{k}") for k, dt in enumerate(dtypes)]
    out = E[name](*inputs)
    cost = T.cast(out, "float64").sum()
    float_inputs = [v for v in inputs if v.dtype.startswith("float")]
    wrt = float_inputs or inputs
    grads = T.grad(cost, wrt)
    # also through a float path, which must not be disturbed
    if float_inputs:
        grads2 = T.grad(cost + (float_inputs[0] * 2).sum(), float_inputs[0])
    f = theano.function(inputs, grads + ([grads2] if float_inputs else []))
    values = f(*[np.asarray(p, dtype=dt) for p, dt in zip(pts, dtypes)])
    for v, w in zip(values[:len(wrt)], wrt):
        assert v.shape == (3, 4)
        assert np.all(v == 0), f"{name}: gradient w.r.t. {w} is not zero"
    if float_inputs:
        np.testing.assert_array_equal(values[-1], np.full((3, 4), 2.0))
    # and the second order of a zero gradient is zero as well (no error)
    if float_inputs:
        gg = T.grad((T.grad(cost, float_inputs[0]) * float_inputs[0]).sum(), float_inputs[0],
                    disconnected_inputs="ignore")
        v = theano.function(inputs, gg, on_unused_input="ignore")(
            *[np.asarray(p, dtype=dt) for p, dt in zip(pts, dtypes)])
        assert np.all(v == 0)


def test_table_is_complete():
    listed = set(DIFF_ROWS) | set(ZERO_ROWS)
    missing = sorted(set(S.TABLE) - listed)
    assert not missing, f"scalar rows with no gradient test and no zero-gradient entry: {missing}"
    assert not set(DIFF_ROWS) & set(ZERO_ROWS)
    for name in ZERO_ROWS:
        assert S.TABLE[name].grad is not None


def test_cast_chain():
    """float64 -> float32 -> float64: the gradient is cast back, within float32 precision."""
    verify_grad(lambda x: T.cast(T.cast(x, "float32") * 2, "float64") * x, [U(-2, 2)],
                eps=1e-2, abs_tol=1e-3, rel_tol=1e-3)
    x = T.matrix("x")
    g = T.grad(T.cast(T.cast(x, "float32") * 3, "float64").sum(), x)
    assert g.dtype == "float64"
    np.testing.assert_allclose(theano.function([x], g)(np.ones((2, 2))), np.full((2, 2), 3.0))
    # int casts carry no gradient
    g = T.grad((T.cast(T.cast(x, "int32"), "float64") + x).sum(), x)
    np.testing.assert_allclose(theano.function([x], g)(np.full((2, 2), 1.5)), np.ones((2, 2)))


def test_verify_grad_detects_a_wrong_gradient():
    with pytest.raises(GradientError):
        verify_grad(lambda x: x * T.zero_grad(x), [U(-2, 2)])


# -- structural ops ------------------------------------------------------------------------------

def _r(*shape):
    return _rng.uniform(-2, 2, size=shape)


def _pos(*shape):
    return _rng.uniform(0.5, 1.5, size=shape)


def _signed(*shape):
    return _rng.uniform(0.3, 1.5, size=shape) * _rng.choice([-1.0, 1.0], size=shape)


def _pool():
    from theon.tensor.signal import pool
    return pool


def _spd(n: int) -> np.ndarray:
    """A symmetric positive definite matrix with distinct eigenvalues."""
    a = _rng.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


def _distinct(*shape):
    """Entries far apart (no ties for max/min/sort-like ops)."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)


_Y = np.array([0, 3, 1], dtype="int32")

def _fused_op():
    from theon.ops import scalar as S
    from theon.ops.fused import Fused, ScalarGraph
    steps = ((S.mul, (0, 1)), (S.add, (3, 2)), (S.tanh, (4,)), (S.true_div, (5, 0)))
    return Fused(ScalarGraph(("float64",) * 3, steps, (6,)))


def _fused_reduce_op():
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    graph = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    return FusedReduce(graph, "sum", (1,), "float64")


def _fused_reduce_epilogue_op():
    """sum(exp(x - c), axis=1) then (b - r * w): a reduction with an epilogue."""
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    graph = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    epilogue = ScalarGraph(("float64",) * 3, ((S.mul, (0, 2)), (S.sub, (1, 3))), (4,))
    return FusedReduce(graph, "sum", (1,), "float64", epilogue=epilogue)


def _fused_reduce_keep(x, c, b, w):
    """Both outputs of sum(exp(x - c), axis=1) -> (b - r * w) that keeps exp(x - c)."""
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    graph = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    epilogue = ScalarGraph(("float64",) * 3, ((S.mul, (0, 2)), (S.sub, (1, 3))), (4,))
    total, value = FusedReduce(graph, "sum", (1,), "float64", epilogue=epilogue,
                               keep=True)(x, c, b, w)
    return total.sum() * 2 + (value * value).sum()


STRUCTURAL = {
    # reductions
    "sum_all": (lambda x: x.sum(), [_r(3, 4)]),
    "sum_axis0": (lambda x: x.sum(axis=0), [_r(3, 4)]),
    "sum_axes12": (lambda x: T.sum(x, axis=[1, 2]), [_r(2, 3, 4)]),
    "sum_keepdims": (lambda x: T.sum(x, axis=1, keepdims=True), [_r(3, 4)]),
    "prod_axis1": (lambda x: T.prod(x, axis=1), [_pos(3, 4)]),
    "prod_all": (lambda x: T.prod(x), [_pos(3, 4)]),
    "prod_with_zeros": (lambda x: T.prod(x, axis=1),
                        [np.array([[1.5, 2.0, 0.5], [0.0, 2.0, 3.0], [0.0, 0.0, 3.0]])]),
    "max_axis1": (lambda x: T.max(x, axis=1), [_distinct(3, 4)]),
    "max_all": (lambda x: T.max(x), [_distinct(3, 4)]),
    "min_axis0": (lambda x: T.min(x, axis=0), [_distinct(3, 4)]),
    "min_axes": (lambda x: T.min(x, axis=[0, 2]), [_distinct(2, 3, 4)]),
    "mean_axis1": (lambda x: T.mean(x, axis=1), [_r(3, 4)]),
    "mean_all": (lambda x: T.mean(x), [_r(3, 4)]),
    "var_axis0": (lambda x: T.var(x, axis=0), [_r(3, 4)]),
    "var_ddof": (lambda x: T.var(x, axis=1, ddof=1), [_r(3, 4)]),
    "std_axis1": (lambda x: T.std(x, axis=1), [_r(3, 4)]),
    "std_all": (lambda x: T.std(x), [_r(3, 4)]),
    "cumsum_axis0": (lambda x: T.cumsum(x, axis=0), [_r(3, 4)]),
    "cumsum_axis1": (lambda x: T.cumsum(x, axis=1), [_r(3, 4)]),
    "cumsum_flat": (lambda x: T.cumsum(x), [_r(3, 4)]),
    "cumprod_axis1": (lambda x: T.cumprod(x, axis=1), [_pos(3, 4)]),
    "cumprod_flat": (lambda x: T.cumprod(x), [_pos(3, 4)]),
    # linear algebra
    "dot_vv": (T.dot, [_r(4), _r(4)]),
    "dot_vm": (T.dot, [_r(4), _r(4, 3)]),
    "dot_mv": (T.dot, [_r(3, 4), _r(4)]),
    "dot_mm": (T.dot, [_r(3, 4), _r(4, 2)]),
    "dot_3m": (T.dot, [_r(2, 3, 4), _r(4, 2)]),
    "dot_m3": (T.dot, [_r(3, 4), _r(2, 4, 5)]),
    "dot_3v": (T.dot, [_r(2, 3, 4), _r(4)]),
    "dot_v3": (T.dot, [_r(4), _r(2, 4, 3)]),
    "dot_33": (T.dot, [_r(2, 3, 4), _r(2, 4, 3)]),
    "matmul_mm": (T.matmul, [_r(3, 4), _r(4, 2)]),
    "matmul_batched": (T.matmul, [_r(2, 3, 4), _r(2, 4, 5)]),
    "matmul_batch_broadcast_b": (T.matmul, [_r(2, 3, 4), _r(4, 5)]),
    "matmul_batch_broadcast_a": (T.matmul, [_r(3, 4), _r(2, 4, 5)]),
    "matmul_4d_broadcast": (T.matmul, [_r(2, 1, 3, 4), _r(3, 4, 2)]),
    "matmul_v_batched": (T.matmul, [_r(4), _r(2, 4, 5)]),
    "matmul_batched_v": (T.matmul, [_r(2, 3, 4), _r(4)]),
    "matmul_vv": (T.matmul, [_r(4), _r(4)]),
    "matmul_vm": (T.matmul, [_r(4), _r(4, 3)]),
    "matmul_mv": (T.matmul, [_r(3, 4), _r(4)]),
    "tensordot_2": (lambda a, b: T.tensordot(a, b, 2), [_r(2, 3, 4), _r(3, 4, 5)]),
    "tensordot_unsorted_axes": (lambda a, b: T.tensordot(a, b, [[0, 2], [2, 0]]),
                                [_r(2, 3, 4), _r(4, 5, 2)]),
    "tensordot_unsorted_axes2": (lambda a, b: T.tensordot(a, b, [[2, 0], [0, 2]]),
                                 [_r(2, 3, 4), _r(4, 5, 2)]),
    "tensordot_outer": (lambda a, b: T.tensordot(a, b, 0), [_r(2, 3), _r(4)]),
    "batched_dot_3x3": (T.batched_dot, [_r(2, 3, 4), _r(2, 4, 5)]),
    "batched_dot_2x2": (T.batched_dot, [_r(2, 4), _r(2, 4)]),
    "batched_dot_3x2": (T.batched_dot, [_r(2, 3, 4), _r(2, 4)]),
    "batched_dot_4x3": (T.batched_dot, [_r(2, 2, 3, 4), _r(2, 4, 5)]),
    "outer": (T.outer, [_r(3), _r(4)]),
    "dot_add": (lambda a, b, c: T.dot(a, b) + c, [_r(3, 4), _r(4, 2), _r(2)]),
    "dot_add_op": (lambda a, b, c: DotAdd()(a, b, c), [_r(3, 4), _r(4, 2), _r(2)]),
    "dot_add_op_vector": (lambda a, b, c: DotAdd()(a, b, c), [_r(3, 4), _r(4), _r(3)]),
    # tanh(x * y + z) / x as one fused node (the fusion pass makes these), z broadcast
    "fused": (lambda x, y, z: _fused_op()(x, y, z), [_r(3, 4), _r(3, 4), _r(1, 4)]),
    # sum over rows of exp(x - c) as one node (the fusion pass makes these: softmax's
    # denominator), c a column
    "fused_reduce": (lambda x, c: _fused_reduce_op()(x, c), [_r(3, 4), _r(3, 1)]),
    "fused_reduce_epilogue": (lambda x, c, b, w: _fused_reduce_epilogue_op()(x, c, b, w),
                              [_r(3, 4), _r(3, 1), _r(3), _r(1)]),
    "fused_reduce_keep": (_fused_reduce_keep, [_r(3, 4), _r(3, 1), _r(3), _r(1)]),
    "gemm": (lambda z, a, x, y, b: Gemm()(z, a, x, y, b),
             [_r(3, 2), _r(), _r(3, 4), _r(4, 2), _r()]),
    "gemm_bias_row": (lambda z, a, x, y, b: Gemm()(z, a, x, y, b),
                      [_r(2), _r(), _r(3, 4), _r(4, 2), _r()]),
    # shapes
    "reshape": (lambda x: T.reshape(x, (4, 3)), [_r(3, 4)]),
    "reshape_minus1": (lambda x: x.reshape((2, -1)), [_r(3, 4)]),
    "flatten": (lambda x: T.flatten(x), [_r(2, 3, 4)]),
    "flatten_2": (lambda x: T.flatten(x, 2), [_r(2, 3, 4)]),
    "dimshuffle": (lambda x: x.dimshuffle(2, "x", 0, 1), [_r(2, 3, 4)]),
    "transpose": (lambda x: x.T, [_r(3, 4)]),
    "squeeze": (lambda x: T.squeeze(x), [_r(3, 1, 4)]),
    "join": (lambda a, b: T.join(0, a, b), [_r(2, 3), _r(4, 3)]),
    "concatenate_axis1": (lambda a, b: T.concatenate([a, b], axis=1), [_r(2, 3), _r(2, 4)]),
    "stack_axis1": (lambda a, b: T.stack([a, b], axis=1), [_r(2, 3), _r(2, 3)]),
    "stack_scalars": (lambda a, b: T.stack([a.sum(), (b * b).sum(), a[0, 0]]),
                      [_r(2, 3), _r(2, 3)]),
    "split_one_part": (lambda x: T.split(x, [1, 3], 2, axis=1)[1], [_r(2, 4)]),
    "split_both_parts": (lambda x: T.split(x, [1, 3], 2, axis=1)[0] * 2
                         + T.split(x, [1, 3], 2, axis=1)[1].sum(axis=1, keepdims=True),
                         [_r(2, 4)]),
    "repeat_axis1": (lambda x: T.repeat(x, 3, axis=1), [_r(2, 3)]),
    "repeat_axis0": (lambda x: T.repeat(x, 2, axis=0), [_r(2, 3)]),
    "repeat_flat": (lambda x: T.repeat(x, 2), [_r(2, 3)]),
    "repeat_vector": (lambda x: T.repeat(x, np.array([1, 0, 3]), axis=1), [_r(2, 3)]),
    "repeat_vector_flat": (lambda x: T.repeat(x, np.array([1, 0, 3, 2, 1, 1])), [_r(2, 3)]),
    "tile": (lambda x: T.tile(x, (2, 3)), [_r(2, 3)]),
    "tile_more_dims": (lambda x: T.tile(x, (2, 1, 3)), [_r(2, 3)]),
    "alloc": (lambda x: T.alloc(x, 4, 3), [_r(3)]),
    "alloc_scalar": (lambda x: T.alloc(x.sum(), 2, 3), [_r(3)]),
    "addbroadcast": (lambda x: T.addbroadcast(x, 0) + T.zeros((3, 4)), [_r(1, 4)]),
    "unbroadcast": (lambda x: T.unbroadcast(x, 0) * 2, [_r(1, 4)]),
    # indexing
    "subtensor_slices": (lambda x: x[1:3, ::2], [_r(4, 5)]),
    "subtensor_int": (lambda x: x[1], [_r(4, 5)]),
    "subtensor_reverse": (lambda x: x[::-1, 2], [_r(4, 5)]),
    "subtensor_symbolic_int": (lambda x: x[T.cast(T.shape(x)[0] - 2, "int64")], [_r(4, 5)]),
    "advanced_repeated": (lambda x: x[[0, 2, 2, 3]], [_r(4, 5)]),
    "advanced_pairs_repeated": (lambda x: x[[0, 2, 2], [1, 1, 4]], [_r(4, 5)]),
    "advanced_axis1": (lambda x: x[:, [1, 1, 0]], [_r(4, 5)]),
    "advanced_bool": (lambda x: x[np.array([True, False, True, True])], [_r(4, 5)]),
    "take": (lambda x: T.take(x, [2, 0, 2], axis=1), [_r(3, 4)]),
    "set_subtensor": (lambda x, y: T.set_subtensor(x[1:3], y), [_r(4, 5), _r(2, 5)]),
    "set_subtensor_advanced": (lambda x, y: T.set_subtensor(x[[0, 2]], y),
                               [_r(4, 5), _r(2, 5)]),
    "inc_subtensor": (lambda x, y: T.inc_subtensor(x[1:3], y), [_r(4, 5), _r(2, 5)]),
    "inc_subtensor_broadcast": (lambda x, y: T.inc_subtensor(x[1:3], y), [_r(4, 5), _r(5)]),
    "inc_subtensor_repeated": (lambda x, y: T.inc_subtensor(x[[0, 2, 0]], y),
                               [_r(4, 5), _r(3, 5)]),
    "inc_subtensor_pairs": (lambda x, y: T.inc_subtensor(x[[0, 2, 0], [1, 1, 1]], y),
                            [_r(4, 5), _r(3)]),
    # nnet
    "softmax": (T.nnet.softmax, [_r(3, 4)]),
    "softmax_axis0": (lambda x: T.nnet.softmax(x, axis=0), [_r(3, 4)]),
    "softmax_vector": (T.nnet.softmax, [_r(4)]),
    "log_softmax": (T.nnet.log_softmax, [_r(3, 4)]),
    "crossentropy_int_labels": (
        lambda x: T.nnet.categorical_crossentropy(T.nnet.softmax(x), _Y), [_r(3, 4)]),
    "crossentropy_int_labels_probs": (
        lambda p: T.nnet.categorical_crossentropy(p, _Y), [_pos(3, 4)]),
    "crossentropy_one_hot": (
        lambda x: T.nnet.categorical_crossentropy(T.nnet.softmax(x), np.eye(4)[_Y]),
        [_r(3, 4)]),
    "binary_crossentropy": (lambda o, t: T.nnet.binary_crossentropy(T.nnet.sigmoid(o), t),
                            [_r(3, 4), _rng.uniform(0, 1, (3, 4))]),
    "binary_crossentropy_probs": (
        lambda o: T.nnet.binary_crossentropy(o, np.array([[0.0, 1.0, 1.0, 0.0]])),
        [_rng.uniform(0.2, 0.8, (3, 4))]),
    "sigmoid_binary_crossentropy": (T.nnet.sigmoid_binary_crossentropy,
                                    [_r(3, 4), _rng.uniform(0, 1, (3, 4))]),
    "relu": (T.nnet.relu, [_signed(3, 4)]),
    "leaky_relu": (lambda x: T.nnet.relu(x, 0.1), [_signed(3, 4)]),
    "elu": (T.nnet.elu, [_signed(3, 4)]),
    "logsumexp": (lambda x: T.nnet.logsumexp(x, axis=1), [_r(3, 4)]),
    # elementwise helpers
    "clip": (lambda x: T.clip(x, -1, 1), [np.array([-1.5, -0.5, 0.3, 0.9, 1.7])]),
    "switch": (lambda a, b: T.switch(T.gt(a, 0), a * b, b), [_signed(3, 4), _r(3, 4)]),
    "maximum": (T.maximum, [_distinct(3, 4), _distinct(3, 4) + 0.1]),
    "minimum": (T.minimum, [_distinct(3, 4), _distinct(3, 4) + 0.1]),
    "broadcast_row": (lambda m, r: m + T.addbroadcast(r, 0), [_r(3, 4), _r(1, 4)]),
    "broadcast_col": (lambda m, c: m * T.addbroadcast(c, 1), [_r(3, 4), _r(3, 1)]),
    "broadcast_vector": (lambda m, v: m * v, [_r(3, 4), _r(4)]),
    "broadcast_scalar": (lambda m, s: m + s * m, [_r(3, 4), np.array(0.7)]),
    # control flow and identity-like ops
    "ifelse_then": (lambda a, b: theano.ifelse.ifelse(T.gt(a.sum(), 0), a * 2, b * b),
                    [_pos(3) + 1, _r(3)]),
    "ifelse_else": (lambda a, b: theano.ifelse.ifelse(T.lt(a.sum(), 0), a * 2, b * b),
                    [_pos(3) + 1, _r(3)]),
    "print": (lambda x: theano.printing.Print("x", attrs=("shape",))(x) * 2, [_r(3)]),
    "transfer": (lambda x: x.transfer("cpu") * x.transfer("cuda"), [_r(3)]),
    "grad_scale": (lambda x: theano.gradient.grad_scale(x, 1.0) * x, [_r(3)]),
    "grad_clip_wide": (lambda x: theano.gradient.grad_clip(x, -1e6, 1e6) * x, [_r(3)]),
    # integer-valued helpers inside a differentiable graph
    "shape_and_arange": (lambda x: x * T.cast(T.shape(x)[0], "float64") * T.arange(3),
                         [_r(3)]),
    "eye": (lambda x: x * T.eye(3), [_r(3, 3)]),
    "argmax_index": (lambda x: x[T.argmax(x)] * x, [_distinct(5)]),
    # extra ops (ops/extra.py)
    "sort_axis1": (lambda x: T.sort(x, axis=1), [_distinct(3, 4)]),
    "sort_axis0_3d": (lambda x: T.sort(x, axis=0), [_distinct(3, 2, 4)]),
    "sort_flat": (lambda x: T.sort(x, axis=None), [_distinct(3, 4)]),
    "argsort_index": (lambda x: x[T.argsort(x)] * np.arange(5.0), [_distinct(5)]),
    "roll_axis1": (lambda x: T.roll(x, 3, axis=1) * np.arange(12.0).reshape(3, 4), [_r(3, 4)]),
    "roll_flat": (lambda x: T.roll(x, -5) * np.arange(12.0).reshape(3, 4), [_r(3, 4)]),
    "diag_of_matrix": (lambda x: T.diag(x, 1), [_r(3, 4)]),
    "diag_of_vector": (lambda x: T.diag(x, -1), [_r(3)]),
    "diagonal_3d": (lambda x: T.diagonal(x, 1, 2, 0), [_r(3, 2, 4)]),
    "trace": (T.trace, [_r(3, 3)]),
    "tril": (lambda x: T.tril(x, -1), [_r(3, 4)]),
    "triu_3d": (lambda x: T.triu(x, 1), [_r(2, 3, 4)]),
    # linear algebra (ops/linalg.py; more in tests/ops/test_linalg.py)
    "matrix_inverse": (T.nlinalg.matrix_inverse, [_r(3, 3) + 3 * np.eye(3)]),
    "det": (T.nlinalg.det, [_r(3, 3) + 3 * np.eye(3)]),
    "eigh": (lambda x: T.nlinalg.eigh(x)[0] + T.nlinalg.eigh(x)[1].sum(axis=0),
             [_spd(3)]),
    "cholesky": (lambda x: T.slinalg.cholesky(x) * np.arange(9.0).reshape(3, 3), [_spd(3)]),
    "solve": (lambda a, b: T.slinalg.solve(a, b), [_r(3, 3) + 3 * np.eye(3), _r(3, 2)]),
    "pinv": (T.nlinalg.pinv, [_r(4, 3)]),
    "norm_fro": (T.nlinalg.norm, [_r(3, 4)]),
    "solve_upper_triangular": (T.slinalg.solve_upper_triangular,
                               [_r(3, 3) + 3 * np.eye(3), _r(3)]),
    # loops (more in tests/scan/test_grad.py)
    "scan_rnn": (lambda x, W, h0: theano.scan(
        lambda x_t, h, W: T.tanh(x_t + T.dot(h, W)), sequences=x, outputs_info=h0,
        non_sequences=W)[0], [_r(4, 3), _r(3, 3) * 0.5, _r(3)]),
    # convolution: the forward op, and its gradient ops in the gradient graph (more in
    # tests/ops/test_conv.py)
    "conv2d": (lambda x, w: T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 1)),
               [_r(2, 2, 5, 4), _r(3, 2, 3, 2)]),
    "conv2d_grouped_dilated": (lambda x, w: T.nnet.conv2d(
        x, w, border_mode=(1, 0), filter_dilation=(1, 2), num_groups=2, filter_flip=False),
        [_r(1, 4, 4, 5), _r(2, 2, 2, 2)]),
    "conv3d": (lambda x, w: T.nnet.conv3d(x, w, border_mode=1, subsample=(1, 2, 1)),
               [_r(1, 2, 3, 4, 3), _r(2, 2, 2, 2, 2)]),
    # pooling (ops/pool.py): max pooling's gradient is MaxPoolGrad, and its second order
    # DownsampleFactorMaxGradGrad; sum/average pooling's is AveragePoolGrad (more in
    # tests/ops/test_pool.py)
    "pool_max": (lambda x: _pool().pool_2d(x, (3, 2), ignore_border=True, stride=(1, 2),
                                           pad=(1, 1)), [_distinct(2, 5, 6)]),
    "pool_average": (lambda x: _pool().pool_2d(x, (2, 3), ignore_border=False, stride=(2, 1),
                                               mode="average_exc_pad"), [_r(2, 5, 6)]),
    # bincount's weights (ops/extra.py)
    "bincount_weights": (lambda w: T.extra_ops.bincount(T.constant(np.array([3, 0, 3, 1])), w,
                                                        minlength=6), [_r(4)]),
}

# Structural cases where second order is not checked, with the reason.
NO_SECOND_ORDER_STRUCT = {
    "prod_with_zeros": "the rule for zeros is piecewise: exact to first order only",
}


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
def test_structural_first_order(name):
    fn, pts = STRUCTURAL[name]
    verify_grad(fn, pts)


@pytest.mark.parametrize("name", sorted(set(STRUCTURAL) - set(NO_SECOND_ORDER_STRUCT)))
def test_structural_second_order(name):
    fn, pts = STRUCTURAL[name]

    def second(*xs):
        out = fn(*xs)
        return T.grad((out * out).sum(), xs[0])
    verify_grad(second, pts, n_tests=1)


@pytest.mark.parametrize("case,in_shape", [
    ("row", (1, 4)), ("col", (3, 1)), ("vector", (4,)), ("scalar", ())])
def test_broadcast_gradient_shapes(case, in_shape):
    m = T.matrix("m")
    other = {"row": T.row("r"), "col": T.col("c"), "vector": T.vector("v"),
             "scalar": T.scalar("s")}[case]
    out = (m + other) * (m * other)
    gm, go = T.grad(out.sum(), [m, other])
    assert go.broadcastable == other.broadcastable
    assert gm.broadcastable == m.broadcastable
    mv, ov = _r(3, 4), _r(*in_shape)
    a, b = theano.function([m, other], [gm, go])(mv, ov)
    assert a.shape == (3, 4) and b.shape == in_shape
    full = mv * ov + (mv + ov) * mv
    reduce_to = {"row": lambda a: a.sum(axis=0, keepdims=True),
                 "col": lambda a: a.sum(axis=1, keepdims=True),
                 "vector": lambda a: a.sum(axis=0), "scalar": lambda a: a.sum()}[case]
    np.testing.assert_allclose(b, reduce_to(full))
    np.testing.assert_allclose(a, mv * ov + (mv + ov) * ov)


# -- completeness -------------------------------------------------------------------------------

# Op classes with no gradient (or no test of one), and why.
NO_GRADIENT = {
    "SVD": "no gradient, as in Theano 1.0 (its values are tested in tests/ops/test_linalg.py)",
    "QRFull": "no gradient, as in Theano 1.0 (its values are tested in tests/ops/test_linalg.py)",
    "GradModifier": "abstract base of the gradient modifiers (tested in test_grad.py)",
    "_PoolBase": "abstract base of the pooling ops (each has its case: pool_max, pool_average)",
    "DownsampleFactorMaxGradGrad": "max pooling's second order: the gradient of MaxPoolGrad, "
                                   "checked by finite differences in tests/ops/test_pool.py",
    "DisconnectedGrad": "gradient modifier: tested in test_grad.py (consider_constant)",
    "ZeroGrad": "gradient modifier: tested in test_grad.py and test_verify_grad_detects...",
    "MapRows": "jacobian's row loop; hessian differentiates the gradient graph before mapping",
    "ShapeCheck": "passes an integer shape through after checking lengths: nothing to "
                  "differentiate",
    "CheckedLabels": "returns its integer labels unchanged: nothing to differentiate",
    "FromFunctionOp": "as_op wraps an arbitrary Python function: no gradient unless given; "
                      "test_grad.py checks the NullTypeGradError",
    "Nonzero": "int64 indices (nonzero): nothing to differentiate",
    "SearchSorted": "int64 insertion points (searchsorted): nothing to differentiate",
    # random draws (ops/random.py): undefined for float parameters, None for integer ones;
    # tests/ops/test_random.py checks the error and that dropout's h.shape blocks nothing
    "MRGUniform": "a random draw: no gradient, as in Theano",
    "RandomFunction": "a random draw: no gradient, as in Theano",
    "MultinomialFromUniform": "turns uniforms into counts: no gradient, as in Theano",
    "ChoiceFromUniform": "turns uniforms into indices: no gradient, as in Theano",
    "TruncatedJoin": "assembles a truncated normal draw: no gradient, as in Theano",
}


def _op_classes_in(fn, pts):
    inputs = [T.TensorType("float64", shape=tuple(1 if s == 1 else None for s in np.shape(p)))(
        f"in{k}") for k, p in enumerate(pts)]
    out = fn(*inputs)
    grads = T.grad((out * out).sum(), inputs, disconnected_inputs="ignore")
    return {type(node.op) for node in toposort([out] + grads)}


def test_every_op_class_has_a_gradient_test():
    covered = {"Elemwise"}  # the table tests
    for fn, pts in STRUCTURAL.values():
        covered |= {cls.__name__ for cls in _op_classes_in(fn, pts)}
    ours = [cls for cls in OP_CLASSES if cls.__module__.startswith("theon.")
            and not cls.__module__.startswith("theon.tests")]
    missing = sorted({cls.__name__ for cls in ours} - covered - set(NO_GRADIENT))
    assert not missing, (f"Op classes with no gradient test and no NO_GRADIENT entry: {missing}")
