"""theon: a Theano-style symbolic graph compiler.

Declare symbolic variables, build an expression graph, compile it with ``function()``::

    import theon as theano
    import theon.tensor as T
    x, y = T.matrices('x', 'y')
    f = theano.function([x, y], x + y)
"""
from . import compile, gradient, ifelse, printing, tensor  # noqa: F401
from .compile.function import Function, MissingInputError, UnusedInputError, function
from .compile.io import In, Out
from .compile.mode import FAST_COMPILE, FAST_RUN, Mode
from .config import config
from .gradient import Lop, Rop, grad
from .ops.base import Op, as_tensor_variable
from .symbolic.graph import Apply, Constant, Variable, clone_replace
from .symbolic.shared import SharedVariable, shared
from .symbolic.types import TensorType

__version__ = "0.1.0"


def clone(output, replace=None, strict: bool = True, share_inputs: bool = True):
    """Copy the graph of ``output`` (a variable or a list) with ``replace`` substituted."""
    single = not isinstance(output, (list, tuple))
    outs = clone_replace([output] if single else list(output), dict(replace or {}),
                         copy_inputs=not share_inputs)
    return outs[0] if single else outs


__all__ = ["Apply", "Constant", "FAST_COMPILE", "FAST_RUN", "Function", "In", "MissingInputError",
           "Mode", "Op", "Out", "Lop", "Rop", "grad", "gradient", "SharedVariable", "TensorType", "UnusedInputError", "Variable",
           "as_tensor_variable", "clone", "config", "function", "printing", "shared", "tensor"]
