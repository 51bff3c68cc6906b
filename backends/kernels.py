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

In a CUDA dialect the loop is a grid-stride loop of a ``__global__`` kernel over the flattened
elements, rendered for one number of dimensions and one index width (32-bit where the arrays
allow: ``cuda_launch`` decides, on the host, and gives the launch's arguments). Both loops
compute an element with the same statements (``_element``); only the addressing differs.

Reductions (``render_reduce``) fold the same statements' value into an accumulator: C loops
over a range of outputs or of one output's reduced elements, or CUDA kernels (a group of
threads per output, a tree of warp shuffles, a second pass for outputs split across blocks;
``cuda_reduce_launch`` gives the layout and ``CudaReduceLaunch.plan`` the launches). Both
dialects fold, merge and start from the same expressions (``_reduction``).
"""
from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..ops import scalar as _S
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


def _element(graph: ScalarGraph, dialect: Dialect, load: Callable[[int, str], str],
             store: Callable[[int, str, str], str], skip: frozenset = frozenset()
             ) -> list[str]:
    """The statements computing one element, the same in every loop of every dialect: input
    ``r`` is read into ``v{r}`` by ``load(r, ctype)`` (unless in ``skip``: the loop read it
    already), each step is one row rendered by the dialect into ``v{ref}``, and output ``j``
    is written by ``store(array number, ctype, value)``."""
    dtypes = graph.ref_dtypes
    n_in = len(graph.in_dtypes)
    ct = dialect.ctype
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
        lines.append(store(n_in + j, ct(dtypes[r]), f"v{r}") + ";")
    return lines


def _array_dtypes(graph: ScalarGraph) -> list[str]:
    """The dtypes of the arrays a kernel takes: the inputs', then the outputs'."""
    return list(graph.in_dtypes) + list(graph.out_dtypes)


def _inner_loops(graph: ScalarGraph, dialect: Dialect, store_contiguous: Callable,
                 store_strided: Callable, hoisted: frozenset, dtypes: Sequence[str],
                 p: str = "p", s: str = "s") -> tuple[list[str], list[str], str, list[str]]:
    """The pieces of an innermost C loop over ``j``, for the arrays ``{p}0, {p}1...`` with byte
    strides ``{s}0, {s}1...`` (``dtypes``: theirs): the element's statements for the contiguous
    copy (hoisted inputs not read) and the strided copy, the test choosing the contiguous copy,
    and the reads of the hoisted inputs before it."""
    ct = dialect.ctype
    contiguous = _element(graph, dialect, lambda a, t: f"(({'const ' + t} *){p}{a})[j]",
                          store_contiguous, skip=hoisted)
    strided = _element(graph, dialect, lambda a, t: f"*(const {t} *)({p}{a} + j * {s}{a})",
                       store_strided)
    fast = " && ".join(f"{s}{a} == 0" if a in hoisted else
                       f"{s}{a} == (int64_t)sizeof({ct(d)})" for a, d in enumerate(dtypes)) or "1"
    hoist = [f"const {ct(graph.in_dtypes[a])} v{a} = *(const {ct(graph.in_dtypes[a])} *){p}{a};"
             for a in sorted(hoisted)]
    return contiguous, strided, fast, hoist


def render(graph: ScalarGraph, name: str, dialect: Dialect = C, *,
           hoisted: Sequence[int] = (), prelude: bool = True, qualifier: str = "",
           ndim: int | None = None, index32: bool = False) -> str:
    """The source of a kernel applying ``graph`` to every element of strided arrays.

    In the C dialect: ``{qualifier} void name(int64_t ndim, const int64_t *shape,
    char **data, const int64_t *strides, int64_t begin, int64_t end)``.
    ``data`` holds the inputs' then the outputs' first elements; ``strides[a * ndim + d]`` is
    array ``a``'s byte stride in dimension ``d`` (``ndim`` >= 1, at most MAX_DIMS, every
    length >= 1). The call computes the elements ``begin`` to ``end`` (exclusive) of the C-order
    walk over ``shape``, so that threads can share a call. ``hoisted``: inputs expected to be
    constant along the innermost dimension (broadcast in it: stride 0): the vectorised loop
    reads them once per row. With ``prelude`` the source starts with the dialect's helpers
    (several kernels in one source take it once).

    In a CUDA dialect (``dialect.gpu``): a ``__global__`` kernel for arrays of ``ndim``
    dimensions once collapsed, with 32-bit indices if ``index32``; see ``_render_cuda`` and
    ``cuda_launch`` (which says which variant a launch needs, and its arguments)."""
    if dialect.gpu:
        if hoisted or qualifier:
            raise ValueError("hoisted and qualifier are options of the C loop only")
        return _render_cuda(graph, name, dialect, ndim=ndim, index32=index32,
                            prelude=prelude)
    if ndim is not None or index32:
        raise ValueError("the C loop takes its ndim at run time, in 64-bit indices")
    n_in, n_out = len(graph.in_dtypes), len(graph.outputs)
    n_arrays = n_in + n_out
    hoisted = frozenset(hoisted)
    contiguous, strided, fast, hoist = _inner_loops(
        graph, dialect, lambda a, t, v: f"(({t} *)p{a})[j] = {v}",
        lambda a, t, v: f"*({t} *)(p{a} + j * s{a}) = {v}", hoisted, _array_dtypes(graph))
    pointer = ", ".join(f"*p{a}" for a in range(n_arrays))
    inner_strides = "; ".join(f"const int64_t s{a} = strides[{a} * ndim + last]"
                              for a in range(n_arrays))
    start = "\n".join(f"        p{a} = data[{a}] + i * s{a};" for a in range(n_arrays))
    advance = "\n".join(f"            p{a} += idx[d] * strides[{a} * ndim + d];"
                         for a in range(n_arrays))
    indent = "                "
    src = [dialect.prelude(sorted(set(graph.ref_dtypes))) + c_declarations()] if prelude else []
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


# -- the CUDA kernel -----------------------------------------------------------------------

# The C types of a CUDA kernel's indices, by index32: (element count, lengths and the flat
# index; the index in one dimension; byte strides). In 32 bits the flat index is unsigned, so
# that i + the grid's thread count cannot overflow while i < 2**31; the index in a dimension
# and the strides are signed, so that a negative stride gives a negative offset.
_CUDA_INDEX = {False: ("long long", "long long", "long long"),
               True: ("unsigned int", "int", "int")}


def _unravel(flat: str, index: str, length: str, tmp: str, ndim: int, index32: bool
             ) -> list[str]:
    """The statements giving the flat C-order index ``flat`` of a CUDA kernel's walk as an
    index per dimension, ``{index}0...``, from the lengths ``{length}1...`` of the dimensions
    after the first, the last (the fastest) first; ``tmp``: the variable dividing down."""
    count, idx, _ = _CUDA_INDEX[bool(index32)]
    if ndim == 1:
        return [f"const {idx} {index}0 = " + (f"({idx}){flat};" if index32 else f"{flat};")]
    lines = [f"{count} {tmp} = {flat};"]
    for d in range(ndim - 1, 0, -1):
        lines.append(f"const {idx} {index}{d} = ({idx})({tmp} % {length}{d});")
        lines.append(f"{tmp} /= {length}{d};")
    lines.append(f"const {idx} {index}0 = ({idx}){tmp};")
    return lines


def _render_cuda(graph: ScalarGraph, name: str, dialect: Dialect, *, ndim: int | None,
                 index32: bool, prelude: bool) -> str:
    """``extern "C" __global__ void name(p_0, ..., p_k, n, n_1, ..., n_{ndim-1},
    s_0_0, ..., s_k_{ndim-1})``: the arrays' first elements (inputs ``const char *``, then
    outputs ``char *``), the number of elements, the lengths of dimensions 1 and up (the first
    follows), and each array's byte stride per dimension. A grid-stride loop walks the
    elements in C order, so any launch shape computes all of them; the dimensions are fixed
    when rendered (unrolled index arithmetic, lengths in registers), and with ``index32`` every
    index and byte offset is 32 bits (64-bit division is many instructions on a GPU), which
    ``cuda_launch`` allows only where the count and every array's byte extent fit."""
    if ndim is None or not 1 <= ndim <= MAX_DIMS:
        raise ValueError(f"a CUDA kernel is rendered for a number of dimensions from 1 to "
                         f"{MAX_DIMS} (after collapse), got ndim={ndim}")
    count, index, stride = _CUDA_INDEX[bool(index32)]
    n_in = len(graph.in_dtypes)
    n_arrays = n_in + len(graph.outputs)
    # one line of parameters for the pointers, one for the lengths, one per array's strides
    params = [", ".join(f"const char *p{a}" if a < n_in else f"char *p{a}"
                        for a in range(n_arrays)),
              ", ".join([f"const {count} n"] + [f"const {count} n{d}" for d in range(1, ndim)])]
    params += [", ".join(f"const {stride} s{a}_{d}" for d in range(ndim))
               for a in range(n_arrays)]
    unravel = _unravel("i", "i", "n", "r", ndim, index32)

    def offset(a: int) -> str:
        return " + ".join(f"i{d} * s{a}_{d}" for d in range(ndim))

    body = _element(graph, dialect, lambda a, t: f"*(const {t} *)(p{a} + {offset(a)})",
                    lambda a, t, v: f"*({t} *)(p{a} + {offset(a)}) = {v}")
    src = [dialect.prelude(sorted(set(graph.ref_dtypes)))] if prelude else []
    src += [f'extern "C" __global__ void {name}(',
            "    " + ",\n    ".join(params) + ")",
            "{",
            f"    for ({count} i = ({count})blockIdx.x * blockDim.x + threadIdx.x; i < n;",
            f"         i += ({count})blockDim.x * gridDim.x) {{",
            *["        " + line for line in unravel + body],
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


def layout(arrays: Sequence, shape: Sequence[int]
           ) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """The collapsed shape and byte strides of ``arrays`` (anything with numpy's ``shape``,
    ``strides`` and ``ndim``: numpy or cupy arrays) walked over ``shape``, as a kernel of any
    dialect takes them."""
    cshape, cstrides = collapse(shape, [broadcast_strides(a, shape) for a in arrays])
    if len(cshape) > MAX_DIMS:
        raise ValueError(f"a kernel takes at most {MAX_DIMS} dimensions once collapsed, "
                         f"got {len(cshape)}")
    return cshape, cstrides


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
    cshape, cstrides = layout(every, shape)
    ndim = len(cshape)
    total = int(np.prod(cshape))
    if total == 0:
        return outs
    c_shape = (ctypes.c_int64 * ndim)(*cshape)
    c_strides = (ctypes.c_int64 * (ndim * len(every)))(*[s for st in cstrides for s in st])
    c_data = (ctypes.c_void_p * len(every))(*[a.ctypes.data for a in every])
    fn(ndim, c_shape, c_data, c_strides, 0, total)
    return outs


_INT32_MAX = 2 ** 31 - 1


@dataclass(frozen=True)
class CudaLaunch:
    """How to launch a CUDA kernel of ``render(graph, name, CUDA, ndim=, index32=)`` on given
    arrays: render (or find) the kernel of this ``ndim`` and ``index32``, then call it with the
    arrays (inputs then outputs, as device pointers to their first elements) followed by
    ``scalars``, on ``blocks(...)`` blocks, unless ``size`` is 0 (nothing to launch: a CUDA
    grid cannot be empty)."""

    ndim: int
    index32: bool
    size: int
    shape: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]

    @property
    def scalars(self) -> tuple[np.generic, ...]:
        """The kernel's arguments after the pointers, as numpy scalars of its parameters' C
        types (what cupy.RawKernel takes): the size, the lengths of dimensions 1 and up, then
        every array's byte stride per dimension."""
        count, stride = (np.uint32, np.int32) if self.index32 else (np.int64, np.int64)
        return (count(self.size), *[count(n) for n in self.shape[1:]],
                *[stride(s) for st in self.strides for s in st])

    def blocks(self, block: int = 256, most: int = 65536) -> int:
        """How many blocks of ``block`` threads: one thread per element, at most ``most``
        blocks (the grid-stride loop does the rest)."""
        return max(1, min(-(-self.size // block), most))


def cuda_launch(arrays: Sequence, shape: Sequence[int] | None = None) -> CudaLaunch:
    """What launching a CUDA kernel on ``arrays`` (inputs then outputs; numpy-like: ``shape``,
    ``strides``, ``ndim``) takes: the collapsed layout and whether 32-bit indices reach every
    element. ``shape`` is the outputs' (default: the arrays' broadcast shape). 32-bit indexing
    needs the element count and, per array, the farthest byte offset from its first element
    (the sum over dimensions of (length - 1) * |stride|) to fit an int; the grid's threads are
    then counted in unsigned 32 bits, so a launch must have fewer than 2**31 of them (as
    ``blocks`` gives)."""
    if shape is None:
        shape = np.broadcast_shapes(*[tuple(a.shape) for a in arrays])
    shape = tuple(int(n) for n in shape)
    cshape, cstrides = layout(arrays, shape)
    size = int(np.prod(cshape))
    if size == 0:  # nothing is read: keep the strides from deciding the index width
        cstrides = [(0,) * len(cshape) for _ in cstrides]
    extents = [sum(max(n - 1, 0) * abs(s) for n, s in zip(cshape, st)) for st in cstrides]
    index32 = size <= _INT32_MAX and all(e <= _INT32_MAX for e in extents)
    return CudaLaunch(len(cshape), index32, size, cshape, tuple(cstrides))


def c_signature() -> tuple:
    """(restype, argtypes) of a rendered kernel, for ctypes."""
    return None, (ctypes.c_int64, ctypes.POINTER(ctypes.c_int64),
                  ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64),
                  ctypes.c_int64, ctypes.c_int64)


# -- reductions ------------------------------------------------------------------------------

# How many elements of a row the reduction loop sums before handing the block's sum to the
# cascade (a binary counter of block sums: the error grows with log2(blocks), as in numpy's
# pairwise sum, not with the length). A block is also what ``#pragma omp simd`` splits across
# vector lanes, each lane accumulating its own partial sum.
REDUCE_BLOCK = 2048

REDUCE_KINDS = ("sum", "prod", "max", "min", "all", "any")


# The most outputs ``name_outer`` accumulates at once (its accumulators live on the stack).
OUTER_RUN = 1024


def _render_outer(graph: ScalarGraph, dialect: Dialect, name: str, q: str, acc_t: str,
                  out_t: str, identity: str, fold: Callable[..., str], nan: bool,
                  hoisted: Sequence[int]) -> list[str]:
    """The lines of ``name_outer`` (see ``render_reduce``): ``fold`` writes an element into
    the accumulator it is given, here ``acc[j]`` (and whether a NaN was seen, ``an[j]``)."""
    n_in = len(graph.in_dtypes)
    hoisted = frozenset(hoisted)

    def fold_j(v: str) -> str:
        return fold(v, "acc[j]", "an[j]")

    contiguous, strided, fast, hoist = _inner_loops(
        graph, dialect, lambda a, t, v: fold_j(v), lambda a, t, v: fold_j(v), hoisted,
        graph.in_dtypes, p="q", s="k")
    ind = "                    "
    return [
        f"{q}void {name}_outer(int64_t nk, int64_t nr, const int64_t *shape, char **data, "
        "const int64_t *strides, int64_t begin, int64_t end)",
        "{",
        "    const int64_t nd = nk + nr, n = shape[nk - 1];",
        f"    char *base[{max(n_in, 1)}];",
        f"    int64_t rs[{max(n_in, 1) * MAX_DIMS}], idx[{MAX_DIMS}], off[{max(n_in, 1)}];",
        f"    {acc_t} acc[{OUTER_RUN}];",
        *([f"    int an[{OUTER_RUN}];"] if nan else []),
        "    int64_t r = 1;",
        "    for (int64_t d = nk; d < nd; d++) r *= shape[d];",
        *[f"    const int64_t k{a} = strides[{a} * nd + nk - 1];" for a in range(n_in)],
        f"    const int64_t ko = strides[{n_in} * nd + nk - 1];",
        f"    const int fast = {fast};",
        "    for (int64_t o = begin; o < end;) {",
        "        const int64_t i = o % n;",
        "        int64_t count = n - i < end - o ? n - i : end - o;",
        f"        if (count > {OUTER_RUN}) count = {OUTER_RUN};",
        f"        char *out = {name}_at(nk, nr, shape, data, strides, o, base, rs);",
        "        for (int64_t j = 0; j < count; j++) {",
        f"            acc[j] = {identity};",
        *(["            an[j] = 0;"] if nan else []),
        "        }",
        "        for (int64_t d = 0; d < nr; d++) idx[d] = 0;",
        f"        for (int a = 0; a < {n_in}; a++) off[a] = 0;",
        "        for (int64_t e = 0; e < r; e++) {",
        *[f"            const char *q{a} = base[{a}] + off[{a}];" for a in range(n_in)],
        "            if (fast) {",
        *["                " + line for line in hoist],
        "                #pragma omp simd",
        "                for (int64_t j = 0; j < count; j++) {",
        *[ind + line for line in contiguous],
        "                }",
        "            } else {",
        "                #pragma omp simd",
        "                for (int64_t j = 0; j < count; j++) {",
        *[ind + line for line in strided],
        "                }",
        "            }",
        "            for (int64_t d = nr - 1; d >= 0; d--) {  /* the next reduced element */",
        "                if (++idx[d] < shape[nk + d]) {",
        f"                    for (int a = 0; a < {n_in}; a++) off[a] += rs[a * nr + d];",
        "                    break;",
        "                }",
        "                idx[d] = 0;",
        f"                for (int a = 0; a < {n_in}; a++) "
        "off[a] -= (shape[nk + d] - 1) * rs[a * nr + d];",
        "            }",
        "        }",
        "        for (int64_t j = 0; j < count; j++)",
        (f"            *({out_t} *)(out + j * ko) = ({out_t})(an[j] ? ({acc_t})NAN : acc[j]);"
         if nan else f"            *({out_t} *)(out + j * ko) = ({out_t})acc[j];"),
        "        o += count;",
        "    }",
        "}",
        ""]


def reduce_acc_dtype(kind: str, value: str, out: str) -> str | None:
    """The dtype a C reduction of ``kind`` accumulates ``value``s in to give ``out``, or None
    where no kernel is written (numpy computes it).

    Float sums accumulate in float64 whatever the output: the loop adds in a different order
    than numpy's pairwise sum, and accumulating float32 in float64 makes our error (a rounding
    at the end) smaller than numpy's own, instead of merely as small; the vector loop converts
    and adds (memory is the bound: 1e6 float32 elements take the same time either way).
    Integer sums and products accumulate in uint64, whose overflow wraps (defined in C; the
    signed result is the same bits numpy's wrapping int64 arithmetic gives). Float products
    multiply in the output's dtype, as numpy does (an underflow or overflow on the way is
    numpy's). Max and min compare in the output dtype; all and any count in int."""
    known = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float32", "float64")
    if kind not in REDUCE_KINDS or value not in known or out not in known:
        return None
    fl, vfl = out in ("float32", "float64"), value in ("float32", "float64")
    if kind in ("sum", "prod"):
        if out == "bool" or (vfl and not fl):
            return None
        if fl:
            return "float64" if kind == "sum" else out
        return "uint64"
    if kind in ("max", "min"):
        return out if out == value else None
    return "int32" if out == "bool" else None


def _c_literal(value: float, dtype: str) -> str:
    if np.isnan(value):
        return "NAN"
    if np.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return repr(float(value)) if dtype in ("float32", "float64") else str(int(value))


def _reduce_identity(kind: str, dtype: str, initial: float | None) -> str:
    """The accumulator's first value: numpy's identity, -0.0 for float sums (adding -0.0
    changes nothing, so a sum of negative zeros stays -0.0 as numpy's does; the empty sum,
    +0.0, never reaches the loop), the type's extreme for integer max and min."""
    if initial is not None:
        return _c_literal(initial, dtype)
    fl = dtype in ("float32", "float64")
    if kind == "sum":
        return "-0.0" if fl else "0"
    if kind == "prod":
        return "1"
    if kind == "all":
        return "1"
    if kind == "any":
        return "0"
    if fl:
        return "-INFINITY" if kind == "max" else "INFINITY"
    info = np.iinfo(dtype) if dtype != "bool" else None
    if info is None:
        return "0" if kind == "max" else "1"
    lo, hi = int(info.min), int(info.max)
    # INT64_MIN has no literal: (-INT64_MAX - 1)
    lit = {np.iinfo("int64").min: "(-INT64_MAX - 1)", np.iinfo("int64").max: "INT64_MAX",
           np.iinfo("uint64").max: "UINT64_MAX"}
    value = lo if kind == "max" else hi
    return lit.get(value, f"{value}LL" if dtype.startswith("int") else f"{value}ULL")


@dataclass(frozen=True)
class _Reduction:
    """What every loop of a reduction shares, whatever its dialect: the accumulator's dtype
    and C types, its first value, how a value is folded into it and how two accumulators
    merge (``merge``: an expression of ``acc`` and ``x``, NaN-propagating for max and min of
    floats, where ``nan`` says a loop also tracks whether a NaN was seen)."""

    kind: str
    acc_dtype: str
    acc_t: str
    out_t: str
    nan: bool
    identity: str  # with the initial value of max and min
    ident_b: str  # without it
    merge: str
    nan_value: str

    def fold(self, v: str, b: str = "b", bn: str = "bn") -> str:
        """The statement folding the value ``v`` into the accumulator ``b`` (and whether
        a NaN was seen, into ``bn``)."""
        kind, acc_t, out_t = self.kind, self.acc_t, self.out_t
        x = f"(({acc_t})(({out_t}){v}))"  # numpy casts each value to the output's dtype
        if kind == "sum":
            return f"{b} += {x}"
        if kind == "prod":
            return f"{b} *= {x}"
        if kind == "all":
            return f"{b} &= ({v} != 0)"
        if kind == "any":
            return f"{b} |= ({v} != 0)"
        cmp = ">" if kind == "max" else "<"
        return f"{b} = {v} {cmp} {b} ? {v} : {b}" + (f"; {bn} |= ({v} != {v})" if self.nan
                                                     else "")


_CONSTANT_NAMES = re.compile(r"\b(NAN|INFINITY|INT64_MAX|UINT64_MAX)\b")


def _reduction(graph: ScalarGraph, kind: str, out_dtype: str, dialect: Dialect,
               initial: float | None) -> _Reduction:
    """The shared pieces of a reduction of ``graph``'s output with ``kind`` to ``out_dtype``
    (constants spelled as ``dialect`` spells them); refuses what no loop computes."""
    if len(graph.outputs) != 1:
        raise ValueError("a reduction kernel reduces one output")
    value = graph.out_dtypes[0]
    acc_dtype = reduce_acc_dtype(kind, value, out_dtype)
    if acc_dtype is None:
        raise ValueError(f"no {dialect.name} reduction {kind} of {value} to {out_dtype}")
    if initial is not None and kind not in ("max", "min"):
        raise ValueError("an initial value is for max and min")
    ct = dialect.ctype
    nan = kind in ("max", "min") and value in ("float32", "float64")
    if kind in ("max", "min"):
        cmp = ">" if kind == "max" else "<"
        merge = f"(x {cmp} acc ? x : acc)"
    else:
        merge = "(acc {} x)".format({"sum": "+", "prod": "*", "all": "&", "any": "|"}[kind])
    if nan:  # an accumulator that is NaN stays NaN, whatever it meets
        merge = f"(acc != acc ? acc : x != x ? x : {merge})"
    which = out_dtype if kind in ("max", "min") else acc_dtype

    def spell(text: str) -> str:
        return _CONSTANT_NAMES.sub(lambda m: dialect.constant(m.group(1)), text)
    return _Reduction(kind, acc_dtype, ct(acc_dtype), ct(out_dtype), nan,
                      spell(_reduce_identity(kind, which, initial)),
                      spell(_reduce_identity(kind, which, None)), merge, spell("NAN"))


def render_reduce(graph: ScalarGraph, kind: str, out_dtype: str, name: str,
                  dialect: Dialect = C, *, initial: float | None = None,
                  hoisted: Sequence[int] = (), hoisted_outer: Sequence[int] = (),
                  prelude: bool = True, qualifier: str = "", nk: int | None = None,
                  nr: int | None = None, index32: bool = False,
                  epilogue: ScalarGraph | None = None, keep: bool = False) -> str:
    """The source of a kernel reducing ``graph``'s single output with ``kind``.

    Three functions (C dialect), sharing the per-element statements of the elementwise loop
    (``_element``); the arrays are the inputs, then the output; shape and strides cover the
    ``nk`` kept dimensions, then the ``nr`` reduced ones (each array's ``nk + nr`` byte
    strides, the output's 0 in the reduced ones; lengths >= 1):

    - ``void name(nk, nr, shape, data, strides, begin, end)`` computes the outputs ``begin``
      to ``end`` (C order over the kept dimensions), each over its whole reduced range;
    - ``void name_part(nk, nr, shape, data, strides, o, rbegin, rend, void *acc)`` stores
      into ``acc`` the accumulator of output ``o`` over the reduced elements ``rbegin`` to
      ``rend`` (C order over the reduced dimensions), so that threads can split one output;
    - ``void name_merge(nk, shape, data, strides, o, const void *accs, int64_t count)``
      combines ``count`` such accumulators (in order) into output ``o``.

    - ``void name_outer(nk, nr, shape, data, strides, begin, end)`` computes the same outputs
      the other way round: for a run of outputs along the innermost kept dimension, every
      reduced element in turn is folded into one accumulator per output, the loop over the
      run vectorised (a sum over the first axis of a C-order matrix, or rows shorter than a
      vector: each lane is an output).

    The innermost reduced dimension (the kept one, in ``name_outer``) is the loop the compiler
    vectorises, with a copy for the case where every input is contiguous in it (``hoisted``
    inputs, ``hoisted_outer`` in ``name_outer``: stride 0).

    In a CUDA dialect (``dialect.gpu``): kernels ``name`` and ``name_merge`` for ``nk`` kept
    and ``nr`` reduced dimensions once collapsed, with 32-bit indices if ``index32``, and an
    ``epilogue`` applied to each result (``FusedReduce.epilogue``), and with ``keep`` the
    graph's value of each element written as it is folded (``FusedReduce.keep``); see
    ``_render_cuda_reduce`` and ``cuda_reduce_launch``."""
    if dialect.gpu:
        if hoisted or hoisted_outer or qualifier:
            raise ValueError("hoisted, hoisted_outer and qualifier are options of the C loops "
                             "only")
        return _render_cuda_reduce(graph, kind, out_dtype, name, dialect, initial=initial,
                                   nk=nk, nr=nr, index32=index32, prelude=prelude,
                                   epilogue=epilogue, keep=keep)
    if nk is not None or nr is not None or index32:
        raise ValueError("the C loops take their dimensions at run time, in 64-bit indices")
    if epilogue is not None or keep:
        raise ValueError("an epilogue and keep are options of the CUDA reduction only (on a "
                         "CPU the fusion pass makes neither)")
    red = _reduction(graph, kind, out_dtype, dialect, initial)
    n_in = len(graph.in_dtypes)
    hoisted = frozenset(hoisted)
    acc_dtype, acc_t, out_t, nan, fold = red.acc_dtype, red.acc_t, red.out_t, red.nan, red.fold
    cascade = kind == "sum" and acc_dtype == "float64"
    omp_op = {"sum": "+", "prod": "*", "all": "&", "any": "|", "max": "max",
              "min": "min"}[kind]
    clause = f"reduction({omp_op}:b)" + (" reduction(|:bn)" if nan else "")
    contiguous, strided, fast, hoist = _inner_loops(
        graph, dialect, lambda a, t, v: fold(v), lambda a, t, v: fold(v), hoisted,
        graph.in_dtypes)
    identity, ident_b, merge_expr = red.identity, red.ident_b, red.merge
    if kind in ("max", "min"):
        cmp = ">" if kind == "max" else "<"
        merge_block = f"acc = b {cmp} acc ? b : acc;" + (" an |= bn;" if nan else "")
    else:
        op = {"sum": "+", "prod": "*", "all": "&", "any": "|"}[kind]
        merge_block = f"acc = acc {op} b;"
    if cascade:
        merge_block = ("{ int64_t c = ++blocks; while ((c & 1) == 0) { b = stack[--depth] + b; "
                       "c >>= 1; } stack[depth++] = b; }")
    pointers = ", ".join(f"*p{a}" for a in range(n_in)) or "*unused"
    inner_strides = "; ".join(f"const int64_t s{a} = rs[{a} * nr + last]"
                              for a in range(n_in)) or "(void)rs"
    start = "\n".join(f"        p{a} = base[{a}] + i * s{a};" for a in range(n_in))
    advance = "\n".join(f"            p{a} += idx[d] * rs[{a} * nr + d];" for a in range(n_in))
    ind = "                    "
    q = f"{qualifier} " if qualifier else ""
    outer = _render_outer(graph, dialect, name, q, acc_t, out_t, identity, fold, nan,
                          hoisted_outer)
    src = [dialect.prelude(sorted(set(graph.ref_dtypes) | {out_dtype, acc_dtype}))
           + c_declarations()] if prelude else []
    src += [
        f"/* {kind} of {graph.expression()} */",
        f"static {acc_t} {name}_acc(int64_t nr, const int64_t *rshape, char *const *base, "
        "const int64_t *rs, int64_t rbegin, int64_t rend)",
        "{",
        f"    int64_t idx[{MAX_DIMS}];",
        "    const int64_t last = nr - 1;",
        "    const int64_t n = rshape[last];",
        f"    {inner_strides};",
        f"    const int fast = {fast};",
        "    int64_t row = rbegin / n, i = rbegin % n, left = rend - rbegin;",
        f"    {acc_t} acc = {identity};",
        *(["    int an = 0;"] if nan else []),
        *([f"    {acc_t} stack[64];", "    int depth = 0;", "    int64_t blocks = 0;"]
          if cascade else []),
        "    for (int64_t d = last - 1; d >= 0; d--) {",
        "        idx[d] = row % rshape[d];",
        "        row /= rshape[d];",
        "    }",
        "    while (left > 0) {",
        "        const int64_t count = n - i < left ? n - i : left;",
        f"        char {pointers};",
        start,
        "        for (int64_t d = 0; d < last; d++) {",
        advance,
        "        }",
        f"        for (int64_t c0 = 0; c0 < count; c0 += {REDUCE_BLOCK}) {{",
        f"            const int64_t c1 = count - c0 < {REDUCE_BLOCK} ? count : c0 + "
        f"{REDUCE_BLOCK};",
        f"            {acc_t} b = {ident_b};",
        *(["            int bn = 0;"] if nan else []),
        "            if (fast) {",
        *["                " + line for line in hoist],
        f"                #pragma omp simd {clause}",
        "                for (int64_t j = c0; j < c1; j++) {",
        *[ind + line for line in contiguous],
        "                }",
        "            } else {",
        "                for (int64_t j = c0; j < c1; j++) {",
        ind + "THEON_SCALAR_LOOP;",
        *[ind + line for line in strided],
        "                }",
        "            }",
        f"            {merge_block}",
        "        }",
        "        left -= count;",
        "        i = 0;",
        "        for (int64_t d = last - 1; d >= 0; d--) {",
        "            if (++idx[d] < rshape[d]) break;",
        "            idx[d] = 0;",
        "        }",
        "    }",
        *(["    while (depth > 0) acc = stack[--depth] + acc;"] if cascade else []),
        *([f"    if (an) acc = ({acc_t}){red.nan_value};"] if nan else []),
        "    return acc;",
        "}",
        "",
        # the base pointers of output o, and the reduced strides packed per input
        f"static char *{name}_at(int64_t nk, int64_t nr, const int64_t *shape, char **data, "
        f"const int64_t *strides, int64_t o, char **base, int64_t *rs)",
        "{",
        "    const int64_t nd = nk + nr;",
        f"    char *out = data[{n_in}];",
        f"    for (int a = 0; a < {n_in}; a++) {{",
        "        base[a] = data[a];",
        "        for (int64_t d = 0; d < nr; d++) rs[a * nr + d] = strides[a * nd + nk + d];",
        "    }",
        "    for (int64_t d = nk - 1; d >= 0; d--) {",
        "        const int64_t k = o % shape[d];",
        "        o /= shape[d];",
        f"        for (int a = 0; a < {n_in}; a++) base[a] += k * strides[a * nd + d];",
        f"        out += k * strides[{n_in} * nd + d];",
        "    }",
        "    return out;",
        "}",
        "",
        f"{q}void {name}(int64_t nk, int64_t nr, const int64_t *shape, char **data, "
        "const int64_t *strides, int64_t begin, int64_t end)",
        "{",
        f"    char *base[{max(n_in, 1)}];",
        f"    int64_t rs[{max(n_in, 1) * MAX_DIMS}], r = 1;",
        "    for (int64_t d = nk; d < nk + nr; d++) r *= shape[d];",
        "    for (int64_t o = begin; o < end; o++) {",
        f"        char *out = {name}_at(nk, nr, shape, data, strides, o, base, rs);",
        f"        *({out_t} *)out = ({out_t}){name}_acc(nr, shape + nk, base, rs, 0, r);",
        "    }",
        "}",
        "",
        *outer,
        f"{q}void {name}_part(int64_t nk, int64_t nr, const int64_t *shape, char **data, "
        "const int64_t *strides, int64_t o, int64_t rbegin, int64_t rend, void *acc)",
        "{",
        f"    char *base[{max(n_in, 1)}];",
        f"    int64_t rs[{max(n_in, 1) * MAX_DIMS}];",
        f"    {name}_at(nk, nr, shape, data, strides, o, base, rs);",
        f"    *({acc_t} *)acc = {name}_acc(nr, shape + nk, base, rs, rbegin, rend);",
        "}",
        "",
        f"{q}void {name}_merge(int64_t nk, int64_t nr, const int64_t *shape, char **data, "
        "const int64_t *strides, int64_t o, const void *accs, int64_t count)",
        "{",
        f"    char *base[{max(n_in, 1)}];",
        f"    int64_t rs[{max(n_in, 1) * MAX_DIMS}];",
        f"    char *out = {name}_at(nk, nr, shape, data, strides, o, base, rs);",
        f"    {acc_t} acc = (({'const ' + acc_t} *)accs)[0];",
        "    for (int64_t t = 1; t < count; t++) {",
        f"        const {acc_t} x = (({'const ' + acc_t} *)accs)[t];",
        f"        acc = {merge_expr};",
        "    }",
        f"    *({out_t} *)out = ({out_t})acc;",
        "}",
        ""]
    return "\n".join(src)


# -- the CUDA reduction --------------------------------------------------------------------

# The C types of the accumulators a warp shuffle does not take: they travel as an int.
_NARROW = frozenset(("bool", "int8", "int16", "uint8", "uint16"))


def _cuda_tree(red: _Reduction) -> list[str]:
    """The statements merging the accumulators ``acc`` of a group of ``group`` consecutive
    threads (a power of two) into its first thread's: shuffles down each warp, then, for a
    group of several warps, each warp's result through shared memory (``warps``) into the
    group's first warp, shuffled down again. Every thread of the block runs them (the
    shuffles name every lane, and the barriers are the block's)."""
    narrow = red.acc_dtype in _NARROW

    def shuffle(width: str) -> str:
        if narrow:
            return f"({red.acc_t})__shfl_down_sync(0xffffffffu, (int)acc, off, {width})"
        return f"__shfl_down_sync(0xffffffffu, acc, off, {width})"
    return [
        "{",
        "    const unsigned int width = group < 32 ? group : 32;",
        "    for (unsigned int off = width / 2; off > 0; off /= 2) {",
        f"        const {red.acc_t} x = {shuffle('width')};",
        f"        acc = {red.merge};",
        "    }",
        "}",
        "if (group > 32) {",
        "    if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = acc;",
        "    __syncthreads();",
        "    if (lane < 32) {  /* the group's first warp */",
        f"        acc = lane < group / 32 ? warps[threadIdx.x / 32 + lane] : {red.ident_b};",
        "        for (unsigned int off = 16; off > 0; off /= 2) {",
        f"            const {red.acc_t} x = {shuffle('32')};",
        f"            acc = {red.merge};",
        "        }",
        "    }",
        "    __syncthreads();  /* before warps is written again */",
        "}"]


def _render_cuda_reduce(graph: ScalarGraph, kind: str, out_dtype: str, name: str,
                        dialect: Dialect, *, initial: float | None, nk: int | None,
                        nr: int | None, index32: bool, prelude: bool,
                        epilogue: ScalarGraph | None = None, keep: bool = False) -> str:
    """Two ``__global__`` kernels reducing ``graph``'s output over ``nr`` reduced dimensions
    for each element of ``nk`` kept ones (0: one output), with 32-bit indices if ``index32``
    (``cuda_reduce_launch`` says which variant a launch needs and gives its arguments).

    ``name(p_0, ..., p_k, out, partial, n, n_1..., r, m_1..., s_0_0..., so_0..., group,
    parts, chunk)``: the inputs' first elements, the output's, a scratch array of
    accumulators; the number of outputs and the lengths of the kept dimensions after the
    first; the number of reduced elements per output and the lengths of the reduced
    dimensions after the first; each input's byte strides (kept dimensions, then reduced
    ones), the output's (kept ones). A group of ``group`` consecutive threads (a power of
    two dividing the block, itself a multiple of 32) computes one work item, the block's
    groups consecutive items, and the blocks stride over the items as elementwise kernels
    stride over elements (any grid computes them all). Item ``w`` is output ``w / parts``
    over its reduced elements ``w % parts * chunk`` to ``+ chunk`` (C order over the reduced
    dimensions): each thread folds every ``group``-th of them into its accumulator, with
    the per-element statements of every other loop (``_element``), then the group merges
    its accumulators (``_cuda_tree``: warp shuffles, shared memory across warps). With
    ``parts`` 1 the group's first thread writes the output; else the item's accumulator
    goes to ``partial[w]`` and ``name_merge(partial, out, n, n_1..., so_0..., group,
    parts)`` merges each output's ``parts`` accumulators, one group per output, and writes
    it.

    Two passes, not atomics, for outputs split across blocks: the result does not depend on
    the order in which blocks finish (float additions in another order round differently:
    a run would not repeat its last bits), and every kind and dtype merges the same way
    (there are no atomics for 8-bit integers, nor a NaN-propagating float maximum). The cost
    is one small launch and ``parts`` accumulators per output.

    As in the C loops: float sums accumulate in float64 (``reduce_acc_dtype``), integer sums
    and products wrap in uint64, max and min propagate NaN (each thread notes a NaN it
    folds; merges keep one), and an empty reduction gives the identity (a float sum's is
    +0.0, not the -0.0 the accumulators start from so that a sum of -0.0 stays -0.0)."""
    if nk is None or nr is None or not 0 <= nk <= MAX_DIMS or not 1 <= nr <= MAX_DIMS:
        raise ValueError(f"a CUDA reduction is rendered for 0 to {MAX_DIMS} kept and 1 to "
                         f"{MAX_DIMS} reduced dimensions (after collapse), got nk={nk}, "
                         f"nr={nr}")
    red = _reduction(graph, kind, out_dtype, dialect, initial)
    count, _, stride = _CUDA_INDEX[bool(index32)]
    n_in = len(graph.in_dtypes)
    acc_t, out_t = red.acc_t, red.out_t
    n_extra = len(epilogue.in_dtypes) - 1 if epilogue is not None else 0
    if epilogue is not None and (len(epilogue.outputs) != 1 or
                                 epilogue.in_dtypes[0] != out_dtype):
        raise ValueError(f"an epilogue has one output and reads the {out_dtype} result as its "
                         "input 0")
    kept_lengths = [f"const {count} n"] + [f"const {count} n{d}" for d in range(1, nk)]
    out_strides = [", ".join(f"const {stride} so_{d}" for d in range(nk))] if nk else []
    out_strides += [", ".join(f"const {stride} se{a}_{d}" for d in range(nk))
                    for a in range(1, n_extra + 1)] if nk else []
    extra_pointers = [f"const char *ep{a}" for a in range(1, n_extra + 1)]
    n_arrays = n_in + int(keep)  # (the kept values are read as an input is)
    params = [", ".join([f"const char *p{a}" for a in range(n_in)]
                        + ([f"char *p{n_in}"] if keep else [])
                        + ["char *out", "char *partial", *extra_pointers]),
              ", ".join(kept_lengths),
              ", ".join([f"const {count} r"] + [f"const {count} m{d}" for d in range(1, nr)])]
    params += [", ".join(f"const {stride} s{a}_{d}" for d in range(nk + nr))
               for a in range(n_arrays)]
    params += out_strides + [f"const unsigned int group, const {count} parts, "
                             f"const {count} chunk"]
    kept = _unravel("o", "k", "n", "t", nk, index32) if nk else []
    out_at = "out" + "".join(f" + k{d} * so_{d}" for d in range(nk))
    if epilogue is None:
        write = [f"*({out_t} *)({out_at}) = ({out_t})acc;"]
    else:
        def load_extra(a: int, t: str) -> str:
            if a == 0:
                return f"({t})(({out_t})acc)"
            return f"*(const {t} *)(ep{a}" + "".join(f" + k{d} * se{a}_{d}" for d in range(nk)) \
                + ")"
        write = ["{", *["    " + line for line in _element(
            epilogue, dialect, load_extra,
            lambda j, t, v: f"*({t} *)({out_at}) = {v}")], "}"]

    def offset(a: int) -> str:
        return " + ".join(f"j{d} * s{a}_{nk + d}" for d in range(nr))

    def load(a: int, t: str) -> str:
        return f"*(const {t} *)(q{a} + {offset(a)})"

    def fold(a: int, t: str, v: str) -> str:
        kept_value = f"; *({t} *)(q{n_in} + {offset(n_in)}) = {v}" if keep else ""
        return red.fold(v, "acc", "an") + kept_value

    body = _element(graph, dialect, load, fold)
    loop_head = ["const unsigned int lane = threadIdx.x % group, per = blockDim.x / group;"]
    src = [dialect.prelude(sorted(set(graph.ref_dtypes) | {out_dtype, red.acc_dtype}))
           ] if prelude else []
    src += [
        f"/* {kind} of {graph.expression()} */",
        f'extern "C" __global__ void {name}(',
        "    " + ",\n    ".join(params) + ")",
        "{",
        f"    __shared__ {acc_t} warps[32];",
        *["    " + line for line in loop_head],
        f"    const {count} items = n * parts;",
        f"    for ({count} w0 = ({count})blockIdx.x * per; w0 < items;",
        f"         w0 += ({count})gridDim.x * per) {{",
        f"        const {count} w = w0 + threadIdx.x / group;",
        "        const bool active = w < items;  /* else it folds nothing, merges only */",
        *([f"        const {count} o = active ? w / parts : 0;"] if nk else []),
        f"        {count} e0 = w % parts * chunk;",
        "        if (e0 > r || !active) e0 = r;",
        f"        const {count} e1 = r - e0 < chunk ? r : e0 + chunk;",
        *["        " + line for line in kept],
        *[f"        {'char' if a == n_in else 'const char'} *q{a} = p{a}"
          + "".join(f" + k{d} * s{a}_{d}" for d in range(nk)) + ";" for a in range(n_arrays)],
        f"        {acc_t} acc = {red.identity};",
        *(["        int an = 0;"] if red.nan else []),
        f"        for ({count} e = e0 + lane; e < e1; e += group) {{",
        *["            " + line for line in _unravel("e", "j", "m", "u", nr, index32) + body],
        "        }",
        *([f"        if (an) acc = ({acc_t}){red.nan_value};"] if red.nan else []),
        *(["        if (r == 0) acc = 0;  /* the empty sum is +0.0 */"]
          if kind == "sum" and red.acc_dtype in ("float32", "float64") else []),
        *["        " + line for line in _cuda_tree(red)],
        "        if (lane == 0 && active) {",
        "            if (parts > 1) {",
        f"                (({acc_t} *)partial)[w] = acc;",
        "            } else {",
        *["                " + line for line in write],
        "            }",
        "        }",
        "    }",
        "}",
        "",
        f'extern "C" __global__ void {name}_merge(',
        "    " + ",\n    ".join([", ".join(["const char *partial, char *out",
                                            *extra_pointers]), ", ".join(kept_lengths)]
                                + out_strides
                                + [f"const unsigned int group, const {count} parts"]) + ")",
        "{",
        f"    __shared__ {acc_t} warps[32];",
        *["    " + line for line in loop_head],
        f"    for ({count} w0 = ({count})blockIdx.x * per; w0 < n; w0 += ({count})gridDim.x * per) "
        "{",
        f"        const {count} o = w0 + threadIdx.x / group;",
        "        const bool active = o < n;",
        f"        {acc_t} acc = {red.identity};",
        f"        for ({count} j = active ? lane : parts; j < parts; j += group) {{",
        f"            const {acc_t} x = ((const {acc_t} *)partial)[o * parts + j];",
        f"            acc = {red.merge};",
        "        }",
        *["        " + line for line in _cuda_tree(red)],
        "        if (lane == 0 && active) {",
        *["            " + line for line in kept],
        *["            " + line for line in write],
        "        }",
        "    }",
        "}",
        ""]
    return "\n".join(src)


def render_rows(passes: Sequence[tuple[str, ScalarGraph]], result: ScalarGraph | None,
                dtype: str, name: str, dialect: Dialect, *, nk: int, nr: int, index32: bool,
                prelude: bool = True) -> str:
    """One CUDA kernel computing, for each row (the ``nr`` reduced dimensions of an element of
    the ``nk`` kept ones), the ``passes`` in turn, then ``result`` for each element of the
    row: softmax and log-softmax in one launch where three would do (the maximum, the
    denominator, the output); with ``result`` None, the last pass's value is the row's
    output (argmax: the maximum, then the least index holding it).

    Pass ``i`` is ``(kind, graph)``: ``graph`` over ``(x, r_0, ..., r_{i-1})`` (the row's
    element, of ``dtype``, and the results of the earlier passes, each of its graph's output
    dtype), then, where the graph takes more inputs, the element's index in the row and the
    row's length (int64), reduced with ``kind`` over the row; ``result`` is over
    ``(x, r_0, ...)`` and written where ``x`` is read. One group of threads folds each row
    as the reductions' groups do (``_cuda_tree``), and the group's first thread hands every
    member the total (a shuffle; shared memory across warps), so a row is read once per pass
    and written once.

    ``name(const char *p0, char *out, n, n_1..., r, m_1..., s0_0..., s1_0..., group)``: the
    input's and the output's first elements, the number of rows and the kept lengths after
    the first, the row length and the reduced lengths after the first, the input's then the
    output's byte strides (kept dimensions, then reduced ones; with ``result`` None the
    output's kept ones only), the threads of a group (a power of two dividing the block);
    the blocks stride over the rows. ``cuda_rows_launch`` gives the arguments."""
    if not 0 <= nk <= MAX_DIMS or not 1 <= nr <= MAX_DIMS:
        raise ValueError(f"a row kernel is rendered for 0 to {MAX_DIMS} kept and 1 to "
                         f"{MAX_DIMS} reduced dimensions, got nk={nk}, nr={nr}")
    count, _, stride = _CUDA_INDEX[bool(index32)]
    ct = dialect.ctype
    per_row = result is None
    params = [", ".join(["const char *p0", "char *out"]),
              ", ".join([f"const {count} n"] + [f"const {count} n{d}" for d in range(1, nk)]),
              ", ".join([f"const {count} r"] + [f"const {count} m{d}" for d in range(1, nr)]),
              ", ".join(f"const {stride} s0_{d}" for d in range(nk + nr))]
    out_dims = nk if per_row else nk + nr
    if out_dims:
        params.append(", ".join(f"const {stride} s1_{d}" for d in range(out_dims)))
    params.append("const unsigned int group")
    kept = _unravel("o", "k", "n", "t", nk, index32) if nk else []
    base = ["".join(f" + k{d} * s{a}_{d}" for d in range(nk)) for a in (0, 1)]
    at = ["(" + " + ".join(f"j{d} * s{a}_{nk + d}" for d in range(nr)) + ")" for a in (0, 1)]
    walk = _unravel("e", "j", "m", "u", nr, index32)
    loaded = f"*(const {ct(dtype)} *)(q0 + {at[0]})"

    def loader(done: int) -> Callable[[int, str], str]:
        """Input ``a`` of a graph run after ``done`` passes."""
        def load(a: int, t: str) -> str:
            if a == 0:
                return loaded
            if a <= done:
                return f"({t})r{a - 1}"
            return f"({t})" + ("e" if a == done + 1 else "r")
        return load
    body = []
    dtypes = {dtype}
    out_types = [g.out_dtypes[0] for _, g in passes]
    for i, (kind, graph) in enumerate(passes):
        red = _reduction(graph, kind, out_types[i], dialect, None)
        dtypes |= {*graph.ref_dtypes, red.acc_dtype, out_types[i]}
        fold = _element(graph, dialect, loader(i),
                        lambda a, t, v, red=red: red.fold(v, "acc", "an"))
        body += [
            "{",
            f"    __shared__ {red.acc_t} warps[32], totals[32];",
            f"    {red.acc_t} acc = {red.identity};",
            *(["    int an = 0;"] if red.nan else []),
            f"    for ({count} e = active ? lane : r; e < r; e += group) {{",
            *["        " + line for line in walk + fold],
            "    }",
            *([f"    if (an) acc = ({red.acc_t}){red.nan_value};"] if red.nan else []),
            *["    " + line for line in _cuda_tree(red)],
            "    if (group > 32) {  /* the group's total, to every member */",
            "        if (lane == 0) totals[threadIdx.x / group] = acc;",
            "        __syncthreads();",
            "        acc = totals[threadIdx.x / group];",
            "        __syncthreads();  /* before totals is written again */",
            "    } else {",
            "        acc = __shfl_sync(0xffffffffu, acc, 0, group);",
            "    }",
            f"    r{i} = ({red.out_t})acc;",
            "}"]
    if per_row:
        last = len(passes) - 1
        write = [f"if (active && lane == 0) *({ct(out_types[last])} *)q1 = r{last};"]
    else:
        dtypes |= set(result.ref_dtypes)
        store = _element(result, dialect, loader(len(passes)),
                         lambda a, t, v: f"*({t} *)(q1 + {at[1]}) = {v}")
        write = ["if (active) {",
                 f"    for ({count} e = lane; e < r; e += group) {{",
                 *["        " + line for line in walk + store],
                 "    }",
                 "}"]
    described = ", ".join(f"{kind} of {g.expression()}" for kind, g in passes)
    src = [dialect.prelude(sorted(dtypes))] if prelude else []
    src += [
        f"/* rows: {described}" + (f", then {result.expression()}" if result else "") + " */",
        f'extern "C" __global__ void {name}(',
        "    " + ",\n    ".join(params) + ")",
        "{",
        "    const unsigned int lane = threadIdx.x % group, per = blockDim.x / group;",
        f"    for ({count} w0 = ({count})blockIdx.x * per; w0 < n; w0 += ({count})gridDim.x * per) "
        "{",
        f"        const {count} o = w0 + threadIdx.x / group;",
        "        const bool active = o < n;  /* else it folds nothing, merges only */",
        *["        " + line for line in kept],
        "        const char *q0 = p0" + base[0] + ";",
        "        char *q1 = out" + base[1] + ";",
        *[f"        {ct(t)} r{i} = 0;" for i, t in enumerate(out_types)],
        *["        " + line for line in body],
        *["        " + line for line in write],
        "    }",
        "}",
        ""]
    return "\n".join(src)


def cuda_rows_launch(x, out, axis: Sequence[int], block: int = 256, *,
                     pad: tuple[int, int] | None = None, group: int | None = None,
                     grid: int | None = None) -> tuple[tuple[int, int, bool], int, int, tuple]:
    """How to launch ``render_rows``'s kernel on ``x`` and ``out`` over the rows along
    ``axis``: ((nk, nr, index32) of the variant, grid, block, the arguments after the
    pointers). ``out`` has ``x``'s shape (an elementwise result) or the kept dimensions' (a
    value per row). The layout is a reduction's (``cuda_reduce_launch``: dimensions ordered
    by stride and collapsed where the arrays allow), with an ``out`` of ``x``'s shape read as
    a second input; a group of about ``r / CUDA_REDUCE_PER_THREAD`` threads takes a row
    (never split: the passes need the whole row). ``pad``: the (nk, nr) of a kernel
    rendered for more dimensions, which it then takes (``CudaReduceLaunch.padded``), where
    the launch's 32-bit indices allow. ``grid``/``group``: any of them computes the same
    rows."""
    shape = tuple(x.shape)
    axis = sorted({int(d) % len(shape) for d in axis})
    kept = tuple(n for d, n in enumerate(shape) if d not in axis)
    if tuple(out.shape) == shape:
        # (the reduction's output stands in as an array that every dimension may collapse
        # over)
        nowhere = np.lib.stride_tricks.as_strided(np.empty(1, np.int8), kept,
                                                  (0,) * len(kept))
        lay = cuda_reduce_launch([x, out, nowhere], axis, "sum", shape=shape)
    else:
        lay = cuda_reduce_launch([x, out], axis, "sum", shape=shape)
    if pad is not None and lay.index32 and lay.nk <= pad[0] and lay.nr <= pad[1]:
        lay = lay.padded(*pad)
    if group is None:
        group = min(block, _pow2(-(-lay.count // CUDA_REDUCE_PER_THREAD)))
    if group & (group - 1) or not 1 <= group <= block or block % 32:
        raise ValueError(f"a group is a power of two threads up to the block (a multiple of "
                         f"32), got {group} of {block}")
    count, stride = (np.uint32, np.int32) if lay.index32 else (np.int64, np.int64)
    per = block // group
    strides = lay.strides if tuple(out.shape) == shape else (*lay.strides, lay.out_strides)
    scalars = (count(lay.size), *[count(k) for k in lay.kept[1:]], count(lay.count),
               *[count(m) for m in lay.reduced[1:]],
               *[stride(v) for st in strides for v in st], np.uint32(group))
    grid = grid or max(1, min(-(-lay.size // per), 65536))
    return (lay.nk, lay.nr, lay.index32), grid, block, scalars


# A CUDA reduction's launch: threads per block, reduced elements each thread should fold at
# least (a group is sized to give it that many), blocks worth filling a GPU (an H100 runs
# 132 SMs x 8 blocks of 256), and the most parts one output is split into.
CUDA_REDUCE_BLOCK = 256
CUDA_REDUCE_PER_THREAD = 8
CUDA_REDUCE_BLOCKS = 1024
CUDA_REDUCE_MAX_PARTS = 1024


@dataclass(frozen=True)
class CudaReducePass:
    """One launch of a CUDA reduction: the kernel (``name + suffix``), its grid and block
    (threads), and its arguments after the pointers (numpy scalars of its parameters' C
    types). The pointers: the inputs, the output and the scratch array for ``""``; the
    scratch array and the output for ``"_merge"``."""

    suffix: str
    grid: int
    block: int
    scalars: tuple[np.generic, ...]


@dataclass(frozen=True)
class CudaReducePlan:
    """The launches of a reduction, in order, and how many accumulators (of
    ``reduce_acc_dtype``) the scratch array holds (0: one pass, which never reads it; pass
    any pointer)."""

    group: int
    parts: int
    partials: int
    passes: tuple[CudaReducePass, ...]


def _pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


@dataclass(frozen=True)
class CudaReduceLaunch:
    """How to launch a CUDA reduction of ``render_reduce(..., CUDA, nk=, nr=, index32=)`` on
    given arrays: the kept dimensions (``nk`` of them, lengths ``kept``: ``size`` outputs)
    and the reduced ones (``nr``, lengths ``reduced``: ``count`` elements per output), each
    group ordered by decreasing stride and collapsed; ``strides``: each input's byte strides
    (kept, then reduced), ``out_strides``: the output's (kept). ``size`` 0: nothing to launch.
    ``plan`` gives the launches."""

    nk: int
    nr: int
    index32: bool
    size: int
    count: int
    kept: tuple[int, ...]
    reduced: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    out_strides: tuple[int, ...]
    # an epilogue's arrays' byte strides (kept dimensions), in order
    extra_strides: tuple[tuple[int, ...], ...] = ()

    def padded(self, nk: int, nr: int) -> CudaReduceLaunch:
        """The same launch for a kernel rendered for ``nk`` kept and ``nr`` reduced dimensions,
        at least this launch's: length-1 dimensions in front (one kernel of the most
        dimensions serves every launch, for a few divisions more per element)."""
        if nk < self.nk or nr < self.nr:
            raise ValueError(f"a kernel for {nk} kept and {nr} reduced dimensions cannot take "
                             f"{self.nk} and {self.nr}")
        pk, pr = (0,) * (nk - self.nk), (0,) * (nr - self.nr)
        strides = tuple(pk + s[:self.nk] + pr + s[self.nk:] for s in self.strides)
        return CudaReduceLaunch(nk, nr, self.index32, self.size, self.count,
                                (1,) * (nk - self.nk) + self.kept,
                                (1,) * (nr - self.nr) + self.reduced, strides,
                                pk + self.out_strides,
                                tuple(pk + e for e in self.extra_strides))

    def plan(self, block: int = CUDA_REDUCE_BLOCK, *, grid: int | None = None,
             group: int | None = None, parts: int | None = None) -> CudaReducePlan:
        """The launches with ``block`` threads per block (a multiple of 32, at most 1024).
        By default: groups of about ``count / CUDA_REDUCE_PER_THREAD`` threads per output
        (a power of two, at most the block: short rows share a block, a warp, or are one
        thread's each), and where that leaves fewer than ``CUDA_REDUCE_BLOCKS`` blocks of
        whole-block groups with much to fold, each output split into ``parts`` (a second
        pass merges them); ``grid``: at most 65536 blocks (the kernels stride over the
        rest). ``grid``, ``group`` and ``parts`` may be given (tests: any of them computes
        the same outputs)."""
        if block % 32 or not 32 <= block <= 1024:
            raise ValueError(f"a reduction's block is a multiple of 32 threads up to 1024, "
                             f"got {block}")
        r, n = self.count, self.size
        if group is None:
            group = min(block, _pow2(-(-r // CUDA_REDUCE_PER_THREAD)))
        if group & (group - 1) or not 1 <= group <= block:
            raise ValueError(f"a group is a power of two threads up to the block, got {group}")
        per = block // group
        if parts is None:
            parts = 1
            blocks = -(-n // per)
            if group == block and blocks < CUDA_REDUCE_BLOCKS and \
                    r >= 4 * block * CUDA_REDUCE_PER_THREAD:
                parts = min(-(-CUDA_REDUCE_BLOCKS // blocks), CUDA_REDUCE_MAX_PARTS,
                            r // (2 * block * CUDA_REDUCE_PER_THREAD))
        parts = max(1, min(int(parts), max(r, 1)))
        chunk = -(-r // parts)
        if parts > 1:
            parts = -(-r // chunk)  # no empty part
        if self.index32 and n * parts > _INT32_MAX:
            raise ValueError(f"{n} outputs in {parts} parts do not fit 32-bit indices")
        count, stride = (np.uint32, np.int32) if self.index32 else (np.int64, np.int64)
        kept = (count(n), *[count(k) for k in self.kept[1:]])
        out_strides = tuple(stride(s) for st in (self.out_strides, *self.extra_strides)
                            for s in st)
        first = CudaReducePass(
            "", grid or max(1, min(-(-n * parts // per), 65536)), block,
            (*kept, count(r), *[count(m) for m in self.reduced[1:]],
             *[stride(s) for st in self.strides for s in st], *out_strides,
             np.uint32(group), count(parts), count(chunk)))
        if parts == 1:
            return CudaReducePlan(group, 1, 0, (first,))
        merge_group = min(block, _pow2(-(-parts // CUDA_REDUCE_PER_THREAD)))
        merge_per = block // merge_group
        second = CudaReducePass(
            "_merge", grid or max(1, min(-(-n // merge_per), 65536)), block,
            (*kept, *out_strides, np.uint32(merge_group), count(parts)))
        return CudaReducePlan(group, parts, n * parts, (first, second))


def _by_stride(dims: Sequence[int], strides: Sequence[Sequence[int]]) -> list[int]:
    """``dims`` by decreasing |stride| of the first array that moves in each (stable: equal
    strides keep their order), so that the innermost walks closest in memory."""
    def key(d: int) -> int:
        return -next((abs(s[d]) for s in strides if s[d]), 0)
    return sorted(dims, key=key)


def cuda_reduce_launch(arrays: Sequence, axis: Sequence[int], kind: str, *,
                       initial: float | None = None, shape: Sequence[int] | None = None,
                       extras: Sequence = ()) -> CudaReduceLaunch:
    """What launching a CUDA reduction on ``arrays`` (inputs then the output; numpy-like:
    ``shape``, ``strides``, ``ndim``) over the inputs' dimensions ``axis`` takes: the kept and
    reduced dimensions, each ordered by decreasing stride of the inputs (the reduced elements
    a group's threads read side by side are then close in memory) and collapsed (length 1
    dropped, neighbours that every array steps over whole merged), and whether 32-bit
    indices reach everything (the counts and each array's farthest byte offset fit an int;
    a launch then splits an output into at most 2**31 / outputs parts). ``shape``: the
    inputs' broadcast shape (default: computed). Max and min of an empty axis, with no
    ``initial``, are refused (ValueError, as numpy refuses them) before anything launches.
    ``extras``: an epilogue's arrays, of the output's rank, each length the output's or 1
    (broadcast)."""
    inputs, out = list(arrays[:-1]), arrays[-1]
    if shape is None:
        shape = np.broadcast_shapes(*[tuple(a.shape) for a in inputs])
    shape = tuple(int(n) for n in shape)
    axis = sorted({int(d) % len(shape) for d in axis}) if shape else []
    kept_dims = [d for d in range(len(shape)) if d not in axis]
    if tuple(out.shape) != tuple(shape[d] for d in kept_dims):
        raise ValueError(f"the output's shape {tuple(out.shape)} is not the kept dimensions "
                         f"of {shape} reduced over {axis}")
    n = int(np.prod([shape[d] for d in kept_dims]))
    r = int(np.prod([shape[d] for d in axis]))
    if r == 0 and n and kind in ("max", "min") and initial is None:
        raise ValueError(f"{kind} of an empty array (shape {shape}) over axes {axis} has "
                         "no identity")
    full = [broadcast_strides(a, shape) for a in inputs]
    def kept_strides(a, what: str) -> tuple[int, ...]:
        if a.ndim != len(kept_dims):
            raise ValueError(f"{what} has {a.ndim} dimensions, the output {len(kept_dims)}")
        st = [0] * len(shape)
        for k, d in enumerate(kept_dims):
            if a.shape[k] not in (1, shape[d]):
                raise ValueError(f"{what}'s shape {tuple(a.shape)} does not fit the "
                                 f"output's {tuple(out.shape)}")
            st[d] = 0 if shape[d] == 1 or a.shape[k] == 1 else a.strides[k]
        return tuple(st)
    every = full + [kept_strides(out, "the output")] + \
        [kept_strides(e, f"the epilogue's array {k + 1}") for k, e in enumerate(extras)]
    groups = []
    for dims in (kept_dims, axis):
        dims = _by_stride([d for d in dims if shape[d] != 1], full)
        cshape, cstrides = collapse([shape[d] for d in dims],
                                    [[s[d] for d in dims] for s in every])
        groups.append((cshape if dims else (), cstrides if dims else [() for _ in every]))
    (kept, kst), (reduced, rst) = groups
    if not reduced:  # one element per output
        reduced, rst = (1,), [(0,) for _ in every]
    n_in = len(inputs)
    strides = [k + q for k, q in zip(kst[:n_in], rst[:n_in])]
    out_strides, extra_strides = kst[n_in], list(kst[n_in + 1:])
    if n == 0 or r == 0:  # nothing is read: keep the strides from deciding the index width
        strides = [(0,) * len(s) for s in strides]
        if n == 0:
            out_strides = (0,) * len(out_strides)
            extra_strides = [(0,) * len(e) for e in extra_strides]
    extents = [sum(max(m - 1, 0) * abs(s) for m, s in zip(kept + reduced, st))
               for st in strides]
    extents += [sum(max(m - 1, 0) * abs(s) for m, s in zip(kept, st))
                for st in (out_strides, *extra_strides)]
    index32 = n <= _INT32_MAX and r <= _INT32_MAX and all(e <= _INT32_MAX for e in extents)
    if len(kept) > MAX_DIMS or len(reduced) > MAX_DIMS:
        raise ValueError(f"a kernel takes at most {MAX_DIMS} kept and {MAX_DIMS} reduced "
                         f"dimensions once collapsed, got {len(kept)} and {len(reduced)}")
    return CudaReduceLaunch(len(kept), len(reduced), index32, n, r, tuple(kept),
                            tuple(reduced), tuple(tuple(s) for s in strides),
                            tuple(out_strides), tuple(tuple(e) for e in extra_strides))


# -- per-element logic traced from numpy code; a kernel of generator streams ------------------

class _Value:
    """A value of a function being traced (``trace``): a reference of the graph recorded so
    far. Python's operators and ``np.where`` on it record rows of the scalar table, with
    numpy's dtypes (a Python int takes the other operand's integer dtype, a Python float
    makes an integer operand float64), so that the function's numpy code is the formula."""

    __slots__ = ("tracer", "key", "dtype")

    def __init__(self, tracer: _Tracer, key: tuple, dtype: str):
        self.tracer, self.key, self.dtype = tracer, key, dtype

    def _binary(self, op, other, swap: bool = False) -> _Value:
        other = self.tracer.operand(other, self.dtype)
        a, b = (other, self) if swap else (self, other)
        return self.tracer.step(op, a, b)

    def __add__(self, o):
        return self._binary(_S.add, o)

    def __radd__(self, o):
        return self._binary(_S.add, o, True)

    def __sub__(self, o):
        return self._binary(_S.sub, o)

    def __rsub__(self, o):
        return self._binary(_S.sub, o, True)

    def __mul__(self, o):
        return self._binary(_S.mul, o)

    def __rmul__(self, o):
        return self._binary(_S.mul, o, True)

    def __and__(self, o):
        return self._binary(_S.and_, o)

    __rand__ = __and__

    def __or__(self, o):
        return self._binary(_S.or_, o)

    __ror__ = __or__

    def __xor__(self, o):
        return self._binary(_S.xor, o)

    __rxor__ = __xor__

    def _shift_amount(self, k) -> int:
        if not (isinstance(k, (int, np.integer)) and 0 <= k < 63 and self.dtype in
                ("int64", "int32", "uint32", "uint64")):
            raise TypeError(f"a traced shift takes a constant amount (0 to 62) on a 32- or "
                            f"64-bit integer, got {self.dtype} by {k!r}")
        return 1 << int(k)

    # numpy's shifts as the table's rows: x << k is x * 2**k (both wrap alike) and x >> k,
    # an arithmetic shift, is floor(x / 2**k), numpy's floor_divide
    def __lshift__(self, k):
        return self._binary(_S.mul, self._shift_amount(k))

    def __rshift__(self, k):
        return self._binary(_S.int_div, self._shift_amount(k))

    def __lt__(self, o):
        return self._binary(_S.lt, o)

    def __le__(self, o):
        return self._binary(_S.le, o)

    def __gt__(self, o):
        return self._binary(_S.gt, o)

    def __ge__(self, o):
        return self._binary(_S.ge, o)

    def __neg__(self):
        return self.tracer.step(_S.neg, self)

    def astype(self, dtype, copy: bool = True) -> _Value:
        dtype = str(np.dtype(dtype))
        return self if dtype == self.dtype else self.tracer.step(_S.cast_op(dtype), self)

    def __bool__(self):
        raise TypeError("a traced value has no truth value: write the choice with np.where")

    def __array_function__(self, func, types, args, kwargs):
        if func is np.where and len(args) == 3 and not kwargs:
            cond, a, b = args
            tracer = self.tracer
            dtype = next(v.dtype for v in (a, b, cond) if isinstance(v, _Value))
            return tracer.step(_S.switch, tracer.operand(cond, "bool"),
                               tracer.operand(a, dtype), tracer.operand(b, dtype))
        raise TypeError(f"{getattr(func, '__name__', func)} cannot be traced into the scalar "
                        "table's rows")


class _Tracer:
    """The graph a traced function records: its arguments, the constants it uses, the steps."""

    def __init__(self, in_dtypes: Sequence[str]):
        self.args = [_Value(self, ("in", k), d) for k, d in enumerate(in_dtypes)]
        self.constants: dict[tuple, _Value] = {}
        self.steps: list[tuple] = []

    def operand(self, v, dtype: str) -> _Value:
        """``v`` as a traced value: a constant takes ``dtype`` as numpy's weak scalars do."""
        if isinstance(v, _Value):
            return v
        if isinstance(v, (bool, np.bool_)):
            dt = "bool"
        elif isinstance(v, (int, np.integer)):
            dt = dtype if dtype != "bool" else "int64"
        elif isinstance(v, (float, np.floating)):
            dt = dtype if dtype.startswith("float") else "float64"
        else:
            raise TypeError(f"a traced function used {v!r}, which is not a number")
        key = (dt, v.item() if isinstance(v, np.generic) else v)
        if key not in self.constants:
            self.constants[key] = _Value(self, ("const", len(self.constants)), dt)
        return self.constants[key]

    def step(self, op, *operands: _Value) -> _Value:
        dtype = op.output_dtype(*(v.dtype for v in operands))
        self.steps.append((op, tuple(v.key for v in operands)))
        return _Value(self, ("step", len(self.steps) - 1), dtype)



@dataclass(frozen=True)
class TracedGraph:
    """A per-element function as the renderer takes it: ``graph`` over the function's
    ``n_args`` arguments, then its ``constants`` (their values, in that order)."""

    graph: ScalarGraph
    n_args: int
    constants: tuple

    def literal(self, r: int, dialect: Dialect) -> str:
        """Input ``r`` of ``graph``, a constant, as a literal of its C type."""
        value, dtype = self.constants[r - self.n_args], self.graph.in_dtypes[r]
        if dtype == "bool":
            return "true" if value else "false"
        if isinstance(value, float):
            if not np.isfinite(value):
                raise ValueError(f"a traced constant {value} has no literal")
            return f"(({dialect.ctype(dtype)}){value!r})"
        suffix = "ULL" if int(value) > 2 ** 63 - 1 else "LL"
        return f"(({dialect.ctype(dtype)}){int(value)}{suffix})"


def trace(fn: Callable, in_dtypes: Sequence[str]) -> TracedGraph:
    """``fn``, numpy code computing elementwise on arrays of ``in_dtypes`` with operators
    (``+ - * & | ^ << >>``, comparisons), ``np.where`` and ``astype``, as a scalar graph: the
    renderer then writes the very logic the numpy code runs (``ops/random.mrg_step`` is the
    one description of MRG31k3p for the CPU and the device). ``fn`` returns a tuple of
    values, the graph's outputs."""
    tracer = _Tracer(in_dtypes)
    outs = fn(*tracer.args)
    outs = [tracer.operand(v, "int64") for v in outs]
    n_args, consts = len(in_dtypes), list(tracer.constants.items())
    n_in = n_args + len(consts)

    def ref(key: tuple) -> int:
        kind, k = key
        return k if kind == "in" else n_args + k if kind == "const" else n_in + k
    graph = ScalarGraph(tuple(in_dtypes) + tuple(dt for (dt, _), _ in consts),
                        tuple((op, tuple(ref(k) for k in keys)) for op, keys in tracer.steps),
                        tuple(ref(v.key) for v in outs))
    return TracedGraph(graph, n_args, tuple(value for (_, value), _ in consts))


def render_streams(step: TracedGraph, state_dtype: str, name: str, dialect: Dialect, *,
                   prelude: bool = True) -> str:
    """A CUDA kernel drawing ``n`` samples from a generator's streams, one thread per stream
    (a grid-stride loop over them). ``step`` maps a stream's state (its ``k`` arguments) to
    the next state (its first ``k`` outputs) and one sample (the last output): stream ``s``
    draws the samples ``s, s + n_streams, s + 2 n_streams...`` below ``n`` in turn, so that
    sample ``i`` is the ``(i // n_streams)``-th draw of stream ``i % n_streams``, the order of
    ``ops/random.mrg_uniform_sample``. The state is carried in registers in the step's dtype
    and stored as ``state_dtype``.

    ``name(const S *state, S *next, T *out, long long n, long long n_streams)``: the
    (n_streams, k) C-order states, where the states after the draws go (which may be
    ``state`` itself: each thread reads its row before writing it), and the samples (C order)."""
    graph, k = step.graph, step.n_args
    if len(graph.outputs) != k + 1 or graph.out_dtypes[:k] != graph.in_dtypes[:k]:
        raise ValueError(f"a stream step maps {k} state values to {k} and a sample, got "
                         f"{graph.in_dtypes[:k]} -> {graph.out_dtypes}")
    ct = dialect.ctype
    st, carried, sample = ct(state_dtype), graph.in_dtypes[:k], graph.out_dtypes[k]

    def load(r: int, t: str) -> str:
        return f"c{r}" if r < k else step.literal(r, dialect)

    def store(a: int, t: str, v: str) -> str:
        j = a - len(graph.in_dtypes)
        return f"c{j} = {v}" if j < k else f"out[i] = {v}"
    body = _element(graph, dialect, load, store)
    src = [dialect.prelude(sorted({*graph.ref_dtypes, state_dtype}))] if prelude else []
    src += [f'extern "C" __global__ void {name}(',
            f"    const {st} *state, {st} *next, {ct(sample)} *out,",
            "    const long long n, const long long n_streams)",
            "{",
            "    for (long long s = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
            "         s < n_streams; s += (long long)blockDim.x * gridDim.x) {",
            *[f"        {ct(d)} c{j} = ({ct(d)})state[s * {k} + {j}];"
              for j, d in enumerate(carried)],
            "        for (long long i = s; i < n; i += n_streams) {",
            *["            " + line for line in body],
            "        }",
            *[f"        next[s * {k} + {j}] = ({st})c{j};" for j in range(k)],
            "    }",
            "}",
            ""]
    return "\n".join(src)
