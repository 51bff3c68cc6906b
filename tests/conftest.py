"""Shared by all tests: they build T.matrix() and the like and feed float64 data, so floatX is
pinned to float64 whatever THEON_FLAGS says (tests about float32 set it themselves)."""
import os
import subprocess
import sys

import pytest

import theon


@pytest.fixture(autouse=True)
def _floatx_float64():
    old = theon.config.floatX
    theon.config.floatX = "float64"
    yield
    theon.config.floatX = old


def pytest_configure(config):
    # before collection too: some test modules build their variables at import time
    theon.config.floatX = "float64"


@pytest.fixture
def run_python():
    """Run Python code in a fresh process with the given THEON_FLAGS (none by default), as a
    user's script would start: for settings read at import time."""
    def run(code: str, flags=None, var: str = "THEON_FLAGS") -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.pop("THEON_FLAGS", None)
        env.pop("THEANO_FLAGS", None)
        if flags is not None:
            env[var] = flags
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60)
    return run
