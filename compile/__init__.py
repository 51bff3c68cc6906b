"""Compilation: ``function()``, the FunctionGraph, rewrite passes, modes."""
from ..symbolic.shared import SharedVariable, shared  # noqa: F401
from . import ops  # noqa: F401  (theano.compile.ops.as_op)
from .fgraph import FunctionGraph  # noqa: F401
from .function import function  # noqa: F401
from .io import In, Out  # noqa: F401
from .mode import (  # noqa: F401
    FAST_COMPILE,
    FAST_RUN,
    Mode,  # noqa: F401
    get_mode,
)
from .nanguardmode import NanGuardMode  # noqa: F401
from .profiling import ProfileStats  # noqa: F401


def get_default_mode() -> Mode:
    """The mode function() uses when given none (config.mode), as Theano's compile did."""
    return get_mode(None)
