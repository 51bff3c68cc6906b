"""Shared variables: named values that live between calls and that many functions read and update.

The value sits in a one-element list (the container) that compiled functions hold directly, so a
call reads it and writes updates without a lookup.

Where a value lives is the placement's choice (``set_placement``): by default every value is a
numpy array; with a CUDA device configured, the device backend installs one that keeps float
arrays in device memory, and the states whose ``kind`` it knows (an MRG generator's).
``get_value`` then gives numpy unless asked for the internal type, and pickling stores host
data, placed again when loaded.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .graph import Variable
from .trace import Trace
from .types import TensorType


class HostPlacement:
    """Every value a numpy array on the host (no device configured)."""

    def is_device_array(self, value: Any) -> bool:
        return False

    def place(self, value: np.ndarray, ttype: TensorType, kind: str | None = None) -> Any:
        return value

    def to_host(self, value: Any) -> np.ndarray:
        return value

    def check(self, value: Any, ttype: TensorType, var=None) -> Any:
        return value


_PLACEMENT: list = [HostPlacement()]


def set_placement(placement) -> None:
    """Install where shared values live (an object with ``HostPlacement``'s methods); the
    device backend calls it, since this layer cannot know about devices."""
    _PLACEMENT[0] = placement


def current_placement():
    """The placement in force (``HostPlacement`` unless a device is configured)."""
    return _PLACEMENT[0]


def host_value(value: Any) -> Any:
    """``value`` as a host value: a device array copied to numpy, anything else as it is."""
    placement = _PLACEMENT[0]
    return placement.to_host(value) if placement.is_device_array(value) else value


class _Container(list):
    """A shared value's one-element list; pickled with its value on the host and placed
    again when loaded (a device array does not pickle), keeping clones' sharing."""

    def __reduce__(self):
        value = self[0]
        placement = _PLACEMENT[0]
        if placement.is_device_array(value):
            value = placement.to_host(value)
        return _load_container, (value,)


def _load_container(value: Any) -> _Container:
    if isinstance(value, np.ndarray):
        value = _PLACEMENT[0].place(value, TensorType(str(value.dtype), shape=(None,) *
                                                      value.ndim))
    return _Container([value])


class SharedVariable(Variable):
    """A root variable whose value is stored with it (Theano's ``shared``).

    ``SharedVariable(type, value)`` makes the type's own shared class when it has one
    (``TensorType.shared_type``: a shared tensor has the tensor operators)."""

    _type_slot = "shared_type"
    #: what the value is where its type alone does not say where it lives: a random
    #: generator's state (``ops/random.MRG_STATE``, an int32 matrix that a device keeps next
    #: to the kernel advancing it); None for every other value
    kind: str | None = None

    def __init__(self, type: TensorType, value: Any, name: str | None = None,
                 borrow: bool = False, trace: Trace | None = None, kind: str | None = None):
        super().__init__(type, name=name, trace=trace)
        self.container = _Container([None])
        self.default_update = None
        if kind is not None:
            self.kind = kind
        self.set_value(value, borrow=borrow)

    def get_value(self, borrow: bool = False, return_internal_type: bool = False):
        """The current value; a copy unless ``borrow`` (then the caller must not modify it).
        A value in device memory comes back as a numpy copy unless ``return_internal_type``
        (Theano's spelling), which gives the device array itself."""
        value = self.container[0]
        placement = _PLACEMENT[0]
        if placement.is_device_array(value):
            return value if return_internal_type else placement.to_host(value)
        return value if borrow or return_internal_type else value.copy()

    def set_value(self, value: Any, borrow: bool = False) -> None:
        """Replace the value, checked against the variable's type (dtype and ndim are fixed);
        it is placed where the configured device keeps such values."""
        placement = _PLACEMENT[0]
        if placement.is_device_array(value):
            arr = placement.check(value, self.type, var=self)
            if arr is value and not borrow:
                arr = arr.copy()
            self.container[0] = arr
            return
        arr = self.type.filter(value, var=self)
        placed = placement.place(arr, self.type, kind=self.kind)
        if placed is arr and arr is value and not borrow:
            placed = arr.copy()
        self.container[0] = placed

    @property
    def value(self):
        return self.container[0]

    def clone(self) -> SharedVariable:
        # A clone of a shared variable is the same storage under a new node, as in Theano.
        twin = object.__new__(type(self))
        Variable.__init__(twin, self.type, name=self.name, trace=self.trace)
        twin.container = self.container
        twin.default_update = self.default_update
        twin.kind = self.kind
        return twin

    def __repr__(self) -> str:
        return self.name or f"<shared {self.type}>"


def shared(value: Any, name: str | None = None, strict: bool = False,
           allow_downcast: bool | None = None, borrow: bool = False,
           shape=None, broadcastable=None, kind: str | None = None) -> SharedVariable:
    """Make a shared variable holding ``value`` (copied unless ``borrow``).

    Its type takes dtype and ndim from the value; no dimension is broadcastable unless
    ``broadcastable`` (or a static ``shape``) says so, so later values may change shape.
    ``kind`` names a state a placement keeps apart from ordinary values (``SharedVariable.kind``).
    """
    if isinstance(value, (SharedVariable,)) or hasattr(value, "owner"):
        raise TypeError(f"shared() takes a value (an array or number), not the symbolic "
                        f"variable {value!r}")
    if _PLACEMENT[0].is_device_array(value):  # a device array: keep it there
        ttype = TensorType(str(value.dtype), shape=(None,) * value.ndim)
        return SharedVariable(ttype, value, name=name, borrow=borrow, kind=kind)
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USVM":
        raise TypeError(f"shared() needs numeric data; got {type(value).__name__} of dtype "
                        f"{arr.dtype}")
    if shape is None:
        shape = (None,) * arr.ndim if broadcastable is None else [1 if b else None
                                                                   for b in broadcastable]
    ttype = TensorType(str(arr.dtype), shape=shape)
    return SharedVariable(ttype, arr, name=name, borrow=borrow or arr is not value, kind=kind)
