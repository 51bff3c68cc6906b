"""Forward mode: ``Rop`` (Jacobian-vector products), one node at a time.

The sweep visits, in topological order, the nodes on a path from a ``wrt`` variable to ``f``
and pushes tangents forward. A node whose op has an ``R_op`` uses it; any other node gets the
transpose of its ``L_op``: ``L_op(u)`` is linear in the output gradient ``u``, so differentiating
``<L_op(u), t>`` with respect to ``u`` gives the node's ``J t``, with no second rule per op
(PyTensor transposes Lop the same way). That holds only for an ``L_op`` linear in ``u``: an op
whose gradient rule is not (``grad_clip`` clips it) must have an ``R_op``.

Each transposition is local (its walk stops at the node's inputs and the incoming tangents), so
the Rop graph of an n-node chain has O(n) nodes. A dummy ``u`` can only remain in a tangent
through its shape, which is that of the node's output, so the dummies are replaced by the
outputs once at the end.
"""
from __future__ import annotations

from ..ops.alloc import zeros_like
from ..ops.base import as_tensor_variable
from ..ops.gradrules import fit_gradient
from ..ops.reduce import sum as sum_
from ..symbolic.graph import Apply, Variable, clone_replace
from ..symbolic.trace import describe
from ..symbolic.types import DISCRETE_DTYPES
from .reverse import NullTypeGradError, Undefined, _connected, _relevant_nodes, grad


def Rop(f, wrt, eval_points, disconnected_outputs: str = "raise", return_disconnected="zero"):
    """Jacobian-vector product: ``sum_j d f / d wrt[j] * eval_points[j]`` (forward mode)."""
    single = not isinstance(f, (list, tuple))
    fs = [as_tensor_variable(o) for o in ([f] if single else f)]
    wrts = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    evs = eval_points if isinstance(eval_points, (list, tuple)) else [eval_points]
    if len(wrts) != len(evs):
        raise ValueError(f"Rop: {len(wrts)} wrt variables but {len(evs)} eval points")
    evs = [as_tensor_variable(e) for e in evs]
    for w, e in zip(wrts, evs):
        if e.ndim != w.ndim:
            raise ValueError(f"Rop: the eval point for {describe(w)} has {e.ndim} dimensions, "
                             f"expected {w.ndim}")
    tangents: dict[Variable, Variable] = {}
    for w, e in zip(wrts, evs):
        if w.dtype not in DISCRETE_DTYPES:
            tangents[w] = _add(tangents.get(w), fit_gradient(e, w))
    dummies: dict[Variable, Variable] = {}
    relevant, _ = _relevant_nodes(fs, wrts, set())
    for node in relevant:
        ins = [tangents.get(i) for i in node.inputs]
        if all(t is None for t in ins):
            continue
        try:
            outs = node.op.R_op(node.inputs, ins)
        except NotImplementedError:
            outs = _transposed_lop(node, ins, dummies)
        for out, t in zip(node.outputs, outs):
            if t is not None and out.dtype not in DISCRETE_DTYPES:
                tangents[out] = fit_gradient(t, out)
    results = [tangents[o] if o in tangents else zeros_like(o) for o in fs]
    if dummies:
        results = clone_replace(results, dummies)
    return results[0] if single else results


def _add(a: Variable | None, b: Variable) -> Variable:
    return b if a is None else a + b


def _transposed_lop(node: Apply, tangents: list[Variable | None],
                    dummies: dict[Variable, Variable]) -> list[Variable | None]:
    """The node's ``J t``, as the gradient of ``<L_op(u), t>`` with respect to ``u``."""
    us = [out.type(name="u") for out in node.outputs]
    try:
        in_grads = node.op.L_op(node.inputs, node.outputs, us)
    except NotImplementedError as err:
        in_grads = [Undefined(node.op, str(err) or "no gradient rule")] * len(node.inputs)
    inner = None
    for i, (inp, g, t) in enumerate(zip(node.inputs, in_grads, tangents)):
        if t is None or g is None or inp.dtype in DISCRETE_DTYPES:
            continue
        if not any(_connected(node, i, k) for k in range(len(node.outputs))):
            continue
        if isinstance(g, Undefined):
            raise NullTypeGradError(f"Rop: {g.op} cannot differentiate {describe(inp)} "
                                    f"({g.reason}), and has no R_op")
        inner = _add(inner, sum_(fit_gradient(g, inp) * t))
    if inner is None:
        return [None] * len(node.outputs)
    local = list(node.inputs) + list(node.outputs) + [t for t in tangents if t is not None]
    outs = grad(inner, us, consider_constant=local, disconnected_inputs="ignore",
                return_disconnected="none", add_names=False)
    dummies.update(zip(us, node.outputs))
    return outs
