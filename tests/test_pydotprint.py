"""pydotprint: the DOT text is checked always; the pictures where graphviz's dot is installed."""
import os
import re
import shutil
import subprocess

import pytest
import theon.tensor as T
from theon.d3viz import d3write
from theon.printing import pydotprint

HERE = os.path.abspath(__file__)
BUILT_IN = os.path.join(os.path.dirname(HERE), "conftest.py")  # (the ``pictured`` fixture)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="graphviz's dot is not installed "
                                      "(Debian: apt-get install graphviz)")


@pytest.fixture(scope="module")
def fn(pictured):
    return pictured


@pytest.fixture(scope="module")
def dot(fn):
    return pydotprint(fn[0], format="dot", return_image=True)


def _nodes(text):
    """DOT node statements: id -> attribute text."""
    return dict(re.findall(r"^\s*(n\d+) \[(.*)\];$", text, re.M))


def test_dot_text_draws_every_node_by_kind(fn, dot):
    f, _ = fn
    assert dot.startswith("digraph theon {") and dot.rstrip().endswith("}")
    nodes = _nodes(dot)
    n_apply = len(f.maker.fgraph.toposort())
    ellipses = [a for a in nodes.values() if "shape=ellipse" in a]
    assert len(ellipses) == n_apply
    labels = {re.match(r'label="((?:[^"\\]|\\.)*)"', a).group(1): a for a in nodes.values()}
    assert "#a8e6a1" in labels["x"] and "shape=box" in labels["x"]  # an input
    assert "#9fd8f0" in labels["W"]  # shared
    assert "#b9c7ff" in labels["W (update)"] and "#b9c7ff" in labels["output"]
    assert any(k.startswith("Fused{") and "#ffcc80" in a for k, a in labels.items())
    assert any(k.startswith("Scan{") and "#d9b8f2" in a for k, a in labels.items())
    assert any("#e3e3e3" in a for a in nodes.values())  # a constant
    # one edge per input of each node and one per output
    n_edges = sum(len(n.inputs) for n in f.maker.fgraph.toposort())
    n_edges += len(f.maker.fgraph.outputs)
    assert len(re.findall(r"^\s*n\d+ -> n\d+ ", dot, re.M)) == n_edges
    # the hover text: type, shape and the user's line
    fused = next(a for k, a in labels.items() if k.startswith("Fused{"))
    assert "TensorType(float64, matrix)" in fused and "shape: (?, ?)" in fused
    assert f"line: {BUILT_IN}:" in fused


def test_keywords(fn, tmp_path):
    f, _ = fn
    loose = pydotprint(f, format="dot", return_image=True, compact=False, with_ids=True,
                       high_contrast=False, colorCodes={"Scan": "red"}, scan_graphs=True,
                       max_label_size=12)
    assert re.search(r"^\s*v\d+ \[label=", loose, re.M)  # values drawn as boxes
    assert "subgraph cluster_" in loose and "lhead=cluster_" in loose
    assert 'color="red"' in loose and "style=\"filled" not in loose
    assert all(len(re.match(r'label="(?:\d+ )?((?:[^"\\]|\\.)*)"', a).group(1)) <= 12
               for a in _nodes(loose).values())
    # the format from the suffix; .dot needs no program
    path = pydotprint(f, str(tmp_path / "g.dot"), print_output_file=False)
    assert path.endswith("g.dot") and open(path).read().startswith("digraph")
    assert d3write(f, str(tmp_path / "w.dot")).endswith("w.dot")
    # a variable (the graph as built) and a name that needs escaping
    v = T.vector('a "quoted" \\ name')
    text = pydotprint(T.exp(v) * 2, format="dot", return_image=True)
    assert 'label="a \\"quoted\\" \\\\ name"' in text
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tcanon"], input=text.encode(), capture_output=True)
        assert done.returncode == 0, done.stderr


def test_a_clear_error_without_dot(fn, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot there
    with pytest.raises(RuntimeError, match=r"`dot` program.*apt-get install graphviz"):
        pydotprint(fn[0], str(tmp_path / "g.png"))
    assert not (tmp_path / "g.png").exists()


@needs_dot
def test_svg_and_png(fn, tmp_path, capsys):
    f, _ = fn
    svg = pydotprint(f, str(tmp_path / "g.svg"))
    assert f"The output file is available at {svg}" in capsys.readouterr().out
    text = open(svg).read()
    assert "<svg" in text and text.count('class="node"') == len(_nodes(pydotprint(
        f, format="dot", return_image=True)))
    assert "Scan{scan_fn}" in text and "line: " in text  # labels and hover texts
    png = pydotprint(f, str(tmp_path / "g"), format="png", print_output_file=False)
    assert png.endswith("g.png")
    data = open(png, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert pydotprint(f, format="png", return_image=True)[:4] == b"\x89PNG"
