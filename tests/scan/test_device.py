"""scan on the device (scan/device.py), on the CPU stand-in: the loop's states, rows and stacked
outputs stay in device memory (only the arguments go up and the outputs come back, once a
call), forward and through T.grad's reverse loop, with the values of the CPU path; a loop
whose rows would change sides runs on the host, named by assert_no_cpu_op."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon import config
from theon.backends.cuda.backend import HostOpError

PY = theano.Mode(linker="py")


def _rnn(dtype: str, grads: bool):
    x = T.tensor3("x", dtype=dtype)
    h0 = T.matrix("h0", dtype=dtype)
    W, U, b = T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype), T.vector("b", dtype=dtype)
    h, _ = theano.scan(lambda x_t, h, W, U, b: T.tanh(T.dot(x_t, W) + T.dot(h, U) + b),
                       sequences=x, outputs_info=h0, non_sequences=[W, U, b])
    cost = (h ** 2).sum()
    outs = [h, cost] + (T.grad(cost, [h0, W, U, b]) if grads else [])
    rng = np.random.default_rng(5)
    args = [(rng.normal(size=s) * 0.5).astype(dtype)
            for s in [(6, 3, 4), (3, 5), (4, 5), (5, 5), (5,)]]
    return [x, h0, W, U, b], outs, args


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("grads", [False, True])
def test_an_rnn_and_its_gradient_run_on_the_device(device, dtype, grads):
    inputs, outs, args = _rnn(dtype, grads)
    want = theano.function(inputs, outs, mode=PY)(*args)
    config.assert_no_cpu_op = "raise"
    try:
        f = theano.function(inputs, outs)
    finally:
        config.assert_no_cpu_op = "ignore"
    f(*args)
    device.stats.reset()
    got = f(*args)
    tol = 1e-4 if dtype == "float32" else 1e-11
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    # once a call: the five arguments up, the outputs down; nothing per step (6 steps)
    assert device.stats.to_device_calls == len(args)
    assert device.stats.to_host_calls == len(outs)


def test_a_loop_over_scalar_rows_runs_on_the_host(device):
    # a float vector's rows are scalars, which a device body keeps on the host: the loop
    # runs there, with its transfers, and assert_no_cpu_op names it
    x, h0 = T.dvector("x"), T.dscalar("h0")
    h, _ = theano.scan(lambda x_t, h: h * 0.5 + x_t, sequences=x, outputs_info=h0)
    xs, start = np.linspace(-1, 1, 5), np.float64(0.25)
    f = theano.function([x, h0], h)
    np.testing.assert_allclose(f(xs, start), theano.function([x, h0], h, mode=PY)(xs, start),
                               rtol=1e-12)
    config.assert_no_cpu_op = "raise"
    try:
        with pytest.raises(HostOpError, match="Scan"):
            theano.function([x, h0], h)
    finally:
        config.assert_no_cpu_op = "ignore"
