"""dot, matmul (@), tensordot, batched_dot and outer against numpy, with declared types
checked against the run-time values."""
import numpy as np
import pytest
import theon
import theon.tensor as T

RNG = np.random.default_rng(99)


def rand(shape, dtype="float64"):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-4, 5, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def var(shape, dtype="float64", name=None, static=False):
    return T.TensorType(dtype, shape=shape if static else (None,) * len(shape))(name)


@pytest.fixture
def run(run):
    """This file's tolerance: float32 results to 1e-5, float64 to 1e-10, ints exactly."""
    return run.with_defaults(rtol={"float32": 1e-5, "default": 1e-10})


# -- dot ----------------------------------------------------------------------------------------

DOT_SHAPES = [
    ((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((3, 4), (4, 5)),
    ((2, 3, 4), (4,)), ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)), ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (5, 4, 6)), ((0, 4), (4, 3)), ((3, 0), (0, 2)), ((0,), (0,)), ((2, 3), (3, 0)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("sa,sb", DOT_SHAPES, ids=[f"{a}.{b}" for a, b in DOT_SHAPES])
def test_dot(run, dtype, sa, sb):
    a, b = var(sa, dtype, "a"), var(sb, dtype, "b")
    va, vb = rand(sa, dtype), rand(sb, dtype)
    out = T.dot(a, b)
    assert out.dtype == dtype
    run([a, b], out, [va, vb], np.dot(va, vb))
    run([a, b], a.dot(b), [va, vb], np.dot(va, vb))


@pytest.mark.parametrize("sa,sb", DOT_SHAPES, ids=[f"{a}.{b}" for a, b in DOT_SHAPES])
def test_dot_static_shape(run, sa, sb):
    a, b = var(sa, "float64", "a", static=True), var(sb, "float64", "b", static=True)
    out = T.dot(a, b)
    assert out.type.shape == np.dot(np.zeros(sa), np.zeros(sb)).shape
    va, vb = rand(sa), rand(sb)
    run([a, b], out, [va, vb], np.dot(va, vb))


@pytest.mark.parametrize("da,db", [("float32", "float64"), ("float64", "float32"),
                                   ("float32", "float32"), ("int32", "float32"),
                                   ("int64", "float64"), ("int8", "float32"),
                                   ("int16", "int32")])
def test_dot_mixed_dtypes(run, da, db):
    a, b = var((3, 4), da, "a"), var((4,), db, "b")
    out = T.dot(a, b)
    assert out.dtype == np.result_type(da, db).name
    va, vb = rand((3, 4), da), rand((4,), db)
    run([a, b], out, [va, vb], np.dot(va, vb))
    assert T.dot(T.fmatrix(), T.fmatrix()).dtype == "float32"
    assert T.dot(T.fmatrix(), T.dmatrix()).dtype == "float64"


def test_dot_with_scalar_multiplies(run):
    a = T.matrix("a")
    s = T.scalar("s")
    va = rand((2, 3))
    run([a, s], T.dot(a, s), [va, 2.0], va * 2.0)
    run([a, s], T.dot(s, a), [va, 2.0], va * 2.0)


def test_dot_static_mismatch_raises_at_build():
    a = var((3, 4), static=True)
    b = var((5, 2), static=True)
    with pytest.raises(ValueError) as info:
        T.dot(a, b)
    assert "4" in str(info.value) and "5" in str(info.value)
    with pytest.raises(ValueError):
        a @ b
    with pytest.raises(ValueError):
        T.tensordot(a, b, axes=[[1], [0]])
    with pytest.raises(ValueError):
        T.dot(var((3,), static=True), var((4,), static=True))


def test_dot_runtime_mismatch_names_shapes():
    a, b = T.matrices("a", "b")
    out = T.dot(a, b)
    f = theon.function([a, b], out)
    with pytest.raises(ValueError) as info:
        f(np.zeros((2, 3)), np.zeros((4, 5)))
    msg = str(info.value)
    assert "(2, 3)" in msg and "(4, 5)" in msg, msg
    v = T.vector("v")
    f = theon.function([a, v], T.dot(a, v))
    with pytest.raises(ValueError) as info:
        f(np.zeros((2, 3)), np.zeros(2))
    assert "(2, 3)" in str(info.value) and "(2,)" in str(info.value)


def test_dot_result_does_not_alias():
    a, b = T.vectors("a", "b")
    f = theon.function([a, b], T.dot(a, b))
    r = f(np.ones(3), np.ones(3))
    assert isinstance(r, np.ndarray) and r.shape == ()


def test_vector_dot_vector_inside_graph_is_an_array(run):
    a, b = T.vectors("a", "b")
    d = T.dot(a, b)
    va, vb = rand((3,)), rand((3,))
    run([a, b], T.set_subtensor(d[None], 1.0) + d, [va, vb], np.asarray(1.0 + va @ vb))


# -- matmul -------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
    ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 6)), ((1, 3, 4), (7, 4, 2)), ((2, 3, 4), (4,)), ((4,), (2, 4, 5)),
    ((0, 3, 4), (4, 2)), ((2, 3, 0), (2, 0, 4)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(run, dtype, sa, sb):
    a, b = var(sa, dtype, "a"), var(sb, dtype, "b")
    va, vb = rand(sa, dtype), rand(sb, dtype)
    out = a @ b
    run([a, b], out, [va, vb], va @ vb)
    run([a, b], T.matmul(a, b), [va, vb], np.matmul(va, vb))


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_static_shape(run, sa, sb):
    a, b = var(sa, "float32", "a", static=True), var(sb, "float64", "b", static=True)
    out = a @ b
    assert out.dtype == "float64"
    assert out.type.shape == (np.zeros(sa) @ np.zeros(sb)).shape
    va, vb = rand(sa, "float32"), rand(sb)
    run([a, b], out, [va, vb], va @ vb, rtol=1e-6)


def test_matmul_with_numpy_operand_and_errors(run):
    a = T.matrix("a")
    m = rand((3, 2))
    va = rand((4, 3))
    run([a], a @ m, [va], va @ m)
    run([a], m.T @ a.T, [va], m.T @ va.T)
    with pytest.raises(ValueError):
        a @ T.scalar()
    with pytest.raises(ValueError):
        var((2, 3, 4), static=True) @ var((5, 4, 2), static=True)
    t = T.tensor3("t")
    f = theon.function([a, t], a @ t)
    with pytest.raises(ValueError) as info:
        f(np.zeros((4, 3)), np.zeros((2, 4, 5)))
    assert "(4, 3)" in str(info.value) and "(2, 4, 5)" in str(info.value)


# -- tensordot ----------------------------------------------------------------------------------

TENSORDOT = [
    ((2, 3, 4), (3, 4, 5), 2), ((2, 3, 4), (4, 5), 1), ((2, 3), (4, 5), 0), ((3, 4), (3, 4), 2),
    ((2, 3, 4), (4, 3, 5), [[1, 2], [1, 0]]), ((2, 3, 4), (5, 2), [[0], [1]]),
    ((2, 3, 4), (5, 2), (0, 1)), ((2, 3, 4), (3, 5), [1, 0]),
    ((2, 3, 4), (4, 3), [[-1, -2], [0, 1]]),
    ((0, 3), (3, 2), 1), ((2, 0), (0, 3), [[1], [0]]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb,axes", TENSORDOT, ids=[str(t) for t in TENSORDOT])
def test_tensordot(run, dtype, sa, sb, axes):
    a, b = var(sa, dtype, "a"), var(sb, dtype, "b")
    va, vb = rand(sa, dtype), rand(sb, dtype)
    out = T.tensordot(a, b, axes=axes)
    run([a, b], out, [va, vb], np.tensordot(va, vb, axes=axes))
    s_a, s_b = var(sa, dtype, "sa", static=True), var(sb, dtype, "sb", static=True)
    out = T.tensordot(s_a, s_b, axes=axes)
    assert out.type.shape == np.tensordot(va, vb, axes=axes).shape
    run([s_a, s_b], out, [va, vb], np.tensordot(va, vb, axes=axes))


def test_tensordot_mixed_dtype_and_runtime_error(run):
    a, b = var((2, 3), "float32", "a"), var((3, 4), "float64", "b")
    out = T.tensordot(a, b, 1)
    assert out.dtype == "float64"
    va, vb = rand((2, 3), "float32"), rand((3, 4))
    run([a, b], out, [va, vb], np.tensordot(va, vb, 1), rtol=1e-6)
    f = theon.function([a, b], out)
    with pytest.raises(ValueError) as info:
        f(rand((2, 3), "float32"), rand((2, 4)))
    assert "(2, 3)" in str(info.value) and "(2, 4)" in str(info.value)
    with pytest.raises(ValueError):
        T.tensordot(a, b, axes=[[0, 1], [0]])
    with pytest.raises(ValueError):
        T.tensordot(a, b, axes=[[2], [0]])  # out of range: must not wrap around
    with pytest.raises(ValueError):
        T.tensordot(a, b, axes=3)
    with pytest.raises(ValueError):
        T.tensordot(a, T.matrix(), axes=[[0, 0], [0, 1]])


# -- batched_dot --------------------------------------------------------------------------------

BATCHED = [
    ((5, 3, 4), (5, 4, 2), "bij,bjk->bik"), ((5, 4), (5, 4), "bi,bi->b"),
    ((5, 3, 4), (5, 4), "bij,bj->bi"), ((5, 4), (5, 4, 2), "bi,bij->bj"),
    ((0, 3, 4), (0, 4, 2), "bij,bjk->bik"), ((5, 3, 0), (5, 0, 2), "bij,bjk->bik"),
    ((5, 3, 4), (5, 6, 4, 2), "bij,bkjl->bikl"), ((5, 3, 6, 4), (5, 4, 2), "bimj,bjk->bimk"),
    ((5, 4), (5, 6, 4, 2), "bj,bkjl->bkl"), ((5,), (5, 3), "b,bi->bi"),
    ((5, 3, 2), (5,), "bij,b->bij"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb,spec", BATCHED, ids=[t[2] for t in BATCHED])
def test_batched_dot(run, dtype, sa, sb, spec):
    a, b = var(sa, dtype, "a"), var(sb, dtype, "b")
    va, vb = rand(sa, dtype), rand(sb, dtype)
    out = T.batched_dot(a, b)
    run([a, b], out, [va, vb], np.einsum(spec, va, vb))


def test_batched_dot_static_and_mixed(run):
    a = var((5, 3, 4), "float32", "a", static=True)
    b = var((5, 4, 2), "float64", "b", static=True)
    out = T.batched_dot(a, b)
    assert out.dtype == "float64"
    assert out.type.shape == (5, 3, 2)
    va, vb = rand((5, 3, 4), "float32"), rand((5, 4, 2))
    run([a, b], out, [va, vb], np.einsum("bij,bjk->bik", va, vb), rtol=1e-6)
    with pytest.raises(ValueError):
        T.batched_dot(a, var((4, 4, 2), static=True))
    with pytest.raises(ValueError):
        T.batched_dot(a, var((5, 3, 2), static=True))
    with pytest.raises(TypeError):
        T.batched_dot(T.scalar(), b)


# -- outer --------------------------------------------------------------------------------------

@pytest.mark.parametrize("da,db", [("float64", "float64"), ("float32", "float32"),
                                   ("float32", "float64"), ("int32", "int32")])
def test_outer(run, da, db):
    x, y = var((3,), da, "x"), var((4,), db, "y")
    vx, vy = rand((3,), da), rand((4,), db)
    out = T.outer(x, y)
    assert out.dtype == np.result_type(da, db).name
    run([x, y], out, [vx, vy], np.outer(vx, vy))
    run([x, y], out, [rand((0,), da), vy], np.outer(rand((0,), da), vy))


def test_outer_flattens_and_static_shape(run):
    x = var((2, 3), static=True)
    y = var((4,), static=True)
    out = T.outer(x, y)
    assert out.type.shape == (6, 4)
    vx, vy = rand((2, 3)), rand((4,))
    run([x, y], out, [vx, vy], np.outer(vx, vy))


# -- symbolic shapes of results (x.shape goes through each op's infer_shape) ----------------------

@pytest.mark.parametrize("case", ["dot mv", "dot mm", "dot 3d", "dot vv", "matmul",
                                  "matmul broadcast", "tensordot", "batched", "batched 4d",
                                  "outer"])
def test_symbolic_shape_of_result(case):
    x, v, t3, y = T.matrix("x"), T.vector("v"), T.tensor3("t3"), T.matrix("y")
    vals = [rand((4, 6)), rand((6,)), rand((2, 3, 4)), rand((4, 5))]
    out = {
        "dot mv": T.dot(x, v), "dot mm": T.dot(x, x.T), "dot 3d": T.dot(t3, y),
        "dot vv": T.dot(v, v), "matmul": t3 @ y, "matmul broadcast": t3[:, None] @ y,
        "tensordot": T.tensordot(t3, y, [[2], [0]]),
        "batched": T.batched_dot(t3, t3.dimshuffle(0, 2, 1)),
        "batched 4d": T.batched_dot(t3, T.stack([y, y]).dimshuffle(0, "x", 1, 2)),
        "outer": T.outer(v, v[:2]),
    }[case]
    f = theon.function([x, v, t3, y], [out, out.shape] + [out.shape[i] for i in range(out.ndim)],
                       on_unused_input="ignore")
    value, shp, *dims = f(*vals)
    assert tuple(shp) == value.shape
    assert tuple(int(d) for d in dims) == value.shape


def test_dotadd_static_shape_takes_the_broadcast_addend_length():
    from theon.ops.blas import DotAdd
    a = T.tensor("float64", shape=(1, None))
    c = T.tensor("float64", shape=(3, 4))
    b = T.dmatrix()
    out = DotAdd()(a, b, c)
    assert out.type.shape == (3, 4)
    f = theon.function([a, b, c], out)
    np.testing.assert_allclose(f(np.ones((1, 2)), np.ones((2, 4)), np.ones((3, 4))),
                               np.full((3, 4), 3.0))



@pytest.mark.parametrize("shapes", [((3,), (3, 4), (4,)), ((2, 3), (3, 4), (2, 4)),
                                    ((2, 3), (3, 4), (4,)), ((3,), (3,), ())])
def test_dotadd_of_small_operands_matches_numpy(shapes):
    """Small products take DotAdd's straight path; a broadcast addend the general one."""
    from theon.ops.blas import DotAdd
    rng = np.random.default_rng(3)
    x, y, z = (T.tensor("float64", shape=(None,) * len(s)) for s in shapes)
    f = theon.function([x, y, z], DotAdd()(x, y, z), mode=theon.Mode(linker="py"))
    vals = [rng.normal(size=s) for s in shapes]
    first = f(*vals)
    np.testing.assert_allclose(first, np.dot(vals[0], vals[1]) + vals[2], rtol=1e-12)
    if first.ndim:  # each call its own array: a result the caller holds stays as it was
        second = f(*vals)
        assert second is not first
        np.testing.assert_array_equal(second, first)


def test_dotadd_of_an_integer_product_and_a_float_addend():
    from theon.ops.blas import DotAdd
    i, m, d = T.lvector("i"), T.lmatrix("m"), T.dvector("d")
    f = theon.function([i, m, d], DotAdd()(i, m, d), mode=theon.Mode(linker="py"))
    got = f(np.array([1, 2]), np.array([[1, 2, 3], [4, 5, 6]]), np.array([0.5, 0.25, 0.0]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [9.5, 12.25, 15.0])


def test_dotadd_says_which_shapes_do_not_fit():
    from theon.ops.blas import DotAdd
    x, y, z = T.dvector("x"), T.dmatrix("y"), T.dvector("z")
    f = theon.function([x, y, z], DotAdd()(x, y, z), mode=theon.Mode(linker="py"))
    with pytest.raises(ValueError, match=r"dot \+ add: shapes \(5,\), \(3, 4\) and \(4,\)"):
        f(np.ones(5), np.ones((3, 4)), np.ones(4))
