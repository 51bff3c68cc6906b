"""Issue 13, items 3, 4, 11 and 16: gradients at ties, float16 means, dtypes of integer division
and of bitwise ops on mixed-sign ints.

Besides one regression test per item, two fuzzers cover the classes: random graphs of
maximum/minimum/clip/abs/relu/max over inputs drawn from {-1, 0, 1, 2} (so ties are everywhere)
checked against a hand-written numpy reverse mode and against one-sided differences; and every
binary elementwise op on every pair of real dtypes, which must either refuse at build time with a
TypeError or return what its node declares.
"""
import contextlib
import itertools

import numpy as np
import pytest
import theon
import theon as theano
import theon.tensor as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from theon.ops import scalar as S
from theon.ops.elemwise import ELEMWISE


@contextlib.contextmanager
def floatx(value):
    """Set floatX for a block (the suite pins float64; conftest restores it after each test)."""
    old = theon.config.floatX
    theon.config.floatX = value
    try:
        yield
    finally:
        theon.config.floatX = old


def grad_at(cost, wrt, values):
    f = theano.function(wrt, T.grad(cost, wrt))
    return [np.asarray(g) for g in f(*values)]


# -- 3. maximum/minimum gradients at ties --------------------------------------------------------

def test_maximum_and_minimum_of_a_variable_with_itself_have_gradient_one():
    x = T.dvector("x")
    v = np.array([-1.0, 0.0, 2.0])
    for op in (T.maximum, T.minimum):
        (g,) = grad_at(op(x, x).sum(), [x], [v])
        np.testing.assert_array_equal(g, np.ones(3))


def test_tie_between_different_slopes_takes_the_first_inputs_slope():
    # minimum(x, 2x - 1) at x = 1: the subgradient is [1, 2]; both slopes summed gave 3
    x = T.dscalar("x")
    (g,) = grad_at(T.minimum(x, 2 * x - 1), [x], [1.0])
    assert g == 1.0
    (g,) = grad_at(T.maximum(2 * x - 1, x), [x], [1.0])
    assert g == 2.0
    # away from the tie, the one-sided finite difference in float64
    for at in (0.5, 1.5):
        (g,) = grad_at(T.minimum(x, 2 * x - 1), [x], [at])
        fd = (min(at + 1e-6, 2 * (at + 1e-6) - 1) - min(at, 2 * at - 1)) / 1e-6
        assert abs(g - fd) < 1e-6


def test_tie_between_two_inputs_sends_the_gradient_to_the_first_only():
    x, y = T.dvectors("x", "y")
    xv, yv = np.array([1.0, 2.0, 0.0]), np.array([1.0, 1.0, 3.0])
    for op, first in ((T.maximum, xv >= yv), (T.minimum, xv <= yv)):
        gx, gy = grad_at(op(x, y).sum(), [x, y], [xv, yv])
        np.testing.assert_array_equal(gx, first.astype(float))
        np.testing.assert_array_equal(gy, (~first).astype(float))
        np.testing.assert_array_equal(gx + gy, np.ones(3))  # counted once


def test_clip_with_lo_above_hi_sends_the_gradient_to_hi_only():
    # numpy's clip is minimum(maximum(x, lo), hi): with lo > hi the result is hi everywhere
    x, lo, hi = T.dscalars("x", "lo", "hi")
    out = T.clip(x, lo, hi)
    for xv in (0.0, 2.0, 4.0):
        assert theano.function([x, lo, hi], out)(xv, 3.0, 1.0) == 1.0
        g = grad_at(out, [x, lo, hi], [xv, 3.0, 1.0])
        assert [float(v) for v in g] == [0.0, 0.0, 1.0], xv


def test_clip_ties_with_its_bounds_count_once():
    x = T.dscalar("x")
    for expr, at in ((T.clip(x, x, x + 1), 0.0), (T.clip(x, x - 1, x), 0.0),
                     (T.clip(x, x, x), 1.0)):
        (g,) = grad_at(expr, [x], [at])
        assert g == 1.0


def test_max_reduction_keeps_theanos_rule_every_tied_entry():
    # Theano's MaxAndArgmax gradient: every entry equal to the maximum gets it (unchanged here)
    x = T.dvector("x")
    (g,) = grad_at(T.max(x), [x], [np.array([1.0, 2.0, 2.0, 0.0])])
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 0.0])


# -- 4. float16 mean / var / std accumulate in float32 --------------------------------------------

@pytest.mark.parametrize("n,value", [(1000, 100.0), (100000, 0.1), (70000, 1.0)])
def test_float16_mean_var_std_accumulate_in_float32(n, value):
    h = T.vector(dtype="float16")
    a = np.full(n, value, dtype=np.float16)
    a[::7] = np.float16(value * 1.5)  # a non-zero variance
    outs = [T.mean(h), T.var(h), T.std(h), T.var(h, ddof=1)]
    assert [o.dtype for o in outs] == ["float16"] * 4
    got = theano.function([h], outs)(a)
    wide = a.astype(np.float32)
    want = [np.mean(a), np.var(wide), np.std(wide), np.var(wide, ddof=1)]
    for g, w in zip(got, want):
        assert g.dtype == np.float16
        assert np.isfinite(g)
        np.testing.assert_allclose(float(g), float(np.float16(w)), rtol=2e-3)


def test_float16_mean_over_an_axis_and_with_keepdims():
    h = T.matrix(dtype="float16")
    a = np.full((3, 2000), 50.0, dtype=np.float16)
    got = theano.function([h], [T.mean(h, axis=1), T.mean(h, axis=1, keepdims=True)])(a)
    np.testing.assert_array_equal(got[0], np.full(3, 50.0, np.float16))
    assert got[1].shape == (3, 1) and got[1].dtype == np.float16


# -- 11. true division of integers gives floatX ---------------------------------------------------

def test_int_true_div_gives_floatx_float32():
    with floatx("float32"):
        a, b = T.ivectors("a", "b")
        q = a / b
        assert q.dtype == "float32"
        assert (T.arange(5) / 2).dtype == "float32"
        assert (T.bvector() / T.bvector()).dtype == "float32"
        # downstream of the division the model stays float32
        assert (T.fvector() * q).dtype == "float32"
        f = theano.function([a, b], q)
        got = f(np.array([7, 16777221], np.int32), np.array([2, 3], np.int32))
        assert got.dtype == np.float32
        # divided in float64, rounded once (float32 inputs would give 5592406.5)
        np.testing.assert_array_equal(got, np.array([3.5, 5592407.0], np.float32))
        np.testing.assert_array_equal(theano.function([], T.arange(5) / 2)(),
                                      np.arange(5, dtype=np.float32) / 2)


def test_int_true_div_gives_floatx_float64():
    assert (T.bvector() / T.bvector()).dtype == "float64"
    assert (T.wvector() / T.bvector()).dtype == "float64"
    # with a float input the usual upcast still applies
    assert (T.bvector() / T.fvector()).dtype == "float32"
    assert (T.bvector() / T.vector(dtype="float16")).dtype == "float16"
    assert (T.ivector() / T.vector(dtype="float16")).dtype == "float64"


def test_int_true_div_is_floatx_when_folded_and_rewritten():
    with floatx("float32"):
        x = T.fvector("x")
        folded = x * (T.constant(np.int32(3)) / T.constant(np.int32(4)))
        assert folded.dtype == "float32"
        out = theano.function([x], folded)(np.ones(2, np.float32))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, np.full(2, 0.75, np.float32))


def test_int_true_div_with_floatx_from_theon_flags(run_python):
    code = ("import numpy as np, theon, theon.tensor as T\n"
            "a = T.ivector(); q = a / 2\n"
            "f = theon.function([a], [q, T.arange(3) / 2])\n"
            "print(q.dtype, *[r.dtype for r in f(np.arange(3, dtype=np.int32))])")
    out = run_python(code, "floatX=float32")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["float32"] * 3


def test_symbolic_arange_length_is_exact_with_floatx_float32():
    with floatx("float32"):
        n = T.lscalar("n")
        f = theano.function([n], T.arange(0, n).shape[0])
        assert f(20000001) == 20000001


def test_unary_and_mixed_int_float_ops_follow_upgrade_to_float():
    # Theano's upgrade_to_float: each int to float32 (8/16 bits) or float64 (32/64 bits) first
    assert T.arctan2(T.wvector(), T.vector(dtype="uint16")).dtype == "float32"
    assert T.arctan2(T.bvector(), T.vector(dtype="float16")).dtype == "float32"
    assert T.arctan2(T.ivector(), T.fvector()).dtype == "float64"
    with floatx("float32"):  # unary ops do not look at floatX (Theano)
        assert T.sqrt(T.ivector()).dtype == "float64"
        assert T.exp(T.bvector()).dtype == "float32"
        assert (T.ivector() // T.ivector()).dtype == "int32"
        assert (T.ivector() % T.bvector()).dtype == "int32"


# -- 16. bitwise ops on ints with no common int dtype are refused ---------------------------------

@pytest.mark.parametrize("op", [lambda a, b: a & b, lambda a, b: a | b, lambda a, b: a ^ b])
def test_bitwise_op_on_int_and_uint64_is_refused_at_build_time(op):
    for left in ("int8", "int16", "int32", "int64"):
        with pytest.raises(TypeError, match="no common integer dtype"):
            op(T.vector(dtype=left), T.vector(dtype="uint64"))
    # pairs with a common int dtype still build and run
    a, b = T.vector(dtype="int8"), T.vector(dtype="uint8")
    out = op(a, b)
    assert out.dtype == "int16"
    got = theano.function([a, b], out)(np.array([-1, 5], np.int8), np.array([3, 6], np.uint8))
    np.testing.assert_array_equal(got, op(np.array([-1, 5], np.int16),
                                          np.array([3, 6], np.int16)))


# -- fuzz: gradients at ties ----------------------------------------------------------------------

TIE_VALUES = (-1.0, 0.0, 1.0, 2.0)
N = 4


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (numpy broadcasting undone), as the reference's unbroadcast."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for d, s in enumerate(shape):
        if s == 1 and g.shape[d] != 1:
            g = g.sum(axis=d, keepdims=True)
    return g


class Node:
    """One tree node: the theon expression, its numpy value, and a numpy reverse mode that
    follows theon's conventions (the first input of maximum/minimum wins a tie, a max reduction
    sends the gradient to every tied entry, abs' gradient at 0 is 0)."""

    def __init__(self, sym, val, back):
        self.sym, self.val, self.back = sym, np.asarray(val, dtype=np.float64), back


def _leaf(env, name):
    def back(g):
        env.grads[name] += _unbroadcast(g, (N,))
    return Node(env.sym[name], env.val[name], back)


def _const(c):
    return Node(T.constant(np.float64(c)), c, lambda g: None)


def _affine(c, a, b):
    return Node(a * c.sym + b, a * c.val + b, lambda g: c.back(_unbroadcast(a * g, c.val.shape)))


def _extremum(kind, c1, c2):
    np_fn, sym_fn = (np.maximum, T.maximum) if kind == "max" else (np.minimum, T.minimum)
    z = np_fn(c1.val, c2.val)
    first = np.broadcast_to(z == c1.val, z.shape)

    def back(g):
        c1.back(_unbroadcast(g * first, c1.val.shape))
        c2.back(_unbroadcast(g * ~first, c2.val.shape))
    return Node(sym_fn(c1.sym, c2.sym), z, back)


def _clip(c, lo, hi):
    """clip with sub-expressions as bounds: minimum(maximum(c, lo), hi), one winner per tie."""
    x, lo_v, hi_v = c.val, lo.val, hi.val
    z = np.clip(x, lo_v, hi_v)
    shape = z.shape
    inside = np.broadcast_to((x >= lo_v) & (x <= hi_v), shape)
    below = np.broadcast_to((x < lo_v) & (lo_v <= hi_v), shape)
    above = np.broadcast_to(np.maximum(x, lo_v) > hi_v, shape)

    def back(g):
        for node, mask in ((c, inside), (lo, below), (hi, above)):
            node.back(_unbroadcast(g * mask, node.val.shape))
    return Node(T.clip(c.sym, lo.sym, hi.sym), z, back)


def _abs(c):
    return Node(abs(c.sym), np.abs(c.val), lambda g: c.back(g * np.sign(c.val)))


def _relu(c):
    # relu is maximum(x, 0): x is the first input, so it wins the tie at 0
    return Node(T.nnet.relu(c.sym), np.maximum(c.val, 0),
                lambda g: c.back(g * (c.val >= 0)))


def _max_reduce(c):
    m = c.val.max(keepdims=True)
    return Node(T.max(c.sym, keepdims=True), m, lambda g: c.back(g.sum() * (c.val == m)))


class Env:
    def __init__(self, xv, yv):
        self.sym = {"x": T.dvector("x"), "y": T.dvector("y")}
        self.val = {"x": np.asarray(xv, np.float64), "y": np.asarray(yv, np.float64)}
        self.grads = {"x": np.zeros(N), "y": np.zeros(N)}


values = st.lists(st.sampled_from(TIE_VALUES), min_size=N, max_size=N)
small_ints = st.sampled_from([-2, -1, 1, 2])


def _tree(draw, env, depth):
    """A random expression over x, y and constants from the tie values."""
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        pick = draw(st.sampled_from(["x", "y", "x", "y", "const"]))
        node = _const(draw(st.sampled_from(TIE_VALUES))) if pick == "const" else _leaf(env, pick)
        if draw(st.booleans()):
            node = _affine(node, draw(small_ints), draw(st.sampled_from([-1, 0, 1])))
        return node
    kind = draw(st.sampled_from(["max", "min", "clip", "clipc", "abs", "relu", "maxred",
                                 "add"]))
    def sub():
        return _tree(draw, env, depth - 1)
    if kind in ("max", "min"):
        return _extremum(kind, sub(), sub())
    if kind == "clip":
        return _clip(sub(), sub(), sub())
    if kind == "clipc":
        lo, hi = sorted(draw(st.lists(st.sampled_from(TIE_VALUES), min_size=2, max_size=2)))
        return _clip(sub(), _const(lo), _const(hi))
    if kind == "abs":
        return _abs(sub())
    if kind == "relu":
        return _relu(sub())
    if kind == "maxred":
        c = sub()
        return _max_reduce(c) if c.val.ndim else _abs(c)
    a, b = sub(), sub()
    return Node(a.sym + b.sym, a.val + b.val,
                lambda g: (a.back(_unbroadcast(g, a.val.shape)),
                           b.back(_unbroadcast(g, b.val.shape))))


def _cost(env, out, w):
    """sum(w * out), kept connected to x and y whatever the tree holds."""
    x, y = env.sym["x"], env.sym["y"]
    return T.sum(out.sym * w) + 0 * T.sum(x) + 0 * T.sum(y)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), xv=values, yv=values, w=values)
def test_fuzz_gradients_at_ties_match_the_numpy_reference(data, xv, yv, w):
    env = Env(xv, yv)
    out = _tree(data.draw, env, depth=3)
    w = np.asarray(w)
    g_out = _unbroadcast(np.broadcast_to(w, np.broadcast_shapes(w.shape, out.val.shape)),
                         out.val.shape)
    out.back(np.array(g_out, dtype=np.float64))
    x, y = env.sym["x"], env.sym["y"]
    f = theano.function([x, y], [out.sym] + T.grad(_cost(env, out, w), [x, y]))
    got, gx, gy = f(env.val["x"], env.val["y"])
    np.testing.assert_array_equal(got, out.val)
    np.testing.assert_allclose(gx, env.grads["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(gy, env.grads["y"], rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(["max", "min", "clipc", "abs", "relu", "maxred"]),
       leaves=st.lists(st.sampled_from(["x", "y"]), min_size=2, max_size=2),
       slopes=st.lists(st.sampled_from([-2, -1, 0, 1, 2]), min_size=2, max_size=2),
       offsets=st.lists(st.sampled_from([-1, 0, 1]), min_size=2, max_size=2),
       bounds=st.lists(st.sampled_from(TIE_VALUES), min_size=2, max_size=2, unique=True),
       xv=values, yv=values, w=values)
def test_fuzz_gradient_lies_within_the_one_sided_derivatives(op, leaves, slopes, offsets,
                                                             bounds, xv, yv, w):
    """One kink op over affine images of x and y (the same variable may feed both inputs, the
    double-count case): each gradient entry lies between the left and right partial
    derivatives. Deeper graphs are left to the reference test above: a composition of kinks can
    legitimately leave that range (min(relu(x), relu(-x)) is 0, its chain rule at 0 is not)."""
    env = Env(xv, yv)
    a = [_affine(_leaf(env, n), s, b) for n, s, b in zip(leaves, slopes, offsets)]
    lo, hi = sorted(bounds)
    node = {"max": lambda: _extremum("max", a[0], a[1]),
            "min": lambda: _extremum("min", a[0], a[1]),
            "clipc": lambda: _clip(a[0], _const(lo), _const(hi)),
            "abs": lambda: _abs(a[0]), "relu": lambda: _relu(a[0]),
            "maxred": lambda: _max_reduce(a[0])}[op]()
    w = np.asarray(w)
    x, y = env.sym["x"], env.sym["y"]
    cost = _cost(env, node, w)
    f = theano.function([x, y], [cost] + T.grad(cost, [x, y]))
    base, gx, gy = f(env.val["x"], env.val["y"])
    h = 2.0 ** -8  # exact in binary: the differences of piecewise-linear costs are exact
    for name, g in (("x", gx), ("y", gy)):
        for i in range(N):
            vals = {k: v.copy() for k, v in env.val.items()}
            vals[name][i] += h
            right = (f(vals["x"], vals["y"])[0] - base) / h
            vals[name][i] -= 2 * h
            left = (base - f(vals["x"], vals["y"])[0]) / h
            assert min(left, right) - 1e-9 <= g[i] <= max(left, right) + 1e-9, \
                (op, name, i, left, right, g[i])


# -- fuzz: declared dtype == returned dtype for every binary op and dtype pair --------------------

REAL_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64")
BINARY_OPS = sorted(name for name, sop in S.TABLE.items() if sop.nin == 2)
UNARY_OPS = sorted(name for name, sop in S.TABLE.items() if sop.nin == 1)


def _probe_values(dtype):
    # 1 and 2 are in every dtype's domain that matters here: no division by zero, no negative
    # integer power, inside arccos/arctanh after the float conversion only for 1 (nan is fine)
    return np.array([1, 2], dtype=dtype)


def _declared_vs_returned(op_name, dtypes):
    """None when the build is refused with a TypeError, else (declared, returned) dtypes; a
    node that builds but fails when run returns the error in place of the dtype."""
    ins = [T.vector(dtype=d) for d in dtypes]
    try:
        node = ELEMWISE[op_name](*ins)
    except TypeError:
        return None
    fn = node.owner.op.impl(node.owner)
    try:
        with np.errstate(all="ignore"):
            got = np.asarray(fn(*[_probe_values(d) for d in dtypes]))
    except Exception as err:  # noqa: BLE001 - reported as a failure below
        return node.dtype, f"{type(err).__name__}: {err}"[:80]
    return node.dtype, str(got.dtype)


@pytest.mark.parametrize("fx", ["float64", "float32"])
def test_fuzz_every_binary_op_and_dtype_pair_refuses_or_returns_its_declared_dtype(fx):
    bad = []
    with floatx(fx):
        for name in BINARY_OPS:
            for pair in itertools.product(REAL_DTYPES, repeat=2):
                r = _declared_vs_returned(name, pair)
                if r is not None and r[0] != r[1]:
                    bad.append((name, pair, r))
        for name in UNARY_OPS:
            for d in REAL_DTYPES:
                r = _declared_vs_returned(name, (d,))
                if r is not None and r[0] != r[1]:
                    bad.append((name, d, r))
    assert not bad, bad[:20]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(BINARY_OPS), pair=st.tuples(st.sampled_from(REAL_DTYPES),
                                                        st.sampled_from(REAL_DTYPES)),
       fx=st.sampled_from(["float64", "float32"]))
def test_fuzz_compiled_binary_op_returns_its_declared_dtype(name, pair, fx):
    """The same through function() (rewrites, constant folding of a constant operand)."""
    with floatx(fx):
        a = T.vector(dtype=pair[0])
        b = T.constant(_probe_values(pair[1]))
        try:
            out = ELEMWISE[name](a, b)
        except TypeError:
            return
        with np.errstate(all="ignore"):
            got = theano.function([a], out)(_probe_values(pair[0]))
            folded = theano.function([], ELEMWISE[name](T.constant(_probe_values(pair[0])), b))()
        assert str(got.dtype) == out.dtype
        assert str(folded.dtype) == out.dtype
