"""``theano.sandbox``: the parts of Theano's sandbox that programs still import (``rng_mrg``)."""
from . import linalg, rng_mrg  # noqa: F401
