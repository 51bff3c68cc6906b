"""T.nnet: activations, softmax / log_softmax and the crossentropies against numpy, with the
declared output types checked against the run-time values."""
import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.tensor import nnet

RNG = np.random.default_rng(7)


def rand(shape, dtype="float64", scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def var(ndim, dtype="float64", name=None):
    return T.TensorType(dtype, shape=(None,) * ndim)(name)


@pytest.fixture
def run(run):
    """This file's tolerance (float32 results to 1e-5, the rest to 1e-12); no overflow or
    divide warning may arise while compiling or running."""
    return run.with_defaults(rtol={"float32": 1e-5, "default": 1e-12}, strict_warnings=True)


def np_softmax(a, axis=-1):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(a, axis=-1):
    s = a - a.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


# -- activations --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_softplus(run, dtype):
    x = var(2, dtype, "x")
    a = rand((3, 4), dtype, scale=3)
    a64 = a.astype("float64")
    run([x], nnet.sigmoid(x), [a], (1 / (1 + np.exp(-a64))).astype(dtype))
    run([x], T.sigmoid(x), [a], (1 / (1 + np.exp(-a64))).astype(dtype))
    run([x], nnet.softplus(x), [a], np.log1p(np.exp(a64)).astype(dtype))
    run([x], nnet.sigmoid(x), [np.zeros((0, 4), dtype)], np.zeros((0, 4), dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_softplus_extremes(run, dtype):
    x = var(1, dtype, "x")
    a = np.array([-1000, -100, -30, 0, 30, 100, 1000], dtype=dtype)
    s = run([x], nnet.sigmoid(x), [a], _np_sigmoid(a))
    assert np.isfinite(s).all() and s[0] == 0 and s[-1] == 1
    sp = run([x], nnet.softplus(x), [a], np.logaddexp(0, a.astype("float64")).astype(dtype))
    assert np.isfinite(sp).all()
    assert sp[-1] == 1000


def _np_sigmoid(a):
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-a.astype("float64")))).astype(a.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_relu(run, dtype):
    x = var(2, dtype, "x")
    a = (rand((3, 4), "float64", scale=3)).astype(dtype)
    out = nnet.relu(x)
    assert out.dtype == dtype
    run([x], out, [a], np.maximum(a, 0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha", [0.1, 0.5, -1.0, 2])
def test_relu_alpha(run, dtype, alpha):
    x = var(2, dtype, "x")
    a = rand((3, 4), dtype)
    out = nnet.relu(x, alpha)
    assert out.dtype == dtype
    run([x], out, [a], np.where(a > 0, a, (np.asarray(alpha, dtype) * a)).astype(dtype))


def test_relu_symbolic_alpha(run):
    x = T.vector("x")
    al = T.scalar("al")
    a = rand((5,))
    run([x, al], nnet.relu(x, al), [a, 0.3], np.where(a > 0, a, 0.3 * a))


def test_other_activations(run):
    x = T.vector("x")
    a = rand((6,), scale=3)
    run([x], nnet.elu(x), [a], np.where(a > 0, a, np.expm1(a)))
    run([x], nnet.hard_sigmoid(x), [a], np.clip(a * 0.2 + 0.5, 0, 1), rtol=1e-7)


# -- softmax / log_softmax ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 5), (1, 4), (4, 1), (0, 5), (3, 0)])
def test_softmax_matrix(run, dtype, shape):
    x = var(2, dtype, "x")
    a = rand(shape, dtype, scale=3)
    out = nnet.softmax(x)
    assert out.dtype == dtype
    got = run([x], out, [a], np_softmax(a.astype("float64")).astype(dtype)
              if a.size else a.copy())
    if a.size:
        np.testing.assert_allclose(got.sum(axis=-1), 1, rtol=1e-5)
    run([x], nnet.log_softmax(x), [a], np_log_softmax(a.astype("float64")).astype(dtype)
        if a.size else a.copy())


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_softmax_axis(run, axis):
    x = T.tensor3("x")
    a = rand((2, 3, 4))
    run([x], nnet.softmax(x, axis=axis), [a], np_softmax(a, axis))
    run([x], nnet.log_softmax(x, axis=axis), [a], np_log_softmax(a, axis))


def test_softmax_vector_and_int_input(run):
    v = T.vector("v")
    a = rand((5,))
    # a row, as in Theano (whose softmax took matrices); log_softmax keeps the vector
    out = nnet.softmax(v)
    assert out.broadcastable == (True, False)
    run([v], out, [a], np_softmax(a)[None])
    run([v], nnet.softmax(v, axis=0), [a], np_softmax(a)[None])
    run([v], nnet.log_softmax(v), [a], np.log(np_softmax(a)), rtol=1e-12)
    i = T.imatrix("i")
    b = RNG.integers(-3, 3, size=(2, 3)).astype("int32")
    out = nnet.softmax(i)
    assert out.dtype in ("float32", "float64")
    run([i], out, [b], np_softmax(b.astype("float64")).astype(out.dtype))
    with pytest.raises(TypeError):
        nnet.softmax(T.scalar())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_stable_at_large_magnitude(run, dtype):
    x = var(2, dtype, "x")
    a = np.array([[1000, 999, -1000], [-1000, -1000, -1000], [1000, 1000, 0]], dtype=dtype)
    s = run([x], nnet.softmax(x), [a], np_softmax(a.astype("float64")).astype(dtype))
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s.sum(axis=1), 1, rtol=1e-6)
    ls = run([x], nnet.log_softmax(x), [a], np_log_softmax(a.astype("float64")).astype(dtype))
    assert np.isfinite(ls).all()
    assert ls[0, 2] < -1000


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp(run, dtype):
    x = var(2, dtype, "x")
    a = rand((3, 4), dtype, scale=300)
    a64 = a.astype("float64")
    m = a64.max(axis=1, keepdims=True)
    expect = (np.log(np.exp(a64 - m).sum(axis=1, keepdims=True)) + m)
    run([x], nnet.logsumexp(x, axis=1, keepdims=True), [a], expect.astype(dtype))
    run([x], nnet.logsumexp(x, axis=1), [a], expect[:, 0].astype(dtype))


# -- categorical crossentropy -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ydtype", ["int32", "int64", "uint8"])
def test_categorical_crossentropy_int_labels(run, dtype, ydtype):
    p = var(2, dtype, "p")
    y = T.TensorType(ydtype, shape=(None,))("y")
    probs = np_softmax(rand((4, 3))).astype(dtype)
    labels = np.array([0, 2, 1, 2], dtype=ydtype)
    out = nnet.categorical_crossentropy(p, y)
    assert out.dtype == dtype and out.ndim == 1
    run([p, y], out, [probs, labels], -np.log(probs[np.arange(4), labels]))
    run([p, y], out, [np.zeros((0, 3), dtype), np.zeros(0, ydtype)], np.zeros(0, dtype))


def test_categorical_crossentropy_of_softmax(run):
    x = T.matrix("x")
    y = T.lvector("y")
    a = rand((5, 4), scale=2)
    labels = np.array([3, 0, 1, 1, 2])
    out = nnet.categorical_crossentropy(nnet.softmax(x), y).mean()
    expect = -np_log_softmax(a)[np.arange(5), labels].mean()
    run([x, y], out, [a, labels], expect, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_categorical_crossentropy_one_hot_and_soft_targets(run, dtype):
    p = var(2, dtype, "p")
    t = var(2, dtype, "t")
    probs = np_softmax(rand((4, 3))).astype(dtype)
    onehot = np.eye(3, dtype=dtype)[[0, 2, 1, 2]]
    out = nnet.categorical_crossentropy(p, t)
    assert out.dtype == dtype and out.ndim == 1
    run([p, t], out, [probs, onehot], -(onehot * np.log(probs)).sum(axis=1))
    soft = np_softmax(rand((4, 3))).astype(dtype)
    run([p, t], out, [probs, soft], -(soft * np.log(probs)).sum(axis=1))
    ti = T.imatrix("ti")
    out = nnet.categorical_crossentropy(p, ti)
    assert out.dtype == dtype
    run([p, ti], out, [probs, onehot.astype("int32")], -(onehot * np.log(probs)).sum(axis=1))


def test_categorical_crossentropy_int_predictions_are_floats(run):
    p = T.imatrix("p")
    y = T.ivector("y")
    out = nnet.categorical_crossentropy(p, y)
    assert out.dtype in ("float32", "float64")
    probs = np.array([[1, 2], [3, 1]], dtype="int32")
    run([p, y], out, [probs, np.array([1, 0], dtype="int32")],
        -np.log(np.array([2.0, 3.0])).astype(out.dtype))


def test_categorical_crossentropy_wrong_number_of_targets():
    p = T.matrix("p")
    y = T.lvector("y")
    f = theon.function([p, y], nnet.categorical_crossentropy(p, y))
    with pytest.raises(ValueError) as info:
        f(np_softmax(rand((4, 3))), np.array([0, 1, 2]))
    msg = str(info.value)
    assert "4 rows" in msg and "3 targets" in msg, msg


def test_categorical_crossentropy_static_wrong_number_of_targets():
    p = T.TensorType("float64", shape=(4, 3))("p")
    y = T.TensorType("int64", shape=(3,))("y")
    with pytest.raises(ValueError):
        nnet.categorical_crossentropy(p, y)
    t = T.TensorType("float64", shape=(4, 2))("t")
    with pytest.raises(ValueError):
        nnet.categorical_crossentropy(p, t)


@pytest.mark.parametrize("bad", [3, -1, 10])
def test_categorical_crossentropy_class_out_of_range(bad):
    p = T.matrix("p")
    y = T.lvector("y")
    f = theon.function([p, y], nnet.categorical_crossentropy(p, y))
    with pytest.raises(ValueError) as info:
        f(np_softmax(rand((2, 3))), np.array([0, bad]))
    assert str(bad) in str(info.value) and "3 classes" in str(info.value)


def test_categorical_crossentropy_wrong_target_ndim():
    p = T.matrix("p")
    with pytest.raises(TypeError):
        nnet.categorical_crossentropy(p, T.lscalar("y"))
    with pytest.raises(TypeError):
        nnet.categorical_crossentropy(p, T.ltensor3("y"))
    with pytest.raises(TypeError):
        nnet.categorical_crossentropy(p, T.vector("fy"))  # float labels
    with pytest.raises(TypeError):
        nnet.categorical_crossentropy(T.vector("pv"), T.lvector("y"))
    with pytest.raises(TypeError):
        nnet.crossentropy_categorical_1hot(p, T.lmatrix("y"))


# -- binary crossentropies ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy(run, dtype):
    o = var(2, dtype, "o")
    t = var(2, dtype, "t")
    out_v = _np_sigmoid(rand((3, 4), dtype))
    tgt = (RNG.random((3, 4)) > 0.5).astype(dtype)
    out = nnet.binary_crossentropy(o, t)
    assert out.dtype == dtype
    o64, t64 = out_v.astype("float64"), tgt.astype("float64")
    expect = -(t64 * np.log(o64) + (1 - t64) * np.log(1 - o64))
    run([o, t], out, [out_v, tgt], expect.astype(dtype))
    soft = RNG.random((3, 4)).astype(dtype)
    s64 = soft.astype("float64")
    run([o, t], out, [out_v, soft],
        (-(s64 * np.log(o64) + (1 - s64) * np.log(1 - o64))).astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_binary_crossentropy(run, dtype):
    z = var(1, dtype, "z")
    t = var(1, dtype, "t")
    logits = np.array([-1000, -20, -1, 0, 1, 20, 1000], dtype=dtype)
    tgt = np.array([0, 1, 0.5, 1, 0, 0, 1], dtype=dtype)
    z64, t64 = logits.astype("float64"), tgt.astype("float64")
    expect = np.logaddexp(0, -z64) * t64 + np.logaddexp(0, z64) * (1 - t64)
    out = nnet.sigmoid_binary_crossentropy(z, t)
    assert out.dtype == dtype
    got = run([z, t], out, [logits, tgt], expect.astype(dtype))
    assert np.isfinite(got).all()
    mid = slice(2, 5)  # where the naive formula is accurate, the two agree
    with np.errstate(all="ignore"):  # the naive formula overflows at the ends
        naive = theon.function([z, t], nnet.binary_crossentropy(nnet.sigmoid(z), t))(logits,
                                                                                      tgt)
    np.testing.assert_allclose(got[mid], naive[mid], rtol=1e-4 if dtype == "float32" else 1e-9)


# -- symbolic shapes of results (x.shape goes through each op's infer_shape) ----------------------

@pytest.mark.parametrize("case", ["softmax", "log_softmax", "cce int", "cce onehot"])
def test_symbolic_shape_of_result(case):
    x, y, t = T.matrix("x"), T.lvector("y"), T.matrix("t")
    a, labels, onehot = rand((4, 3)), np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 2]]
    out = {
        "softmax": nnet.softmax(x), "log_softmax": nnet.log_softmax(x),
        "cce int": nnet.categorical_crossentropy(nnet.softmax(x), y),
        "cce onehot": nnet.categorical_crossentropy(nnet.softmax(x), t),
    }[case]
    f = theon.function([x, y, t], [out, out.shape] + [out.shape[i] for i in range(out.ndim)],
                       on_unused_input="ignore")
    value, shp, *dims = f(a, labels, onehot)
    assert tuple(shp) == value.shape
    assert tuple(int(d) for d in dims) == value.shape


@pytest.mark.parametrize("axis", [None, (0, 1), (1, 2), (0, -1)])
def test_softmax_several_axes(run, axis):
    x = T.tensor3("x")
    a = rand((2, 3, 4), scale=2)
    np_axis = axis
    run([x], nnet.softmax(x, axis=axis), [a], np_softmax(a, np_axis))
    run([x], nnet.log_softmax(x, axis=axis), [a], np_log_softmax(a, np_axis))


def test_logsumexp_empty_rows_infinite_rows_and_ints():
    m = T.dmatrix("m")
    f = theon.function([m], T.nnet.logsumexp(m, axis=1))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(f(np.zeros((3, 0))), [-np.inf] * 3)
        got = f(np.array([[1000.0, 1000.0], [-np.inf, -np.inf], [np.inf, 0.0]]))
    np.testing.assert_allclose(got, [1000 + np.log(2), -np.inf, np.inf])
    i = T.ivector("i")
    out = T.nnet.logsumexp(i)
    assert out.dtype == "float64"  # exp of int32 is float64, as Theano promotes
    np.testing.assert_allclose(theon.function([i], out)(np.array([1, 2], dtype="int32")),
                               np.log(np.exp(1) + np.exp(2)))
