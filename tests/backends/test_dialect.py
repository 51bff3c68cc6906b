"""backends/dialect.py: the C expressions of the scalar table, compiled and checked against numpy.

Every row of ops/scalar.py TABLE (and every cast) is rendered in the C dialect for every
combination of the dtypes below that its dtype rule accepts; all the expressions go into ONE C
file with the dialect's prelude, compiled once with ``-Wall -Werror`` into a shared library (kept
in pytest's cache while the source does not change), and
each is evaluated on sample values (zero divisors, MIN and MAX, -1, nan and infinities among
them) and compared with the numpy backend's kernel for the row: exactly for integers and bools, to
a few ulp for floats, nan for nan. A new row is covered without an edit here; a row whose numpy
function refuses part of its domain lists that part in ``_valid``.

The CUDA dialects are checked as text here: balanced parentheses, every function called is a
CUDA math function or defined in the prelude, only CUDA's C types;
tests/backends/test_cuda_kernels.py compiles them with NVRTC and runs them on the CPU.
"""
from __future__ import annotations

import ctypes
import hashlib
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from theon.backends import dialect as D
from theon.ops import scalar as S
from theon.ops.elemwise import _numpy_kernel

pytestmark = pytest.mark.host_only

DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "float32",
          "float64")
_I = np.iinfo
_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, -1.5, 2.5, 3.0, -7.25, 0.1, 1e-3, 100.0, np.inf, -np.inf,
           np.nan]
SAMPLES = {
    "bool": [False, True],
    "int8": [0, 1, -1, 2, -3, 5, 7, -8, 127, -128],
    "int16": [0, 1, -1, 3, -7, 300, -301, 32767, -32768],
    "int32": [0, 1, -1, 3, -7, 65537, -100000, _I("int32").max, _I("int32").min],
    "int64": [0, 1, -1, 3, -7, 2 ** 40 + 3, -(2 ** 53 + 1), _I("int64").max, _I("int64").min],
    "uint8": [0, 1, 2, 3, 7, 100, 128, 255],
    "uint32": [0, 1, 3, 7, 65537, 2 ** 31, _I("uint32").max],
    "uint64": [0, 1, 3, 7, 2 ** 53 + 1, 2 ** 63, _I("uint64").max],
    "float32": _FLOATS,
    "float64": _FLOATS,
}
# Ternary rows see fewer values per operand (the product is cubic).
FEW = {d: [v for i, v in enumerate(vals) if i in (0, 1, 2, 4, len(vals) - 1, len(vals) - 2)]
       for d, vals in SAMPLES.items()}
ULPS = 4


def _ops():
    # (a row without a C template is computed by numpy only)
    yield from (op for _, op in sorted(S.TABLE.items()) if op.c is not None)
    yield from (S.cast_op(d) for d in DTYPES)


def _cases():
    """(op, input dtypes, output dtype) for every combination the op's dtype rule accepts."""
    for op in _ops():
        for dts in itertools.product(DTYPES, repeat=op.nin):
            try:
                out = op.output_dtype(*dts)
            except TypeError:
                continue
            if out in DTYPES:
                yield op, dts, out


CASES = list(_cases())


def _points(op, dts):
    """Input arrays: the product of the sample values of each operand's dtype."""
    table = FEW if op.nin > 2 else SAMPLES
    cols = list(zip(*itertools.product(*[range(len(table[d])) for d in dts])))
    return [np.array(table[d], dtype=d)[np.array(c, dtype=np.intp)] for d, c in zip(dts, cols)]


def _valid(op, dts, out, args):
    """Where the row's numpy function is defined: numpy refuses negative integer powers, and a
    float converted to an integer out of range (or nan) is undefined in C and numpy alike."""
    keep = np.ones(args[0].shape, dtype=bool)
    if op.name == "pow" and np.dtype(out).kind in "iu":
        keep &= args[1] >= 0
    if op.name.startswith("cast_") and np.dtype(dts[0]).kind == "f" and np.dtype(out).kind in "iu":
        info = np.iinfo(out)
        with np.errstate(invalid="ignore"):
            keep &= np.isfinite(args[0]) & (args[0] > info.min - 1.0) & (args[0] < info.max)
    return keep


def _compiler():
    return shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")


def _source(cases) -> str:
    """The prelude, then one function per case computing element i (one function with a loop
    per case compiles no faster: the cost is per expression), and theon_run dispatching."""
    parts = [D.C.prelude()]
    for k, (op, dts, out) in enumerate(cases):
        args = [f"(({D.C.ctype(d)} *)in[{i}])[i]" for i, d in enumerate(dts)]
        parts.append(f"static void k{k}(void *const *in, void *out, long i) {{\n"
                     f"    (({D.C.ctype(out)} *)out)[i] = {D.render(op, dts, args, D.C)};\n}}")
    parts.append("typedef void (*theon_kernel)(void *const *, void *, long);\n"
                 "static const theon_kernel theon_kernels[] = {"
                 + ", ".join(f"k{k}" for k in range(len(cases))) + "};\n"
                 "void theon_run(int k, void *const *in, void *out, long n) {\n"
                 "    long i;\n"
                 "    for (i = 0; i < n; ++i) theon_kernels[k](in, out, i);\n}\n")
    return "\n".join(parts)


FLAGS = ["-std=c99", "-O1", "-Wall", "-Werror", "-fno-math-errno", "-shared", "-fPIC"]


@pytest.fixture(scope="module")
def compiled(request, tmp_path_factory):
    """theon_run from the library of all cases. Compiling takes some seconds, so the library
    is kept in pytest's cache under the hash of its source, flags and compiler: it is rebuilt
    whenever the table, the dialect or this file changes what is compiled."""
    cc = _compiler()
    if cc is None or sys.platform == "win32":
        pytest.skip("no C compiler (gcc, cc or clang) found")
    source = _source(CASES)
    key = hashlib.sha256("\0".join([source, cc] + FLAGS).encode()).hexdigest()[:24]
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    where = Path(cache.mkdir("theon_dialect") if cache else tmp_path_factory.mktemp("lib"))
    lib = where / f"rows_{key}.so"
    if not lib.exists():
        tmp = tmp_path_factory.mktemp("dialect")
        src, built = tmp / "rows.c", tmp / "rows.so"
        src.write_text(source)
        cmd = [cc, *FLAGS, str(src), "-o", str(built), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[:5000]}"
        for old in where.glob("rows_*.so"):
            old.unlink(missing_ok=True)
        shutil.copyfile(built, lib)
    run = ctypes.CDLL(str(lib)).theon_run
    run.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
                    ctypes.c_long]
    run.restype = None
    return run


def _mismatches(got, want, out):
    if np.dtype(out).kind != "f":
        return np.flatnonzero(got != want)
    with np.errstate(all="ignore"):
        close = np.abs(got - want) <= ULPS * np.spacing(np.abs(want).astype(out))
        ok = (got == want) | (np.isnan(got) & np.isnan(want)) | close
    return np.flatnonzero(~ok)


def test_every_row_and_dtype_combination_compiles_and_matches_numpy(compiled):
    failures = []
    for k, (op, dts, out) in enumerate(CASES):
        args = _points(op, dts)
        keep = _valid(op, dts, out, args)
        args = [np.ascontiguousarray(a[keep]) for a in args]
        with np.errstate(all="ignore"):
            want = np.asarray(_numpy_kernel(op, dts, out)(*args))
        assert want.dtype == out, (op.name, dts)
        got = np.empty(len(args[0]), dtype=out)
        ptrs = (ctypes.c_void_p * len(args))(*[a.ctypes.data for a in args])
        compiled(k, ptrs, got.ctypes.data, len(got))
        bad = _mismatches(got, want, out)
        if len(bad):
            i = bad[0]
            failures.append(f"{op.name}{dts} -> {out}: {D.render(op, dts)} at "
                            f"{tuple(a[i] for a in args)}: C {got[i]!r}, numpy {want[i]!r} "
                            f"({len(bad)} of {len(got)} differ)")
    assert not failures, f"{len(failures)} of {len(CASES)} cases differ:\n" + \
        "\n".join(failures[:40])


def test_the_cases_cover_every_row_and_cast():
    names = {op.name for op, _, _ in CASES}
    assert names == {n for n, op in S.TABLE.items() if op.c is not None} | \
        {f"cast_{d}" for d in DTYPES}
    assert len(CASES) > 4000  # every binary row on (nearly) every dtype pair


# -- the text of the expressions ---------------------------------------------------------------

_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_DEFINED = re.compile(r"__forceinline__\s+[\w ]+?\b(theon_\w+)\(|inline\s+[\w ]+?\b(theon_\w+)\(")
# The CUDA math API (device functions), by name.
_CUDA_MATH_BASE = [
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "ceil", "copysign", "cos",
    "cosh", "erf", "erfc", "exp", "exp10", "exp2", "expm1", "fabs", "floor", "fmax", "fmin",
    "fmod", "hypot", "log", "log10", "log1p", "log2", "pow", "rint", "round", "sin", "sinh",
    "sqrt", "tan", "tanh", "tgamma", "lgamma", "trunc"
]
CUDA_MATH = (set(_CUDA_MATH_BASE) | {n + "f" for n in _CUDA_MATH_BASE}
             | {"isnan", "isinf", "isfinite", "signbit"}
             | {f"__{n}f" for n in ("exp", "exp10", "log", "log2", "log10", "sin", "cos", "tan",
                                    "pow", "fdivide")})
CUDA_TYPES = {"bool", "signed char", "short", "int", "long long", "unsigned char",
              "unsigned short", "unsigned int", "unsigned long long", "float", "double"}


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _defined(prelude: str) -> set:
    return {a or b for a, b in _DEFINED.findall(prelude)}


@pytest.mark.parametrize("dialect", [D.CUDA, D.CUDA_FAST], ids=lambda d: d.name)
def test_cuda_expressions_use_only_cuda_math_prelude_and_cuda_types(dialect):
    prelude = dialect.prelude()
    helpers = _defined(prelude)
    assert {f"{h}_float32" for h in ("theon_floordiv", "theon_mod", "theon_sigmoid")} <= helpers
    assert _balanced(prelude) and prelude.count("{") == prelude.count("}")
    keywords = {"if", "for", "return", "while"}
    assert set(_CALL.findall(prelude)) - helpers - keywords <= CUDA_MATH
    bad = []
    for op, dts, _ in CASES:
        text = D.render(op, dts, dialect=dialect)
        calls = set(_CALL.findall(text))
        casts = set(re.findall(r"\(\(([a-z_ ]+)\)", text))
        if (not _balanced(text) or calls - CUDA_MATH - helpers or casts - CUDA_TYPES
                or re.search(r"_t\b|_Bool", text)):
            bad.append(f"{op.name}{dts}: {text}")
    assert not bad, "\n".join(bad[:20])


def test_float32_expressions_stay_in_float32():
    """No double arithmetic sneaks into float32 code (a float literal, a double function, a
    cast): on a GPU it runs many times slower."""
    for dialect in (D.C, D.CUDA):
        for op, dts, out in CASES:
            if set(dts) != {"float32"} or out not in ("float32", "bool"):
                continue
            text = D.render(op, dts, dialect=dialect)
            assert "double" not in text, (op.name, text)
            assert not re.search(r"\d\.\d*|\.\d", text), (op.name, text)
            for name in _CALL.findall(text):
                assert name.endswith(("f", "_float32")) or name in ("isnan", "isinf"), \
                    (op.name, text)


def test_expressions_have_the_output_c_type():
    """A narrow integer result is cast back (C computes int8 + int8 in int), so that a rendered
    expression can be the operand of another."""
    text = D.render(S.add, ("int8", "int8"))
    assert text.startswith("((int8_t)") and "uint32_t" in text  # wraps without overflow
    assert D.render(S.add, ("float32", "float32")) == "(x0 + x1)"
    assert D.render(S.lt, ("int64", "uint64")) == "((_Bool)(theon_cmp_int64_uint64(x0, x1) < 0))"
    assert D.render(S.exp, ("float32",), ["v"]) == "expf(v)"
    assert D.render(S.inv, ("float32",)) == "(1 / x0)"
    assert D.render(S.cast_op("int8"), ("float64",)) == "((int8_t)x0)"
    assert D.render(S.exp, ("float32",), dialect=D.CUDA_FAST) == "__expf(x0)"


def test_dialect_refuses_what_it_cannot_write():
    with pytest.raises(ValueError, match="float16"):
        D.render(S.exp, ("float16",))
    with pytest.raises(ValueError, match="takes floats"):
        D.C.function("exp", "int32")
    with pytest.raises(ValueError, match="not defined on"):
        D.C.function("theon_sigmoid", "int32")
    with pytest.raises(ValueError, match="neither"):
        D.C.resolve("frexp({0})", "float64")


@pytest.mark.parametrize("template, message", [
    ("(1.0 / {0})", "float literal"),
    ("({0} * 0.5)", "float literal"),
    ("({0} * 1e3)", "float literal"),
    ("theon_nothing({0})", "neither"),
    ("({0} + {1})", r"fields \['1'\]"),
    ("(({ctype:float32}){0})", "fields"),
])
def test_rows_with_bad_templates_are_refused(template, message):
    with pytest.raises(ValueError, match=message):
        S.check_template("bad", 1, template)
    S.check_template("ok", 2, "theon_max({1}, exp2({0}))")  # not a float literal: exp2
