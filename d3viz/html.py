"""The graph as one self-contained HTML page: an SVG laid out in Python (layout.py), with a
small script of its own (no library, no network) for hovering, expanding fused kernels and
loops to their inner graphs, panning and zooming. Every inner graph is drawn in the page,
hidden, beside the node it belongs to; a click shows it. Without JavaScript the outer graph
still shows, and each node's hover text is its SVG ``<title>``.
"""
from __future__ import annotations

import json
import math
from html import escape

from .layout import layered
from .model import Graph, Node

# fill, border
COLORS = {
    "input": ("#a8e6a1", "#2f7d32"),
    "shared": ("#9fd8f0", "#1f6f99"),
    "constant": ("#e3e3e3", "#777777"),
    "op": ("#ffffff", "#555555"),
    "fused": ("#ffcc80", "#d46a00"),
    "loop": ("#d9b8f2", "#7b3fb0"),
    "output": ("#b9c7ff", "#3048b8"),
}
CAPTIONS = {"input": "input", "shared": "shared variable", "constant": "constant",
            "op": "op", "fused": "fused kernel (click)", "loop": "loop (click)",
            "output": "output / update"}
CHAR_W = 7.3      # width of a character of the 12px monospace font
BOX_H = 24.0
PAD = 9.0
INNER_GAP = 48.0  # between a node and its opened inner graph
FRAME = 10.0      # padding of an inner graph's frame
TITLE_H = 18.0


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s >= 1e-4 else f"{s * 1e6:.3g} us"


class _Drawing:
    def __init__(self, total: float, tmax: float):
        self.total, self.tmax = total, tmax
        self.counter = 0

    def size(self, node: Node) -> tuple[float, float]:
        w = len(node.label) * CHAR_W + 2 * PAD
        h = BOX_H
        if node.seconds is not None and self.tmax > 0:
            # the area grows with the time: the slow nodes are the big ones
            f = math.sqrt(node.seconds / self.tmax)
            w = max(w, len(self._time_text(node)) * CHAR_W + 2 * PAD) + 90 * f
            h = 2 * BOX_H - 8 + 36 * f
        return max(w, 36.0), h

    def _time_text(self, node: Node) -> str:
        share = f" {100 * node.seconds / self.total:.0f}%" if self.total > 0 else ""
        return _fmt_seconds(node.seconds) + share

    def graph(self, g: Graph, out: list[str]) -> tuple[float, float]:
        """Append the SVG of ``g`` (edges, nodes, then the hidden inner graphs) in its own
        coordinates; returns its width and height."""
        sizes = {n.id: self.size(n) for n in g.nodes}
        lay = layered([n.id for n in g.nodes], [(e.src, e.dst) for e in g.edges], sizes)
        for e, pts in zip(g.edges, lay.routes):
            where = f" -> input {e.index}" if e.n_inputs > 1 else ""
            out.append(f'<path class="edge" d="{_path(pts)}" marker-end="url(#arrow)">'
                       f"<title>{escape(e.info + where)}</title></path>")
        for n in g.nodes:
            cx, cy = lay.centers[n.id]
            w, h = sizes[n.id]
            out.append(self.node(n, cx, cy, w, h))
        for n in g.nodes:
            cx, cy = lay.centers[n.id]
            w, h = sizes[n.id]
            y = cy - h / 2
            for k, inner in enumerate(n.inner):
                gid = f"g{self.counter}"
                self.counter += 1
                x0 = cx + w / 2 + INNER_GAP
                out.append(f'<g class="inner" id="{gid}" data-owner="{n.id}" '
                           f'transform="translate({x0:.1f},{y:.1f})" display="none">')
                body: list[str] = []
                iw, ih = self.graph(inner, body)
                fw = max(iw, len(inner.title) * 6.6) + 2 * FRAME  # the title fits
                fh = ih + 2 * FRAME + TITLE_H
                out.append(f'<rect class="frame" x="0" y="0" width="{fw:.1f}" '
                           f'height="{fh:.1f}" rx="6"/>')
                out.append(f'<path class="link" d="M{-INNER_GAP:.1f},{h / 2 if k == 0 else 0:.1f}'
                           f' L0,{min(h / 2, fh / 2) if k == 0 else 12:.1f}"/>')
                out.append(f'<text class="gtitle" x="{FRAME:.1f}" y="{FRAME + 11:.1f}">'
                           f"{escape(inner.title)}</text>")
                out.append(f'<g transform="translate({FRAME:.1f},{FRAME + TITLE_H:.1f})">')
                out.extend(body)
                out.append("</g></g>")
                y += fh + 12
        return lay.width, lay.height

    def node(self, n: Node, cx: float, cy: float, w: float, h: float) -> str:
        fill, stroke = COLORS[n.kind]
        rx = h / 2 if n.kind in ("input", "shared", "constant", "output") else 4
        info = list(n.info)
        if n.seconds is not None:
            info.append(("time", self._time_text(n)))
        tip = "\n".join(f"{k}: {v}" for k, v in info)
        attrs = (f'class="node k-{n.kind}{" expandable" if n.inner else ""}" '
                 f'id="{n.id}" data-kind="{n.kind}" '
                 f"data-info='{escape(json.dumps(info), quote=True)}'")
        if n.seconds is not None:
            attrs += f' data-seconds="{n.seconds:.6g}"'
        parts = [f'<g {attrs} transform="translate({cx:.1f},{cy:.1f})">',
                 f"<title>{escape(tip)}</title>",
                 f'<rect x="{-w / 2:.1f}" y="{-h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" '
                 f'rx="{rx:.1f}" fill="{fill}" stroke="{stroke}"/>']
        if n.inner:  # a second border: there is more inside
            parts.append(f'<rect class="inset" x="{-w / 2 + 3:.1f}" y="{-h / 2 + 3:.1f}" '
                         f'width="{w - 6:.1f}" height="{h - 6:.1f}" rx="{max(rx - 2, 1):.1f}" '
                         f'fill="none" stroke="{stroke}"/>')
        if n.seconds is not None and self.tmax > 0:
            parts.append(f'<text y="-3">{escape(n.label)}</text>')
            parts.append(f'<text class="time" y="12">{escape(self._time_text(n))}</text>')
        else:
            parts.append(f'<text y="4">{escape(n.label)}</text>')
        parts.append("</g>")
        return "".join(parts)


def _path(pts: list[tuple[float, float]]) -> str:
    """Points joined by curves leaving and entering vertically."""
    d = [f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        m = (y1 - y0) / 2
        d.append(f"C{x0:.1f},{y0 + m:.1f} {x1:.1f},{y1 - m:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(d)


def render(g: Graph, title: str = "theon graph") -> str:
    """The HTML page of ``g``."""
    seconds = [n.seconds for _, n in g.walk() if n.seconds is not None]
    outer = [n.seconds for n in g.nodes if n.seconds is not None]
    drawing = _Drawing(sum(outer), max(seconds, default=0.0))
    body: list[str] = []
    width, height = drawing.graph(g, body)
    kinds = [k for k in COLORS if any(n.kind == k for _, n in g.walk())]
    legend = "".join(f'<span class="chip"><i style="background:{COLORS[k][0]};border-color:'
                     f'{COLORS[k][1]}"></i>{escape(CAPTIONS[k])}</span>' for k in kinds)
    n_ops = sum(n.apply is not None for n in g.nodes)
    stats = f"{n_ops} nodes"
    if outer:
        stats += (f"; profile: {_fmt_seconds(sum(outer))} in the nodes, boxes sized by "
                  "time")
    return _PAGE.format(
        title=escape(title), legend=legend, stats=escape(stats),
        w=f"{width:.0f}", h=f"{height:.0f}", body="\n".join(body), css=_CSS, js=_JS)


_CSS = """
body { margin: 0; font: 13px sans-serif; color: #222; display: flex; flex-direction: column;
       height: 100vh; }
header { padding: 6px 10px; border-bottom: 1px solid #ccc; background: #fafafa; }
header b { margin-right: 12px; }
header button { margin-left: 6px; font-size: 12px; }
.chip { margin-right: 10px; white-space: nowrap; }
.chip i { display: inline-block; width: 12px; height: 12px; border: 1px solid;
          border-radius: 3px; margin-right: 4px; vertical-align: -2px; }
#stats, #hint { color: #666; margin-left: 8px; }
svg#view { flex: 1; width: 100%; cursor: grab; background: #fff; }
.node text { font: 12px monospace; text-anchor: middle; pointer-events: none; }
.node text.time { fill: #8a3a00; font-weight: bold; }
.node rect { stroke-width: 1.2; }
.node:hover rect { stroke-width: 2.5; }
.expandable { cursor: pointer; }
.open > rect { stroke-dasharray: 4 2; }
.edge { fill: none; stroke: #888; stroke-width: 1.2; }
.edge:hover { stroke: #d00; stroke-width: 2.5; }
.frame { fill: #fdfcf6; stroke: #aa9; stroke-width: 1.2; }
.link { stroke: #aa9; stroke-dasharray: 4 3; fill: none; }
.gtitle { font: bold 11px sans-serif; fill: #665; }
#info { position: fixed; left: 8px; bottom: 8px; max-width: 70%; background: #fffffe;
        border: 1px solid #bbb; border-radius: 4px; padding: 6px 8px; font: 12px monospace;
        white-space: pre-wrap; display: none; box-shadow: 0 1px 4px #0003; }
"""

_JS = """
(function () {
  var svg = document.getElementById('view'), root = document.getElementById('root');
  var info = document.getElementById('info');
  var vb = svg.getAttribute('viewBox').split(' ').map(Number);
  function show() { svg.setAttribute('viewBox', vb.join(' ')); }
  function fit() {
    var b = root.getBBox();
    vb = [b.x - 10, b.y - 10, Math.max(b.width, 100) + 20, Math.max(b.height, 60) + 20];
    show();
  }
  function grow() {  // keep what was just opened in view
    var b = root.getBBox(), x1 = Math.min(vb[0], b.x - 10), y1 = Math.min(vb[1], b.y - 10);
    var x2 = Math.max(vb[0] + vb[2], b.x + b.width + 10);
    var y2 = Math.max(vb[1] + vb[3], b.y + b.height + 10);
    vb = [x1, y1, x2 - x1, y2 - y1]; show();
  }
  function toggle(node, open) {
    var groups = document.querySelectorAll('.inner[data-owner="' + node.id + '"]');
    if (open === undefined) open = !node.classList.contains('open');
    node.classList.toggle('open', open);
    groups.forEach(function (g) {
      if (open) { g.removeAttribute('display'); g.parentNode.appendChild(g); }
      else { g.setAttribute('display', 'none'); }
    });
  }
  function all(open) {
    document.querySelectorAll('.expandable').forEach(function (n) { toggle(n, open); });
    fit();
  }
  document.getElementById('fit').onclick = fit;
  document.getElementById('expand').onclick = function () { all(true); };
  document.getElementById('collapse').onclick = function () { all(false); };
  var drag = null, moved = false;
  svg.addEventListener('click', function (e) {
    if (moved) return;
    var node = e.target.closest('.expandable');
    if (node) { toggle(node); grow(); }
  });
  svg.addEventListener('mouseover', function (e) {
    var node = e.target.closest('.node');
    if (!node) return;
    var rows = JSON.parse(node.getAttribute('data-info'));
    info.textContent = rows.map(function (r) { return r[0] + ': ' + r[1]; }).join('\\n');
    info.style.display = 'block';
  });
  svg.addEventListener('mouseout', function (e) {
    if (e.target.closest('.node')) info.style.display = 'none';
  });
  function scale() { return vb[2] / svg.clientWidth; }
  svg.addEventListener('mousedown', function (e) {
    drag = [e.clientX, e.clientY, vb[0], vb[1]]; moved = false;
  });
  window.addEventListener('mousemove', function (e) {
    if (!drag) return;
    var dx = e.clientX - drag[0], dy = e.clientY - drag[1];
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    vb[0] = drag[2] - dx * scale(); vb[1] = drag[3] - dy * scale(); show();
  });
  window.addEventListener('mouseup', function () { drag = null; });
  svg.addEventListener('wheel', function (e) {
    e.preventDefault();
    var k = e.deltaY > 0 ? 1.15 : 1 / 1.15, r = svg.getBoundingClientRect(), s = scale();
    var px = vb[0] + (e.clientX - r.left) * s, py = vb[1] + (e.clientY - r.top) * s;
    vb = [px - (px - vb[0]) * k, py - (py - vb[1]) * k, vb[2] * k, vb[3] * k]; show();
  }, {passive: false});
  // a large graph fitted whole is unreadable: start at the top at a scale that can be read
  var fitScale = Math.min(svg.clientWidth / vb[2], svg.clientHeight / vb[3]);
  if (fitScale < 0.6) {
    var k = Math.max(Math.min(svg.clientWidth / vb[2], 1), 0.6);
    vb = [vb[0], vb[1], svg.clientWidth / k, svg.clientHeight / k]; show();
  }
  if (location.hash === '#expand-all') all(true);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header><b>{title}</b>{legend}<span id="stats">{stats}</span>
<span id="hint">drag: pan, wheel: zoom</span><button id="fit">fit</button>\
<button id="expand">expand all</button><button id="collapse">collapse all</button></header>
<svg id="view" viewBox="0 0 {w} {h}" preserveAspectRatio="xMidYMin meet">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"
 markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>
<g id="root">
{body}
</g>
</svg>
<div id="info"></div>
<script>{js}</script>
</body>
</html>
"""
