"""The rewrite engine: named rules, indexed by the op they match, run in ordered phases.

A rule is a function ``rule(fgraph, node)`` returning replacements for the node's outputs (a
variable or a list) or None; its name states the identity it applies
(``log_sigmoid_to_softplus``) and its docstring gives it. ``@register(phase, *tracks)`` files it
under the ops it matches: an Elemwise by its scalar op's name (``"log"``), any other op by its
class name (``"Softmax"``), ``"*"`` for every node, or ``CONSTANT_INPUTS`` for the nodes whose
inputs are all constants (constant folding): the engine tests that once per visit instead of
calling the rule on every node.

``function()`` runs the phases of its mode in order (see compile/mode.py): ``merge`` and
``constant_folding`` are graph-wide passes; ``canonicalize``, ``stabilize`` and ``specialize``
apply their rules node by node, sweeping the graph until nothing changes. Every replacement
keeps the user's creation line (FunctionGraph.replace copies it) and is recorded in
``fgraph.history``, which the checking mode uses to name a rule that changed a result.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.numpy_backend import thunk
from ..symbolic.graph import Apply, Constant, Variable, toposort
from ..symbolic.trace import suspended
from .fgraph import MERGED_CONSTANTS, FunctionGraph, node_key

# Folding an op whose output is much larger than its inputs (alloc, eye, arange) would only
# move memory from the run into the compiled function; such nodes stay.
MAX_FOLDED_SIZE = 10_000
# A phase stops after this many rewrites per node (a guard against rules that undo each
# other); patterns look this many levels into a node's inputs, so a replacement is followed
# by a new look at the uses that deep below it.
MAX_REWRITES_PER_NODE = 50
REVISIT_DEPTH = 4
# The track of rules that can only fire on a node whose inputs are all constants.
CONSTANT_INPUTS = "*constant-inputs"


@dataclass(frozen=True)
class Rule:
    """A named rewrite; ``fn(fgraph, node)`` returns replacement outputs or None."""

    name: str
    phase: str
    tracks: tuple
    fn: Callable[[FunctionGraph, Apply], Any]
    # op keys of which the graph must hold at least one for the rule to have a chance
    needs: tuple = ()

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


RULES: dict[str, dict[str, list[Rule]]] = {}


def register(phase, *tracks: str, needs: Sequence[str] = ()):
    """Decorator filing a rule function under ``phase`` (a name or a tuple of names) for the
    op keys in ``tracks``. ``needs``: op keys of which the graph must hold a node for the rule
    to be able to fire anywhere (``cancel_sigmoid_factors`` is tracked on every product but
    needs a sigmoid or an exp somewhere); the rule is not tried on a graph with none."""
    phases = (phase,) if isinstance(phase, str) else tuple(phase)

    def wrap(fn):
        for ph in phases:
            rule = Rule(fn.__name__, ph, tracks, fn, tuple(needs))
            table = RULES.setdefault(ph, {})
            for key in tracks:
                table.setdefault(key, []).append(rule)
            fn.rule = rule
        return fn
    return wrap


def all_rules() -> list[Rule]:
    out = {}
    for table in RULES.values():
        for rules in table.values():
            for r in rules:
                out[(r.phase, r.name)] = r
    return list(out.values())


# -- helpers for writing rules ---------------------------------------------------------------------

def op_key(var: Variable) -> str | None:
    return node_key(var.owner) if var.owner is not None else None


def const_value(var: Variable) -> float | None:
    """The value of a constant whose elements are all equal (a 'scalar-like' constant)."""
    if isinstance(var, Constant):
        data = var.data
        if data.size and (data.size == 1 or np.all(data == data.flat[0])):
            return data.flat[0].item()
    return None


def match(var: Variable, pattern, bindings: dict | None = None) -> dict | None:
    """Match ``var`` against a tuple pattern: ``("log", ("add", 1, "x"))``.

    A string binds a variable (the same name must bind the same variable); a number matches a
    constant whose elements all equal it; ``None`` matches anything; a tuple starts with an op
    key and lists sub-patterns for the inputs. Returns the bindings or None.
    """
    b = {} if bindings is None else bindings
    if pattern is None:
        return b
    if isinstance(pattern, str):
        if pattern in b and b[pattern] is not var:
            return None
        b[pattern] = var
        return b
    if isinstance(pattern, (int, float)):
        value = const_value(var)
        return b if value is not None and value == pattern else None
    key, *subs = pattern
    if op_key(var) != key or len(var.owner.inputs) != len(subs):
        return None
    for inp, sub in zip(var.owner.inputs, subs):
        if match(inp, sub, b) is None:
            return None
    return b


def chain_root(fgraph: FunctionGraph, out: Variable, keys: Sequence[str]) -> bool:
    """Whether ``out`` ends a chain of ``keys`` nodes (add/sub/neg, or mul/true_div/neg) of its
    dtype: false when its only user continues the chain. Rules that read a whole chain
    rewrite it once, from this root, not from each of its links."""
    users = fgraph.clients.get(out, ())
    if len(users) != 1:
        return True
    client = next(iter(users))[0]
    return client == "output" or op_key(client.outputs[0]) not in keys or \
        client.outputs[0].dtype != out.dtype


def same_type_as(new: Variable, old: Variable) -> Variable:
    """``new`` cast and broadcast to ``old``'s type, for replacements that change neither."""
    from ..ops.elemwise import cast
    if new.dtype != old.dtype:
        new = cast(new, old.dtype)
    if new.ndim < old.ndim:
        new = new.dimshuffle(["x"] * (old.ndim - new.ndim) + list(range(new.ndim)))
    return new


# -- passes ----------------------------------------------------------------------------------------

def merge(fgraph: FunctionGraph) -> None:
    """Common subexpressions: equal constants become one, equal ops on the same inputs one.

    The first merge of a graph looks at every node, by level; a later one only at the nodes
    added or given new inputs since (``fgraph.touched``): two nodes that neither changed were
    already found different. A node pointed at its twin gives its clients new inputs, so they
    are looked at again, until nothing changes."""
    seen_consts = fgraph.memo(MERGED_CONSTANTS)
    nodes, level = fgraph.nodes, fgraph._level
    if fgraph.touched is None:
        for var in fgraph.inputs:  # an input constant is the one kept for its value
            if isinstance(var, Constant):
                seen_consts.setdefault(var.signature(), var)
        todo = fgraph.order_by_level()
    else:
        todo = sorted((n for n in fgraph.touched if n in nodes), key=level.__getitem__)
    fgraph.touched = set()
    while todo:
        for node in todo:
            if node not in nodes:
                continue
            for var in node.inputs:
                if var.owner is None and isinstance(var, Constant):
                    same = seen_consts.setdefault(var.signature(), var)
                    if same is not var:
                        fgraph.redirect(var, same)
            twin = _twin(fgraph, node)
            if twin is not None:
                for old, new in zip(node.outputs, twin.outputs):
                    fgraph.redirect(old, new)
        todo = sorted((n for n in fgraph.touched if n in nodes), key=level.__getitem__)
        fgraph.touched = set()


def _twin(fgraph: FunctionGraph, node: Apply) -> Apply | None:
    """Another node of the graph applying an equal op to the same inputs, or None. The
    candidates are the clients of the input that has the fewest."""
    if not node.inputs:  # rare: compared with every other node without inputs
        return next((o for o in fgraph.nodes if o is not node and not o.inputs
                     and o.op == node.op), None)
    clients = fgraph.clients
    pos = min(range(len(node.inputs)), key=lambda i: len(clients.get(node.inputs[i], ())))
    n_in = len(node.inputs)
    for other, i in clients.get(node.inputs[pos], ()):
        if other is node or other == "output" or i != pos or len(other.inputs) != n_in:
            continue
        if all(a is b for a, b in zip(other.inputs, node.inputs)) and other.op == node.op:
            return other
    return None


def fold_node(node: Apply) -> list[Constant] | None:
    """Constants for the outputs of ``node`` if its inputs are all constants, else None.

    The size of the outputs is checked before the node is run, from the static types or
    ``infer_shape``: running first would allocate what is then refused (``zeros((20000,
    20000))`` took seconds and gigabytes to compile). A node whose output size cannot be known
    beforehand is left to run time, where it is computed anyway."""
    if not node.op.foldable or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    in_size = sum(i.data.size for i in node.inputs)
    bound = folded_size(node)
    if bound is None or bound > max(MAX_FOLDED_SIZE, in_size):
        return None
    try:
        with np.errstate(all="ignore"):
            result = thunk(node)(*[i.data for i in node.inputs])
    except Exception:  # noqa: BLE001 - leave the error to run time, where it is reported
        return None
    values = result if len(node.outputs) > 1 else (result,)
    if any(np.size(v) > max(MAX_FOLDED_SIZE, in_size) for v in values):
        return None  # infer_shape was wrong: still refuse what is too big to keep
    return [Constant(out.type, np.asarray(value), name=out.name, trace=out.trace)
            for out, value in zip(node.outputs, values)]


def folded_size(node: Apply) -> int | None:
    """The total element count of the outputs of ``node`` (whose inputs are constants), known
    without running it: from the static shapes, else from ``infer_shape`` evaluated on the
    constant inputs' shapes. None when it cannot be known."""
    total, pending = 0, []
    for out in node.outputs:
        dims = getattr(out.type, "shape", None)
        if dims is None:
            return None
        if all(d is not None for d in dims):
            total += int(np.prod(dims, dtype=np.float64))  # float: no int64 wrap-around
        else:
            pending.append(out)
    if not pending:
        return total
    from ..ops.base import call_infer_shape, constant
    shapes = [tuple(constant(np.int64(n)) for n in i.data.shape) for i in node.inputs]
    try:
        inferred = call_infer_shape(node.op, None, node, shapes)
    except Exception:  # noqa: BLE001 - no usable shape rule: the size is unknown
        return None
    for out in pending:
        size = 1.0
        for entry in inferred[out.index]:
            n = _small_value(entry, node)
            if n is None or n < 0:
                return None
            size *= n
        total += int(size)
    return total


def _small_value(expr: Any, node: Apply) -> int | None:
    """The value of an integer shape entry built from constants (an int, a Constant or a small
    graph of scalar ops on constants), or None. Only nodes with static, tiny outputs are run,
    so this evaluation cannot itself allocate much."""
    if isinstance(expr, (int, np.integer)):
        return int(expr)
    if not isinstance(expr, Variable) or getattr(expr.type, "ndim", None) != 0:
        return None
    values: dict[Variable, Any] = {}
    for n in toposort([expr]):
        if n is node or not n.op.foldable:
            return None  # the entry reads the node's own output: not known beforehand
        for out in n.outputs:
            dims = getattr(out.type, "shape", None)
            if dims is None or any(d is None for d in dims) or np.prod(dims) > 64:
                return None
        args = []
        for i in n.inputs:
            if i in values:
                args.append(values[i])
            elif isinstance(i, Constant):
                args.append(i.data)
            else:
                return None
        try:
            with np.errstate(all="ignore"):
                result = thunk(n)(*args)
        except Exception:  # noqa: BLE001 - an entry that fails to evaluate is unknown
            return None
        outs = result if len(n.outputs) > 1 else (result,)
        values.update(zip(n.outputs, outs))
    value = values.get(expr, expr.data if isinstance(expr, Constant) else None)
    if value is None or np.asarray(value).dtype.kind not in "iub":
        return None
    return int(value)


def constant_fold(fgraph: FunctionGraph) -> None:
    """Compute at compile time every node whose inputs are all constants.

    Only the clients of constants (and nodes without inputs) can be such nodes, so those are
    the ones looked at, by level; a folded node's clients are looked at next."""
    nodes, level = fgraph.nodes, fgraph._level
    # dicts, not sets: the same graph is folded in the same order at every run
    todo = dict.fromkeys(c for var, uses in fgraph.clients.items() if isinstance(var, Constant)
                         for c, _ in uses if c != "output")
    todo.update(dict.fromkeys(node for node in level if not node.inputs))
    while todo:
        made = []
        for node in sorted(todo, key=level.__getitem__):
            if node not in nodes:
                continue
            consts = fold_node(node)
            if consts is not None:
                for out, const in zip(node.outputs, consts):
                    fgraph.redirect(out, const)
                    made.append(const)
        todo = dict.fromkeys(c for const in made for c, _ in fgraph.clients.get(const, ())
                             if c != "output")


def run_phase(fgraph: FunctionGraph, phase: str, exclude: Sequence[str] = ()) -> int:
    """Apply the phase's rules until none fires; returns the rewrite count.

    A worklist, not repeated sweeps: every node is tried once in topological order, and after a
    replacement only what it can affect is tried again: the nodes it brought in and the nodes
    up to ``REVISIT_DEPTH`` uses below the replaced variable (rule patterns look that deep into
    their inputs). That keeps a phase linear in the graph size. Rules named in ``exclude`` are
    skipped."""
    table = RULES.get(phase, {})
    if exclude:
        table = {k: [r for r in rs if r.name not in exclude] for k, rs in table.items()}
    everywhere = table.get("*", [])
    on_constants = table.get(CONSTANT_INPUTS, [])
    by_key: dict[str, list[Rule]] = {}
    by_key_const: dict[str, list[Rule]] = {}

    counts = fgraph.key_counts
    version = [fgraph.keys_version]

    def rules_of(node: Apply) -> list[Rule]:
        if fgraph.keys_version != version[0]:  # a key came in: rules it enables may apply
            version[0] = fgraph.keys_version
            by_key.clear()
            by_key_const.clear()
        key = node_key(node)
        rules = by_key.get(key)
        if rules is None:
            rules = by_key[key] = [r for r in table.get(key, []) + everywhere
                                   if not r.needs or any(counts.get(k) for k in r.needs)]
            by_key_const[key] = rules + on_constants
        if on_constants:
            for inp in node.inputs:
                if not isinstance(inp, Constant):
                    return rules
            return by_key_const[key]
        return rules

    # a node no rule of the phase can match is left out from the start (most of a large
    # graph in the later phases); a rewrite near it queues it again, and it is asked again
    order = fgraph.order_by_level()
    queue = deque(node for node in order if rules_of(node))
    queued = set(queue)
    budget = MAX_REWRITES_PER_NODE * (len(order) + 10)
    count = 0
    nodes = fgraph.nodes
    fgraph.imported = []
    try:
        while queue:
            node = queue.popleft()
            queued.discard(node)
            if node not in nodes:
                continue
            rules = rules_of(node)
            for rule in rules:
                result = rule.fn(fgraph, node)
                if result is None:
                    continue
                news = result if isinstance(result, (list, tuple)) else [result]
                # the node's inputs lose a client: a rule that needed them used only once (a
                # chain walk) may fire on their other clients now
                touched = list(node.inputs)
                for old, new in zip(node.outputs, news):
                    if new is not None and new is not old:
                        fgraph.replace(old, new, rule.name)
                        touched.append(new)
                count += 1
                _revisit(fgraph, touched, queue, queued)
                break
            if count > budget:  # a rule pair undoing each other: stop rather than spin
                break
    finally:
        fgraph.imported = None
    return count


def _revisit(fgraph: FunctionGraph, touched: list[Variable], queue: deque, queued: set) -> None:
    fresh, fgraph.imported[:] = list(fgraph.imported), []
    for node in reversed(fresh):  # imported from the output down: reversed puts inputs first
        if node not in queued:
            queue.append(node)
            queued.add(node)
    frontier = touched
    for _ in range(REVISIT_DEPTH):
        nxt = []
        for var in frontier:
            for client, _i in fgraph.clients.get(var, ()):
                if client == "output" or client in queued:
                    continue
                queue.append(client)
                queued.add(client)
                nxt.extend(client.outputs)
        frontier = nxt


PASSES: dict[str, Callable[[FunctionGraph], Any]] = {
    "merge": merge,
    "constant_folding": constant_fold,
}


def run_passes(fgraph: FunctionGraph, names: Sequence[str], exclude: Sequence[str] = (),
               timings: dict[str, float] | None = None) -> None:
    """Run the named passes and phases in order, skipping the rules named in ``exclude``.
    ``timings``, when given, receives the seconds each pass took, by name (a name run again,
    as the final merge, as ``"merge (again)"``)."""
    from . import rules  # noqa: F401  (registers the rule tables)
    with suspended():
        for name in names:
            if timings is not None:
                start = time.perf_counter()
            if name in PASSES:
                PASSES[name](fgraph)
            else:
                run_phase(fgraph, name, exclude)
            if timings is not None:
                key = name if name not in timings else f"{name} (again)"
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
    fgraph.drop_memos()
