"""Linker 'c' (backends/c_backend.py): elementwise nodes as generated C kernels, the rest on
numpy. The whole op suite also runs on it in CI (THEON_TEST_BACKENDS=c python -m pytest
tests/ops); these tests check what is particular to it."""
from __future__ import annotations

import numpy as np
import pytest
import theon
import theon.backends
import theon.tensor as T
from theon.backends import ccompiler
from theon.compile.mode import Mode

pytestmark = pytest.mark.skipif(ccompiler.compiler() is None,
                                reason="no C compiler found (config.cxx)")
C = Mode(linker="c")


def test_elementwise_nodes_run_as_compiled_kernels():
    x, y = T.matrix("x"), T.row("y")
    theon.backends.get("c")._kernels.clear()  # so that the kernels are asked for again
    before = ccompiler.stats["compiled"] + ccompiler.stats["memory_hits"] + \
        ccompiler.stats.get("disk_hits", 0)
    f = theon.function([x, y], T.tanh(x) * y - x, mode=C)
    after = ccompiler.stats["compiled"] + ccompiler.stats["memory_hits"] + \
        ccompiler.stats.get("disk_hits", 0)
    assert after > before  # the kernels came from the compiler or its cache
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(1, 3))
    np.testing.assert_allclose(f(a, b), np.tanh(a) * b - a, rtol=1e-14)
    np.testing.assert_allclose(f(a.T.copy().T, b), np.tanh(a) * b - a, rtol=1e-14)


def test_integer_semantics_are_numpys():
    x, y = T.vector("x", dtype="int8"), T.vector("y", dtype="int8")
    f = theon.function([x, y], [x // y, x % y, x * y, T.maximum(x, y)], mode=C)
    a = np.array([-7, 7, -128, 5, 100], dtype="int8")
    b = np.array([2, -2, -1, 0, 3], dtype="int8")
    with np.errstate(all="ignore"):
        want = [a // b, a % b, a * b, np.maximum(a, b)]
    for got, w in zip(f(a, b), want):
        assert got.dtype == w.dtype
        np.testing.assert_array_equal(got, w)


def test_a_shape_mismatch_names_the_users_line_as_on_numpy():
    x, y = T.matrix("x"), T.matrix("y")
    f = theon.function([x, y], x + y, mode=C)
    with pytest.raises(ValueError) as err:
        f(np.ones((2, 3)), np.ones((2, 4)))
    assert __file__ in str(err.value)


def test_scalars_and_empty_arrays():
    a, b = T.dscalar("a"), T.dvector("b")
    f = theon.function([a, b], [a * 2 + 1, b * a], mode=C)
    s, v = f(1.5, np.zeros(0))
    assert s.shape == () and float(s) == 4.0
    assert v.shape == (0,)
