"""Tensor variables: the numpy-like face of graph variables (``x + y``, ``x.sum()``, ``x.T``,
``x[i]``).

``symbolic/`` knows variables only as typed nodes of a graph; the operators live here, in the
ops layer, because each one builds a node of an op. ``TensorType`` reaches these classes
through its slots (``variable_type``, ``constant_type``, ``shared_type``), filled when this
module is imported (``theon.ops`` imports it), as PyTensor splits ``graph/basic.py`` from
``tensor/variable.py``.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..symbolic.graph import Constant, Variable
from ..symbolic.shared import SharedVariable
from ..symbolic.trace import describe, format_trace, user_trace
from ..symbolic.types import TensorType
from . import blas, dimshuffle, elemwise, reduce, repeat, shape, subtensor


class _Namespace(SimpleNamespace):
    """The operations the methods call, gathered on first use (the op modules import this
    module's package, so they are not all complete when it is imported)."""

    def __getattr__(self, name: str):
        table = dict(elemwise.ELEMWISE, cast=elemwise.cast, round=elemwise.round_mode,
                     tensor_copy=elemwise.tensor_copy, matmul=blas.matmul, dot=blas.dot,
                     subtensor=subtensor.subtensor)
        table.update({n: getattr(reduce, n) for n in (
            "sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "all", "any",
            "cumsum", "cumprod")})
        table.update(shape=shape.shape, reshape=shape.reshape, flatten=shape.flatten,
                     dimshuffle=dimshuffle.dimshuffle, transpose=dimshuffle.transpose,
                     squeeze=dimshuffle.squeeze, repeat=repeat.repeat)
        if name not in table:
            raise AttributeError(name)
        self.__dict__.update(table)
        return table[name]


_T = _Namespace()
_ORDERINGS = frozenset(("lt", "le", "gt", "ge"))


class TensorOperators:
    """The numpy-like operators and methods of tensor variables, constants and shared
    variables: each builds graph through the op that defines it."""

    # -- attributes -----------------------------------------------------------------------
    ndim = property(lambda self: self.type.ndim)
    dtype = property(lambda self: self.type.dtype)
    broadcastable = property(lambda self: self.type.broadcastable)
    shape = property(lambda self: _T.shape(self))
    size = property(lambda self: _T.prod(self.shape))
    T = property(lambda self: _T.transpose(self))

    def __len__(self):
        raise TypeError(f"len() of the symbolic {describe(self)} is not known while the graph is "
                        "built; use x.shape[0]")

    def __iter__(self):
        if self.ndim == 0 or self.type.shape[0] is None:
            raise TypeError(f"cannot iterate over {describe(self)}: its first dimension has no "
                            "static length. Index it (x[i]) or use scan.")
        return (self[i] for i in range(self.type.shape[0]))

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, o): return _T.add(self, o)
    def __radd__(self, o): return _T.add(o, self)
    def __sub__(self, o): return _T.sub(self, o)
    def __rsub__(self, o): return _T.sub(o, self)
    def __mul__(self, o): return _T.mul(self, o)
    def __rmul__(self, o): return _T.mul(o, self)
    def __truediv__(self, o): return _T.true_div(self, o)
    def __rtruediv__(self, o): return _T.true_div(o, self)
    def __floordiv__(self, o): return _T.int_div(self, o)
    def __rfloordiv__(self, o): return _T.int_div(o, self)
    def __mod__(self, o): return _T.mod(self, o)
    def __rmod__(self, o): return _T.mod(o, self)
    def __pow__(self, o): return _T.pow(self, o)
    def __rpow__(self, o): return _T.pow(o, self)
    def __matmul__(self, o): return _T.matmul(self, o)
    def __rmatmul__(self, o): return _T.matmul(o, self)
    def __neg__(self): return _T.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _T.abs(self)
    def __lt__(self, o): return _T.lt(self, o)
    def __le__(self, o): return _T.le(self, o)
    def __gt__(self, o): return _T.gt(self, o)
    def __ge__(self, o): return _T.ge(self, o)
    def __and__(self, o): return _T.and_(self, o)
    def __rand__(self, o): return _T.and_(o, self)
    def __or__(self, o): return _T.or_(self, o)
    def __ror__(self, o): return _T.or_(o, self)
    def __xor__(self, o): return _T.xor(self, o)
    def __rxor__(self, o): return _T.xor(o, self)
    def __invert__(self): return _T.invert(self)
    __hash__ = object.__hash__  # identity, as in Theano: use T.eq for elementwise equality

    def __getitem__(self, index):
        # Theano reads a list holding a slice as a tuple of indices (x[[0, slice(None)]])
        if isinstance(index, list) and any(isinstance(i, slice) for i in index):
            index = tuple(index)
        return _T.subtensor(self, index)

    def __bool__(self) -> bool:
        # True as in Theano 1.0 (`if not W:` tests for a missing parameter); only an ordering
        # comparison refuses, so that `a < b < c` (Python's `a < b and b < c`) does not pass
        if (self.owner is not None and isinstance(self.owner.op, elemwise.Elemwise)
                and getattr(self.owner.op.scalar_op, "name", None) in _ORDERINGS):
            raise TypeError(
                f"Variables do not support boolean operations: the truth value of "
                f"{describe(self)} is not known while the graph is built. Use "
                f"T.switch(cond, a, b) or ifelse(cond, a, b) for a choice made at run time.\n"
                f"  (at {format_trace(user_trace())})")
        return True

    # -- methods --------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False):
        return _T.sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, keepdims=False):
        return _T.prod(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, keepdims=False):
        return _T.mean(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return _T.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return _T.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _T.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _T.min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _T.argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _T.argmin(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _T.all(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return _T.any(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis=None): return _T.cumsum(self, axis=axis)
    def cumprod(self, axis=None): return _T.cumprod(self, axis=axis)

    def reshape(self, *shape, ndim=None):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, Variable)):
            shape = shape[0]
        return _T.reshape(self, shape, ndim=ndim)

    def dimshuffle(self, *pattern):
        if len(pattern) == 1 and isinstance(pattern[0], (tuple, list)):
            pattern = pattern[0]
        return _T.dimshuffle(self, pattern)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _T.transpose(self, axes or None)

    def flatten(self, ndim=1): return _T.flatten(self, ndim)
    def astype(self, dtype): return _T.cast(self, dtype)
    def dot(self, other): return _T.dot(self, other)
    def clip(self, a_min, a_max): return _T.clip(self, a_min, a_max)
    def round(self, mode=None): return _T.round(self, mode)
    def repeat(self, repeats, axis=None): return _T.repeat(self, repeats, axis)
    def squeeze(self): return _T.squeeze(self)
    def copy(self, name=None): return _T.tensor_copy(self, name=name)

    def transfer(self, target):
        from .transfer import transfer
        return transfer(self, target)
    def nonzero_values(self): return self.flatten()[_T.neq(self.flatten(), 0)]

    def nonzero(self, return_matrix=False):
        from .extra import nonzero  # (extra's ops build on tensor variables: imported late)
        return nonzero(self, return_matrix)
    def norm(self, L, axis=None):
        t = _T
        if L == 1:
            return t.sum(t.abs(self), axis=axis)
        return t.pow(t.sum(t.pow(t.abs(self), L), axis=axis), 1.0 / L)


class TensorVariable(TensorOperators, Variable):
    """A variable of a TensorType: a graph node's output or an input."""


class TensorConstant(TensorOperators, Constant):
    """A constant tensor (folded into generated code)."""


class TensorSharedVariable(TensorOperators, SharedVariable):
    """A shared tensor: a value stored between calls, read and updated by compiled functions."""


TensorType.variable_type = TensorVariable
TensorType.constant_type = TensorConstant
TensorType.shared_type = TensorSharedVariable
