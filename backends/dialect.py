"""How a row of the scalar table (ops/scalar.py) is written in C or CUDA.

A row says what to compute: a C expression template over its operands, in terms of C99 math
functions named by their double-precision name and of the ``theon_*`` helpers. A ``Dialect``
says how, for one target: the C type of each dtype, the function each math name stands for at
each dtype (``exp`` is ``expf`` on float32), and a prelude of C source defining the helpers
with numpy's semantics (floor division and modulo with the sign of the divisor, NaN-propagating
maximum, ...). ``render`` writes one row, for given input dtypes, as one C expression whose
value has the C type of the output dtype, so that expressions compose.

The kernel renderer (backends/kernels.py) writes the loops around these expressions: no
loops, no kernels, no compilation here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..ops.scalar import C_MATH, HELPERS, ScalarOp

FLOAT_DTYPES = ("float32", "float64")
SIGNED_DTYPES = ("int8", "int16", "int32", "int64")
UNSIGNED_DTYPES = ("uint8", "uint16", "uint32", "uint64")
DTYPES = ("bool",) + SIGNED_DTYPES + UNSIGNED_DTYPES + FLOAT_DTYPES

# C arithmetic on these types stays in the type; narrower ones are promoted to int.
_UNPROMOTED = frozenset(("int32", "int64", "uint32", "uint64", "float32", "float64"))
# Type-generic in C (macros) and overloaded in CUDA: one name for every float dtype.
_GENERIC = frozenset(("isnan", "isinf"))
# Math names that also take integers, exactly, through a helper of the prelude.
_ON_INTEGERS = {"fabs": "theon_abs", "pow": "theon_pow"}

_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")


def _kind(dtype: str) -> str:
    if dtype == "bool":
        return "bool"
    if dtype in FLOAT_DTYPES:
        return "float"
    if dtype in SIGNED_DTYPES:
        return "int"
    if dtype in UNSIGNED_DTYPES:
        return "uint"
    raise ValueError(f"the C dialects have no type for {dtype}")


def _wide_unsigned(dtype: str) -> str:
    """The unsigned type integer arithmetic on ``dtype`` wraps in: at least 32 bits, so that C
    does not promote it to (signed, overflowing) int."""
    return "uint64" if np.dtype(dtype).itemsize == 8 else "uint32"


# -- the helpers: C source per kind of dtype -----------------------------------------------------
# Bodies use the parameters a (and b), {t} for the C type and {w} for _wide_unsigned's C type,
# and call math functions and helpers by their table names, resolved per dtype like a template.
# No float literals: an integer constant is promoted to the float type of the other operand,
# except as an argument of a math function: CUDA overloads copysign(float, double) and
# copysign(double, double), so copysign(0, x) is ambiguous there and takes ({t})0.

_FLOORDIV_FLOAT = """{t} m, d, f;
if (b == 0) return a / b;
m = fmod(a, b);
d = (a - m) / b;  /* a - m is a multiple of b, up to rounding */
if (m != 0 && (b < 0) != (m < 0)) d -= 1;
if (d == 0) return copysign(({t})0, a / b);
f = floor(d);
if (2 * (d - f) > 1) f += 1;  /* d was just below an integer */
return f;"""

# MIN / -1 and MIN % -1 trap on x86: numpy gives MIN and 0. x // 0 and x % 0 are 0 in numpy.
_FLOORDIV_INT = """if (b == 0) return 0;
if (b == -1) return ({t})(0 - ({w})a);
return ({t})(a / b - (a % b != 0 && (a < 0) != (b < 0)));"""

_MOD_INT = """{t} r;
if (b == 0 || b == -1) return 0;
r = ({t})(a % b);
return (r != 0 && (r < 0) != (b < 0)) ? ({t})(r + b) : r;"""

_MOD_FLOAT = """{t} m;
if (b == 0) return fmod(a, b);
m = fmod(a, b);
if (m == 0) return copysign(({t})0, b);
if ((b < 0) != (m < 0)) m += b;
return m;"""

_POW_INT = """{w} r = 1, p = ({w})a;
if (b < 0)  /* numpy refuses; the exact power rounded toward zero */
    return ({t})(a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0));
for (; b != 0; b >>= 1) {{
    if (b & 1) r *= p;
    p *= p;
}}
return ({t})r;"""

_POW_UINT = """{w} r = 1, p = ({w})a;
for (; b != 0; b >>= 1) {{
    if (b & 1) r *= p;
    p *= p;
}}
return ({t})r;"""

# name -> kind -> (number of parameters, body)
_HELPER_SOURCE: dict[str, dict[str, tuple[int, str]]] = {
    "theon_floordiv": {
        "float": (2, _FLOORDIV_FLOAT),
        "int": (2, _FLOORDIV_INT),
        "uint": (2, "return b == 0 ? 0 : ({t})(a / b);"),
    },
    "theon_mod": {
        "float": (2, _MOD_FLOAT),
        "int": (2, _MOD_INT),
        "uint": (2, "return b == 0 ? 0 : ({t})(a % b);"),
    },
    "theon_sign": {
        "float": (1, "return a > 0 ? 1 : (a < 0 ? -1 : (a == 0 ? 0 : a));"),
        "int": (1, "return ({t})((a > 0) - (a < 0));"),
        "uint": (1, "return ({t})(a > 0);"),
    },
    "theon_abs": {  # fabs on integers; abs(MIN) is MIN, as in numpy
        "int": (1, "return a < 0 ? ({t})(0 - ({w})a) : a;"),
        "uint": (1, "return a;"),
        "bool": (1, "return a;"),
    },
    "theon_pow": {"int": (2, _POW_INT), "uint": (2, _POW_UINT)},  # pow on integers, wrapping
    # sigmoid and softplus choose between plain values, then compute once: a choice between
    # two divisions (or two calls) is control flow that gcc will not vectorize, which left
    # every fused loop holding them scalar (W1's kernel 3x slower than numpy on AVX2)
    "theon_sigmoid": {
        "float": (1, "{t} e = exp(-fabs(a));\nreturn (a >= 0 ? 1 : e) / (1 + e);"),
    },
    "theon_softplus": {
        "float": (1, "return (a > 0 ? a : 0) + log1p(exp(-fabs(a)));"),
    },
    "theon_max": {
        "float": (2, "return (a > b || isnan(a)) ? a : b;"),
        "int": (2, "return a > b ? a : b;"),
        "uint": (2, "return a > b ? a : b;"),
        "bool": (2, "return a > b ? a : b;"),
    },
    "theon_min": {
        "float": (2, "return (a < b || isnan(a)) ? a : b;"),
        "int": (2, "return a < b ? a : b;"),
        "uint": (2, "return a < b ? a : b;"),
        "bool": (2, "return a < b ? a : b;"),
    },
    "theon_invert": {
        "int": (1, "return ({t})~a;"),
        "uint": (1, "return ({t})~a;"),
        "bool": (1, "return !a;"),
    },
}
if not set(HELPERS) <= set(_HELPER_SOURCE):
    raise ImportError(f"helpers of ops/scalar.py with no C source: "
                      f"{sorted(set(HELPERS) - set(_HELPER_SOURCE))}")

# Exact comparison of int64 with uint64 (no C type holds both): a three-way result, so that the
# row's own operator applies to (cmp(a, b), 0).
_MIXED_COMPARE = {
    ("int64", "uint64"): ("theon_cmp_int64_uint64",
                          "return a < 0 ? -1 : (({u})a > b) - (({u})a < b);"),
    ("uint64", "int64"): ("theon_cmp_uint64_int64",
                          "return b < 0 ? 1 : (a > ({u})b) - (a < ({u})b);"),
}


@dataclass(frozen=True)
class Dialect:
    """A C-like target: C types, math function names per dtype, and the helper prelude.

    ``ctypes``: dtype -> C type. ``header``: what the prelude starts with. ``qualifier``: how
    a helper is declared. ``suffix``: float dtype -> suffix of the math functions (``f`` for
    float32: ``expf``). ``replace``: (math name, dtype) -> another function (e.g. a faster,
    less exact intrinsic). ``gpu``: kernels in this dialect are CUDA ``__global__`` functions
    (backends/kernels.py writes a grid-stride loop instead of a C loop)."""

    name: str
    ctypes: Mapping[str, str]
    header: str
    qualifier: str
    suffix: Mapping[str, str] = field(default_factory=lambda: {"float32": "f", "float64": ""})
    replace: Mapping[tuple[str, str], str] = field(default_factory=dict)
    gpu: bool = False
    # How this dialect spells the special values that generated C names after its headers
    # (math.h's NAN and INFINITY, stdint.h's INT64_MAX and UINT64_MAX), where it has no such
    # headers (NVRTC has none); a name not in the table is spelled as it is.
    constants: Mapping[str, str] = field(default_factory=dict)

    def ctype(self, dtype: str) -> str:
        """The C type of ``dtype``."""
        try:
            return self.ctypes[dtype]
        except KeyError:
            raise ValueError(f"the {self.name} dialect has no type for {dtype}") from None

    def function(self, name: str, dtype: str) -> str:
        """The function a template's ``name(`` calls when it computes in ``dtype``."""
        kind = _kind(dtype)
        if name in C_MATH and kind == "float":
            if (name, dtype) in self.replace:
                return self.replace[name, dtype]
            return name if name in _GENERIC else name + self.suffix[dtype]
        helper = _ON_INTEGERS.get(name, name) if kind != "float" else name
        if helper in _HELPER_SOURCE:
            if kind not in _HELPER_SOURCE[helper]:
                raise ValueError(f"{name} is not defined on {dtype}")
            return f"{helper}_{dtype}"
        if name in C_MATH:
            raise ValueError(f"the math function {name} takes floats, not {dtype}: the row "
                             "should compute in a float dtype (c_in)")
        raise ValueError(f"{name} is neither a C99 math function nor a theon helper")

    def constant(self, name: str) -> str:
        """How this dialect writes the C constant ``name`` (``NAN``, ``INFINITY``, ``INT64_MAX``,
        ``UINT64_MAX``)."""
        return self.constants.get(name, name)

    def resolve(self, template: str, dtype: str) -> str:
        """``template`` with every call ``name(`` renamed to the function for ``dtype``."""
        return _CALL.sub(lambda m: self.function(m.group(1), dtype) + "(", template)

    def prelude(self, dtypes: Sequence[str] = DTYPES) -> str:
        """C source defining every helper for ``dtypes``; goes before the expressions."""
        parts = [self.header]
        for (da, db), (fname, body) in _MIXED_COMPARE.items():
            parts.append(f"{self.qualifier} int {fname}({self.ctype(da)} a, {self.ctype(db)} b) "
                         f"{{\n    {body.format(u=self.ctype('uint64'))}\n}}")
        for helper, by_kind in _HELPER_SOURCE.items():
            for dtype in dtypes:
                if _kind(dtype) not in by_kind:
                    continue
                nargs, body = by_kind[_kind(dtype)]
                t = self.ctype(dtype)
                code = self.resolve(body.format(t=t, w=self.ctype(_wide_unsigned(dtype))
                                                if dtype != "bool" else t), dtype)
                params = ", ".join(f"{t} {p}" for p in "ab"[:nargs])
                lines = "\n".join("    " + line for line in code.splitlines())
                parts.append(f"{self.qualifier} {t} {helper}_{dtype}({params}) {{\n{lines}\n}}")
        return "\n\n".join(parts) + "\n"


_C_TYPES = {"bool": "_Bool", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
            "int64": "int64_t", "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t",
            "uint64": "uint64_t", "float32": "float", "float64": "double"}
# NVRTC has no standard headers: builtin types, whose sizes CUDA fixes.
_CUDA_TYPES = {"bool": "bool", "int8": "signed char", "int16": "short", "int32": "int",
               "int64": "long long", "uint8": "unsigned char", "uint16": "unsigned short",
               "uint32": "unsigned int", "uint64": "unsigned long long", "float32": "float",
               "float64": "double"}

C = Dialect("C", _C_TYPES, "#include <math.h>\n#include <stdint.h>", "static inline")
# NVRTC has no math.h or stdint.h: the special values from their bits and as literals.
_CUDA_CONSTANTS = {"NAN": "__int_as_float(0x7fc00000)", "INFINITY": "__int_as_float(0x7f800000)",
                   "INT64_MAX": "9223372036854775807LL", "UINT64_MAX": "18446744073709551615ULL"}
# Not static: NVRTC warns (#177) about every static function a program leaves unused, and the
# prelude defines each helper for every dtype of the kernels; __forceinline__ is inline, so
# unused ones cost nothing and say nothing.
CUDA = Dialect("CUDA", _CUDA_TYPES, "/* theon helpers, CUDA dialect */",
               "__device__ __forceinline__", gpu=True, constants=_CUDA_CONSTANTS)
# float32 through the hardware intrinsics: faster, a few ulp less exact (as nvcc's
# --use_fast_math would do).
CUDA_FAST = Dialect("CUDA_FAST", _CUDA_TYPES, CUDA.header, CUDA.qualifier, replace={
    (n, "float32"): f"__{n}f" for n in ("exp", "log", "log2", "log10", "sin", "cos", "tan",
                                        "pow")}, gpu=True, constants=_CUDA_CONSTANTS)


# -- rendering a row -------------------------------------------------------------------------

def operand_dtypes(op: ScalarOp, in_dtypes: Sequence[str]) -> tuple[str, ...]:
    """The dtype each operand is converted to before the template applies: the row's ``c_in``
    (one dtype or one per operand), else the output dtype, except that integers going to a
    float that cannot hold them all go through float64 (as the numpy backend computes), and
    that modular integer arithmetic is done in unsigned types, whose overflow C defines."""
    out = op.output_dtype(*in_dtypes)
    if op.c_in is not None:
        c_in = op.c_in(*in_dtypes)
        return (c_in,) * op.nin if isinstance(c_in, str) else tuple(c_in)
    work = out
    if out in FLOAT_DTYPES and all(_kind(d) != "float" for d in in_dtypes):
        if not all(np.can_cast(d, out) for d in in_dtypes):
            work = "float64"
    elif op.modular and _kind(out) in ("int", "uint"):
        work = _wide_unsigned(out)
    return (work,) * op.nin


def render(op: ScalarOp, in_dtypes: Sequence[str], operands: Sequence[str] | None = None,
           dialect: Dialect = C) -> str:
    """The C expression computing ``op`` on operands of ``in_dtypes`` (C expressions of the C
    types of those dtypes; default ``x0``, ``x1``...). Its value has the C type of the output
    dtype ``op.output_dtype(*in_dtypes)``."""
    in_dtypes = tuple(in_dtypes)
    if len(in_dtypes) != op.nin:
        raise ValueError(f"{op.name} takes {op.nin} operands, got {len(in_dtypes)} dtypes")
    out = op.output_dtype(*in_dtypes)
    args = list(operands) if operands is not None else [f"x{i}" for i in range(op.nin)]
    work = operand_dtypes(op, in_dtypes)

    def convert(x: str, frm: str, to: str) -> str:
        return x if frm == to else f"(({dialect.ctype(to)}){x})"

    mixed = tuple("uint64" if d == "uint64" else "int64" for d in in_dtypes)
    if op.comparison and set(work) == {"float64"} and mixed in _MIXED_COMPARE \
            and all(_kind(d) in ("int", "uint") for d in in_dtypes):
        # a signed int against uint64: numpy compares exactly, float64 would not
        a, b = (convert(x, d, m) for x, d, m in zip(args, in_dtypes, mixed))
        args, work = [f"{_MIXED_COMPARE[mixed][0]}({a}, {b})", "0"], ("int32", "int32")
    else:
        args = [convert(x, d, w) for x, d, w in zip(args, in_dtypes, work)]
    calls_in = work[0] if len(set(work)) == 1 else out
    expr = dialect.resolve(op.c, calls_in).format(*args, out=dialect.ctype(out))
    is_cast = op.c.startswith("(({out})")
    if not is_cast and not (calls_in == out and out in _UNPROMOTED):
        expr = f"(({dialect.ctype(out)}){expr})"
    return expr
