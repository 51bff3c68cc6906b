"""Error messages a user can act on: each names the input, the types or shapes involved, and
the file:line of the code that built the variable or node."""
import os
import sys
import warnings

import numpy as np
import pytest
import theon
import theon as theano
import theon.tensor as T

HERE = os.path.basename(__file__)


def lineno() -> int:
    """The line number of the caller (put it on the line that builds the node)."""
    return sys._getframe(1).f_lineno


def where(line: int) -> str:
    return f"{HERE}:{line}"


# -- input values -----------------------------------------------------------------------------

def test_float64_into_float32_input_mentions_allow_input_downcast():
    fx = T.fmatrix('fx_in'); line = lineno()  # noqa: E702
    f = theano.function([fx], fx * 2)
    with pytest.raises(TypeError) as err:
        f(np.ones((2, 2)))
    msg = str(err.value)
    assert 'allow_input_downcast' in msg
    assert 'fx_in' in msg and 'float32' in msg and 'float64' in msg
    assert where(line) in msg


def test_allow_input_downcast_true_casts():
    fx = T.fmatrix('fx')
    f = theano.function([fx], fx * 2, allow_input_downcast=True)
    X = np.arange(4.0).reshape(2, 2)
    r = f(X)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r, X * 2)
    g = theano.function([theano.In(fx, allow_downcast=True)], fx + 1)
    assert g(X).dtype == np.float32


def test_python_float_list_into_float32_input_needs_exact_values_or_downcast():
    # Theano's rule for lists: refused unless float32 holds every value exactly
    fv = T.fvector('fv')
    f = theano.function([fv], fv * 2)
    with pytest.raises(TypeError, match="cannot store accurately"):
        f([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(f([0.5, 0.25, 3]), [1.0, 0.5, 6.0])
    g_down = theano.function([fv], fv * 2, allow_input_downcast=True)
    r = g_down([0.1, 0.2, 0.3])
    assert r.dtype == np.float32
    np.testing.assert_allclose(r, np.array([0.1, 0.2, 0.3], dtype=np.float32) * 2)
    fs = T.fscalar('fs')
    g = theano.function([fs], fs + 1)
    assert g(0.5).dtype == np.float32 and float(g(0.5)) == 1.5
    assert float(g(3)) == 4.0  # Python int


def test_int_into_float_input_is_a_safe_cast():
    dv = T.dvector('dv')
    f = theano.function([dv], dv * 2)
    r = f(np.arange(3, dtype='int32'))
    assert r.dtype == np.float64
    np.testing.assert_allclose(r, [0.0, 2.0, 4.0])


def test_float_into_int_input_is_refused():
    iv = T.ivector('iv_in')
    f = theano.function([iv], iv * 2)
    with pytest.raises(TypeError) as err:
        f(np.array([1.5, 2.0]))
    msg = str(err.value)
    assert 'iv_in' in msg and 'int32' in msg and 'float64' in msg


def test_wrong_ndim_is_a_type_error():
    x = T.dmatrix('x_nd'); line = lineno()  # noqa: E702
    f = theano.function([x], x * 2)
    with pytest.raises(TypeError) as err:
        f(np.ones(3))
    msg = str(err.value)
    assert 'x_nd' in msg and '2-d' in msg and '(3,)' in msg
    assert where(line) in msg


def test_non_numeric_value_is_a_type_error():
    x = T.dvector('x_str')
    f = theano.function([x], x * 2)
    with pytest.raises(TypeError) as err:
        f('abc')
    assert 'x_str' in str(err.value) and 'numeric' in str(err.value)


def test_wrong_number_of_arguments():
    a, b = T.dvectors('a', 'b')
    f = theano.function([a, b], a + b)
    with pytest.raises(TypeError) as err:
        f(np.ones(2))
    msg = str(err.value)
    assert "'b'" in msg or " b " in msg or "b (" in msg
    assert "(a, b)" in msg
    with pytest.raises(TypeError) as err:
        f(np.ones(2), np.ones(2), np.ones(2))
    msg = str(err.value)
    assert "2" in msg and "3" in msg and "(a, b)" in msg


# -- function() arguments --------------------------------------------------------------------

def test_unused_input_raises():
    x = T.dvector('x')
    y = T.dvector('y_unused'); line = lineno()  # noqa: E702
    with pytest.raises(theon.UnusedInputError) as err:
        fline = lineno() + 1
        theano.function([x, y], x * 2)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert 'y_unused' in msg and 'on_unused_input' in msg
    assert where(line) in msg and where(fline) in msg


def test_unused_input_ignore_and_warn():
    x = T.dvector('x')
    y = T.dvector('y_unused')
    f = theano.function([x, y], x * 2, on_unused_input='ignore')
    np.testing.assert_allclose(f(np.ones(2), np.zeros(5)), [2.0, 2.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        g = theano.function([x, y], x * 2, on_unused_input='warn')
    assert any('y_unused' in str(w.message) for w in caught)
    assert any(os.path.basename(w.filename) == HERE for w in caught)
    np.testing.assert_allclose(g(np.ones(2), np.zeros(5)), [2.0, 2.0])
    with pytest.raises(ValueError, match="on_unused_input"):
        theano.function([x], x, on_unused_input='sometimes')


def test_missing_input_names_the_variable():
    x = T.dvector('x')
    y = T.dvector('y_missing'); line = lineno()  # noqa: E702
    with pytest.raises(theon.MissingInputError) as err:
        theano.function([x], x + y)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert 'y_missing' in msg and where(line) in msg and 'givens' in msg


def test_shared_variable_as_explicit_input_suggests_givens():
    W = theano.shared(np.ones(2), 'W_expl'); line = lineno()  # noqa: E702
    with pytest.raises(TypeError) as err:
        theano.function([W], W * 2)
    msg = str(err.value)
    assert 'W_expl' in msg and 'givens' in msg and where(line) in msg


def test_non_variable_input_and_output():
    x = T.dvector('x')
    with pytest.raises(TypeError, match="symbolic variable"):
        theano.function([np.ones(2)], x)
    with pytest.raises(TypeError, match="list"):
        theano.function(x, x)
    with pytest.raises(TypeError):
        theano.function([x], "not a variable")


def test_input_listed_twice():
    x = T.dvector('x_twice')
    with pytest.raises(ValueError, match="x_twice.*twice"):
        theano.function([x, x], x)


# -- graph building ---------------------------------------------------------------------------

def test_string_where_variable_expected_points_at_line():
    with pytest.raises(TypeError) as err:
        line = lineno() + 1
        T.exp('abc')
    msg = str(err.value)
    assert "'abc'" in msg and where(line) in msg


def test_object_where_variable_expected_points_at_line():
    x = T.dmatrix('x')
    with pytest.raises(TypeError) as err:
        line = lineno() + 1
        x + object()
    msg = str(err.value)
    assert 'object' in msg and where(line) in msg
    with pytest.raises(TypeError) as err:
        line = lineno() + 1
        x * {'a': 1}
    msg = str(err.value)
    assert 'dict' in msg and where(line) in msg


def test_bool_of_symbolic_variable_suggests_switch():
    x = T.dscalar('x_bool'); vline = lineno()  # noqa: E702
    with pytest.raises(TypeError) as err:
        if x > 0:  # noqa: SIM108
            pass
    line = vline + 2
    msg = str(err.value)
    assert 'switch' in msg and 'ifelse' in msg
    assert where(line) in msg
    with pytest.raises(TypeError, match="switch"):
        bool(x <= 0)
    assert bool(x) and bool(x + 1)  # True as in Theano 1.0 (`if not W:` in tutorial code)


def test_len_of_symbolic_variable():
    x = T.dvector('x')
    with pytest.raises(TypeError, match="shape"):
        len(x)


def test_static_shape_mismatch_at_build_time():
    a = T.tensor('float64', shape=(3, 4), name='a')
    b = T.tensor('float64', shape=(5, 4), name='b')
    with pytest.raises(ValueError) as err:
        line = lineno() + 1
        a + b
    msg = str(err.value)
    assert '(3, 4)' in msg and '(5, 4)' in msg and where(line) in msg


# -- run time ---------------------------------------------------------------------------------

def test_incompatible_shapes_at_run_time():
    x, y = T.dmatrices('x_rt', 'y_rt')
    out = x + y; line = lineno()  # noqa: E702
    f = theano.function([x, y], out * 2)
    with pytest.raises(ValueError) as err:
        f(np.ones((3, 4)), np.ones((5, 4)))
    msg = str(err.value)
    assert 'add' in msg
    assert '(3, 4)' in msg and '(5, 4)' in msg
    assert 'x_rt' in msg and 'y_rt' in msg
    assert where(line) in msg


def test_run_time_error_inside_a_longer_graph_names_the_right_node():
    x = T.dmatrix('x')
    v = T.dvector('v')
    h = T.tanh(x) * 2
    bad = h.dot(v); line = lineno()  # noqa: E702
    f = theano.function([x, v], bad.sum())
    with pytest.raises(ValueError) as err:
        f(np.ones((3, 4)), np.ones(5))
    msg = str(err.value)
    assert where(line) in msg and '(5,)' in msg and '(3, 4)' in msg


def test_non_broadcastable_length_one_dimension():
    x, y = T.dmatrices('x', 'y')
    out = x + y; line = lineno()  # noqa: E702
    f = theano.function([x, y], out)
    with pytest.raises(ValueError) as err:
        f(np.ones((3, 4)), np.ones((1, 4)))
    msg = str(err.value)
    assert 'broadcastable' in msg and where(line) in msg


def test_runtime_error_is_catchable_as_builtin_type():
    x = T.dvector('x')
    f = theano.function([x], x[5])
    with pytest.raises(IndexError):
        f(np.ones(2))
