"""``T.grad``: the issue's MLP, intermediate and higher-order gradients, disconnected and
undefined gradients, gradient modifiers, known_grads, graph size and dtypes."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.symbolic.graph import toposort

rng = np.random.default_rng(0)


def init(shape):
    return rng.normal(0, 0.3, size=shape)


def _relu(a):
    return np.maximum(a, 0)


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _numpy_backprop(xv, yv, w1, w2):
    """Loss and gradients of mean crossentropy(softmax(relu(x W1) W2), y), by hand."""
    n = xv.shape[0]
    pre = xv @ w1
    h = _relu(pre)
    p = _softmax(h @ w2)
    loss = -np.log(p[np.arange(n), yv]).mean()
    dlogits = p.copy()
    dlogits[np.arange(n), yv] -= 1
    dlogits /= n
    dw2 = h.T @ dlogits
    dh = dlogits @ w2.T
    dw1 = xv.T @ (dh * (pre > 0))
    return loss, dw1, dw2, dh


N_IN, N_HID, N_OUT, N = 20, 16, 5, 32


def _data():
    xv = rng.normal(size=(N, N_IN))
    yv = rng.integers(0, N_OUT, size=N).astype("int32")
    return xv, yv


def test_mlp_gradients_match_numpy_backprop():
    x, y = T.matrix("x"), T.ivector("y")
    w1v, w2v = init((N_IN, N_HID)), init((N_HID, N_OUT))
    W1, W2 = theano.shared(w1v.copy(), name="W1"), theano.shared(w2v.copy(), name="W2")
    h = T.nnet.relu(T.dot(x, W1))
    p = T.nnet.softmax(T.dot(h, W2))
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    dW1, dW2 = T.grad(loss, [W1, W2])
    dh = T.grad(loss, h)  # an intermediate node
    xv, yv = _data()
    got = theano.function([x, y], [loss, dW1, dW2, dh])(xv, yv)
    want = _numpy_backprop(xv, yv, w1v, w2v)
    for g, w, what in zip(got, want, ["loss", "dW1", "dW2", "dh"]):
        np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-10, err_msg=what)
    assert dW1.dtype == W1.dtype and dW2.dtype == W2.dtype


def test_mlp_training_decreases_the_loss():
    x, y = T.matrix("x"), T.ivector("y")
    W1 = theano.shared(init((N_IN, N_HID)), name="W1")
    W2 = theano.shared(init((N_HID, N_OUT)), name="W2")
    h = T.nnet.relu(T.dot(x, W1))
    p = T.nnet.softmax(T.dot(h, W2))
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    dW1, dW2 = T.grad(loss, [W1, W2])
    lr = 0.5
    train = theano.function([x, y], loss, updates=[(W1, W1 - lr * dW1), (W2, W2 - lr * dW2)])
    xv, yv = _data()
    losses = [float(train(xv, yv)) for _ in range(30)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 25


def test_mlp_float32():
    x, y = T.fmatrix("x"), T.ivector("y")
    W1 = theano.shared(init((N_IN, N_HID)).astype("float32"), name="W1")
    W2 = theano.shared(init((N_HID, N_OUT)).astype("float32"), name="W2")
    h = T.nnet.relu(T.dot(x, W1))
    p = T.nnet.softmax(T.dot(h, W2))
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    dW1, dW2 = T.grad(loss, [W1, W2])
    assert loss.dtype == dW1.dtype == dW2.dtype == "float32"
    xv, yv = _data()
    lv, g1, g2 = theano.function([x, y], [loss, dW1, dW2])(xv.astype("float32"), yv)
    assert lv.dtype == g1.dtype == g2.dtype == np.float32
    want = _numpy_backprop(xv.astype("float32").astype("float64"), yv,
                           W1.get_value().astype("float64"), W2.get_value().astype("float64"))
    np.testing.assert_allclose(g1, want[1], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(g2, want[2], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_preserved(dtype):
    x = T.TensorType(dtype, shape=(None, None))("x")
    v = T.TensorType(dtype, shape=(None,))("v")
    s = T.TensorType(dtype, shape=())("s")
    cost = (T.tanh(T.dot(x, v)) * s).sum() + T.nnet.softmax(x).max() + T.mean(x ** 2)
    grads = T.grad(cost, [x, v, s])
    assert [g.dtype for g in grads] == [dtype] * 3
    vals = theano.function([x, v, s], grads)(np.ones((2, 3), dtype), np.ones(3, dtype),
                                             np.asarray(2, dtype))
    assert [a.dtype for a in vals] == [np.dtype(dtype)] * 3


def test_grad_wrt_intermediate_nodes():
    x = T.vector("x")
    y = x ** 2
    z = T.sin(y).sum()
    gy = T.grad(z, y)
    gx = T.grad(z, x)
    gy2, gx2 = T.grad(z, [y, x])
    xv = np.array([0.3, -1.2, 2.0])
    a, b, c, d = theano.function([x], [gy, gx, gy2, gx2])(xv)
    np.testing.assert_allclose(a, np.cos(xv ** 2))
    np.testing.assert_allclose(b, np.cos(xv ** 2) * 2 * xv)
    np.testing.assert_allclose(c, a)
    np.testing.assert_allclose(d, b)
    # the cost itself
    f_self = theano.function([x], T.grad(z, z), on_unused_input="ignore")
    np.testing.assert_allclose(f_self(xv), 1.0)


def test_second_order_scalar():
    s = T.scalar("s")
    f = s ** 4 + T.exp(s) * T.sin(s)
    d1 = T.grad(f, s)
    d2 = T.grad(d1, s)
    d3 = T.grad(d2, s)
    for sv in (-1.3, 0.4, 2.0):
        a, b, c = theano.function([s], [d1, d2, d3])(sv)
        e, sn, cs = np.exp(sv), np.sin(sv), np.cos(sv)
        np.testing.assert_allclose(a, 4 * sv ** 3 + e * (sn + cs))
        np.testing.assert_allclose(b, 12 * sv ** 2 + 2 * e * cs)
        np.testing.assert_allclose(c, 24 * sv + 2 * e * (cs - sn))


def test_second_order_vector_mixed():
    x, y = T.vector("x"), T.vector("y")
    f = T.sum(x ** 3 * y)
    gx = T.grad(f, x)
    gxy = T.grad(gx.sum(), y)  # d/dy sum(3 x^2 y) = 3 x^2
    gxx = T.grad(gx.sum(), x)  # 6 x y
    xv, yv = np.array([1.0, -2.0, 0.5]), np.array([0.3, 1.5, -1.0])
    a, b = theano.function([x, y], [gxy, gxx])(xv, yv)
    np.testing.assert_allclose(a, 3 * xv ** 2)
    np.testing.assert_allclose(b, 6 * xv * yv)


def test_disconnected_inputs():
    x, y = T.vector("x"), T.vector("unused_input")
    cost = (x ** 2).sum()
    with pytest.raises(theano.gradient.DisconnectedInputError, match="unused_input"):
        T.grad(cost, [x, y])
    with pytest.raises(ValueError):  # it is a ValueError, as in Theano
        T.grad(cost, y)
    gx, gy = T.grad(cost, [x, y], disconnected_inputs="ignore")
    a, b = theano.function([x, y], [gx, gy])(np.ones(3), np.ones(4))
    np.testing.assert_allclose(a, 2 * np.ones(3))
    np.testing.assert_array_equal(b, np.zeros(4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T.grad(cost, y, disconnected_inputs="warn")
    assert any("unused_input" in str(w.message) for w in caught)
    assert T.grad(cost, y, disconnected_inputs="ignore", return_disconnected="none") is None
    out = T.grad(cost, [x, y], disconnected_inputs="ignore", return_disconnected="none")
    assert out[1] is None and out[0] is not None


def test_disconnected_through_consider_constant_says_why():
    x = T.vector("x")
    with pytest.raises(theano.gradient.DisconnectedInputError, match="x"):
        T.grad(theano.gradient.disconnected_grad(x).sum(), x)


def test_integer_ops_give_zero_gradients():
    x = T.vector("x")
    xv = np.array([1.5, -3.0, 2.25])
    costs = {
        "argmax": T.cast(T.argmax(x), "float64"),
        "comparison": T.cast(T.gt(x, 0), "float64").sum(),
        "comparison_times": (T.gt(x, 0) * 2.0).sum(),
        "int_div": T.int_div(x, 2.0).sum(),
        "floor": T.floor(x).sum(),
        "int_cast": T.cast(T.cast(x, "int32").sum(), "float64"),
        "bool_sum": T.sum(T.lt(x, 1)),
    }
    for name, c in costs.items():
        g = T.grad(c, x)
        np.testing.assert_array_equal(theano.function([x], g)(xv), np.zeros(3), err_msg=name)
    # mixed with a float path: only that path counts
    c = T.cast(T.argmax(x), "float64") * x.sum() + x[T.argmax(x)]
    np.testing.assert_allclose(theano.function([x], T.grad(c, x))(xv), [2.0, 2.0, 3.0])


def test_grad_wrt_integer_input_is_zero():
    iv = T.ivector("iv")
    x = T.vector("x")
    cost = (T.cast(iv, "float64") * x).sum()
    g = T.grad(cost, iv)
    np.testing.assert_array_equal(
        theano.function([iv, x], g, on_unused_input="ignore")(
            np.array([1, 2], dtype="int32"), np.ones(2)), [0, 0])


class _NoGradOp(theano.Op):
    """An op without a gradient."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return theano.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = inputs[0] * 2


class _UndefinedGradOp(_NoGradOp):
    def grad(self, inputs, grads):
        return [theano.gradient.grad_undefined(self, 0, inputs[0], "because it is a step")]


def test_not_implemented_gradient_names_the_op():
    x = T.vector("x")
    with pytest.raises(theano.gradient.NullTypeGradError, match="_NoGradOp"):
        T.grad(T.tanh(_NoGradOp()(x)).sum(), x)
    with pytest.raises(theano.gradient.NullTypeGradError, match="because it is a step"):
        T.grad(_UndefinedGradOp()(x).sum(), x)
    # only a problem when the gradient is actually needed
    y = T.vector("y")
    g = T.grad((_NoGradOp()(x) * 0).sum() + (y * 2).sum(), y)
    np.testing.assert_allclose(theano.function([x, y], g, on_unused_input="ignore")(
        np.ones(2), np.ones(2)), [2.0, 2.0])
    assert T.grad(_NoGradOp()(x).sum(), x, null_gradients="return") is None


def test_as_op_without_gradient():
    from theon.compile.ops import as_op

    @as_op(itypes=[T.dvector], otypes=[T.dvector])
    def double(a):
        return a * 2

    x = T.dvector("x")
    with pytest.raises(theano.gradient.NullTypeGradError, match="double"):
        T.grad(double(x).sum(), x)


def test_consider_constant():
    x = T.vector("x")
    z = x * 3
    cost = (z * x).sum()
    xv = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(theano.function([x], T.grad(cost, x))(xv), 6 * xv)
    np.testing.assert_allclose(
        theano.function([x], T.grad(cost, x, consider_constant=[z]))(xv), 3 * xv)
    c2 = (theano.gradient.consider_constant(z) * x).sum()
    np.testing.assert_allclose(theano.function([x], T.grad(c2, x))(xv), 3 * xv)


def test_disconnected_grad_and_zero_grad():
    x = T.vector("x")
    xv = np.array([1.0, 2.0, -1.0])
    dg = theano.gradient.disconnected_grad(x)
    zg = theano.gradient.zero_grad(x)
    f = theano.function([x], [dg, zg])
    for out in f(xv):
        np.testing.assert_allclose(out, xv)  # identity forward
    np.testing.assert_allclose(theano.function([x], T.grad((x * dg).sum(), x))(xv), xv)
    np.testing.assert_allclose(theano.function([x], T.grad((x * zg).sum(), x))(xv), xv)
    # zero_grad stays connected: zeros, not a DisconnectedInputError
    np.testing.assert_array_equal(theano.function([x], T.grad((zg ** 2).sum(), x))(xv),
                                  np.zeros(3))


def test_grad_clip_and_grad_scale():
    x = T.vector("x")
    xv = np.array([1.0, 2.0, -3.0])
    c = (theano.gradient.grad_clip(x, -1.0, 1.5) * 5).sum()
    np.testing.assert_allclose(theano.function([x], T.grad(c, x))(xv), [1.5] * 3)
    c = (theano.gradient.grad_clip(x, -1.0, 1.5) ** 2).sum()  # grads 2, 4, -6
    np.testing.assert_allclose(theano.function([x], T.grad(c, x))(xv), [1.5, 1.5, -1.0])
    c = (theano.gradient.grad_scale(x, 0.5) ** 2).sum()
    np.testing.assert_allclose(theano.function([x], T.grad(c, x))(xv), xv)
    c = (theano.gradient.grad_scale(x, -2.0) * 3).sum()
    np.testing.assert_allclose(theano.function([x], T.grad(c, x))(xv), [-6.0] * 3)
    np.testing.assert_allclose(theano.function([x], theano.gradient.grad_clip(x, -1, 1))(xv),
                               xv)
    with pytest.raises(ValueError):
        theano.gradient.grad_clip(x, 2, 1)


def test_known_grads_without_cost():
    x = T.vector("x")
    h = T.tanh(x)
    out = h * 2
    gh = T.vector("gh")
    gx = T.grad(None, x, known_grads={h: gh})
    xv, ghv = np.array([0.1, -0.5, 2.0]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(theano.function([x, gh], gx)(xv, ghv),
                               ghv * (1 - np.tanh(xv) ** 2))
    # known_grads at several points add up, and with a cost
    gx2 = T.grad(None, x, known_grads={out: T.ones_like(out), h: gh})
    np.testing.assert_allclose(theano.function([x, gh], gx2)(xv, ghv),
                               (ghv + 2) * (1 - np.tanh(xv) ** 2))
    gx3 = T.grad(out.sum(), x, known_grads={h: gh})
    np.testing.assert_allclose(theano.function([x, gh], gx3)(xv, ghv),
                               (ghv + 2) * (1 - np.tanh(xv) ** 2))
    with pytest.raises(TypeError):
        T.grad(None, x)
    with pytest.raises(TypeError):
        T.grad(h, x)  # a non-scalar cost


def test_grad_of_shared_and_list_and_names():
    W = theano.shared(np.ones((2, 2)), name="W")
    x = T.vector("x")
    cost = T.dot(x, W).sum()
    cost.name = "cost"
    g = T.grad(cost, W)
    assert g.name == "(dcost/dW)"
    gl = T.grad(cost, [W])
    assert isinstance(gl, list) and len(gl) == 1
    np.testing.assert_allclose(theano.function([x], g)(np.array([1.0, 2.0])),
                               [[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(TypeError):
        T.grad(cost, np.ones(2))


def test_long_chain_gradient_graph_is_linear():
    x = T.vector("x")
    z = x
    n = 1000
    for _ in range(n):
        z = T.tanh(z) * 1.01
    start = time.perf_counter()
    g = T.grad(z.sum(), x)
    elapsed = time.perf_counter() - start
    n_nodes = len(toposort([g]))
    assert n_nodes < 10 * n, n_nodes
    assert elapsed < 1.5, elapsed


def test_long_chain_value():
    x = T.vector("x")
    z = x
    for _ in range(50):
        z = T.tanh(z) * 1.01
    g = T.grad(z.sum(), x)
    xv = np.array([0.1, -0.2])
    want = np.ones(2)
    v = xv.copy()
    for _ in range(50):
        want = want * (1 - np.tanh(v) ** 2) * 1.01
        v = np.tanh(v) * 1.01
    np.testing.assert_allclose(theano.function([x], g)(xv), want)


def test_shared_subexpression_visited_once():
    """A diamond repeated 30 times: 2**30 paths, but the gradient graph stays linear."""
    x = T.scalar("x")
    z = x
    for _ in range(30):
        z = T.sin(z) + T.cos(z)
    g = T.grad(z, x)
    assert len(toposort([g])) < 40 * 30
    xv = 0.3
    v, d = xv, 1.0
    for _ in range(30):
        v, d = np.sin(v) + np.cos(v), d * (np.cos(v) - np.sin(v))
    np.testing.assert_allclose(theano.function([x], g)(xv), d)


def test_gradient_nodes_carry_the_line_that_called_grad():
    import inspect

    from theon.symbolic.graph import ancestors
    x = T.dvector("x")
    cost = (T.exp(x) * 2).sum()
    g = T.grad(cost, x)  # the line every node of the gradient graph records
    line = inspect.currentframe().f_lineno - 1
    forward = set(ancestors([cost]))
    made_by_grad = [v for v in ancestors([g]) if v not in forward and v.owner is not None]
    assert made_by_grad
    assert all(v.trace[1] == line and v.trace[0] == __file__ for v in made_by_grad)


def test_pow_gradient_wrt_exponent_is_zero_where_the_base_is_zero():
    x, y = T.dvectors("x", "y")
    g = theano.function([x, y], T.grad((x ** y).sum(), y))
    np.testing.assert_allclose(g(np.array([0.0, 2.0]), np.array([2.0, 3.0])),
                               [0.0, 8 * np.log(2.0)])


@pytest.mark.parametrize("values", [[2.0, 3.0, 0.0, 4.0, 5.0], [0.0, 3.0, 0.0, 4.0, 5.0],
                                    [1.0, 0.0, 0.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0, 6.0]])
def test_cumprod_gradient_is_exact_at_zeros(values):
    x = T.dvector("x")
    weights = np.arange(1.0, 6.0)
    f = theano.function([x], T.grad((T.cumprod(x) * weights).sum(), x))
    xv = np.array(values)
    expected = [sum(weights[j] * np.prod(np.delete(xv[:j + 1], i)) for j in range(i, 5))
                for i in range(5)]
    np.testing.assert_allclose(f(xv), expected)


def test_set_subtensor_with_repeated_indices_gives_no_gradient_to_overwritten_values():
    xv, vv, i = T.dvector("xv"), T.dvector("vv"), T.lvector("i")
    g = T.grad((T.set_subtensor(xv[i], vv) * np.arange(5.0)).sum(), vv)
    out = theano.function([xv, i, vv], g)(np.zeros(5), np.array([1, 3, 1]), np.ones(3))
    np.testing.assert_array_equal(out, [0.0, 3.0, 1.0])  # vv[0] is overwritten by vv[2]
    theano.gradient.verify_grad(lambda x: T.set_subtensor(x[[0, 0, 2]], x[1:4] ** 2),
                                [np.random.default_rng(0).normal(size=(4, 3))])


def test_a_row_without_a_gradient_rule_gives_an_undefined_gradient():
    """A scalar row with no rule: its gradient is undefined, an error naming it only when the
    gradient is asked for (the rule's NotImplementedError becomes an Undefined in grad/)."""
    import numpy as np
    from theon.ops.elemwise import Elemwise
    from theon.ops.scalar import ScalarOp, upcast
    cube = Elemwise(ScalarOp("cube_no_grad", 1, lambda a: a ** 3, "({0} * {0} * {0})", upcast))
    x = T.dvector("x")
    y = cube(x)
    np.testing.assert_allclose(theano.function([x], y)(np.array([2.0])), [8.0])
    with pytest.raises(theano.gradient.NullTypeGradError, match="cube_no_grad"):
        T.grad(y.sum(), x)
    # no gradient flows through it (it is held constant): no error
    g = T.grad((x * 2).sum() + theano.gradient.disconnected_grad(y).sum(), x)
    np.testing.assert_allclose(theano.function([x], g)(np.array([1.0])), [2.0])
