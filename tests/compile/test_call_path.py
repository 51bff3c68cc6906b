"""The call path of a compiled function: the generated function is the call, Python numbers
for scalar inputs convert inline, every other call shape goes through one slow path with the
same errors as before, and ``trust_input`` skips the checks."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.compile.function import Function


def test_the_call_is_the_generated_function():
    a, b = T.dscalars("a", "b")
    f = theano.function([a, b], a + b)
    assert isinstance(f, Function)
    assert type(f).__call__ is f.fn
    assert f(1.0, 2) == 3.0 and f(b=2.0, a=1.0) == 3.0 and f(1.0, b=2.0) == 3.0


@pytest.mark.parametrize("dtype, value, ok", [
    ("float64", 1e300, True), ("float32", 1.5, True), ("float32", 1e39, False),
    ("float32", float("inf"), True), ("float32", float("nan"), True), ("float32", 3, True),
    ("float32", 2 ** 30, True), ("int8", 100, True), ("int8", 300, False), ("uint8", -1, False),
    ("int64", 2 ** 62, True), ("int32", 1.5, False), ("float64", True, True),
])
def test_python_numbers_for_scalar_inputs(dtype, value, ok):
    x = T.scalar("x", dtype=dtype)
    f = theano.function([x], x * 1)
    if not ok:
        with pytest.raises(TypeError, match="x"):
            f(value)
        return
    got = f(value)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.array(value).astype(dtype))


def test_strict_inputs_refuse_python_numbers():
    x = T.dscalar("x")
    f = theano.function([theano.In(x, strict=True)], x * 2)
    with pytest.raises(TypeError, match="strict"):
        f(1.0)
    assert f(np.array(1.5)) == 3.0


def test_call_errors_name_the_inputs():
    a, b = T.dscalars("a", "b")
    f = theano.function([a, b], a + b)
    with pytest.raises(TypeError, match="missing a value for input 1"):
        f(1.0)
    with pytest.raises(TypeError, match="takes 2 argument"):
        f(1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="no input named 'c'"):
        f(1.0, c=2.0)
    with pytest.raises(TypeError, match="given twice"):
        f(1.0, a=2.0)


def test_defaults_and_their_updates_still_work():
    x, y = T.dscalars("x", "y")
    f = theano.function([x, theano.In(y, value=1.0, update=y + x)], x * y)
    assert f(2.0) == 2.0   # y = 1, then y <- 3
    assert f(2.0) == 6.0
    assert f(2.0, 10.0) == 20.0


def test_trust_input_skips_the_checks():
    x = T.dvector("x")
    f = theano.function([x], x * 2, trust_input=True)
    assert f.trust_input
    np.testing.assert_array_equal(f(np.arange(3.0)), [0.0, 2.0, 4.0])
    if theano.config.device == "cpu":
        # (a device checks every argument: the check is what moves a host array there, and
        # a kernel handed the wrong rank would read out of bounds: backends/cuda/backend.py)
        assert f(np.ones((2, 2))).shape == (2, 2)  # unchecked: a matrix goes through
    f.trust_input = False
    with pytest.raises(TypeError, match="x"):
        f(np.ones((2, 2)))  # refused once checked again


def test_a_function_with_no_inputs_and_pickling():
    s = theano.shared(np.float64(2.0), name="s")
    f = theano.function([], s * 3)
    assert f() == 6.0
    with pytest.raises(TypeError, match="takes 0 argument"):
        f(1.0)
    g = pickle.loads(pickle.dumps(f))
    assert g() == 6.0
