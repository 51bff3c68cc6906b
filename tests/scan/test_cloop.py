"""scan's loop in generated C (scan/cloop.py): on the C backend, a body of elementwise kernels
and small products runs as one C loop. Each case checks that the C loop took the call and that
its values equal the numpy backend's (the Python loop); calls it must not take (a state
changing shape, broadcasting the types refuse, large products) go to the Python loop, which
computes them or raises its error naming the step."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.backends import ccompiler
from theon.scan import cloop

pytestmark = [
    pytest.mark.skipif(ccompiler.compiler() is None, reason="no C compiler"),
    # (a loop in generated C is the C backend's; on a device the body is a device function)
    pytest.mark.skipif(theano.config.device != "cpu", reason="the C loop is the CPU's"),
]

PY = theano.Mode(linker="py")
_rng = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def wait_for_kernels(monkeypatch):
    monkeypatch.setattr(cloop, "MIN_STEPS", 1)  # these loops are short
    # earlier tests' kernels still queued would come first: this test waits for its own only
    ccompiler.cancel_pending(timeout=120)
    old = theano.config.wait_for_kernels
    theano.config.wait_for_kernels = True
    yield
    theano.config.wait_for_kernels = old


def rnd(*shape, scale=1.0, dtype="float64"):
    return (_rng.normal(size=shape) * scale).astype(dtype)


def c_loops(f) -> list:
    """The C loops of the Scan nodes of a compiled function (None for a node without one)."""
    return [v.c_steps for v in f.fn.__globals__.values() if hasattr(v, "c_steps")]


def same_as_numpy(inputs, outputs, args, took=True, rtol=1e-12):
    f = theano.function(inputs, outputs)
    g = theano.function(inputs, outputs, mode=PY)
    got, want = f(*args), g(*args)
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    loops = c_loops(f)
    assert loops
    if took:
        assert all(c is not None and c.runs for c in loops)
    return f


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batched", [False, True])
def test_rnn_steps_run_in_c(dtype, batched):
    x = (T.tensor3 if batched else T.matrix)("x", dtype=dtype)
    h0 = (T.matrix if batched else T.vector)("h0", dtype=dtype)
    W, U, b = T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype), T.vector("b", dtype=dtype)
    h, _ = theano.scan(lambda x_t, h, W, U, b: T.tanh(T.dot(x_t, W) + T.dot(h, U) + b),
                       sequences=x, outputs_info=h0, non_sequences=[W, U, b])
    rows = (6, 3) if batched else (6,)
    tol = 1e-12 if dtype == "float64" else 1e-5
    same_as_numpy([x, h0, W, U, b], h, [rnd(*rows, 4, dtype=dtype), rnd(*rows[1:], 5,
                                                                         dtype=dtype),
                                        rnd(4, 5, scale=0.5, dtype=dtype),
                                        rnd(5, 5, scale=0.4, dtype=dtype),
                                        rnd(5, dtype=dtype)], rtol=tol)


def test_taps_maps_several_states_and_go_backwards():
    x, a0, b0 = T.dmatrix("x"), T.dmatrix("a0"), T.dvector("b0")
    W = T.dmatrix("W")

    def step(x_m1, x_1, a_m2, a_m1, b_m1, W):
        a = T.tanh(T.dot(a_m1 - a_m2 * 0.5, W) + x_m1)
        b = T.exp(-b_m1 * b_m1) + x_1
        return [a, b, a * 2 + b]
    (a, b, m), _ = theano.scan(step, sequences=dict(input=x, taps=[-1, 1]),
                               outputs_info=[dict(initial=a0, taps=[-2, -1]), b0, None],
                               non_sequences=W, go_backwards=True)
    same_as_numpy([x, a0, b0, W], [a, b, m], [rnd(9, 3), rnd(2, 3), rnd(3), rnd(3, 3, scale=0.5)])


def test_n_steps_shorter_than_the_sequence_and_zero_steps():
    x, h0, k = T.dvector("x"), T.dscalar("h0"), T.iscalar("k")
    h, _ = theano.scan(lambda x_t, h: T.tanh(h * x_t + 1), sequences=x, outputs_info=h0,
                       n_steps=k)
    f = theano.function([x, h0, k], h)
    g = theano.function([x, h0, k], h, mode=PY)
    xs = np.linspace(-1, 1, 7)
    for steps in (0, 1, 4):
        got = f(xs, np.float64(0.3), steps)
        assert got.shape == (steps,)
        np.testing.assert_allclose(got, g(xs, np.float64(0.3), steps), rtol=1e-12)
    assert c_loops(f)[0].runs == 2  # (no step: the Python loop)


def test_short_loops_compile_nothing(monkeypatch):
    monkeypatch.setattr(cloop, "MIN_STEPS", 8)
    x, h0 = T.dvector("x"), T.dscalar("h0")
    h, _ = theano.scan(lambda x_t, h: T.tanh(h * x_t + 1), sequences=x, outputs_info=h0)
    f = theano.function([x, h0], h)
    f(np.ones(7), np.float64(0.5))
    c = c_loops(f)[0]
    assert not c.requested and not c.runs
    f(np.ones(8), np.float64(0.5))
    assert c.requested and c.runs == 1


def test_a_state_changing_shape_fails_as_in_python():
    h0, W = T.dvector("h0"), T.dmatrix("W")
    h, _ = theano.scan(lambda h, W: T.dot(h, W), outputs_info=h0, non_sequences=W, n_steps=3)
    f = theano.function([h0, W], h)
    with pytest.raises(ValueError, match="step 0"):
        f(rnd(3), rnd(3, 4))  # the state would grow from 3 to 4
    assert f(rnd(3), rnd(3, 3)).shape == (3, 3)
    assert c_loops(f)[0].runs == 1


def test_broadcasting_the_types_refuse_fails_as_in_python():
    x, h0, b = T.dmatrix("x"), T.dvector("h0"), T.dvector("b")
    h, _ = theano.scan(lambda x_t, h, b: T.tanh(h + x_t * b), sequences=x, outputs_info=h0,
                       non_sequences=b)
    f = theano.function([x, h0, b], h)
    with pytest.raises(ValueError):
        f(rnd(4, 3), rnd(3), rnd(1))  # b is not broadcastable: length 1 may not stretch
    assert not c_loops(f)[0].runs


@pytest.mark.parametrize("transposed", [False, True])
def test_large_products_call_blas_from_the_loop(monkeypatch, transposed):
    # above MAX_PRODUCT a product is numpy's own gemm, called from the C loop: a transposed
    # operand (a gradient's W.T) and an addend (DotAdd) as BLAS reads them, no copy
    from theon.ops import cblas
    monkeypatch.setattr(cloop, "MAX_PRODUCT", 10)
    calls = []
    real = cblas.gemm_address
    monkeypatch.setattr(cblas, "gemm_address", lambda dtype: calls.append(dtype) or real(dtype))
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    h, _ = theano.scan(lambda x_t, h, W: T.tanh(T.dot(h, W.T if transposed else W) + x_t),
                       sequences=x, outputs_info=h0, non_sequences=W)
    assert not cblas.available("float64") or same_as_numpy(
        [x, h0, W], h, [rnd(5, 3, 4), rnd(3, 4), rnd(4, 4, scale=0.5)])
    assert calls


def test_large_products_without_blas_stay_in_python(monkeypatch):
    from theon.ops import cblas
    monkeypatch.setattr(cloop, "MAX_PRODUCT", 10)
    monkeypatch.setattr(cblas, "gemm_address", lambda dtype: None)
    x, h0, W = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W")
    h, _ = theano.scan(lambda x_t, h, W: T.tanh(T.dot(h, W) + x_t), sequences=x,
                       outputs_info=h0, non_sequences=W)
    f = same_as_numpy([x, h0, W], h, [rnd(5, 4), rnd(4), rnd(4, 4, scale=0.5)], took=False)
    assert not c_loops(f)[0].runs  # 16 multiply-adds a step: above the (patched) limit


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_gradient_loop_runs_in_c(dtype):
    # T.grad's reverse loop carries its gradient as a state without stacking, through row
    # and dimshuffle views: all of it in C, the weight gradients equal to the numpy path's
    x = T.tensor3("x", dtype=dtype)
    h0 = T.matrix("h0", dtype=dtype)
    W, U, b = T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype), T.vector("b", dtype=dtype)
    h, _ = theano.scan(lambda x_t, h, W, U, b: T.tanh(T.dot(x_t, W) + T.dot(h, U) + b),
                       sequences=x, outputs_info=h0, non_sequences=[W, U, b])
    cost = (h ** 2).sum()
    tol = 1e-12 if dtype == "float64" else 1e-4
    f = same_as_numpy([x, h0, W, U, b], [cost] + T.grad(cost, [h0, W, U, b]),
                      [rnd(7, 3, 4, dtype=dtype), rnd(3, 5, dtype=dtype),
                       rnd(4, 5, scale=0.5, dtype=dtype), rnd(5, 5, scale=0.4, dtype=dtype),
                       rnd(5, dtype=dtype)], rtol=tol)
    assert len(c_loops(f)) == 2


def test_a_body_with_other_ops_has_no_c_loop():
    x = T.dmatrix("x")
    out, _ = theano.scan(lambda x_t: T.sort(x_t) * 2, sequences=x)
    f = same_as_numpy([x], out, [rnd(4, 5)], took=False)
    assert c_loops(f) == [None]


def test_strided_sequences_and_non_sequences():
    x, h0, W = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W")
    h, _ = theano.scan(lambda x_t, h, W: T.tanh(T.dot(W, h) + x_t), sequences=x,
                       outputs_info=h0, non_sequences=W)
    same_as_numpy([x, h0, W], h, [rnd(6, 8)[:, ::2], rnd(4), rnd(8, 8, scale=0.3)[::2, ::2]])


@pytest.mark.parametrize("seed", range(8))
def test_random_bodies_equal_the_numpy_path(seed):
    # random RNN bodies: a projection, the recurrence (a product or an elementwise op), a
    # chain of unary and binary elementwise ops with the bias or the state, a map output
    rng = np.random.default_rng(seed)
    dtype = ["float64", "float32"][seed % 2]
    batched = bool(rng.integers(2))
    hidden, n_in, batch, steps = (int(v) for v in rng.integers(1, 6, size=4))
    unary, binary = ["tanh", "exp", "sin", "abs_", "sqr", "sigmoid", "neg"], \
        ["add", "sub", "mul", "maximum", "minimum"]
    chain = [(rng.choice(unary), rng.choice(binary), bool(rng.integers(2)))
             for _ in range(int(rng.integers(1, 4)))]
    product = bool(rng.integers(2))
    x = (T.tensor3 if batched else T.matrix)("x", dtype=dtype)
    h0 = (T.matrix if batched else T.vector)("h0", dtype=dtype)
    W, U, b = T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype), T.vector("b", dtype=dtype)

    def step(x_t, h, W, U, b):
        v = T.dot(x_t, W)
        v = v + T.dot(h, U) if product else getattr(T, rng.choice(binary))(v, h)
        for u, op, with_bias in chain:
            v = getattr(T, op)(getattr(T, u)(v), b if with_bias else h)
        v = T.tanh(v)
        return [v, v * 2 + h]
    out, _ = theano.scan(step, sequences=x, outputs_info=[h0, None], non_sequences=[W, U, b])
    rows = (steps, batch) if batched else (steps,)
    args = [rnd(*rows, n_in, dtype=dtype), rnd(*rows[1:], hidden, dtype=dtype),
            rnd(n_in, hidden, scale=0.5, dtype=dtype),
            rnd(hidden, hidden, scale=0.5, dtype=dtype), rnd(hidden, dtype=dtype)]
    f = theano.function([x, h0, W, U, b], out, on_unused_input="ignore")
    g = theano.function([x, h0, W, U, b], out, mode=PY, on_unused_input="ignore")
    tol = 1e-11 if dtype == "float64" else 1e-4
    for got, want in zip(f(*args), g(*args)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert c_loops(f)[0].runs == 1


def _rnn_with_a_map(reverse: bool, factor: float):
    """A Scan op built directly (T.grad's reverse loops are built so): the state
    ``tanh(h W + x_t)`` and a map ``factor`` times it; its inputs; numpy arguments."""
    from theon.scan import Scan
    from theon.scan.basic import ScanSpec
    x_in, h_in, W_in = T.dvector("x_t"), T.dvector("h"), T.dmatrix("W")
    h_new = T.tanh(T.dot(h_in, W_in) + x_in)
    op = Scan([x_in, h_in, W_in], [h_new, factor * h_new], ScanSpec(
        n_seqs=1, outputs=((-1,), None), n_shared=0, n_nonseqs=1, as_while=False),
        reverse=reverse)
    x, h0, W = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W")
    return op(x.shape[0], x, h0, W), [x, h0, W], [rnd(40, 3), rnd(3), rnd(3, 3, scale=0.5)]


def test_a_reverse_loop_in_c_writes_its_rows_from_the_last():
    # T.grad's reverse loops read their sequences and write their maps from the last row,
    # so that their rows stay in the forward loop's order
    outs, inputs, args = _rnn_with_a_map(True, 2)
    f = same_as_numpy(inputs, list(outs), args)
    h, maps = args[1], [None] * 40
    for t in range(40):
        h = np.tanh(h @ args[2] + args[0][39 - t])
        maps[39 - t] = 2 * h
    got = f(*args)
    np.testing.assert_allclose(got[1], np.array(maps), rtol=1e-12, atol=1e-12)
    assert got[1].flags.c_contiguous


@pytest.mark.parametrize("reverse", [False, True])
def test_the_c_loop_reuses_a_map_only_once_nobody_holds_it(reverse):
    # a map's stacked rows are written into the previous call's array when the caller has
    # dropped it (a fresh large array costs page faults), never while it or a view is held
    outs, inputs, args = _rnn_with_a_map(reverse, 3)
    other = [-args[0], args[1], args[2]]
    f = same_as_numpy(inputs, outs[1], args)
    (loop,) = c_loops(f)
    first = f(*args)
    kept = first.copy()
    row = first[7]  # a view: holds the array
    runs = loop.runs
    second = f(*other)
    np.testing.assert_array_equal(first, kept)
    del first
    third = f(*other)
    np.testing.assert_array_equal(row, kept[7])
    np.testing.assert_array_equal(third, second)
    base = third.base if third.base is not None else third
    ptr = base.__array_interface__["data"][0]
    del third, row, base
    fourth = f(*args)
    assert loop.runs == runs + 3
    got = fourth.base if fourth.base is not None else fourth
    assert got.__array_interface__["data"][0] == ptr
    np.testing.assert_array_equal(fourth, kept)


def test_values_written_into_their_rows_are_read_by_later_steps():
    """A step writes a state's or a map's value straight into its row; later steps of the
    body read it there (a value returned twice is copied, and leaves the loop to Python)."""
    x, h0, W = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W")

    def step(x_t, h, W):
        new = T.tanh(T.dot(h, W) + x_t)
        m = T.exp(new) - x_t
        return [new, m, T.dot(new, W) + m]
    (h, m, later), _ = theano.scan(step, sequences=x, outputs_info=[h0, None, None],
                                   non_sequences=W, go_backwards=True)
    same_as_numpy([x, h0, W], [h, m, later], [rnd(7, 3), rnd(3), rnd(3, 3, scale=0.5)])


def test_the_c_loop_taking_over_from_the_python_loop_reuses_its_arrays():
    # the C loop is compiled in the background: until it is loaded the Python loop runs the
    # calls, and the arrays it stacked the maps in are reused by the C loop's calls (and back)
    x, h0, w = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("w")
    (hs, ys), _ = theano.scan(lambda x_t, h, w: [T.tanh(T.dot(h, w) + x_t), 2 * h],
                              sequences=x, outputs_info=[h0, None], non_sequences=w)
    f = theano.function([x, h0, w], [hs, ys])
    args = [rnd(40, 3), rnd(3), rnd(3, 3, scale=0.5)]
    want = [np.array(v) for v in theano.function([x, h0, w], [hs, ys], mode=PY)(*args)]
    (loop,) = c_loops(f)
    f(*args)  # compiles and loads the C loop
    entry = loop.entry
    assert entry is not None
    ptrs = None
    for c_first in (False, True, False):
        loop.entry = entry if c_first else None  # None (requested): the Python loop runs
        runs = loop.runs
        got = f(*args)
        assert loop.runs == runs + c_first
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
        now = [got[0].__array_interface__["data"][0], got[1].__array_interface__["data"][0]]
        assert ptrs is None or now == ptrs
        ptrs = now
        del got  # (nothing else holds them: the next call may reuse them)
    loop.entry = entry
