"""THE scalar table: one row per elementwise operation.

A row gives everything about one scalar op, and nothing about a target language:

* ``np_fn``: its numpy function (how the numpy backend computes it, and the reference);
* ``c``: a C expression template, or None for a row computed by numpy only (no C99 function
  and no short formula: erfinv, psi): fusion leaves such nodes alone and the C backend runs
  them on numpy. Python format fields only: ``{0}``, ``{1}``... are the
  operands, already converted by the renderer to the dtype the row computes in (``c_in``; by
  default the output dtype); ``{out}`` is the C type of the output. Calls name C99 math
  functions by their double-precision name (``exp``, ``atan2``, ``fabs``...) or the helpers
  ``theon_*`` (``HELPERS``), and are written ``name(`` with no space; there are no float
  literals (``1 / {0}``: a float operand promotes the int). The dialect of a backend
  (backends/dialect.py) picks the function for each dtype (``expf`` for float32...), defines the
  helpers in its prelude and supplies the C types;
* ``out``: the output dtype rule; ``grad``: the gradient rule; ``sympy``: the formula, built
  with the sympy module it is given (so that this module does not import sympy);
* flags: ``commutative``, ``associative``; ``modular`` (integer results wrap modulo 2**bits as
  in numpy: a renderer computes them where overflow is defined); ``comparison`` (compares its
  operands exactly, as numpy does even for int64 against uint64).

``Elemwise`` (ops/elemwise.py) lifts a row to tensors, so broadcasting, shapes and the
unbroadcasting of gradients are written once, not per row; theon.tensor exports every row by
its name. A new elementwise op is one row here plus its test spec.

A gradient rule gets ``T``, the namespace of tensor operations to build with (every row of this
table by name, ``cast`` and ``zeros_like``: see ``ops/gradrules.py``), then the inputs, the
output and the output gradient as tensor variables, and returns one gradient per input; it
ignores broadcasting. ``None`` in a gradient list means "no gradient flows" (a
piecewise-constant function); a row without a rule has no gradient (an undefined one, an error
only when used).
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from ..symbolic.types import COMPLEX_DTYPES, DISCRETE_DTYPES

# -- output dtype rules ----------------------------------------------------------------------

@cache
def upcast(*dtypes: str) -> str:
    """numpy's array promotion (float32 with int8/int16 stays float32; with int32/64 -> float64)."""
    return str(np.result_type(*[np.dtype(d) for d in dtypes]))


def upcast_nobool(*dtypes: str) -> str:
    """As ``upcast``, but arithmetic on booleans gives int8 (True + True == 2)."""
    out = upcast(*dtypes)
    return "int8" if out == "bool" else out


# The float each discrete dtype is moved to before a float-valued op: the narrowest float that
# holds all its values (float32 is exact up to 16-bit ints; 32- and 64-bit ints need float64).
_FLOAT_OF = {"bool": "float32", "int8": "float32", "uint8": "float32", "int16": "float32",
             "uint16": "float32", "int32": "float64", "uint32": "float64", "int64": "float64",
             "uint64": "float64"}


def to_float(*dtypes: str) -> str:
    """Each input moved to a float first (``_FLOAT_OF``), then upcast (Theano's
    ``upgrade_to_float``): arctan2(int16, uint16) is float32 and arctan2(int8, float16) float32,
    where upcasting the ints first would give float64 and float16."""
    return upcast(*[_FLOAT_OF.get(d, d) for d in dtypes])


def true_div_rule(*dtypes: str) -> str:
    """``/``: floatX when every input is discrete (Theano's TrueDiv), else the upcast.

    With floatX=float32, int32 / int32 and arange(n) / 2 are float32, so an integer division does
    not turn the rest of a float32 model into float64. Read when the node is built."""
    if all(d in DISCRETE_DTYPES for d in dtypes):
        from ..config import config
        return config.floatX
    return upcast(*dtypes)


def to_bool(*dtypes: str) -> str:
    return "bool"


def same_as_first(*dtypes: str) -> str:
    return dtypes[0]


def discrete_only(rule: Callable) -> Callable:
    """For bitwise ops: refuse floats, and pairs of ints with no common int dtype (int8 & uint64
    upcasts to float64, on which no bitwise op is defined), with a clear message."""
    def check(*dtypes):
        for d in dtypes:
            if d not in DISCRETE_DTYPES:
                raise TypeError(f"this operation needs integer or boolean inputs, not {d}")
        out = rule(*dtypes)
        if out not in DISCRETE_DTYPES:
            raise TypeError(f"{' and '.join(dtypes)} have no common integer dtype (numpy "
                            f"promotes them to {out}); cast one input first, e.g. both to "
                            f"int64")
        return out
    check.__name__ = rule.__name__
    return check


def real_only(rule: Callable) -> Callable:
    def check(*dtypes):
        for d in dtypes:
            if d in COMPLEX_DTYPES:
                raise TypeError(f"this operation is not defined for complex dtype {d}")
        return rule(*dtypes)
    check.__name__ = rule.__name__
    return check


def abs_rule(dtype: str) -> str:
    """|x| keeps the dtype, except that a complex modulus is real (numpy, Theano)."""
    return {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)


def switch_rule(cond: str, a: str, b: str) -> str:
    return upcast(a, b)


def switch_operands(cond: str, a: str, b: str) -> tuple[str, str, str]:
    """switch's template takes its condition as a truth value and both branches in the output
    dtype (converting the condition to the output dtype would send 0.5 to 0, false)."""
    out = upcast(a, b)
    return ("bool", out, out)


# -- numpy implementations numpy does not provide directly ---------------------------------------

def _sigmoid(x, out=None):
    """1 / (1 + e) for x >= 0 and e / (1 + e) below, with e = exp(-|x|), so neither tail
    overflows or loses its relative precision, with one exp. The numerator, 1 or e, is
    max(x >= 0, e) (e <= 1; NaN stays NaN): arithmetic instead of a select, which on random
    signs costs several times an exp. ``out``: an array of x's shape and dtype to write into
    (the fused numpy path gives one); x itself is fine."""
    x = np.asarray(x)
    e = np.abs(x, out=np.empty_like(x))  # out=: a 0-d result stays an array
    np.negative(e, out=e)
    np.exp(e, out=e)
    num = np.greater_equal(x, 0, out=np.empty_like(e) if out is None else out)
    np.maximum(num, e, out=num)
    np.add(e, 1, out=e)
    return np.divide(num, e, out=num)


_sigmoid.writes_out = True  # Fused steps on numpy pass an out= (ops/fused.py)


def _softplus(x):
    return np.logaddexp(np.zeros((), dtype=x.dtype), x)


_erf_vec = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x):
    return _erf_vec(x) if np.size(x) else np.zeros(np.shape(x))


def _round_half_away(x):
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0).astype(t.dtype)


# -- special functions: gamma and lgamma from libm (as the C kernels), the others in numpy ------

_PI = math.pi


def _libm(name: str) -> Callable | None:
    """libm's ``name`` (double -> double) through ctypes, or None where it cannot be loaded: the
    numpy path then computes what the C kernels compute (Python's math.lgamma is a few ulps
    off glibc's)."""
    import ctypes
    for lib in ("libm.so.6", None):
        try:
            fn = getattr(ctypes.CDLL(lib), name)
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_double, (ctypes.c_double,)
        return fn
    return None


def _math_gamma(x: float) -> float:
    """Python's math.gamma with C's values where it raises: +-inf at +-0, nan at the negative
    integers, inf on overflow."""
    try:
        return math.gamma(x)
    except ValueError:
        return math.copysign(math.inf, x) if x == 0 else math.nan
    except OverflowError:
        return math.inf


def _math_lgamma(x: float) -> float:
    try:
        return math.lgamma(x)
    except ValueError:  # a pole
        return math.inf


@cache
def _per_element(name: str, fallback: Callable) -> Callable:
    fn = _libm(name) or fallback
    return np.vectorize(fn, otypes=[np.float64])


def _gamma(x):
    return _per_element("tgamma", _math_gamma)(x) if np.size(x) else np.zeros(np.shape(x))


def _gammaln(x):
    return _per_element("lgamma", _math_lgamma)(x) if np.size(x) else np.zeros(np.shape(x))


# psi and trigamma: x moved up by _SHIFT by the recurrence, then the asymptotic series (its
# first omitted term is below 1e-16 relative there); below zero, the reflection formula.
_SHIFT = 10


def _psi_positive(x):
    y = x + _SHIFT
    inv = 1 / y
    inv2 = inv * inv
    series = np.log(y) - inv / 2 - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (
        1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132)))))
    for k in range(_SHIFT):
        series = series - 1 / (x + k)
    return series  # (at x = 0: -inf, the pole's limit from above)


def _psi(x):
    """The digamma function (the derivative of lgamma): nan at 0 from below and at the negative
    integers, as scipy.special.psi."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = x < 0
        pos = np.where(neg, 1 - x, x)
        out = _psi_positive(pos)
        out = np.where(neg, out - _PI / np.tan(_PI * x), out)
        out = np.where(neg & (x == np.floor(x)), np.nan, out)  # the poles below zero
    return out


def _trigamma_positive(x):
    y = x + _SHIFT
    inv = 1 / y
    inv2 = inv * inv
    series = inv + inv2 / 2 + inv * inv2 * (1 / 6 - inv2 * (1 / 30 - inv2 * (
        1 / 42 - inv2 * (1 / 30 - inv2 * (5 / 66)))))
    for k in range(_SHIFT):
        series = series + 1 / ((x + k) * (x + k))
    return series


def _trigamma(x):
    """psi's derivative: +inf at 0 and the negative integers."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = x < 0
        out = _trigamma_positive(np.where(neg, 1 - x, x))
        s = np.sin(_PI * x)
        out = np.where(neg, _PI * _PI / (s * s) - out, out)
        out = np.where(neg & (x == np.floor(x)), np.inf, out)
    return out


# erfinv: Giles' single-precision approximation ("Approximating the erfinv function", GPU
# Computing Gems, 2010), then Newton steps to double precision: on erf in the middle, on
# log(erfc) in the tails, where 1 - |y| is known exactly (erfcinv passes its own argument).
_GILES_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                  0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_GILES_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
               0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
_erfc_vec = np.vectorize(math.erfc, otypes=[np.float64])


def _horner(coeffs, t):
    p = np.full_like(t, coeffs[0])
    for c in coeffs[1:]:
        p = p * t + c
    return p


def _erfinv_from(y, q):
    """erfinv(y), given q = 1 - |y| computed exactly by the caller (from y, or from erfcinv's
    own argument, which keeps the digits 1 - y would lose)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        a = np.abs(y)
        tail = a > 0.5
        w = -np.log(q * (2 - q))  # -log((1 - a)(1 + a)) without cancellation
        x = np.where(w < 5, _horner(_GILES_CENTRAL, w - 2.5),
                     _horner(_GILES_TAIL, np.sqrt(w) - 3)) * a
        # far out (q < 1e-12) the polynomial is past its range: erfc(x) ~ exp(-x^2)/(x sqrt(pi))
        lq = -np.log(q)
        far = np.sqrt(lq - 0.5 * np.log(np.pi * np.maximum(lq, 1)))
        x = np.where(q < 1e-12, far, x)
        for _ in range(4):
            # Newton on erf(x) = a in the middle, on log(erfc(x)) = log(q) in the tails
            e = np.exp(-x * x) * (2 / math.sqrt(_PI))
            c = _erfc_vec(x)
            step_mid = (_erf_vec(x) - a) / e
            step_tail = -(np.log(c) - np.log(q)) * c / e
            x = x - np.where(tail, step_tail, step_mid)
        x = np.where(q == 0, np.inf, x)
        x = np.where((q < 0) | np.isnan(y), np.nan, x)
    return np.copysign(x, y)


def _erfinv(y):
    """The inverse of erf on (-1, 1); +-inf at +-1, nan outside."""
    y = np.asarray(y, dtype=np.float64)
    return _erfinv_from(y, 1 - np.abs(y))


def _erfcinv(z):
    """The inverse of erfc on (0, 2): erfinv(1 - z), computed from z itself (1 - z loses the
    digits of a small z)."""
    z = np.asarray(z, dtype=np.float64)
    y = 1 - z
    q = np.where(z < 1, z, 2 - z)  # 1 - |1 - z|, exact
    return _erfinv_from(y, q)


# -- the vocabulary of the C templates -----------------------------------------------------------

# C99 <math.h> functions a template may call, by their double-precision name; a dialect maps each
# to its variant for the dtype computed in (``expf`` for float32 in C...). ``fabs`` and ``pow``
# also take integers: the dialect has exact helpers for those.
C_MATH: frozenset[str] = frozenset((
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "copysign", "cos",
    "cosh", "erf", "exp", "exp2", "expm1", "fabs", "floor", "fmod", "isinf", "isnan", "log",
    "lgamma", "log10", "log1p", "log2", "pow", "rint", "round", "sin", "sinh", "sqrt", "tan",
    "tanh", "tgamma", "trunc"))

# Helpers with numpy's semantics where C has no such function or a different one (C's ``/``
# and ``%`` truncate, ``fmax`` ignores NaN, ``abs(INT_MIN)`` is undefined...). Every dialect
# defines them in its prelude for the dtypes they apply to.
HELPERS: dict[str, str] = {
    "theon_floordiv": "floor division (numpy's floor_divide: x // 0 == 0 for ints)",
    "theon_mod": "remainder with the sign of the divisor (numpy's mod: x % 0 == 0 for ints)",
    "theon_sign": "-1, 0 or 1 (NaN for NaN)",
    "theon_sigmoid": "1 / (1 + exp(-x)), without overflow",
    "theon_softplus": "log(1 + exp(x)), without overflow",
    "theon_max": "the larger operand; NaN if either is NaN (numpy's maximum)",
    "theon_min": "the smaller operand; NaN if either is NaN (numpy's minimum)",
    "theon_invert": "bitwise not; logical not for bool",
}

_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
_FLOAT_LITERAL = re.compile(r"(?<![\w{])(\d+\.\d*|\.\d+|\d+[eE][-+]?\d+)")


def check_template(name: str, nin: int, c: str) -> None:
    """Refuse a C template a dialect could not render: a format field other than the operands
    and ``{out}``, a call outside ``C_MATH`` and ``HELPERS``, or a float literal (which would
    make float32 arithmetic run in double)."""
    fields = {f for _, f, _, _ in string.Formatter().parse(c) if f is not None}
    allowed = {str(i) for i in range(nin)} | {"out"}
    if not fields <= allowed:
        raise ValueError(f"row {name}: template {c!r} uses the fields {sorted(fields - allowed)}"
                         f"; only {sorted(allowed)} exist")
    unknown = set(_CALL.findall(c)) - C_MATH - set(HELPERS)
    if unknown:
        raise ValueError(f"row {name}: template {c!r} calls {sorted(unknown)}, which are neither "
                         "C99 math functions (C_MATH) nor helpers (HELPERS)")
    if _FLOAT_LITERAL.search(c.replace("{", " ").replace("}", " ")):
        raise ValueError(f"row {name}: template {c!r} has a float literal; write integers, "
                         "which the float operand promotes")


# -- the row type --------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ScalarOp:
    """One elementwise operation; see the module docstring for the fields."""

    name: str
    nin: int
    np_fn: Callable
    c: str | None
    out: Callable[..., str]
    grad: Callable | None = None
    sympy: Callable | None = None
    c_in: Callable | None = None  # operand dtype(s) in the template (default: out)
    commutative: bool = False
    associative: bool = False
    modular: bool = False
    comparison: bool = False
    params: tuple = field(default=())  # extra identity (the target dtype of a cast)

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        return isinstance(other, ScalarOp) and (self.name, self.params) == (other.name,
                                                                             other.params)

    def __hash__(self) -> int:
        return hash((self.name, self.params))

    def output_dtype(self, *dtypes: str) -> str:
        return self.out(*dtypes)

    def __reduce__(self):
        # pickled by name: the table's rows hold lambdas, which pickle cannot store
        return (scalar_op_named, (self.name, self.params))


def scalar_op_named(name: str, params: tuple = ()) -> ScalarOp:
    """The table's op called ``name`` (a cast is named by its target dtype in ``params``)."""
    return cast_op(params[0]) if name.startswith("cast_") and params else TABLE[name]


TABLE: dict[str, ScalarOp] = {}


def row(name: str, nin: int, np_fn: Callable, c: str | None, out: Callable[..., str],
        grad: Callable | None = None, sympy: Callable | None = None,
        **flags) -> ScalarOp:
    """Add a row to ``TABLE`` (checking its C template, if it has one) and return it."""
    if c is not None:
        check_template(name, nin, c)
    op = ScalarOp(name, nin, np_fn, c, out, grad, sympy, **flags)
    TABLE[name] = op
    return op


def _zero(*_):
    return None


# -- the table ------------------------------------------------------------------------------------
# Gradient rules: (T, inputs..., z, gz) -> [grad per input]. sympy: (sp, inputs...) -> formula.

add = row("add", 2, np.add, "({0} + {1})", upcast_nobool,
          lambda T, x, y, z, g: [g, g], lambda sp, a, b: a + b,
          commutative=True, associative=True, modular=True)
sub = row("sub", 2, np.subtract, "({0} - {1})", upcast_nobool,
          lambda T, x, y, z, g: [g, -g], lambda sp, a, b: a - b, modular=True)
mul = row("mul", 2, np.multiply, "({0} * {1})", upcast_nobool,
          lambda T, x, y, z, g: [g * y, g * x], lambda sp, a, b: a * b,
          commutative=True, associative=True, modular=True)
true_div = row("true_div", 2, np.true_divide, "({0} / {1})", true_div_rule,
               lambda T, x, y, z, g: [g / y, -g * z / y], lambda sp, a, b: a / b)
int_div = row("int_div", 2, np.floor_divide, "theon_floordiv({0}, {1})",
              real_only(upcast_nobool), lambda T, x, y, z, g: [None, None])
mod = row("mod", 2, np.mod, "theon_mod({0}, {1})", real_only(upcast_nobool),
          lambda T, x, y, z, g: [g, -g * T.int_div(x, y)])


def _pow_grad_exponent(T, x, z, g):
    """d/dy x**y = x**y log(x), taken as 0 where x == 0 (as Theano does): the limit for y > 0,
    where the formula gives 0 * -inf = nan. log sees 1 there, so nothing warns."""
    zero = T.eq(x, 0)
    return T.switch(zero, 0, g * z * T.log(T.switch(zero, 1, x)))


pow = row("pow", 2, np.power, "pow({0}, {1})", upcast_nobool,
          lambda T, x, y, z, g: [g * y * T.pow(x, y - 1), _pow_grad_exponent(T, x, z, g)],
          lambda sp, a, b: a ** b)
neg = row("neg", 1, np.negative, "(-{0})", upcast_nobool, lambda T, x, z, g: [-g],
          lambda sp, a: -a, modular=True)
abs_ = row("abs", 1, np.abs, "fabs({0})", abs_rule, lambda T, x, z, g: [g * T.sgn(x)],
           lambda sp, a: sp.Abs(a))
sgn = row("sgn", 1, np.sign, "theon_sign({0})", real_only(upcast_nobool), _zero,
          lambda sp, a: sp.sign(a))
exp = row("exp", 1, np.exp, "exp({0})", to_float, lambda T, x, z, g: [g * z],
          lambda sp, a: sp.exp(a))
exp2 = row("exp2", 1, np.exp2, "exp2({0})", to_float, lambda T, x, z, g: [g * z * math.log(2.0)],
           lambda sp, a: 2 ** a)
log = row("log", 1, np.log, "log({0})", to_float, lambda T, x, z, g: [g / x],
          lambda sp, a: sp.log(a))
log2 = row("log2", 1, np.log2, "log2({0})", to_float,
           lambda T, x, z, g: [g / (x * math.log(2.0))], lambda sp, a: sp.log(a, 2))
log10 = row("log10", 1, np.log10, "log10({0})", to_float,
            lambda T, x, z, g: [g / (x * math.log(10.0))], lambda sp, a: sp.log(a, 10))
log1p = row("log1p", 1, np.log1p, "log1p({0})", to_float, lambda T, x, z, g: [g / (1 + x)],
            lambda sp, a: sp.log(1 + a))
expm1 = row("expm1", 1, np.expm1, "expm1({0})", to_float, lambda T, x, z, g: [g * (z + 1)],
            lambda sp, a: sp.exp(a) - 1)
sqrt = row("sqrt", 1, np.sqrt, "sqrt({0})", to_float, lambda T, x, z, g: [g * 0.5 / z],
           lambda sp, a: sp.sqrt(a))
sqr = row("sqr", 1, np.square, "({0} * {0})", upcast_nobool, lambda T, x, z, g: [g * 2 * x],
          lambda sp, a: a ** 2, modular=True)
inv = row("inv", 1, np.reciprocal, "(1 / {0})", to_float, lambda T, x, z, g: [-g * z * z],
          lambda sp, a: 1 / a)
sin = row("sin", 1, np.sin, "sin({0})", to_float, lambda T, x, z, g: [g * T.cos(x)],
          lambda sp, a: sp.sin(a))
cos = row("cos", 1, np.cos, "cos({0})", to_float, lambda T, x, z, g: [-g * T.sin(x)],
          lambda sp, a: sp.cos(a))
tan = row("tan", 1, np.tan, "tan({0})", to_float, lambda T, x, z, g: [g * (1 + z * z)],
          lambda sp, a: sp.tan(a))
arcsin = row("arcsin", 1, np.arcsin, "asin({0})", to_float,
             lambda T, x, z, g: [g / T.sqrt(1 - x * x)], lambda sp, a: sp.asin(a))
arccos = row("arccos", 1, np.arccos, "acos({0})", to_float,
             lambda T, x, z, g: [-g / T.sqrt(1 - x * x)], lambda sp, a: sp.acos(a))
arctan = row("arctan", 1, np.arctan, "atan({0})", to_float, lambda T, x, z, g: [g / (1 + x * x)],
             lambda sp, a: sp.atan(a))
arctan2 = row("arctan2", 2, np.arctan2, "atan2({0}, {1})", real_only(to_float),
              lambda T, y, x, z, g: [g * x / (x * x + y * y), -g * y / (x * x + y * y)],
              lambda sp, a, b: sp.atan2(a, b))
sinh = row("sinh", 1, np.sinh, "sinh({0})", to_float, lambda T, x, z, g: [g * T.cosh(x)],
           lambda sp, a: sp.sinh(a))
cosh = row("cosh", 1, np.cosh, "cosh({0})", to_float, lambda T, x, z, g: [g * T.sinh(x)],
           lambda sp, a: sp.cosh(a))
tanh = row("tanh", 1, np.tanh, "tanh({0})", to_float, lambda T, x, z, g: [g * (1 - z * z)],
           lambda sp, a: sp.tanh(a))
arcsinh = row("arcsinh", 1, np.arcsinh, "asinh({0})", to_float,
              lambda T, x, z, g: [g / T.sqrt(x * x + 1)], lambda sp, a: sp.asinh(a))
arccosh = row("arccosh", 1, np.arccosh, "acosh({0})", to_float,
              lambda T, x, z, g: [g / T.sqrt(x * x - 1)], lambda sp, a: sp.acosh(a))
arctanh = row("arctanh", 1, np.arctanh, "atanh({0})", to_float,
              lambda T, x, z, g: [g / (1 - x * x)], lambda sp, a: sp.atanh(a))
sigmoid = row("sigmoid", 1, _sigmoid, "theon_sigmoid({0})", real_only(to_float),
              lambda T, x, z, g: [g * z * (1 - z)], lambda sp, a: 1 / (1 + sp.exp(-a)))
softplus = row("softplus", 1, _softplus, "theon_softplus({0})", real_only(to_float),
               lambda T, x, z, g: [g * T.sigmoid(x)], lambda sp, a: sp.log(1 + sp.exp(a)))
erf = row("erf", 1, _erf, "erf({0})", real_only(to_float),
          lambda T, x, z, g: [g * (2.0 / math.sqrt(math.pi)) * T.exp(-x * x)],
          lambda sp, a: sp.erf(a))
# (d/dx erfinv(x) = sqrt(pi)/2 * exp(erfinv(x)^2))
gamma = row("gamma", 1, _gamma, "tgamma({0})", real_only(to_float),
            lambda T, x, z, g: [g * z * T.psi(x)], lambda sp, a: sp.gamma(a))
gammaln = row("gammaln", 1, _gammaln, "lgamma({0})", real_only(to_float),
              lambda T, x, z, g: [g * T.psi(x)], lambda sp, a: sp.log(sp.Abs(sp.gamma(a))))
psi = row("psi", 1, _psi, None, real_only(to_float),
          lambda T, x, z, g: [g * T.tri_gamma(x)], lambda sp, a: sp.polygamma(0, a))
tri_gamma = row("tri_gamma", 1, _trigamma, None, real_only(to_float), None,
                lambda sp, a: sp.polygamma(1, a))
erfinv = row("erfinv", 1, _erfinv, None, real_only(to_float),
             lambda T, x, z, g: [g * (math.sqrt(math.pi) / 2) * T.exp(z * z)],
             lambda sp, a: sp.erfinv(a))
erfcinv = row("erfcinv", 1, _erfcinv, None, real_only(to_float),
              lambda T, x, z, g: [g * (-math.sqrt(math.pi) / 2) * T.exp(z * z)])
# (no sympy formula for erfcinv: lambdify has no name for sympy's erfcinv)
floor = row("floor", 1, np.floor, "floor({0})", real_only(to_float), _zero,
            lambda sp, a: sp.floor(a))
ceil = row("ceil", 1, np.ceil, "ceil({0})", real_only(to_float), _zero,
           lambda sp, a: sp.ceiling(a))
trunc = row("trunc", 1, np.trunc, "trunc({0})", real_only(to_float), _zero)
# C's rint rounds in the current rounding mode (to nearest, ties to even, unless a program
# changes it), round rounds ties away from zero.
round_half_to_even = row("round_half_to_even", 1, np.rint, "rint({0})", real_only(to_float),
                         _zero)
round_half_away_from_zero = row("round_half_away_from_zero", 1, _round_half_away, "round({0})",
                                real_only(to_float), _zero)


def _extremum_grad(T, x, y, z, g):
    """maximum/minimum: the gradient goes to the input the output equals, and at a tie to the
    first one only (Theano's rule). Giving it to both counts it twice: maximum(x, x) would have
    gradient 2, and minimum(x, 2x - 1) at x = 1 gradient 3, outside the subgradient [1, 2]."""
    first = T.eq(z, x)
    return [g * first, g * T.invert(first)]


def _clip_grad(T, x, lo, hi, z, g):
    """clip(x, lo, hi) = minimum(maximum(x, lo), hi) (numpy's order, so hi wins when lo > hi),
    differentiated with the first-input rule at each tie: one input gets the gradient."""
    inside = T.and_(T.ge(x, lo), T.le(x, hi))
    below = T.and_(T.lt(x, lo), T.le(lo, hi))
    above = T.gt(T.maximum(x, lo), hi)
    return [g * inside, g * below, g * above]


maximum = row("maximum", 2, np.maximum, "theon_max({0}, {1})", real_only(upcast),
              _extremum_grad, lambda sp, a, b: sp.Max(a, b), commutative=True, associative=True)
minimum = row("minimum", 2, np.minimum, "theon_min({0}, {1})", real_only(upcast),
              _extremum_grad, lambda sp, a, b: sp.Min(a, b), commutative=True, associative=True)
clip = row("clip", 3, np.clip, "theon_min(theon_max({0}, {1}), {2})", real_only(upcast),
           _clip_grad, lambda sp, a, lo, hi: sp.Min(sp.Max(a, lo), hi))
# Comparisons compute in the operands' common dtype (upcast), exactly: numpy compares int64
# with uint64 without going through float64, and so must a renderer (``comparison``).
eq = row("eq", 2, np.equal, "({0} == {1})", to_bool, _zero, c_in=upcast, comparison=True,
         commutative=True)
neq = row("neq", 2, np.not_equal, "({0} != {1})", to_bool, _zero, c_in=upcast, comparison=True,
          commutative=True)
lt = row("lt", 2, np.less, "({0} < {1})", real_only(to_bool), _zero, c_in=upcast,
         comparison=True)
le = row("le", 2, np.less_equal, "({0} <= {1})", real_only(to_bool), _zero, c_in=upcast,
         comparison=True)
gt = row("gt", 2, np.greater, "({0} > {1})", real_only(to_bool), _zero, c_in=upcast,
         comparison=True)
ge = row("ge", 2, np.greater_equal, "({0} >= {1})", real_only(to_bool), _zero, c_in=upcast,
         comparison=True)
# An integer is never nan or inf: computed on the integer moved to a float (C's isnan takes
# floats only).
isnan = row("isnan", 1, np.isnan, "isnan({0})", to_bool, _zero, c_in=to_float)
isinf = row("isinf", 1, np.isinf, "isinf({0})", to_bool, _zero, c_in=to_float)
and_ = row("and_", 2, np.bitwise_and, "({0} & {1})", discrete_only(upcast), _zero,
           commutative=True, associative=True)
or_ = row("or_", 2, np.bitwise_or, "({0} | {1})", discrete_only(upcast), _zero,
          commutative=True, associative=True)
xor = row("xor", 2, np.bitwise_xor, "({0} ^ {1})", discrete_only(upcast), _zero,
          commutative=True, associative=True)
invert = row("invert", 1, np.invert, "theon_invert({0})", discrete_only(upcast), _zero)
switch = row("switch", 3, np.where, "({0} ? {1} : {2})", switch_rule,
             lambda T, c, a, b, z, g: [None, T.switch(c, g, T.zeros_like(g)),
                                       T.switch(c, T.zeros_like(g), g)],
             c_in=switch_operands)
identity = row("identity", 1, np.copy, "{0}", same_as_first, lambda T, x, z, g: [g],
               lambda sp, a: a)

_CASTS: dict[str, ScalarOp] = {}


def _cast_grad(T, x, z, g):
    if x.dtype in DISCRETE_DTYPES:
        return [None]
    return [T.cast(g, x.dtype)]


def _same(sp, a):
    return a


def cast_op(dtype: str) -> ScalarOp:
    """The scalar op converting to ``dtype`` (one per target dtype, made on demand). Its C
    template converts the operand as it comes (``c_in``: the input dtype); as a formula, a
    cast to a float or complex dtype is the identity, one to an integer has none."""
    if dtype not in _CASTS:
        np_dtype = np.dtype(dtype)

        def convert(x, _t=np_dtype):
            return np.asarray(x).astype(_t)

        _CASTS[dtype] = ScalarOp(f"cast_{dtype}", 1, convert, "(({out}){0})",
                                 lambda *_: dtype, _cast_grad,
                                 _same if np_dtype.kind in "fc" else None,
                                 c_in=same_as_first, params=(dtype,))
    return _CASTS[dtype]
