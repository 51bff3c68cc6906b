"""``theano.tensor.slinalg``: re-exported from ``theon/ops/linalg.py``."""
from ..ops.linalg import (  # noqa: F401
    Cholesky,
    Solve,
    cholesky,
    eigvalsh,
    solve,
    solve_lower_triangular,
    solve_symmetric,
    solve_upper_triangular,
)
