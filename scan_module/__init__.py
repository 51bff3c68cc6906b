"""Theano's ``theano.scan_module``: ``scan`` and its helpers, and ``until``."""
from ..scan.basic import Scan, foldl, foldr, map, reduce, scan, until  # noqa: A004
from ..scan.checkpoints import scan_checkpoints
from . import scan_utils

__all__ = ["Scan", "foldl", "foldr", "map", "reduce", "scan", "scan_checkpoints", "scan_utils",
           "until"]
