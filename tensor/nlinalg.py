"""``theano.tensor.nlinalg``: re-exported from ``theon/ops`` (linalg, extra)."""
from ..ops.extra import AllocDiag, ExtractDiag, diag, trace  # noqa: F401
from ..ops.linalg import (  # noqa: F401
    SVD,
    Det,
    Eigh,
    MatrixInverse,
    MatrixPinv,
    QRFull,
    det,
    eigh,
    matrix_dot,
    matrix_inverse,
    matrix_power,
    norm,
    pinv,
    qr,
    svd,
)

extract_diag = ExtractDiag()
alloc_diag = AllocDiag()
