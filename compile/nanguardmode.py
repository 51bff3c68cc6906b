"""``NanGuardMode``: stop at the first node whose output holds a NaN, an inf or a huge value.

``function(..., mode=NanGuardMode())`` builds the function with a probe
(``numpy_backend.Plan.probe``) that checks every node's outputs after it ran (and the
function's arguments and shared values where a node reads them), and raises
``NanGuardError`` naming the node, the range of each of its inputs and the user's line that
built it. It runs on every backend built on the numpy backend's generated function (``py``,
``c``, ``cuda``): a value is checked through its own array methods (``min``/``max``), so a
device array is reduced on the device and only two numbers come back.

Fusion is left out of the mode's rewrites (the node named is then the operation that made the
value, not a cluster of them), and so is the memory plan (a node's inputs keep their values,
so that the message gives their ranges).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends.numpy_backend import NodeError
from ..symbolic.graph import Apply, Constant
from ..symbolic.trace import format_trace
from .mode import Mode

__all__ = ["NanGuardMode", "NanGuardError", "BIG"]

#: what ``big_is_error`` calls huge (Theano's threshold)
BIG = 1e10


class NanGuardError(NodeError, AssertionError):
    """A node made a NaN, an inf or a value over ``BIG`` in magnitude (an AssertionError, as
    Theano's NanGuardMode raised)."""


class NanGuardMode(Mode):
    """A Mode whose functions raise ``NanGuardError`` at the first node whose output holds a
    NaN (``nan_is_error``), an infinity (``inf_is_error``) or a value of magnitude over 1e10
    (``big_is_error``: floats only; integers are exact)."""

    def __init__(self, nan_is_error: bool = True, inf_is_error: bool = True,
                 big_is_error: bool = True, optimizer: str | None = "fast_run",
                 linker: str | None = None):
        super().__init__(linker=linker, optimizer=optimizer)
        self.nan_is_error = bool(nan_is_error)
        self.inf_is_error = bool(inf_is_error)
        self.big_is_error = bool(big_is_error)
        self._excluded = ("fusion",)

    @property
    def probe(self) -> Guard:
        return Guard(self.nan_is_error, self.inf_is_error, self.big_is_error)

    def __repr__(self) -> str:
        return (f"NanGuardMode(nan_is_error={self.nan_is_error}, inf_is_error="
                f"{self.inf_is_error}, big_is_error={self.big_is_error}, linker="
                f"{self.linker!r}, optimizer={self.optimizer!r})")


class Guard:
    """The probe of NanGuardMode: checks each node's outputs after it ran."""

    keeps_inputs = True

    def __init__(self, nan: bool, inf: bool, big: bool):
        self.nan, self.inf, self.big = nan, inf, big

    def wrap(self, node: Apply, fn: Callable, synchronize: Callable | None) -> Callable:
        n_out = len(node.outputs)
        # values that no node made (arguments, shared values) are checked where they are read
        roots = [i for i, v in enumerate(node.inputs)
                 if v.owner is None and not isinstance(v, Constant)]
        problem = self.problem

        def run(*args, **kw):
            for i in roots:
                what = problem(args[i])
                if what is not None:
                    raise NanGuardError(_message(node, f"input {i}", what, args))
            res = fn(*args, **kw)
            for k, value in enumerate(res if n_out > 1 else (res,)):
                what = problem(value)
                if what is not None:
                    raise NanGuardError(_message(node, f"output {k}", what, args))
            return res
        return run

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (None: nothing this guard looks for)."""
        if isinstance(value, np.generic):
            value = np.asarray(value)
        dtype = getattr(value, "dtype", None)
        if dtype is None or dtype.kind not in "fc" or not getattr(value, "size", 0) or \
                not hasattr(value, "min"):
            return None
        if dtype.kind == "c":
            value = abs(value)
        lo, hi = float(value.min()), float(value.max())  # NaN propagates through both
        if math.isnan(lo) or math.isnan(hi):
            if self.nan:
                return "a NaN"
            finite = value[value == value]  # the rest, for the other checks
            if not finite.size:
                return None
            lo, hi = float(finite.min()), float(finite.max())
        if self.inf and (math.isinf(lo) or math.isinf(hi)):
            return "an infinity"
        if self.big and max(abs(lo), abs(hi)) > BIG and not (math.isinf(lo) or math.isinf(hi)):
            return f"a value of magnitude over {BIG:g} (min {lo:.6g}, max {hi:.6g})"
        return None


def _range(value: Any) -> str:
    """dtype, shape, and for a numeric array its min and max (NaNs counted apart)."""
    if isinstance(value, np.generic):
        value = np.asarray(value)
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is None or shape is None:
        return type(value).__name__
    text = f"{dtype} array of shape {tuple(shape)}"
    if dtype.kind not in "biufc" or not getattr(value, "size", 0) or not hasattr(value, "min"):
        return text
    if dtype.kind == "c":
        return f"{text}, max |x| {float(abs(value).max()):.6g}"
    nan = int((value != value).sum()) if dtype.kind == "f" else 0
    if nan:
        value = value[value == value]
        if not value.size:
            return f"{text}, all NaN"
    return (f"{text}, min {float(value.min()):.6g}, max {float(value.max()):.6g}"
            + (f", {nan} NaN" if nan else ""))


def _message(node: Apply, where: str, what: str, args: tuple) -> str:
    parts = []
    for i, (inp, value) in enumerate(zip(node.inputs, args)):
        label = inp.name or (f"constant {inp!r}" if isinstance(inp, Constant) else f"input {i}")
        parts.append(f"    {label}: {_range(value)}")
    made = "" if where.startswith("output") else \
        " (a value no node made: an argument or a shared variable)"
    return (f"NanGuardMode: {what} in {where}{made} of {node.op}, the node created at "
            f"{format_trace(node.trace)}\n  its inputs:\n" + "\n".join(parts))
