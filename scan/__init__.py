"""Ops holding inner graphs: loops (``scan``, ``Scan``) and jacobian's row map (``MapRows``)."""
from . import device, rewrites  # noqa: F401  (device: the loop's device thunk registers)
from .basic import Scan, foldl, foldr, map, reduce, scan, until  # noqa: A004
from .checkpoints import scan_checkpoints

rewrites.install()  # scan's rules join the rule table (compile must not import scan)

__all__ = ["Scan", "foldl", "foldr", "map", "reduce", "scan", "scan_checkpoints", "until"]
