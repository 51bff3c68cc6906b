"""Reductions taking their elementwise input as a prologue: the fusion pass
(compile/rules/fusion.py) and the FusedReduce op (ops/fused_reduce.py). What fuses and what
does not, values equal to the unfused graph bit for bit on the numpy path, printing,
pickling, gradients, the checking mode (DebugMode) blaming 'fusion' for a wrong node, and the
errors naming the user's line.
"""
from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.compile.debug import RewriteMismatchError
from theon.compile.mode import Mode
from theon.compile.rules import fusion
from theon.ops import scalar as S
from theon.ops.fused import Fused, ScalarGraph
from theon.ops.fused_reduce import FusedReduce
from theon.ops.reduce import Reduce

PY = Mode(linker="py")
# a device's fusion does more (compile/rules/fusion.py: keep_prologues, fuse_epilogues)
ON_DEVICE = theon.config.device != "cpu"
UNFUSED = Mode(linker="py").excluding("fusion")
NO_REWRITES = Mode(linker="py", optimizer=None)
RNG = np.random.default_rng(18)


def nodes(f) -> list:
    return f.maker.fgraph.toposort()


def of(f, cls) -> list:
    return [n for n in nodes(f) if type(n.op) is cls]


def same_as_unfused(inputs, outputs, values, mode=PY):
    """Compile with and without fusion: equal values bit for bit; returns the fused one."""
    f = theon.function(inputs, outputs, mode=mode)
    g = theon.function(inputs, outputs, mode=UNFUSED)
    got, want = f(*values), g(*values)
    if not isinstance(got, (list, tuple)):
        got, want = [got], [want]
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    return f


# -- what fuses -------------------------------------------------------------------------------

def test_softmax_denominator_reads_x_once():
    x = T.matrix("x")
    m = x.max(axis=1, keepdims=True)
    f = same_as_unfused([x], T.exp(x - m).sum(axis=1), [RNG.normal(size=(4, 5))])
    (node,) = of(f, FusedReduce)
    assert str(node.op) == "Sum{axis=[1]}(exp((i0 - i1)))"
    assert node.inputs[0].name == "x"
    assert [n.op.kind for n in of(f, Reduce)] == ["max"]  # x itself: stays a Reduce


def test_a_lone_elementwise_node_and_every_kind():
    x = T.matrix("x")
    outs = [T.sqr(x).sum(axis=0), T.exp(x).prod(axis=1), T.abs(x).max(), T.neg(x).min(axis=0),
            T.all(T.gt(x, 0), axis=1), T.any(T.lt(x, -1))]
    f = same_as_unfused([x], outs, [RNG.normal(size=(3, 4))])
    got = sorted((n.op.kind, n.op.axis) for n in of(f, FusedReduce))
    assert got == [("all", (1,)), ("any", (0, 1)), ("max", (0, 1)), ("min", (0,)),
                   ("prod", (1,)), ("sum", (0,))]
    assert not of(f, Reduce) and not of(f, Fused)


def test_keepdims_stays_outside_and_dtypes_follow_reduce():
    x = T.matrix("x")
    i = T.imatrix("i")
    outs = [T.exp(x).sum(axis=1, keepdims=True), (i * 2).sum(axis=0),
            T.sum(x * 3, axis=1, dtype="float32")]
    f = same_as_unfused([x, i], outs, [RNG.normal(size=(3, 4)),
                                        RNG.integers(-9, 9, (3, 4)).astype("int32")])
    reds = of(f, FusedReduce)
    assert sorted(n.op.dtype for n in reds) == ["float32", "float64", "int64"]
    outs_f = f.maker.fgraph.outputs
    assert outs_f[0].owner.op.__class__.__name__ == "DimShuffle"
    assert type(outs_f[0].owner.inputs[0].owner.op) is FusedReduce


def test_what_does_not_fuse():
    x, y = T.matrices("x", "y")
    e = T.exp(x * y)
    cases = [
        ([x], [x.sum(axis=1)]),                              # a plain input
        ([x, y], [T.dot(x, y).sum(axis=0)]),                 # not elementwise
        ([x, y], [e.sum(axis=0), T.tanh(e)]),                # read by another node
        ([x, y], [e.sum(axis=1), e]),                        # an output
    ]
    for k, (inputs, outs) in enumerate(cases):
        values = [RNG.normal(size=(3, 3)) for _ in inputs]
        f = same_as_unfused(inputs, outs, values)
        if ON_DEVICE and k >= 2:
            # a device's fusion computes e in the sum's kernel and outputs it as well
            # (fusion.keep_prologues): e is still written once, never recomputed
            assert [n.op.keep for n in of(f, FusedReduce)] == [True], outs
            continue
        assert not of(f, FusedReduce), outs
    # an intermediate given as an input is read, not computed
    h = T.exp(x)
    f = theon.function([x, h], h.sum(axis=0) + x, mode=PY)
    assert not of(f, FusedReduce)
    # float16 has no kernel dialect: not fused either
    z = T.matrix("z", dtype="float16")
    assert not of(theon.function([z], T.exp(z).sum(axis=1), mode=PY), FusedReduce)
    # 0-d work is never fused
    s = T.dscalar("s")
    assert not of(theon.function([s], T.exp(s).sum(), mode=PY), FusedReduce)


def test_a_fused_chain_becomes_the_prologue():
    x, y = T.matrices("x", "y")
    out = T.exp(T.tanh(x * 2).sum(axis=0)) * y
    f = same_as_unfused([x, y], out, [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))])
    (node,) = of(f, FusedReduce)
    assert [op.name for op, _ in node.op.graph.steps] == ["mul", "tanh"]
    # (a device's fusion takes the exp reading the sum too: fusion.fuse_epilogues)
    assert str(node.op) == "Sum{axis=[0]}(tanh((i0 * i1)))" + (" -> exp(r)" if ON_DEVICE
                                                                else "")


def test_bounds_are_kept(monkeypatch):
    xs = [T.vector(f"x{k}") for k in range(12)]
    out = xs[0]
    for x in xs[1:]:
        out = out * T.exp(x)
    monkeypatch.setattr(fusion, "MAX_INPUTS", 4)
    f = same_as_unfused(xs, out.sum(), [RNG.normal(size=3) for _ in xs])
    assert all(len(n.inputs) <= 4 for n in of(f, Fused) + of(f, FusedReduce))
    assert len(of(f, FusedReduce)) == 1


def test_fusion_is_deterministic():
    def build():
        x, y = T.matrices("x", "y")
        outs = [T.exp(x - y).sum(axis=1), T.sqr(x * y).max(axis=0), (x + y).sum()]
        f = theon.function([x, y], outs, mode=PY)
        return [str(n.op) for n in nodes(f)]
    first = build()
    for _ in range(3):
        assert build() == first


# -- the op -----------------------------------------------------------------------------------

GRAPH = ScalarGraph(("float64", "float64"), ((S.sub, (0, 1)), (S.exp, (2,))), (3,))


def test_make_node_types_and_shapes():
    x, c = T.matrix("x"), T.col("c")
    out = FusedReduce(GRAPH, "sum", (1,), "float64")(x, c)
    assert out.type == T.exp(x - c).sum(axis=1).type
    with pytest.raises(TypeError, match="FusedReduce"):
        FusedReduce(GRAPH, "sum", (1,), "float64")(x, T.imatrix())
    with pytest.raises(ValueError, match="one output"):
        FusedReduce(ScalarGraph(("float64",), ((S.exp, (0,)),), (1, 1)), "sum", (0,),
                    "float64")
    a, b = RNG.normal(size=(0, 3)), RNG.normal(size=(0, 1))
    f = theon.function([x, c], out.shape, mode=NO_REWRITES)
    assert tuple(f(a, b)) == (0,)


def test_pickling_and_equality():
    op = FusedReduce(GRAPH, "max", (0, 1), "float64", initial=-np.inf)
    back = pickle.loads(pickle.dumps(op))
    assert back == op and hash(back) == hash(op)
    assert op != FusedReduce(GRAPH, "max", (0, 1), "float64")
    assert str(op) == "Max{axis=[0, 1], initial=-inf}(exp((i0 - i1)))"
    x, y = T.matrices("x", "y")
    f = theon.function([x, y], [T.exp(x - y).sum(axis=1), T.sqr(x).max()], mode=PY)
    g = pickle.loads(pickle.dumps(f))
    assert [str(n.op) for n in of(g, FusedReduce)] == [str(n.op) for n in of(f, FusedReduce)]
    args = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    for p, q in zip(f(*args), g(*args)):
        np.testing.assert_array_equal(p, q)


def test_expand_is_the_unfused_graph():
    x, c = T.matrix("x"), T.col("c")
    op = FusedReduce(GRAPH, "sum", (1,), "float64")
    out = op.expand([x, c])
    assert isinstance(out.owner.op, Reduce)
    a, b = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 1))
    f = theon.function([x, c], [op(x, c), out], mode=NO_REWRITES)
    p, q = f(a, b)
    np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
def test_gradients_against_finite_differences(kind):
    op = FusedReduce(GRAPH, kind, (1,), "float64")
    a = RNG.uniform(-1, 1, (3, 4))
    b = RNG.uniform(-1, 1, (3, 1))
    theon.gradient.verify_grad(lambda x, c: op(x, c), [a, b], rng=np.random.default_rng(1),
                               mode=NO_REWRITES)


def test_gradient_of_a_fused_function_matches_the_unfused_one():
    x = T.matrix("x")
    y = T.nnet.logsumexp(x * 1.5, axis=1).sum()
    g = T.grad(y, x)
    a = RNG.normal(size=(4, 6))
    f = theon.function([x], [y, g], mode=PY)
    assert of(f, FusedReduce)
    h = theon.function([x], [y, g], mode=UNFUSED)
    for p, q in zip(f(a), h(a)):
        np.testing.assert_allclose(p, q, rtol=1e-14)


# -- errors and checking ----------------------------------------------------------------------

@pytest.mark.parametrize("device_fusion", [False, True])
def test_max_of_an_empty_axis_names_the_users_line(monkeypatch, device_fusion):
    if device_fusion:  # the device's fusion gives the max its reader ``* 2`` as an epilogue
        monkeypatch.setattr(theon.config, "device", "cuda")
    x = T.matrix("x")
    m = T.exp(x).max(axis=1); line = sys._getframe().f_lineno  # noqa: E702
    f = theon.function([x], m * 2, mode=PY)
    (node,) = of(f, FusedReduce)
    assert (node.op.epilogue is not None) == (theon.config.device != "cpu")
    with pytest.raises(ValueError, match="max of an empty array") as err:
        f(np.ones((3, 0)))
    assert f"{__file__}:{line}" in str(err.value)


def test_a_shape_mismatch_in_the_prologue_names_the_users_line():
    x, y = T.matrices("x", "y")
    s = T.exp(x + y); line = sys._getframe().f_lineno  # noqa: E702
    f = theon.function([x, y], s.sum(axis=0), mode=PY)
    assert of(f, FusedReduce)
    with pytest.raises(ValueError) as err:
        f(np.ones((2, 3)), np.ones((2, 4)))
    assert f"{__file__}:{line}" in str(err.value)


def test_debugmode_passes_on_fused_reductions():
    x = T.matrix("x")
    f = theon.function([x], [T.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1),
                             T.sqr(x).sum()], mode="DebugMode")
    assert of(f, FusedReduce)
    a = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(f(a)[1], (a ** 2).sum(), rtol=1e-12)


@pytest.mark.parametrize("linker", ["py", "c"])
def test_debugmode_blames_fusion_for_a_wrong_fused_reduction(monkeypatch, linker):
    from theon.backends import ccompiler
    if linker == "c" and ccompiler.compiler() is None:
        pytest.skip("no C compiler found (config.cxx)")
    monkeypatch.setattr(theon.config, "wait_for_kernels", True)
    monkeypatch.setattr(theon.config, "linker", linker)
    right = fusion.FusedReduce

    def wrong(graph, kind, axis, dtype, initial=None):
        return right(graph, "max" if kind == "sum" else kind, axis, dtype, initial)

    monkeypatch.setattr(fusion, "FusedReduce", wrong)
    x = T.matrix("x")
    f = theon.function([x], T.exp(x).sum(axis=1), mode=Mode(linker=linker, check=True))
    assert "Max{axis=[1]}(exp(i0))" in [str(n.op) for n in nodes(f)]
    with pytest.raises(RewriteMismatchError, match="rewrite rule 'fusion' changed a value"):
        f(np.ones((2, 3)))


def test_the_sympy_bridge_refuses_a_reduction():
    from theon.compile.sympy_bridge import to_sympy
    x = T.matrix("x")
    with pytest.raises(ValueError, match="sympy"):
        to_sympy(FusedReduce(GRAPH, "sum", (1,), "float64")(x, x))


def test_the_c_backend_runs_a_kernel(monkeypatch):
    from theon.backends import c_backend, ccompiler
    if ccompiler.compiler() is None:
        pytest.skip("no C compiler found (config.cxx)")
    monkeypatch.setattr(theon.config, "wait_for_kernels", True)
    x = T.matrix("x")
    out = T.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1)
    f = theon.function([x], out, mode=Mode(linker="c"))
    (node,) = of(f, FusedReduce)
    assert c_backend._KERNELS.entries.get(c_backend._spec(node)) is not None
    a = RNG.normal(size=(50, 70))
    np.testing.assert_allclose(f(a), np.exp(a - a.max(1, keepdims=True)).sum(1), rtol=1e-13)
