"""theon: a Theano-style symbolic graph compiler.

Declare symbolic variables, build an expression graph, compile it with ``function()``::

    import theon as theano
    import theon.tensor as T
    x, y = T.matrices('x', 'y')
    f = theano.function([x, y], x + y)
"""
from . import compile, gof, gradient, ifelse, printing, scalar, scan_module, tensor, updates  # noqa: F401
from .compat import install_theano_alias  # noqa: F401
from .compile.function import Function, MissingInputError, UnusedInputError, function
from .compile.io import In, Out
from .compile.mode import FAST_COMPILE, FAST_RUN, Mode
from .config import VERSION, config
from .gradient import Lop, Rop, grad
from .ops.base import Op, as_tensor_variable
from .ops.blas import dot
from .params import load_params, save_params  # noqa: F401
from .printing import pp
from .scan.basic import foldl, foldr, map, reduce, scan  # noqa: A004 - Theano's names
from .scan.checkpoints import scan_checkpoints
from .symbolic.graph import Apply, Constant, Variable, clone_replace
from .symbolic.shared import SharedVariable, shared
from .symbolic.types import TensorType

__version__ = VERSION


def clone(output, replace=None, strict: bool = True, share_inputs: bool = True):
    """Copy the graph of ``output`` (a variable or a list) with ``replace`` substituted.

    ``replace`` maps variables (a dict or a list of pairs) to variables or to values; a value
    becomes a constant of the replaced variable's type. With ``strict`` (the default, as in
    Theano) a replacement must have the replaced variable's type; ``strict=False`` lets the
    graph be rebuilt around a different dtype or static shape.
    """
    single = not isinstance(output, (list, tuple))
    pairs = {old: _replacement(old, new, strict) for old, new in dict(replace or {}).items()}
    outs = clone_replace([output] if single else list(output), pairs,
                         copy_inputs=not share_inputs)
    return outs[0] if single else outs


def _replacement(old, new, strict: bool):
    """Check one ``clone`` replacement; a non-variable value becomes a constant of old's type."""
    from .symbolic.trace import describe
    if not isinstance(old, Variable):
        raise TypeError(f"clone: the keys of replace must be variables; got "
                        f"{type(old).__name__} {old!r}"[:300])
    if not isinstance(new, Variable):
        ttype = old.type
        if not hasattr(ttype, "filter"):
            raise TypeError(f"clone: cannot replace {describe(old)} by a "
                            f"{type(new).__name__}; give a variable")
        try:
            data = ttype.filter(new)
        except (TypeError, ValueError) as err:
            raise TypeError(f"clone: the value given to replace {describe(old)} does not fit "
                            f"its type: {err}") from None
        return Constant(ttype, data.copy())  # a copy: constants are read-only
    if strict and new.type != old.type and not (
            isinstance(old.type, TensorType) and old.type.is_super(new.type)):
        raise TypeError(f"clone: cannot replace {describe(old)} by {describe(new)}: the types "
                        f"differ ({old.type} vs {new.type}). Cast the replacement (T.cast, "
                        f"T.addbroadcast, ...) or pass strict=False to rebuild the graph "
                        f"around the new type.")
    return new


__all__ = ["Apply", "Constant", "FAST_COMPILE", "FAST_RUN", "Function", "In", "MissingInputError",
           "Mode", "Op", "Out", "Lop", "Rop", "grad", "gradient", "SharedVariable", "TensorType",
           "UnusedInputError", "Variable", "as_tensor_variable", "clone", "config", "dot",
           "function", "pp", "printing", "shared", "tensor", "scan", "map", "reduce", "foldl",
           "foldr", "scan_checkpoints", "scan_module", "updates", "save_params", "load_params"]
