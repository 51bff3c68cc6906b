"""Shape ops (reshape, flatten, dimshuffle, join/split, repeat/tile, alloc, arange, eye...)
checked against numpy, with the declared output type checked against the run-time value."""
import os

import numpy as np
import pytest
import theon
import theon.tensor as T

RNG = np.random.default_rng(1234)


THIS_FILE = os.path.basename(__file__)


def rand(shape, dtype):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


# -- reshape ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("shape,new", [
    ((2, 3, 4), (6, 4)), ((2, 3, 4), (24,)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1)),
    ((2, 3, 4), (2, 3, 2, 2)), ((6,), (1, 6)), ((6,), (6, 1)), ((0, 3), (3, 0)),
    ((0, 3), (-1, 3)), ((1,), ()),
])
def test_reshape_constant_shapes(run, dtype, shape, new):
    x = T.TensorType(dtype, shape=(None,) * len(shape))("x")
    out = x.reshape(new)
    a = rand(shape, dtype)
    run([x], out, [a], a.reshape(new))


def test_reshape_static_shape_declared(run):
    x = T.matrix("x")
    out = x.reshape((3, -1))
    assert out.type.shape == (3, None)
    out2 = T.reshape(x, (2, 6))
    assert out2.type.shape == (2, 6)
    a = rand((4, 3), "float64")
    run([x], out2, [a], a.reshape(2, 6))


def test_reshape_symbolic_shape(run):
    x = T.tensor3("x")
    out = x.reshape((x.shape[0], -1))
    a = rand((3, 4, 5), "float64")
    run([x], out, [a], a.reshape(3, -1))
    out2 = x.reshape((x.shape[0] * x.shape[1], x.shape[2]))
    run([x], out2, [a], a.reshape(12, 5))
    # size-0 leading dim with -1
    z = np.zeros((0, 4, 5))
    run([x], out2, [z], z.reshape(0, 5))


def test_reshape_symbolic_vector_and_scalar(run):
    x = T.vector("x")
    s = T.lvector("s")
    out = T.reshape(x, s, ndim=2)
    a = rand((12,), "float64")
    run([x, s], out, [a, np.array([3, 4])], a.reshape(3, 4))
    n = T.lscalar("n")
    out2 = x.reshape((n, -1))
    run([x, n], out2, [a, 2], a.reshape(2, 6))
    # an int32 symbolic dim is cast
    m = T.iscalar("m")
    out3 = x.reshape((m, 3))
    run([x, m], out3, [a, 4], a.reshape(4, 3))


def test_reshape_needs_ndim_for_unknown_length():
    x = T.vector("x")
    with pytest.raises(TypeError):
        T.reshape(x, T.lvector("s"))


def test_reshape_incompatible_runtime_error():
    x = T.matrix("x")
    out = x.reshape((5, -1))  # built on this line
    line = out.trace[1]
    f = theon.function([x], out)
    with pytest.raises(ValueError) as info:
        f(np.zeros((2, 3)))
    msg = str(info.value)
    assert "(2, 3)" in msg and "(5, -1)" in msg, msg
    assert f"{THIS_FILE}:{line}" in msg, msg


def test_reshape_incompatible_static_error():
    x = T.TensorType("float64", shape=(2, 3))("x")
    with pytest.raises(ValueError):
        x.reshape((4, 2))
    with pytest.raises(ValueError):
        T.matrix().reshape((-1, -1))


def test_reshape_output_does_not_alias_input():
    x = T.matrix("x")
    f = theon.function([x], x.reshape((-1,)))
    a = np.arange(6.0).reshape(2, 3)
    r = f(a)
    r[0] = 100.0
    assert a[0, 0] == 0.0


# -- flatten ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 4), (0, 3, 2), (3, 0, 2)])
def test_flatten(run, ndim, shape):
    x = T.tensor3("x")
    out = T.flatten(x, ndim)
    a = rand(shape, "float64")
    expect = a.reshape(shape[:ndim - 1] + (int(np.prod(shape[ndim - 1:])),))
    run([x], out, [a], expect)


def test_flatten_method_and_static_shape(run):
    x = T.TensorType("int32", shape=(2, 3, 4))("x")
    out = x.flatten(2)
    assert out.type.shape == (2, 12)
    a = rand((2, 3, 4), "int32")
    run([x], out, [a], a.reshape(2, 12))
    out1 = x.flatten()
    assert out1.type.shape == (24,)
    run([x], out1, [a], a.ravel())


def test_flatten_invalid_ndim():
    with pytest.raises(ValueError):
        T.flatten(T.matrix(), 3)
    with pytest.raises(ValueError):
        T.flatten(T.matrix(), 0)


# -- dimshuffle / transpose -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_dimshuffle_patterns(run, dtype):
    x = T.TensorType(dtype, shape=(None, None, None))("x")
    a = rand((2, 3, 4), dtype)
    cases = [
        ((2, 0, 1), a.transpose(2, 0, 1)),
        ((1, "x", 0, 2), a.transpose(1, 0, 2)[:, None]),
        (("x", 0, 1, 2, "x"), a[None, ..., None]),
        ((0, 1, 2), a),
    ]
    for pattern, expect in cases:
        run([x], x.dimshuffle(*pattern), [a], expect)
        run([x], x.dimshuffle(pattern), [a], expect)


def test_dimshuffle_static_shape_and_drop_broadcastable(run):
    x = T.TensorType("float64", shape=(3, 1, None))("x")
    out = x.dimshuffle(2, "x", 0)
    assert out.type.shape == (None, 1, 3)
    a = rand((3, 1, 5), "float64")
    run([x], out, [a], a[:, 0, :].T[:, None, :])
    row = T.row("r")
    out2 = row.dimshuffle(1)
    assert out2.ndim == 1
    b = rand((1, 4), "float64")
    run([row], out2, [b], b[0])
    col = T.col("c")
    c = rand((4, 1), "float64")
    run([col], col.dimshuffle("x", 0), [c], c.T)


def test_dimshuffle_drop_non_broadcastable_error():
    x = T.matrix("x")
    with pytest.raises(ValueError) as info:
        x.dimshuffle(0)
    assert "broadcastable" in str(info.value)
    with pytest.raises(TypeError):
        x.dimshuffle(0, 0)
    with pytest.raises(TypeError):
        x.dimshuffle(0, 2)


@pytest.mark.parametrize("shape", [(2, 3), (0, 3), (2, 3, 4)])
def test_transpose(run, shape):
    x = T.TensorType("float32", shape=(None,) * len(shape))("x")
    a = rand(shape, "float32")
    run([x], x.T, [a], a.T)
    run([x], T.transpose(x), [a], a.T)
    if len(shape) == 3:
        run([x], x.transpose(1, 0, 2), [a], a.transpose(1, 0, 2))
        run([x], T.transpose(x, (2, 0, 1)), [a], a.transpose(2, 0, 1))
        run([x], x.transpose(-1, 0, 1), [a], a.transpose(2, 0, 1))


def test_transpose_static_shape():
    x = T.TensorType("float64", shape=(2, None, 5))("x")
    assert x.T.type.shape == (5, None, 2)


def test_transpose_vector_and_scalar(run):
    v = T.vector("v")
    a = rand((4,), "float64")
    run([v], v.T, [a], a)
    s = T.scalar("s")
    run([s], s.T, [np.float64(2.0)], np.float64(2.0))


def test_dimshuffle_output_does_not_alias_input():
    x = T.matrix("x")
    f = theon.function([x], x.T)
    a = np.zeros((2, 3))
    r = f(a)
    r[...] = 7
    assert (a == 0).all()


# -- join / concatenate / stack ----------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_matrices(run, axis):
    x, y = T.matrices("x", "y")
    a = rand((2, 3), "float64")
    b = rand((4, 3), "float64") if axis == 0 else rand((2, 5), "float64")
    run([x, y], T.concatenate([x, y], axis=axis), [a, b], np.concatenate([a, b], axis=axis))
    run([x, y], T.join(axis, x, y), [a, b], np.concatenate([a, b], axis=axis))
    run([x, y], T.join(axis, [x, y, x]), [a, b], np.concatenate([a, b, a], axis=axis))


def test_concatenate_mixed_dtypes_and_static_shape(run):
    x = T.TensorType("float32", shape=(2, 3))("x")
    y = T.TensorType("float64", shape=(4, 3))("y")
    out = T.concatenate([x, y])
    assert out.dtype == "float64"
    assert out.type.shape == (6, 3)
    a, b = rand((2, 3), "float32"), rand((4, 3), "float64")
    run([x, y], out, [a, b], np.concatenate([a, b]))
    i = T.ivector("i")
    v = T.fvector("v")
    out = T.concatenate([i, v])
    assert out.dtype == np.result_type(np.int32, np.float32).name
    ai, av = rand((3,), "int32"), rand((2,), "float32")
    run([i, v], out, [ai, av], np.concatenate([ai, av]))


def test_concatenate_static_shape_partial(run):
    x = T.TensorType("float64", shape=(2, 3))("x")
    y = T.TensorType("float64", shape=(None, 3))("y")
    out = T.concatenate([x, y], axis=0)
    assert out.type.shape == (None, 3)
    a, b = rand((2, 3), "float64"), rand((0, 3), "float64")
    run([x, y], out, [a, b], np.concatenate([a, b]))


def test_concatenate_size_zero(run):
    x, y = T.vectors("x", "y")
    a, b = np.zeros(0), rand((3,), "float64")
    run([x, y], T.concatenate([x, y]), [a, b], np.concatenate([a, b]))
    run([x, y], T.concatenate([x, y]), [a, a], np.zeros(0))


def test_join_mismatched_shapes_error():
    x, y = T.matrices("x", "y")
    f = theon.function([x, y], T.concatenate([x, y], axis=0))
    with pytest.raises(ValueError) as info:
        f(np.zeros((2, 3)), np.zeros((2, 4)))
    msg = str(info.value)
    assert "(2, 3)" in msg and "(2, 4)" in msg, msg


def test_join_static_errors():
    x = T.TensorType("float64", shape=(2, 3))("x")
    y = T.TensorType("float64", shape=(2, 4))("y")
    with pytest.raises(ValueError):
        T.concatenate([x, y], axis=0)
    with pytest.raises(TypeError):
        T.concatenate([T.matrix(), T.vector()])
    with pytest.raises(ValueError):
        T.concatenate([T.matrix(), T.matrix()], axis=2)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_vectors(run, axis):
    x, y = T.vectors("x", "y")
    a, b = rand((3,), "float64"), rand((3,), "float64")
    out = T.stack([x, y, x], axis=axis)
    run([x, y], out, [a, b], np.stack([a, b, a], axis=axis))


def test_stack_matrices_axes(run):
    x, y = T.fmatrices("x", "y")
    a, b = rand((2, 3), "float32"), rand((2, 3), "float32")
    for axis in (0, 1, 2, -1, -3):
        run([x, y], T.stack([x, y], axis=axis), [a, b], np.stack([a, b], axis=axis))


def test_stack_scalars_into_vector(run):
    a, b = T.scalars("a", "b")
    out = T.stack([a, b, a])
    assert out.ndim == 1 and out.type.shape == (3,)
    run([a, b], out, [1.5, -2.0], np.array([1.5, -2.0, 1.5]))
    i = T.iscalar("i")
    out2 = T.stack([i, 3])
    run([i], out2, [7], np.array([7, 3], dtype=out2.dtype))
    f = T.fscalar("f")
    out3 = T.stack([f, i])
    run([f, i], out3, [np.float32(0.5), 2], np.array([0.5, 2], dtype=out3.dtype))


def test_as_tensor_list_of_variables_stacks(run):
    a, b = T.scalars("a", "b")
    out = T.as_tensor_variable([a, b])
    run([a, b], out, [1.0, 2.0], np.array([1.0, 2.0]))


# -- split ------------------------------------------------------------------------------------

def test_split(run):
    x = T.matrix("x")
    a = rand((6, 4), "float64")
    outs = T.split(x, [1, 2, 3], 3, axis=0)
    f = theon.function([x], outs)
    got = f(a)
    for g, o, e in zip(got, outs, np.split(a, [1, 3], axis=0)):
        run.check(g, o, e)
    outs = T.split(x, [3, 0, 1], 3, axis=-1)
    got = theon.function([x], outs)(a)
    for g, o, e in zip(got, outs, np.split(a, [3, 3], axis=1)):
        run.check(g, o, e)


def test_split_symbolic_sizes_and_errors():
    x = T.vector("x")
    s = T.lvector("s")
    outs = T.split(x, s, 2)
    f = theon.function([x, s], outs)
    a = rand((5,), "float64")
    g0, g1 = f(a, np.array([2, 3]))
    np.testing.assert_array_equal(g0, a[:2])
    np.testing.assert_array_equal(g1, a[2:])
    with pytest.raises(ValueError):
        f(a, np.array([2, 2]))
    with pytest.raises(ValueError):
        f(a, np.array([6, -1]))


def test_split_does_not_alias_input():
    x = T.vector("x")
    outs = T.split(x, [2, 3], 2)
    f = theon.function([x], outs)
    a = np.zeros(5)
    g0, g1 = f(a)
    g0[...] = 1
    g1[...] = 1
    assert (a == 0).all()


# -- repeat / tile ----------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_repeat_scalar(run, axis):
    x = T.matrix("x")
    a = rand((2, 3), "float64")
    run([x], T.repeat(x, 3, axis=axis), [a], np.repeat(a, 3, axis=axis))
    run([x], x.repeat(2, axis=axis), [a], np.repeat(a, 2, axis=axis))
    run([x], T.repeat(x, 0, axis=axis), [a], np.repeat(a, 0, axis=axis))


def test_repeat_per_element_and_symbolic(run):
    x = T.imatrix("x")
    a = rand((2, 3), "int32")
    r = np.array([1, 0, 2])
    run([x], T.repeat(x, r, axis=1), [a], np.repeat(a, r, axis=1))
    rv = T.lvector("r")
    run([x, rv], T.repeat(x, rv, axis=0), [a, np.array([3, 1])], np.repeat(a, [3, 1], axis=0))
    n = T.iscalar("n")
    run([x, n], T.repeat(x, n), [a, 2], np.repeat(a, 2))
    v = T.vector("v")
    run([v, rv], T.repeat(v, rv), [np.array([1.0, 2.0]), np.array([2, 3])],
        np.repeat([1.0, 2.0], [2, 3]))


def test_repeat_static_shape_keeps_other_dims(run):
    x = T.TensorType("float64", shape=(2, 3))("x")
    out = T.repeat(x, 2, axis=1)
    assert out.type.shape[0] == 2
    a = rand((2, 3), "float64")
    run([x], out, [a], np.repeat(a, 2, axis=1))


def test_repeat_float_repeats_rejected():
    with pytest.raises(TypeError):
        T.repeat(T.vector(), T.scalar())


@pytest.mark.parametrize("reps", [(2,), (2, 3), (1, 1), (2, 1, 3), (0, 2)])
def test_tile(run, reps):
    x = T.TensorType("float32", shape=(None, None))("x")
    a = rand((2, 3), "float32")
    run([x], T.tile(x, reps), [a], np.tile(a, reps))
    xs = T.TensorType("float32", shape=(2, 3))("xs")
    out = T.tile(xs, reps)
    assert all(s is not None for s in out.type.shape)
    run([xs], out, [a], np.tile(a, reps))


def test_tile_does_not_alias_input():
    x = T.vector("x")
    f = theon.function([x], T.tile(x, (1,)))
    a = np.zeros(3)
    r = f(a)
    r[...] = 1
    assert (a == 0).all()


# -- shape / alloc / zeros / ones -------------------------------------------------------------

def test_shape_and_shape_index(run):
    x = T.tensor3("x")
    a = rand((2, 0, 4), "float64")
    out = x.shape
    assert out.dtype == "int64" and out.type.shape == (3,)
    run([x], out, [a], np.array([2, 0, 4]))
    for i in range(3):
        run([x], x.shape[i], [a], np.int64(a.shape[i]))
    run([x], x.shape[-1], [a], np.int64(4))
    run([x], T.shape(x)[1:], [a], np.array([0, 4]))
    run([x], x.size, [a], np.int64(0))


def test_alloc(run):
    v = T.vector("v")
    n, m = T.lscalars("n", "m")
    a = rand((3,), "float64")
    out = T.alloc(v, n, 3)
    run([v, n], out, [a, 4], np.broadcast_to(a, (4, 3)))
    out2 = T.alloc(2.5, n, m)
    run([n, m], out2, [2, 3], np.full((2, 3), 2.5, dtype=out2.dtype))
    run([n, m], out2, [0, 3], np.zeros((0, 3), dtype=out2.dtype))
    out3 = T.alloc(np.float32(1.0), 2, 3)
    assert out3.type.shape == (2, 3)
    f = theon.function([], out3)
    run.check(f(), out3, np.ones((2, 3), dtype="float32"))


def test_alloc_shape_tuple_and_errors(run):
    s = T.scalar("s")
    out = T.alloc(s, (2, 2))
    run([s], out, [3.0], np.full((2, 2), 3.0))
    with pytest.raises(TypeError):
        T.alloc(T.matrix(), 3)
    with pytest.raises(TypeError):
        T.alloc(1.0, T.scalar())


@pytest.mark.parametrize("dtype", [None, "float32", "int64", "int8"])
def test_zeros_ones(run, dtype):
    n = T.lscalar("n")
    z = T.zeros((n, 3), dtype=dtype)
    o = T.ones((2, n), dtype=dtype)
    want = np.dtype(dtype or theon.config.floatX)
    f = theon.function([n], [z, o])
    gz, go = f(4)
    run.check(gz, z, np.zeros((4, 3), dtype=want))
    run.check(go, o, np.ones((2, 4), dtype=want))
    gz, go = f(0)
    run.check(gz, z, np.zeros((0, 3), dtype=want))
    z2 = T.zeros(5, dtype=dtype)
    assert z2.type.shape == (5,)
    run.check(theon.function([], z2)(), z2, np.zeros(5, dtype=want))
    z3 = T.zeros(T.as_tensor_variable(np.array([2, 3])), dtype=dtype)
    run.check(theon.function([], z3)(), z3, np.zeros((2, 3), dtype=want))


def test_zeros_ones_like(run):
    x = T.imatrix("x")
    a = rand((2, 5), "int32")
    run([x], T.zeros_like(x), [a], np.zeros_like(a))
    run([x], T.ones_like(x), [a], np.ones_like(a))
    run([x], T.ones_like(x, dtype="float32"), [a], np.ones_like(a, dtype="float32"))
    e = np.zeros((0, 5), dtype="int32")
    run([x], T.ones_like(x), [e], np.ones_like(e))
    s = T.scalar("s")
    out = T.zeros_like(s)
    f = theon.function([s], out, on_unused_input="ignore")
    run.check(f(3.0), out, np.float64(0.0))


def test_fill(run):
    x = T.matrix("x")
    a = rand((2, 3), "float64")
    run([x], T.fill(x, 5.0), [a], np.full((2, 3), 5.0, dtype=T.fill(x, 5.0).dtype))


# -- arange / eye -----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [(5,), (2, 7), (7, 2, -2), (0,), (3, 3), (-3, 10, 4)])
def test_arange_ints(run, args):
    out = T.arange(*args)
    assert out.dtype == "int64"
    f = theon.function([], out)
    run.check(f(), out, np.arange(*args))


def test_arange_symbolic_ints(run):
    n = T.iscalar("n")
    out = T.arange(n)
    assert out.dtype == "int64"
    run([n], out, [5], np.arange(5))
    run([n], out, [0], np.arange(0))
    run([n], out, [-2], np.arange(-2))
    a, b, s = T.lscalars("a", "b", "s")
    out2 = T.arange(a, b, s)
    run([a, b, s], out2, [10, 1, -3], np.arange(10, 1, -3))
    bs = T.bscalar("bs")
    run([bs], T.arange(bs), [3], np.arange(3))


def test_arange_floats(run):
    x = T.scalar("x")
    out = T.arange(x)
    assert out.dtype == "float64"
    run([x], out, [3.5], np.arange(3.5))
    f32 = T.fscalar("f")
    out2 = T.arange(0, f32, 0.5)
    assert out2.dtype == "float32"
    run([f32], out2, [np.float32(2.0)], np.arange(0, 2.0, 0.5, dtype="float32"))
    out3 = T.arange(0.0, 1.0, 0.25)
    run.check(theon.function([], out3)(), out3,
              np.arange(0.0, 1.0, 0.25, dtype=out3.dtype))


def test_arange_dtype_argument_and_zero_step(run):
    n = T.lscalar("n")
    out = T.arange(n, dtype="float32")
    run([n], out, [3], np.arange(3, dtype="float32"))
    s = T.lscalar("s")
    f = theon.function([n, s], T.arange(0, n, s))
    with pytest.raises(ValueError):
        f(3, 0)


def test_arange_static_length():
    assert T.arange(5).type.shape == (5,)
    assert T.arange(2, 10, 3).type.shape == (3,)
    assert T.arange(T.lscalar()).type.shape == (None,)


@pytest.mark.parametrize("n,m,k", [(3, None, 0), (3, 5, 0), (4, 2, 1), (3, 4, -1), (0, 3, 0),
                                   (3, 3, 5)])
def test_eye(run, n, m, k):
    out = T.eye(n, m, k)
    assert out.dtype == theon.config.floatX
    run.check(theon.function([], out)(), out, np.eye(n, m, k, dtype=out.dtype))
    nn = T.lscalar("n")
    out2 = T.eye(nn, m, k, dtype="int32")
    run([nn], out2, [n], np.eye(n, m, k, dtype="int32"))


def test_eye_symbolic_k_and_identity_like(run):
    n, k = T.iscalars("n", "k")
    out = T.eye(n, n, k)
    run([n, k], out, [4, 2], np.eye(4, 4, 2))
    x = T.fmatrix("x")
    a = rand((2, 3), "float32")
    run([x], T.identity_like(x), [a], np.eye(2, 3, dtype="float32"))


# -- padding / broadcasting / squeeze -----------------------------------------------------------

def test_shape_padleft_right_axis(run):
    x = T.matrix("x")
    a = rand((2, 3), "float64")
    out = T.shape_padleft(x)
    assert out.broadcastable == (True, False, False)
    run([x], out, [a], a[None])
    run([x], T.shape_padleft(x, 2), [a], a[None, None])
    out = T.shape_padright(x)
    assert out.broadcastable == (False, False, True)
    run([x], out, [a], a[..., None])
    run([x], T.shape_padright(x, 3), [a], a[..., None, None, None])
    run([x], T.shape_padaxis(x, 1), [a], a[:, None])
    run([x], T.shape_padaxis(x, -1), [a], a[:, :, None])
    with pytest.raises(ValueError):
        T.shape_padaxis(x, 4)


def test_addbroadcast(run):
    x = T.matrix("x")
    out = T.addbroadcast(x, 0)
    assert out.broadcastable == (True, False)
    a = rand((1, 3), "float64")
    run([x], out, [a], a)
    f = theon.function([x], out)
    with pytest.raises(ValueError) as info:
        f(rand((2, 3), "float64"))
    assert "2" in str(info.value)
    out2 = T.addbroadcast(x, 0, 1)
    run([x], out2, [a[:, :1]], a[:, :1])
    # broadcasting after addbroadcast
    y = T.matrix("y")
    b = rand((4, 3), "float64")
    run([x, y], T.addbroadcast(x, 0) + y, [a, b], a + b)


def test_addbroadcast_static_error_and_unbroadcast(run):
    x = T.TensorType("float64", shape=(2, None))("x")
    with pytest.raises(ValueError):
        T.addbroadcast(x, 0)
    r = T.row("r")
    u = T.unbroadcast(r, 0)
    assert u.broadcastable == (False, False)
    a = rand((1, 3), "float64")
    run([r], u, [a], a)
    p = T.patternbroadcast(T.matrix("m"), (True, False))
    assert p.broadcastable == (True, False)


def test_squeeze(run):
    x = T.TensorType("float64", shape=(1, None, 1, None))("x")
    out = T.squeeze(x)
    assert out.ndim == 2
    a = rand((1, 3, 1, 2), "float64")
    run([x], out, [a], a.squeeze())
    run([x], x.squeeze(), [a], a.squeeze())
    m = T.matrix("m")
    assert T.squeeze(m) is m
    s = T.TensorType("float32", shape=(1, 1))("s")
    b = rand((1, 1), "float32")
    run([s], T.squeeze(s), [b], b.reshape(()))


# -- regressions ---------------------------------------------------------------------------------

def test_reshape_symbolic_scalar_and_constant_array_shape(run):
    x = T.vector("x")
    n = T.lscalar("n")
    a = rand((3,), "float64")
    run([x, n], x.reshape(n), [a, 3], a)
    run([x, n], T.reshape(x, n), [a, 3], a)
    out = T.reshape(x, np.array([3, 1]))
    assert out.ndim == 2
    run([x], out, [a], a.reshape(3, 1))
    with pytest.raises(ValueError):
        T.reshape(x, (3, 1), ndim=3)


def test_reshape_scalar_to_and_from(run):
    s = T.scalar("s")
    run([s], s.reshape((1, 1)), [2.0], np.full((1, 1), 2.0))
    run([s], T.flatten(s), [2.0], np.array([2.0]))


def test_zeros_from_constant_shape_vector_and_unknown_length_error(run):
    z = T.zeros(np.array([2, 0], dtype="int64"), dtype="int32")
    run.check(theon.function([], z)(), z, np.zeros((2, 0), dtype="int32"))
    with pytest.raises(TypeError):
        T.zeros(T.lvector("s"))


def test_negative_axes_in_addbroadcast_unbroadcast():
    x = T.matrix("x")
    assert T.addbroadcast(x, -1).broadcastable == (False, True)
    assert T.unbroadcast(T.row(), -2).broadcastable == (False, False)
    with pytest.raises(ValueError):
        T.addbroadcast(x, 2)


def test_arange_static_zero_step():
    with pytest.raises(ValueError):
        T.arange(0, 5, 0)


# -- symbolic shapes of results (x.shape goes through each op's infer_shape) ----------------------

def check_shape_graph(inputs, out, vals):
    """``out.shape`` and each ``out.shape[i]``, compiled, agree with the computed value."""
    f = theon.function(inputs, [out, out.shape] + [out.shape[i] for i in range(out.ndim)],
                       on_unused_input="ignore")
    value, shp, *dims = f(*vals)
    assert tuple(shp) == value.shape, (tuple(shp), value.shape)
    assert tuple(int(d) for d in dims) == value.shape, (dims, value.shape)


def _shape_cases():
    x, v, t3 = T.matrix("x"), T.vector("v"), T.tensor3("t3")
    n, iv = T.lscalar("n"), T.lvector("iv")
    A, V = rand((4, 6), "float64"), rand((6,), "float64")
    A3 = rand((2, 3, 4), "float64")
    return {
        "reshape -1": ([x], x.reshape((3, -1)), [A]),
        "reshape symbolic": ([x], x.reshape((-1, x.shape[0])), [A]),
        "reshape vector": ([x, iv], T.reshape(x, iv, ndim=2), [A, np.array([2, 12])]),
        "reshape vector -1 first": ([x, iv], T.reshape(x, iv, ndim=2), [A, np.array([-1, 12])]),
        "reshape vector -1 last": ([x, iv], T.reshape(x, iv, ndim=2), [A, np.array([8, -1])]),
        "reshape scalar": ([x, n], T.reshape(x, (n, 2, -1)), [A, 3]),
        "flatten": ([t3], T.flatten(t3, 2), [A3]),
        "dimshuffle": ([t3], t3.dimshuffle(2, "x", 0, 1), [A3]),
        "join": ([x], T.concatenate([x, x[:2]], axis=0), [A]),
        "stack": ([v], T.stack([v, v, v], axis=1), [V]),
        "split": ([x], T.split(x, [1, 3], 2)[1], [A]),
        "repeat": ([x], T.repeat(x, 3, axis=1), [A]),
        "repeat None": ([x], T.repeat(x, 2), [A]),
        "repeat vector": ([v], T.repeat(v, np.array([1, 2, 0, 1, 1, 1])), [V]),
        "tile": ([x], T.tile(x, (2, 1, 3)), [A]),
        "alloc": ([v, n], T.alloc(v, n, 6), [V, 3]),
        "arange": ([n], T.arange(n), [5]),
        "arange empty": ([n], T.arange(n), [-3]),
        "arange step": ([n], T.arange(10, n, -3), [0]),
        "arange float": ([T.scalar("s")], None, None),
        "eye": ([n], T.eye(n, 3), [4]),
        "addbroadcast": ([x], T.addbroadcast(x[:1], 0), [A]),
        "squeeze": ([x], T.squeeze(T.addbroadcast(x[:1], 0)), [A]),
    }


@pytest.mark.parametrize("case", list(_shape_cases()))
def test_symbolic_shape_of_result(case):
    inputs, out, vals = _shape_cases()[case]
    if out is None:  # float arange: length from ceil((stop - start) / step)
        s = inputs[0]
        out, vals = T.arange(0.0, s, 0.3), [1.0]
    check_shape_graph(inputs, out, vals)


def test_tile_takes_an_int_and_theano_ndim():
    v, m = T.dvector("v"), T.dmatrix("m")
    np.testing.assert_array_equal(theon.function([v], T.tile(v, 2))(np.arange(3.0)),
                                  np.tile(np.arange(3.0), 2))
    out = theon.function([m], T.tile(m, (2,), ndim=3))(np.ones((2, 3)))
    assert out.shape == (1, 2, 6)
    with pytest.raises(ValueError, match="ndim=1"):
        T.tile(m, (2, 2), ndim=1)
