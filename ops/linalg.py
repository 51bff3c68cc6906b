"""Linear algebra of square matrices: Theano's ``tensor.nlinalg`` and ``tensor.slinalg``.

``matrix_inverse``, ``det``, ``eigh``, ``cholesky`` and ``solve`` (with its triangular and
symmetric forms), each an op computed by ``numpy.linalg`` with its gradient written as a graph
of other ops (so it is differentiable again) and its shape inferred. As in Theano they take 2-d
tensors; an integer matrix is read as float64, float32 stays float32.

What each reads follows LAPACK, as Theano's (scipy's) did: ``cholesky`` and ``eigh`` read one
triangle of their matrix (the lower one unless told otherwise), a triangular ``solve`` reads
only its triangle, and the gradients flow only into what was read. A singular or non-positive
definite matrix raises numpy's ``LinAlgError``, with the node and the user's line added by the
function that ran it.
"""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import TensorType
from .base import Op, as_tensor_variable, graph_error

_STRUCTURES = ("general", "symmetric", "lower_triangular", "upper_triangular")


def _float_type(x, what: str, ndim: int = 2):
    """``x`` as a float tensor of ``ndim`` dimensions (integers read as float64)."""
    from .elemwise import cast
    x = as_tensor_variable(x)
    if x.ndim != ndim:
        raise graph_error(f"{what}: needs a {ndim}-d tensor, got {x.type}", ValueError)
    if x.dtype not in ("float32", "float64"):
        if x.dtype in ("complex64", "complex128"):
            raise graph_error(f"{what}: complex matrices are not supported ({x.type})")
        x = cast(x, "float64")
    return x


def _square(x, what: str):
    x = _float_type(x, what)
    n, m = x.type.shape
    if n is not None and m is not None and n != m:
        raise graph_error(f"{what}: needs a square matrix, got {x.type} of shape {(n, m)}",
                          ValueError)
    return x


def _checked_square(a: np.ndarray, what: str) -> None:
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"{what}: needs a square matrix, got shape {a.shape}")


class MatrixInverse(Op):
    """``numpy.linalg.inv``."""

    __props__ = ()

    def make_node(self, x) -> Apply:
        x = _square(x, "matrix_inverse")
        return Apply(self, [x], [x.type()])

    def impl(self, node):
        def inv(a):
            _checked_square(a, "matrix_inverse")
            return np.linalg.inv(a)
        return inv

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, grads):
        # d(X^-1) = -X^-1 dX X^-1, so the gradient is -X^-T g X^-T
        from .blas import dot
        xi = outputs[0]
        return [-dot(dot(xi.T, grads[0]), xi.T)]

    def grad(self, inputs, grads):
        return self.L_op(inputs, [self(inputs[0])], grads)

    def R_op(self, inputs, eval_points):
        from .blas import dot
        if eval_points[0] is None:
            return [None]
        xi = self(inputs[0])
        return [-dot(dot(xi, eval_points[0]), xi)]


class Det(Op):
    """``numpy.linalg.det``: a 0-d result."""

    __props__ = ()

    def make_node(self, x) -> Apply:
        x = _square(x, "det")
        return Apply(self, [x], [TensorType(x.dtype, shape=())()])

    def impl(self, node):
        dtype = np.dtype(node.outputs[0].dtype)

        def det(a):
            _checked_square(a, "det")
            return np.asarray(np.linalg.det(a), dtype=dtype)
        return det

    def infer_shape(self, fgraph, node, shapes):
        return [()]

    def L_op(self, inputs, outputs, grads):
        # d det(X) = det(X) tr(X^-1 dX)
        return [grads[0] * outputs[0] * matrix_inverse(inputs[0]).T]

    def grad(self, inputs, grads):
        return self.L_op(inputs, [self(inputs[0])], grads)


class Eigh(Op):
    """``numpy.linalg.eigh(x, UPLO)``: the eigenvalues (ascending) and the eigenvectors (as
    columns) of a symmetric matrix, of which only the ``UPLO`` triangle is read."""

    __props__ = ("UPLO",)

    def __init__(self, UPLO: str = "L"):
        if UPLO not in ("L", "U"):
            raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
        self.UPLO = UPLO

    def make_node(self, x) -> Apply:
        x = _square(x, "eigh")
        n = x.type.shape[0]
        return Apply(self, [x], [TensorType(x.dtype, shape=(n,))(), x.type()])

    def impl(self, node):
        uplo = self.UPLO

        def eigh(a):
            _checked_square(a, "eigh")
            w, v = np.linalg.eigh(a, uplo)
            return w, v
        return eigh

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],), shapes[0]]

    def L_op(self, inputs, outputs, grads):
        # For a symmetric change dS: dw = diag(V^T dS V), dV = V (F * (V^T dS V)) with
        # F[i, j] = 1 / (w[j] - w[i]) off the diagonal, so the gradient with respect to the
        # symmetric matrix is G = V (diag(gw) + F * (V^T gV)) V^T. Only one triangle is read
        # (S = tril(x) + tril(x, -1)^T for 'L'), so it collects G + G^T there, G's diagonal
        # once.
        from .alloc import eye
        from .blas import dot
        from .extra import AllocDiag, ExtractDiag, Triangle
        w, v = outputs
        gw, gv = grads
        n = w.shape[0]
        diff = w.dimshuffle("x", 0) - w.dimshuffle(0, "x")
        identity = eye(n, dtype=w.dtype)
        f = (1 - identity) / (diff + identity)
        g = dot(dot(v, AllocDiag(0)(gw) + f * dot(v.T, gv)), v.T)
        lower = self.UPLO == "L"
        both = Triangle(lower)(g + g.T)
        return [both - AllocDiag(0)(ExtractDiag(0, 0, 1)(g))]

    def grad(self, inputs, grads):
        return self.L_op(inputs, self(inputs[0]), grads)


class Cholesky(Op):
    """``numpy.linalg.cholesky``: the lower factor ``L`` with ``x = L L^T`` (``lower=False``:
    the upper one, ``L^T``), reading only the lower triangle of ``x``."""

    __props__ = ("lower",)

    def __init__(self, lower: bool = True):
        self.lower = bool(lower)

    def make_node(self, x) -> Apply:
        x = _square(x, "cholesky")
        return Apply(self, [x], [x.type()])

    def impl(self, node):
        lower = self.lower

        def cholesky(a):
            _checked_square(a, "cholesky")
            factor = np.linalg.cholesky(a)
            return factor if lower else np.ascontiguousarray(factor.T)
        return cholesky

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, grads):
        # (Murray 2016) with L the lower factor and gL its gradient:
        # S = L^-T phi(L^T gL) L^-1, phi taking the lower triangle with its diagonal halved;
        # x's lower triangle (all that is read) gets S + S^T, S's diagonal once.
        from .blas import dot
        from .extra import AllocDiag, ExtractDiag, Triangle
        factor, g = outputs[0], grads[0]
        if not self.lower:
            factor, g = factor.T, g.T
        inner = dot(factor.T, g)
        phi = Triangle(True)(inner) - 0.5 * AllocDiag(0)(ExtractDiag(0, 0, 1)(inner))
        upper = Solve("upper_triangular")
        s = upper(factor.T, upper(factor.T, phi.T).T)
        return [Triangle(True)(s + s.T) - AllocDiag(0)(ExtractDiag(0, 0, 1)(s))]

    def grad(self, inputs, grads):
        return self.L_op(inputs, [self(inputs[0])], grads)


class Solve(Op):
    """``x`` with ``A x = b`` (``b`` a vector or a matrix of right-hand sides).
    ``A_structure``: 'general' and 'symmetric' read all of ``A``; 'lower_triangular' and
    'upper_triangular' only that triangle (Theano's ``solve_lower_triangular``...). ``lower``
    is accepted for Theano's signature; the structure says which triangle is read."""

    __props__ = ("A_structure",)

    def __init__(self, A_structure: str = "general", lower: bool = False):
        if A_structure not in _STRUCTURES:
            raise ValueError(f"solve: A_structure must be one of {_STRUCTURES}, got "
                             f"{A_structure!r}")
        self.A_structure = A_structure

    def make_node(self, a, b) -> Apply:
        from .scalar import upcast
        a = _square(a, "solve")
        b = as_tensor_variable(b)
        if b.ndim not in (1, 2):
            raise graph_error(f"solve: b must be a vector or a matrix, got {b.type}",
                              ValueError)
        b = _float_type(b, "solve", b.ndim)
        n, m = a.type.shape[0], b.type.shape[0]
        if n is not None and m is not None and n != m:
            raise graph_error(f"solve: A is {a.type} with {n} rows, b {b.type} with {m}",
                              ValueError)
        dtype = upcast(a.dtype, b.dtype)
        return Apply(self, [a, b], [TensorType(dtype, shape=b.type.shape)()])

    def impl(self, node):
        structure = self.A_structure
        dtype = np.dtype(node.outputs[0].dtype)

        def solve(a, b):
            _checked_square(a, "solve")
            if a.shape[0] != b.shape[0]:
                raise ValueError(f"solve: A has shape {a.shape} and b {b.shape}: their first "
                                 "lengths differ")
            if structure == "lower_triangular":
                a = np.tril(a)
            elif structure == "upper_triangular":
                a = np.triu(a)
            return np.linalg.solve(a, b).astype(dtype, copy=False)
        return solve

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def L_op(self, inputs, outputs, grads):
        # x = A^-1 b: gb = A^-T gx, gA = -gb x^T (only the triangle read, for a triangular A)
        from .blas import dot, outer
        from .extra import Triangle
        a, _ = inputs
        x, g = outputs[0], grads[0]
        transposed = {"lower_triangular": "upper_triangular",
                      "upper_triangular": "lower_triangular"}.get(self.A_structure,
                                                                   self.A_structure)
        gb = Solve(transposed)(a.T, g)
        ga = -outer(gb, x) if x.ndim == 1 else -dot(gb, x.T)
        if self.A_structure == "lower_triangular":
            ga = Triangle(True)(ga)
        elif self.A_structure == "upper_triangular":
            ga = Triangle(False)(ga)
        return [ga, gb]

    def grad(self, inputs, grads):
        return self.L_op(inputs, [self(*inputs)], grads)


_inverse, _det = MatrixInverse(), Det()


def matrix_inverse(x):
    """The inverse of a square matrix (``numpy.linalg.inv``)."""
    return _inverse(x)


def det(x):
    """The determinant of a square matrix (``numpy.linalg.det``)."""
    return _det(x)


def eigh(x, UPLO: str = "L"):
    """``(w, v)``: the eigenvalues and eigenvectors of a symmetric matrix (its ``UPLO``
    triangle is read)."""
    return Eigh(UPLO)(x)


def eigvalsh(x, UPLO: str = "L"):
    """The eigenvalues of a symmetric matrix, ascending."""
    return Eigh(UPLO)(x)[0]


def cholesky(x, lower: bool = True):
    """The Cholesky factor of a symmetric positive definite matrix: lower (``x = L L^T``) by
    default, upper with ``lower=False``."""
    return Cholesky(lower)(x)


def solve(a, b, A_structure: str = "general"):
    """``x`` with ``a x = b``."""
    return Solve(A_structure)(a, b)


def solve_lower_triangular(a, b):
    """``solve`` reading only the lower triangle of ``a``."""
    return Solve("lower_triangular")(a, b)


def solve_upper_triangular(a, b):
    """``solve`` reading only the upper triangle of ``a``."""
    return Solve("upper_triangular")(a, b)


def solve_symmetric(a, b):
    """``solve`` for a symmetric ``a`` (all of it is read, as Theano's general solve)."""
    return Solve("symmetric")(a, b)


def matrix_dot(*args):
    """The product of the matrices given, left to right."""
    from .blas import dot
    if not args:
        raise graph_error("matrix_dot: needs at least one matrix", ValueError)
    result = args[0]
    for m in args[1:]:
        result = dot(result, m)
    return result


def matrix_power(m, n: int):
    """``m`` to the integer power ``n`` by repeated squaring (``n < 0``: of the inverse)."""
    from .alloc import eye
    from .blas import dot
    from .shape import shape
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise graph_error(f"matrix_power: the power must be an int, got {n!r}")
    m = _square(m, "matrix_power")
    n = int(n)
    if n < 0:
        m, n = matrix_inverse(m), -n
    if n == 0:
        return eye(shape(m)[0], dtype=m.dtype)
    result = None
    while n:
        if n & 1:
            result = m if result is None else dot(result, m)
        n >>= 1
        if n:
            m = dot(m, m)
    return result


class MatrixPinv(Op):
    """``numpy.linalg.pinv``: the Moore-Penrose pseudo-inverse of any matrix."""

    __props__ = ()

    def make_node(self, x) -> Apply:
        x = _float_type(x, "pinv")
        m, n = x.type.shape
        return Apply(self, [x], [TensorType(x.dtype, shape=(n, m))()])

    def impl(self, node):
        return lambda a: np.linalg.pinv(a)

    def infer_shape(self, fgraph, node, shapes):
        m, n = shapes[0]
        return [(n, m)]

    def L_op(self, inputs, outputs, grads):
        # With P = pinv(X) of constant rank (Golub and Pereyra):
        # dP = -P dX P + P P^T dX^T (I - X P) + (I - P X) dX^T P^T P, whose adjoint is
        # -P^T g P^T + (I - X P) g^T P P^T + P^T P g^T (I - P X).
        from .alloc import eye
        from .blas import dot
        x, p, g = inputs[0], outputs[0], grads[0]
        rows, cols = x.shape[0], x.shape[1]
        left = eye(rows, dtype=x.dtype) - dot(x, p)
        right = eye(cols, dtype=x.dtype) - dot(p, x)
        return [-dot(dot(p.T, g), p.T) + dot(dot(left, g.T), dot(p, p.T))
                + dot(dot(p.T, p), dot(g.T, right))]

    def grad(self, inputs, grads):
        return self.L_op(inputs, [self(inputs[0])], grads)


class SVD(Op):
    """``numpy.linalg.svd``: ``(u, s, v)`` with ``x = u diag(s) v`` (``v`` is numpy's ``vh``),
    or ``s`` alone without ``compute_uv``. No gradient, as in Theano."""

    __props__ = ("full_matrices", "compute_uv")

    def __init__(self, full_matrices: bool = True, compute_uv: bool = True):
        self.full_matrices, self.compute_uv = bool(full_matrices), bool(compute_uv)

    def make_node(self, x) -> Apply:
        x = _float_type(x, "svd")
        if not self.compute_uv:
            return Apply(self, [x], [TensorType(x.dtype, shape=(None,))()])
        outs = [TensorType(x.dtype, shape=(None, None))(), TensorType(x.dtype, shape=(None,))(),
                TensorType(x.dtype, shape=(None, None))()]
        return Apply(self, [x], outs)

    def impl(self, node):
        full, uv = self.full_matrices, self.compute_uv

        def svd(a):
            if not uv:
                return np.linalg.svd(a, compute_uv=False)
            u, s, vh = np.linalg.svd(a, full_matrices=full)
            return u, s, vh
        return svd

    def infer_shape(self, fgraph, node, shapes):
        from .elemwise import ELEMWISE
        m, n = shapes[0]
        k = ELEMWISE["minimum"](m, n)
        if not self.compute_uv:
            return [(k,)]
        if self.full_matrices:
            return [(m, m), (k,), (n, n)]
        return [(m, k), (k,), (k, n)]


class QRFull(Op):
    """``numpy.linalg.qr(x, mode)``: ``(q, r)`` for 'reduced' and 'complete', ``r`` alone for
    'r'. No gradient, as in Theano."""

    __props__ = ("mode",)

    def __init__(self, mode: str = "reduced"):
        if mode not in ("reduced", "complete", "r"):
            raise ValueError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
        self.mode = mode

    def make_node(self, x) -> Apply:
        x = _float_type(x, "qr")
        n_out = 1 if self.mode == "r" else 2
        return Apply(self, [x], [TensorType(x.dtype, shape=(None, None))()
                                 for _ in range(n_out)])

    def impl(self, node):
        mode = self.mode

        def qr(a):
            result = np.linalg.qr(a, mode)
            return result if mode == "r" else tuple(result)
        return qr

    def infer_shape(self, fgraph, node, shapes):
        from .elemwise import ELEMWISE
        m, n = shapes[0]
        k = ELEMWISE["minimum"](m, n)
        if self.mode == "r":
            return [(k, n)]
        if self.mode == "complete":
            return [(m, m), (m, n)]
        return [(m, k), (k, n)]


def pinv(x):
    """The Moore-Penrose pseudo-inverse (``numpy.linalg.pinv``)."""
    return MatrixPinv()(x)


def svd(a, full_matrices: bool = True, compute_uv: bool = True):
    """``numpy.linalg.svd``'s ``(u, s, v)``, or ``s`` alone."""
    return SVD(full_matrices, compute_uv)(a)


def qr(a, mode: str = "reduced"):
    """``numpy.linalg.qr``: ``(q, r)``, or ``r`` alone with ``mode='r'``."""
    return QRFull(mode)(a)


def norm(x, ord=None):
    """``numpy.linalg.norm`` of a vector or a matrix, for the orders made of sums and maxima:
    None and 'fro' (the 2-norm of a vector), 1, -1, inf, -inf, and any other number for a
    vector. A graph of elementwise ops and reductions, so it is differentiable."""
    from .elemwise import ELEMWISE, cast
    from .reduce import max as max_
    from .reduce import min as min_
    from .reduce import sum as sum_
    abs_, sqrt = ELEMWISE["abs"], ELEMWISE["sqrt"]
    x = as_tensor_variable(x)
    inf = float("inf")
    if x.ndim == 1:
        if ord is None or ord == 2:
            return sqrt(sum_(x * x))
        if ord == inf:
            return max_(abs_(x))
        if ord == -inf:
            return min_(abs_(x))
        if ord == 0:
            return cast(sum_(ELEMWISE["neq"](x, 0)), x.dtype)
        if isinstance(ord, (int, float)) and not isinstance(ord, bool):
            return sum_(abs_(x) ** ord) ** (1.0 / ord)
        raise graph_error(f"norm: order {ord!r} is not one of a vector's", ValueError)
    if x.ndim == 2:
        if ord is None or ord == "fro":
            return sqrt(sum_(x * x))
        if ord in (1, -1):
            columns = sum_(abs_(x), axis=0)
            return max_(columns) if ord == 1 else min_(columns)
        if ord in (inf, -inf):
            rows = sum_(abs_(x), axis=1)
            return max_(rows) if ord == inf else min_(rows)
        raise graph_error(f"norm: order {ord!r} of a matrix is not supported (only None, "
                          "'fro', 1, -1, inf, -inf)", ValueError)
    raise graph_error(f"norm: needs a vector or a matrix, got {x.type}", ValueError)
