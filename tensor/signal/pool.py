"""``theano.tensor.signal.pool``: re-exported from ``theon/ops/pool.py``."""
from ...ops.pool import (  # noqa: F401
    AveragePoolGrad,
    DownsampleFactorMaxGradGrad,
    MaxPoolGrad,
    Pool,
    max_pool_2d_same_size,
    pool_2d,
    pool_3d,
)
