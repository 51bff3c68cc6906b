"""The numpy backend: turn a scheduled FunctionGraph into one generated Python function.

Each node becomes one line ``v7 = f3(v2, v5)`` calling the node's thunk (a numpy ufunc or a
small closure: the op's ``impl``, or its ``perform`` wrapped and checked), so a call costs a
Python function call per node and nothing else: no per-node dispatch, storage lookups or
bookkeeping. Values live in local variables and are dropped (``del``) right after their last
use, so peak memory follows liveness. Input checks are generated too (a fast
``type/dtype/ndim`` test, the full ``filter`` only when it fails). Nodes with equal ops and
types share one thunk.

A large schedule (``TABLE_NODES`` nodes or more) runs as a table instead: the generated
function checks the arguments, fills a list of registers and hands it to ``_run``, one loop
over steps ``(thunk, input registers, output register, node)``, with the same liveness (a
step clears a register after its value's last use). CPython compiles about 100,000 generated
lines a second, which made compiling the largest part of building a big graph; the loop costs
about 0.1 us more per node and call. A lazy node with its branches is generated code inside
the table: a small function of the values it reads.

What an op needs beyond its ``impl`` lives in this backend's tables keyed by op class, never in
the op: ``THUNKS`` (a thunk of its own) and ``EMITTERS`` (lines of code of its own: a lazy
``ifelse`` places the nodes only one branch needs inside an ``if``/``else`` block). Modules above
this one register their ops' entries here; subclasses of ``NumpyBackend`` (a logging or
profiling backend) override ``thunk``.

When a node fails, the traceback's line number (or the table's step) says which node it was;
the error is re-raised with the node, its input shapes and the user's line that created it.

Memory planning. A fresh 40 MB array costs page faults on its first write, about as
much as the arithmetic filling it, so a node may write its output into a buffer that nothing
reads any more (``v3 = f(v1, v2, out=v3)``) instead of allocating one. ``_MemoryPlan`` decides
which, once per build, from the schedule, each buffer's last reader (a view, per the ops'
``view_map``, reads its base), and what belongs to someone else. Never handed out: a function
input's buffer, a constant's, a buffer an output or an update value holds, one a lazy branch
that may not run computed, one read later. The one exception is a shared variable's own
update (``W <- W - lr * dW``): the node computing the new value writes into ``W``'s storage
when nothing reads the old ``W`` after it, the old ``W`` is not returned, and the function was
compiled with ``Plan.inplace_updates``. A buffer goes to a node only when its shape provably is
the output's: equal static shapes, or a chain of elementwise relations (``SAME_SHAPE``) made by
nodes that ran before it.

The protocol of a thunk that can write into a given buffer (numpy ufuncs follow it natively):
it has the attribute ``takes_out = True``, and ``fn(*inputs, out=buf)`` computes the node's one
output into ``buf`` and returns ``buf``. ``buf`` is an array of the output's dtype and shape, in
any memory layout, that no later node reads; it may be the very buffer of an input this node
reads last (or a view of one), so the thunk must give the right values then (ufuncs do; a BLAS
call must not write where it still reads). Given a buffer it cannot use (read-only, another
shape: the plan's proof of shapes covers successful runs only), it returns a new array
instead, or raises the error the plain call would raise, having written nothing. Called
without ``out``, it returns a new array that no one else holds, which is what lets the plan
hand that array on once it is dead. A backend overriding ``thunk`` (the C backend's kernels)
adopts the protocol by setting the attribute on the thunks that follow it; an op whose output
has its input's shape whenever it runs gets a ``SAME_SHAPE`` entry.
"""
from __future__ import annotations

import heapq
import itertools
import linecache
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np

from ..config import config
from ..ops.base import Op
from ..ops.blas import Gemm
from ..ops.control import IfElse
from ..ops.elemwise import Elemwise, _broadcast_checks, _check_runtime_broadcast, _numpy_kernel
from ..ops.fused import Fused
from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.shared import HostPlacement, current_placement
from ..symbolic.trace import format_trace
from ..symbolic.types import TensorType
from . import register

_counter = itertools.count()


class NodeError(Exception):
    """Marker base for errors raised while computing a node (also a ValueError or TypeError)."""


_ERROR_TYPES: dict[type, type] = {}


def _wrapped_error_type(orig: type) -> type:
    """The type to re-raise ``orig`` as: the same class if it is a ValueError/TypeError
    subclass, else a class deriving from both it and ValueError (IndexError, ZeroDivision...)."""
    if orig not in _ERROR_TYPES:
        bases = (orig, NodeError) if issubclass(orig, (ValueError, TypeError)) else (
            orig, ValueError, NodeError)
        # the original's module, so a traceback reads "ValueError: ...", as the user expects
        attrs = {"__module__": orig.__module__, "__qualname__": orig.__qualname__}
        try:
            _ERROR_TYPES[orig] = type(orig.__name__, bases, attrs)
        except TypeError:  # layout conflict: fall back on a plain ValueError
            _ERROR_TYPES[orig] = type(orig.__name__, (ValueError, NodeError), attrs)
    return _ERROR_TYPES[orig]


def describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        return f"{value.dtype} array of shape {np.shape(value)}"
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # a device array: the same words
        return f"{value.dtype} array of shape {tuple(value.shape)}"
    return type(value).__name__


class Ctx:
    """What an ``EMITTERS`` entry needs: name the things it binds into the generated code."""

    def __init__(self):
        self.namespace: dict[str, Any] = {"ndarray": np.ndarray, "_asarray": np.asarray}
        self._n = itertools.count()

    def bind(self, value: Any, prefix: str = "g") -> str:
        name = f"{prefix}{next(self._n)}"
        self.namespace[name] = value
        return name


@dataclass
class Plan:
    """What ``function()`` decided about a graph, for a backend to build it.

    The first ``n_explicit`` graph inputs are arguments (each checked by the matching
    ``input_checks`` entry); the rest are shared variables read from ``shared_containers``. The
    first ``n_outputs`` graph outputs are returned (copied where ``copy_outputs`` says so; as a
    dict when ``output_keys`` is given, alone when ``single_output``); the others are written
    into ``update_containers`` after everything has been computed (copied where
    ``copy_updates`` says so, so that no shared value aliases an argument, a constant or another
    shared value). ``inner`` maps each node whose op holds inner graphs to their compiled
    callables."""

    n_explicit: int
    input_checks: Sequence[Callable]
    shared_containers: Sequence[list]
    n_outputs: int
    update_containers: Sequence[list]
    copy_outputs: Sequence[bool]
    single_output: bool
    name: str = "f"
    copy_updates: Sequence[bool] = ()
    output_keys: Sequence[Any] | None = None
    inner: dict[Apply, list] = field(default_factory=dict)
    # per argument: a Python number may be converted inline (not strict, downcasts allowed)
    python_scalars: Sequence[bool] = ()
    # (given positional args, keyword args) -> all positional args, for any call that is not
    # the plain positional one (None: the function takes its arguments positionally only)
    bind: Callable | None = None
    # an update may be computed into its shared variable's own buffer once nothing reads the
    # old value (memory planning; the checking mode, which keeps the old values to compare,
    # turns it off)
    inplace_updates: bool = False
    # per output: Out(x, borrow=True), which a device backend leaves on the device
    borrow_outputs: Sequence[bool] = ()
    # A probe (profiling, the NaN guard: compile/profiling.py, compile/nanguardmode.py), or
    # None. ``probe.wrap(node, fn, synchronize)`` returns what the node calls instead of its
    # thunk ``fn`` (same arguments, ``out=`` included; ``synchronize`` waits for a device's
    # queued work, or is None); ``probe.keeps_inputs`` turns the memory plan off, so that a
    # node's arguments still hold their values when it returns. With None the generated
    # function holds no code of the probe's.
    probe: Any = None


# op class -> (node, inner callables) -> thunk; looked up along the op's class hierarchy. Like
# an op's impl, an entry may depend on the op and the node's types only: equal nodes share it.
THUNKS: dict[type, Callable] = {}
# op class -> (node, in_names, out_names, ctx, *branch_blocks) -> lines of code
EMITTERS: dict[type, Callable] = {}


def _entry(table: dict[type, Callable], op: Op) -> Callable | None:
    for cls in type(op).__mro__:
        if cls in table:
            return table[cls]
    return None


def _lazy(op: Op) -> bool:
    """A lazy op this backend can run lazily (it has lines of its own); any other runs eagerly,
    through its ``impl``, with every branch computed."""
    return op.lazy and _entry(EMITTERS, op) is not None


def thunk(node: Apply, inner: Sequence[Callable] = ()) -> Callable:
    """The callable computing ``node`` on numpy arrays: its table entry, else the op's ``impl``
    (with the compiled inner graphs, for an op that holds some), else its checked ``perform``.
    An op that overwrites inputs (``destroy_map``) gets copies of them."""
    op = node.op
    entry = _entry(THUNKS, op)
    if entry is not None:
        fn = entry(node, inner)
    elif type(op).impl is Elemwise.impl:
        fn = _elemwise_thunk(node) or op.impl(node)
    elif type(op).perform is Op.perform:
        fn = op.impl(node, inner) if inner else op.impl(node)
    else:
        fn = None
    fn = fn if fn is not None else _perform_thunk(op, node)
    destroyed = sorted({i for ins in op.destroy_map.values() for i in ins})
    if not destroyed:
        return fn

    # theon does not schedule in-place work: an op that overwrites an input gets a copy,
    # so no caller's array, shared value or other reader of that input sees the change
    def on_copies(*args):
        args = list(args)
        for i in destroyed:
            args[i] = np.array(args[i], copy=True)
        return fn(*args)
    return on_copies


def _elemwise_thunk(node: Apply) -> Callable | None:
    """An Elemwise node's thunk taking ``out=`` when its numpy kernel is a plain ufunc giving
    the output dtype: the ufunc itself where numpy's broadcasting cannot go wrong, else a
    closure that checks the operands as ``Elemwise.impl`` does (before writing anything into
    a buffer it was given). None for any other kernel."""
    op = node.op
    if len(node.outputs) != 1:
        return None
    kernel = _numpy_kernel(op.scalar_op, tuple(x.dtype for x in node.inputs),
                           node.outputs[0].dtype)
    if not (kernel is op.scalar_op.np_fn and isinstance(kernel, np.ufunc) and kernel.nout == 1):
        return None
    checks = _broadcast_checks(node)
    if not checks:
        return kernel
    name = op.scalar_op.name

    def run(*args, out=None):
        if out is not None:
            shp = out.shape
            for i, dims in checks:
                a_shape = args[i].shape
                if a_shape != shp:
                    for d in dims:
                        if a_shape[d] != shp[d]:  # not the shape planned: let run() decide
                            return run(*args)
            try:
                return kernel(*args, out=out)
            except ValueError:  # a buffer numpy refuses (read-only, another shape)
                return run(*args)
        res = kernel(*args)
        shp = res.shape
        for i, dims in checks:
            a_shape = args[i].shape
            if a_shape != shp:
                _check_runtime_broadcast(name, node, i, a_shape, shp, dims)
        return res
    run.takes_out = True
    return run


def takes_out(fn: Callable) -> bool:
    """Whether a thunk follows the ``out=`` protocol (see the module docstring)."""
    return fn.__class__ is np.ufunc and fn.nout == 1 or getattr(fn, "takes_out", False) is True


def same_shape_broadcasting(node: Apply) -> list[int]:
    """For an op broadcasting as Theano does (a dimension that does not broadcast must have the
    output's length, or the node fails): the inputs with the output's broadcast pattern, which
    then have exactly its shape."""
    pattern = node.outputs[0].type.broadcastable
    return [i for i, x in enumerate(node.inputs)
            if isinstance(x.type, TensorType) and x.type.broadcastable == pattern]


def _same_shape_elemwise(node: Apply) -> list[int]:
    if type(node.op).impl is not Elemwise.impl:  # another impl may broadcast as it likes
        return []
    return same_shape_broadcasting(node)


def _same_shape_gemm(node: Apply) -> list[int]:
    """Gemm's addend, when it does not broadcast into the product."""
    at = node.op._inputs(list(range(5))).index(0)  # where z is among the inputs
    z = node.inputs[at]
    return [at] if z.type.broadcastable == node.outputs[0].type.broadcastable else []


#: op class -> (node -> indices of the inputs whose shape is the single output's whenever the
#: node runs without error). The memory plan proves a dead buffer fits an output with these.
SAME_SHAPE: dict[type, Callable[[Apply], list[int]]] = {
    Elemwise: _same_shape_elemwise,
    Fused: same_shape_broadcasting,  # its numpy thunk and its C kernels check the pattern
    Gemm: _same_shape_gemm,
}


def _perform_thunk(op: Op, node: Apply) -> Callable:
    """Wrap a user's ``perform`` and check what it stores against the declared output types."""
    nout = len(node.outputs)
    types = [o.type for o in node.outputs]

    def run(*inputs):
        storage = [[None] for _ in range(nout)]
        op.perform(node, list(inputs), storage)
        values = []
        for i, (store, t) in enumerate(zip(storage, types)):
            value = store[0]
            if isinstance(t, TensorType):
                if not isinstance(value, np.ndarray):
                    value = np.asarray(value)
                if value.dtype != t.numpy_dtype or value.ndim != t.ndim or any(
                        n is not None and n != m for n, m in zip(t.shape, value.shape)):
                    raise TypeError(
                        f"{op}.perform stored for output {i} an array of dtype {value.dtype} "
                        f"and shape {value.shape}, but make_node declared {t}")
            values.append(value)
        return values[0] if nout == 1 else tuple(values)

    return run


class NumpyBackend:
    """Linker ``'py'``: the schedule as one generated Python function over numpy, or, for a
    large schedule, a generated wrapper running a table of steps (see ``TABLE_NODES``)."""

    name = "py"

    def thunk(self, node: Apply, inner: Sequence[Callable] = ()) -> Callable:
        return thunk(node, inner)

    def build(self, fgraph, plan: Plan) -> Callable:
        """Generate the Python function computing ``fgraph`` as ``plan`` says."""
        return _with_host_values(_build(self, fgraph, plan), fgraph, plan)


def _with_host_values(fn: Callable, fgraph, plan: Plan) -> Callable:
    """``fn``, which computes on the host, around shared values that a device configured
    since keeps in device memory (a function compiled for a CPU linker while
    ``device=cuda``): each call reads host copies of them and puts the values it leaves,
    updates included, back where they live. Without a device, ``fn`` itself."""
    placement = current_placement()
    if config.device == "cpu" or isinstance(placement, HostPlacement) or not (
            plan.shared_containers or plan.update_containers):
        return fn
    types = {id(c): v.type for c, v in zip(plan.shared_containers,
                                           fgraph.inputs[plan.n_explicit:])}
    containers = list({id(c): c for c in (*plan.shared_containers,
                                          *plan.update_containers)}.values())

    def run(*args, **kwargs):
        for c in containers:
            if placement.is_device_array(c[0]):
                c[0] = placement.to_host(c[0])
        try:
            return fn(*args, **kwargs)
        finally:
            for c in containers:
                ttype = types.get(id(c))
                if ttype is not None and not placement.is_device_array(c[0]):
                    c[0] = placement.place(np.asarray(c[0]), ttype)
    # (not ``body``: a loop running the body itself would skip the copies)
    run.__dict__.update({k: v for k, v in fn.__dict__.items() if k != "body"})
    run.__wrapped__ = fn  # (what it runs, for introspection: the generated function)
    return run


#: Schedules of at least this many nodes run as a table of steps (``_run``) instead of one
#: generated line per node. Per node, the table builds in under a third of the time (no
#: compile) and each call costs about 0.1 us more (a node's numpy call costs 1 us or more): it
#: pays off for a function called fewer than a few hundred times, and for a large graph the
#: build, not the extra call cost, is what a user waits for.
TABLE_NODES = 2000


class _Schedule:
    """The order the nodes run in, which nodes each lazy node's branches hold, and where each
    variable is used last."""

    def __init__(self, fgraph):
        self.order = order = fgraph.toposort()
        # op class -> its EMITTERS entry, for every op class of the schedule
        self.hooks: dict[type, Callable | None] = {}
        for node in order:
            if node.op.__class__ not in self.hooks:
                self.hooks[node.op.__class__] = _entry(EMITTERS, node.op)
        lazy = [n for n in order if n.op.lazy and self.hooks[n.op.__class__] is not None]
        self.placement = place_branches(order, fgraph, lazy) if lazy else {}
        if lazy:
            children: dict[Any, list[Apply]] = {}
            for node in order:
                children.setdefault(self.placement.get(node), []).append(node)
            self.top = children.get(None, [])
            self.children = children
            self.flat: list[Apply] = []
            _flatten(self.top, children, self.flat)
        else:  # every node at the top level, in topological order
            self.top = self.flat = order
            self.children = {}
        last_use: dict[Variable, int] = {}
        for pos, node in enumerate(self.flat):
            for inp in node.inputs:
                last_use[inp] = pos
        self.last_use = last_use
        self.position = {node: pos for pos, node in enumerate(self.flat)}
        self.keep = set(fgraph.outputs) | set(fgraph.inputs)


class _Thunks:
    """The thunks of one build.

    Nodes with equal ops and the same input and output types share one thunk: what an op's
    ``impl`` or table entry returns depends on nothing else, so a graph repeating a few
    operations makes a few closures instead of one per node. An op's ``perform`` (user code that
    receives the node), an op with inner graphs and a backend overriding ``thunk`` (which may
    wrap each node: a profiler) get one call per node, as before."""

    def __init__(self, backend: NumpyBackend, inner: dict):
        self.backend, self.inner = backend, inner
        self.per_node = type(backend).thunk is not NumpyBackend.thunk
        self._shareable: dict[type, bool] = {}
        self._op_no: dict[int, int] = {}    # id(op) -> number shared by equal ops, -1: unshared
        self._ops: dict[Op, int] = {}
        # (op number, input types, output types) -> thunk. Types by identity: equal types are
        # mostly one instance, and the graph keeps each alive while the build runs.
        self._cache: dict[tuple, Callable] = {}
        self._per_node: dict[Apply, Callable] = {}  # the thunks made for one node each

    def get(self, node: Apply) -> Callable:
        if self.per_node or node in self.inner:
            fn = self._per_node.get(node)
            if fn is None:
                fn = self._per_node[node] = self.backend.thunk(node, self.inner.get(node, ()))
            return fn
        k = self._op_no.get(id(node.op))
        if k is None:
            k = self._number_op(node.op)
        if k < 0:
            fn = self._per_node.get(node)
            if fn is None:
                fn = self._per_node[node] = thunk(node)
            return fn
        ins, outs = node.inputs, node.outputs
        if len(outs) == 1 and len(ins) == 1:  # the common shapes without a list comprehension
            key = (k, id(ins[0].type), id(outs[0].type))
        elif len(outs) == 1 and len(ins) == 2:
            key = (k, id(ins[0].type), id(ins[1].type), id(outs[0].type))
        else:
            key = (k, *[id(v.type) for v in ins], -1, *[id(v.type) for v in outs])
        fn = self._cache.get(key)
        if fn is None:
            fn = self._cache[key] = thunk(node)
        return fn

    def _number_op(self, op: Op) -> int:
        cls = type(op)
        shareable = self._shareable.get(cls)
        if shareable is None:
            shareable = self._shareable[cls] = (
                _entry(THUNKS, op) is not None or cls.perform is Op.perform)
        k = -1
        if shareable:
            try:
                k = self._ops.setdefault(op, len(self._ops))
            except TypeError:  # props that do not hash: a thunk per node
                pass
        self._op_no[id(op)] = k
        return k


class _MemoryPlan:
    """Which node writes its output into which buffer (see the module docstring).

    ``into`` maps a node to the variable whose buffer receives its output: a dead intermediate
    computed in the same block (then the output takes that variable's name), or the shared
    variable whose update it computes. ``held`` are the intermediates kept past their last use
    until the node taking their buffer runs (so neither deleted nor renamed at their last
    use); ``guarded`` the nodes whose buffer (a shared value) may turn out to be read-only and
    whose thunk (a bare ufunc) would then fail, so the line hands the buffer over only if it is
    writable."""

    def __init__(self, sched: _Schedule, thunks: _Thunks, fgraph, plan: Plan):
        self.into: dict[Apply, Variable] = {}
        self.held: set[Variable] = set()
        self.guarded: set[Apply] = set()
        flat, position, placement = sched.flat, sched.position, sched.placement
        takers = {}  # node -> its thunk, for the nodes that can write into a given buffer
        for node in flat:
            outs = node.outputs
            if len(outs) != 1 or node.op.view_map or node.op.destroy_map or \
                    not isinstance(outs[0].type, TensorType) or outs[0].type.ndim == 0:
                continue
            fn = thunks.get(node)
            if takes_out(fn):
                takers[node] = fn
        if not takers:
            return
        never = len(flat)  # the position of a buffer read after the last node
        n_explicit = plan.n_explicit
        # shared variables with one storage (a shared variable and its clones) as one buffer
        storage: dict[int, Variable] = {}
        canon: dict[Variable, Variable] = {}
        for var, box in zip(fgraph.inputs[n_explicit:], plan.shared_containers):
            canon[var] = storage.setdefault(id(box), var)
        # the buffers each view may share (the ops' view_map), as their base variables
        bases: dict[Variable, set] = {}
        for node in flat:
            for o, ins in node.op.view_map.items():
                base = set()
                for i in ins:
                    v = node.inputs[i]
                    base |= bases.get(v) or {canon.get(v, v)}
                bases[node.outputs[o]] = base
        # where each buffer is read last (outputs and update values: after everything)
        death: dict[Variable, int] = {}
        for v, pos in sched.last_use.items():
            for b in bases.get(v) or (canon.get(v, v),):
                if death.get(b, -1) < pos:
                    death[b] = pos
        returned = fgraph.outputs[:plan.n_outputs]
        for v in fgraph.outputs:
            for b in bases.get(v) or (canon.get(v, v),):
                death[b] = never
        # update value -> the shared variable whose storage it may be computed into
        targets: dict[Variable, Variable] = {}
        if plan.inplace_updates:
            exposed = set()  # buffers a caller receives without a copy
            for v, copy in zip(returned, plan.copy_outputs):
                if not copy:
                    exposed |= bases.get(v) or {v}
            owner_of = {id(box): canon[var] for var, box in
                        zip(fgraph.inputs[n_explicit:], plan.shared_containers)}
            copies = list(plan.copy_updates) + [False] * len(plan.update_containers)
            for k, (v, box) in enumerate(zip(fgraph.outputs[plan.n_outputs:],
                                             plan.update_containers)):
                w = owner_of.get(id(box))
                if w is None or copies[k] or v.owner not in takers or v in exposed or \
                        v.type.dtype != w.type.dtype or v.type.ndim != w.type.ndim:
                    continue
                targets[v] = w
        # intermediates whose buffer can be handed on once dead: fresh arrays (a taker's)
        free_at: dict[int, list[Variable]] = {}
        for node in takers:
            v = node.outputs[0]
            at = death.get(v, position[node])
            if at < never:
                free_at.setdefault(at, []).append(v)
        # Shapes known equal: static shapes, or a chain of SAME_SHAPE relations made by nodes
        # that ran before (top-level nodes: a branch's node may not have run).
        parent: dict[Variable, Variable] = {}

        def find(v):
            root = v
            while root in parent:
                root = parent[root]
            while v is not root:  # path compression
                parent[v], v = root, parent[v]
            return root

        def same_shape(node) -> list[int]:
            rule = _entry(SAME_SHAPE, node.op)
            return rule(node) if rule is not None else []

        def fits(b: Variable, out: Variable, node: Apply) -> bool:
            if b.type.dtype != out.type.dtype or b.type.ndim != out.type.ndim:
                return False
            shape = b.type.shape
            if None not in shape and shape == out.type.shape:
                return True
            group = find(b)
            return any(find(node.inputs[i]) is group for i in same_shape(node))

        pools: dict[Any, list[Variable]] = {}
        into, held = self.into, self.held
        for pos, node in enumerate(flat):
            for v in free_at.get(pos, ()):
                pools.setdefault(placement.get(v.owner), []).append(v)
            block = placement.get(node)
            fn = takers.get(node)
            if fn is not None:
                out = node.outputs[0]
                w = targets.get(out)
                if w is not None and death.get(w, -1) <= pos and fits(w, out, node):
                    into[node] = w
                    if fn.__class__ is np.ufunc:
                        self.guarded.add(node)
                else:
                    pool = pools.get(block, ())
                    for k in range(len(pool) - 1, -1, -1):  # the latest to die first
                        b = pool[k]
                        if fits(b, out, node):
                            del pool[k]
                            into[node] = b
                            if death.get(b, position[b.owner]) < pos:
                                held.add(b)
                            break
            if block is None and len(node.outputs) == 1:
                for i in same_shape(node):
                    a, b = find(node.inputs[i]), find(node.outputs[0])
                    if a is not b:
                        parent[b] = a


class _Code:
    """Renders nodes as lines of Python: the whole schedule in code mode, a lazy node with its
    branches (a segment) in table mode. ``render`` gives ``(text, owner)`` pairs, ``owner``
    naming the node a line computes for the error message. ``probe``: (node, thunk) -> the
    callable the node's line calls instead (one per node)."""

    def __init__(self, sched: _Schedule, thunks: _Thunks, ctx: Ctx, keep: set,
                 params: list | None = None, fnames: dict[int, str] | None = None,
                 memory: _MemoryPlan | None = None, probe: Callable | None = None):
        self.sched, self.thunks, self.ctx, self.keep = sched, thunks, ctx, keep
        self.probe = probe
        self.into = memory.into if memory is not None else {}
        self.held = memory.held if memory is not None else set()
        self.guarded = memory.guarded if memory is not None else set()
        self.names: dict[Variable, str] = {}
        # None: every variable is named before use; a list: variables computed outside the
        # rendered nodes become parameters, listed here
        self.params = params
        self.defined_in: dict[Variable, Any] = {}
        self._counter = itertools.count()
        self._comments: dict[int, str] = {}
        # id(thunk) -> its name in ctx (shared by the renderers of one namespace)
        self._fnames: dict[int, str] = {} if fnames is None else fnames
        # 0-d values computed as arrays (a ufunc called with out=...): returned as they are
        self.arrays: set[Variable] = set()

    def ref(self, var: Variable) -> str:
        name = self.names.get(var)
        if name is None:
            if isinstance(var, Constant):
                name = self.ctx.bind(var.data, "c")
            elif self.params is not None:
                name = f"p{len(self.params)}"
                self.params.append(var)
            else:
                raise RuntimeError(f"internal error: {var!r} used before it is computed")
            self.names[var] = name
        return name

    def _visible(self, var: Variable, block) -> bool:
        """Deleting ``var`` in ``block`` is safe: it was defined there or in an enclosing one."""
        home = self.defined_in.get(var)
        placement = self.sched.placement
        while True:
            if home == block:
                return True
            if block is None:
                return False
            block = placement.get(block[0])

    def render(self, nodes: list[Apply], block) -> list[tuple]:
        sched, names, keep, ref = self.sched, self.names, self.keep, self.ref
        into, held = self.into, self.held
        last_use, position, children = sched.last_use, sched.position, sched.children
        hooks, defined_in, counter = sched.hooks, self.defined_in, self._counter
        fnames, comments, thunk_of = self._fnames, self._comments, self.thunks.get
        probe = self.probe
        out: list[tuple] = []
        append = out.append
        for node in nodes:
            op = node.op
            hook = hooks[op.__class__]
            if hook is not None and op.lazy:  # its branches' nodes go inside its lines
                blocks = [self.render(children.get((node, b), []), (node, b))
                          for b in range(len(op.branch_inputs(node)))]
            ins, outs = node.inputs, node.outputs
            in_names = [names.get(i) or ref(i) for i in ins]
            pos = position[node]
            dead = []
            for v, name in zip(ins, in_names):
                # its last use, not kept, computed here (or in a block around this one), and
                # not already listed (an input given twice)
                if last_use[v] == pos and v.owner is not None and v not in keep and (
                        defined_in.get(v) is None if block is None else self._visible(v, block)
                        ) and name not in dead and v not in held:
                    dead.append(name)
            owner = (node, in_names)
            target = into.get(node) if into else None
            if target is not None:
                # the output is computed into a dead buffer (the plan's) and takes its name,
                # or into a shared variable's own storage (then under a name of its own)
                buffer = names.get(target) or ref(target)
                if target.owner is None:
                    name = f"v{next(counter)}"
                else:
                    name = buffer
                    if name in dead:
                        dead.remove(name)
                (o,) = outs
                names[o] = name
                defined_in[o] = block
                fn = thunk_of(node)
                fname = fnames.get(id(fn)) if probe is None else \
                    self.ctx.bind(probe(node, fn), "f")
                if fname is None:
                    fname = fnames[id(fn)] = self.ctx.bind(fn, "f")
                comment = comments.get(id(op))
                if comment is None:
                    comment = comments[id(op)] = _comment(node)
                if node in self.guarded:  # a bare ufunc cannot fall back on a read-only array
                    buffer = f"{buffer} if {buffer}.flags.writeable else None"
                append((f"{name} = {fname}({', '.join(in_names)}, out={buffer})  # {comment}",
                        owner))
            elif hook is None:
                # A plain call's output takes the name of an input it is the last use of:
                # ``v3 = f(v3, v5)`` drops the old value when the new one is bound, as a
                # ``del`` would, with one line less to generate and compile.
                out_names = []
                for o in outs:
                    names[o] = name = dead.pop(0) if dead else f"v{next(counter)}"
                    defined_in[o] = block
                    out_names.append(name)
                fn = thunk_of(node)
                fname = fnames.get(id(fn)) if probe is None else \
                    self.ctx.bind(probe(node, fn), "f")
                if fname is None:
                    fname = fnames[id(fn)] = self.ctx.bind(fn, "f")
                comment = comments.get(id(op))
                if comment is None:  # str(op) costs: once per op, not per node
                    comment = comments[id(op)] = _comment(node)
                args = ", ".join(in_names)
                if ZERO_D_ARRAYS and fn.__class__ is np.ufunc and fn.nout == 1 and \
                        outs[0].type.ndim == 0:
                    # a ufunc gives a numpy scalar for 0-d operands, which a result must not
                    # be; out=... makes it give the 0-d array itself (no asarray afterwards)
                    args += ", out=..."
                    self.arrays.add(outs[0])
                append((f"{', '.join(out_names)} = {fname}({args})  # {comment}", owner))
            else:
                out_names = []
                for o in outs:
                    names[o] = name = f"v{next(counter)}"
                    defined_in[o] = block
                    out_names.append(name)
                if op.lazy:
                    out += [t if isinstance(t, tuple) else (t, owner)
                            for t in hook(node, in_names, out_names, self.ctx, *blocks)]
                else:
                    out += [(text, owner) for text in hook(node, in_names, out_names, self.ctx)]
            for v in outs:
                if v not in last_use and v not in keep and v not in held:
                    dead.append(names[v])
            if dead:
                append((f"del {', '.join(dead)}", None))
        return out


def _ufunc_takes_ellipsis() -> bool:
    """Whether ufuncs take ``out=...`` (NumPy 2.3 and later): they then return a 0-d array
    where they would give a scalar."""
    try:
        return isinstance(np.add(np.array(1.0), np.array(1.0), out=...), np.ndarray)
    except TypeError:
        return False


ZERO_D_ARRAYS = _ufunc_takes_ellipsis()


# How a step of a table reads its inputs (its third field, ``b``): b >= 0, two registers a
# and b; ONE, register a; GETTER, any other number, ``a(r)`` being their sequence; CLEAR, no
# call: the step drops the value in its output register; INTO, as GETTER, the output computed
# into the buffer its register holds (``out=``, the memory plan's).
ONE, GETTER, CLEAR, INTO = -1, -2, -3, -4


def _NO_ARGS(r: list) -> tuple:
    """The getter of a step without inputs."""
    return ()


def _run(r: list, steps: list, nodes: list) -> None:
    """Run a table mode schedule over the registers ``r``: each step ``(fn, a, b, out)``
    computes ``r[out] = fn(...)`` from the registers ``a`` and ``b`` say (``out`` a slice for
    several outputs); ``nodes`` holds the node of each step, for the error message. One loop with
    the common arities spelled out: a call with its arguments listed costs far less than
    ``fn(*get(r))``. (The kinds are literals here: a constant is cheaper to load than a global.
    The node is not in the step: reading it would touch one more object, far apart in memory,
    per step.)"""
    it = iter(steps)
    try:
        for fn, a, b, out in it:
            if b >= 0:
                r[out] = fn(r[a], r[b])
            elif b == -1:  # ONE
                r[out] = fn(r[a])
            elif b == -3:  # CLEAR
                r[out] = None
            elif b == -2:  # GETTER
                r[out] = fn(*a(r))
            else:  # INTO
                r[out] = fn(*a(r), out=r[out])
    except Exception as err:
        if isinstance(err, NodeError):
            raise
        node = nodes[len(steps) - it.__length_hint__() - 1]  # the step the loop was at
        if node is None:
            raise
        values = [r[a], r[b]] if b >= 0 else [r[a]] if b == ONE else list(a(r))
        raise node_error(err, node, values) from err


def _writable_only(fn: Callable) -> Callable:
    """A bare ufunc handed a shared value's storage, which may be read-only: then it makes a
    new array, as a thunk following the ``out=`` protocol would."""
    def run(*args, out):
        return fn(*args, out=out if out.flags.writeable else None)
    return run


def _unpacking(fn: Callable, n: int) -> Callable:
    """``fn`` returning exactly ``n`` values, as ``a, b = fn(...)`` would insist."""
    def run(*args):
        values = tuple(fn(*args))
        if len(values) != n:
            raise ValueError(f"{'too many' if len(values) > n else 'not enough'} values to "
                             f"unpack (expected {n}, got {len(values)})")
        return values
    return run


class _Table:
    """A table mode schedule: the steps ``_run`` runs, over a list of registers holding the
    inputs (first), the constants, and the values computed. A computed value takes the register
    of an input it is the last use of, else a free one; one whose last use has passed is
    cleared at once (a step of its own), so peak memory follows liveness as in code mode.
    A step is a tuple of numbers and shared objects (thunks, the clearing steps), so a large
    table is cheap to build and leaves little for the garbage collector to walk."""

    def __init__(self, sched: _Schedule, thunks: _Thunks, inputs: list, label: str,
                 memory: _MemoryPlan | None = None, probe: Callable | None = None):
        self.sched, self.thunks, self.label = sched, thunks, label
        self.memory, self.probe = memory, probe
        self.slot: dict[Variable, int] = {v: k for k, v in enumerate(inputs)}
        self.n_inputs = len(inputs)
        self.init: list = []      # registers from n_inputs on: constants, None for the others
        self.free: list[int] = []
        self.steps: list[tuple] = []
        self.nodes: list[Apply | None] = []  # the node of each step (None: no node of its own)
        self._clears: dict[int, tuple] = {}       # register -> the step clearing it
        # each lazy node's function: (name, input registers, comment, index of its step), in
        # one generated module (seg_lines, line number -> owner in seg_owner)
        self.segments: list[tuple] = []
        self.seg_ctx = Ctx()
        self.seg_lines: list[str] = []
        self.seg_owner: dict[int, Any] = {}
        self._seg_fnames: dict[int, str] = {}
        self.seg_file = f"<{label}, lazy nodes>"
        self.seg_source = ""

    def new_slot(self, value: Any = None) -> int:
        self.init.append(value)
        return self.n_inputs + len(self.init) - 1

    def slot_of(self, var: Variable) -> int:
        s = self.slot.get(var)
        if s is None:
            if not isinstance(var, Constant):
                raise RuntimeError(f"internal error: {var!r} used before it is computed")
            s = self.slot[var] = self.new_slot(var.data)
        return s

    @staticmethod
    def reads(slots: list[int]) -> tuple:
        """The ``a, b`` fields of a step reading ``slots``."""
        n = len(slots)
        if n == 2:
            return slots[0], slots[1]
        if n == 1:
            return slots[0], ONE
        return (itemgetter(*slots) if slots else _NO_ARGS), GETTER

    def _several(self, node: Apply) -> slice:
        """New adjacent registers for a node's several outputs (a slice assignment fills
        them)."""
        first = self.n_inputs + len(self.init)
        self.init.extend([None] * len(node.outputs))
        for k, v in enumerate(node.outputs):
            self.slot[v] = first + k
        return slice(first, first + len(node.outputs))

    def _clear(self, slots: list[int]) -> None:
        for s in slots:
            step = self._clears.get(s)
            if step is None:
                step = self._clears[s] = (None, 0, CLEAR, s)
            self.steps.append(step)
            self.nodes.append(None)
            self.free.append(s)

    def build(self) -> None:
        sched, slot, free = self.sched, self.slot, self.free
        last_use, keep, position, hooks = sched.last_use, sched.keep, sched.position, sched.hooks
        append, thunk_of, reads = self.steps.append, self.thunks.get, self.reads
        append_node = self.nodes.append
        memory, probe = self.memory, self.probe
        into = memory.into if memory is not None else {}
        held = memory.held if memory is not None else ()
        for node in sched.top:
            if hooks[node.op.__class__] is not None:
                self._segment(node)
                continue
            fn = thunk_of(node)
            pos = position[node]
            in_slots = []
            dead = []
            for v in node.inputs:
                s = slot.get(v)
                if s is None:
                    s = self.slot_of(v)
                in_slots.append(s)
                if last_use[v] == pos and v.owner is not None and v not in keep \
                        and s not in dead and v not in held:
                    dead.append(s)
            outs = node.outputs
            target = into.get(node) if into else None
            if target is not None:  # computed into the buffer in the target's register
                out = slot[outs[0]] = slot[target]
                if out in dead:
                    dead.remove(out)
                if node in memory.guarded:
                    fn = _writable_only(fn)
                if probe is not None:
                    fn = probe(node, fn)
                getter = itemgetter(*in_slots) if len(in_slots) > 1 else \
                    itemgetter(slice(in_slots[0], in_slots[0] + 1))
                append((fn, getter, INTO, out))
                append_node(node)
            elif len(outs) == 1:
                out = slot[outs[0]] = dead.pop(0) if dead else free.pop() if free else \
                    self.new_slot()
            else:
                out = self._several(node)
                fn = _unpacking(fn, len(outs))
            if target is None:
                if probe is not None:
                    fn = probe(node, fn)
                append((fn, *reads(in_slots), out))
                append_node(node)
            for v in outs:
                if v not in last_use and v not in keep and v not in held:
                    dead.append(slot[v])
            if dead:
                self._clear(dead)
        if self.segments:
            self._compile_segments()

    def _segment(self, node: Apply) -> None:
        """A node with lines of its own (a lazy ``ifelse`` and the nodes of its branches) runs
        as a small generated function of the values it reads, returning its outputs. The
        functions of all such nodes are compiled together, once the table is built (one
        compile() each cost more than their lines)."""
        sched = self.sched
        params: list[Variable] = []
        code = _Code(sched, self.thunks, self.seg_ctx, sched.keep | set(node.outputs), params,
                     self._seg_fnames, memory=self.memory, probe=self.probe)
        name = f"segment{len(self.segments)}"
        body = code.render([node], None)  # names the parameters as it meets them
        lines, line_owner = self.seg_lines, self.seg_owner
        lines += [f"def {name}({', '.join(code.names[p] for p in params)}):", "    try:"]
        for text, owner in body:
            lines.append("        " + text)
            if owner is not None:
                line_owner[len(lines)] = owner
        lines += ["    except Exception as _e:", "        _raise(_e)",
                  f"    return {', '.join(code.names[o] for o in node.outputs)}"]
        in_slots = [self.slot_of(p) for p in params]
        self.segments.append((name, in_slots, _comment(node), len(self.steps)))
        if len(node.outputs) == 1:
            out = self.slot[node.outputs[0]] = self.free.pop() if self.free else self.new_slot()
        else:
            out = self._several(node)
        self.steps.append((None, *self.reads(in_slots), out))  # fn: once compiled
        self.nodes.append(None)  # the function names its failing node itself
        pos = sched.position[node]
        dead = [self.slot[p] for p in params
                if sched.last_use[p] <= pos and p.owner is not None and p not in sched.keep]
        dead += [self.slot[v] for v in node.outputs
                 if v not in sched.last_use and v not in sched.keep]
        if dead:
            self._clear(dead)

    def _compile_segments(self) -> None:
        """Compile the lazy nodes' functions and put each in its step."""
        ctx = self.seg_ctx
        ctx.namespace["_raise"] = _make_raiser(self.seg_owner, ctx.namespace)
        self.seg_source = "\n".join(self.seg_lines) + "\n"
        linecache.cache[self.seg_file] = (len(self.seg_source), None,
                                          self.seg_source.splitlines(True), self.seg_file)
        exec(compile(self.seg_source, self.seg_file, "exec"), ctx.namespace)  # noqa: S102
        for name, _, _, k in self.segments:
            self.steps[k] = (ctx.namespace[name], *self.steps[k][1:])

    def describe(self) -> str:
        """The steps as text, one line each, for ``source``."""
        reg = [f"r[{s}]" for s in range(self.n_inputs + len(self.init))]
        names: dict[int, str] = {}
        comments: dict[int, str] = {}
        args: dict[int, str] = {}
        segments = iter(self.segments)
        lines = ["# the schedule: _run(r, steps, nodes) runs each step r[out] = fn(*r[ins])"]
        append = lines.append
        for (fn, a, b, out), node in zip(self.steps, self.nodes):
            if b == CLEAR:
                append(f"#   {reg[out]} = None")
                continue
            target = f"r[{out.start}:{out.stop}]" if out.__class__ is slice else reg[out]
            if node is None:  # a lazy node's function
                name, slots, comment, _ = next(segments)
                append(f"#   {target} = {name}({', '.join([reg[s] for s in slots])})"
                       f"  # {comment}")
                continue
            name = names.get(id(fn))
            if name is None:
                name = names[id(fn)] = f"f{len(names)}"
            comment = comments.get(id(node.op))
            if comment is None:
                comment = comments[id(node.op)] = _comment(node)
            if b >= 0:
                text = f"{reg[a]}, {reg[b]}"
            elif b == ONE:
                text = reg[a]
            elif a is _NO_ARGS:
                text = ""
            else:  # an itemgetter: its registers are in its pickling recipe
                text = args.get(id(a))
                if text is None:
                    slots = a.__reduce__()[1]
                    if len(slots) == 1 and isinstance(slots[0], slice):
                        slots = range(slots[0].start, slots[0].stop)
                    text = args[id(a)] = ", ".join([reg[s] for s in slots])
            if b == INTO:
                text = f"{text}, out={target}"
            append(f"#   {target} = {name}({text})  # {comment}")
        return "\n".join(lines) + "\n" + self.seg_source


def _build(backend: NumpyBackend, fgraph, plan: Plan, array_type: type = np.ndarray,
           asarray: Callable = np.asarray, synchronize: Callable | None = None) -> Callable:
    """The generated function. A device backend gives the class an argument must have to
    skip its full check (``array_type``), what makes a 0-d result an array (``asarray``) and
    what waits for its queued work (``synchronize``, for a probe timing nodes)."""
    n_explicit, input_checks = plan.n_explicit, plan.input_checks
    shared_containers, n_outputs = plan.shared_containers, plan.n_outputs
    update_containers, copy_outputs = plan.update_containers, plan.copy_outputs
    single_output, name, output_keys = plan.single_output, plan.name, plan.output_keys
    copy_updates = plan.copy_updates
    sched = _Schedule(fgraph)
    thunks = _Thunks(backend, plan.inner)
    ctx = Ctx()
    ctx.namespace.update(ndarray=array_type, _asarray=asarray)
    probe = memory = None
    if plan.probe is not None:
        if synchronize is None:
            synchronize = getattr(backend, "synchronize", None)
        wrap = plan.probe.wrap

        def probe(node: Apply, fn: Callable) -> Callable:
            return wrap(node, fn, synchronize)
    if plan.probe is None or not plan.probe.keeps_inputs:
        memory = _MemoryPlan(sched, thunks, fgraph, plan)
    lines: list[str] = []
    line_owner: dict[int, Any] = {}
    filename = f"<theon function {name} #{next(_counter)}>"

    def emit(text: str, owner: Any = None, indent: int = 1) -> None:
        lines.append("    " * indent + text)
        if owner is not None:
            line_owner[len(lines) + 1] = owner  # +1: the 'def' line comes first

    # -- arguments and their checks -----------------------------------------------------------
    # Every parameter defaults to a marker, so that a call by keyword, with defaults or with
    # too few or too many arguments takes one slow path (plan.bind, which names what is wrong)
    # and the common positional call pays a few identity tests.
    args = [f"_i{k}" for k in range(n_explicit)]
    if plan.bind is not None:
        missing = " or ".join(["_rest", "_kw"] + [f"{a} is _M" for a in args])
        emit(f"if {missing}:", "input")
        given = ctx.bind(_given, "_given")
        emit(f"return _self(*{ctx.bind(plan.bind, 'bind')}({given}(({', '.join(args)}"
             f"{',' if len(args) == 1 else ''}), _rest), _kw))", "input", indent=2)
    checks = []
    for k, var in enumerate(fgraph.inputs[:n_explicit]):
        checks += _check_lines(ctx, args[k], var.type, ctx.bind(input_checks[k], "check"),
                               plan.python_scalars[k] if plan.python_scalars else False)
    if checks:
        emit("if _check:", "input")
        for text in checks:
            emit(text, "input", indent=2)
    shared = [f"{ctx.bind(container, 'S')}[0]" for container in shared_containers]

    # -- the schedule -------------------------------------------------------------------------
    table = None
    if len(sched.order) >= TABLE_NODES:
        table = _Table(sched, thunks, list(fgraph.inputs), filename[1:-1], memory, probe)
        table.build()
        ref = lambda var: f"r[{table.slot_of(var)}]"  # noqa: E731
        registers = ", ".join(args + shared)
        emit(f"r = [{registers}] + {ctx.bind(table.init, '_T')}")
        emit(f"{ctx.bind(_run, '_run')}(r, {ctx.bind(table.steps, '_steps')}, "
             f"{ctx.bind(table.nodes, '_nodes')})")
    else:
        code = _Code(sched, thunks, ctx, sched.keep, memory=memory, probe=probe)
        ref = code.ref
        for k, var in enumerate(fgraph.inputs):
            code.names[var] = args[k] if k < n_explicit else f"s{k - n_explicit}"
        for k, value in enumerate(shared):
            emit(f"s{k} = {value}")
        emit("try:")
        body_lines = code.render(sched.top, None)
        for text, owner in body_lines:
            emit(text, owner, indent=2)
        if not sched.order:
            emit("pass", indent=2)
        raiser = ctx.bind(_make_raiser(line_owner, ctx.namespace), "_raise")
        emit("except Exception as _e:")
        emit(f"{raiser}(_e)", indent=2)

    # -- updates and results ------------------------------------------------------------------
    copy_updates = list(copy_updates) + [False] * (len(update_containers) - len(copy_updates))
    for var, container, copy in zip(fgraph.outputs[n_outputs:], update_containers, copy_updates):
        value = f"{ref(var)}.copy()" if copy else ref(var)
        emit(f"{ctx.bind(container, 'U')}[0] = {value}")
    results = []
    for var, copy in zip(fgraph.outputs[:n_outputs], copy_outputs):
        expr = ref(var)
        if copy:
            expr = f"{expr}.copy()"
        if var.type.ndim == 0 and not (table is None and var in code.arrays and not copy):
            expr = f"_asarray({expr})"
        results.append(expr)
    if single_output:
        emit(f"return {results[0]}")
    elif output_keys is not None:  # function() was given a dict of outputs
        emit(f"return dict(zip({ctx.bind(tuple(output_keys), 'keys')}, "
             f"({', '.join(results)}{',' if len(results) == 1 else ''})))")
    else:
        emit(f"return [{', '.join(results)}]")

    fname = f"theon_{_safe(name)}"
    params = [f"{a}=_M" for a in args] + ["*_rest", "**_kw"] if plan.bind is not None else args
    ctx.namespace.update(_M=_MISSING, _check=True)
    src = f"def {fname}({', '.join(params)}):\n" + "\n".join(lines) + "\n"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    exec(compile(src, filename, "exec"), ctx.namespace)  # noqa: S102 - our own generated code
    fn = ctx.namespace[fname]
    ctx.namespace["_self"] = fn
    fn.source = src if table is None else src + table.describe()
    namespace = ctx.namespace

    def set_trusted(trusted: bool) -> None:  # the generated checks read the global _check
        namespace["_check"] = not trusted
    fn.set_trusted = set_trusted
    # (a probed body is called per step: a loop inlining its lines, or a C loop rewriting
    # them, would skip the probe)
    if table is None and not shared and not update_containers and plan.probe is None and \
            n_explicit == len(fgraph.inputs):
        fn.body = LoopBody(body_lines, namespace, args, results)
    # The source stays in linecache for tracebacks while the function lives, and no longer:
    # a loop compiling many functions must not keep every source.
    weakref.finalize(fn, linecache.cache.pop, filename, None)
    if table is not None and table.segments:
        weakref.finalize(fn, linecache.cache.pop, table.seg_file, None)
    return fn


_MISSING = object()


class LoopBody:
    """A compiled graph as lines of Python that a loop (scan's) writes inline, instead of
    calling the function once per step: no call, no argument checks (the loop's values have
    the graph inputs' types already).

    ``lines`` are ``(text, owner)`` pairs that read the inputs as the names in ``params`` and
    leave the outputs as the expressions in ``results``; their names are bound in
    ``namespace`` (a loop's globals start as a copy of it). A loop wraps the lines in
    ``try:``, and ``raiser(line_owner)`` (the loop's own line numbers -> the owners of the
    lines it took) turns an error into one that names the failing node."""

    def __init__(self, lines: list[tuple], namespace: dict, params: list[str],
                 results: list[str]):
        self.lines, self.namespace = lines, namespace
        self.params, self.results = params, results

    @staticmethod
    def raiser(line_owner: dict[int, Any], namespace: dict[str, Any]) -> Callable:
        return _make_raiser(line_owner, namespace)


def _given(args: tuple, rest: tuple) -> tuple:
    """The positional arguments of a call: those before the first parameter left out."""
    given = []
    for a in args:
        if a is _MISSING:
            break
        given.append(a)
    return tuple(given) + rest


def _check_lines(ctx: Ctx, arg: str, t, check: str, python_scalars: bool) -> list[str]:
    """Code that makes ``arg`` a value of type ``t``: a few attribute tests when it already
    is one, an inline conversion for a Python number given for a numeric scalar (the common
    case of a learning rate), and ``check`` (the type's full ``filter``) for anything else."""
    if not isinstance(t, TensorType):
        return [f"{arg} = {check}({arg})"]
    dt = ctx.bind(t.numpy_dtype, "dtype")
    cond = f"{arg}.__class__ is not ndarray or {arg}.dtype is not {dt} or {arg}.ndim != {t.ndim}"
    static = [(d, s) for d, s in enumerate(t.shape) if s is not None]
    if static:
        cond = f"{cond} or " + " or ".join(f"{arg}.shape[{d}] != {s}" for d, s in static)
    kind = t.numpy_dtype.kind
    if python_scalars and t.ndim == 0 and kind in "fiu":
        array = ctx.bind(np.array, "_array")
        if kind == "f":
            # a float in range converts (NaN and inf fail the test and take the full check);
            # an int converts when the float represents it exactly
            big = float(np.finfo(t.numpy_dtype).max)
            exact = 2 ** (np.finfo(t.numpy_dtype).nmant + 1)
            fast = (f"{arg}.__class__ is float and -{big!r} <= {arg} <= {big!r} or "
                    f"{arg}.__class__ is int and -{exact} <= {arg} <= {exact}")
        else:
            info = np.iinfo(t.numpy_dtype)
            fast = f"{arg}.__class__ is int and {int(info.min)} <= {arg} <= {int(info.max)}"
        # an array of the right type passes the first test alone
        return [f"if {cond}:", f"    if {fast}:", f"        {arg} = {array}({arg}, {dt})",
                "    else:", f"        {arg} = {check}({arg})"]
    return [f"if {cond}:", f"    {arg} = {check}({arg})"]


def place_branches(order: list[Apply], fgraph,
                   lazy_nodes: Sequence[Apply] | None = None) -> dict[Apply, tuple]:
    """Map each node that only one branch of a lazy op needs to ``(lazy node, branch)``.

    Inner lazy nodes come first in ``order``, so a node goes to the innermost branch needing it.
    ``lazy_nodes``: those of ``order`` this backend runs lazily, when the caller knows them.
    """
    placement: dict[Apply, tuple] = {}
    if lazy_nodes is None:
        lazy_nodes = [n for n in order if _lazy(n.op)]
    if not lazy_nodes:
        return placement
    position = {node: pos for pos, node in enumerate(order)}
    for lazy in lazy_nodes:
        for b, idxs in enumerate(lazy.op.branch_inputs(lazy)):
            mine = set()
            # The nodes feeding the branch, latest first, so that each node's clients are
            # decided before it: a heap of (-position, node), walked up from the branch's inputs
            # through the nodes it takes.
            pending = [(-position[v.owner], id(v.owner), v.owner)
                       for v in (lazy.inputs[i] for i in idxs) if v.owner is not None]
            heapq.heapify(pending)
            seen = {entry[2] for entry in pending}
            while pending:
                node = heapq.heappop(pending)[2]
                ok = True
                for out in node.outputs:
                    for client, i in fgraph.clients.get(out, []):
                        if client == "output" or not (client in mine or (
                                client is lazy and i in idxs)):
                            ok = False
                if ok:
                    mine.add(node)
                    for inp in node.inputs:
                        owner = inp.owner
                        if owner is not None and owner not in seen:
                            seen.add(owner)
                            heapq.heappush(pending, (-position[owner], id(owner), owner))
            for node in mine:
                placement.setdefault(node, (lazy, b))
    return placement


def _flatten(nodes: list[Apply], children, flat: list[Apply]) -> None:
    """Nodes in the order their lines appear: a lazy node's branch nodes come before it."""
    for node in nodes:
        if node.op.lazy and _lazy(node.op):
            for b in range(len(node.op.branch_inputs(node))):
                _flatten(children.get((node, b), []), children, flat)
        flat.append(node)


def _comment(node: Apply) -> str:
    return str(node.op).replace("\n", " ")[:60]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in (name or "f"))[:40]


def _make_raiser(line_owner: dict[int, Any], namespace: dict[str, Any]) -> Callable:
    def raise_from_node(err: BaseException):
        if isinstance(err, NodeError):
            raise err
        tb = err.__traceback__
        owner = line_owner.get(tb.tb_lineno) if tb is not None else None
        if owner is None or owner == "input":
            raise err
        node, in_names = owner
        frame_locals = tb.tb_frame.f_locals
        values = [frame_locals.get(n, namespace.get(n)) for n in in_names]
        raise node_error(err, node, values) from err
    return raise_from_node


def node_error(err: BaseException, node: Apply, values: Sequence[Any]) -> BaseException:
    """``err`` re-made with the failing node, its input values and the user's line."""
    parts = []
    for i, (inp, value) in enumerate(zip(node.inputs, values)):
        label = inp.name or (f"constant {inp!r}" if isinstance(inp, Constant) else f"input {i}")
        parts.append(f"{label}: {describe_value(value)}" if value is not None else
                     f"{label}: {inp.type}")
    msg = (f"{err}\nwhile computing {node.op} (node created at "
           f"{format_trace(node.trace)})\n  inputs: {'; '.join(parts)}")
    try:
        return _wrapped_error_type(type(err))(msg)
    except TypeError:
        return ValueError(msg)


def _emit_ifelse(node: Apply, in_names: list[str], out_names: list[str], ctx: Ctx,
                 then_block=(), else_block=()) -> list:
    """``if cond:`` the then-branch's own nodes and outputs, ``else:`` the other's.

    The blocks are the rendered lines of the nodes only that branch needs."""
    n = node.op.n_outs
    cond, then, other = in_names[0], in_names[1:1 + n], in_names[1 + n:]
    lines: list = [f"if {cond}:"]
    lines += [("    " + text, owner) for text, owner in then_block]
    lines += [f"    {o} = {v}" for o, v in zip(out_names, then)]
    lines += ["else:"]
    lines += [("    " + text, owner) for text, owner in else_block]
    lines += [f"    {o} = {v}" for o, v in zip(out_names, other)]
    return lines


EMITTERS[IfElse] = _emit_ifelse
_BACKEND = NumpyBackend()
register("py", _BACKEND)
