"""Regressions from the outside audit (issue 13) in ``function()``: default updates.

``no_default_updates=[a]`` dropped every default update (any non-empty list acted as True);
Theano skips only the listed variables. Checked against Theano 1.0.5's behaviour: a shared
variable that givens replace is not read, so its default update does not run; a default update
whose expression reads another shared variable with a default update brings that one in too.
"""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T


def _counter(name, start=0.0):
    s = theano.shared(np.float64(start), name=name)
    s.default_update = s + 1
    return s


def test_no_default_updates_skips_only_the_listed_variables():
    a, b = _counter("a"), _counter("b")
    x = T.dscalar("x")
    f = theano.function([x], x + a + b, no_default_updates=[a])
    f(0.0)
    assert (a.get_value(), b.get_value()) == (0.0, 1.0)


@pytest.mark.parametrize("flag, expected", [(True, (0.0, 0.0)), (False, (1.0, 1.0)),
                                            ([], (1.0, 1.0)), ((), (1.0, 1.0))])
def test_no_default_updates_true_false_and_empty(flag, expected):
    a, b = _counter("a"), _counter("b")
    x = T.dscalar("x")
    theano.function([x], x + a + b, no_default_updates=flag)(0.0)
    assert (a.get_value(), b.get_value()) == expected


def test_no_default_updates_refuses_what_is_not_a_shared_variable():
    x = T.dscalar("x")
    with pytest.raises(TypeError, match="not a shared variable"):
        theano.function([x], x * 2, no_default_updates=[x])


def test_a_shared_variable_replaced_by_givens_is_not_updated():
    s, s2 = _counter("s"), theano.shared(np.float64(10.0), name="s2")
    x = T.dscalar("x")
    f = theano.function([x], x + s, givens={s: s2})
    assert f(1.0) == 11.0
    assert (s.get_value(), s2.get_value()) == (0.0, 10.0)


def test_givens_apply_inside_default_update_expressions():
    t, t2 = theano.shared(np.float64(1.0), name="t"), theano.shared(np.float64(5.0), name="t2")
    s = theano.shared(np.float64(0.0), name="s")
    s.default_update = s + t
    x = T.dscalar("x")
    theano.function([x], x + s, givens={t: t2})(0.0)
    assert s.get_value() == 5.0


def test_default_updates_read_by_other_default_updates_run_too():
    t = _counter("t")
    u = theano.shared(np.float64(0.0), name="u")
    u.default_update = u + t
    x = T.dscalar("x")
    f = theano.function([x], x + u)
    f(0.0)
    assert (u.get_value(), t.get_value()) == (0.0, 1.0)  # both from the values before the call
    f(0.0)
    assert (u.get_value(), t.get_value()) == (1.0, 2.0)


def test_an_explicit_update_wins_over_the_default_one():
    a = _counter("a")
    x = T.dscalar("x")
    theano.function([x], x + a, updates=[(a, a + 10)])(0.0)
    assert a.get_value() == 10.0
