"""Linker ``'cuda'``: a compiled function's graph run on the device (``device=cuda``).

The numpy backend's generated function does the scheduling, the argument checks and the
updates; this backend gives it other thunks and another array type:

- **Where each value lives** is decided once per graph (``_Residency``). Arrays live on the
  device. Shapes, lengths, index scalars and what is computed from them alone (``Shape``, a
  0-d argument, the arithmetic of a mean's divisor) stay on the host, where a numpy call costs
  less than a launch, and are handed to device ops as the numbers they are.
- **A node on the device** runs its entry in ``DEVICE_THUNKS`` (keyed by op class, as the
  numpy backend's ``THUNKS``): elementwise work and reductions as kernels of the CUDA dialect
  of the shared renderer (``kernels.render``, ``render_reduce``), products through the
  runtime's matmul, views and indexing through the runtime's array namespace. An op with no
  entry runs its numpy thunk on the host between explicit, counted transfers; ``debugprint``
  and the kernel plan show those, and ``assert_no_cpu_op=raise`` refuses them.
- **Arguments** given as numpy arrays are moved once per call; device arrays are used as they
  are. Shared values are read and written where they live (a float array's on the device,
  ``symbolic/shared.py``'s placement). Outputs come back as numpy unless ``Out(x,
  borrow=True)`` keeps them on the device.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from ...config import config
from ...ops import scalar as S
from ...ops.alloc import Alloc
from ...ops.blas import Dot, Gemm, _dot_broadcastable
from ...ops.dimshuffle import DimShuffle, Rebroadcast
from ...ops.elemwise import Elemwise
from ...ops.fused import Fused, ScalarGraph
from ...ops.fused_reduce import FusedReduce
from ...ops.join import Join
from ...ops.nnet import CheckedLabels, Softmax
from ...ops.reduce import Argmax, Reduce
from ...ops.shape import Flatten, Reshape, Shape
from ...ops.subtensor import IncSubtensor, Subtensor, _is_advanced
from ...ops.transfer import Transfer
from ...symbolic import shared as shared_module
from ...symbolic.graph import Apply, Constant
from ...symbolic.shared import host_value
from ...symbolic.types import TensorType
from .. import dialect as D
from .. import kernels, register
from ..c_backend import MAX_ARRAYS
from ..numpy_backend import SAME_SHAPE, NumpyBackend, Plan, _build, _entry
from ..numpy_backend import thunk as numpy_thunk
from . import plan

#: threads per block of an elementwise launch
BLOCK = 256


def on_device() -> bool:
    """Whether ``config.device`` names a CUDA device (``cuda``, ``cudaN``, ``gpu``...)."""
    return config.device != "cpu"


def runtime():
    """The process's device runtime for ``config.device`` (CuPy, or the CPU stand-in with
    ``cuda.simulator=True``); raises ``DeviceUnavailable`` naming what is missing."""
    from .runtime import get_runtime
    return get_runtime()


# -- where values live -------------------------------------------------------------------------

def _host_sized(var) -> bool:
    """A value cheaper on the host: a scalar, or a vector of integers (a shape, indices
    computed from lengths)."""
    t = var.type
    return isinstance(t, TensorType) and (t.ndim == 0 or t.ndim == 1 and t.dtype[0] in "iub")


#: op class -> node -> the inputs it reads only the shape of (``Shape``'s, the predictions
#: a label check compares its labels with): a node whose other inputs are on the host runs
#: there, given the device arrays as they are
SHAPE_ONLY: dict[type, Callable[[Apply], Sequence[int]]] = {
    Shape: lambda node: range(len(node.inputs)),
    CheckedLabels: lambda node: (1,),
}


def _shape_only(node: Apply) -> Sequence[int]:
    which = _entry(SHAPE_ONLY, node.op)
    return which(node) if which is not None else ()


class _Residency:
    """Which variables of a graph are on the host (the rest are on the device): constants,
    0-d arguments and shared values, integer arguments, what metadata ops give, and the
    outputs of a node whose inputs are all on the host when those outputs are small
    (``_host_sized``). A host array that only device ops read as an array (indices from
    ``arange`` or an argument) is moved once, where it is made (``moved``), rather than by
    each reader."""

    def __init__(self, fgraph):
        host = set()
        for var in fgraph.inputs:
            if isinstance(var.type, TensorType) and not placed_on_device(
                    var.type, getattr(var, "kind", None)):
                host.add(var)
        self.host_nodes = set()
        for node in fgraph.toposort():
            shapes = _shape_only(node)
            ins = [i for k, i in enumerate(node.inputs)
                   if not isinstance(i, Constant) and k not in shapes]
            if all(i in host for i in ins) and (
                    shapes and not ins or all(_host_sized(o) for o in node.outputs)):
                self.host_nodes.add(node)
                host.update(node.outputs)
        self.moved = set()
        for var in host:
            if var.type.ndim == 0:
                continue
            uses = list(fgraph.clients.get(var, ()))
            if uses and all(node != "output" and (
                    i in _shape_only(node) or node not in self.host_nodes and
                    not _reads_on_host(node, i)) for node, i in uses):
                self.moved.add(var)
        self.host = host - self.moved

    def on_host(self, var) -> bool:
        return isinstance(var, Constant) or var in self.host


def _reads_on_host(node: Apply, i: int) -> bool:
    """Whether a device node takes input ``i`` on the host (a length, an index scalar, or
    every input of an op that runs on the host)."""
    if _entry(DEVICE_THUNKS, node.op) is None:
        return True
    wants_host = _entry(HOST_ARGS, node.op)
    return wants_host is not None and i in wants_host(node)


#: ``SharedVariable.kind``s of states kept in device memory (a device op advances them in
#: place): filled by the module registering that op (``mrg.py``: MRG31k3p streams)
DEVICE_STATES: set[str] = set()


def placed_on_device(t: TensorType, kind: str | None = None) -> bool:
    """Where a graph input of type ``t`` lives: float arrays of rank >= 1 on the device, and
    shared states of a ``kind`` in ``DEVICE_STATES`` (not integer arrays in general: indices
    and counters are cheaper on the host)."""
    return t.dtype.startswith("float") and t.ndim >= 1 or kind in DEVICE_STATES


def _runtime_of(value: Any):
    """The runtime whose array ``value`` is, among those this process has started, or None
    (a numpy array, a number)."""
    if value.__class__ is np.ndarray:
        return None
    from .runtime import started_runtimes
    return next((rt for rt in started_runtimes() if rt.is_device_array(value)), None)


class Placement:
    """``symbolic.shared``'s placement while a device is configured: a float array's value,
    or a state of a kind in ``DEVICE_STATES``, goes to the device when it is set; every other
    value stays a numpy array."""

    def is_device_array(self, value: Any) -> bool:
        return _runtime_of(value) is not None

    def place(self, value: np.ndarray, ttype: TensorType, kind: str | None = None) -> Any:
        if not (on_device() and placed_on_device(ttype, kind)):
            return value
        return runtime().to_device(value)

    def to_host(self, value: Any) -> np.ndarray:
        return _runtime_of(value).to_host(value)

    def check(self, value: Any, ttype: TensorType, var=None) -> Any:
        """A device array given to ``set_value``: it must be of the variable's type."""
        if np.dtype(value.dtype) != ttype.numpy_dtype or value.ndim != ttype.ndim:
            raise TypeError(f"set_value of {var!r}: a device array of dtype {value.dtype} and "
                            f"{value.ndim} dimensions for a variable of type {ttype}")
        if not (on_device() and placed_on_device(ttype, getattr(var, "kind", None))):
            return self.to_host(value)
        return value


shared_module.set_placement(Placement())


# -- device thunks -----------------------------------------------------------------------------

#: op class -> (node, build) -> thunk over device arrays (``build.rt`` the runtime,
#: ``build.module`` the function's kernels) (inputs listed in ``HOST_ARGS``
#: arrive as host values), or None where the node cannot run there (it then runs on the host)
DEVICE_THUNKS: dict[type, Callable] = {}
#: op class -> node -> the indices of inputs the device thunk takes on the host (lengths,
#: index scalars: numbers a launch or a view needs on the host anyway)
HOST_ARGS: dict[type, Callable[[Apply], Sequence[int]]] = {}


def device_thunk(*classes: type, host_args: Callable[[Apply], Sequence[int]] | None = None):
    """Register the decorated ``(node, build) -> thunk | None`` for ``classes``."""
    def put(fn):
        for cls in classes:
            DEVICE_THUNKS[cls] = fn
            if host_args is not None:
                HOST_ARGS[cls] = host_args
        return fn
    return put


def _kernel_graph(node: Apply) -> ScalarGraph | None:
    op = node.op
    if isinstance(op, Fused):
        graph = op.graph
    elif type(op) is Elemwise:
        graph = ScalarGraph.of_row(op.scalar_op, tuple(i.dtype for i in node.inputs))
    else:
        return None
    if graph.out_dtypes != tuple(o.dtype for o in node.outputs):
        return None
    return graph


def _out_shape(node: Apply, args: Sequence) -> tuple[int, ...]:
    """The broadcast shape of an elementwise node's arguments, with Theano's rule: a
    dimension its type does not declare broadcastable may not stretch (the error, when they
    do not fit, is the CPU's: ``_host_error``)."""
    ndim = max(a.ndim for a in args)
    shape = [1] * ndim
    for a in args:
        for d, n in enumerate(a.shape):
            if n != 1:
                if shape[d] != 1 and shape[d] != n:
                    _host_error(node, args, f"shapes {[tuple(a.shape) for a in args]} do not "
                                            f"broadcast (dimension {d})")
                shape[d] = n
    for a, var in zip(args, node.inputs):
        for d, (n, bc) in enumerate(zip(a.shape, var.type.broadcastable)):
            if n == 1 and shape[d] != 1 and not bc:
                _host_error(node, args, f"dimension {d} of {var.type} is not broadcastable, "
                                        f"so it must have length {shape[d]}")
    return tuple(shape)


def _host_error(node: Apply, args: Sequence, fallback: str) -> None:
    """Raise the error the node's numpy thunk raises on host copies of ``args`` (a failed
    node is reported in the same words on every backend: for a fused node, the scalar step
    that fails and the user's line that built it), or ``fallback``."""
    numpy_thunk(node)(*[host_value(a) for a in args])
    raise ValueError(f"{node.op}: {fallback}")


class _Module:
    """The kernels of one compiled function in one source (one ``RawModule``), compiled at
    its first launch. A kernel asks for the variants it expects when the function is built
    (32-bit indices, every rank up to its own); another variant a launch needs (64-bit
    indices for a huge array) is compiled alone when first met."""

    def __init__(self, rt):
        self.rt = rt
        self.parts: list[str] = []
        self.dtypes: set[str] = set()
        self.compiled = None
        self._serial = 0

    def name(self) -> str:
        self._serial += 1
        return f"k{self._serial}"

    def add(self, source: str, dtypes) -> None:
        if self.compiled is not None:
            raise RuntimeError("the module is compiled: kernels must be added before")
        self.parts.append(source)
        self.dtypes.update(dtypes)

    def source(self) -> str:
        """The module's CUDA source (the dialect's helpers once, then every kernel)."""
        return D.CUDA.prelude(sorted(self.dtypes)) + "\n".join(self.parts)

    def get(self, name: str):
        if self.compiled is None:
            self.compiled = self.rt.module(self.source())
        return self.compiled.get_function(name)


class _Elementwise:
    """A scalar graph as CUDA kernels of the function's module: a variant per collapsed
    rank with 32-bit indices, and 64-bit ones compiled when a launch needs them."""

    def __init__(self, graph: ScalarGraph, dev: _Build, label: str, ndim: int):
        self.graph, self.rt, self.label = graph, dev.rt, label
        self.name = dev.module.name()
        self.module = dev.module
        self.ranks = range(1, min(max(ndim, 1), kernels.MAX_DIMS) + 1)
        # rendered first, added after: a graph the dialect cannot write (a row without a C
        # template, float16) raises here and leaves the module as it was
        sources = [kernels.render(graph, f"{self.name}_{rank}", D.CUDA, ndim=rank,
                                  index32=True, prelude=False) for rank in self.ranks]
        for source in sources:
            dev.module.add(source, graph.ref_dtypes)
        self.others: dict[tuple[int, bool], Any] = {}

    def kernel(self, ndim: int, index32: bool):
        if index32 and ndim in self.ranks:
            return self.module.get(f"{self.name}_{ndim}")
        key = (ndim, index32)
        if key not in self.others:
            source = kernels.render(self.graph, "k", D.CUDA, ndim=ndim, index32=index32)
            self.others[key] = self.rt.module(source).get_function("k")
        return self.others[key]

    def __call__(self, args: Sequence, shape: tuple[int, ...], out=None) -> list:
        """The outputs of the graph on ``args`` broadcast to ``shape``, in new arrays (or,
        for one output, in ``out``: a dead buffer of that shape the memory plan hands on)."""
        if out is not None and tuple(out.shape) == shape and len(self.graph.out_dtypes) == 1 \
                and out.dtype == self.graph.out_dtypes[0]:
            outs = [out]
        else:
            outs = [self.rt.empty(shape, dt) for dt in self.graph.out_dtypes]
        launch = kernels.cuda_launch([*args, *outs], shape)
        if launch.size:
            grid = launch.blocks(BLOCK)
            self.kernel(launch.ndim, launch.index32)(
                (grid,), (BLOCK,), (*args, *outs, *launch.scalars))
            if plan.recording() is not None:
                plan.launch("kernel", self.label, grid, BLOCK, plan.nbytes([*args, *outs]),
                            launch.size * len(self.graph.steps))
        return outs


class _Reduction:
    """A reduction of a scalar graph's output as the CUDA dialect's block reduction (and its
    merge pass for outputs split across blocks), rendered for the most kept and reduced
    dimensions a launch can have (a launch of fewer is padded with length-1 ones)."""

    def __init__(self, graph: ScalarGraph, kind: str, axis: Sequence[int], ndim: int,
                 dtype: str, initial, dev: _Build, label: str,
                 epilogue: ScalarGraph | None = None, keep: bool = False):
        self.graph, self.kind, self.axis, self.dtype, self.initial = \
            graph, kind, tuple(axis), dtype, initial
        self.epilogue, self.keep = epilogue, keep
        self.n_in = len(graph.in_dtypes)
        self.out_dtype = epilogue.out_dtypes[0] if epilogue is not None else dtype
        dtypes = {*graph.ref_dtypes, *(epilogue.ref_dtypes if epilogue is not None else ())}
        self.acc = kernels.reduce_acc_dtype(kind, graph.out_dtypes[0], dtype)
        self.rt, self.module, self.label = dev.rt, dev.module, label
        self.name = dev.module.name()
        self.nk, self.nr = ndim - len(self.axis), len(self.axis)
        self.padded = self.nk <= kernels.MAX_DIMS and self.nr <= kernels.MAX_DIMS
        if self.padded:
            source = self._source(self.name, self.nk, self.nr, True, prelude=False)
            dev.module.add(source, {*dtypes, dtype, self.acc})
        self.others: dict[tuple[int, int, bool], Any] = {}

    def _source(self, name: str, nk: int, nr: int, index32: bool, prelude: bool) -> str:
        return kernels.render_reduce(self.graph, self.kind, self.dtype, name, D.CUDA,
                                     initial=self.initial, nk=nk, nr=nr, index32=index32,
                                     prelude=prelude, epilogue=self.epilogue,
                                     keep=self.keep)

    def kernels_for(self, launch):
        """(the launch as the kernels take it, a function giving a kernel by suffix)."""
        if self.padded and launch.index32 and launch.nk <= self.nk and launch.nr <= self.nr:
            name = self.name
            return launch.padded(self.nk, self.nr), lambda s: self.module.get(name + s)
        key = (launch.nk, launch.nr, launch.index32)
        if key not in self.others:
            self.others[key] = self.rt.module(self._source("r", *key, prelude=True))
        module = self.others[key]
        return launch, lambda s: module.get_function("r" + s)

    def __call__(self, args: Sequence, shape: tuple[int, ...]):
        """The reduction of the graph over ``args`` (the prologue's inputs, then the
        epilogue's arrays), broadcast to ``shape`` (and with ``keep`` the graph's values, in
        an array of that shape)."""
        rt = self.rt
        args, extras = args[:self.n_in], args[self.n_in:]
        kept = tuple(n for d, n in enumerate(shape) if d not in self.axis)
        out = rt.empty(kept, self.out_dtype)
        if self.keep:
            values = rt.empty(shape, self.graph.out_dtypes[0])
            args = (*args, values)  # (laid out, and passed, as one more input)
        launch = kernels.cuda_reduce_launch([*args, out], self.axis, self.kind,
                                            initial=self.initial, shape=shape, extras=extras)
        if not launch.size:  # (no output: then no element either)
            return (out, values) if self.keep else out
        launch, get = self.kernels_for(launch)
        schedule = launch.plan()
        partial = rt.empty((max(schedule.partials, 1),), self.acc)
        for step in schedule.passes:
            pointers = (*args, out, partial, *extras) if step.suffix == "" else \
                (partial, out, *extras)
            get(step.suffix)((step.grid,), (step.block,), (*pointers, *step.scalars))
            if plan.recording() is not None:
                read = [*args] if step.suffix == "" else [partial]
                read += extras if step is schedule.passes[-1] else []
                plan.launch("kernel", self.label + step.suffix, step.grid, step.block,
                            plan.nbytes([*read, out]),
                            launch.size * launch.count * (len(self.graph.steps) + 1))
        return (out, values) if self.keep else out


@device_thunk(Fused, Elemwise)
def _elementwise(node: Apply, dev: _Build) -> Callable | None:
    graph = _kernel_graph(node)
    if graph is None or len(node.inputs) + len(node.outputs) > MAX_ARRAYS:
        return None
    kernel = _Elementwise(graph, dev, str(node.op), node.outputs[0].ndim)
    if len(node.outputs) > 1:
        return lambda *args: tuple(kernel(args, _out_shape(node, args)))

    def run(*args, out=None):
        return kernel(args, _out_shape(node, args), out)[0]
    run.takes_out = True
    return run


@device_thunk(Reduce, FusedReduce)
def _reduction(node: Apply, dev: _Build) -> Callable | None:
    op = node.op
    if isinstance(op, FusedReduce):
        graph = op.graph
    elif type(op) is Reduce:
        graph = ScalarGraph.of_row(S.identity, (node.inputs[0].dtype,))
    else:
        return None
    epilogue = getattr(op, "epilogue", None)
    out_dtype = epilogue.out_dtypes[0] if epilogue is not None else op.dtype
    if kernels.reduce_acc_dtype(op.kind, graph.out_dtypes[0], op.dtype) is None or \
            not op.axis or node.outputs[0].dtype != out_dtype:
        return None
    keep = getattr(op, "keep", False)
    kernel = _Reduction(graph, op.kind, op.axis, node.inputs[0].ndim, op.dtype, op.initial,
                        dev, str(node.op), epilogue, keep)
    n_in = len(graph.in_dtypes)
    if epilogue is None:
        return lambda *args: kernel(args, _out_shape(node, args))

    def run(*args):
        shape = _out_shape(node, args[:n_in])
        kept = tuple(n for d, n in enumerate(shape) if d not in kernel.axis)
        if any(a.ndim != len(kept) or any(m != k and not (m == 1 and bc) for m, k, bc in
                                          zip(a.shape, kept, var.type.broadcastable))
               for a, var in zip(args[n_in:], node.inputs[n_in:])):
            _host_error(node, args, "the epilogue's inputs do not fit the reduction's result")
        if op.kind in ("max", "min") and op.initial is None and all(kept) and \
                not all(shape[d] for d in kernel.axis):
            # the node's line is its epilogue's: the CPU's error names the max's own
            _host_error(node, args, f"{op.kind} of an empty array")
        return kernel(args, shape)
    return run


def _matmul(rt, x, y, label: str):
    if x.shape[-1] != y.shape[0]:
        raise ValueError(f"{label}: shapes {tuple(x.shape)} and {tuple(y.shape)} are not "
                         "aligned")
    r = rt.matmul(x, y)
    if plan.recording() is not None:
        k = x.shape[-1]
        plan.launch("matmul", label, 1, 1, plan.nbytes([x, y, r]), 2 * r.size * k)
        plan.product([x, y], [r])
    return r


@device_thunk(Dot)
def _dot(node: Apply, dev: _Build) -> Callable | None:
    rt = dev.rt
    a, b = node.inputs
    if a.ndim == 0 or b.ndim == 0 or a.ndim > 2 or b.ndim > 2 or \
            node.outputs[0].dtype != a.dtype or a.dtype != b.dtype:
        return None
    return lambda x, y: _matmul(rt, x, y, "dot")


@device_thunk(Gemm)
def _gemm(node: Apply, dev: _Build) -> Callable | None:
    """``b * z + a * (x @ y)`` (Gemm) or ``x @ y + z`` (DotAdd): the product through the
    runtime's matmul, then one kernel scaling and adding (the addend broadcast as the node's
    type allows)."""
    op = node.op
    z, a, x, y, b = op.parts(node.inputs)
    dtype = node.outputs[0].dtype
    if x.ndim == 0 or y.ndim == 0 or x.ndim > 2 or y.ndim > 2 or \
            not x.dtype == y.dtype == z.dtype == dtype or \
            any(s is not None and s.dtype != dtype for s in (a, b)):
        return None
    # inputs of the combining kernel: the product, then a, z, b as the node has them
    order = [k for k, part in ((1, a), (2, z), (3, b)) if part is not None]
    refs = {k: i + 1 for i, k in enumerate(order)}
    n = 1 + len(order)
    steps, scaled = [], 0
    if a is not None:
        steps.append((S.mul, (refs[1], 0)))
        scaled = n + len(steps) - 1
    addend = refs[2]
    if b is not None:
        steps.append((S.mul, (refs[3], refs[2])))
        addend = n + len(steps) - 1
    steps.append((S.add, (scaled, addend)))
    combine = _Elementwise(ScalarGraph((dtype,) * n, tuple(steps), (n + len(steps) - 1,)), dev,
                           str(op), node.outputs[0].ndim)
    rt = dev.rt
    patterns = (_dot_broadcastable(x, y), z.type.broadcastable)
    name = type(op).__name__

    def run(*args, out=None):
        z, a, x, y, b = op.parts(args)
        if out is not None and out is z and x.ndim == 2 and y.ndim == 2 and \
                tuple(z.shape) == (x.shape[0], y.shape[1]) and x.shape[1] == y.shape[0]:
            # z's buffer, which nothing reads afterwards (a weight update): the product
            # accumulates into it (cuBLAS's beta), no product array, no combining kernel
            rt.gemm(x, y, z, 1.0 if a is None else a, 1.0 if b is None else b)
            if plan.recording() is not None:
                plan.launch("matmul", name + " into its addend", 1, 1,
                            plan.nbytes([x, y]) + 2 * z.nbytes, 2 * z.size * x.shape[1])
                plan.product([x, y, z], [z])
            return z
        r = _matmul(rt, x, y, name)
        try:
            shape = np.broadcast_shapes(tuple(r.shape), tuple(z.shape))
        except ValueError:
            shape = None
        if shape is None or any(n != m and not bc for part, pattern in zip((r, z), patterns)
                                for n, m, bc in zip(part.shape, shape, pattern)):
            _host_error(node, args, f"the product's shape {tuple(r.shape)} and the addend's "
                                    f"{tuple(z.shape)} do not fit")
        operands = [r] + [v for v in (a, z, b) if v is not None]
        return combine(operands, shape)[0]
    run.takes_out = True
    return run


def _after_first(node: Apply) -> list[int]:
    return list(range(1, len(node.inputs)))


# Views and index scalars: the ops' own impls use array methods only (a[idx], transpose,
# reshape), which device arrays have, once their lengths and indices are host numbers.
@device_thunk(DimShuffle, Rebroadcast, Transfer, Flatten)
def _view(node: Apply, dev: _Build) -> Callable:
    return node.op.impl(node)


@device_thunk(Reshape, host_args=_after_first)
def _reshape(node: Apply, dev: _Build) -> Callable:
    return node.op.impl(node)


def _subtensor_host_args(node: Apply) -> list[int]:
    """Scalar indices stay on the host; index arrays go to the device."""
    return [i for i in range(1, len(node.inputs)) if node.inputs[i].ndim == 0]


def _inc_host_args(node: Apply) -> list[int]:
    return [i for i in range(2, len(node.inputs)) if node.inputs[i].ndim == 0]


@device_thunk(Subtensor, host_args=_subtensor_host_args)
def _subtensor(node: Apply, dev: _Build) -> Callable:
    fn = node.op.impl(node)
    if not _is_advanced(node.op.spec):
        return fn  # a view
    label = str(node.op)

    def gather(*args):  # the array library's gather kernel
        out = fn(*args)
        if plan.recording() is not None:
            plan.launch("array", label, 1, 1, 2 * out.nbytes + plan.nbytes(args[1:]),
                        out.size)
        return out
    return gather


def _copier(dtype: str, dev: _Build, label: str, ndim: int) -> _Elementwise:
    """A kernel writing an array (broadcast as it comes) into a new one of ``dtype``."""
    return _Elementwise(ScalarGraph.of_row(S.identity, (dtype,)), dev, label, ndim)


@device_thunk(IncSubtensor, host_args=_inc_host_args)
def _inc_subtensor(node: Apply, dev: _Build) -> Callable:
    """A copy of ``x`` with ``x[index]`` set or incremented; repeated advanced indices
    accumulate (the array library's ``add.at``: atomic adds on a GPU)."""
    op = node.op
    copy = _copier(node.outputs[0].dtype, dev, f"{op} copy", node.outputs[0].ndim)
    write = op.writer(dev.rt.xp.add.at)

    def run(a, y, *vals, out=None):
        if out is not a:  # (the memory plan hands x's own buffer when nothing reads x after)
            out = copy((a,), tuple(a.shape))[0]
        write(out, y, vals)
        if plan.recording() is not None:
            plan.launch("array", str(op), 1, 1, 2 * plan.nbytes([y, *vals]), y.size)
        return out
    run.takes_out = True
    return run


# the memory plan may hand a node a dead buffer of its output's shape: an IncSubtensor's
# output has its first input's shape
SAME_SHAPE.setdefault(IncSubtensor, lambda node: [0])


@device_thunk(Alloc, host_args=_after_first)
def _alloc(node: Apply, dev: _Build) -> Callable:
    fill = _copier(node.outputs[0].dtype, dev, "Alloc", node.outputs[0].ndim)

    def run(value, *shape, out=None):
        return fill((value,), tuple(int(s) for s in shape), out)[0]
    run.takes_out = True
    return run


@device_thunk(Join)
def _join(node: Apply, dev: _Build) -> Callable:
    xp, axis = dev.rt.xp, node.op.axis

    def run(*arrays):
        shapes = [tuple(a.shape) for a in arrays]
        if any(len(s) != len(shapes[0]) or s[:axis] + s[axis + 1:] != shapes[0][:axis] +
               shapes[0][axis + 1:] for s in shapes):
            raise ValueError(f"join along axis {axis}: the arrays have shapes {shapes}; all "
                             f"dimensions but {axis} must match")
        out = xp.concatenate(arrays, axis=axis)
        if plan.recording() is not None:
            plan.launch("array", "Join", 1, 1, 2 * out.nbytes, 0)
        return out
    return run


class _Rows:
    """``kernels.render_rows``'s kernel of the function's module: passes over each row, then
    an elementwise result, in one launch; rendered for the node's kept and reduced
    dimensions in 32-bit indices (a launch of fewer is padded), other variants compiled when
    a launch needs them."""

    def __init__(self, passes, result: ScalarGraph, dtype: str, axis: Sequence[int],
                 ndim: int, dev: _Build, label: str):
        self.passes, self.result, self.dtype, self.axis = passes, result, dtype, tuple(axis)
        self.rt, self.module, self.label = dev.rt, dev.module, label
        self.name = dev.module.name()
        self.pad = (ndim - len(self.axis), len(self.axis))
        self.padded = self.pad[0] <= kernels.MAX_DIMS and self.pad[1] <= kernels.MAX_DIMS
        if self.padded:
            dev.module.add(self._source(self.name, *self.pad, True, prelude=False),
                           {dtype, "float64", "int64",
                            *(result.ref_dtypes if result is not None else ()),
                            *(d for _, g in passes for d in g.ref_dtypes)})
        self.others: dict[tuple[int, int, bool], Any] = {}

    def _source(self, name: str, nk: int, nr: int, index32: bool, prelude: bool) -> str:
        return kernels.render_rows(self.passes, self.result, self.dtype, name, D.CUDA, nk=nk,
                                   nr=nr, index32=index32, prelude=prelude)

    def __call__(self, a):
        if self.result is None:  # a value per row
            kept = tuple(n for d, n in enumerate(a.shape) if d not in self.axis)
            out = self.rt.empty(kept, self.passes[-1][1].out_dtypes[0])
        else:
            out = self.rt.empty(tuple(a.shape), self.dtype)
        variant, grid, block, scalars = kernels.cuda_rows_launch(
            a, out, self.axis, BLOCK, pad=self.pad if self.padded else None)
        if self.padded and variant == (*self.pad, True):
            kernel = self.module.get(self.name)
        else:
            if variant not in self.others:
                self.others[variant] = self.rt.module(
                    self._source("rows", *variant, prelude=True)).get_function("rows")
            kernel = self.others[variant]
        kernel((grid,), (block,), (a, out, *scalars))
        if plan.recording() is not None:
            steps = sum(len(g.steps) + 1 for _, g in self.passes) + (
                len(self.result.steps) if self.result is not None else 0)
            plan.launch("kernel", self.label, grid, block,
                        len(self.passes) * a.nbytes + out.nbytes, a.size * steps)
        return out


@device_thunk(Softmax)
def _softmax(node: Apply, dev: _Build) -> Callable | None:
    """Softmax and log-softmax as one kernel (``_Rows``) of the op's own formula: a group of
    threads per row finds the maximum, then ``s = sum(exp(x - m))``, then writes the
    output from ``x``, ``m`` and ``s`` (``Softmax.passes``)."""
    op, x = node.op, node.inputs[0]
    dtype = x.dtype
    if dtype not in ("float32", "float64") or node.outputs[0].dtype != dtype:
        return None
    axes = op.axis if isinstance(op.axis, tuple) else (op.axis,)
    axes = tuple(sorted({d % x.ndim for d in axes}))
    denominator, result = op.passes(dtype)
    rows = _Rows((("max", ScalarGraph.of_row(S.identity, (dtype,))), ("sum", denominator)),
                 result, dtype, axes, x.ndim, dev, str(op))

    def run(a):
        if a.size == 0:
            return a.copy()
        return rows(a)
    return run


@device_thunk(Argmax)
def _argmax(node: Apply, dev: _Build) -> Callable | None:
    """argmax / argmin along one axis as one row kernel: the maximum (NaN wins, as in
    numpy), then the least index holding it (or a NaN); ``axis=None`` on the array
    flattened in C order."""
    op, x = node.op, node.inputs[0]
    dtype = x.dtype
    if dtype not in D.DTYPES:
        return None
    kind = op.kind  # 'max' or 'min'
    # the least index e holding the extreme m, or a NaN (then m is NaN): min of
    # switch((x == m) | (x != x), e, row length)
    if dtype.startswith("float"):
        found = ScalarGraph((dtype, dtype, "int64", "int64"),
                            ((S.eq, (0, 1)), (S.neq, (0, 0)), (S.or_, (4, 5)),
                             (S.switch, (6, 2, 3))), (7,))
    else:  # (no NaN: and a compiler refuses x != x on integers)
        found = ScalarGraph((dtype, dtype, "int64", "int64"),
                            ((S.eq, (0, 1)), (S.switch, (4, 2, 3))), (5,))
    axis = 0 if op.axis is None else op.axis % x.ndim
    rows = _Rows((("max" if kind == "max" else "min", ScalarGraph.of_row(S.identity, (dtype,))),
                  ("min", found)), None, dtype, (axis,), 1 if op.axis is None else x.ndim,
                 dev, str(op))

    def run(a):
        if op.axis is None:
            a = a.reshape(-1)
        if a.shape[axis] == 0:
            _host_error(node, [a], f"arg{kind} of an empty array")
        if a.size == 0:
            return rows.rt.empty(tuple(n for d, n in enumerate(a.shape) if d != axis),
                                 "int64")
        return rows(a)
    return run


# -- the backend -------------------------------------------------------------------------------

# what rendering a graph the CUDA dialect cannot write raises (a scalar row without a C
# template, a dtype it has no type for)
_UNWRITABLE = (ValueError, NotImplementedError, KeyError, TypeError)


class HostOpError(RuntimeError):
    """``assert_no_cpu_op=raise``: a node of the graph has no device implementation."""


class _Build:
    """One ``build``: the thunks of its nodes, given where its values live."""

    def __init__(self, rt, residency: _Residency, fgraph=None, plan: Plan | None = None):
        self.rt, self.residency = rt, residency
        self.module = _Module(rt)
        self.host_ops: list[Apply] = []
        self.fgraph, self.plan = fgraph, plan

    def overwrites(self, node: Apply, i: int, o: int) -> bool:
        """Whether ``node``'s thunk may write output ``o`` over input ``i``'s array: the
        input is a shared value that nothing else in the graph reads (no other node, no
        output, no other variable of its storage) and the output is nothing but that
        value's update (a random state advanced in place: no copy, and no one sees the old
        value change)."""
        fgraph, fplan = self.fgraph, self.plan
        if fgraph is None or fplan is None or not fplan.inplace_updates:
            return False  # (a checking mode keeps the old values to compare)
        var, new = node.inputs[i], node.outputs[o]
        shared_inputs = fgraph.inputs[fplan.n_explicit:]
        box = next((c for v, c in zip(shared_inputs, fplan.shared_containers) if v is var),
                   None)
        if box is None or list(fgraph.clients.get(var, ())) != [(node, i)] or any(
                c is box and v is not var and fgraph.clients.get(v)
                for v, c in zip(shared_inputs, fplan.shared_containers)):
            return False
        uses = list(fgraph.clients.get(new, ()))
        if len(uses) != 1 or uses[0][0] != "output":
            return False
        k = uses[0][1] - fplan.n_outputs
        copies = list(fplan.copy_updates) + [False] * len(fplan.update_containers)
        return 0 <= k < len(fplan.update_containers) and \
            fplan.update_containers[k] is box and not copies[k]

    def _kept_intact(self, var) -> bool:
        """Whether no node of the graph writes into ``var``'s array (a destroy_map)."""
        clients = self.fgraph.clients.get(var, ()) if self.fgraph is not None else None
        return clients is not None and not any(
            node != "output" and any(i in d for d in getattr(node.op, "destroy_map", {}).values())
            for node, i in clients)

    def thunk(self, node: Apply, inner: Sequence[Callable] = ()) -> Callable:
        if node in self.residency.host_nodes:
            fn = numpy_thunk(node, inner)
            moved = [k for k, o in enumerate(node.outputs) if o in self.residency.moved]
            return _moving_out(fn, node, self.rt, moved, [
                self._kept_intact(o) for o in node.outputs]) if moved else fn
        entry = _entry(DEVICE_THUNKS, node.op)
        try:
            # (an op holding inner graphs gets them compiled: a loop's body)
            fn = None if entry is None else entry(node, self, inner) if inner else \
                entry(node, self)
        except _UNWRITABLE:  # the CUDA dialect has no spelling for something in it
            fn = None
        if fn is None:
            return self._on_host(node, inner)
        wants_host = _entry(HOST_ARGS, node.op)
        host_args = set(wants_host(node)) if wants_host is not None else set()
        return _moving(fn, node, self.rt, self.residency, host_args)

    def _on_host(self, node: Apply, inner: Sequence[Callable]) -> Callable:
        """The numpy thunk between transfers: device inputs to the host, outputs back."""
        self.host_ops.append(node)
        policy = config.assert_no_cpu_op
        if policy != "ignore":
            from ...symbolic.trace import format_trace
            where = format_trace(node.outputs[0].trace) if getattr(
                node.outputs[0], "trace", None) else "an unknown line"
            text = (f"{node.op} has no device implementation: it runs on the host, with its "
                    f"inputs copied from the device and its outputs back (built at {where})")
            if policy == "raise":
                raise HostOpError(text + " (assert_no_cpu_op=raise)")
            warnings.warn(text, stacklevel=2)
        fn = numpy_thunk(node, inner)
        rt = self.rt
        n_out = len(node.outputs)
        what = f"{node.op}, run on the host"

        def run(*args):
            host = [_down(rt, a, what) if rt.is_device_array(a) else a for a in args]
            res = fn(*host)
            if n_out == 1:
                return _to_device(rt, res, what)
            return tuple(_to_device(rt, r, what) for r in res)
        run.host = True
        return run


def _moving_out(fn: Callable, node: Apply, rt, moved: Sequence[int],
               intact: Sequence[bool]) -> Callable:
    """A host node's thunk whose outputs ``moved`` go to the device as they are made (the
    copy of the previous call reused while the value is the same and ``intact`` says nothing
    writes into it)."""
    what = f"the result of {node.op}, made on the host"
    ups = {k: _Upload(rt, what) if intact[k] else partial(_to_device, rt, what=what)
           for k in moved}
    if len(node.outputs) == 1:
        up = ups[0]
        return lambda *args: up(fn(*args))

    def run(*args):
        res = list(fn(*args))
        for k in moved:
            res[k] = ups[k](res[k])
        return tuple(res)
    return run


class _Upload:
    """A host value's copy on the device, made again only when the value changes. The small
    values a graph computes on the host each call (a mean's ``1/n``, row indices from
    ``arange``) are most often the same from call to call, and on a GPU each copy is a
    synchronous memcpy costing more than the launches it feeds. For a value that nothing
    writes into (the caller checks), up to ``MAX_BYTES``; larger ones are copied each call."""

    MAX_BYTES = 1 << 16
    __slots__ = ("rt", "what", "last")

    def __init__(self, rt, what: str):
        self.rt, self.what = rt, what
        self.last: tuple = (None, None)  # (key, device copy), replaced whole: thread-safe

    def __call__(self, value):
        if not isinstance(value, (np.ndarray, np.generic)):
            return value
        value = np.asarray(value)
        if value.nbytes > self.MAX_BYTES:
            return _up(self.rt, value, self.what)
        key = (value.dtype.str, value.shape, value.tobytes())
        last = self.last
        if last[0] != key:
            last = self.last = (key, _up(self.rt, value, self.what))
        return last[1]


def _up(rt, value: np.ndarray, what: str):
    """``value`` copied to the device (recorded in a kernel plan as ``what``)."""
    if plan.recording() is not None:
        plan.transfer("device", value.nbytes, what)
    return rt.to_device(value)


def _down(rt, value, what: str) -> np.ndarray:
    """``value`` copied to the host (recorded in a kernel plan as ``what``)."""
    if plan.recording() is not None:
        plan.transfer("host", value.nbytes, what)
    return rt.to_host(value)


def _to_device(rt, value, what: str):
    if isinstance(value, (np.ndarray, np.generic)):
        return _up(rt, np.asarray(value), what)
    return value


def _moving(fn: Callable, node: Apply, rt, residency: _Residency,
            host_args: set[int]) -> Callable:
    """``fn`` given each input where it wants it: a host value wanted on the device moved
    there (a counted transfer: a host scalar feeding a kernel; a constant once, when the
    function is built), a device value wanted on the host (a length computed on the device)
    moved back. Where the graph cannot tell (a lazy ``ifelse`` returns whichever branch
    ran), the value's own type decides at the call."""
    consts = {i: rt.to_device(np.asarray(v.data)) for i, v in enumerate(node.inputs)
              if isinstance(v, Constant) and i not in host_args}
    fixed = [i for i, v in enumerate(node.inputs) if residency.on_host(v) and
             i not in host_args and i not in consts]
    checked = [i for i in range(len(node.inputs)) if i not in consts and i not in fixed]
    up, down = f"a host value for {node.op}", f"a device value {node.op} reads on the host"
    host_types = (np.ndarray, np.generic)
    # a host value this node only reads goes up once while it stays the same
    destroyed = {i for d in getattr(node.op, "destroy_map", {}).values() for i in d}
    ups = {i: partial(_to_device, rt, what=up) if i in destroyed else _Upload(rt, up)
           for i in range(len(node.inputs))}

    def run(*args, **out):  # (``out=``, for a thunk that takes it)
        args = list(args)
        for i, value in consts.items():
            args[i] = value
        for i in fixed:
            args[i] = ups[i](args[i])
        for i in checked:
            value = args[i]
            if i in host_args:
                if rt.is_device_array(value):
                    args[i] = _down(rt, value, down)
            elif isinstance(value, host_types):
                args[i] = ups[i](value)
        return fn(*args, **out)
    run.takes_out = getattr(fn, "takes_out", False)
    return run


class _Resident(list):
    """A shared container as the device function sees it: a value read where the graph
    wants it (moved when it lives elsewhere), and an update stored where the variable's
    value lives."""

    def __init__(self, container: list, rt, on_host: bool, home: bool = False):
        super().__init__([None])
        self.container, self.rt, self.host = container, rt, on_host
        # a device state's value (DEVICE_STATES) goes back to the device with its next
        # update wherever it was (a CPU linker's function, unpickling, left it on the host)
        self.home = home

    def __getitem__(self, k):
        value = self.container[k]
        is_dev = self.rt.is_device_array(value)
        if self.host and is_dev:
            return _down(self.rt, value, "a shared value read on the host")
        if not self.host and not is_dev:
            return _up(self.rt, value, "a host shared value read on the device")
        return value

    def __setitem__(self, k, value) -> None:
        stays = self.home or self.rt.is_device_array(self.container[k])
        if stays and not self.rt.is_device_array(value):
            value = _up(self.rt, value, "an update computed on the host")
        elif not stays and self.rt.is_device_array(value):
            value = _down(self.rt, value, "an update of a host shared value")
        self.container[k] = value


def _device_check(check: Callable, var, rt, to_device: bool) -> Callable:
    """An argument check for the device: a device array of the input's type as it is, a
    host value checked as on the CPU and moved (``to_device``) or kept."""
    t = var.type

    def run(value):
        if rt.is_device_array(value):
            if np.dtype(value.dtype) != t.numpy_dtype or value.ndim != t.ndim:
                raise TypeError(f"input {var!r} expects {t}; got a device array of dtype "
                                f"{value.dtype} and {value.ndim} dimensions")
            value = value if to_device else _down(rt, value, f"argument {var}")
        else:
            value = check(value)
            value = _up(rt, value, f"argument {var}") if to_device else value
        plan.touch([value])
        return value
    return run


class CudaBackend(NumpyBackend):
    """Linker ``'cuda'``; ``function()`` chooses it when ``config.device`` is a CUDA device
    and the mode names no other linker."""

    name = "cuda"

    def build(self, fgraph, plan: Plan) -> Callable:
        rt = runtime()
        n = plan.n_explicit
        residency = _Residency(fgraph)
        # an output stays on the device when asked: Out(x, borrow=True) or x.transfer('cuda')
        keep = [bool(borrow) or _asks_device(var) for borrow, var in zip(
            list(plan.borrow_outputs) or [False] * plan.n_outputs, fgraph.outputs)]
        ins = fgraph.inputs
        views: dict[int, _Resident] = {}
        homes = {id(c) for c, v in zip(plan.shared_containers, ins[n:])
                 if getattr(v, "kind", None) in DEVICE_STATES}

        def resident(container: list, on_host: bool) -> _Resident:
            # one view per container: the memory plan matches an update with the value it
            # replaces by the container's identity
            if id(container) not in views:
                views[id(container)] = _Resident(container, rt, on_host,
                                                 id(container) in homes)
            return views[id(container)]

        dev_plan = dataclasses.replace(
            plan,
            input_checks=[_device_check(c, v, rt, not residency.on_host(v))
                          for c, v in zip(plan.input_checks, ins[:n])],
            python_scalars=[False] * n,
            shared_containers=[resident(c, residency.on_host(v))
                               for c, v in zip(plan.shared_containers, ins[n:])],
            update_containers=[resident(c, not rt.is_device_array(c[0]))
                               for c in plan.update_containers],
            # an output brought to the host is a fresh array; one that stays where it is
            # (a host value, or a device array kept there) is copied as on the CPU
            copy_outputs=[copy and (residency.on_host(v) or keep[k]) for k, (copy, v) in
                          enumerate(zip(plan.copy_outputs, fgraph.outputs))],
            # (only the products take an output buffer: a weight update accumulates into
            # the weight's own device array)
            inplace_updates=plan.inplace_updates)
        build = _Build(rt, residency, fgraph, plan)
        fn = _build(build, fgraph, dev_plan, array_type=rt.array_type,
                    asarray=lambda v: v if rt.is_device_array(v) else np.asarray(v),
                    synchronize=rt.synchronize)  # (a profile times each node's launches)
        wrapped = _returning_host(fn, rt, plan, keep)
        wrapped.host_ops = build.host_ops
        wrapped.module = build.module
        # the containers themselves (not the views above): kernel_plan restores them
        wrapped.shared_containers = plan.shared_containers
        wrapped.update_containers = plan.update_containers
        return wrapped


def _asks_device(var) -> bool:
    return var.owner is not None and isinstance(var.owner.op, Transfer) and \
        var.owner.op.to_device


def _returning_host(fn: Callable, rt, fplan: Plan, keep: Sequence[bool]) -> Callable:
    """``fn`` whose outputs come back as numpy arrays, except those ``keep`` says stay."""
    def host(value, stay):
        plan.touch([value], read=False, written=True)
        return value if stay or not rt.is_device_array(value) else \
            _down(rt, value, "an output")

    if fplan.single_output:
        def call(*args, **kw):
            return host(fn(*args, **kw), keep[0])
    elif fplan.output_keys is not None:
        def call(*args, **kw):
            res = fn(*args, **kw)
            return {k: host(v, s) for (k, v), s in zip(res.items(), keep)}
    else:
        def call(*args, **kw):
            return [host(v, s) for v, s in zip(fn(*args, **kw), keep)]
    call.source = fn.source
    # arguments are always checked on a device: the check is what moves a host array there
    # (trust_input would hand numpy arrays to kernels)
    call.set_trusted = lambda trusted: None
    call.fn = fn
    return call


register("cuda", CudaBackend())


# device ops in modules of their own, each registering its thunks with device_thunk:
# MRG31k3p random streams; pooling and convolution
from . import mrg, pool_conv  # noqa: E402, F401
