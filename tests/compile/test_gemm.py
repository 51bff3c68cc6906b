"""Gemm (``b * z + a * dot(x, y)``): its thunk with and without a buffer to write into, and the
specialize rule that makes it from a dot followed by a scaled add."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.ops import cblas
from theon.ops.blas import DotAdd, Gemm

NO_REWRITES = theano.Mode(optimizer=None)
rng = np.random.default_rng(7)


def _thunk(dtype="float64", z_shape=(None, None), x_ndim=2, y_ndim=2):
    z = T.TensorType(dtype, shape=z_shape)("z")
    a, b = T.scalar("a", dtype=dtype), T.scalar("b", dtype=dtype)
    x = T.TensorType(dtype, shape=(None,) * x_ndim)("x")
    y = T.TensorType(dtype, shape=(None,) * y_ndim)("y")
    node = Gemm()(z, a, x, y, b).owner
    return node.op.impl(node)


def _want(z, a, x, y, b):
    return b * z.astype(np.float64) + a * (x.astype(np.float64) @ y.astype(np.float64))


LAYOUTS = {
    "c": lambda m: np.ascontiguousarray(m),
    "f": lambda m: np.asfortranarray(m),
    "strided": lambda m: np.repeat(m, 2, axis=1)[:, ::2],
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scales", [(1.0, 1.0), (-0.1, 1.0), (0.5, -2.0), (1.0, 0.0)])
@pytest.mark.parametrize("target", ["fresh", "z", "other", "x"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_thunk_values(dtype, scales, target, layout):
    run = _thunk(dtype)
    a, b = (np.asarray(s, dtype=dtype) for s in scales)
    x = LAYOUTS[layout](rng.standard_normal((4, 4)).astype(dtype))
    y = LAYOUTS[layout](rng.standard_normal((4, 4)).astype(dtype))
    z = LAYOUTS[layout](rng.standard_normal((4, 4)).astype(dtype))
    want = _want(z, a, x, y, b)
    out = {"fresh": None, "z": z, "other": np.empty((4, 4), dtype), "x": x}[target]
    keep = [v.copy() for v in (z, x, y)]
    got = run(z, a, x, y, b, out=out)
    tol = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert got.dtype == dtype
    if out is not None:
        assert got is out  # written where it was asked to be
    for v, k, name in zip((z, x, y), keep, "zxy"):
        if v is not out:  # inputs other than the buffer are left alone
            np.testing.assert_array_equal(v, k, err_msg=name)


def test_thunk_broadcast_addend_and_vectors():
    run = _thunk("float64", z_shape=(1, None))
    x, y, z = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
    a, b = np.asarray(2.0), np.asarray(-1.0)
    want = _want(z, a, x, y, b)
    np.testing.assert_allclose(run(z, a, x, y, b), want)
    np.testing.assert_allclose(run(z, a, x, y, b, out=np.empty((3, 5))), want)
    mv = _thunk("float64", z_shape=(None,), y_ndim=1)
    v, w = rng.standard_normal(4), rng.standard_normal(3)
    want = 2 * (x @ v) - w
    np.testing.assert_allclose(mv(w, a, x, v, b), want)
    np.testing.assert_allclose(mv(w, a, x, v, b, out=w), want)


def test_thunk_ignores_a_buffer_that_does_not_fit():
    run = _thunk("float64")
    x, y, z = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    a, b = np.asarray(1.0), np.asarray(1.0)
    for bad in (np.empty((5, 3)), np.empty((3, 5), "float32"), np.broadcast_to(0.0, (3, 5))):
        got = run(z, a, x, y, b, out=bad)
        assert got is not bad
        np.testing.assert_allclose(got, z + x @ y)


def test_thunk_errors_name_the_shapes():
    run = _thunk("float64")
    a = np.asarray(1.0)
    with pytest.raises(ValueError, match=r"dot \+ add: shapes \(3, 4\), \(5, 2\)"):
        run(np.zeros((3, 2)), a, np.zeros((3, 4)), np.zeros((5, 2)), a)
    with pytest.raises(ValueError, match="not broadcastable"):
        run(np.zeros((3, 2)), a, np.zeros((1, 4)), np.zeros((4, 2)), a)
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="not broadcastable"):
        run(z, a, np.zeros((1, 4)), np.zeros((4, 2)), a, out=z)
    np.testing.assert_array_equal(z, 0)  # a refused call writes nothing


@pytest.mark.skipif(not cblas.available("float32"), reason="numpy's BLAS exports no cblas gemm")
@pytest.mark.parametrize("z_layout", ["c", "f"])
@pytest.mark.parametrize("x_layout", ["c", "f"])
def test_blas_accumulates_into_z(z_layout, x_layout, monkeypatch):
    calls = []
    real = cblas._gemms[np.dtype("float32")]
    monkeypatch.setitem(cblas._gemms, np.dtype("float32"),
                        lambda *a: calls.append(1) or real(*a))
    run = _thunk("float32")
    x = LAYOUTS[x_layout](rng.standard_normal((5, 3)).astype("float32"))
    y = rng.standard_normal((3, 4)).astype("float32")
    z = LAYOUTS[z_layout](rng.standard_normal((5, 4)).astype("float32"))
    a, b = np.asarray(-0.1, "float32"), np.asarray(1.0, "float32")
    want = _want(z, a, x, y, b)
    assert run(z, a, x, y, b, out=z) is z
    assert calls, "BLAS did not accumulate into z"
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)


def _views(m: np.ndarray) -> dict:
    """``m``'s values in layouts BLAS may or may not read in place."""
    big = np.zeros((m.shape[0] * 2 + 1, m.shape[1] * 3 + 2), m.dtype)
    sliced = big[1:1 + m.shape[0], 2:2 + m.shape[1]]  # a row stride wider than the row
    sliced[...] = m
    wide = np.zeros((m.shape[1], m.shape[0] * 2 + 3), m.dtype)[:, 1:1 + m.shape[0]].T
    wide[...] = m  # a transposed view with a leading dimension wider than its rows
    every_other = np.zeros((m.shape[0], m.shape[1] * 2), m.dtype)[:, ::2]
    every_other[...] = m  # no unit stride either way: BLAS cannot read it
    reversed_ = m[::-1].copy()[::-1]
    return {"c": m.copy(), "f": np.array(m, order="F"), "sliced": sliced,
            "wide": wide, "every_other": every_other, "reversed": reversed_}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(5, 3, 4), (1, 3, 4), (5, 1, 4), (5, 3, 1), (1, 1, 1)])
def test_gemm_into_every_layout(dtype, shape):
    m, k, n = shape
    X, Y, Z = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (m, n)))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for (xn, x), (yn, y), zn in itertools.product(_views(X).items(), _views(Y).items(),
                                                  _views(Z)):
        z = _views(Z)[zn]  # fresh: the call writes into it
        before = z.copy()
        done = cblas.gemm_into(z, -0.5, x, y, 2.0)
        if done:
            np.testing.assert_allclose(z, 2.0 * Z - 0.5 * (X @ Y), rtol=tol, atol=tol,
                                       err_msg=f"x {xn}, y {yn}, z {zn}")
        else:
            np.testing.assert_array_equal(z, before)
            assert not cblas.available(dtype) or "every_other" in (xn, yn, zn) or \
                "reversed" in (xn, yn, zn), f"x {xn}, y {yn}, z {zn} should go to BLAS"


def test_gemm_into_refuses_overlap_and_mixed_dtypes():
    z = rng.standard_normal((4, 4))
    assert not cblas.gemm_into(z, 1.0, z, z.copy(), 1.0)
    assert not cblas.gemm_into(z, 1.0, z.astype("float32"), z.copy(), 1.0)
    frozen = z.copy()
    frozen.flags.writeable = False
    assert not cblas.gemm_into(frozen, 1.0, z, z, 1.0)


def test_dotadd_is_a_gemm_with_unit_scales():
    a, b, c = T.dmatrix("a"), T.dmatrix("b"), T.dvector("c")
    node = DotAdd()(a, b, c).owner
    assert isinstance(node.op, Gemm)
    run = node.op.impl(node)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    C = rng.standard_normal((1, 2))  # the node's addend is the bias padded to a row
    np.testing.assert_allclose(run(A, B, C), A @ B + C)
    out = np.empty((3, 2))
    assert run(A, B, C, out=out) is out
    np.testing.assert_allclose(out, A @ B + C)


def _ops(f) -> list:
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def test_sgd_update_becomes_a_gemm():
    x, g = T.fmatrix("x"), T.fmatrix("g")
    W = theano.shared(rng.standard_normal((4, 3)).astype("float32"), "W")
    f = theano.function([x, g], [], updates=[(W, W - np.float32(0.1) * T.dot(x.T, g))])
    assert "Gemm" in _ops(f) and "Dot" not in _ops(f)
    X, G = rng.standard_normal((5, 4)).astype("float32"), rng.standard_normal((5, 3)).astype(
        "float32")
    before = W.get_value()
    f(X, G)
    np.testing.assert_allclose(W.get_value(), before - 0.1 * X.T @ G, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda z, x, y, s: z - s * T.dot(x, y),
    lambda z, x, y, s: T.dot(x, y) * s + z,
    lambda z, x, y, s: z - T.dot(x, y),
    lambda z, x, y, s: T.dot(x, y) - z,
    lambda z, x, y, s: s * z + T.dot(x, y),
    lambda z, x, y, s: s * T.dot(x, y) - s * z,
], ids=["z-s*dot", "dot*s+z", "z-dot", "dot-z", "s*z+dot", "s*dot-s*z"])
def test_rule_forms(build):
    z, x, y, s = T.dmatrix("z"), T.dmatrix("x"), T.dmatrix("y"), T.dscalar("s")
    out = build(z, x, y, s)
    f = theano.function([z, x, y, s], out, on_unused_input="ignore")
    ref = theano.function([z, x, y, s], out, mode=NO_REWRITES, on_unused_input="ignore")
    assert "Gemm" in _ops(f) and "Dot" not in _ops(f)
    args = (rng.standard_normal((3, 5)), rng.standard_normal((3, 4)), rng.standard_normal((4, 5)),
            np.asarray(0.3))
    np.testing.assert_allclose(f(*args), ref(*args), rtol=1e-12)


def test_rule_leaves_integer_and_mixed_dtypes_alone():
    z, x, y = T.imatrix("z"), T.imatrix("x"), T.imatrix("y")
    f = theano.function([z, x, y], z - 2 * T.dot(x, y))
    assert "Gemm" not in _ops(f)
    z32, x64 = T.fmatrix("z"), T.dmatrix("x")
    g = theano.function([z32, x64], z32 - 0.5 * T.dot(x64, x64.T))  # the addend is upcast
    assert "Gemm" not in _ops(g)


def test_gemm_gradient_matches_the_unfused_graph():
    z, x, y, s = T.dmatrix("z"), T.dmatrix("x"), T.dmatrix("y"), T.dscalar("s")
    cost = ((z - s * T.dot(x, y)) ** 2).sum()
    wrt = [z, x, y, s]
    grads = T.grad(cost, wrt)
    f = theano.function(wrt, grads)
    ref = theano.function(wrt, grads, mode=NO_REWRITES)
    args = (rng.standard_normal((3, 5)), rng.standard_normal((3, 4)), rng.standard_normal((4, 5)),
            np.asarray(0.3))
    for got, want in zip(f(*args), ref(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-10)
