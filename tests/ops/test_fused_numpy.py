"""A Fused node on numpy (``Fused.impl``, ops/fused.py): the blocked path, which runs the scalar
graph block by block on large outputs, against the unfused numpy graph, bit for bit (the blocks
call the same ufunc loops on every element), on sizes around the block size and every layout;
and sigmoid's one-exp numpy implementation (ops/scalar.py) against the two-exp form it
replaced, bit for bit, in both tails.

Most tests shrink the block (``BLOCK``) and the size from which outputs are blocked
(``BLOCKED_MIN``) so that small arrays cross many blocks; both are read when a function is
compiled.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.compile.mode import Mode
from theon.ops import fused as F
from theon.ops import scalar as S
from theon.ops.fused import Fused, ScalarGraph

PY = Mode(linker="py")
UNFUSED = Mode(linker="py").excluding("fusion")
NO_REWRITES = Mode(linker="py", optimizer=None)
RNG = np.random.default_rng(88)
BLOCK = 64


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 elements, and every non-empty output blocked."""
    monkeypatch.setattr(F, "BLOCK", BLOCK)
    monkeypatch.setattr(F, "BLOCKED_MIN", 1)


def fused_nodes(f) -> list:
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, Fused)]


def check(inputs, outputs, values):
    """The fused function (numpy path) equals the unfused one bit for bit, in dtype and shape;
    returns the fused function's results."""
    f = theon.function(inputs, outputs, mode=PY)
    g = theon.function(inputs, outputs, mode=UNFUSED)
    assert fused_nodes(f)
    got, want = f(*values), g(*values)
    if not isinstance(got, (list, tuple)):
        got, want = [got], [want]
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b, strict=True)
    return got


def w1(a, b, c, d):
    return T.tanh(a * b + c) * T.nnet.sigmoid(a) - T.sqrt(d)


def w1_values(shape, dtype="float32"):
    values = [(RNG.standard_normal(shape) * 4).astype(dtype) for _ in range(3)]
    return values + [RNG.uniform(0.1, 2.0, shape).astype(dtype)]


# -- sizes around the block --------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 5 * BLOCK + 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_w1_vectors_around_the_block_size(small_blocks, n, dtype):
    xs = T.vectors("a", "b", "c", "d") if dtype == "float64" else T.fvectors("a", "b", "c", "d")
    check(xs, w1(*xs), w1_values(n, dtype))


def test_default_block_just_above_the_threshold():
    n = F.BLOCKED_MIN + 1  # blocked with the real block size: 4 full blocks and one element
    xs = T.fvectors("a", "b", "c", "d")
    check(xs, w1(*xs), w1_values(n))


def test_size_zero_runs_whole(small_blocks):
    xs = T.fmatrices("a", "b", "c", "d")
    for shape in [(0, 5), (5, 0), (0, 0)]:
        (out,) = check(xs, w1(*xs), w1_values(shape))
        assert out.shape == shape


# -- layouts -----------------------------------------------------------------------------------

def _layouts(shape):
    """Arrays of ``shape`` laid out in memory in different ways."""
    m, n = shape
    base = RNG.standard_normal((2 * max(shape) + 1, 3 * max(shape) + 2))
    return {
        "contiguous": np.ascontiguousarray(base[:m, :n]),
        "fortran": np.asfortranarray(base[:m, :n]),
        "transposed": np.ascontiguousarray(base[:n, :m]).T,
        "strided": base[1::2, 2::3][:m, :n],
        "reversed": base[:m, :n][::-1, ::-1],
        "zero-stride": np.broadcast_to(base[0, :n], (m, n)),
    }


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (7, 9), (9, BLOCK + 1),
                                   (BLOCK + 1, 3), (40, 50)])
def test_every_layout(small_blocks, shape):
    x, y, z = T.matrices("x", "y", "z")
    out = T.tanh(x * y + z) * T.nnet.sigmoid(x) - abs(z)
    layouts = _layouts(shape)
    for name_x, vx in layouts.items():
        for vy in layouts.values():
            vz = layouts["transposed" if name_x == "contiguous" else "contiguous"]
            check([x, y, z], out, [vx, vy, vz])


def test_transposed_inputs_give_a_transposed_output(small_blocks):
    # the blocks follow the inputs' memory order, and so does the output they fill
    x, y = T.matrices("x", "y")
    vx, vy = (RNG.standard_normal((30, 40)).T for _ in range(2))
    (out,) = check([x, y], T.exp(x) * y + 1, [vx, vy])
    assert out.flags.f_contiguous


def test_three_dimensions_blocked_inside_the_last_axis(small_blocks):
    # no trailing product fits a block before the last axis: blocks of 35 along it, at every
    # index of the two axes before it
    x, y = T.tensor3("x"), T.tensor3("y")
    vx = RNG.standard_normal((3, 5, 70))
    vy = RNG.standard_normal((70, 5, 3)).transpose(2, 1, 0)
    check([x, y], T.sin(x) * T.cos(y) - x, [vx, vy])
    check([x, y], T.sin(x) * T.cos(y) - x, [vx[:, ::-1, 1::2], vy[:, ::-1, ::2]])


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (1, 200), (70, 30), (200, 3)])
def test_broadcasting_inputs(small_blocks, shape):
    m, n = shape
    x = T.matrix("x")
    r, c, s = T.row("r"), T.col("c"), T.scalar("s")
    out = T.exp(x * r) + T.tanh(c) * s - x / 3
    values = [RNG.standard_normal((m, n)), RNG.standard_normal((1, n)),
              RNG.standard_normal((m, 1)), np.asarray(1.5)]
    check([x, r, c, s], out, values)
    # a row and a column alone make the output's shape: no input has it
    check([r, c], T.exp(r) * T.tanh(c) + r, values[1:3])


# -- what the blocks compute: casts, non-ufunc rows, outputs -----------------------------------

def test_mixed_dtypes_casts_and_switch(small_blocks):
    i, u = T.ivector("i"), T.vector("u", dtype="uint8")
    x = T.fvector("x")
    n = 5 * BLOCK + 7
    values = [RNG.integers(-50, 50, n).astype("int32"), RNG.integers(0, 255, n).astype("uint8"),
              RNG.standard_normal(n).astype("float32")]
    outs = [T.switch(i > 0, T.exp(x), T.cast(u, "float32") * x),  # switch: np.where
            T.sigmoid(i) + x,                  # sigmoid of ints: computed on floats
            (i // 7 + u) * 3,                  # integer work
            T.cast(x * 100, "int16") - u]      # a cast as the last step
    check([i, u, x], outs, values)


def test_several_outputs(small_blocks):
    # the fusion pass makes one output per node; a hand-built graph has several, written by
    # ufuncs (into the output arrays), sigmoid (out=) and copied from switch and a cast
    x, y = T.vectors("x", "y")
    op = S.TABLE
    graph = ScalarGraph(("float64", "float64"),
                        ((op["mul"], (0, 1)), (op["tanh"], (2,)), (op["sigmoid"], (0,)),
                         (op["mul"], (3, 4)), (op["gt"], (5, 1)), (op["switch"], (6, 3, 4)),
                         (S.cast_op("float32"), (7,)), (op["sigmoid"], (5,))),
                        (3, 5, 7, 8, 4, 9))
    fused = Fused(graph)
    f = theon.function([x, y], fused.make_node(x, y).outputs, mode=NO_REWRITES)
    refs = fused.expand([x, y])
    g = theon.function([x, y], [refs[r] for r in graph.outputs], mode=NO_REWRITES)
    for n in (1, BLOCK, 3 * BLOCK + 1):
        values = [RNG.standard_normal(n) for _ in range(2)]
        got, want = f(*values), g(*values)
        assert len({id(a) for a in got}) == len(got)
        for a, w in zip(got, want):
            np.testing.assert_array_equal(a, w, strict=True)


def test_hand_built_graph_with_early_steps_and_input_outputs(small_blocks):
    # exp(b) of a row is computed once before the blocks and read by each; the outputs
    # include it (broadcast to the output's shape), an input (copied) and the same step twice
    x, b = T.matrix("x"), T.row("b")
    exp, mul, add = S.TABLE["exp"], S.TABLE["mul"], S.TABLE["add"]
    graph = ScalarGraph(("float64", "float64"), ((exp, (1,)), (mul, (0, 2)), (add, (3, 0))),
                        (4, 2, 0, 4, 3))
    node = Fused(graph).make_node(x, b)
    f = theon.function([x, b], node.outputs, mode=NO_REWRITES)
    vx, vb = RNG.standard_normal((200, 50)), RNG.standard_normal((1, 50))
    got = f(vx, vb)
    t0 = np.exp(vb)
    t1 = vx * t0
    want = [t1 + vx, np.broadcast_to(t0, vx.shape), vx, t1 + vx, t1]
    for a, w in zip(got, want):
        np.testing.assert_array_equal(a, w, strict=True)
    assert not np.shares_memory(got[2], vx)
    assert got[0] is got[3]  # one output array for the step returned twice, as before
    got[1][0, 0] = 7  # a real array, not a broadcast view
    assert got[1][1, 0] != 7


def test_outputs_held_by_the_caller_are_never_written_again(small_blocks):
    xs = T.fvectors("a", "b", "c", "d")
    f = theon.function(xs, w1(*xs), mode=PY)
    v1, v2 = w1_values(10 * BLOCK), w1_values(10 * BLOCK)
    r1 = f(*v1)
    keep = r1.copy()
    r2 = f(*v2)
    assert r2 is not r1
    np.testing.assert_array_equal(r1, keep)
    del r1
    r3 = f(*v1)  # may take the dropped array again
    np.testing.assert_array_equal(r3, keep)
    np.abs(r3, out=r3)  # sqrt's domain
    r4 = f(*v1[:3], r3)  # an output passed back as an input is not written over while read
    want = theon.function(xs, w1(*xs), mode=UNFUSED)(*v1[:3], np.abs(keep))
    np.testing.assert_array_equal(r4, want)


@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_a_view_of_an_output_keeps_it(monkeypatch, blocked, transposed):
    # a slice's base is the array under the output: holding the slice holds the output
    monkeypatch.setattr(F, "BLOCK", BLOCK)
    monkeypatch.setattr(F, "BLOCKED_MIN", 1 if blocked else 10**9)
    x, y = T.matrices("x", "y")
    f = theon.function([x, y], T.exp(x) * y + x, mode=PY)
    v1, v2 = (RNG.standard_normal((40, 30)) for _ in range(2))
    if transposed:
        v1, v2 = np.asfortranarray(v1), np.asfortranarray(v2)
    part = f(v1, v2)[::2, 1:]
    keep = part.copy()
    for _ in range(3):
        f(v2, v1)
    np.testing.assert_array_equal(part, keep)


def test_threads_share_a_function(small_blocks):
    xs = T.fvectors("a", "b", "c", "d")
    f = theon.function(xs, w1(*xs), mode=PY)
    data = [w1_values(20 * BLOCK + 3) for _ in range(4)]
    want = [f(*v).copy() for v in data]
    errors = []

    def work(k):
        try:
            for _ in range(30):
                for j in range(len(data)):
                    v = data[(j + k) % len(data)]
                    np.testing.assert_array_equal(f(*v), want[(j + k) % len(data)])
        except AssertionError as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_broadcast_errors_still_name_the_node(small_blocks):
    x, y = T.matrices("x", "y")
    f = theon.function([x, y], T.exp(x) * y + x, mode=PY)
    with pytest.raises(ValueError, match="created at"):
        f(np.ones((200, 3)), np.ones((200, 4)))


# -- the straight-line path of small calls (what a loop body makes every step) ---------------------

def small_path_of(f):
    """The generated function a fused node of ``f`` runs on small arrays (its thunk)."""
    node, = fused_nodes(f)
    run = node.op.impl(node)
    assert run.__name__ == "fused_small"
    return run


@pytest.mark.parametrize("shape", [(4,), (3, 5), (1, 5), (3, 1), (2, 3, 4), (0, 3)])
def test_small_calls_equal_the_unfused_graph(shape):
    a, b, c, d = (T.TensorType("float64", shape=tuple(1 if s == 1 else None for s in shape))(n)
                  for n in "abcd")
    vals = [RNG.normal(size=shape) for _ in range(3)] + [RNG.uniform(size=shape)]
    small_path_of(theon.function([a, b, c, d], w1(a, b, c, d), mode=PY))
    check([a, b, c, d], w1(a, b, c, d), vals)
    check([a, b, c, d], [w1(a, b, c, d), a * b, a], vals)  # several outputs, an input one


def test_small_calls_broadcast_rows_columns_and_mixed_dtypes():
    m, r, col = T.dmatrix("m"), T.frow("r"), T.icol("col")
    n = T.bvector("n")
    outs = [T.exp(m * r) + col, T.switch(T.gt(m, 0), r, T.cast(col, "float32") * 2),
            (m + n) * r]
    got = check([m, r, col, n], outs, [RNG.normal(size=(3, 4)),
                                       RNG.normal(size=(1, 4)).astype("float32"),
                                       np.arange(3, dtype="int32")[:, None],
                                       np.arange(4, dtype="int8")])
    assert [g.shape for g in got] == [(3, 4)] * 3


def test_small_calls_refuse_shapes_that_do_not_fit_naming_the_node():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    f = theon.function([a, b], T.exp(a) * b + 1, mode=PY)
    small_path_of(f)
    with pytest.raises(ValueError, match="test_fused_numpy.py"):
        f(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="test_fused_numpy.py"):
        f(np.ones((2, 3)), np.ones((1, 3)))  # b's rows do not broadcast: its type says so


def test_small_and_large_calls_of_one_function_agree(monkeypatch):
    monkeypatch.setattr(F, "SMALL", 64)
    a, b = T.dvector("a"), T.dvector("b")
    f = theon.function([a, b], T.tanh(a * b) - b, mode=PY)
    for n in (3, 63, 64, 65, 1000):
        x, y = RNG.normal(size=n), RNG.normal(size=n)
        np.testing.assert_array_equal(f(x, y), np.tanh(x * y) - y)


# -- sigmoid -----------------------------------------------------------------------------------

def _two_exp_sigmoid(x):
    """The numpy implementation sigmoid had before: exp(min(x, 0)) / (1 + exp(-|x|))."""
    x = np.asarray(x)
    return np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))


TAILS = [-np.inf, -1e30, -1000.0, -750.0, -745.0, -710.0, -104.0, -100.0, -88.8, -87.0, -30.0,
         -1.0, -1e-30, -1e-45, -5e-324, -0.0, 0.0, 5e-324, 1e-45, 1e-30, 1.0, 17.0, 30.0, 37.0,
         88.8, 100.0, 710.0, 1000.0, 1e30, np.inf, np.nan, -np.nan]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_sigmoid_one_exp_equals_the_two_exp_form(dtype):
    with np.errstate(over="ignore"):  # the cast of the tails to float16 and float32
        tails = np.array(TAILS).astype(dtype)
    dense = np.linspace(-120, 120, 100_001).astype(dtype)
    for x in (tails, dense, dense[::-7], dense.reshape(-1, 1)[:1000].T):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow, invalid or underflow warning
            got = S._sigmoid(x)
            want = _two_exp_sigmoid(x)
        np.testing.assert_array_equal(got, want, strict=True)
    got = S._sigmoid(tails)
    assert got[0] == 0 and got[-3] == 1 and np.isnan(got[-2:]).all()
    assert (got[~np.isnan(got)] >= 0).all() and (got[~np.isnan(got)] <= 1).all()


def test_sigmoid_keeps_the_tails_relative_precision():
    x = np.array([-700.0, -500.0, -100.0, -40.0])
    np.testing.assert_allclose(S._sigmoid(x), np.exp(x) / (1 + np.exp(x)), rtol=1e-15)
    x32 = np.array([-100.0, -87.0, -60.0, -20.0], dtype="float32")  # down to denormals
    want = (np.exp(x32.astype("float64")) / (1 + np.exp(x32.astype("float64"))))
    ulp = np.spacing(want.astype("float32"))
    assert (np.abs(S._sigmoid(x32) - want) <= ulp).all()


def test_sigmoid_out_argument():
    x = np.linspace(-50, 50, 1001)
    want = _two_exp_sigmoid(x)
    out = np.empty_like(x)
    assert S._sigmoid(x, out=out) is out
    np.testing.assert_array_equal(out, want)
    same = x.copy()
    np.testing.assert_array_equal(S._sigmoid(same, out=same), want)  # written over its input
    zero_d = S._sigmoid(np.float32(-3.0))
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == () and zero_d.dtype == "float32"
    assert zero_d == _two_exp_sigmoid(np.float32(-3.0))
