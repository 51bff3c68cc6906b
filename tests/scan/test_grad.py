"""Gradients through scan (backpropagation through time, a reverse Scan), against finite
differences in float64 (verify_grad), for every tap kind, non-sequences passed or read
implicitly, shared variables read or updated inside fn, go_backwards, truncate_gradient, second
order and Rop."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.grad.reverse import NullTypeGradError
from theon.gradient import verify_grad
from theon.scan import Scan

_rng = np.random.default_rng(7)


def rnd(*shape, scale=1.0):
    return _rng.normal(size=shape) * scale


def test_rnn_sequence_state_and_non_sequences():
    def rnn(x, W, U, h0):
        h, _ = theano.scan(lambda x_t, h, W, U: T.tanh(T.dot(x_t, W) + T.dot(h, U)),
                           sequences=x, outputs_info=h0, non_sequences=[W, U])
        return h
    verify_grad(rnn, [rnd(5, 3), rnd(3, 4), rnd(4, 4, scale=0.5), rnd(4)], rng=_rng)


def test_the_gradient_is_a_reverse_scan():
    x, h0 = T.dvector("x"), T.dscalar("h0")
    h, _ = theano.scan(lambda v, h: h * v, sequences=x, outputs_info=h0)
    gx, gh0 = T.grad(h.sum(), [x, h0])
    f = theano.function([x, h0], [gx, gh0])
    loops = [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]
    assert any(op.name.startswith("grad_of_") for op in loops)
    xv = np.array([2., 3., 4.])
    a, b = f(xv, 0.5)
    # h = [h0 x0, h0 x0 x1, h0 x0 x1 x2]
    np.testing.assert_allclose(a, [0.5 * (1 + 3 + 12), 0.5 * (2 + 8), 0.5 * 6])
    np.testing.assert_allclose(b, 2 + 6 + 24)


def test_output_taps_minus_two_minus_one():
    def fib(a, c):
        o, _ = theano.scan(lambda a2, a1, c: a2 * c + T.sin(a1),
                           outputs_info=dict(initial=a, taps=[-2, -1]), non_sequences=c,
                           n_steps=5)
        return o
    # three initial rows for two taps: the last one is unused and gets a zero gradient
    verify_grad(fib, [rnd(3, 2), rnd(2)], rng=_rng)


def test_output_taps_not_contiguous():
    def f(a):
        o, _ = theano.scan(lambda a3, a1: a3 * 0.5 + a1 * a1 * 0.3,
                           outputs_info=dict(initial=a, taps=[-3, -1]), n_steps=6)
        return o
    verify_grad(f, [rnd(3)], rng=_rng)


def test_sequence_taps():
    def f(x):
        o, _ = theano.scan(lambda a, b, c: a * b + c ** 2,
                           sequences=dict(input=x, taps=[-2, 0, 1]))
        return o
    verify_grad(f, [rnd(7)], rng=_rng)


def test_go_backwards():
    def f(x, h0):
        o, _ = theano.scan(lambda v, h: h * v + v, sequences=x, outputs_info=h0,
                           go_backwards=True)
        return o
    verify_grad(f, [rnd(4), rnd()], rng=_rng)


def test_map_output_state_and_integer_sequence():
    def f(x):
        (s, m), _ = theano.scan(lambda i, v, acc: [acc + v * T.cast(i, "float64"), T.exp(v)],
                                sequences=[T.arange(x.shape[0]), x],
                                outputs_info=[T.constant(0., dtype="float64"), None])
        return s.sum() + m.sum()
    verify_grad(f, [rnd(5)], rng=_rng)


def test_implicit_non_sequence():
    def f(x, W):
        # W is read by fn without being passed: an implicit input of the loop
        h, _ = theano.scan(lambda x_t, h: T.tanh(x_t + T.dot(h, W)), sequences=x,
                           outputs_info=T.zeros((3,), dtype="float64"))
        return h
    verify_grad(f, [rnd(4, 3), rnd(3, 3, scale=0.5)], rng=_rng)


def test_shared_variable_read_inside_fn():
    W = theano.shared(rnd(3, 3, scale=0.5), name="W")
    x = T.dmatrix("x")
    h, _ = theano.scan(lambda x_t, h: T.tanh(x_t + T.dot(h, W)), sequences=x,
                       outputs_info=T.zeros((3,), dtype="float64"))
    cost = (h ** 2).sum()
    gW = theano.function([x], T.grad(cost, W))
    c = theano.function([x], cost)
    xv, w0, eps = rnd(4, 3), W.get_value(), 1e-6
    num = np.zeros_like(w0)
    for idx in np.ndindex(*w0.shape):
        for sign in (1, -1):
            w = w0.copy()
            w[idx] += sign * eps
            W.set_value(w)
            num[idx] += sign * c(xv) / (2 * eps)
    W.set_value(w0)
    np.testing.assert_allclose(gW(xv), num, rtol=1e-6, atol=1e-8)


def test_truncate_gradient():
    x, h0 = T.dvector("x"), T.dscalar("h0")
    o, _ = theano.scan(lambda v, h: h * v + v, sequences=x, outputs_info=h0,
                       truncate_gradient=2)
    g = theano.function([x, h0], T.grad(o[-1], [x, h0]))
    gx, gh0 = g(np.array([1., 2., 3., 4.]), 0.5)
    # h2 = 18 (h = 1.5, 5, 18, 76): only the last two steps pass a gradient back
    np.testing.assert_allclose(gx, [0., 0., 4 * (5 + 1), 18 + 1])
    assert gh0 == 0.0
    gx, gh0 = g(np.array([3., 4.]), 0.5)  # as long as the truncation: all of it
    np.testing.assert_allclose([gx[0], gx[1], gh0], [4 * 1.5, 0.5 * 3 + 3 + 1, 12.])


@pytest.mark.parametrize("truncate", [-1, 2])
def test_sequences_longer_than_n_steps(truncate):
    # the reverse loop reads the rows of the steps run (it once read the sequence's last rows:
    # a wrong gradient with respect to h0 and W, and a failure with respect to x)
    def rnn(x, y, W, h0):
        h, _ = theano.scan(lambda x_t, y_m1, y_1, h, W: T.tanh(T.dot(h, W) * x_t + y_m1 - y_1),
                           sequences=[x, dict(input=y, taps=[-1, 1])], outputs_info=h0,
                           non_sequences=W, n_steps=3, truncate_gradient=truncate)
        return (h ** 2).sum()
    if truncate < 0:  # (a truncated gradient is not the derivative)
        verify_grad(rnn, [rnd(6, 2), rnd(7, 2), rnd(2, 2, scale=0.7), rnd(2)], rng=_rng)
    x, y, W, h0 = T.dmatrix("x"), T.dmatrix("y"), T.dmatrix("W"), T.dvector("h0")
    gx, gy, gh0 = theano.function([x, y, W, h0], T.grad(rnn(x, y, W, h0), [x, y, h0]))(
        rnd(6, 2), rnd(7, 2), rnd(2, 2), rnd(2))
    assert gx.shape == (6, 2) and not gx[3:].any()  # rows no step read
    assert gy.shape == (7, 2) and not gy[5:].any()
    if truncate == 2:
        assert not gx[0].any() and not gh0.any()  # before the truncation


def test_zero_steps_gradient():
    h0, k = T.dvector("h0"), T.iscalar("k")
    o, _ = theano.scan(lambda h: h * 2, outputs_info=h0, n_steps=k)
    g = theano.function([h0, k], T.grad(o.sum() + h0.sum(), h0))
    np.testing.assert_allclose(g(np.ones(2), 0), [1., 1.])
    np.testing.assert_allclose(g(np.ones(2), 3), [15., 15.])


def test_until_gradient_covers_the_steps_run():
    def loop(x, h0):
        o, _ = theano.scan(lambda v, h: (T.tanh(h * v + v), theano.scan_module.until(h > 0.9)),
                           sequences=x, outputs_info=h0)
        return (o ** 2).sum() + o[-1]
    xv = np.array([0.5, 0.7, 0.9, 1.2, 2.0, -0.3, 0.4])
    x, h0 = T.dvector("x"), T.dscalar("h0")
    o, _ = theano.scan(lambda v, h: (T.tanh(h * v + v), theano.scan_module.until(h > 0.9)),
                       sequences=x, outputs_info=h0)
    n = theano.function([x, h0], o.shape[0])(xv, 0.1)
    assert 1 < n < len(xv)  # it stopped early: the rows after get no gradient
    verify_grad(loop, [xv, np.float64(0.1)], rng=_rng)
    gx = theano.function([x, h0], T.grad(loop(x, h0), x))(xv, 0.1)
    assert gx[:n].all() and not gx[n:].any()


def test_until_with_only_shared_updates_has_no_gradient():
    c = theano.shared(np.float64(1.0), name="c")
    x = T.dvector("x")
    _, upd = theano.scan(lambda v: ({c: c * v}, theano.scan_module.until(v > 1)), sequences=x)
    with pytest.raises(NullTypeGradError, match="until"):
        T.grad(upd[c], x)


def _cost_with_shared_update(xv, cv):
    total, cur = 0.0, cv
    for v in xv:
        total += v * cur
        cur = cur * v
    return total + cur


def test_through_a_shared_variable_updated_inside_fn():
    x = T.dvector("x")
    c = theano.shared(np.float64(1.5), name="c")
    o, updates = theano.scan(lambda v: (v * c, {c: c * v}), sequences=x)
    f = theano.function([x], T.grad(o.sum() + updates[c], [x, c]))
    xv, eps = np.array([0.5, 2.0, 3.0]), 1e-6
    gx, gc = f(xv)
    num_x = [(_cost_with_shared_update(xv + eps * e, 1.5) -
              _cost_with_shared_update(xv - eps * e, 1.5)) / (2 * eps) for e in np.eye(3)]
    num_c = (_cost_with_shared_update(xv, 1.5 + eps) -
             _cost_with_shared_update(xv, 1.5 - eps)) / (2 * eps)
    np.testing.assert_allclose(gx, num_x, rtol=1e-7)
    np.testing.assert_allclose(gc, num_c, rtol=1e-7)
    gx, gc = f(np.zeros(0))  # no step: the final value is the initial one
    assert gx.shape == (0,) and gc == 1.0


def _rnn(x, W, h0):
    h, _ = theano.scan(lambda x_t, h, W: T.tanh(x_t + T.dot(h, W)), sequences=x,
                       outputs_info=h0, non_sequences=W)
    return h


def test_second_order():
    def second(x, W, h0):
        out = _rnn(x, W, h0)
        return T.grad((out * out).sum(), W)
    verify_grad(second, [rnd(4, 3), rnd(3, 3, scale=0.5), rnd(3)], n_tests=1, rng=_rng)


def test_rop_and_hessian_vector_product():
    x, W, h0, V = T.dmatrix("x"), T.dmatrix("W"), T.dvector("h0"), T.dmatrix("V")
    h = _rnn(x, W, h0)
    gW = T.grad((h ** 2).sum(), W)
    f = theano.function([x, W, h0, V], [T.Rop(h, W, V), T.grad((gW * V).sum(), W)])
    h_f, g_f = theano.function([x, W, h0], h), theano.function([x, W, h0], gW)
    xv, wv, hv, vv, eps = rnd(4, 3), rnd(3, 3, scale=0.5), rnd(3), rnd(3, 3), 1e-6
    jv, hess_v = f(xv, wv, hv, vv)
    np.testing.assert_allclose(jv, (h_f(xv, wv + eps * vv, hv) - h_f(xv, wv - eps * vv, hv))
                               / (2 * eps), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(hess_v, (g_f(xv, wv + eps * vv, hv) -
                                        g_f(xv, wv - eps * vv, hv)) / (2 * eps),
                               rtol=1e-6, atol=1e-8)


def test_scan_inside_scan():
    def row_recurrence(row):
        out, _ = theano.scan(lambda v, acc: acc * v + v, sequences=row,
                             outputs_info=T.constant(0.0, dtype="float64"))
        return out
    verify_grad(lambda x: theano.scan(row_recurrence, sequences=x)[0], [rnd(2, 3)], rng=_rng)


def _reverse_loop(x, h0, W):
    """A Scan built with reverse=True: step t reads row n-1-t of x and writes row n-1-t of
    its map output (h_t * W row by row); the state runs from the last row to the first."""
    from theon.scan.basic import ScanSpec
    x_in, h_in, W_in = T.dvector("x_t"), T.dvector("h"), T.dmatrix("W")
    h_new = T.tanh(T.dot(h_in, W_in) + x_in)
    op = Scan([x_in, h_in, W_in], [h_new, 2 * h_new], ScanSpec(
        n_seqs=1, outputs=((-1,), None), n_shared=0, n_nonseqs=1, as_while=False),
        reverse=True)
    return op(x.shape[0], x, h0, W)


def _reverse_loop_numpy(x, h0, W):
    hs, maps, h = [], [None] * len(x), h0
    for t in range(len(x)):
        h = np.tanh(h @ W + x[len(x) - 1 - t])
        hs.append(h)
        maps[len(x) - 1 - t] = 2 * h
    return np.array(hs), np.array(maps)


@pytest.mark.parametrize("linker", ["py", "c"])
def test_a_reverse_loop_reads_and_writes_its_rows_from_the_last(linker):
    x, h0, W = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W")
    f = theano.function([x, h0, W], _reverse_loop(x, h0, W), mode=theano.Mode(linker=linker))
    args = [rnd(40, 3), rnd(3), rnd(3, 3, scale=0.5)]
    for got, want in zip(f(*args), _reverse_loop_numpy(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        assert got.flags.c_contiguous


def test_the_gradient_of_a_reverse_loop():
    # a reverse loop is what T.grad makes; its own gradient is second order
    verify_grad(lambda x, h0, W: _reverse_loop(x, h0, W)[1] ** 2, [rnd(6, 3), rnd(3),
                rnd(3, 3, scale=0.5)], rng=_rng)
    verify_grad(lambda x, h0, W: _reverse_loop(x, h0, W)[0], [rnd(6, 3), rnd(3),
                rnd(3, 3, scale=0.5)], rng=_rng)


def test_the_reverse_loop_reads_the_forward_rows_in_place():
    # no reversed copy: the gradient graph slices the forward loop's rows and the sequences,
    # never reverses them (the reverse loop reads them from the last row)
    x, h0 = T.tensor3("x"), T.dmatrix("h0")
    W, U = T.dmatrix("W"), T.dmatrix("U")
    h, _ = theano.scan(lambda x_t, h, W, U: T.tanh(T.dot(x_t, W) + T.dot(h, U)), sequences=x,
                       outputs_info=h0, non_sequences=[W, U])
    grads = T.grad(h.mean(), [W, U, h0, x])
    f = theano.function([x, h0, W, U], grads)
    nodes = f.maker.fgraph.toposort()
    assert any(isinstance(n.op, Scan) and n.op.reverse for n in nodes)
    assert not [n for n in nodes if type(n.op).__name__ == "Subtensor"
                and any(e[0] == "s" and e[3] == -1 for e in n.op.spec)]
    args = [rnd(7, 2, 3), rnd(2, 4), rnd(3, 4, scale=0.5), rnd(4, 4, scale=0.5)]
    ref = theano.function([x, h0, W, U], grads, mode=theano.Mode(optimizer=None))
    for got, want in zip(f(*args), ref(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
