"""scan's errors (issue 9, part 5): each says what is wrong, where, and the usual fix."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T

HERE = __file__.rsplit("/", 1)[-1]


def test_state_dtype_changes():
    h0 = T.fvector("h0")
    x = T.dvector("x")
    with pytest.raises(TypeError) as info:
        theano.scan(lambda x_t, h: h + x_t, sequences=x, outputs_info=h0)  # the scan line
    msg = str(info.value)
    assert "output 0" in msg and "float32" in msg and "float64" in msg
    assert "T.cast" in msg
    assert f"{HERE}:" in msg and "the scan line" in msg


def test_state_ndim_changes():
    h0 = T.dvector("h0")
    with pytest.raises(TypeError, match="number of dimensions changes from 1 to 2"):
        theano.scan(lambda h: T.outer(h, h), outputs_info=h0, n_steps=3)


def test_state_broadcast_pattern_changes():
    x = T.dmatrix("x")
    h0 = T.zeros((1, 3), dtype="float64")  # broadcastable along 0
    with pytest.raises(TypeError) as info:
        theano.scan(lambda h: h + x, outputs_info=h0, n_steps=2)
    msg = str(info.value)
    assert "broadcast pattern" in msg and "T.unbroadcast(initial, 0)" in msg
    assert "T.patternbroadcast" in msg
    # the fix the message gives works
    out, _ = theano.scan(lambda h: h + x, outputs_info=T.unbroadcast(h0, 0), n_steps=2)
    got = theano.function([x], out)(np.ones((1, 3)))
    np.testing.assert_allclose(got, [np.ones((1, 3)), 2 * np.ones((1, 3))])


def test_a_more_specific_result_fits_the_state():
    h0 = T.dmatrix("h0")
    out, _ = theano.scan(lambda h: T.zeros((1, 3), dtype="float64") + 1, outputs_info=h0,
                         n_steps=2)
    np.testing.assert_allclose(theano.function([h0], out)(np.zeros((1, 3))), np.ones((2, 1, 3)))


def test_taps_before_the_start_static():
    init = T.constant(np.array([1.0]))
    with pytest.raises(ValueError, match=r"reach 2 steps before the start.*only 1 rows"):
        theano.scan(lambda a, b: a + b, outputs_info=dict(initial=init, taps=[-2, -1]),
                    n_steps=3)


def test_taps_before_the_start_at_run_time():
    a = T.dvector("a")
    out, _ = theano.scan(lambda x, y, z: x + y + z, outputs_info=dict(initial=a,
                                                                     taps=[-3, -2, -1]),
                         n_steps=3)
    f = theano.function([a], out)
    np.testing.assert_allclose(f(np.array([1., 1., 1.])), [3., 5., 9.])
    with pytest.raises(ValueError, match=r"reach 3 steps before the start.*has only 2 rows"):
        f(np.array([1., 1.]))


def test_positive_output_taps_refused():
    a = T.dvector("a")
    with pytest.raises(ValueError, match="must be negative"):
        theano.scan(lambda x: x, outputs_info=dict(initial=a, taps=[1]), n_steps=2)


def test_negative_n_steps():
    with pytest.raises(ValueError, match="n_steps is -2"):
        theano.scan(lambda h: h * 2, outputs_info=T.constant(1.0), n_steps=-2)
    k = T.iscalar("k")
    out, _ = theano.scan(lambda h: h * 2, outputs_info=T.constant(1.0), n_steps=k)
    f = theano.function([k], out)
    with pytest.raises(ValueError, match="n_steps is -1"):
        f(-1)


def test_n_steps_longer_than_a_sequence():
    x = T.dvector("x")
    out, _ = theano.scan(lambda v: v * 2, sequences=x, n_steps=10)
    f = theano.function([x], out)
    with pytest.raises(ValueError, match="n_steps is 10 but sequence input 0 has only 3 steps"):
        f(np.ones(3))


def test_no_sequences_and_no_n_steps():
    with pytest.raises(ValueError, match="give n_steps"):
        theano.scan(lambda h: h * 2, outputs_info=T.constant(1.0))


@pytest.mark.parametrize("bad", [1.0, np.ones(2), None, "x"])
def test_fn_returning_a_non_variable(bad):
    x = T.dvector("x")
    with pytest.raises(TypeError, match="not a symbolic variable.*T.constant"):
        theano.scan(lambda v: [v * 2, bad], sequences=x)


def test_outputs_info_count_differs():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="returns 2 outputs but outputs_info has 1"):
        theano.scan(lambda v, s: [v + s, v], sequences=x, outputs_info=[T.constant(0.0)])


def test_fn_arity():
    x = T.dvector("x")
    with pytest.raises(TypeError, match=r"cannot take the 2 arguments.*1 sequence slices.*"
                                        r"1 non-sequences"):
        theano.scan(lambda v: v, sequences=x, non_sequences=T.dscalar("c"))


def test_strict_refuses_a_variable_not_passed():
    W = theano.shared(np.eye(2), name="W")
    c = T.dscalar("c")
    x = T.dmatrix("x")
    with pytest.raises(ValueError, match="strict=True.*uses W"):
        theano.scan(lambda r: T.dot(r, W), sequences=x, strict=True)
    with pytest.raises(ValueError, match="strict=True.*uses c"):
        theano.scan(lambda r, W: T.dot(r, W) * c, sequences=x, non_sequences=W, strict=True)
    out, _ = theano.scan(lambda r, W: T.dot(r, W) * 2, sequences=x, non_sequences=W,
                         strict=True)
    np.testing.assert_allclose(theano.function([x], out)(np.ones((2, 2))), 2 * np.ones((2, 2)))


def test_update_of_a_non_shared_variable():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="not a shared variable"):
        theano.scan(lambda v: (v, {x: x + 1}), sequences=x)


def test_update_changing_dtype():
    c = theano.shared(np.int32(0), name="c")
    with pytest.raises(TypeError, match="keep the shared variable's dtype"):
        theano.scan(lambda: {c: c + 0.5}, n_steps=2)


def test_failure_inside_the_loop_names_the_step_and_the_node():
    i = T.ivector("i")
    a = T.dvector("a")
    out, _ = theano.scan(lambda i_t, a: a[i_t] * 2, sequences=i, non_sequences=a)
    f = theano.function([i, a], out)
    np.testing.assert_allclose(f(np.array([0, 1], dtype="int32"), np.ones(3)), [2., 2.])
    with pytest.raises(IndexError) as info:
        f(np.array([0, 1, 5, 0], dtype="int32"), np.ones(3))
    msg = str(info.value)
    assert "step 2 (of 4)" in msg and "Subtensor" in msg and f"{HERE}:" in msg


def test_state_changing_shape_at_run_time():
    h0 = T.dvector("h0")
    out, _ = theano.scan(lambda h: T.concatenate([h, h]), outputs_info=h0, n_steps=3)
    f = theano.function([h0], out)
    with pytest.raises(ValueError, match=r"shape \(4,\) at step 0.*shape \(2,\)"):
        f(np.ones(2))


def test_map_output_changing_shape_between_steps():
    x = T.ivector("x")
    out, _ = theano.scan(lambda n: T.arange(n), sequences=x)
    f = theano.function([x], out)
    np.testing.assert_array_equal(f(np.array([2, 2], dtype="int32")), [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match=r"shape \(3,\) at step 1 but \(2,\) at step 0"):
        f(np.array([2, 3], dtype="int32"))


def test_until_needs_a_scalar():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="scalar condition"):
        theano.scan(lambda v: (v, theano.scan_module.until(x > 0)), sequences=x)
