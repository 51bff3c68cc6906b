"""Arrays a thunk rewrites from one call to the next, once nobody else holds them.

A fresh large array costs a page fault per 4 KiB at its first write: W3's 3 MB input
projection and its ``Join(h0, states)`` took about 2.5 ms a call each in faults alone, five
times their arithmetic. So a thunk whose outputs are large keeps its recent outputs and writes
a later result into one of them that nobody holds any more: the caller dropped it (or never
saw it, an intermediate of a function), and no view of it lives (a view holds its base).

Whether anybody else holds an array is read from its reference count. ``ALONE`` is the count
of an array held only by a list and the local that looks at it, measured once here in exactly
the way every check looks (``for v in pool: getrefcount(v)``, or ``v = pool[k]``), so the
checks do not depend on how an interpreter version counts an argument. Checking and taking
happen without releasing the GIL between them, and the taker's own local raises the count, so
two threads never take the same array.
"""
from __future__ import annotations

from sys import getrefcount

import numpy as np

# Outputs below this size come from malloc's free lists without page faults: not kept.
MIN_BYTES = 1 << 16
# Recent outputs one thunk keeps (a thunk is shared by the nodes of equal op and types).
SLOTS = 4


def _alone() -> int:
    pool = [np.empty(1)]
    for v in pool:
        return getrefcount(v)
    raise AssertionError("unreachable")


#: getrefcount of an array held by one list and one local only (3 on CPython 3.11).
ALONE = _alone()


def free_buffer(pool: list, shape: tuple, dtype) -> np.ndarray | None:
    """An array of ``pool`` with this shape and dtype that nobody else holds, or None."""
    for v in pool:
        if v.shape == shape and v.dtype == dtype and getrefcount(v) == ALONE:
            return v
    return None


class Recent:
    """The recent large outputs of one thunk: ``array`` gives one to write a result into
    (a free one, else a new one it keeps; the oldest is dropped past ``SLOTS``)."""

    __slots__ = ("arrays",)

    def __init__(self):
        self.arrays: list[np.ndarray] = []

    def array(self, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised array of this shape and dtype that nobody else holds."""
        v = free_buffer(self.arrays, shape, dtype)
        if v is None:
            v = np.empty(shape, dtype)
            if v.nbytes >= MIN_BYTES:
                arrays = self.arrays
                if len(arrays) >= SLOTS:
                    del arrays[0]
                arrays.append(v)
        return v
