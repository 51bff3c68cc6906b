"""Numeric differentiation: central finite differences, the reference symbolic gradients are
checked against (``verify_grad`` in ``compile/verify.py`` compiles both)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def numeric_grad(fn: Callable[..., float], pt: Sequence[np.ndarray], eps: float = 1e-6
                 ) -> list[np.ndarray]:
    """Central differences of the scalar function ``fn`` at ``pt`` (arrays), in float64."""
    pt = [np.array(p, dtype=np.float64) for p in pt]
    grads = []
    for p in pt:
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = float(fn(*pt))
            flat[i] = orig - eps
            minus = float(fn(*pt))
            flat[i] = orig
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads
