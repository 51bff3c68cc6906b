"""Ops holding inner graphs: loops (``scan``, ``Scan``) and jacobian's row map (``MapRows``)."""
from .basic import Scan, foldl, foldr, map, reduce, scan, until  # noqa: A004

__all__ = ["Scan", "foldl", "foldr", "map", "reduce", "scan", "until"]
