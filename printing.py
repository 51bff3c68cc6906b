"""Looking at graphs: ``debugprint`` (a tree with ids), ``pp``, and the ``Print`` op."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence

from .ops.base import Op, as_tensor_variable
from .symbolic.graph import Apply, Constant, Variable


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


def debugprint(obj: Any, file: Any = None, print_type: bool = False, depth: int = -1,
               ids: str = "CHAR", rewritten: bool = True) -> Optional[str]:
    """Print the graph of a variable, a list of variables, or a compiled function as a tree.

    Each node gets an id (``[id A]``); a node met again is shown by its id only. With
    ``file='str'`` the text is returned instead of printed. For a compiled function the graph
    shown is the one that runs; ``rewritten=False`` shows the graph as built, before rewriting.
    """
    if hasattr(obj, "maker"):
        maker = obj.maker
        outputs: Sequence[Variable] = (maker.fgraph.outputs if rewritten
                                       else maker.original_outputs)
    elif isinstance(obj, (list, tuple)):
        outputs = [o.outputs[0] if isinstance(o, Apply) else o for o in obj]
    elif isinstance(obj, Apply):
        outputs = obj.outputs
    else:
        outputs = [obj]
    names: Dict[Any, str] = {}
    gen = _ids()
    lines: List[str] = []
    expanded = set()
    for out in outputs:
        stack = [(out, 0)]
        while stack:
            var, level = stack.pop()
            node = var.owner
            key = node if node is not None else var
            if key not in names:
                names[key] = next(gen)
            if 0 <= depth <= level:  # Theano's depth: 1 prints the root alone
                continue
            label = _label(var, print_type)
            prefix = " |" * level
            out_idx = f".{var.index}" if node is not None and len(node.outputs) > 1 else ""
            lines.append(f"{prefix}{label}{out_idx} [id {names[key]}]"
                         f"{' ' + repr(var.name) if node is not None and var.name else ''}")
            if node is None or key in expanded:
                continue
            expanded.add(key)
            for inp in reversed(node.inputs):
                stack.append((inp, level + 1))
    text = "\n".join(lines) + "\n"
    if file == "str":
        return text
    (file or sys.stdout).write(text)
    return None


dprint = debugprint


def _label(var: Variable, print_type: bool) -> str:
    if var.owner is not None:
        label = str(var.owner.op)
    elif isinstance(var, Constant):
        label = repr(var)
    else:
        label = var.name or f"<{var.type}>"
    return f"{label} {var.type}" if print_type else label


def pp(var: Variable) -> str:
    """A one-line infix rendering of an expression (for reading, not for parsing)."""
    infix = {"add": "+", "sub": "-", "mul": "*", "true_div": "/", "int_div": "//", "pow": "**",
             "mod": "%"}
    rendered: Dict[Variable, str] = {}
    from .symbolic.graph import toposort
    for node in toposort([var]):
        args = [rendered.get(i) or (i.name or repr(i)) for i in node.inputs]
        name = getattr(getattr(node.op, "scalar_op", None), "name", None)
        if name in infix and len(args) == 2:
            text = f"({args[0]} {infix[name]} {args[1]})"
        elif name == "neg":
            text = f"-{args[0]}"
        else:
            text = f"{name or node.op}({', '.join(args)})"
        for out in node.outputs:
            rendered[out] = text
    return rendered.get(var) or var.name or repr(var)


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
