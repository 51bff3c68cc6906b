"""Small elementwise graphs as sympy formulas, to check rewrite rules symbolically in tests.

``to_sympy`` refuses graphs of more than ``max_nodes`` nodes: sympy is far too slow for the hot
path of compilation, and is meant for the few nodes a rule's before and after graphs hold.
Shapes are ignored: a formula describes one element (broadcasting is the identity on it).
The formula of an elementwise op is the ``sympy`` column of its row in ops/scalar.py.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..ops.fused import Fused
from ..symbolic.graph import Constant, Variable

# Ops that pass their first input through unchanged, element for element.
_PASS_THROUGH = ("Rebroadcast", "Alloc", "DisconnectedGrad", "ZeroGrad", "GradClip",
                 "GradScale", "ShapeCheck")


def _number(var: Constant) -> sp.Expr:
    data = np.asarray(var.data)
    if data.size == 0 or not np.all(data == data.flat[0]):
        raise ValueError(f"to_sympy: constant {var!r} holds different values; only constants "
                         "whose elements are all equal are formulas")
    v = data.flat[0].item()
    if isinstance(v, (bool, int)) or float(v).is_integer():
        return sp.Integer(int(v))
    return sp.nsimplify(v)


def _translate(node, args: list[sp.Expr]) -> sp.Expr:
    op = node.op
    sop = getattr(op, "scalar_op", None)
    name = type(op).__name__
    if sop is not None:
        if sop.sympy is not None:  # the row's formula (ops/scalar.py), given the sympy module
            return sop.sympy(sp, *args)
        raise ValueError(f"to_sympy: no sympy formula for the elementwise op {sop.name!r}")
    if isinstance(op, Fused):  # its rows' formulas, composed as its scalar graph says
        refs = list(args)
        for step, operands in op.graph.steps:
            if step.sympy is None:
                raise ValueError(f"to_sympy: no sympy formula for the elementwise op "
                                 f"{step.name!r} (fused in {op})")
            refs.append(step.sympy(sp, *[refs[r] for r in operands]))
        return refs[op.graph.outputs[0]]
    if name == "DimShuffle":
        kept = [d for d in op.new_order if d != "x"]
        if kept == sorted(kept):  # only broadcast dims added or dropped: same elements
            return args[0]
        raise ValueError(f"to_sympy: {op} transposes, which is not elementwise")
    if name in _PASS_THROUGH:
        return args[0]
    raise ValueError(f"to_sympy: cannot translate the op {op} ({name}) to sympy")


def to_sympy(outputs: Variable | Sequence[Variable],
             inputs: Sequence[Variable] | None = None, max_nodes: int = 200) -> list[sp.Expr]:
    """sympy expressions for ``outputs``; ``inputs`` (default: the graph's roots) become real
    Symbols named after the variables. Raises ValueError for an op with no formula or a graph
    of more than ``max_nodes`` nodes."""
    outs = [outputs] if isinstance(outputs, Variable) else list(outputs)
    stop = set(inputs or ())
    memo: dict[Variable, sp.Expr] = {}
    names: dict[str, int] = {}

    def symbol(v: Variable) -> sp.Symbol:
        base = v.name or "v"
        k = names[base] = names.get(base, 0) + 1
        return sp.Symbol(base if k == 1 else f"{base}_{k}", real=True)

    for v in inputs or ():
        memo[v] = symbol(v)
    n_nodes = 0
    stack = list(outs)
    while stack:
        v = stack[-1]
        if v in memo:
            stack.pop()
            continue
        if isinstance(v, Constant):
            memo[v] = _number(v)
        elif v.owner is None or v in stop:
            memo[v] = symbol(v)
        else:
            node = v.owner
            # Alloc and friends: only the value matters, not the shape inputs.
            needed = node.inputs[:1] if type(node.op).__name__ in _PASS_THROUGH else node.inputs
            todo = [i for i in needed if i not in memo]
            if todo:
                stack.extend(todo)
                continue
            n_nodes += 1
            if n_nodes > max_nodes:
                raise ValueError(f"to_sympy: the graph has more than {max_nodes} nodes; sympy "
                                 "is for small graphs (raise max_nodes to allow more)")
            if len(node.outputs) != 1:
                raise ValueError(f"to_sympy: {node.op} has several outputs")
            memo[v] = _translate(node, [memo[i] for i in needed])
        stack.pop()
    return [memo[o] for o in outs]


def equivalent(a: sp.Expr, b: sp.Expr, inputs: Sequence[sp.Symbol] | None = None,
               n_points: int = 8, seed: int = 0) -> bool:
    """True when ``a`` and ``b`` are the same formula: ``simplify(a - b) == 0``, or, when
    sympy cannot tell, equal (to 1e-9) at random points where both are finite and real."""
    try:
        if sp.simplify(a - b) == 0:
            return True
    except Exception:  # noqa: BLE001, S110 - simplify gives up on some formulas: go numeric
        pass
    syms = list(inputs) if inputs is not None else sorted(
        (a.free_symbols | b.free_symbols), key=str)
    fa, fb = sp.lambdify(syms, a, "mpmath"), sp.lambdify(syms, b, "mpmath")
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(20 * n_points):
        point = [float(p) for p in rng.uniform(-3, 3, len(syms))]
        try:
            va, vb = complex(fa(*point)), complex(fb(*point))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
            continue
        if not all(np.isfinite([va.real, va.imag, vb.real, vb.imag])) or va.imag or vb.imag:
            continue
        if abs(va - vb) > 1e-9 * max(1.0, abs(va), abs(vb)):
            return False
        checked += 1
        if checked == n_points:
            return True
    return False
