"""``scan_checkpoints`` (scan/checkpoints.py): the states at every ``save_every_N`` steps equal
scan's rows there, its gradient equals scan's (and finite differences), padding, ``n_steps``,
several states, and the errors for what it does not take."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad

_rng = np.random.default_rng(5)


def rnd(*shape, scale=1.0):
    return _rng.normal(size=shape) * scale


def step(x_t, h, W):
    return T.tanh(T.dot(h, W) + x_t)


def both(n_rows, every, n_steps=None, padding=True):
    x, h0, W = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W")
    hc, _ = theano.scan_checkpoints(step, sequences=x, outputs_info=h0, non_sequences=W,
                                    save_every_N=every, n_steps=n_steps, padding=padding)
    h, _ = theano.scan(step, sequences=x, outputs_info=h0, non_sequences=W, n_steps=n_steps)
    f = theano.function([x, h0, W], [hc, h] + T.grad((hc[-1] ** 2).sum(), [W, h0, x])
                        + T.grad((h[-1] ** 2).sum(), [W, h0, x]))
    return f(rnd(n_rows, 3), rnd(3), rnd(3, 3, scale=0.6))


@pytest.mark.parametrize("n, every", [(7, 3), (6, 3), (5, 1), (4, 10), (1, 2)])
def test_states_at_the_checkpoints_and_gradient_equal_scans(n, every):
    hc, h, *grads = both(n, every)
    ends = [min(k + every, n) - 1 for k in range(0, n, every)]
    np.testing.assert_allclose(hc, h[ends], rtol=1e-13, atol=1e-15)
    for g, want in zip(grads[:3], grads[3:]):
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-13)


def test_n_steps_shorter_than_the_sequence_and_no_padding():
    hc, h, *grads = both(8, 2, n_steps=5)
    np.testing.assert_allclose(hc, h[[1, 3, 4]], rtol=1e-13)
    for g, want in zip(grads[:3], grads[3:]):
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-13)
    hc, h, *_ = both(6, 3, padding=False)  # 6 rows: two whole chunks
    np.testing.assert_allclose(hc, h[[2, 5]], rtol=1e-13)


def test_verify_grad_with_two_states():
    def loop(x, h0, c0, W):
        (h, c), _ = theano.scan_checkpoints(
            lambda x_t, h, c, W: [T.tanh(T.dot(h, W) + x_t), c * 0.5 + h.sum()],
            sequences=x, outputs_info=[h0, c0], non_sequences=W, save_every_N=2)
        return (h[-1] ** 2).sum() + c[-1]
    verify_grad(loop, [rnd(5, 2), rnd(2), np.float64(0.3), rnd(2, 2, scale=0.5)], rng=_rng)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sequences=dict(input=T.dmatrix(), taps=[-1, 0])), "taps"),
    (dict(outputs_info=[dict(initial=T.dvector(), taps=[-2])]), "taps"),
    (dict(outputs_info=[None]), "None"),
    (dict(save_every_N=0), "positive"),
])
def test_what_it_refuses(kwargs, match):
    args = dict(sequences=T.dmatrix("x"), outputs_info=[T.dvector("h0")],
                non_sequences=T.dmatrix("W"))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        theano.scan_checkpoints(step, **args)
