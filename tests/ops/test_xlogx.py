"""``T.xlogx.xlogx`` and ``T.xlogx.xlogy0`` (ops/xlogx.py): values against numpy, 0 where x
is 0 whatever y is (no NaN, in the values or the gradients), gradients by finite differences
away from 0, and float32 kept float32."""
import numpy as np
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad


def test_values_and_zero():
    x, y = T.dvector("x"), T.dvector("y")
    f = theano.function([x, y], [T.xlogx.xlogy0(x, y), T.xlogx.xlogx(x)])
    xs, ys = np.array([0, 0.5, 1, 0, 2]), np.array([0, 0.25, 1, -3, 3])
    a, b = f(xs, ys)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(a, np.where(xs == 0, 0, xs * np.log(ys)))
        np.testing.assert_allclose(b, np.where(xs == 0, 0, xs * np.log(xs)))
    g = theano.function([x, y], T.grad(T.xlogx.xlogy0(x, y).sum() + T.xlogx.xlogx(x).sum(),
                                       [x, y]))
    gx, gy = g(xs, ys)
    assert np.isfinite(gx).all() and np.isfinite(gy).all()
    np.testing.assert_allclose(gx[[1, 2, 4]], np.log(ys[[1, 2, 4]]) + np.log(xs[[1, 2, 4]]) + 1)
    np.testing.assert_allclose(gy[[1, 2, 4]], xs[[1, 2, 4]] / ys[[1, 2, 4]])
    assert gx[0] == gy[0] == gx[3] == gy[3] == 0


def test_gradients_by_finite_differences():
    rng = np.random.default_rng(2)
    verify_grad(lambda x, y: T.xlogx.xlogy0(x, y), [rng.uniform(0.2, 2, 5),
                                                   rng.uniform(0.2, 2, 5)], rng=rng)
    verify_grad(T.xlogx.xlogx, [rng.uniform(0.2, 2, (2, 3))], rng=rng)


def test_float32_stays_float32():
    x = T.fmatrix("x")
    assert T.xlogx.xlogx(x).dtype == "float32"
    assert T.xlogx.xlogy0(x, T.fmatrix("y")).dtype == "float32"
