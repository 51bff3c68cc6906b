"""``T.Rop`` / ``T.Lop`` against jacobian-vector products, and ``jacobian`` / ``hessian``."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T

rng = np.random.default_rng(7)

x = T.vector("x")
A = T.matrix("A")
M = T.matrix("M")
XV = rng.normal(size=4)
AV = rng.normal(size=(3, 4))
MV = rng.normal(size=(3, 4))

# name -> (expression builder over (x, A, M), wrt name, numpy jacobian or None)
GRAPHS = {
    "elementwise": (lambda: T.tanh(x) * x, "x",
                    lambda: np.diag((1 - np.tanh(XV) ** 2) * XV + np.tanh(XV))),
    "dot": (lambda: T.dot(A, x), "x", lambda: AV),
    "dot_wrt_matrix": (lambda: T.dot(A, x), "A", None),
    "softmax": (lambda: T.nnet.softmax(x), "x", None),
    "softmax_matrix": (lambda: T.nnet.softmax(M), "M", None),
    "sum": (lambda: T.sum(x ** 2), "x", lambda: 2 * XV),
    "sum_axis": (lambda: T.sum(M ** 2, axis=1), "M", None),
    "subtensor": (lambda: x[1:3] * 2, "x", lambda: 2 * np.eye(4)[1:3]),
    "advanced_subtensor": (lambda: x[[0, 0, 3]], "x", lambda: np.eye(4)[[0, 0, 3]]),
    "reshape_dimshuffle": (lambda: T.reshape(x, (2, 2)).T, "x", None),
    "dimshuffle_matrix": (lambda: M.dimshuffle(1, "x", 0), "M", None),
    "mlp_layer": (lambda: T.nnet.sigmoid(T.dot(M, x)), "x", None),
}
VARS = {"x": (x, XV), "A": (A, AV), "M": (M, MV)}


def _fn(outputs):
    return theano.function([x, A, M], outputs, on_unused_input="ignore")


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_rop_and_lop_match_jacobian(name):
    build, wrt_name, np_jac = GRAPHS[name]
    f = build()
    wrt, wv = VARS[wrt_name]
    v = wrt.type("v")
    u = T.TensorType("float64", shape=(None,) * f.ndim)("u")
    J = T.jacobian(f, wrt)
    R = T.Rop(f, wrt, v)
    L = T.Lop(f, wrt, u)
    fun = theano.function([x, A, M, v, u], [f, J, R, L], on_unused_input="ignore")
    fv0 = _fn(f)(XV, AV, MV)
    vv = rng.normal(size=wv.shape)
    uv = rng.normal(size=np.shape(fv0))
    fv, jv, rv, lv = fun(XV, AV, MV, vv, uv)
    assert jv.shape == np.shape(fv) + wv.shape
    assert rv.shape == np.shape(fv)
    assert lv.shape == wv.shape
    np.testing.assert_allclose(rv, np.tensordot(jv, vv, axes=wv.ndim), atol=1e-12)
    np.testing.assert_allclose(lv, np.tensordot(uv, jv, axes=np.ndim(fv)), atol=1e-12)
    if np_jac is not None:
        np.testing.assert_allclose(jv, np_jac(), atol=1e-12)


def test_rop_numpy_values():
    v = T.vector("v")
    r = T.Rop(T.tanh(x), x, v)
    vv = rng.normal(size=4)
    np.testing.assert_allclose(theano.function([x, v], r)(XV, vv), (1 - np.tanh(XV) ** 2) * vv)
    # linear map: Rop is the map itself
    W = T.matrix("W")
    Wv = rng.normal(size=(4, 4))
    r = T.Rop(T.dot(x, W), W, W)
    np.testing.assert_allclose(theano.function([x, W], r)(XV, Wv), XV @ Wv)


def test_lop_numpy_values():
    u = T.vector("u")
    lop = T.Lop(T.dot(A, x), x, u)
    uv = rng.normal(size=3)
    f_lop = theano.function([A, x, u], lop, on_unused_input="ignore")
    np.testing.assert_allclose(f_lop(AV, XV, uv), uv @ AV)
    lop_a = T.Lop(T.dot(A, x), A, u)
    f_lop_a = theano.function([A, x, u], lop_a, on_unused_input="ignore")
    np.testing.assert_allclose(f_lop_a(AV, XV, uv),
                               np.outer(uv, XV))


def test_rop_lop_with_lists():
    y = T.vector("y")
    v1, v2 = T.vector("v1"), T.vector("v2")
    f1, f2 = x * y, T.sin(x) + y ** 2
    r1, r2 = T.Rop([f1, f2], [x, y], [v1, v2])
    yv, a, b = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    o1, o2 = theano.function([x, y, v1, v2], [r1, r2])(XV, yv, a, b)
    np.testing.assert_allclose(o1, yv * a + XV * b)
    np.testing.assert_allclose(o2, np.cos(XV) * a + 2 * yv * b)
    u1, u2 = T.vector("u1"), T.vector("u2")
    lx, ly = T.Lop([f1, f2], [x, y], [u1, u2])
    o1, o2 = theano.function([x, y, u1, u2], [lx, ly])(XV, yv, a, b)
    np.testing.assert_allclose(o1, a * yv + b * np.cos(XV))
    np.testing.assert_allclose(o2, a * XV + b * 2 * yv)


def test_rop_errors():
    with pytest.raises(ValueError):
        T.Rop(T.tanh(x), [x], [])
    with pytest.raises(ValueError):
        T.Rop(T.tanh(x), x, T.matrix("bad"))
    with pytest.raises(ValueError):
        T.Lop(T.tanh(x), x, T.matrix("bad"))


def test_jacobian_of_linear_map_is_the_matrix():
    J = T.jacobian(T.dot(A, x), x)
    np.testing.assert_allclose(theano.function([A, x], J)(AV, XV), AV)


def test_hessian_of_cubic():
    H = T.hessian(T.sum(x ** 3), x)
    np.testing.assert_allclose(theano.function([x], H)(XV), np.diag(6 * XV))


def test_hessian_of_quadratic_form_and_list():
    y = T.vector("y")
    Q = rng.normal(size=(4, 4))
    cost = T.dot(x, T.dot(Q, x)) + T.sum(y ** 2 * x)
    hx, hy = T.hessian(cost, [x, y])
    yv = rng.normal(size=4)
    a, b = theano.function([x, y], [hx, hy])(XV, yv)
    np.testing.assert_allclose(a, Q + Q.T)
    np.testing.assert_allclose(b, np.diag(2 * XV))


def test_jacobian_shapes_and_lists():
    expr = T.tanh(M) * T.sum(x)
    Jm, Jx = T.jacobian(expr, [M, x])
    a, b = theano.function([M, x], [Jm, Jx])(MV, XV)
    assert a.shape == (3, 4, 3, 4)
    assert b.shape == (3, 4, 4)
    s = XV.sum()
    want_m = np.zeros((3, 4, 3, 4))
    for i in range(3):
        for j in range(4):
            want_m[i, j, i, j] = (1 - np.tanh(MV[i, j]) ** 2) * s
    np.testing.assert_allclose(a, want_m)
    np.testing.assert_allclose(b, np.broadcast_to(np.tanh(MV)[:, :, None], (3, 4, 4)))
    # scalar expression: the gradient
    g = T.jacobian(T.sum(x ** 2), x)
    np.testing.assert_allclose(theano.function([x], g)(XV), 2 * XV)
    # matrix wrt of a vector expression
    J = T.jacobian(T.dot(M, x), M)
    assert theano.function([M, x], J)(MV, XV).shape == (3, 3, 4)


def test_jacobian_disconnected():
    y = T.vector("y")
    with pytest.raises(theano.gradient.DisconnectedInputError):
        T.jacobian(T.tanh(x), y)
    J = T.jacobian(T.tanh(x), [x, y], disconnected_inputs="ignore")
    a, b = theano.function([x, y], J)(XV, np.ones(2))
    assert a.shape == (4, 4) and b.shape == (4, 2)
    np.testing.assert_array_equal(b, 0)


def test_jacobian_against_finite_differences():
    from theon.gradient import numeric_grad
    expr = T.nnet.softmax(T.dot(A, x))[0]  # (the softmax of a vector is a row)
    J = theano.function([A, x], T.jacobian(expr, x))(AV, XV)
    f = theano.function([A, x], expr)
    for i in range(3):
        num = numeric_grad(lambda xv, i=i: f(AV, xv)[i], [XV])[0]
        np.testing.assert_allclose(J[i], num, atol=1e-7)
