"""Compilation: ``function()``, the FunctionGraph, rewrite passes, modes."""
from . import ops  # noqa: F401  (theano.compile.ops.as_op)
from .function import function  # noqa: F401
from .io import In, Out  # noqa: F401
from .mode import Mode  # noqa: F401
