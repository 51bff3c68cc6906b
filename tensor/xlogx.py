"""``theano.tensor.xlogx``: ``xlogx`` and ``xlogy0`` (re-exported from ``theon/ops/xlogx.py``)."""
from ..ops.xlogx import xlogx, xlogy0  # noqa: F401
