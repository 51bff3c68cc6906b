"""Regressions from the outside audit (issue 13) in derived gradients, and a fuzz of their class.

- jacobian/hessian took the shared variables of their row graph as captured values, so givens,
  ``theano.clone(replace=)`` and ``f.copy(swap=)`` did not reach them, and a shared default
  update ran once per row;
- Rop transposed every op's gradient rule, which is wrong for ``grad_clip`` (its rule is not
  linear in the output gradient), and Join's forward rule dropped the tangents of a join whose
  inputs did not all have one.

The fuzz draws small graphs over shared variables and checks every derived quantity (grad,
jacobian, hessian, Rop, Lop) under each way of swapping the shared variables against the same
quantity built on the swapped-in variables directly.
"""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from theon import gradient
from theon.symbolic.graph import toposort

XV = np.array([0.3, -0.7, 1.1])


def _shared_pair():
    rng = np.random.default_rng(3)
    W = theano.shared(rng.normal(size=(3, 3)), name="W")
    W2 = theano.shared(rng.normal(size=(3, 3)), name="W2")
    return W, W2


@pytest.mark.parametrize("how", ["givens", "clone", "swap"])
@pytest.mark.parametrize("derived", ["jacobian", "hessian"])
def test_jacobian_and_hessian_see_the_replaced_shared_variable(how, derived):
    x = T.dvector("x")
    W, W2 = _shared_pair()

    def build(w):
        y = T.tanh(T.dot(w, x))
        return [y, T.jacobian(y, x)] if derived == "jacobian" else [y, T.hessian(y.sum(), x)]

    want = theano.function([x], build(W2))(XV)
    if how == "givens":
        got = theano.function([x], build(W), givens={W: W2})(XV)
    elif how == "clone":
        got = theano.function([x], theano.clone(build(W), replace={W: W2}))(XV)
    else:
        got = theano.function([x], build(W)).copy(swap={W: W2})(XV)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    # and not the original weights
    assert not np.allclose(got[1], theano.function([x], build(W))(XV)[1])


@pytest.mark.parametrize("derived", ["jacobian", "hessian"])
def test_a_default_update_runs_once_per_call_not_once_per_row(derived):
    x = T.dvector("x")
    s = theano.shared(np.float64(1.0), name="s")
    s.default_update = s + 1
    out = T.jacobian(x * s, x) if derived == "jacobian" else T.hessian((x ** 2).sum() * s, x)
    f = theano.function([x], out)
    first = f(XV)
    scale = 1.0 if derived == "jacobian" else 2.0
    np.testing.assert_allclose(np.diag(first), [scale] * 3)
    assert s.get_value() == 2.0
    np.testing.assert_allclose(np.diag(f(XV)), [2 * scale] * 3)
    assert s.get_value() == 3.0


def test_rop_of_grad_clip_is_the_eval_point():
    x, v = T.dvector("x"), T.dvector("v")
    xs, vs = np.array([-2.0, 0.3, 5.0]), np.array([1.0, 2.0, 3.0])
    r = T.Rop(gradient.grad_clip(x, -1, 1), x, v)
    np.testing.assert_allclose(theano.function([x, v], r, on_unused_input="ignore")(xs, vs), vs)
    r = T.Rop(T.tanh(gradient.grad_clip(x * 2, -1, 1)), x, v)
    np.testing.assert_allclose(theano.function([x, v], r)(xs, vs),
                               (1 - np.tanh(2 * xs) ** 2) * 2 * vs)


@pytest.mark.parametrize("modifier, factor", [
    (gradient.zero_grad, 0.0),              # as Theano: no tangent flows through these
    (gradient.disconnected_grad, 0.0),
    (lambda a: gradient.grad_scale(a, 3.0), 3.0),  # the transpose of the scaled gradient
])
def test_rop_through_the_linear_gradient_modifiers(modifier, factor):
    x, v = T.dvector("x"), T.dvector("v")
    vs = np.array([1.0, 2.0, 3.0])
    r = T.Rop(modifier(x) * 2, x, v)
    got = theano.function([x, v], r, on_unused_input="ignore")(XV, vs)
    np.testing.assert_allclose(got, 2 * factor * vs)


def test_rop_of_a_join_where_only_some_inputs_have_a_tangent():
    x, y, v = T.dvector("x"), T.dvector("y"), T.dvector("v")
    vs = np.array([1.0, 2.0, 3.0])
    r = T.Rop(T.concatenate([x, y * 2, x * 3]), x, v)
    got = theano.function([x, y, v], r, on_unused_input="ignore")(XV, XV, vs)
    np.testing.assert_allclose(got, np.concatenate([vs, np.zeros(3), 3 * vs]))


def test_rop_graph_of_a_long_chain_is_linear_in_size():
    x, v = T.dvector("x"), T.dvector("v")
    sizes = []
    for n in (50, 100):
        h = x
        for _ in range(n):
            h = T.tanh(h) * 0.5 + h
        r = T.Rop(h, x, v)
        sizes.append(len(toposort([r])))
    assert sizes[1] < 2.2 * sizes[0], sizes


# -- fuzz: every derived quantity under every way of swapping a shared variable ----------------

UNARY = [T.tanh, T.sin, lambda a: a * a, lambda a: T.exp(-a * a), T.nnet.sigmoid,
         lambda a: gradient.grad_scale(a, 0.5)]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - 2 * b]


@st.composite
def programs(draw):
    """A recipe (list of steps) for a vector expression of x, W (matrix) and b (vector)."""
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["unary", "binary", "dot", "bias"]))
        if kind == "unary":
            steps.append((kind, draw(st.integers(0, len(UNARY) - 1))))
        elif kind == "binary":
            steps.append((kind, draw(st.integers(0, len(BINARY) - 1))))
        else:
            steps.append((kind, 0))
    derived = draw(st.sampled_from(["grad", "jacobian", "hessian", "Rop", "Lop"]))
    how = draw(st.sampled_from(["givens", "clone", "swap"]))
    swap_b = draw(st.booleans())
    return steps, derived, how, swap_b


def _expression(steps, x, W, b):
    h = x
    for kind, k in steps:
        if kind == "unary":
            h = UNARY[k](h)
        elif kind == "binary":
            h = BINARY[k](h, x)
        elif kind == "dot":
            h = T.dot(W, h)
        else:
            h = h + b
    return T.dot(W, h) + b  # W and b always appear


def _derived(kind, y, x, v, u):
    if kind == "grad":
        return T.grad((y ** 2).sum(), x)
    if kind == "jacobian":
        return T.jacobian(y, x)
    if kind == "hessian":
        return T.hessian((y ** 2).sum(), x)
    if kind == "Rop":
        return T.Rop(y, x, v)
    return T.Lop(y, x, u)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_derived_gradients_follow_swapped_shared_variables(program):
    steps, derived, how, swap_b = program
    rng = np.random.default_rng(len(steps))
    W = theano.shared(rng.normal(size=(3, 3)) * 0.5, name="W")
    W2 = theano.shared(rng.normal(size=(3, 3)) * 0.5, name="W2")
    b = theano.shared(rng.normal(size=3), name="b")
    b2 = theano.shared(rng.normal(size=3), name="b2")
    counter = theano.shared(np.float64(0.0), name="counter")
    counter.default_update = counter + 1
    x, v, u = T.dvector("x"), T.dvector("v"), T.dvector("u")
    swap = {W: W2, b: b2} if swap_b else {W: W2}

    def outputs(w, bias):
        y = _expression(steps, x, w, bias) * (counter * 0 + 1)  # reads the counter
        return [y, _derived(derived, y, x, v, u)]

    args = (XV, rng.normal(size=3), rng.normal(size=3))
    want = theano.function([x, v, u], outputs(W2, b2 if swap_b else b),
                           on_unused_input="ignore")(*args)
    if how == "givens":
        f = theano.function([x, v, u], outputs(W, b), givens=swap, on_unused_input="ignore")
    elif how == "clone":
        f = theano.function([x, v, u], theano.clone(outputs(W, b), replace=swap),
                            on_unused_input="ignore")
    else:
        f = theano.function([x, v, u], outputs(W, b), on_unused_input="ignore").copy(swap=swap)
    before = counter.get_value()
    got = f(*args)
    assert counter.get_value() == before + 1  # the default update ran once
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


# -- fuzz: the forward sweep (R_op rules and transposed L_ops) against the Jacobian -------------

def _random_graphs_module():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[1] / "compile" / "test_random_graphs.py"
    spec = importlib.util.spec_from_file_location("_random_graphs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RG = _random_graphs_module()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_RG.graphs(), st.sampled_from(["A", "B", "v"]))
def test_rop_equals_the_jacobian_times_the_eval_point(case, wrt_name):
    env, out, _ = case
    names = ["A", "B", "v"]
    inputs = [env.sym[n] for n in names]
    wrt = env.sym[wrt_name]
    ev = wrt.type("ev")
    r = T.Rop(out, wrt, ev)
    j = T.jacobian(out, wrt, disconnected_inputs="ignore") if out.ndim else \
        T.grad(out, wrt, disconnected_inputs="ignore")
    f = theano.function(inputs + [ev], [r, j], on_unused_input="ignore")
    evv = np.random.default_rng(5).normal(size=env.val[wrt_name].shape)
    rv, jv = f(*[env.val[n] for n in names], evv)
    np.testing.assert_allclose(rv, np.tensordot(jv, evv, axes=evv.ndim), rtol=1e-9, atol=1e-10)
