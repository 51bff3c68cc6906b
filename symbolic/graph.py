"""The graph: Variables produced by Apply nodes, and iterative walks over them.

A graph is bipartite: an ``Apply`` joins an ``Op`` to its input and output Variables; a Variable
with no owner is a root (an input, a Constant or a SharedVariable). Every walk here uses an
explicit stack, so a chain of 100,000 nodes never meets Python's recursion limit.
"""
from __future__ import annotations

import functools
import gc
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .trace import Trace, describe, format_trace, user_trace
from .types import TensorType, Type


def gc_paused(fn: Callable) -> Callable:
    """Run ``fn`` with the cyclic garbage collector paused. Building or compiling a graph
    allocates many small objects that all stay alive, so the collections those allocations
    trigger scan a growing heap for nothing: pausing took a third off compiling a 10,000-node
    graph and half off differentiating a 20,000-node one."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return wrapper


_EVAL_HOOK: list = []


def set_eval_hook(fn: Callable) -> None:
    """Install what ``Variable.eval`` compiles with: ``compile/`` calls this when imported, so
    this layer never imports the compiler."""
    _EVAL_HOOK[:] = [fn]


class Variable:
    """A symbolic value: a type, and the Apply node that computes it (None for a root)."""

    __array_ufunc__ = None  # numpy defers to our reflected operators (np_array + var)
    # The type's slot naming the class to make instead of this one (a tensor type makes
    # variables with the tensor operators, defined in the ops layer); read only for the class
    # that declares it, so the richer subclasses are made as asked.
    _type_slot = "variable_type"

    def __new__(cls, type=None, *args, **kwargs):
        if "_type_slot" in cls.__dict__:
            cls = getattr(type, cls._type_slot, None) or cls
        return object.__new__(cls)

    def __init__(self, type: Type, owner: Apply | None = None, index: int | None = None,
                 name: str | None = None, trace: Trace | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.trace = user_trace() if trace is None else trace

    @property
    def tag(self):
        """Theano's scratchpad for annotations (``x.tag.test_value = ...``): made on first use,
        kept, and otherwise ignored by theon."""
        tag = self.__dict__.get("_tag")
        if tag is None:
            tag = self.__dict__["_tag"] = types.SimpleNamespace()
        return tag

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.owner is not None:
            op = self.owner.op
            label = f"{op}.{self.index}" if len(self.owner.outputs) > 1 else str(op)
            return f"{label}.out"
        return f"<{self.type}>"

    def clone(self) -> Variable:
        """A new root variable of the same type and name (the owner is not copied)."""
        return type(self)(self.type, name=self.name, trace=self.trace)

    def eval(self, inputs_to_values: dict[Variable, Any] | None = None):
        """Compile (once, cached) and evaluate this variable given values for its inputs."""
        if not _EVAL_HOOK:
            raise RuntimeError("Variable.eval needs the compiler: import theon (or theon.compile) "
                               "first")
        function, = _EVAL_HOOK
        inputs_to_values = dict(inputs_to_values or {})
        key = tuple(inputs_to_values)
        cache = self.__dict__.setdefault("_eval_cache", {})
        if key not in cache:
            cache[key] = function(list(key), self, on_unused_input="ignore")
        return cache[key](*inputs_to_values.values())

    # -- pickling: iterative, in symbolic/serialize.py (a deep graph recursed past the limit)
    def __reduce_ex__(self, protocol):
        from .serialize import reduce_variable
        return reduce_variable(self, protocol)

    def __setstate__(self, state):
        from .serialize import set_root_state
        set_root_state(self, state)

    def __copy__(self) -> Variable:
        twin = object.__new__(type(self))  # copy.copy: the same attributes, as before
        twin.__dict__.update(self.__dict__)
        return twin

    def __bool__(self) -> bool:
        raise TypeError(
            f"The truth value of the symbolic variable {describe(self)} is not known while the "
            "graph is built. Use T.switch(cond, a, b) or ifelse(cond, a, b) for a choice made "
            f"at run time.\n  (at {format_trace(user_trace())})")


class Constant(Variable):
    """A root variable with a fixed value (folded into generated code).

    ``Constant(type, data)`` makes the type's own constant class when it has one
    (``TensorType.constant_type``: a tensor constant has the tensor operators)."""

    _type_slot = "constant_type"

    def __init__(self, type: TensorType, data: Any, name: str | None = None,
                 trace: Trace | None = None):
        super().__init__(type, name=name, trace=trace)
        self.data = type.filter(data, allow_downcast=True)
        self.data.setflags(write=False)

    @property
    def value(self):
        return self.data

    def signature(self):
        """A hashable key equal for equal constants (used by merging)."""
        return (self.type, self.data.shape, self.data.tobytes())

    def clone(self) -> Constant:
        return Constant(self.type, self.data, name=self.name, trace=self.trace)

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.data.size <= 8:
            return np.array2string(self.data, separator=",").replace("\n", "")
        return f"Constant{{{self.type.dtype}, shape={self.data.shape}}}"


class Apply:
    """One application of an Op: ``outputs = op(*inputs)``."""

    __slots__ = ("op", "inputs", "outputs", "tag")

    def __init__(self, op, inputs: Sequence[Variable], outputs: Sequence[Variable]):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.tag = None
        for i, out in enumerate(self.outputs):
            if out.owner is not None and out.owner is not self:
                raise ValueError(f"output {i} of {op} already belongs to another node")
            out.owner = self
            out.index = i

    @property
    def out(self) -> Variable:
        return self.outputs[0]

    @property
    def trace(self) -> Trace:
        return self.outputs[0].trace if self.outputs else ()

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(repr, self.inputs))})"

    # -- pickling: as the owner of its first output (see symbolic/serialize.py)
    def __reduce_ex__(self, protocol):
        from .serialize import reduce_apply
        return reduce_apply(self, protocol)

    def __copy__(self) -> Apply:
        twin = object.__new__(Apply)
        for slot in Apply.__slots__:
            object.__setattr__(twin, slot, getattr(self, slot))
        return twin

    def clone_with_new_inputs(self, inputs: Sequence[Variable]) -> Apply:
        """The same op on new inputs, keeping output names and the user's creation lines."""
        if all(a.type == b.type for a, b in zip(inputs, self.inputs)):
            outs = [type(o)(o.type, name=o.name, trace=o.trace) for o in self.outputs]
            return Apply(self.op, inputs, outs)
        node = self.op.make_node(*inputs)
        for new, old in zip(node.outputs, self.outputs):
            new.name, new.trace = old.name, old.trace
        return node


# -- walks ---------------------------------------------------------------------------------

def toposort(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> list[Apply]:
    """Apply nodes needed for ``outputs``, each after the nodes computing its inputs.

    The walk does not go past variables in ``stop`` (used for function inputs).
    """
    stop = set(stop)
    order: list[Apply] = []
    done = set()
    # A depth-first walk; a node is appended when the marker pushed above its inputs comes
    # back off the stack. The marker and a second stack of the expanded nodes avoid making a
    # (node, flag) pair per edge: graphs of 100,000 nodes are sorted several times a compile.
    expanded: list[Apply] = []
    stack: list = [v.owner for v in reversed(list(outputs))
                   if v.owner is not None and v not in stop]
    mark = _POSTORDER_MARK
    while stack:
        node = stack.pop()
        if node is mark:
            order.append(expanded.pop())
            continue
        if node in done:
            continue
        done.add(node)
        stack.append(mark)
        expanded.append(node)
        for inp in reversed(node.inputs):
            owner = inp.owner
            if owner is not None and owner not in done and inp not in stop:
                stack.append(owner)
    return order


_POSTORDER_MARK = object()


def ancestors(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> list[Variable]:
    """Every variable that ``outputs`` depend on (themselves included), roots included."""
    stop = set(stop)
    seen, order = set(), []
    stack = list(outputs)
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        order.append(v)
        if v.owner is not None and v not in stop:
            stack.extend(v.owner.inputs)
    return order


def graph_inputs(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> list[Variable]:
    """The root variables (no owner, or in ``stop``) that ``outputs`` depend on."""
    stop = set(stop)
    return [v for v in ancestors(outputs, stop) if v.owner is None or v in stop]


def clone_replace(outputs: Sequence[Variable], replace: dict[Variable, Variable] | None = None,
                  copy_inputs: bool = False) -> list[Variable]:
    """Copy the graph of ``outputs`` with each key of ``replace`` swapped for its value.

    Nodes that depend on no replaced variable are shared with the original graph, as in
    Theano's ``clone`` with ``share_inputs=True``. With ``copy_inputs``, root inputs are copied.
    """
    memo: dict[Variable, Variable] = dict(replace or {})
    if copy_inputs:
        for v in graph_inputs(outputs, stop=memo):
            if v not in memo and not isinstance(v, Constant) and not _is_shared(v):
                memo[v] = v.clone()
    for node in toposort(outputs, stop=memo):
        new_inputs = [memo.get(i, i) for i in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            continue
        new_node = node.clone_with_new_inputs(new_inputs)
        memo.update(zip(node.outputs, new_node.outputs))
    return [memo.get(o, o) for o in outputs]


def _is_shared(v: Variable) -> bool:
    from .shared import SharedVariable
    return isinstance(v, SharedVariable)


def walk_nodes(outputs: Iterable[Variable], fn: Callable[[Apply], None]) -> None:
    """Call ``fn`` on every Apply node of the graph of ``outputs``, in topological order."""
    for node in toposort(outputs):
        fn(node)
