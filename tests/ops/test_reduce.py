"""Reductions (sum prod mean var std max min argmax argmin all any) and cumsum/cumprod,
checked against numpy: values, output dtypes (Theano's rules), static types, errors."""
import zlib

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.symbolic.types import TensorType

# Every reduction kind's C kernel is checked by tests/backends/test_c_reduce.py, on every dtype
# and axis set, all of a dtype in one library, in every layout: here functions need not wait
# for one library each (tests/ops/conftest.py), which would be a thousand compiles
BACKGROUND_KERNELS = True


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def rand(rng, shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        lo = 0 if dt.kind == "u" else -2
        return rng.integers(lo, 3, size=shape).astype(dt)  # small: products stay exact
    return rng.uniform(-2.0, 2.0, size=shape).astype(dt)


def _int_acc(dtype):
    return "uint64" if dtype.startswith("uint") else "int64"


def _sum_dtype(dtype):
    return dtype if dtype.startswith(("float", "complex")) else _int_acc(dtype)


def _mean_dtype(dtype):
    return dtype if dtype.startswith(("float", "complex")) else "float64"


# name -> (theon function, numpy reference computing in float64/int64, output dtype rule)
REDUCTIONS = {
    "sum": (T.sum, np.sum, _sum_dtype),
    "prod": (T.prod, np.prod, _sum_dtype),
    "mean": (T.mean, np.mean, _mean_dtype),
    "var": (T.var, np.var, _mean_dtype),
    "std": (T.std, np.std, _mean_dtype),
    "max": (T.max, np.max, lambda d: d),
    "min": (T.min, np.min, lambda d: d),
    "all": (T.all, np.all, lambda d: "bool"),
    "any": (T.any, np.any, lambda d: "bool"),
    "argmax": (T.argmax, np.argmax, lambda d: "int64"),
    "argmin": (T.argmin, np.argmin, lambda d: "int64"),
}

DTYPES = {
    "sum": ("float32", "float64", "int8", "int32", "uint8", "bool"),
    "prod": ("float32", "float64", "int8", "int32", "uint8"),
    "mean": ("float32", "float64", "int8", "int32", "bool"),
    "var": ("float32", "float64", "int8", "int32"),
    "std": ("float32", "float64", "int32"),
    "max": ("float32", "float64", "int8", "int32", "uint8", "bool"),
    "min": ("float32", "float64", "int8", "int32", "uint8"),
    "all": ("float64", "int32", "bool"),
    "any": ("float64", "int8", "bool"),
    "argmax": ("float32", "float64", "int8", "int32"),
    "argmin": ("float64", "int32"),
}

AXES = [None, 0, 1, 2, -1, -3, (0, 2), (2, 0), (-1, 1), (0, 1, 2), ()]
ARG_AXES = [None, 0, 1, 2, -1, -2, (1,), (0, 1, 2)]


def test_every_reduction_has_dtypes():
    assert set(REDUCTIONS) == set(DTYPES)


@pytest.fixture
def run(run):
    """This file's tolerance: float32 results to 3e-5, the rest to 1e-12, ints exactly."""
    return run.with_defaults(rtol={"float32": 3e-5, "default": 1e-12})


def _reference(name, a, axis, keepdims):
    ref = REDUCTIONS[name][1]
    if name.startswith("arg"):
        if isinstance(axis, tuple):
            axis = None if len(axis) == a.ndim else axis[0]
        out = ref(a, axis=axis)
        if keepdims:
            out = np.expand_dims(out, tuple(range(a.ndim)) if axis is None else axis)
        return np.asarray(out)
    if name in ("mean", "var", "std") or a.dtype.kind == "f":
        a = a.astype(np.float64)
    elif name in ("sum", "prod") and a.dtype.kind in "biu":
        a = a.astype(_int_acc(str(a.dtype)) if a.dtype.kind != "b" else np.int64)
    with np.errstate(all="ignore"):
        return np.asarray(ref(a, axis=axis, keepdims=keepdims))


CASES = [(n, dt, ax, kd) for n in REDUCTIONS for dt in DTYPES[n]
         for ax in (ARG_AXES if n.startswith("arg") else AXES) for kd in (False, True)]


@pytest.mark.parametrize("name,dtype,axis,keepdims", CASES,
                         ids=[f"{n}-{d}-{a}-{'keep' if k else 'drop'}" for n, d, a, k in CASES])
def test_reduction(run, name, dtype, axis, keepdims):
    fn, _, rule = REDUCTIONS[name]
    x = TensorType(dtype, shape=(None, None, None))("x")
    out = fn(x, axis=axis, keepdims=keepdims)
    assert out.dtype == rule(dtype), (name, dtype, out.dtype)
    f = theon.function([x], out)
    rng = _rng(name, dtype, axis, keepdims)
    for shape in ((2, 3, 4), (1, 3, 1)):
        a = rand(rng, shape, dtype)
        run.check(f(a), out, _reference(name, a, axis, keepdims), err_msg=name)


METHODS = ["sum", "prod", "mean", "var", "std", "max", "min", "all", "any", "argmax", "argmin"]


@pytest.mark.parametrize("name", METHODS)
def test_method_spelling(run, name):
    x = T.matrix("x")
    a = _rng(name).uniform(-1, 1, (3, 4))
    for kwargs in ({}, {"axis": 0}, {"axis": -1, "keepdims": True}):
        out = getattr(x, name)(**kwargs)
        same = REDUCTIONS[name][0](x, **kwargs)
        assert out.type == same.type
        got = theon.function([x], out)(a)
        run.check(got, out, _reference(name, a, kwargs.get("axis"),
                                       kwargs.get("keepdims", False)), err_msg=name)


# -- empty inputs -------------------------------------------------------------------------------

EMPTY_OK = [(n, ax) for n in ("sum", "prod", "all", "any") for ax in (None, 0, 1, (0, 1))] + \
    [(n, 1) for n in ("max", "min", "argmax", "argmin")] + \
    [("max", (1,)), ("min", -1)]


@pytest.mark.parametrize("name,axis", EMPTY_OK, ids=[f"{n}-{a}" for n, a in EMPTY_OK])
@pytest.mark.parametrize("dtype", ["float64", "int32"])
def test_empty_input_where_numpy_defines_a_result(run, name, axis, dtype):
    """(0, 3) inputs: sum/prod/all/any have identities; max/min/argmax/argmin over the
    non-empty axis give an empty result."""
    x = T.matrix("x", dtype=dtype)
    a = np.zeros((0, 3), dtype=dtype)
    for keepdims in (False, True):
        out = REDUCTIONS[name][0](x, axis=axis, keepdims=keepdims)
        got = theon.function([x], out)(a)
        run.check(got, out, _reference(name, a, axis, keepdims), err_msg=name)


@pytest.mark.parametrize("name", ["mean", "var", "std"])
def test_mean_of_empty_is_nan(name):
    x = T.matrix("x")
    out = REDUCTIONS[name][0](x, axis=0)
    f = theon.function([x], out)
    with np.errstate(all="ignore"):  # 0 / 0, as in numpy (which warns too)
        got = f(np.zeros((0, 3)))
    assert got.shape == (3,) and np.all(np.isnan(got))


@pytest.mark.parametrize("name,axis", [(n, ax) for n in ("max", "min", "argmax", "argmin")
                                       for ax in (None, 0, (0, 1))])
def test_empty_input_without_identity_raises(name, axis):
    x = T.matrix("x")
    f = theon.function([x], REDUCTIONS[name][0](x, axis=axis))
    with pytest.raises(ValueError, match="empty"):
        f(np.zeros((0, 3)))
    with np.testing.assert_raises(ValueError):  # numpy agrees
        REDUCTIONS[name][1](np.zeros((0, 3)), axis=None if name.startswith("arg") and
                            isinstance(axis, tuple) else axis)


# -- dtypes, static types, arguments -------------------------------------------------------------

@pytest.mark.parametrize("dtype,expect", [("int8", "int64"), ("int32", "int64"),
                                          ("int64", "int64"), ("uint8", "uint64"),
                                          ("bool", "int64"), ("float32", "float32"),
                                          ("float64", "float64")])
def test_sum_prod_dtype(dtype, expect):
    x = T.vector(dtype=dtype)
    assert T.sum(x).dtype == expect
    assert T.prod(x).dtype == expect
    assert x.sum(axis=0).dtype == expect


@pytest.mark.parametrize("dtype,expect", [("int8", "float64"), ("int32", "float64"),
                                          ("bool", "float64"), ("float32", "float32"),
                                          ("float64", "float64")])
def test_mean_dtype(dtype, expect):
    x = T.matrix(dtype=dtype)
    assert T.mean(x).dtype == expect
    assert T.mean(x, axis=1, keepdims=True).dtype == expect


def test_int8_sum_does_not_overflow():
    x = T.bvector()
    a = np.full(300, 100, dtype=np.int8)
    got = theon.function([x], [x.sum(), x.prod(), x.mean()])(a)
    assert got[0] == 30000 and got[0].dtype == np.int64
    assert got[2] == 100.0


def test_explicit_dtype_argument():
    x = T.imatrix()
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    for fn in (T.sum, T.prod, T.mean):
        out = fn(x, axis=0, dtype="float32")
        assert out.dtype == "float32"
        got = theon.function([x], out)(a)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, REDUCTIONS[fn.__name__][1](a, axis=0), rtol=1e-6)


def test_static_shapes_of_results():
    x = TensorType("float64", shape=(2, None, 4))()
    assert x.sum(axis=1).type.shape == (2, 4)
    assert x.sum(axis=1, keepdims=True).type.shape == (2, 1, 4)
    assert x.sum(keepdims=True).type.shape == (1, 1, 1)
    assert x.sum().type.shape == ()
    assert x.argmax(axis=2).type.shape == (2, None)
    assert x.argmax(axis=0, keepdims=True).type.shape == (1, None, 4)
    assert x.mean(axis=(0, 2)).type.shape == (None,)
    assert T.row().max(axis=1, keepdims=True).type.shape == (1, 1)


def test_ddof():
    x = T.matrix()
    a = _rng("ddof").standard_normal((4, 5))
    f = theon.function([x], [T.var(x, axis=0, ddof=1), T.std(x, ddof=1),
                             x.var(axis=1, ddof=1, keepdims=True)])
    v0, s, v1 = f(a)
    np.testing.assert_allclose(v0, np.var(a, axis=0, ddof=1))
    np.testing.assert_allclose(s, np.std(a, ddof=1))
    np.testing.assert_allclose(v1, np.var(a, axis=1, ddof=1, keepdims=True))


def test_max_min_nan_and_ties_like_numpy():
    x = T.matrix()
    a = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, -1.0]])
    f = theon.function([x], [x.max(axis=1), x.min(axis=0), x.argmax(axis=1), x.argmin(axis=1),
                             x.argmax()])
    mx, mn, amx, amn, flat = f(a)
    np.testing.assert_array_equal(mx, np.max(a, axis=1))
    np.testing.assert_array_equal(mn, np.min(a, axis=0))
    np.testing.assert_array_equal(amx, np.argmax(a, axis=1))
    np.testing.assert_array_equal(amn, np.argmin(a, axis=1))
    assert flat == np.argmax(a)


def test_scalar_input(run):
    x = T.scalar()
    for name in ("sum", "prod", "max", "mean", "all", "argmax"):
        out = REDUCTIONS[name][0](x)
        got = theon.function([x], out)(3.0)
        run.check(got, out, _reference(name, np.array(3.0), None, False), err_msg=name)


@pytest.mark.parametrize("name", list(REDUCTIONS) + ["cumsum", "cumprod"])
@pytest.mark.parametrize("axis", [2, -3, 5])
def test_bad_axis_raises_at_build_time(name, axis):
    x = T.matrix("x")
    fn = REDUCTIONS[name][0] if name in REDUCTIONS else getattr(T, name)
    with pytest.raises(ValueError, match=f"axis {axis}"):
        fn(x, axis=axis)


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "max", "all", "var"])
def test_bad_axis_in_a_tuple_and_repeated_axes(name):
    x = T.matrix("x")
    fn = REDUCTIONS[name][0]
    with pytest.raises(ValueError, match="axis 2"):
        fn(x, axis=(0, 2))
    with pytest.raises(ValueError, match="repeated"):
        fn(x, axis=(1, -1))
    with pytest.raises(TypeError):
        fn(x, axis="0")


def test_argmax_over_several_axes_refused():
    with pytest.raises(TypeError):
        T.argmax(T.tensor3(), axis=(0, 1))


# -- cumsum / cumprod -----------------------------------------------------------------------------

CUM = [(n, dt, ax) for n in ("cumsum", "cumprod") for dt in ("float32", "float64", "int8",
                                                              "int32", "bool")
       for ax in (None, 0, 1, -1)]


@pytest.mark.parametrize("name,dtype,axis", CUM, ids=[f"{n}-{d}-{a}" for n, d, a in CUM])
def test_cumulative(run, name, dtype, axis):
    x = T.matrix("x", dtype=dtype)
    out = getattr(T, name)(x, axis=axis)
    meth = getattr(x, name)(axis=axis)
    assert meth.type == out.type
    assert out.dtype == _sum_dtype(dtype)
    f = theon.function([x], out)
    rng = _rng(name, dtype, axis)
    for shape in ((3, 4), (0, 3), (1, 1)):
        a = rand(rng, shape, dtype)
        ref = getattr(np, name)(a, axis=axis, dtype=np.dtype(out.dtype))
        run.check(f(a), out, ref, err_msg=name)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumulative_vector_and_scalar(run, name):
    v = TensorType("float64", shape=(5,))()
    out = getattr(T, name)(v)
    assert out.type.shape == (5,)
    a = np.arange(1.0, 6.0)
    run.check(theon.function([v], out)(a), out, getattr(np, name)(a), err_msg=name)
    s = T.scalar()
    out = getattr(T, name)(s)
    run.check(theon.function([s], out)(2.0), out, getattr(np, name)(np.array(2.0)), err_msg=name)


# -- rewrites keep reductions right ----------------------------------------------------------------

def test_log_sum_exp_is_stable_and_right():
    x = T.matrix()
    a = _rng("lse").standard_normal((3, 4)) * 3
    a[0, 0] = 1000.0
    got = theon.function([x], T.log(T.sum(T.exp(x), axis=1)))(a)
    m = a.max(axis=1, keepdims=True)
    expect = (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]
    np.testing.assert_allclose(got, expect)
