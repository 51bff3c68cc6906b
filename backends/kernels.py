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
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
    ct = dialect.ctype
    contiguous = _element(graph, dialect, lambda a, t: f"(({'const ' + t} *)p{a})[j]",
                          lambda a, t, v: f"(({t} *)p{a})[j] = {v}", skip=hoisted)
    strided = _element(graph, dialect, lambda a, t: f"*(const {t} *)(p{a} + j * s{a})",
                       lambda a, t, v: f"*({t} *)(p{a} + j * s{a}) = {v}")
    fast = " && ".join(f"s{a} == 0" if a in hoisted else f"s{a} == (int64_t)sizeof({ct(d)})"
                       for a, d in enumerate(_array_dtypes(graph)))
    hoist = [f"const {ct(graph.in_dtypes[a])} v{a} = *(const {ct(graph.in_dtypes[a])} *)p{a};"
             for a in sorted(hoisted)]
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
    # the element's index in each dimension, from the last (the fastest)
    unravel = []
    if ndim > 1:
        unravel.append(f"{count} r = i;")
        for d in range(ndim - 1, 0, -1):
            unravel.append(f"const {index} i{d} = ({index})(r % n{d});")
            unravel.append(f"r /= n{d};")
        unravel.append(f"const {index} i0 = ({index})r;")
    else:
        unravel.append(f"const {index} i0 = " + ("(int)i;" if index32 else "i;"))

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
