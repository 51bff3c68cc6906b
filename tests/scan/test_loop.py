"""The steps of a Scan node as generated code (scan/loop.py): the body's lines inlined where
the backend offers them, the compiled body called per step where it does not."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.backends import numpy_backend
from theon.compile.mode import Mode


def _steps(f) -> str:
    """The generated source of the steps of the one Scan node of ``f``."""
    fn = getattr(f.fn, "__wrapped__", f.fn)  # (under a device: the host-values wrapper's)
    values = list(fn.__globals__.values())
    values += [step[0] for v in values if isinstance(v, list) for step in v
               if isinstance(step, tuple) and step]  # a table's steps: (thunk, ...)
    found = {id(v): v.steps.source for v in values if hasattr(v, "steps")}
    found = list(found.values())
    assert len(found) == 1
    return found[0]


def _rnn(mode):
    x, h0 = T.dmatrix("x"), T.dvector("h0")
    w = T.dmatrix("w")
    hs, _ = theano.scan(lambda x_t, h, w: T.tanh(T.dot(h, w) + x_t), sequences=x,
                        outputs_info=h0, non_sequences=w)
    return theano.function([x, h0, w], hs, mode=mode)


def _rnn_numpy(x, h0, w):
    out, h = [], h0
    for x_t in x:
        h = np.tanh(h @ w + x_t)
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("linker", ["py", "c"])
def test_the_body_is_inlined_into_the_loop(linker):
    f = _rnn(Mode(linker=linker))
    src = _steps(f)
    assert "for _Lt in range(_Ln):" in src
    assert "# Dot" in src and "_Lfn(" not in src  # the body's thunks, no call of the body
    rng = np.random.default_rng(0)
    x, h0, w = rng.normal(size=(6, 3)), rng.normal(size=3), rng.normal(size=(3, 3))
    np.testing.assert_allclose(f(x, h0, w), _rnn_numpy(x, h0, w), rtol=1e-12)


def test_the_checking_mode_runs_the_loop_to_numpys_result():
    # (its body is a CheckedFunction, which has no lines to inline: the loop calls it)
    f = _rnn("DebugMode")
    rng = np.random.default_rng(1)
    x, h0, w = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(3, 3))
    np.testing.assert_allclose(f(x, h0, w), _rnn_numpy(x, h0, w), rtol=1e-12)


def test_a_body_run_as_a_table_is_called(monkeypatch):
    # a body of TABLE_NODES nodes or more is run from a table, not as lines: the loop calls it
    monkeypatch.setattr(numpy_backend, "TABLE_NODES", 2)
    f = _rnn(Mode(linker="py"))
    src = _steps(f)
    assert "_Lr = _Lfn(" in src
    rng = np.random.default_rng(2)
    x, h0, w = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=(3, 3))
    np.testing.assert_allclose(f(x, h0, w), _rnn_numpy(x, h0, w), rtol=1e-12)


def test_maps_states_with_taps_shared_updates_and_until_in_one_loop():
    x = T.dvector("x")
    count = theano.shared(np.float64(0.0), name="count")

    def step(x_t, f2, f1):
        return [f1 + f2 + x_t, x_t * 2], {count: count + 1}, \
            theano.scan_module.until(f1 + f2 > 20)
    (fib, doubled), updates = theano.scan(step, sequences=x, outputs_info=[
        dict(initial=T.as_tensor_variable(np.array([0.0, 1.0])), taps=[-2, -1]), None])
    f = theano.function([x], [fib, doubled], updates=updates, mode=Mode(linker="py"))
    assert "_Lfn(" not in _steps(f)
    got_fib, got_doubled = f(np.ones(10))
    want, a, b = [], 0.0, 1.0
    for _ in range(10):
        stop = a + b > 20  # the condition reads the states the step reads
        a, b = b, a + b + 1
        want.append(b)
        if stop:  # that step's outputs are kept
            break
    np.testing.assert_allclose(got_fib, want)  # [2, 4, 7, 12, 20, 33]
    steps = len(want)
    np.testing.assert_allclose(got_doubled, np.full(steps, 2.0))
    assert count.get_value() == steps


def _data_ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("linker", ["py", "c"])
def test_a_loop_reuses_its_arrays_only_once_nobody_holds_them(linker):
    # the states' buffer and a map's rows are reused by the next call when the previous
    # results were dropped (a fresh large array costs a page fault per 4 KiB), never while
    # a result or a view of it is held
    x, h0 = T.dmatrix("x"), T.dvector("h0")
    w = T.dmatrix("w")
    (hs, ys), _ = theano.scan(lambda x_t, h, w: [T.tanh(T.dot(h, w) + x_t), 2 * h],
                              sequences=x, outputs_info=[h0, None], non_sequences=w)
    f = theano.function([x, h0, w], [hs, ys], mode=Mode(linker=linker))
    rng = np.random.default_rng(3)
    args = [rng.normal(size=(40, 3)), rng.normal(size=3), rng.normal(size=(3, 3)) * 0.5]
    other = [2 * args[0], -args[1], args[2]]
    want = _rnn_numpy(*args)
    want_other = _rnn_numpy(*other)
    first = f(*args)
    kept = [r.copy() for r in first]
    row = first[0][5]  # a view of the states' buffer
    second = f(*other)
    for a, b in zip(first, kept):  # held: untouched by the second call
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(first[0], want)
    np.testing.assert_allclose(second[0], want_other)
    np.testing.assert_allclose(second[1][1:], 2 * want_other[:-1])
    del first
    third = f(*args)  # the row still holds the first call's states
    np.testing.assert_array_equal(row, kept[0][5])
    np.testing.assert_allclose(third[0], want)
    ptrs = [_data_ptr(r) for r in third]
    del third, row
    fourth = f(*other)  # nothing holds the third call's arrays: they are reused
    assert [_data_ptr(r) for r in fourth] == ptrs
    np.testing.assert_allclose(fourth[0], want_other)
    np.testing.assert_allclose(fourth[1][1:], 2 * want_other[:-1])


def test_a_state_fed_back_from_the_previous_call_is_read_before_it_is_reused():
    # h0 of this call is a row of the previous call's states: it holds their buffer, so the
    # call writes elsewhere
    x, h0 = T.dmatrix("x"), T.dvector("h0")
    w = T.dmatrix("w")
    hs, _ = theano.scan(lambda x_t, h, w: T.tanh(T.dot(h, w) + x_t), sequences=x,
                        outputs_info=h0, non_sequences=w)
    f = theano.function([x, h0, w], hs)
    rng = np.random.default_rng(4)
    x_v, w_v = rng.normal(size=(30, 4)), rng.normal(size=(4, 4)) * 0.5
    h = rng.normal(size=4)
    want = _rnn_numpy(np.concatenate([x_v, x_v]), h, w_v)
    out = f(x_v, h, w_v)
    out = f(x_v, out[-1], w_v)
    np.testing.assert_allclose(out, want[30:])
