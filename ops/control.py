"""``ifelse``: a lazy choice between two sets of values.

Unlike ``switch`` (elementwise, both sides computed), ``ifelse(cond, a, b)`` computes only the
branch it takes: the numpy backend places the nodes that only one branch needs inside an
``if``/``else`` block of the generated code (its entry in ``backends/numpy_backend.py``).
"""
from __future__ import annotations

from ..symbolic.graph import Apply
from .base import Op, as_tensor_variable, graph_error


class IfElse(Op):
    """outputs = then_values if cond else else_values (``n_outs`` of each)."""

    __props__ = ("n_outs",)
    lazy = True

    def __init__(self, n_outs: int):
        self.n_outs = int(n_outs)
        # an output is the chosen branch's value itself: function() copies it where that value
        # is an input, a shared value or a constant
        self.view_map = {k: [1 + k, 1 + self.n_outs + k] for k in range(self.n_outs)}

    def make_node(self, cond, *values) -> Apply:
        cond = as_tensor_variable(cond)
        if cond.ndim != 0:
            raise graph_error(f"ifelse: the condition must be a scalar, got {cond.type}")
        values = [as_tensor_variable(v) for v in values]
        then, other = values[:self.n_outs], values[self.n_outs:]
        outs = []
        for k, (a, b) in enumerate(zip(then, other)):
            if a.dtype != b.dtype or a.ndim != b.ndim:
                from .elemwise import cast
                from .scalar import upcast
                if a.ndim != b.ndim:
                    raise graph_error(f"ifelse: output {k} is {a.type} in the then branch but "
                                      f"{b.type} in the else branch")
                dtype = upcast(a.dtype, b.dtype)
                a, b = cast(a, dtype), cast(b, dtype)
                then[k], other[k] = a, b
            shape = tuple(x if x == y else None for x, y in zip(a.type.shape, b.type.shape))
            outs.append(a.type.clone(shape=shape)())
        return Apply(self, [cond] + then + other, outs)

    def impl(self, node):
        n = self.n_outs

        def run(cond, *values):  # eager fallback (both branches already computed)
            chosen = values[:n] if cond else values[n:]
            return chosen[0] if n == 1 else tuple(chosen)
        return run

    def branch_inputs(self, node) -> list[list[int]]:
        """Input positions of each branch: the backend computes only the branch taken."""
        n = self.n_outs
        return [list(range(1, 1 + n)), list(range(1 + n, 1 + 2 * n))]

    def infer_shape(self, fgraph, node, shapes):
        """The shapes of the branch taken: an ifelse over the lengths that differ."""
        from .elemwise import cast
        n = self.n_outs
        then, other = shapes[1:1 + n], shapes[1 + n:]
        out = [list(t) for t in then]
        pick = []  # (k, d) where the branches' lengths may differ
        for k in range(n):
            for d, (a, b) in enumerate(zip(then[k], other[k])):
                static = node.outputs[k].type.shape[d]
                if static is not None:
                    out[k][d] = static
                elif a is not b:
                    pick.append((k, d))
        if pick:
            lengths = [cast(as_tensor_variable(s[k][d]), "int64") for s in (then, other)
                       for k, d in pick]
            chosen = IfElse(len(pick))(node.inputs[0], *lengths)
            chosen = chosen if isinstance(chosen, list) else [chosen]
            for (k, d), v in zip(pick, chosen):
                out[k][d] = v
        return [tuple(o) for o in out]

    def grad(self, inputs, grads):
        from .alloc import zeros_like
        n = self.n_outs
        cond = inputs[0]
        then, other = inputs[1:1 + n], inputs[1 + n:]
        # an output with no gradient (an integer one, say) passes none to its branches
        g_then = [None if g is None else ifelse(cond, g, zeros_like(t))
                  for g, t in zip(grads, then)]
        g_else = [None if g is None else ifelse(cond, zeros_like(o), g)
                  for g, o in zip(grads, other)]
        return [None] + g_then + g_else


def ifelse(condition, then_branch, else_branch, name=None):
    """Evaluate and return ``then_branch`` if ``condition`` (a scalar) is true, else
    ``else_branch``; only the branch taken is computed. Branches may be lists."""
    single = not isinstance(then_branch, (list, tuple))
    then = [then_branch] if single else list(then_branch)
    other = [else_branch] if single else list(else_branch)
    if len(then) != len(other):
        raise graph_error(f"ifelse: the then branch has {len(then)} values, the else branch "
                          f"{len(other)}", ValueError)
    out = IfElse(len(then))(condition, *then, *other)
    outs = out if isinstance(out, list) else [out]
    if name:
        for o in outs:
            o.name = name
    return outs[0] if single else outs
