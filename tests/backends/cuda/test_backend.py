"""The device path (``device=cuda``) on the CPU stand-in (``cuda.simulator=True``): shared
values in device memory, compiled functions run on the device with kernels of the CUDA
dialect, transfers only where the graph needs them. Every result is compared with the CPU
backend's for the same program."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon import config
from theon.backends.cuda.backend import HostOpError
from theon.backends.cuda.runtime import DeviceUnavailable
from theon.backends.cuda.simulator import DeviceArray
from theon.sandbox.rng_mrg import MRG_RandomStreams


def _mlp(dtype: str = "float32"):
    rng = np.random.default_rng(0)
    X, y = T.matrix("X", dtype=dtype), T.ivector("y")
    W1 = theon.shared((rng.normal(size=(20, 16)) * 0.1).astype(dtype), "W1")
    b1 = theon.shared(np.zeros(16, dtype), "b1")
    W2 = theon.shared((rng.normal(size=(16, 5)) * 0.1).astype(dtype), "W2")
    b2 = theon.shared(np.zeros(5, dtype), "b2")
    h = T.nnet.relu(T.dot(X, W1) + b1)
    p = T.nnet.softmax(T.dot(h, W2) + b2)
    loss = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    params = [W1, b1, W2, b2]
    grads = T.grad(loss, params)
    step = theon.function([X, y], loss, updates=[(w, w - np.asarray(0.1, dtype) * g)
                                                  for w, g in zip(params, grads)])
    return step, params


def _batch(dtype: str = "float32"):
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 20)).astype(dtype), rng.integers(0, 5, 8).astype("int32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_training_step_matches_the_cpu(device, dtype):
    X, y = _batch(dtype)
    config.device = "cpu"
    step, params = _mlp(dtype)
    want = [float(step(X, y)) for _ in range(3)]
    want_w = [p.get_value() for p in params]
    config.device = "cuda"
    step, params = _mlp(dtype)
    for p in params:  # the weights live in device memory
        assert isinstance(p.get_value(borrow=True, return_internal_type=True), DeviceArray)
    device.stats.reset()
    got = [float(step(X, y)) for _ in range(3)]
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol)
    for p, w in zip(params, want_w):
        value = p.get_value()
        assert type(value) is np.ndarray
        np.testing.assert_allclose(value, w, rtol=rtol, atol=rtol)
    # per call: the loss comes back (4 bytes or 8), no weight or gradient crosses
    stats = device.stats
    assert stats.to_host_calls == 3 + len(params) and \
        stats.to_host_bytes == 3 * np.dtype(dtype).itemsize + sum(p.get_value().nbytes
                                                                  for p in params)
    assert all(isinstance(p.get_value(borrow=True, return_internal_type=True), DeviceArray)
               for p in params)
    assert step.fn.host_ops == []  # every node has a device implementation


def test_elementwise_and_reductions_of_every_layout(device):
    x, y = T.matrix("x"), T.matrix("y")
    outs = [T.tanh(x * 2 + y), (x * y).sum(axis=0), T.exp(x).max(axis=1), (x + y.T).sum(),
            T.sqr(x[::2, ::-1]).mean(axis=1)]
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    config.device = "cpu"
    want = theon.function([x, y], outs)(a, b)
    config.device = "cuda"
    f = theon.function([x, y], outs)
    got = f(a, b)
    for g, w in zip(got, want):
        assert type(g) is np.ndarray
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert device.stats.launches > 0


def test_device_arguments_are_not_copied_and_borrowed_outputs_stay(device):
    x = T.vector("x")
    f = theon.function([x], theon.Out(T.exp(x), borrow=True))
    a = device.to_device(np.arange(4.0))
    device.stats.reset()
    r = f(a)
    assert isinstance(r, DeviceArray) and device.stats.to_device_calls == 0
    np.testing.assert_allclose(r.get(), np.exp(np.arange(4.0)))
    # a numpy argument is moved once; a plain output comes back as numpy, one made by
    # transfer('cuda') stays, one made by transfer('cpu') comes back
    g = theon.function([x], [T.exp(x), T.exp(x).transfer("cuda"), T.exp(x).transfer("cpu")])
    host, dev, back = g(np.arange(4.0))
    assert type(host) is np.ndarray and isinstance(dev, DeviceArray) and \
        type(back) is np.ndarray
    np.testing.assert_array_equal(dev.get(), host)


def test_shared_values_on_the_device(device):
    w = theon.shared(np.arange(6.0).reshape(2, 3), "w")
    assert isinstance(w.get_value(borrow=True, return_internal_type=True), DeviceArray)
    assert type(w.get_value()) is np.ndarray and type(w.get_value(borrow=True)) is np.ndarray
    w.set_value(np.ones((2, 3)))
    assert isinstance(w.container[0], DeviceArray)
    w.set_value(device.to_device(np.zeros((4, 3))))
    np.testing.assert_array_equal(w.get_value(), np.zeros((4, 3)))
    with pytest.raises(TypeError, match="dtype float32"):
        w.set_value(device.to_device(np.zeros((2, 3), "float32")))
    # integers and scalars stay on the host, where indices and counters are cheapest
    n = theon.shared(np.int64(0), "n")
    assert type(n.get_value(borrow=True, return_internal_type=True)) is np.ndarray
    count = theon.function([], n, updates=[(n, n + 1)])
    count()
    assert int(n.get_value()) == 1 and type(n.container[0]) is np.ndarray


def test_pickled_device_shared_variable_loads_where_configured(device):
    w = theon.shared(np.arange(3.0), "w")
    data = pickle.dumps(w)
    back = pickle.loads(data)
    assert isinstance(back.container[0], DeviceArray)
    np.testing.assert_array_equal(back.get_value(), np.arange(3.0))
    config.device = "cpu"
    host = pickle.loads(data)
    assert type(host.container[0]) is np.ndarray


def test_an_op_without_device_implementation_runs_between_transfers(device):
    x = T.vector("x")
    f = theon.function([x], T.sort(x) * 2)
    assert [type(n.op).__name__ for n in f.fn.host_ops] == ["Sort"]
    np.testing.assert_array_equal(f(np.array([3.0, 1.0, 2.0])), [2.0, 4.0, 6.0])
    config.assert_no_cpu_op = "raise"
    try:
        with pytest.raises(HostOpError, match=r"Sort.*no device implementation.*test_backend"):
            theon.function([x], T.sort(x) * 2)
    finally:
        config.assert_no_cpu_op = "ignore"


def test_broadcasting_that_the_types_forbid_is_refused(device):
    x, y = T.matrix("x"), T.matrix("y")
    f = theon.function([x, y], x + y)
    with pytest.raises(ValueError, match="broadcastable"):
        f(np.ones((3, 4)), np.ones((1, 4)))


def test_no_cupy_is_one_clear_error():
    try:
        import cupy  # noqa: F401
        pytest.skip("cupy is installed: the missing-CuPy error cannot happen here")
    except ImportError:
        pass
    saved = config.device, config.cuda.simulator
    config.device, config.cuda.simulator = "cuda", False
    try:
        with pytest.raises(DeviceUnavailable, match=r"cupy.*\.\[cuda\]"):
            theon.shared(np.ones(3))
    finally:
        config.device, config.cuda.simulator = saved


def test_main_example_trains_the_same_on_the_device(device):
    """examples/mlp.py with device=cuda: the same accuracy as on the CPU (float32, the
    kernels round as numpy does: the CPU stand-in has no fused multiply-adds)."""
    from theon.examples import mlp
    saved = config.floatX
    config.floatX = "float32"
    try:
        config.device = "cpu"
        want = mlp.main(epochs=1, verbose=False)
        config.device = "cuda"
        device.stats.reset()
        got = mlp.main(epochs=1, verbose=False)
    finally:
        config.floatX = saved
    assert got == pytest.approx(want, abs=2 / 600)  # at most two test points differ
    assert device.stats.launches > 0


def test_kernel_plan_of_the_training_step(device):
    """One call's launches and transfers, recorded without changing the weights: the step
    moves its batch in and its loss out, no weight or gradient."""
    from theon import printing
    step, params = _mlp()
    X, y = _batch()
    before = [p.get_value() for p in params]
    plan = printing.kernel_plan(step, X, y, file=None)
    for p, w in zip(params, before):  # the recorded call's updates are undone
        np.testing.assert_array_equal(p.get_value(), w)
    kinds = [launch.kind for launch in plan.launches]
    assert kinds.count("matmul") == 5  # two forward products, three for the gradients
    assert all(launch.grid >= 1 and launch.bytes > 0 for launch in plan.launches)
    moved = {t.what for t in plan.transfers}
    assert "argument X" in moved and "an output" in moved
    assert all(t.bytes <= max(X.nbytes, 64) for t in plan.transfers)
    # at least the batch, the labels, the weights read and written and the loss
    assert plan.minimum_bytes >= X.nbytes + y.nbytes + 2 * sum(w.nbytes for w in before) + 4
    assert plan.minimum_bytes < plan.device_bytes
    # each library product reads its operands and writes its result (the batch: twice)
    products = sum(launch.bytes for launch in plan.launches if launch.kind == "matmul")
    assert plan.product_bytes == products and plan.minimum_bytes > products
    text = printing.kernel_plan(step, X, y, file="str")
    assert "launches" in text and "predicted on an H200" in text


def test_debugprint_marks_ops_on_the_host(device):
    from theon import printing
    x = T.vector("x")
    f = theon.function([x], T.sort(x) * 2)
    text = printing.debugprint(f, file="str")
    sort_line = next(line for line in text.splitlines() if "Sort" in line)
    assert "on the host" in sort_line
    assert "on the host" not in text.replace(sort_line, "")


def _device_modules() -> list[tuple[str, str]]:
    """(label, CUDA source) of the modules that device functions of several kinds compile."""
    from tests.backends.cuda.test_pool_conv import _lenet
    x, y, t = T.matrix("x"), T.matrix("y"), T.tensor3("t")
    v = T.vector("v", dtype="float32")
    srng = MRG_RandomStreams(1)
    cases = {
        "training step float32": _mlp("float32")[0],
        "training step float64": _mlp("float64")[0],
        "convolution and pooling": _lenet("float32")[0],  # and their gradients
        "layouts": theon.function([x, y], [T.tanh(x * 2 + y), (x * y).sum(axis=0),
                                           T.exp(x).max(axis=1), (x + y.T).sum()]),
        "softmax and integer work": theon.function(
            [x, v], [T.nnet.softmax(x), T.nnet.logsoftmax(x), T.argmax(x, axis=1),
                     (v > 0).sum(), T.switch(v > 0, v, 2 * v) // 3]),
        "epilogues and rows": theon.function(
            [x, t], [0.5 - 2 * x.sum(axis=0), x.mean(), T.nnet.softmax(t, axis=(0, 2))]),
        "random streams": theon.function(  # MRG31k3p kernels (backends/cuda/mrg.py)
            [x], [x * srng.binomial(size=x.shape, p=0.8, dtype=x.dtype),
                  srng.uniform((5,), dtype="float32")]),
    }
    return [(label, f.fn.module.source()) for label, f in cases.items()]


def test_device_modules_compile_with_nvrtc_for_sm80_and_sm90(device):
    """The gate of every generated kernel, on what the device backend actually puts in one
    module: NVRTC (the pinned wheel of the test extra) compiles it for sm_80 and sm_90 with
    an empty log, and ptxas reports no spill and no stack frame."""
    from tests.backends.cuda_cpu import harness
    nvrtc = harness.nvrtc()
    if isinstance(nvrtc, str):
        pytest.skip(nvrtc)
    for label, source in _device_modules():
        for arch in harness.GATE_ARCHS:
            problem = harness.gate_problem(nvrtc, source, arch)
            assert problem is None, f"{label}: {problem}"


def test_a_reduction_ends_with_the_elementwise_work_on_its_result(device):
    """On a device the fusion pass gives a reduction the elementwise node that alone reads
    its result (a bias update, a mean's division): one kernel, the CPU's numbers and
    errors."""
    from theon.ops.fused_reduce import FusedReduce
    rng = np.random.default_rng(5)
    g, b = T.matrix("g"), theon.shared(rng.normal(size=7), "b")
    x = T.tensor3("x")
    outs = [b - 0.5 * g.sum(axis=0), x.mean(), T.exp(x.max(axis=1)) + 1.0]
    f = theon.function([g, x], outs)
    nodes = [n for n in f.maker.fgraph.toposort() if isinstance(n.op, FusedReduce)]
    assert len(nodes) == 3 and all(n.op.epilogue is not None for n in nodes)
    G, X = rng.normal(size=(300, 7)), rng.normal(size=(3, 40, 5))
    got = f(G, X)
    want = [b.get_value() - 0.5 * G.sum(axis=0), X.mean(), np.exp(X.max(axis=1)) + 1.0]
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w, rtol=1e-12)
    with pytest.raises(ValueError, match="test_backend.py"):
        f(rng.normal(size=(3, 6)), X)  # 6 gradient columns for 7 biases: the CPU's error
    config.device = "cpu"
    cpu = theon.function([g, x], outs)
    assert not any(getattr(n.op, "epilogue", None) for n in cpu.maker.fgraph.toposort())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_is_one_launch_over_any_axes_and_layout(device, dtype):
    """Softmax and log-softmax as one kernel a call (a group of threads per row: the
    maximum, the denominator, the output), over one axis, several, and every axis, on
    contiguous, transposed and strided arguments, with rows holding -inf, +inf and NaN: the
    CPU's numbers."""
    rng = np.random.default_rng(7)
    t = T.tensor3("t", dtype=dtype)
    outs = [T.nnet.softmax(t, axis=1), T.nnet.logsoftmax(t, axis=(0, 2)),
            T.nnet.softmax(t, axis=(0, 1, 2)), T.nnet.logsoftmax(t, axis=-1)]
    f = theon.function([t], outs)
    config.device = "cpu"
    cpu = theon.function([t], outs)
    config.device = "cuda"
    big = rng.normal(size=(6, 80, 9)).astype(dtype) * 4
    special = rng.normal(size=(3, 5, 4)).astype(dtype)
    special[0, :, 0] = -np.inf
    special[1, 2, :] = np.inf
    special[2, 0, 1] = np.nan
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for label, a in [("contiguous", big), ("transposed", big.transpose(2, 1, 0).copy()
                                          .transpose(2, 1, 0)),
                     ("strided", big[::2, ::-3, 1:]), ("special", special),
                     ("one row", big[:1, :, :1])]:
        device.stats.reset()
        got = f(a)
        assert device.stats.launches == len(outs), label
        with np.errstate(all="ignore"):
            want = cpu(a)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=label)


def test_a_layer_computes_its_bias_add_where_it_is_read(device):
    """On a device a bias added to a product is computed in each elementwise reader's kernel
    (never stored), and the bias gradient's sum keeps the ReLU gradient it folds for the
    weights' product: the CPU's numbers, fewer launches."""
    from theon.ops.blas import DotAdd
    from theon.ops.fused_reduce import FusedReduce
    rng = np.random.default_rng(8)
    X, G = rng.normal(size=(6, 5)), rng.normal(size=(6, 4))
    W0, b0 = rng.normal(size=(5, 4)), rng.normal(size=4) * 0.1

    def build():
        x, g = T.matrix("x"), T.matrix("g")
        W, b = theon.shared(W0, "W"), theon.shared(b0, "b")
        h = T.nnet.relu(T.dot(x, W) + b)
        cost = (h * g).sum()
        gW, gb = T.grad(cost, [W, b])
        return theon.function([x, g], h, updates=[(W, W - 0.1 * gW), (b, b - 0.1 * gb)]), W, b
    config.device = "cpu"
    f, W, b = build()
    want = [f(X, G) for _ in range(2)] + [W.get_value(), b.get_value()]
    config.device = "cuda"
    f, W, b = build()
    nodes = f.maker.fgraph.toposort()
    assert not any(isinstance(n.op, DotAdd) for n in nodes)
    assert any(isinstance(n.op, FusedReduce) and n.op.keep and n.op.epilogue is not None
               for n in nodes)
    got = [f(X, G) for _ in range(2)] + [W.get_value(), b.get_value()]
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-12)


def test_flatten_stays_on_the_device(device):
    x = T.tensor3("x")
    f = theon.function([x], [T.flatten(x, 2) * 2, T.flatten(x.dimshuffle(2, 0, 1), 1)])
    assert not f.fn.host_ops
    a = np.arange(24.0).reshape(2, 3, 4)
    got = f(a)
    np.testing.assert_array_equal(got[0], a.reshape(2, 12) * 2)
    np.testing.assert_array_equal(got[1], a.transpose(2, 0, 1).reshape(-1))


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_argmax_and_argmin_are_one_launch(device, dtype):
    """argmax / argmin on the device (the maximum, then the least index holding it, in one
    kernel): numpy's index for ties, NaN (the first NaN wins), any axis, ``axis=None``
    (C order, transposed argument), and numpy's error for an empty axis."""
    rng = np.random.default_rng(2)
    t = T.tensor3("t", dtype=dtype)
    outs = [T.argmax(t, axis=1), T.argmin(t, axis=0), T.argmax(t, axis=-1), T.argmax(t),
            T.argmin(t)]
    f = theon.function([t], outs)
    assert not f.fn.host_ops
    a = rng.integers(-3, 4, size=(4, 70, 5)).astype(dtype)  # many ties
    if dtype == "float32":
        a[1, 5, 2] = np.nan
        a[1, 9, 2] = np.nan
        a[2, :, 3] = -np.inf
    for label, v in [("contiguous", a), ("transposed", a.transpose(2, 1, 0).copy()
                                         .transpose(2, 1, 0)), ("strided", a[::-1, ::3])]:
        got = f(v)
        want = [np.argmax(v, axis=1), np.argmin(v, axis=0), np.argmax(v, axis=-1),
                np.argmax(v), np.argmin(v)]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w, err_msg=label)
    with pytest.raises(ValueError, match="empty"):
        f(np.zeros((2, 0, 3), dtype))


def test_max_of_an_empty_axis_names_the_max_under_an_epilogue(device):
    """A max given its reader as an epilogue (fusion.fuse_epilogues) is refused on an empty
    axis with the CPU's error, naming the user's line of the max, not of its reader."""
    import sys
    x = T.matrix("x")
    m = T.exp(x).max(axis=1); line = sys._getframe().f_lineno  # noqa: E702
    f = theon.function([x], m * 2)
    assert not f.fn.host_ops
    np.testing.assert_allclose(f(np.zeros((2, 3))), [2.0, 2.0])
    with pytest.raises(ValueError, match="max of an empty array") as err:
        f(np.ones((3, 0)))
    assert f"{__file__}:{line}" in str(err.value)


@pytest.mark.parametrize("linker", ["py", "c"])
def test_a_cpu_linker_reads_and_updates_device_shared_values(device, linker):
    """A function compiled for a CPU linker while device=cuda computes on host copies of the
    device shared values it reads, and its updates go back to device memory."""
    from theon.compile.mode import Mode
    W = theon.shared(np.arange(6.0).reshape(2, 3), "W")
    x = T.vector("x")
    f = theon.function([x], T.dot(W, x), updates=[(W, W * 2)], mode=Mode(linker=linker))
    np.testing.assert_allclose(f(np.ones(3)), [3.0, 12.0])
    assert isinstance(W.get_value(borrow=True, return_internal_type=True), DeviceArray)
    np.testing.assert_allclose(W.get_value(), np.arange(6.0).reshape(2, 3) * 2)
