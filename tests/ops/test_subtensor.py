"""Indexing: basic and advanced ``x[...]``, set_subtensor / inc_subtensor, errors, aliasing;
checked against numpy, with the declared output type checked against the run-time value."""
import os

import numpy as np
import pytest
import theon
import theon.tensor as T

RNG = np.random.default_rng(4321)


THIS_FILE = os.path.basename(__file__)


def rand(shape, dtype="float64"):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def tensor(dtype, ndim, name="x", shape=None):
    return T.TensorType(dtype, shape=shape or (None,) * ndim)(name)


# -- basic indexing -----------------------------------------------------------------------------

BASIC = [
    (0,), (-1,), (1, 2), (-2, -1), (slice(1, 3),), (slice(None, None, 2),),
    (slice(None, None, -1),), (slice(3, 0, -2),), (slice(-3, None),), (slice(10, 20),),
    (slice(None), 1), (slice(None), slice(1, None, 2)), (None,), (None, 0), (slice(None), None),
    (Ellipsis, 0), (0, Ellipsis), (Ellipsis,), (Ellipsis, None), (1, Ellipsis, slice(None, 2)),
    (slice(0, 0),), (1, 2, 3), (None, Ellipsis, None),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int8"])
@pytest.mark.parametrize("index", BASIC, ids=[str(i) for i in BASIC])
def test_basic_constant_index(run, dtype, index):
    x = tensor(dtype, 3)
    a = rand((4, 5, 6), dtype)
    run([x], x[index], [a], a[index])


@pytest.mark.parametrize("index", BASIC, ids=[str(i) for i in BASIC])
def test_basic_static_shape(run, index):
    x = tensor("float64", 3, shape=(4, 5, 6))
    out = x[index]
    assert all(s is not None for s in out.type.shape), out.type
    a = rand((4, 5, 6))
    run([x], out, [a], a[index])


def test_single_int_gives_0d_array(run):
    x = T.vector("x")
    a = rand((3,))
    got = run([x], x[1], [a], a[1])
    assert got.shape == ()
    m = T.imatrix("m")
    b = rand((2, 3), "int32")
    run([m], m[1, 2], [b], b[1, 2])
    # a 0-d result used further down the graph
    run([m], m[1, 2] * 2 + m[0, 0], [b], b[1, 2] * 2 + b[0, 0])


def test_symbolic_scalar_indices_and_slice_bounds(run):
    x = T.matrix("x")
    i, j, k = T.lscalars("i", "j", "k")
    a = rand((5, 6))
    f = theon.function([x, i], x[i])
    for v in (0, 3, -1, -5):
        run.check(f(a, v), x[i], a[v])
    run([x, i, j], x[i, j], [a, 2, -3], a[2, -3])
    out = x[i:j]
    f = theon.function([x, i, j], out)
    for lo, hi in ((1, 4), (-4, -1), (4, 1), (0, 10)):
        run.check(f(a, lo, hi), out, a[lo:hi])
    out = x[i:j:k, ::k]
    f = theon.function([x, i, j, k], out)
    for lo, hi, st in ((0, 5, 2), (4, 0, -1), (4, -6, -2), (1, 1, 1)):
        run.check(f(a, lo, hi, st), out, a[lo:hi:st, ::st])
    out = x[:, i:]
    run([x, i], out, [a, 2], a[:, 2:])
    ii = T.iscalar("ii")
    run([x, ii], x[ii, 1:ii], [a, 3], a[3, 1:3])
    b8 = T.bscalar("b8")
    run([x, b8], x[b8], [a, 1], a[1])


def test_symbolic_slice_static_shape(run):
    x = tensor("float64", 2, shape=(5, 6))
    i = T.lscalar("i")
    out = x[i:, 1:3]
    assert out.type.shape == (None, 2)
    a = rand((5, 6))
    run([x, i], out, [a, 2], a[2:, 1:3])


def test_zero_step_slice_error():
    x = T.vector("x")
    k = T.lscalar("k")
    f = theon.function([x, k], x[::k])
    with pytest.raises(ValueError):
        f(rand((3,)), 0)


def test_index_size_zero(run):
    x = T.matrix("x")
    a = np.zeros((0, 3))
    run([x], x[:, 1], [a], a[:, 1])
    run([x], x[1:], [a], a[1:])
    run([x], x[::-1, None], [a], a[::-1, None])


def test_index_errors_at_build_time():
    x = T.matrix("x")
    with pytest.raises(IndexError):
        x[0, 0, 0]
    with pytest.raises(IndexError):
        x[..., 0, ...]
    with pytest.raises(TypeError):
        x[T.scalar("f")]
    with pytest.raises(IndexError):
        x[T.vector("fv")]
    with pytest.raises(TypeError):
        x[T.lvector("v"):]
    with pytest.raises(IndexError):
        x[True]


def test_index_out_of_bounds_runtime_error():
    x = T.matrix("x")
    i = T.lscalar("i")
    out = x[i]  # the user's line
    line = out.trace[1]
    f = theon.function([x, i], out)
    with pytest.raises(IndexError) as info:
        f(np.zeros((2, 3)), 5)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "Subtensor" in msg, msg
    assert f"{THIS_FILE}:{line}" in msg, msg
    v = T.lvector("v")
    out = x[v]
    line = out.trace[1]
    f = theon.function([x, v], out)
    with pytest.raises(IndexError) as info:
        f(np.zeros((2, 3)), np.array([0, 2]))
    assert isinstance(info.value, ValueError)
    assert f"{THIS_FILE}:{line}" in str(info.value)
    assert "Subtensor" in str(info.value)


def test_constant_index_out_of_bounds_runtime_error():
    x = T.matrix("x")
    out = x[3]
    f = theon.function([x], out)
    with pytest.raises(IndexError) as info:
        f(np.zeros((2, 3)))
    assert isinstance(info.value, ValueError)
    assert THIS_FILE in str(info.value)


# -- aliasing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [(0,), (slice(1, 3),), (slice(None),), (Ellipsis,),
                                   (None,), (slice(None, None, -1), 1)])
def test_result_does_not_alias_input(index):
    x = T.matrix("x")
    f = theon.function([x], x[index])
    a = np.zeros((3, 4))
    r = f(a)
    r[...] = 5.0
    assert (a == 0).all()
    # the input must not have been modified by the call either, and a second call is fresh
    r2 = f(a)
    assert (r2 == 0).all()


def test_symbolic_index_result_does_not_alias_input():
    x = T.matrix("x")
    i = T.lscalar("i")
    f = theon.function([x, i], x[i:, ::2])
    a = np.zeros((3, 4))
    r = f(a, 1)
    r[...] = 5.0
    assert (a == 0).all()


def test_index_of_view_of_input_does_not_alias():
    x = T.tensor3("x")
    f = theon.function([x], x.dimshuffle(2, 0, 1)[0].T[1:])
    a = np.zeros((2, 3, 4))
    r = f(a)
    r[...] = 1
    assert (a == 0).all()


# -- advanced indexing --------------------------------------------------------------------------

def test_arange_pairs_indexing(run):
    x = T.matrix("x")
    y = T.lvector("y")
    out = x[T.arange(x.shape[0]), y]
    a = rand((4, 3))
    labels = np.array([0, 2, 1, 2])
    run([x, y], out, [a, labels], a[np.arange(4), labels])
    run([x, y], out, [np.zeros((0, 3)), np.zeros(0, dtype="int64")], np.zeros(0))


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "int8"])
def test_vector_index(run, dtype):
    x = T.matrix("x")
    y = T.TensorType(dtype, shape=(None,))("y")
    a = rand((4, 3))
    idx = np.array([2, 0, 0, 1], dtype=dtype)
    run([x, y], x[y], [a, idx], a[idx])
    run([x, y], x[:, y[:2]], [a, idx], a[:, idx[:2]])
    if dtype != "uint8":
        neg = np.array([-1, -4], dtype=dtype)
        run([x, y], x[y], [a, neg], a[neg])


def test_advanced_mixed_with_slices_and_newaxis(run):
    x = T.tensor3("x")
    y = T.lvector("y")
    z = T.lmatrix("z")
    a = rand((4, 5, 6))
    iy = np.array([1, 3, 3])
    iz = np.array([[0, 1], [2, 3]])
    cases = [
        lambda t, p, q: t[p],
        lambda t, p, q: t[:, p],
        lambda t, p, q: t[1:3, p, ::2],
        lambda t, p, q: t[..., p],
        lambda t, p, q: t[p, :, p],        # non-adjacent -> broadcast dims go first
        lambda t, p, q: t[p, 1:, p],
        lambda t, p, q: t[:, p, p],
        lambda t, p, q: t[q],
        lambda t, p, q: t[:, q, 1],
        lambda t, p, q: t[q, 2],
        lambda t, p, q: t[1, :, q],        # int and array separated by a slice
        lambda t, p, q: t[None, p],
        lambda t, p, q: t[p, None],
        lambda t, p, q: t[::-1, q[0]],
    ]
    for case in cases:
        out = case(x, y, z)
        f = theon.function([x, y, z], out, on_unused_input="ignore")
        run.check(f(a, iy, iz), out, case(a, iy, iz))


def test_constant_index_arrays(run):
    x = T.matrix("x")
    a = rand((4, 3))
    run([x], x[[0, 0, 2]], [a], a[[0, 0, 2]])
    run([x], x[np.array([1, 3]), np.array([2, 0])], [a], a[[1, 3], [2, 0]])
    run([x], x[:, [2]], [a], a[:, [2]])
    run([x], x[np.array([], dtype="int64")], [a], a[np.array([], dtype="int64")])


def test_advanced_static_shapes(run):
    x = tensor("float64", 3, shape=(4, 5, 6))
    y = T.TensorType("int64", shape=(3,))("y")
    out = x[:, y]
    assert out.type.shape == (4, 3, 6)
    out2 = x[y, :, y]
    assert out2.type.shape == (3, 5)
    a = rand((4, 5, 6))
    iy = np.array([0, 1, 1])
    run([x, y], out, [a, iy], a[:, iy])
    run([x, y], out2, [a, iy], a[iy, :, iy])


def test_index_arrays_broadcast(run):
    x = T.matrix("x")
    r = T.lcol("r")
    c = T.lrow("c")
    a = rand((4, 5))
    ir, ic = np.array([[0], [3]]), np.array([[1, 2, 4]])
    run([x, r, c], x[r, c], [a, ir, ic], a[ir, ic])
    p, q = T.lvectors("p", "q")
    f = theon.function([x, p, q], x[p, q])
    with pytest.raises(IndexError):
        f(a, np.array([0, 1]), np.array([0, 1, 2]))


def test_advanced_index_result_is_not_a_view():
    x = T.matrix("x")
    y = T.lvector("y")
    f = theon.function([x, y], x[y])
    a = np.zeros((3, 2))
    r = f(a, np.array([0, 1]))
    r[...] = 1
    assert (a == 0).all()


# -- boolean masks ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_boolean_mask(run, dtype):
    x = tensor(dtype, 2)
    a = rand((4, 5), dtype)
    run([x], x[x > 0], [a], a[a > 0])
    run([x], x[x < -100], [a], a[a < -100])
    m = T.TensorType("bool", shape=(None,))("m")
    mask = np.array([True, False, True, True])
    run([x, m], x[m], [a, mask], a[mask])
    run([x, m], x[m, 1:], [a, mask], a[mask, 1:])
    cm = np.array([False, True, False, True, True])
    run([x], x[:, cm], [a], a[:, cm])


def test_boolean_mask_3d_partial(run):
    x = T.tensor3("x")
    a = rand((2, 3, 4))
    m = x[:, :, 0] > 0
    run([x], x[m], [a], a[a[:, :, 0] > 0])


def test_boolean_mask_wrong_shape_error():
    x = T.vector("x")
    m = T.TensorType("bool", shape=(None,))("m")
    f = theon.function([x, m], x[m])
    with pytest.raises(IndexError):
        f(rand((3,)), np.array([True, False]))


def test_nonzero_values(run):
    x = T.matrix("x")
    a = rand((3, 3))
    a[0] = 0
    run([x], x.nonzero_values(), [a], a.ravel()[a.ravel() != 0])


# -- set_subtensor / inc_subtensor ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("index", [(0,), (-1,), (slice(1, 3),), (slice(None, None, -2),),
                                   (slice(None), 1), (Ellipsis, slice(0, 1)), (1, 2)],
                         ids=str)
def test_set_inc_basic(run, dtype, index):
    x = tensor(dtype, 2)
    a = rand((4, 5), dtype)
    target_shape = a[index].shape
    y = tensor(dtype, len(target_shape), "y")
    b = rand(target_shape, dtype)
    expect = a.copy()
    expect[index] = b
    run([x, y], T.set_subtensor(x[index], y), [a, b], expect)
    expect = a.copy()
    expect[index] += b
    run([x, y], T.inc_subtensor(x[index], y), [a, b], expect)
    # the input is untouched
    f = theon.function([x, y], T.inc_subtensor(x[index], y))
    a0 = a.copy()
    f(a, b)
    np.testing.assert_array_equal(a, a0)


def test_set_inc_broadcast_scalar_value(run):
    x = T.matrix("x")
    a = rand((3, 4))
    e = a.copy()
    e[1:, ::2] = 7.0
    run([x], T.set_subtensor(x[1:, ::2], 7.0), [a], e)
    e = a.copy()
    e[:, 1] += 1
    run([x], T.inc_subtensor(x[:, 1], 1), [a], e)
    r = T.row("r")
    b = rand((1, 4))
    e = a.copy()
    e[:2] += b
    run([x, r], T.inc_subtensor(x[:2], r), [a, b], e)


def test_set_inc_symbolic_indices(run):
    x = T.matrix("x")
    i, j = T.lscalars("i", "j")
    v = T.vector("v")
    a, b = rand((4, 5)), rand((5,))
    e = a.copy()
    e[2] = b
    run([x, i, v], T.set_subtensor(x[i], v), [a, 2, b], e)
    e = a.copy()
    e[1:3] += b
    run([x, i, j, v], T.inc_subtensor(x[i:j], v), [a, 1, 3, b], e)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_inc_advanced_accumulates(run, dtype):
    x = tensor(dtype, 2)
    y = T.lvector("y")
    v = tensor(dtype, 2, "v")
    a = rand((4, 3), dtype)
    idx = np.array([1, 1, 3, 1])
    b = rand((4, 3), dtype)
    e = a.copy()
    np.add.at(e, idx, b)
    run([x, y, v], T.inc_subtensor(x[y], v), [a, idx, b], e)
    # set with repeated indices: the last write wins, as in numpy
    e = a.copy()
    e[idx] = b
    run([x, y, v], T.set_subtensor(x[y], v), [a, idx, b], e)


def test_inc_advanced_pairs_and_slices(run):
    x = T.matrix("x")
    r, c = T.lvectors("r", "c")
    w = T.vector("w")
    a = rand((3, 4))
    ir, ic = np.array([0, 0, 2, 0]), np.array([1, 1, 3, 1])
    b = rand((4,))
    e = a.copy()
    np.add.at(e, (ir, ic), b)
    run([x, r, c, w], T.inc_subtensor(x[r, c], w), [a, ir, ic, b], e)
    e = a.copy()
    np.add.at(e, (slice(None), ic), 1.0)
    f = theon.function([x, c], T.inc_subtensor(x[:, c], 1.0))
    run.check(f(a, ic), T.inc_subtensor(x[:, c], 1.0), e)
    # the crossentropy-gradient pattern: zeros_like(x)[arange, y] += g
    y = T.lvector("y")
    g = T.vector("g")
    out = T.inc_subtensor(T.zeros_like(x)[T.arange(x.shape[0]), y], g)
    labels, gv = np.array([3, 0, 3]), rand((3,))
    e = np.zeros_like(a)
    e[np.arange(3), labels] += gv
    run([x, y, g], out, [a, labels, gv], e)


def test_set_inc_boolean_mask(run):
    x = T.matrix("x")
    a = rand((3, 4))
    e = a.copy()
    e[a > 0] = 0
    run([x], T.set_subtensor(x[x > 0], 0), [a], e)
    e = a.copy()
    e[a < 0] += 10
    run([x], T.inc_subtensor(x[x < 0], 10), [a], e)


def test_set_inc_dtype_rules(run):
    x = T.fmatrix("x")
    a = rand((2, 3), "float32")
    i = T.ivector("i")
    out = T.set_subtensor(x[0], i)
    assert out.dtype == "float32"
    bi = rand((3,), "int32")
    e = a.copy()
    e[0] = bi
    run([x, i], out, [a, bi], e)
    xi = T.imatrix("xi")
    with pytest.raises(TypeError):
        T.set_subtensor(xi[0], T.vector("fv"))
    d = T.dvector("d")
    out = T.inc_subtensor(x[0], d)
    assert out.dtype == "float32"
    e = a.copy()
    bd = rand((3,))
    e[0] += bd.astype("float32")
    got = theon.function([x, d], out)(a, bd)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, e, rtol=1e-6)


def test_set_inc_errors():
    x = T.matrix("x")
    with pytest.raises(TypeError):
        T.set_subtensor(x, 1.0)
    with pytest.raises(ValueError):
        T.set_subtensor(x[0], T.matrix("m"))
    v = T.vector("v")
    f = theon.function([x, v], T.set_subtensor(x[0], v))
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)), np.zeros(4))


def test_set_subtensor_result_does_not_alias_value():
    x = T.matrix("x")
    v = T.vector("v")
    f = theon.function([x, v], T.set_subtensor(x[0:], v))
    a, b = np.zeros((2, 3)), np.ones(3)
    r = f(a, b)
    np.testing.assert_array_equal(r, np.ones((2, 3)))
    r[...] = 9
    assert (a == 0).all() and (b == 1).all()


def test_take(run):
    x = T.matrix("x")
    i = T.lvector("i")
    a = rand((3, 4))
    idx = np.array([2, 0, 2])
    run([x, i], T.take(x, i, axis=1), [a, idx], np.take(a, idx, axis=1))
    run([x, i], T.take(x, i, axis=0), [a, idx], np.take(a, idx, axis=0))
    run([x, i], T.take(x, i), [a, idx], np.take(a, idx))


# -- regressions ---------------------------------------------------------------------------------

def test_zero_d_numpy_array_index_is_an_int(run):
    x = T.matrix("x")
    a = rand((2, 3))
    out = x[np.array(1)]
    assert out.ndim == 1
    run([x], out, [a], a[1])
    run([x], x[np.array(1), np.int32(-1)], [a], a[1, -1])


@pytest.mark.parametrize("flag", [True, False])
def test_zero_d_boolean_index(run, flag):
    x = T.matrix("x")
    b = T.TensorType("bool", shape=())("b")
    a = rand((2, 3))
    run([x, b], x[b], [a, flag], a[np.array(flag)])
    run([x], x[0, np.array(flag)], [a], a[0, np.array(flag)])


def test_integer_index_result_is_an_array_inside_the_graph(run):
    v = T.vector("v")
    s = v[0]
    a = rand((3,))
    run([v], T.set_subtensor(s[None], 5.0), [a], np.float64(5.0))
    run([v], T.inc_subtensor(v[1][None], 1.0), [a], np.asarray(a[1] + 1.0))


# -- symbolic shapes of results (x.shape goes through each op's infer_shape) ----------------------

@pytest.mark.parametrize("case", ["slice", "int", "adv", "adv cols", "bool", "inc adv",
                                  "set basic", "newaxis"])
def test_symbolic_shape_of_result(case):
    x, n, iv = T.matrix("x"), T.lscalar("n"), T.lvector("iv")
    a, idx = rand((4, 6)), np.array([0, 0, 3])
    out = {
        "slice": x[n:, ::2], "int": x[n], "adv": x[iv], "adv cols": x[:, iv[:2]],
        "bool": x[x > 0], "inc adv": T.inc_subtensor(x[iv], 1.0),
        "set basic": T.set_subtensor(x[n:], 0.0), "newaxis": x[None, n, None],
    }[case]
    f = theon.function([x, n, iv], [out, out.shape] + [out.shape[i] for i in range(out.ndim)],
                       on_unused_input="ignore")
    value, shp, *dims = f(a, 1, idx)
    assert tuple(shp) == value.shape
    assert tuple(int(d) for d in dims) == value.shape
