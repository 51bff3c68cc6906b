"""Theano's ``theano.scan_module.scan_utils``: the helpers programs import from it."""
from ..symbolic.graph import clone_replace
from ..symbolic.graph_utils import equal_computations

__all__ = ["clone_replace", "equal_computations"]
