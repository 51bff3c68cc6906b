"""What the op tests share: compile a graph, run it, and check the value against numpy's answer
and against the type the graph declared for it.

``tests/conftest.py`` loads this module and hands it out through fixtures: ``backend`` (the
linker the test compiles for) and ``run`` (a ``Runner`` on that backend). Test files take the
fixtures as arguments instead of importing this module: pytest runs with
``--import-mode=importlib``, under which a test file cannot import the modules beside it.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import theon

#: a tolerance: None compares exactly; a number is the rtol (and atol) of floats and complexes;
#: a mapping gives it by dtype name, "default" for the dtypes it does not name
Tolerance = None | float | Mapping[str, float]


def check_value(got: Any, out, expect: Any, rtol: Tolerance = None, *,
                atol: float | None = None, err_msg: str = "") -> None:
    """``got``, the value ``out`` took at run time, is an ndarray of the dtype, rank and static
    lengths that ``out``'s type declares, and equals ``expect``: exactly where ``rtol`` is None
    and for integer and bool results, else to ``rtol`` (and ``atol``, by default ``rtol``)."""
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == np.dtype(out.dtype), (got.dtype, out.dtype, err_msg)
    assert got.ndim == out.ndim, (got.shape, out.type, err_msg)
    for d, s in enumerate(out.type.shape):
        if s is not None:
            assert got.shape[d] == s, (got.shape, out.type.shape, err_msg)
    expect = np.asarray(expect)
    assert got.shape == expect.shape, (got.shape, expect.shape, err_msg)
    if isinstance(rtol, Mapping):
        rtol = rtol.get(str(got.dtype), rtol["default"])
    if rtol is None or got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, expect, err_msg=err_msg)
    else:
        np.testing.assert_allclose(got, expect, rtol=rtol, atol=rtol if atol is None else atol,
                                   err_msg=err_msg)


class Runner:
    """``run(inputs, out, values, expect)`` compiles ``out``, calls it on ``values``, checks the
    result with ``check_value`` and returns it; ``run.check`` is ``check_value`` alone. The
    ``run`` fixture's runner compiles for the backend under test: the ``backend`` fixture makes
    it ``config.linker`` for the test's duration, so the test's own ``theon.function`` calls
    use it too. Keywords given to ``with_defaults`` apply to every call, so a test file states
    its tolerance once (``strict_warnings=True``: a RuntimeWarning while compiling or running,
    an overflow say, fails the test)."""

    def __init__(self, **defaults: Any):
        self.defaults = defaults

    def with_defaults(self, **defaults: Any) -> Runner:
        """A runner with these keywords as defaults too."""
        return Runner(**{**self.defaults, **defaults})

    def check(self, got: Any, out, expect: Any, **kwargs: Any) -> None:
        kwargs = {**self.defaults, **kwargs}
        kwargs.pop("strict_warnings", None)
        check_value(got, out, expect, **kwargs)

    def __call__(self, inputs: Sequence, out, values: Sequence, expect: Any, **kwargs: Any):
        strict = {**self.defaults, **kwargs}.get("strict_warnings", False)
        with warnings.catch_warnings():
            if strict:
                warnings.simplefilter("error", RuntimeWarning)
            got = theon.function(inputs, out)(*values)
        self.check(got, out, expect, **kwargs)
        return got


def tracked_branches():
    """Two vector ops that record each run in ``calls``: ``double`` ("then") and ``negate``
    ("else"), to tell which branches of an ifelse were computed."""
    import types

    import theon.tensor as T
    from theon.compile.ops import as_op
    calls: list[str] = []

    @as_op(itypes=[T.dvector], otypes=[T.dvector])
    def tracked_double(v):
        calls.append("then")
        return v * 2

    @as_op(itypes=[T.dvector], otypes=[T.dvector])
    def tracked_negate(v):
        calls.append("else")
        return -v
    return types.SimpleNamespace(calls=calls, double=tracked_double, negate=tracked_negate)
