"""scan's steps as one loop in generated C, where every node of the body has a C form.

A loop body on the C backend still costs a few microseconds a step in the generated Python
loop (``loop.py``): each node's call, the row views, the writes. When every node of the body is
an elementwise kernel (``c_backend.elementwise_spec``) or a product of vectors and small
matrices (``Dot``, ``DotAdd``), ``CLoop`` renders the whole loop as one C function: per step it
points a view at each row the step reads, calls the kernels' entries and a plain product loop
on preallocated arrays (one per node output), and copies the results into the state buffers
and the stacked outputs. It is compiled in the background with the body's kernels, at the
first call of ``MIN_STEPS`` steps or more it would take; until it is loaded, and for any call
it does not take, the Python loop runs.

Each call is checked in Python first, once, not per step: every intermediate's shape follows
from the shapes of the rows, states and non-sequences, which do not change from step to step,
so the checks of a step (broadcasting, a state keeping its shape, the product's inner
lengths) hold for all of them or for none. A call they refuse (or one whose products are large
enough for BLAS to win: ``MAX_PRODUCT``) goes to the Python loop, which raises the error naming
the step and the node, or computes it with numpy's BLAS.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..backends import c_backend
from ..ops.blas import Dot, DotAdd

# Multiply-adds of one product above which the Python loop (numpy's BLAS) is faster than the
# loop's plain product.
MAX_PRODUCT = 1 << 13
# Loops of fewer steps stay in Python (and compile nothing): the C loop saves microseconds
# a step, its compile takes a few hundred milliseconds once.
MIN_STEPS = 32

_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) = ")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_DOT_C = r"""
#define THEON_DOT(NAME, T)                                                                    \
static void NAME(const theon_array *a, const theon_array *b, theon_array *o,                \
                 const theon_array *c)                                                      \
{                                                                                           \
    const int64_t m = a->nd == 2 ? a->dimensions[0] : 1, k = a->dimensions[a->nd - 1];      \
    const int64_t n = b->nd == 2 ? b->dimensions[1] : 1;                                    \
    const int64_t sa0 = a->nd == 2 ? a->strides[0] : 0, sa1 = a->strides[a->nd - 1];        \
    const int64_t sb0 = b->strides[0], sb1 = b->nd == 2 ? b->strides[1] : 0;                \
    /* the output (and addend) index: (row, column) as the operands' ranks make it */       \
    const int64_t so0 = a->nd == 2 ? o->strides[0] : 0;                                     \
    const int64_t so1 = b->nd == 2 ? o->strides[o->nd - 1] : 0;                             \
    const int64_t sc0 = c && a->nd == 2 ? c->strides[0] : 0;                                \
    const int64_t sc1 = c && b->nd == 2 ? c->strides[c->nd - 1] : 0;                        \
    if (n > 1 && sb1 == (int64_t)sizeof(T) && so1 == (int64_t)sizeof(T) &&                 \
            (!c || sc1 == (int64_t)sizeof(T))) {                                            \
        /* rows of b and of the output contiguous: a row of the output is a sum of rows of */ \
        /* b, each added over a contiguous (vectorisable) row */                           \
        for (int64_t i = 0; i < m; i++) {                                                   \
            T *restrict out = (T *)(o->data + i * so0);                                     \
            for (int64_t j = 0; j < n; j++) out[j] = 0;                                     \
            for (int64_t p = 0; p < k; p++) {                                               \
                const T av = *(const T *)(a->data + i * sa0 + p * sa1);                     \
                const T *restrict brow = (const T *)(b->data + p * sb0);                    \
                for (int64_t j = 0; j < n; j++) out[j] += av * brow[j];                     \
            }                                                                               \
            if (c) { const T *crow = (const T *)(c->data + i * sc0);                        \
                     for (int64_t j = 0; j < n; j++) out[j] += crow[j]; }                   \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    for (int64_t i = 0; i < m; i++)                                                         \
        for (int64_t j = 0; j < n; j++) {                                                   \
            T acc = 0;                                                                      \
            for (int64_t p = 0; p < k; p++)                                                 \
                acc += *(const T *)(a->data + i * sa0 + p * sa1)                            \
                     * *(const T *)(b->data + p * sb0 + j * sb1);                           \
            if (c) acc += *(const T *)(c->data + i * sc0 + j * sc1);                        \
            *(T *)(o->data + i * so0 + j * so1) = acc;                                      \
        }                                                                                   \
}
THEON_DOT(theon_dot_float32, float)
THEON_DOT(theon_dot_float64, double)

/* a view of row `row` of `src`: its data moves, its shape and strides are the source's rest */
static void theon_row(theon_array *view, const theon_array *src, int64_t row)
{
    view->type = src->type;
    view->nd = src->nd - 1;
    view->dimensions = src->dimensions + 1;
    view->strides = src->strides + 1;
    view->data = src->data + row * src->strides[0];
}
"""


class _Step:
    """One node of the body: ``kind`` "kernel" (with its spec), "dot" or "dotadd"; the names of
    its operands and of its output."""

    def __init__(self, kind: str, node, ins: list[str], out: str, spec=None):
        self.kind, self.node, self.ins, self.out, self.spec = kind, node, ins, out, spec


class CLoop:
    """The steps of one Scan node as a C loop (see the module docstring); ``entry`` is its
    builtin once compiled. ``of`` gives None for a loop it cannot take."""

    def __init__(self, op, params: list[str], steps: list[_Step], results: list[str],
                 consts: list[tuple[str, np.ndarray]]):
        self.op, self.params, self.steps, self.results = op, params, steps, results
        self.consts = consts  # (name, value) of the constants the body's nodes read
        self.entry = None
        self.runs = 0  # the calls it took (for tests)
        spec = op.spec
        self.fed = [j for j, taps in enumerate(spec.outputs) if taps is not None]
        self.maps = [j for j, taps in enumerate(spec.outputs) if taps is None]
        self.out_types = [s.node.outputs[0].type for s in steps]
        self.requested = False

    def _request(self) -> None:
        """Start compiling (once): at the first call it would take, so that the many short
        loops that never pay off (a test's, a jacobian's) cost no compiler run."""
        self.requested = True
        specs = [s.spec for s in self.steps if s.kind == "kernel"]
        c_backend.compile_with_kernels(specs, self._source("@P@"), self._ready)

    def _ready(self, builtin) -> None:
        self.entry = builtin

    @classmethod
    def of(cls, op, fn) -> CLoop | None:
        """The C loop of ``op`` whose compiled body is ``fn``, or None where a node has no C
        form (or the loop has shared states or a condition)."""
        body = getattr(fn, "body", None)
        spec = op.spec
        if body is None or not getattr(body, "c_kernels", False) or spec.n_shared or \
                spec.as_while or not all(_IDENT.match(r) for r in body.results):
            return None
        steps, seen, consts = [], set(), {}
        known = set(body.params)  # the names with a value so far
        for text, owner in body.lines:
            if owner is None:
                continue  # a `del`
            node, ins = owner
            m = _NAME.match(text)
            if node in seen or m is None or len(node.outputs) != 1:
                return None
            for i in ins:  # a constant is a name bound in the body's namespace
                if i not in known:
                    value = body.namespace.get(i)
                    if value.__class__ is not np.ndarray:
                        return None
                    consts[i] = value
                    known.add(i)
            seen.add(node)
            out = m.group(1)
            known.add(out)
            if isinstance(node.op, DotAdd) or type(node.op) is Dot:
                dtypes = {v.dtype for v in node.inputs + node.outputs}
                if len(dtypes) != 1 or dtypes.pop() not in ("float32", "float64") or \
                        any(v.ndim not in (1, 2) for v in node.inputs[:2]):
                    return None
                steps.append(_Step("dotadd" if isinstance(node.op, DotAdd) else "dot", node,
                                   list(ins), out))
                continue
            kspec = c_backend.elementwise_spec(node)
            if kspec is None or any(v.ndim != node.outputs[0].ndim for v in node.inputs):
                return None
            steps.append(_Step("kernel", node, list(ins), out, kspec))
        if not steps or not all(r in known for r in body.results):
            return None
        return cls(op, list(body.params), steps, list(body.results), list(consts.items()))

    # -- the C source ------------------------------------------------------------------------
    def _source(self, name: str) -> str:
        spec = self.op.spec
        n_seqs, n_fed, n_maps = spec.n_seqs, len(self.fed), len(self.maps)
        n_taps = sum(len(spec.outputs[j]) for j in self.fed)
        n_nonseq = len(self.params) - n_seqs - n_taps
        # the arguments: the parameter vector, sequences, state buffers, map outputs,
        # non-sequences, constants, then one array per node output
        a_seq, a_buf = 1, 1 + n_seqs
        a_map = a_buf + n_fed
        a_nonseq = a_map + n_maps
        a_const = a_nonseq + n_nonseq
        base = a_const + len(self.consts)
        lines = [_DOT_C]
        n_args = base + len(self.steps)
        lines += [f"void *{name}_py(void *self, void *const *args, intptr_t nargs)", "{",
                  f"    if (nargs != {n_args}) return theon_code(1);",
                  "    theon_array **A = (theon_array **)args;",
                  "    const int64_t *P = (const int64_t *)A[0]->data;",
                  "    const int64_t n = P[0];",
                  f"    theon_array R[{max(1, len(self.params))}];"]
        value: dict[str, str] = {}  # a name's current value, as a C expression
        rows = []  # (view index, source arg, row expression)
        p = 0
        for k in range(n_seqs):
            rows.append((p, a_seq + k, "t"))
            value[self.params[p]] = f"&R[{p}]"
            p += 1
        for k, j in enumerate(self.fed):
            for tap in spec.outputs[j]:
                rows.append((p, a_buf + k, f"t + P[{1 + k}] + ({tap})"))
                value[self.params[p]] = f"&R[{p}]"
                p += 1
        for k in range(n_nonseq):
            value[self.params[p + k]] = f"A[{a_nonseq + k}]"
        for k, (const, _) in enumerate(self.consts):
            value[const] = f"A[{a_const + k}]"
        lines.append("    for (int64_t t = 0; t < n; t++) {")
        for view, src, row in rows:
            lines.append(f"        theon_row(&R[{view}], A[{src}], {row});")
        kernel = 0
        for i, step in enumerate(self.steps):
            ins = [value[x] for x in step.ins]
            out = f"A[{base + i}]"
            if step.kind == "kernel":
                call = f"{name}_k{kernel}({', '.join(ins + [out])})"
                lines.append(f"        {{ const int rc = {call}; if (rc) return theon_code(rc); }}")
                kernel += 1
            else:
                dtype = step.node.outputs[0].dtype
                if step.kind == "dot":
                    a, b, c = ins[0], ins[1], "0"
                else:  # DotAdd(a, b, c): dot(a, b) + c
                    a, b, c = ins
                lines.append(f"        theon_dot_{dtype}({a}, {b}, {out}, {c});")
            value[step.out] = out
        # the results: states into their buffers' rows, maps into their rows (contiguous,
        # with the byte counts the call computed)
        for k, j in enumerate(self.fed):
            src = value[self.results[j]]
            lines.append(f"        memcpy(A[{a_buf + k}]->data + (t + P[{1 + k}]) * "
                         f"A[{a_buf + k}]->strides[0], ({src})->data, "
                         f"(size_t)P[{1 + n_fed + j}]);")
        for k, j in enumerate(self.maps):
            src = value[self.results[j]]
            lines.append(f"        memcpy(A[{a_map + k}]->data + t * A[{a_map + k}]->strides[0], "
                         f"({src})->data, (size_t)P[{1 + n_fed + j}]);")
        lines += ["    }", "    return theon_code(0);", "}", ""]
        return "#include <string.h>\n" + "\n".join(lines)

    # -- a call ------------------------------------------------------------------------------
    def __call__(self, n: int, seqs: Sequence[np.ndarray], bufs: Sequence[np.ndarray],
                 offsets: Sequence[int], nonseqs: Sequence) -> list | None:
        """Run the ``n`` steps; the stacked map outputs, or None for a call the C loop does
        not take (the caller runs the Python loop)."""
        if n < MIN_STEPS or (self.entry is None and self.requested):
            return None
        spec = self.op.spec
        shapes: dict[str, tuple] = {}
        contiguous: dict[str, bool] = {}
        p = 0
        for s in seqs:
            if s.__class__ is not np.ndarray:
                return None
            shapes[self.params[p]], contiguous[self.params[p]] = s.shape[1:], \
                s.flags.c_contiguous
            p += 1
        for k, j in enumerate(self.fed):
            for _ in spec.outputs[j]:
                shapes[self.params[p]], contiguous[self.params[p]] = bufs[k].shape[1:], True
                p += 1
        nonseqs = list(nonseqs)
        for k, v in enumerate(nonseqs):
            if v.__class__ is not np.ndarray:
                return None
            shapes[self.params[p + k]], contiguous[self.params[p + k]] = v.shape, \
                v.flags.c_contiguous
        for const, v in self.consts:
            shapes[const], contiguous[const] = v.shape, v.flags.c_contiguous
        scratch = []
        for step, otype in zip(self.steps, self.out_types):
            ins = [shapes[x] for x in step.ins]
            shape = _dot_shape(step, ins) if step.kind != "kernel" else \
                _broadcast(step.node, ins)
            if shape is None:
                return None
            shapes[step.out], contiguous[step.out] = shape, True
            scratch.append(np.empty(shape, dtype=otype.dtype))
        sizes, maps = [], []
        for j, r in enumerate(self.results):
            if not contiguous[r]:
                return None
            dtype = np.dtype(self.op.inner_outputs[j].type.dtype)
            sizes.append(int(np.prod(shapes[r], dtype=np.int64)) * dtype.itemsize)
        for k, j in enumerate(self.fed):
            if shapes[self.results[j]] != bufs[k].shape[1:]:
                return None  # a state that changes shape: the Python loop says so
        for j in self.maps:
            stacked = np.empty((n,) + shapes[self.results[j]],
                               dtype=self.op.inner_outputs[j].type.dtype)
            # a reverse loop writes step t at row n-1-t (its caller reverses the view back)
            maps.append(stacked[::-1] if self.op.reverse else stacked)
        if self.entry is None:
            self._request()  # (with config.wait_for_kernels, loaded when this returns)
            if self.entry is None:
                return None
        params = np.array([n, *offsets, *sizes], dtype=np.int64)
        if self.entry(params, *seqs, *bufs, *maps, *nonseqs, *[v for _, v in self.consts],
                 *scratch) != 0:
            return None
        self.runs += 1
        return maps


def _broadcast(node, shapes: list[tuple]) -> tuple | None:
    """The output shape of an elementwise node on operands of these shapes, or None where
    they break its broadcast pattern (as the kernel's entry checks it)."""
    out = []
    for d in range(node.outputs[0].ndim):
        length = None
        for x, shape in zip(node.inputs, shapes):
            if len(shape) != node.outputs[0].ndim:
                return None
            if x.type.broadcastable[d]:
                if shape[d] != 1:
                    return None
            elif length is None:
                length = shape[d]
            elif shape[d] != length:
                return None
        out.append(1 if length is None else length)
    return tuple(out)


def _dot_shape(step: _Step, shapes: list[tuple]) -> tuple | None:
    """The product's shape (and, for DotAdd, the addend's, which must be it), or None for
    lengths that do not fit or a product large enough for BLAS."""
    a, b = shapes[0], shapes[1]
    k = a[-1]
    if b[0] != k:
        return None
    out = a[:-1] + b[1:]
    if int(np.prod(out, dtype=np.int64)) * k > MAX_PRODUCT:
        return None
    if step.kind == "dotadd" and shapes[2] != out:
        return None
    return out
