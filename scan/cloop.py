"""scan's steps as one loop in generated C, where every node of the body has a C form.

A loop body on the C backend still costs a few microseconds a step in the generated Python
loop (``loop.py``): each node's call, the row views, the writes. When every node of the body is
an elementwise kernel (``c_backend.elementwise_spec``), a product of vectors and matrices
(``Dot``, ``DotAdd``) or a view (a constant row index, ``DimShuffle``, ``Rebroadcast``),
``CLoop`` renders the whole loop as one C function: per step it points a view at each row the
step reads, calls the kernels' entries and, for each product, a plain product loop when it is
small or numpy's own BLAS ``gemm`` (``ops/cblas.py``, called through its address) when it is
not, on preallocated arrays (one per node output; a node whose value is a state's or a
stacked output's writes straight into that output's row), and copies the other results into
the state buffers, the stacked outputs and the states carried without stacking (T.grad's
reverse loops carry their gradients so). It is compiled in the background with the body's
kernels, at the first call of ``MIN_STEPS`` steps or more it would take; until it is loaded,
and for any call it does not take, the Python loop runs.

Each call is checked in Python first, once, not per step: every intermediate's shape follows
from the shapes of the rows, states and non-sequences, which do not change from step to step,
so the checks of a step (broadcasting, a state keeping its shape, the product's inner
lengths) hold for all of them or for none. A call they refuse (or one with a product too large
for the plain loop, ``MAX_PRODUCT``, where no BLAS was found) goes to the Python loop, which
raises the error naming the step and the node, or computes it.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..backends import c_backend
from ..ops import cblas
from ..ops.blas import Dot, DotAdd
from ..ops.dimshuffle import DimShuffle, Rebroadcast
from ..ops.subtensor import Subtensor
from .loop import reused

# Multiply-adds of one product above which BLAS's gemm is faster than the loop's plain product
# (the plain loop needs no packing of the operands, which is most of a small product's time).
MAX_PRODUCT = 1 << 13
# Loops of fewer steps stay in Python (and compile nothing): the C loop saves microseconds
# a step, its compile takes a few hundred milliseconds once.
MIN_STEPS = 32

_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) = ")
_NO_ARRAY = np.empty(0)  # the argument of a view step (its array is made in C)
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

/* (trans, ld) reading a rows x cols matrix of byte strides s0, s1 as a row-major BLAS operand;
   0 where BLAS cannot read it as it is (a length-1 dimension may have any stride) */
static int theon_blas_operand(int64_t rows, int64_t cols, int64_t s0, int64_t s1, int64_t item,
                              int *trans, int64_t *ld)
{
    if ((cols == 1 || s1 == item) && (rows == 1 || (s0 % item == 0 && s0 / item >= cols))) {
        *trans = 111;
        *ld = rows > 1 ? s0 / item : (cols > 1 ? cols : 1);
        return 1;
    }
    if ((rows == 1 || s0 == item) && (cols == 1 || (s1 % item == 0 && s1 / item >= rows))) {
        *trans = 112;
        *ld = cols > 1 ? s1 / item : (rows > 1 ? rows : 1);
        return 1;
    }
    return 0;
}

/* o = dot(a, b) (+ c) by numpy's cblas gemm at `gemm` (o contiguous, its own memory); the
   plain loop where there is none, the product is small or an operand's layout is not BLAS's */
#define THEON_GEMM(NAME, DOT, T)                                                              \
typedef void (*NAME##_f)(int, int, int, THEON_BLAS_INT, THEON_BLAS_INT, THEON_BLAS_INT, T,    \
                         const T *, THEON_BLAS_INT, const T *, THEON_BLAS_INT, T, T *,        \
                         THEON_BLAS_INT);                                                     \
static void NAME(int64_t gemm, const theon_array *a, const theon_array *b, theon_array *o,   \
                 const theon_array *c)                                                      \
{                                                                                           \
    const int64_t m = a->nd == 2 ? a->dimensions[0] : 1, k = a->dimensions[a->nd - 1];      \
    const int64_t n = b->nd == 2 ? b->dimensions[1] : 1;                                    \
    int ta, tb;                                                                             \
    int64_t lda, ldb;                                                                       \
    if (!gemm || m * n * k <= THEON_MAX_PRODUCT || k == 0 ||                                \
            !theon_blas_operand(m, k, a->nd == 2 ? a->strides[0] : 0, a->strides[a->nd - 1], \
                                sizeof(T), &ta, &lda) ||                                    \
            !theon_blas_operand(k, n, b->strides[0], b->nd == 2 ? b->strides[1] : 0,         \
                                sizeof(T), &tb, &ldb)) {                                    \
        DOT(a, b, o, c);                                                                    \
        return;                                                                             \
    }                                                                                       \
    if (c) { /* the addend first, then the product added to it (beta 1) */                 \
        const int64_t sc0 = a->nd == 2 ? c->strides[0] : 0;                                 \
        const int64_t sc1 = b->nd == 2 ? c->strides[c->nd - 1] : 0;                         \
        T *out = (T *)o->data;                                                              \
        for (int64_t i = 0; i < m; i++)                                                     \
            for (int64_t j = 0; j < n; j++)                                                 \
                out[i * n + j] = *(const T *)(c->data + i * sc0 + j * sc1);                 \
    }                                                                                       \
    ((NAME##_f)(intptr_t)gemm)(101, ta, tb, m, n, k, 1, (const T *)a->data, lda,            \
                               (const T *)b->data, ldb, c ? 1 : 0, (T *)o->data, n);        \
}
THEON_GEMM(theon_gemm_float32, theon_dot_float32, float)
THEON_GEMM(theon_gemm_float64, theon_dot_float64, double)

/* `view` as src.dimshuffle(order): order[d] an axis of src, or -1 for a new length-1 axis */
static void theon_dimshuffle(theon_array *view, int64_t *dims, int64_t *strides,
                             const theon_array *src, const int *order, int nd)
{
    view->type = src->type;
    view->nd = nd;
    view->dimensions = dims;
    view->strides = strides;
    view->data = src->data;
    for (int d = 0; d < nd; d++) {
        dims[d] = order[d] < 0 ? 1 : src->dimensions[order[d]];
        strides[d] = order[d] < 0 ? 0 : src->strides[order[d]];
    }
}

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
    """One node of the body: ``kind`` "kernel" (with its spec), "dot", "dotadd" or "view"; the
    names of its operands and of its output."""

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
        self.gemm: list | None = None  # the addresses of BLAS's sgemm and dgemm, or None

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
        form (or the loop has a condition)."""
        body = getattr(fn, "body", None)
        spec = op.spec
        if body is None or not getattr(body, "c_kernels", False) or spec.as_while or \
                not all(_IDENT.match(r) for r in body.results):
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
            if _is_view(node):
                steps.append(_Step("view", node, list(ins), out))
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
        gemm = {dtype: cblas.gemm_address(dtype) for dtype in ("float32", "float64")}
        wide = all(g is None or g[1] == 8 for g in gemm.values())
        lines = [f"#define THEON_BLAS_INT {'int64_t' if wide else 'int'}",
                 f"#define THEON_MAX_PRODUCT {int(MAX_PRODUCT)}", _DOT_C]
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
        n_shared = spec.n_shared
        gemm_at = 1 + n_fed + len(self.results)  # P's gemm addresses: float32, float64
        for i, step in enumerate(self.steps):
            if step.kind == "view" and isinstance(step.node.op, DimShuffle):
                nd = max(1, step.node.outputs[0].ndim)
                lines.append(f"    theon_array V{i}; int64_t VD{i}[{nd}], VS{i}[{nd}];")
            elif step.kind == "view":
                lines.append(f"    theon_array V{i};")
        # a step whose output is a state's or a map's result writes it straight into that
        # output's row (a view of the row, made each step): no copy of it after the step; the
        # rows a step reads are other rows (a state's taps are below its row). The first such
        # output only, where one value is the result of several.
        into: dict[int, tuple[int, str]] = {}  # step -> (its output's source arg, row)
        direct: set[int] = set()  # the results written so (indices into self.results)
        made = {step.out: i for i, step in enumerate(self.steps) if step.kind != "view"}
        dests = [(j, a_buf + k, f"t + P[{1 + k}]") for k, j in enumerate(self.fed)] + \
            [(j, a_map + k, "t") for k, j in enumerate(self.maps)]
        for j, src, row in dests:
            i = made.get(self.results[j])
            if i is not None and i not in into:
                into[i] = (src, row)
                direct.add(j)
        if into:
            lines.append(f"    theon_array O[{len(self.steps)}];")
        lines.append("    for (int64_t t = 0; t < n; t++) {")
        for view, src, row in rows:
            lines.append(f"        theon_row(&R[{view}], A[{src}], {row});")
        kernel = 0
        for i, step in enumerate(self.steps):
            ins = [value[x] for x in step.ins]
            out = f"A[{base + i}]"
            if i in into:
                src, row = into[i]
                lines.append(f"        theon_row(&O[{i}], A[{src}], {row});")
                out = f"&O[{i}]"
            if step.kind == "kernel":
                call = f"{name}_k{kernel}({', '.join(ins + [out])})"
                lines.append(f"        {{ const int rc = {call}; if (rc) return theon_code(rc); }}")
                kernel += 1
            elif step.kind == "view":
                out = _view_source(step.node.op, ins[0], i, lines)
            else:
                dtype = step.node.outputs[0].dtype
                if step.kind == "dot":
                    a, b, c = ins[0], ins[1], "0"
                else:  # DotAdd(a, b, c): dot(a, b) + c
                    a, b, c = ins
                at = gemm_at + (dtype == "float64")
                lines.append(f"        theon_gemm_{dtype}(P[{at}], {a}, {b}, {out}, {c});")
            value[step.out] = out
        # the results: states into their buffers' rows, maps into their rows (contiguous,
        # with the byte counts the call computed)
        for k, j in enumerate(self.fed):
            if j in direct:
                continue
            src = value[self.results[j]]
            lines.append(f"        memcpy(A[{a_buf + k}]->data + (t + P[{1 + k}]) * "
                         f"A[{a_buf + k}]->strides[0], ({src})->data, "
                         f"(size_t)P[{1 + n_fed + j}]);")
        for k, j in enumerate(self.maps):
            if j in direct:
                continue
            src = value[self.results[j]]
            lines.append(f"        memcpy(A[{a_map + k}]->data + t * A[{a_map + k}]->strides[0], "
                         f"({src})->data, (size_t)P[{1 + n_fed + j}]);")
        # a state carried without stacking: the step's value becomes the next step's (memmove:
        # the value may be the state itself, passed through)
        n_user = len(spec.outputs)
        for k in range(n_shared):
            src = value[self.results[n_user + k]]
            lines.append(f"        memmove(A[{a_nonseq + k}]->data, ({src})->data, "
                         f"(size_t)P[{1 + n_fed + n_user + k}]);")
        lines += ["    }", "    return theon_code(0);", "}", ""]
        return "#include <string.h>\n" + "\n".join(lines)

    # -- a call ------------------------------------------------------------------------------
    def __call__(self, n: int, seqs: Sequence[np.ndarray], bufs: Sequence[np.ndarray],
                 offsets: Sequence[int], nonseqs: Sequence, kept: list) -> list | None:
        """Run the ``n`` steps; the stacked map outputs, or None for a call the C loop does
        not take (the caller runs the Python loop). ``kept``: each map output's array of the
        previous call by output index, shared with the Python loop (see loop.reused)."""
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
        # the states carried without stacking, in arrays of the loop's own (the callers' stay)
        for k in range(spec.n_shared):
            if nonseqs[k].__class__ is not np.ndarray:
                return None
            nonseqs[k] = np.array(nonseqs[k], order="C", copy=True)
        for k, v in enumerate(nonseqs):
            if v.__class__ is not np.ndarray:
                return None
            shapes[self.params[p + k]], contiguous[self.params[p + k]] = v.shape, \
                v.flags.c_contiguous
        for const, v in self.consts:
            shapes[const], contiguous[const] = v.shape, v.flags.c_contiguous
        scratch = []
        gemm = self.gemm
        if gemm is None:  # found at the first call (a loop that never runs in C never asks)
            gemm = self.gemm = [cblas.gemm_address(d) for d in ("float32", "float64")]
        for step, otype in zip(self.steps, self.out_types):
            ins = [shapes[x] for x in step.ins]
            if step.kind == "view":
                seen = _view_shape(step.node.op, ins[0], contiguous[step.ins[0]])
                if seen is None:
                    return None
                shapes[step.out], contiguous[step.out] = seen
                scratch.append(_NO_ARRAY)  # (its argument slot, unused: the view is C's)
                continue
            if step.kind == "kernel":
                shape = _broadcast(step.node, ins)
            else:
                shape = _dot_shape(step, ins, gemm[otype.dtype == "float64"] is not None)
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
        n_user = len(spec.outputs)
        for k in range(spec.n_shared):
            if shapes[self.results[n_user + k]] != nonseqs[k].shape:
                return None
        for j in self.maps:
            # the previous call's array when nobody holds it any more (see loop.reused)
            stacked = reused(kept, j, (n,) + shapes[self.results[j]],
                             np.dtype(self.op.inner_outputs[j].type.dtype))
            # a reverse loop writes step t at row n-1-t (its caller reverses the view back)
            maps.append(stacked[::-1] if self.op.reverse else stacked)
        if self.entry is None:
            self._request()  # (with config.wait_for_kernels, loaded when this returns)
            if self.entry is None:
                return None
        params = np.array([n, *offsets, *sizes, *[g[0] if g else 0 for g in gemm]],
                          dtype=np.int64)
        if self.entry(params, *seqs, *bufs, *maps, *nonseqs, *[v for _, v in self.consts],
                 *scratch) != 0:
            return None
        self.runs += 1
        return maps + nonseqs[:spec.n_shared]


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


def _dot_shape(step: _Step, shapes: list[tuple], blas: bool) -> tuple | None:
    """The product's shape (and, for DotAdd, the addend's, which must be it), or None for
    lengths that do not fit or, where there is no BLAS (``blas``), a product too large for the
    plain loop."""
    a, b = shapes[0], shapes[1]
    k = a[-1]
    if b[0] != k:
        return None
    out = a[:-1] + b[1:]
    if not blas and int(np.prod(out, dtype=np.int64)) * k > MAX_PRODUCT:
        return None
    if step.kind == "dotadd" and shapes[2] != out:
        return None
    return out


def _is_view(node) -> bool:
    """Whether the C loop takes ``node`` as a view: a constant index of the first axis, a
    ``DimShuffle`` or a ``Rebroadcast`` (whose checks its shapes pass make)."""
    op = node.op
    if type(op) is Subtensor:
        return len(op.spec) == 1 and op.spec[0][0] == "i" and isinstance(op.spec[0][1], int)
    return type(op) in (DimShuffle, Rebroadcast)


def _view_source(op, src: str, i: int, lines: list[str]) -> str:
    """Append the C making step ``i``'s view of ``src``; the view's expression."""
    if type(op) is Rebroadcast:
        return src  # the same array: its lengths were checked by the call
    if type(op) is Subtensor:
        index = op.spec[0][1]
        row = f"({src})->dimensions[0] + ({index})" if index < 0 else str(index)
        lines.append(f"        theon_row(&V{i}, {src}, {row});")
        return f"&V{i}"
    order = ", ".join("-1" if d == "x" else str(d) for d in op.new_order) or "0"
    lines.append(f"        {{ static const int order[] = {{{order}}}; "
                 f"theon_dimshuffle(&V{i}, VD{i}, VS{i}, {src}, order, {len(op.new_order)}); }}")
    return f"&V{i}"


def _view_shape(op, shape: tuple, contiguous: bool) -> tuple[tuple, bool] | None:
    """The shape and contiguity of the view ``op`` makes of an array of ``shape``, or None
    where its run-time check would fail (the Python loop then raises the error)."""
    if type(op) is Rebroadcast:
        if any(flag and shape[axis] != 1 for axis, flag in op.axes):
            return None
        return shape, contiguous
    if type(op) is Subtensor:
        index = op.spec[0][1]
        if not shape or not -shape[0] <= index < shape[0]:
            return None
        return shape[1:], contiguous
    kept = [d for d in op.new_order if d != "x"]
    if any(shape[d] != 1 for d in range(len(shape)) if d not in kept):
        return None  # a dropped axis must have length 1
    out = tuple(1 if d == "x" else shape[d] for d in op.new_order)
    # the same bytes in the same order when the axes of length > 1 keep their order
    moved = [d for d in kept if shape[d] != 1]
    return out, contiguous and moved == sorted(moved)
