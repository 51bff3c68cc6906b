"""Graph walks with Theano's ``gof.graph`` contracts: ``ancestors``, ``inputs``, ``variables``,
``orphans``, ``io_toposort``, ``clone``, and the structural comparisons ``equal_computations``
(``scan_module.scan_utils``) and ``is_same_graph``.

Layer libraries call these by their Theano names and rely on their order (a left-first
depth-first search from the outputs), which differs from the order of theon's own walks in
``symbolic/graph.py``; so they live here, iterative (deep graphs), and the face re-exports them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from .graph import Apply, Constant, Variable, clone_replace, toposort


def _left_first_dfs(start: Sequence[Variable], expand) -> list[Variable]:
    """Variables reached from ``start``, each once, in the order of a depth-first search that
    visits the last of ``start`` first and a node's first input before its others (Theano's
    ``stack_search(..., 'dfs')``)."""
    stack = list(start)
    seen: set[int] = set()
    order: list[Variable] = []
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        order.append(v)
        more = expand(v)
        if more:
            stack.extend(reversed(more))
    return order


def ancestors(variable_list: Iterable[Variable],
              blockers: Iterable[Variable] | None = None) -> list[Variable]:
    """The variables that ``variable_list`` depends on, themselves included (Theano's order)."""
    block = set(blockers or ())
    return _left_first_dfs(list(variable_list), lambda v: (
        v.owner.inputs if v.owner is not None and v not in block else None))


def inputs(variable_list: Iterable[Variable],
           blockers: Iterable[Variable] | None = None) -> list[Variable]:
    """The root variables (no owner) that ``variable_list`` depends on, as Theano's
    ``gof.graph.inputs``: constants and shared variables included; a blocker stops the walk
    but is listed only if it is itself a root."""
    return [v for v in ancestors(variable_list, blockers) if v.owner is None]


def variables_and_orphans(i: Iterable[Variable], o: Iterable[Variable]):
    """(every variable between ``i`` and ``o``, the roots among them that are not in ``i``)."""
    ins = set(i)
    found = _left_first_dfs(list(o), lambda v: (
        list(v.owner.inputs) + list(v.owner.outputs)
        if v.owner is not None and v not in ins else None))
    return found, [v for v in found if v.owner is None and v not in ins]


def variables(i: Iterable[Variable], o: Iterable[Variable]) -> list[Variable]:
    """Every variable of the subgraph between ``i`` and ``o``: both ends, orphans, and every
    output of the nodes in between."""
    return variables_and_orphans(i, o)[0]


def orphans(i: Iterable[Variable], o: Iterable[Variable]) -> list[Variable]:
    """The roots ``o`` depends on that are not in ``i`` (constants, shared variables...)."""
    return variables_and_orphans(i, o)[1]


def ops(i: Iterable[Variable], o: Iterable[Variable]) -> set[Apply]:
    """The Apply nodes between ``i`` and ``o`` (Theano's name: a set of nodes, not of ops)."""
    return set(io_toposort(i, o))


def io_toposort(inputs: Iterable[Variable], outputs: Iterable[Variable],
                orderings=None, clients=None) -> list[Apply]:
    """The Apply nodes between ``inputs`` and ``outputs``, each after those computing its
    inputs. ``orderings`` (extra dependencies per node) is accepted for Theano's signature;
    an ordering that is not already implied by the graph is refused."""
    nodes = toposort(list(outputs), stop=list(inputs))
    if orderings:
        position = {n: k for k, n in enumerate(nodes)}
        for node, before in orderings.items():
            if any(position.get(b, -1) > position.get(node, -1) for b in before):
                raise NotImplementedError("io_toposort: orderings beyond the graph's own "
                                          "dependencies are not supported")
    return nodes


def clone(i: Sequence[Variable], o: Sequence[Variable], copy_inputs: bool = True,
          copy_orphans: bool | None = None) -> tuple[list[Variable], list[Variable]]:
    """Copy the subgraph between ``i`` and ``o``: every node is new; ``i`` are copied with
    ``copy_inputs``, constant orphans with ``copy_orphans`` (default: ``copy_inputs``).
    Returns ``(new_inputs, new_outputs)``, as Theano's ``gof.graph.clone``."""
    if copy_orphans is None:
        copy_orphans = copy_inputs
    memo: dict[Variable, Variable] = {}
    for v in i:
        memo[v] = v.clone() if copy_inputs else v
    if copy_orphans:
        for v in orphans(i, o):
            if isinstance(v, Constant):
                memo[v] = v.clone()
    for node in toposort(list(o), stop=list(i)):
        new = node.clone_with_new_inputs([memo.get(x, x) for x in node.inputs])
        memo.update(zip(node.outputs, new.outputs))
    return [memo[v] for v in i], [memo.get(v, v) for v in o]


def _constants_equal(a: Constant, b: Constant) -> bool:
    return a.type == b.type and a.signature() == b.signature()


def equal_computations(xs: Sequence[Variable], ys: Sequence[Variable],
                       in_xs: Sequence[Variable] | None = None,
                       in_ys: Sequence[Variable] | None = None) -> bool:
    """Whether each ``xs[k]`` computes the same as ``ys[k]``: equal ops applied, output for
    output, to inputs that are the same variable, equal constants, or a pair
    ``(in_xs[j], in_ys[j])`` declared equivalent (of equal types)."""
    in_xs, in_ys = list(in_xs or ()), list(in_ys or ())
    if len(xs) != len(ys) or len(in_xs) != len(in_ys):
        return False
    if any(a.type != b.type for a, b in zip(in_xs, in_ys)):
        return False
    equal = set(zip(in_xs, in_ys))
    declared = set(in_xs)
    for x, y in zip(xs, ys):
        if (x.owner is None) != (y.owner is None):
            return False
        if x not in declared and x.type != y.type:
            return False
    # Pairs still to prove, checked after their inputs' pairs (an explicit stack: a recursion
    # would stop at Python's limit on deep graphs).
    different: set = set()
    for x, y in zip(xs, ys):
        if not _pair_equal(x, y, equal, different):
            return False
    return True


def _pair_equal(x: Variable, y: Variable, equal: set, different: set) -> bool:
    """Whether x and y compute the same, memoizing proven pairs in ``equal`` and refuted ones
    in ``different``."""
    stack = [(x, y, False)]
    while stack:
        a, b, inputs_done = stack.pop()
        if (a, b) in equal or a is b:
            continue
        if (a, b) in different:
            return False
        if a.owner is None or b.owner is None:
            if a.owner is None and b.owner is None and isinstance(a, Constant) and \
                    isinstance(b, Constant) and _constants_equal(a, b):
                equal.add((a, b))
                continue
            different.add((a, b))
            return False
        na, nb = a.owner, b.owner
        if inputs_done:
            equal.update(zip(na.outputs, nb.outputs))
            continue
        if (a.index != b.index or na.op != nb.op or len(na.inputs) != len(nb.inputs)
                or len(na.outputs) != len(nb.outputs)
                or any(p.type != q.type for p, q in zip(na.outputs, nb.outputs))):
            different.add((a, b))
            return False
        stack.append((a, b, True))
        stack.extend((p, q, False) for p, q in reversed(list(zip(na.inputs, nb.inputs))))
    return True


def is_same_graph(var1: Variable, var2: Variable, givens=None, debug: bool = False) -> bool:
    """Whether ``var1`` and ``var2`` are the same computation once ``givens`` (a dict or pairs,
    as ``function``'s) are substituted in both graphs: ``x + 1`` and ``y + 1`` are the same
    with ``{x: y}``, ``x * (y * z)`` and ``(x * y) * z`` are not."""
    pairs = dict(givens or {})
    if pairs:
        var1, var2 = clone_replace([var1, var2], pairs)
    return equal_computations([var1], [var2])
