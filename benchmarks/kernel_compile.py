"""The compile time of a function's C kernels, measured in a fresh process.

``python -m theon.benchmarks.kernel_compile --compiledir DIR`` builds the W1 function
(``benchmarks/cases.py``) with the C linker on a cache folder of its choosing and prints one JSON
line: the seconds from ``function()`` to the end of the first call (waiting for any background
compile), the same for the numpy linker, and ``ccompiler.stats`` (how many libraries gcc
compiled, how many came from the disk cache).

Why a process per sample: the compiler module and the C backend keep in-memory memos of what
they loaded, so a second build in the same process measures neither gcc nor the disk cache. A
fresh process with an empty folder is a cold compile; a fresh process with a folder that an
earlier one filled is a cached one. The process's start and theon's import are not counted, and
a first build on the numpy linker (discarded) pays theon's one-time costs before the timing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

N = 1000  # the kernels do not depend on the length; a short call keeps the first call cheap


def _timed_build(make, mode, args) -> float:
    import theon
    from theon.backends import ccompiler
    start = time.perf_counter()
    f = theon.function(*make(), mode=mode)
    f(*args)
    ccompiler.wait_all()  # a backend may compile in the background and run numpy meanwhile
    return time.perf_counter() - start


def measure(compiledir: str, linker: str = "c") -> dict:
    """Seconds to build and first call W1 on ``linker`` with the cache in ``compiledir``."""
    import theon
    from theon.backends import ccompiler

    from .cases import theon_w1_graph, w1_data, w1_numpy
    theon.config.compiledir = compiledir
    data = w1_data(N)
    args = tuple(data[k] for k in "abcd")

    def make():
        inputs, out = theon_w1_graph()
        return inputs, out
    py = theon.Mode(linker="py")
    _timed_build(make, py, args)  # imports, registries, first-call paths: not the kernels' cost
    py_seconds = _timed_build(make, py, args)
    ccompiler.stats.clear()
    mode = theon.Mode(linker=linker)
    seconds = _timed_build(make, mode, args)
    f = theon.function(*make(), mode=mode)
    got, want = f(*args), w1_numpy(data)(*args)
    if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        raise AssertionError("W1 on the C linker computes something else than numpy")
    return {"seconds": seconds, "py_seconds": py_seconds, "stats": dict(ccompiler.stats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m theon.benchmarks.kernel_compile")
    parser.add_argument("--compiledir", required=True)
    parser.add_argument("--linker", default="c")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.compiledir, args.linker)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
