"""Every row of ops/scalar.py TABLE, lifted by Elemwise, checked against numpy.

The table is walked, so a new row is tested for free -- but it must have an entry in ``SPECS``
(its reference function and input domains), or ``test_every_row_has_a_spec`` fails. Its C
template is compiled and checked on every dtype by tests/backends/test_dialect.py, its sympy
formula by tests/compile/test_sympy_bridge.py, both without an entry of their own. The
reference functions are written out here on purpose rather than taken from the row's ``np_fn``,
so a wrong ``np_fn`` is caught.
"""
import math
import zlib

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.ops import scalar as S
from theon.ops.elemwise import ELEMWISE
from theon.symbolic.types import TensorType

# Every row's C kernel is checked by tests/backends/test_c_rows.py, all the rows of a dtype in
# one library, in every layout and on special values: here functions need not wait for one
# library each (tests/ops/conftest.py), which would be a thousand compiles
BACKGROUND_KERNELS = True

# -- input domains ---------------------------------------------------------------------------

class Dom:
    """Floats uniform in [flo, fhi], ints uniform in [ilo, ihi]; ``avoid`` values are replaced
    (e.g. zero divisors); ``halves`` puts exact .5 ties among the floats; ``specials`` puts
    nan/inf among the floats."""

    def __init__(self, flo=-3.0, fhi=3.0, ilo=-5, ihi=5, avoid=(), halves=False, specials=False):
        self.flo, self.fhi, self.ilo, self.ihi = flo, fhi, ilo, ihi
        self.avoid, self.halves, self.specials = avoid, halves, specials

    def __call__(self, rng, shape, dtype):
        dt = np.dtype(dtype)
        if dt.kind == "b":
            return rng.integers(0, 2, size=shape).astype(bool)
        if dt.kind in "iu":
            lo = max(self.ilo, 0) if dt.kind == "u" else self.ilo
            a = rng.integers(lo, max(self.ihi, lo) + 1, size=shape)
            for v in self.avoid:
                a = np.where(a == v, self.ihi if self.ihi != v else lo, a)
            return a.astype(dt)
        a = rng.uniform(self.flo, self.fhi, size=shape)
        if self.halves:
            ties = np.round(rng.uniform(self.flo, self.fhi, size=shape) * 2) / 2
            a = np.where(rng.integers(0, 2, size=shape) == 1, ties, a)
        for v in self.avoid:  # keep away from the avoided value by at least 0.25
            a = np.where(np.abs(a - v) < 0.25, v + 0.5, a)
        if self.specials and a.size:
            flat = a.reshape(-1)
            flat[:: 3] = np.nan
            flat[1:: 5] = np.inf
            flat[2:: 7] = -np.inf
        return a.astype(dt)


ANY = Dom()
POS = Dom(0.1, 5.0, 1, 5)
NONZERO = Dom(-4.0, 4.0, -5, 5, avoid=(0,))
UNIT = Dom(-0.95, 0.95, -1, 1)
OPEN_UNIT = Dom(-0.95, 0.95, 0, 0)  # arctanh: only 0 is finite among the ints
GE1 = Dom(1.0, 5.0, 1, 5)
SMALL = Dom(-2.0, 2.0, -3, 3)
HALVES = Dom(-4.0, 4.0, -5, 5, halves=True)
SPECIAL = Dom(-3.0, 3.0, -5, 5, specials=True)
POW_BASE = Dom(0.2, 3.0, -3, 3)
POW_EXP = Dom(-2.0, 2.0, 0, 3)
LO = Dom(-2.0, -0.5, -3, -1)
HI = Dom(0.5, 2.0, 1, 3)
COND = Dom(ilo=0, ihi=1)  # used with dtype bool

FLOATS = ("float32", "float64")
INTS = ("int8", "int32")
DISCRETE = ("bool", "int8", "int32", "uint8")


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _mp(fn, pole=np.nan):
    """A reference from mpmath (sympy's dependency), element by element in 30 digits; ``pole``
    where mpmath refuses the value (C's value at a pole of the gamma functions)."""
    import mpmath

    def one(v):
        try:
            return float(fn(mpmath, mpmath.mpf(float(v))))
        except (ValueError, ZeroDivisionError):
            return pole(v) if callable(pole) else pole

    def ref(x):
        with mpmath.workdps(30):
            return np.vectorize(one, otypes=[np.float64])(x)
    return ref


def _round_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


class Spec:
    """``ref`` is computed in float64 when the output is a float, on the raw inputs otherwise;
    ``doms`` per input; ``dtypes`` those the row accepts (all given to every input);
    ``refused`` a dtype whose use must raise TypeError at build time; ``fixed`` dtypes pinned per
    input position (switch's condition)."""

    def __init__(self, ref, doms, dtypes=FLOATS + INTS, refused="complex128", fixed=None):
        self.ref, self.doms, self.dtypes = ref, doms, dtypes
        self.refused, self.fixed = refused, fixed or {}


def _s(ref, *doms, **kw):
    return Spec(ref, doms, **kw)


SPECS = {
    "add": _s(lambda a, b: a + b, ANY, ANY, dtypes=FLOATS + INTS + ("bool",), refused=None),
    "sub": _s(lambda a, b: a - b, ANY, ANY, refused=None),
    "mul": _s(lambda a, b: a * b, ANY, ANY, dtypes=FLOATS + INTS + ("bool",), refused=None),
    "true_div": _s(lambda a, b: a / b, ANY, NONZERO, refused=None),
    "int_div": _s(lambda a, b: np.floor(a / b) if a.dtype.kind == "f" else a // b,
                  ANY, NONZERO),
    "mod": _s(lambda a, b: a - b * np.floor(a / b) if a.dtype.kind == "f" else a % b,
              ANY, NONZERO),
    "pow": _s(lambda a, b: a ** b, POW_BASE, POW_EXP, refused=None),
    "neg": _s(lambda a: -a, ANY, refused=None),
    "abs": _s(lambda a: np.abs(a), ANY, refused=None),
    "sgn": _s(lambda a: (a > 0).astype(a.dtype) - (a < 0).astype(a.dtype), ANY),
    "exp": _s(lambda a: np.e ** a, ANY, refused=None),
    "exp2": _s(lambda a: 2.0 ** a, ANY, refused=None),
    "log": _s(lambda a: np.log(a), POS, refused=None),
    "log2": _s(lambda a: np.log(a) / np.log(2.0), POS, refused=None),
    "log10": _s(lambda a: np.log(a) / np.log(10.0), POS, refused=None),
    "log1p": _s(lambda a: np.log(1 + a), Dom(-0.9, 3.0, 0, 5), refused=None),
    "expm1": _s(lambda a: np.exp(a) - 1, ANY, refused=None),
    "sqrt": _s(lambda a: a ** 0.5, POS, refused=None),
    "sqr": _s(lambda a: a * a, ANY, refused=None),
    "inv": _s(lambda a: 1.0 / a, NONZERO, refused=None),
    "sin": _s(np.sin, ANY, refused=None),
    "cos": _s(np.cos, ANY, refused=None),
    "tan": _s(lambda a: np.sin(a) / np.cos(a), Dom(-1.3, 1.3, -1, 1), refused=None),
    "arcsin": _s(np.arcsin, UNIT, refused=None),
    "arccos": _s(np.arccos, UNIT, refused=None),
    "arctan": _s(np.arctan, ANY, refused=None),
    "arctan2": _s(np.arctan2, ANY, NONZERO),
    "sinh": _s(lambda a: (np.exp(a) - np.exp(-a)) / 2, ANY, refused=None),
    "cosh": _s(lambda a: (np.exp(a) + np.exp(-a)) / 2, ANY, refused=None),
    "tanh": _s(np.tanh, ANY, refused=None),
    "arcsinh": _s(lambda a: np.log(a + np.sqrt(a * a + 1)), ANY, refused=None),
    "arccosh": _s(lambda a: np.log(a + np.sqrt(a * a - 1)), GE1, refused=None),
    "arctanh": _s(lambda a: 0.5 * np.log((1 + a) / (1 - a)), OPEN_UNIT, refused=None),
    "sigmoid": _s(lambda a: 1 / (1 + np.exp(-a)), Dom(-20.0, 20.0)),
    "softplus": _s(lambda a: np.log1p(np.exp(a)), Dom(-20.0, 20.0)),
    "erf": _s(_erf, ANY),
    # (bool and the ints reach the poles 0 and -1..-5: C's values there)
    "gamma": _s(_mp(lambda mp, v: mp.gamma(v), lambda v: np.copysign(np.inf, v) if v == 0
                    else np.nan), Dom(-3.5, 5.0, 1, 5, avoid=(-3, -2, -1, 0))),
    "gammaln": _s(_mp(lambda mp, v: mp.log(abs(mp.gamma(v))), np.inf),
                  Dom(-3.5, 5.0, 1, 5, avoid=(-3, -2, -1, 0))),
    "psi": _s(_mp(lambda mp, v: mp.digamma(v), lambda v: -np.inf if v == 0 else np.nan),
              Dom(-3.5, 5.0, 1, 5, avoid=(-3, -2, -1, 0))),
    "tri_gamma": _s(_mp(lambda mp, v: mp.polygamma(1, v), np.inf),
                    Dom(-3.5, 5.0, 1, 5, avoid=(-3, -2, -1, 0))),
    "erfinv": _s(_mp(lambda mp, v: mp.erfinv(v)), OPEN_UNIT),
    "erfcinv": _s(_mp(lambda mp, v: mp.erfinv(1 - v)), Dom(0.05, 1.95, 1, 1)),
    "floor": _s(np.floor, HALVES),
    "ceil": _s(np.ceil, HALVES),
    "trunc": _s(lambda a: np.sign(a) * np.floor(np.abs(a)), HALVES),
    "round_half_to_even": _s(np.round, HALVES),
    "round_half_away_from_zero": _s(_round_away, HALVES),
    "maximum": _s(lambda a, b: np.where(a >= b, a, b), ANY, ANY),
    "minimum": _s(lambda a, b: np.where(a <= b, a, b), ANY, ANY),
    "clip": _s(lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), ANY, LO, HI),
    "eq": _s(lambda a, b: a == b, SMALL, SMALL, dtypes=INTS + FLOATS + ("bool",), refused=None),
    "neq": _s(lambda a, b: a != b, SMALL, SMALL, dtypes=INTS + FLOATS + ("bool",), refused=None),
    "lt": _s(lambda a, b: a < b, SMALL, SMALL),
    "le": _s(lambda a, b: a <= b, SMALL, SMALL),
    "gt": _s(lambda a, b: a > b, SMALL, SMALL),
    "ge": _s(lambda a, b: a >= b, SMALL, SMALL),
    "isnan": _s(lambda a: a != a, SPECIAL, refused=None),  # noqa: PLR0124 - nan test
    "isinf": _s(lambda a: np.abs(a) == np.inf, SPECIAL, refused=None),
    "and_": _s(lambda a, b: a & b, ANY, ANY, dtypes=DISCRETE, refused="float32"),
    "or_": _s(lambda a, b: a | b, ANY, ANY, dtypes=DISCRETE, refused="float32"),
    "xor": _s(lambda a, b: a ^ b, ANY, ANY, dtypes=DISCRETE, refused="float64"),
    "invert": _s(lambda a: ~a, ANY, dtypes=DISCRETE, refused="float32"),
    "switch": _s(lambda c, a, b: np.where(c, a, b), COND, ANY, ANY, refused=None,
                 fixed={0: "bool"}),
    "identity": _s(lambda a: a.copy(), ANY, dtypes=FLOATS + INTS + ("bool",), refused=None),
}

NAMES = sorted(S.TABLE)


def test_every_row_has_a_spec():
    missing = sorted(set(S.TABLE) - set(SPECS))
    assert not missing, f"rows without a test spec in {__file__}: {missing}"
    stale = sorted(set(SPECS) - set(S.TABLE))
    assert not stale, f"specs for rows no longer in the table: {stale}"


def test_every_row_is_lifted():
    assert set(ELEMWISE) == set(S.TABLE)
    for name, sop in S.TABLE.items():
        assert ELEMWISE[name].scalar_op is sop
        assert sop.nin == len(SPECS[name].doms), name


def test_every_row_is_exported_by_its_name():
    """theon.tensor binds every row to its name by itself: a new row needs no edit there."""
    for name in S.TABLE:
        assert getattr(T, name) is ELEMWISE[name], name
    assert T.abs_ is T.abs and T.bitwise_not is T.invert and T.reciprocal is T.inv


# -- helpers -----------------------------------------------------------------------------------

def _tol(dtype):
    if dtype == "float16":
        return {"rtol": 2e-3, "atol": 2e-3}
    if dtype in ("float32", "complex64"):
        return {"rtol": 2e-5, "atol": 2e-6}
    return {"rtol": 1e-12, "atol": 1e-13}


def _expected(spec, args, out_dtype):
    out = np.dtype(out_dtype)
    if out.kind in "fc":
        with np.errstate(all="ignore"):
            wide = np.complex128 if any(a.dtype.kind == "c" for a in args) else np.float64
            res = np.asarray(spec.ref(*[a.astype(wide) for a in args]))
            assert out.kind == "c" or res.dtype.kind != "c", "reference is complex"
            return res.astype(np.complex128 if out.kind == "c" else np.float64)
    if out.kind in "iu":  # Theano computes in the output dtype (bool + bool is 2, not True)
        args = [a.astype(out) for a in args]
    with np.errstate(all="ignore"):
        return np.asarray(spec.ref(*args))


def check(name, sym_inputs, values, spec):
    out = ELEMWISE[name](*sym_inputs)
    f = theon.function(list(sym_inputs), out)
    with np.errstate(all="ignore"):
        got = f(*values)
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == np.dtype(out.dtype), (name, got.dtype, out.dtype)
    assert got.ndim == out.ndim
    for d, s in enumerate(out.type.shape):
        assert s is None or got.shape[d] == s, (got.shape, out.type)
    expect = _expected(spec, values, out.dtype)
    assert got.shape == np.broadcast_shapes(*[v.shape for v in values]), got.shape
    assert got.shape == expect.shape
    if got.dtype.kind in "fc":
        np.testing.assert_allclose(got, expect, equal_nan=True, err_msg=name, **_tol(out.dtype))
    else:
        np.testing.assert_array_equal(got, expect.astype(got.dtype), err_msg=name)
    return out, got


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())


def _dtype_for(spec, i, dtype):
    return spec.fixed.get(i, dtype)


VALUE_CASES = [(n, dt) for n in NAMES if n in SPECS for dt in SPECS[n].dtypes]


@pytest.mark.parametrize("name,dtype", VALUE_CASES, ids=[f"{n}-{d}" for n, d in VALUE_CASES])
def test_values_and_dtype(name, dtype):
    spec = SPECS[name]
    rng = np.random.default_rng(_seed(name, dtype))
    shape = (3, 4)
    dts = [_dtype_for(spec, i, dtype) for i in range(len(spec.doms))]
    syms = [TensorType(dt, shape=(None, None))() for dt in dts]
    vals = [dom(rng, shape, dt) for dom, dt in zip(spec.doms, dts)]
    out, _ = check(name, syms, vals, spec)
    assert out.dtype == S.TABLE[name].output_dtype(*dts)


# Shape layouts: (static shape of each input, run-time shape of each input). Input k of the
# row takes the layout entry min(k, len-1); rotated so each input position takes the odd one.
LAYOUTS = {
    "same": [((None, None), (3, 4))],
    "empty": [((None, None), (0, 3))],
    "empty_static": [((0, None), (0, 3))],
    "row": [((1, None), (1, 4)), ((None, None), (3, 4))],
    "col": [((None, 1), (3, 1)), ((None, None), (3, 4))],
    "row_col": [((1, None), (1, 4)), ((None, 1), (3, 1))],
    "scalar": [((), ()), ((None, None), (3, 4))],
    "vector": [((None,), (4,)), ((None, None), (3, 4))],
    "vector_empty": [((None,), (0,)), ((None, None), (2, 0))],
    "row_empty": [((1, None), (1, 3)), ((None, None), (0, 3))],
    "static": [((3, 4), (3, 4)), ((None, 4), (3, 4))],
    "tensor3": [((None, 1, None), (2, 1, 3)), ((None, None), (4, 3))],
}

SHAPE_CASES = [(n, lay, odd) for n in NAMES if n in SPECS for lay in LAYOUTS
               for odd in range(S.TABLE[n].nin if len(LAYOUTS[lay]) > 1 else 1)]


@pytest.mark.parametrize("name,layout,odd", SHAPE_CASES,
                         ids=[f"{n}-{lay}-{o}" for n, lay, o in SHAPE_CASES])
def test_broadcasting(name, layout, odd):
    spec = SPECS[name]
    rng = np.random.default_rng(_seed(name, layout, odd))
    entries = LAYOUTS[layout]
    dtype = "float64" if "float64" in spec.dtypes else spec.dtypes[-1]
    syms, vals = [], []
    for i, dom in enumerate(spec.doms):
        static, runtime = entries[0] if i == odd else entries[-1]
        if len(entries) == 1:
            static, runtime = entries[0]
        dt = _dtype_for(spec, i, dtype)
        syms.append(TensorType(dt, shape=static)())
        vals.append(dom(rng, runtime, dt))
    out, got = check(name, syms, vals, spec)
    # the shape rule (infer_shape, used by the shape rewrites) agrees with the value
    shp = theon.function(syms, T.shape(out), on_unused_input="ignore")(*vals)
    assert tuple(shp) == got.shape, (tuple(shp), got.shape)
    if layout == "row_col" and spec.doms and S.TABLE[name].nin > 1:
        assert out.type.shape == (None, None) and got.shape == (3, 4)
    if layout == "static":
        assert out.type.shape == (3, 4)


ALL_REAL = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
            "float16", "float32", "float64")
# Rows whose reference above is also right for complex numbers (no branch cuts involved).
COMPLEX_OK = {"add", "sub", "mul", "true_div", "neg", "abs", "exp", "sqr", "sin", "cos", "tanh",
              "eq", "neq", "isnan", "isinf", "switch", "identity", "expm1", "sinh", "cosh"}
SWEEP = [(n, dt) for n in NAMES for dt in ALL_REAL + ("complex64", "complex128")
         if dt in ALL_REAL or n in COMPLEX_OK or SPECS[n].refused == dt]


@pytest.mark.parametrize("name,dtype", SWEEP, ids=[f"{n}-{d}" for n, d in SWEEP])
def test_every_dtype_is_refused_at_build_time_or_computed_right(name, dtype):
    """Each row on every dtype: a TypeError when the graph is built, or values of the declared
    dtype that agree with the reference (no silent overflow of uints, no float16 detours)."""
    spec = SPECS[name]
    dts = [_dtype_for(spec, i, dtype) for i in range(len(spec.doms))]
    syms = [TensorType(dt, shape=(None, None))() for dt in dts]
    try:
        ELEMWISE[name](*syms)
    except TypeError:
        assert dtype not in spec.dtypes, f"{name} refuses {dtype}"
        return
    assert dtype != spec.refused, f"{name} accepted {dtype}"
    rng = np.random.default_rng(_seed(name, dtype, "sweep"))
    vals = []
    for dom, dt in zip(spec.doms, dts):
        if dt.startswith("complex"):
            with np.errstate(all="ignore"):  # inf * 0.5j has a nan part; fine here
                v = dom(rng, (3, 4), "float64") + 0.5j * dom(rng, (3, 4), "float64")
            vals.append(v.astype(dt))
        else:
            vals.append(dom(rng, (3, 4), dt))
    check(name, syms, vals, spec)


def test_abs_of_complex_is_real():
    z = T.matrix(dtype="complex64")
    out = abs(z)
    assert out.dtype == "float32"
    v = np.array([[3 + 4j, -1j]], dtype=np.complex64)
    got = theon.function([z], out)(v)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[5.0, 1.0]])


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].refused])
def test_refused_dtype_raises_at_build_time(name):
    spec = SPECS[name]
    nin = S.TABLE[name].nin
    syms = [T.matrix(dtype=_dtype_for(spec, i, spec.refused)) for i in range(nin)]
    with pytest.raises(TypeError, match=name):
        ELEMWISE[name](*syms)


@pytest.mark.parametrize("name", ["and_", "or_", "xor"])
def test_bitwise_refuses_a_float_with_an_int(name):
    with pytest.raises(TypeError):
        ELEMWISE[name](T.imatrix(), T.fmatrix())
    with pytest.raises(TypeError):
        ELEMWISE[name](T.imatrix(), 1.5)


def test_wrong_number_of_inputs():
    with pytest.raises(TypeError, match="takes 2 inputs"):
        ELEMWISE["add"](T.matrix())


# -- broadcasting errors -------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in NAMES if S.TABLE[n].nin > 1])
def test_runtime_length_one_in_non_broadcastable_dim_raises(name):
    spec = SPECS[name]
    rng = np.random.default_rng(7)
    dtype = "float64" if "float64" in spec.dtypes else spec.dtypes[-1]
    dts = [_dtype_for(spec, i, dtype) for i in range(len(spec.doms))]
    syms = [TensorType(dt, shape=(None, None))() for dt in dts]
    f = theon.function(syms, ELEMWISE[name](*syms))
    for odd in range(len(dts)):
        vals = [dom(rng, (1, 4) if i == odd else (3, 4), dt)
                for i, (dom, dt) in enumerate(zip(spec.doms, dts))]
        with pytest.raises(ValueError, match="broadcastable"):
            f(*vals)


def test_runtime_shape_mismatch_raises():
    x, y = T.matrices("x", "y")
    f = theon.function([x, y], x + y)
    with pytest.raises(ValueError):
        f(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="broadcastable"):
        f(np.ones((3, 1)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="broadcastable"):
        f(np.ones((3, 4)), np.ones((1, 1)))


def test_declared_broadcastable_dims_do_broadcast():
    x = T.row("x")
    y = T.matrix("y")
    f = theon.function([x, y], x * y)
    a, b = np.arange(4.0).reshape(1, 4), np.ones((3, 4))
    np.testing.assert_array_equal(f(a, b), a * b)
    # a row given a (1, 1) value broadcasts in both directions only where declared
    x2 = TensorType("float64", shape=(1, 1))()
    f2 = theon.function([x2, y], x2 + y)
    np.testing.assert_array_equal(f2(np.full((1, 1), 2.0), b), b + 2)


@pytest.mark.parametrize("sa,sb", [((3, None), (4, None)), ((None, 2), (5,)),
                                   ((2, 3), (3, 2)), ((0, None), (2, None))])
def test_static_shape_conflict_raises_at_build_time(sa, sb):
    a = TensorType("float64", shape=sa)()
    b = TensorType("float64", shape=sb)()
    with pytest.raises(ValueError, match="broadcast"):
        a + b


def test_static_shape_of_result():
    a = TensorType("float64", shape=(1, None, 5))()
    b = TensorType("float64", shape=(None, 4, 1))()
    c = TensorType("float64", shape=(None,))()
    assert (a + b).type.shape == (None, 4, 5)
    assert (a * c).type.shape == (1, None, 5)
    assert (c + 1).type.shape == (None,)
    assert (T.row() + T.col()).type.shape == (None, None)
    assert (T.row() + T.row()).type.shape == (1, None)
    assert (T.scalar() + T.scalar()).type.shape == ()


def test_scalar_only_result_is_an_array():
    x, y = T.scalars("x", "y")
    f = theon.function([x, y], x * y)
    got = f(2.0, 3.0)
    assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == np.float64
    assert got == 6.0


# -- dtype promotion (Theano's rules) ------------------------------------------------------------

PROMOTIONS = [
    ("f32 + python int", lambda: T.fvector() + 3, "float32"),
    ("f32 + big python int", lambda: T.fvector() + 100000, "float64"),
    ("f32 + int8", lambda: T.fvector() + T.bvector(), "float32"),
    ("f32 + int16", lambda: T.fvector() + T.wvector(), "float32"),
    ("f32 + int32", lambda: T.fvector() + T.ivector(), "float64"),
    ("f32 + int64", lambda: T.fvector() + T.lvector(), "float64"),
    ("f32 + f64", lambda: T.fvector() + T.dvector(), "float64"),
    ("int8 + int32", lambda: T.bvector() + T.ivector(), "int32"),
    ("int8 + python int", lambda: T.bvector() + 1, "int8"),
    # true division of ints gives floatX, as in Theano (the suite pins floatX to float64;
    # tests/ops/test_audit_dtypes.py checks float32)
    ("int32 / int32", lambda: T.ivector() / T.ivector(), "float64"),
    ("int8 / int8", lambda: T.bvector() / T.bvector(), "float64"),
    ("int16 / int8", lambda: T.wvector() / T.bvector(), "float64"),
    ("int64 / int8", lambda: T.lvector() / T.bvector(), "float64"),
    ("int32 // int32", lambda: T.ivector() // T.ivector(), "int32"),
    ("int8 % int8", lambda: T.bvector() % T.bvector(), "int8"),
    ("f32 * 0.5", lambda: T.fvector() * 0.5, "float32"),
    ("f32 * 0.1 (floatX=float64)", lambda: T.fvector() * 0.1, "float64"),
    ("f64 * 0.5", lambda: T.dvector() * 0.5, "float64"),
    ("int8 * 0.5", lambda: T.bvector() * 0.5, "float32"),
    ("f32 < f32", lambda: T.fvector() < T.fvector(), "bool"),
    ("int < float", lambda: T.ivector() < 1.5, "bool"),
    ("eq", lambda: T.eq(T.dvector(), 1), "bool"),
    ("bool + bool", lambda: T.vector(dtype="bool") + T.vector(dtype="bool"), "int8"),
    ("bool * bool", lambda: T.vector(dtype="bool") * T.vector(dtype="bool"), "int8"),
    ("-bool", lambda: -T.vector(dtype="bool"), "int8"),
    ("bool & bool", lambda: T.vector(dtype="bool") & T.vector(dtype="bool"), "bool"),
    ("bool + int32", lambda: T.vector(dtype="bool") + T.ivector(), "int32"),
    ("exp(int8)", lambda: T.exp(T.bvector()), "float32"),
    ("exp(int16)", lambda: T.exp(T.wvector()), "float32"),
    ("exp(int32)", lambda: T.exp(T.ivector()), "float64"),
    ("exp(uint8)", lambda: T.exp(T.vector(dtype="uint8")), "float32"),
    ("exp(bool)", lambda: T.exp(T.vector(dtype="bool")), "float32"),
    ("sqrt(f32)", lambda: T.sqrt(T.fvector()), "float32"),
    ("abs(int8)", lambda: abs(T.bvector()), "int8"),
    ("floor(int32)", lambda: T.floor(T.ivector()), "float64"),
    ("f32 ** 2", lambda: T.fvector() ** 2, "float32"),
    ("int8 ** 2", lambda: T.bvector() ** 2, "int8"),
    ("maximum(f32, int8)", lambda: T.maximum(T.fvector(), T.bvector()), "float32"),
    ("switch(cond, int8, f32)",
     lambda: T.switch(T.vector(dtype="bool"), T.bvector(), T.fvector()), "float32"),
]


@pytest.mark.parametrize("what,build,dtype", PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_promotion(what, build, dtype):
    expr = build()
    assert expr.dtype == dtype, what
    # the compiled result has the declared dtype
    inputs = [v for v in theon.symbolic.graph.ancestors([expr])
              if v.owner is None and not isinstance(v, theon.symbolic.graph.Constant)]
    rng = np.random.default_rng(3)
    vals = [Dom(0.5, 2.0, 1, 3)(rng, (4,), v.dtype) for v in inputs]
    got = theon.function(inputs, expr)(*vals)
    assert got.dtype == np.dtype(dtype), what


def test_promotion_float_constant_with_floatx_float32():
    theon.config.floatX = "float32"
    assert (T.fvector() * 0.1).dtype == "float32"
    assert (T.bvector() * 0.1).dtype == "float32"


# -- Python operators ----------------------------------------------------------------------------

BINOPS = [
    ("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b),
    ("/", lambda a, b: a / b), ("//", lambda a, b: a // b), ("%", lambda a, b: a % b),
    ("**", lambda a, b: a ** b), ("<", lambda a, b: a < b), (">", lambda a, b: a > b),
    ("<=", lambda a, b: a <= b), (">=", lambda a, b: a >= b),
]


@pytest.mark.parametrize("sym,op", BINOPS, ids=[b[0] for b in BINOPS])
def test_python_binary_operators(sym, op):
    rng = np.random.default_rng(11)
    a = rng.uniform(0.5, 2.0, (3, 4))
    b = rng.uniform(0.5, 2.0, (3, 4))
    x, y = T.matrices("x", "y")
    cases = [
        ([x, y], op(x, y), [a, b], op(a, b)),
        ([x], op(x, 2), [a], op(a, 2)),          # Python scalar on the right
        ([x], op(3, x), [a], op(3, a)),          # reflected, Python scalar on the left
        ([y], op(b[0], y), [b], op(b[0], b)),    # a numpy array on the left builds a graph
        ([x], op(x, b), [a], op(a, b)),
    ]
    for ins, expr, vals, expect in cases:
        assert isinstance(expr, T.TensorVariable), (sym, type(expr))
        got = theon.function(ins, expr)(*vals)
        assert got.dtype == np.dtype(expr.dtype)
        np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_numpy_array_on_the_left_builds_a_graph():
    x = T.vector("x")
    for expr, expect in [(np.ones(3) + x, lambda v: 1 + v), (np.ones(3) * x, lambda v: v),
                         (np.full(3, 2.0) - x, lambda v: 2 - v),
                         (np.full(3, 2.0) / x, lambda v: 2 / v),
                         (np.full(3, 2.0) ** x, lambda v: 2 ** v),
                         (np.full(3, 2.0) < x, lambda v: 2 < v),
                         (np.arange(3) >= x, lambda v: np.arange(3) >= v)]:
        assert isinstance(expr, T.TensorVariable), type(expr)
        v = np.array([0.5, 1.5, 3.0])
        got = theon.function([x], expr)(v)
        np.testing.assert_allclose(got, expect(v))
        assert got.dtype == np.dtype(expr.dtype)


def test_python_unary_and_bitwise_operators():
    x = T.matrix("x")
    i, j = T.imatrices("i", "j")
    a = np.array([[-1.5, 0.0, 2.5]])
    ia = np.array([[1, 6, -3]], dtype=np.int32)
    ja = np.array([[3, 5, 7]], dtype=np.int32)
    f = theon.function([x], [-x, abs(x), +x])
    neg, ab, pos = f(a)
    np.testing.assert_array_equal(neg, -a)
    np.testing.assert_array_equal(ab, np.abs(a))
    np.testing.assert_array_equal(pos, a)
    g = theon.function([i, j], [i & j, i | j, i ^ j, ~i, 5 & i, 5 | i, 5 ^ i, -i, abs(i)])
    got = g(ia, ja)
    expect = [ia & ja, ia | ja, ia ^ ja, ~ia, 5 & ia, 5 | ia, 5 ^ ia, -ia, np.abs(ia)]
    for gv, ev in zip(got, expect):
        assert gv.dtype == np.int32
        np.testing.assert_array_equal(gv, ev)
    b = T.matrix(dtype="bool")
    ba = np.array([[True, False, True]])
    (nb,) = theon.function([b], [~b])(ba)
    assert nb.dtype == bool
    np.testing.assert_array_equal(nb, ~ba)
    with pytest.raises(TypeError):
        _ = ~x
    with pytest.raises(TypeError):
        x & i


def test_comparison_operators_combine_with_bitwise():
    x = T.vector("x")
    v = np.array([-1.0, 0.5, 1.0, 3.0, 5.0])
    out = (x > 0) & (x < 2) | T.eq(x, 5)
    got = theon.function([x], out)(v)
    np.testing.assert_array_equal(got, (v > 0) & (v < 2) | (v == 5))
    assert got.dtype == bool and out.dtype == "bool"


# -- cast, switch, clip, round, maximum/minimum -------------------------------------------------

CASTS = [("float64", "float32"), ("float64", "int32"), ("float32", "int8"), ("int32", "float32"),
         ("int8", "int64"), ("float64", "bool"), ("int32", "uint8"), ("bool", "float64"),
         ("float32", "complex64")]


@pytest.mark.parametrize("src,dst", CASTS, ids=[f"{s}->{d}" for s, d in CASTS])
def test_cast_and_astype(src, dst):
    rng = np.random.default_rng(5)
    v = Dom(-3.0, 3.0, 0, 5)(rng, (3, 4), src)
    x = T.matrix(dtype=src)
    for expr in (T.cast(x, dst), x.astype(dst)):
        assert expr.dtype == dst
        got = theon.function([x], expr)(v)
        assert got.dtype == np.dtype(dst)
        np.testing.assert_array_equal(got, v.astype(dst))


def test_cast_to_the_same_dtype_is_a_no_op_and_floatx():
    x = T.fmatrix()
    assert T.cast(x, "float32") is x
    assert T.cast(x, np.float32) is x
    assert T.cast(x, "floatX").dtype == "float64"
    with pytest.raises(TypeError):
        T.cast(x, "string")


def test_switch_and_where():
    rng = np.random.default_rng(9)
    c, a, b = T.matrix(dtype="bool"), T.matrix(), T.fmatrix()
    cv = rng.integers(0, 2, (3, 4)).astype(bool)
    av, bv = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)).astype(np.float32)
    for fn in (T.switch, T.where):
        out = fn(c, a, b)
        assert out.dtype == "float64"
        got = theon.function([c, a, b], out)(cv, av, bv)
        np.testing.assert_array_equal(got, np.where(cv, av, bv))
    # a non-bool condition (nonzero is true), a scalar branch, and broadcasting
    x = T.matrix()
    out = T.switch(x > 0, x, 0)
    got = theon.function([x], out)(av)
    np.testing.assert_array_equal(got, np.where(av > 0, av, 0))
    ic = T.imatrix()
    got = theon.function([ic, a], T.switch(ic, a, -1.0))(cv.astype(np.int32) * 3, av)
    np.testing.assert_array_equal(got, np.where(cv, av, -1.0))
    r = T.row(dtype="bool")
    got = theon.function([r, a, b], T.switch(r, a, b))(cv[:1], av, bv)
    np.testing.assert_array_equal(got, np.where(cv[:1], av, bv))


def test_clip():
    rng = np.random.default_rng(10)
    x = T.matrix()
    v = rng.standard_normal((3, 4)) * 3
    got = theon.function([x], T.clip(x, -1, 2))(v)
    np.testing.assert_array_equal(got, np.clip(v, -1, 2))
    assert got.dtype == np.float64
    fx = T.fmatrix()
    out = T.clip(fx, -1, 2.5)
    assert out.dtype == "float32"
    got = theon.function([fx], out)(v.astype(np.float32))
    np.testing.assert_array_equal(got, np.clip(v.astype(np.float32), -1, 2.5))
    lo, hi = T.vector(), T.vector()
    out = T.clip(x, lo, hi)
    lv, hv = -rng.uniform(0, 1, 4), rng.uniform(0, 1, 4)
    np.testing.assert_array_equal(theon.function([x, lo, hi], out)(v, lv, hv), np.clip(v, lv, hv))
    iv = T.ivector()
    out = T.clip(iv, 0, 3)
    assert out.dtype == "int32"
    np.testing.assert_array_equal(theon.function([iv], out)(np.arange(-3, 6, dtype=np.int32)),
                                  np.clip(np.arange(-3, 6), 0, 3))


def test_round_modes():
    x = T.vector()
    v = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999, -0.51, 3.7, 0.0])
    f = theon.function([x], [T.round(x), T.round(x, "half_to_even"),
                             T.round(x, "half_away_from_zero")])
    default, even, away = f(v)
    np.testing.assert_array_equal(default, np.round(v))
    np.testing.assert_array_equal(even, np.round(v))
    np.testing.assert_array_equal(away, np.sign(v) * np.floor(np.abs(v) + 0.5))
    np.testing.assert_array_equal(away[:6], [-3, -2, -1, 1, 2, 3])
    fx = T.fvector()
    r = T.round(fx, "half_away_from_zero")
    got = theon.function([fx], r)(v.astype(np.float32))
    assert got.dtype == np.float32 and r.dtype == "float32"
    np.testing.assert_array_equal(got, np.sign(v) * np.floor(np.abs(v) + 0.5))
    with pytest.raises(ValueError):
        T.round(x, "up")


def test_maximum_minimum_propagate_nan_like_numpy():
    x, y = T.vectors("x", "y")
    a = np.array([np.nan, 1.0, np.nan, 2.0, -np.inf])
    b = np.array([1.0, np.nan, np.nan, 3.0, 0.0])
    f = theon.function([x, y], [T.maximum(x, y), T.minimum(x, y), T.maximum(y, x)])
    mx, mn, mx2 = f(a, b)
    np.testing.assert_array_equal(mx, np.maximum(a, b))
    np.testing.assert_array_equal(mn, np.minimum(a, b))
    np.testing.assert_array_equal(mx2, np.maximum(b, a))
    # a constant operand too
    g = theon.function([x], [T.maximum(x, 0), T.minimum(0, x)])
    g0, g1 = g(a)
    np.testing.assert_array_equal(g0, np.maximum(a, 0))
    np.testing.assert_array_equal(g1, np.minimum(0, a))


def test_integer_division_and_mod_signs_match_numpy():
    i, j = T.ivectors("i", "j")
    a = np.array([7, -7, 7, -7, 0], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 3], dtype=np.int32)
    q, r = theon.function([i, j], [i // j, i % j])(a, b)
    np.testing.assert_array_equal(q, a // b)
    np.testing.assert_array_equal(r, a % b)
    x, y = T.vectors("x", "y")
    fa, fb = a.astype(float) + 0.5, b.astype(float)
    q, r = theon.function([x, y], [x // y, x % y])(fa, fb)
    np.testing.assert_array_equal(q, fa // fb)
    np.testing.assert_array_equal(r, fa % fb)


def test_constant_folding_keeps_dtype_and_values():
    """Expressions of constants only are computed at compile time: same result and dtype."""
    x = T.fvector()
    out = x + T.exp(T.constant(np.array([1, 2], dtype=np.int8)))
    assert out.dtype == "float32"
    got = theon.function([x], out)(np.zeros(2, dtype=np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.exp([1.0, 2.0]), rtol=1e-6)


# -- stabilize rules must keep the broadcast shape and leave integer inputs alone ----------------
def test_log1p_rewrite_keeps_the_broadcast_shape():
    r = T.row()
    f = theon.function([r], T.log(np.ones((3, 4)) + r))
    assert f(np.zeros((1, 4))).shape == (3, 4)


def test_log_sigmoid_rewrite_on_unsigned_ints():
    u = T.vector(dtype="uint8")
    f = theon.function([u], T.log(T.sigmoid(u)))
    v = np.array([0, 1, 3], dtype=np.uint8)
    np.testing.assert_allclose(f(v), np.log(1 / (1 + np.exp(-v.astype(np.float32)))),
                               rtol=1e-5)
