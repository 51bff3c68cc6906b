"""The kernel renderer (backends/kernels.py): C loops over strided arrays, compiled with the
system compiler through backends/ccompiler.py, against numpy on every layout."""
from __future__ import annotations

import numpy as np
import pytest
from theon.backends import ccompiler
from theon.backends.kernels import (
    ScalarGraph,
    broadcast_strides,
    c_signature,
    collapse,
    launch,
    render,
)
from theon.ops.scalar import TABLE

pytestmark = [pytest.mark.host_only,
              pytest.mark.skipif(ccompiler.compiler() is None,
                                 reason="no C compiler found (config.cxx)")]


def kernel(graph: ScalarGraph, name: str = "k"):
    lib = ccompiler.compile_library(render(graph, name), name=name)
    restype, argtypes = c_signature()
    return lib.function(name, restype, argtypes)


def layouts(rng, dtype):
    """(label, arrays a, b) pairs in every layout the loop must take."""
    base = (rng.normal(size=(6, 5)) * 10).astype(dtype)
    other = (rng.normal(size=(6, 5)) * 10 + 0.5).astype(dtype)
    yield "contiguous", base, other
    yield "transposed", base.T, other.T
    yield "broadcast row", base, other[:1]
    yield "broadcast column", base[:, :1], other
    yield "strided slice", base[::2, ::-2], other[1::2, ::2]
    yield "size 0", base[:0], other[:0]
    yield "size 1", base[:1, :1], other[:1, :1]
    yield "0-d", np.asarray(base[0, 0]), np.asarray(other[0, 0])
    yield "3-d", (rng.normal(size=(2, 3, 4)) * 10).astype(dtype), \
        (rng.normal(size=(1, 3, 4)) * 10 + 0.5).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "int8", "uint16"])
@pytest.mark.parametrize("row", ["add", "mul", "sub", "maximum", "int_div", "mod"])
def test_binary_rows_match_numpy_on_every_layout(row, dtype):
    rng = np.random.default_rng(0)
    op = TABLE[row]
    graph = ScalarGraph.of_row(op, (dtype, dtype))
    fn = kernel(graph, f"k_{row}_{dtype}")
    for label, a, b in layouts(rng, dtype):
        if row in ("int_div", "mod") and np.dtype(dtype).kind in "iu":
            b = np.where(b == 0, 3, b).astype(dtype)
        got, = launch(fn, graph, a, b)
        with np.errstate(all="ignore"):
            want = op.np_fn(a, b)
        assert got.shape == np.shape(want), label
        assert got.dtype == np.dtype(graph.out_dtypes[0]), label
        np.testing.assert_array_equal(got, np.asarray(want).astype(got.dtype), err_msg=label)


def test_a_fused_graph_with_two_outputs():
    """exp(x * y) - x and x * y, from one loop: intermediate steps are read twice."""
    g = ScalarGraph(("float64", "float64"),
                    ((TABLE["mul"], (0, 1)), (TABLE["exp"], (2,)), (TABLE["sub"], (3, 0))),
                    (4, 2))
    fn = kernel(g, "fused2")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 7)), rng.normal(size=(1, 7))
    d, p = launch(fn, g, x, y)
    np.testing.assert_allclose(d, np.exp(x * y) - x, rtol=1e-15)
    np.testing.assert_array_equal(p, x * y)


def test_float32_math_stays_float32():
    g = ScalarGraph.of_row(TABLE["exp"], ("float32",))
    src = render(g, "e32")
    assert "expf(" in src and " exp(" not in src.split("void e32")[1]
    x = np.linspace(-5, 5, 101, dtype=np.float32)
    got, = launch(kernel(g, "e32"), g, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.exp(x), rtol=2e-7)


def test_special_values_propagate_as_in_numpy():
    g = ScalarGraph.of_row(TABLE["maximum"], ("float64", "float64"))
    a = np.array([np.nan, 1.0, -np.inf, 0.0, -0.0])
    b = np.array([1.0, np.nan, np.inf, -0.0, 0.0])
    got, = launch(kernel(g, "mx"), g, a, b)
    np.testing.assert_array_equal(got, np.maximum(a, b))


def test_collapse_merges_what_every_array_walks_whole():
    a = np.zeros((4, 5, 6))
    shape, strides = collapse(a.shape, [a.strides, a.strides])
    assert shape == (120,) and strides == [(8,), (8,)]
    t = a.transpose(1, 0, 2)  # the last axis stays contiguous, the first two do not merge
    shape, strides = collapse(t.shape, [t.strides])
    assert shape == (5, 4, 6)
    row = np.zeros((1, 6))
    assert collapse((4, 6), [broadcast_strides(row, (4, 6))]) == ((4, 6), [(0, 8)])
    assert collapse((), [()]) == ((1,), [(0,)])


def test_a_graph_reading_a_later_step_is_refused():
    with pytest.raises(ValueError, match="only the inputs and earlier steps"):
        ScalarGraph(("float64",), ((TABLE["exp"], (1,)),), (1,))
