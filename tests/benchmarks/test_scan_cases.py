"""The scan benchmark cases (W3: an RNN's forward and BPTT gradient; W3b: a tiny RNN's
per-step cost) compute the same thing in every implementation, so their rows compare equal
work: theon's gradient through scan against the hand-written numpy BPTT, exactly in float64
and to float32 rounding at the benchmark's own size."""
import numpy as np
import pytest
import theon as theano
from theon.benchmarks import cases


def _small(dtype="float64"):
    return cases.rnn_data(7, 3, 5, 6, dtype, seed=3)


def test_numpy_bptt_is_the_gradient_of_its_loss():
    d = _small()
    args = cases._rnn_args(d)
    loss, *grads = cases.numpy_rnn_bptt(*args)
    eps = 1e-6
    for k, name in enumerate(cases.RNN_ARGS[1:], start=1):
        value = args[k]
        num = np.zeros_like(value)
        for idx in np.ndindex(*value.shape):
            for sign in (1, -1):
                moved = list(args)
                moved[k] = value.copy()
                moved[k][idx] += sign * eps
                num[idx] += sign * cases._w3_loss(cases.numpy_rnn_forward(*moved)) / (2 * eps)
        np.testing.assert_allclose(grads[k - 1], num, rtol=1e-6, atol=1e-8, err_msg=name)


def test_theon_gradient_through_scan_equals_numpy_bptt_float64():
    d = _small()
    inputs, _, loss = cases.theon_rnn_graph("float64", batched=True)
    f = theano.function(inputs, [loss] + theano.grad(loss, inputs[1:]))
    got = f(*cases._rnn_args(d))
    want = cases.numpy_rnn_bptt(*cases._rnn_args(d))
    for g, w, name in zip(got, want, ("loss",) + cases.RNN_ARGS[1:]):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("theon_builder, numpy_builder", [
    (cases.theon_w3_forward, cases.numpy_w3_forward),
    (cases.theon_w3_grad, cases.numpy_w3_grad),
])
def test_w3_rows_compute_the_same_at_their_size(theon_builder, numpy_builder):
    d = cases.w3_data()
    assert d["x"].shape == (cases.W3_STEPS, cases.W3_BATCH, cases.W3_IN)
    assert d["W_rec"].shape == (cases.W3_HIDDEN, cases.W3_HIDDEN)
    mine, ref = theon_builder(d), numpy_builder(d)
    got, want = mine.fn(*mine.args), ref.fn(*ref.args)
    got, want = (x if isinstance(x, list) else [x] for x in (got, want))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=cases.W3_RTOL, atol=cases.W3_ATOL)


@pytest.mark.parametrize("builder", [cases.theon_w3b, cases.theon_w3b_numpy_path])
def test_w3b_theon_matches_numpy(builder):
    d = cases.w3b_data()
    bench = builder(d)
    got = bench.fn(*bench.args)
    want = cases.numpy_w3b(d).fn(*bench.args)
    assert got.shape == want.shape == (cases.W3B_STEPS, cases.W3B_HIDDEN)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert 0.05 < np.abs(want).mean() < 0.95  # the states neither die out nor saturate


def test_w3_compile_builds_the_gradient_function():
    f = cases.theon_w3_build_and_compile(cases.w3_data()).fn()
    args = cases._rnn_args(_small("float32"))
    for g, w in zip(f(*args), cases.numpy_rnn_bptt(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_scan_cases_are_listed():
    names = [c.name for c in cases.CASES]
    for name in ("w3_rnn_forward", "w3_rnn_grad", "w3_rnn_compile", "w3b_tiny_rnn_numpy_path",
                 "w3b_tiny_rnn"):
        assert name in names
