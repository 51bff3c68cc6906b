"""Convolution (ops/conv.py) against a loop-by-loop numpy reference written here: every border
mode x subsample x dilation x groups x filter_flip in 2-D and 3-D, the two gradient ops
against their own loop references (the adjoint of the forward loops), gradients and second
order by finite differences, shapes inferred without running, and the errors."""
import itertools
import os

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad
from theon.symbolic.graph import toposort
from theon.tensor.nnet import abstract_conv, conv, conv3d2d

RNG = np.random.default_rng(11)
HERE = os.path.basename(__file__)


def rand(*shape, dtype="float64"):
    return RNG.standard_normal(shape).astype(dtype)


def var(ndim, dtype="float64", name=None):
    return T.TensorType(dtype, shape=(None,) * ndim)(name)


@pytest.fixture
def run(run):
    return run.with_defaults(rtol={"float32": 1e-4, "default": 1e-10}, strict_warnings=True)


# -- the reference: loops over every output element and kernel tap --------------------------------

def _pads(mode, ks, dil):
    nd = len(ks)
    if mode == "valid":
        return [(0, 0)] * nd
    if mode == "full":
        return [((k - 1) * d,) * 2 for k, d in zip(ks, dil)]
    if mode == "half":
        return [(((k - 1) * d + 1) // 2,) * 2 for k, d in zip(ks, dil)]
    if isinstance(mode, int):
        return [(mode, mode)] * nd
    return [(p, p) if isinstance(p, int) else tuple(p) for p in mode]


def _geometry(xshape, wshape, mode, sub, dil):
    ks = wshape[2:]
    pads = _pads(mode, ks, dil)
    padded = [i + lo + hi for i, (lo, hi) in zip(xshape[2:], pads)]
    out = [(p - (k - 1) * d - 1) // s + 1 for p, k, s, d in zip(padded, ks, sub, dil)]
    return pads, padded, out


def _taps(xshape, wshape, mode, sub, dil, groups):
    """Every (output index, input index in the padded input, filter index) product term."""
    n_batch, chans = xshape[:2]
    n_out = wshape[0]
    cg, og = chans // groups, n_out // groups
    _, _, out = _geometry(xshape, wshape, mode, sub, dil)
    for n, o in itertools.product(range(n_batch), range(n_out)):
        g = o // og
        for pos in itertools.product(*map(range, out)):
            for c in range(cg):
                for tap in itertools.product(*map(range, wshape[2:])):
                    idx = tuple(p * s + t * d for p, t, s, d in zip(pos, tap, sub, dil))
                    yield (n, o) + pos, (n, g * cg + c) + idx, (o, c) + tap


def _flip(w, flip):
    return w[(Ellipsis,) + (slice(None, None, -1),) * (w.ndim - 2)] if flip else w


def ref_conv(x, w, mode, sub, dil, groups, flip):
    pads, _, out = _geometry(x.shape, w.shape, mode, sub, dil)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    wf = _flip(w, flip)
    y = np.zeros(x.shape[:1] + w.shape[:1] + tuple(out))
    for yi, xi, wi in _taps(x.shape, w.shape, mode, sub, dil, groups):
        y[yi] += xp[xi] * wf[wi]
    return y


def ref_grad_inputs(w, dy, xshape, mode, sub, dil, groups, flip):
    pads, padded, _ = _geometry(xshape, w.shape, mode, sub, dil)
    dxp = np.zeros(tuple(xshape[:2]) + tuple(padded))
    wf = _flip(w, flip)
    for yi, xi, wi in _taps(xshape, w.shape, mode, sub, dil, groups):
        dxp[xi] += dy[yi] * wf[wi]
    return dxp[(Ellipsis,) + tuple(slice(lo, lo + i) for (lo, _), i in zip(pads, xshape[2:]))]


def ref_grad_weights(x, dy, wshape, mode, sub, dil, groups, flip):
    pads, _, _ = _geometry(x.shape, wshape, mode, sub, dil)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    dw = np.zeros(wshape)
    for yi, xi, wi in _taps(x.shape, wshape, mode, sub, dil, groups):
        dw[wi] += dy[yi] * xp[xi]
    return _flip(dw, flip)


# -- values: every parameter combination ----------------------------------------------------

MODES_2D = ["valid", "full", "half", 1, (1, 2), ((1, 0), (0, 2))]
COMBOS_2D = list(itertools.product(MODES_2D, [(1, 1), (2, 1)], [(1, 1), (2, 1)], [1, 2],
                                   [True, False]))
MODES_3D = ["valid", "full", "half", (1, 0, 2)]
COMBOS_3D = list(itertools.product(MODES_3D, [(1, 1, 1), (2, 1, 2)], [(1, 1, 1), (1, 2, 1)],
                                   [1, 2], [True, False]))


def _check_all_three(run, nd, mode, sub, dil, groups, flip, xshape, wshape):
    x, w = var(nd + 2, name="x"), var(nd + 2, name="w")
    fwd, (gi_op, gw_op) = {2: (T.nnet.conv2d, (abstract_conv.AbstractConv2d_gradInputs,
                                                abstract_conv.AbstractConv2d_gradWeights)),
                           3: (T.nnet.conv3d, (abstract_conv.AbstractConv3d_gradInputs,
                                               abstract_conv.AbstractConv3d_gradWeights))}[nd]
    y = fwd(x, w, border_mode=mode, subsample=sub, filter_dilation=dil, num_groups=groups,
            filter_flip=flip)
    xv, wv = rand(*xshape), rand(*wshape)
    want = ref_conv(xv, wv, mode, sub, dil, groups, flip)
    run([x, w], y, [xv, wv], want)
    # the shape, inferred without computing the convolution
    f = theano.function([x, w], y.shape)
    assert tuple(f(xv, wv)) == want.shape
    assert not any("Conv" in type(n.op).__name__ for n in f.maker.fgraph.toposort())
    # the gradient ops against the adjoint loops
    params = dict(border_mode=mode, subsample=sub, filter_dilation=dil, num_groups=groups,
                  filter_flip=flip)
    dy = var(nd + 2, name="dy")
    dyv = rand(*want.shape)
    gi = gi_op(**params)(w, dy, xshape[2:])
    run([w, dy], gi, [wv, dyv], ref_grad_inputs(wv, dyv, xshape, mode, sub, dil, groups, flip))
    gw = gw_op(**params)(x, dy, wshape[2:])
    run([x, dy], gw, [xv, dyv], ref_grad_weights(xv, dyv, wshape, mode, sub, dil, groups, flip))


@pytest.mark.parametrize("mode,sub,dil,groups,flip", COMBOS_2D)
def test_conv2d_every_combination(run, mode, sub, dil, groups, flip):
    _check_all_three(run, 2, mode, sub, dil, groups, flip, (2, 4, 6, 7), (4, 4 // groups, 3, 2))


@pytest.mark.parametrize("mode,sub,dil,groups,flip", COMBOS_3D)
def test_conv3d_every_combination(run, mode, sub, dil, groups, flip):
    _check_all_three(run, 3, mode, sub, dil, groups, flip, (1, 2, 5, 4, 5),
                     (2, 2 // groups, 2, 2, 3))


def test_float32_stays_float32(run):
    x, w = var(4, "float32"), var(4, "float32")
    y = T.nnet.conv2d(x, w, border_mode="half")
    assert y.dtype == "float32"
    xv, wv = rand(3, 2, 8, 8, dtype="float32"), rand(5, 2, 3, 3, dtype="float32")
    run([x, w], y, [xv, wv], ref_conv(xv.astype(float), wv.astype(float), "half", (1, 1),
                                      (1, 1), 1, True))
    gx, gw = T.grad((y * y).sum(), [x, w])
    assert gx.dtype == gw.dtype == "float32"


def test_kernel_as_large_as_the_input_and_1x1(run):
    x, w = var(4), var(4)
    xv = rand(2, 3, 4, 5)
    for wshape in [(2, 3, 4, 5), (2, 3, 1, 1)]:
        wv = rand(*wshape)
        run([x, w], T.nnet.conv2d(x, w), [xv, wv],
            ref_conv(xv, wv, "valid", (1, 1), (1, 1), 1, True))


def test_depthwise_groups(run):
    x, w = var(4), var(4)
    xv, wv = rand(2, 6, 5, 5), rand(6, 1, 3, 3)
    run([x, w], T.nnet.conv2d(x, w, num_groups=6, border_mode="half"), [xv, wv],
        ref_conv(xv, wv, "half", (1, 1), (1, 1), 6, True))


# -- the other spellings ---------------------------------------------------------------------------

def test_legacy_conv2d_valid_and_full_with_image_shape(run):
    """theano.tensor.nnet.conv.conv2d as the LeNet tutorial calls it."""
    x, w = var(4), var(4)
    xv, wv = rand(3, 1, 10, 9), rand(4, 1, 5, 5)
    for mode in ("valid", "full"):
        y = conv.conv2d(input=x, filters=w, filter_shape=(4, 1, 5, 5),
                        image_shape=(3, 1, 10, 9), border_mode=mode)
        assert y.type.shape[:2] == (3, 4)
        run([x, w], y, [xv, wv], ref_conv(xv, wv, mode, (1, 1), (1, 1), 1, True))
    y = conv.conv2d(x, w, subsample=(2, 2))
    run([x, w], y, [xv, wv], ref_conv(xv, wv, "valid", (2, 2), (1, 1), 1, True))
    with pytest.raises(ValueError, match="'valid' or 'full'"):
        conv.conv2d(x, w, border_mode="half")


def test_abstract_conv_ops_and_functions(run):
    x, w, dy = var(4), var(4), var(4)
    xv, wv = rand(2, 3, 7, 6), rand(4, 3, 3, 3)
    params = dict(border_mode=(1, 0), subsample=(2, 1), filter_flip=False)
    y = abstract_conv.AbstractConv2d(**params)(x, w)
    want = ref_conv(xv, wv, (1, 0), (2, 1), (1, 1), 1, False)
    run([x, w], y, [xv, wv], want)
    run([x, w], abstract_conv.conv2d(x, w, **params), [xv, wv], want)
    dyv = rand(*want.shape)
    gi = abstract_conv.conv2d_grad_wrt_inputs(dy, w, input_shape=(2, 3, 7, 6), **params)
    run([w, dy], gi, [wv, dyv], ref_grad_inputs(wv, dyv, xv.shape, (1, 0), (2, 1), (1, 1), 1,
                                                False))
    # a symbolic input shape, as layers write it (x.shape)
    gi = abstract_conv.conv2d_grad_wrt_inputs(dy, w, input_shape=x.shape, **params)
    run([x, w, dy], gi, [xv, wv, dyv], ref_grad_inputs(wv, dyv, xv.shape, (1, 0), (2, 1),
                                                       (1, 1), 1, False))
    gw = abstract_conv.conv2d_grad_wrt_weights(x, dy, filter_shape=(4, 3, 3, 3), **params)
    run([x, dy], gw, [xv, dyv], ref_grad_weights(xv, dyv, wv.shape, (1, 0), (2, 1), (1, 1), 1,
                                                 False))
    assert abstract_conv.get_conv_output_shape((2, 3, 7, 6), (4, 3, 3, 3), (1, 0), (2, 1)) == \
        want.shape
    assert abstract_conv.get_conv_output_shape((None, 3, 7, 6), (4, 3, 3, 3), "full",
                                               (1, 1), (2, 2)) == (None, 4, 11, 10)


def test_conv3d_grad_functions(run):
    x, w, dy = var(5), var(5), var(5)
    xv, wv = rand(1, 2, 4, 5, 4), rand(3, 2, 2, 3, 2)
    want_shape = (1, 3, 3, 3, 3)
    dyv = rand(*want_shape)
    gi = abstract_conv.conv3d_grad_wrt_inputs(dy, w, xv.shape)
    run([w, dy], gi, [wv, dyv], ref_grad_inputs(wv, dyv, xv.shape, "valid", (1,) * 3, (1,) * 3,
                                                1, True))
    gw = abstract_conv.conv3d_grad_wrt_weights(x, dy, wv.shape)
    run([x, dy], gw, [xv, dyv], ref_grad_weights(xv, dyv, wv.shape, "valid", (1,) * 3,
                                                 (1,) * 3, 1, True))


def test_conv3d2d_layout(run):
    """conv3d2d's (batch, time, channels, rows, cols) layout is conv3d's, transposed."""
    s, f = var(5), var(5)
    sv, fv = rand(2, 5, 3, 6, 5), rand(4, 2, 3, 3, 2)
    order = (0, 2, 1, 3, 4)
    want = ref_conv(sv.transpose(order), fv.transpose(order), "valid", (1,) * 3, (1,) * 3, 1,
                    True).transpose(order)
    y = conv3d2d.conv3d(s, f, signals_shape=sv.shape, filters_shape=fv.shape)
    assert y.type.shape == want.shape
    run([s, f], y, [sv, fv], want)


def test_theano_names():
    import theon.tensor.nnet as nnet
    assert nnet.conv2d is abstract_conv.conv2d and nnet.conv3d is abstract_conv.conv3d
    for name in ("AbstractConv2d", "AbstractConv2d_gradWeights", "AbstractConv2d_gradInputs",
                 "AbstractConv3d", "AbstractConv3d_gradWeights", "AbstractConv3d_gradInputs"):
        assert hasattr(abstract_conv, name)


# -- gradients by finite differences ---------------------------------------------------------------

GRAD_CASES = [
    (2, dict(border_mode="valid"), (2, 2, 5, 4), (3, 2, 3, 2)),
    (2, dict(border_mode="half", subsample=(2, 1), filter_flip=False), (1, 2, 5, 5),
     (2, 2, 3, 3)),
    (2, dict(border_mode=((1, 0), 2), filter_dilation=(2, 1), num_groups=2), (2, 4, 6, 4),
     (2, 2, 2, 2)),
    (2, dict(border_mode="full", subsample=(2, 2)), (1, 1, 4, 5), (2, 1, 3, 2)),
    (3, dict(border_mode="half", subsample=(1, 2, 1), num_groups=2), (1, 2, 3, 4, 3),
     (2, 1, 2, 3, 2)),
]


def _funcs(nd):
    if nd == 2:
        return (T.nnet.conv2d, abstract_conv.AbstractConv2d_gradInputs,
                abstract_conv.AbstractConv2d_gradWeights)
    return (T.nnet.conv3d, abstract_conv.AbstractConv3d_gradInputs,
            abstract_conv.AbstractConv3d_gradWeights)


@pytest.mark.parametrize("nd,params,xshape,wshape", GRAD_CASES)
def test_verify_grad_of_the_three_ops(nd, params, xshape, wshape):
    fwd, gi_op, gw_op = _funcs(nd)
    xv, wv = rand(*xshape), rand(*wshape)
    verify_grad(lambda x, w: fwd(x, w, **params), [xv, wv])
    x, w = var(nd + 2), var(nd + 2)
    yshape = theano.function([x, w], fwd(x, w, **params).shape)(xv, wv)
    dyv = rand(*yshape)
    gi_params = {k: v for k, v in params.items()}
    verify_grad(lambda w, dy: gi_op(**gi_params)(w, dy, xshape[2:]), [wv, dyv])
    verify_grad(lambda x, dy: gw_op(**gi_params)(x, dy, wshape[2:]), [xv, dyv])


def test_second_order_grad_of_a_grad():
    """d/d(x, w) of sum(grad(sum(conv(x, w)^2), w) * c): the gradient ops' own gradients."""
    c = rand(2, 1, 2, 2)

    def fn(x, w):
        y = T.nnet.conv2d(x, w, border_mode="half", subsample=(1, 2))
        gw = T.grad((y * y).sum(), w)
        return (gw * c).sum() + (T.grad((y * y * y).sum(), x) ** 2).sum()
    verify_grad(fn, [rand(1, 1, 3, 4), rand(2, 1, 2, 2)])


def test_gradient_graph_uses_the_gradient_ops():
    x, w = var(4), var(4)
    gx, gw = T.grad(T.nnet.conv2d(x, w).sum(), [x, w])
    names = {type(n.op).__name__ for n in toposort([gx, gw])}
    assert {"AbstractConv2d_gradInputs", "AbstractConv2d_gradWeights"} <= names


# -- shapes ---------------------------------------------------------------------------------------

def test_static_shapes_from_types_and_hints():
    x = T.TensorType("float64", shape=(8, 3, 28, 28))("x")
    w = T.TensorType("float64", shape=(16, 3, 5, 5))("w")
    assert T.nnet.conv2d(x, w).type.shape == (8, 16, 24, 24)
    assert T.nnet.conv2d(x, w, border_mode="full").type.shape == (8, 16, 32, 32)
    assert T.nnet.conv2d(x, w, border_mode="half", subsample=2).type.shape == (8, 16, 14, 14)
    assert T.nnet.conv2d(x, w, filter_dilation=(2, 3)).type.shape == (8, 16, 20, 16)
    y = T.nnet.conv2d(var(4), var(4), input_shape=(None, 3, 28, 28),
                      filter_shape=(16, 3, 5, 5))
    assert y.type.shape == (None, 16, 24, 24)
    gx, gw = T.grad(T.nnet.conv2d(x, w).sum(), [x, w])
    assert gx.type.shape == x.type.shape and gw.type.shape == w.type.shape


def test_symbolic_shapes_inferred_without_running():
    x, w = var(4), var(4)
    y = T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 3), filter_dilation=(1, 2))
    gx, gw = T.grad((y * y).sum(), [x, w])
    f = theano.function([x, w], [y.shape, gx.shape, gw.shape])
    assert not any("Conv" in type(n.op).__name__ for n in f.maker.fgraph.toposort())
    xv, wv = rand(2, 3, 9, 11), rand(4, 3, 3, 2)
    ys, gxs, gws = f(xv, wv)
    want = ref_conv(xv, wv, "half", (2, 3), (1, 2), 1, True).shape
    assert tuple(ys) == want and tuple(gxs) == xv.shape and tuple(gws) == wv.shape


# -- errors ---------------------------------------------------------------------------------------

def test_channel_mismatch_at_build_names_the_line():
    x = T.TensorType("float64", shape=(None, 3, None, None))("x")
    w = T.TensorType("float64", shape=(4, 2, 3, 3))("w")
    with pytest.raises(ValueError, match=rf"3 channels.*expect 2(.|\n)*{HERE}"):
        T.nnet.conv2d(x, w)
    with pytest.raises(ValueError, match="do not split into 3 groups"):
        T.nnet.conv2d(T.TensorType("float64", shape=(None, 6, None, None))(),
                      T.TensorType("float64", shape=(4, 2, 3, 3))(), num_groups=3)


def test_channel_mismatch_at_run_time_names_the_line():
    x, w = var(4), var(4)
    f = theano.function([x, w], T.nnet.conv2d(x, w))
    with pytest.raises(ValueError, match=rf"3 channels but the filters expect 2(.|\n)*{HERE}"):
        f(rand(1, 3, 5, 5), rand(4, 2, 3, 3))
    with pytest.raises(ValueError, match="does not fit"):
        f(rand(1, 2, 2, 5), rand(4, 2, 3, 3))


@pytest.mark.parametrize("mode", ["same", (1, 2, 3), -1, (1.5, 1), ((1, 2, 3), 0)])
def test_bad_border_mode_names_the_line(mode):
    with pytest.raises(ValueError, match=rf"border_mode(.|\n)*{HERE}"):
        T.nnet.conv2d(var(4), var(4), border_mode=mode)


def test_bad_parameters():
    with pytest.raises(ValueError, match="subsample"):
        T.nnet.conv2d(var(4), var(4), subsample=(0, 1))
    with pytest.raises(ValueError, match="filter_dilation"):
        T.nnet.conv3d(var(5), var(5), filter_dilation=(1, 1))
    with pytest.raises(TypeError, match="4 dimensions"):
        T.nnet.conv2d(var(3), var(4))
    with pytest.raises(ValueError, match="built for"):
        theano.function([x := var(4), w := var(4)],
                        T.nnet.conv2d(x, w, input_shape=(1, 2, 5, 5)))(rand(2, 2, 5, 5),
                                                                        rand(1, 2, 3, 3))


def test_empty_batch_and_channels(run):
    x, w = var(4), var(4)
    for xshape, wshape in [((0, 3, 5, 5), (4, 3, 3, 3)), ((2, 0, 5, 5), (4, 0, 3, 3)),
                           ((2, 3, 5, 5), (0, 3, 3, 3))]:
        xv, wv = rand(*xshape), rand(*wshape)
        y = T.nnet.conv2d(x, w, border_mode="half")
        run([x, w], y, [xv, wv], ref_conv(xv, wv, "half", (1, 1), (1, 1), 1, True))
        gx, gw = theano.function([x, w], T.grad((y * y).sum(), [x, w]))(xv, wv)
        assert gx.shape == xshape and gw.shape == wshape


def test_reused_column_buffer_never_shows_in_results():
    """The im2col columns live in a per-thread buffer reused by every call: a result computed
    earlier, or in another thread at the same time, stays what it was."""
    import threading
    x, w = var(4), var(4)
    y = T.nnet.conv2d(x, w, border_mode="half")
    f = theano.function([x, w], [y] + T.grad((y * y).sum(), [x, w]))
    args = [(rand(2, 3, 9, 8), rand(4, 3, 3, 3)), (rand(1, 3, 5, 6), rand(4, 3, 3, 3))]
    want = [[a.copy() for a in f(*a)] for a in args]
    first = f(*args[0])
    f(*args[1])
    for got, expect in zip(first, want[0]):
        np.testing.assert_array_equal(got, expect)
    errors = []

    def work(k):
        for _ in range(20):
            for got, expect in zip(f(*args[k]), want[k]):
                if not np.array_equal(got, expect):
                    errors.append(k)
    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -- the numpy paths: shifted products and threads over the batch --------------------------------

from theon.ops import cblas  # noqa: E402
from theon.ops import conv as conv_impl  # noqa: E402 - the implementation's switches


@pytest.fixture
def shift_always(monkeypatch):
    """Every stride-1 correlation takes the shift path (one product per kernel tap), whatever
    its size."""
    monkeypatch.setattr(conv_impl, "_SHIFT_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_impl, "_SHIFT_MIN_MACS", 0)
    monkeypatch.setattr(conv_impl, "_SHIFT_MAX_WASTE", float("inf"))


@pytest.fixture
def three_threads(monkeypatch):
    """Every convolution splits its batch over three threads, BLAS's thread count mocked."""
    counts = [3]
    monkeypatch.setattr(conv_impl, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(cblas, "_thread_functions", (lambda: counts[-1], counts.append))
    yield counts
    assert counts[-1] == 3  # restored


@pytest.mark.parametrize("mode,sub,groups", list(itertools.product(MODES_2D, [(1, 1), (2, 1)],
                                                                   [1, 2])))
def test_conv2d_per_image_columns(run, monkeypatch, mode, sub, groups):
    """The im2col of one image at a time (taken where the outputs per image are many; the
    small sizes above take the batch-last im2col)."""
    monkeypatch.setattr(conv_impl, "_BATCH_LAST_MAX_POSITIONS", 0)
    _check_all_three(run, 2, mode, sub, (2, 1), groups, True, (2, 4, 6, 7),
                     (4, 4 // groups, 3, 2))


@pytest.mark.parametrize("mode", MODES_3D)
def test_conv3d_per_image_columns(run, monkeypatch, mode):
    monkeypatch.setattr(conv_impl, "_BATCH_LAST_MAX_POSITIONS", 0)
    _check_all_three(run, 3, mode, (2, 1, 2), (1, 2, 1), 2, False, (1, 2, 5, 4, 5),
                     (2, 1, 2, 2, 3))


SHIFT_COMBOS_2D = list(itertools.product(MODES_2D, [(1, 1), (2, 3)], [1, 2], [True, False]))


@pytest.mark.parametrize("mode,dil,groups,flip", SHIFT_COMBOS_2D)
def test_conv2d_shift_path(run, shift_always, mode, dil, groups, flip):
    if not conv_impl.cblas.available("float64"):
        pytest.skip("no CBLAS gemm in numpy's BLAS here")
    _check_all_three(run, 2, mode, (1, 1), dil, groups, flip, (2, 4, 6, 7),
                     (4, 4 // groups, 3, 2))


@pytest.mark.parametrize("mode,dil,groups", list(itertools.product(
    MODES_3D, [(1, 1, 1), (1, 2, 1)], [1, 2])))
def test_conv3d_shift_path(run, shift_always, mode, dil, groups):
    _check_all_three(run, 3, mode, (1, 1, 1), dil, groups, True, (1, 2, 5, 4, 5),
                     (2, 2 // groups, 2, 2, 3))


def _einsum_conv(x, w, pad, sub=(1, 1)):
    """A 2-D correlation (no flip) by einsum over sliding windows: a reference fast enough for
    the sizes where the paths' choice is made by size."""
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", win[:, :, ::sub[0], ::sub[1]], w)


@pytest.mark.skipif(theano.config.device != "cpu", reason=(
    "about the CPU convolution's internals (ops/conv_impl.py): a device runs conv2d as its "
    "own kernels (backends/cuda/pool_conv.py)"))
def test_shift_path_float32_and_size_rule(run, monkeypatch):
    """At a ResNet-like size (64 channels, 3x3, pad 1) the shift path is taken by the sizes
    alone, in float32 and float64, and agrees with a reference; strided, with few channels or
    mostly wasted columns, im2col is."""
    calls = []
    real = conv_impl._correlate_by_shifts
    monkeypatch.setattr(conv_impl, "_correlate_by_shifts",
                        lambda *a: calls.append(1) or real(*a))
    cases = [((2, 64, 20, 20), (64, 64, 3, 3), 1, (1, 1), True),
             ((2, 64, 20, 20), (64, 64, 3, 3), 1, (2, 2), False),
             ((2, 4, 40, 40), (64, 4, 3, 3), 1, (1, 1), False),
             ((2, 64, 20, 20), (64, 64, 1, 9), 0, (1, 1), False)]
    for xshape, wshape, pad, sub, shift in cases:
        for dtype in ("float32", "float64"):
            xv = rand(*xshape, dtype=dtype)
            wv = (rand(*wshape) / np.sqrt(np.prod(wshape[1:]))).astype(dtype)
            x, w = var(4, dtype), var(4, dtype)
            y = T.nnet.conv2d(x, w, border_mode=pad, subsample=sub, filter_flip=False)
            calls.clear()
            run([x, w], y, [xv, wv], _einsum_conv(xv.astype(float), wv.astype(float), pad,
                                                  sub))
            assert bool(calls) == (shift and conv_impl.cblas.available(dtype))


def test_shift_path_ignores_what_the_wasted_columns_read(shift_always):
    """The shift path computes columns past each output row from the next row's input and
    drops them: an inf there must not reach an output that does not read it."""
    x, w = var(4), var(4)
    xv, wv = rand(1, 2, 5, 6), rand(3, 2, 3, 3)
    xv[0, 1, 2, 5] = np.inf  # read by the outputs of column 5-2..5 only (valid: column 3)
    got = theano.function([x, w], T.nnet.conv2d(x, w))(xv, wv)
    want = ref_conv(xv, wv, "valid", (1, 1), (1, 1), 1, True)
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-12)


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("mode,sub,dil,groups,flip", [
    ("half", (1, 1), (1, 1), 1, True), ("full", (2, 1), (1, 2), 2, False),
    (((1, 0), (0, 2)), (1, 1), (2, 1), 2, True), ("valid", (2, 2), (1, 1), 1, False)])
def test_batch_split_over_threads(run, three_threads, monkeypatch, shift, mode, sub, dil,
                                  groups, flip):
    """Four, one or no images over three threads: every image once, the forward pass and both
    gradients (the filter gradient sums the threads' parts); BLAS's thread count restored."""
    if shift:
        monkeypatch.setattr(conv_impl, "_SHIFT_MIN_CHANNELS", 1)
        monkeypatch.setattr(conv_impl, "_SHIFT_MIN_MACS", 0)
        monkeypatch.setattr(conv_impl, "_SHIFT_MAX_WASTE", float("inf"))
    for batch in (4, 1):
        _check_all_three(run, 2, mode, sub, dil, groups, flip, (batch, 4, 6, 7),
                         (4, 4 // groups, 3, 2))
    x, w = var(4), var(4)
    y = T.nnet.conv2d(x, w, border_mode=mode, subsample=sub, filter_dilation=dil,
                      num_groups=groups, filter_flip=flip)
    gx, gw = theano.function([x, w], T.grad((y * y).sum(), [x, w]))(
        rand(0, 4, 6, 7), rand(4, 4 // groups, 3, 2))
    assert gx.shape == (0, 4, 6, 7) and not gw.any()


@pytest.mark.skipif(theano.config.device != "cpu", reason=(
    "about the CPU convolution's internals (ops/conv_impl.py): a device runs conv2d as its "
    "own kernels (backends/cuda/pool_conv.py)"))
def test_threads_restore_blas_after_an_error(three_threads, monkeypatch):
    """An error in a thread's part is raised to the caller, after every part has ended and
    BLAS's thread count is back."""
    real = conv_impl._columns
    seen = []

    def failing(xp, *args):
        seen.append(xp.shape[0])
        if len(seen) == 2:
            raise MemoryError("part")
        return real(xp, *args)
    monkeypatch.setattr(conv_impl, "_columns", failing)
    monkeypatch.setattr(conv_impl, "_BATCH_LAST_MAX_POSITIONS", 0)
    x, w = var(4), var(4)
    f = theano.function([x, w], T.nnet.conv2d(x, w))
    with pytest.raises(MemoryError, match="part"):
        f(rand(6, 2, 5, 5), rand(3, 2, 3, 3))
    assert sorted(seen) == [2, 2, 2] and three_threads[-1] == 3


def test_real_blas_threads_restored():
    """With numpy's own BLAS (where its thread count is reachable), a convolution large
    enough to split leaves the count as it found it."""
    functions = cblas.thread_functions()
    if not functions:
        pytest.skip("numpy's BLAS thread count is not reachable here")
    before = functions[0]()
    x, w = var(4, "float32"), var(4, "float32")
    y = T.nnet.conv2d(x, w, border_mode="half")
    f = theano.function([x, w], [y] + T.grad((y * y).sum(), [x, w]))
    xv, wv = rand(8, 32, 16, 16, dtype="float32"), rand(32, 32, 3, 3, dtype="float32")
    got = f(xv, wv)
    assert functions[0]() == before
    want = ref_conv(xv[:1].astype(float), wv.astype(float), "half", (1, 1), (1, 1), 1, True)
    np.testing.assert_allclose(got[0][:1], want, rtol=1e-4, atol=1e-4)


FORK_CHILD = """
import os, signal
import numpy as np
from theon.ops import cblas, conv
conv._PARALLEL_MIN_MACS = 0
cblas._thread_functions = (lambda: 3, lambda n: None)
op = conv.AbstractConv2d(border_mode="half")
x, w = np.random.rand(6, 2, 5, 5), np.random.rand(3, 2, 3, 3)
want = op._forward(x, w)
assert conv._pools, "the parent ran no threads"
pid = os.fork()
if pid == 0:
    code = 3
    try:
        signal.alarm(60)
        code = 0 if np.allclose(op._forward(x, w), want) else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_threads_in_a_forked_child(run_python):
    """A child forked after a convolution has run its threads runs convolutions too (the
    parent's pool has no threads in the child); in a fresh process, which has no other
    library's threads to fork."""
    done = run_python(FORK_CHILD)
    assert done.returncode == 0, done.stderr
    assert "child 0" in done.stdout
