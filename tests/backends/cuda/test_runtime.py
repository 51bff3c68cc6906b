"""The device runtime (backends/cuda/runtime.py) and its CPU stand-in (simulator.py).

The stand-in's arrays are host memory that numpy refuses to take implicitly; its kernels are
the renderer's CUDA text built with g++ and run with CUDA's semantics. The tests that make
sense on both runtimes take the ``rt`` fixture: once on the stand-in, once on CuPy, which
skips (saying why) where CuPy or a GPU is missing.
"""
from __future__ import annotations

import copy
import pickle
import sys
import types

import numpy as np
import pytest
import theon
from theon.backends import dialect as D
from theon.backends.cuda import runtime as R
from theon.backends.cuda import simulator as sim
from theon.backends.kernels import (
    cuda_launch,
    cuda_reduce_launch,
    reduce_acc_dtype,
    render,
    render_reduce,
)
from theon.ops import scalar as S
from theon.ops.fused import ScalarGraph


def _cupy_runtime() -> R.Runtime:
    try:
        return R.CupyRuntime()
    except R.DeviceUnavailable as e:
        pytest.skip(f"no GPU for the CuPy runtime: {e}")


class _CupyOnTheSimulator(types.ModuleType):
    """A stand-in for the ``cupy`` module over the simulator, as far as CupyRuntime uses it,
    so that CupyRuntime's own code runs without a GPU: its arrays are the simulator's, and
    RawModule(code=, options=) launches through a SimulatorRuntime (compiling at the first
    get_function, as CuPy does)."""

    def __init__(self):
        super().__init__("cupy")
        inner = sim.SimulatorRuntime()
        self.ndarray = sim.DeviceArray
        self.modules = []
        fake = self

        class RawModule:
            def __init__(self, code: str, options: tuple = ()):
                self.code, self.options, self.compiled = code, options, False
                fake.modules.append(self)

            def get_function(self, name: str):
                self.compiled = True
                return inner.module(self.code).get_function(name)

        class Device:
            def __init__(self, n: int):
                self.id = n

            def use(self) -> None:
                fake.current = self.id

            def synchronize(self) -> None:
                pass

        self.RawModule = RawModule
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: 2),
            nvrtc=types.SimpleNamespace(getVersion=lambda: (12, 9)), Device=Device)

    def __getattr__(self, name: str):
        return getattr(sim.xp, name)


@pytest.fixture(params=["simulator", "cupy", "cupy-code-on-the-simulator"])
def rt(request, monkeypatch) -> R.Runtime:
    if request.param != "cupy" and sim.cxx() is None:
        pytest.skip("no C++ compiler for the simulator's kernels")
    if request.param == "simulator":
        return sim.SimulatorRuntime()
    if request.param == "cupy":
        return _cupy_runtime()
    monkeypatch.setitem(sys.modules, "cupy", _CupyOnTheSimulator())
    return R.CupyRuntime()


def test_cupy_runtime_makes_raw_modules_that_compile_at_the_first_launch(monkeypatch):
    if sim.cxx() is None:
        pytest.skip("no C++ compiler for the simulator's kernels (the fake cupy's launches)")
    fake = _CupyOnTheSimulator()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    runtime = R.CupyRuntime(1)
    assert (runtime.name, runtime.device_id, fake.current) == ("cupy", 1, 1)
    assert runtime.xp is fake and runtime.array_type is sim.DeviceArray
    source = render(GRAPH, "k", D.CUDA, ndim=1, index32=True)
    kernel = runtime.module(source).get_function("k")
    raw, = fake.modules
    assert raw.options == ("-std=c++17",) and raw.code == source and not raw.compiled
    x = runtime.to_device(np.ones(3, "float32"))
    outs = [runtime.empty(3, "float32") for _ in range(2)]
    kernel((1,), (32,), (x, x, x, *outs, *cuda_launch([x, x, x, *outs]).scalars))
    assert raw.compiled and runtime.stats.launches == 1


@pytest.fixture
def srt() -> sim.SimulatorRuntime:
    if sim.cxx() is None:
        pytest.skip("no C++ compiler for the simulator's kernels")
    return sim.SimulatorRuntime()


# -- the stand-in's arrays ---------------------------------------------------------------------

def test_a_device_array_is_not_a_numpy_array_and_numpy_will_not_convert_it(srt):
    a = srt.to_device(np.arange(6.0).reshape(2, 3))
    assert not isinstance(a, np.ndarray) and isinstance(a, srt.xp.ndarray)
    assert srt.is_device_array(a) and not srt.is_device_array(a.get())
    for implicit in (np.asarray, np.array, lambda x: np.array([x, x]), lambda x: x.__array__()):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not "
                                            "allowed. Please use `.get\\(\\)`"):
            implicit(a)
    # host data mixed into device work is refused, not silently computed on the host
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        np.add(np.ones(3), a)
    with pytest.raises(TypeError, match="Unsupported type"):
        srt.xp.concatenate([a, np.ones((1, 3))])
    with pytest.raises(TypeError, match="does not pickle"):
        pickle.dumps(a)


def test_attributes_views_and_copies_follow_numpy_and_cupy(srt):
    host = np.arange(24, dtype="float32").reshape(2, 3, 4)
    a = srt.to_device(host)
    assert (a.shape, a.dtype, a.strides, a.ndim, a.size, a.nbytes, a.itemsize) == \
        (host.shape, host.dtype, host.strides, 3, 24, 96, 4)
    assert a.flags.c_contiguous and not a.T.flags.c_contiguous and a.flags["C_CONTIGUOUS"]
    # views share memory: writing through one shows in the other
    views = [a[1], a[:, ::-1], a.reshape(6, 4), a.transpose(2, 0, 1), a.T, a.ravel(),
             a.view("int32")]
    assert all(type(v) is sim.DeviceArray for v in views)
    a[1, 2, 3] = 100.0
    assert views[0][2, 3].item() == 100.0 and views[1][1, 0, 3].item() == 100.0
    assert views[2][5, 3].item() == 100.0 and views[3][3, 1, 2].item() == 100.0
    assert views[4][3, 2, 1].item() == 100.0 and views[5][23].item() == 100.0
    # an element is a 0-d view too, as in cupy
    element = a[1, 2, 3]
    assert type(element) is sim.DeviceArray and element.shape == ()
    element[...] = 7.0
    assert a[1, 2, 3].item() == 7.0
    # copies and casts do not
    c, f = a.copy(), a.astype("float64")
    a[0] = -1.0
    assert c[0, 0, 0].item() == 0.0 and f.dtype == np.float64 and f[0, 0, 0].item() == 0.0
    # data.ptr: element 0, also of a reversed view (a[0, 2, 0]: 8 floats on)
    assert a[:, ::-1].data.ptr - a.data.ptr == 8 * 4
    # get() is a numpy copy, as cupy's
    got = a.get()
    assert type(got) is np.ndarray and got[0, 0, 0] == -1.0
    got[0, 0, 0] = 5.0
    assert a[0, 0, 0].item() == -1.0
    # deep copies stay on the device
    assert type(copy.deepcopy(a)) is sim.DeviceArray and type(copy.copy(a)) is sim.DeviceArray


def test_operators_and_methods_return_device_arrays():
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    a = sim.xp.asarray(x)
    for got, want in [(a + 1, x + 1), (2.0 * a, 2.0 * x), (a * a - a / 3, x * x - x / 3),
                      (-a, -x), (abs(a), abs(x)), (a ** 2, x ** 2), (a > 0, x > 0),
                      (a @ a.T, x @ x.T), (a.sum(axis=1), x.sum(axis=1)), (a.max(), x.max()),
                      (np.float32(2) * a, np.float32(2) * x), (np.exp(a), np.exp(x))]:
        assert type(got) is sim.DeviceArray, type(got)
        np.testing.assert_array_equal(got.get(), want)
    b = a.copy()
    b += 1  # in place, on the same memory
    b[0] *= 2
    np.testing.assert_array_equal(b.get(), np.vstack([(x[0] + 1) * 2, x[1:] + 1]))
    assert a.sum().ndim == 0  # a 0-d device array, as cupy returns, not a numpy scalar
    assert float(a.sum()) == pytest.approx(x.sum()) and len(a) == 3


def test_the_namespace_is_numpys_on_device_arrays():
    xp = sim.xp
    a, b = xp.arange(6.0).reshape(2, 3), xp.ones((2, 3))
    cat = xp.concatenate([a, b])
    assert type(cat) is sim.DeviceArray and cat.shape == (4, 3)
    assert type(xp.empty((2, 2), "float32")) is sim.DeviceArray
    z = xp.zeros_like(a)
    assert type(z) is sim.DeviceArray and not z.get().any()
    c = xp.empty((2, 3))
    assert xp.add(a, b, out=c) is c and np.add(a, b, out=c) is c
    np.testing.assert_array_equal(c.get(), np.arange(6.0).reshape(2, 3) + 1)
    # a numpy function given device arrays runs on them (as numpy dispatches to cupy)
    assert type(np.concatenate([a, b])) is sim.DeviceArray
    # inc_subtensor's repeated indices: ufunc.at, with host indices allowed
    acc = xp.zeros(4)
    xp.add.at(acc, np.array([0, 0, 3]), 1.0)
    np.testing.assert_array_equal(acc.get(), [2, 0, 0, 1])
    parts = xp.split(xp.arange(6), 3)
    assert isinstance(parts, list) and all(type(p) is sim.DeviceArray for p in parts)
    assert xp.float32 is np.float32 and xp.ndarray is sim.DeviceArray and xp.pi == np.pi
    assert type(xp.asnumpy(a)) is np.ndarray
    assert xp.asarray(a) is a
    stacked = xp.array([a, b])
    assert type(stacked) is sim.DeviceArray and stacked.shape == (2, 2, 3)
    # shapes are host data, also as arrays of integers
    assert a.reshape(np.array([3, 2])).shape == (3, 2)
    assert xp.zeros(np.array([2, 2])).shape == (2, 2)
    assert xp.broadcast_to(a[0], shape=np.array([4, 3])).shape == (4, 3)
    host = np.ones(3)
    dev = xp.asarray(host)
    dev[0] = 7.0  # device memory never aliases the host array it was made from
    assert host[0] == 1.0


# -- transfers, kernels, matmul: both runtimes -----------------------------------------------

def test_transfers_are_copies_and_are_counted(rt):
    host = np.arange(12, dtype="float32").reshape(3, 4)
    dev = rt.to_device(host)
    host[0, 0] = 99.0
    back = rt.to_host(dev)
    assert type(back) is np.ndarray and back[0, 0] == 0.0
    assert rt.is_device_array(dev) and not rt.is_device_array(back)
    s = rt.stats
    assert (s.to_device_calls, s.to_device_bytes, s.to_host_calls, s.to_host_bytes) == \
        (1, 48, 1, 48)
    # device work through xp is no transfer
    rt.xp.concatenate([dev, rt.xp.zeros_like(dev)])
    rt.empty((5,), "float64")
    rt.zeros((5,), "int32")
    assert (s.to_device_calls, s.to_host_calls, s.launches) == (1, 1, 0)
    with pytest.raises(TypeError):
        rt.to_host(back)
    with pytest.raises(TypeError):
        rt.to_device(dev)
    s.reset()
    assert s == R.RuntimeStats()


# tanh(a * b + c) and a * b, in float32: two outputs of one kernel
GRAPH = ScalarGraph(("float32", "float32", "float32"),
                    ((S.TABLE["mul"], (0, 1)), (S.TABLE["add"], (3, 2)), (S.TABLE["tanh"], (4,))),
                    (5, 3))


def _elementwise(rt, host_inputs, grid: int | None = None, block: int = 64):
    inputs = [rt.to_device(x) for x in host_inputs]
    shape = np.broadcast_shapes(*[x.shape for x in host_inputs])
    outs = [rt.empty(shape, d) for d in GRAPH.out_dtypes]
    launch = cuda_launch(inputs + outs, shape)
    source = render(GRAPH, "k", D.CUDA, ndim=launch.ndim, index32=launch.index32)
    kernel = rt.module(source).get_function("k")
    kernel((grid or launch.blocks(block),), (block,), (*inputs, *outs, *launch.scalars))
    return launch, [rt.to_host(o) for o in outs]


def test_a_rendered_kernel_computes_what_numpy_does_on_any_grid(rt):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 50)).astype("float32")
    b = rng.normal(size=(50,)).astype("float32")  # broadcast along the rows
    c = rng.normal(size=(50, 7)).astype("float32").T  # a transposed view
    want_tanh, want_mul = np.tanh(a * b + c), a * b
    for grid, block in [(None, 64), (1, 32), (3, 64), (1000, 128)]:
        launch, (got_tanh, got_mul) = _elementwise(rt, [a, b, c], grid, block)
        assert launch.ndim == 2  # the broadcast keeps two dimensions
        np.testing.assert_array_equal(got_mul, want_mul)
        np.testing.assert_allclose(got_tanh, want_tanh, rtol=4e-7, atol=2e-7)
    assert rt.stats.launches == 4


def test_modules_are_made_once_per_source_and_kernels_count_launches(rt):
    source = render(GRAPH, "k", D.CUDA, ndim=1, index32=True)
    assert rt.module(source) is rt.module(source)
    assert rt.module(source) is not rt.module(source + "\n")
    x = rt.to_device(np.ones(5, "float32"))
    outs = [rt.empty(5, "float32"), rt.empty(5, "float32")]
    launch = cuda_launch([x, x, x, *outs])
    kernel = rt.module(source).get_function("k")
    assert rt.module(source).get_function("k") is kernel
    rt.stats.reset()
    for _ in range(3):
        kernel((1,), (32,), (x, x, x, *outs, *launch.scalars))
    assert rt.stats.launches == 3
    np.testing.assert_allclose(rt.to_host(outs[0]), np.tanh(np.float32(2)), rtol=1e-6)


def test_a_block_reduction_with_shuffles_and_shared_memory_sums_rows(rt):
    graph = ScalarGraph.of_row(S.TABLE["exp"], ("float64",))
    rng = np.random.default_rng(1)
    host = rng.normal(size=(5, 300))
    a = rt.to_device(host)
    out = rt.empty(5, "float64")
    lay = cuda_reduce_launch([a, out], (1,), "sum")
    source = render_reduce(graph, "sum", "float64", "r", D.CUDA, nk=lay.nk, nr=lay.nr,
                           index32=lay.index32)
    module = rt.module(source)
    want = np.exp(host).sum(axis=1)
    # one block per row, then each row split across blocks and merged by a second pass
    for plan in (lay.plan(128), lay.plan(64, parts=3), lay.plan(256, grid=1)):
        acc = rt.empty(max(plan.partials, 1), reduce_acc_dtype("sum", "float64", "float64"))
        for step in plan.passes:
            pointers = (a, out, acc) if step.suffix == "" else (acc, out)
            module.get_function("r" + step.suffix)((step.grid,), (step.block,),
                                                   (*pointers, *step.scalars))
        np.testing.assert_allclose(rt.to_host(out), want, rtol=1e-13)


def test_matmul_is_a_times_b_on_the_device(rt):
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(4, 5)), rng.normal(size=(5, 3))
    a, b = rt.to_device(x), rt.to_device(w)
    got = rt.matmul(a, b)
    assert rt.is_device_array(got)
    out = rt.empty((4, 3), "float64")
    assert rt.matmul(a, b, out=out) is out
    rt.synchronize()
    np.testing.assert_allclose(rt.to_host(got), x @ w, rtol=1e-12)
    np.testing.assert_allclose(rt.to_host(out), x @ w, rtol=1e-12)
    assert rt.stats.matmuls == 2 and rt.stats.launches == 0
    with pytest.raises(TypeError):
        rt.matmul(x, b)
    # two vectors: a 0-d device array (numpy's matmul gives a scalar)
    v = rt.matmul(rt.to_device(x[0]), rt.to_device(w[:, 0]))
    assert rt.is_device_array(v) and v.shape == ()
    back = rt.to_host(v)
    assert isinstance(back, np.ndarray) and back.shape == ()
    np.testing.assert_allclose(back, x[0] @ w[:, 0], rtol=1e-12)


# -- the stand-in's kernels: CUDA's rules, checked -----------------------------------------------

_BLOCK_SUM = r"""
extern "C" __global__ void block_sum(const double *x, double *out, int n)
{
    __shared__ double part[32];
    double v = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[blockIdx.x * n + i];
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0;
        for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
        if (threadIdx.x == 0) out[blockIdx.x] = v;
    }
}

extern "C" __global__ void early_exit(double *out)
{
    if (threadIdx.x >= 40) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

extern "C" __global__ void two_barriers(double *out)
{
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 2;
}

extern "C" __global__ void shuffle_exited(double *out)
{
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 3.0, 1);
}
"""


def test_the_stand_in_gives_the_same_sums_in_any_thread_order(srt):
    host = np.random.default_rng(3).normal(size=(3, 1000))
    x, out = srt.to_device(host), srt.empty(3, "float64")
    kernel = srt.module(_BLOCK_SUM).get_function("block_sum")
    results = []
    for schedule in (0, sim.FORCE_FIBERS, sim.FORCE_FIBERS | sim.REVERSE):
        srt.schedule = schedule
        kernel((3,), (256,), (x, out, np.int32(1000)))
        results.append(srt.to_host(out))
    np.testing.assert_allclose(results[0], host.sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_launches_of_every_library_reuse_one_pool_of_thread_stacks(srt):
    """The fibers' stacks are mapped once per process, not per launch or per library, and
    mapped anew only for a bigger block; the sums stay exact on reused stacks."""
    host = np.random.default_rng(5).normal(size=(3, 1000))
    x, out = srt.to_device(host), srt.empty(3, "float64")
    srt.schedule = sim.FORCE_FIBERS
    first = srt.module(_BLOCK_SUM).get_function("block_sum")
    other = srt.module(_BLOCK_SUM + "// another library\n").get_function("block_sum")
    bases = []
    for kernel, threads in ((first, 256), (other, 128), (first, 256), (other, 1024),
                            (first, 512)):
        kernel((3,), (threads,), (x, out, np.int32(1000)))
        np.testing.assert_allclose(srt.to_host(out), host.sum(axis=1), rtol=1e-12)
        bases.append((sim._STACKS.base, sim._STACKS.map_bytes))
        assert sim._STACKS.guarded >= threads  # every fiber ran above its guard page
    assert bases[0][0] and bases[1] == bases[0] and bases[2] == bases[0]
    assert bases[3][1] == 4 * bases[0][1] and bases[4] == bases[3]


def test_random_grids_change_no_result_of_a_rendered_kernel(srt):
    """Every kernel theon renders strides over the grid, so the stand-in may draw each
    launch's number of blocks (CI runs the suite so)."""
    rng = np.random.default_rng(4)
    arrays = [rng.normal(size=(30, 40)).astype("float32") for _ in range(3)]
    _, want = _elementwise(srt, arrays, block=32)
    host = rng.normal(size=(6, 500))
    a, out = srt.to_device(host), srt.empty(6, "float64")
    lay = cuda_reduce_launch([a, out], (1,), "max")
    graph = ScalarGraph.of_row(S.TABLE["exp"], ("float64",))
    module = srt.module(render_reduce(graph, "max", "float64", "m", D.CUDA, nk=lay.nk,
                                      nr=lay.nr, index32=lay.index32))
    srt.random_grids = np.random.default_rng(0)
    for _ in range(5):
        _, got = _elementwise(srt, arrays, block=32)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        plan = lay.plan(64, parts=4)
        acc = srt.empty(plan.partials, reduce_acc_dtype("max", "float64", "float64"))
        for step in plan.passes:
            pointers = (a, out, acc) if step.suffix == "" else (acc, out)
            module.get_function("m" + step.suffix)((step.grid,), (step.block,),
                                                   (*pointers, *step.scalars))
        np.testing.assert_array_equal(srt.to_host(out), np.exp(host).max(axis=1))


def test_the_stand_in_names_the_misuse_a_gpu_leaves_undefined(srt):
    module = srt.module(_BLOCK_SUM)
    out = srt.zeros(64, "float64")
    with pytest.raises(RuntimeError, match=r"early_exit: divergent __syncthreads .*24 have "
                                           r"exited"):
        module.get_function("early_exit")((1,), (64,), (out,))
    with pytest.raises(RuntimeError, match=r"two_barriers: __syncthreads at different source "
                                           r"lines \(\d+ and \d+\)"):
        module.get_function("two_barriers")((1,), (64,), (out,))
    with pytest.raises(RuntimeError, match=r"shuffle_exited: warp collective \(mask "
                                           r"0xffffffff\) includes an exited lane: thread "
                                           r"\(5,0,0\) of block \(0,0,0\)"):
        module.get_function("shuffle_exited")((1,), (32,), (out,))
    with pytest.raises(RuntimeError, match="no kernel named 'missing'"):
        module.get_function("missing")((1,), (32,), (out,))
    for grid, block, shared in [((1,), (2048,), 0), ((1,), (8, 8, 32), 0),
                                ((1, 70000), (32,), 0), ((0,), (32,), 0),
                                ((1,), (32,), 64 * 1024)]:
        with pytest.raises(RuntimeError, match="invalid launch configuration"):
            module.get_function("block_sum")(grid, block, (out, out, np.int32(1)),
                                             shared_mem=shared)
    assert srt.stats.launches == 3  # those that ran (and failed); refused ones are not


def test_kernel_arguments_are_device_arrays_and_numpy_scalars(srt):
    kernel = srt.module(_BLOCK_SUM).get_function("block_sum")
    x, out = srt.zeros(10, "float64"), srt.zeros(1, "float64")
    with pytest.raises(TypeError, match="argument 0 is a ndarray"):
        kernel((1,), (32,), (np.zeros(10), out, np.int32(10)))
    with pytest.raises(TypeError, match="argument 2 is a int"):
        kernel((1,), (32,), (x, out, 10))  # a Python int has no C type: cupy guesses one
    assert srt.stats.launches == 0


def test_built_kernels_are_cached_on_disk_under_compiledir(srt, tmp_path, monkeypatch):
    monkeypatch.setattr(theon.config, "compiledir", str(tmp_path))
    source = render(GRAPH, "cached", D.CUDA, ndim=1, index32=True)
    first = sim.build(source)
    assert first.parent == tmp_path / "cuda_cpu" and first.exists()
    mtime = first.stat().st_mtime_ns
    assert sim.build(source) == first and first.stat().st_mtime_ns == mtime
    # the scheduler is compiled once per cache and linked into every library built there
    supports = list((tmp_path / "cuda_cpu").glob("support_*/support.json"))
    assert len(supports) == 1
    other = sim.build(render(GRAPH, "cached_too", D.CUDA, ndim=2, index32=True))
    assert other != first
    assert list((tmp_path / "cuda_cpu").glob("support_*/support.json")) == supports
    made = sim.support(sim.cxx(), tmp_path / "cuda_cpu")
    assert made.runtime.exists() and made.include.exists()
    if "Free Software Foundation" in sim._compiler_version(sim.cxx()):
        assert made.pch  # GCC reads the kernels' header precompiled


# -- choosing a runtime --------------------------------------------------------------------------

def test_without_cupy_device_cuda_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(R.DeviceUnavailable) as err:
        R.CupyRuntime()
    message = str(err.value)
    assert "needs CuPy" in message and 'pip install -e ".[cuda]"' in message
    assert "cupy-cuda12x" in message and "THEON_FLAGS=device=cuda,cuda.simulator=True" in message


def _fake_cupy(count=None, error=None, nvrtc_error=None) -> types.ModuleType:
    def get_device_count():
        if error:
            raise error
        return count

    def nvrtc_version():
        if nvrtc_error:
            raise nvrtc_error
        return (12, 9)
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count),
        nvrtc=types.SimpleNamespace(getVersion=nvrtc_version))
    return cupy


def test_cupy_without_a_usable_gpu_names_the_cause(monkeypatch):
    class CUDARuntimeError(RuntimeError):
        pass

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(error=CUDARuntimeError(
        "cudaErrorInsufficientDriver: CUDA driver version is insufficient")))
    with pytest.raises(R.DeviceUnavailable, match="no usable GPU.*CUDARuntimeError: "
                                                  "cudaErrorInsufficientDriver.*cuda.simulator"):
        R.CupyRuntime()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=1))
    with pytest.raises(R.DeviceUnavailable, match="sees 1 GPU.*no device 2"):
        R.CupyRuntime(2)
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=1, nvrtc_error=OSError(
        'Failure finding "libnvrtc.so.12"')))
    with pytest.raises(R.DeviceUnavailable, match='NVRTC does not load.*libnvrtc.so.12.*'
                                                  'cupy-cuda12x\\[ctk\\]'):
        R.CupyRuntime()


def test_get_runtime_follows_the_device_and_simulator_flags(monkeypatch):
    monkeypatch.setattr(theon.config, "device", "cpu")
    with pytest.raises(ValueError, match="names no CUDA device"):
        R.get_runtime()
    monkeypatch.setattr(theon.config, "device", "cuda")
    monkeypatch.setattr(theon.config, "cuda__simulator", True)
    first = R.get_runtime()
    assert isinstance(first, sim.SimulatorRuntime) and first.name == "simulator"
    assert R.get_runtime() is first and first.device_id == 0
    monkeypatch.setattr(theon.config, "device", "cuda1")
    assert R.get_runtime() is not first and R.get_runtime().device_id == 1
    monkeypatch.setattr(theon.config, "device", "cuda")
    monkeypatch.setattr(theon.config, "cuda__simulator", False)
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(R.DeviceUnavailable, match="needs CuPy"):
        R.get_runtime()


def test_importing_theon_and_the_runtime_does_not_import_cupy(run_python):
    done = run_python("import sys, theon, theon.backends.cuda.runtime, "
                      "theon.backends.cuda.simulator; print('cupy' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
