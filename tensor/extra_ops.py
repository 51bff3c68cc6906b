"""``theano.tensor.extra_ops``: re-exported from ``theon/ops`` (extra, reduce, repeat)."""
from ..ops.dimshuffle import squeeze  # noqa: F401
from ..ops.extra import (  # noqa: F401
    BinCount,
    Nonzero,
    SearchSorted,
    bincount,
    diff,
    flatnonzero,
    nonzero,
    nonzero_values,
    searchsorted,
    to_one_hot,
)
from ..ops.reduce import CumOp, cumprod, cumsum  # noqa: F401
from ..ops.repeat import Repeat, repeat  # noqa: F401

RepeatOp = Repeat
SearchsortedOp = SearchSorted
