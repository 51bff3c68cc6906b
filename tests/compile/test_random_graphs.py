"""Property test: random expression graphs compiled with function() equal numpy.

A tree is drawn for a wanted shape; every builder returns the symbolic expression and the numpy
value of the same tree, so the compiled result (after all rewrites) is checked against a direct
evaluation. Domains are kept safe: exp only of -x*x, log only of abs(x)+1.
"""
import numpy as np
import theon as theano
import theon.tensor as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

M, N = 3, 4
SHAPES = [(M, N), (N, M), (N,), (M,), ()]

UNARY = [
    ("tanh", T.tanh, np.tanh),
    ("sin", T.sin, np.sin),
    ("neg", lambda a: -a, lambda a: -a),
    ("gauss", lambda a: T.exp(-a * a), lambda a: np.exp(-a * a)),
    ("logabs", lambda a: T.log(abs(a) + 1), lambda a: np.log(np.abs(a) + 1)),
    ("half", lambda a: a * 0.5, lambda a: a * 0.5),
    ("sqr", T.sqr, np.square),
    ("sigmoid", T.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    ("softplus", T.softplus, lambda a: np.log1p(np.exp(a))),
]
BINARY = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("maximum", T.maximum, np.maximum),
    ("div", lambda a, b: a / (abs(b) + 1), lambda a, b: a / (np.abs(b) + 1)),
]


class Env:
    def __init__(self, seed):
        r = np.random.default_rng(seed)
        self.sym = {"A": T.dmatrix("A"), "B": T.dmatrix("B"), "v": T.dvector("v")}
        self.val = {"A": r.standard_normal((M, N)), "B": r.standard_normal((M, N)),
                    "v": r.standard_normal(N)}
        self.used = set()

    def leaf(self, draw, shape):
        if shape == (M, N):
            name = draw(st.sampled_from(["A", "B"]))
            self.used.add(name)
            return self.sym[name], self.val[name]
        if shape == (N, M):
            name = draw(st.sampled_from(["A", "B"]))
            self.used.add(name)
            if draw(st.booleans()):
                return self.sym[name].T, self.val[name].T
            return self.sym[name].dimshuffle(1, 0), self.val[name].T
        if shape == (N,):
            self.used.add("v")
            return self.sym["v"], self.val["v"]
        if shape == (M,):
            self.used.add("A")
            return self.sym["A"][:, 0], self.val["A"][:, 0]
        c = draw(st.sampled_from([0.5, 2.0, -1.5]))
        return T.constant(np.array(c)), np.float64(c)  # a 0-d array keeps float64


def build(draw, env, shape, depth):
    if depth <= 0 or draw(st.integers(0, 9)) < 2:
        return env.leaf(draw, shape)
    kinds = ["unary", "binary"]
    if shape in [(N,), (M,), ()]:
        kinds += ["reduce", "dot"]
    if shape in [(M, N), (N, M)]:
        kinds += ["transpose", "broadcast"]
    kind = draw(st.sampled_from(kinds))
    if kind == "unary":
        _, fs, fn = draw(st.sampled_from(UNARY))
        a, av = build(draw, env, shape, depth - 1)
        return fs(a), fn(av)
    if kind == "binary":
        _, fs, fn = draw(st.sampled_from(BINARY))
        a, av = build(draw, env, shape, depth - 1)
        # the second operand may be of a lower rank and broadcast (a vector, a scalar)
        lower = [shape[k:] for k in range(len(shape) + 1)]
        bshape = draw(st.sampled_from(lower))
        b, bv = build(draw, env, bshape, depth - 1)
        if draw(st.booleans()):
            return fs(a, b), fn(av, bv)
        return fs(b, a), fn(bv, av)
    if kind == "transpose":
        a, av = build(draw, env, shape[::-1], depth - 1)
        return a.T, av.T
    if kind == "broadcast":  # a column added through dimshuffle(0, 'x')
        a, av = build(draw, env, shape, depth - 1)
        c, cv = build(draw, env, (shape[0],), depth - 1)
        return a + c.dimshuffle(0, "x"), av + cv[:, None]
    if kind == "reduce":
        if shape == ():
            src = draw(st.sampled_from([(M, N), (N,), (M,)]))
            a, av = build(draw, env, src, depth - 1)
            if draw(st.booleans()):
                return a.sum(), av.sum()
            return a.mean(), av.mean()
        src, axis = draw(st.sampled_from([((M, N), 0 if shape == (N,) else 1),
                                          ((N, M), 1 if shape == (N,) else 0)]))
        a, av = build(draw, env, src, depth - 1)
        if draw(st.booleans()):
            return a.sum(axis=axis), av.sum(axis=axis)
        return a.max(axis=axis), av.max(axis=axis)
    # dot
    if shape == ():
        k = draw(st.sampled_from([N, M]))
        a, av = build(draw, env, (k,), depth - 1)
        b, bv = build(draw, env, (k,), depth - 1)
        return T.dot(a, b), np.dot(av, bv)
    inner = M if shape == (N,) else N
    a, av = build(draw, env, shape + (inner,), depth - 1)
    b, bv = build(draw, env, (inner,), depth - 1)
    if draw(st.booleans()):
        return T.dot(a, b), np.dot(av, bv)
    return a.dot(b), av.dot(bv)


@st.composite
def graphs(draw):
    env = Env(draw(st.integers(0, 2 ** 16)))
    shape = draw(st.sampled_from(SHAPES))
    out, expected = build(draw, env, shape, draw(st.integers(1, 4)))
    return env, out, expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graph_matches_numpy(case):
    env, out, expected = case
    names = ["A", "B", "v"]
    inputs = [env.sym[n] for n in names]
    values = [env.val[n] for n in names]
    f = theano.function(inputs, out, on_unused_input="ignore")
    got = f(*values)
    assert got.shape == np.shape(expected)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    # and without rewrites, to tell a rewrite bug from an op bug
    g = theano.function(inputs, out, on_unused_input="ignore",
                        mode=theano.Mode(optimizer=None))
    np.testing.assert_allclose(g(*values), expected, rtol=1e-9, atol=1e-12)
