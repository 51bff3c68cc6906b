"""ifelse: only the branch taken is computed; values, gradients, nesting, errors."""
import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.ifelse import ifelse


def test_only_the_taken_branch_runs(branches):
    a, b = T.dscalars("a", "b")
    x = T.dvector("x")
    f = theano.function([a, b, x], ifelse(T.lt(a, b), branches.double(x), branches.negate(x)))
    v = np.array([1.0, -2.0])
    np.testing.assert_array_equal(f(1.0, 2.0, v), v * 2)
    assert branches.calls == ["then"]
    np.testing.assert_array_equal(f(3.0, 2.0, v), -v)
    assert branches.calls == ["then", "else"]


def test_value_needed_elsewhere_is_computed_once_outside(branches):
    c = T.bscalar("c")
    x = T.dvector("x")
    shared_part = branches.double(x)
    out = ifelse(c, shared_part.sum(), T.constant(0.0)) + shared_part.mean()
    f = theano.function([c, x], out)
    v = np.array([1.0, 3.0])
    assert f(0, v) == pytest.approx(4.0)
    # needed by the mean, so computed although the branch is not taken
    assert branches.calls == ["then"]
    assert f(1, v) == pytest.approx(12.0)


def test_nested_and_multiple_outputs(branches):
    c1, c2 = T.bscalars("c1", "c2")
    x = T.dvector("x")
    inner = ifelse(c2, branches.double(x), branches.negate(x))
    o1, o2 = ifelse(c1, [inner, x.sum()], [x, -x.sum()])
    f = theano.function([c1, c2, x], [o1, o2])
    v = np.array([1.0, 2.0])
    r1, r2 = f(1, 0, v)
    np.testing.assert_array_equal(r1, -v)
    assert r2 == pytest.approx(3.0)
    assert branches.calls == ["else"]
    branches.calls.clear()
    r1, r2 = f(0, 1, v)
    np.testing.assert_array_equal(r1, v)
    assert branches.calls == []


def test_gradient_follows_the_branch():
    c = T.bscalar("c")
    x = T.dvector("x")
    y = ifelse(c, (x ** 2).sum(), (3 * x).sum())
    g = theano.function([c, x], T.grad(y, x))
    v = np.array([1.0, -2.0])
    np.testing.assert_allclose(g(1, v), 2 * v)
    np.testing.assert_allclose(g(0, v), [3.0, 3.0])


def test_constant_condition_is_resolved_at_compile_time():
    x = T.dvector("x")
    f = theano.function([x], ifelse(T.constant(1, dtype="int8"), x * 2, x * 3))
    assert not any(type(n.op).__name__ == "IfElse" for n in f.maker.fgraph.toposort())
    np.testing.assert_array_equal(f(np.ones(2)), [2.0, 2.0])


def test_branch_types_are_checked():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="then branch"):
        ifelse(T.bscalar(), x, T.dmatrix())
    with pytest.raises(TypeError, match="scalar"):
        ifelse(T.bvector(), x, x)
    with pytest.raises(ValueError, match="values"):
        ifelse(T.bscalar(), [x, x], [x])


def test_ifelse_output_never_aliases_a_shared_value_or_an_input():
    c = T.iscalar("c")
    sa, sb = theano.shared(np.zeros(3)), theano.shared(np.ones(3))
    f = theano.function([c], ifelse(c, sa, sb))
    r = f(1)
    r[:] = 99
    np.testing.assert_array_equal(sa.get_value(), np.zeros(3))
    np.testing.assert_array_equal(f(1), np.zeros(3))
    x = T.dvector("x")
    g = theano.function([c, x], ifelse(c, x, sb))
    xv = np.arange(3.0)
    assert not np.shares_memory(g(1, xv), xv)
    h = theano.function([c], [], updates={sb: ifelse(c, sa, sb)})
    h(1)
    assert not np.shares_memory(sb.get_value(borrow=True), sa.get_value(borrow=True))


def test_gradient_through_ifelse_with_an_integer_output():
    x, i, c = T.dvector("x"), T.ivector("i"), T.dscalar("c")
    o1, o2 = ifelse(T.gt(c, 0), [i, x * 2], [i * 2, x * 3])
    f = theano.function([c, x, i], T.grad(o2.sum() + o1.sum(), x))
    ones, ints = np.ones(2), np.ones(2, "int32")
    np.testing.assert_array_equal(f(1.0, ones, ints), [2.0, 2.0])
    np.testing.assert_array_equal(f(-1.0, ones, ints), [3.0, 3.0])
