"""``theano.sandbox.cuda.dnn`` without CUDA: ``dnn_available()`` is false and says why, so that
code which checks it (layer libraries' cuDNN layers) refuses with that reason."""
from . import cuda_initialization_error_message


def dnn_available() -> bool:
    """Whether cuDNN can be used: never here (``dnn_available.msg`` says why)."""
    return False


dnn_available.msg = cuda_initialization_error_message
