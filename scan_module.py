"""Theano's ``theano.scan_module``: ``scan`` and its helpers, and ``until``."""
from .scan.basic import Scan, foldl, foldr, map, reduce, scan, until  # noqa: A004
from .scan.checkpoints import scan_checkpoints

__all__ = ["Scan", "foldl", "foldr", "map", "reduce", "scan", "scan_checkpoints", "until"]
