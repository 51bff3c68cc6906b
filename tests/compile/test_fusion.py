"""The fusion pass (compile/rules/fusion.py) and the Fused op (ops/fused.py): which elementwise
nodes become one fused node and which stay apart, the bounds on a cluster, how a fused node
prints, pickles and fails, and that the checking mode (DebugMode) still compares it with the
unfused graph and blames the rule 'fusion' when a fused node computes something else.

Most graphs compile on the numpy path (``Mode(linker='py')``): what is fused does not depend on
the backend, and no test here waits for gcc except those marked as running on the C backend.
"""
from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.backends import ccompiler
from theon.compile.debug import RewriteMismatchError
from theon.compile.mode import Mode
from theon.compile.rules import fusion
from theon.ops import scalar as S
from theon.ops.elemwise import Elemwise
from theon.ops.fused import Fused, ScalarGraph
from theon.printing import debugprint
from theon.symbolic.graph import Constant

PY = Mode(linker="py")
# a device's fusion does more (compile/rules/fusion.py: keep_prologues, fuse_epilogues)
ON_DEVICE = theon.config.device != "cpu"
UNFUSED = Mode(linker="py").excluding("fusion")
NO_REWRITES = Mode(linker="py", optimizer=None)
RNG = np.random.default_rng(8)
needs_cc = pytest.mark.skipif(ccompiler.compiler() is None,
                              reason="no C compiler found (config.cxx)")


def nodes(f) -> list:
    return f.maker.fgraph.toposort()


def fused(f) -> list:
    """The Fused nodes of a compiled function."""
    return [n for n in nodes(f) if isinstance(n.op, Fused)]


def elemwise(f) -> list:
    """The elementwise nodes left unfused."""
    return [n for n in nodes(f) if type(n.op) is Elemwise]


def rows(node) -> list[str]:
    return [op.name for op, _ in node.op.graph.steps]


def same_as_unfused(inputs, outputs, values, mode=PY):
    """Compile with and without fusion: equal values, bit for bit (the numpy path runs the
    same numpy calls either way); returns the fused function."""
    f = theon.function(inputs, outputs, mode=mode)
    g = theon.function(inputs, outputs, mode=UNFUSED)
    got, want = f(*values), g(*values)
    if not isinstance(got, (list, tuple)):
        got, want = [got], [want]
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    return f


# -- what is fused --------------------------------------------------------------------------

def test_a_chain_becomes_one_node_with_its_formula():
    x, y, z = T.matrices("x", "y", "z")
    f = same_as_unfused([x, y, z], T.tanh(x * y + z) - x,
                        [RNG.normal(size=(3, 4)) for _ in range(3)])
    (node,) = nodes(f)
    assert isinstance(node.op, Fused)
    assert str(node.op) == "Fused{(tanh(((i0 * i1) + i2)) - i0)}"
    assert [v.name for v in node.inputs] == ["x", "y", "z"]  # x read once, though used twice
    assert node.outputs[0].type == (T.tanh(x * y + z) - x).type


def test_a_diamond_is_one_node_and_its_shared_step_is_named_once():
    x = T.vector("x")
    a = T.exp(x)
    f = same_as_unfused([x], (a * 2) * (a + 1), [RNG.normal(size=5)])
    (node,) = nodes(f)
    assert rows(node) == ["exp", "mul", "add", "mul"]
    assert str(node.op).startswith("Fused{t0 = exp(i0); ")


def test_an_intermediate_read_outside_the_cluster_stays_a_node_of_its_own():
    x, y = T.matrices("x", "y")
    e = T.exp(x * y)
    # e feeds a reduction (not elementwise) and the rest of the elementwise work
    f = same_as_unfused([x, y], [T.tanh(e) + 1, e.sum()],
                        [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))])
    fn = fused(f)
    if ON_DEVICE:
        # a device's fusion lets the sum compute e as its prologue and output it too
        # (fusion.keep_prologues): one kernel writes e and folds it
        from theon.ops.fused_reduce import FusedReduce
        (producer,) = [n for n in nodes(f) if isinstance(n.op, FusedReduce)]
        assert producer.op.keep and rows(producer) == ["mul", "exp"]
        assert [rows(n) for n in fn] == [["tanh", "add"]]
        assert producer.outputs[1] in fn[0].inputs
        return
    assert sorted(rows(n) for n in fn) == [["mul", "exp"], ["tanh", "add"]]
    producer = next(n for n in fn if rows(n) == ["mul", "exp"])
    consumer = next(n for n in fn if rows(n) == ["tanh", "add"])
    assert producer.outputs[0] in consumer.inputs


def test_an_intermediate_that_is_also_an_output_is_computed_once():
    x, y = T.vectors("x", "y")
    h = T.sqr(x - y)
    f = same_as_unfused([x, y], [h, T.sqrt(h + 1) * 2], [RNG.normal(size=4), RNG.normal(size=4)])
    fn = fused(f)
    assert len(fn) == 2
    assert fn[0].outputs[0] is f.maker.fgraph.outputs[0]
    assert fn[0].outputs[0] in fn[1].inputs
    assert len(elemwise(f)) == 0


def test_outputs_sharing_an_intermediate():
    """Each output's own work is fused; the shared step, read by two clusters, stays apart."""
    x, y = T.matrices("x", "y")
    s = x * y
    outs = [T.tanh(s) + 1, T.exp(s) * 2, s - x]
    f = same_as_unfused([x, y], outs, [RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))])
    assert len(fused(f)) == 2  # tanh(s) + 1 and exp(s) * 2; s - x is one node
    assert [n.op.scalar_op.name for n in elemwise(f)] == ["mul", "sub"]
    shared = elemwise(f)[0].outputs[0]
    assert all(shared in n.inputs for n in fused(f))


def test_a_graph_input_that_is_an_intermediate_is_read_not_recomputed():
    x = T.matrix("x")
    h = T.exp(x) * 2  # given as an input: its nodes are not part of the function
    f = theon.function([x, h], T.tanh(h) + x, mode=PY)
    (node,) = nodes(f)
    assert rows(node) == ["tanh", "add"] and h in node.inputs
    a, b = RNG.normal(size=(2, 2)), RNG.normal(size=(2, 2))
    np.testing.assert_array_equal(f(a, b), np.tanh(b) + a)
    # h computed as well as given: only the given value is read
    g = theon.function([x, h], [T.tanh(h) + x, T.exp(x) * 2 + 1], mode=PY)
    out0, out1 = g(a, b)
    np.testing.assert_array_equal(out0, np.tanh(b) + a)
    np.testing.assert_array_equal(out1, np.exp(a) * 2 + 1)


def test_broadcasting_patterns():
    r, c, m = T.row("r"), T.col("c"), T.matrix("m")
    v = T.vector("v")
    t3 = T.tensor3("t3")
    out = [T.exp(r) * c + m,           # a broadcast intermediate: computed apart, on the row
           T.tanh(r + c) * 2,          # a result broadcast from two sides
           T.sqr(v) + m * 3,           # a lower-rank input (dimshuffled, a cluster input)
           T.sin(t3 * r) - c]          # rank 3 from rank 2 inputs
    values = [RNG.normal(size=(1, 4)), RNG.normal(size=(3, 1)), RNG.normal(size=(3, 4)),
              RNG.normal(size=4), RNG.normal(size=(2, 3, 4))]
    f = same_as_unfused([r, c, m, v, t3], out, values)
    # exp(r) stays apart (see the next test); so does sqr(v): the dimshuffle padding its rank
    # is not elementwise (and squaring before broadcasting is the cheaper order anyway)
    assert len(fused(f)) == 4
    assert sorted(n.op.scalar_op.name for n in elemwise(f)) == ["exp", "sqr"]
    for node, o in zip(sorted(fused(f), key=lambda n: f.maker.fgraph.outputs.index(
            n.outputs[0])), out):
        assert node.outputs[0].type == o.type
    # a static length-1 input with another length at run time fails as unfused: naming the
    # line of the user's code that built the failing node
    g = theon.function([r, m], T.exp(r) * m + 1, mode=PY)
    with pytest.raises(ValueError) as err:
        g(np.ones((2, 4)), np.ones((2, 4)))
    assert f"{__file__}:" in str(err.value)


def test_work_on_a_broadcast_intermediate_is_not_repeated_per_output_element():
    """Regression: exp(sin(b)) for a row b, times a matrix, was fused into the matrix's loop,
    so the C kernel computed sin and exp for every element of x: 6.6x the time of the unfused
    graph at 2000 x 2000. The row's work is a cluster of its own now, on the row's shape."""
    x, b = T.matrix("x"), T.row("b")
    f = same_as_unfused([x, b], x * T.tanh(T.exp(T.sin(b))) + 1,
                        [RNG.normal(size=(4, 3)), RNG.normal(size=(1, 3))])
    row, outer = sorted(fused(f), key=lambda n: len(n.inputs))
    assert rows(row) == ["sin", "exp", "tanh"] and row.outputs[0].type.broadcastable == (
        True, False)
    assert rows(outer) == ["mul", "add"] and row.outputs[0] in outer.inputs
    # a column and a row making a matrix is one cluster: each step has the output's shape
    c = T.col("c")
    g = same_as_unfused([b, c], T.exp(b + c) * 2, [RNG.normal(size=(1, 3)),
                                                    RNG.normal(size=(4, 1))])
    (node,) = nodes(g)
    assert rows(node) == ["add", "exp", "mul"]


def test_a_broadcast_step_of_a_fused_node_computes_on_its_own_shape(monkeypatch):
    """Regression (the numpy path of a Fused node): a step broadcast where the output is not
    was written into an output-sized buffer left free by the previous call, so numpy computed
    it for every element of the output (13x the unfused time for x * tanh(exp(sin(b))) at
    2000 x 2000). Seen here through a spy on the last step, which receives the step's value."""
    from theon.ops import fused as fused_module
    seen = []
    real = fused_module._numpy_kernel

    def spying(sop, ins, out):
        fn = real(sop, ins, out)
        if sop is not S.mul:
            return fn

        def spy(*args):  # not a ufunc: the step itself is never written into a buffer
            seen.append([np.shape(a) for a in args])
            return fn(*args)
        return spy

    monkeypatch.setattr(fused_module, "_numpy_kernel", spying)
    # exp(i1) on a row, then i0 + i0 on the matrix (an output-sized buffer, kept for the next
    # call), then their product
    graph = ScalarGraph(("float64", "float64"),
                        ((S.exp, (1,)), (S.add, (0, 0)), (S.mul, (3, 2))), (4,))
    x, b = T.matrix("x"), T.row("b")
    node = Fused(graph)(x, b).owner
    run = node.op.impl(node)
    a, r = RNG.normal(size=(5, 3)), RNG.normal(size=(1, 3))
    for _ in range(3):
        np.testing.assert_array_equal(run(a, r), (a + a) * np.exp(r))
    assert seen == [[(5, 3), (1, 3)]] * 3


def test_a_shape_mismatch_names_the_users_line():
    x, y = T.matrices("x", "y")
    z = T.exp(x + y)  # the failing node
    line = sys._getframe().f_lineno - 1
    f = theon.function([x, y], z * 2, mode=PY)
    assert fused(f)
    with pytest.raises(ValueError) as err:
        f(np.ones((2, 3)), np.ones((2, 4)))
    assert f"{__file__}:{line}" in str(err.value)


def test_casts_switch_and_constants_are_fused():
    x = T.matrix("x")
    i = T.imatrix("i")
    out = T.switch(x > 0, T.cast(x * 3, "int32") + i, T.cast(i, "float32") * 0.5)
    f = same_as_unfused([x, i], out, [RNG.normal(size=(3, 3)) * 4,
                                      RNG.integers(-5, 5, (3, 3)).astype("int32")])
    (node,) = nodes(f)
    assert set(rows(node)) == {"gt", "mul", "cast_int32", "add", "cast_float32", "switch"}
    consts = [v for v in node.inputs if isinstance(v, Constant)]
    assert len(consts) == 3  # 0, 3 and 0.5: read by the kernel, not computed by nodes
    assert "int32(" in str(node.op) and "float32(" in str(node.op)


def test_integer_and_bool_work_is_fused():
    a, b = T.bvectors("a", "b")
    m = T.vector("m", dtype="bool")
    out = (a * b) // (b + 1) + (a % 3) - T.cast(m & (a > b), "int8")
    values = [np.array([-128, 127, 5, 0], "int8"), np.array([-1, 2, 0, 9], "int8"),
              np.array([True, False, True, True])]
    with np.errstate(all="ignore"):
        f = same_as_unfused([a, b, m], out, values)
    (node,) = nodes(f)
    assert node.outputs[0].dtype == "int8"


def test_zero_d_graphs_are_not_fused():
    a, b = T.dscalars("a", "b")
    f = same_as_unfused([a, b], T.exp(a) * b + 1, [np.float64(0.5), np.float64(2.0)])
    assert not fused(f) and len(elemwise(f)) == 3


def test_dtypes_without_kernels_and_elemwise_subclasses_are_not_fused():
    for dtype in ("float16", "complex128"):
        x = T.matrix("x", dtype=dtype)
        f = theon.function([x], T.exp(x) * 2 + 1, mode=PY)
        assert not fused(f), dtype

    class Doubled(Elemwise):
        """An Elemwise with its own computation: a fused node would not know it."""

        def impl(self, node):
            return lambda a: np.asarray(2 * np.exp(a))

    x = T.vector("x")
    f = theon.function([x], Doubled(S.exp)(x * 3) + 1, mode=PY)
    assert any(isinstance(n.op, Doubled) for n in nodes(f))
    np.testing.assert_allclose(f(np.zeros(2)), [3.0, 3.0])


def test_a_reduction_between_elementwise_work_splits_it():
    from theon.ops.fused_reduce import FusedReduce
    x, y = T.matrices("x", "y")
    out = T.exp(T.tanh(x * 2).sum(axis=0)) * y
    f = same_as_unfused([x, y], out, [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))])
    # the work before the reduction is its prologue (tests/compile/test_fusion_reduce.py)
    (reduction,) = [n for n in nodes(f) if isinstance(n.op, FusedReduce)]
    assert rows(reduction) == ["mul", "tanh"] and not fused(f)
    # exp stays on the reduced vector: the dimshuffle broadcasting it is a boundary (a
    # device's fusion makes exp the reduction's epilogue: fusion.fuse_epilogues)
    if ON_DEVICE:
        assert [op.name for op, _ in reduction.op.epilogue.steps] == ["exp"]
    assert [n.op.scalar_op.name for n in elemwise(f)] == (["mul"] if ON_DEVICE else
                                                           ["exp", "mul"])


# -- bounds -------------------------------------------------------------------------------------

def test_max_inputs_bounds_a_cluster(monkeypatch):
    xs = [T.vector(f"x{k}") for k in range(40)]
    out = xs[0]
    for x in xs[1:]:
        out = out + T.exp(x)
    values = [RNG.normal(size=3) for _ in xs]
    f = same_as_unfused(xs, out, values)
    assert all(len(n.inputs) <= fusion.MAX_INPUTS for n in fused(f))
    assert len(fused(f)) >= 2
    monkeypatch.setattr(fusion, "MAX_INPUTS", 4)
    g = same_as_unfused(xs, out, values)
    assert all(len(n.inputs) <= 4 for n in fused(g))
    assert max(len(n.inputs) for n in fused(g)) == 4
    # no step is lost: every exp and add is in some fused node or left alone
    count = sum(len(n.op.graph.steps) for n in fused(g)) + len(elemwise(g))
    assert count == 2 * 39


def test_max_nodes_bounds_a_cluster(monkeypatch):
    x = T.vector("x")
    out = x
    for k in range(300):
        out = T.sin(out) + 0.5 if k % 2 else T.cos(out) * 1.5
    value = [RNG.normal(size=4)]
    f = same_as_unfused([x], out, value)
    sizes = [len(n.op.graph.steps) for n in fused(f)]
    assert max(sizes) == fusion.MAX_NODES and sum(sizes) == 600
    monkeypatch.setattr(fusion, "MAX_NODES", 7)
    g = same_as_unfused([x], out, value)
    sizes = [len(n.op.graph.steps) for n in fused(g)]
    assert max(sizes) == 7 and sum(sizes) + len(elemwise(g)) == 600


def test_fusion_is_the_same_wherever_the_graph_lies_in_memory(monkeypatch):
    """Which producers fit under MAX_INPUTS depended on the iteration order of a set of
    variables, that is on their addresses: the same graph fused (and compiled) differently
    from run to run. Regression test: build one graph at different addresses."""
    monkeypatch.setattr(fusion, "MAX_INPUTS", 20)

    def build(padding: int) -> list:
        junk = [object() for _ in range(padding)]  # moves the graph's variables
        xs = [T.vector(f"x{k}") for k in range(64)]
        level = [T.exp(x) for x in xs]
        while len(level) > 1:
            level = [level[i] * level[i + 1] if i % 4 else level[i] + level[i + 1]
                     for i in range(0, len(level), 2)]
        f = theon.function(xs, level[0], mode=PY)
        del junk
        return [(str(n.op), [v.name for v in n.inputs]) for n in nodes(f)]

    first = build(0)
    for padding in (1, 7, 100, 1001, 5000):
        assert build(padding) == first, padding


# -- printing, checking, pickling -------------------------------------------------------------

def test_debugprint_shows_a_fused_node_as_its_formula():
    x, y = T.matrices("x", "y")
    z = T.tanh(x * y)
    f = theon.function([x, y], [(z + 1) * (z - x), T.exp(x) / 2], mode=PY)
    text = debugprint(f, file="str")
    assert "Fused{t1 = tanh((i0 * i1)); ((t1 + i2) * (t1 - i0))}" in text
    assert "Fused{(exp(i0) / i1)}" in text
    assert "Elemwise" not in text
    before = debugprint(f, file="str", rewritten=False)
    assert "Fused" not in before and "Elemwise{tanh}" in before


def test_debugmode_passes_on_fused_graphs():
    x, y = T.matrices("x", "y")
    f = theon.function([x, y], [T.tanh(x * y) + 1, T.sigmoid(x - y) * 3], mode="DebugMode")
    assert fused(f)
    a, b = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2))
    got = f(a, b)
    np.testing.assert_allclose(got[0], np.tanh(a * b) + 1, rtol=1e-12)


@pytest.mark.parametrize("linker", ["py", "c"])
def test_debugmode_blames_fusion_for_a_wrong_fused_node(monkeypatch, linker):
    """A fused graph computing something else (add for mul) is caught by the checking mode,
    which names the rule 'fusion', on the numpy path and on the C backend alike."""
    if linker == "c" and ccompiler.compiler() is None:
        pytest.skip("no C compiler found (config.cxx)")
    monkeypatch.setattr(theon.config, "wait_for_kernels", True)
    monkeypatch.setattr(theon.config, "linker", linker)  # the blame's own compile too
    right = fusion._scalar_graph

    def wrong(cluster, out):
        inputs, graph = right(cluster, out)
        steps = tuple((S.add if op is S.mul else op, refs) for op, refs in graph.steps)
        return inputs, ScalarGraph(graph.in_dtypes, steps, graph.outputs)

    monkeypatch.setattr(fusion, "_scalar_graph", wrong)
    x, y = T.matrices("x", "y")
    mode = Mode(linker=linker, check=True)
    f = theon.function([x, y], T.tanh(x * y) + 1.5, mode=mode)
    assert "(i0 + i1)" in str(fused(f)[0].op)
    with pytest.raises(RewriteMismatchError, match="rewrite rule 'fusion' changed a value"):
        f(np.full((2, 2), 2.0), np.full((2, 2), 3.0))


def test_a_function_with_fused_nodes_pickles():
    x, y = T.matrices("x", "y")
    i = T.ivector("i")
    outs = [T.tanh(x * y) + T.cast(i, "float64"), T.switch(x > y, i, 7) * 2]
    f = theon.function([x, y, i], outs, mode=PY)
    assert len(fused(f)) == 2
    g = pickle.loads(pickle.dumps(f))
    assert [str(n.op) for n in fused(g)] == [str(n.op) for n in fused(f)]
    args = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3)), np.arange(3, dtype="int32")
    for a, b in zip(f(*args), g(*args)):
        np.testing.assert_array_equal(a, b)
    # the op itself: equal, same hash, same kernel key
    op = fused(f)[0].op
    back = pickle.loads(pickle.dumps(op))
    assert back == op and hash(back) == hash(op) and back.graph == op.graph


def test_fused_nodes_merge_and_compare_by_graph():
    graph = ScalarGraph(("float64", "float64"), ((S.mul, (0, 1)), (S.exp, (2,))), (3,))
    same = ScalarGraph(("float64", "float64"), ((S.mul, (0, 1)), (S.exp, (2,))), (3,))
    other = ScalarGraph(("float64", "float64"), ((S.add, (0, 1)), (S.exp, (2,))), (3,))
    assert Fused(graph) == Fused(same) and hash(Fused(graph)) == hash(Fused(same))
    assert Fused(graph) != Fused(other)
    with pytest.raises(ValueError, match="earlier steps"):
        ScalarGraph(("float64",), ((S.exp, (1,)),), (1,))
    with pytest.raises(ValueError, match="takes 2 operands"):
        ScalarGraph(("float64",), ((S.add, (0,)),), (1,))


def test_the_gradient_of_a_fused_node_is_its_rows_gradient():
    x, y = T.vectors("x", "y")
    graph = ScalarGraph(("float64", "float64"),
                        ((S.mul, (0, 1)), (S.tanh, (2,)), (S.mul, (3, 0))), (4,))
    out = Fused(graph)(x, y)
    ref = T.tanh(x * y) * x
    a, b = RNG.normal(size=4), RNG.normal(size=4)
    gf = theon.function([x, y], T.grad(out.sum(), [x, y]), mode=NO_REWRITES)(a, b)
    gr = theon.function([x, y], T.grad(ref.sum(), [x, y]), mode=NO_REWRITES)(a, b)
    for p, q in zip(gf, gr):
        np.testing.assert_allclose(p, q, rtol=1e-14)


# -- the C backend runs what the pass makes ---------------------------------------------------

@needs_cc
def test_fused_nodes_run_as_kernels_with_the_numpy_results(monkeypatch):
    from theon.backends import c_backend
    monkeypatch.setattr(theon.config, "wait_for_kernels", True)
    x, r = T.matrix("x"), T.row("r")
    i = T.imatrix("i")
    outs = [T.tanh(x * r) + T.cast(i, "float64") / 3, T.switch(i > 0, x, r) * 2 - 1]
    f = theon.function([x, r, i], outs, mode=Mode(linker="c"))
    assert len(fused(f)) == 2
    for node in fused(f):
        assert c_backend._KERNELS.entries.get(c_backend._spec(node)) is not None
    values = [RNG.normal(size=(3, 5)), RNG.normal(size=(1, 5)),
              RNG.integers(-3, 3, (3, 5)).astype("int32")]
    want = theon.function([x, r, i], outs, mode=NO_REWRITES)(*values)
    for a, b in zip(f(*values), want):
        np.testing.assert_allclose(a, b, rtol=1e-14)


@needs_cc
def test_the_largest_clusters_run_as_kernels(monkeypatch):
    """A cluster at MAX_INPUTS (plus its output) and one at MAX_NODES fit a kernel's
    arguments (c_backend.MAX_ARRAYS) and compile."""
    from theon.backends import c_backend
    monkeypatch.setattr(theon.config, "wait_for_kernels", True)
    assert fusion.MAX_INPUTS + 1 <= c_backend.MAX_ARRAYS
    xs = [T.vector(f"x{k}") for k in range(fusion.MAX_INPUTS)]
    wide = xs[0]
    for x in xs[1:]:
        wide = wide + T.exp(x) * 0.5
    y = T.vector("y")
    long = y
    for k in range(fusion.MAX_NODES):
        long = T.sin(long) if k % 2 else long * 0.75
    f = theon.function(xs + [y], [wide, long], mode=Mode(linker="c"))
    sizes = sorted((len(n.inputs), len(n.op.graph.steps)) for n in fused(f))
    assert sizes[-1][0] == fusion.MAX_INPUTS and max(s for _, s in sizes) == fusion.MAX_NODES
    for node in fused(f):
        assert c_backend._KERNELS.entries.get(c_backend._spec(node)) is not None
    values = [RNG.normal(size=6) for _ in xs + [y]]
    want = theon.function(xs + [y], [wide, long], mode=NO_REWRITES)(*values)
    for got, w in zip(f(*values), want):
        np.testing.assert_allclose(got, w, rtol=1e-12)



def test_fused_broadcast_of_shapes_is_numpys():
    """The shape rule of the numpy path (ops/elemwise.broadcast_lengths) against
    np.broadcast_shapes on every triple of some shapes: equal result, or a ValueError for
    both."""
    import itertools

    from theon.ops.elemwise import broadcast_lengths
    shapes = [(), (1,), (0,), (3,), (2, 1), (1, 3), (2, 3), (0, 1), (1, 0), (2, 0)]
    for triple in itertools.product(shapes, repeat=3):
        try:
            want = np.broadcast_shapes(*triple)
        except ValueError:
            want = None
        try:
            got = broadcast_lengths(list(triple))
        except ValueError:
            got = None
        assert got == want, triple
