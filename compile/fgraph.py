"""FunctionGraph: a private, mutable copy of a graph between fixed inputs and outputs.

``function()`` clones the user's graph into one, so rewrites can replace variables in place
without touching the graph the user holds (which other functions may be compiled from too).
Clients are kept up to date incrementally: a replacement imports the new subgraph and prunes
the nodes nobody uses any more, so a rewrite costs time in proportion to what it changes.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..symbolic.graph import Apply, Constant, Variable, toposort

# The merge memo (see FunctionGraph.memo): constant signature -> the constant kept for it.
MERGED_CONSTANTS = "merged constants"


def node_key(node: Apply) -> str:
    """The key rules are filed under: an Elemwise's scalar op name (``"log"``), any other
    op's class name (``"Softmax"``)."""
    sop = getattr(node.op, "scalar_op", None)
    return sop.name if sop is not None else type(node.op).__name__


class Clients(dict):
    """The clients of one variable: ``(node, i)`` pairs (``("output", k)`` for an output).

    Iterates like the list it stands for, but adding and removing a pair is O(1), so pruning a
    node from a variable with many clients (a merged constant) does not cost O(clients).
    """

    __slots__ = ()

    def append(self, client) -> None:
        self[client] = None

    def extend(self, clients) -> None:
        for c in clients:
            self[c] = None

    def remove(self, client) -> None:
        self.pop(client, None)

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):  # list-style indexing, for compatibility
            return list(self)[key]
        return super().__getitem__(key)

    def __repr__(self) -> str:
        return f"Clients({list(self)!r})"


def clone_graph(inputs: Sequence[Variable], outputs: Sequence[Variable]
                ) -> tuple[list[Variable], dict[Variable, Variable]]:
    """Copy every Apply between ``inputs`` and ``outputs``; roots are kept as they are.

    Returns the new outputs and the map from old to new variables.
    """
    outputs, memo, _, _ = _clone(inputs, outputs)
    return outputs, memo


def _clone(inputs: Sequence[Variable], outputs: Sequence[Variable], merge: bool = False
           ) -> tuple:
    """clone_graph's outputs and map, the new nodes in the order ``toposort`` gives them
    (the copy has the shape of the original, so its walk meets the copies in the same order)
    and the merged constants by signature.

    With ``merge``, the copy is also what the merge pass would make of it: equal constants
    read by nodes become one, and a node applying an equal op to the same (copied) inputs as
    one already copied is not copied again."""
    memo: dict[Variable, Variable] = {v: v for v in inputs}
    order = []
    get = memo.get
    new_object, new_apply, plain_init = object.__new__, Apply.__new__, Variable.__init__
    consts: dict = {}
    # copies grouped by their inputs' ids: ops are compared only within a group (hashing an
    # op hashes its props); most groups hold one node, stored as itself
    canon: dict[tuple, Any] = {}
    # Apply's and Variable's constructors, inlined: a copy of a valid node needs none of
    # their checks, and compiling a large graph copies every node
    for node in toposort(outputs, stop=inputs):
        new_inputs = [get(i, i) for i in node.inputs]
        if merge:
            for k, i in enumerate(new_inputs):
                if i.owner is None and isinstance(i, Constant) and i not in memo:
                    memo[i] = same = consts.setdefault(i.signature(), i)
                    new_inputs[k] = same
            key = tuple(map(id, new_inputs))
            group = canon.get(key)
            if group is not None:
                twins = group if isinstance(group, list) else [group]
                twin = next((t for t in twins if t.op == node.op), None)
                if twin is not None:
                    memo.update(zip(node.outputs, twin.outputs))
                    continue
        copy = new_apply(Apply)
        copy.op, copy.inputs, copy.tag = node.op, new_inputs, None
        outs = []
        for k, o in enumerate(node.outputs):
            cls = type(o)
            if cls.__init__ is plain_init:
                v = new_object(cls)
                v.type, v.owner, v.index, v.name, v.trace = o.type, copy, k, o.name, o.trace
            else:  # a subclass with a constructor of its own gets it called
                v = cls(o.type, name=o.name, trace=o.trace)
                v.owner, v.index = copy, k
            outs.append(v)
            memo[o] = v
        copy.outputs = outs
        order.append(copy)
        if merge:
            if group is None:
                canon[key] = copy
            elif isinstance(group, list):
                group.append(copy)
            else:
                canon[key] = [group, copy]
    return [get(o, o) for o in outputs], memo, order, consts


class FunctionGraph:
    """Nodes between ``inputs`` and ``outputs``, with each variable's clients.

    ``clients[v]`` lists ``(node, i)`` pairs where ``node.inputs[i] is v``; an output position
    is recorded as ``("output", k)``. ``history`` records every replacement made by a rewrite
    as ``(rule name, old variable, new variable)``.
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 clone: bool = True, merge: bool = False):
        """``merge`` (with ``clone``): the copy is merged as it is made (see ``_clone``), so
        that a first merge pass has nothing left to do."""
        self.inputs = list(inputs)
        self._input_set = set(self.inputs)
        self._memos: dict[str, dict] = {}
        order = None
        merge = merge and clone
        if clone:
            outputs, _, order, consts = _clone(self.inputs, outputs, merge)
            if merge:  # later merges meet new constants against these
                self.memo(MERGED_CONSTANTS).update(consts)
        self.outputs = list(outputs)
        self.history: list[tuple] = []
        # When a list, _import appends every node it adds (the rewrite worklist reads it).
        self.imported: list[Apply] | None = None
        # The nodes added, or given new inputs, since the last merge pass (None: no merge
        # yet): only they can have become equal to another node since.
        self.touched: set[Apply] | None = set() if merge else None
        self._rebuild(order)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _rebuild(self, order: list[Apply] | None = None) -> None:
        """The client table, node set and levels, from ``order`` (the nodes in toposort
        order) when the caller already has it."""
        clients: dict[Variable, Clients] = {}
        self.clients = clients
        self._order: list[Apply] | None = order if order is not None else toposort(
            self.outputs, stop=self.inputs)
        self.nodes = set(self._order)
        # A node's level is one more than the highest level of the nodes computing its
        # inputs (0 for a root or an input): ordering by level is topological, and unlike
        # the depth-first order it stays valid through a rewrite at the cost of the nodes
        # the rewrite touches, so the passes never sort the whole graph again.
        level = self._level = {}
        input_set = self._input_set
        get = clients.get
        # how many nodes of each key the graph holds: a rule that needs a key no node has
        # (a sigmoid, a softmax) is not tried (see rewrite.register's ``needs``)
        self.key_counts = counts = {}
        self.keys_version = 0
        for node in self._order:
            key = node_key(node)
            counts[key] = counts.get(key, 0) + 1
            top = 0
            i = 0
            for inp in node.inputs:
                uses = get(inp)
                if uses is None:
                    uses = clients[inp] = Clients()
                uses[(node, i)] = None
                i += 1
                owner = inp.owner
                if owner is not None and inp not in input_set:
                    n = level[owner]
                    if n > top:
                        top = n
            level[node] = top + 1
        for k, out in enumerate(self.outputs):
            uses = get(out)
            if uses is None:
                uses = clients[out] = Clients()
            uses[("output", k)] = None

    def _import(self, var: Variable) -> None:
        """Add the nodes computing ``var`` that the graph does not have yet."""
        stack = [var]
        added = []
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None or node in self.nodes or v in self._input_set:
                continue
            self.nodes.add(node)
            added.append(node)
            key = node_key(node)
            n = self.key_counts.get(key, 0)
            self.key_counts[key] = n + 1
            if not n:
                self.keys_version += 1
            if self.imported is not None:
                self.imported.append(node)
            for i, inp in enumerate(node.inputs):
                uses = self.clients.get(inp)
                if uses is None:
                    uses = self.clients[inp] = Clients()
                uses[(node, i)] = None
                stack.append(inp)
        if added:
            self._set_levels(added)
            if self.touched is not None:
                self.touched.update(added)

    def _set_levels(self, added: list[Apply]) -> None:
        """Levels of newly added nodes, each after those of its inputs' nodes."""
        level, input_set = self._level, self._input_set
        for start in added:
            stack = [start]
            while stack:
                node = stack[-1]
                if node in level:
                    stack.pop()
                    continue
                top, pending = 0, False
                for inp in node.inputs:
                    owner = inp.owner
                    if owner is None or inp in input_set:
                        continue
                    n = level.get(owner)
                    if n is None:
                        stack.append(owner)
                        pending = True
                    elif n > top:
                        top = n
                if not pending:
                    stack.pop()
                    level[node] = top + 1

    def _raise_levels(self, var: Variable, moved) -> None:
        """After ``var`` took over the clients ``moved``: lift each (and what follows it)
        whose level is no longer above that of ``var``'s node."""
        owner = var.owner
        if owner is None or var in self._input_set:
            return
        level, clients = self._level, self.clients
        base = level[owner]
        todo = []
        for client, _ in moved:
            if client != "output" and level[client] <= base:
                level[client] = base + 1
                todo.append(client)
        while todo:
            node = todo.pop()
            n = level[node]
            for out in node.outputs:
                for client, _ in clients.get(out, ()):
                    if client != "output" and level[client] <= n:
                        level[client] = n + 1
                        todo.append(client)

    def _prune(self, var: Variable) -> None:
        """Drop the nodes that only fed ``var``, now that nothing uses it."""
        stack = [var]
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None or node not in self.nodes or v in self._input_set:
                continue
            if any(self.clients.get(o) for o in node.outputs):
                continue
            self.nodes.discard(node)
            del self._level[node]
            self.key_counts[node_key(node)] -= 1
            # a dropped variable keeps no entry: the table would otherwise hold every
            # replaced subgraph alive until the function dies
            for out in node.outputs:
                self.clients.pop(out, None)
            for i, inp in enumerate(node.inputs):
                lst = self.clients.get(inp)
                if lst is not None:
                    lst.remove((node, i))
                    if lst:
                        continue
                    del self.clients[inp]
                stack.append(inp)

    def memo(self, name: str) -> dict:
        """A per-graph memo of the rewrite passes (shape lengths, merged constants), made on
        first use; ``drop_memos`` ends them all when rewriting is over."""
        table = self._memos.get(name)
        if table is None:
            table = self._memos[name] = {}
        return table

    def drop_memos(self) -> None:
        """Forget the memos: they would otherwise live as long as the compiled function, for
        the garbage collector to walk at every collection."""
        self._memos = {}

    # the tables only rewriting needs, rebuilt from the nodes when read again
    _REWRITE_TABLES = ("clients", "_level", "key_counts", "keys_version")

    def release_bookkeeping(self) -> None:
        """Drop the client table, the levels and the key counts: a compiled function keeps
        its graph for inspection, and these tables are about a third of the objects it would
        keep for the garbage collector to walk. Reading ``clients`` again rebuilds them."""
        for name in self._REWRITE_TABLES:
            self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        # only called for a missing attribute: the tables release_bookkeeping dropped
        if name in FunctionGraph._REWRITE_TABLES and "nodes" in self.__dict__:
            self._rebuild(self.__dict__.get("_order"))
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- queries ---------------------------------------------------------------------------------
    @property
    def apply_nodes(self) -> list[Apply]:
        return self.toposort()

    def toposort(self) -> list[Apply]:
        """The nodes in an order where each comes after those computing its inputs: the
        depth-first order from the outputs, which computes each value close to its use
        (the schedule the backends run)."""
        if self._order is None:
            self._order = toposort(self.outputs, stop=self.inputs)
        return list(self._order)

    def order_by_level(self) -> list[Apply]:
        """The nodes by level: also topological, and cheap at any time (rewrite passes walk
        the graph in this order, between changes that would each spoil a depth-first one)."""
        # the table iterates in insertion order and the sort is stable: the same graph gives
        # the same order at every run
        level = self._level
        return sorted(level, key=level.__getitem__)

    def variables(self) -> Iterable[Variable]:
        seen = set(self.inputs)
        yield from self.inputs
        for node in self.toposort():
            for v in node.inputs + node.outputs:
                if v not in seen:
                    seen.add(v)
                    yield v

    def n_clients(self, var: Variable) -> int:
        return len(self.clients.get(var, ()))

    # -- changes --------------------------------------------------------------------------------
    def redirect(self, old: Variable, new: Variable) -> None:
        """Point every client of ``old`` at ``new``, importing and pruning as needed."""
        if old is new:
            return
        self._import(new)
        moved = self.clients.pop(old, None) or ()
        touched = self.touched
        for client, i in moved:
            if client == "output":
                self.outputs[i] = new
            else:
                client.inputs[i] = new
                if touched is not None:
                    touched.add(client)
        uses = self.clients.get(new)
        if uses is None:
            uses = self.clients[new] = Clients()
        uses.update(moved)  # moved is a Clients (or empty): its pairs are its keys
        self._raise_levels(new, moved)
        self._prune(old)
        self._order = None

    def replace(self, old: Variable, new: Variable, reason: str | None = None) -> None:
        """Replace ``old`` by ``new`` everywhere; types must agree (dtype and ndim)."""
        if old is new:
            return
        ot, nt = old.type, new.type
        if ot != nt:
            if getattr(ot, "dtype", None) != getattr(nt, "dtype", None) or ot.ndim != nt.ndim:
                raise TypeError(f"rewrite {reason or ''}: cannot replace {old!r} ({ot}) by "
                                f"{new!r} ({nt})")
            if not ot.is_super(nt):  # the new one is less specific: keep the old promise
                from ..ops.dimshuffle import patternbroadcast
                new = patternbroadcast(new, ot.broadcastable)
        _copy_trace(old, new, self)
        self.history.append((reason, old, new))
        self.redirect(old, new)

    def replace_all(self, pairs: Iterable[tuple[Variable, Variable]],
                    reason: str | None = None) -> None:
        for old, new in pairs:
            self.replace(old, new, reason)

    def to_networkx(self):
        """The graph as a networkx DiGraph of Apply and Variable nodes (for drawing, checks)."""
        import networkx as nx
        g = nx.DiGraph()
        for node in self.toposort():
            for inp in node.inputs:
                g.add_edge(inp, node)
            for out in node.outputs:
                g.add_edge(node, out)
        return g

    def check(self) -> None:
        """Verify the bookkeeping that rewrites maintain incrementally: the graph is acyclic
        (networkx finds the cycle to report), every node reachable from the outputs is
        registered, and each variable's clients are exactly the nodes using it. Raises
        AssertionError naming what is wrong. The checking mode runs it after rewriting."""
        import networkx as nx
        g = self.to_networkx()
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise AssertionError(f"the rewritten graph has a cycle: {cycle}")
        reachable = set(toposort(self.outputs, stop=self.inputs))
        if reachable != self.nodes:
            raise AssertionError(f"FunctionGraph.nodes is stale: {len(self.nodes - reachable)} "
                                 f"dead node(s) kept, {len(reachable - self.nodes)} missing")
        expected: dict[Variable, set] = {}
        for node in reachable:
            for i, inp in enumerate(node.inputs):
                expected.setdefault(inp, set()).add((node, i))
        for k, out in enumerate(self.outputs):
            expected.setdefault(out, set()).add(("output", k))
        for var, uses in expected.items():
            if set(self.clients.get(var, ())) != uses:
                raise AssertionError(f"the clients of {var!r} are stale")

    def __repr__(self) -> str:
        return f"FunctionGraph({len(self.nodes)} nodes, outputs={self.outputs})"


def _copy_trace(old: Variable, new: Variable, fgraph: FunctionGraph) -> None:
    """Give the variables a rewrite created the user's creation line of what they replace."""
    if not old.trace:
        return
    stack = [new]
    seen = set()
    while stack:
        v = stack.pop()
        if v in seen or isinstance(v, Constant) and v.trace:
            continue
        seen.add(v)
        if v.owner is None or v.owner in fgraph.nodes or v in fgraph._input_set:
            if v.owner is None and not v.trace:
                v.trace = old.trace
            continue
        for out in v.owner.outputs:
            out.trace = old.trace
        stack.extend(v.owner.inputs)
