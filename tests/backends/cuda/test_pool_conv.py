"""Pooling and 2-D convolution on the device (backends/cuda/pool_conv.py), on the CPU
stand-in: each op and its gradients give the CPU backend's result, a LeNet-like training step
runs with no op on the host, and the kernels' 64-bit-index variants compute the same."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon import config
from theon.backends import dialect as D
from theon.backends.cuda import pool_conv
from theon.ops.pool import DownsampleFactorMaxGradGrad, MaxPoolGrad, Pool
from theon.tensor.signal.pool import pool_2d

TOL = {"float32": 2e-5, "float64": 1e-11}


def _cpu_and_device(build, values, dtype: str):
    """``theon.function(*build())`` on the CPU and on the device (assert_no_cpu_op=raise);
    every output compared, the device function returned."""
    config.device = "cpu"
    want = theon.function(*build())(*values)
    config.device, config.assert_no_cpu_op = "cuda", "raise"
    try:
        f = theon.function(*build())
        got = f(*values)
    finally:
        config.assert_no_cpu_op = "ignore"
    assert f.fn.host_ops == []
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype], err_msg=f"output {k}")
    return f


def test_pooling_of_every_mode_and_its_gradient_match_the_cpu(device):
    """Each mode with padding and overlapping windows, and without the border ignored
    (partial windows at the end, of a transposed input); the gradients of the input (rank 3:
    one leading axis), in float32 (float64: the tests below)."""
    dtype = "float32"
    def build():
        x = T.tensor3("x", dtype=dtype)
        outs = []
        for mode in ("max", "sum", "average_inc_pad", "average_exc_pad"):
            for ib, stride, pad in ((True, (2, 1), (1, 1)), (False, (2, 3), (0, 0))):
                a = x if ib else x.dimshuffle(0, 2, 1)  # (a transposed, non-contiguous view)
                p = pool_2d(a, ws=(3, 2), ignore_border=ib, stride=stride, pad=pad, mode=mode)
                outs += [p, T.grad((p * p).sum(), x)]
        return [x], outs
    x = np.random.default_rng(0).normal(size=(2, 7, 6)).astype(dtype)
    _cpu_and_device(build, [x], dtype)


def test_max_pooling_ties_nan_and_the_gradient_of_its_gradient(device):
    """Every element equal to its window's maximum gets the gradient (ties: all of them), a
    NaN wins its window and gets none; the grad-grad sums ggx over the maxima."""
    def build():
        x, gg = T.tensor3("x"), T.tensor3("gg")
        p = Pool(True, "max")(x, (2, 3), (1, 2), (1, 1))
        return [x, gg], [p, MaxPoolGrad(True)(x, p, p * 2, (2, 3), (1, 2), (1, 1)),
                         DownsampleFactorMaxGradGrad(True)(x, p, gg, (2, 3), (1, 2), (1, 1))]
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(2, 5, 7)).astype("float64")
    x[0, 0, 0] = np.nan
    _cpu_and_device(build, [x, rng.normal(size=x.shape)], "float64")


# (border_mode, subsample, filter_dilation, filter_flip, num_groups, batch, dtype)
CONVS = [("valid", (1, 1), (1, 1), True, 1, 2, "float32"),
         ((1, 2), (2, 1), (1, 2), True, 1, 3, "float64"),
         ("half", (1, 2), (1, 1), False, 2, 1, "float64"),
         ("full", (2, 2), (2, 1), True, 2, 2, "float64")]


@pytest.mark.parametrize("case", CONVS, ids=[f"{c[0]}-{c[-1]}" for c in CONVS])
def test_conv2d_and_its_gradients_match_the_cpu(device, case):
    """The convolution and both gradients (gradInputs, gradWeights) of a transposed, so
    non-contiguous, input."""
    mode, sub, dil, flip, groups, batch, dtype = case

    def build():
        x, w = T.tensor4("x", dtype=dtype), T.tensor4("w", dtype=dtype)
        c = T.nnet.conv2d(x.dimshuffle(0, 1, 3, 2), w, border_mode=mode, subsample=sub,
                          filter_dilation=dil, filter_flip=flip, num_groups=groups)
        return [x, w], [c, *T.grad((c * c).sum(), [x, w])]
    rng = np.random.default_rng(2)
    values = [rng.normal(size=(batch, 4, 6, 5)).astype(dtype),
              rng.normal(size=(4, 4 // groups, 3, 2)).astype(dtype)]
    _cpu_and_device(build, values, dtype)


def _lenet(dtype: str):
    """conv 5x5 -> 2x2 max pool -> relu -> conv 3x3 -> average pool -> relu -> dense ->
    softmax, and an SGD step on all of its weights."""
    rng = np.random.default_rng(3)

    def weight(*shape):
        return theon.shared((rng.normal(size=shape) * 0.3).astype(dtype))
    x, y = T.tensor4("x", dtype=dtype), T.ivector("y")
    w1, w2, w3 = weight(4, 1, 5, 5), weight(6, 4, 3, 3), weight(6 * 2 * 2, 3)
    h1 = T.nnet.relu(pool_2d(T.nnet.conv2d(x, w1), ws=(2, 2), ignore_border=True))
    h2 = T.nnet.relu(pool_2d(T.nnet.conv2d(h1, w2, border_mode="half"), ws=(2, 2),
                             ignore_border=True, mode="average_exc_pad"))
    p = T.nnet.softmax(T.dot(h2.flatten(2), w3))
    loss = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    params = [w1, w2, w3]
    step = theon.function([x, y], loss, updates=[(w, w - np.asarray(0.1, dtype) * g) for w, g
                                                 in zip(params, T.grad(loss, params))])
    return step, params


def test_a_lenet_like_training_step_runs_whole_on_the_device(device):
    """assert_no_cpu_op=raise accepts the step (convolutions, pools and their gradients on
    the device); its losses and weights after two steps are the CPU's."""
    dtype = "float32"
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 1, 12, 12)).astype(dtype)
    y = rng.integers(0, 3, 3).astype("int32")
    config.device = "cpu"
    step, params = _lenet(dtype)
    want = [float(step(x, y)) for _ in range(2)]
    want_w = [p.get_value() for p in params]
    config.device, config.assert_no_cpu_op = "cuda", "raise"
    try:
        step, params = _lenet(dtype)
    finally:
        config.assert_no_cpu_op = "ignore"
    ops = {type(n.op).__name__ for n in step.maker.fgraph.toposort()}
    assert {"AbstractConv2d", "AbstractConv2d_gradWeights", "AbstractConv2d_gradInputs",
            "Pool", "MaxPoolGrad", "AveragePoolGrad"} <= ops
    got = [float(step(x, y)) for _ in range(2)]
    assert step.fn.host_ops == []
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for p, w in zip(params, want_w):
        np.testing.assert_allclose(p.get_value(), w, rtol=1e-4, atol=1e-6)


def test_launches_too_large_for_32_bit_indices_use_the_64_bit_variant(device, monkeypatch):
    """With the 32-bit limit at 0, every kernel takes its 64-bit variant (compiled alone
    when first needed) and computes the same."""
    monkeypatch.setattr(pool_conv, "_INT32_LIMIT", 0)
    widths = []

    def spy(render):
        def rendered(*args):
            widths.append(args[-1])  # index32
            return render(*args)
        return rendered
    for name in ("render_pool", "render_im2col", "render_col2im"):
        monkeypatch.setattr(pool_conv, name, spy(getattr(pool_conv, name)))

    def build():
        x, w = T.tensor4("x"), T.tensor4("w")
        c = T.nnet.conv2d(x, w, border_mode=1, subsample=(2, 1))
        p = pool_2d(c, ws=(2, 2), ignore_border=False, mode="average_inc_pad")
        return [x, w], [p, *T.grad((p * p).sum(), [x, w])]
    rng = np.random.default_rng(5)
    _cpu_and_device(build, [rng.normal(size=(2, 2, 5, 4)), rng.normal(size=(3, 2, 2, 2))],
                    "float64")
    # the forward pool, its gradient, im2col twice, col2im: each in both widths
    assert widths.count(True) == 5 and widths.count(False) == 5


def test_a_batch_whose_columns_are_too_large_is_convolved_in_slices(device, monkeypatch):
    """With room for the columns of two images, a batch of five runs in three slices (the
    filter gradient adding theirs): the same results."""
    monkeypatch.setattr(pool_conv, "COLUMN_BYTES", 2 * 3 * 4 * 20 * 8)  # (C kh kw OH OW)

    def build():
        x, w = T.tensor4("x"), T.tensor4("w")
        c = T.nnet.conv2d(x, w, subsample=(1, 2))
        return [x, w], [c, *T.grad((c * c).sum(), [x, w])]
    assert pool_conv._slices(5, 3 * 4 * 20 * 8) == [(0, 2), (2, 4), (4, 5)]
    rng = np.random.default_rng(6)
    _cpu_and_device(build, [rng.normal(size=(5, 3, 6, 9)), rng.normal(size=(2, 3, 2, 2))],
                    "float64")


def test_shapes_the_op_refuses_raise_the_cpu_error(device):
    x, w = T.tensor4("x"), T.tensor4("w")
    f = theon.function([x, w], T.nnet.conv2d(x, w))
    with pytest.raises(ValueError, match="channels"):
        f(np.ones((1, 3, 5, 5)), np.ones((2, 2, 3, 3)))
    g = theon.function([x], pool_2d(x, ws=(2, 2), ignore_border=True))
    assert g(np.ones((1, 1, 1, 1))).shape == (1, 1, 0, 0)  # no window fits: empty


POOL_KINDS = ("max", "sum", "average_inc_pad", "average_exc_pad", "gradgrad", "grad_max",
              "grad_sum", "grad_average_inc_pad", "grad_average_exc_pad")


@pytest.mark.host_only
def test_every_pooling_and_convolution_kernel_compiles_with_nvrtc(request, tmp_path_factory):
    """The NVRTC gate of the elementwise kernels (tests/backends/test_cuda_kernels.py: sm_80
    and sm_90, an empty log, clean compiles remembered in pytest's cache) on every variant
    these modules render: each pooling kind and im2col/col2im either way of filter_flip in
    32-bit indices for both dtypes, and in 64-bit for float64. (What a device function puts
    in its module, LeNet's step included, is also gated with ptxas's spill report:
    tests/backends/cuda/test_backend.py.)"""
    path = Path(__file__).resolve().parents[1] / "test_cuda_kernels.py"
    spec = importlib.util.spec_from_file_location("theon_test_cuda_kernels_for_pool", path)
    gate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate)
    nvrtc = gate._nvrtc()
    jobs = []
    for dtype, index32 in (("float32", True), ("float64", True), ("float64", False)):
        kernels = [pool_conv.render_pool(kind, dtype, f"pool_{kind}", index32)
                   for kind in POOL_KINDS]
        for flip in (False, True):
            kernels += [pool_conv.render_im2col(dtype, f"im2col{int(flip)}", flip, index32),
                        pool_conv.render_col2im(dtype, f"col2im{int(flip)}", flip, index32)]
        source = D.CUDA.prelude([dtype]) + "\n".join(kernels)
        jobs += [(f"{dtype} index32={index32}", source, (f"-arch={arch}",))
                 for arch in gate.ARCHS]
    results = gate._compile_all(nvrtc, jobs, gate._cache_dir(request, tmp_path_factory,
                                                             "theon_nvrtc"))
    bad = [f"{label} {options}: {'compiled' if ok else 'FAILED'} with log:\n{log[:3000]}"
           for label, options, ok, log in results if not ok or log.strip()]
    assert not bad, "\n\n".join(bad)
    assert len(results) == 6
