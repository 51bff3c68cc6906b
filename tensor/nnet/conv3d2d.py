"""``theano.tensor.nnet.conv3d2d``: ``conv3d`` on (batch, time, channels, rows, cols) signals,
from ``theon/ops/conv.py``."""
from ...ops.conv import conv3d2d as conv3d  # noqa: F401
