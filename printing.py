"""Looking at graphs: ``debugprint`` (a tree with ids), ``pp``, the ``Print`` op,
``kernel_plan`` (what a function compiled for a device launches and moves per call) and
``pydotprint`` (a picture drawn by graphviz)."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from .ops.base import Op, as_tensor_variable
from .symbolic.graph import Apply, Constant, Variable, toposort


def _ids():
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    n = 0
    while True:
        k, name = n, ""
        while True:
            name = letters[k % 26] + name
            k = k // 26 - 1
            if k < 0:
                break
        yield name
        n += 1


# A tree deeper than this is cut: the node at the cut is printed with a mark and its inputs
# follow as a tree of their own, so the indentation (and the output) of a chain of n nodes is
# linear in n, not quadratic.
MAX_INDENT = 64


def debugprint(obj: Any, file: Any = None, print_type: bool = False, depth: int = -1,
               ids: str = "CHAR", rewritten: bool = True) -> str | None:
    """Print the graph of a variable, a list of variables, or a compiled function as a tree.

    Each node gets an id (``[id A]``); a node met again is shown by its id only, so a shared
    subtree is printed once. A tree deeper than ``MAX_INDENT`` levels continues below as a
    tree of its own, rooted at the node marked ``(continued below)``. With ``file='str'`` the
    text is returned instead of printed. For a compiled function the graph shown is the one
    that runs; ``rewritten=False`` shows the graph as built, before rewriting.
    """
    host: set = set()
    if hasattr(obj, "maker"):
        maker = obj.maker
        # on a device, nodes with no device implementation run on the host between transfers
        host = set(getattr(getattr(obj, "fn", None), "host_ops", ()))
        outputs: Sequence[Variable] = (maker.fgraph.outputs if rewritten
                                       else maker.original_outputs)
    elif isinstance(obj, (list, tuple)):
        outputs = [o.outputs[0] if isinstance(o, Apply) else o for o in obj]
    elif isinstance(obj, Apply):
        outputs = obj.outputs
    else:
        outputs = [obj]
    names: dict[Any, str] = {}
    gen = _ids()
    lines: list[str] = []
    expanded = set()
    for out in outputs:
        # (variable, level from the output, first level of its tree): a tree cut at
        # MAX_INDENT continues here, after the part it was cut from, before the next output
        trees = deque([(out, 0, 0)])
        while trees:
            _print_tree(trees, names, gen, lines, expanded, print_type, depth, host)
    text = "\n".join(lines) + "\n"
    if file == "str":
        return text
    (file or sys.stdout).write(text)
    return None


dprint = debugprint


def kernel_plan(f: Any, *args: Any, file: Any = None) -> Any:
    """Print what one call of ``f`` (compiled with ``device=cuda``) on ``args`` launches and
    moves: each launch with its grid, block, bytes and flops, the host-device transfers, the
    bytes against the minimum, and a predicted time on an H200. The call's updates are undone.
    Returns the plan (``backends.cuda.plan.KernelPlan``); ``file='str'`` returns its text."""
    from .backends.cuda.plan import kernel_plan as record
    plan = record(f, *args)
    if file == "str":
        return str(plan)
    (file or sys.stdout).write(str(plan) + "\n")
    return plan


def _print_tree(trees: deque, names: dict[Any, str], gen, lines: list[str], expanded: set,
                print_type: bool, depth: int, host: set = frozenset()) -> None:
    """Print the first tree of ``trees``, queueing the subtrees cut at ``MAX_INDENT``."""
    stack = [trees.popleft()]
    if stack[0][2] and stack[0][0].owner in expanded:
        return  # a cut tree met again, shallower, before its turn: printed there
    while stack:
        var, level, base = stack.pop()
        node = var.owner
        key = node if node is not None else var
        if key not in names:
            names[key] = next(gen)
        if 0 <= depth <= level:  # Theano's depth: 1 prints the root alone
            continue
        label = _label(var, print_type)
        indent = level - base
        out_idx = f".{var.index}" if node is not None and len(node.outputs) > 1 else ""
        cut = (node is not None and key not in expanded and indent >= MAX_INDENT
               and node.inputs and not 0 <= depth <= level + 1)
        lines.append(f"{' |' * indent}{label}{out_idx} [id {names[key]}]"
                     f"{' ' + repr(var.name) if node is not None and var.name else ''}"
                     f"{' (continued below)' if cut else ''}"
                     f"{' (on the host: inputs and outputs transferred)' if node in host else ''}")
        if cut:
            trees.append((var, level, level))
            continue
        if node is None or key in expanded:
            continue
        expanded.add(key)
        for inp in reversed(node.inputs):
            stack.append((inp, level + 1, base))


def _label(var: Variable, print_type: bool) -> str:
    if var.owner is not None:
        label = str(var.owner.op)
    elif isinstance(var, Constant):
        label = repr(var)
    else:
        label = var.name or f"<{var.type}>"
    return f"{label} {var.type}" if print_type else label


_INFIX = {"add": "+", "sub": "-", "mul": "*", "true_div": "/", "int_div": "//", "pow": "**",
          "mod": "%"}


def pp(var: Variable) -> str:
    """An infix rendering of an expression (for reading, not for parsing).

    A subexpression used more than once is written once, as a temporary ``_1 = ...`` on a line
    of its own before the expression, and referred to by that name: written out at each use,
    a chain of shared steps (``y = y * 0.5 + sin(y)``) doubles the text at every level. Without
    sharing the result is the single line it always was."""
    nodes = toposort([var])
    uses: dict[Apply, int] = {}
    taken = set()
    for node in nodes:
        for v in node.inputs:
            taken.add(v.name)
            if v.owner is not None:
                uses[v.owner] = uses.get(v.owner, 0) + 1
        taken.update(o.name for o in node.outputs)
    temps = (f"_{k}" for k in itertools.count(1))
    named: dict[Apply, str] = {}
    # A node's text as a list of strings and of the nodes written inline there (used once):
    # expanded at the end with a stack, so no string is copied into its user's at every level.
    parts: dict[Apply, list[Any]] = {}
    for node in nodes:
        args: list[Any] = []
        for i in node.inputs:
            owner = i.owner
            if owner is None:
                args.append(i.name or repr(i))
            elif owner in named:
                multi = len(owner.outputs) > 1
                args.append(f"{named[owner]}[{i.index}]" if multi else named[owner])
            else:
                args.append(owner)
        parts[node] = _node_parts(node, args)
        if uses.get(node, 0) > 1:
            named[node] = next(t for t in temps if t not in taken)
    lines = [f"{name} = {_expand(parts[node], parts)}" for node, name in named.items()]
    if var.owner is None:
        lines.append(var.name or repr(var))
    else:
        lines.append(_expand(parts[var.owner], parts))
    return "\n".join(lines)


def _node_parts(node: Apply, args: list[Any]) -> list[Any]:
    name = getattr(getattr(node.op, "scalar_op", None), "name", None)
    if name in _INFIX and len(args) == 2:
        return ["(", args[0], f" {_INFIX[name]} ", args[1], ")"]
    if name == "neg":
        return ["-", args[0]]
    out: list[Any] = [f"{name or node.op}("]
    for k, a in enumerate(args):
        out += [", ", a] if k else [a]
    out.append(")")
    return out


def _expand(top: list[Any], parts: dict[Apply, list[Any]]) -> str:
    """Join ``top``, writing each node met in it out in full (iteratively: chains are deep)."""
    out: list[str] = []
    stack = [iter(top)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, str):
            out.append(item)
        else:
            stack.append(iter(parts[item]))
    return "".join(out)


pprint = pp  # Theano's name for the same printer


class Print(Op):
    """Identity that prints ``message`` and the value (or ``attrs`` of it) when computed."""

    __props__ = ("message", "attrs", "global_fn")  # two callbacks are two ops: no merging
    view_map = {0: [0]}
    foldable = False

    def __init__(self, message: str = "", attrs: Sequence[str] = ("__str__",),
                 global_fn=None):
        self.message = message
        self.attrs = tuple(attrs)
        self.global_fn = global_fn

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def impl(self, node):
        def run(value):
            if self.global_fn is not None:
                self.global_fn(self, value)
                return value
            for attr in self.attrs:
                got = getattr(value, attr)
                shown = got() if callable(got) else got
                print(f"{self.message} {attr} = {shown}")
            return value
        return run

    def infer_shape(self, fgraph, node, shapes):
        return shapes

    def grad(self, inputs, grads):
        return grads


# Graphviz formats pydotprint asks `dot` for; 'dot' is the DOT text itself, written here.
_DOT_FORMATS = {"png", "svg", "pdf", "ps", "jpg", "jpeg", "gif", "dot", "canon", "plain",
                "json", "xdot"}
# Theano's look: apply nodes as ellipses, variables as boxes (green inputs, blue outputs)
_DOT_STYLE = {"input": ("box", "#a8e6a1"), "shared": ("box", "#9fd8f0"),
              "constant": ("box", "#e3e3e3"), "op": ("ellipse", "#ffffff"),
              "fused": ("ellipse", "#ffcc80"), "loop": ("ellipse", "#d9b8f2"),
              "output": ("box", "#b9c7ff")}


def pydotprint(fct: Any, outfile: str | None = None, compact: bool = True,
               format: str | None = None, with_ids: bool = False,
               high_contrast: bool = True, colorCodes: dict | None = None,  # noqa: N803
               max_label_size: int = 70, scan_graphs: bool = False,
               print_output_file: bool = True, return_image: bool = False,
               profile: Any = None) -> str | bytes | None:
    """Draw the graph of ``fct`` (a compiled function, a variable or a list of variables)
    with graphviz, as Theano's ``pydotprint`` did: apply nodes as ellipses (fused kernels
    orange, loops purple), variables as boxes (inputs green, shared blue, constants grey,
    outputs and updates blue); a hover in an SVG shows each node's type, shape and line.

    The format is ``format``, else ``outfile``'s suffix (``.svg``, ``.png``, ``.pdf``,
    ``.dot``), else png. ``.dot`` writes the DOT text and needs nothing installed; the others
    run graphviz's ``dot`` program. ``compact=False`` draws every intermediate value as a box
    too; ``with_ids`` numbers the nodes; ``high_contrast=False`` colours borders instead of
    filling; ``colorCodes`` maps an op's class name to a fill colour; ``scan_graphs`` draws
    each loop's inner graph (and each fused kernel's element graph) in a frame beside it;
    ``profile`` (default: the function's) adds each node's time to its label. Returns the
    path written, or with ``return_image`` the image itself (bytes; text for ``dot``)."""
    from .config import config
    from .d3viz.model import graph_of

    if format is None:
        suffix = os.path.splitext(outfile)[1][1:].lower() if outfile else ""
        format = suffix if suffix in _DOT_FORMATS else "png"
    format = format.lower()
    if outfile is None:
        outfile = os.path.join(config.compiledir, f"theon.pydotprint.{format}")
    elif not os.path.splitext(outfile)[1]:
        outfile = f"{outfile}.{format}"
    graph = graph_of(fct, profile=profile, max_label_size=max_label_size)
    text = dot_text(graph, compact=compact, with_ids=with_ids, high_contrast=high_contrast,
                    color_codes=colorCodes, inner_graphs=scan_graphs)
    if format == "dot":
        image = text.encode()
    else:
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError(
                f"pydotprint needs graphviz's `dot` program to write {format!r}, and it is "
                "not on PATH. Install graphviz (Debian/Ubuntu: `apt-get install graphviz`; "
                "macOS: `brew install graphviz`; conda: `conda install graphviz`), or write "
                "the DOT text, which needs nothing: outfile='graph.dot'.")
        done = subprocess.run([dot, f"-T{format}"], input=text.encode(), capture_output=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"graphviz's dot failed (exit {done.returncode}) making "
                               f"{format!r}: {done.stderr.decode(errors='replace').strip()}")
        image = done.stdout
    if return_image:
        return text if format == "dot" else image
    folder = os.path.dirname(os.path.abspath(outfile))
    os.makedirs(folder, exist_ok=True)
    with open(outfile, "wb") as fh:
        fh.write(image)
    if print_output_file:
        print(f"The output file is available at {outfile}")
    return outfile


def _q(text: str) -> str:
    """A DOT quoted string (graphviz reads backslash escapes in labels: they are doubled)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_text(graph: Any, compact: bool = True, with_ids: bool = False,
             high_contrast: bool = True, color_codes: dict | None = None,
             inner_graphs: bool = False) -> str:
    """The DOT text of a picture's model (``d3viz.model.Graph``); see ``pydotprint``."""
    lines = ["digraph theon {",
             '  graph [rankdir=TB, compound=true, fontname="Helvetica", fontsize=11];',
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    colors = dict(color_codes or {})
    counter = itertools.count()

    def node_line(n: Any, indent: str) -> str:
        shape, fill = _DOT_STYLE[n.kind]
        if n.apply is not None and type(n.apply.op).__name__ in colors:
            fill = colors[type(n.apply.op).__name__]
        label = n.label
        if with_ids:
            label = f"{n.id[1:]} {label}"
        if n.seconds is not None:
            label += f"\n{n.seconds * 1e3:.3g} ms"
        style = (f'style="filled{",bold" if n.inner else ""}", fillcolor={_q(fill)}'
                 if high_contrast else f'color={_q(fill)}, penwidth=2')
        tip = "\n".join(f"{k}: {v}" for k, v in n.info)
        return (f"{indent}{n.id} [label={_q(label)}, shape={shape}, {style}, "
                f"tooltip={_q(tip)}];")

    def draw(g: Any, indent: str) -> None:
        values: dict = {}  # compact=False: one box per intermediate value
        for n in g.nodes:
            lines.append(node_line(n, indent))
        for e in g.edges:
            label = f", label={_q(str(e.index))}" if e.n_inputs > 1 else ""
            src = e.src
            if not compact and e.var is not None:
                key = (e.src, e.var)
                if key not in values:
                    values[key] = f"v{next(counter)}"
                    name = e.var.name or str(e.var.type)
                    lines.append(f"{indent}{values[key]} [label={_q(name)}, shape=box, "
                                 f"tooltip={_q(e.info)}];")
                    lines.append(f"{indent}{e.src} -> {values[key]};")
                src = values[key]
            lines.append(f"{indent}{src} -> {e.dst} [tooltip={_q(e.info)}{label}];")
        if not inner_graphs:
            return
        for n in g.nodes:
            for inner in n.inner:
                k = next(counter)
                lines.append(f"{indent}subgraph cluster_{k} {{")
                lines.append(f"{indent}  label={_q(inner.title)}; style=dashed; "
                             'color="#888888";')
                draw(inner, indent + "  ")
                lines.append(f"{indent}}}")
                if inner.nodes:
                    lines.append(f"{indent}{n.id} -> {inner.nodes[0].id} [lhead=cluster_{k}, "
                                 'style=dashed, arrowhead=none, color="#888888"];')

    draw(graph, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"
