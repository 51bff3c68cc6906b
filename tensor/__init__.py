"""``theon.tensor`` (``import theon.tensor as T``): Theano's tensor namespace.

Re-exports only: each operation is defined once, in ``theon/ops``. This module adds the variable
constructors (``T.matrix``, ``T.fvector``, ``T.matrices('a', 'b')``...).
"""
from __future__ import annotations

import warnings

from ..config import config
from ..gradient import (  # noqa: F401
    Lop,
    Rop,
    consider_constant,
    disconnected_grad,
    grad,
    grad_clip,
    grad_scale,
    hessian,
    jacobian,
    verify_grad,
    zero_grad,
)
from ..ops.alloc import alloc, arange, eye, fill, identity_like, ones, ones_like, zeros, zeros_like
from ..ops.base import NotConstantError, as_tensor_variable, constant, get_scalar_constant_value
from ..ops.blas import batched_dot, dot, matmul, outer, tensordot
from ..ops.dimshuffle import (
    addbroadcast,
    dimshuffle,
    patternbroadcast,
    shape_padaxis,
    shape_padleft,
    shape_padright,
    squeeze,
    transpose,
    unbroadcast,
)
from ..ops.elemwise import ELEMWISE as _E
from ..ops.elemwise import Elemwise, cast, tensor_copy
from ..ops.elemwise import round_mode as round  # noqa: A004 - Theano's T.round
from ..ops.extra import (
    argsort,
    diag,
    diagonal,
    flatnonzero,
    nonzero,
    nonzero_values,
    roll,
    sort,
    trace,
    tril,
    triu,
)
from ..ops.join import concatenate, join, split
from ..ops.join import stack as _stack_list
from ..ops.reduce import (
    all,
    any,
    argmax,
    argmin,
    cumprod,
    cumsum,
    max,
    max_and_argmax,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from ..ops.repeat import repeat, tile
from ..ops.shape import flatten, reshape, shape
from ..ops.subtensor import inc_subtensor, set_subtensor, subtensor, take
from ..ops.variable import TensorConstant, TensorSharedVariable, TensorVariable
from ..symbolic.graph import Variable
from ..symbolic.types import TensorType
from . import (  # noqa: F401 - theano.tensor.<module>
    extra_ops,
    nlinalg,
    nnet,
    shared_randomstreams,
    slinalg,
    xlogx,
)

as_tensor = as_tensor_variable
second = fill

# -- elementwise functions: every row of ops/scalar.py, by its name (T.exp, T.and_...) -----------

def _export_rows() -> None:
    """Bind each row of the scalar table to its name in this module, so that a new row needs no
    edit here. A row may not take a name already bound to something else."""
    space = globals()
    for name, op in _E.items():
        if space.get(name, op) is not op:
            raise ImportError(f"theon.tensor: the scalar row {name!r} would hide {space[name]!r}")
        space[name] = op


_export_rows()
# Theano's other spellings of some rows
abs_ = _E["abs"]
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = (_E[n] for n in (
    "and_", "or_", "xor", "invert"))
tensor_copy_op = _E["identity"]
floor_div = _E["int_div"]
div = _E["true_div"]
reciprocal = _E["inv"]


def where(condition, x, y):
    """``switch``: pick from ``x`` where ``condition`` holds, else from ``y`` (both computed)."""
    return _E["switch"](condition, x, y)


def square(x):
    return _E["sqr"](x)


# -- constructors ----------------------------------------------------------------------------------
_PREFIX = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32",
           "d": "float64", "c": "complex64", "z": "complex128"}
_KINDS = {"scalar": (), "vector": (False,), "matrix": (False, False), "row": (True, False),
          "col": (False, True), "tensor3": (False,) * 3, "tensor4": (False,) * 4,
          "tensor5": (False,) * 5}


def tensor(dtype=None, broadcastable=None, name: str | None = None, shape=None):
    """A tensor variable: ``T.tensor('float32', (False, True))`` (Theano) or
    ``T.tensor(dtype='float32', shape=(None, 1))`` (PyTensor)."""
    if isinstance(dtype, str) and dtype not in _dtypes() and broadcastable is None \
            and shape is not None:
        dtype, name = None, dtype  # PyTensor's tensor(name, dtype=..., shape=...)
    if broadcastable is None and shape is None:
        raise TypeError("T.tensor needs a broadcastable pattern or a shape")
    return TensorType(dtype or config.floatX, broadcastable=broadcastable, shape=shape)(name)


def _dtypes():
    from ..symbolic.types import ALL_DTYPES
    return ALL_DTYPES + ("floatX",)


def _constructor(kind: str, fixed_dtype: str | None):
    pattern = _KINDS[kind]

    def make(name: str | None = None, dtype: str | None = None, shape=None):
        dt = fixed_dtype or dtype or config.floatX
        if shape is not None:
            return TensorType(dt, shape=shape)(name)
        return TensorType(dt, broadcastable=pattern)(name)
    make.__name__ = (fixed_dtype and [k for k, v in _PREFIX.items() if v == fixed_dtype][0]
                     or "") + kind
    make.__doc__ = f"A symbolic {kind} of dtype {fixed_dtype or 'floatX (or dtype=)'}."
    return make


def stack(*tensors, **kwargs) -> TensorVariable:
    """Join tensors along a new axis: ``stack(tensors, axis=0)``; Theano 1.0's older
    ``stack(x, y, z)`` still works, with its DeprecationWarning."""
    if not tensors and "tensors" not in kwargs:
        raise TypeError("theano.tensor.stack(tensors, axis) needs at least one tensor")
    if "tensors" in kwargs:
        return _stack_list(kwargs["tensors"], axis=kwargs.get("axis", 0))
    if not kwargs and not isinstance(tensors[0], (list, tuple)):
        warnings.warn("stack(*tensors) interface is deprecated, use stack(tensors, axis=0) "
                      "instead.", DeprecationWarning, stacklevel=2)
        return _stack_list(list(tensors), axis=0)
    axis = tensors[1] if len(tensors) == 2 else kwargs.get("axis", 0)
    return _stack_list(tensors[0], axis=axis)


def _plural(single):
    def many(*names) -> list[TensorVariable] | TensorVariable:
        """As Theano: ``matrices(3)`` makes three unnamed variables, ``matrices('x', 'y')`` one
        per name, and a single string of letters one per letter (``matrices('pt')`` is
        ``p, t``; ``matrices('p')`` is the variable ``p`` itself); a single string with spaces
        or commas is split at them."""
        if len(names) == 1 and isinstance(names[0], int):
            return [single() for _ in range(names[0])]
        if len(names) == 1 and isinstance(names[0], str):
            if " " in names[0] or "," in names[0]:
                names = [n for n in names[0].replace(",", " ").split() if n]
            elif len(names[0]) == 1:
                return single(names[0])
            else:
                names = list(names[0])
        return [single(n) for n in names]
    return many


_PLURALS = {"scalar": "scalars", "vector": "vectors", "matrix": "matrices", "row": "rows",
            "col": "cols", "tensor3": "tensor3s", "tensor4": "tensor4s", "tensor5": "tensor5s"}

for _kind in _KINDS:
    _f = _constructor(_kind, None)
    globals()[_kind] = _f
    globals()[_PLURALS[_kind]] = _plural(_f)
    for _p, _dt in _PREFIX.items():
        _g = _constructor(_kind, _dt)
        globals()[_p + _kind] = _g
        globals()[_p + _PLURALS[_kind]] = _plural(_g)
del _kind, _f, _p, _dt, _g

# Every public name: the operations re-exported from ops/ (scalar rows included) and the
# variable constructors made above.
__all__ = [
    "Elemwise", "Lop", "NotConstantError", "Rop", "TensorConstant", "TensorSharedVariable",
    "TensorType", "TensorVariable", "Variable", "abs", "abs_", "add", "addbroadcast", "all",
    "alloc", "and_", "any", "arange", "arccos", "arccosh", "arcsin", "arcsinh", "arctan",
    "arctan2", "arctanh", "argmax", "argmin", "argsort", "as_tensor", "as_tensor_variable",
    "batched_dot", "bcol", "bcols", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor",
    "bmatrices", "bmatrix", "brow", "brows", "bscalar", "bscalars", "btensor3", "btensor3s",
    "btensor4", "btensor4s", "btensor5", "btensor5s", "bvector", "bvectors", "cast", "ccol",
    "ccols", "ceil", "clip", "cmatrices", "cmatrix", "col", "cols", "concatenate",
    "consider_constant", "constant", "cos", "cosh", "crow", "crows", "cscalar", "cscalars",
    "ctensor3", "ctensor3s", "ctensor4", "ctensor4s", "ctensor5", "ctensor5s", "cumprod", "cumsum",
    "cvector", "cvectors", "dcol", "dcols", "diag", "diagonal", "dimshuffle", "disconnected_grad",
    "div", "dmatrices", "dmatrix", "dot", "drow", "drows", "dscalar", "dscalars", "dtensor3",
    "dtensor3s", "dtensor4", "dtensor4s", "dtensor5", "dtensor5s", "dvector", "dvectors", "eq",
    "erf", "exp", "exp2", "expm1", "extra_ops", "eye", "fcol", "fcols", "fill", "flatnonzero",
    "flatten", "floor", "floor_div",
    "fmatrices", "fmatrix", "frow", "frows", "fscalar", "fscalars", "ftensor3", "ftensor3s",
    "ftensor4", "ftensor4s", "ftensor5", "ftensor5s", "fvector", "fvectors", "ge",
    "get_scalar_constant_value", "grad", "grad_clip", "grad_scale", "gt", "hessian", "icol",
    "icols", "identity", "identity_like", "imatrices", "imatrix", "inc_subtensor", "int_div",
    "inv", "invert", "irow", "irows", "iscalar", "iscalars", "isinf", "isnan", "itensor3",
    "itensor3s", "itensor4", "itensor4s", "itensor5", "itensor5s", "ivector", "ivectors",
    "jacobian", "join", "lcol", "lcols", "le", "lmatrices", "lmatrix", "log", "log10", "log1p",
    "log2", "lrow", "lrows", "lscalar", "lscalars", "lt", "ltensor3", "ltensor3s", "ltensor4",
    "ltensor4s", "ltensor5", "ltensor5s", "lvector", "lvectors", "matmul", "matrices", "matrix",
    "max", "max_and_argmax", "maximum", "mean", "min", "minimum", "mod", "mul", "neg", "neq",
    "nlinalg", "nnet", "nonzero", "nonzero_values", "ones", "ones_like", "or_", "outer",
    "patternbroadcast", "pow", "prod", "reciprocal",
    "repeat", "reshape", "roll", "round", "round_half_away_from_zero", "round_half_to_even", "row",
    "rows", "scalar", "scalars", "second", "set_subtensor", "sgn", "shape", "shape_padaxis",
    "shape_padleft", "shape_padright", "sigmoid", "sin", "sinh", "slinalg", "softplus", "sort",
    "split",
    "sqr", "sqrt", "square", "squeeze", "stack", "std", "sub", "subtensor", "sum", "switch",
    "take", "tan", "tanh", "tensor", "tensor3", "tensor3s", "tensor4", "tensor4s", "tensor5",
    "tensor5s", "tensor_copy", "tensor_copy_op", "tensordot", "tile", "trace", "transpose", "tril",
    "triu", "true_div", "trunc", "unbroadcast", "var", "vector", "vectors", "verify_grad", "wcol",
    "wcols", "where", "wmatrices", "wmatrix", "wrow", "wrows", "wscalar", "wscalars", "wtensor3",
    "wtensor3s", "wtensor4", "wtensor4s", "wtensor5", "wtensor5s", "wvector", "wvectors", "xor",
    "zcol", "zcols", "zero_grad", "zeros", "zeros_like", "zmatrices", "zmatrix", "zrow", "zrows",
    "zscalar", "zscalars", "ztensor3", "ztensor3s", "ztensor4", "ztensor4s", "ztensor5",
    "ztensor5s", "zvector", "zvectors",
]
