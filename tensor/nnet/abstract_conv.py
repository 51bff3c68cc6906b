"""``theano.tensor.nnet.abstract_conv``: the convolution ops and functions (from
``theon/ops/conv.py``)."""
from ...ops.conv import (  # noqa: F401
    AbstractConv2d,
    AbstractConv2d_gradInputs,
    AbstractConv2d_gradWeights,
    AbstractConv3d,
    AbstractConv3d_gradInputs,
    AbstractConv3d_gradWeights,
    conv2d,
    conv2d_grad_wrt_inputs,
    conv2d_grad_wrt_weights,
    conv3d,
    conv3d_grad_wrt_inputs,
    conv3d_grad_wrt_weights,
    get_conv_output_shape,
)
