"""``as_op``: turn a Python function on numpy arrays into an Op (Theano's compile.ops.as_op)."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np

from ..ops.base import Op, as_tensor_variable, graph_error
from ..symbolic.graph import Apply
from ..symbolic.types import TensorType


class FromFunctionOp(Op):
    """An op computed by a Python function with declared input and output types."""

    __props__ = ("fn", "itypes", "otypes")

    def __init__(self, fn: Callable, itypes: Sequence[TensorType], otypes: Sequence[TensorType],
                 infer_shape: Callable | None = None):
        self.fn = fn
        self.itypes, self.otypes = tuple(itypes), tuple(otypes)
        self._infer_shape = infer_shape
        self.__name__ = getattr(fn, "__name__", "as_op")

    def __str__(self) -> str:
        return f"FromFunctionOp{{{self.__name__}}}"

    def make_node(self, *inputs) -> Apply:
        if len(inputs) != len(self.itypes):
            raise graph_error(f"{self.__name__} takes {len(self.itypes)} inputs, got "
                              f"{len(inputs)}")
        inputs = [as_tensor_variable(x) for x in inputs]
        for k, (x, t) in enumerate(zip(inputs, self.itypes)):
            if not t.is_super(x.type) and not (x.dtype == t.dtype and x.ndim == t.ndim):
                raise graph_error(f"{self.__name__}: input {k} must be {t}, got {x.type}")
        return Apply(self, inputs, [t() for t in self.otypes])

    def perform(self, node, inputs, output_storage):
        result = self.fn(*inputs)
        if len(self.otypes) == 1:
            result = [result]
        elif not isinstance(result, (list, tuple)) or len(result) != len(self.otypes):
            raise TypeError(f"as_op function {self.__name__!r} must return a list or tuple of "
                            f"{len(self.otypes)} outputs, got {type(result).__name__}"
                            + (f" of length {len(result)}" if isinstance(result, (list, tuple))
                               else ""))
        for i, (store, value, t) in enumerate(zip(output_storage, result, self.otypes)):
            store[0] = self._check_output(i, value, t)

    def _check_output(self, i: int, value, t: TensorType) -> np.ndarray:
        """``value`` as an array of type ``t``: exact, or a cast that loses nothing (numpy
        arrays that cast safely, such as float32 into float64; Python numbers and lists whose
        values survive). Anything else is a bug in the function, not silently cast away."""
        try:
            return t.filter(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"as_op function {self.__name__!r} returned for output {i} "
                            f"{_mismatch(value, t, err)}. Return the declared type (e.g. "
                            f"np.asarray(result, dtype='{t.dtype}')) or fix otypes.") from None

    def infer_shape(self, fgraph, node, shapes):
        if self._infer_shape is None:
            raise NotImplementedError(f"{self.__name__} was made without infer_shape")
        # Theano's as_op took infer_shape(node, shapes); PyTensor's takes (fgraph, node, shapes)
        if len(inspect.signature(self._infer_shape).parameters) == 2:
            return self._infer_shape(node, shapes)
        return self._infer_shape(fgraph, node, shapes)


def _mismatch(value, t: TensorType, err: Exception) -> str:
    """What was returned, what was declared, and why the one is not the other."""
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - describing the value must not hide the error
        return f"{type(value).__name__}, but declared {t} ({err})"
    got = f"{type(value).__name__} of dtype {arr.dtype} and shape {arr.shape}"
    if arr.dtype == object or arr.dtype.kind in "USV":
        why = "not numeric"
    elif arr.ndim != t.ndim:
        why = f"{arr.ndim} dimensions, not {t.ndim}"
    elif arr.dtype != t.numpy_dtype:
        why = f"{arr.dtype} does not cast to {t.dtype} without loss"
    else:
        why = str(err).splitlines()[0]
    return f"{got}, but declared {t} ({why})"


def as_op(itypes: Sequence[TensorType], otypes: Sequence[TensorType],
          infer_shape: Callable | None = None):
    """Decorator: ``@as_op(itypes=[T.dmatrix], otypes=[T.dvector])`` over a numpy function.

    ``itypes``/``otypes`` may be types or variable constructors such as ``T.dmatrix``.
    """
    def to_type(t):
        if isinstance(t, TensorType):
            return t
        if callable(t):
            return t().type
        raise TypeError(f"as_op: {t!r} is not a type")

    def wrap(fn: Callable) -> FromFunctionOp:
        return FromFunctionOp(fn, [to_type(t) for t in itypes], [to_type(t) for t in otypes],
                              infer_shape)
    return wrap
