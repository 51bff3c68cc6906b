"""Structure that keeps compiling linear and cheap (issue 7 part 8): rules meet only the nodes
their index says they can match."""
from __future__ import annotations

import numpy as np
import theon.tensor as T
from theon.compile import rewrite
from theon.compile.fgraph import FunctionGraph
from theon.compile.rules import canonicalize
from theon.symbolic.graph import Constant


def test_constant_folding_meets_only_nodes_of_constant_inputs(monkeypatch):
    seen = []
    fn = canonicalize.constant_folding.rule.fn

    def spy(fgraph, node):
        seen.append(node)
        return fn(fgraph, node)

    for table in rewrite.RULES.values():
        for key, rules in table.items():
            monkeypatch.setitem(table, key, [
                rewrite.Rule(r.name, r.phase, r.tracks, spy) if r.name == "constant_folding"
                else r for r in rules])
    x = T.vector("x")
    c = T.constant(np.array([1.0, 2.0]))
    fgraph = FunctionGraph([x], [T.exp(x) * (c + c)])
    rewrite.run_phase(fgraph, "canonicalize")
    assert seen, "constant folding never ran"
    assert all(all(isinstance(i, Constant) for i in n.inputs) for n in seen)
    # and it still folds: the sum of constants became one constant
    (mul,) = [n for n in fgraph.toposort() if n.outputs[0] is fgraph.outputs[0]]
    folded = [i for i in mul.inputs if isinstance(i, Constant)]
    assert len(folded) == 1 and np.array_equal(folded[0].data, [2.0, 4.0])
