"""Reverse-mode differentiation: ``grad`` and ``Lop``, building gradient graphs.

The sweep visits, in reverse topological order, only the nodes that lie on a path from a
``wrt`` variable to the cost; each node's ``L_op`` maps its output gradients to input gradients,
and contributions to a variable used several times are summed. The result is an ordinary graph:
it can be differentiated again, rewritten and compiled. Each node is visited once, so the
gradient of an n-node chain has O(n) nodes.

Gradients are ``None`` where nothing flows (integer values, piecewise-constant ops);
``Undefined`` marks a gradient an op cannot give, and using one raises an error naming the op.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

from ..ops.alloc import ones_like, zeros_like
from ..ops.base import Undefined, as_tensor_variable, grad_not_implemented, grad_undefined  # noqa: F401
from ..ops.gradrules import fit_gradient
from ..symbolic.graph import Apply, Variable, ancestors, gc_paused, toposort
from ..symbolic.trace import describe, fixed, format_trace, user_trace
from ..symbolic.types import DISCRETE_DTYPES

_DISCRETE = frozenset(DISCRETE_DTYPES)  # a set: the walk tests every input's dtype


class DisconnectedInputError(ValueError):
    """``grad`` was asked for the gradient of an input the cost does not depend on."""


class NullTypeGradError(TypeError):
    """A gradient that an op cannot compute (undefined) was going to be used."""


def _connected(node: Apply, i: int, out: int) -> bool:
    pattern = node.op.connection_pattern(node)
    return True if pattern is None else bool(pattern[i][out])


def _relevant_nodes(cost_vars: Sequence[Variable], wrt: Sequence[Variable],
                    stop: set) -> list[Apply]:
    """Nodes between ``wrt`` and the cost variables, in topological order."""
    order = toposort(cost_vars, stop=stop)
    reaches = set(wrt)
    relevant = []
    for node in order:
        inputs = node.inputs
        for inp in inputs:
            if inp in reaches:
                break
        else:
            continue  # no input is reached: nothing flows through the node
        pattern = node.op.connection_pattern(node)
        hit = False
        for out_i, out in enumerate(node.outputs):
            if pattern is None or any(inp in reaches and pattern[i][out_i]
                                      for i, inp in enumerate(inputs)):
                reaches.add(out)
                hit = True
        if hit:
            relevant.append(node)
    return relevant, reaches


def _accumulate(store: dict[Variable, object], var: Variable, g) -> None:
    if g is None:
        store.setdefault(var, None)
        return
    old = store.get(var)
    if isinstance(g, Undefined) or isinstance(old, Undefined):
        store[var] = old if isinstance(old, Undefined) else g
    elif old is None:
        store[var] = g
    else:
        store[var] = old + g


@gc_paused
def backprop(seeds: dict[Variable, Variable], wrt: Sequence[Variable],
             consider_constant: Sequence[Variable] = ()) -> tuple:
    """Push ``seeds`` (variable -> its gradient) back to ``wrt``.

    Returns ``(grads, connected)``: the accumulated gradient of every visited variable (None
    when nothing flowed), and the set of variables that the seeds depend on through ``wrt``.
    """
    with fixed(user_trace()):
        return _backprop(seeds, wrt, consider_constant)


def _backprop(seeds, wrt, consider_constant) -> tuple:
    stop = set(consider_constant)
    relevant, reaches = _relevant_nodes(list(seeds), wrt, stop)
    grads: dict[Variable, object] = {}
    for var, g in seeds.items():
        _accumulate(grads, var, g)
    wanted = set(wrt)
    needed = (reaches | wanted) - stop  # the inputs whose gradients are kept
    for node in reversed(relevant):
        outputs = node.outputs
        if len(outputs) == 1:
            out = outputs[0]
            if out not in grads:
                continue  # not on a path to the cost
            g = grads[out]
            out_grads = [g]
            nothing = g is None
            undefined = g if isinstance(g, Undefined) else None
        else:
            if not any(o in grads for o in outputs):
                continue
            out_grads = [grads.get(o) for o in outputs]
            nothing = all(g is None for g in out_grads)
            undefined = next((g for g in out_grads if isinstance(g, Undefined)), None)
        if nothing:
            for inp in node.inputs:  # connected, but nothing flows (integer-valued outputs)
                if inp in needed:
                    grads.setdefault(inp, None)
            continue
        if undefined is not None:
            for inp in node.inputs:
                if inp in reaches or inp in wanted:
                    _accumulate(grads, inp, undefined)
            continue
        if len(out_grads) > 1:  # multi-output ops get zeros where nothing flowed
            out_grads = [zeros_like(o) if g is None and o.dtype not in DISCRETE_DTYPES else g
                         for o, g in zip(outputs, out_grads)]
        op = node.op
        # the gradients kept are fitted below, so the op need not fit them all
        l_op = getattr(op, "L_op_unfitted", None) or op.L_op
        try:
            in_grads = l_op(node.inputs, outputs, out_grads)
        except NotImplementedError as err:
            in_grads = [Undefined(node.op, str(err) or "no gradient rule")] * len(node.inputs)
        if len(in_grads) != len(node.inputs):
            raise ValueError(f"{node.op}.grad returned {len(in_grads)} gradients for "
                             f"{len(node.inputs)} inputs")
        for inp, g in zip(node.inputs, in_grads):
            if inp not in needed:
                continue
            if g is not None and not isinstance(g, Undefined):
                if inp.dtype in _DISCRETE:
                    continue
                g = fit_gradient(g, inp)
            _accumulate(grads, inp, g)
    return grads, reaches


def grad(cost: Variable | None, wrt: Variable | Sequence[Variable],
         consider_constant: Sequence[Variable] | None = None,
         disconnected_inputs: str = "raise", add_names: bool = True,
         known_grads: dict[Variable, Variable] | None = None,
         return_disconnected: str = "zero", null_gradients: str = "raise"):
    """Symbolic gradient of the scalar ``cost`` with respect to ``wrt`` (a variable or a list;
    any variable of the graph, not only inputs).

    ``known_grads`` seeds gradients of intermediate variables (``cost`` may then be None).
    Inputs the cost does not depend on raise DisconnectedInputError, unless
    ``disconnected_inputs`` is 'warn' or 'ignore'; they then get zeros (``return_disconnected``
    'zero') or None ('none'/'disconnected').
    """
    where = user_trace()
    single = not isinstance(wrt, (list, tuple))
    wrt_list = [wrt] if single else list(wrt)
    for k, w in enumerate(wrt_list):
        if not isinstance(w, Variable):
            raise TypeError(f"grad: wrt[{k}] must be a symbolic variable, got "
                            f"{type(w).__name__} (at {format_trace(where)})")
    seeds: dict[Variable, Variable] = {}
    if cost is not None:
        cost = as_tensor_variable(cost)
        if cost.ndim != 0:
            raise TypeError(f"grad: the cost must be a scalar, but {describe(cost)} has "
                            f"{cost.ndim} dimensions. Sum or average it first, or use "
                            "jacobian/Lop for non-scalar outputs.")
        if cost.dtype not in DISCRETE_DTYPES:
            seeds[cost] = ones_like(cost)
        else:
            seeds[cost] = None
    for var, g in (known_grads or {}).items():
        g = as_tensor_variable(g)
        if g.ndim != var.ndim:
            raise ValueError(f"known_grads: the gradient given for {describe(var)} has "
                             f"{g.ndim} dimensions, expected {var.ndim}")
        seeds[var] = g
    if not seeds:
        raise TypeError("grad: give a cost or known_grads")
    grads, reaches = backprop(seeds, wrt_list, consider_constant or ())

    results = []
    for k, w in enumerate(wrt_list):
        g = grads.get(w)
        connected = w in seeds or (w in grads)
        if not connected:
            why = ("the cost does not depend on it" if w not in _ancestor_set(seeds)
                   else "every path from it to the cost goes through consider_constant, "
                        "disconnected_grad or an op that does not pass gradients")
            msg = (f"grad: wrt[{k}], {describe(w)}, is not connected to the cost: {why}. "
                   "Pass disconnected_inputs='ignore' (or 'warn') to get "
                   f"{'zeros' if return_disconnected == 'zero' else 'None'} instead "
                   f"(at {format_trace(where)}).")
            if disconnected_inputs == "raise":
                raise DisconnectedInputError(msg)
            if disconnected_inputs == "warn":
                warnings.warn(msg, stacklevel=2)
            results.append(zeros_like(w) if return_disconnected == "zero" else None)
            continue
        if isinstance(g, Undefined):
            if null_gradients == "raise":
                raise NullTypeGradError(
                    f"grad: the gradient with respect to {describe(w)} is undefined: "
                    f"{g.op} cannot differentiate it ({g.reason}) (at {format_trace(where)})")
            results.append(None)
            continue
        if g is None:
            g = zeros_like(w)
        if w.dtype not in DISCRETE_DTYPES:
            g = fit_gradient(g, w)
        if add_names and getattr(cost, "name", None) and w.name and g.name is None:
            g.name = f"(d{cost.name}/d{w.name})"
        results.append(g)
    return results[0] if single else results


def _ancestor_set(seeds) -> set:
    return set(ancestors(list(seeds)))


def Lop(f, wrt, eval_points, consider_constant=None, disconnected_inputs: str = "raise"):
    """Vector-Jacobian product: ``sum_i eval_points[i] * d f[i] / d wrt`` (reverse mode)."""
    fs = f if isinstance(f, (list, tuple)) else [f]
    evs = eval_points if isinstance(eval_points, (list, tuple)) else [eval_points]
    if len(fs) != len(evs):
        raise ValueError(f"Lop: {len(fs)} outputs but {len(evs)} eval points")
    known = {}
    for out, ev in zip(fs, evs):
        out = as_tensor_variable(out)
        ev = as_tensor_variable(ev)
        if ev.ndim != out.ndim:
            raise ValueError(f"Lop: the eval point for {describe(out)} has {ev.ndim} "
                             f"dimensions, expected {out.ndim}")
        known[out] = ev
    return grad(None, wrt, known_grads=known, consider_constant=consider_constant,
                disconnected_inputs=disconnected_inputs, add_names=False)
