"""Audit (issue 13): constant folding checks a node's size before running it; pp, debugprint
and pickling stay linear (and iterative) on deep graphs and on graphs with heavy sharing.
"""
import copy
import pickle
import sys
import tracemalloc

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from theon.compile.rewrite import MAX_FOLDED_SIZE
from theon.printing import MAX_INDENT
from theon.symbolic.graph import Constant, graph_inputs, toposort

# -- constant folding: the size first -----------------------------------------------------------

def _constants(f):
    return [v for v in f.maker.fgraph.variables() if isinstance(v, Constant)]


def test_shape_of_huge_zeros_compiles_without_allocating_it():
    tracemalloc.start()
    try:
        f = theano.function([], T.zeros((20000, 20000)).shape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6  # the array would be 3.2 GB
    np.testing.assert_array_equal(f(), [20000, 20000])
    assert all(c.data.size <= MAX_FOLDED_SIZE for c in _constants(f))


def test_large_foldable_outputs_are_computed_at_call_time_not_folded():
    tracemalloc.start()
    try:
        big = theano.function([], T.zeros((20000, 20000)))  # compiled, never called here
        ramp = theano.function([], T.arange(10 ** 8).shape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6
    assert all(c.data.size <= MAX_FOLDED_SIZE for c in _constants(big))
    np.testing.assert_array_equal(ramp(), [10 ** 8])
    mid = theano.function([], T.ones((300, 400)) * 2)  # 120,000 elements: run-time work
    assert all(c.data.size <= MAX_FOLDED_SIZE for c in _constants(mid))
    np.testing.assert_array_equal(mid(), np.full((300, 400), 2.0))


def test_small_constant_graphs_still_fold():
    f = theano.function([], T.arange(6).reshape((2, 3)) * 2 + 1)
    assert not f.maker.fgraph.toposort()  # computed at compile time: nothing left to run
    np.testing.assert_array_equal(f(), np.arange(6).reshape((2, 3)) * 2 + 1)


class _Doubled(theano.Op):
    """A user op without infer_shape whose output length is not declared."""

    __props__ = ()
    calls = 0

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return theano.Apply(self, [x], [T.dvector()])

    def perform(self, node, inputs, out):
        type(self).calls += 1
        out[0][0] = np.concatenate([inputs[0], inputs[0]])


def test_an_op_whose_output_size_is_unknown_is_not_run_at_compile_time():
    _Doubled.calls = 0
    f = theano.function([], _Doubled()(T.constant(np.arange(3.0))))
    assert _Doubled.calls == 0  # nothing bounds what it would allocate: left to the call
    np.testing.assert_array_equal(f(), [0, 1, 2, 0, 1, 2])
    assert _Doubled.calls == 1


# -- pp and debugprint: linear output --------------------------------------------------------

def _shared_chain(depth):
    x = T.dvector("x")
    y = x
    for _ in range(depth):
        y = y * 0.5 + T.sin(y)
    return x, y


def test_pp_names_a_shared_subexpression_once():
    x = T.dvector("x")
    s = T.exp(x) + 1
    text = theano.pp(s * s)
    assert text == "_1 = (exp(x) + DimShuffle{x}(1))\n(_1 * _1)"
    assert theano.pp(T.exp(x) * 2) == "(exp(x) * DimShuffle{x}(2))"  # no sharing: one line


def test_pp_of_a_shared_chain_is_linear_in_its_depth():
    for depth in (10, 20):  # each step uses the previous one twice: the text doubled per step
        _, y = _shared_chain(depth)
        text = theano.pp(y)
        assert len(text) < 60 * depth
        assert text.count("\n") == depth - 1  # one temporary per shared step


def test_pp_and_debugprint_of_10000_deep_chains_are_linear():
    x = T.dvector("x")
    y = x
    for _ in range(10000):
        y = T.sin(y)
    text = theano.pp(y)
    assert len(text) == len("sin(") * 10000 + len("x") + 10000
    dp = theano.printing.debugprint(y, file="str")
    lines = dp.splitlines()
    cuts = sum(line.endswith("(continued below)") for line in lines)
    assert cuts == 10000 // MAX_INDENT
    assert len(lines) == 10001 + cuts  # a cut node heads the tree that continues it
    assert len(dp) < 10001 * (2 * MAX_INDENT + 40)  # indentation was 2 chars per level
    assert max(len(line) - len(line.lstrip(" |")) for line in lines) <= 2 * MAX_INDENT
    _, z = _shared_chain(3000)
    assert len(theano.pp(z)) < 60 * 3000
    assert len(theano.printing.debugprint(z, file="str")) < 6 * 3000 * (2 * MAX_INDENT + 40)


def test_debugprint_continues_a_cut_tree_right_after_it():
    x = T.dvector("x")
    y = x
    for _ in range(MAX_INDENT + 3):
        y = T.exp(y)
    lines = theano.printing.debugprint([y, x * 2], file="str").splitlines()
    cut = [k for k, line in enumerate(lines) if line.endswith("(continued below)")]
    assert cut == [MAX_INDENT]
    node_id = lines[MAX_INDENT].split("[id ")[1].split("]")[0]
    assert lines[MAX_INDENT + 1] == f"Elemwise{{exp}} [id {node_id}]"
    assert lines[MAX_INDENT + 2].startswith(" |Elemwise{exp}")
    mul = [k for k, line in enumerate(lines) if line.startswith("Elemwise{mul}")]
    exp_x = [k for k, line in enumerate(lines) if line.startswith(" | | |x ")]
    assert len(mul) == 1 and exp_x and exp_x[0] < mul[0]  # the next output comes after it


# -- pickling: iterative, sharing kept --------------------------------------------------------

def test_pickle_keeps_sharing_shared_variables_constants_names_and_traces():
    x = T.dvector("x")
    w = theano.shared(np.array([1.0, 2.0, 3.0]), name="w")
    a = x * w
    a.name = "a"
    b = T.exp(a) + a + T.constant(np.array([0.5, 0.25, 0.125]), name="c")
    la, lb, lw = pickle.loads(pickle.dumps([a, b, w]))
    assert lb.owner.inputs[0].owner.inputs[1] is la  # a used twice: one object after load
    assert lb.owner.inputs[0].owner.inputs[0].owner.inputs[0] is la
    assert la.name == "a" and la.trace == a.trace and la.trace
    assert la.owner.inputs[1] is lw and lw.name == "w"
    np.testing.assert_array_equal(lw.get_value(), [1.0, 2.0, 3.0])
    const = lb.owner.inputs[1]
    assert isinstance(const, Constant) and const.name == "c"
    xs = np.array([0.1, 0.2, 0.3])
    lx = la.owner.inputs[0]
    np.testing.assert_allclose(theano.function([lx], lb)(xs),
                               np.exp(xs * [1, 2, 3]) + xs * [1, 2, 3] + [0.5, 0.25, 0.125])
    node = pickle.loads(pickle.dumps(b.owner))
    assert node.outputs[0].owner is node and len(node.inputs) == 2
    da, db = copy.deepcopy([a, b])
    assert db.owner.inputs[0].owner.inputs[1] is da and da is not a


def test_pickle_a_shared_variable_whose_default_update_is_computed_from_it():
    # the root's state names a variable built from the root (a random stream's state)
    y = theano.shared(np.ones(3), name="y")
    z = y + 1
    y.default_update = z
    for obj in (z * 2, [y, z * 2], [z * 2, y], y):
        loaded = pickle.loads(pickle.dumps(obj))
        ly, = {v for v in graph_inputs(loaded if isinstance(loaded, list) else [loaded])
               if v.name == "y"}
        assert ly.default_update.owner.inputs[0] is ly
        np.testing.assert_array_equal(ly.default_update.eval(), [2, 2, 2])
    f = theano.function([], z * 2)
    g = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(g(), [4, 4, 4])
    np.testing.assert_array_equal(g(), [6, 6, 6])  # its default update applied, on its copy
    np.testing.assert_array_equal(f(), [4, 4, 4])


def test_pickled_function_with_an_intermediate_input_keeps_it_one_variable():
    x = T.dvector("x")
    a = x * 3
    f = theano.function([a], T.exp(a) + a)  # a is both an input and inside the output
    g = pickle.loads(pickle.dumps(f))
    np.testing.assert_allclose(g(np.array([0.5, 1.0])), np.exp([0.5, 1.0]) + [0.5, 1.0])


def test_pickle_10000_deep_graph_and_function():
    limit = sys.getrecursionlimit()
    x = T.dvector("x")
    y = x
    for _ in range(10000):
        y = T.sin(y)
    ly = pickle.loads(pickle.dumps(y))
    assert sys.getrecursionlimit() == limit
    assert [n.op for n in toposort([ly])] == [n.op for n in toposort([y])]
    (lx,) = [v for v in graph_inputs([ly]) if not isinstance(v, Constant)]
    assert lx.name == "x"
    f = theano.function([x], y)
    g = pickle.loads(pickle.dumps(f))
    xs = np.linspace(-1, 1, 4)
    # one may already run its C kernels (libmvec's sin), the other numpy
    np.testing.assert_allclose(g(xs), f(xs), rtol=1e-13, atol=0)
    assert sys.getrecursionlimit() == limit


# -- fuzzing: random DAGs with heavy sharing, random deep chains ----------------------------

# bounded ops: values stay in [-1, 1] however many times a node is reused
UNARY = [(T.sin, np.sin), (T.tanh, np.tanh), (lambda a: a * 0.5, lambda a: a * 0.5)]
BINARY = [(lambda a, b: a * b, np.multiply),
          (lambda a, b: (a + b) * 0.5, lambda a, b: (a + b) * 0.5),
          (T.maximum, np.maximum),
          (lambda a, b: (a - b) * 0.5, lambda a, b: (a - b) * 0.5)]


def _build(choices, values):
    """A DAG whose nodes take operands among the earlier ones (heavy sharing), with its numpy
    value alongside."""
    x, y = T.dvector("x"), T.dvector("y")
    w = theano.shared(np.array([0.3, -0.7, 0.9]), name="w")
    nodes = [(x, values[0]), (y, values[1]), (w, w.get_value())]
    for op_pick, i, j in choices:
        # the first operand among the last three nodes, the second too or among all: paths
        # that reuse a node at every step (which made printed text double per step)
        i = len(nodes) - 1 - i % 3
        j = len(nodes) - 1 - j % 3 if op_pick < 3 else j % len(nodes)
        if op_pick >= 6:
            sym, num = UNARY[op_pick % len(UNARY)]
            nodes.append((sym(nodes[i][0]), num(nodes[i][1])))
        else:
            sym, num = BINARY[op_pick % len(BINARY)]
            nodes.append((sym(nodes[i][0], nodes[j][0]), num(nodes[i][1], nodes[j][1])))
    return x, y, nodes[-1]


def _edges(out):
    nodes = toposort([out])
    return len(nodes), sum(len(n.inputs) for n in nodes)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)),
                min_size=1, max_size=40),
       st.integers(0, 2 ** 31))
def test_random_shared_dags_print_linearly_and_pickle(choices, seed):
    r = np.random.default_rng(seed)
    xs, ys = r.uniform(-1, 1, 3), r.uniform(-1, 1, 3)
    x, y, (out, expected) = _build(choices, [xs, ys])
    n_nodes, n_edges = _edges(out)
    assert len(theano.pp(out)) <= 80 * (n_nodes + 1)
    assert len(theano.printing.debugprint(out, file="str")) <= \
        (2 * MAX_INDENT + 60) * (n_edges + 1)
    lx, ly, lout = pickle.loads(pickle.dumps([x, y, out]))
    got = theano.function([lx, ly], lout, on_unused_input="ignore")(xs, ys)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(theano.function([x, y], out, on_unused_input="ignore")(xs, ys),
                               expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1000, 5000), st.integers(0, 2 ** 31))
def test_random_deep_chains_print_linearly_and_pickle(depth, seed):
    r = np.random.default_rng(seed)
    x = T.dvector("x")
    xs = r.uniform(-1, 1, 3)
    chain = [(x, xs)]
    for _ in range(depth):  # each step reads the last node and, sometimes, a recent one
        sym, num = UNARY[r.integers(len(UNARY))]
        last_s, last_v = chain[-1]
        if r.random() < 0.3:
            back_s, back_v = chain[-1 - r.integers(min(len(chain), 5))]
            chain.append((sym(last_s * back_s), num(last_v * back_v)))
        else:
            chain.append((sym(last_s), num(last_v)))
    out, expected = chain[-1]
    n_nodes, n_edges = _edges(out)
    assert len(theano.pp(out)) <= 80 * (n_nodes + 1)
    assert len(theano.printing.debugprint(out, file="str")) <= \
        (2 * MAX_INDENT + 60) * (n_edges + 1)
    lx, lout = pickle.loads(pickle.dumps([x, out]))
    np.testing.assert_allclose(theano.function([lx], lout)(xs), expected, rtol=1e-12,
                               atol=1e-12)


if __name__ == "__main__":
    pytest.main([__file__])
