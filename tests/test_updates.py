"""theon.updates (Lasagne's update rules): each rule's first steps against the same formulas
written in numpy, in float32 and float64; state of the parameter's dtype (a float32 network
stays float32 under floatX=float64) and on the parameter's device; the norm constraints; the
errors."""
from __future__ import annotations

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon import config, updates
from theon.symbolic.graph import ancestors

STEPS = 3


# -- the rules in numpy: (params, grads, state, step number) -> new params; state updated -----

def _np_sgd(p, g, s, t, lr=0.1):
    return p - lr * g


def _np_momentum(p, g, s, t, lr=0.1, mom=0.9):
    s["v"] = mom * s.get("v", 0.0) - lr * g
    return p + s["v"]


def _np_nesterov(p, g, s, t, lr=0.1, mom=0.9):
    s["v"] = mom * s.get("v", 0.0) - lr * g
    return p + mom * s["v"] - lr * g


def _np_adagrad(p, g, s, t, lr=1.0, eps=1e-6):
    s["a"] = s.get("a", 0.0) + g ** 2
    return p - lr * g / np.sqrt(s["a"] + eps)


def _np_rmsprop(p, g, s, t, lr=1.0, rho=0.9, eps=1e-6):
    s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g ** 2
    return p - lr * g / np.sqrt(s["a"] + eps)


def _np_adadelta(p, g, s, t, lr=1.0, rho=0.95, eps=1e-6):
    s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g ** 2
    step = g * np.sqrt(s.get("d", 0.0) + eps) / np.sqrt(s["a"] + eps)
    s["d"] = rho * s.get("d", 0.0) + (1 - rho) * step ** 2
    return p - lr * step


def _np_adam(p, g, s, t, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, ams=False):
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    v = s["v"]
    if ams:
        s["vh"] = v = np.maximum(s.get("vh", 0.0), v)
    a_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return p - a_t * s["m"] / (np.sqrt(v) + eps)


def _np_adamax(p, g, s, t, lr=0.002, b1=0.9, b2=0.999, eps=1e-8):
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
    return p - lr / (1 - b1 ** t) * s["m"] / (s["u"] + eps)


def _np_amsgrad(p, g, s, t):
    return _np_adam(p, g, s, t, ams=True)


# rule name -> (keyword arguments, numpy reference); defaults where Lasagne has them
RULES = {
    "sgd": ({"learning_rate": 0.1}, _np_sgd),
    "momentum": ({"learning_rate": 0.1}, _np_momentum),
    "nesterov_momentum": ({"learning_rate": 0.1}, _np_nesterov),
    "adagrad": ({}, _np_adagrad),
    "rmsprop": ({}, _np_rmsprop),
    "adadelta": ({}, _np_adadelta),
    "adam": ({}, _np_adam),
    "adamax": ({}, _np_adamax),
    "amsgrad": ({}, _np_amsgrad),
}


def _problem(dtype: str):
    """Two parameters (a matrix and a row-broadcastable vector) and a gradient per step."""
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(3, 2)), rng.normal(size=(1, 2))]
    grads = [[rng.normal(size=v.shape) for v in values] for _ in range(STEPS)]
    W = theon.shared(values[0].astype(dtype), name="W")
    b = theon.shared(values[1].astype(dtype), name="b", broadcastable=(True, False))
    return [W, b], values, grads


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", list(RULES))
def test_rule_matches_numpy(rule, dtype):
    kwargs, reference = RULES[rule]
    params, values, grads = _problem(dtype)
    gvars = [T.matrix("gW", dtype=dtype), T.TensorType(dtype, shape=(1, None))("gb")]
    ups = getattr(updates, rule)(gvars, params, **kwargs)
    assert isinstance(ups, dict) and all(k.dtype == v.dtype == dtype for k, v in ups.items())
    step = theon.function(gvars, [], updates=ups)
    want = [v.copy() for v in values]
    states = [{} for _ in values]
    rtol = 2e-5 if dtype == "float32" else 1e-12
    for t, g in enumerate(grads, start=1):
        step(*[x.astype(dtype) for x in g])
        want = [reference(w, gk, s, t) for w, gk, s in zip(want, g, states)]
        for p, w in zip(params, want):
            assert p.get_value().dtype == dtype
            np.testing.assert_allclose(p.get_value(), w, rtol=rtol, atol=rtol, err_msg=rule)


@pytest.mark.parametrize("rule", ["momentum", "adadelta", "adam"])
def test_float32_stays_float32_under_float64_floatx(rule):
    assert config.floatX == "float64"  # (pinned by conftest)
    params, _, _ = _problem("float32")
    lr = theon.shared(np.float64(0.01), name="lr")  # a float64 hyperparameter is cast too
    loss = sum(T.sum(p ** 2) for p in params)
    ups = getattr(updates, rule)(loss, params, learning_rate=lr)
    state = [k for k in ups if k not in params]
    assert state and all(k.dtype == "float32" for k in state)
    touched = [v for v in ancestors(list(ups.values())) if v is not lr]
    wide = [v for v in touched if getattr(v, "dtype", None) == "float64"]
    assert not wide, wide


def test_state_is_named_after_the_parameter_and_adam_counts_steps():
    params, values, grads = _problem("float64")
    ups = updates.adam([T.as_tensor_variable(g) for g in grads[0]], params)
    names = [k.name for k in ups]
    assert names == ["W_m", "W_v", "W", "b_m", "b_v", "b", "t"]
    t = list(ups)[-1]
    assert t.get_value().shape == () and t.dtype == "float64"
    step = theon.function([], [], updates=ups)
    step()
    step()
    assert float(t.get_value()) == 2.0
    # the state keeps the parameter's broadcast pattern
    assert list(ups)[3].broadcastable == (True, False)


def test_loss_and_symbolic_learning_rate():
    """A loss is differentiated with theano.grad; a shared learning rate changes between calls
    without recompiling."""
    w = theon.shared(np.array([1.0, -2.0]), name="w")
    lr = theon.shared(np.float64(0.5), name="lr")
    step = theon.function([], [], updates=updates.sgd(T.sum(w ** 2), [w], lr))
    step()  # w - 0.5 * 2w = 0
    np.testing.assert_allclose(w.get_value(), [0.0, 0.0])
    w.set_value(np.array([1.0, 1.0]))
    lr.set_value(np.float64(0.25))
    step()
    np.testing.assert_allclose(w.get_value(), [0.5, 0.5])


def test_apply_momentum_to_chosen_params_and_nesterov_helper():
    params, values, grads = _problem("float64")
    gs = [T.as_tensor_variable(g) for g in grads[0]]
    ups = updates.apply_momentum(updates.rmsprop(gs, params), params[:1], momentum=0.5)
    assert [k.name for k in ups] == ["W_accu", "W", "b_accu", "b", "W_velocity"]
    ups2 = updates.apply_nesterov_momentum(updates.sgd(gs, params, 0.1))
    assert [k.name for k in ups2] == ["W", "b", "W_velocity", "b_velocity"]
    theon.function([], [], updates=ups)()
    s = {}
    want = _np_rmsprop(values[0], grads[0][0], s, 1)
    # with a zero velocity the first step is the rmsprop step itself
    np.testing.assert_allclose(params[0].get_value(), want, rtol=1e-12)


def test_errors():
    w = theon.shared(np.zeros(2), name="w")
    x = T.vector("x")
    with pytest.raises(ValueError, match="shared variables only.*params\\[1\\]"):
        updates.sgd(T.sum(x), [w, x], 0.1)
    with pytest.raises(ValueError, match="Got 2 gradient expressions for 1 parameters"):
        updates.adam([x, x], [w])
    with pytest.raises(ValueError, match="norm_axes"):
        updates.norm_constraint(x, 1.0)
    with pytest.raises(ValueError, match="no tensors"):
        updates.total_norm_constraint([], 1.0)


def test_norm_constraint():
    rng = np.random.default_rng(3)
    M = rng.normal(size=(4, 5)) * 3
    F = rng.normal(size=(3, 2, 2, 2))
    m, f = T.matrix("m"), T.tensor4("f")
    m32 = T.matrix("m32", dtype="float32")
    out = [updates.norm_constraint(m, 2.0), updates.norm_constraint(f, 1.0),
           updates.norm_constraint(m, 2.0, norm_axes=(1,))]
    cm32 = updates.norm_constraint(m32, 2.0)
    assert cm32.dtype == "float32"
    got = theon.function([m, f, m32], out + [cm32])(M, F, M.astype("float32"))

    def ref(a, axes, top):
        norms = np.sqrt((a ** 2).sum(axis=axes, keepdims=True))
        return a * (np.clip(norms, 0, top) / (1e-7 + norms))
    np.testing.assert_allclose(got[0], ref(M, (0,), 2.0), rtol=1e-12)
    np.testing.assert_allclose(got[1], ref(F, (1, 2, 3), 1.0), rtol=1e-12)
    np.testing.assert_allclose(got[2], ref(M, (1,), 2.0), rtol=1e-12)
    np.testing.assert_allclose(got[3], ref(M, (0,), 2.0), rtol=1e-5)
    assert np.linalg.norm(got[0], axis=0).max() == pytest.approx(2.0, rel=1e-6)


def test_total_norm_constraint():
    a, b = T.vector("a"), T.matrix("b")
    A, B = np.array([3.0, 0.0]), np.array([[0.0, 4.0]])  # total norm 5
    scaled, norm = updates.total_norm_constraint([a, b], 2.5, return_norm=True)
    kept = updates.total_norm_constraint([a, b], 10.0)
    got = theon.function([a, b], scaled + [norm] + kept)(A, B)
    np.testing.assert_allclose(got[0], A / 2 * (5 / (5 + 1e-7)), rtol=1e-12)
    np.testing.assert_allclose(got[1], B / 2 * (5 / (5 + 1e-7)), rtol=1e-12)
    assert float(got[2]) == pytest.approx(5.0)
    np.testing.assert_allclose(got[3], A, rtol=1e-6)  # under the limit: (almost) unchanged


def test_state_lives_on_the_device():
    """With device=cuda (the CPU stand-in), velocities and moments are device arrays, and a
    step gives the CPU's numbers."""
    from theon.backends.cuda import simulator
    if simulator.cxx() is None:
        pytest.skip("no C++ compiler for the stand-in's kernels")
    from theon.backends.cuda.backend import runtime
    saved = config.device, config.cuda.simulator
    try:
        results = {}
        for device in ("cpu", "cuda"):
            config.device, config.cuda.simulator = device, True
            if device == "cuda":
                runtime()
            params, values, grads = _problem("float32")
            ups = updates.adam([T.as_tensor_variable(g.astype("float32")) for g in grads[0]],
                               params)
            on_device = [simulator.DeviceArray is type(
                k.get_value(borrow=True, return_internal_type=True)) for k in ups]
            # the weights and moments are placed as theano.shared places them: float arrays
            # on the device, the scalar step count on the host
            assert on_device[:-1] == [device == "cuda"] * 6 and not on_device[-1]
            theon.function([], [], updates=ups)()
            results[device] = [p.get_value() for p in params]
        for cpu, dev in zip(results["cpu"], results["cuda"]):
            np.testing.assert_allclose(dev, cpu, rtol=1e-6)
    finally:
        config.device, config.cuda.simulator = saved
