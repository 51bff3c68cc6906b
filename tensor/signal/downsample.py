"""``theano.tensor.signal.downsample`` (before Theano 0.9): ``max_pool_2d`` and the old op
names, re-exported from ``theon/ops/pool.py``."""
from ...ops.pool import DownsampleFactorMaxGradGrad, max_pool_2d  # noqa: F401
from ...ops.pool import MaxPoolGrad as DownsampleFactorMaxGrad  # noqa: F401
from ...ops.pool import Pool as DownsampleFactorMax  # noqa: F401
