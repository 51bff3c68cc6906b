"""The checking mode (Theano's DebugMode): run the rewritten and the original graph, compare.

When they disagree, every replacement recorded in ``fgraph.history`` is evaluated on the same
inputs, old against new, and the error names the first rule whose replacement changed a value.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..symbolic.shared import host_value


class RewriteMismatchError(AssertionError):
    """A rewrite changed the result of a function (raised by the checking mode)."""


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    a, b = np.asarray(host_value(a)), np.asarray(host_value(b))
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(a, b))


class CheckedFunction:
    """Calls the compiled function and a rewrite-free twin; raises on any difference."""

    def __init__(self, fast, reference, fgraph, explicit_inputs: Sequence, rtol: float = 1e-5,
                 atol: float = 1e-6):
        self.fast, self.reference = fast, reference
        self.fgraph = fgraph
        fgraph.check()  # the rewritten graph's own bookkeeping, before any value is compared
        self.explicit_inputs = list(explicit_inputs)
        self.rtol, self.atol = rtol, atol
        # Shared values are read before either call so both see the same state.
        self.maker = fast.maker
        self.name = fast.name

    def __reduce__(self):
        from .function import _rebuild_function
        return (_rebuild_function, (self._spec,))

    @property
    def source(self) -> str:
        """The generated source of the rewritten function (the one whose results are returned)."""
        return self.fast.source

    def __call__(self, *args, **kwargs):
        containers = [v.container for v in self.fgraph.inputs[len(self.explicit_inputs):]]
        before = [c[0] for c in containers]
        expected = self.reference(*args, **kwargs)
        # copies: the rewritten function may write its updates into the old values' buffers
        # (the in-place path is what is checked), and an update the reference passed through
        # unchanged is one of those old values
        ref_after = [copy.deepcopy(c[0]) for c in containers]
        for c, v in zip(containers, before):
            c[0] = v
        got = self.fast(*args, **kwargs)
        outs_ok = _all_close(got, expected, self.rtol, self.atol)
        upd_ok = all(_close(c[0], v, self.rtol, self.atol) for c, v in zip(containers, ref_after))
        if not (outs_ok and upd_ok):
            raise RewriteMismatchError(self._blame(args, kwargs))
        return got

    def _blame(self, args, kwargs) -> str:
        from .function import function
        from .mode import Mode
        pairs = [(name, old, new) for name, old, new in self.fgraph.history
                 if getattr(old.type, "ndim", None) is not None]
        if not pairs:
            return "the rewritten function disagrees with the original, but no rewrite was made"
        outs: list = [v for _, old, new in pairs for v in (old, new)]
        check = function(self.explicit_inputs, outs, mode=Mode(optimizer=None),
                         on_unused_input="ignore")
        values = check(*args, **kwargs)
        for k, (name, old, new) in enumerate(pairs):
            a, b = values[2 * k], values[2 * k + 1]
            if not _close(a, b, self.rtol, self.atol):
                from ..symbolic.trace import format_trace
                return (f"rewrite rule {name!r} changed a value: {old!r} gave "
                        f"{np.asarray(a)!r}, its replacement {new!r} gave {np.asarray(b)!r} "
                        f"(the node was made at {format_trace(old.trace)})")
        return "the rewritten function disagrees with the original (no single rule to blame)"


def _all_close(a, b, rtol, atol) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    return _close(a, b, rtol, atol)
