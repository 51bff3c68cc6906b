"""``T.nnet``: Theano's neural-network helpers (re-exported from ``theon/ops/nnet.py``)."""
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
