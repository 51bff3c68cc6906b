"""A toy second backend: the numpy backend with every thunk wrapped to count its calls.

Registered as linker ``'logging'`` from outside theon (no op or theon module knows it), to
show that function() goes through the backend registry and that a backend of its own can run
every op: ``THEON_TEST_BACKEND=logging python -m pytest tests/ops`` runs the op suite on it.
"""
from __future__ import annotations

from collections import Counter

from theon import backends
from theon.backends.numpy_backend import NumpyBackend


class LoggingBackend(NumpyBackend):
    """Counts the functions it builds and the node calls, per op class."""

    name = "logging"

    def __init__(self):
        self.built = 0
        self.calls: Counter = Counter()

    def thunk(self, node, inner=()):
        fn = super().thunk(node, inner)
        key = type(node.op).__name__
        calls = self.calls

        def logged(*args):
            calls[key] += 1
            return fn(*args)
        return logged

    def build(self, fgraph, plan):
        self.built += 1
        return super().build(fgraph, plan)


BACKEND = LoggingBackend()
backends.register("logging", BACKEND)
