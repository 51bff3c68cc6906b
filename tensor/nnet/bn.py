"""``theano.tensor.nnet.bn``: batch normalization, re-exported from ``theon/ops/nnet.py``."""
from ...ops.nnet import (  # noqa: F401
    batch_normalization,
    batch_normalization_test,
    batch_normalization_train,
)
