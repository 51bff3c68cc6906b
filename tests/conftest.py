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
    if os.environ.get("THEON_TEST_BACKEND") == "logging":  # the suite on the toy backend
        import importlib.util
        path = os.path.join(os.path.dirname(__file__), "backends", "logging_backend.py")
        spec = importlib.util.spec_from_file_location("logging_backend", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config._logging_backend = module.BACKEND
        theon.config.linker = "logging"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    backend = getattr(config, "_logging_backend", None)
    if backend is not None:
        terminalreporter.write_line(
            f"logging backend: {backend.built} functions built, "
            f"{sum(backend.calls.values())} node calls over {len(backend.calls)} op classes")


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
