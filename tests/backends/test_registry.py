"""The backend registry: function() runs on the backend its mode names, and a backend defined
outside theon (tests/backends/logging_backend.py) runs every op test through it."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon import backends
from theon.ifelse import ifelse

HERE = Path(__file__).parent


def _logging_backend():
    import importlib.util
    spec = importlib.util.spec_from_file_location("logging_backend",
                                                  HERE / "logging_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BACKEND


def test_function_uses_the_backend_its_mode_names():
    backend = _logging_backend()
    x = T.dvector("x")
    y = T.dvector("y")
    out = ifelse(T.sum(x) > 0, T.exp(x) * 2, y + 1)  # lazy branches still work
    f = theano.function([x, y], out, mode=theano.Mode(linker="logging"))
    before = backend.built
    g = theano.function([x, y], out, mode=theano.Mode(linker="logging"))
    assert backend.built == before + 1
    np.testing.assert_allclose(g([1.0, 2.0], [0.0, 0.0]), np.exp([1.0, 2.0]) * 2)
    np.testing.assert_allclose(f([-1.0, -2.0], [5.0, 6.0]), [6.0, 7.0])
    assert backend.calls["Elemwise"] > 0


def test_the_default_linker_comes_from_config():
    backend = _logging_backend()
    x = T.dvector("x")
    old = theano.config.linker, theano.config.device
    theano.config.linker, theano.config.device = "logging", "cpu"  # (a device takes 'cuda')
    try:
        before = backend.built
        theano.function([x], x * 2)
        assert backend.built == before + 1
    finally:
        theano.config.linker, theano.config.device = old


def test_theano_linker_names_mean_the_numpy_backend():
    x = T.dvector("x")
    for name in ("cvm", "c|py", "py", "vm"):
        f = theano.function([x], x + 1, mode=theano.Mode(linker=name))
        np.testing.assert_allclose(f([1.0]), [2.0])


def test_an_unknown_linker_is_a_clear_error():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="unknown linker 'nope'.*registered backends"):
        theano.function([x], x + 1, mode=theano.Mode(linker="nope"))
    assert "py" in backends.available()


@pytest.mark.host_only
def test_the_op_suite_runs_on_the_toy_backend():
    """Every op test, through the registry, on a backend theon does not know (but the scalar
    table's 2,200 tests and the reductions' 1,150: the same few op classes over and over,
    which the other op tests build too)."""
    env = dict(os.environ, THEON_TEST_BACKEND="logging")
    env.pop("THEON_FLAGS", None)
    root = HERE.parent.parent
    ops = HERE.parent / "ops"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(ops), f"--ignore={ops / 'test_scalar_table.py'}",
                           f"--ignore={ops / 'test_reduce.py'}"],
                          cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-3000:]
    assert proc.returncode == 0, tail
    m = re.search(r"logging backend: (\d+) functions built, (\d+) node calls over (\d+) op",
                  proc.stdout)
    assert m, tail
    built, calls, classes = map(int, m.groups())
    assert built > 500 and calls > built and classes > 20, m.group(0)
