"""The classic scan programs of Theano's documentation (the loop tutorial, the scan library
guide, the gradients tutorial), written as a Theano user wrote them with only the imports
changed, each checked against numpy; then a vanilla RNN trained by SGD through
``function(updates=...)`` step for step against hand-written numpy BPTT; then ``verify_grad``
through scan with every tap kind at once, forwards and backwards.

tests/scan/test_scan.py holds the tutorial programs it already had (the elementwise tanh, the
x(t-2)/x(t-1) recurrence, norms and trace, the jacobian and hessian of x ** 2); the programs
here are the others. Theano's Gibbs-sampling and binomial-noise examples need
``RandomStreams``, which theon does not have yet.
"""
from __future__ import annotations

import numpy
import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad

floatX = theano.config.floatX
_rng = np.random.default_rng(2024)


# -- the loop tutorial and the scan guide ------------------------------------------------------

def test_power_with_a_named_inner_function():
    k = T.iscalar("k")
    A = T.vector("A")

    def inner_fct(prior_result, B):
        return prior_result * B

    # Symbolic description of the result
    result, updates = theano.scan(fn=inner_fct,
                                  outputs_info=T.ones_like(A),
                                  non_sequences=A, n_steps=k)

    # Scan has provided us with A ** 1 through A ** k.  Keep only the last
    # value. Scan notices this and does not waste memory saving them.
    final_result = result[-1]

    power = theano.function(inputs=[A, k], outputs=final_result,
                            updates=updates)

    np.testing.assert_allclose(power(range(10), 2), np.arange(10.) ** 2)
    np.testing.assert_allclose(power(range(10), 4), np.arange(10.) ** 4)
    a = _rng.uniform(0.5, 1.5, size=7).astype(floatX)
    np.testing.assert_allclose(power(a, 9), a ** 9, rtol=1e-12)
    np.testing.assert_allclose(power(a, 1), a)


def test_polynomial_with_a_long_arange():
    coefficients = theano.tensor.vector("coefficients")
    x = T.scalar("x")
    max_coefficients_supported = 10000

    # Generate the components of the polynomial
    full_range = theano.tensor.arange(max_coefficients_supported)
    components, updates = theano.scan(fn=lambda coeff, power, free_var:
                                      coeff * (free_var ** power),
                                      outputs_info=None,
                                      sequences=[coefficients, full_range],
                                      non_sequences=x)

    polynomial = components.sum()
    calculate_polynomial = theano.function(inputs=[coefficients, x],
                                           outputs=polynomial)

    test_coeff = numpy.asarray([1, 0, 2], dtype=numpy.float32)
    assert calculate_polynomial(test_coeff, 3) == pytest.approx(19.0)
    c = _rng.normal(size=12)
    # the shortest sequence wins: 12 steps, not 10000
    assert calculate_polynomial(c, 0.7) == pytest.approx(np.polyval(c[::-1], 0.7), rel=1e-12)
    assert theano.function([coefficients, x], components.shape)(c, 0.7)[0] == 12


def test_polynomial_reduced_by_scan():
    # the tutorial's exercise: the sum done by scan itself, only the last step kept
    coefficients = T.vector("coefficients")
    x = T.scalar("x")
    max_coefficients_supported = 10000

    def step(coeff, power, prior_value, free_var):
        return prior_value + coeff * (free_var ** power)

    outputs_info = T.as_tensor_variable(numpy.asarray(0, floatX))
    components, updates = theano.scan(fn=step,
                                      outputs_info=outputs_info,
                                      sequences=[coefficients,
                                                 T.arange(max_coefficients_supported)],
                                      non_sequences=x)
    polynomial = components[-1]
    calculate_polynomial = theano.function(inputs=[coefficients, x],
                                           outputs=polynomial, updates=updates)

    test_coeff = numpy.asarray([1, 0, 2], dtype=numpy.float32)
    assert calculate_polynomial(test_coeff, 3) == pytest.approx(19.0)
    c = _rng.normal(size=9)
    assert calculate_polynomial(c, -1.3) == pytest.approx(np.polyval(c[::-1], -1.3), rel=1e-12)


def test_accumulation_into_a_scalar_without_lambda():
    up_to = T.iscalar("up_to")

    # define a named function, rather than using lambda
    def accumulate_by_adding(arange_val, sum_to_date):
        return sum_to_date + arange_val
    seq = T.arange(up_to)

    # the initial value has the dtype of seq: an implicit downcast would be refused
    outputs_info = T.as_tensor_variable(np.asarray(0, seq.dtype))
    scan_result, scan_updates = theano.scan(fn=accumulate_by_adding,
                                            outputs_info=outputs_info,
                                            sequences=seq)
    triangular_sequence = theano.function(inputs=[up_to], outputs=scan_result)

    some_num = 15
    got = triangular_sequence(some_num)
    assert got.dtype == seq.dtype
    np.testing.assert_array_equal(got, [n * (n + 1) // 2 for n in range(some_num)])
    assert triangular_sequence(0).shape == (0,)


def test_set_value_at_position():
    location = T.imatrix("location")
    values = T.vector("values")
    output_model = T.matrix("output_model")

    def set_value_at_position(a_location, a_value, output_model):
        zeros = T.zeros_like(output_model)
        zeros_subtensor = zeros[a_location[0], a_location[1]]
        return T.set_subtensor(zeros_subtensor, a_value)

    result, updates = theano.scan(fn=set_value_at_position,
                                  outputs_info=None,
                                  sequences=[location, values],
                                  non_sequences=output_model)

    assign_values_at_positions = theano.function(inputs=[location, values, output_model],
                                                 outputs=result)

    test_locations = numpy.asarray([[1, 1], [2, 3]], dtype=numpy.int32)
    test_values = numpy.asarray([42, 50], dtype=numpy.float32)
    test_output_model = numpy.zeros((5, 5), dtype=numpy.float32)
    got = assign_values_at_positions(test_locations, test_values, test_output_model)
    want = np.zeros((2, 5, 5))
    want[0, 1, 1], want[1, 2, 3] = 42, 50
    np.testing.assert_array_equal(got, want)


def test_integer_fibonacci_with_taps():
    n = T.iscalar("n")
    start = T.as_tensor_variable(np.asarray([0, 1], dtype="int64"))
    fib, _ = theano.scan(lambda f_tm2, f_tm1: f_tm2 + f_tm1,
                         outputs_info=dict(initial=start, taps=[-2, -1]), n_steps=n)
    f = theano.function([n], fib)
    want = [0, 1]
    for _ in range(60):
        want.append(want[-2] + want[-1])
    got = f(60)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want[2:])  # the steps, not the two initial rows
    assert f(0).shape == (0,)


def test_rnn_with_several_taps_and_outputs():
    # x(n) = tanh(W x(n-1) + W_in_1 u(n) + W_in_2 u(n-4) + W_feedback y(n-1)),
    # y(n) = W_out x(n-3)
    W, W_in_1, W_in_2, W_feedback, W_out = (T.matrix(name) for name in
                                            ("W", "W_in_1", "W_in_2", "W_feedback", "W_out"))

    def oneStep(u_tm4, u_t, x_tm3, x_tm1, y_tm1, W, W_in_1, W_in_2, W_feedback, W_out):  # noqa: N802
        x_t = T.tanh(theano.dot(x_tm1, W) +
                     theano.dot(u_t, W_in_1) +
                     theano.dot(u_tm4, W_in_2) +
                     theano.dot(y_tm1, W_feedback))
        y_t = theano.dot(x_tm3, W_out)
        return [x_t, y_t]

    u = T.matrix()  # it is a sequence of vectors
    x0 = T.matrix()  # initial state of x has to be a matrix, since it has to cover x[-3]
    y0 = T.vector()  # y0 is just a vector since scan has only to provide y[-1]

    ([x_vals, y_vals], updates) = theano.scan(fn=oneStep,
                                              sequences=dict(input=u, taps=[-4, -0]),
                                              outputs_info=[dict(initial=x0, taps=[-3, -1]),
                                                            y0],
                                              non_sequences=[W, W_in_1, W_in_2, W_feedback,
                                                             W_out])
    f = theano.function([u, x0, y0, W, W_in_1, W_in_2, W_feedback, W_out], [x_vals, y_vals])

    n_u, n_x, n_y, steps = 2, 3, 2, 9
    uv, x0v, y0v = _rng.normal(size=(steps, n_u)), _rng.normal(size=(3, n_x)), \
        _rng.normal(size=n_y)
    ws = [_rng.normal(scale=0.5, size=s) for s in
          ((n_x, n_x), (n_u, n_x), (n_u, n_x), (n_y, n_x), (n_x, n_y))]
    xs, ys = list(x0v), [y0v]
    for t in range(4, steps):  # uvals[0] is u[-4]: the loop starts at uvals[4]
        xs.append(np.tanh(xs[-1] @ ws[0] + uv[t] @ ws[1] + uv[t - 4] @ ws[2] + ys[-1] @ ws[3]))
        ys.append(xs[-4] @ ws[4])
    got_x, got_y = f(uv, x0v, y0v, *ws)
    np.testing.assert_allclose(got_x, xs[3:], rtol=1e-12)
    np.testing.assert_allclose(got_y, ys[1:], rtol=1e-12)


def test_until_powers_of_two():
    def power_of_2(previous_power, max_value):
        return previous_power * 2, theano.scan_module.until(previous_power * 2 > max_value)

    max_value = T.scalar()
    values, _ = theano.scan(power_of_2,
                            outputs_info=T.constant(1.),
                            non_sequences=max_value,
                            n_steps=1024)

    f = theano.function([max_value], values)

    np.testing.assert_allclose(f(45), [2, 4, 8, 16, 32, 64])
    for bound in (0.5, 1000.0, 2.0 ** 40):
        want, p = [], 1.0
        while True:
            p *= 2
            want.append(p)
            if p > bound:
                break
        np.testing.assert_allclose(f(bound), want)
    # n_steps bounds the loop when the condition does not hold in time
    five, _ = theano.scan(power_of_2, outputs_info=T.constant(1.), non_sequences=max_value,
                          n_steps=5)
    np.testing.assert_allclose(theano.function([max_value], five)(1000), [2, 4, 8, 16, 32])


def test_accumulate_number_of_loops_in_a_shared_counter():
    # define shared variables
    k = theano.shared(0)
    n_sym = T.iscalar("n_sym")

    results, updates = theano.scan(lambda: {k: (k + 1)}, n_steps=n_sym)
    accumulator = theano.function([n_sym], [], updates=updates, allow_input_downcast=True)

    assert k.get_value() == 0
    accumulator(5)
    assert k.get_value() == 5
    accumulator(3)
    assert k.get_value() == 8


def test_shared_update_read_before_and_after_the_loop():
    a = theano.shared(1)
    values, updates = theano.scan(lambda: {a: a + 1}, n_steps=10)

    b = a + 1
    c = updates[a] + 1
    f = theano.function([], [b, c], updates=updates)
    assert [int(v) for v in f()] == [2, 12]
    assert a.get_value() == 11
    assert [int(v) for v in f()] == [12, 22]
    assert a.get_value() == 21
    # without the updates dictionary, a stays as it is
    a.set_value(1)
    g = theano.function([], [b, c])
    assert [int(v) for v in g()] == [2, 12] and [int(v) for v in g()] == [2, 12]
    assert a.get_value() == 1


# -- jacobian and hessian via scan (the loop and gradients tutorials) --------------------------

def test_jacobian_of_tanh_v_dot_a_by_scan():
    v = T.vector()
    A = T.matrix()
    y = T.tanh(T.dot(v, A))
    results, updates = theano.scan(lambda i: T.grad(y[i], v), sequences=[T.arange(y.shape[0])])
    compute_jac_t = theano.function([A, v], results, allow_input_downcast=True)

    x = np.eye(5, dtype=floatX)[0]
    w = np.eye(5, 3, dtype=floatX)
    w[2] = np.ones((3), dtype=floatX)
    np.testing.assert_allclose(compute_jac_t(w, x), ((1 - np.tanh(x.dot(w)) ** 2) * w).T,
                               rtol=1e-12)


def test_jacobian_and_hessian_by_scan_and_by_theano_gradient():
    x = T.dvector("x")
    A = T.dmatrix("A")
    y = T.tanh(T.dot(A, x)) * x[::-1]
    J, updates = theano.scan(lambda i, y, x: T.grad(y[i], x),
                             sequences=T.arange(y.shape[0]), non_sequences=[y, x])
    cost = (y ** 3).sum()
    gy = T.grad(cost, x)
    H, updates = theano.scan(lambda i, gy, x: T.grad(gy[i], x),
                             sequences=T.arange(gy.shape[0]), non_sequences=[gy, x])
    f = theano.function([x, A], [J, H, theano.gradient.jacobian(y, x),
                                 theano.gradient.hessian(cost, x)])
    xv, av = _rng.normal(size=4), _rng.normal(size=(4, 4))
    j_scan, h_scan, j_grad, h_grad = f(xv, av)

    def y_np(x):
        return np.tanh(av @ x) * x[::-1]

    def g_np(x):  # d cost / dx, by hand
        t = np.tanh(av @ x)
        dy = 3 * y_np(x) ** 2
        return av.T @ (dy * x[::-1] * (1 - t ** 2)) + (dy * t)[::-1]

    eps = 1e-6
    j_num = np.stack([(y_np(xv + eps * e) - y_np(xv - eps * e)) / (2 * eps)
                      for e in np.eye(4)], axis=1)
    h_num = np.stack([(g_np(xv + eps * e) - g_np(xv - eps * e)) / (2 * eps)
                      for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(j_scan, j_num, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(h_scan, h_num, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(j_grad, j_scan, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_grad, h_scan, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_scan, h_scan.T, rtol=1e-12, atol=1e-14)


# -- a vanilla RNN trained with SGD ----------------------------------------------------------

def _numpy_rnn_step(params, xv, tv, lr):
    """One SGD step of the RNN below in numpy: forward keeping the states, backward by hand.
    Returns the loss before the step and the new parameters."""
    W_in, W_rec, W_out, b_h, b_o, h0 = params
    steps = len(xv)
    hs, h = [], h0
    for t in range(steps):
        h = np.tanh(xv[t] @ W_in + h @ W_rec + b_h)
        hs.append(h)
    H = np.array(hs)
    Y = H @ W_out + b_o
    loss = ((Y - tv) ** 2).mean()
    dY = 2 * (Y - tv) / Y.size
    dW_out, db_o = H.T @ dY, dY.sum(axis=0)
    dH = dY @ W_out.T
    grads = [np.zeros_like(p) for p in (W_in, W_rec)] + [None, np.zeros_like(b_h)]
    dh = np.zeros_like(h0)
    for t in range(steps - 1, -1, -1):
        da = (dh + dH[t]) * (1 - H[t] ** 2)
        previous = H[t - 1] if t else h0
        grads[0] += np.outer(xv[t], da)
        grads[1] += np.outer(previous, da)
        grads[3] += da
        dh = da @ W_rec.T
    d = [grads[0], grads[1], dW_out, grads[3], db_o, dh]
    return loss, [p - lr * g for p, g in zip(params, d)]


def test_vanilla_rnn_trained_with_sgd():
    n_in, n_hidden, n_out, steps = 3, 8, 2, 12
    rng = np.random.default_rng(5)
    init = [rng.normal(scale=0.5, size=(n_in, n_hidden)),
            rng.normal(scale=0.3, size=(n_hidden, n_hidden)),
            rng.normal(scale=0.5, size=(n_hidden, n_out)),
            np.zeros(n_hidden), np.zeros(n_out), np.zeros(n_hidden)]
    W_in, W_rec, W_out, b_h, b_o, h0 = params = [
        theano.shared(v.copy(), name=name)
        for v, name in zip(init, ("W_in", "W_rec", "W_out", "b_h", "b_o", "h0"))]

    x = T.matrix("x")  # (steps, n_in)
    t = T.matrix("t")  # (steps, n_out)
    lr = T.scalar("lr")

    def step(x_t, h_tm1):  # the weights are shared variables read inside fn, not passed
        h_t = T.tanh(T.dot(x_t, W_in) + T.dot(h_tm1, W_rec) + b_h)
        y_t = T.dot(h_t, W_out) + b_o
        return [h_t, y_t]

    [h, y], _ = theano.scan(step, sequences=x, outputs_info=[h0, None])
    cost = ((y - t) ** 2).mean()
    gparams = T.grad(cost, params)
    updates = [(p, p - lr * g) for p, g in zip(params, gparams)]
    train = theano.function([x, t, lr], cost, updates=updates)

    xv = rng.normal(size=(steps, n_in))
    tv = np.stack([np.sin(np.cumsum(xv[:, 0])), np.cos(np.cumsum(xv[:, 1]))], axis=1) * 0.5
    ref, losses = [v.copy() for v in init], []
    for _ in range(6):
        want_loss, ref = _numpy_rnn_step(ref, xv, tv, 0.2)
        losses.append(float(train(xv, tv, 0.2)))
        assert losses[-1] == pytest.approx(want_loss, rel=1e-10)
        for p, r in zip(params, ref):
            np.testing.assert_allclose(p.get_value(), r, rtol=1e-9, atol=1e-12, err_msg=p.name)
    assert losses[-1] < 0.9 * losses[0]


# -- verify_grad through scan with every tap kind at once ------------------------------------
# tests/scan/test_grad.py checks each kind alone; here they share one loop, where the reverse
# loop has to route each input's and each state's gradient to its own place

@pytest.mark.parametrize("go_backwards", [False, True])
def test_verify_grad_every_tap_kind_together(go_backwards):
    def loop(u, v, a0, s0, W, c):
        def step(u_tm1, u_t, u_tp2, v_t, a_tm2, a_tm1, s_tm1, W):
            a_t = T.tanh(T.dot(a_tm1, W) * 0.5 + a_tm2 * u_t + u_tp2 * c)  # c: implicit
            s_t = s_tm1 * 0.9 + (a_t * v_t).sum() + u_tm1.sum()
            m_t = T.sin(a_t) * v_t  # a map: not fed back
            return [a_t, s_t, m_t]
        (a, s, m), _ = theano.scan(step, sequences=[dict(input=u, taps=[-1, 0, 2]), v],
                                   outputs_info=[dict(initial=a0, taps=[-2, -1]), s0, None],
                                   non_sequences=W, go_backwards=go_backwards)
        return (a ** 2).sum() + s.sum() + (m * T.arange(m.shape[0])[:, None]).sum()
    n = 3
    verify_grad(loop, [_rng.normal(size=(7, n)), _rng.normal(size=(4, n)),
                       _rng.normal(size=(2, n)), _rng.normal(),
                       _rng.normal(scale=0.5, size=(n, n)), _rng.normal(size=n)], rng=_rng)


def test_verify_grad_with_truncate_gradient_as_long_as_the_loop():
    # truncation that cuts nothing gives the full gradient, taps included
    def loop(x, a0, W):
        a, _ = theano.scan(lambda x_t, x_tp1, a_tm2, a_tm1, W:
                           T.tanh(T.dot(a_tm1, W) + a_tm2 * x_t) + x_tp1,
                           sequences=dict(input=x, taps=[0, 1]),
                           outputs_info=dict(initial=a0, taps=[-2, -1]), non_sequences=W,
                           truncate_gradient=4)
        return a
    verify_grad(loop, [_rng.normal(size=(5, 2)), _rng.normal(size=(2, 2)),
                       _rng.normal(scale=0.5, size=(2, 2))], rng=_rng)
