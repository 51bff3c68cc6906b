"""Reductions with an elementwise prologue (``FusedReduce``) as C kernels, against numpy
(issue 8, part 1).

Every kind (sum, prod, max, min, all, any) x input dtype x axes (one, several, all; first,
last, middle; for sum and max, two of them for the others) is an output of one function per
dtype (``Mode(linker='c', optimizer=None)``, the FusedReduce nodes built by hand: ``identity``
of the input, then the reduction), so each dtype compiles once. That function then runs on
arrays in many layouts: contiguous, transposed, strided and reversed, a zero-stride broadcast
view, size 0 in a kept and in a reduced dimension, size 1, short rows (reduced across the
outputs, a vector lane each), and above the OpenMP threshold (threads sharing the outputs,
or splitting the reduced range of a few long ones). Integers and bools must be exact; floats
close to numpy's (which sums pairwise, in another order); NaN and infinities as numpy gives
them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.backends import c_backend, ccompiler
from theon.compile.mode import Mode
from theon.ops import scalar as S
from theon.ops.fused import ScalarGraph
from theon.ops.fused_reduce import FusedReduce
from theon.ops.reduce import _acc_dtype
from theon.symbolic.types import TensorType

pytestmark = [pytest.mark.host_only,
              pytest.mark.skipif(ccompiler.compiler() is None,
                                 reason="no C compiler found (config.cxx)")]

C = Mode(linker="c", optimizer=None)
KINDS = ("sum", "prod", "max", "min", "all", "any")
AXES = ((0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2))
FEW_AXES = ((1,), (0, 2))
DTYPES = ("bool", "int8", "int64", "uint8", "float32", "float64")
RNG = np.random.default_rng(81)


@pytest.fixture(autouse=True)
def _wait(monkeypatch):
    monkeypatch.setattr(theon.config, "wait_for_kernels", True)


def _reduction(kind: str, axis: tuple, dtype: str, graph: ScalarGraph) -> FusedReduce:
    out = _acc_dtype(kind, graph.out_dtypes[0])
    return FusedReduce(graph, kind, axis, out)


def _compiled(dtype: str, kinds=KINDS):
    """One function computing every kind over every axes of an identity prologue, and the
    list of (kind, axes) its outputs are."""
    x = TensorType(dtype, shape=(None, None, None))("x")
    graph = ScalarGraph.of_row(S.identity, (dtype,))
    # the layout code is shared by every kind: every axes for a sum (a cascade of partial
    # sums) and a max (compare, NaN apart), two for the others (each a compile's worth)
    cases = [(k, a) for k in kinds for a in (AXES if k in ("sum", "max") else FEW_AXES)]
    outs = [_reduction(k, a, dtype, graph)(x) for k, a in cases]
    f = theon.function([x], outs, mode=C)
    for node in f.maker.fgraph.toposort():
        spec = c_backend._spec(node)
        assert spec is not None and c_backend._KERNELS.entries.get(spec) is not None, node.op
    return f, cases


def _want(kind: str, a: np.ndarray, axis: tuple):
    fn = getattr(np, kind)
    if kind in ("sum", "prod"):
        return fn(a, axis=axis, dtype=_acc_dtype(kind, a.dtype.name))
    return fn(a, axis=axis)


def _check(got, want, dtype: str, kind: str, where: str, scale=None) -> None:
    """Exact, except float sums and products: ``scale`` (for a sum, the sum of the absolute
    values: cancellation leaves numpy's rounding errors, not ours) times a few ulps."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, where
    if want.dtype.kind == "f" and kind in ("sum", "prod"):
        eps = np.finfo(want.dtype).eps
        scale = np.abs(want) if scale is None else scale
        with np.errstate(invalid="ignore"):
            bad = ~((got == want) | (np.isnan(got) & np.isnan(want))
                    | (np.abs(got - want) <= 16 * eps * scale))
        assert not bad.any(), f"{where}: {got[bad]} against numpy's {want[bad]}"
    else:
        np.testing.assert_array_equal(got, want, err_msg=where)


def _values(dtype: str, shape) -> np.ndarray:
    if dtype == "bool":
        return RNG.random(shape) < 0.7
    if dtype.startswith("float"):
        # near 1 (products stay finite), some exactly 1 and negative values
        v = RNG.uniform(0.8, 1.25, shape) * RNG.choice([1.0, 1.0, -1.0], shape)
        return v.astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(max(info.min, -3), min(info.max, 4), shape, endpoint=True).astype(dtype)


def _layouts(dtype: str):
    """(name, array of shape (5, 6, 7) or degenerate) in the layouts a kernel meets."""
    base = _values(dtype, (5, 6, 7))
    yield "contiguous", base
    yield "transposed", np.ascontiguousarray(base.transpose(2, 1, 0)).transpose(2, 1, 0)
    big = _values(dtype, (10, 6, 15))
    yield "strided, reversed", big[::2, :, ::-2]
    yield "broadcast", np.broadcast_to(base[:, :1, :], (5, 6, 7))
    yield "mixed order", np.ascontiguousarray(base.transpose(1, 0, 2)).transpose(1, 0, 2)
    yield "size 1", base[:1, :1, :1]
    yield "length 1 middle", base[:, :1, :]
    yield "size 0 kept", base[:0]
    yield "short rows", _values(dtype, (40, 3, 2))
    yield "above the threshold", _values(dtype, (64, 48, 64))
    yield "one long output", _values(dtype, (2, 300, 400))[:, :, ::2]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kind_axes_and_layout_against_numpy(dtype):
    full, every = _compiled(dtype)
    # max and min of an empty axis raise (tested below): without them for empty arrays
    empty, some = _compiled(dtype, ("sum", "prod", "all", "any"))
    for name, a in _layouts(dtype):
        f, cases = (empty, some) if a.size == 0 else (full, every)
        with np.errstate(all="ignore"):
            got = f(a)
        for (kind, axis), g in zip(cases, got):
            with np.errstate(all="ignore"):
                want = _want(kind, a, axis)
                # a sum: cancellation leaves numpy's error, relative to the absolute values;
                # a product multiplies in another order: rounding errors like a random walk
                n = max(a.size // max(np.size(want), 1), 1)
                scale = np.sum(np.abs(a.astype("float64")), axis=axis) if kind == "sum" \
                    else np.abs(want.astype("float64")) * np.sqrt(n)
            _check(g, want, dtype, kind, f"{dtype} {kind} axis={axis} {name} {a.shape} "
                                         f"{a.strides}", scale)


@pytest.mark.parametrize("dtype", ["int8", "float64"])
def test_an_empty_reduction_gives_the_identity_or_raises(dtype):
    x = TensorType(dtype, shape=(None, None))("x")
    graph = ScalarGraph.of_row(S.identity, (dtype,))
    a = np.zeros((3, 0), dtype)
    kinds = ("sum", "prod", "all", "any")
    f = theon.function([x], [_reduction(k, (1,), dtype, graph)(x) for k in kinds] +
                       [_reduction("max", (0,), dtype, graph)(x)], mode=C)
    got = f(a)
    for kind, g in zip(kinds, got):
        _check(g, _want(kind, a, (1,)), dtype, kind, kind)
    assert got[-1].shape == (0,)  # max over a non-empty axis of an empty array
    f = theon.function([x], _reduction("max", (1,), dtype, graph)(x), mode=C)
    with pytest.raises(ValueError, match="max of an empty array"):
        f(a)
    if dtype == "float64":
        op = FusedReduce(graph, "max", (1,), dtype, initial=-np.inf)
        g = theon.function([x], op(x), mode=C)
        np.testing.assert_array_equal(g(a), np.full(3, -np.inf))
        np.testing.assert_array_equal(g(np.array([[1.0, 5.0]])), [5.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_and_infinities(dtype):
    f, cases = _compiled(dtype)
    a = _values(dtype, (4, 5, 70))
    a[0, 1, 3] = np.nan
    a[1, :, 5] = np.inf
    a[2, 2, :] = -np.inf
    a[3, 4, 69] = np.nan
    a[3, 0, 0] = np.inf
    a[3, 0, 1] = -np.inf
    with np.errstate(all="ignore"):
        got = f(a)
        for (kind, axis), g in zip(cases, got):
            scale = np.sum(np.abs(a.astype("float64")), axis=axis) if kind == "sum" else None
            _check(g, _want(kind, a, axis), dtype, kind, f"{kind} {axis}", scale)


def test_integer_sums_and_products_wrap_as_numpy():
    f, cases = _compiled("int64")
    big = np.iinfo("int64").max
    a = np.array([[[big, big, 3], [-big, 7, big]], [[2 ** 40, 2 ** 30, 2 ** 20],
                                                     [-1, -1, -1]]], "int64")
    with np.errstate(all="ignore"):
        for (kind, axis), g in zip(cases, f(a)):
            _check(g, _want(kind, a, axis), "int64", kind, f"{kind} {axis}")
    g, cases = _compiled("uint8")
    b = np.full((3, 200, 5), 255, "uint8")
    for (kind, axis), v in zip(cases, g(b)):
        _check(v, _want(kind, b, axis), "uint8", kind, f"{kind} {axis}")


def test_negative_zeros_keep_their_sign():
    x = TensorType("float64", shape=(None, None))("x")
    graph = ScalarGraph.of_row(S.identity, ("float64",))
    f = theon.function([x], [_reduction(k, (1,), "float64", graph)(x) for k in
                             ("sum", "prod")], mode=C)
    a = np.full((2, 3), -0.0)
    for got, want in zip(f(a), (a.sum(axis=1), a.prod(axis=1))):
        assert np.array_equal(np.signbit(got), np.signbit(want)), (got, want)


def test_a_float32_sum_of_a_million_is_as_close_as_numpys():
    """float32 sums accumulate in float64: the result is the exact sum rounded once (within
    an ulp), where numpy's pairwise float32 sum is a few ulps off."""
    x = T.fvector("x")
    graph = ScalarGraph.of_row(S.identity, ("float32",))
    f = theon.function([x], FusedReduce(graph, "sum", (0,), "float32")(x), mode=C)
    for k in range(3):
        a = (RNG.random(10 ** 6) * (10.0 ** k)).astype("float32")
        exact = math.fsum(a.astype("float64").tolist())
        ulp = float(np.spacing(np.float32(exact)))
        ours = abs(float(f(a)) - exact) / ulp
        theirs = abs(float(a.sum()) - exact) / ulp
        assert ours <= 1.0 and ours <= theirs + 1.0, (ours, theirs)


def test_a_prologue_with_broadcast_inputs():
    """sum(exp(x - m)) over rows with m a column (softmax's denominator), and a row weight:
    the broadcast inputs have stride 0 where the loops walk."""
    x, m, w = T.matrix("x"), T.col("m"), T.row("w")
    graph = ScalarGraph(("float64",) * 3, ((S.sub, (0, 1)), (S.exp, (3,)), (S.mul, (4, 2))),
                        (5,))
    outs = [FusedReduce(graph, "sum", (1,), "float64")(x, m, w),
            FusedReduce(graph, "max", (0,), "float64")(x, m, w),
            FusedReduce(graph, "sum", (0, 1), "float64")(x, m, w)]
    f = theon.function([x, m, w], outs, mode=C)
    for shape in ((3, 5), (300, 7), (7, 300), (600, 600)):
        # positive weights: a sum with cancellation would leave numpy's rounding errors
        a, b, c = RNG.normal(size=shape), RNG.normal(size=(shape[0], 1)), \
            RNG.uniform(0.5, 1.5, size=(1, shape[1]))
        e = np.exp(a - b) * c
        for got, want in zip(f(a, b, c), (e.sum(axis=1), e.max(axis=0), e.sum())):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    # shapes the pattern refuses: the numpy thunk's error
    with pytest.raises(ValueError):
        f(np.ones((3, 4)), np.ones((2, 1)), np.ones((1, 4)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_and_log_softmax_run_as_three_kernels(dtype):
    """max, sum(exp(x - m)) and exp(x - m) / s (or (x - m) - log(s)): three passes over x on
    the C backend, the numpy implementation's formula, to a few ulps of it."""
    x = TensorType(dtype, shape=(None, None))("x")
    t = TensorType(dtype, shape=(None, None, None))("t")
    # (log_softmax of -x: of x itself, softmax(x) would be read as exp(log_softmax(x)))
    outs = [T.nnet.softmax(x), T.nnet.log_softmax(-x), T.nnet.softmax(x, axis=0),
            T.nnet.softmax(t, axis=1), T.nnet.log_softmax(t, axis=(0, 2))]
    f = theon.function([x, t], outs, mode=Mode(linker="c"))
    specs = [s for n in f.maker.fgraph.toposort() if type(n.op).__name__ == "Softmax"
             for s in c_backend._softmax_specs(n)]
    assert len(specs) == 15 and all(c_backend._KERNELS.entries.get(s) for s in specs)
    ref = theon.function([x, t], outs, mode=Mode(linker="py"))
    tol = 8 * np.finfo(dtype).eps
    for shape in ((256, 10), (7, 300), (1, 1), (0, 4), (3, 0)):
        a = RNG.normal(size=shape).astype(dtype) * 5
        b = RNG.normal(size=(4, 5, 6)).astype(dtype)
        if a.size:
            a.flat[0] = 80  # exp would overflow without the maximum subtracted
        for got, want in zip(f(a, b.transpose(2, 0, 1)), ref(a, b.transpose(2, 0, 1))):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    a = np.array([[1.0, np.inf, 2.0], [np.nan, 0.0, 1.0], [-np.inf, 0.0, 0.0]], dtype)
    with np.errstate(all="ignore"):
        for got, want in zip(f(a, b), ref(a, b)):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True)


def test_a_plain_reduction_of_an_array_runs_a_kernel():
    """A Reduce node whose input is an array (no elementwise work before it) runs the same
    kernel with an identity prologue; float16 and complex stay on numpy."""
    x = T.matrix("x")
    i = T.bmatrix("i")
    outs = [x.sum(axis=1), x.max(axis=0), T.prod(x, axis=0), i.sum(axis=0), T.any(i, axis=1),
            T.nnet.logsumexp(x, axis=1)]
    f = theon.function([x, i], outs, mode=Mode(linker="c"))
    reds = [n for n in f.maker.fgraph.toposort() if type(n.op).__name__ == "Reduce"]
    assert len(reds) >= 5
    for node in reds:
        assert c_backend._KERNELS.entries.get(c_backend._spec(node)) is not None, node.op
    ref = theon.function([x, i], outs, mode=Mode(linker="py"))
    for shape in ((3, 4), (200, 700), (0, 3), (3, 0)):
        a = RNG.uniform(0.5, 1.5, shape)
        b = RNG.integers(-100, 100, shape).astype("int8")
        if shape == (0, 3):  # max over an empty axis: the numpy thunk's error
            with pytest.raises(ValueError, match="max of an empty array"):
                f(a, b)
            continue
        with np.errstate(divide="ignore"):  # logsumexp of an empty row: log(0)
            pairs = list(zip(f(a, b), ref(a, b)))
        for got, want in pairs:
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-12)
    for dtype in ("float16", "complex128"):
        z = T.matrix("z", dtype=dtype)
        node = theon.function([z], z.sum(axis=1), mode=Mode(linker="c")).maker.fgraph.outputs[
            0].owner
        assert c_backend._spec(node) is None
