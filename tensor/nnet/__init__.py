"""``T.nnet``: Theano's neural-network helpers (re-exported from ``theon/ops/nnet.py``)."""
from ...ops.conv import conv2d, conv3d  # noqa: F401
from ...ops.nnet import (  # noqa: F401
                        batch_normalization,
                        binary_crossentropy,
                        categorical_crossentropy,
                        crossentropy_categorical_1hot,
                        elu,
                        h_softmax,
                        hard_sigmoid,
                        log_softmax,
                        logsoftmax,
                        logsumexp,
                        relu,
                        selu,
                        sigmoid,
                        sigmoid_binary_crossentropy,
                        softmax,
                        softplus,
                        softsign,
                        ultra_fast_sigmoid,
)
from . import abstract_conv, bn, conv, conv3d2d  # noqa: F401
