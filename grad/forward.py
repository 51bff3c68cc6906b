"""Forward mode: ``Rop`` (Jacobian-vector products) by transposing ``Lop``.

``Lop(f, x, u)`` is linear in ``u``; differentiating ``<Lop(f, x, u), v>`` with respect to ``u``
gives ``J v``. So every op with a gradient supports Rop, with no second rule per op (PyTensor
computes Rop this way by default too). The dummy ``u`` can only remain through its shape, which
is the shape of ``f``, so it is replaced by ``f`` at the end.
"""
from __future__ import annotations

from ..ops.base import as_tensor_variable
from ..ops.reduce import sum as sum_
from ..symbolic.graph import clone_replace
from ..symbolic.trace import describe
from .reverse import Lop, grad


def Rop(f, wrt, eval_points, disconnected_outputs: str = "raise", return_disconnected="zero"):
    """Jacobian-vector product: ``sum_j d f / d wrt[j] * eval_points[j]`` (forward mode)."""
    single = not isinstance(f, (list, tuple))
    fs = [as_tensor_variable(o) for o in ([f] if single else f)]
    wrts = wrt if isinstance(wrt, (list, tuple)) else [wrt]
    evs = eval_points if isinstance(eval_points, (list, tuple)) else [eval_points]
    if len(wrts) != len(evs):
        raise ValueError(f"Rop: {len(wrts)} wrt variables but {len(evs)} eval points")
    evs = [as_tensor_variable(e) for e in evs]
    for w, e in zip(wrts, evs):
        if e.ndim != w.ndim:
            raise ValueError(f"Rop: the eval point for {describe(w)} has {e.ndim} dimensions, "
                             f"expected {w.ndim}")
    dummies = [o.type(name="u") for o in fs]
    lops = Lop(fs, wrts, dummies, disconnected_inputs="ignore")
    lops = lops if isinstance(lops, list) else [lops]
    inner = None
    for lop, ev in zip(lops, evs):
        term = sum_(lop * ev)
        inner = term if inner is None else inner + term
    rops = grad(inner, dummies, disconnected_inputs="ignore", add_names=False)
    rops = clone_replace(rops, dict(zip(dummies, fs)))
    return rops[0] if single else rops
