"""Types: what a variable may hold (dtype plus broadcastable pattern, with an optional static
shape).

Two ``TensorType`` are equal when dtype and static shape agree; ``broadcastable`` is derived from
the static shape (a dimension of known length 1 broadcasts), as in PyTensor, and the Theano
spelling ``TensorType(dtype, broadcastable)`` is accepted.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .trace import describe, user_trace

FLOAT_DTYPES = ("float16", "float32", "float64")
COMPLEX_DTYPES = ("complex64", "complex128")
INT_DTYPES = ("int8", "int16", "int32", "int64")
UINT_DTYPES = ("uint8", "uint16", "uint32", "uint64")
DISCRETE_DTYPES = ("bool",) + INT_DTYPES + UINT_DTYPES
ALL_DTYPES = DISCRETE_DTYPES + FLOAT_DTYPES + COMPLEX_DTYPES

_DTYPE_SET = frozenset(ALL_DTYPES)
# numpy >= 1.25 has np.exceptions.ComplexWarning; numpy 2 removed np.ComplexWarning
_ComplexWarning = getattr(getattr(np, "exceptions", np), "ComplexWarning", None) \
    or np.ComplexWarning
_NP_DTYPES = {d: np.dtype(d) for d in ALL_DTYPES}
_TYPE_CACHE: dict = {}
# variable class -> whether it keeps Variable's constructor (made without calling it)
_PLAIN_CLASSES: dict = {}
_new_object = object.__new__
_NDIM_NAMES = {0: "scalar", 1: "vector", 2: "matrix", 3: "tensor3", 4: "tensor4"}


class Type:
    """Base class of variable types; a type can make variables and check values.

    The classes of the variables a type makes are slots that the layer defining their
    operators fills (``ops/variable.py`` for tensors): this layer knows no operators. Until
    then a type makes plain graph variables."""

    variable_type: type | None = None  # made by type(name); None: symbolic.graph.Variable
    constant_type: type | None = None  # made by Constant(type, data)
    shared_type: type | None = None    # made by SharedVariable(type, value)

    def __call__(self, name: str | None = None):
        cls = self.variable_type
        if _PLAIN_CLASSES.get(cls):
            # Variable's constructor, inlined for the classes that keep it (every node output
            # is made here): keep the attributes in step with Variable.__init__
            v = _new_object(cls)
            v.type, v.owner, v.index, v.name, v.trace = self, None, None, name, user_trace()
            return v
        from .graph import Variable  # same layer; graph imports this module
        if cls is None:
            cls = Variable
        elif len(_PLAIN_CLASSES) < 100:
            _PLAIN_CLASSES[cls] = (cls.__init__ is Variable.__init__
                                   and cls.__new__ is Variable.__new__
                                   and "_type_slot" not in cls.__dict__)
        return cls(self, name=name)


class TensorType(Type):
    """An n-dimensional array type: dtype and, per dimension, a static length or None."""

    __slots__ = ("dtype", "shape", "broadcastable", "ndim", "_np_dtype", "_hash", "_cache_key",
                 "_name")

    def __new__(cls, dtype: str = "float64", broadcastable=None, shape=None, name=None):
        # Types are immutable: the same arguments give the same instance, built once.
        key = (cls, dtype, broadcastable, shape, name)
        try:
            hit = _TYPE_CACHE.get(key)
        except TypeError:  # unhashable arguments (lists): build a new one
            return super().__new__(cls)
        if hit is not None:
            return hit
        self = super().__new__(cls)
        if dtype != "floatX" and len(_TYPE_CACHE) < 10_000:
            self._cache_key = key  # stored by __init__ once it has succeeded
        return self

    def __init__(self, dtype: str, broadcastable: Sequence[bool] | None = None,
                 shape: Sequence[int | None] | None = None, name: str | None = None):
        if getattr(self, "_hash", None) is not None:  # a cached instance
            return
        self._name = name  # Theano's TensorType(..., name=): shown, never compared
        if dtype not in _DTYPE_SET:
            dtype = str(np.dtype(dtype)) if dtype != "floatX" else _floatx()
        if dtype not in _DTYPE_SET:
            raise TypeError(f"Unsupported dtype {dtype!r}; theon supports {', '.join(ALL_DTYPES)}")
        if shape is None:
            if broadcastable is None:
                raise TypeError("TensorType needs a broadcastable pattern or a static shape")
            shape = tuple(1 if b else None for b in broadcastable)
        else:
            shape = tuple(None if s is None else int(s) for s in shape)
            if broadcastable is not None:
                if len(broadcastable) != len(shape):
                    raise TypeError("broadcastable and shape must have the same length")
                shape = tuple(1 if b else s for b, s in zip(broadcastable, shape))
        if any(s is not None and s < 0 for s in shape):
            raise ValueError(f"static shape {shape} has a negative length")
        self.dtype = dtype
        self.shape = shape
        self.broadcastable = tuple(s == 1 for s in shape)
        self.ndim = len(shape)
        self._np_dtype = _NP_DTYPES[dtype]
        self._hash = hash((TensorType, dtype, shape))
        key = getattr(self, "_cache_key", None)
        if key is not None:
            _TYPE_CACHE[key] = self

    # -- identity -------------------------------------------------------------------------
    def __eq__(self, other: Any) -> bool:
        return (type(other) is TensorType and other.dtype == self.dtype
                and other.shape == self.shape)

    def __hash__(self) -> int:
        return self._hash

    @property
    def name(self) -> str | None:
        return getattr(self, "_name", None)  # unset in a type unpickled from before names

    def __repr__(self) -> str:
        if self.name:
            return self.name
        kind = _NDIM_NAMES.get(self.ndim, f"{self.ndim}d")
        if any(s is not None for s in self.shape):
            dims = ", ".join("?" if s is None else str(s) for s in self.shape)
            comma = "," if self.ndim == 1 else ""
            return f"TensorType({self.dtype}, {kind}, shape=({dims}{comma}))"
        return f"TensorType({self.dtype}, {kind})"

    __str__ = __repr__

    def clone(self, dtype: str | None = None, shape=None, broadcastable=None) -> TensorType:
        """A copy with some fields changed."""
        if broadcastable is not None and shape is None:
            shape = tuple(1 if b else None for b in broadcastable)
        return TensorType(dtype or self.dtype, shape=self.shape if shape is None else shape)

    @property
    def numpy_dtype(self) -> np.dtype:
        return self._np_dtype

    def is_super(self, other: TensorType) -> bool:
        """True when every value of ``other`` is also a value of this type."""
        return (isinstance(other, TensorType) and other.dtype == self.dtype
                and other.ndim == self.ndim
                and all(s is None or s == o for s, o in zip(self.shape, other.shape)))

    # -- values ---------------------------------------------------------------------------
    def filter(self, data: Any, strict: bool = False, allow_downcast: bool | None = None,
               var=None) -> np.ndarray:
        """Return ``data`` as an ndarray of this type, or raise a TypeError saying why not.

        Casts that lose precision are refused unless ``allow_downcast`` is true; with the default
        None, Python scalars and lists may be cast to this dtype when their values survive.
        ``var`` names the receiving variable in the message.
        """
        who = _Who(var, self)
        if isinstance(data, np.ndarray) and type(data) is not np.ndarray:
            # np.matrix, masked arrays, ...: their operators differ from ndarray's (a matrix
            # stays 2-d after a reduction), so compute on a plain array.
            data = _plain_array(data, who, self)
        if isinstance(data, np.ndarray) and data.dtype == self._np_dtype:
            arr = data
        elif (type(data) is float or type(data) is int) and self.ndim == 0 and not strict \
                and allow_downcast is not False and self._np_dtype.kind in "fiu":
            arr = _python_scalar(data, self._np_dtype, allow_downcast, who, self)
        elif strict:
            raise TypeError(f"{who} expects {self}; got {_value_desc(data)} (strict=True)")
        else:
            arr = _cast(data, self._np_dtype, allow_downcast, who, self)
        if arr.ndim != self.ndim:
            raise TypeError(f"{who} expects a {self.ndim}-d array ({self}); got "
                            f"{_value_desc(arr)}")
        for d, (want, got) in enumerate(zip(self.shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(f"{who} has static shape {self.shape}; got an array of shape "
                                 f"{arr.shape} (dimension {d} has length {got}, not {want})")
        return arr

    def value_zeros(self, shape) -> np.ndarray:
        return np.zeros(shape, dtype=self._np_dtype)


class _Who:
    """Names the receiving variable in messages; formatted only when an error is raised."""

    __slots__ = ("var", "ttype")

    def __init__(self, var, ttype):
        self.var, self.ttype = var, ttype

    def __str__(self) -> str:
        if self.var is None:
            return f"a variable of type {self.ttype}"
        return f"input {describe(self.var)}"


def _python_scalar(data, dtype: np.dtype, allow_downcast, who, ttype) -> np.ndarray:
    """Fast path for a Python number given for a scalar input (a common call pattern)."""
    if dtype.kind == "f" and (type(data) is float or abs(data) < 2 ** 24):
        if allow_downcast or abs(data) <= _FLOAT_MAX[dtype.itemsize] or not np.isfinite(data):
            with np.errstate(over="ignore"):
                return np.array(data, dtype=dtype)
        raise TypeError(f"{who} expects {ttype}; got {_value_desc(data)}, which overflows "
                        f"{dtype}. Pass allow_input_downcast=True to function() to accept "
                        f"the cast to inf.")
    return _cast(data, dtype, allow_downcast, who, ttype)


_FLOAT_MAX = {2: float(np.finfo(np.float16).max), 4: float(np.finfo(np.float32).max),
              8: float("inf")}


def _value_desc(data: Any) -> str:
    if isinstance(data, np.ndarray):
        return f"an array of dtype {data.dtype} and shape {data.shape}"
    return f"{type(data).__name__} {data!r}"[:200]


def _cast(data: Any, dtype: np.dtype, allow_downcast: bool | None, who: _Who,
          ttype: TensorType) -> np.ndarray:
    if allow_downcast:
        try:
            return np.asarray(data, dtype=dtype)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{who} could not convert {_value_desc(data)}: {err}") from None
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who} expects {ttype}; could not read {_value_desc(data)} as an "
                        f"array: {err}") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{who} expects {ttype}; got {_value_desc(data)}, which is not numeric")
    if np.can_cast(arr.dtype, dtype, "safe"):
        return arr.astype(dtype, copy=False)
    is_python = not isinstance(data, (np.ndarray, np.generic))
    if allow_downcast is None and is_python:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            # complex -> real warns; the TypeError below already says the cast loses data
            warnings.simplefilter("ignore", _ComplexWarning)
            converted = arr.astype(dtype)
        # A Python float may become a floatX-sized float (rounded, not overflowing to inf);
        # the values of a list must survive the cast exactly (Theano's rule for lists).
        if (arr.dtype.kind == "f" and dtype.kind == "f" and not isinstance(data, (list, tuple))
                and np.array_equal(np.isfinite(converted), np.isfinite(arr))) \
                or np.array_equal(converted, arr, equal_nan=arr.dtype.kind in "fc"):
            return converted
        if isinstance(data, (list, tuple)):
            raise TypeError(
                f"{who} expects {ttype}, which cannot store accurately the values of "
                f"{_value_desc(data)}: they would be represented as "
                f"{np.array2string(converted, threshold=10)[:200]}. If you do not mind this "
                f"precision loss, convert the data to a numpy array of dtype {dtype}, or pass "
                f"allow_input_downcast=True to function().")
    hint = (f"Cast the data first (value.astype('{dtype}')), or pass allow_input_downcast=True "
            f"to function()")
    raise TypeError(f"{who} expects {ttype}; got {_value_desc(data)}, and casting "
                    f"{arr.dtype} to {dtype} may lose precision. {hint}.")


def _plain_array(data: np.ndarray, who: _Who, ttype: TensorType) -> np.ndarray:
    """An ndarray subclass as a plain ndarray; a masked array must have nothing masked."""
    if isinstance(data, np.ma.MaskedArray):
        if np.ma.getmaskarray(data).any():
            raise TypeError(f"{who} expects {ttype}; got a masked array with masked entries, "
                            f"which theon cannot honour. Pass data.filled(value) instead.")
        data = data.data
    return np.asarray(data)


def _floatx() -> str:
    from ..config import config
    return config.floatX
