"""FunctionGraph: a private, mutable copy of a graph between fixed inputs and outputs.

``function()`` clones the user's graph into one, so rewrites can replace variables in place
without touching the graph the user holds (which other functions may be compiled from too).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

from ..symbolic.graph import Apply, Variable, toposort


def clone_graph(inputs: Sequence[Variable], outputs: Sequence[Variable]
                ) -> Tuple[List[Variable], Dict[Variable, Variable]]:
    """Copy every Apply between ``inputs`` and ``outputs``; roots are kept as they are.

    Returns the new outputs and the map from old to new variables.
    """
    memo: Dict[Variable, Variable] = {v: v for v in inputs}
    for node in toposort(outputs, stop=inputs):
        new_inputs = [memo.get(i, i) for i in node.inputs]
        new_outputs = [type(o)(o.type, name=o.name, trace=o.trace) for o in node.outputs]
        Apply(node.op, new_inputs, new_outputs)
        memo.update(zip(node.outputs, new_outputs))
    return [memo.get(o, o) for o in outputs], memo


class FunctionGraph:
    """Nodes between ``inputs`` and ``outputs``, with each variable's clients.

    ``clients[v]`` lists ``(node, i)`` pairs where ``node.inputs[i] is v``; an output position
    is recorded as ``("output", k)``.
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 clone: bool = True):
        self.inputs = list(inputs)
        if clone:
            outputs, _ = clone_graph(self.inputs, outputs)
        self.outputs = list(outputs)
        self._rebuild()

    def _rebuild(self) -> None:
        self.clients: Dict[Variable, List[tuple]] = defaultdict(list)
        self._order = toposort(self.outputs, stop=self.inputs)
        for node in self._order:
            for i, inp in enumerate(node.inputs):
                self.clients[inp].append((node, i))
        for k, out in enumerate(self.outputs):
            self.clients[out].append(("output", k))

    @property
    def apply_nodes(self) -> List[Apply]:
        return list(self._order)

    def toposort(self) -> List[Apply]:
        """The nodes in an order where each comes after those computing its inputs."""
        return list(self._order)

    def variables(self) -> Iterable[Variable]:
        seen = set(self.inputs)
        yield from self.inputs
        for node in self._order:
            for v in node.inputs + node.outputs:
                if v not in seen:
                    seen.add(v)
                    yield v

    def replace_all(self, pairs: Iterable[Tuple[Variable, Variable]]) -> None:
        """Make every client of each old variable use the new one, then re-sort."""
        pairs = [(old, new) for old, new in pairs if old is not new]
        if not pairs:
            return
        for old, new in pairs:
            if old.type != new.type and not old.type.is_super(new.type):
                raise TypeError(f"cannot replace {old!r} ({old.type}) by {new!r} ({new.type})")
            self.redirect(old, new)
        self._rebuild()

    def redirect(self, old: Variable, new: Variable) -> None:
        """Point the clients of ``old`` at ``new`` without re-sorting (call _rebuild after)."""
        for client, i in self.clients.get(old, []):
            if client == "output":
                self.outputs[i] = new
            else:
                client.inputs[i] = new

    def replace(self, old: Variable, new: Variable) -> None:
        self.replace_all([(old, new)])

    def __repr__(self) -> str:
        return f"FunctionGraph({len(self._order)} nodes, outputs={self.outputs})"
