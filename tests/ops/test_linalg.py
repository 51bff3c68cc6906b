"""Linear algebra (``ops/linalg.py``, ``theano.tensor.nlinalg`` / ``slinalg``): values against
numpy in both float dtypes, what each op reads, forward mode, and the errors. Gradients are
checked by finite differences in tests/grad/test_verify_ops.py (first and second order) and
here for the forms those cases leave out."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad

_rng = np.random.default_rng(7)


def spd(n: int, dtype="float64") -> np.ndarray:
    a = _rng.normal(size=(n, n))
    return (a @ a.T + n * np.eye(n)).astype(dtype)


def general(n: int, dtype="float64") -> np.ndarray:
    return (_rng.normal(size=(n, n)) + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_match_numpy(dtype):
    x, y = T.matrix("x", dtype=dtype), T.matrix("y", dtype=dtype)
    b = T.vector("b", dtype=dtype)
    outs = [T.nlinalg.matrix_inverse(x), T.nlinalg.det(x), *T.nlinalg.eigh(y),
            T.slinalg.cholesky(y), T.slinalg.cholesky(y, lower=False), T.slinalg.solve(x, b),
            T.nlinalg.matrix_power(x, 3), T.nlinalg.matrix_dot(x, y, x)]
    f = theano.function([x, y, b], outs)
    a, s, v = general(5, dtype), spd(5, dtype), _rng.normal(size=5).astype(dtype)
    w, vecs = np.linalg.eigh(s)
    want = [np.linalg.inv(a), np.linalg.det(a), w, vecs, np.linalg.cholesky(s),
            np.linalg.cholesky(s).T, np.linalg.solve(a, v), a @ a @ a, a @ s @ a]
    tol = 1e-12 if dtype == "float64" else 2e-4
    for got, expected in zip(f(a, s, v), want):
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def test_integer_matrices_are_read_as_float64():
    m = T.imatrix("m")
    out = T.nlinalg.matrix_inverse(m)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out.eval({m: np.array([[2, 0], [0, 4]], "int32")}),
                               [[0.5, 0], [0, 0.25]])


def test_each_op_reads_only_what_lapack_reads():
    # cholesky and eigh read the lower triangle; a triangular solve only its triangle
    s = spd(4)
    junk = s + np.triu(_rng.normal(size=(4, 4)), 1)  # the upper triangle changed
    y = T.dmatrix("y")
    f = theano.function([y], [T.slinalg.cholesky(y), *T.nlinalg.eigh(y)])
    for got, want in zip(f(junk), f(s)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    a, b = T.dmatrix("a"), T.dmatrix("b")
    lower = theano.function([a, b], T.slinalg.solve_lower_triangular(a, b))
    upper = theano.function([a, b], T.slinalg.solve_upper_triangular(a, b))
    m, rhs = general(4), _rng.normal(size=(4, 2))
    np.testing.assert_allclose(lower(m, rhs), np.linalg.solve(np.tril(m), rhs), rtol=1e-12)
    np.testing.assert_allclose(upper(m, rhs), np.linalg.solve(np.triu(m), rhs), rtol=1e-12)


def test_gradients_of_the_other_forms():
    verify_grad(lambda m: T.slinalg.cholesky(m, lower=False), [spd(3)])
    verify_grad(lambda m: T.nlinalg.eigh(m, "U")[1] * np.arange(9.0).reshape(3, 3), [spd(3)])
    verify_grad(lambda m, v: T.slinalg.solve_lower_triangular(m, v), [general(3), np.ones(3)])
    verify_grad(lambda m, v: T.slinalg.solve_symmetric(m, v), [spd(3), np.ones((3, 2))])
    verify_grad(lambda m: T.nlinalg.matrix_power(m, -2), [general(3)])


def test_forward_mode_of_the_inverse():
    x, e = T.dmatrix("x"), T.dmatrix("e")
    jv = theano.function([x, e], T.Rop(T.nlinalg.matrix_inverse(x), x, e))
    a, d = general(4), _rng.normal(size=(4, 4))
    eps = 1e-6
    fd = (np.linalg.inv(a + eps * d) - np.linalg.inv(a - eps * d)) / (2 * eps)
    np.testing.assert_allclose(jv(a, d), fd, rtol=1e-6, atol=1e-8)


def test_theano_module_names():
    import theon.sandbox.linalg as sl
    assert T.nlinalg.extract_diag(T.dmatrix()).ndim == 1
    assert T.nlinalg.alloc_diag(T.dvector()).ndim == 2
    assert sl.matrix_inverse is T.nlinalg.matrix_inverse and sl.cholesky is T.slinalg.cholesky
    assert T.slinalg.eigvalsh(T.dmatrix()).ndim == 1
    x = T.dmatrix("x")
    assert T.nlinalg.matrix_power(x, 0).eval({x: general(3)}).tolist() == np.eye(3).tolist()


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="square matrix"):
        T.nlinalg.det(T.TensorType("float64", shape=(2, 3))("x"))
    with pytest.raises(ValueError, match="2-d"):
        T.nlinalg.matrix_inverse(T.dvector("v"))
    with pytest.raises(ValueError, match="A_structure"):
        T.slinalg.solve(T.dmatrix(), T.dvector(), A_structure="banded")
    x = T.dmatrix("x")
    f = theano.function([x], T.nlinalg.matrix_inverse(x))
    with pytest.raises(ValueError, match="square matrix") as info:
        f(np.ones((2, 3)))
    assert "test_linalg.py" in str(info.value)  # the user's line that built the node
    a, b = T.dmatrix("a"), T.dvector("b")
    g = theano.function([a, b], T.slinalg.solve(a, b))
    with pytest.raises(ValueError, match="first lengths differ"):
        g(np.eye(3), np.ones(4))


def test_a_singular_matrix_raises_numpys_error_with_the_node():
    x = T.dmatrix("x")
    f = theano.function([x], T.nlinalg.matrix_inverse(x))
    with pytest.raises(np.linalg.LinAlgError) as info:
        f(np.zeros((3, 3)))
    assert "test_linalg.py" in str(info.value)
    c = theano.function([x], T.slinalg.cholesky(x))
    with pytest.raises(np.linalg.LinAlgError):
        c(-np.eye(2))


def test_svd_qr_pinv_and_norm_match_numpy():
    x, v = T.dmatrix("x"), T.dvector("v")
    a, b = _rng.normal(size=(5, 3)), _rng.normal(size=4)
    u, s, vh = T.nlinalg.svd(x, full_matrices=False)
    q, r = T.nlinalg.qr(x)
    orders = [None, "fro", 1, -1, np.inf, -np.inf]
    f = theano.function([x, v], [u, s, vh, T.nlinalg.svd(x, compute_uv=False), q, r,
                                 T.nlinalg.qr(x, "complete")[0], T.nlinalg.pinv(x)]
                        + [T.nlinalg.norm(x, o) for o in orders]
                        + [T.nlinalg.norm(v, o) for o in (None, 3, 0, -np.inf)])
    got = f(a, b)
    want_u, want_s, want_vh = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(got[1], want_s, rtol=1e-12)
    np.testing.assert_allclose(got[0] * got[1] @ got[2], a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[3], want_s, rtol=1e-12)
    np.testing.assert_allclose(got[4] @ got[5], a, rtol=1e-10, atol=1e-12)
    assert got[6].shape == (5, 5)
    np.testing.assert_allclose(got[7], np.linalg.pinv(a), rtol=1e-10, atol=1e-12)
    want = [np.linalg.norm(a, o) for o in orders] + \
        [np.linalg.norm(b, o) for o in (None, 3, 0, -np.inf)]
    np.testing.assert_allclose(got[8:], want, rtol=1e-12)
    with pytest.raises(ValueError, match="not supported"):
        T.nlinalg.norm(x, 2)
