"""The Op contract, conversion of Python values to graph variables, and graph-build errors.

An Op says how to build a node (``make_node``), how to compute it (``perform``, Theano's
signature, or the faster ``impl`` returning a plain callable), its shape rule (``infer_shape``)
and its gradient (``grad``/``L_op``, ``R_op``). ``__props__`` names the fields that make two ops
equal, so equal ops on equal inputs can be merged.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.trace import format_trace, user_trace
from ..symbolic.types import ALL_DTYPES, INT_DTYPES, UINT_DTYPES, TensorType

OP_CLASSES: list[type] = []  # every Op subclass, for completeness tests

# The modules outside ops/ that define ops; importing theon does not import them all.
_OP_MODULES = ("theon.compile", "theon.compile.ops", "theon.printing", "theon.ifelse",
               "theon.scan.jacobian", "theon.ops.control", "theon.ops.gradient_ops",
               "theon.scan", "theon.ops.extra", "theon.ops.pool", "theon.ops.conv",
               "theon.ops.random", "theon.ops.transfer")


def theon_op_classes() -> list[type]:
    """Every Op subclass theon itself defines (its modules imported first), for the tests
    that check each op has a gradient test, a shape test, and so on."""
    import importlib
    for name in _OP_MODULES:
        importlib.import_module(name)
    return [cls for cls in OP_CLASSES if cls.__module__.startswith("theon.")]


def graph_error(message: str, cls: type = TypeError) -> Exception:
    """An error raised while building the graph, pointing at the user's line."""
    return cls(f"{message}\n  (at {format_trace(user_trace())})")


class Op:
    """Base class of operations: the contract every op follows, one hook per concern.

    An op is a value (``__props__`` make two ops equal, so equal ops on equal inputs merge) that
    builds nodes (``make_node``) and says what they compute (``impl`` or ``perform``), their
    shapes (``infer_shape``) and derivatives (``grad``/``L_op``, ``R_op``). How a node runs on a
    particular backend is not the op's business: each backend keeps its own table keyed by op
    class, with ``impl``/``perform`` as the default, so adding a backend touches no op.
    """

    __props__: tuple = ()
    #: output index -> the inputs it may be a view of (share memory with). ``function()`` copies
    #: an output that would alias an input, a shared value or another output.
    view_map: dict[int, list[int]] = {}
    #: output index -> the inputs the op overwrites. Backends give such an op copies unless they
    #: prove nobody else reads the buffer.
    destroy_map: dict[int, list[int]] = {}
    #: which output ``op(*inputs)`` returns when there are several (None: all of them)
    default_output: int | None = None
    #: False for ops that must not be computed at compile time even with constant inputs
    #: (side effects: printing, random draws)
    foldable = True
    #: True for ops whose inputs fall into branches of which only one is computed (``ifelse``);
    #: ``branch_inputs`` says which. A backend with no lazy form of the op runs it eagerly.
    lazy = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        OP_CLASSES.append(cls)

    # -- identity -------------------------------------------------------------------------
    def _props(self) -> tuple:
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self._props() == other._props()

    def __hash__(self) -> int:
        return hash((type(self), self._props()))

    def __str__(self) -> str:
        if not self.__props__:
            return type(self).__name__
        return f"{type(self).__name__}{{{', '.join(str(p) for p in self._props())}}}"

    __repr__ = __str__

    # -- building -------------------------------------------------------------------------
    def make_node(self, *inputs) -> Apply:
        raise NotImplementedError(f"{type(self).__name__} does not implement make_node")

    def __call__(self, *inputs, **kwargs):
        node = self.make_node(*inputs, **kwargs)
        if self.default_output is not None:
            return node.outputs[self.default_output]
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    # -- computing ------------------------------------------------------------------------
    def impl(self, node: Apply) -> Callable | None:
        """A callable ``f(*input_values) -> output`` (a tuple when there are several outputs),
        or None to fall back on ``perform``. Internal ops implement this: it is the fast path.
        An op with ``inner_graphs`` takes their compiled callables: ``impl(node, inner)``."""
        return None

    def perform(self, node: Apply, inputs: Sequence[Any], output_storage: list[list[Any]]):
        """Theano's contract: compute from ``inputs`` and store into ``output_storage[i][0]``."""
        fn = self.impl(node)
        if fn is None:
            raise NotImplementedError(f"{type(self).__name__} implements neither perform nor impl")
        result = fn(*inputs)
        if len(output_storage) == 1:
            output_storage[0][0] = result
        else:
            for store, value in zip(output_storage, result):
                store[0] = value

    def branch_inputs(self, node: Apply) -> list[list[int]]:
        """For a ``lazy`` op: the input positions of each branch (only one is computed)."""
        raise NotImplementedError(f"{type(self).__name__} is not lazy")

    def inner_graphs(self, node: Apply) -> Sequence[tuple]:
        """The graphs this op runs inside, as ``(inputs, outputs)`` pairs (a loop body, a
        mapped row). ``function()`` compiles each once, with the outer mode and backend, and
        hands the callables to ``impl(node, inner)``."""
        return ()

    # -- shapes and gradients ---------------------------------------------------------------
    def infer_shape(self, fgraph, node: Apply, input_shapes):
        """The output shapes (tuples of symbolic lengths) from the input shapes, so that
        ``x.shape`` is answered without computing ``x``. Optional."""
        raise NotImplementedError(f"{type(self).__name__} has no infer_shape")

    def connection_pattern(self, node: Apply) -> list[list[bool]] | None:
        """``[input][output]``: whether the output depends on the input in a differentiable
        way. None (the default) means every output on every input."""
        return None

    def grad(self, inputs, output_grads):
        """Theano's reverse-mode rule: the gradients of the inputs from those of the outputs
        (None where nothing flows; ``grad_undefined`` where there is no gradient). Raising
        NotImplementedError makes the gradient undefined, an error only if it is used."""
        raise NotImplementedError(f"{type(self).__name__} has no gradient")

    def L_op(self, inputs, outputs, output_grads):
        """``grad`` with the outputs at hand (softmax's gradient is written with its output)."""
        return self.grad(inputs, output_grads)

    def L_op_unfitted(self, inputs, outputs, output_grads):
        """What reverse mode calls: ``L_op``, except that a gradient need not have its input's
        broadcast pattern and dtype yet (``grad`` fits the gradients it keeps and drops the
        others). An op whose ``L_op`` fits every gradient (Elemwise) overrides this to skip
        that work for the inputs nobody differentiates. Optional."""
        return self.L_op(inputs, outputs, output_grads)

    def R_op(self, inputs, eval_points):
        """Forward mode: the tangents of the outputs given those of the inputs (None where an
        input has none). Optional: without it, ``Rop`` transposes ``L_op``, which is right only
        when ``L_op`` is linear in the output gradients; an op whose gradient rule is not (it
        clips, or thresholds, the gradient) must define this."""
        raise NotImplementedError(f"{type(self).__name__} has no R_op")


# -- undefined gradients (part of the op contract) --------------------------------------------

class Undefined:
    """Marks an undefined gradient, remembering which op could not give it and why: what
    ``grad`` returns for an input it has no gradient for. Using one in a gradient raises an
    error naming the op; an unused one costs nothing."""

    def __init__(self, op, reason: str):
        self.op, self.reason = op, reason

    def __repr__(self) -> str:
        return f"Undefined({self.op}: {self.reason})"


def grad_undefined(op, x_pos: int, x, comment: str = "") -> Undefined:
    """What an op's ``grad`` returns for an input it has no gradient for (Theano's name)."""
    return Undefined(op, f"input {x_pos} has no defined gradient. {comment}".strip())


def grad_not_implemented(op, x_pos: int, x, comment: str = "") -> Undefined:
    return Undefined(op, f"the gradient for input {x_pos} is not implemented. {comment}".strip())


def call_infer_shape(op: Op, fgraph, node: Apply, shapes):
    """Call ``infer_shape`` with Theano's (node, shapes) or PyTensor's (fgraph, node, shapes)."""
    fn = op.infer_shape
    nparams = _INFER_SHAPE_ARITY.get(type(op))
    if nparams is None:  # inspect.signature is slow; shape rewrites call this per node
        try:
            nparams = len(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            nparams = 3
        _INFER_SHAPE_ARITY[type(op)] = nparams
    return fn(node, shapes) if nparams == 2 else fn(fgraph, node, shapes)


_INFER_SHAPE_ARITY: dict = {}


# -- converting Python values ------------------------------------------------------------------

_INT_RANGES = tuple((dt, int(np.iinfo(dt).min), int(np.iinfo(dt).max))
                    for dt in ("int8", "int16", "int32", "int64"))


def autocast_dtype(value: Any) -> str | None:
    """Theano's dtype for a Python scalar: the smallest int, or a float32 when exact.

    numpy scalars keep their own dtype (None here), as in Theano: ``np.float64(0.5)`` is a
    float64 even though it subclasses ``float``."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int,)) and not isinstance(value, np.integer):
        for dt, lo, hi in _INT_RANGES:
            if lo <= value <= hi:
                return dt
        return "uint64" if value >= 0 else None
    if type(value) is float:
        return _autocast_float(value)
    if type(value) is complex:
        return "complex128"
    return None


_FLOAT_WIDTHS = ("float16", "float32", "float64")


def _autocast_float(value: float) -> str:
    """floatX=float64: float32 when exact, else float64 (Theano). floatX=float32 or float16: the
    floatX-sized float, rounded, unless the value overflows it; then the next wider float that
    holds it (so ``x * 1e40`` is not ``x * inf``)."""
    from ..config import config
    if not np.isfinite(value):
        return "float32" if config.floatX != "float16" else "float16"
    with np.errstate(over="ignore"):
        if config.floatX == "float64":
            return "float32" if float(np.float32(value)) == value else "float64"
        for dt in _FLOAT_WIDTHS[_FLOAT_WIDTHS.index(config.floatX):]:
            if np.isfinite(np.asarray(value, dtype=dt)):
                return dt
    return "float64"


def constant(value: Any, name: str | None = None, ndim: int | None = None,
             dtype: str | None = None) -> Constant:
    """A Constant holding ``value``; Python scalars take Theano's autocast dtype."""
    if dtype is None:
        dtype = autocast_dtype(value)
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as err:
        raise graph_error(f"cannot make a constant from {type(value).__name__} {value!r}: "
                          f"{err}") from None
    if arr.dtype == object or arr.dtype.kind in "USVM":
        raise graph_error(f"cannot make a tensor constant from {type(value).__name__} "
                          f"{str(value)[:80]!r} (dtype {arr.dtype}); expected numbers")
    if ndim is not None:
        if arr.ndim > ndim:
            raise graph_error(f"constant {value!r} has {arr.ndim} dimensions, more than {ndim}")
        arr = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
    dtype_name = _DTYPE_NAMES.get(arr.dtype) or str(arr.dtype)  # str(dtype) is slow Python
    ttype = TensorType(dtype_name, shape=tuple(1 if s == 1 else None for s in arr.shape))
    return Constant(ttype, arr, name=name)


_DTYPE_NAMES = {np.dtype(d): d for d in ALL_DTYPES}


def as_tensor_variable(x: Any, name: str | None = None, ndim: int | None = None
                       ) -> Variable:
    """Return ``x`` as a tensor variable: variables pass through, values become constants,
    and tuples or lists holding variables are stacked."""
    if isinstance(x, Variable) and isinstance(x.type, TensorType):
        if ndim is not None and x.ndim != ndim:
            if x.ndim < ndim:
                from .dimshuffle import shape_padleft
                return shape_padleft(x, ndim - x.ndim)
            raise graph_error(f"{x!r} has {x.ndim} dimensions where {ndim} were expected")
        return x
    if isinstance(x, Variable):
        raise graph_error(f"{x!r} of type {x.type} is not a tensor variable")
    if isinstance(x, Apply):
        if len(x.outputs) != 1:
            raise graph_error(f"the node {x!r} has several outputs; pick one")
        return x.outputs[0]
    if isinstance(x, (list, tuple)) and any(isinstance(e, Variable) for e in _flat(x)):
        from .join import stack
        return stack([as_tensor_variable(e) for e in x])
    if hasattr(x, "owner") or callable(x) and not isinstance(x, np.ndarray):
        raise graph_error(f"expected a tensor variable or a number/array, got "
                          f"{type(x).__name__} {x!r}")
    return constant(x, name=name, ndim=ndim)


def _flat(seq):
    stack = list(seq)
    while stack:
        e = stack.pop()
        if isinstance(e, (list, tuple)):
            stack.extend(e)
        else:
            yield e


def get_scalar_constant_value(v: Any) -> Any:
    """The Python value of a scalar constant (or a Python number); raises NotConstantError."""
    if isinstance(v, (int, float, bool, np.number, np.bool_)):
        return v
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    if isinstance(v, Constant) and v.data.size == 1:
        return v.data.item()
    raise NotConstantError(f"{v!r} is not a constant scalar")


class NotConstantError(ValueError):
    """A value needed at graph-build time is only known at run time."""


def static_value(v: Any) -> Any:
    """The value of the scalar ``v`` when it is known while the graph is built, else None."""
    try:
        return get_scalar_constant_value(v)
    except NotConstantError:
        return None


def static_int(v: Any) -> int | None:
    """``static_value`` as an int: a length or an index known at build time, else None."""
    value = static_value(v)
    return None if value is None else int(value)


# -- small checks shared by the ops ------------------------------------------------------------

#: the dtypes that count and index: signed and unsigned ints (bool is not one)
INTEGER_DTYPES = INT_DTYPES + UINT_DTYPES


def as_int_scalar(v: Any, what: str, cls: type = TypeError) -> Variable:
    """``v`` as an integer scalar variable; else a graph error of class ``cls`` saying that
    ``what`` must be one."""
    v = as_tensor_variable(v)
    if v.ndim != 0 or v.dtype not in INTEGER_DTYPES:
        raise graph_error(f"{what} must be an integer scalar, got {v.type}", cls)
    return v


def same_type(new: Variable | None, old: Variable) -> Variable | None:
    """``new`` if it has exactly ``old``'s dtype and broadcast pattern, else None: a shortcut
    (a rewrite's replacement, a gradient rule's simpler form) that changed either would change
    the result's values or shape."""
    if new is None or (new.dtype, new.broadcastable) != (old.dtype, old.broadcastable):
        return None
    return new
