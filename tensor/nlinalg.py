"""``theano.tensor.nlinalg``: re-exported from ``theon/ops`` (linalg, extra)."""
from ..ops.extra import AllocDiag, ExtractDiag, diag, trace  # noqa: F401
from ..ops.linalg import (  # noqa: F401
    Det,
    Eigh,
    MatrixInverse,
    det,
    eigh,
    matrix_dot,
    matrix_inverse,
    matrix_power,
)

extract_diag = ExtractDiag()
alloc_diag = AllocDiag()
