"""``x.transfer(target)`` (Theano's): the value of ``x``, asked to live on ``target``.

``'cpu'`` asks for host memory, a device name (``'cuda'``, ``'cudaN'``, ``'gpu'``, Theano's
``'dev0'``) for device memory. On the CPU it is the identity. With ``device=cuda`` a function
output made by ``transfer('cuda')`` stays on the device (a device array, as ``Out(x,
borrow=True)`` does), and one made by ``transfer('cpu')`` comes back as numpy, as every output
does by default.
"""
from __future__ import annotations

import re

from ..symbolic.graph import Apply
from .base import Op, as_tensor_variable, graph_error

_TARGET = re.compile(r"cpu|(cuda|gpu|dev)\d*")


class Transfer(Op):
    """The identity, with where its output should live (``target``)."""

    __props__ = ("target",)

    def __init__(self, target: str):
        if not isinstance(target, str) or not _TARGET.fullmatch(target):
            raise graph_error(f"transfer(target): the target must be 'cpu' or a device name "
                              f"('cuda', 'cudaN', 'gpu', 'devN'), got {target!r}", ValueError)
        self.target = target

    @property
    def to_device(self) -> bool:
        return self.target != "cpu"

    def __str__(self) -> str:
        return f"Transfer{{{self.target}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def impl(self, node):
        return lambda x: x

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, grads):
        return [grads[0]]

    def R_op(self, inputs, eval_points):
        return [eval_points[0]]


def transfer(x, target: str):
    """``x`` asked to live on ``target`` ('cpu' or a device name)."""
    return Transfer(target)(x)
