"""Saturated inputs (magnitude 1000) in float32: values and gradients stay finite."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T

X = T.fmatrix("x")
Y = T.ivector("y")
S = T.fvector("s")
XV = np.array([[1000, -1000, 0, 500], [-1000, -999, 1000, 3], [0.5, 0.1, -0.2, 1000],
               [-1000, -1000, -1000, -1000]], dtype="float32")
YV = np.array([1, 0, 2, 3], dtype="int32")
SV = np.array([-1000, -50, -1, 0, 1, 50, 1000], dtype="float32")
ONE_HOT = np.eye(4, dtype="float32")[YV]
WEIGHTS = np.arange(4, dtype="float32")
T0 = np.float32(0.3)  # a float32 target (a Python 0.3 would be a float64 constant)


def _ce_int(x):
    return T.nnet.categorical_crossentropy(T.nnet.softmax(x), Y)


def _ce_one_hot(x):
    return T.nnet.categorical_crossentropy(T.nnet.softmax(x), ONE_HOT)


def _ce_log_softmax(x):
    return -(T.nnet.log_softmax(x) * ONE_HOT).sum(axis=1)


CASES = {
    "softmax": lambda: T.nnet.softmax(X),
    "softmax_grad": lambda: T.grad((T.nnet.softmax(X) * WEIGHTS).sum(), X),
    "softmax_second_order": lambda: T.grad(
        (T.grad((T.nnet.softmax(X) * WEIGHTS).sum(), X) ** 2).sum(), X),
    "log_softmax": lambda: T.nnet.log_softmax(X),
    "log_softmax_grad": lambda: T.grad(T.nnet.log_softmax(X)[T.arange(4), Y].sum(), X),
    "crossentropy_log_softmax": lambda: _ce_log_softmax(X),
    "crossentropy_log_softmax_grad": lambda: T.grad(_ce_log_softmax(X).sum(), X),
    "crossentropy_softmax_int": lambda: _ce_int(X),
    "crossentropy_softmax_int_grad": lambda: T.grad(_ce_int(X).mean(), X),
    "crossentropy_softmax_one_hot": lambda: _ce_one_hot(X),
    "crossentropy_softmax_one_hot_grad": lambda: T.grad(_ce_one_hot(X).mean(), X),
    "sigmoid": lambda: T.nnet.sigmoid(S),
    "sigmoid_grad": lambda: T.grad(T.nnet.sigmoid(S).sum(), S),
    "sigmoid_second_order": lambda: T.grad(T.grad(T.nnet.sigmoid(S).sum(), S).sum(), S),
    "softplus": lambda: T.nnet.softplus(S),
    "softplus_grad": lambda: T.grad(T.nnet.softplus(S).sum(), S),
    "softplus_second_order": lambda: T.grad(T.grad(T.nnet.softplus(S).sum(), S).sum(), S),
    "sigmoid_binary_crossentropy": lambda: T.nnet.sigmoid_binary_crossentropy(S, T0),
    "sigmoid_binary_crossentropy_grad": lambda: T.grad(
        T.nnet.sigmoid_binary_crossentropy(S, T0).sum(), S),
    "logsumexp": lambda: T.nnet.logsumexp(X, axis=1),
    "logsumexp_grad": lambda: T.grad(T.nnet.logsumexp(X, axis=1).sum(), X),
    "tanh_grad": lambda: T.grad(T.tanh(S).sum(), S),
    "exp_overflow_free_softmax_of_scaled": lambda: T.grad(
        T.nnet.softmax(X * 3).max(axis=1).sum(), X),
}


def _run(out):
    with np.errstate(all="ignore"):  # a warning is fine; a non-finite result is not
        f = theano.function([X, Y, S], out, on_unused_input="ignore")
        return f(XV, YV, SV)


@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_at_saturation(name):
    out = CASES[name]()
    assert out.dtype == "float32", out.dtype
    value = _run(out)
    assert value.dtype == np.float32
    assert np.all(np.isfinite(value)), f"{name}: {value}"


def test_values_at_saturation():
    p, lp, ce, g = _run([T.nnet.softmax(X), T.nnet.log_softmax(X), _ce_int(X),
                         T.grad(_ce_int(X).sum(), X)])
    np.testing.assert_allclose(p[0], [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(p[3], [0.25] * 4, atol=1e-6)
    np.testing.assert_allclose(lp[0], [0, -2000, -1000, -500], rtol=1e-6)
    np.testing.assert_allclose(ce, [2000, 2000, 1000.2, np.log(4)], rtol=1e-5)
    want = p.copy()
    want[np.arange(4), YV] -= 1
    np.testing.assert_allclose(g, want, atol=1e-6)
    s, gs, sp, gsp = _run([T.nnet.sigmoid(S), T.grad(T.nnet.sigmoid(S).sum(), S),
                           T.nnet.softplus(S), T.grad(T.nnet.softplus(S).sum(), S)])
    np.testing.assert_allclose(s[[0, 3, 6]], [0, 0.5, 1])
    np.testing.assert_allclose(gs[[0, 3, 6]], [0, 0.25, 0])
    np.testing.assert_allclose(sp[[0, 3, 6]], [0, np.log(2), 1000], rtol=1e-6)
    np.testing.assert_allclose(gsp[[0, 3, 6]], [0, 0.5, 1])


def test_binary_crossentropy_of_sigmoid_grad_at_saturation():
    # built from the logits, so the gradient is sigmoid(s) - t even where sigmoid(s) is 0 or 1
    value = _run(T.grad(T.nnet.binary_crossentropy(T.nnet.sigmoid(S), T0).sum(), S))
    assert np.all(np.isfinite(value))
    s = SV.astype(np.float64)
    np.testing.assert_allclose(value, 0.5 * (1 + np.tanh(s / 2)) - 0.3, rtol=1e-5, atol=1e-6)
