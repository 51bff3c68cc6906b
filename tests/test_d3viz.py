"""d3viz: one self-contained HTML page per graph. The page's structure is checked always; where
Chromium is installed, a headless screenshot checks that it draws."""
import json
import os
import shutil
import struct
import subprocess
import types
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest
import theon as theano
import theon.d3viz as d3v
import theon.tensor as T
from theon import compat
from theon.d3viz.model import graph_of, node_seconds

PY = theano.Mode(linker="py")
HERE = os.path.abspath(__file__)
# where the pictured function's graph is built (the ``pictured`` fixture)
BUILT_IN = os.path.join(os.path.dirname(HERE), "conftest.py")


@pytest.fixture(scope="module")
def fn(pictured):
    return pictured


class _Page(HTMLParser):
    """The page's elements: nodes (class 'node'), inner graphs (class 'inner'), scripts and
    anything that would load another file."""

    def __init__(self):
        super().__init__()
        self.nodes, self.inner, self.external, self.scripts = [], [], [], 0
        self.stack = []  # (tag, attrs) of open elements
        self.rects = []  # (node attrs, rect attrs, inner-group ids it is inside)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "img", "iframe") and (a.get("src") or a.get("href")):
            self.external.append((tag, a))
        if tag == "script":
            self.scripts += 1
        classes = a.get("class", "").split()
        if "node" in classes:
            self.nodes.append(dict(a, within=[s[1].get("id") for s in self.stack
                                              if "inner" in s[1].get("class", "")]))
        if "inner" in classes:
            self.inner.append(a)
        if tag == "rect" and self.stack and "node" in self.stack[-1][1].get("class", ""):
            self.rects.append((self.stack[-1][1], a))
        if tag not in ("meta", "br", "input", "img", "link"):  # (elements with no end)
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break


@pytest.fixture(scope="module")
def page(fn, tmp_path_factory):
    f, _ = fn
    path = str(tmp_path_factory.mktemp("d3viz") / "graph.html")
    assert d3v.d3viz(f, path) == path
    text = open(path, encoding="utf-8").read()
    parsed = _Page()
    parsed.feed(text)
    return path, text, parsed


def test_one_self_contained_file(page):
    path, text, parsed = page
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert parsed.external == [] and "://" not in text and "@import" not in text
    assert parsed.scripts == 1 and "<svg" in text
    assert os.listdir(os.path.dirname(path)) == ["graph.html"]


def test_nodes_are_coloured_by_kind(page):
    kinds = {n["data-kind"] for n in page[2].nodes if not n["within"]}
    assert kinds == {"input", "shared", "constant", "op", "fused", "loop", "output"}
    for kind in kinds:
        assert f'data-kind="{kind}"' in page[1]
    labels = {n["id"]: json.loads(n["data-info"]) for n in page[2].nodes}
    assert any(["output", "W (update)"] in rows for rows in labels.values())


def test_fused_and_loop_nodes_expand_to_their_inner_graphs(page):
    parsed = page[2]
    outer = {n["id"]: n for n in parsed.nodes if not n["within"]}
    inner_of = {}
    for g in parsed.inner:
        inner_of.setdefault(g["data-owner"], []).append(g["id"])
        assert g["display"] == "none"  # hidden until clicked
    expandable = [n for n in outer.values() if "expandable" in n["class"]]
    assert {n["data-kind"] for n in expandable} == {"fused", "loop"}
    for n in expandable:
        assert n["id"] in inner_of
        inside = [m for m in parsed.nodes if inner_of[n["id"]][0] in m["within"]]
        ops = {json.loads(m["data-info"])[0][1] for m in inside if m["data-kind"] == "op"}
        if n["data-kind"] == "fused":  # rows of the scalar table
            assert any(op in ("tanh", "mul", "add") for op in ops), ops
        else:  # the loop body: tensor ops
            assert any("tanh" in op for op in ops), ops


def test_hover_shows_type_shape_and_the_users_line(page):
    infos = [dict(json.loads(n["data-info"])) for n in page[2].nodes
             if n["data-kind"] in ("fused", "loop") and not n["within"]]
    assert infos
    for info in infos:
        # (a node of two outputs, such as a device's sum that keeps its prologue's value,
        # shows "output 0", "shape 0", ...)
        outputs = [v for k, v in info.items() if k.split()[0] == "output"]
        assert outputs and all(o.startswith("TensorType(float64") for o in outputs)
        assert any(k.split()[0] == "shape" for k in info)
        assert info["line"].startswith(f"{BUILT_IN}:") and "(in pictured)" in info["line"]
    x = next(dict(json.loads(n["data-info"])) for n in page[2].nodes
             if n["data-kind"] == "input" and not n["within"])
    assert x["variable"] == "x" and x["shape"] == "(?, ?)"


def test_nodes_do_not_overlap(page):
    graphs = {}  # the boxes of each graph (the outer one, each inner one), in its coordinates
    for node, rect in page[2].rects:
        if "inset" in rect.get("class", ""):
            continue
        cx, cy = map(float, node["transform"][len("translate("):-1].split(","))
        x, y, w, h = (float(rect[k]) for k in ("x", "y", "width", "height"))
        within = [m["within"] for m in page[2].nodes if m["id"] == node["id"]][0]
        graphs.setdefault(tuple(within), []).append((cx + x, cy + y, cx + x + w, cy + y + h))
    assert len(graphs[()]) > 10 and len(graphs) == 1 + len(page[2].inner)
    for boxes in graphs.values():
        for i, a in enumerate(boxes):
            assert a[0] >= 0 and a[1] >= 0
            for b in boxes[i + 1:]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_a_profile_sizes_nodes_by_time(fn, tmp_path):
    f, _ = fn
    nodes = f.maker.fgraph.toposort()
    slow, fast = nodes[0], nodes[1]
    times = {slow: 0.004, fast: 0.0001}
    path = str(tmp_path / "p.html")
    d3v.d3viz(f, path, profile=times)
    parsed = _Page()
    parsed.feed(open(path).read())
    heights = {n["data-seconds"]: float(r["height"]) for n, r in parsed.rects
               if "data-seconds" in n and "inset" not in r.get("class", "")}
    assert set(heights) == {"0.004", "0.0001"}
    assert heights["0.004"] > 1.5 * heights["0.0001"]
    assert "boxes sized by time" in open(path).read()
    # Theano's ProfileStats keeps apply_time keyed by (fgraph, node); a function's own
    # profile is used when none is given
    stats = types.SimpleNamespace(apply_time={(f.maker.fgraph, slow): 0.5})
    assert node_seconds(stats) == {slow: 0.5}
    wrapped = types.SimpleNamespace(maker=f.maker, n_outputs=1, updates=f.updates,
                                    name=None, profile=times)
    seconds = {n.apply: n.seconds for _, n in graph_of(wrapped).walk() if n.apply}
    assert seconds[slow] == 0.004 and seconds[nodes[2]] is None
    with pytest.raises(TypeError, match="mapping node -> seconds"):
        node_seconds(object())


def test_a_variable_and_the_theano_name(fn, tmp_path):
    _, cost = fn
    path = d3v.d3viz(cost, str(tmp_path / "sub" / "v.html"))
    assert '"loop"' in open(path).read()  # the graph as built holds the scan too
    spec = compat._FINDER.find_spec("theano.d3viz")
    assert spec is not None and spec.name == "theano.d3viz"  # theano.d3viz.d3viz is this one


def _png_pixels(path):
    """The RGB pixels of an 8-bit PNG (what Chromium writes), decoded with zlib and numpy."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 8 + n])
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        pos += 12 + n
    w, h, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6), header
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), np.int64)
    prev = np.zeros(w * bpp, np.int64)
    for y in range(h):
        line, kind = raw[y, 1:].astype(np.int64), raw[y, 0]
        if kind == 0:
            cur = line
        elif kind == 1:  # sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            cur = (line + prev) & 255
        else:  # average, paeth: each byte needs the one decoded before it
            cur, up = line.tolist(), prev.tolist()
            for i in range(len(cur)):
                a = cur[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    cur[i] = (cur[i] + ((a + b) >> 1)) & 255
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else
                                        b if pb <= pc else c)) & 255
            cur = np.array(cur, np.int64)
        out[y], prev = cur, cur
    return out.reshape(h, w, bpp)[:, :, :3]


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_chromium_draws_the_page(page, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    # '#expand-all' opens every inner graph, so their drawing is checked too
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=800,600",
                    f"file://{page[0]}#expand-all"],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    pixels = _png_pixels(str(shot))
    assert pixels.shape == (600, 800, 3)
    colours = {tuple(c) for c in pixels.reshape(-1, 3)[::3]}
    assert len(colours) > 50  # text, edges and boxes, not a blank page
    for kind in ("fused", "loop", "input", "shared"):  # the kinds' fills are drawn
        fill = d3v.html.COLORS[kind][0]
        rgb = tuple(int(fill[k:k + 2], 16) for k in (1, 3, 5))
        assert rgb in colours, kind
    # the frame of an opened inner graph is drawn only by the page's script
    frame = (0xfd, 0xfc, 0xf6)
    assert frame in colours


def test_a_function_compiled_with_profile(tmp_path):
    x = T.matrix("x")
    try:
        f = theano.function([x], T.tanh(x.dot(x) * 2).sum(), mode=PY, profile=True)
    except TypeError as err:  # function() without profile=
        pytest.skip(f"function() takes no profile= here: {err}")
    f(np.ones((4, 4)))
    path = d3v.d3viz(f, str(tmp_path / "prof.html"))
    parsed = _Page()
    parsed.feed(open(path).read())
    timed = [n for n in parsed.nodes if "data-seconds" in n]
    assert timed and len(timed) == len(f.maker.fgraph.toposort())


def test_a_loop_body_names_its_inputs_and_outputs(fn):
    _, cost = fn
    loop = next(n for _, n in graph_of(cost).walk() if n.kind == "loop")
    body, = loop.inner
    names = {n.label for n in body.nodes if n.kind != "op"}
    assert {"x[t]", "output 0[t-1]", "output 0[t]"} <= names, names


def test_layout_keeps_side_branches_near_their_reader():
    from theon.d3viz.layout import layered
    chain = [f"c{k}" for k in range(8)]
    edges = list(zip(chain, chain[1:])) + [("root", "side"), ("side", "c7")]
    lay = layered(["root", "side"] + chain, edges, {n: (40.0, 20.0) for n in chain + [
        "root", "side"]})
    assert all(len(route) == 2 for route in lay.routes)  # no edge crosses a layer
    assert lay.centers["side"][1] == lay.centers["c6"][1]
    assert lay.centers["root"][1] == lay.centers["c5"][1]


def test_a_fused_reduction_shows_its_prologue_reduction_and_epilogue():
    from theon.ops import scalar as S
    from theon.ops.fused import ScalarGraph
    from theon.ops.fused_reduce import FusedReduce
    prologue = ScalarGraph(("float64",) * 2, ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
    epilogue = ScalarGraph(("float64",) * 3, ((S.mul, (0, 2)), (S.sub, (1, 3))), (4,))
    op = FusedReduce(prologue, "sum", (1,), "float64", epilogue=epilogue)
    x, c = T.matrix("x"), T.matrix("c")
    out = op(x, c, T.vector("b"), T.vector("w"))
    fused = next(n for _, n in graph_of(out).walk() if n.kind == "fused")
    element, = fused.inner
    by_id = {n.id: n for n in element.nodes}
    order = [n.label for n in element.nodes]
    assert order[:2] == ["i0 = x", "i1 = c"] and {"i2 = b", "i3 = w"} <= set(order)
    steps = [n.label for n in element.nodes if n.kind == "op"]
    assert steps == ["sub", "exp", "Sum{axis=[1]}", "mul", "sub"], steps
    reduced = next(n for n in element.nodes if n.label.startswith("Sum"))
    readers = [by_id[e.dst].label for e in element.edges if e.src == reduced.id]
    assert readers == ["mul"]  # the epilogue's input 0 is the reduced value
