"""``T.nnet``: Theano's neural-network helpers (re-exported from ``theon/ops/nnet.py``)."""
from ...ops.conv import conv2d, conv3d  # noqa: F401
from ...ops.nnet import (  # noqa: F401
                        binary_crossentropy,
                        categorical_crossentropy,
                        crossentropy_categorical_1hot,
                        elu,
                        hard_sigmoid,
                        log_softmax,
                        logsumexp,
                        relu,
                        sigmoid,
                        sigmoid_binary_crossentropy,
                        softmax,
                        softplus,
                        ultra_fast_sigmoid,
)
from . import abstract_conv, conv, conv3d2d  # noqa: F401
