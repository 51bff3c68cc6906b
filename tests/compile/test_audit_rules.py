"""Issue 13, rewrite rules: stabilize rules that were wrong for integer dtypes or for index
vectors other than ``arange``, and a logsumexp whose gradient was still unstable.

Each regression compares FAST_RUN with numpy (and, for gradients, with finite differences in
float64). The fuzz tests find the class of these bugs: the rule templates of
test_rewrite_rules.py rebuilt with narrow, unsigned and mixed integer dtypes on values that
wrap, and the crossentropy-gradient rewrites with random row index vectors, both against the
unrewritten graph.
"""
from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from theon.symbolic.graph import toposort

NO_REWRITES = theano.Mode(optimizer=None)
FAST_RUN = theano.Mode(optimizer="fast_run")


def _load_rule_tests():
    """tests/compile/test_rewrite_rules.py as a module (the test files are not a package)."""
    path = Path(__file__).with_name("test_rewrite_rules.py")
    spec = importlib.util.spec_from_file_location("_audit_rule_templates", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


RULE_TESTS = _load_rule_tests()


def fired(f) -> list:
    return [name for name, _, _ in f.maker.fgraph.history]


def softmax_np(a: np.ndarray, axis=1) -> np.ndarray:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def finite_difference(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function f at x, one entry at a time."""
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        out[idx] = (f(plus) - f(minus)) / (2 * eps)
    return out


# -- item 2: the crossentropy gradient with rows other than arange(n) -----------------------------

def _picked_loss(rows=None):
    """sum(w * -log(softmax(x)[rows, y])) and its gradient with respect to x."""
    x, y, w = T.dmatrix("x"), T.ivector("y"), T.dvector("w")
    r = T.ivector("rows") if rows is None else rows(x)
    cost = (w * -T.log(T.nnet.softmax(x)[r, y])).sum()
    inputs = [x, y, w] + ([r] if rows is None else [])
    return inputs, cost, T.grad(cost, x)


def _picked_grad_np(x, y, w, rows):
    """The gradient of sum(w * -log(softmax(x)[rows, y])), pick by pick."""
    z = softmax_np(x)
    g = np.zeros_like(x)
    for k, (r, c) in enumerate(zip(rows, y)):
        g[r] -= w[k] * np.eye(x.shape[1])[c]
        g[r] += w[k] * z[r]
    return g


def test_crossentropy_grad_with_permuted_rows():
    inputs, cost, grad = _picked_loss()
    f = theano.function(inputs, grad)
    assert "softmax_grad_of_crossentropy" in fired(f)
    X = np.zeros((3, 4))
    Y, W, R = np.array([0, 2, 1], "int32"), np.array([1.0, 2.0, 3.0]), np.array([2, 0, 1], "int32")
    got = f(X, Y, W, R)
    np.testing.assert_allclose(got[0], [0.5, 0.5, -1.5, 0.5])
    np.testing.assert_allclose(got, _picked_grad_np(X, Y, W, R), atol=1e-12)
    Xr = np.random.default_rng(0).normal(size=(3, 4))
    loss = theano.function(inputs, cost, mode=NO_REWRITES)
    np.testing.assert_allclose(f(Xr, Y, W, R), finite_difference(lambda v: loss(v, Y, W, R), Xr),
                               rtol=1e-6, atol=1e-8)


def test_crossentropy_grad_with_any_rows_stays_finite():
    """Rows that are not arange(n) get a rewrite too, which is as finite as the arange one
    where a picked probability underflows to 0."""
    inputs, _, grad = _picked_loss()
    f = theano.function(inputs, grad)
    X = np.array([[0.0, 800.0, 0.0], [1.0, 2.0, 3.0]])
    Y, W, R = np.array([0, 2, 0], "int32"), np.array([1.0, 1.0, 2.0]), np.array([0, 1, 0], "int32")
    got = f(X, Y, W, R)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _picked_grad_np(X, Y, W, R), atol=1e-12)


def test_crossentropy_grad_keeps_the_arange_form():
    """The crossentropy op's rows are provably arange(n): the one-pick-per-row form, with no
    per-row sum of the picks, whether the length is symbolic or static (then folded)."""
    for x in (T.dmatrix("x"), T.tensor("float64", shape=(3, 4), name="x")):
        y = T.ivector("y")
        g = T.grad(T.nnet.categorical_crossentropy(T.nnet.softmax(x), y).sum(), x)
        f = theano.function([x, y], g)
        assert "softmax_grad_of_crossentropy" in fired(f)
        keys = RULE_TESTS.op_keys(f.maker.fgraph)
        assert not keys["Sum"] and not keys["true_div"], dict(keys)
        X, Y = np.random.default_rng(1).normal(size=(3, 4)), np.array([3, 0, 1], "int32")
        np.testing.assert_allclose(f(X, Y), softmax_np(X) - np.eye(4)[Y], atol=1e-12)


@pytest.mark.parametrize("rows, picked_rows, arange_form", [
    (lambda x: T.arange(x.shape[0]), [0, 1, 2, 3], True),
    (lambda x: T.arange(T.nnet.softmax(x).shape[0]), [0, 1, 2, 3], True),
    (lambda x: T.arange(x.shape[-2]), [0, 1, 2, 3], True),
    (lambda x: T.arange(x.shape[1]), [0, 1, 2, 3], False),  # as many rows as columns by chance
    (lambda x: T.arange(1, x.shape[0]), [1, 2, 3], False),
])
def test_rows_are_arange_only_when_provable(rows, picked_rows, arange_form):
    inputs, _, grad = _picked_loss(rows)
    f = theano.function(inputs, grad)
    assert "softmax_grad_of_crossentropy" in fired(f)
    assert bool(RULE_TESTS.op_keys(f.maker.fgraph)["Sum"]) != arange_form
    X = np.random.default_rng(4).normal(size=(4, 4))
    n = len(picked_rows)
    Y, W = np.array([1, 3, 0, 2][:n], "int32"), np.array([0.5, 1.0, 2.0, 3.0][:n])
    np.testing.assert_allclose(f(X, Y, W), _picked_grad_np(X, Y, W, picked_rows), atol=1e-12)


def test_user_written_arange_pick_accepts_negative_labels():
    """softmax(x)[arange(n), y] indexes as numpy does (y = -1 is the last class); only the
    crossentropy op refuses such labels, and its gradient refuses them in every mode."""
    inputs, _, grad = _picked_loss(lambda x: T.arange(x.shape[0]))
    f = theano.function(inputs, grad)
    assert "softmax_grad_of_crossentropy" in fired(f)
    X, Y, W = np.zeros((2, 3)), np.array([-1, 0], "int32"), np.array([1.0, 2.0])
    np.testing.assert_allclose(f(X, Y, W), _picked_grad_np(X, Y, W, [0, 1]), atol=1e-12)
    x, y = T.dmatrix("x"), T.ivector("y")
    g = T.grad(T.nnet.categorical_crossentropy(T.nnet.softmax(x), y).sum(), x)
    for mode in (FAST_RUN, NO_REWRITES):
        with pytest.raises(ValueError, match="target class -1 is out of range"):
            theano.function([x, y], g, mode=mode)(np.zeros((2, 3)), np.array([-1, 0], "int32"))


_GRAD_FNS: dict = {}


def _compiled(kind: str):
    """(FAST_RUN, unrewritten) gradient functions of one graph shape, compiled once."""
    if kind not in _GRAD_FNS:
        if kind == "rows_input":
            inputs, _, grad = _picked_loss()
        elif kind == "rows_arange":
            inputs, _, grad = _picked_loss(lambda x: T.arange(x.shape[0]))
        else:
            x, y, w = T.dmatrix("x"), T.ivector("y"), T.dvector("w")
            cost = (w * T.nnet.categorical_crossentropy(T.nnet.softmax(x), y)).sum()
            inputs, grad = [x, y, w], T.grad(cost, x)
        _GRAD_FNS[kind] = (theano.function(inputs, grad), theano.function(inputs, grad,
                                                                             mode=NO_REWRITES))
    return _GRAD_FNS[kind]


@st.composite
def _row_picks(draw):
    """(n, classes, rows): rows an arange, a permutation, a subset or a vector with repeats."""
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["arange", "permutation", "subset", "repeats"]))
    if kind == "arange":
        rows = list(range(n))
    elif kind == "permutation":
        rows = draw(st.permutations(list(range(n))))
    elif kind == "subset":
        rows = draw(st.lists(st.integers(0, n - 1), min_size=0, max_size=n, unique=True))
    else:
        rows = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=2 * n))
    return n, c, np.array(rows, "int32")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=_row_picks(), seed=st.integers(0, 2 ** 16))
def test_crossentropy_grad_rewrites_fuzz(picks, seed):
    """FAST_RUN's gradient of sum(w * -log(softmax(x)[rows, y])) equals the unrewritten
    graph's, for rows given at run time, written as arange(n), folded to a constant, and for
    the crossentropy op itself."""
    n, c, rows = picks
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=3.0, size=(n, c))
    labels = rng.integers(-c, c, size=rows.size).astype("int32")  # numpy indexing: -1 is last
    W = rng.normal(size=rows.size)
    fast, ref = _compiled("rows_input")
    np.testing.assert_allclose(fast(X, labels, W, rows), ref(X, labels, W, rows),
                               rtol=1e-9, atol=1e-12)
    # rows known at compile time: the constant (a static-shape x) is recognised as arange
    x, y, w = T.tensor("float64", shape=(n, c), name="x"), T.ivector("y"), T.dvector("w")
    cost = (w * -T.log(T.nnet.softmax(x)[T.constant(rows), y])).sum()
    g = T.grad(cost, x)
    got = theano.function([x, y, w], g)(X, labels, W)
    np.testing.assert_allclose(got, theano.function([x, y, w], g, mode=NO_REWRITES)(X, labels, W),
                               rtol=1e-9, atol=1e-12)
    # one pick per row, in order
    labels, W = rng.integers(0, c, size=n).astype("int32"), rng.normal(size=n)
    for kind in ("rows_arange", "crossentropy_op"):
        fast, ref = _compiled(kind)
        np.testing.assert_allclose(fast(X, labels, W), ref(X, labels, W), rtol=1e-9, atol=1e-12)


# -- items 6 and 7: integer factors and negations in the sigmoid rules ----------------------------

@pytest.mark.parametrize("da, db, a, b", [
    ("int8", "int8", 100, 100),
    ("int64", "int16", 2 ** 60, 100),
    ("uint32", "uint8", 2 ** 31, 200),
])
def test_sigmoid_cancel_multiplies_integer_factors_in_the_output_dtype(da, db, a, b):
    z, x = T.dvector("z"), T.dvector("x")
    sa, sb = T.scalar("a", dtype=da), T.scalar("b", dtype=db)
    s = T.nnet.sigmoid(x)
    f = theano.function([z, sa, sb, x], z * (sa * (sb * s)) / s)
    assert "cancel_sigmoid_factors" in fired(f)
    Z, X = np.array([1.0, 2.0]), np.array([0.0, 3.0])
    np.testing.assert_allclose(f(Z, a, b, X), Z * float(a) * float(b), rtol=1e-12)


@pytest.mark.parametrize("dtype, values", [
    ("uint8", [0, 1, 2, 255]),
    ("uint32", [0, 1, 2 ** 32 - 1]),
    ("int8", [-128, -1, 0, 127]),
    ("int16", [-32768, 5, 32767]),
])
def test_one_over_one_plus_exp_of_integers_negates_in_float(dtype, values):
    u = T.vector("u", dtype=dtype)
    out = 1 / (1 + T.exp(u))
    f = theano.function([u], out)
    assert "one_over_one_plus_exp_to_sigmoid" in fired(f)
    v = np.array(values, dtype)
    with np.errstate(over="ignore"):
        want = 1 / (1 + np.exp(v.astype("float64")))
        assert f(v).dtype == theano.function([u], out, mode=NO_REWRITES)(v).dtype
    got = f(v)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)


def test_integer_negation_is_not_a_sigmoid_sign():
    """-u wraps for unsigned u: sigmoid(-u) is neither sigmoid(u)'s mirror nor cancels
    1 - sigmoid(u)."""
    u, x = T.vector("u", dtype="uint8"), T.vector("x", dtype="float32")
    s = T.nnet.sigmoid
    f = theano.function([u, x], [1 / (1 + T.exp(-u)), x * s(-u) / (1 - s(u))])
    v = np.array([0, 1, 3], "uint8")
    wrapped = (-v).astype("float64")  # 0, 255, 253
    def sig(a):
        return 0.5 * (1 + np.tanh(a / 2))
    got = f(v, np.ones(3, "float32"))
    np.testing.assert_allclose(got[0], sig(-wrapped), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(got[1], sig(wrapped) / (1 - sig(v.astype("float64"))), rtol=1e-5)


# -- item 10: the gradient of log(sum(exp(x))) -------------------------------------------------

@pytest.mark.parametrize("axis, keepdims", [(1, False), (0, False), (None, False), (1, True),
                                            ((1, 2), False)])
def test_logsumexp_gradient_is_stable(axis, keepdims):
    x = T.dtensor3("x") if axis == (1, 2) else T.dmatrix("x")
    lse = T.log(T.sum(T.exp(x), axis=axis, keepdims=keepdims))
    w = theano.shared(np.array(1.5), name="w")
    cost = (w * lse).sum()
    f = theano.function([x], [cost, T.grad(cost, x)])
    assert "log_sum_exp_to_logsumexp" in fired(f)
    rng = np.random.default_rng(2)
    shape = (2, 3, 4) if axis == (1, 2) else (3, 4)
    big = rng.normal(size=shape) + 1000.0 * (rng.random(shape) < 0.3)
    soft_axis = tuple(range(len(shape))) if axis is None else axis
    c, g = f(big)
    assert np.isfinite(c) and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, 1.5 * softmax_np(big, axis=soft_axis), rtol=1e-12, atol=1e-300)
    small = rng.normal(size=shape)
    loss = theano.function([x], cost, mode=NO_REWRITES)
    np.testing.assert_allclose(f(small)[1], finite_difference(loss, small), rtol=1e-6, atol=1e-8)


def test_logsumexp_gradient_float32():
    x = T.fmatrix("x")
    f = theano.function([x], T.grad(T.log(T.sum(T.exp(x), axis=1)).sum(), x))
    X = np.array([[100.0, 0.0, -100.0], [1.0, 2.0, 3.0]], "float32")
    got = f(X)
    assert got.dtype == "float32"
    np.testing.assert_allclose(got, softmax_np(X.astype("float64")), rtol=1e-5, atol=1e-30)


def test_exp_times_a_sum_along_other_axes_is_left_alone():
    """exp(x) * (g / sum(exp(x), axis=1)) broadcast along the rows instead of the columns is
    no softmax (x square, so the shapes would allow it)."""
    x, g = T.dmatrix("x"), T.dvector("g")
    out = T.exp(x) * (g / T.sum(T.exp(x), axis=1)).dimshuffle("x", 0)
    f = theano.function([x, g], out)
    X, G = np.random.default_rng(3).normal(size=(3, 3)), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(f(X, G), np.exp(X) * (G / np.exp(X).sum(axis=1))[None, :],
                               rtol=1e-12)


# -- fuzz: the rule templates with integer dtypes -------------------------------------------------

# values that wrap when added, negated or multiplied in the narrow dtypes
WRAP_VALUES = {
    "int8": [-128, -100, -1, 0, 1, 2, 99, 100, 127],
    "int16": [-32768, -300, -1, 0, 1, 3, 300, 32767],
    "int64": [-(2 ** 62), -(2 ** 40), -1, 0, 1, 5, 2 ** 40, 2 ** 63 - 1],
    "uint8": [0, 1, 2, 100, 200, 254, 255],
    "uint32": [0, 1, 3, 2 ** 16, 2 ** 31, 2 ** 32 - 1],
}
INT_DTYPES = list(WRAP_VALUES)
MIXED = [("int8", "uint8"), ("uint8", "int8"), ("int64", "int16"), ("uint32", "uint8"),
         ("int16", "int8")]


def _rebuild(inputs, outputs, new_inputs):
    """The graph of ``outputs`` on ``new_inputs`` (which may differ in dtype): each node is
    made again by its op, so dtypes combine as if the user had built it so."""
    mapping = dict(zip(inputs, new_inputs))
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for node in toposort(outs, stop=inputs):
        new = node.op.make_node(*[mapping.get(i, i) for i in node.inputs])
        mapping.update(zip(node.outputs, new.outputs))
    return [mapping.get(o, o) for o in outs]


def _int_data(inputs, rng):
    arrays = []
    for v in inputs:
        shape = tuple(s if s is not None else 5 for s in v.type.shape)
        if v.dtype in WRAP_VALUES:
            arrays.append(rng.choice(np.array(WRAP_VALUES[v.dtype], dtype=v.dtype), size=shape))
        elif v.dtype.startswith(("int", "uint")):
            arrays.append(rng.integers(0, 4, size=shape).astype(v.dtype))  # labels
        else:
            arrays.append(rng.uniform(-2.0, 2.0, size=shape).astype(v.dtype))
    return arrays


def _graph_for(case, dtypes):
    """The case's graph with its first input of dtypes[0] and any second one of dtypes[1], or
    None when the template cannot be built so."""
    try:
        inputs, out = case.build(dtypes[0])
    except Exception:  # noqa: BLE001 - a template that has no integer form
        return None
    if len(dtypes) == 1:
        return inputs, out
    same = [k for k, v in enumerate(inputs) if v.dtype == dtypes[0]]
    if len(same) < 2:
        return None
    new_inputs = list(inputs)
    old = inputs[same[1]]
    new_inputs[same[1]] = T.tensor(dtypes[1], shape=old.type.shape, name=old.name)
    try:
        return new_inputs, _rebuild(inputs, out, new_inputs)
    except Exception:  # noqa: BLE001 - an op that refuses the mixed dtypes
        return None


def _run(f, data):
    with np.errstate(all="ignore"):
        out = f(*data)
    return out if isinstance(out, list) else [out]


def _unrewritten(inputs, out):
    """The graph compiled without rewrites, or None when its ops refuse these dtypes."""
    try:
        return theano.function(inputs, out, mode=NO_REWRITES)
    except Exception:  # noqa: BLE001 - the graph itself is invalid for these dtypes
        return None


def _values_or_none(f, data):
    """f's results on data, or None where the unrewritten graph raises (a label out of range:
    nothing to compare)."""
    try:
        return _run(f, data)
    except Exception:  # noqa: BLE001
        return None


def _two_integer_weights(dt):
    a, b, x = T.vector("a", dtype=dt), T.vector("b", dtype=dt), T.dvector("x")
    return [a, b, x], x * (a * (b * T.nnet.sigmoid(x))) / T.nnet.sigmoid(x)


def _integer_weight_over_integer(dt):
    a, b, x = T.vector("a", dtype=dt), T.vector("b", dtype=dt), T.dvector("x")
    return [a, b, x], a * T.exp(x) / (b * (1 + T.exp(x)))


def _integer_exponents(dt):
    u, v = T.vector("u", dtype=dt), T.vector("v", dtype=dt)
    return [u, v], [1 / (1 + T.exp(u)), 1 / (1 + T.exp(-v))]


def _integer_negation(dt):
    u, v = T.vector("u", dtype=dt), T.vector("v", dtype=dt)
    s = T.nnet.sigmoid
    return [u, v], s(-u) * s(v) / (1 - s(u))


# Templates of the sigmoid rules with two integer inputs, which CASES has none of (its
# templates have one input); rebuilt like the CASES ones.
EXTRA_TEMPLATES = [
    RULE_TESTS.Case("cancel_sigmoid_factors", "two_integer_weights", _two_integer_weights, None),
    RULE_TESTS.Case("cancel_sigmoid_factors", "integer_weight_over_integer",
                    _integer_weight_over_integer, None),
    RULE_TESTS.Case("one_over_one_plus_exp_to_sigmoid", "integer_exponents", _integer_exponents,
                    None),
    RULE_TESTS.Case("cancel_sigmoid_factors", "integer_negation", _integer_negation, None),
]


@pytest.mark.parametrize("dtypes", [(d,) for d in INT_DTYPES] + MIXED, ids=lambda d: "-".join(d))
def test_rule_templates_with_integer_dtypes(dtypes):
    """Every rule template rebuilt with integer inputs: the rewritten graph gives the same
    values and dtypes as the unrewritten one, on values that wrap in the narrow dtypes."""
    rng = np.random.default_rng(zlib.crc32("-".join(dtypes).encode()))
    built = 0
    for case in RULE_TESTS.CASES + EXTRA_TEMPLATES:
        graph = _graph_for(case, dtypes)
        if graph is None:
            continue
        inputs, out = graph
        ref = _unrewritten(inputs, out)
        if ref is None:
            continue
        built += 1
        modes = [FAST_RUN] + ([case.mode] if case.mode is not RULE_TESTS.FAST_RUN else [])
        for mode in modes:
            f = theano.function(inputs, out, mode=mode)
            for _ in range(2):
                data = _int_data(inputs, rng)
                want = _values_or_none(ref, data)
                if want is None:
                    continue
                got = _run(f, data)
                where = f"{case.rule}-{case.id} with {dtypes}: {[d.tolist() for d in data]}"
                assert [g.dtype for g in got] == [w.dtype for w in want], where
                for g, w in zip(got, want):
                    if w.dtype.kind in "iub":
                        np.testing.assert_array_equal(g, w, err_msg=where)
                    else:
                        # where the original overflowed (inf, nan), a stabilized form may be
                        # finite: that is what these rules are for
                        ok = np.isfinite(w)
                        # float32 results of integer inputs near 100: log(softmax) of the
                        # original rounds tiny probabilities (1e-3 relative); wrapping is off
                        # by far more
                        rtol = 1e-3 if w.dtype in ("float32", "complex64") else 1e-7
                        np.testing.assert_allclose(g[ok], w[ok], rtol=rtol, atol=1e-5,
                                                   err_msg=where)
    assert built >= (10 if len(dtypes) == 1 else 5), f"only {built} templates built: {dtypes}"
