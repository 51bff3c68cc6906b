"""Pooling (ops/pool.py, ``theano.tensor.signal.pool``) against a loop over windows written
here from Theano 1.0's definition, gradients against finite differences."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad
from theon.tensor.signal import downsample
from theon.tensor.signal.pool import (
    AveragePoolGrad,
    DownsampleFactorMaxGradGrad,
    MaxPoolGrad,
    Pool,
    max_pool_2d_same_size,
    pool_2d,
    pool_3d,
)

MODES = ["max", "sum", "average_inc_pad", "average_exc_pad"]
_rng = np.random.default_rng(11)


# -- the reference: one window at a time ----------------------------------------------------------

def _windows(n, ws, st, pad, ignore_border):
    """Per pooled axis: (start, end) of each window in the padded axis (Theano's rule)."""
    out = []
    for length, w, s, p in zip(n, ws, st, pad):
        padded = length + 2 * p
        if ignore_border:
            count = max((padded - w) // s + 1, 0)
        elif s >= w:
            count = (padded - 1) // s + 1
        else:
            count = max(0, (padded - 1 - w + s) // s) + 1
        out.append([(j * s, min(j * s + w, padded)) for j in range(count)])
    return out


def ref_pool(x, nd, ws, st, pad, ignore_border, mode):
    lead, n = x.shape[:-nd], x.shape[-nd:]
    wins = _windows(n, ws, st, pad, ignore_border)
    out = np.zeros(lead + tuple(len(w) for w in wins))
    for k in np.ndindex(*lead):
        for r in itertools.product(*(range(len(w)) for w in wins)):
            inside, size_inc = [], 1
            for d, j in enumerate(r):
                s, e = wins[d][j]
                size_inc *= e - s
                inside.append(slice(max(s - pad[d], 0), min(e - pad[d], n[d])))
            vals = x[k][tuple(inside)]
            if mode == "max":
                out[k + r] = vals.max()
            elif mode == "sum":
                out[k + r] = vals.sum()
            elif mode == "average_exc_pad":
                out[k + r] = vals.mean()
            else:
                out[k + r] = vals.sum() / size_inc
    return out.astype(x.dtype)


def ref_max_grad(x, gz, nd, ws, st, pad, ignore_border):
    """Every element equal to its window's maximum gets the window's gradient (ties too)."""
    lead, n = x.shape[:-nd], x.shape[-nd:]
    wins = _windows(n, ws, st, pad, ignore_border)
    gx = np.zeros(x.shape)
    for k in np.ndindex(*lead):
        for r in itertools.product(*(range(len(w)) for w in wins)):
            ranges = [range(max(wins[d][j][0] - pad[d], 0), min(wins[d][j][1] - pad[d], n[d]))
                      for d, j in enumerate(r)]
            m = max(x[k + c] for c in itertools.product(*ranges))
            for c in itertools.product(*ranges):
                if x[k + c] == m:
                    gx[k + c] += gz[k + r]
    return gx


def _var(shape, dtype="float64"):
    return T.TensorType(dtype, shape=(None,) * len(shape))("x")


def _configs(nd):
    wss = [(2,) * nd, (3,) * nd, (3, 1, 2)[:nd]]
    strides = [None, (1,) * nd, (2, 3, 1)[:nd]]
    pads = [(0,) * nd, (1, 0, 1)[:nd], (2, 1, 0)[:nd]]
    for ws, st, pad, ib in itertools.product(wss, strides, pads, (True, False)):
        if (any(pad) and not ib) or any(p >= w for p, w in zip(pad, ws)):
            continue
        yield ws, st, pad, ib


CONFIGS_2D = list(_configs(2))
CONFIGS_3D = list(_configs(3))


# -- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (6, 5), (1, 4, 1)])
def test_pool_2d_every_option_matches_the_loop(mode, shape):
    x = _var(shape)
    # small integers: many ties for max, exact sums
    v = _rng.integers(-3, 4, size=shape).astype("float64")
    outs = [pool_2d(x, ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
            for ws, st, pad, ib in CONFIGS_2D]
    got = theano.function([x], outs)(v)
    for (ws, st, pad, ib), g, out in zip(CONFIGS_2D, got, outs):
        want = ref_pool(v, 2, ws, ws if st is None else st, pad, ib, mode)
        assert g.shape == want.shape, (ws, st, pad, ib)
        np.testing.assert_allclose(g, want, rtol=1e-12, err_msg=str((ws, st, pad, ib)))
        assert g.dtype == out.dtype == v.dtype


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(2, 4, 5, 6), (3, 4, 5), (1, 2, 1, 3, 4)])
def test_pool_3d_every_option_matches_the_loop(mode, shape):
    x = _var(shape)
    v = _rng.integers(-3, 4, size=shape).astype("float64")
    outs = [pool_3d(x, ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
            for ws, st, pad, ib in CONFIGS_3D]
    got = theano.function([x], outs)(v)
    for (ws, st, pad, ib), g in zip(CONFIGS_3D, got):
        want = ref_pool(v, 3, ws, ws if st is None else st, pad, ib, mode)
        np.testing.assert_allclose(g, want, rtol=1e-12, err_msg=str((ws, st, pad, ib)))


def test_theano_1_0_5_values():
    """Printed by Theano 1.0.5 (its Python perform) for this input."""
    x = T.matrix()
    v = np.array([[1., -2, 3, 0, 5], [4, 4, -1, 2, 2], [0, 7, 1, 1, -3], [2, 2, 8, 0, 1]])
    f = theano.function([x], [
        pool_2d(x, (2, 2), ignore_border=False),
        pool_2d(x, (3, 2), ignore_border=True, stride=(1, 2), pad=(1, 1),
                mode="average_inc_pad"),
        pool_2d(x, (3, 2), ignore_border=True, stride=(1, 2), pad=(1, 1),
                mode="average_exc_pad"),
        pool_2d(x, (2, 3), ignore_border=False, stride=(1, 1), mode="sum")])
    a, b, c, d = f(v)
    np.testing.assert_array_equal(a, [[4, 3, 5], [7, 8, 1]])
    np.testing.assert_allclose(b * 6, [[5, 4, 9], [5, 12, 7], [6, 21, 3], [2, 18, -1]])
    np.testing.assert_allclose(c * 6, [[15, 6, 13.5], [10, 12, 7], [12, 21, 3], [6, 27, -1.5]])
    np.testing.assert_array_equal(d, [[9, 6, 11], [15, 14, 2], [20, 19, 8]])


@pytest.mark.parametrize("dtype", ["float32", "int32", "int8"])
@pytest.mark.parametrize("mode", MODES)
def test_dtypes_are_kept(dtype, mode):
    shape = (2, 5, 6)
    x = _var(shape, dtype)
    v = _rng.integers(-5, 6, size=shape).astype(dtype)
    out = pool_2d(x, (2, 3), ignore_border=False, stride=(2, 2), mode=mode)
    got = theano.function([x], out)(v)
    assert out.dtype == got.dtype == dtype
    want = ref_pool(v.astype("float64"), 2, (2, 3), (2, 2), (0, 0), False, mode)
    if dtype == "float32":
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        # averages of integers are truncated toward zero, as assigning into Theano's int output
        np.testing.assert_array_equal(got, np.trunc(want).astype(dtype))


def test_max_pool_2d_same_size():
    x = T.tensor4()
    v = _rng.integers(-3, 4, size=(2, 2, 5, 6)).astype("float64")
    got = theano.function([x], max_pool_2d_same_size(x, (2, 3)))(v)
    # keeps each patch's maxima (every tied one), zero elsewhere; the cut border row is dropped
    z = ref_pool(v, 2, (2, 3), (2, 3), (0, 0), True, "max")
    want = ref_max_grad(v, z, 2, (2, 3), (2, 3), (0, 0), True)
    np.testing.assert_array_equal(got, want)
    assert np.all(got[..., 4, :] == 0)


def test_old_downsample_names():
    x = T.tensor4()
    v = _rng.standard_normal((1, 2, 5, 5))
    with pytest.warns(DeprecationWarning):
        out = downsample.max_pool_2d(x, (2, 2), ignore_border=True)
    np.testing.assert_array_equal(theano.function([x], out)(v),
                                  ref_pool(v, 2, (2, 2), (2, 2), (0, 0), True, "max"))
    assert downsample.DownsampleFactorMax is Pool


# -- Theano's keywords, defaults, warnings and refusals ------------------------------------------

def test_ignore_border_defaults_to_false_with_theanos_warning():
    x = T.matrix()
    with pytest.warns(UserWarning, match="ignore_border default value changed to True") as rec:
        out = pool_2d(x, (2, 2))
    assert rec[0].filename == __file__  # points at the caller's line
    assert out.owner.op == Pool(False, "max", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool_2d(x, (2, 2), ignore_border=True)
        pool_3d(T.tensor3(), (2, 2, 2), ignore_border=False)


def test_deprecated_names_and_stride_default():
    x = T.matrix()
    v = _rng.standard_normal((7, 6))
    with pytest.warns(UserWarning, match="'ds' parameter"):
        a = pool_2d(x, ds=(3, 2), ignore_border=True)
    with pytest.warns(UserWarning, match="'st' parameter"):
        b = pool_2d(x, (3, 2), st=(1, 1), ignore_border=True)
    with pytest.warns(UserWarning, match="'padding' parameter"):
        c = pool_2d(x, (3, 2), padding=(1, 1), ignore_border=True, mode="sum")
    got = theano.function([x], [a, b, c])(v)
    np.testing.assert_allclose(got[0], ref_pool(v, 2, (3, 2), (3, 2), (0, 0), True, "max"))
    np.testing.assert_allclose(got[1], ref_pool(v, 2, (3, 2), (1, 1), (0, 0), True, "max"))
    np.testing.assert_allclose(got[2], ref_pool(v, 2, (3, 2), (3, 2), (1, 1), True, "sum"))
    with pytest.raises(ValueError, match="both 'ws' and 'ds'"):
        pool_2d(x, (2, 2), ds=(2, 2), ignore_border=True)
    with pytest.raises(ValueError, match="both 'stride' and 'st'"):
        pool_2d(x, (2, 2), stride=(1, 1), st=(1, 1), ignore_border=True)
    with pytest.raises(ValueError, match="window size"):
        pool_2d(x, ignore_border=True)


def test_refusals():
    x = T.matrix()
    with pytest.raises(NotImplementedError, match="ignore_border=True"):
        pool_2d(x, (2, 2), pad=(1, 1), ignore_border=False)
    with pytest.raises(NotImplementedError, match="smaller than the window"):
        pool_2d(x, (2, 2), pad=(2, 0), ignore_border=True)
    with pytest.raises(NotImplementedError, match="dimension >= 3"):
        pool_3d(x, (2, 2, 2), ignore_border=True)
    with pytest.raises(ValueError, match="Pool mode parameter only support"):
        pool_2d(x, (2, 2), ignore_border=True, mode="median")
    with pytest.raises(ValueError, match="2 values for ws"):
        pool_2d(x, (2, 2, 2), ignore_border=True)
    with pytest.raises(TypeError, match="vector of ints"):
        pool_2d(x, (2.0, 2.0), ignore_border=True)
    assert Pool(True, "average").mode == "average_inc_pad"


def test_symbolic_window_stride_and_pad():
    x, ws, st, pad = T.tensor4(), T.lvector(), T.lvector(), T.lvector()
    out = Pool(True, "average_exc_pad")(x, ws, st, pad)
    f = theano.function([x, ws, st, pad], [out, out.shape])
    v = _rng.standard_normal((2, 3, 7, 6))
    got, shape = f(v, [3, 2], [2, 1], [1, 1])
    np.testing.assert_allclose(got, ref_pool(v, 2, (3, 2), (2, 1), (1, 1), True,
                                             "average_exc_pad"))
    assert tuple(shape) == got.shape
    with pytest.raises(NotImplementedError, match="smaller than the window"):
        f(v, [3, 2], [2, 1], [1, 2])


# -- shapes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ib", [True, False])
def test_shapes_inferred_without_pooling(ib):
    x = T.tensor4()
    outs = [pool_2d(x, ws, ignore_border=ib, stride=st, pad=pad if ib else (0, 0))
            for ws, st, pad in [((2, 2), None, (0, 0)), ((3, 2), (1, 2), (1, 1)),
                                ((3, 3), (2, 2), (2, 1)), ((5, 4), (3, 1), (0, 0))]]
    f = theano.function([x], [o.shape for o in outs])
    assert not any(isinstance(n.op, Pool) for n in f.maker.fgraph.toposort())
    g = theano.function([x], outs)
    for shape in [(2, 3, 7, 6), (1, 1, 1, 1), (2, 1, 4, 9), (0, 2, 5, 5)]:
        v = _rng.standard_normal(shape)
        for s, o in zip(f(v), g(v)):
            assert tuple(s) == o.shape


def test_static_shapes():
    x = T.TensorType("float64", shape=(2, None, 7, 5))()
    assert pool_2d(x, (2, 2), ignore_border=True).type.shape == (2, None, 3, 2)
    assert pool_2d(x, (2, 2), ignore_border=False).type.shape == (2, None, 4, 3)
    assert pool_2d(x, (3, 2), ignore_border=True, stride=(1, 1),
                   pad=(1, 1)).type.shape == (2, None, 7, 6)
    assert Pool(True)(x, T.lvector()).type.shape == (2, None, None, None)
    assert Pool.out_shape((2, 3, 7, 5), (2, 2), True) == [2, 3, 3, 2]


# -- gradients ------------------------------------------------------------------------------------

def _distinct(*shape):
    """Values far apart (finite differences never cross a tie)."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.1 - n * 0.05).reshape(shape)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nd", [2, 3])
def test_gradients_by_finite_differences(mode, nd):
    configs = CONFIGS_2D if nd == 2 else CONFIGS_3D
    shape = (2, 5, 6) if nd == 2 else (1, 4, 5, 4)
    v = _distinct(*shape)
    for ws, st, pad, ib in configs[::2] if nd == 3 else configs:
        def fn(x, ws=ws, st=st, pad=pad, ib=ib):
            pool = pool_2d if nd == 2 else pool_3d
            return pool(x, ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
        verify_grad(fn, [v], n_tests=1)


def test_max_gradient_goes_to_every_tied_maximum():
    x = T.tensor3()
    v = _rng.integers(-2, 3, size=(2, 6, 7)).astype("float64")
    for ws, st, pad, ib in CONFIGS_2D:
        stride = ws if st is None else st
        out = pool_2d(x, ws, ignore_border=ib, stride=st, pad=pad)
        gz = T.tensor3()
        g = theano.function([x, gz], T.grad((out * gz).sum(), x))
        gzv = _rng.standard_normal(ref_pool(v, 2, ws, stride, pad, ib, "max").shape)
        np.testing.assert_allclose(g(v, gzv), ref_max_grad(v, gzv, 2, ws, stride, pad, ib),
                                   rtol=1e-12, atol=1e-12, err_msg=str((ws, st, pad, ib)))


@pytest.mark.parametrize("ws,st,pad,ib", [((2, 2), None, (0, 0), True),
                                          ((3, 2), (1, 2), (1, 1), True),
                                          ((3, 3), (2, 1), (0, 0), False)])
def test_second_order_max(ws, st, pad, ib):
    v = _distinct(2, 5, 6)
    gzv = _rng.standard_normal(ref_pool(v, 2, ws, ws if st is None else st, pad, ib,
                                        "max").shape)

    def pooled(x):
        return pool_2d(x, ws, ignore_border=ib, stride=st, pad=pad)

    # the grad of the grad (through MaxPoolGrad's gz: DownsampleFactorMaxGradGrad)
    verify_grad(lambda x: T.grad((pooled(x) ** 2).sum(), x), [v], n_tests=1)
    # MaxPoolGrad in its gradient input, and DownsampleFactorMaxGradGrad in its own
    verify_grad(lambda x, gz: MaxPoolGrad(ib)(x, pooled(x), gz, ws, st, pad), [v, gzv],
                n_tests=1)
    verify_grad(lambda x, ggx: DownsampleFactorMaxGradGrad(ib)(x, pooled(x), ggx, ws, st, pad),
                [v, _rng.standard_normal(v.shape)], n_tests=1)
    # the gradient of DownsampleFactorMaxGradGrad in ggx is MaxPoolGrad again
    x, ggx = T.tensor3(), T.tensor3()
    gg = DownsampleFactorMaxGradGrad(ib)(x, pooled(x), ggx, ws, st, pad)
    back = T.grad((gg * gg).sum(), ggx)
    assert isinstance(back.owner.op, MaxPoolGrad) or any(
        isinstance(n.op, MaxPoolGrad) for n in theano.function([x, ggx], back).maker
        .fgraph.toposort())


@pytest.mark.parametrize("mode", ["sum", "average_inc_pad", "average_exc_pad"])
def test_second_order_average(mode):
    v = _distinct(2, 5, 6)
    gzv = _rng.standard_normal(ref_pool(v, 2, (3, 2), (1, 2), (1, 1), True, mode).shape)
    verify_grad(lambda gz: AveragePoolGrad(True, mode)(T.constant(v), gz, (3, 2), (1, 2),
                                                       (1, 1)), [gzv], n_tests=1)


@pytest.mark.parametrize("mode", MODES)
def test_rop_matches_finite_differences(mode):
    x, ev = T.tensor3(), T.tensor3()
    out = pool_2d(x, (3, 2), ignore_border=True, stride=(1, 2), pad=(1, 1), mode=mode)
    f = theano.function([x, ev], T.Rop(out, x, ev), on_unused_input="ignore")
    fx = theano.function([x], out)
    v, d = _distinct(2, 5, 6), _rng.standard_normal((2, 5, 6))
    fd = (fx(v + 1e-6 * d) - fx(v - 1e-6 * d)) / 2e-6
    np.testing.assert_allclose(f(v, d), fd, rtol=1e-6, atol=1e-6)


def test_gradient_ops_infer_shapes():
    x, gz = T.tensor4(), T.tensor4()
    z = pool_2d(x, (3, 2), ignore_border=False, stride=(2, 1))
    outs = [MaxPoolGrad(False)(x, z, gz, (3, 2), (2, 1)),
            AveragePoolGrad(False, "sum")(x, gz, (3, 2), (2, 1)),
            DownsampleFactorMaxGradGrad(False)(x, z, x, (3, 2), (2, 1))]
    f = theano.function([x, gz], [o.shape for o in outs], on_unused_input="ignore")
    assert not any(isinstance(n.op, (Pool, MaxPoolGrad, AveragePoolGrad,
                                     DownsampleFactorMaxGradGrad))
                   for n in f.maker.fgraph.toposort())
    v = _rng.standard_normal((2, 1, 7, 5))
    gv = _rng.standard_normal((2, 1, 3, 4))
    assert [tuple(s) for s in f(v, gv)] == [v.shape, v.shape, gv.shape]
