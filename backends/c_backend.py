"""Linker ``'c'``: the numpy backend, with elementwise work run by generated C kernels.

Every ``Fused`` node (the fusion pass's clusters) and every remaining ``Elemwise`` node gets a
kernel: its scalar graph rendered by ``backends/kernels.py``, plus a small entry function that
reads the numpy arrays it is given directly (their data pointer, shape and strides, from the
array object's C struct), checks their shapes against the node's broadcast pattern, merges the
dimensions every array walks whole, and runs the loop, split across OpenMP threads above
``PARALLEL_ELEMENTS``. A call through ctypes then costs about a microsecond; the Python side only
allocates the output. What every entry does with its arrays (``theon_run``, ``theon_reduce``)
is a support library of its own, compiled once per cache: each kernel library is handed its
two runners when it loads, and compiles only its kernels.

``build`` renders the kernels of one function that this process has not loaded yet into one
translation unit, compiled once (``backends/ccompiler.py``: system compiler, disk cache). The
compile runs in the background: the function returned runs every node on numpy until the
library is loaded, then switches to the kernels (``config.wait_for_kernels`` waits instead,
as does the build of a profiled or NaN-guarded function: ``Plan.probe``).
Whatever cannot run a kernel falls back to the node's numpy thunk: no compiler, a failed
compile (one warning per process; the compiler's message goes to the ``theon`` log), a dtype
the dialect lacks, a value that is not an ndarray, or shapes the node's types do not allow
(the numpy thunk then raises the error naming the user's line).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ..config import config
from ..ops import scalar as S
from ..ops.buffers import ALONE
from ..ops.elemwise import Elemwise
from ..ops.fused import Fused, ScalarGraph
from ..ops.fused_reduce import FusedReduce
from ..ops.nnet import Softmax
from ..ops.reduce import Reduce
from ..symbolic.graph import Apply
from . import ccompiler, kernels, register
from .dialect import C
from .numpy_backend import NumpyBackend, thunk

log = logging.getLogger("theon")

# OpenMP threads that spin after a parallel loop (libgomp's default) take the core the
# next numpy or BLAS call needs: on a 2-core machine under load W1 at 1e6 took 10 ms spinning
# against 1.3 ms sleeping. libgomp reads this when it loads, with the first kernel library;
# a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Arrays of at least this many elements are split across OpenMP threads: below it, waking
# the threads costs more than the loop.
PARALLEL_ELEMENTS = 1 << 17

# The part of numpy's array object (PyArrayObject_fields, the same in numpy 1.x and 2.x) that
# an entry reads; checked against real arrays when the support library loads (``_support``),
# and the loops' signatures: the kernel libraries' and the support library's common ground.
_ARRAYS = r"""
typedef struct {
    intptr_t refcount;
    void *type;
    char *data;
    int nd;
    int64_t *dimensions;
    int64_t *strides;
} theon_array;

typedef void (*theon_loop)(int64_t, const int64_t *, char **, const int64_t *, int64_t,
                           int64_t);

typedef void (*theon_rloop)(int64_t, int64_t, const int64_t *, char **, const int64_t *,
                            int64_t, int64_t);
typedef void (*theon_rpart)(int64_t, int64_t, const int64_t *, char **, const int64_t *,
                            int64_t, int64_t, int64_t, void *);
typedef void (*theon_rmerge)(int64_t, int64_t, const int64_t *, char **, const int64_t *,
                             int64_t, const void *, int64_t);

"""

# What every kernel library holds besides its kernels: the Python objects its builtins return,
# and the support library's two runners (``_link`` hands them over when it loads).
_KERNEL_HEAD = r"""
/* The Python objects an entry's builtin returns for the codes 0, 1, 2 (floats of theon's,
   never immortal: a new reference is the reference count plus one, the first field of every
   object of a default CPython build) */
static intptr_t *theon_codes[3];
void theon_set_codes(void *c0, void *c1, void *c2)
{
    theon_codes[0] = c0; theon_codes[1] = c1; theon_codes[2] = c2;
}
static void *theon_code(int rc)
{
    intptr_t *o = theon_codes[rc >= 0 && rc <= 2 ? rc : 1];
    (*o)++;
    return o;
}

typedef int (*theon_run_fn)(theon_loop, int, int, theon_array **, const unsigned char *);
typedef int (*theon_reduce_fn)(theon_rloop, theon_rloop, theon_rpart, theon_rmerge, int, int,
                               theon_array **, const unsigned char *, const unsigned char *);
static theon_run_fn theon_run;
static theon_reduce_fn theon_reduce;
void theon_set_support(void *run, void *reduce)
{
    theon_run = (theon_run_fn)run;
    theon_reduce = (theon_reduce_fn)reduce;
}
"""

# The support library: what an entry hands its arrays to (theon_run, theon_reduce), compiled
# once per cache rather than into every kernel library, where compiling it at -O3 was a third
# of a small library's build (0.05-0.1 s) and of a reduction's (0.2-0.7 s).
_SUPPORT = r"""
static void *theon_ndarray_type;
static int theon_parallel = 1;

void theon_set_ndarray_type(void *type) { theon_ndarray_type = type; }

/* 0 in a forked child: libgomp's threads do not survive fork, and a parallel region there
   can hang */
void theon_set_parallel(int on) { theon_parallel = on; }

int64_t theon_probe(theon_array *a, int what)
{
    switch (what) {
    case 0: return (int64_t)(intptr_t)a->data;
    case 1: return a->nd;
    case 2: return a->dimensions[a->nd - 1];
    default: return a->strides[a->nd - 1];
    }
}

/* 0: done. 1: an argument is not a plain ndarray of the output's rank (the caller converts or
   falls back). 2: the shapes break the node's broadcast pattern (the caller's numpy thunk
   raises the error). */
int theon_run(theon_loop loop, int n_in, int n_arrays, theon_array **arrays,
              const unsigned char *broadcastable)
{
    const int nd = arrays[n_in]->nd;
    int64_t shape[THEON_MAX_DIMS], strides[THEON_MAX_DIMS * THEON_MAX_ARRAYS];
    char *data[THEON_MAX_ARRAYS];
    int64_t total = 1;
    int cd = 0;
    if (nd > THEON_MAX_DIMS) return 1;
    for (int a = 0; a < n_arrays; a++) {
        if (arrays[a]->type != theon_ndarray_type || arrays[a]->nd != nd) return 1;
        data[a] = arrays[a]->data;
    }
    for (int d = 0; d < nd; d++) {
        const int64_t n = arrays[n_in]->dimensions[d];
        int64_t s[THEON_MAX_ARRAYS];
        for (int a = 0; a < n_arrays; a++) {
            const int64_t m = arrays[a]->dimensions[d];
            if (a < n_in && broadcastable[a * nd + d]) {
                if (m != 1) return 2;
                s[a] = 0;
            } else {
                if (m != n) return 2;
                s[a] = arrays[a]->strides[d];
            }
        }
        total *= n;
        if (n == 1) continue;  /* a length-1 dimension moves no array */
        if (cd > 0) {  /* merge with the previous kept dimension where every array allows */
            int merge = 1;
            for (int a = 0; a < n_arrays && merge; a++)
                merge = strides[a * THEON_MAX_DIMS + cd - 1] == s[a] * n;
            if (merge) {
                shape[cd - 1] *= n;
                for (int a = 0; a < n_arrays; a++) strides[a * THEON_MAX_DIMS + cd - 1] = s[a];
                continue;
            }
        }
        shape[cd] = n;
        for (int a = 0; a < n_arrays; a++) strides[a * THEON_MAX_DIMS + cd] = s[a];
        cd++;
    }
    if (total == 0) return 0;
    if (cd == 0) {  /* one element */
        shape[0] = 1;
        for (int a = 0; a < n_arrays; a++) strides[a * THEON_MAX_DIMS] = 0;
        cd = 1;
    }
    {
        int64_t packed[THEON_MAX_DIMS * THEON_MAX_ARRAYS];
        for (int a = 0; a < n_arrays; a++)
            for (int d = 0; d < cd; d++) packed[a * cd + d] = strides[a * THEON_MAX_DIMS + d];
#ifdef _OPENMP
        if (theon_parallel && total >= THEON_PARALLEL && omp_get_max_threads() > 1) {
            #pragma omp parallel
            {
                const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
                loop(cd, shape, data, packed, total * t / nt, total * (t + 1) / nt);
            }
            return 0;
        }
#endif
        loop(cd, shape, data, packed, 0, total);
    }
    return 0;
}

/* A reduction: the inputs (one rank, broadcast as the pattern says) reduced over the
   dimensions marked in `reduced` into the output (the kept dimensions). Kept dimensions go
   first, reduced ones last, each group in the order of the inputs' strides (the smallest
   innermost, where the loop vectorises), merged where every array allows. Returns as
   theon_run; 2 also for an empty reduction (the numpy thunk gives the identity, or raises
   for max and min). */
int theon_reduce(theon_rloop loop, theon_rloop outer, theon_rpart part,
                 theon_rmerge merge, int acc_size,
                 int n_in, theon_array **arrays, const unsigned char *broadcastable,
                 const unsigned char *reduced)
{
    const int nd = arrays[0]->nd, n_arrays = n_in + 1;
    theon_array *out = arrays[n_in];
    int64_t len[THEON_MAX_DIMS], st[THEON_MAX_ARRAYS][THEON_MAX_DIMS];
    int order[THEON_MAX_DIMS];
    int64_t shape[THEON_MAX_DIMS], strides[THEON_MAX_DIMS * THEON_MAX_ARRAYS];
    char *data[THEON_MAX_ARRAYS];
    int64_t n_out = 1, r = 1;
    int nk = 0, nr = 0, k = 0, no = 0;
    if (nd > THEON_MAX_DIMS || nd < 1) return 1;
    for (int a = 0; a < n_arrays; a++) {
        if (arrays[a]->type != theon_ndarray_type) return 1;
        if (a < n_in && arrays[a]->nd != nd) return 1;
        data[a] = arrays[a]->data;
    }
    for (int d = 0; d < nd; d++) nk += !reduced[d];
    if (out->nd != nk) return 1;
    for (int d = 0; d < nd; d++) {
        int64_t n = -1;
        for (int a = 0; a < n_in && n < 0; a++)
            if (!broadcastable[a * nd + d]) n = arrays[a]->dimensions[d];
        if (n < 0) n = 1;
        for (int a = 0; a < n_in; a++) {
            const int64_t m = arrays[a]->dimensions[d];
            if (broadcastable[a * nd + d] ? m != 1 : m != n) return 2;
            st[a][d] = broadcastable[a * nd + d] || n == 1 ? 0 : arrays[a]->strides[d];
        }
        if (reduced[d]) {
            st[n_in][d] = 0;
            r *= n;
        } else {
            if (out->dimensions[k] != n) return 1;
            st[n_in][d] = n == 1 ? 0 : out->strides[k];
            k++;
            n_out *= n;
        }
        len[d] = n;
    }
    if (n_out == 0) return 0;
    if (r == 0) return 2;
    /* the order: kept then reduced, each by decreasing stride of the first input that moves
       in it (insertion sort, stable: equal strides keep numpy's order) */
    for (int group = 0; group < 2; group++) {
        const int first = no;
        for (int d = 0; d < nd; d++) {
            if (reduced[d] != group || len[d] == 1) continue;
            int64_t key = 0;
            for (int a = 0; a < n_in && key == 0; a++)
                key = st[a][d] < 0 ? -st[a][d] : st[a][d];
            int at = no++;
            while (at > first) {
                const int e = order[at - 1];
                int64_t ke = 0;
                for (int a = 0; a < n_in && ke == 0; a++)
                    ke = st[a][e] < 0 ? -st[a][e] : st[a][e];
                if (ke >= key) break;
                order[at] = e;
                at--;
            }
            order[at] = d;
        }
        /* merge neighbours of the group where every array steps over the inner one whole */
        int cd = group == 0 ? 0 : nk;
        for (int q = first; q < no; q++) {
            const int d = order[q];
            if (q > first) {
                int ok = 1;
                for (int a = 0; a < n_arrays && ok; a++)
                    ok = strides[a * THEON_MAX_DIMS + cd - 1] == st[a][d] * len[d];
                if (ok) {
                    shape[cd - 1] *= len[d];
                    for (int a = 0; a < n_arrays; a++)
                        strides[a * THEON_MAX_DIMS + cd - 1] = st[a][d];
                    continue;
                }
            }
            shape[cd] = len[d];
            for (int a = 0; a < n_arrays; a++) strides[a * THEON_MAX_DIMS + cd] = st[a][d];
            cd++;
        }
        if (group == 0) nk = cd;
        else nr = cd - nk;
        if (group == 1 && nr == 0) {  /* one element (or length-1 dimensions) per output */
            shape[nk] = 1;
            for (int a = 0; a < n_arrays; a++) strides[a * THEON_MAX_DIMS + nk] = 0;
            nr = 1;
        }
    }
    {
        const int nd2 = nk + nr;
        int64_t packed[THEON_MAX_DIMS * THEON_MAX_ARRAYS];
        int across = 0;
        for (int a = 0; a < n_arrays; a++)
            for (int d = 0; d < nd2; d++) packed[a * nd2 + d] = strides[a * THEON_MAX_DIMS + d];
        if (nk > 0 && shape[nk - 1] >= 8) {
            /* Across the outputs (a vector lane per output) where the rows to reduce are
               short, or strided where the inputs step through the last kept dimension more
               closely: a sum over the first axis of a C-order matrix. */
            int64_t sk = 0, sr = 0;
            for (int a = 0; a < n_in && sk == 0 && sr == 0; a++) {
                sk = packed[a * nd2 + nk - 1];
                sr = packed[a * nd2 + nd2 - 1];
            }
            sk = sk < 0 ? -sk : sk;
            sr = sr < 0 ? -sr : sr;
            across = shape[nd2 - 1] < 32 || (sk != 0 && sk < sr);
        }
        if (across) loop = outer;
#ifdef _OPENMP
        if (theon_parallel && n_out * r >= THEON_PARALLEL && omp_get_max_threads() > 1) {
            const int threads = omp_get_max_threads() < 64 ? omp_get_max_threads() : 64;
            if (n_out >= 4 * threads || across) {  /* enough outputs: threads share them */
                #pragma omp parallel
                {
                    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
                    loop(nk, nr, shape, data, packed, n_out * t / nt, n_out * (t + 1) / nt);
                }
            } else {  /* few long ones: threads split each output's reduced range */
                unsigned char accs[64 * 8];
                for (int64_t o = 0; o < n_out; o++) {
                    int used = threads;
                    #pragma omp parallel num_threads(threads)
                    {
                        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
                        if (t == 0) used = (int)nt;
                        part(nk, nr, shape, data, packed, o, r * t / nt, r * (t + 1) / nt,
                             accs + t * acc_size);
                    }
                    merge(nk, nr, shape, data, packed, o, accs, used);
                }
            }
            return 0;
        }
#endif
        (void)part;
        (void)merge;
        (void)acc_size;
        loop(nk, nr, shape, data, packed, 0, n_out);
    }
    return 0;
}
"""


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: the scalar graph and each input's broadcastable pattern (an entry checks
    shapes against it, and inputs broadcast along the last dimension are read once per row)."""

    graph: ScalarGraph
    patterns: tuple[tuple[bool, ...], ...]
    # a reduction of the graph's output (a FusedReduce node): its kind, axes, output dtype and
    # initial value; kind None for elementwise work
    kind: str | None = None
    axis: tuple[int, ...] = ()
    dtype: str = ""
    initial: float | None = None

    @property
    def hoisted(self) -> tuple[int, ...]:
        # inputs broadcast along the dimension the loop walks innermost: the last one, or for
        # a reduction the last reduced one (where the layout is C order)
        last = self.axis[-1] if self.kind is not None and self.axis else -1
        return tuple(i for i, p in enumerate(self.patterns) if not p or p[last])

    @property
    def hoisted_outer(self) -> tuple[int, ...]:
        """A reduction's inputs broadcast along its last kept dimension (which its outer loop
        walks innermost, where the layout is C order)."""
        kept = [d for d in range(len(self.patterns[0])) if d not in self.axis]
        if self.kind is None or not kept:
            return ()
        return tuple(i for i, p in enumerate(self.patterns) if p[kept[-1]])


class _Kernels:
    """This process's kernels: spec -> entry function, or None where none will come (the
    compile failed, the dialect cannot write it). The specs of one ``build`` not seen before
    are compiled together, into one library."""

    def __init__(self) -> None:
        self.entries: dict[KernelSpec, Callable | None] = {}
        self.pending: dict[KernelSpec, list[_Cell]] = {}   # spec -> cells waiting for it
        # spec -> compile its library now, in the caller's thread: a build that waits for its
        # kernels must not wait behind the background queue for one an earlier build asked for
        self.finish: dict[KernelSpec, Callable[[], None]] = {}
        self.lock = threading.Lock()
        self.warned = False
        self.count = 0

    def request(self, specs: Sequence[KernelSpec], wait: bool = False) -> list[Future]:
        """Start compiling the specs not loaded or pending (and wait, with ``wait`` or
        ``config.wait_for_kernels``). Returns the compiles started (a profile reads their
        time)."""
        wait = wait or config.wait_for_kernels
        todo: dict[KernelSpec, str] = {}
        earlier: list[Callable[[], None]] = []
        with self.lock:
            for spec in specs:
                if spec in self.pending and wait:
                    finish = self.finish.get(spec)
                    if finish is not None and finish not in earlier:
                        earlier.append(finish)
                elif spec not in self.entries and spec not in self.pending and spec not in todo:
                    self.count += 1
                    todo[spec] = f"theon_k{self.count}"
                    self.pending[spec] = []
        for finish in earlier:
            finish()
        return self._compile(todo, wait) if todo else []

    def attach(self, cell: _Cell) -> None:
        """Bind ``cell`` to its kernel now if it is loaded, else when it is."""
        with self.lock:
            if cell.spec in self.pending:
                self.pending[cell.spec].append(cell)
                return
            entry = self.entries.get(cell.spec)
        cell.bind(entry)

    def _compile(self, todo: dict[KernelSpec, str], wait: bool) -> list[Future]:
        rendered = []
        for spec, name in todo.items():
            try:
                rendered.append((spec, name, _render(spec, name)))
            except (ValueError, NotImplementedError):
                with self.lock:  # a row or dtype the dialect has no spelling for
                    self._settle(spec, None)
        if not rendered:
            return []
        dtypes = sorted({d for spec, _, _ in rendered for d in spec.graph.ref_dtypes})
        source = _source([text for _, _, text in rendered], dtypes)
        flags, openmp = _flags()
        _prefetch_support(wait)
        future = ccompiler.compile_async(source, flags=flags, openmp=openmp, name="kernels",
                                         now=wait)

        def done(fut) -> None:
            if fut.cancelled():  # dropped before it ran: a later build may ask again
                with self.lock:
                    for spec, _, _ in rendered:
                        self.pending.pop(spec, None)
                        self.finish.pop(spec, None)
                return
            try:
                lib = fut.result()
                _link(lib)
            except Exception as err:  # noqa: BLE001 - any failure means: stay on numpy
                self._failed(err)
                lib = None
            with self.lock:
                for spec, name, _ in rendered:
                    self._settle(spec, None if lib is None else _entry(lib, spec, name))

        # (with wait_for_kernels the future is already done: the callback runs here, now)
        future.add_done_callback(done)
        if not future.done():
            def finish() -> None:  # the same library, compiled now (or found in the cache)
                ccompiler.compile_async(source, flags=flags, openmp=openmp, name="kernels",
                                        now=True).add_done_callback(done)
            with self.lock:
                for spec, _, _ in rendered:
                    if spec in self.pending:
                        self.finish[spec] = finish
        return [future]

    def _settle(self, spec: KernelSpec, entry: Callable | None) -> None:
        self.finish.pop(spec, None)
        if spec in self.entries and spec not in self.pending:
            return  # settled already (a library compiled twice: the caller's, the queue's)
        self.entries[spec] = entry
        for cell in self.pending.pop(spec, ()):
            cell.bind(entry)

    def _failed(self, err: BaseException) -> None:
        stderr = getattr(err, "stderr", "")
        log.info("theon: compiling C kernels failed: %s%s", err,
                 f"\n{stderr}" if stderr else "")
        if not self.warned:
            self.warned = True
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            warnings.warn(f"theon: C kernels unavailable ({first}); elementwise work runs on "
                          "numpy (the compiler's output is in the 'theon' log)", stacklevel=2)


_KERNELS = _Kernels()


class _Cell:
    """The callable one kernel node runs: its numpy thunk until the kernel is ready."""

    __slots__ = ("run", "node", "fallback", "spec")

    def __init__(self, node: Apply, fallback: Callable, spec: KernelSpec):
        self.node, self.fallback, self.spec = node, fallback, spec
        self.run = fallback

    def bind(self, entry: Callable | None) -> None:
        if entry is not None:
            self.run = _runner(entry, self.node, self.fallback, self.spec)


class CBackend(NumpyBackend):
    """Generated C for elementwise nodes, numpy for the rest."""

    name = "c"

    def build(self, fgraph, plan) -> Callable:
        started: list[Future] = []
        if ccompiler.compiler() is not None:
            specs = []
            for node in fgraph.toposort():
                if isinstance(node.op, Softmax):
                    specs += _softmax_specs(node) or ()
                else:
                    spec = _spec(node)
                    if spec is not None:
                        specs.append(spec)
            if specs:
                # a profiled or guarded function measures or checks its kernels from its first
                # call, not the numpy thunks standing in for them while they compile
                started = _KERNELS.request(specs, wait=plan.probe is not None)
        fn = super().build(fgraph, plan)
        if plan.probe is not None:  # a profile reports the time its kernels took to compile
            fn.kernel_futures = started
        body = getattr(fn, "body", None)
        if body is not None:  # a loop may run this body as C (scan/cloop.py)
            body.c_kernels = ccompiler.compiler() is not None
        return fn

    def thunk(self, node: Apply, inner: Sequence[Callable] = ()) -> Callable:
        if isinstance(node.op, Softmax):
            return _softmax_thunk(node)
        spec = _spec(node)
        if spec is None or spec not in _KERNELS.entries and spec not in _KERNELS.pending:
            return thunk(node, inner)
        fallback = _lazy(node)
        entry = _KERNELS.entries.get(spec)
        if entry is not None:  # loaded already: no indirection
            return _runner(entry, node, fallback, spec)
        cell = _Cell(node, fallback, spec)
        _KERNELS.attach(cell)

        def run(*args, out=None):
            fn = cell.run  # the numpy thunk until the kernel loads, which may not take out=
            if out is not None and getattr(fn, "takes_out", False):
                return fn(*args, out=out)
            return fn(*args)
        run.takes_out = True
        return run


def _lazy(node: Apply) -> Callable:
    """The node's numpy thunk, made on its first call: a kernel node seldom needs it, and
    making one per node (a Fused node's prepares every row) was a good part of build time."""
    made: list = []

    def run(*args):
        if not made:
            made.append(thunk(node))
        return made[0](*args)
    return run


# (row, input dtypes, output dtype, broadcast patterns) -> the spec of an Elemwise node;
# (Reduce op, input type) -> the spec of a reduction of an array
_ROW_SPECS: dict[tuple, KernelSpec | None] = {}


def _spec(node: Apply) -> KernelSpec | None:
    """The kernel a node runs as, or None for a node that stays on numpy."""
    op = node.op
    if isinstance(op, FusedReduce):
        if op.epilogue is not None:
            return None  # (only a device's fusion makes one: the numpy path computes it)
        graph = op.graph
        if kernels.reduce_acc_dtype(op.kind, graph.out_dtypes[0], op.dtype) is None or \
                node.outputs[0].dtype != op.dtype or not op.axis or \
                len(node.inputs) + 1 > MAX_ARRAYS or node.inputs[0].ndim > kernels.MAX_DIMS:
            return None
        return KernelSpec(graph, tuple(i.type.broadcastable for i in node.inputs), op.kind,
                          op.axis, op.dtype, op.initial)
    if type(op) is Reduce:
        # numpy's own loops, through a kernel reading the array as it lies: 1.3-2.7x faster
        # than np.sum on 256x10 and 1000x1000 arrays, rows or all (the entry's checks and
        # call cost less than numpy's reduction setup); first-axis float32 sums at 1000x1000
        # a little slower (96 against 76 us, one thread)
        x = node.inputs[0]
        if x.ndim == 0 or not op.axis or x.ndim > kernels.MAX_DIMS or \
                kernels.reduce_acc_dtype(op.kind, x.dtype, op.dtype) is None:
            return None
        key = (op, x.type)
        if key not in _ROW_SPECS:
            _ROW_SPECS[key] = KernelSpec(ScalarGraph.of_row(S.identity, (x.dtype,)),
                                         (x.type.broadcastable,), op.kind, op.axis, op.dtype,
                                         op.initial)
        return _ROW_SPECS[key]
    if isinstance(op, Fused):
        graph = op.graph
        if graph.out_dtypes != tuple(o.dtype for o in node.outputs):
            return None
    elif type(op) is Elemwise and node.outputs[0].ndim > 0:
        # (on a 0-d array a numpy ufunc call costs less than any kernel call)
        return _elemwise_spec(node)
    else:
        return None
    if len(node.inputs) + len(node.outputs) > MAX_ARRAYS or node.outputs[0].ndim > \
            kernels.MAX_DIMS:
        return None
    return KernelSpec(graph, tuple(i.type.broadcastable for i in node.inputs))


def _elemwise_spec(node: Apply) -> KernelSpec | None:
    op = node.op
    if op.scalar_op.c is None:  # a row without a C template is computed by numpy
        return None
    key = (op.scalar_op, *[i.type for i in node.inputs], node.outputs[0].type)
    if key not in _ROW_SPECS:
        graph = ScalarGraph.of_row(op.scalar_op, tuple(i.dtype for i in node.inputs))
        ok = graph.out_dtypes == (node.outputs[0].dtype,) and \
            len(node.inputs) + 1 <= MAX_ARRAYS and node.outputs[0].ndim <= kernels.MAX_DIMS
        _ROW_SPECS[key] = KernelSpec(
            graph, tuple(i.type.broadcastable for i in node.inputs)) if ok else None
    return _ROW_SPECS[key]


def elementwise_spec(node: Apply) -> KernelSpec | None:
    """The kernel of an elementwise node (Fused or Elemwise, one output, 0-d too: called
    from C, a kernel costs less than a ufunc call at any size), or None."""
    if len(node.outputs) != 1:
        return None
    spec = _elemwise_spec(node) if type(node.op) is Elemwise else _spec(node)
    return spec if spec is not None and spec.kind is None else None


def compile_with_kernels(specs: Sequence[KernelSpec], source: str,
                         on_ready: Callable[[Callable | None], None]) -> None:
    """Compile the kernels ``specs`` together with ``source`` in one library. In ``source``,
    ``@P@`` stands for the library's prefix: the kernels' entries are ``@P@_k0``, ``@P@_k1``, ...
    (taking ``theon_array *`` arguments, returning 0 when done), and ``source`` defines
    ``void *@P@_py(void *, void *const *, intptr_t)``, a builtin's body returning
    ``theon_code(rc)``. ``on_ready`` then gets that builtin, or None when compiling failed. In
    the background, or before returning with ``config.wait_for_kernels``. The prefix comes
    from the text, so equal sources share one library (and its cache entry)."""
    parts = [_render(spec, f"@P@_k{i}") for i, spec in enumerate(specs)]
    dtypes = sorted({d for spec in specs for d in spec.graph.ref_dtypes} | {"float64"})
    text = _source(parts + [source], dtypes)
    prefix = "theon_lib_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    flags, openmp = _flags()
    _prefetch_support(config.wait_for_kernels)
    future = ccompiler.compile_async(text.replace("@P@", prefix), flags=flags, openmp=openmp,
                                     name=prefix, now=config.wait_for_kernels)

    def done(fut) -> None:
        builtin = None
        if not fut.cancelled():
            try:
                lib = fut.result()
                _link(lib)
                builtin = _builtin(lib, f"{prefix}_py")
            except Exception as err:  # noqa: BLE001 - any failure means: stay on Python
                log.info("theon: compiling %s failed: %s%s", prefix, err,
                         f"\n{getattr(err, 'stderr', '')}")
        on_ready(builtin)

    future.add_done_callback(done)  # (already done with wait_for_kernels: runs now)


def _softmax_specs(node: Apply) -> tuple[KernelSpec, KernelSpec, KernelSpec] | None:
    """A Softmax or LogSoftmax node as three kernels, three passes over its input: the maximum
    ``m`` along the axes, ``s = sum(exp(x - m))`` (a reduction with its prologue), then
    ``exp(x - m) / s`` (or ``(x - m) - log(s)``): the op's formula (``Softmax.passes``). The
    numpy path keeps the op's own implementation (five passes, but no exp computed twice)."""
    op, x = node.op, node.inputs[0]
    dtype = x.dtype
    if dtype not in ("float32", "float64") or x.ndim > kernels.MAX_DIMS or \
            node.outputs[0].dtype != dtype:
        return None
    axes = op.axis if isinstance(op.axis, tuple) else (op.axis,)
    pattern = x.type.broadcastable
    reduced = tuple(True if d in axes else b for d, b in enumerate(pattern))
    identity = ScalarGraph.of_row(S.identity, (dtype,))
    denominator, result = op.passes(dtype)
    if result.out_dtypes != (dtype,) or denominator.out_dtypes != (dtype,):
        return None
    return (KernelSpec(identity, (pattern,), "max", axes, dtype),
            KernelSpec(denominator, (pattern, reduced), "sum", axes, dtype),
            KernelSpec(result, (pattern, reduced, reduced)))


def _softmax_thunk(node: Apply) -> Callable:
    """A Softmax node's callable: its numpy thunk until its three kernels are loaded."""
    specs = _softmax_specs(node)
    if specs is None or any(s not in _KERNELS.entries and s not in _KERNELS.pending
                            for s in specs):
        return thunk(node)
    fallback = _lazy(node)
    bound: list = []
    entries = _KERNELS.entries

    def run(x):
        if not bound:
            loaded = [entries.get(s) for s in specs]
            if any(e is None for e in loaded):
                return fallback(x)
            bound.append(_softmax_runner(loaded, node, fallback))
        return bound[0](x)
    return run


def _softmax_runner(loaded: Sequence[Callable], node: Apply, fallback: Callable) -> Callable:
    maximum, denominator, result = loaded
    op = node.op
    axes = op.axis if isinstance(op.axis, tuple) else (op.axis,)
    ndim = node.inputs[0].ndim
    dtype = np.dtype(node.outputs[0].dtype)
    empty = np.empty

    def run(x):
        if type(x) is not np.ndarray or x.ndim != ndim or x.size == 0 or x.dtype != dtype:
            return fallback(x)
        kept = tuple(n for d, n in enumerate(x.shape) if d not in axes)
        keep = tuple(1 if d in axes else n for d, n in enumerate(x.shape))
        m = empty(kept, dtype)
        if maximum(x, m):
            return fallback(x)
        m = m.reshape(keep)
        s = empty(kept, dtype)
        if denominator(x, m, s):
            return fallback(x)
        out = empty(x.shape, dtype)
        if result(x, m, s.reshape(keep), out):
            return fallback(x)
        return out
    return run


# The most arrays (inputs and outputs) one entry takes.
MAX_ARRAYS = 40


def _render(spec: KernelSpec, name: str) -> str:
    graph = spec.graph
    n_in = len(graph.in_dtypes)
    if spec.kind is None:
        loop = kernels.render(graph, f"{name}_loop", C, hoisted=spec.hoisted, prelude=False,
                              qualifier="static")
        n_arrays = n_in + len(graph.outputs)
        return _entry_source(loop, name, spec, n_arrays,
                             f"theon_run({name}_loop, {n_in}, {n_arrays}, arrays, "
                             "broadcastable)")
    loop = kernels.render_reduce(graph, spec.kind, spec.dtype, f"{name}_loop", C,
                                 initial=spec.initial, hoisted=spec.hoisted,
                                 hoisted_outer=spec.hoisted_outer, prelude=False,
                                 qualifier="static")
    acc = kernels.reduce_acc_dtype(spec.kind, graph.out_dtypes[0], spec.dtype)
    ndim = len(spec.patterns[0])
    reduced = ", ".join(str(int(d in spec.axis)) for d in range(ndim))
    return _entry_source(
        loop, name, spec, n_in + 1,
        f"theon_reduce({name}_loop, {name}_loop_outer, {name}_loop_part, {name}_loop_merge, "
        f"{np.dtype(acc).itemsize}, {n_in}, arrays, broadcastable, reduced)",
        tables=[f"    static const unsigned char reduced[] = {{{reduced}}};"])


def _entry_source(loop: str, name: str, spec: KernelSpec, n_arrays: int, call: str,
                  tables: Sequence[str] = ()) -> str:
    """``loop`` and the entry ``int name(theon_array *a0, ...)`` that hands the arrays and the
    inputs' broadcast pattern (and ``tables``) to ``call``, a theon_run or theon_reduce."""
    params = ", ".join(f"theon_array *a{k}" for k in range(n_arrays))
    arrays = ", ".join(f"a{k}" for k in range(n_arrays))
    flags = ", ".join(str(int(b)) for p in spec.patterns for b in p) or "0"
    cast = ", ".join(f"(theon_array *)args[{k}]" for k in range(n_arrays))
    return "\n".join([
        loop,
        f"int {name}({params})",
        "{",
        f"    theon_array *arrays[] = {{{arrays}}};",
        f"    static const unsigned char broadcastable[] = {{{flags}}};",
        *tables,
        f"    return {call};",
        "}",
        "",
        # the entry as a builtin function's body (METH_FASTCALL): called from Python for a
        # tenth of what a ctypes call costs, which a loop body pays at every step
        f"void *{name}_py(void *self, void *const *args, intptr_t nargs)",
        "{",
        f"    return theon_code(nargs == {n_arrays} ? {name}({cast}) : 1);",
        "}",
        ""])


def _source(parts: Sequence[str], dtypes: Sequence[str]) -> str:
    """One kernel library's translation unit: the helpers of the dtypes used, the arrays'
    layout and the support library's runners, the kernels."""
    head = [C.prelude(dtypes), kernels.c_declarations(), _ARRAYS, _KERNEL_HEAD]
    return "\n".join(head + list(parts))


def _support_source() -> str:
    return "\n".join(["#include <stdint.h>", "#ifdef _OPENMP", "#include <omp.h>", "#endif",
                      f"#define THEON_MAX_DIMS {kernels.MAX_DIMS}",
                      f"#define THEON_MAX_ARRAYS {MAX_ARRAYS}",
                      f"#define THEON_PARALLEL {PARALLEL_ELEMENTS}",
                      _ARRAYS, _SUPPORT])


_FLAGS: list = []


def _flags() -> tuple[tuple[str, ...], bool]:
    """Compiler flags: this CPU's vector instructions, libmvec's vector math where the C
    library has it (gcc on x86_64 glibc), libm; OpenMP per ``config.openmp``."""
    if not _FLAGS:
        flags = ["-march=native"]
        if platform.machine() in ("x86_64", "AMD64") and platform.libc_ver()[0] == "glibc" \
                and ccompiler.find_library("mvec"):
            flags += ["-DTHEON_MVEC", "-lmvec"]
        # -fopenmp-simd: the reduction loops' `#pragma omp simd reduction(...)`, which lets
        # the compiler keep a partial accumulator per vector lane (without -ffast-math it may
        # not reorder a sum by itself), with or without OpenMP's threads
        _FLAGS.append(tuple(flags + ["-fopenmp-simd", "-lm"]))
    return _FLAGS[0], bool(config.openmp) and (os.cpu_count() or 1) > 1


def _entry(lib: ccompiler.LoadedLibrary, spec: KernelSpec, name: str) -> Callable:
    """The entry ``name`` as a callable of the arrays returning its code (0: done): a builtin
    function made from its ``_py`` twin, or a ctypes function where that cannot be made."""
    try:
        return _builtin(lib, f"{name}_py")
    except (AttributeError, KeyError, OSError):  # not CPython's API: the ctypes call
        n_arrays = len(spec.graph.in_dtypes) + len(spec.graph.outputs)
        return lib.function(name, ctypes.c_int, [ctypes.py_object] * n_arrays, keep_gil=True)


class _MethodDef(ctypes.Structure):
    """CPython's PyMethodDef: what a builtin function object points at."""

    _fields_ = [("name", ctypes.c_char_p), ("meth", ctypes.c_void_p), ("flags", ctypes.c_int),
                ("doc", ctypes.c_char_p)]


_METH_FASTCALL = 0x0080
# The codes an entry's builtin returns, as the ctypes entry's ints compare: fresh floats,
# since the library increments their reference count by hand (see theon_code)
_CODES = (float("0"), float("1"), float("2"))
# the method records of the builtins made: they must live as long as the process
_METHOD_DEFS: list = []


def _builtin(lib: ccompiler.LoadedLibrary, symbol: str) -> Callable:
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.py_object,
                                                    ctypes.py_object]
    record = _MethodDef(symbol.encode(), lib.address(symbol), _METH_FASTCALL, None)
    _METHOD_DEFS.append(record)
    return new(ctypes.addressof(record), None, None)


# the support libraries loaded and set up (by path), and their theon_set_parallel, called
# with 0 in a forked child
_SUPPORTS: dict[str, tuple[int, int]] = {}
_SUPPORTS_LOCK = threading.Lock()
_PARALLEL_SWITCHES: list = []


def _serial_after_fork() -> None:
    for switch in _PARALLEL_SWITCHES:
        switch(0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_serial_after_fork)


def _prefetch_support(wait: bool) -> None:
    """Start compiling the support library (a no-op once it is loaded), so that a first
    kernel library's compile does not wait for it."""
    flags, openmp = _flags()
    ccompiler.compile_async(_support_source(), flags=flags, openmp=openmp, name="support",
                            now=wait)


def _support() -> tuple[int, int]:
    """The addresses of theon_run and theon_reduce in the support library (compiled once per
    cache, loaded once), which has been told numpy's ndarray type and checked to read arrays
    where numpy keeps their fields (the struct layout an entry assumes)."""
    flags, openmp = _flags()
    lib = ccompiler.compile_library(_support_source(), flags=flags, openmp=openmp,
                                    name="support")
    with _SUPPORTS_LOCK:
        runners = _SUPPORTS.get(str(lib.path))
        if runners is not None:
            return runners
        lib.function("theon_set_ndarray_type", None, [ctypes.c_void_p])(id(np.ndarray))
        probe = lib.function("theon_probe", ctypes.c_int64, [ctypes.py_object, ctypes.c_int])
        a = np.zeros((3, 5), dtype=np.float32)[:, ::2]
        got = [probe(a, k) for k in range(4)]
        if got != [a.ctypes.data, 2, 3, 8]:
            raise RuntimeError(f"numpy's array layout is not the one the kernels read ({got})")
        _PARALLEL_SWITCHES.append(lib.function("theon_set_parallel", None, [ctypes.c_int]))
        runners = _SUPPORTS[str(lib.path)] = (lib.address("theon_run"),
                                              lib.address("theon_reduce"))
        return runners


def _link(lib: ccompiler.LoadedLibrary) -> None:
    """Hand a kernel library the support library's runners and the codes its builtins
    return."""
    run, reduce = _support()
    lib.function("theon_set_support", None, [ctypes.c_void_p, ctypes.c_void_p])(run, reduce)
    lib.function("theon_set_codes", None, [ctypes.py_object] * 3)(*_CODES)


def _reduce_runner(entry: Callable, node: Apply, fallback: Callable, spec: KernelSpec
                   ) -> Callable:
    """The callable running a reduction's ``entry``: allocate the output (the kept
    dimensions of an input broadcast nowhere, or of the inputs' broadcast shape), call, and on
    a refusal hand the call to the numpy thunk (which raises the error, or computes what the
    kernel does not: an empty reduction, a value that is not an array)."""
    dtype = np.dtype(node.outputs[0].dtype)
    patterns, axis = spec.patterns, spec.axis
    ref = next((i for i, p in enumerate(patterns) if not any(p)), None)
    ndim = len(patterns[0])
    kept = [d for d in range(ndim) if d not in axis]
    empty = np.empty

    def run(*args):
        if ref is not None:
            shape = getattr(args[ref], "shape", None)
            if shape is None or len(shape) != ndim:
                return fallback(*args)
        else:
            shape = kernels.elemwise_shape([np.asarray(a) for a in args], patterns)
            if shape is None:
                return fallback(*args)
        out = empty(tuple(shape[d] for d in kept), dtype)
        if entry(*args, out):
            return fallback(*args)
        return out
    return run


def _runner(entry: Callable, node: Apply, fallback: Callable, spec: KernelSpec) -> Callable:
    """The callable running ``entry`` on a node's arguments: allocate the outputs, call, and
    on a refusal convert the arguments to arrays once or hand the call to the numpy thunk."""
    if spec.kind is not None:
        return _reduce_runner(entry, node, fallback, spec)
    dtypes = [np.dtype(o.dtype) for o in node.outputs]
    patterns = spec.patterns
    # an input broadcast in no dimension has the output's shape (the entry checks the rest)
    ref = next((i for i, p in enumerate(patterns) if not any(p)), None)
    empty, ndarray, may_share = np.empty, np.ndarray, np.may_share_memory
    getrefcount = sys.getrefcount

    def shape_of(args):
        if ref is not None:
            return np.shape(args[ref])
        return kernels.elemwise_shape([np.asarray(a) for a in args], patterns)

    def slow(args):
        arrays = [np.asarray(a) for a in args]
        shape = kernels.elemwise_shape(arrays, patterns)
        if shape is None:
            return fallback(*args)
        outs = [empty(shape, d) for d in dtypes]
        if entry(*arrays, *outs) != 0:
            return fallback(*args)
        return outs[0] if len(outs) == 1 else tuple(outs)

    if len(dtypes) == 1 and ref is not None:
        dtype = dtypes[0]
        last: list = [None]

        def run(*args, out=None):
            shape = args[ref].shape
            # the memory plan's buffer (a dead intermediate, a shared value's own storage):
            # used unless it overlaps an input other than exactly (the loop reads an element
            # and then writes the same one; a shifted or transposed view would be read after
            # being written)
            if out is not None and out.__class__ is ndarray and out.shape == shape and \
                    (out.dtype is dtype or out.dtype == dtype) and out.flags.writeable:
                for a in args:  # (a loop, not any(...): a loop body calls this every step)
                    if a is not out and may_share(a, out):
                        break
                else:
                    if entry(*args, out) == 0:
                        return out
            # The previous call's output, if nobody but this closure holds it any more
            # (ops.buffers), is rewritten instead of allocating: a fresh large array costs a
            # page fault per 4 KiB on first write.
            out = last[0]
            if out is None or getrefcount(out) != ALONE or out.shape != shape:
                out = last[0] = empty(shape, dtype)
            if entry(*args, out):
                last[0] = None
                return slow(args)
            return out
        run.takes_out = True  # numpy_backend's out= protocol
        return run

    def run_many(*args):
        shape = shape_of(args)
        if shape is None:
            return fallback(*args)
        outs = [empty(shape, d) for d in dtypes]
        if entry(*args, *outs):
            return slow(args)
        return outs[0] if len(outs) == 1 else tuple(outs)
    return run_many


register("c", CBackend())
