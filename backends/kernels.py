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
from dataclasses import dataclass, field

import numpy as np

from ..ops.scalar import ScalarOp
from .dialect import C, Dialect
from .dialect import render as render_row

# The most dimensions a kernel's arrays have after collapsing (numpy allows 64; graphs
# rarely exceed 8, and collapsing usually leaves one or two).
MAX_DIMS = 16


@dataclass(frozen=True)
class ScalarGraph:
    """What one element of a fused kernel's outputs is.

    ``in_dtypes``: the dtypes of the inputs. ``steps``: rows applied in order, each to
    operands given as references: ``r < len(in_dtypes)`` is input ``r``, else step
    ``r - len(in_dtypes)``. ``outputs``: the references the kernel stores."""

    in_dtypes: tuple[str, ...]
    steps: tuple[tuple[ScalarOp, tuple[int, ...]], ...]
    outputs: tuple[int, ...]
    # every reference's dtype, fixed when the graph is made: a row's output dtype can depend
    # on config.floatX (int32 / int32), and a kernel must not change with a later setting
    ref_dtypes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.in_dtypes)
        for k, (op, refs) in enumerate(self.steps):
            if len(refs) != op.nin:
                raise ValueError(f"step {k}: {op.name} takes {op.nin} operands, got "
                                 f"{len(refs)}")
            if any(not 0 <= r < n + k for r in refs):
                raise ValueError(f"step {k} ({op.name}) reads {refs}: only the inputs and "
                                 "earlier steps can be read")
        if not self.outputs or any(not 0 <= r < n + len(self.steps) for r in self.outputs):
            raise ValueError(f"outputs {self.outputs} refer to nothing computed")
        dtypes = list(self.in_dtypes)
        for op, refs in self.steps:
            dtypes.append(op.output_dtype(*[dtypes[r] for r in refs]))
        object.__setattr__(self, "ref_dtypes", tuple(dtypes))

    @classmethod
    def of_row(cls, op: ScalarOp, in_dtypes: Sequence[str]) -> ScalarGraph:
        """The graph of one row (an unfused Elemwise node)."""
        n = len(in_dtypes)
        return cls(tuple(in_dtypes), ((op, tuple(range(n))),), (n,))

    @property
    def out_dtypes(self) -> tuple[str, ...]:
        return tuple(self.ref_dtypes[r] for r in self.outputs)


def render(graph: ScalarGraph, name: str, dialect: Dialect = C) -> str:
    """C source defining ``void name(int64_t ndim, const int64_t *shape, char **data,
    const int64_t *strides)``: ``data`` holds the inputs' then the outputs' first elements,
    ``strides[a * ndim + d]`` is array ``a``'s byte stride in dimension ``d`` (``ndim`` >= 1,
    at most MAX_DIMS; a dimension of length 0 makes the call do nothing)."""
    if dialect is not C:
        raise NotImplementedError(f"the {dialect.name} loop is not written yet: only the "
                                  "C dialect renders kernels so far")
    dtypes = graph.ref_dtypes
    n_in, n_out = len(graph.in_dtypes), len(graph.outputs)
    n_arrays = n_in + n_out
    ct = dialect.ctype

    def body(load: str, store: str) -> list[str]:
        lines = [f"const {ct(d)} v{r} = {load.format(a=r, t=ct(d))};"
                 for r, d in enumerate(graph.in_dtypes)]
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

    contiguous = body("((const {t} *)p{a})[i]", "(({t} *)p{a})[i] = {v}")
    strided = body("*(const {t} *)(p{a} + i * s{a})", "*({t} *)(p{a} + i * s{a}) = {v}")
    array_dtypes = list(graph.in_dtypes) + [dtypes[r] for r in graph.outputs]
    sizes = " && ".join(f"s{a} == (int64_t)sizeof({ct(d)})" for a, d in enumerate(array_dtypes))
    pointer = ", ".join(f"*p{a}" for a in range(n_arrays))
    inner_strides = "; ".join(f"const int64_t s{a} = strides[{a} * ndim + last]"
                              for a in range(n_arrays))
    offsets = "\n".join(
        f"            p{a} = data[{a}];" for a in range(n_arrays))
    advance = "\n".join(
        f"                p{a} += idx[d] * strides[{a} * ndim + d];" for a in range(n_arrays))
    indent = "                "
    src = [dialect.prelude(sorted(set(dtypes))),
           f"void {name}(int64_t ndim, const int64_t *shape, char **data, "
           "const int64_t *strides)",
           "{",
           f"    int64_t idx[{MAX_DIMS}] = {{0}};",
           "    int64_t outer = 1;",
           "    const int64_t last = ndim - 1;",
           "    for (int64_t d = 0; d < ndim; d++) {",
           "        if (shape[d] == 0) return;",
           "        if (d < last) outer *= shape[d];",
           "    }",
           "    const int64_t n = shape[last];",
           f"    {inner_strides};",
           f"    const int contiguous = {sizes};",
           "    for (int64_t o = 0; o < outer; o++) {",
           f"        char {pointer};",
           "        {",
           offsets,
           "            for (int64_t d = 0; d < last; d++) {",
           advance,
           "            }",
           "        }",
           "        if (contiguous) {",
           "            for (int64_t i = 0; i < n; i++) {",
           *[indent + line for line in contiguous],
           "            }",
           "        } else {",
           "            for (int64_t i = 0; i < n; i++) {",
           *[indent + line for line in strided],
           "            }",
           "        }",
           "        for (int64_t d = last - 1; d >= 0; d--) {  /* the next outer index */",
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
    c_shape = (ctypes.c_int64 * ndim)(*cshape)
    c_strides = (ctypes.c_int64 * (ndim * len(every)))(*[s for st in cstrides for s in st])
    c_data = (ctypes.c_void_p * len(every))(*[a.ctypes.data for a in every])
    fn(ndim, c_shape, c_data, c_strides)
    return outs


def c_signature() -> tuple:
    """(restype, argtypes) of a rendered kernel, for ctypes."""
    return None, (ctypes.c_int64, ctypes.POINTER(ctypes.c_int64),
                  ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64))
