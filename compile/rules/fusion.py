"""The fusion pass: connected elementwise nodes become one ``Fused`` node (ops/fused.py).

Runs last in FAST_RUN, before the final merge, once every other rewrite has settled the graph.
From the outputs back, each elementwise node not yet taken starts a cluster, which takes the
elementwise node producing one of its inputs when every client of that input is already in
the cluster: the intermediate is then needed by nobody else, so it never has to reach memory,
and the cluster stays convex (no path leaves it and comes back, which would make a cycle). A
variable read outside the cluster stays an input of it, computed by its own node: recomputing
it inside would cost more than the memory pass it saves in the common cases (a layer's
activation read by the next layer and by the gradient).

A reduction whose input is made by a fused node or a lone elementwise node that nobody else
reads (not an output either) then takes that work as its prologue: one ``FusedReduce`` node
(ops/fused_reduce.py), which a kernel computes reading the inputs once, without writing the
elementwise result to memory. The DimShuffle that ``keepdims`` adds stays outside.

For a device (``config.device`` names one), elementwise work on a reduction's result alone
(``sum(g, axis=0)`` read only by ``b - lr * it``; a mean's division) then becomes the
reduction's epilogue: the kernel writing each result computes it there. A GPU saves a launch
per such pair (4 us, where the work is a few hundred elements); a CPU saves nothing, so the
CPU's graph keeps the pair.

Every Elemwise input has the output's rank, so a cluster's nodes all have one rank. A node
whose result is broadcast where the cluster's output is not (``exp(b)`` for a row ``b`` in
``x * exp(b)``) stays out of the cluster: a fused loop would compute it again for every element
of the output (6.6x the time of the unfused graph for ``x * tanh(exp(sin(b)))`` on a
2000 x 2000 ``x``), where apart it is computed once per element of its own, and read with a
zero stride.
"""
from __future__ import annotations

from ...backends.dialect import DTYPES as DIALECT_DTYPES
from ...config import config
from ...ops import scalar as S
from ...ops.blas import Dot, DotAdd
from ...ops.elemwise import ELEMWISE, Elemwise
from ...ops.fused import Fused, ScalarGraph
from ...ops.fused_reduce import FusedReduce
from ...ops.reduce import Reduce
from ...symbolic.graph import Apply, Variable
from ..fgraph import FunctionGraph
from ..rewrite import PASSES

# The most distinct inputs one fused node reads: each is a pointer and a stride per dimension
# in the kernel's arguments, and a kernel reading more arrays than this is memory-bound anyway.
MAX_INPUTS = 32
# The most elementwise nodes one fused node holds: a longer chain becomes several kernels, so
# that each compiles in a fraction of a second (gcc's time grows faster than the kernel).
MAX_NODES = 128

# dtypes every kernel dialect has (no float16, no complex): other nodes stay unfused
KERNEL_DTYPES = frozenset(DIALECT_DTYPES)


def fusable(node: Apply) -> bool:
    """A plain Elemwise node (not a subclass with its own computation) on kernel dtypes, of a
    row with a C template (a numpy-only row, such as erfinv, stays a node of its own)."""
    return (type(node.op) is Elemwise and node.op.scalar_op.c is not None
            and all(v.dtype in KERNEL_DTYPES for v in node.inputs)
            and node.outputs[0].dtype in KERNEL_DTYPES)


def fuse(fgraph: FunctionGraph) -> None:
    """Replace each cluster of two or more connected elementwise nodes by one Fused node."""
    order = fgraph.toposort()
    if config.device != "cpu" and split_bias_products(fgraph):
        order = fgraph.toposort()
    position = {node: k for k, node in enumerate(order)}
    taken: set[Apply] = set()
    clients = fgraph.clients
    for root in reversed(order):
        if root in taken or not fusable(root) or root.outputs[0].ndim == 0:
            continue
        cluster = _grow(root, clients, taken, position)
        taken |= cluster
        if len(cluster) < 2:
            continue
        nodes = sorted(cluster, key=position.__getitem__)
        inputs, graph = _scalar_graph(nodes, root.outputs[0])
        if graph.ref_dtypes[len(inputs):] != tuple(n.outputs[0].dtype for n in nodes):
            continue  # a row's dtype rule reads floatX, changed since the graph was built
        new = Fused(graph)(*inputs)
        new.owner.tag = tuple(n.outputs[0].trace for n in nodes)  # for Fused.blame
        fgraph.replace(root.outputs[0], new, reason="fusion")
    fuse_reductions(fgraph)
    if config.device != "cpu":
        keep_prologues(fgraph)
        fuse_epilogues(fgraph)


def fuse_reductions(fgraph: FunctionGraph) -> None:
    """Give each reduction the elementwise work producing its input, where nobody else reads
    that input: the pair becomes one FusedReduce node."""
    clients = fgraph.clients
    order = fgraph.toposort()
    inside = set(order)
    for node in order:
        if type(node.op) is not Reduce or node.outputs[0].dtype not in KERNEL_DTYPES:
            continue
        (var,) = node.inputs
        producer = var.owner
        if producer is None or var.ndim == 0 or producer not in inside:
            # (not inside: an intermediate given as an input, read, not computed)
            continue
        if [c for c, _ in clients[var]] != [node]:
            continue  # read by others (or an output): it has to reach memory anyway
        if isinstance(producer.op, Fused) and len(producer.outputs) == 1:
            graph, traces = producer.op.graph, producer.tag
            traces = traces if isinstance(traces, tuple) else ()
        elif fusable(producer):
            graph = ScalarGraph.of_row(producer.op.scalar_op,
                                       tuple(v.dtype for v in producer.inputs))
            if graph.out_dtypes != (var.dtype,):
                continue  # the row's dtype rule reads floatX, changed since it was built
            traces = (var.trace,)
        else:
            continue
        op = node.op
        new = FusedReduce(graph, op.kind, op.axis, op.dtype, op.initial)(*producer.inputs)
        new.owner.tag = (*traces, node.outputs[0].trace)  # for the errors' lines
        fgraph.replace(node.outputs[0], new, reason="fusion")


def split_bias_products(fgraph: FunctionGraph) -> bool:
    """(A device.) ``DotAdd(a, b, c)`` with a broadcast addend (a bias) read only by
    elementwise nodes becomes ``dot(a, b) + c`` for each of them, which fusion takes into its
    kernel: the sum is computed where it is read (reading the product and the bias costs
    what reading the sum does) and never stored, and no launch adds it. (A CPU keeps the
    DotAdd: its BLAS call adds ``c`` as it writes the product.) Whether anything changed."""
    changed = False
    for node in fgraph.toposort():
        if type(node.op) is not DotAdd:
            continue
        out = node.outputs[0]
        a, b, c = node.inputs
        uses = fgraph.clients[out]
        if not any(c.type.broadcastable) or c.type.ndim != out.ndim or not uses or \
                any(u == "output" or not fusable(u) for u, _ in uses):
            continue
        product = Dot()(a, b)
        if product.type.dtype != out.dtype:
            continue
        product.trace = out.trace
        for reader in dict.fromkeys(u for u, _ in uses):
            total = ELEMWISE["add"](product, c)
            if total.type != out.type:
                break  # (the sum would not be the DotAdd's type: leave the rest)
            total.trace = out.trace
            new = reader.op(*[total if v is out else v for v in reader.inputs])
            new.trace = reader.outputs[0].trace
            fgraph.replace(reader.outputs[0], new, reason="fusion")
            changed = True
    return changed


def fuse_epilogues(fgraph: FunctionGraph) -> None:
    """Give each reduction the elementwise node (plain or fused) that alone reads its result,
    where that node's output has the result's shape: one FusedReduce node with an epilogue."""
    clients = fgraph.clients
    for node in fgraph.toposort():
        if len(node.outputs) != 1 or node.outputs[0].dtype not in KERNEL_DTYPES:
            continue
        if isinstance(node.op, Fused):
            graph, traces = node.op.graph, node.tag
            traces = traces if isinstance(traces, tuple) else ()
        elif fusable(node):
            graph = ScalarGraph.of_row(node.op.scalar_op, tuple(v.dtype for v in node.inputs))
            if graph.out_dtypes != (node.outputs[0].dtype,):
                continue  # the row's dtype rule reads floatX, changed since it was built
            traces = (node.outputs[0].trace,)
        else:
            continue
        reduced = next((v for v in node.inputs if _bare_reduction(v)), None)
        if reduced is None or node.outputs[0].type.broadcastable != reduced.type.broadcastable \
                or any(c != node for c, _ in clients[reduced]):
            continue
        red = reduced.owner
        if isinstance(red.op, FusedReduce):
            prologue, red_traces = red.op.graph, red.tag
            red_traces = red_traces if isinstance(red_traces, tuple) else ()
        else:
            prologue = ScalarGraph.of_row(S.identity, (red.inputs[0].dtype,))
            red_traces = (reduced.trace, reduced.trace)
        extras = list(dict.fromkeys(v for v in node.inputs if v is not reduced))
        where = {v: k + 1 for k, v in enumerate(extras)}
        epilogue = _reading(graph, [0 if v is reduced else where[v] for v in node.inputs],
                            (reduced.dtype, *(v.dtype for v in extras)))
        op = red.op
        keep = getattr(op, "keep", False)
        new = FusedReduce(prologue, op.kind, op.axis, op.dtype, op.initial, epilogue, keep)(
            *red.inputs, *extras)
        new = new if keep else [new]
        new[0].owner.tag = (*red_traces, *traces)  # for the errors' lines
        pairs = [(node.outputs[0], new[0])] + ([(red.outputs[1], new[1])] if keep else [])
        fgraph.replace_all(pairs, reason="fusion")


def keep_prologues(fgraph: FunctionGraph) -> None:
    """(A device.) A reduction of an elementwise node's result that others read too (a
    ReLU's gradient, summed for the bias and multiplied for the weights) takes that node as
    its prologue and outputs its value as well: one kernel reads the node's inputs, writes
    its result and folds it, where two would write it, then read it back."""
    clients = fgraph.clients
    for node in fgraph.toposort():
        if type(node.op) is not Reduce or not node.op.axis or \
                node.outputs[0].dtype not in KERNEL_DTYPES:
            continue
        (var,) = node.inputs
        producer = var.owner
        if producer is None or len(producer.outputs) != 1 or \
                [c for c, _ in clients[var]] == [node]:
            continue  # (read by the reduction alone: fuse_reductions took it already)
        if isinstance(producer.op, Fused):
            graph, traces = producer.op.graph, producer.tag
            traces = traces if isinstance(traces, tuple) else ()
        elif fusable(producer) and producer.outputs[0].ndim > 0:
            graph = ScalarGraph.of_row(producer.op.scalar_op,
                                       tuple(v.dtype for v in producer.inputs))
            traces = (var.trace,)
        else:
            continue
        if graph.out_dtypes != (var.dtype,):
            continue
        op = node.op
        total, value = FusedReduce(graph, op.kind, op.axis, op.dtype, op.initial,
                                   keep=True)(*producer.inputs)
        if value.type != var.type or total.type != node.outputs[0].type:
            continue
        total.owner.tag = (*traces, node.outputs[0].trace)
        fgraph.replace_all([(node.outputs[0], total), (var, value)], reason="fusion")


def _reading(graph: ScalarGraph, refs: list[int], in_dtypes: tuple[str, ...]) -> ScalarGraph:
    """``graph`` over other inputs: its input ``k`` is the new input ``refs[k]``."""
    n_old, n_new = len(graph.in_dtypes), len(in_dtypes)

    def ref(r: int) -> int:
        return refs[r] if r < n_old else r - n_old + n_new
    return ScalarGraph(in_dtypes, tuple((op, tuple(map(ref, rs))) for op, rs in graph.steps),
                       tuple(map(ref, graph.outputs)))


def _bare_reduction(v: Variable) -> bool:
    """``v`` is made by a reduction without an epilogue, which a kernel can end with one."""
    node = v.owner
    if node is None or node.outputs[0].dtype not in KERNEL_DTYPES:
        return False
    if node.outputs[0] is not v:
        return False  # (a kept prologue's value)
    if isinstance(node.op, FusedReduce):
        return node.op.epilogue is None
    return type(node.op) is Reduce and bool(node.op.axis) and \
        node.inputs[0].dtype in KERNEL_DTYPES


def _grow(root: Apply, clients, taken: set[Apply], position: dict) -> set[Apply]:
    cluster = {root}
    # an ordered set (a dict): which producers fit under MAX_INPUTS depends on the order they
    # are tried in, and a set of variables iterates in the order of their memory addresses, so
    # the same graph would fuse differently (and compile other kernels) from run to run
    inputs = dict.fromkeys(root.inputs)
    pattern = root.outputs[0].type.broadcastable
    grew = True
    while grew:  # until no producer qualifies: taking one can qualify another (a diamond)
        grew = False
        for var in list(inputs):
            node = var.owner
            if node is None or node in cluster or node in taken or node not in position \
                    or not fusable(node):  # not in position: an intermediate given as input
                continue
            if not all(c != "output" and c in cluster for c, _ in clients[var]):
                continue
            if var.type.broadcastable != pattern:
                # smaller than the cluster's output (exp of a row, times a matrix): inside,
                # it would be computed again for every row of the output; apart, once
                continue
            new_inputs = {v: None for v in inputs if v is not var}
            new_inputs.update(dict.fromkeys(node.inputs))
            if len(new_inputs) > MAX_INPUTS or len(cluster) >= MAX_NODES:
                continue
            cluster.add(node)
            inputs = new_inputs
            grew = True
    return cluster


def _scalar_graph(nodes: list[Apply], out: Variable) -> tuple[list[Variable], ScalarGraph]:
    """The cluster's external inputs (in order of first use) and its scalar graph."""
    made = {node.outputs[0] for node in nodes}
    inputs: list[Variable] = []
    ref: dict[Variable, int] = {}
    for node in nodes:
        for v in node.inputs:
            if v not in made and v not in ref:
                ref[v] = len(inputs)
                inputs.append(v)
    steps = []
    for node in nodes:
        refs = tuple(ref[v] for v in node.inputs)
        ref[node.outputs[0]] = len(inputs) + len(steps)
        steps.append((node.op.scalar_op, refs))
    graph = ScalarGraph(tuple(v.dtype for v in inputs), tuple(steps), (ref[out],))
    return inputs, graph


PASSES["fusion"] = fuse
