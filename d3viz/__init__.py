"""Theano's ``d3viz``: a compiled function's graph as one interactive HTML file.

    import theon.d3viz as d3v
    d3v.d3viz(f, "graph.html")

The file needs nothing else (no network, no library: the layout is computed here, the page's
script is its own). Nodes are coloured by kind (input, shared variable, constant, op, fused
kernel, loop, output); clicking a fused kernel or a loop opens its inner graph beside it;
hovering a node shows its type, static shape and the line of the user's code that made it; a
profile (``f.profile``, or ``profile=`` a mapping node -> seconds) sizes the nodes by time.
"""
from __future__ import annotations

import os
from typing import Any

from .html import render
from .model import Graph, graph_of

__all__ = ["d3viz", "d3write", "graph_of", "Graph"]


def d3viz(fct: Any, outfile: str, copy_deps: bool = True, profile: Any = None,
          max_label_size: int = 48, title: str | None = None) -> str:
    """Write the graph of ``fct`` (a compiled function, a variable or a list of variables) to
    ``outfile`` as a self-contained HTML page; returns the file's path. ``copy_deps`` is
    Theano's and has nothing to do: the page depends on no other file."""
    del copy_deps
    graph = graph_of(fct, profile=profile, max_label_size=max_label_size)
    text = render(graph, title or getattr(fct, "name", None) or graph.title)
    folder = os.path.dirname(os.path.abspath(outfile))
    os.makedirs(folder, exist_ok=True)
    with open(outfile, "w", encoding="utf-8") as fh:
        fh.write(text)
    return outfile


def d3write(fct: Any, path: str, *args: Any, **kwargs: Any) -> str:
    """Theano's ``d3write``: the graph of ``fct`` written as DOT text to ``path`` (the
    keywords are ``printing.pydotprint``'s)."""
    from ..printing import pydotprint
    kwargs.setdefault("print_output_file", False)
    return pydotprint(fct, path, *args, format="dot", **kwargs)
