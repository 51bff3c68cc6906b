"""``In`` and ``Out``: how a function's arguments and results are passed (Theano's compile.io)."""
from __future__ import annotations

from typing import Any

from ..symbolic.graph import Variable

_NO_VALUE = object()


class In:
    """A function input with options: a default ``value``, a keyword ``name``, ``borrow``.

    ``In(x, value=1.5)`` makes the argument optional; ``f(x=2.0)`` passes it by name.
    """

    def __init__(self, variable: Variable, name: str | None = None, value: Any = _NO_VALUE,
                 update=None, mutable: bool = False, strict: bool = False,
                 allow_downcast: bool | None = None, autoname: bool = True,
                 implicit: bool = False, borrow: bool = False, shared: bool = False):
        if not isinstance(variable, Variable):
            raise TypeError(f"In() takes a symbolic variable, got {type(variable).__name__}")
        self.variable = variable
        self.name = name if name is not None else (variable.name if autoname else None)
        self.value = value
        self.update = update
        self.mutable = mutable
        self.strict = strict
        self.allow_downcast = allow_downcast
        self.implicit = implicit
        self.borrow = borrow

    @property
    def has_default(self) -> bool:
        return self.value is not _NO_VALUE

    def __repr__(self) -> str:
        return f"In({self.variable!r})"


class Out:
    """A function output; ``borrow=True`` lets the result alias internal storage."""

    def __init__(self, variable: Variable, borrow: bool = False):
        self.variable = variable
        self.borrow = borrow

    def __repr__(self) -> str:
        return f"Out({self.variable!r})"
