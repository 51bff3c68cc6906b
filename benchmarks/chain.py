"""Build-to-first-call time of a layer chain: ``python -m benchmarks.chain [LAYERS]``.

The chain ``h = tanh(dot(h, W) * c_k + x)`` (8x8, ``c_k`` differing per layer) with
``T.grad(h.sum(), W)``: the seconds to build it, to differentiate it, to compile both
outputs and to make the first call, in a fresh process (run it as a script: a warm process
would measure caches, not a user's wait). Compare two trees by running both in turn.
"""
from __future__ import annotations

import sys
import time


def main(layers: int = 1000) -> dict[str, float]:
    """Time each stage for a chain of ``layers`` layers; prints and returns the seconds."""
    start = time.perf_counter()
    import numpy as np
    import theon
    import theon.tensor as T
    imported = time.perf_counter()
    W = theon.shared(np.random.default_rng(0).normal(size=(8, 8)) / 8, name="W")
    x = T.matrix("x")
    h = x
    for k in range(layers):
        h = T.tanh(T.dot(h, W) * np.full((1, 1), 1.0 + k / layers) + x)
    cost = h.sum()
    built = time.perf_counter()
    g = theon.grad(cost, W)
    differentiated = time.perf_counter()
    f = theon.function([x], [cost, g])
    compiled = time.perf_counter()
    f(np.ones((4, 8)))
    called = time.perf_counter()
    times = {"import": imported - start, "build": built - imported,
             "grad": differentiated - built, "function": compiled - differentiated,
             "first call": called - compiled, "total": called - imported}
    print(f"{layers} layers: " + "  ".join(f"{k} {v:.3f} s" for k, v in times.items()))
    return times


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
