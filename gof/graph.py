"""Theano's ``theano.gof.graph``: graph classes and walks (implemented in
``symbolic/graph_utils.py``)."""
from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.graph_utils import (
    ancestors,
    clone,
    equal_computations,
    inputs,
    io_toposort,
    is_same_graph,
    ops,
    orphans,
    variables,
    variables_and_orphans,
)

__all__ = ["Apply", "Constant", "Variable", "ancestors", "clone", "equal_computations",
           "inputs", "io_toposort", "is_same_graph", "ops", "orphans", "variables",
           "variables_and_orphans"]
