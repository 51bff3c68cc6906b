"""The CUDA dialect of the kernel renderer (backends/kernels.py), tested without a GPU.

Three checks of the same kernel text, as the team's GPU study recommends (REPORT.md there):

1. NVRTC (the ``nvidia-cuda-nvrtc`` wheel of the test extra, loaded with ctypes) compiles every
   kernel these tests create, for sm_80 and sm_90, with an empty log: every scalar row and cast
   on every dtype, rows and fused graphs in every variant the layouts below need, and the fused
   graphs that FAST_RUN makes of realistic expressions (W1, softmax, log-softmax, an MLP's
   training step, float64 with switch and integer division).
2. g++ runs the same text on the CPU (``cuda_cpu/theon_cuda_cpu.h`` turns each CUDA thread into
   a call), under several launch shapes, and every result matches numpy: every row and cast on
   special values, rows and fused graphs on every layout (contiguous, transposed, broadcast,
   strided and reversed slices, size 0, size 1, 0-d, 3-d), fused graphs also in 64-bit indices.
3. On a machine with cupy and a GPU, cupy.RawKernel launches them and they match numpy to the
   ulp tolerances of the GPU's math library.

The compiled programs are kept in pytest's cache under the hash of what goes in, so a rerun
that changes nothing compiles nothing.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import itertools
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.backends import dialect as D
from theon.backends.kernels import CudaLaunch, cuda_launch, render
from theon.compile.mode import Mode
from theon.ops import scalar as S
from theon.ops.elemwise import _numpy_kernel
from theon.ops.fused import Fused, ScalarGraph

pytestmark = pytest.mark.host_only

_HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load("theon_cuda_cpu_harness", _HERE / "cuda_cpu" / "harness.py")
# the sample values, domains and ulp comparison of the C dialect's test, extended to uint16
_dialect_test = _load("theon_test_dialect_samples", _HERE / "test_dialect.py")
SAMPLES = {**_dialect_test.SAMPLES, "uint16": [0, 1, 3, 7, 300, 32768, 65535]}
FEW = {d: [v for i, v in enumerate(vals) if i in (0, 1, 2, 4, len(vals) - 1, len(vals) - 2)]
       for d, vals in SAMPLES.items()}
ARCHS = ("sm_80", "sm_90")


# -- the kernels these tests create ------------------------------------------------------------

def row_graphs(dtype: str) -> list[ScalarGraph]:
    """Every row of the table and every cast, on operands of ``dtype``, where defined."""
    graphs = []
    ops = [op for _, op in sorted(S.TABLE.items()) if op.c is not None] + \
        [S.cast_op(d) for d in D.DTYPES]
    for op in ops:
        try:
            out = op.output_dtype(*(dtype,) * op.nin)
        except TypeError:
            continue
        if out in D.DTYPES:
            graphs.append(ScalarGraph.of_row(op, (dtype,) * op.nin))
    return graphs


LAYOUT_ROWS = ("add", "sub", "mul", "true_div", "int_div", "mod", "maximum", "exp", "tanh",
               "sigmoid", "switch")
LAYOUT_DTYPES = ("float32", "float64", "int32", "int8", "uint16", "bool")


def layout_graphs() -> list[ScalarGraph]:
    graphs = []
    for name, dtype in itertools.product(LAYOUT_ROWS, LAYOUT_DTYPES):
        op = S.TABLE[name]
        dts = ("bool", dtype, dtype) if name == "switch" else (dtype,) * op.nin
        try:
            op.output_dtype(*dts)
        except TypeError:
            continue
        graphs.append(ScalarGraph.of_row(op, dts))
    return graphs


_FUSED: list = []


def fused_graphs() -> list[tuple[str, ScalarGraph]]:
    """(expression, graph) of every Fused node FAST_RUN makes of some realistic functions."""
    if _FUSED:
        return _FUSED
    py = Mode(linker="py")  # the rewrites only: no C kernels compiled in the background
    found = []

    def take(label, inputs, outputs, updates=()):
        f = theon.function(inputs, outputs, updates=list(updates), mode=py)
        found.extend((label, node.op.graph) for node in f.maker.fgraph.toposort()
                     if isinstance(node.op, Fused))

    old = theon.config.floatX
    theon.config.floatX = "float32"
    try:
        a, b, c, d = (T.fvector(n) for n in "abcd")
        take("W1", [a, b, c, d], T.tanh(a * b + c) * T.nnet.sigmoid(a) - T.sqrt(d))
        x = T.fmatrix("x")
        shifted = x - x.max(axis=1, keepdims=True)
        e = T.exp(shifted)
        take("softmax", [x], e / e.sum(axis=1, keepdims=True))
        take("log-softmax", [x], shifted - T.log(e.sum(axis=1, keepdims=True)))
        y = T.ivector("y")
        rng = np.random.default_rng(0)
        params = [theon.shared(rng.normal(size=(4, 8)).astype("float32"), name="W1"),
                  theon.shared(np.zeros(8, "float32"), name="b1"),
                  theon.shared(rng.normal(size=(8, 3)).astype("float32"), name="W2"),
                  theon.shared(np.zeros(3, "float32"), name="b2")]
        W1, b1, W2, b2 = params
        hidden = T.nnet.relu(T.dot(x, W1) + b1)
        p = T.nnet.softmax(T.dot(hidden, W2) + b2)
        loss = T.nnet.categorical_crossentropy(p, y).mean()
        grads = T.grad(loss, params)
        take("MLP step", [x, y], [loss, hidden],
             [(w, w - np.float32(0.1) * g) for w, g in zip(params, grads)])
        m, n = T.dmatrix("m"), T.lvector("n")
        take("float64", [m, n], [T.switch(m > 0, m, 0.5 * m) ** 2
                                 + T.cast(n, "float64").dimshuffle(0, "x"),
                                 (m // 3) % 2, T.nnet.softplus(m) * T.erf(m)])
    finally:
        theon.config.floatX = old
    # one graph once (an MLP has several equal updates)
    seen = set()
    _FUSED.extend((label, g) for label, g in found if not (g in seen or seen.add(g)))
    return _FUSED


def _variant_name(prefix: str, k: int, ndim: int, index32: bool) -> str:
    return f"{prefix}{k}_{ndim}d_{32 if index32 else 64}"


def programs() -> list[tuple[str, list[str], list[str]]]:
    """(label, dtypes, kernel sources) of every kernel the tests create, grouped in programs:
    the row sweep one program per dtype, the layout tests and the fused graphs one each."""
    out = []
    for dtype in D.DTYPES:
        graphs = row_graphs(dtype)
        out.append((f"rows of {dtype}", _dtypes(graphs),
                    [render(g, f"row_{dtype}_{k}", D.CUDA, ndim=1, index32=True, prelude=False)
                     for k, g in enumerate(graphs)]))
    graphs = layout_graphs()
    out.append(("layout rows", _dtypes(graphs),
                [render(g, _variant_name("lay", k, ndim, True), D.CUDA, ndim=ndim,
                        index32=True, prelude=False)
                 for k, g in enumerate(graphs) for ndim in LAYOUT_NDIMS]))
    graphs = [g for _, g in fused_graphs()]
    out.append(("fused graphs", _dtypes(graphs),
                [render(g, _variant_name("fused", k, ndim, index32), D.CUDA, ndim=ndim,
                        index32=index32, prelude=False)
                 for k, g in enumerate(graphs) for ndim in LAYOUT_NDIMS
                 for index32 in (True, False)]))
    return out


def _dtypes(graphs) -> list[str]:
    return sorted({d for g in graphs for d in g.ref_dtypes})


# -- layouts -------------------------------------------------------------------------------------

def layouts(rng, dtypes, positive: bool = False, xp=np):
    """(label, input arrays of ``dtypes``) in every layout a kernel must take, as arrays of
    ``xp`` (numpy, or cupy: the views are then cupy's own). Integers are never 0 (divisors),
    unsigned ones never from a negative float."""
    def data(shape, k):
        x = rng.normal(size=shape) * 10 + 0.5 * k
        kind = np.dtype(dtypes[k]).kind
        if positive or kind == "u":
            x = np.abs(x) + 1
        x = x.astype(dtypes[k])
        if kind in "iu":
            x[x == 0] = 3
        return xp.asarray(x)

    n = len(dtypes)
    base = [data((6, 5), k) for k in range(n)]
    yield "contiguous", base
    yield "transposed", [x.T for x in base]
    yield "broadcast row", [x if k % 2 == 0 else x[:1] for k, x in enumerate(base)]
    yield "broadcast column", [x[:, :1] if k % 2 == 0 else x for k, x in enumerate(base)]
    yield "strided slice", [x[::2, ::-2] if k % 2 == 0 else x[1::2, ::2]
                            for k, x in enumerate(base)]
    yield "size 0", [x[:0] for x in base]
    yield "size 1", [x[:1, :1] for x in base]
    yield "0-d", [xp.asarray(x[0, 0]) for x in base]
    cube = [data((2, 3, 4), k) for k in range(n)]
    yield "3-d broadcast", [x if k % 2 == 0 else x[:1] for k, x in enumerate(cube)]
    yield "3-d transposed", [x.transpose(2, 1, 0) for x in cube]


# the number of dimensions the layouts above collapse to
LAYOUT_NDIMS = (1, 2, 3)

# launch shapes: (grid, block); the grid-stride loop must not depend on them
LAUNCHES = (((1,), (1,)), ((3,), (32,)), (None, (64,)))


def reference(graph: ScalarGraph, arrays) -> list[np.ndarray]:
    """The graph computed by numpy, row by row (as the numpy path computes a Fused node)."""
    values = list(arrays)
    n_in = len(graph.in_dtypes)
    with np.errstate(all="ignore"):
        for k, (op, refs) in enumerate(graph.steps):
            ins = tuple(graph.ref_dtypes[r] for r in refs)
            fn = _numpy_kernel(op, ins, graph.ref_dtypes[n_in + k])
            values.append(np.asarray(fn(*[values[r] for r in refs])))
    shape = np.broadcast_shapes(*[np.shape(a) for a in arrays])
    return [np.broadcast_to(values[r], shape).astype(graph.ref_dtypes[r])
            for r in graph.outputs]


def close(got: np.ndarray, want: np.ndarray, ulps: int) -> np.ndarray:
    """Where ``got`` is ``want``: exactly for integers and bools, NaN for NaN, else within
    ``ulps`` units in the last place of the larger of |want| and the array's scale (a fused
    graph's rounding errors add up: relative to one value, a difference can be large)."""
    if got.dtype.kind != "f":
        return got == want
    with np.errstate(all="ignore"):
        finite = want[np.isfinite(want)]
        scale = np.abs(finite).max() if finite.size else 0
        tol = ulps * np.spacing(np.maximum(np.abs(want), scale).astype(got.dtype))
        return (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= tol)


def run(kernel_for, graph: ScalarGraph, arrays, *, index32: bool | None = None,
        grid=None, block=(64,)) -> list[np.ndarray]:
    """``graph``'s outputs on ``arrays`` from ``kernel_for(ndim, index32)``: a function of a
    CpuModule (or cupy.RawModule) rendered for that many dimensions and index width; ``ndim``
    is what ``cuda_launch`` collapses the arrays to, ``index32`` its choice unless given."""
    shape = np.broadcast_shapes(*[np.shape(a) for a in arrays])
    outs = [np.empty(shape, dtype=d) for d in graph.out_dtypes]
    launch = cuda_launch(list(arrays) + outs, shape)
    if index32 is None:
        index32 = launch.index32
    if launch.size:
        kernel_for(launch.ndim, index32)(grid or (launch.blocks(block[0]),), block,
                                         [*arrays, *outs, *_scalars(launch, index32)])
    return outs


def _scalars(launch: CudaLaunch, index32: bool | None):
    if index32 is None or index32 == launch.index32:
        return launch.scalars
    return CudaLaunch(launch.ndim, index32, launch.size, launch.shape, launch.strides).scalars


# -- 1. NVRTC ------------------------------------------------------------------------------------

def _nvrtc():
    found = harness.nvrtc()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def _cache_dir(request, tmp_path_factory, name: str) -> Path:
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    return Path(cache.mkdir(name)) if cache else tmp_path_factory.mktemp(name)


def _compile_all(nvrtc, jobs, cache: Path):
    """NVRTC on (label, source, options) jobs, two at a time (ctypes releases the GIL while
    NVRTC works); a job that compiled cleanly before leaves a mark under the hash of its
    source, options and NVRTC's version, and is not compiled again."""
    def one(job):
        label, source, options = job
        key = hashlib.sha256("\0".join([source, *options, str(nvrtc.version)]).encode())
        mark = cache / f"ok_{key.hexdigest()[:32]}"
        if mark.exists():
            return label, options, True, ""
        ok, log, _ = nvrtc.compile(source, options)
        if ok and not log.strip():
            mark.touch()
        return label, options, ok, log

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, jobs))


def test_every_kernel_compiles_with_nvrtc_for_sm80_and_sm90_without_warnings(
        request, tmp_path_factory):
    nvrtc = _nvrtc()
    jobs = []
    for label, dtypes, kernels in programs():
        source = D.CUDA.prelude(dtypes) + "\n".join(kernels)
        jobs += [(label, source, (f"-arch={arch}",)) for arch in ARCHS]
    # the fast-math dialect: the fused graphs through the hardware intrinsics
    graphs = [g for _, g in fused_graphs()]
    fast = D.CUDA_FAST.prelude(_dtypes(graphs)) + "\n".join(
        render(g, f"fast{k}", D.CUDA_FAST, ndim=2, index32=True, prelude=False)
        for k, g in enumerate(graphs))
    jobs += [("fused graphs, CUDA_FAST", fast, (f"-arch={arch}",)) for arch in ARCHS]
    results = _compile_all(nvrtc, jobs, _cache_dir(request, tmp_path_factory, "theon_nvrtc"))
    bad = [f"{label} {options}: {'compiled' if ok else 'FAILED'} with log:\n{log[:3000]}"
           for label, options, ok, log in results if not ok or log.strip()]
    assert not bad, "\n\n".join(bad)
    assert len(results) == 2 * (len(D.DTYPES) + 3)


def test_the_fused_graphs_come_from_fast_run():
    labels = {label for label, _ in fused_graphs()}
    # (a device's fusion has the softmax's sum compute exp(x - max) and output it too:
    # fusion.keep_prologues leaves a lone division, no Fused node)
    assert labels == {"W1", "log-softmax", "MLP step", "float64"} | (
        set() if theon.config.device != "cpu" else {"softmax"})
    w1 = [g for label, g in fused_graphs() if label == "W1"]
    assert len(w1) == 1 and len(w1[0].steps) == 7  # the whole expression in one kernel


def test_the_pinned_nvrtc_writes_ptx_that_the_toolkit_ptxas_accepts(tmp_path):
    """The nvidia-cuda-nvrtc pin (the test extra) follows the toolkit's ptxas: a newer NVRTC
    writes a PTX version that ptxas 13.0 (and a driver of its age) refuses."""
    nvrtc = _nvrtc()
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        pytest.skip("no ptxas on PATH (the CUDA toolkit is not installed)")
    label, graph = fused_graphs()[0]
    source = render(graph, "w1", D.CUDA, ndim=1, index32=True)
    for arch in ARCHS:
        ok, log, ptx = nvrtc.compile(source, (f"-arch=compute_{arch[3:]}",))
        assert ok and not log.strip(), log
        path = tmp_path / f"{arch}.ptx"
        path.write_bytes(ptx.rstrip(b"\0"))
        done = subprocess.run([ptxas, f"-arch={arch}", "-v", str(path), "-o",
                               str(tmp_path / f"{arch}.cubin")],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, (f"NVRTC {nvrtc.version} -> ptxas {arch}:\n"
                                      f"{done.stdout}{done.stderr}")
        assert "0 bytes spill stores, 0 bytes spill loads" in done.stdout + done.stderr


def test_fused_kernels_use_no_stack_and_32_bit_indices_fewer_registers():
    """ptxas's report through NVRTC: no spills, no stack frame in any variant; the 32-bit
    variant needs fewer registers than the 64-bit one (the reason it exists)."""
    nvrtc = _nvrtc()
    _, w1 = fused_graphs()[0]
    regs = {}
    for index32 in (True, False):
        source = render(w1, "w1", D.CUDA, ndim=2, index32=index32)
        ok, log, _ = nvrtc.compile(source, ("-arch=sm_90", "-Xptxas=-v"))
        assert ok, log
        assert "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" in log, log
        regs[index32] = int(log.split("Used ")[1].split(" registers")[0])
    assert regs[True] < regs[False], regs


# -- 2. the same text on the CPU -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cpu(request, tmp_path_factory):
    """get(name): a kernel of the CPU build of every program, split into two translation
    units built side by side."""
    if harness.CXX is None:
        pytest.skip("no C++ compiler (g++) to run CUDA text on the CPU")
    if not theon.config.cxx:
        pytest.skip("config.cxx is empty: this run stands for a machine without a compiler")
    groups = programs()
    halves = [groups[0::2], groups[1::2]]
    sources = [D.CUDA.prelude() + "\n".join(k for _, _, ks in half for k in ks)
               for half in halves]
    cache = _cache_dir(request, tmp_path_factory, "theon_cuda_cpu")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        libs = list(pool.map(lambda s: harness.build(s, cache), sources))
    modules = [harness.CpuModule(lib) for lib in libs]

    def get(name: str):
        for module in modules:
            try:
                return module.get_function(name)
            except AttributeError:
                continue
        raise KeyError(name)
    return SimpleNamespace(get=get)


def _row_inputs(graph: ScalarGraph) -> list[np.ndarray]:
    """The sample values of each operand's dtype, every combination, as reversed strided
    views (so that the loads take a negative stride)."""
    op = graph.steps[0][0]
    table = FEW if op.nin > 2 else SAMPLES
    dts = graph.in_dtypes
    cols = list(zip(*itertools.product(*[range(len(table[d])) for d in dts])))
    args = [np.array(table[d], dtype=d)[np.array(c, dtype=np.intp)] for d, c in zip(dts, cols)]
    keep = _dialect_test._valid(op, dts, graph.out_dtypes[0], args)
    return [np.repeat(a[keep][::-1], 2)[::-2] for a in args]


def test_every_row_and_cast_runs_on_the_cpu_as_numpy_computes_it(cpu):
    failures = []
    checked = 0
    for dtype in D.DTYPES:
        for k, graph in enumerate(row_graphs(dtype)):
            args = _row_inputs(graph)
            got, = run(lambda ndim, index32, name=f"row_{dtype}_{k}":
                       _only(cpu.get(name), ndim == 1 and index32), graph, args, grid=(2,))
            want, = reference(graph, args)
            bad = np.flatnonzero(~close(got, want, _dialect_test.ULPS))
            checked += 1
            if len(bad):
                i = bad[0]
                failures.append(f"{graph.expression()} on {graph.in_dtypes}: at "
                                f"{tuple(a[i] for a in args)} CUDA {got[i]!r}, numpy "
                                f"{want[i]!r} ({len(bad)} of {got.size} differ)")
    assert not failures, f"{len(failures)} of {checked} differ:\n" + "\n".join(failures[:30])
    assert checked > 700


def _only(kernel, rendered_for_this: bool):
    assert rendered_for_this, "the row sweep renders its kernels for 1-d, 32-bit launches"
    return kernel


def _layout_labels_and_ndims():
    rng = np.random.default_rng(0)
    out = []
    for label, arrays in layouts(rng, ("float64", "float64")):
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        out.append((label, cuda_launch(arrays + [np.empty(shape)], shape)))
    return out


def test_the_layouts_collapse_to_the_rendered_ndims():
    ndims = {label: launch.ndim for label, launch in _layout_labels_and_ndims()}
    assert set(ndims.values()) == set(LAYOUT_NDIMS), ndims
    assert ndims["contiguous"] == 1 and ndims["3-d transposed"] == 3


@pytest.mark.parametrize("k, graph", list(enumerate(layout_graphs())),
                         ids=lambda v: v.expression() + str(v.in_dtypes)
                         if isinstance(v, ScalarGraph) else str(v))
def test_rows_match_numpy_on_every_layout_and_launch_shape(cpu, k, graph):
    rng = np.random.default_rng(k)
    for label, arrays in layouts(rng, graph.in_dtypes):
        want = reference(graph, arrays)
        for grid, block in LAUNCHES:
            got = run(lambda ndim, index32: cpu.get(_variant_name("lay", k, ndim, index32)),
                      graph, arrays, grid=grid, block=block)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype, label
                ok = close(g, w, 4)
                assert ok.all(), (f"{label}, grid {grid} block {block}: CUDA {g[~ok][:5]}, "
                                  f"numpy {w[~ok][:5]}")


def test_fused_graphs_match_numpy_on_every_layout_in_32_and_64_bit_indices(cpu):
    rng = np.random.default_rng(2)
    for k, (expression, graph) in enumerate(fused_graphs()):
        for label, arrays in layouts(rng, graph.in_dtypes, positive=True):
            want = reference(graph, arrays)
            for index32, (grid, block) in itertools.product((True, False), LAUNCHES[1:]):
                got = run(lambda ndim, i32, k=k: cpu.get(_variant_name("fused", k, ndim, i32)),
                          graph, arrays, index32=index32, grid=grid, block=block)
                for g, w in zip(got, want):
                    ok = close(g, w, 8)
                    assert ok.all(), (f"{expression} {graph.expression()}, {label}, "
                                      f"index32={index32}: CUDA {g[~ok][:5]}, numpy "
                                      f"{w[~ok][:5]}")


def test_special_values_propagate_through_a_fused_kernel(cpu):
    """inf, NaN and -0.0 through W1 and through maximum, as numpy gives them."""
    k = next(k for k, g in enumerate(layout_graphs())
             if g.steps[0][0].name == "maximum" and g.in_dtypes[0] == "float32")
    graph = layout_graphs()[k]
    a = np.array([np.nan, 1.0, -np.inf, 0.0, -0.0, np.inf], dtype=np.float32)
    b = np.array([1.0, np.nan, np.inf, -0.0, 0.0, np.nan], dtype=np.float32)
    got, = run(lambda ndim, index32: cpu.get(_variant_name("lay", k, ndim, index32)), graph,
               [a, b])
    np.testing.assert_array_equal(got, np.maximum(a, b))
    assert np.signbit(got[3]) == np.signbit(np.maximum(a[3], b[3]))
    w1, = [(k, g) for k, (label, g) in enumerate(fused_graphs()) if label == "W1"]
    k, graph = w1
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 30.0, -30.0, 1e-30], dtype=np.float32)
    args = [x, x[::-1].copy(), np.ones_like(x), np.abs(x)]
    got, = run(lambda ndim, index32: cpu.get(_variant_name("fused", k, ndim, index32)), graph,
               args)
    want, = reference(graph, args)
    assert close(got, want, 4).all(), (got, want)


# -- the host side ---------------------------------------------------------------------------------

def test_cuda_launch_picks_32_bit_indices_only_where_every_offset_fits():
    def array(shape, strides):
        return SimpleNamespace(shape=shape, strides=strides, ndim=len(shape))

    small = cuda_launch([array((4, 5), (40, 8))] * 2)
    assert (small.ndim, small.index32, small.size, small.shape) == (1, True, 20, (20,))
    assert [type(s) for s in small.scalars] == [np.uint32, np.int32, np.int32]
    # 2**31 elements: the count itself does not fit
    big = cuda_launch([array((2 ** 16, 2 ** 15), (2 ** 15, 1))] * 2)
    assert not big.index32 and big.size == 2 ** 31
    assert [type(s) for s in big.scalars] == [np.int64] * 3
    # few elements, far apart: the byte offsets do not fit
    far = cuda_launch([array((3, 2), (2 ** 30, 1)), array((3, 2), (2, 1))])
    assert far.ndim == 2 and not far.index32
    assert far.scalars == (6, 2, 2 ** 30, 1, 2, 1)
    # a reversed view reaches as far back as forward
    back = cuda_launch([array((3,), (-(2 ** 30),)), array((3,), (1,))])
    assert not back.index32
    # broadcast inputs (stride 0) reach no farther than their first element
    bcast = cuda_launch([array((1, 2 ** 20), (0, 1)), array((2 ** 10, 2 ** 20), (2 ** 20, 1))])
    assert bcast.index32 and bcast.strides[0] == (0, 1)
    # nothing to do: no launch, whatever the strides
    empty = cuda_launch([array((0, 3), (2 ** 40, 8))])
    assert empty.size == 0 and empty.index32
    # size 1 and 0-d: one dimension of length 1
    one = cuda_launch([array((), ()), array((1, 1), (8, 8))], (1, 1))
    assert (one.ndim, one.size, one.shape, one.strides) == (1, 1, (1,), ((0,), (0,)))
    assert one.blocks() == 1 and big.blocks(256) == 65536 and small.blocks(8) == 3


def test_cuda_kernels_are_rendered_for_one_ndim_and_index_width():
    graph = ScalarGraph.of_row(S.TABLE["add"], ("float32", "float32"))
    text = render(graph, "add2", D.CUDA, ndim=2, index32=True)
    assert 'extern "C" __global__ void add2(' in text
    assert "const unsigned int n, const unsigned int n1" in text and "long long" not in \
        text.split("add2(")[1]
    wide = render(graph, "add3", D.CUDA, ndim=3, prelude=False)
    assert "const long long s2_2" in wide and "theon_" not in wide
    with pytest.raises(ValueError, match="number of dimensions"):
        render(graph, "k", D.CUDA)
    with pytest.raises(ValueError, match="C loop only"):
        render(graph, "k", D.CUDA, ndim=1, hoisted=(0,))
    with pytest.raises(ValueError, match="at run time"):
        render(graph, "k", D.C, ndim=1)


# -- 3. a GPU --------------------------------------------------------------------------------------

def _cupy():
    try:
        import cupy
    except ImportError as e:
        pytest.skip(f"cupy is not installed ({e})")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as e:  # no driver: cupy's CUDARuntimeError, or a missing library
        pytest.skip(f"no CUDA device ({type(e).__name__}: {e})")
    return cupy


def test_kernels_run_on_a_gpu_through_cupy():
    """The same kernels launched by cupy.RawKernel: GPU math differs from numpy by a few ulp
    (expf, tanhf: 2 ulp in CUDA's tables), integer rows are exact."""
    cupy = _cupy()
    graphs = [(f"lay{k}", g) for k, g in enumerate(layout_graphs())
              if g.in_dtypes[-1] in ("float32", "int32", "float64")]
    graphs += [(f"fused{k}", g) for k, (_, g) in enumerate(fused_graphs())]
    kernels = [render(g, _variant_name(prefix, 0, ndim, index32), D.CUDA, ndim=ndim,
                      index32=index32, prelude=False)
               for prefix, g in graphs for ndim in LAYOUT_NDIMS for index32 in (True, False)]
    module = cupy.RawModule(code=D.CUDA.prelude() + "\n".join(kernels))
    rng = np.random.default_rng(5)
    failures = []
    for prefix, graph in graphs:
        for label, device in layouts(rng, graph.in_dtypes, positive=prefix.startswith("f"),
                                     xp=cupy):
            host = [cupy.asnumpy(a) for a in device]
            shape = np.broadcast_shapes(*[a.shape for a in host])
            want = reference(graph, host)
            for index32 in (True, False):
                outs = [cupy.empty(shape, dtype=d) for d in graph.out_dtypes]
                launch = cuda_launch(device + outs, shape)
                if launch.size:
                    kernel = module.get_function(_variant_name(prefix, 0, launch.ndim, index32))
                    kernel((launch.blocks(128),), (128,),
                           (*device, *outs, *_scalars(launch, index32)))
                for g, w in zip(outs, want):
                    ok = close(cupy.asnumpy(g), w, 16)
                    if not ok.all():
                        failures.append(f"{prefix} {graph.expression()} {label} "
                                        f"index32={index32}: GPU {cupy.asnumpy(g)[~ok][:4]}, "
                                        f"numpy {w[~ok][:4]}")
    assert not failures, "\n".join(failures[:20])
