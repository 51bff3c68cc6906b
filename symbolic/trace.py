"""Where in the user's code a variable was made, captured cheaply, and error formatting.

Only the innermost frame outside the theon package is kept (file, line, function): no full
traceback, so building a graph of 100,000 nodes stays fast. The source line is read lazily, when
an error message is written.
"""
from __future__ import annotations

import linecache
import os
import sys

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_TESTS_DIR = _PKG_DIR + "tests" + os.sep
_EXAMPLES = (_PKG_DIR + "examples" + os.sep, _PKG_DIR + "benchmarks" + os.sep)

Trace = tuple  # (filename, lineno, function name) or ()


_INTERNAL: dict = {}


def _is_internal(filename: str) -> bool:
    known = _INTERNAL.get(filename)
    if known is None:
        known = _INTERNAL[filename] = (filename.startswith(_PKG_DIR)
                                       and not filename.startswith(_TESTS_DIR)
                                       and not filename.startswith(_EXAMPLES))
    return known


_FIXED: list = []  # a stack of traces that user_trace() returns without walking the stack


class fixed:
    """Within ``with fixed(trace):`` new variables record ``trace`` without a stack walk.

    ``T.grad`` uses it with the line that called it, the line a walk would find anyway, at a
    fraction of the cost for the thousands of nodes a gradient makes."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    def __enter__(self) -> None:
        _FIXED.append(self.trace)

    def __exit__(self, *exc) -> None:
        _FIXED.pop()


def suspended() -> fixed:
    """Within ``with suspended():`` new variables record no trace. The rewrite engine uses it:
    what it builds gets the trace of what it replaces, and walking the stack for each of
    thousands of new nodes would only find the line calling function()."""
    return fixed(())


def user_trace() -> Trace:
    """Return (file, line, function) of the innermost caller outside theon itself."""
    if _FIXED:
        return _FIXED[-1]
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not _is_internal(code.co_filename):
            caller = frame.f_back
            # A user's Op: its make_node runs inside Op.__call__; the line that built the node
            # is the one that called the op, further out.
            if code.co_name in _OP_METHODS and caller is not None \
                    and _is_internal(caller.f_code.co_filename):
                frame = caller
                continue
            return (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return ()


_OP_METHODS = frozenset({"make_node"})


def format_trace(trace: Trace) -> str:
    """'file:line (in func): source' for a trace, or a placeholder when none was recorded."""
    if not trace:
        return "<unknown location>"
    filename, lineno, func = trace
    src = linecache.getline(filename, lineno).strip()
    where = f"{filename}:{lineno}"
    if func and func != "<module>":
        where += f" (in {func})"
    return f"{where}: {src}" if src else where


def describe(var) -> str:
    """A one-line description of a variable for error messages: name, type, and birthplace."""
    name = getattr(var, "name", None) or repr(var)
    return f"{name!s} ({var.type}) created at {format_trace(getattr(var, 'trace', ()))}"
