"""The numpy backend's memory plan: a node writes its output into a dead intermediate's buffer
(``out=``), and a shared variable's update into the variable's own storage, only where nothing
else can see the difference. Each test compares values with numpy (over repeated calls) and
checks, with ``np.shares_memory``, that inputs, constants, shared values and returned outputs
keep their own buffers."""
from __future__ import annotations

import re

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.backends import numpy_backend
from theon.compile.io import Out
from theon.ifelse import ifelse

# the numpy path, each elementwise node on its own (fusion would make one node of a chain)
PY = theano.Mode(linker="py").excluding("fusion")
REFERENCE = theano.Mode(linker="py", optimizer=None)
rng = np.random.default_rng(11)


HOST_STORAGE = pytest.mark.skipif(
    theano.config.device != "cpu",
    reason="about host storage: a device keeps shared values in its own memory")


@pytest.fixture(autouse=True, params=["code", "table"])
def form(request, monkeypatch):
    """Every test runs with both forms of a schedule: generated code and a table of steps."""
    monkeypatch.setattr(numpy_backend, "TABLE_NODES", 10 ** 9 if request.param == "code" else 0)
    return request.param


def in_place(f, n_args: int) -> bool:
    """Whether a step writes into the first shared variable's storage (the register after the
    ``n_args`` arguments', in a table)."""
    first_shared = f"r[{n_args}]" if "_run(" in f.source else "s0"
    return any(f"out={first_shared}" in line for line in planned(f))


def vec(name, n=6, dtype="float64"):
    return T.tensor(dtype, shape=(n,), name=name)


def data(*shape, dtype="float64"):
    return rng.uniform(0.5, 1.5, size=shape).astype(dtype)


def planned(f) -> list[str]:
    """The generated lines that hand a node a buffer."""
    return [line.strip() for line in f.source.splitlines() if "out=" in line and
            "out=..." not in line]


def call_twice(f, *args):
    """Call ``f`` twice on copies of ``args`` (the arguments must come out unchanged); the
    first result must survive the second call."""
    keep = [np.array(a, copy=True) for a in args]
    first = f(*args)
    saved = [np.array(v, copy=True) for v in (first if isinstance(first, list) else [first])]
    second = f(*args)
    for a, k in zip(args, keep):
        np.testing.assert_array_equal(a, k)
    for v, s in zip(first if isinstance(first, list) else [first], saved):
        np.testing.assert_array_equal(v, s)  # not overwritten by the second call
    return second


def no_alias(values, *others):
    values = values if isinstance(values, list) else [values]
    for k, v in enumerate(values):
        for o in list(others) + values[:k]:
            assert not np.shares_memory(v, o)


def test_chain_reuses_dead_intermediates():
    a, b, c, d = (vec(k) for k in "abcd")
    out = T.tanh(a * b + c) * T.nnet.sigmoid(a) - T.sqrt(d)
    f = theano.function([a, b, c, d], out, mode=PY)
    lines = planned(f)
    assert len(lines) >= 3, f.source
    args = [data(6) for _ in range(4)]
    want = np.tanh(args[0] * args[1] + args[2]) / (1 + np.exp(-args[0])) - np.sqrt(args[3])
    got = call_twice(f, *args)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    no_alias(got, *args)


def test_float32_and_unknown_lengths():
    a, b = T.fvectors("a", "b")
    f = theano.function([a, b], T.exp(a * b) + T.cos(a), mode=PY)
    assert planned(f)
    A, B = data(1000, dtype="float32"), data(1000, dtype="float32")
    got = call_twice(f, A, B)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.exp(A * B) + np.cos(A), rtol=1e-6)
    no_alias(got, A, B)


def test_a_buffer_waits_for_a_later_node():
    # exp(x) dies at its sum, which cannot write into it; sin(y), later, can
    x, y = vec("x"), vec("y")
    t = T.exp(x)
    f = theano.function([x, y], [t.sum(), T.sin(y) * 2], mode=PY)
    X, Y = data(6), data(6)
    s, v = call_twice(f, X, Y)
    np.testing.assert_allclose(s, np.exp(X).sum())
    np.testing.assert_allclose(v, np.sin(Y) * 2)
    no_alias([s, v], X, Y)


def test_inputs_are_never_written():
    x, y = T.dvectors("x", "y")
    f = theano.function([x, y], T.exp(x) * 2 + T.log(y), mode=PY)
    assert not [line for line in planned(f) if re.search(r"out=(_i|r\[)[01]\b", line)]
    X, Y = data(5), data(5)
    got = call_twice(f, X, Y)
    np.testing.assert_allclose(got, np.exp(X) * 2 + np.log(Y))
    no_alias(got, X, Y)


def test_constants_are_never_written():
    x = T.dvector("x")
    c = T.constant(np.arange(1.0, 6.0))
    f = theano.function([x], T.exp(c) * x + c, mode=theano.Mode(linker="py").excluding(
        "fusion", "constant_folding"))
    X = data(5)
    for _ in range(3):
        got = f(X)
        np.testing.assert_allclose(got, np.exp(np.arange(1.0, 6.0)) * X + np.arange(1.0, 6.0))
    np.testing.assert_array_equal(c.data, np.arange(1.0, 6.0))
    no_alias(got, X, c.data)


def test_views_keep_their_base_alive():
    # t.T and t[::-1] are views of t: t's buffer is read until the last of them is (static
    # shapes, so that every buffer would fit every node)
    x, y = T.tensor("float64", shape=(4, 4), name="x"), T.tensor("float64", shape=(4, 4),
                                                                 name="y")
    t = x * 2
    u = T.exp(y)
    f = theano.function([x, y], t.T[::-1] + u.T * 3, mode=PY)
    X, Y = data(4, 4), data(4, 4)
    got = call_twice(f, X, Y)
    np.testing.assert_allclose(got, (X * 2).T[::-1] + np.exp(Y).T * 3)
    no_alias(got, X, Y)


def test_a_value_read_later_is_not_overwritten():
    x, y = vec("x"), vec("y")
    t = x + 1
    a = T.exp(y)          # t is still needed below: a must not go into t
    b = T.sin(a) * t
    f = theano.function([x, y], [b, t * 3], mode=PY)
    X, Y = data(6), data(6)
    got = call_twice(f, X, Y)
    np.testing.assert_allclose(got[0], np.sin(np.exp(Y)) * (X + 1))
    np.testing.assert_allclose(got[1], (X + 1) * 3)
    no_alias(got, X, Y)


def test_returned_outputs_are_never_reused():
    x = vec("x")
    t = T.exp(x)
    f = theano.function([x], [t, T.sin(t) + 1, t * 2], mode=PY)
    X = data(6)
    got = call_twice(f, X)
    np.testing.assert_allclose(got[0], np.exp(X))
    np.testing.assert_allclose(got[1], np.sin(np.exp(X)) + 1)
    np.testing.assert_allclose(got[2], np.exp(X) * 2)
    no_alias(got, X)


@pytest.mark.parametrize("lengths", [(6, 3), (3, 6), (1, 6)])
def test_buffers_of_other_shapes_are_not_handed_out(lengths):
    # exp(x) dies before sin(y) runs; nothing says x and y have one length
    x, y = T.dvectors("x", "y")
    f = theano.function([x, y], [T.exp(x).sum(), T.sin(y) * 2, T.tanh(T.exp(y))], mode=PY)
    X, Y = data(lengths[0]), data(lengths[1])
    s, v, w = call_twice(f, X, Y)
    np.testing.assert_allclose(s, np.exp(X).sum())
    np.testing.assert_allclose(v, np.sin(Y) * 2)
    np.testing.assert_allclose(w, np.tanh(np.exp(Y)))
    m, n = T.dmatrices("m", "n")
    g = theano.function([m, n], [T.exp(m).sum(), T.sin(n) + 1], mode=PY)
    M, N = data(2, 3), data(3, 2)  # as many elements, another shape
    s, v = call_twice(g, M, N)
    np.testing.assert_allclose(v, np.sin(N) + 1)


@pytest.mark.parametrize("cond", [0, 1])
def test_shapes_a_branch_would_have_checked_prove_nothing(cond):
    # x + y inside the branch would make x and y one length, but it may not run
    c = T.iscalar("c")
    x, y = T.dvectors("x", "y")
    branch = ifelse(c, (x + y).sum(), x.sum())
    f = theano.function([c, x, y], [branch, T.exp(x).sum(), T.sin(y) * 2], mode=PY)
    X, Y = data(6), data(6 if cond else 4)
    got = call_twice(f, cond, X, Y)
    np.testing.assert_allclose(got[2], np.sin(Y) * 2)


def test_wrong_broadcasting_still_names_the_user_line():
    x, y = T.dvectors("x", "y")
    f = theano.function([x, y], (x * 2) + T.exp(y), mode=PY)
    assert planned(f)
    with pytest.raises(ValueError, match="not broadcastable"):
        f(np.ones(1), np.ones(3))
    np.testing.assert_allclose(f(np.ones(3), np.zeros(3)), 3.0)


# -- shared variables -------------------------------------------------------------------------

def test_shared_values_are_read_not_written():
    W = theano.shared(data(6), "W")
    before = W.get_value()
    x = vec("x")
    f = theano.function([x], T.exp(W) * x + W, mode=PY)
    X = data(6)
    got = call_twice(f, X)
    np.testing.assert_allclose(got, np.exp(before) * X + before)
    np.testing.assert_array_equal(W.get_value(borrow=True), before)
    no_alias(got, X, W.get_value(borrow=True))


@HOST_STORAGE
@pytest.mark.parametrize("mode", [PY, theano.Mode(linker="py")], ids=["unfused", "default"])
def test_update_written_into_the_shared_storage(mode):
    W = theano.shared(data(6), "W")
    storage = W.get_value(borrow=True)
    x = vec("x")
    f = theano.function([x], [], updates=[(W, W - 0.5 * x)], mode=mode)
    X, w = data(6), W.get_value()
    for _ in range(3):
        f(X)
        w = w - 0.5 * X
        np.testing.assert_allclose(W.get_value(), w)
    if mode is PY:
        assert in_place(f, 1), f.source
        assert W.get_value(borrow=True) is storage


def test_update_not_in_place_while_the_old_value_is_read_later():
    W = theano.shared(data(6), "W")
    x = vec("x")
    new = W - x
    # the old W is returned and feeds another output computed from the new value
    f = theano.function([x], [W, (new * W).sum()], updates=[(W, new)], mode=PY)
    X, w = data(6), W.get_value()
    for _ in range(3):
        old, s = f(X)
        np.testing.assert_allclose(old, w)
        np.testing.assert_allclose(s, ((w - X) * w).sum())
        assert not np.shares_memory(old, W.get_value(borrow=True))
        w = w - X
        np.testing.assert_allclose(W.get_value(), w)


def test_update_value_that_is_also_an_output():
    W = theano.shared(data(6), "W")
    x = vec("x")
    new = T.exp(W) - x
    f = theano.function([x], new, updates=[(W, new)], mode=PY)
    X, w = data(6), W.get_value()
    results = []
    for _ in range(3):
        got = f(X)
        w = np.exp(w) - X
        np.testing.assert_allclose(got, w)
        np.testing.assert_allclose(W.get_value(), w)
        assert not np.shares_memory(got, W.get_value(borrow=True))
        results.append((got, got.copy()))
    for got, saved in results:  # later calls leave earlier results alone
        np.testing.assert_array_equal(got, saved)


def test_borrowed_output_that_is_an_update_is_computed_apart():
    W = theano.shared(data(6), "W")
    storage = W.get_value(borrow=True)
    x = vec("x")
    new = W * 2 - x
    f = theano.function([x], Out(new, borrow=True), updates=[(W, new)], mode=PY)
    X = data(6)
    got = f(X)
    np.testing.assert_allclose(got, storage * 2 - X)
    assert not np.shares_memory(got, storage)  # the old storage kept the old value


@pytest.mark.parametrize("updated", ["original", "clone"])
@pytest.mark.parametrize("form", ["after", "before_and_after"])
def test_clone_of_the_updated_variable_keeps_the_old_value(updated, form):
    W = theano.shared(data(6), "W")
    twin = W.clone()  # the same storage under another variable
    if updated == "clone":
        W, twin = twin, W
    x = vec("x")
    if form == "after":  # the clone is read after the update is computed
        out = (T.exp(W - x) * twin).sum()
        want = lambda w, X: (np.exp(w - X) * w).sum()  # noqa: E731
    else:  # the clone is read first, the variable itself after the update too
        out = (twin * x).sum() + (T.exp(W - x) * W).sum()
        want = lambda w, X: (w * X).sum() + (np.exp(w - X) * w).sum()  # noqa: E731
    f = theano.function([x], out, updates=[(W, W - x)], mode=PY)
    X, w = data(6), W.get_value()
    for _ in range(2):
        np.testing.assert_allclose(f(X), want(w, X))
        w = w - X
        np.testing.assert_allclose(W.get_value(), w)


def test_two_variables_swapping_values():
    A, B = theano.shared(data(6), "A"), theano.shared(data(6), "B")
    f = theano.function([], [], updates=[(A, B + 1), (B, A * 2)], mode=PY)
    a, b = A.get_value(), B.get_value()
    for _ in range(3):
        f()
        a, b = b + 1, a * 2
        np.testing.assert_allclose(A.get_value(), a)
        np.testing.assert_allclose(B.get_value(), b)
    assert not np.shares_memory(A.get_value(borrow=True), B.get_value(borrow=True))


def test_read_only_shared_storage_is_left_alone():
    frozen = data(6)
    frozen.flags.writeable = False
    W = theano.shared(frozen, "W", borrow=True)
    x = vec("x")
    f = theano.function([x], [], updates=[(W, W - x), ], mode=PY)
    g = theano.function([x], [], updates=[(W, W * x - 1)], mode=PY)  # a checked elementwise
    X = data(6)
    f(X)
    np.testing.assert_allclose(W.get_value(), frozen - X)
    W.set_value(frozen, borrow=True)
    g(X)
    np.testing.assert_allclose(W.get_value(), frozen * X - 1)
    W.set_value(frozen, borrow=True)
    h = theano.function([], [], updates=[(W, T.exp(W))], mode=PY)  # a bare ufunc
    h()
    np.testing.assert_allclose(W.get_value(), np.exp(frozen))
    np.testing.assert_array_equal(frozen, frozen.copy())


def test_shared_value_of_another_shape():
    W = theano.shared(np.ones(3), "W")
    x = T.dvector("x")
    f = theano.function([x], [], updates=[(W, W - x)], mode=PY)
    W.set_value(np.arange(5.0))
    f(np.ones(5))
    np.testing.assert_allclose(W.get_value(), np.arange(5.0) - 1)
    with pytest.raises(ValueError):
        f(np.ones(4))
    np.testing.assert_allclose(W.get_value(), np.arange(5.0) - 1)


@HOST_STORAGE
def test_gemm_update_accumulates_into_the_weights():
    x, g = T.fmatrix("x"), T.fmatrix("g")
    W = theano.shared(data(4, 3, dtype="float32"), "W")
    storage = W.get_value(borrow=True)
    f = theano.function([x, g], [], updates=[(W, W - np.float32(0.1) * T.dot(x.T, g))],
                        mode=PY)
    assert in_place(f, 2) and "Gemm" in " ".join(planned(f)), f.source
    X, G = data(5, 4, dtype="float32"), data(5, 3, dtype="float32")
    w = W.get_value()
    for _ in range(3):
        f(X, G)
        w = w - np.float32(0.1) * (X.T @ G)
        np.testing.assert_allclose(W.get_value(), w, rtol=1e-5)
    assert W.get_value(borrow=True) is storage


@pytest.mark.parametrize("linker", ["py", "c"])
def test_a_fused_node_proves_shapes_for_later_nodes(linker):
    # the fused node's output has its input's shape, so the Gemm may take the DotAdd's buffer
    x, W, c, a, b = (T.dmatrix(k) for k in ("x", "W", "c", "a", "b"))
    q = T.tanh(T.exp(T.dot(x, W) + c) + 1)
    f = theano.function([x, W, c, a, b], q - 0.5 * T.dot(a, b), mode=theano.Mode(linker=linker))
    assert any("Gemm" in line for line in planned(f)), f.source
    X, Wv, C, A, B = data(3, 4), data(4, 5), data(3, 5), data(3, 2), data(2, 5)
    got = call_twice(f, X, Wv, C, A, B)
    np.testing.assert_allclose(got, np.tanh(np.exp(X @ Wv + C) + 1) - 0.5 * A @ B, rtol=1e-12)
    no_alias(got, X, Wv, C, A, B)


@HOST_STORAGE
def test_mlp_training_equals_the_unrewritten_graph():
    x, y = T.fmatrix("x"), T.ivector("y")
    start = [data(6, 5, dtype="float32") - 1, data(5, dtype="float32") - 1,
             data(5, 3, dtype="float32") - 1, data(3, dtype="float32") - 1]

    def train(mode):
        params = [theano.shared(v.copy()) for v in start]
        W1, b1, W2, b2 = params
        p = T.nnet.softmax(T.dot(T.nnet.relu(T.dot(x, W1) + b1), W2) + b2)
        loss = T.nnet.categorical_crossentropy(p, y).mean()
        grads = T.grad(loss, params)
        f = theano.function([x, y], loss, updates=[(w, w - np.float32(0.1) * g_)
                                                   for w, g_ in zip(params, grads)], mode=mode)
        return f, params

    f, params = train(theano.Mode(linker="py"))
    g, ref = train(REFERENCE)
    storage = [p.get_value(borrow=True) for p in params]
    X, Y = data(8, 6, dtype="float32"), np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32")
    for _ in range(4):
        np.testing.assert_allclose(f(X, Y), g(X, Y), rtol=1e-5)
        for a, b in zip(params, ref):
            np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-5, atol=1e-6)
    # the weight matrices were updated where they live (Gemm accumulating into them)
    assert params[0].get_value(borrow=True) is storage[0]
    assert params[2].get_value(borrow=True) is storage[2]


def test_checking_mode_keeps_the_old_values_to_compare():
    W = theano.shared(data(6), "W")
    x = vec("x")
    f = theano.function([x], (W * x).sum(), updates=[(W, W - x)], mode="DebugMode")
    X, w = data(6), W.get_value()
    for _ in range(2):
        np.testing.assert_allclose(f(X), (w * X).sum())
        w = w - X
        np.testing.assert_allclose(W.get_value(), w)


@HOST_STORAGE
def test_checking_mode_checks_the_in_place_path():
    W = theano.shared(data(6), "W")
    x = vec("x")
    checking = theano.Mode(linker="py", optimizer="fast_run", check=True)
    f = theano.function([x], (W * x).sum(), updates=[(W, W - x)], mode=checking)
    X = data(6)
    f(X)
    buffer = W.get_value(borrow=True)
    w = buffer.copy()
    f(X)  # the rewritten function writes W - x into W's own buffer, and is compared
    assert W.get_value(borrow=True) is buffer
    np.testing.assert_allclose(buffer, w - X)


def test_checking_mode_with_updates_passing_values_through():
    a, b = theano.shared(data(5), "a"), theano.shared(data(5) + 3, "b")
    x = vec("x", 5)
    f = theano.function([x], a.sum(), updates=[(a, b), (b, b + x)], mode="DebugMode")
    A, B, X = a.get_value(), b.get_value(), data(5)
    f(X)
    np.testing.assert_allclose(a.get_value(), B)
    np.testing.assert_allclose(b.get_value(), B + X)
    f(X)
    np.testing.assert_allclose(a.get_value(), B + X)
    np.testing.assert_allclose(b.get_value(), B + 2 * X)
    del A


# -- lazy branches ----------------------------------------------------------------------------

@pytest.mark.parametrize("cond", [0, 1])
def test_ifelse_branches_keep_their_buffers(cond):
    c = T.iscalar("c")
    x, y = vec("x"), vec("y")
    t = T.exp(x)                      # top level, read in one branch only
    then = T.sin(t) * 2               # computed only if c
    other = T.cos(y) + 1              # computed only if not c
    picked = ifelse(c, then, other)
    out = picked * 3 + T.tanh(y)      # after the ifelse: may reuse t's buffer
    f = theano.function([c, x, y], [out, picked], mode=PY)
    X, Y = data(6), data(6)
    for _ in range(3):
        got = f(cond, X, Y)
        p = np.sin(np.exp(X)) * 2 if cond else np.cos(Y) + 1
        np.testing.assert_allclose(got[1], p)
        np.testing.assert_allclose(got[0], p * 3 + np.tanh(Y))
        no_alias(got, X, Y)


@pytest.mark.parametrize("cond", [0, 1])
def test_ifelse_of_a_top_level_value_and_a_shared_update(cond):
    c = T.iscalar("c")
    W = theano.shared(data(6), "W")
    x = vec("x")
    t = T.exp(x)
    picked = ifelse(c, t, W * 2)      # a view of t, or of the else branch's value
    f = theano.function([c, x], picked + 1, updates=[(W, W - picked)], mode=PY)
    X, w = data(6), W.get_value()
    for _ in range(3):
        p = np.exp(X) if cond else w * 2
        got = f(cond, X)
        np.testing.assert_allclose(got, p + 1)
        w = w - p
        np.testing.assert_allclose(W.get_value(), w)
        no_alias(got, X, W.get_value(borrow=True))


def test_nested_ifelse_values():
    c, d = T.iscalars("c", "d")
    x = vec("x")
    a = T.exp(x)
    inner = ifelse(d, T.sin(a) + 1, T.cos(a) * 2)
    out = ifelse(c, inner * 3, a - 1) + T.sqrt(x)
    f = theano.function([c, d, x], out, mode=PY)
    X = data(6)
    for cv in (0, 1):
        for dv in (0, 1):
            a_ = np.exp(X)
            inner_ = np.sin(a_) + 1 if dv else np.cos(a_) * 2
            want = (inner_ * 3 if cv else a_ - 1) + np.sqrt(X)
            np.testing.assert_allclose(f(cv, dv, X), want)
