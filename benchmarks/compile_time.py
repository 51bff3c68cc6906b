"""Compile time against graph size: ``python -m benchmarks --compile-table``.

The graph is a chain of layers ``h = tanh(dot(h, W) * c_k + x)``, each layer four nodes (a dot
and three elementwise ops; ``c_k`` differs per layer so merging cannot shrink the chain), sized
to about 10, 100, 1,000 and 10,000 nodes. For each size: the time ``function()`` takes on the
graph, and on the graph with its gradient with respect to the shared ``W`` (building the
gradient timed apart), and the node count after rewriting. PyTensor gets the same graphs where
it is installed. One sample per cell at 10,000 nodes, the best of a few below: compile time is
paid once, so its spread matters less than its growth.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

import numpy as np

SIZES = (10, 100, 1000, 10000)
NODES_PER_LAYER = 4
WIDTH = 8


def _chain(lib, n_nodes: int):
    """(x, W, h): the chain of about ``n_nodes`` nodes in ``lib`` (theon or pytensor)."""
    T = lib.tensor
    x = T.matrix("x")
    W = lib.shared(np.random.default_rng(0).normal(size=(WIDTH, WIDTH)) / WIDTH, name="W")
    h = x
    for k in range(max(1, n_nodes // NODES_PER_LAYER)):
        c = np.full((1, 1), 1.0 + k / n_nodes)  # 2-d: no DimShuffle node to broadcast it
        h = T.tanh(T.dot(h, W) * c + x)
    return x, W, h


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(lib, n_nodes: int, repeat: int) -> dict[str, float]:
    """Seconds to compile the chain, to build its gradient, to compile both; node counts."""
    x, W, h = _chain(lib, n_nodes)
    cost = h.sum()
    row: dict[str, float] = {}
    row["compile"] = _best(lambda: lib.function([x], h), repeat)
    row["grad"] = _best(lambda: lib.grad(cost, W), repeat)
    g = lib.grad(cost, W)
    holder = {}

    def compile_with_grad():
        holder["f"] = lib.function([x], [cost, g])
    row["compile_grad"] = _best(compile_with_grad, repeat)
    row["nodes"] = _count(lib, [h])
    row["nodes_grad"] = _count(lib, [cost, g])
    row["nodes_grad_after"] = _compiled_size(holder["f"])
    return row


def _count(lib, outputs) -> int:
    seen, stack, n = set(), list(outputs), 0
    while stack:
        v = stack.pop()
        node = v.owner
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        n += 1
        stack.extend(node.inputs)
    return n


def _compiled_size(f) -> int:
    fgraph = f.maker.fgraph
    nodes = getattr(fgraph, "apply_nodes", None) or getattr(fgraph, "nodes", None)
    return len(nodes)


def _libraries() -> list[tuple]:
    import theon
    libs = [("theon", theon)]
    try:
        import pytensor
        libs.append(("pytensor", pytensor))
    except ImportError:
        pass
    return libs


def compile_table(sizes: Sequence[int] = SIZES, out: TextIO | None = None) -> list[dict]:
    """Measure every size with every installed library and print the table."""
    import sys
    out = out or sys.stdout
    rows = []
    for name, lib in _libraries():
        for n in sizes:
            repeat = 1 if n >= 10000 else 3
            try:
                row = measure(lib, n, repeat)
            except Exception as err:  # noqa: BLE001 - theon must work; the others may not
                if name == "theon":
                    raise
                print(f"{name} at {n} nodes failed: {type(err).__name__}: "
                      f"{str(err).splitlines()[0][:120] if str(err) else ''}", file=out)
                continue
            row.update(lib=name, size=n)
            rows.append(row)
    header = ["library", "nodes", "compile", "+grad nodes", "build grad", "compile +grad",
              "after rewrites", "compile +grad per node"]
    lines = [header]
    for r in rows:
        lines.append([r["lib"], str(r["nodes"]), _ms(r["compile"]), str(r["nodes_grad"]),
                      _ms(r["grad"]), _ms(r["compile_grad"]), str(r["nodes_grad_after"]),
                      f"{r['compile_grad'] / r['nodes_grad'] * 1e6:.0f} us"])
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    print("compile time (function() wall time, best of 3; 1 sample at 10,000 nodes) of a chain "
          f"h = tanh(dot(h, W) * c_k + x), {WIDTH}x{WIDTH}, and with T.grad(h.sum(), W):",
          file=out)
    for k, line in enumerate(lines):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in
                        enumerate(zip(line, widths))), file=out)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=out)
    return rows


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"
