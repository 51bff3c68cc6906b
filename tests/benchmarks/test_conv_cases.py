"""The convolution benchmark cases (benchmarks/conv_cases.py) at a tiny size: the numpy
reference is the convolution and its gradients (against a direct loop and finite differences),
theon and PyTorch (where installed) agree with it, and the cases run through the benchmark
machinery."""
import itertools
from functools import partial

import numpy as np
import pytest
from theon import benchmarks
from theon.benchmarks import conv_cases

TINY = (3, 2, 4, 6, 3, 1)  # batch, in, out channels, side, kernel, padding


def _float64(d):
    return {k: v.astype("float64") if isinstance(v, np.ndarray) else v for k, v in d.items()}


def _loop_correlation(x, w, pad):
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    n, c, h, _ = xp.shape
    o, _, k, _ = w.shape
    out = h - k + 1
    y = np.zeros((n, o, out, out))
    for b, f, i, j in itertools.product(range(n), range(o), range(out), range(out)):
        y[b, f, i, j] = (xp[b, :, i:i + k, j:j + k] * w[f]).sum()
    return y


@pytest.mark.parametrize("pad", [0, 1])
def test_numpy_reference_is_the_correlation_and_its_gradients(pad):
    d = _float64(conv_cases.conv_data(*TINY[:5], pad, seed=1))
    x, w, dy = d["x"], d["w"], d["dy"]
    y, gx, gw = conv_cases.numpy_conv_grads(x, w, dy, pad)
    np.testing.assert_allclose(y, _loop_correlation(x, w, pad), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_cases.numpy_conv_forward(x, w, pad), y, rtol=1e-12)
    eps = 1e-6
    for value, grad in ((x, gx), (w, gw)):
        num = np.zeros_like(value)
        for idx in np.ndindex(*value.shape):
            for sign in (1, -1):
                saved = value[idx]
                value[idx] = saved + sign * eps
                num[idx] += sign * (_loop_correlation(x, w, pad) * dy).sum() / (2 * eps)
                value[idx] = saved
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-7)


def test_theon_and_torch_agree_with_numpy_at_a_tiny_size():
    d = conv_cases.conv_data(*TINY)
    want = conv_cases.numpy_conv_grads(*conv_cases._args(d), dy=d["dy"], pad=d["pad"])
    builders = [conv_cases.theon_grads]
    if benchmarks.available("torch"):
        builders.append(conv_cases.torch_grads)
    for build in builders:
        bench = build(d)
        got = bench.fn(*bench.args)
        got = bench.result(got) if bench.result else got
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-5)
        # a second call (PyTorch's gradients must not accumulate)
        again = bench.fn(*bench.args)
        again = bench.result(again) if bench.result else again
        np.testing.assert_allclose(np.asarray(again[2]), want[2], rtol=1e-4, atol=1e-5)


def test_the_cases_run_at_a_tiny_size():
    names = {c.name for c in conv_cases.CONV_CASES}
    assert names == {f"conv_{n}_{k}" for n in conv_cases.CONV_SIZES
                     for k in ("forward", "grads")}
    from theon.benchmarks.cases import CASES
    assert names <= {c.name for c in CASES}
    tiny = [benchmarks.Case(c.name, c.description, partial(conv_cases.conv_data, *TINY),
                            c.theon, c.numpy, c.pytensor, c.jax, rtol=c.rtol, atol=c.atol,
                            torch=c.torch) for c in conv_cases.CONV_CASES[:2]]
    for case in tiny:
        result = benchmarks.run_case(case, benchmarks.QUICK)  # checks every impl's value
        assert result.times["theon"] > 0 and result.times["numpy"] > 0
        assert (result.times["torch"] is not None) == benchmarks.available("torch")
    assert "theon/torch" in benchmarks.table([result]).splitlines()[0]
