"""scan, forward: Theano's tutorial programs (only the imports changed) against numpy, taps,
maps, until, shared updates, n_steps and go_backwards, map/reduce/foldl/foldr."""
from __future__ import annotations

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.scan import Scan

floatX = theano.config.floatX


def _scan_nodes(f):
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]


# -- Theano's tutorial programs ------------------------------------------------------------------

def test_tutorial_power():
    k = T.iscalar("k")
    A = T.vector("A")
    result, updates = theano.scan(fn=lambda prior_result, A: prior_result * A,
                                  outputs_info=T.ones_like(A),
                                  non_sequences=A,
                                  n_steps=k)
    final_result = result[-1]
    power = theano.function(inputs=[A, k], outputs=final_result, updates=updates)
    a = np.arange(10, dtype=floatX)
    np.testing.assert_allclose(power(a, 2), a ** 2)
    np.testing.assert_allclose(power(a, 5), a ** 5)
    whole = theano.function([A, k], result)(a, 3)
    assert whole.shape == (3, 10)  # the steps only, not the initial value
    np.testing.assert_allclose(whole, [a, a ** 2, a ** 3])


def test_tutorial_polynomial():
    coefficients = theano.tensor.vector("coefficients")
    x = T.scalar("x")
    max_coefficients_supported = 10000
    components, updates = theano.scan(
        fn=lambda coefficient, power, free_variable: coefficient * (free_variable ** power),
        outputs_info=None,
        sequences=[coefficients, theano.tensor.arange(max_coefficients_supported)],
        non_sequences=x)
    polynomial = components.sum()
    calculate_polynomial = theano.function(inputs=[coefficients, x], outputs=polynomial)
    test_coefficients = np.asarray([1, 0, 2], dtype=np.float32)
    test_value = 3
    assert calculate_polynomial(test_coefficients, test_value) == pytest.approx(
        1.0 * (3 ** 0) + 0.0 * (3 ** 1) + 2.0 * (3 ** 2))


def test_tutorial_fibonacci_taps():
    a = T.vector("a")
    fib, _ = theano.scan(lambda f_tm2, f_tm1: f_tm2 + f_tm1,
                         outputs_info=dict(initial=a, taps=[-2, -1]), n_steps=8)
    out = theano.function([a], fib)(np.array([0, 1], dtype=floatX))
    np.testing.assert_allclose(out, [1, 2, 3, 5, 8, 13, 21, 34])  # not the initial 0, 1


def test_tutorial_until():
    def power_of_2(previous_power, max_value):
        return previous_power * 2, theano.scan_module.until(previous_power * 2 > max_value)

    max_value = T.scalar()
    values, _ = theano.scan(power_of_2,
                            outputs_info=T.constant(1.),
                            non_sequences=max_value,
                            n_steps=1024)
    f = theano.function([max_value], values)
    np.testing.assert_allclose(f(45), [2., 4., 8., 16., 32., 64.])
    np.testing.assert_allclose(f(0.5), [2.])
    assert theano.function([max_value], values.shape)(45)[0] == 6


def test_until_from_scan_module_scan():
    from theon import scan_module
    x = T.dvector("x")
    out, _ = scan_module.scan(lambda v: (v * 2, scan_module.until(v > 2)), sequences=x)
    np.testing.assert_allclose(theano.function([x], out)(np.array([1., 2., 3., 4.])),
                               [2., 4., 6.])


def test_shared_counter_updated_inside_fn():
    counter = theano.shared(np.int64(0), name="counter")
    x = T.dvector("x")

    def step(x_t, acc):
        return acc + x_t * counter, {counter: counter + 1}

    out, updates = theano.scan(step, sequences=x, outputs_info=T.constant(0.0, dtype="float64"))
    assert list(updates) == [counter]
    f = theano.function([x], out, updates=updates)
    np.testing.assert_allclose(f(np.ones(4)), [0., 1., 3., 6.])
    assert counter.get_value() == 4
    np.testing.assert_allclose(f(np.ones(2)), [4., 9.])
    assert counter.get_value() == 6
    # without the updates, the counter is read but not changed
    g = theano.function([x], out)
    g(np.ones(3))
    assert counter.get_value() == 6


def test_fn_returning_only_updates():
    c = theano.shared(np.float64(1.0), name="c")
    out, updates = theano.scan(lambda: {c: c * 2}, n_steps=5)
    assert out is None
    theano.function([], [], updates=updates)()
    assert c.get_value() == 32.0
    outs, _ = theano.scan(lambda: OrderedDict([(c, c + 1)]), n_steps=0, return_list=True)
    assert outs == []


def test_tutorial_elementwise_tanh():
    X = T.matrix("X")
    W = T.matrix("W")
    b_sym = T.vector("b_sym")
    results, updates = theano.scan(lambda v: T.tanh(T.dot(v, W) + b_sym), sequences=X)
    compute_elementwise = theano.function(inputs=[X, W, b_sym], outputs=results)
    x = np.eye(2, dtype=floatX)
    w = np.ones((2, 2), dtype=floatX)
    b = np.ones((2), dtype=floatX)
    b[1] = 2
    np.testing.assert_allclose(compute_elementwise(x, w, b), np.tanh(x.dot(w) + b), rtol=1e-6)


def test_tutorial_vanilla_rnn():
    X = T.vector("X")
    W = T.matrix("W")
    U = T.matrix("U")
    Y = T.matrix("Y")
    V = T.matrix("V")
    P = T.matrix("P")
    results, updates = theano.scan(
        lambda y, p, x_tm1: T.tanh(T.dot(x_tm1, W) + T.dot(y, U) + T.dot(p, V)),
        sequences=[Y, P[::-1]], outputs_info=[X])
    compute_seq = theano.function(inputs=[X, W, Y, U, P, V], outputs=results)
    x = np.zeros((2), dtype=floatX)
    x[1] = 1
    w = np.ones((2, 2), dtype=floatX)
    y = np.ones((5, 2), dtype=floatX)
    y[0, :] = -3
    u = np.ones((2, 2), dtype=floatX)
    p = np.ones((5, 2), dtype=floatX)
    p[0, :] = 3
    v = np.ones((2, 2), dtype=floatX)
    x_res = np.zeros((5, 2), dtype=floatX)
    x_res[0] = np.tanh(x.dot(w) + y[0].dot(u) + p[4].dot(v))
    for i in range(1, 5):
        x_res[i] = np.tanh(x_res[i - 1].dot(w) + y[i].dot(u) + p[4 - i].dot(v))
    np.testing.assert_allclose(compute_seq(x, w, y, u, p, v), x_res, rtol=1e-6)


def test_tutorial_taps_recurrence():
    X = T.matrix("X")
    W = T.matrix("W")
    b_sym = T.vector("b_sym")
    U = T.matrix("U")
    V = T.matrix("V")
    n_sym = T.iscalar("n_sym")
    results, updates = theano.scan(
        lambda x_tm2, x_tm1: T.dot(x_tm2, U) + T.dot(x_tm1, V) + T.tanh(T.dot(x_tm1, W) + b_sym),
        n_steps=n_sym, outputs_info=[dict(initial=X, taps=[-2, -1])])
    compute_seq2 = theano.function(inputs=[X, U, V, W, b_sym, n_sym], outputs=results)
    x = np.zeros((2, 2), dtype=floatX)
    x[1, 1] = 1
    w = 0.5 * np.ones((2, 2), dtype=floatX)
    u = 0.5 * (np.ones((2, 2), dtype=floatX) - np.eye(2, dtype=floatX))
    v = 0.5 * np.ones((2, 2), dtype=floatX)
    n = 10
    b = np.ones((2), dtype=floatX)
    x_res = np.zeros((10, 2))
    x_res[0] = x[0].dot(u) + x[1].dot(v) + np.tanh(x[1].dot(w) + b)
    x_res[1] = x[1].dot(u) + x_res[0].dot(v) + np.tanh(x_res[0].dot(w) + b)
    x_res[2] = x_res[0].dot(u) + x_res[1].dot(v) + np.tanh(x_res[1].dot(w) + b)
    for i in range(2, 10):
        x_res[i] = (x_res[i - 2].dot(u) + x_res[i - 1].dot(v) +
                    np.tanh(x_res[i - 1].dot(w) + b))
    np.testing.assert_allclose(compute_seq2(x, u, v, w, b, n), x_res, rtol=1e-6)


def test_tutorial_jacobian_and_hessian_via_scan():
    x = T.dvector("x")
    y = x ** 2
    J, updates = theano.scan(lambda i, y, x: T.grad(y[i], x),
                             sequences=T.arange(y.shape[0]), non_sequences=[y, x])
    f = theano.function([x], J, updates=updates)
    np.testing.assert_allclose(f(np.array([4., 4.])), [[8., 0.], [0., 8.]])
    cost = y.sum()
    gy = T.grad(cost, x)
    H, updates = theano.scan(lambda i, gy, x: T.grad(gy[i], x),
                             sequences=T.arange(gy.shape[0]), non_sequences=[gy, x])
    f = theano.function([x], H, updates=updates)
    np.testing.assert_allclose(f(np.array([4., 4.])), [[2., 0.], [0., 2.]])


def test_tutorial_norms_and_trace():
    X = T.matrix("X")
    results, updates = theano.scan(lambda x_i: T.sqrt((x_i ** 2).sum()), sequences=[X])
    compute_norm_lines = theano.function(inputs=[X], outputs=results)
    x = np.diag(np.arange(1, 6, dtype=floatX), 1)
    np.testing.assert_allclose(compute_norm_lines(x), np.sqrt((x ** 2).sum(1)))
    floatX_ = theano.config.floatX
    results, updates = theano.scan(
        lambda i, j, t_f: T.cast(X[i, j] + t_f, floatX_),
        sequences=[T.arange(X.shape[0]), T.arange(X.shape[1])],
        outputs_info=np.asarray(0., dtype=floatX_))
    result = results[-1]
    compute_trace = theano.function(inputs=[X], outputs=result)
    x = np.eye(5, dtype=floatX)
    x[0] = np.arange(5, dtype=floatX)
    assert compute_trace(x) == pytest.approx(np.diagonal(x).sum())


# -- taps, lengths, directions ---------------------------------------------------------------

def test_sequence_taps_order_and_shortest_wins():
    x = T.dvector("x")
    y = T.dvector("y")
    out, _ = theano.scan(lambda a, b, c, d: a + 10 * b + 100 * c + 1000 * d,
                         sequences=[dict(input=x, taps=[-2, 1, 0]), y])
    f = theano.function([x, y], out)
    xv, yv = np.arange(6.0), np.arange(10.0, 20.0)
    # x allows 6 - 3 = 3 steps, y 10: the shortest wins; step t reads x[t+2-2], x[t+2+1], ...
    want = [xv[t] + 10 * xv[t + 3] + 100 * xv[t + 2] + 1000 * yv[t] for t in range(3)]
    np.testing.assert_allclose(f(xv, yv), want)


def test_go_backwards():
    x = T.dvector("x")
    out, _ = theano.scan(lambda v, acc: acc * 10 + v, sequences=x,
                         outputs_info=T.constant(0.0, dtype="float64"), go_backwards=True)
    np.testing.assert_allclose(theano.function([x], out)(np.array([1., 2., 3.])),
                               [3., 32., 321.])


def test_n_steps_with_sequences_shorter_than_them():
    x = T.dvector("x")
    k = T.iscalar("k")
    out, _ = theano.scan(lambda v: v * 2, sequences=x, n_steps=k)
    f = theano.function([x, k], out)
    np.testing.assert_allclose(f(np.arange(5.0), 3), [0., 2., 4.])
    assert f(np.arange(5.0), 0).shape == (0,)


def test_zero_steps():
    a = T.dvector("a")
    k = T.iscalar("k")
    out, _ = theano.scan(lambda p: p + 1, outputs_info=a, n_steps=k)
    assert theano.function([a, k], out)(np.ones(3), 0).shape == (0, 3)
    m, _ = theano.scan(lambda: T.zeros((2, 3)), n_steps=k)
    assert theano.function([k], m)(0).shape == (0, 2, 3)


def test_several_outputs_map_and_states():
    x = T.dvector("x")
    (acc, sq, mx), _ = theano.scan(lambda v, s, m: [s + v, v * v, T.maximum(m, v)],
                                   sequences=x,
                                   outputs_info=[T.constant(0.0, dtype="float64"), None,
                                                 dict(initial=x[0], taps=[-1])])
    f = theano.function([x], [acc, sq, mx])
    xv = np.array([3., -1., 5., 2.])
    a, s, m = f(xv)
    np.testing.assert_allclose(a, np.cumsum(xv))
    np.testing.assert_allclose(s, xv ** 2)
    np.testing.assert_allclose(m, np.maximum.accumulate(xv))


def test_matrix_state_and_outer_closure_computed_once():
    W = T.dmatrix("W")
    h0 = T.dmatrix("h0")
    k = T.iscalar("k")
    W2 = W * 2  # read by fn without being passed: an implicit non-sequence, outside the loop
    out, _ = theano.scan(lambda h: T.dot(h, W2), outputs_info=h0, n_steps=k)
    f = theano.function([W, h0, k], out)
    w, h = np.random.default_rng(0).normal(size=(2, 3, 3))
    want, cur = [], h
    for _ in range(4):
        cur = cur @ (w * 2)
        want.append(cur)
    np.testing.assert_allclose(f(w, h, 4), want)
    node, = _scan_nodes(f)
    # the loop's inputs: n_steps, h0, and the product W * 2, computed before the loop
    assert len(node.inputs) == 3 and node.inputs[2].owner is not None
    body = node.op.inner_outputs[0].owner
    assert type(body.op).__name__ != "Elemwise" and set(body.inputs) <= set(node.op.inner_inputs)


@pytest.mark.parametrize("mode", ["FAST_RUN", theano.Mode(linker="py"), "DebugMode"])
def test_outer_work_read_only_by_a_lazy_branch_stays_lazy(mode):
    from theon.ifelse import ifelse
    x, W = T.dvector("x"), T.dmatrix("W")
    # the branch for x_t > 10 would fail (W is not square): no step takes it, so nothing may
    # compute it, before the loop either
    out, _ = theano.scan(lambda x_t, W: ifelse(T.gt(x_t, 10), T.dot(W, W).sum(), x_t * 2),
                         sequences=x, non_sequences=W)
    f = theano.function([x, W], out, mode=mode)
    np.testing.assert_array_equal(f(np.arange(4.0), np.ones((2, 3))), [0, 2, 4, 6])
    with pytest.raises(ValueError):
        f(np.array([1.0, 20.0]), np.ones((2, 3)))  # step 1 takes it
    np.testing.assert_array_equal(f(np.array([1.0, 20.0]), np.ones((2, 2))), [2, 8])


def test_default_updates_of_shared_variables_the_body_reads_come_back():
    # (a random stream's state works so: here a counter with a default update of its own)
    counter = theano.shared(np.float64(0), name="counter")
    counter.default_update = counter + 1
    out, updates = theano.scan(lambda x_t: x_t + counter, sequences=T.dvector("x"))
    assert list(updates) == [counter]
    xs = T.dvector("xs")
    out, updates = theano.scan(lambda x_t: x_t + counter, sequences=xs)
    f = theano.function([xs], out, updates=updates)
    np.testing.assert_array_equal(f(np.zeros(3)), [0, 1, 2])
    assert counter.get_value() == 3
    np.testing.assert_array_equal(f(np.zeros(2)), [3, 4])
    # an explicit update from fn wins over the default one
    out, updates = theano.scan(lambda x_t: (x_t + counter, {counter: counter + 10}),
                               sequences=xs)
    g = theano.function([xs], out, updates=updates)
    np.testing.assert_array_equal(g(np.zeros(2)), [5, 15])
    assert counter.get_value() == 25


def test_map_reduce_foldl_foldr():
    x = T.dvector("x")
    sq, _ = theano.map(lambda v: v ** 2, x)
    s, _ = theano.reduce(lambda v, acc: acc + v, x, T.constant(0.0, dtype="float64"))
    fl, _ = theano.foldl(lambda v, acc: acc * 10 + v, x, T.constant(0.0, dtype="float64"))
    fr, _ = theano.foldr(lambda v, acc: acc * 10 + v, x, T.constant(0.0, dtype="float64"))
    f = theano.function([x], [sq, s, fl, fr])
    a, b, c, d = f(np.array([1., 2., 3.]))
    np.testing.assert_allclose(a, [1., 4., 9.])
    assert b == 6. and c == 123. and d == 321.


def test_return_list_and_single_output():
    x = T.dvector("x")
    out, _ = theano.scan(lambda v: v + 1, sequences=x, return_list=True)
    assert isinstance(out, list) and len(out) == 1
    one, _ = theano.scan(lambda v: v + 1, sequences=x)
    assert isinstance(one, T.TensorVariable)


def test_non_sequence_constant_and_shared():
    W = theano.shared(np.array([[1., 2.], [3., 4.]]), name="W")
    x = T.dmatrix("x")
    out, _ = theano.scan(lambda r, W, c: T.dot(r, W) + c, sequences=x, non_sequences=[W, 1.5])
    f = theano.function([x], out)
    xv = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(f(xv), xv @ W.get_value() + 1.5)
    W.set_value(np.eye(2))
    np.testing.assert_allclose(f(xv), xv + 1.5)


def test_scan_inside_scan():
    x = T.dmatrix("x")

    def row_cumsum(row):
        inner, _ = theano.scan(lambda v, acc: acc + v, sequences=row,
                               outputs_info=T.constant(0.0, dtype="float64"))
        return inner

    out, _ = theano.scan(row_cumsum, sequences=x)
    xv = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(theano.function([x], out)(xv), np.cumsum(xv, axis=1))


# -- compiled functions holding a scan -----------------------------------------------------------

def test_pickle_compiled_function_with_scan():
    counter = theano.shared(np.int64(0), name="counter")
    x = T.dvector("x")
    out, updates = theano.scan(lambda v, acc: (acc + v, {counter: counter + 1}),
                               sequences=x, outputs_info=T.constant(0.0, dtype="float64"))
    f = theano.function([x], out, updates=updates)
    g = pickle.loads(pickle.dumps(f))
    xv = np.array([1., 2., 3.])
    np.testing.assert_allclose(g(xv), f(xv))
    assert counter.get_value() == 3


def test_pickle_symbolic_scan_graph():
    x = T.dmatrix("x")
    out, _ = theano.scan(lambda r, acc: acc * 0.5 + r, sequences=x,
                         outputs_info=T.zeros((3,), dtype="float64"))
    x2, out2 = pickle.loads(pickle.dumps((x, out)))
    xv = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(theano.function([x2], out2)(xv), theano.function([x], out)(xv))


def test_debug_mode_on_scan():
    a = T.dvector("a")
    x = T.dmatrix("x")
    out, _ = theano.scan(lambda r, h: T.tanh(h + r.sum() * T.exp(h)), sequences=x,
                         outputs_info=a)
    f = theano.function([x, a], out, mode="DebugMode")
    xv = np.random.default_rng(1).normal(size=(4, 3))
    want = theano.function([x, a], out)(xv, np.zeros(3))
    np.testing.assert_allclose(f(xv, np.zeros(3)), want)


def test_debugprint_names_the_loop():
    x = T.dvector("x")
    out, _ = theano.scan(lambda v: v + 1, sequences=x, name="plus_one")
    text = theano.printing.debugprint(out, file="str")
    assert "Scan{plus_one}" in text
