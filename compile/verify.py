"""``verify_grad``: compare symbolic gradients with central finite differences
(``grad/numeric.py``), compiling both with ``function()``.

The output is projected on a random direction (``cost = sum(f(x) * proj)``), so one scalar
gradient checks the whole Jacobian in expectation. Differences are taken in float64.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..grad.numeric import numeric_grad
from ..grad.reverse import grad
from ..ops.base import constant
from ..ops.reduce import sum as sum_
from ..symbolic.types import TensorType
from .function import function


class GradientError(ValueError):
    """Symbolic and numeric gradients disagree; the message names the input and the errors."""


def verify_grad(fun: Callable, pt: Sequence, n_tests: int = 2, rng=None,
                eps: float | None = None, out_type=None, abs_tol: float | None = None,
                rel_tol: float | None = None, mode=None, cast_to_output_type: bool = False,
                no_debug_ref: bool = True) -> None:
    """Raise GradientError unless ``grad`` of ``fun`` matches finite differences at ``pt``.

    ``fun`` takes symbolic variables (one per array in ``pt``) and returns a symbolic output.
    Points are used in float64 (integer points are refused: they have no gradient).
    """
    if rng is None:
        rng = np.random.default_rng(42)
    elif isinstance(rng, np.random.RandomState):
        rng = np.random.default_rng(rng.randint(2 ** 31))
    pt = [np.array(p, dtype=np.float64) for p in pt]
    eps = eps or 1e-6
    abs_tol = 1e-4 if abs_tol is None else abs_tol
    rel_tol = 1e-4 if rel_tol is None else rel_tol
    inputs = [TensorType("float64", shape=tuple(1 if s == 1 else None for s in p.shape))(
        f"input{k}") for k, p in enumerate(pt)]
    out = fun(*inputs)
    if isinstance(out, (list, tuple)):
        raise TypeError("verify_grad: fun must return a single variable")
    for _ in range(n_tests):
        f_out = function(inputs, out, mode=mode, on_unused_input="ignore")
        shape = np.shape(f_out(*pt))
        proj_value = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        proj = constant(proj_value)
        cost = sum_(out * proj) if out.ndim else out * proj
        symbolic = grad(cost, inputs, disconnected_inputs="ignore")
        f_cost = function(inputs, cost, mode=mode, on_unused_input="ignore")
        f_grad = function(inputs, symbolic, mode=mode, on_unused_input="ignore")
        analytic = f_grad(*pt)
        numeric = numeric_grad(f_cost, pt, eps)
        for k, (a, n) in enumerate(zip(analytic, numeric)):
            abs_err = np.abs(a - n)
            denom = np.abs(a) + np.abs(n)
            rel_err = np.where(denom > 0, abs_err / np.where(denom > 0, denom, 1), 0)
            bad = (abs_err > abs_tol) & (rel_err > rel_tol)
            if np.any(bad) or not np.all(np.isfinite(a)):
                idx = np.unravel_index(int(np.argmax(np.where(bad, abs_err, -1))),
                                       a.shape) if a.ndim else ()
                raise GradientError(
                    f"verify_grad: the gradient for input {k} (shape {pt[k].shape}) does not "
                    f"match finite differences: at index {idx} symbolic={a[idx]!r}, "
                    f"numeric={n[idx]!r}; max abs error {abs_err.max():.3g} (abs_tol "
                    f"{abs_tol:g}), max rel error {rel_err.max():.3g} (rel_tol {rel_tol:g})")
