"""Ops holding inner graphs: loops (``scan``, ``Scan``) and jacobian's row map (``MapRows``)."""
from . import rewrites  # noqa: F401  (rewrites.install() files scan's rules in the rule table)
from .basic import Scan, foldl, foldr, map, reduce, scan, until  # noqa: A004

__all__ = ["Scan", "foldl", "foldr", "map", "reduce", "scan", "until"]
