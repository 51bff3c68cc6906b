"""Theano's ``theano.gof``: the graph classes and walks under their old names (the face only
hands names on; they live in ``symbolic/`` and ``compile/``)."""
from ..compile.fgraph import FunctionGraph
from ..ops.base import Op
from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.types import Type
from . import graph

__all__ = ["Apply", "Constant", "FunctionGraph", "Op", "Type", "Variable", "graph"]
