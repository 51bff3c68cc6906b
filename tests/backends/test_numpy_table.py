"""The numpy backend's two forms of a schedule: generated code (one line per node) and, for a
large schedule, a table of steps run by one loop. Both keep the same behaviour: values, lazy
branches, errors naming the user's line, freeing values after their last use, updates, output
copies, trust_input and ``source``. Nodes with equal ops and types share one thunk."""
from __future__ import annotations

import gc
import linecache
import re
import sys
import weakref

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon import backends
from theon.backends import numpy_backend
from theon.backends.numpy_backend import NumpyBackend
from theon.compile.ops import as_op
from theon.ifelse import ifelse
from theon.ops.base import Op
from theon.symbolic.graph import Apply
from theon.symbolic.types import TensorType

HERE = __file__


def lineno() -> int:
    return sys._getframe(1).f_lineno


@pytest.fixture(params=["code", "table"])
def form(request, monkeypatch):
    """Every test here runs with each form of the schedule."""
    monkeypatch.setattr(numpy_backend, "TABLE_NODES", 10 ** 9 if request.param == "code" else 0)
    return request.param


def _is_table(f) -> bool:
    return "_run" in f.source


def test_the_form_follows_the_schedule_size(monkeypatch):
    x = T.dvector("x")
    small, large = x * 2, T.exp(x * 2) + 1
    monkeypatch.setattr(numpy_backend, "TABLE_NODES", 3)
    unfused = theano.Mode().excluding("fusion")  # one node per operation
    f, g = theano.function([x], small, mode=unfused), theano.function([x], large, mode=unfused)
    assert len(f.maker.fgraph.toposort()) < 3 <= len(g.maker.fgraph.toposort())
    assert not _is_table(f) and _is_table(g)
    np.testing.assert_allclose(g(np.array([0.0, 1.0])), np.exp([0.0, 2.0]) + 1)


def test_values_of_a_mixed_graph(form):
    x = T.dmatrix("x")
    v = T.dvector("v")
    W = theano.shared(np.arange(6.0).reshape(3, 2), name="W")
    a, b = T.split(x, [1, 2], 2, axis=0)  # a node with two outputs
    h = T.tanh(T.dot(x, W)) * 3 + v
    outs = [h.sum(axis=0), a * 2, b.sum(), x, T.constant(7.0) * v.sum()]
    f = theano.function([x, v], outs, updates={W: W * 0.5})
    assert _is_table(f) == (form == "table")
    X, V = np.arange(9.0).reshape(3, 3) / 10, np.array([1.0, -1.0])
    got = f(X, V)
    W0 = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(got[0], (np.tanh(X @ W0) * 3 + V).sum(axis=0))
    np.testing.assert_allclose(got[1], X[:1] * 2)
    np.testing.assert_allclose(got[2], X[1:].sum())
    np.testing.assert_array_equal(got[3], X)
    assert got[3] is not X  # an output that is an input is a copy
    assert float(got[4]) == 0.0
    np.testing.assert_allclose(W.get_value(), W0 * 0.5)  # the update was written
    np.testing.assert_allclose(f(X, V)[0], (np.tanh(X @ (W0 * 0.5)) * 3 + V).sum(axis=0))


def test_dict_and_single_outputs(form):
    x = T.dvector("x")
    f = theano.function([x], {"double": x * 2, "sum": x.sum()})
    g = theano.function([x], T.exp(x).sum())
    assert f([1.0, 2.0])["sum"] == 3.0 and list(f([1.0, 2.0])["double"]) == [2.0, 4.0]
    assert g([0.0, 0.0]) == 2.0
    assert f(x=[1.0]) is not None  # the keyword path


def test_run_time_error_names_the_users_line(form):
    x = T.dmatrix("x_err")
    v = T.dvector("v_err")
    h = T.tanh(x) * 2
    bad = h.dot(v); line = lineno()  # noqa: E702
    f = theano.function([x, v], bad.sum() + 1)
    with pytest.raises(ValueError) as err:
        f(np.ones((3, 4)), np.ones(5))
    msg = str(err.value)
    assert f"{HERE}:{line}" in msg and "(5,)" in msg and "(3, 4)" in msg and "v_err" in msg


def test_input_errors_are_unchanged(form):
    x = T.dvector("x")
    f = theano.function([x], T.exp(x) * 2)
    with pytest.raises(TypeError, match="x"):
        f(np.ones((2, 2)))
    with pytest.raises(TypeError, match="missing a value"):
        f()


def test_lazy_branches_run_only_when_taken(form, branches):
    c1, c2 = T.bscalars("c1", "c2")
    x = T.dvector("x")
    inner = ifelse(c2, branches.double(x), branches.negate(x))
    o1, o2 = ifelse(c1, [inner * 3, x.sum()], [x, -x.sum()])
    f = theano.function([c1, c2, x], [o1 + 1, o2])
    v = np.array([1.0, 2.0])
    r1, r2 = f(1, 0, v)
    np.testing.assert_array_equal(r1, -v * 3 + 1)
    assert float(r2) == 3.0 and branches.calls == ["else"]
    r1, r2 = f(0, 1, v)
    np.testing.assert_array_equal(r1, v + 1)
    # neither branch of the inner ifelse ran
    assert float(r2) == -3.0 and branches.calls == ["else"]
    f(1, 1, v)
    assert branches.calls == ["else", "then"]


def test_an_error_inside_a_branch_names_its_node(form):
    c = T.bscalar("c")
    x, v = T.dmatrix("x"), T.dvector("v")
    bad = T.dot(x, v); line = lineno()  # noqa: E702
    f = theano.function([c, x, v], ifelse(c, bad.sum(), x.sum()) * 2)
    assert float(f(0, np.ones((2, 3)), np.ones(4))) == 12.0
    with pytest.raises(ValueError) as err:
        f(1, np.ones((2, 3)), np.ones(4))
    assert f"{HERE}:{line}" in str(err.value)


SEEN: list = []


@as_op(itypes=[T.dvector], otypes=[T.dvector])
def remember(v):
    SEEN.append(weakref.ref(v))
    return v + 1


@as_op(itypes=[T.dvector], otypes=[T.dvector])
def forgotten(v):
    # the value remember() read had its last use there: nothing holds it any more
    SEEN.append(SEEN[-1]() is None)
    return v * 1


def test_values_are_dropped_after_their_last_use(form):
    SEEN.clear()
    x = T.dvector("x")
    # on the numpy backend: a C kernel's runner keeps its last output to write into again
    # (a fresh large array costs page faults), so there exp's value would stay referenced
    f = theano.function([x], forgotten(remember(T.exp(x))) * 2, mode=theano.Mode(linker="py"))
    np.testing.assert_allclose(f(np.zeros(3)), np.full(3, 4.0))
    assert SEEN[-1] is True


@pytest.mark.skipif(theano.config.device != "cpu",
                    reason="on a device the argument check is what moves an argument there")
def test_trust_input_skips_the_checks(form):
    x = T.dvector("x")
    f = theano.function([x], T.exp(x) * 2, trust_input=True)
    assert f(np.zeros((2, 2))).shape == (2, 2)
    f.trust_input = False
    with pytest.raises(TypeError, match="x"):
        f(np.zeros((2, 2)))


def test_source_and_linecache(form):
    x = T.dvector("x")
    c = T.bscalar("c")
    before = set(linecache.cache)
    f = theano.function([c, x], ifelse(c, T.exp(x), T.log(x)).sum() * 2)
    if form == "table":
        assert "_run" in f.source and "# IfElse" in f.source and "segment0" in f.source
        # (a device's fusion makes the sum's reader * 2 its epilogue: a second register)
        assert re.search(r"r\[\d+\] = f\d+\(r\[\d+\](, r\[\d+\])?\)  # Sum", f.source)
        assert re.search(r"v\d+ = f\d+\(p\d+\)  # Elemwise{exp}", f.source)  # in its function
    else:
        assert "if " in f.source and "Elemwise{exp}" in f.source
    added = set(linecache.cache) - before
    assert added and len(added) == (2 if form == "table" else 1)  # a lazy node's own function
    del f
    gc.collect()
    assert not added & set(linecache.cache)


def _thunk_names(f) -> set:
    return set(re.findall(r"= (f\d+)\(", f.source))


def test_equal_nodes_share_one_thunk():
    x = T.dvector("x")
    h = x
    for k in range(10):
        h = T.tanh(h) * T.constant(1.0 + k)
    # the numpy backend, not one of THEON_FLAGS; unfused, so that the nodes are many
    f = theano.function([x], h, mode=theano.Mode(linker="py").excluding("fusion"))
    assert len(_thunk_names(f)) == 2  # tanh and mul, on the same types
    expected = np.array([0.5])
    for k in range(10):
        expected = np.tanh(expected) * (1.0 + k)
    np.testing.assert_allclose(f([0.5]), expected)


def test_a_perform_op_gets_a_thunk_per_node(branches):
    x = T.dvector("x")
    f = theano.function([x], branches.double(branches.double(x)), mode=theano.Mode(linker="py"))
    assert len(_thunk_names(f)) == 2


class _CountingBackend(NumpyBackend):
    name = "counting"

    def __init__(self):
        self.nodes: list = []

    def thunk(self, node, inner=()):
        self.nodes.append(node)
        return super().thunk(node, inner)


def test_a_backend_overriding_thunk_is_asked_for_every_node(form):
    backend = _CountingBackend()
    backends.register("counting", backend)
    x = T.dvector("x")
    h = x
    for _ in range(5):
        h = T.tanh(h) * 2
    f = theano.function([x], h, mode=theano.Mode(linker="counting"))
    nodes = f.maker.fgraph.toposort()
    assert len(backend.nodes) == len(nodes) and set(backend.nodes) == set(nodes)


class _Pair(Op):
    """Two outputs; ``wrong`` returns three values (a broken op)."""

    __props__ = ("wrong",)

    def __init__(self, wrong: bool):
        self.wrong = wrong

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [TensorType("float64", shape=(None,))() for _ in range(2)])

    def impl(self, node):
        wrong = self.wrong
        return lambda x: (x + 1, x - 1, x) if wrong else (x + 1, x - 1)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], shapes[0]]


def test_several_outputs_and_a_wrong_count(form):
    x = T.dvector("x")
    a, b = _Pair(False)(x)
    f = theano.function([x], [a * b, b])
    np.testing.assert_allclose(f(np.array([2.0]))[0], [3.0])
    a, b = _Pair(True)(x)
    g = theano.function([x], [a * b, b])
    with pytest.raises(ValueError, match="too many values to unpack"):
        g(np.array([2.0]))


def test_a_chain_of_lazy_nodes(form):
    c = T.bscalar("c")
    x, v = T.dvector("x"), T.dvector("v")
    h = x
    for k in range(20):
        h = ifelse(c, T.tanh(h) * 2, h + float(k))
    bad = T.dot(h, v); line = lineno()  # noqa: E702
    f = theano.function([c, x, v], [h.sum(), ifelse(c, bad, h.sum())])
    X = np.array([0.5, -1.0])
    then = X.copy()
    for _ in range(20):
        then = np.tanh(then) * 2
    np.testing.assert_allclose(f(1, X, X)[0], then.sum())
    np.testing.assert_allclose(f(0, X, np.ones(5))[0], (X + sum(range(20))).sum())
    with pytest.raises(ValueError) as err:
        f(1, X, np.ones(5))
    assert f"{HERE}:{line}" in str(err.value)
