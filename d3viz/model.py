"""What a graph picture shows, independent of how it is drawn: the nodes (inputs, shared
variables, constants, ops, fused kernels, loops, outputs), the edges between them, what hovering
a node tells (type, static shape, the user's line, time), and the inner graphs a fused kernel
or a loop expands to. ``printing.pydotprint`` writes it as DOT, ``d3viz`` as one HTML file.

Apply nodes are nodes; a variable is a node only where the graph starts (inputs, shared
variables, constants) or ends (outputs, updates): an intermediate variable is the edge from the
node computing it to each node reading it.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from ..ops.fused import Fused, ScalarGraph
from ..ops.fused_reduce import FusedReduce
from ..symbolic.graph import Apply, Constant, Variable, toposort
from ..symbolic.shared import SharedVariable
from ..symbolic.trace import format_trace

KINDS = ("input", "shared", "constant", "op", "fused", "loop", "output")


@dataclass
class Node:
    """One box of the picture. ``info``: (key, text) rows shown on hover."""

    id: str
    kind: str
    label: str
    info: list[tuple[str, str]] = field(default_factory=list)
    apply: Apply | None = None
    seconds: float | None = None
    inner: list[Graph] = field(default_factory=list)


@dataclass
class Edge:
    """``src`` feeds input ``index`` of ``dst`` (of ``n_inputs``); ``info`` describes the value."""

    src: str
    dst: str
    index: int = 0
    n_inputs: int = 1
    info: str = ""
    var: Variable | None = None  # the value carried, where it is made by a node


@dataclass
class Graph:
    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def walk(self) -> Iterable[tuple[Graph, Node]]:
        """Every node of this graph and of the inner graphs, nested ones included."""
        for node in self.nodes:
            yield self, node
            for g in node.inner:
                yield from g.walk()


def shape_text(var: Any) -> str:
    """A static shape as ``(?, 3)``; '' for a type without one."""
    shape = getattr(getattr(var, "type", None), "shape", None)
    if shape is None:
        return ""
    dims = ["?" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def short(text: str, size: int) -> str:
    """``text`` cut to ``size`` characters (a mark shows the cut); size <= 0 keeps it whole."""
    return text if size <= 0 or len(text) <= size else text[: max(size - 1, 1)] + "\u2026"


def node_seconds(profile: Any) -> dict[Apply, float]:
    """Per-node times from a profile: a mapping node -> seconds, or an object holding one as
    ``apply_time`` (Theano's ProfileStats), ``node_times`` or ``times`` (attribute or method).
    Keys may also be ``(fgraph, node)`` pairs; a value may be a number or an object with a
    ``total``/``seconds``/``time`` attribute."""
    if profile is None:
        return {}
    table = profile
    if not isinstance(profile, Mapping):
        for attr in ("apply_time", "node_times", "times"):
            table = getattr(profile, attr, None)
            if callable(table):
                table = table()
            if isinstance(table, Mapping):
                break
        else:
            raise TypeError(f"a profile is a mapping node -> seconds or an object with "
                            f"apply_time/node_times; got {type(profile).__name__}")
    out: dict[Apply, float] = {}
    for key, value in table.items():
        if isinstance(key, tuple) and key and isinstance(key[-1], Apply):
            key = key[-1]
        if not isinstance(key, Apply):
            continue
        if not isinstance(value, Real):
            value = next((getattr(value, a) for a in ("total", "seconds", "time")
                          if isinstance(getattr(value, a, None), Real)), None)
        if value is not None:
            out[key] = out.get(key, 0.0) + float(value)
    return out


class _Builder:
    """Makes the graphs of one picture; ids are unique across the outer and inner graphs."""

    def __init__(self, seconds: Mapping[Apply, float], max_label_size: int):
        self.ids = (f"n{k}" for k in itertools.count())
        self.seconds = seconds
        self.size = max_label_size

    def var_node(self, var: Variable, kind: str | None = None, label: str | None = None) -> Node:
        if kind is None:
            kind = ("shared" if isinstance(var, SharedVariable) else
                    "constant" if isinstance(var, Constant) else "input")
        text = label or (repr(var) if kind == "constant" or var.name else f"<{var.type}>")
        info = [("variable", text), ("type", str(var.type))]
        if shape_text(var):
            info.append(("shape", shape_text(var)))
        if var.trace:
            info.append(("line", format_trace(var.trace)))
        return Node(next(self.ids), kind, short(text, self.size), info)

    def apply_node(self, node: Apply) -> Node:
        op = node.op
        text = str(op)
        try:
            inner = op.inner_graphs(node)
        except Exception:  # a picture must not fail on a user's op
            inner = ()
        kind = ("fused" if isinstance(op, (Fused, FusedReduce)) else
                "loop" if inner else "op")
        info = [("op", text)]
        for k, out in enumerate(node.outputs):
            where = f"output {k}" if len(node.outputs) > 1 else "output"
            info.append((where, f"{out.type}" + (f" {out.name!r}" if out.name else "")))
            if shape_text(out):
                info.append(("shape" if len(node.outputs) == 1 else f"shape {k}",
                             shape_text(out)))
        info.append(("line", format_trace(node.trace)))
        seconds = self.seconds.get(node)
        made = Node(next(self.ids), kind, short(text, self.size), info, node, seconds)
        if kind == "fused":
            made.inner.append(self.scalar_graph(op, node))
        for k, (ins, outs) in enumerate(inner):
            outs = [outs] if isinstance(outs, Variable) else list(outs)
            in_labels, out_labels = _loop_labels(node, list(ins), outs)
            made.inner.append(self.graph(
                f"{short(text, self.size)}: inner graph" + (f" {k}" if len(inner) > 1 else ""),
                outs, list(ins), out_labels, in_labels))
        return made

    def graph(self, title: str, outputs: Sequence[Variable], inputs: Sequence[Variable] = (),
              out_labels: Sequence[str] | None = None,
              in_labels: Mapping[Variable, str] | None = None) -> Graph:
        """The graph from ``inputs`` (the walk stops there; roots otherwise) to ``outputs``."""
        g = Graph(title)
        made: dict[Any, Node] = {}  # an Apply or a root variable -> its node
        in_labels = dict(in_labels or {})

        def source(var: Variable) -> tuple[Node, str, Variable | None]:
            if var.owner is not None and var not in stops:
                node = var.owner
                where = f"output {node.outputs.index(var)}: " if len(node.outputs) > 1 else ""
                name = f"{var.name!r} " if var.name else ""
                return made[node], f"{where}{name}{var.type} {shape_text(var)}".strip(), var
            if var not in made:
                made[var] = self.var_node(var, label=in_labels.get(var))
                g.nodes.append(made[var])
            return made[var], f"{var.type} {shape_text(var)}".strip(), None

        stops = set(inputs)
        for k, var in enumerate(inputs):  # the inputs first, in their order
            kind = ("shared" if isinstance(var, SharedVariable) else
                    "constant" if isinstance(var, Constant) else "input")
            label = in_labels.get(var) or (var.name if var.name else None)
            if label is None and kind == "input":
                label = f"in {k}"
            made[var] = self.var_node(var, kind, label)
            g.nodes.append(made[var])
        for node in toposort(outputs, stop=stops):
            made[node] = box = self.apply_node(node)
            for k, inp in enumerate(node.inputs):  # (a root's box goes before its reader's)
                src, info, var = source(inp)
                g.edges.append(Edge(src.id, box.id, k, len(node.inputs), info, var))
            g.nodes.append(box)
        labels = list(out_labels or [])
        for k, out in enumerate(outputs):
            label = labels[k] if k < len(labels) else (out.name or f"out {k}")
            src, info, var = source(out)
            sink = Node(next(self.ids), "output", short(label, self.size),
                        [("output", label), ("type", str(out.type))]
                        + ([("shape", shape_text(out))] if shape_text(out) else []))
            g.nodes.append(sink)
            g.edges.append(Edge(src.id, sink.id, 0, 1, info, var))
        return g

    def scalar_graph(self, op: Fused | FusedReduce, node: Apply) -> Graph:
        """A fused kernel's element computation: its inputs, the rows of the scalar table
        applied to them, and for a FusedReduce the reduction of the result and the
        epilogue applied to it (when it has one)."""
        g = Graph(f"{short(str(op), self.size)}: one element")
        refs = self._scalar_inputs(g, op.graph.in_dtypes, node.inputs, 0)
        results = self._scalar_steps(g, op.graph, refs)
        if isinstance(op, FusedReduce):
            dtype = op.graph.ref_dtypes[op.graph.outputs[0]]
            red = Node(next(self.ids), "op", short(str(op.reduce_op), self.size),
                       [("reduction", str(op.reduce_op)), ("dtype", op.dtype)])
            g.nodes.append(red)
            g.edges.append(Edge(results[0].id, red.id, 0, 1, dtype))
            results = [red]
            epilogue = getattr(op, "epilogue", None)
            if epilogue is not None:  # input 0 is the reduced value, the others the node's
                more = self._scalar_inputs(g, epilogue.in_dtypes[1:], node.inputs,
                                           len(op.graph.in_dtypes))
                results = self._scalar_steps(g, epilogue, [red] + more)
        for k, src in enumerate(results):
            out = node.outputs[k] if k < len(node.outputs) else None
            sink = Node(next(self.ids), "output", f"out {k}" if len(results) > 1 else "out",
                        [("output", f"out {k}")] +
                        ([("type", str(out.type))] if out is not None else []))
            g.nodes.append(sink)
            g.edges.append(Edge(src.id, sink.id, 0, 1,
                                out.type.dtype if out is not None else ""))
        return g

    def _scalar_inputs(self, g: Graph, dtypes: Sequence[str], outer_inputs: Sequence[Variable],
                       first: int) -> list[Node]:
        """Nodes for the inputs ``i<first>``... of a scalar graph, named after the node's
        inputs they read."""
        made = []
        for k, dtype in enumerate(dtypes, start=first):
            outer = outer_inputs[k] if k < len(outer_inputs) else None
            name = (repr(outer) if isinstance(outer, Constant) or (outer is not None
                                                                   and outer.name) else None)
            label = f"i{k}" + (f" = {name}" if name else "")
            info = [("input", label), ("dtype", dtype)]
            if outer is not None:
                info.append(("outer type", str(outer.type)))
                if shape_text(outer):
                    info.append(("outer shape", shape_text(outer)))
            kind = ("constant" if isinstance(outer, Constant) else
                    "shared" if isinstance(outer, SharedVariable) else "input")
            made.append(Node(next(self.ids), kind, short(label, self.size), info))
        g.nodes.extend(made)
        return made

    def _scalar_steps(self, g: Graph, sg: ScalarGraph, refs: list[Node]) -> list[Node]:
        """The rows of ``sg`` applied to ``refs`` (its inputs' nodes); returns the nodes of
        its outputs."""
        refs = list(refs)
        n_in = len(sg.in_dtypes)
        for k, (sop, operands) in enumerate(sg.steps):
            step = Node(next(self.ids), "op", short(sop.name, self.size),
                        [("scalar op", str(sop)), ("step", f"t{k}"),
                         ("dtype", sg.ref_dtypes[n_in + k])])
            g.nodes.append(step)
            for j, r in enumerate(operands):
                g.edges.append(Edge(refs[r].id, step.id, j, len(operands), sg.ref_dtypes[r]))
            refs.append(step)
        return [refs[r] for r in sg.outputs]


def _loop_labels(node: Apply, ins: list[Variable], outs: list[Variable]
                 ) -> tuple[dict[Variable, str], list[str]]:
    """Names for a loop body's inputs and outputs: with a Scan's layout (``op.spec``: the
    sequences' rows, each fed-back output's taps, shared values, non-sequences), what each
    one is for; otherwise the variables' own names."""
    out_labels = [o.name or f"out {j}" for j, o in enumerate(outs)]
    spec, labels = getattr(node.op, "spec", None), getattr(node.op, "labels", None)
    fields = ("n_seqs", "outputs", "n_shared", "n_nonseqs")
    if spec is None or labels is None or not all(hasattr(spec, f) for f in fields):
        return {}, out_labels

    def outer(k: int) -> str:  # the outer node's input k (after n_steps), by name
        var = node.inputs[1 + k] if 1 + k < len(node.inputs) else None
        return var.name if var is not None and var.name else ""

    names: list[str] = []
    for k in range(spec.n_seqs):
        names.append(f"{outer(k) or f'sequence {k}'}[t]")
    fed = [(j, taps) for j, taps in enumerate(spec.outputs) if taps is not None]
    for j, taps in fed:
        names += [f"{labels[j]}[t{tap:+d}]" for tap in taps]
    first = spec.n_seqs + len(fed)
    names += [outer(first + k) or f"shared {k}" for k in range(spec.n_shared)]
    first += spec.n_shared
    names += [outer(first + k) or f"non-sequence {k}" for k in range(spec.n_nonseqs)]
    if len(names) != len(ins):
        return {}, out_labels
    in_labels = {v: (v.name if v.name and k < spec.n_seqs else name)
                 for k, (v, name) in enumerate(zip(ins, names))}
    out_names = [f"{label}[t]" for label in labels]
    out_names += [f"{outer(spec.n_seqs + len(fed) + k) or f'shared {k}'} (update)"
                  for k in range(spec.n_shared)]
    out_names += ["until"] if getattr(spec, "as_while", False) else []
    return in_labels, out_names if len(out_names) == len(outs) else out_labels


def graph_of(obj: Any, profile: Any = None, max_label_size: int = 0) -> Graph:
    """The picture's model of a compiled function (the graph that runs, its updates drawn as
    outputs named after the shared variable), a variable, an Apply node or a list of
    variables. ``profile`` (default: the function's ``profile`` when it has one) gives per-node
    times; ``max_label_size`` cuts the labels (the hover text stays whole)."""
    if profile is None:
        profile = getattr(obj, "profile", None)
    builder = _Builder(node_seconds(profile), max_label_size)
    maker = getattr(obj, "maker", None)
    if maker is not None:
        fgraph = maker.fgraph
        n_out = getattr(obj, "n_outputs", len(fgraph.outputs))
        labels = [o.name or f"out {k}" if n_out > 1 else (o.name or "output")
                  for k, o in enumerate(fgraph.outputs[:n_out])]
        updated = [var for var, _ in getattr(obj, "updates", None) or ()]
        labels += [f"{getattr(v, 'name', None) or v} (update)" for v in updated]
        labels += [f"input {k} (update)" for k in range(len(fgraph.outputs) - len(labels))]
        return builder.graph(getattr(obj, "name", None) or "function", fgraph.outputs,
                             fgraph.inputs, labels)
    if isinstance(obj, Apply):
        outputs = list(obj.outputs)
    elif isinstance(obj, (list, tuple)):
        outputs = [o.outputs[0] if isinstance(o, Apply) else o for o in obj]
    elif isinstance(obj, Variable):
        outputs = [obj]
    else:
        raise TypeError(f"a graph picture is made of a compiled function, a variable or a "
                        f"list of variables; got {type(obj).__name__}")
    return builder.graph("graph", outputs)
