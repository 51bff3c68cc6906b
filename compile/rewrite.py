"""Graph-wide rewrite passes run by ``function()``: merging and constant folding.

Each pass takes a FunctionGraph, changes it in place, and keeps the user's creation line on
every variable it introduces, so run-time errors still point at the user's code.
"""
from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np

from ..symbolic.graph import Constant
from .fgraph import FunctionGraph

# Folding an op whose output is much larger than its inputs (alloc, eye, arange) would only
# move memory from the run into the compiled function; such nodes stay.
MAX_FOLDED_SIZE = 10_000


def merge(fgraph: FunctionGraph) -> None:
    """Common subexpressions: equal constants become one, equal ops on the same inputs one."""
    canon: Dict = {}
    pairs = []
    seen_consts: Dict = {}
    for var in list(fgraph.variables()):
        if isinstance(var, Constant):
            key = var.signature()
            if key in seen_consts:
                pairs.append((var, seen_consts[key]))
            else:
                seen_consts[key] = var
    if pairs:
        fgraph.replace_all(pairs)
        pairs = []
    for node in fgraph.toposort():
        key = (node.op, tuple(id(i) for i in node.inputs))
        twin = canon.setdefault(key, node)
        if twin is not node:
            for old, new in zip(node.outputs, twin.outputs):
                fgraph.redirect(old, new)
    fgraph._rebuild()


def constant_fold(fgraph: FunctionGraph) -> None:
    """Compute at compile time every node whose inputs are all constants."""
    changed = False
    for node in fgraph.toposort():
        if not node.op.foldable or not all(isinstance(i, Constant) for i in node.inputs):
            continue
        try:
            with np.errstate(all="ignore"):
                result = node.op.thunk(node)(*[i.data for i in node.inputs])
        except Exception:  # noqa: BLE001 - leave the error to run time, where it is reported
            continue
        values = result if len(node.outputs) > 1 else (result,)
        in_size = sum(i.data.size for i in node.inputs)
        if any(np.size(v) > max(MAX_FOLDED_SIZE, in_size) for v in values):
            continue
        for out, value in zip(node.outputs, values):
            fgraph.redirect(out, Constant(out.type, np.asarray(value), name=out.name,
                                          trace=out.trace))
            changed = True
    if changed:
        fgraph._rebuild()


PASSES: Dict[str, Callable[[FunctionGraph], None]] = {
    "merge": merge,
    "constant_folding": constant_fold,
}


def run_passes(fgraph: FunctionGraph, names: List[str]) -> None:
    for name in names:
        PASSES[name](fgraph)
