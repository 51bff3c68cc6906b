"""``theano.sandbox.linalg``: Theano's older home of the linear algebra ops."""
from ..ops.extra import diag, trace  # noqa: F401
from ..ops.linalg import (  # noqa: F401
    cholesky,
    det,
    eigh,
    matrix_inverse,
    solve,
)
from ..tensor.nlinalg import alloc_diag, extract_diag  # noqa: F401
