"""Regression (found by the shape fuzzer of issue 13): cancelling terms of a sum must keep the
broadcast error the sum raises. ``(a + b) - a -> b`` returned a value whose shape contradicted
its static type when a and b did not broadcast."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T


def test_cancelled_terms_keep_the_broadcast_error():
    x0 = T.tensor("float64", shape=(1, 3), name="x0")
    x1 = T.tensor("float64", shape=(1, None), name="x1")
    f = theano.function([x0, x1], ((x0 + x1) - x0) * x1)
    with pytest.raises(ValueError, match="do not broadcast"):
        f(np.ones((1, 3)), np.ones((1, 2)))
    np.testing.assert_array_equal(f(np.ones((1, 3)), np.full((1, 3), 2.0)), np.full((1, 3), 4.0))


def test_cancelling_dynamic_lengths_checks_them_at_run_time():
    x, y = T.dvectors("x", "y")
    f = theano.function([x, y], x + y - x)
    assert "add_chain_cancel_and_collect" in [n for n, _, _ in f.maker.fgraph.history]
    np.testing.assert_array_equal(f(np.ones(3), np.arange(3.0)), np.arange(3.0))
    with pytest.raises(ValueError, match=r"y.shape\[0\] is 2, x.shape\[0\] is 3"):
        f(np.ones(3), np.ones(2))


def test_no_check_where_static_lengths_agree():
    x = T.tensor("float64", shape=(3,), name="x")
    y = T.tensor("float64", shape=(3,), name="y")
    f = theano.function([x, y], x + y - x)
    assert not any(type(n.op).__name__ == "ShapeCheck" for n in f.maker.fgraph.toposort())
