"""``theano.tensor.signal``: pooling (``pool``, and the old ``downsample``)."""
from . import downsample, pool  # noqa: F401
