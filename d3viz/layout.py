"""A layered (top to bottom) drawing of a DAG, computed in Python so that the HTML needs no
layout library: each node one layer below its deepest input, then moved down to just above
its first reader; edges spanning several layers pass through waypoints that take part in the
ordering, so they bend around boxes instead of crossing them; the order in each layer is
improved by barycenter sweeps, then x positions relax towards the neighbours' mean.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

LAYER_GAP = 44.0   # vertical space between layers, for the edges
NODE_GAP = 18.0    # horizontal space between neighbours in a layer
MARGIN = 12.0
SWEEPS = 6         # barycenter sweeps (each one down and one up)
BIG = 3000         # above this many nodes and waypoints, fewer sweeps: a picture, not a proof


@dataclass
class Layout:
    """Centres of the nodes, each edge's points (source bottom, waypoints, target top), and
    the size of the whole."""

    centers: dict[str, tuple[float, float]]
    routes: list[list[tuple[float, float]]]
    width: float
    height: float


def layered(ids: Sequence[str], edges: Sequence[tuple[str, str]],
            sizes: Mapping[str, tuple[float, float]]) -> Layout:
    """Lay out nodes ``ids`` (each of ``sizes[id] = (width, height)``) joined by ``edges``
    (source, target) of an acyclic graph; the order of ``ids`` is the first order of each
    layer."""
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for s, t in edges:
        preds[t].append(s)
        succs[s].append(t)
    dag = nx.DiGraph()
    dag.add_nodes_from(ids)
    dag.add_edges_from(edges)
    order = list(nx.topological_sort(dag))
    layer: dict[str, int] = {}
    for n in order:
        layer[n] = 1 + max((layer[p] for p in preds[n]), default=-1)
    # then each node as low as its readers allow: a side branch (a constant broadcast for a
    # node deep down) sits just above its first reader instead of at the top, with an edge
    # across the whole drawing
    for n in reversed(order):
        if succs[n]:
            layer[n] = min(layer[s] for s in succs[n]) - 1

    # waypoints: one virtual node per layer crossed
    size = dict(sizes)
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    chains: list[list[str]] = []
    for k, (s, t) in enumerate(edges):
        chain = [s]
        for lay in range(layer[s] + 1, layer[t]):
            w = f"\0{k}.{lay}"
            layer[w], size[w] = lay, (2.0, 0.0)
            chain.append(w)
        chain.append(t)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain)

    n_layers = 1 + max(layer.values(), default=0)
    rows: list[list[str]] = [[] for _ in range(n_layers)]
    for n in ids:
        rows[layer[n]].append(n)
    for chain in chains:
        for w in chain[1:-1]:
            rows[layer[w]].append(w)

    pos = {n: float(i) for row in rows for i, n in enumerate(row)}
    sweeps = SWEEPS if len(layer) <= BIG else 2
    # barycenter sweeps can undo a better order: the order with the fewest crossings is kept
    best, fewest = [list(row) for row in rows], _crossings(rows, down, pos)
    for _ in range(sweeps):
        for row in rows[1:]:
            _reorder(row, up, pos)
        for row in reversed(rows[:-1]):
            _reorder(row, down, pos)
        count = _crossings(rows, down, pos)
        if count < fewest:
            best, fewest = [list(row) for row in rows], count
        if not count:
            break
    rows = best
    pos = {n: float(i) for row in rows for i, n in enumerate(row)}

    # x: packed left to right, then moved towards the neighbours' mean, keeping the order
    x: dict[str, float] = {}
    for row in rows:
        cursor = 0.0
        for n in row:
            w = size[n][0]
            x[n] = cursor + w / 2
            cursor += w + NODE_GAP
    for sweep in range(2 * sweeps):
        order = rows[1:] if sweep % 2 == 0 else list(reversed(rows[:-1]))
        near = up if sweep % 2 == 0 else down
        for row in order:
            _relax(row, near, x, size)
    left = min((x[n] - size[n][0] / 2 for n in x), default=0.0)
    for n in x:
        x[n] += MARGIN - left

    tops, y = [], MARGIN
    for row in rows:
        tops.append(y)
        y += max((size[n][1] for n in row), default=0.0) + LAYER_GAP
    height = y - LAYER_GAP + MARGIN
    centers = {}
    for lay, row in enumerate(rows):
        full = max((size[n][1] for n in row), default=0.0)
        for n in row:
            centers[n] = (x[n], tops[lay] + full / 2)
    width = max((x[n] + size[n][0] / 2 for n in x), default=0.0) + MARGIN

    routes = []
    for chain in chains:
        s, t = chain[0], chain[-1]
        pts = [(centers[s][0], centers[s][1] + size[s][1] / 2)]
        pts += [centers[w] for w in chain[1:-1]]
        pts.append((centers[t][0], centers[t][1] - size[t][1] / 2))
        routes.append(pts)
    return Layout({n: centers[n] for n in ids}, routes, width, height)


def _crossings(rows: list[list[str]], down: Mapping[str, list[str]],
               pos: Mapping[str, float]) -> int:
    """Edge crossings between adjacent layers: inversions of the targets' positions when the
    edges are sorted by their sources'."""
    total = 0
    for row in rows[:-1]:
        ends = sorted((pos[a], pos[b]) for a in row for b in down.get(a, ()))
        seen: list[float] = []
        for _, b in ends:
            k = bisect.bisect_right(seen, b)
            total += len(seen) - k
            seen.insert(k, b)
    return total


def _reorder(row: list[str], near: Mapping[str, list[str]], pos: dict[str, float]) -> None:
    """Sort a layer by the mean position of each node's neighbours in the adjacent layer (a
    node without any keeps its place)."""
    keys = {}
    for i, n in enumerate(row):
        others = near.get(n)
        keys[n] = (sum(pos[o] for o in others) / len(others)) if others else pos[n]
        keys[n] = (keys[n], i)
    row.sort(key=keys.__getitem__)
    for i, n in enumerate(row):
        pos[n] = float(i)


def _relax(row: list[str], near: Mapping[str, list[str]], x: dict[str, float],
           size: Mapping[str, tuple[float, float]]) -> None:
    """Move each node of a layer towards the mean x of its neighbours, keeping the order and
    the gaps: the wanted positions pushed apart left to right and right to left, averaged."""
    want = []
    for n in row:
        others = near.get(n)
        want.append(sum(x[o] for o in others) / len(others) if others else x[n])
    half = [size[n][0] / 2 for n in row]
    right, cursor = [], float("-inf")
    for w, h in zip(want, half):
        cursor = max(w, cursor + h)
        right.append(cursor)
        cursor += h + NODE_GAP
    left, cursor = [0.0] * len(row), float("inf")
    for i in reversed(range(len(row))):
        cursor = min(want[i], cursor - half[i])
        left[i] = cursor
        cursor -= half[i] + NODE_GAP
    for i, n in enumerate(row):
        x[n] = (right[i] + left[i]) / 2  # both keep the gaps, so their mean does
