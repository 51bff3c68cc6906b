"""``theano.tensor.nnet.conv``: the old ``conv2d`` (``image_shape``, 'valid'/'full', a true
convolution), from ``theon/ops/conv.py``."""
from ...ops.conv import legacy_conv2d as conv2d  # noqa: F401
