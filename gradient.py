"""``theon.gradient`` (Theano's ``theano.gradient``): differentiation, re-exported from grad/,
compile/ (verify_grad) and scan/ (jacobian, hessian)."""
from .compile.verify import GradientError, verify_grad  # noqa: F401
from .grad.forward import Rop  # noqa: F401
from .grad.numeric import numeric_grad  # noqa: F401
from .grad.reverse import (  # noqa: F401
                           DisconnectedInputError,
                           Lop,
                           NullTypeGradError,
                           Undefined,
                           grad,
                           grad_not_implemented,
                           grad_undefined,
)
from .ops.gradient_ops import consider_constant, disconnected_grad, grad_clip, grad_scale, zero_grad  # noqa: F401
from .scan.jacobian import hessian, jacobian  # noqa: F401
