"""sort, argsort, roll, diag, diagonal, trace, tril and triu (ops/extra.py) against numpy."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad

_rng = np.random.default_rng(7)

SHAPES = [(3, 4), (0, 4), (3, 0), (1, 1), (1, 5), (2, 3, 4), (2, 0, 3), (1, 1, 1)]
DTYPES = ["float32", "float64"]


def _var(shape, dtype):
    return T.TensorType(dtype, shape=(None,) * len(shape))("x")


def _val(shape, dtype):
    return _rng.standard_normal(shape).astype(dtype)


def _distinct(*shape):
    """Values without ties (so the sort permutation is unique)."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)


def _run(build, *values, dtype=None):
    xs = [T.TensorType(str(v.dtype), shape=(None,) * v.ndim)(f"x{i}")
          for i, v in enumerate(values)]
    return theano.function(xs, build(*xs))(*values)


def _check(got, want):
    assert got.shape == want.shape
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


# -- sort and argsort ------------------------------------------------------------------------------

def _axes(ndim):
    return [None] + list(range(ndim)) + list(range(-ndim, 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(5,), (0,), (1,)])
def test_sort_and_argsort_match_numpy(shape, dtype):
    x = _var(shape, dtype)
    v = _val(shape, dtype)
    axes = _axes(len(shape))
    outs = [T.sort(x, axis=a) for a in axes] + [T.argsort(x, axis=a) for a in axes]
    got = theano.function([x], outs)(v)
    want = [np.sort(v, axis=a) for a in axes] + [np.argsort(v, axis=a) for a in axes]
    for g, w in zip(got, want):
        if w.dtype.kind == "i":
            w = w.astype("int64")
        _check(g, w)


def test_sort_default_axis_is_last_and_types():
    x = T.ftensor3("x")
    assert T.sort(x).owner.op.axis == 2
    assert T.sort(x).dtype == "float32" and T.argsort(x).dtype == "int64"
    assert T.sort(x, axis=None).ndim == 1 and T.argsort(x, axis=None).ndim == 1
    v = _val((2, 3, 4), "float32")
    _check(theano.function([x], T.sort(x))(v), np.sort(v))


def test_sort_kinds_and_ints():
    v = np.array([[3, 1, 2, 1], [0, 5, 5, 4]], dtype="int32")
    _check(_run(lambda a: T.sort(a, kind="mergesort"), v), np.sort(v, kind="mergesort"))
    _check(_run(lambda a: T.argsort(a, kind="stable"), v),
           np.argsort(v, kind="stable").astype("int64"))


def test_sort_of_scalar_flattened():
    s = T.dscalar("s")
    assert theano.function([s], T.sort(s, axis=None))(2.5).tolist() == [2.5]


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_sort_gradient(axis):
    verify_grad(lambda x: T.sort(x, axis=axis), [_distinct(3, 4)])


@pytest.mark.parametrize("axis", [0, 1, 2, -2])
def test_sort_gradient_3d(axis):
    verify_grad(lambda x: T.sort(x, axis=axis) * np.arange(24.0).reshape(2, 3, 4),
                [_distinct(2, 3, 4)])


def test_sort_gradient_vector_and_size_one():
    verify_grad(lambda x: T.sort(x), [_distinct(6)])
    verify_grad(lambda x: T.sort(x, axis=0), [_distinct(1, 3)])


def test_sort_gradient_values():
    x = T.dvector("x")
    w = np.array([1.0, 10.0, 100.0])
    g = theano.function([x], T.grad((T.sort(x) * w).sum(), x))(np.array([0.5, -1.0, 2.0]))
    np.testing.assert_allclose(g, [10.0, 1.0, 100.0])


def test_argsort_has_no_gradient_but_passes_through_indexing():
    x = T.dvector("x")
    out = x[T.argsort(x)] * np.array([1.0, 2.0, 3.0])
    g = theano.function([x], T.grad(out.sum(), x))(np.array([3.0, 1.0, 2.0]))
    np.testing.assert_allclose(g, [3.0, 1.0, 2.0])


def test_sort_errors():
    with pytest.raises(ValueError, match="out of range"):
        T.sort(T.dmatrix("x"), axis=2)
    with pytest.raises(ValueError, match="dscalar|float64"):
        T.argsort(T.dscalar("s"), axis=0)
    with pytest.raises(ValueError, match="kind"):
        T.sort(T.dvector("v"), kind="bogus")
    with pytest.raises(TypeError, match="axis"):
        T.sort(T.dvector("v"), axis=0.5)


# -- roll ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(5,), (0,)])
@pytest.mark.parametrize("shift", [0, 1, -2, 7])
def test_roll_matches_numpy(shape, dtype, shift):
    x = _var(shape, dtype)
    v = _val(shape, dtype)
    axes = _axes(len(shape))
    got = theano.function([x], [T.roll(x, shift, axis=a) for a in axes])(v)
    for g, a in zip(got, axes):
        _check(g, np.roll(v, shift, axis=a))


def test_roll_symbolic_shift_and_several_axes():
    x, s = T.dtensor3("x"), T.iscalar("s")
    v = _val((2, 3, 4), "float64")
    f = theano.function([x, s], [T.roll(x, s, axis=1), T.roll(x, s), T.roll(x, (s, 1), (0, 2)),
                                 T.roll(x, T.cast(s, "uint8"), axis=-1)])
    for k in (-5, 0, 2, 13):
        got = f(v, k)
        _check(got[0], np.roll(v, k, axis=1))
        _check(got[1], np.roll(v, k))
        _check(got[2], np.roll(v, (k, 1), (0, 2)))
        _check(got[3], np.roll(v, np.uint8(k % 256), axis=-1))


def test_roll_scalar_and_static_shape():
    s = T.dscalar("s")
    assert float(theano.function([s], T.roll(s, 3))(1.5)) == 1.5
    x = T.TensorType("float32", shape=(2, None))("x")
    assert T.roll(x, 1, axis=0).type.shape == (2, None)


@pytest.mark.parametrize("shift,axis", [(1, 0), (-1, 1), (5, None), (2, -1)])
def test_roll_gradient(shift, axis):
    verify_grad(lambda x: T.roll(x, shift, axis=axis) * np.arange(12.0).reshape(3, 4),
                [_distinct(3, 4)])


def test_roll_gradient_symbolic_shift():
    x, s = T.dmatrix("x"), T.lscalar("s")
    w = np.arange(12.0).reshape(3, 4)
    g = theano.function([x, s], T.grad((T.roll(x, s, axis=1) * w).sum(), x))
    for k in (-3, 1, 6):
        np.testing.assert_allclose(g(np.zeros((3, 4)), k), np.roll(w, -k, axis=1))


def test_roll_errors():
    with pytest.raises(TypeError, match="float64|dscalar|shift"):
        T.roll(T.dvector("v"), T.dscalar("s"))
    with pytest.raises(TypeError, match="shift"):
        T.roll(T.dvector("v"), 1.5)
    with pytest.raises(TypeError, match="shift"):
        T.roll(T.dvector("v"), T.ivector("s"))
    with pytest.raises(ValueError, match="out of range"):
        T.roll(T.dmatrix("m"), 1, axis=2)
    with pytest.raises(ValueError, match="0 dimensions"):
        T.roll(T.dscalar("s"), 1, axis=0)


# -- diag, diagonal, trace -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 4])
@pytest.mark.parametrize("k", [0, 1, -2])
def test_diag_of_vector(n, dtype, k):
    v = _val((n,), dtype)
    got = _run(lambda a: T.diag(a, k), v)
    _check(got, np.diag(v, k))
    x = T.TensorType(dtype, shape=(n,))("x")
    assert T.diag(x, k).type.shape == np.diag(v, k).shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (0, 4), (3, 0), (1, 1), (1, 5)])
@pytest.mark.parametrize("k", [0, 1, -1, 5])
def test_diag_of_matrix_and_trace(shape, dtype, k):
    v = _val(shape, dtype)
    _check(_run(lambda a: T.diag(a, k), v), np.diag(v, k))
    got = _run(lambda a: T.trace(a, k), v)
    np.testing.assert_allclose(got, np.trace(v, k), rtol=1e-5)
    assert got.shape == () and got.dtype == np.dtype(dtype)
    x = T.TensorType(dtype, shape=shape)("x")
    assert T.diag(x, k).type.shape == np.diag(v, k).shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 0, 2), (1, 1, 1), (2, 3, 4, 5)])
@pytest.mark.parametrize("offset,axis1,axis2", [(0, 0, 1), (1, 1, 2), (-1, 2, 0), (0, -1, -2),
                                                 (2, 0, -1)])
def test_diagonal_matches_numpy(shape, dtype, offset, axis1, axis2):
    v = _val(shape, dtype)
    _check(_run(lambda a: T.diagonal(a, offset, axis1, axis2), v),
           np.diagonal(v, offset, axis1, axis2))
    np.testing.assert_allclose(_run(lambda a: T.trace(a, offset, axis1, axis2), v),
                               np.trace(v, offset, axis1, axis2), rtol=1e-5)


def test_diagonal_result_is_a_writable_copy():
    x = T.dmatrix("x")
    v = np.arange(9.0).reshape(3, 3)
    out = theano.function([x], T.diagonal(x))(v)
    out[0] = 100.0
    assert v[0, 0] == 0.0


@pytest.mark.parametrize("k", [0, 1, -1])
def test_diag_gradients(k):
    verify_grad(lambda m: T.diag(m, k), [_distinct(3, 4)])
    verify_grad(lambda m: T.diag(m, k), [_distinct(4, 3)])
    verify_grad(lambda v: T.diag(v, k), [_distinct(3)])
    verify_grad(lambda m: T.trace(m, k), [_distinct(3, 3)])


@pytest.mark.parametrize("offset,axis1,axis2", [(0, 0, 1), (1, 1, 2), (-1, 2, 0), (0, 2, 1)])
def test_diagonal_gradient_nd(offset, axis1, axis2):
    verify_grad(lambda x: T.diagonal(x, offset, axis1, axis2), [_distinct(2, 3, 4)])
    verify_grad(lambda x: T.trace(x, offset, axis1, axis2), [_distinct(2, 3, 4)])


def test_diag_gradient_values():
    m = T.dmatrix("m")
    g = theano.function([m], T.grad(T.trace(m), m))(np.zeros((2, 3)))
    np.testing.assert_array_equal(g, np.eye(2, 3))
    v = T.dvector("v")
    w = np.arange(16.0).reshape(4, 4)
    g = theano.function([v], T.grad((T.diag(v, 1) * w).sum(), v))(np.zeros(3))
    np.testing.assert_array_equal(g, np.diag(w, 1))


def test_diag_errors():
    with pytest.raises(ValueError, match="dtensor3|float64"):
        T.diag(T.dtensor3("x"))
    with pytest.raises(ValueError, match="1- or 2-d"):
        T.diag(T.dscalar("s"))
    with pytest.raises(ValueError, match="at least 2"):
        T.diagonal(T.dvector("v"))
    with pytest.raises(ValueError, match="same axis"):
        T.diagonal(T.dmatrix("m"), 0, 1, -1)
    with pytest.raises(ValueError, match="out of range"):
        T.trace(T.dmatrix("m"), 0, 0, 2)
    with pytest.raises(TypeError, match="k must be an int"):
        T.diag(T.dvector("v"), T.iscalar("k"))


# -- tril and triu ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES + ["int32"])
@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (0, 4), (1, 1), (1, 5), (2, 3, 4), (2, 0, 3)])
@pytest.mark.parametrize("k", [0, 1, -1, 10])
def test_tril_triu_match_numpy(shape, dtype, k):
    v = (_val(shape, "float64") * 10).astype(dtype)
    _check(_run(lambda a: T.tril(a, k), v), np.tril(v, k))
    _check(_run(lambda a: T.triu(a, k), v), np.triu(v, k))
    x = T.TensorType(dtype, shape=shape)("x")
    assert T.tril(x, k).type == x.type and T.triu(x, k).type == x.type


@pytest.mark.parametrize("k", [0, 1, -1])
def test_tril_triu_gradients(k):
    verify_grad(lambda m: T.tril(m, k), [_distinct(3, 4)])
    verify_grad(lambda m: T.triu(m, k), [_distinct(4, 3)])
    verify_grad(lambda m: T.triu(m, k) * T.tril(m), [_distinct(2, 3, 3)])


def test_tril_gradient_is_the_mask():
    m = T.dmatrix("m")
    g = theano.function([m], T.grad(T.tril(m, -1).sum(), m))(np.zeros((3, 3)))
    np.testing.assert_array_equal(g, np.tril(np.ones((3, 3)), -1))


def test_tril_triu_errors():
    with pytest.raises(ValueError, match="dvector|float64"):
        T.tril(T.dvector("v"))
    with pytest.raises(ValueError, match="at least 2"):
        T.triu(T.dscalar("s"))
    with pytest.raises(TypeError, match="k must be an int"):
        T.triu(T.dmatrix("m"), 0.5)


def test_errors_name_the_user_line():
    with pytest.raises(ValueError) as info:
        T.tril(T.dvector("v"))
    assert "test_extra.py" in str(info.value)
