"""``x * log(x)`` and ``x * log(y)`` taken as 0 where ``x`` is 0 (Theano's
``theano.tensor.xlogx``): the entropy terms of cross-entropies written by hand, where
``0 * log(0)`` would be NaN.

Written as a switch over a log of a value that is never 0 where it is used, so that the
gradients, derived through the switch, are finite too: ``log(x) + 1`` and ``log(y)``,
``x / y`` where ``x`` is not 0, and 0 where it is (Theano's own gradient of ``xlogx`` there
was ``-inf``)."""
from __future__ import annotations

from .base import as_tensor_variable
from .elemwise import ELEMWISE


def xlogx(x):
    """``x * log(x)``, 0 where ``x`` is 0."""
    x = as_tensor_variable(x)
    return xlogy0(x, x)


def xlogy0(x, y):
    """``x * log(y)``, 0 where ``x`` is 0 (whatever ``y`` is there)."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    switch, eq = ELEMWISE["switch"], ELEMWISE["eq"]
    zero = eq(x, 0)
    safe_y = switch(zero, 1, y)
    return switch(zero, 0, x * ELEMWISE["log"](safe_y))
