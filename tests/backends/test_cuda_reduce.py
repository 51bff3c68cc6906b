"""The CUDA dialect of the reduction kernels (backends/kernels.py ``render_reduce``), tested
without a GPU the way test_cuda_kernels.py tests the elementwise ones (issue 8, part 3):

1. NVRTC compiles every reduction kernel these tests create, for sm_80 and sm_90, with an
   empty log: every kind on every dtype of the sweep, every collapsed shape the layouts
   below give in 32- and 64-bit indices, and the reductions FAST_RUN makes of softmax,
   log-softmax and an MLP's training step (FusedReduce nodes, plain Reduce nodes, Softmax's
   passes), also in the fast-math dialect.
2. g++ runs the same text on the CPU through ``cuda_cpu/`` under several launch shapes
   (blocks of 32, 64, 256 threads; one block and many; groups of one thread, of a warp, of
   several warps; outputs split in parts, merged by a second pass) and every result matches
   numpy: every kind x dtype x axes (none, first, last, middle, several, all) x layout
   (contiguous, transposed, strided and reversed, a broadcast input, size 0, size 1); NaN and
   infinities through max and min; empty reductions; a long float32 sum against the exact
   sum; the FAST_RUN reductions on their own layouts.
3. On a machine with cupy and a GPU, cupy.RawKernel launches them and they match numpy.

Kernels are rendered for 3 kept and 3 reduced dimensions and every launch is padded to that
(``CudaReduceLaunch.padded``): one kernel per kind and dtype instead of one per collapsed
shape keeps the builds short; a few kernels are rendered for every collapsed shape the
layouts give, and run unpadded. Builds are cached as test_cuda_kernels.py caches them.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import importlib.util
import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.backends import dialect as D
from theon.backends.kernels import (
    CudaReduceLaunch,
    cuda_reduce_launch,
    reduce_acc_dtype,
    render_reduce,
)
from theon.compile.mode import Mode
from theon.ops import scalar as S
from theon.ops.fused import ScalarGraph
from theon.ops.fused_reduce import FusedReduce
from theon.ops.reduce import Reduce, _acc_dtype

pytestmark = pytest.mark.host_only

_HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# NVRTC, the CPU harness, the compile cache and the float comparison of the elementwise tests
_elementwise = _load("theon_test_cuda_kernels_for_reduce", _HERE / "test_cuda_kernels.py")
harness = _elementwise.harness
ARCHS = _elementwise.ARCHS

KINDS = ("sum", "prod", "max", "min", "all", "any")
DTYPES = ("float32", "float64", "int32", "int8", "bool")
AXES = {"none": (), "first": (0,), "last": (2,), "middle": (1,), "several": (0, 2),
        "all": (0, 1, 2)}
# the dimensions the sweep's kernels are rendered for: every 3-d launch pads to them
GENERAL = (3, 3)
# the collapsed shapes (kept, reduced) the 3-d layouts give, each rendered for the cases of
# EXACT (kind, dtype, 32-bit indices) and run unpadded
EXACT_SHAPES = ((0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1), (3, 1))
EXACT = (("sum", "float32", True), ("max", "float64", False))

# launch shapes: plan() arguments; any of them computes the same outputs
LAUNCHES = ({"block": 32}, {"block": 64, "grid": 1}, {"block": 256},
            {"block": 32, "group": 1, "grid": 1})
# groups of several warps, outputs split in parts: for launches with few outputs (the
# harness switches between the threads of a block at every shuffle and barrier)
SPLIT = ({"block": 256, "group": 256, "parts": 3}, {"block": 64, "group": 64, "parts": 2,
                                                    "grid": 1},
         {"block": 128, "group": 64, "parts": 5, "grid": 2})
FEW_OUTPUTS = 6


@dataclasses.dataclass(frozen=True)
class Case:
    """A reduction kernel: ``kind`` of ``graph``'s output to ``dtype``, rendered as
    ``{name}_{nk}_{nr}_{32|64}`` for the (nk, nr, index32) in ``variants``."""

    name: str
    graph: ScalarGraph
    kind: str
    dtype: str
    initial: float | None = None
    variants: tuple[tuple[int, int, bool], ...] = ((*GENERAL, True),)
    # where it comes from: the inputs' broadcast patterns and the axes (FAST_RUN cases)
    patterns: tuple[tuple[bool, ...], ...] = ()
    axis: tuple[int, ...] = ()
    label: str = ""

    @property
    def acc_dtype(self) -> str:
        return reduce_acc_dtype(self.kind, self.graph.out_dtypes[0], self.dtype)


def _kernel_name(name: str, nk: int, nr: int, index32: bool) -> str:
    return f"{name}_{nk}_{nr}_{32 if index32 else 64}"


def _identity(dtype: str) -> ScalarGraph:
    return ScalarGraph.of_row(S.identity, (dtype,))


def sweep_cases() -> list[Case]:
    """Every kind on every dtype of an identity prologue (a plain Reduce)."""
    return [Case(f"sw_{dtype}_{kind}", _identity(dtype), kind, _acc_dtype(kind, dtype))
            for dtype, kind in itertools.product(DTYPES, KINDS)]


def exact_cases() -> list[Case]:
    """Kernels rendered for every collapsed shape the layouts give, in one index width."""
    return [Case(f"ex_{dtype}_{kind}", _identity(dtype), kind, _acc_dtype(kind, dtype),
                 variants=tuple((nk, nr, index32) for nk, nr in EXACT_SHAPES))
            for kind, dtype, index32 in EXACT]


_FAST_RUN: list = []


def fast_run_cases() -> list[Case]:
    """The reductions of every node FAST_RUN makes of softmax, log-softmax (float32 and
    float64) and an MLP's training step: FusedReduce nodes, plain Reduce nodes, and the
    two reduction passes of Softmax and LogSoftmax nodes (the C backend's kernels), each
    (graph, kind, dtype, initial) once, but for those of the sweep (a plain max or sum).
    Each is rendered for the most dimensions its arrays collapse to, in both index
    widths."""
    if _FAST_RUN:
        return _FAST_RUN
    py = Mode(linker="py")  # the rewrites only: no C kernels compiled in the background
    found = []

    def take(label, inputs, outputs, updates=()):
        f = theon.function(inputs, outputs, updates=list(updates), mode=py)
        for node in f.maker.fgraph.toposort():
            op = node.op
            patterns = tuple(i.type.broadcastable for i in node.inputs)
            if isinstance(op, FusedReduce):
                # the prologue's inputs (a device's fusion adds an epilogue's after them)
                patterns = patterns[:op.n_prologue]
                found.append((label, op.graph, op.kind, op.dtype, op.initial, patterns,
                              op.axis))
            elif type(op) is Reduce and op.axis:
                found.append((label, _identity(node.inputs[0].dtype), op.kind, op.dtype,
                              op.initial, patterns, op.axis))
            elif type(op).__name__ in ("Softmax", "LogSoftmax"):
                dtype = node.inputs[0].dtype
                axes = op.axis if isinstance(op.axis, tuple) else (op.axis,)
                reduced = tuple(True if d in axes else b for d, b in enumerate(patterns[0]))
                denominator, _ = op.passes(dtype)
                found.append((label, _identity(dtype), "max", dtype, None, patterns, axes))
                found.append((label, denominator, "sum", dtype, None,
                              (patterns[0], reduced), axes))

    old = theon.config.floatX
    try:
        for floatX in ("float32", "float64"):
            theon.config.floatX = floatX
            x = T.matrix("x")
            shifted = x - x.max(axis=1, keepdims=True)
            e = T.exp(shifted)
            take("softmax", [x], [e / e.sum(axis=1, keepdims=True), T.nnet.softmax(x)])
            take("log-softmax", [x], [shifted - T.log(e.sum(axis=1, keepdims=True)),
                                      T.nnet.log_softmax(x)])
        theon.config.floatX = "float32"
        x, y = T.fmatrix("x"), T.ivector("y")
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
    finally:
        theon.config.floatX = old
    seen = {(c.graph, c.kind, c.dtype, c.initial) for c in sweep_cases()}
    for label, graph, kind, dtype, initial, patterns, axis in found:
        if (graph, kind, dtype, initial) in seen:
            continue
        seen.add((graph, kind, dtype, initial))
        shape = (len(patterns[0]) - len(axis), max(len(axis), 1))
        _FAST_RUN.append(Case(f"fr{len(_FAST_RUN)}", graph, kind, dtype, initial,
                              variants=((*shape, True), (*shape, False)), patterns=patterns,
                              axis=axis, label=label))
    return _FAST_RUN


def _math(case: Case) -> bool:
    """Whether the prologue calls a math function (what the fast-math dialect changes)."""
    return any(op.name in ("exp", "log") for op, _ in case.graph.steps)


def programs(dialect=D.CUDA) -> list[tuple[str, list[str], list[str]]]:
    """(label, dtypes, kernel sources) of every reduction kernel the tests create, in a few
    programs: the sweep one per dtype, the unpadded shapes one, the FAST_RUN reductions
    one (only these in another dialect)."""
    groups = [(f"sweep {dtype}", [c for c in sweep_cases() if c.graph.in_dtypes[0] == dtype])
              for dtype in DTYPES]
    groups += [("every collapsed shape", exact_cases()), ("FAST_RUN", fast_run_cases())]
    if dialect is not D.CUDA:
        groups = [(f"FAST_RUN, {dialect.name}",
                   [dataclasses.replace(c, variants=c.variants[:1]) for c in fast_run_cases()
                    if _math(c)])]
    out = []
    for label, cases in groups:
        dtypes = sorted({d for c in cases for d in (*c.graph.ref_dtypes, c.dtype, c.acc_dtype)})
        kernels = [render_reduce(c.graph, c.kind, c.dtype, _kernel_name(c.name, nk, nr, i32),
                                 dialect, initial=c.initial, nk=nk, nr=nr, index32=i32,
                                 prelude=False)
                   for c in cases for nk, nr, i32 in c.variants]
        out.append((label, dtypes, kernels))
    return out


# -- running a reduction -----------------------------------------------------------------------

def reduce_on(get, case: Case, arrays, axis, *, pad=GENERAL, index32: bool | None = None,
              launch=LAUNCHES[0], xp=np, check_launch=None):
    """``case``'s reduction of ``arrays`` over ``axis`` by its kernels (``get(name)``: a
    function of a CpuModule or a cupy.RawModule): the launch ``cuda_reduce_launch`` gives,
    in 64-bit indices if ``index32`` is False, padded to ``pad`` dimensions (None: the
    kernel of the launch's own; "case": the case's first variant), planned with
    ``launch``'s arguments."""
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    kept = tuple(n for d, n in enumerate(shape) if d not in axis)
    out = xp.empty(kept, dtype=case.dtype)
    lay = cuda_reduce_launch([*arrays, out], axis, case.kind, initial=case.initial)
    if check_launch:
        check_launch(lay)
    if not lay.size:
        return out
    if index32 is not None:
        assert lay.index32 or not index32
        lay = dataclasses.replace(lay, index32=index32)
    if pad == "case":
        pad = case.variants[0][:2]
    if pad:
        lay = lay.padded(*pad)
    plan = lay.plan(**launch)
    partial = xp.empty(max(plan.partials, 1), dtype=case.acc_dtype)
    for step in plan.passes:
        kernel = get(_kernel_name(case.name, lay.nk, lay.nr, lay.index32) + step.suffix)
        pointers = [*arrays, out, partial] if step.suffix == "" else [partial, out]
        kernel((step.grid,), (step.block,), (*pointers, *step.scalars))
    return out


def numpy_reduce(kind: str, values: np.ndarray, axis, dtype: str, initial=None) -> np.ndarray:
    fn = getattr(np, kind)
    with np.errstate(all="ignore"):
        if kind in ("sum", "prod"):
            return np.asarray(fn(values, axis=axis, dtype=dtype))
        if initial is not None:
            return np.asarray(fn(values, axis=axis, initial=initial))
        return np.asarray(fn(values, axis=axis))


def check(got, want, kind: str, values: np.ndarray, axis, where: str, ulps: int = 0) -> None:
    """Exact, except float sums (within 16 eps of the sum of the absolute values: numpy sums
    pairwise in the input's dtype, the kernels in float64 in another order), float products
    (16 eps times sqrt(terms): rounding errors like a random walk) and, with ``ulps``, float
    values of a prologue numpy computes with other math functions."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{where}: {got.shape} {got.dtype}, numpy {want.shape} {want.dtype}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=where)
        return
    eps = np.finfo(want.dtype).eps
    with np.errstate(all="ignore"):
        if kind == "sum":
            tol = 16 * eps * np.sum(np.abs(values.astype("float64")), axis=axis)
        elif kind == "prod":
            n = max(values.size // max(want.size, 1), 1)
            tol = 16 * eps * np.abs(want.astype("float64")) * math.sqrt(n)
        else:
            tol = ulps * np.spacing(np.abs(want))
        ok = (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= tol)
    assert ok.all(), f"{where}: CUDA {got[~ok][:5]}, numpy {want[~ok][:5]}"


def values(rng, dtype: str, shape) -> np.ndarray:
    """Values whose products stay finite: floats near +-1 (some exactly 1), small integers,
    bools mostly true."""
    if dtype == "bool":
        return rng.random(shape) < 0.7
    if dtype.startswith("float"):
        v = rng.uniform(0.8, 1.25, shape) * rng.choice([1.0, 1.0, -1.0], shape)
        v[rng.random(shape) < 0.1] = 1.0
        return v.astype(dtype)
    return rng.integers(-3, 4, shape, endpoint=True).astype(dtype)


def layouts(rng, dtype: str, xp=np):
    """(label, a 3-d array) in every layout a kernel must take, as arrays of ``xp`` (numpy,
    or cupy: the views are then cupy's own)."""
    base = xp.asarray(values(rng, dtype, (5, 6, 7)))
    big = xp.asarray(values(rng, dtype, (10, 6, 15)))
    yield "contiguous", base
    yield "transposed", xp.ascontiguousarray(base.transpose(2, 1, 0)).transpose(2, 1, 0)
    yield "strided, reversed", big[::2, ::-1, ::-2]
    yield "broadcast", xp.broadcast_to(base[:, :1, :], (5, 6, 7))
    yield "size 0 first", base[:0]
    yield "size 0 last", base[:, :, :0]
    yield "size 1", base[:1, :1, :1]
    yield "size 1 middle", base[:, :1, :]


def _empty_max(kind: str, a: np.ndarray, axis, initial=None) -> bool:
    """Whether numpy (and the launch helper) refuse this reduction: max or min over an
    empty axis with outputs to give."""
    kept = [n for d, n in enumerate(a.shape) if d not in axis]
    return kind in ("max", "min") and initial is None and a.size == 0 and \
        math.prod(kept) > 0


# -- 1. NVRTC ------------------------------------------------------------------------------------

def test_every_reduction_kernel_compiles_with_nvrtc_for_sm80_and_sm90_without_warnings(
        request, tmp_path_factory):
    nvrtc = _elementwise._nvrtc()
    jobs = [(label, dialect.prelude(dtypes) + "\n".join(kernels), (f"-arch={arch}",))
            for dialect in (D.CUDA, D.CUDA_FAST)
            for label, dtypes, kernels in programs(dialect) for arch in ARCHS]
    results = _elementwise._compile_all(
        nvrtc, jobs, _elementwise._cache_dir(request, tmp_path_factory, "theon_nvrtc"))
    bad = [f"{label} {options}: {'compiled' if ok else 'FAILED'} with log:\n{log[:3000]}"
           for label, options, ok, log in results if not ok or log.strip()]
    assert not bad, "\n\n".join(bad)
    assert len(results) == 2 * (len(DTYPES) + 3)


def test_the_fast_run_reductions_are_found():
    cases = fast_run_cases()
    assert {c.label for c in cases} == {"softmax", "log-softmax", "MLP step"}
    assert {c.kind for c in cases} == {"sum", "max"}
    assert any(c.initial is not None for c in cases)  # logsumexp's max, -inf when empty
    prologues = [c for c in cases if len(c.graph.steps) > 1 or len(c.graph.in_dtypes) > 1]
    assert len(prologues) >= 2  # sum(exp(x - m)), float32 and float64
    assert {c.graph.out_dtypes[0] for c in cases} == {"float32", "float64"}


def test_a_reduction_kernel_spills_nothing():
    """ptxas's report through NVRTC: the general kernel (3 + 3 dimensions, a float64
    accumulator, 32 accumulators of shared memory) keeps everything in registers."""
    nvrtc = _elementwise._nvrtc()
    case = sweep_cases()[0]
    source = render_reduce(case.graph, case.kind, case.dtype, "k", D.CUDA, nk=3, nr=3,
                           index32=True)
    ok, log, _ = nvrtc.compile(source, ("-arch=sm_90", "-Xptxas=-v"))
    assert ok, log
    assert log.count("0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads") == 2, log
    assert "256 bytes smem" in log, log  # warps[32] of double


# -- 2. the same text on the CPU -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cpu(request, tmp_path_factory):
    """get(name): a kernel of the CPU build of every program, in two translation units
    built side by side."""
    if harness.CXX is None:
        pytest.skip("no C++ compiler (g++) to run CUDA text on the CPU")
    if not theon.config.cxx:
        pytest.skip("config.cxx is empty: this run stands for a machine without a compiler")
    kernels = [k for _, _, ks in programs() for k in ks]
    half = len(kernels) // 2
    sources = [D.CUDA.prelude() + "\n".join(part) for part in (kernels[:half], kernels[half:])]
    cache = _elementwise._cache_dir(request, tmp_path_factory, "theon_cuda_cpu")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        libs = list(pool.map(lambda s: harness.build(s, cache, quick=True), sources))
    modules = [harness.CpuModule(lib) for lib in libs]

    def get(name: str):
        for module in modules:
            try:
                return module.get_function(name)
            except AttributeError:
                continue
        raise KeyError(name)
    return SimpleNamespace(get=get)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kind_axes_and_layout_matches_numpy(cpu, dtype):
    """Every kind x axes x layout of ``dtype``, each under two of the launch shapes (in
    turn), and under a split one where it has few outputs."""
    rng = np.random.default_rng(list(DTYPES).index(dtype))
    cases = [c for c in sweep_cases() if c.graph.in_dtypes[0] == dtype]
    turn = itertools.count()
    for (label, a), case, (axes, axis) in itertools.product(layouts(rng, dtype), cases,
                                                            AXES.items()):
        where = f"{case.kind} of {dtype} over {axes} axes {axis}, {label} {a.shape}"
        if _empty_max(case.kind, a, axis):
            with pytest.raises(ValueError, match="has no identity"):
                reduce_on(cpu.get, case, [a], axis)
            continue
        want = numpy_reduce(case.kind, a, axis, case.dtype)
        k = next(turn)
        launches = [LAUNCHES[k % len(LAUNCHES)], LAUNCHES[(k + 1) % len(LAUNCHES)]]
        if 0 < want.size <= FEW_OUTPUTS:
            launches.append(SPLIT[k % len(SPLIT)])
        for launch in launches:
            got = reduce_on(cpu.get, case, [a], axis, launch=launch)
            check(got, want, case.kind, a, axis, f"{where}, {launch}")


def test_every_collapsed_shape_runs_unpadded_in_32_and_64_bit_indices(cpu):
    """The kernels rendered for the launch's own dimensions, which is how a backend would
    launch them: every collapsed shape the layouts give, a sum in 32-bit indices, a max in
    64-bit ones."""
    rng = np.random.default_rng(7)
    seen = set()
    for case in exact_cases():
        dtype = case.graph.in_dtypes[0]
        for (label, a), axis in itertools.product(layouts(rng, dtype), AXES.values()):
            if _empty_max(case.kind, a, axis):
                continue
            want = numpy_reduce(case.kind, a, axis, case.dtype)
            index32 = case.variants[0][2]
            for launch in LAUNCHES[:3] + SPLIT[:1]:
                if launch in SPLIT and want.size > FEW_OUTPUTS:
                    continue
                got = reduce_on(cpu.get, case, [a], axis, pad=None, index32=index32,
                                launch=launch,
                                check_launch=lambda lay: seen.add((lay.nk, lay.nr)))
                check(got, want, case.kind, a, axis,
                      f"{case.kind} {label} {axis} index32={index32} {launch}")
    assert seen == set(EXACT_SHAPES)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_and_min_propagate_nan_and_keep_infinities(cpu, dtype):
    a = values(np.random.default_rng(3), dtype, (4, 5, 70))
    a[0, 1, 3] = np.nan
    a[1, :, 5] = np.inf
    a[2, 2, :] = -np.inf
    a[3, 4, 69] = np.nan
    a[3, 0, 0] = np.inf
    a[3, 0, 1] = -np.inf
    a[2, 3, :] = np.nan  # a row of NaN only
    cases = [c for c in sweep_cases() if c.graph.in_dtypes[0] == dtype]
    for case, axis, launch in itertools.product(cases, AXES.values(), LAUNCHES + SPLIT[:1]):
        if launch in SPLIT and math.prod(n for d, n in enumerate(a.shape) if d not in axis) \
                > 20:
            continue
        want = numpy_reduce(case.kind, a, axis, case.dtype)
        got = reduce_on(cpu.get, case, [a], axis, launch=launch)
        check(got, want, case.kind, a, axis, f"{case.kind} {axis} {launch}")


def test_the_merges_hold_when_threads_run_in_reverse_order(cpu):
    """Every thread a fiber, resumed last to first (harness mode 3): the warps reach the
    shuffles and the barriers in another order. (The harness switches threads only there, so
    a race between a read and a later write of shared memory stays hidden: without the
    tree's second barrier these tests still pass; it is there by reading, not by test.)"""
    rng = np.random.default_rng(13)
    a = values(rng, "float64", (3, 4, 50))
    for case in [c for c in sweep_cases() if c.name in ("sw_float64_sum", "sw_float64_max",
                                                          "sw_float64_all")]:
        for axis, launch in itertools.product(((2,), (0, 2), (0, 1, 2)), SPLIT):
            want = numpy_reduce(case.kind, a, axis, case.dtype)
            got = reduce_on(lambda name: functools.partial(cpu.get(name), mode=3), case, [a],
                            axis, launch=launch)
            check(got, want, case.kind, a, axis, f"{case.kind} {axis} {launch}, reversed")


def test_empty_reductions_give_the_identity_or_are_refused(cpu):
    """An empty reduced range: the identity (+0.0 for a float sum, whose accumulators start
    at -0.0), the initial value of a max that has one, or, for max and min without one,
    ValueError before anything launches. No outputs: nothing launches."""
    for case in sweep_cases():
        dtype = case.graph.in_dtypes[0]
        a = np.zeros((3, 0, 4), dtype)
        if case.kind in ("max", "min"):
            with pytest.raises(ValueError, match=f"{case.kind} of an empty array"):
                reduce_on(cpu.get, case, [a], (1,))
            assert reduce_on(cpu.get, case, [a], (0,)).shape == (0, 4)
            continue
        for launch in LAUNCHES[:3]:
            got = reduce_on(cpu.get, case, [a], (1,), launch=launch)
            want = numpy_reduce(case.kind, a, (1,), case.dtype)
            check(got, want, case.kind, a, (1,), f"{case.kind} of {dtype}")
            if case.kind == "sum" and dtype.startswith("float"):
                assert not np.signbit(got).any()
    # a sum of negative zeros stays -0.0, as numpy's does
    case = next(c for c in sweep_cases() if c.name == "sw_float64_sum")
    got = reduce_on(cpu.get, case, [np.full((2, 3, 4), -0.0)], (1,))
    assert np.signbit(got).all()
    # logsumexp's max: -inf for an empty row
    case = next(c for c in fast_run_cases() if c.initial is not None)
    # one array per input of its prologue (a device's fusion gives the max one of two:
    # keep_prologues), broadcast as in the graph; a kernel given fewer reads a wild pointer
    arrays = [np.zeros(tuple(1 if b else n for b, n in zip(p, (3, 0))), dtype)
              for p, dtype in zip(case.patterns, case.graph.in_dtypes, strict=True)]
    got = reduce_on(cpu.get, case, arrays, case.axis, pad="case")
    np.testing.assert_array_equal(got, np.full(3, -np.inf, case.dtype))


def test_a_long_float32_sum_splits_in_parts_and_is_as_close_as_numpys(cpu):
    """One output over many elements: the default plan splits it across blocks and merges
    the parts in a second pass; float32 accumulates in float64, so the result is within an
    ulp of the exact sum (numpy's pairwise float32 sum is a few ulps off)."""
    case = next(c for c in sweep_cases() if c.name == "sw_float32_sum")
    rng = np.random.default_rng(11)
    a = (rng.random((4, 25, 300)) * 100).astype("float32")
    lay = cuda_reduce_launch([a, np.empty((), "float32")], (0, 1, 2), "sum")
    plan = lay.padded(*GENERAL).plan(256)
    assert plan.parts > 1 and len(plan.passes) == 2 and plan.group == 256, plan
    got = reduce_on(cpu.get, case, [a], (0, 1, 2), launch={"block": 256})
    exact = math.fsum(a.astype("float64").ravel().tolist())
    ulp = float(np.spacing(np.float32(exact)))
    ours, theirs = abs(float(got) - exact) / ulp, abs(float(a.sum()) - exact) / ulp
    assert ours <= 1.0 and ours <= theirs + 1.0, (ours, theirs)


def _fast_run_arrays(rng, case: Case):
    """(label, inputs) for a FAST_RUN case: its inputs' broadcast patterns, on shapes of its
    rank in several layouts, values around 0 (exp stays finite)."""
    ndim = len(case.patterns[0])

    def make(shape, k, order="C"):
        dims = tuple(1 if b else n for b, n in zip(case.patterns[k], shape[-ndim:]))
        x = (rng.normal(size=dims) * 3).astype(case.graph.in_dtypes[k])
        return np.asfortranarray(x) if order == "F" else x

    n = len(case.patterns)
    yield "contiguous", [make((6, 7), k) for k in range(n)]
    yield "transposed", [make((6, 7), k, "F") for k in range(n)]
    yield "strided, reversed", [make((12, 14), k)[(slice(None, None, -2),) * ndim]
                                if not any(case.patterns[k]) else make((6, 7), k)
                                for k in range(n)]
    yield "short rows, many", [make((40, 3), k) for k in range(n)]
    yield "size 1", [make((1, 1), k) for k in range(n)]
    yield "size 0", [make((0, 5), k) for k in range(n)]


def test_fast_run_reductions_match_numpy_on_their_layouts(cpu):
    """The reductions FAST_RUN makes of softmax, log-softmax and an MLP: the prologue (with
    its broadcast inputs) computed as numpy computes it, then reduced."""
    rng = np.random.default_rng(5)
    for case in fast_run_cases():
        for label, arrays in _fast_run_arrays(rng, case):
            prologue, = _elementwise.reference(case.graph, arrays)
            if _empty_max(case.kind, prologue, case.axis, case.initial):
                continue
            want = numpy_reduce(case.kind, prologue, case.axis, case.dtype, case.initial)
            for index32, launch in ((True, LAUNCHES[0]), (True, LAUNCHES[2]),
                                    (False, LAUNCHES[1])):
                got = reduce_on(cpu.get, case, arrays, case.axis, pad="case",
                                index32=index32, launch=launch)
                check(got, want, case.kind, prologue, case.axis,
                      f"{case.label}: {case.kind} of {case.graph.expression()} over "
                      f"{case.axis}, {label}, index32={index32} {launch}", ulps=8)


# -- the host side ---------------------------------------------------------------------------------

def _array(shape, strides):
    return SimpleNamespace(shape=tuple(shape), strides=tuple(strides), ndim=len(shape))


def test_cuda_reduce_launch_orders_collapses_and_picks_the_index_width():
    # a C-order (4, 5, 6) array over its middle axis: kept (4, 6), reduced (5,)
    x = _array((4, 5, 6), (240, 48, 8))
    lay = cuda_reduce_launch([x, _array((4, 6), (48, 8))], (1,), "sum")
    assert (lay.nk, lay.nr, lay.size, lay.count) == (2, 1, 24, 5)
    assert lay.kept == (4, 6) and lay.strides == ((240, 8, 48),) and lay.out_strides == (48, 8)
    assert lay.index32
    # over the first and last axes of its transpose: the kept and the reduced dimensions each
    # by decreasing stride (the innermost reduced one closest in memory), then collapsed
    t = _array((6, 5, 4), (8, 48, 240))
    lay = cuda_reduce_launch([t, _array((5,), (8,))], (0, 2), "max")
    assert (lay.nk, lay.nr, lay.reduced, lay.strides) == (1, 2, (4, 6), ((48, 240, 8),))
    # everything: no kept dimension, one reduced of 120 elements
    lay = cuda_reduce_launch([x, _array((), ())], (0, 1, 2), "sum")
    assert (lay.nk, lay.nr, lay.kept, lay.reduced, lay.out_strides) == (0, 1, (), (120,), ())
    # no axis: one element per output
    lay = cuda_reduce_launch([x, _array((4, 5, 6), (240, 48, 8))], (), "sum")
    assert (lay.nk, lay.nr, lay.count, lay.reduced) == (1, 1, 1, (1,))
    # broadcast inputs: stride 0, never farther than their first element
    b = _array((1, 2 ** 20), (0, 1))
    lay = cuda_reduce_launch([b, _array((2 ** 11, 2 ** 20), (2 ** 20, 1)),
                              _array((2 ** 11,), (1,))], (1,), "sum")
    assert lay.index32 and lay.strides[0] == (0, 1)
    # far apart: 64-bit indices
    far = cuda_reduce_launch([_array((3, 4), (2 ** 30, 1)), _array((3,), (1,))], (1,), "sum")
    assert not far.index32
    # the output's shape must be the kept dimensions
    with pytest.raises(ValueError, match="kept dimensions"):
        cuda_reduce_launch([x, _array((4, 5), (40, 8))], (1,), "sum")
    # max and min of an empty axis: refused, unless there is nothing to compute
    e = _array((3, 0), (0, 8))
    with pytest.raises(ValueError, match="max of an empty array"):
        cuda_reduce_launch([e, _array((3,), (8,))], (1,), "max")
    assert cuda_reduce_launch([e, _array((3,), (8,))], (1,), "max", initial=-np.inf).count == 0
    assert cuda_reduce_launch([e, _array((0,), (8,))], (0,), "min").size == 0
    empty = cuda_reduce_launch([e, _array((3,), (8,))], (1,), "sum")
    assert empty.count == 0 and empty.size == 3


def test_plan_sizes_groups_and_splits_long_outputs():
    def plan(n, r, **kw):
        lay = CudaReduceLaunch(1, 1, True, n, r, (n,), (r,), ((r * 4, 4),), (4,))
        return lay.plan(**kw)

    short = plan(1000, 10)  # rows of 10: two threads each, 128 outputs a block
    assert (short.group, short.parts, short.partials) == (2, 1, 0)
    assert short.passes[0].grid == 8 and short.passes[0].block == 256
    wide = plan(1000, 5000)  # many long rows: a block each
    assert (wide.group, wide.parts, wide.passes[0].grid) == (256, 1, 1000)
    few = plan(2, 10 ** 6)  # two long rows: split, merged by a second pass
    assert few.group == 256 and few.parts > 1 and few.partials == 2 * few.parts
    first, second = few.passes
    assert (first.suffix, second.suffix) == ("", "_merge")
    assert first.grid == 2 * few.parts
    assert [type(s) for s in second.scalars] == [np.uint32, np.int32, np.uint32, np.uint32]
    forced = plan(3, 10, group=64, parts=4, grid=1, block=64)
    assert (forced.group, forced.parts) == (64, 4) and forced.passes[0].grid == 1
    assert plan(3, 10, parts=50).parts == 10  # no part without an element
    with pytest.raises(ValueError, match="multiple of 32"):
        plan(3, 10, block=48)
    with pytest.raises(ValueError, match="power of two"):
        plan(3, 10, group=3)
    lay = CudaReduceLaunch(1, 1, True, 3, 4, (3,), (4,), ((16, 4),), (4,)).padded(3, 2)
    assert (lay.kept, lay.reduced, lay.strides, lay.out_strides) == (
        (1, 1, 3), (1, 4), ((0, 0, 16, 0, 4),), (0, 0, 4))


def test_cuda_reductions_are_rendered_for_one_shape_and_index_width():
    graph = _identity("float32")
    text = render_reduce(graph, "sum", "float32", "s", D.CUDA, nk=0, nr=1, index32=True)
    assert 'extern "C" __global__ void s(' in text and 'void s_merge(' in text
    assert "double acc" in text  # a float32 sum accumulates in float64
    assert "so_0" not in text  # no kept dimension: the output is one element
    wide = render_reduce(graph, "max", "float32", "m", D.CUDA, nk=2, nr=2, prelude=False)
    assert "const long long so_1" in wide and "theon_" not in wide
    assert "NAN" not in wide and "INFINITY" not in wide  # NVRTC has no math.h
    with pytest.raises(ValueError, match="kept and"):
        render_reduce(graph, "sum", "float32", "k", D.CUDA)
    with pytest.raises(ValueError, match="C loops only"):
        render_reduce(graph, "sum", "float32", "k", D.CUDA, nk=1, nr=1, hoisted=(0,))
    with pytest.raises(ValueError, match="at run time"):
        render_reduce(graph, "sum", "float32", "k", D.C, nk=1, nr=1)
    with pytest.raises(ValueError, match="no CUDA reduction"):
        render_reduce(graph, "max", "float64", "k", D.CUDA, nk=1, nr=1)


def _epilogue_cases():
    """(case, epilogue, axis, arrays, extras, numpy's result): a bias gradient's update
    ``b - lr * sum(g, 0)`` (extras a vector and a broadcast length-1 one), a mean's division
    (a 0-d output and a 0-d extra), ``exp(max(x, 1)) + c`` with ``c`` broadcast along a kept
    dimension and strided."""
    rng = np.random.default_rng(21)
    f32, f64 = "float32", "float64"
    update = ScalarGraph((f32, f32, f32), ((S.mul, (2, 0)), (S.sub, (1, 3))), (4,))
    mean = ScalarGraph((f64, f64), ((S.true_div, (0, 1)),), (2,))
    tail = ScalarGraph((f64, f64), ((S.exp, (0,)), (S.add, (2, 1))), (3,))
    g = rng.normal(size=(300, 7)).astype(f32)
    b, lr = rng.normal(size=7).astype(f32), np.array([0.1], f32)
    x = rng.normal(size=(3, 40, 5))
    n = np.array(x.size, f64)
    c = rng.normal(size=(6, 1))[::2]
    return [
        (Case("ep_update", _identity(f32), "sum", f32), update, (0,), [g], [b, lr],
         b - lr * g.sum(axis=0, dtype=f32)),
        (Case("ep_mean", _identity(f64), "sum", f64), mean, (0, 1, 2), [x], [n], x.sum() / n),
        (Case("ep_tail", _identity(f64), "max", f64), tail, (1,), [x], [c],
         np.exp(x.max(axis=1)) + c)]


def _epilogue_source(name: str, case: Case, epilogue: ScalarGraph, nk: int, nr: int) -> str:
    return render_reduce(case.graph, case.kind, case.dtype, name, D.CUDA, nk=nk, nr=nr,
                         index32=True, prelude=False, epilogue=epilogue)


def test_an_epilogue_runs_where_each_result_is_written(request, tmp_path_factory):
    """A reduction ending with elementwise work on its result (the device's fusion pass
    makes these) compiles with NVRTC and, on the CPU harness, gives numpy's result under
    every launch shape, split outputs (the merge pass writes them) included."""
    cases = _epilogue_cases()
    shapes = {"ep_update": (1, 1), "ep_mean": (0, 1), "ep_tail": (2, 1)}
    source = D.CUDA.prelude(["float32", "float64"]) + "\n".join(
        _epilogue_source(case.name, case, ep, *shapes[case.name]) for case, ep, *_ in cases)
    assert "ep1" in source and "se1_0" in source
    nvrtc = _elementwise._nvrtc()
    for arch in ARCHS:
        ok, log, _ = nvrtc.compile(source, (f"-arch={arch}",))
        assert ok and not log.strip(), log
    if harness.CXX is None or not theon.config.cxx:
        pytest.skip("no C++ compiler to run CUDA text on the CPU")
    cache = _elementwise._cache_dir(request, tmp_path_factory, "theon_cuda_cpu")
    module = harness.CpuModule(harness.build(source, cache, quick=True))
    for case, _, axis, arrays, extras, want in cases:
        out = np.empty(want.shape, want.dtype)
        lay = cuda_reduce_launch([*arrays, out], axis, case.kind, extras=extras)
        assert lay.index32 and len(lay.extra_strides) == len(extras)
        lay = lay.padded(*shapes[case.name])
        for launch in (*LAUNCHES, *SPLIT):
            out[...] = np.nan
            plan = lay.plan(**launch)
            partial = np.empty(max(plan.partials, 1), case.acc_dtype)
            for step in plan.passes:
                kernel = module.get_function(case.name + step.suffix)
                pointers = [*arrays, out, partial, *extras] if step.suffix == "" else \
                    [partial, out, *extras]
                kernel((step.grid,), (step.block,), (*pointers, *step.scalars))
            np.testing.assert_allclose(out, want, rtol=1e-6, err_msg=f"{case.name} {launch}")


def _gate_and_build(source: str, request, tmp_path_factory):
    """NVRTC compiles ``source`` for sm_80 and sm_90 with no spill or stack frame; then its
    CPU build (skips without a C++ compiler)."""
    nvrtc = _elementwise._nvrtc()
    for arch in ARCHS:
        ok, log, _ = nvrtc.compile(source, (f"-arch={arch}", "-Xptxas=-v"))
        assert ok and "0 bytes stack frame, 0 bytes spill" in log, log
    if harness.CXX is None or not theon.config.cxx:
        pytest.skip("no C++ compiler to run CUDA text on the CPU")
    cache = _elementwise._cache_dir(request, tmp_path_factory, "theon_cuda_cpu")
    return harness.CpuModule(harness.build(source, cache, quick=True))


def test_a_reduction_can_keep_its_prologue(request, tmp_path_factory):
    """``keep``: the thread folding an element also writes the prologue's value (a ReLU's
    gradient summed for the bias and kept for the weights' product): every element written
    once, whatever the launch shape, split outputs and reversed threads included."""
    f64 = "float64"
    # g * ((p + b) >= 0): the gradient through max(p + b, 0)
    graph = ScalarGraph((f64,) * 4, ((S.add, (0, 1)), (S.ge, (4, 2)), (S.mul, (3, 5))), (6,))
    update = ScalarGraph((f64,) * 3, ((S.mul, (2, 0)), (S.sub, (1, 3))), (4,))
    source = D.CUDA.prelude([f64, "bool"]) + render_reduce(
        graph, "sum", f64, "keep", D.CUDA, nk=2, nr=2, index32=True, prelude=False,
        epilogue=update, keep=True)
    module = _gate_and_build(source, request, tmp_path_factory)
    rng = np.random.default_rng(4)
    p, g = rng.normal(size=(300, 9)), rng.normal(size=(300, 9))[::-1]
    b, zero = rng.normal(size=(1, 9)), np.zeros((1, 1))
    w, lr = rng.normal(size=9), np.array([0.25])
    value = g * ((p + b) >= 0)
    want = w - 0.25 * value.sum(axis=0)
    for launch, mode in itertools.product((*LAUNCHES, *SPLIT), (0, 3)):
        kept = np.full_like(p, np.nan)
        out = np.full(9, np.nan)
        arrays = [p, b, zero, g, kept]
        lay = cuda_reduce_launch([*arrays, out], (0,), "sum", extras=[w, lr]).padded(2, 2)
        plan = lay.plan(**launch)
        partial = np.empty(max(plan.partials, 1), f64)
        for step in plan.passes:
            pointers = [*arrays, out, partial, w, lr] if step.suffix == "" else \
                [partial, out, w, lr]
            module.get_function("keep" + step.suffix)((step.grid,), (step.block,),
                                                      (*pointers, *step.scalars), mode=mode)
        np.testing.assert_array_equal(kept, value, err_msg=f"{launch} mode {mode}")
        np.testing.assert_allclose(out, want, rtol=1e-12, err_msg=f"{launch} mode {mode}")


def test_an_epilogue_array_must_fit_the_output():
    out = np.empty(7, "float32")
    with pytest.raises(ValueError, match="does not fit"):
        cuda_reduce_launch([np.ones((3, 7), "float32"), out], (0,), "sum",
                           extras=[np.ones(6, "float32")])
    with pytest.raises(ValueError, match="dimensions"):
        cuda_reduce_launch([np.ones((3, 7), "float32"), out], (0,), "sum",
                           extras=[np.ones((1, 7), "float32")])
    with pytest.raises(ValueError, match="CUDA reduction only"):
        render_reduce(_identity("float32"), "sum", "float32", "k", D.C,
                      epilogue=ScalarGraph.of_row(S.neg, ("float32",)))


def test_a_row_kernel_computes_softmax_in_one_launch(request, tmp_path_factory):
    """``render_rows`` (softmax's maximum, denominator and output in one kernel, a group of
    threads per row, the total handed to every member) compiles with NVRTC and on the CPU
    harness gives numpy's softmax and log-softmax for groups of one thread, of a warp, of
    several warps, any grid, threads resumed in reverse order, over one axis or two."""
    from theon.backends.kernels import cuda_rows_launch, render_rows
    from theon.ops.nnet import Softmax
    sources = []
    for log in (False, True):
        denominator, result = Softmax(1, log).passes("float64")
        passes = (("max", _identity("float64")), ("sum", denominator))
        sources.append(render_rows(passes, result, "float64", f"rows{int(log)}", D.CUDA,
                                   nk=2, nr=2, index32=True, prelude=False))
    source = D.CUDA.prelude(["float64"]) + "\n".join(sources)
    module = _gate_and_build(source, request, tmp_path_factory)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 70, 3)) * 3
    x[1, :, 2] = -np.inf
    x[2, 3, 1] = np.nan
    launches = ({}, {"group": 1}, {"group": 32, "grid": 1}, {"group": 128, "block": 256},
                {"group": 64, "block": 64, "grid": 2})
    for log, axis, launch, mode in itertools.product((False, True), ((1,), (0, 1)),
                                                      launches, (0, 3)):
        with np.errstate(all="ignore"):
            shifted = x - x.max(axis=axis, keepdims=True)
            s = np.exp(shifted).sum(axis=axis, keepdims=True)
            want = shifted - np.log(s) if log else np.exp(shifted) / s
        out = np.full_like(x, 7.0)
        variant, grid, block, scalars = cuda_rows_launch(x, out, axis, pad=(2, 2), **launch)
        assert variant == (2, 2, True)
        module.get_function(f"rows{int(log)}")((grid,), (block,), (x, out, *scalars), mode=mode)
        np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-300,
                                   err_msg=f"log={log} axis={axis} {launch} mode={mode}")


# -- 3. a GPU --------------------------------------------------------------------------------------

def test_reduction_kernels_run_on_a_gpu_through_cupy():
    """The same kernels launched by cupy.RawKernel on cupy arrays in the sweep's layouts and
    on the FAST_RUN reductions; the GPU's math library differs from numpy's by a few ulps."""
    cupy = _elementwise._cupy()
    module = cupy.RawModule(code=D.CUDA.prelude() + "\n".join(
        k for _, _, ks in programs() for k in ks))
    rng = np.random.default_rng(9)
    failures = []
    for case in sweep_cases():
        dtype = case.graph.in_dtypes[0]
        for (label, device), axis in itertools.product(layouts(rng, dtype, cupy),
                                                       AXES.values()):
            host = cupy.asnumpy(device)
            if _empty_max(case.kind, host, axis):
                continue
            want = numpy_reduce(case.kind, host, axis, case.dtype)
            for launch in (LAUNCHES[2], SPLIT[0]):
                got = reduce_on(module.get_function, case, [device], axis, launch=launch,
                                xp=cupy)
                try:
                    check(cupy.asnumpy(got), want, case.kind, host, axis,
                          f"{case.name} {label} {axis} {launch}")
                except AssertionError as e:
                    failures.append(str(e))
    for case in fast_run_cases():
        for label, arrays in _fast_run_arrays(rng, case):
            prologue, = _elementwise.reference(case.graph, arrays)
            if _empty_max(case.kind, prologue, case.axis, case.initial):
                continue
            want = numpy_reduce(case.kind, prologue, case.axis, case.dtype, case.initial)
            # (the layouts become contiguous copies on the device: the CPU run covers them)
            got = reduce_on(module.get_function, case, [cupy.asarray(a) for a in arrays],
                            case.axis, pad="case", launch=LAUNCHES[2], xp=cupy)
            try:
                check(cupy.asnumpy(got), want, case.kind, prologue, case.axis,
                      f"{case.label} {case.name} {label}", ulps=16)
            except AssertionError as e:
                failures.append(str(e))
    assert not failures, "\n".join(failures[:20])
