"""Elementwise kernels: a small graph of scalar-table rows -> the source of a loop over arrays.

This is the one renderer of the generated backends (issue 8: the C backend; issue 11: CUDA).
A ``ScalarGraph`` says what one element of the result is (rows of ``ops/scalar.py`` applied to
the inputs and to each other); ``render`` writes, in a dialect of ``backends/dialect.py``, a
function that applies it to every element of strided arrays. What a row computes stays in the
row; the dialect says how it is spelled for a target; this module only adds the loop.

The loop takes any layout: the caller passes, per array, a byte stride per dimension (0 for a
broadcast dimension, negative for a reversed view), after ``collapse`` has merged the
dimensions that every array walks contiguously into one. The innermost dimension is the loop
the compiler vectorises: it gets a second copy for the case where every array is contiguous
in it, indexed by element, which gcc turns into SIMD code; the strided copy handles the rest.
"""
from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from ..ops.fused import ScalarGraph
from .dialect import C, Dialect
from .dialect import render as render_row

# The most dimensions a kernel's arrays have after collapsing (numpy allows 64; graphs
# rarely exceed 8, and collapsing usually leaves one or two).
MAX_DIMS = 16


# Functions glibc's libmvec (x86_64, glibc >= 2.35) has vector variants of, by their double
# name; each also has its float one (expf...). glibc declares the variants only under
# -ffast-math, which theon never uses: the C source declares them itself (``VECTOR_MATH``), and
# gcc then calls them from vectorised loops, with -fno-math-errno.
MVEC_FUNCTIONS = ("acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cos", "cosh",
                  "erf", "exp", "exp2", "expm1", "log", "log10", "log1p", "log2", "pow", "sin",
                  "sinh", "tan", "tanh")


def c_declarations() -> str:
    """What the C loops need besides the dialect's helpers: ``THEON_SCALAR_LOOP``, which keeps
    the compiler from vectorising the strided loop (the slow path: vectorising it too took
    most of gcc's time), and the vector variants of libmvec, declared only where the backend
    defines ``THEON_MVEC`` (gcc on x86_64 glibc, linking -lmvec)."""
    lines = ["#if defined(__GNUC__)",
             '#define THEON_SCALAR_LOOP __asm__ volatile("" ::: "memory")',
             "#else",
             "#define THEON_SCALAR_LOOP",
             "#endif",
             "#if defined(THEON_MVEC) && defined(__GNUC__) && !defined(__clang__)",
             '#define THEON_SIMD __attribute__((simd("notinbranch")))']
    for f in MVEC_FUNCTIONS:
        two = f in ("atan2", "pow")
        for t, suffix in (("double", ""), ("float", "f")):
            params = f"{t}, {t}" if two else t
            lines.append(f"THEON_SIMD {t} {f}{suffix}({params});")
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def render(graph: ScalarGraph, name: str, dialect: Dialect = C, *,
           hoisted: Sequence[int] = (), prelude: bool = True, qualifier: str = "") -> str:
    """C source defining ``{qualifier} void name(int64_t ndim, const int64_t *shape,
    char **data, const int64_t *strides, int64_t begin, int64_t end)``.

    ``data`` holds the inputs' then the outputs' first elements; ``strides[a * ndim + d]`` is
    array ``a``'s byte stride in dimension ``d`` (``ndim`` >= 1, at most MAX_DIMS, every
    length >= 1). The call computes the elements ``begin`` to ``end`` (exclusive) of the C-order
    walk over ``shape``, so that threads can share a call. ``hoisted``: inputs expected to be
    constant along the innermost dimension (broadcast in it: stride 0): the vectorised loop
    reads them once per row. With ``prelude`` the source starts with the dialect's helpers
    (several kernels in one source take it once)."""
    if dialect is not C:
        raise NotImplementedError(f"the {dialect.name} loop is not written yet: only the "
                                  "C dialect renders kernels so far")
    dtypes = graph.ref_dtypes
    n_in, n_out = len(graph.in_dtypes), len(graph.outputs)
    n_arrays = n_in + n_out
    hoisted = frozenset(hoisted)
    ct = dialect.ctype

    def body(load, store: str, skip=frozenset()) -> list[str]:
        lines = [f"const {ct(d)} v{r} = {load(r, ct(d))};"
                 for r, d in enumerate(graph.in_dtypes) if r not in skip]
        for k, (op, refs) in enumerate(graph.steps):
            r = n_in + k
            ins = [dtypes[i] for i in refs]
            if op.output_dtype(*ins) != dtypes[r]:  # the row reads config.floatX
                raise ValueError(f"step {k} ({op.name}) gives {op.output_dtype(*ins)} now but "
                                 f"{dtypes[r]} when the graph was made (floatX changed)")
            expr = render_row(op, ins, [f"v{i}" for i in refs], dialect)
            lines.append(f"const {ct(dtypes[r])} v{r} = {expr};")
        for j, r in enumerate(graph.outputs):
            lines.append(store.format(a=n_in + j, t=ct(dtypes[r]), v=f"v{r}") + ";")
        return lines

    contiguous = body(lambda a, t: f"(({'const ' + t} *)p{a})[j]", "(({t} *)p{a})[j] = {v}",
                      skip=hoisted)
    strided = body(lambda a, t: f"*(const {t} *)(p{a} + j * s{a})",
                   "*({t} *)(p{a} + j * s{a}) = {v}")
    array_dtypes = list(graph.in_dtypes) + [dtypes[r] for r in graph.outputs]
    fast = " && ".join(f"s{a} == 0" if a in hoisted else f"s{a} == (int64_t)sizeof({ct(d)})"
                       for a, d in enumerate(array_dtypes))
    hoist = [f"const {ct(graph.in_dtypes[a])} v{a} = *(const {ct(graph.in_dtypes[a])} *)p{a};"
             for a in sorted(hoisted)]
    pointer = ", ".join(f"*p{a}" for a in range(n_arrays))
    inner_strides = "; ".join(f"const int64_t s{a} = strides[{a} * ndim + last]"
                              for a in range(n_arrays))
    start = "\n".join(f"        p{a} = data[{a}] + i * s{a};" for a in range(n_arrays))
    advance = "\n".join(f"            p{a} += idx[d] * strides[{a} * ndim + d];"
                         for a in range(n_arrays))
    indent = "                "
    src = [dialect.prelude(sorted(set(dtypes))) + c_declarations()] if prelude else []
    src += [f"{qualifier + ' ' if qualifier else ''}void {name}(int64_t ndim, "
            "const int64_t *shape, char **data, const int64_t *strides, int64_t begin, "
            "int64_t end)",
            "{",
            f"    int64_t idx[{MAX_DIMS}];",
            "    const int64_t last = ndim - 1;",
            "    const int64_t n = shape[last];",
            f"    {inner_strides};",
            f"    const int fast = {fast};",
            "    int64_t row = begin / n, i = begin % n, left = end - begin;",
            "    for (int64_t d = last - 1; d >= 0; d--) {  /* the row's index */",
            "        idx[d] = row % shape[d];",
            "        row /= shape[d];",
            "    }",
            "    while (left > 0) {",
            "        const int64_t count = n - i < left ? n - i : left;",
            f"        char {pointer};",
            start,
            "        for (int64_t d = 0; d < last; d++) {",
            advance,
            "        }",
            "        if (fast) {",
            *["            " + line for line in hoist],
            "            for (int64_t j = 0; j < count; j++) {",
            *[indent + line for line in contiguous],
            "            }",
            "        } else {",
            "            for (int64_t j = 0; j < count; j++) {",
            indent + "THEON_SCALAR_LOOP;",
            *[indent + line for line in strided],
            "            }",
            "        }",
            "        left -= count;",
            "        i = 0;",
            "        for (int64_t d = last - 1; d >= 0; d--) {  /* the next row */",
            "            if (++idx[d] < shape[d]) break;",
            "            idx[d] = 0;",
            "        }",
            "    }",
            "}",
            ""]
    return "\n".join(src)


def collapse(shape: Sequence[int], strides: Sequence[Sequence[int]]
             ) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """``shape`` and each array's byte ``strides`` with length-1 dimensions dropped and
    neighbouring dimensions merged where every array steps over the inner one whole
    (``stride[d] == stride[d + 1] * shape[d + 1]``): a contiguous array of any rank becomes
    one dimension. Always at least one dimension (a 0-d computation is one element)."""
    dims = [d for d, n in enumerate(shape) if n != 1]
    if not dims:
        return (1,), [(0,) for _ in strides]
    out_shape = [shape[dims[0]]]
    out_strides = [[s[dims[0]]] for s in strides]
    for d in dims[1:]:
        n = shape[d]
        if all(st[-1] == s[d] * n for st, s in zip(out_strides, strides)):
            out_shape[-1] *= n
            for st, s in zip(out_strides, strides):
                st[-1] = s[d]
        else:
            out_shape.append(n)
            for st, s in zip(out_strides, strides):
                st.append(s[d])
    return tuple(out_shape), [tuple(st) for st in out_strides]


def broadcast_strides(array: np.ndarray, shape: Sequence[int]) -> tuple[int, ...]:
    """``array``'s byte strides when broadcast to ``shape`` (0 where it is broadcast)."""
    pad = len(shape) - array.ndim
    out = [0] * pad
    for d, (n, s) in enumerate(zip(array.shape, array.strides)):
        out.append(0 if n == 1 and shape[pad + d] != 1 else s)
    return tuple(out)



def elemwise_shape(arrays: Sequence[np.ndarray], patterns: Sequence[Sequence[bool]]
                   ) -> tuple[int, ...] | None:
    """The result shape of an elementwise node whose inputs (all of one rank) have these
    broadcastable ``patterns``, or None when the arrays do not fit them: a dimension that is
    not broadcastable must have the result's length in every such input."""
    shape = []
    for d in range(len(patterns[0]) if patterns else 0):
        n = None
        for a, pattern in zip(arrays, patterns):
            if a.ndim != len(pattern):
                return None
            if pattern[d]:
                if a.shape[d] != 1:
                    return None
            elif n is None:
                n = a.shape[d]
            elif a.shape[d] != n:
                return None
        shape.append(1 if n is None else n)
    return tuple(shape)


def launch(fn, graph: ScalarGraph, *inputs: np.ndarray,
           shape: Sequence[int] | None = None) -> list[np.ndarray]:
    """Run a rendered kernel (``fn``: its ctypes function) on numpy arrays: broadcast the
    inputs (to ``shape`` when the caller has checked it), allocate the outputs (C order),
    collapse the dimensions, call once."""
    arrays = [np.asarray(x, dtype=d) for x, d in zip(inputs, graph.in_dtypes)]
    if shape is None:
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
    outs = [np.empty(shape, dtype=d) for d in graph.out_dtypes]
    every = arrays + outs
    cshape, cstrides = collapse(shape, [broadcast_strides(a, shape) for a in every])
    if len(cshape) > MAX_DIMS:
        raise ValueError(f"a kernel takes at most {MAX_DIMS} dimensions once collapsed, "
                         f"got {len(cshape)}")
    ndim = len(cshape)
    total = int(np.prod(cshape))
    if total == 0:
        return outs
    c_shape = (ctypes.c_int64 * ndim)(*cshape)
    c_strides = (ctypes.c_int64 * (ndim * len(every)))(*[s for st in cstrides for s in st])
    c_data = (ctypes.c_void_p * len(every))(*[a.ctypes.data for a in every])
    fn(ndim, c_shape, c_data, c_strides, 0, total)
    return outs


def c_signature() -> tuple:
    """(restype, argtypes) of a rendered kernel, for ctypes."""
    return None, (ctypes.c_int64, ctypes.POINTER(ctypes.c_int64),
                  ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64),
                  ctypes.c_int64, ctypes.c_int64)
