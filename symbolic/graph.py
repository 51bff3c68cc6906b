"""The graph: Variables produced by Apply nodes, and iterative walks over them.

A graph is bipartite: an ``Apply`` joins an ``Op`` to its input and output Variables; a Variable
with no owner is a root (an input, a Constant or a SharedVariable). Every walk here uses an
explicit stack, so a chain of 100,000 nodes never meets Python's recursion limit.
"""
from __future__ import annotations

import functools
import gc
import types
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

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


def _tensor_module():
    from .. import tensor  # the facade; imported late because it depends on this module
    return tensor


class Variable:
    """A symbolic value: a type, and the Apply node that computes it (None for a root)."""

    __array_ufunc__ = None  # numpy defers to our reflected operators (np_array + var)

    def __init__(self, type: Type, owner: Optional["Apply"] = None, index: Optional[int] = None,
                 name: Optional[str] = None, trace: Optional[Trace] = None):
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

    def clone(self) -> "Variable":
        """A new root variable of the same type and name (the owner is not copied)."""
        return type(self)(self.type, name=self.name, trace=self.trace)

    def eval(self, inputs_to_values: Optional[Dict["Variable", Any]] = None):
        """Compile (once, cached) and evaluate this variable given values for its inputs."""
        from ..compile.function import function
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

    def __copy__(self) -> "Variable":
        twin = object.__new__(type(self))  # copy.copy: the same attributes, as before
        twin.__dict__.update(self.__dict__)
        return twin

    def __bool__(self) -> bool:
        raise TypeError(
            f"The truth value of the symbolic variable {describe(self)} is not known while the "
            "graph is built. Use T.switch(cond, a, b) or ifelse(cond, a, b) for a choice made "
            f"at run time.\n  (at {format_trace(user_trace())})")


class TensorVariable(Variable):
    """A Variable of TensorType, with numpy-like operators and methods that build graph."""

    # -- attributes -----------------------------------------------------------------------
    ndim = property(lambda self: self.type.ndim)
    dtype = property(lambda self: self.type.dtype)
    broadcastable = property(lambda self: self.type.broadcastable)
    shape = property(lambda self: _tensor_module().shape(self))
    size = property(lambda self: _tensor_module().prod(self.shape))
    T = property(lambda self: _tensor_module().transpose(self))

    def __len__(self):
        raise TypeError(f"len() of the symbolic {describe(self)} is not known while the graph is "
                        "built; use x.shape[0]")

    def __iter__(self):
        if self.ndim == 0 or self.type.shape[0] is None:
            raise TypeError(f"cannot iterate over {describe(self)}: its first dimension has no "
                            "static length. Index it (x[i]) or use scan.")
        return (self[i] for i in range(self.type.shape[0]))

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, o): return _tensor_module().add(self, o)
    def __radd__(self, o): return _tensor_module().add(o, self)
    def __sub__(self, o): return _tensor_module().sub(self, o)
    def __rsub__(self, o): return _tensor_module().sub(o, self)
    def __mul__(self, o): return _tensor_module().mul(self, o)
    def __rmul__(self, o): return _tensor_module().mul(o, self)
    def __truediv__(self, o): return _tensor_module().true_div(self, o)
    def __rtruediv__(self, o): return _tensor_module().true_div(o, self)
    def __floordiv__(self, o): return _tensor_module().int_div(self, o)
    def __rfloordiv__(self, o): return _tensor_module().int_div(o, self)
    def __mod__(self, o): return _tensor_module().mod(self, o)
    def __rmod__(self, o): return _tensor_module().mod(o, self)
    def __pow__(self, o): return _tensor_module().pow(self, o)
    def __rpow__(self, o): return _tensor_module().pow(o, self)
    def __matmul__(self, o): return _tensor_module().matmul(self, o)
    def __rmatmul__(self, o): return _tensor_module().matmul(o, self)
    def __neg__(self): return _tensor_module().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _tensor_module().abs(self)
    def __lt__(self, o): return _tensor_module().lt(self, o)
    def __le__(self, o): return _tensor_module().le(self, o)
    def __gt__(self, o): return _tensor_module().gt(self, o)
    def __ge__(self, o): return _tensor_module().ge(self, o)
    def __and__(self, o): return _tensor_module().and_(self, o)
    def __rand__(self, o): return _tensor_module().and_(o, self)
    def __or__(self, o): return _tensor_module().or_(self, o)
    def __ror__(self, o): return _tensor_module().or_(o, self)
    def __xor__(self, o): return _tensor_module().xor(self, o)
    def __rxor__(self, o): return _tensor_module().xor(o, self)
    def __invert__(self): return _tensor_module().invert(self)
    __hash__ = Variable.__hash__  # identity, as in Theano: use T.eq for elementwise equality

    def __getitem__(self, index): return _tensor_module().subtensor(self, index)

    # -- methods --------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False):
        return _tensor_module().sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, keepdims=False):
        return _tensor_module().prod(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, keepdims=False):
        return _tensor_module().mean(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return _tensor_module().var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return _tensor_module().std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _tensor_module().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _tensor_module().min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _tensor_module().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _tensor_module().argmin(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _tensor_module().all(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return _tensor_module().any(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis=None): return _tensor_module().cumsum(self, axis=axis)
    def cumprod(self, axis=None): return _tensor_module().cumprod(self, axis=axis)

    def reshape(self, *shape, ndim=None):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, Variable)):
            shape = shape[0]
        return _tensor_module().reshape(self, shape, ndim=ndim)

    def dimshuffle(self, *pattern):
        if len(pattern) == 1 and isinstance(pattern[0], (tuple, list)):
            pattern = pattern[0]
        return _tensor_module().dimshuffle(self, pattern)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _tensor_module().transpose(self, axes or None)

    def flatten(self, ndim=1): return _tensor_module().flatten(self, ndim)
    def astype(self, dtype): return _tensor_module().cast(self, dtype)
    def dot(self, other): return _tensor_module().dot(self, other)
    def clip(self, a_min, a_max): return _tensor_module().clip(self, a_min, a_max)
    def round(self, mode=None): return _tensor_module().round(self, mode)
    def repeat(self, repeats, axis=None): return _tensor_module().repeat(self, repeats, axis)
    def squeeze(self): return _tensor_module().squeeze(self)
    def copy(self, name=None): return _tensor_module().tensor_copy(self, name=name)
    def nonzero_values(self): return self.flatten()[_tensor_module().neq(self.flatten(), 0)]
    def norm(self, L, axis=None):
        t = _tensor_module()
        if L == 1:
            return t.sum(t.abs(self), axis=axis)
        return t.pow(t.sum(t.pow(t.abs(self), L), axis=axis), 1.0 / L)


class Constant(TensorVariable):
    """A root variable with a fixed value (folded into generated code)."""

    def __init__(self, type: TensorType, data: Any, name: Optional[str] = None,
                 trace: Optional[Trace] = None):
        super().__init__(type, name=name, trace=trace)
        self.data = type.filter(data, allow_downcast=True)
        self.data.setflags(write=False)

    @property
    def value(self):
        return self.data

    def signature(self):
        """A hashable key equal for equal constants (used by merging)."""
        return (self.type, self.data.shape, self.data.tobytes())

    def clone(self) -> "Constant":
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

    def __copy__(self) -> "Apply":
        twin = object.__new__(Apply)
        for slot in Apply.__slots__:
            object.__setattr__(twin, slot, getattr(self, slot))
        return twin

    def clone_with_new_inputs(self, inputs: Sequence[Variable]) -> "Apply":
        """The same op on new inputs, keeping output names and the user's creation lines."""
        if all(a.type == b.type for a, b in zip(inputs, self.inputs)):
            outs = [type(o)(o.type, name=o.name, trace=o.trace) for o in self.outputs]
            return Apply(self.op, inputs, outs)
        node = self.op.make_node(*inputs)
        for new, old in zip(node.outputs, self.outputs):
            new.name, new.trace = old.name, old.trace
        return node


# -- walks ---------------------------------------------------------------------------------

def toposort(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> List[Apply]:
    """Apply nodes needed for ``outputs``, each after the nodes computing its inputs.

    The walk does not go past variables in ``stop`` (used for function inputs).
    """
    stop = set(stop)
    order: List[Apply] = []
    done = set()
    stack = [(v.owner, False) for v in reversed(list(outputs))
             if v.owner is not None and v not in stop]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in done:
            continue
        done.add(node)
        stack.append((node, True))
        for inp in reversed(node.inputs):
            if inp.owner is not None and inp.owner not in done and inp not in stop:
                stack.append((inp.owner, False))
    return order


def ancestors(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> List[Variable]:
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


def graph_inputs(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> List[Variable]:
    """The root variables (no owner, or in ``stop``) that ``outputs`` depend on."""
    stop = set(stop)
    return [v for v in ancestors(outputs, stop) if v.owner is None or v in stop]


def clone_replace(outputs: Sequence[Variable], replace: Optional[Dict[Variable, Variable]] = None,
                  copy_inputs: bool = False) -> List[Variable]:
    """Copy the graph of ``outputs`` with each key of ``replace`` swapped for its value.

    Nodes that depend on no replaced variable are shared with the original graph, as in
    Theano's ``clone`` with ``share_inputs=True``. With ``copy_inputs``, root inputs are copied.
    """
    memo: Dict[Variable, Variable] = dict(replace or {})
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
