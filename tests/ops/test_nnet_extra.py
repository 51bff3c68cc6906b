"""Theano's remaining nnet helpers (selu, softsign, logsoftmax, h_softmax, batch normalization)
and extra_ops (bincount, to_one_hot, searchsorted, nonzero, diff) against numpy; gradients by
finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad
from theon.ops import nnet as N
from theon.tensor import extra_ops
from theon.tensor.nnet import bn

_rng = np.random.default_rng(5)


def _r(*shape):
    return _rng.standard_normal(shape)


# -- activations --------------------------------------------------------------------------------

def test_selu_softsign_logsoftmax_values():
    x = T.matrix()
    v = _r(4, 5) * 3
    a, b, c = theano.function([x], [N.selu(x), N.softsign(x), N.logsoftmax(x)])(v)
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    np.testing.assert_allclose(a, scale * np.where(v > 0, v, alpha * np.expm1(v)), rtol=1e-14)
    np.testing.assert_allclose(b, v / (1 + np.abs(v)), rtol=1e-14)
    want = v - v.max(1, keepdims=True)
    want -= np.log(np.exp(want).sum(1, keepdims=True))
    np.testing.assert_allclose(c, want, rtol=1e-13)


def test_theano_names():
    for name in ("selu", "softsign", "logsoftmax", "h_softmax", "batch_normalization"):
        assert getattr(T.nnet, name) is getattr(N, name)
    assert T.nnet.bn is bn


def test_activations_keep_float32():
    x = T.fmatrix()
    for out in (N.selu(x), N.softsign(x), N.logsoftmax(x), N.relu(x, 0.1)):
        assert out.dtype == "float32"


@pytest.mark.parametrize("fn", [N.selu, N.softsign, N.logsoftmax])
def test_activation_gradients(fn):
    v = _r(3, 4) * 2
    v[np.abs(v) < 0.1] = 0.5  # away from the kinks of selu and softsign
    verify_grad(fn, [v])


def test_h_softmax_against_numpy():
    batch, dim, n_classes, per_class, n_outputs = 4, 3, 3, 4, 10
    x, W1, b1, W2, b2 = T.matrix(), T.matrix(), T.vector(), T.tensor3(), T.matrix()
    y = T.lvector()
    full = N.h_softmax(x, batch, n_outputs, n_classes, per_class, W1, b1, W2, b2)
    picked = N.h_softmax(x, batch, n_outputs, n_classes, per_class, W1, b1, W2, b2, target=y)
    vals = [_r(batch, dim), _r(dim, n_classes), _r(n_classes), _r(n_classes, dim, per_class),
            _r(n_classes, per_class)]
    yv = np.array([0, 9, 5, 3])
    got_full, got_picked = theano.function([x, W1, b1, W2, b2, y], [full, picked])(*vals, yv)

    def soft(a):
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    xv, w1, c1, w2, c2 = vals
    cls = soft(xv @ w1 + c1)
    within = soft(np.einsum("bd,cdo->bco", xv, w2) + c2)
    want = (cls[:, :, None] * within).reshape(batch, -1)[:, :n_outputs]
    np.testing.assert_allclose(got_full, want, rtol=1e-12)
    np.testing.assert_allclose(got_picked, want[np.arange(batch), yv], rtol=1e-12)


# -- batch normalization ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["low_mem", "high_mem"])
def test_batch_normalization(mode):
    x, g, b, m, s = T.matrix(), T.row(), T.row(), T.row(), T.row()
    vals = [_r(5, 3), _r(1, 3), _r(1, 3), _r(1, 3), np.abs(_r(1, 3)) + 0.5]
    got = theano.function([x, g, b, m, s], bn.batch_normalization(x, g, b, m, s, mode))(*vals)
    xv, gv, bv, mv, sv = vals
    np.testing.assert_allclose(got, (xv - mv) * (gv / sv) + bv, rtol=1e-13)
    with pytest.raises(ValueError, match="low_mem"):
        N.batch_normalization(x, g, b, m, s, mode="fast")


def _np_bn(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return mean, var, 1 / np.sqrt(var + eps)


@pytest.mark.parametrize("axes,shape", [("per-activation", (6, 3)), ("spatial", (4, 3, 2, 5)),
                                        ((0, 2), (4, 3, 5)), ("per-activation", (4, 3, 2))])
@pytest.mark.parametrize("reduced", [False, True])
def test_batch_normalization_train(axes, shape, reduced):
    ndim = len(shape)
    ax = {"per-activation": (0,), "spatial": (0,) + tuple(range(2, ndim))}.get(axes, axes)
    kept = tuple(d for d in range(ndim) if d not in ax)
    pshape = tuple(shape[d] for d in kept) if reduced else tuple(
        1 if d in ax else shape[d] for d in range(ndim))
    x = T.TensorType("float64", shape=(None,) * ndim)()
    params = [T.TensorType("float64", shape=tuple(1 if s == 1 else None for s in pshape))()
              for _ in range(4)]
    gamma, beta, rmean, rvar = params
    outs = bn.batch_normalization_train(x, gamma, beta, axes, 1e-3, 0.3, rmean, rvar)
    assert len(outs) == 5
    for o in outs[1:]:
        assert o.ndim == len(pshape)
    vals = [_r(*shape)] + [_r(*pshape) for _ in range(3)] + [np.abs(_r(*pshape)) + 0.1]
    got = theano.function([x] + params, list(outs))(*vals)
    xv, gv, bv, rmv, rvv = vals
    mean, var, invstd = _np_bn(xv, ax, 1e-3)

    def full(p):  # a parameter laid out like x
        return p.reshape([shape[d] if d in kept else 1 for d in range(ndim)])

    def back(p):  # a statistic laid out like the parameters
        return p.reshape(pshape)
    m = np.prod([shape[d] for d in ax])
    np.testing.assert_allclose(got[0], (xv - mean) * full(gv) * invstd + full(bv), rtol=1e-12)
    np.testing.assert_allclose(got[1], back(mean), rtol=1e-12)
    np.testing.assert_allclose(got[2], back(invstd), rtol=1e-12)
    np.testing.assert_allclose(got[3], rmv * 0.7 + back(mean) * 0.3, rtol=1e-12)
    np.testing.assert_allclose(got[4], rvv * 0.7 + back(var) * m / (m - 1) * 0.3, rtol=1e-12)
    # without running averages: three outputs
    assert len(bn.batch_normalization_train(x, gamma, beta, axes)) == 3


def test_batch_normalization_train_gradients():
    g, b = _r(1, 3), _r(1, 3)

    def out(x, gamma, beta):
        return bn.batch_normalization_train(x, gamma, beta, "per-activation")[0] ** 2
    verify_grad(out, [_r(5, 3), g, b])
    verify_grad(lambda x: bn.batch_normalization_train(
        x, T.constant(np.ones(3)), T.constant(np.zeros(3)), "spatial")[2].sum() * x,
        [_r(4, 3, 2)])


def test_batch_normalization_test_and_refusals():
    x = T.tensor4()
    params = [T.vector() for _ in range(4)]
    out = bn.batch_normalization_test(x, *params, axes="spatial", epsilon=1e-5)
    vals = [_r(2, 3, 4, 5), _r(3), _r(3), _r(3), np.abs(_r(3)) + 0.1]
    got = theano.function([x] + params, out)(*vals)
    xv, gv, bv, mv, vv = (v if v.ndim == 4 else v.reshape(1, 3, 1, 1) for v in vals)
    np.testing.assert_allclose(got, (xv - mv) * gv / np.sqrt(vv + 1e-5) + bv, rtol=1e-12)
    with pytest.raises(ValueError, match="epsilon must be at least 1e-5"):
        bn.batch_normalization_train(x, params[0], params[1], "spatial", epsilon=1e-6)
    with pytest.raises(ValueError, match="both be given"):
        bn.batch_normalization_train(x, params[0], params[1], "spatial",
                                     running_mean=params[2])
    with pytest.raises(ValueError, match="dimensionality"):
        bn.batch_normalization_train(x, params[0], T.matrix(), "spatial")
    with pytest.raises(ValueError, match="invalid axes"):
        bn.batch_normalization_train(x, params[0], params[1], "everything")
    with pytest.raises(ValueError, match="less than ndim"):
        bn.batch_normalization_test(x, *params, axes=(0, 4))


def test_batch_normalization_keeps_float32():
    x = T.ftensor4()
    gamma, beta = T.fvector(), T.fvector()
    outs = bn.batch_normalization_train(x, gamma, beta, "spatial", running_mean=T.fvector(),
                                        running_var=T.fvector())
    assert [o.dtype for o in outs] == ["float32"] * 5


# -- extra_ops ----------------------------------------------------------------------------------

def test_bincount():
    x, w = T.ivector(), T.vector()
    outs = [extra_ops.bincount(x), extra_ops.bincount(x, w), extra_ops.bincount(x, minlength=9),
            extra_ops.bincount(x, w, minlength=2)]
    assert [o.dtype for o in outs] == ["int32", "float64", "int32", "float64"]
    f = theano.function([x, w], outs + [o.shape for o in outs])
    xv = np.array([3, 0, 3, 5, 1, 3], dtype="int32")
    wv = _r(6)
    got = f(xv, wv)
    want = [np.bincount(xv), np.bincount(xv, wv), np.bincount(xv, minlength=9),
            np.bincount(xv, wv, minlength=2)]
    for g, wnt, s in zip(got[:4], want, got[4:]):
        np.testing.assert_allclose(g, wnt, rtol=1e-14)
        assert tuple(s) == wnt.shape
    empty = f(np.zeros(0, dtype="int32"), np.zeros(0))
    assert [e.shape for e in empty[:4]] == [(0,), (0,), (9,), (2,)]
    assert [tuple(s) for s in empty[4:]] == [(0,), (0,), (9,), (2,)]
    with pytest.raises(ValueError, match="negative"):
        f(np.array([1, -1], dtype="int32"), np.ones(2))
    with pytest.raises(TypeError, match="dimension 1"):
        extra_ops.bincount(T.imatrix())
    verify_grad(lambda w: extra_ops.bincount(T.constant(xv), w, minlength=8), [wv])


def test_to_one_hot():
    y = T.lvector()
    a, b = extra_ops.to_one_hot(y, 4), extra_ops.to_one_hot(y, 4, dtype="int8")
    assert (a.dtype, b.dtype) == ("float64", "int8")
    got = theano.function([y], [a, b])(np.array([2, 0, 3, 3]))
    np.testing.assert_array_equal(got[0], np.eye(4)[[2, 0, 3, 3]])
    np.testing.assert_array_equal(got[1], np.eye(4, dtype="int8")[[2, 0, 3, 3]])
    with pytest.raises(TypeError, match="int labels"):
        extra_ops.to_one_hot(T.vector(), 3)


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted(side):
    x, v, s = T.vector(), T.matrix(), T.lvector()
    plain = extra_ops.searchsorted(x, v, side=side)
    sorted_by = extra_ops.searchsorted(x, v, side=side, sorter=s)
    assert plain.dtype == "int64" and plain.ndim == 2
    f = theano.function([x, v, s], [plain, sorted_by, plain.shape])
    xv = np.array([1.0, 2.0, 2.0, 5.0])
    vv = np.array([[0.5, 2.0, 7.0], [1.0, 5.0, 2.5]])
    perm = np.array([3, 1, 0, 2])
    got = f(xv, vv, np.arange(4))
    np.testing.assert_array_equal(got[0], np.searchsorted(xv, vv, side=side))
    unsorted = xv[perm]
    order = np.argsort(unsorted, kind="stable")
    np.testing.assert_array_equal(f(unsorted, vv, order)[1],
                                  np.searchsorted(unsorted, vv, side=side, sorter=order))
    assert tuple(got[2]) == (2, 3)
    with pytest.raises(ValueError, match="side"):
        extra_ops.searchsorted(x, v, side="middle")
    with pytest.raises(ValueError, match="vector"):
        extra_ops.searchsorted(v, x)


def test_nonzero():
    m = T.matrix()
    rows, cols = extra_ops.nonzero(m)
    mat = extra_ops.nonzero(m, return_matrix=True)
    flat, vals = extra_ops.flatnonzero(m), extra_ops.nonzero_values(m)
    f = theano.function([m], [rows, cols, mat, flat, vals, mat.shape])
    v = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    got = f(v)
    np.testing.assert_array_equal(got[0], np.nonzero(v)[0])
    np.testing.assert_array_equal(got[1], np.nonzero(v)[1])
    np.testing.assert_array_equal(got[2], np.array(np.nonzero(v)))
    np.testing.assert_array_equal(got[3], np.flatnonzero(v))
    np.testing.assert_array_equal(got[4], v[v != 0])
    assert tuple(got[5]) == (2, 3)
    assert all(g.dtype == np.int64 for g in got[:4])
    empty = f(np.zeros((2, 3)))
    assert empty[2].shape == (2, 0) and tuple(empty[5]) == (2, 0)
    # the shape is known without running Nonzero
    g = theano.function([m], mat.shape)
    assert not any(isinstance(n.op, extra_ops.Nonzero) for n in g.maker.fgraph.toposort())
    with pytest.raises(ValueError, match="non-scalar"):
        extra_ops.nonzero(T.scalar())
    with pytest.raises(ValueError, match="non-scalar"):
        extra_ops.flatnonzero(T.scalar())


def test_diff_and_reexports():
    x = T.matrix()
    v = _r(4, 5)
    got = theano.function([x], [extra_ops.diff(x), extra_ops.diff(x, 2, axis=0)])(v)
    np.testing.assert_allclose(got[0], np.diff(v), rtol=1e-14)
    np.testing.assert_allclose(got[1], np.diff(v, 2, axis=0), rtol=1e-14)
    verify_grad(lambda x: extra_ops.diff(x, 2, axis=0), [v])
    assert extra_ops.cumsum is T.cumsum and extra_ops.cumprod is T.cumprod
    assert extra_ops.repeat is T.repeat
    assert T.extra_ops is extra_ops and T.nonzero is extra_ops.nonzero
    assert T.flatnonzero is extra_ops.flatnonzero


def test_nonzero_and_searchsorted_have_no_gradient():
    x = T.vector()
    cost = T.cast(extra_ops.searchsorted(x, x), "float64").sum() + \
        T.cast(extra_ops.flatnonzero(x), "float64").sum() + x.sum()
    g = theano.function([x], T.grad(cost, x))(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, np.ones(3))


# -- special functions (rows of ops/scalar.py) -----------------------------------------------------

def _mp_ref(fn, dps=30):
    import mpmath

    def ref(a):
        with mpmath.workdps(dps):
            return np.array([float(fn(mpmath, mpmath.mpf(float(v)))) for v in np.ravel(a)]
                            ).reshape(np.shape(a))
    return ref


SPECIAL = {
    "gamma": (_mp_ref(lambda mp, v: mp.gamma(v)), np.r_[-4.5:6:0.37]),
    "gammaln": (_mp_ref(lambda mp, v: mp.log(abs(mp.gamma(v)))), np.r_[-4.5:60:0.93]),
    "psi": (_mp_ref(lambda mp, v: mp.digamma(v)), np.r_[-4.5:60:0.93]),
    "tri_gamma": (_mp_ref(lambda mp, v: mp.polygamma(1, v)), np.r_[-4.5:60:0.93]),
    "erfinv": (_mp_ref(lambda mp, v: mp.erfinv(v)),
               np.r_[-0.999:1:0.0371, 1 - 1e-15, -1 + 1e-12, 1e-300]),
    "erfcinv": (_mp_ref(lambda mp, v: mp.erfinv(1 - v), dps=330),  # 1 - 1e-300 exactly
                np.r_[0.001:2:0.0371, 1e-300, 1e-100, 2 - 1e-15]),
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_functions_against_mpmath(name):
    ref, points = SPECIAL[name]
    x = T.vector()
    got = theano.function([x], getattr(T, name)(x))(points)
    np.testing.assert_allclose(got, ref(points), rtol=1e-12, atol=1e-13)
    y = T.fvector()
    out = getattr(T, name)(y)
    assert out.dtype == "float32"
    got32 = theano.function([y], out)(points.astype("float32"))
    want32 = ref(points.astype("float32").astype("float64"))
    finite = np.isfinite(want32) & (np.abs(want32) < 1e30)
    np.testing.assert_allclose(got32[finite], want32[finite], rtol=1e-5, atol=1e-6)


def test_special_function_poles_and_domains():
    x = T.vector()
    f = theano.function([x], [T.gamma(x), T.gammaln(x), T.psi(x), T.erfinv(x), T.erfcinv(x)])
    with np.errstate(all="ignore"):
        g, lg, p, ei, eci = f(np.array([0.0, -1.0, 1.0, 2.0, -0.0]))
    assert g[0] == np.inf and np.isnan(g[1]) and g[4] == -np.inf
    assert lg[0] == np.inf and lg[1] == np.inf
    assert p[0] == -np.inf and np.isnan(p[1])
    assert ei[2] == np.inf and np.isnan(ei[3]) and ei[1] == -np.inf
    assert eci[0] == np.inf and eci[3] == -np.inf and np.isnan(eci[1])


@pytest.mark.parametrize("name,lo,hi", [("gamma", 0.5, 3), ("gammaln", 0.5, 3), ("psi", 0.5, 3),
                                        ("erfinv", -0.9, 0.9), ("erfcinv", 0.1, 1.9)])
def test_special_function_gradients(name, lo, hi):
    fn = getattr(T, name)
    verify_grad(fn, [_rng.uniform(lo, hi, (3, 4))])
    if name != "psi":  # psi's gradient, tri_gamma, has none
        verify_grad(lambda x: T.grad(fn(x).sum(), x), [_rng.uniform(lo, hi, (3, 4))])


def test_numpy_only_rows_stay_out_of_fused_kernels():
    """erfinv has no C template: on the C backend its node stays a numpy Elemwise while the work
    around it fuses."""
    from theon.ops.elemwise import Elemwise
    from theon.ops.fused import Fused
    x = T.vector()
    f = theano.function([x], T.exp(T.erfinv(x * 0.5) + 1) * 2, mode=theano.Mode(linker="c"))
    nodes = f.maker.fgraph.toposort()
    assert any(type(n.op) is Elemwise and n.op.scalar_op.name == "erfinv" for n in nodes)
    assert not any(isinstance(n.op, Fused) and "erfinv" in str(n.op) for n in nodes)
    v = np.linspace(-0.9, 0.9, 7)
    np.testing.assert_allclose(f(v), np.exp(_mp_ref(lambda mp, t: mp.erfinv(t))(v * 0.5) + 1) * 2,
                               rtol=1e-13)
