"""``theon.gradient`` (Theano's ``theano.gradient``): differentiation, re-exported from grad/."""
from .grad.derived import hessian, jacobian  # noqa: F401
from .grad.forward import Rop  # noqa: F401
from .grad.reverse import (DisconnectedInputError, Lop, NullTypeGradError,  # noqa: F401
                           Undefined, grad, grad_not_implemented, grad_undefined)
from .grad.verify import GradientError, numeric_grad, verify_grad  # noqa: F401
from .ops.gradient_ops import (consider_constant, disconnected_grad, grad_clip,  # noqa: F401
                               grad_scale, zero_grad)
