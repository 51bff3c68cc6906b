"""Issue 10 part 5 semantics that change earlier theon behaviour (expected values recorded from
Theano 1.0.5): bool(variable) and Python lists for float32 inputs."""
import numpy as np
import pytest
import theon as theano
import theon.tensor as T


def test_bool_of_a_variable_is_true_as_in_theano():
    x = T.vector('x')
    W = theano.shared(np.zeros(2))
    assert bool(x) and bool(W) and bool(T.constant(0.0)) and bool(x + 1)
    assert bool(T.eq(x, 1)) and bool(T.neq(x, 1))  # Theano refused only <, <=, >, >=
    if not W:  # tutorial code: `if not W:` tests for a missing parameter
        raise AssertionError


@pytest.mark.parametrize('cmp', [lambda x: x < 1, lambda x: x <= 1, lambda x: x > 1,
                                 lambda x: x >= 1, lambda x: T.lt(x, 1), lambda x: 1 < x])
def test_bool_of_an_ordering_comparison_refuses(cmp):
    x = T.vector('x')
    with pytest.raises(TypeError, match='Variables do not support boolean operations') as err:
        bool(cmp(x))
    assert 'T.switch' in str(err.value) and 'ifelse' in str(err.value)


def test_chained_comparison_refuses():
    a, b, c = T.scalars('abc')
    with pytest.raises(TypeError, match='boolean operations'):
        a < b < c  # noqa: B015


def test_float32_input_refuses_a_list_float32_cannot_hold():
    y = T.fvector('y')
    f = theano.function([y], y * 2)
    for bad in ([0.1, 0.2], (0.1, 0.2), [np.float64(0.1)]):
        with pytest.raises(TypeError, match='cannot store accurately') as err:
            f(bad)
        assert 'allow_input_downcast=True' in str(err.value)
    m = T.fmatrix('m')
    with pytest.raises(TypeError, match='cannot store accurately'):
        theano.function([m], m)([[0.1]])
    np.testing.assert_array_equal(f([1.0, 2.0]), [2.0, 4.0])  # exact values pass
    np.testing.assert_array_equal(f([1, 2]), [2.0, 4.0])
    with pytest.raises(TypeError, match='float64'):
        f(np.array([0.1, 0.2]))  # an array was refused before too
    g = theano.function([y], y * 2, allow_input_downcast=True)
    np.testing.assert_array_equal(g([0.1, 0.2]), np.float32([0.1, 0.2]) * 2)
    h = theano.function([theano.In(y, allow_downcast=True)], y)
    assert h([0.1]).dtype == np.float32


def test_float32_scalar_input_still_takes_a_python_float():
    z = T.fscalar('z')
    f = theano.function([z], z * 2)
    assert f(0.1) == np.float32(0.1) * 2
    d = T.dvector('d')
    np.testing.assert_array_equal(theano.function([d], d)([0.1, 0.2]), [0.1, 0.2])


def test_float32_shared_set_value_follows_the_same_rule():
    s = theano.shared(np.zeros(2, 'float32'))
    with pytest.raises(TypeError, match='cannot store accurately'):
        s.set_value([0.1, 0.2])
    s.set_value([0.5, 0.25])
    np.testing.assert_array_equal(s.get_value(), [0.5, 0.25])
