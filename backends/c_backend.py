"""Linker ``'c'``: the numpy backend, with each elementwise node run by a generated C kernel.

The first slice of the C backend (issue 8): no fusion yet, so a kernel computes one Elemwise
node, rendered by ``backends/kernels.py`` and compiled through ``backends/ccompiler.py``. Every
other node, a row the C dialect cannot write for its dtypes, and any machine without a
compiler keep the numpy thunk. Shapes are checked before the kernel runs: a call whose inputs do
not broadcast as the node's types promise goes to the numpy thunk, which raises the error that
names the user's line.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..ops.elemwise import Elemwise
from ..symbolic.graph import Apply
from . import ccompiler, kernels, register
from .numpy_backend import NumpyBackend, thunk


class CBackend(NumpyBackend):
    """Generated C for Elemwise nodes, numpy for the rest."""

    name = "c"

    def __init__(self) -> None:
        self._kernels: dict[kernels.ScalarGraph, Callable | None] = {}

    def thunk(self, node: Apply, inner: Sequence[Callable] = ()) -> Callable:
        fallback = thunk(node, inner)
        op = node.op
        if not isinstance(op, Elemwise) or type(op).impl is not Elemwise.impl:
            return fallback
        graph = kernels.ScalarGraph.of_row(op.scalar_op, tuple(i.dtype for i in node.inputs))
        if graph.out_dtypes != (node.outputs[0].dtype,):
            return fallback
        fn = self._kernel(graph)
        if fn is None:
            return fallback
        patterns = [i.type.broadcastable for i in node.inputs]

        def run(*args):
            # a length-1 dimension broadcasts only where the type says so (Theano's rule);
            # anything else is the numpy thunk's to refuse, with the user's line
            shape = kernels.elemwise_shape(args, patterns)
            if shape is None:
                return fallback(*args)
            return kernels.launch(fn, graph, *args, shape=shape)[0]
        return run

    def _kernel(self, graph: kernels.ScalarGraph) -> Callable | None:
        # keyed by the whole graph, dtypes included: a row can give another dtype under
        # another floatX
        if graph not in self._kernels:
            name = "k_" + "_".join([graph.steps[0][0].name, *graph.in_dtypes])
            try:
                source = kernels.render(graph, name)
                lib = ccompiler.compile_library(source, name=name)
                restype, argtypes = kernels.c_signature()
                self._kernels[graph] = lib.function(name, restype, argtypes)
            except (ValueError, NotImplementedError, ccompiler.CompileError):
                self._kernels[graph] = None  # the numpy thunk computes it
        return self._kernels[graph]


register("c", CBackend())
