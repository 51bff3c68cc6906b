"""``theano.tensor.shared_randomstreams``: random streams drawn by numpy's ``RandomState``.
Re-exports only: the ops and the class live in ``theon/ops/random.py``."""
from ..ops.random import (  # noqa: F401
    RandomFunction,
    RandomStateSharedVariable,
    RandomStreams,
)
