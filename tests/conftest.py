"""Shared by all tests: they build T.matrix() and the like and feed float64 data, so floatX is
pinned to float64 whatever THEON_FLAGS says (tests about float32 set it themselves).

The op tests compile on the ``backend`` fixture's linker: the configured one, or each of
``THEON_TEST_BACKENDS=py,logging`` in turn; ``THEON_TEST_BACKEND=logging`` runs the whole suite
on the toy backend of backends/logging_backend.py."""
import importlib.util
import os
import subprocess
import sys

import pytest
import theon
from theon import backends

_HERE = os.path.dirname(__file__)


def _load(name: str, path: str):
    """A module of this folder by its path: test files and their neighbours are not importable
    by name under --import-mode=importlib."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load("theon_test_helpers", "helpers.py")


def _backends_to_run() -> list:
    """THEON_TEST_BACKENDS as a list of linker names (empty: only the configured linker)."""
    return [n.strip() for n in os.environ.get("THEON_TEST_BACKENDS", "").split(",") if n.strip()]


@pytest.fixture(autouse=True, scope="session")
def _own_compiledir(tmp_path_factory):
    """Compiled kernels go to a cache of this run's own, never the user's (a test that wants
    another folder sets config.compiledir itself). THEON_TEST_COMPILEDIR names a folder that
    workers and successive runs share instead (CI's passes: a kernel is built once, as in a
    user's cache, which is safe between processes)."""
    saved = vars(theon.config).get("compiledir")
    shared = os.environ.get("THEON_TEST_COMPILEDIR")
    theon.config.compiledir = shared or str(tmp_path_factory.mktemp("compiledir"))
    yield
    from theon.backends import ccompiler
    # kernels still queued would only run after the last test: drop them
    ccompiler.cancel_pending(timeout=120)
    if saved is None:
        del theon.config.compiledir
    else:
        theon.config.compiledir = saved


@pytest.fixture(autouse=True)
def _host_only(request):
    """A test marked ``host_only`` names its backend (a mode's linker) or runs kernels
    directly, so the device flag does not reach it; it runs with device=cpu whatever
    THEON_FLAGS says, which makes that so. CI's stand-in pass leaves these tests to the first
    pass (``-m "not host_only"``): they would run the same code again."""
    if request.node.get_closest_marker("host_only") is None:
        yield
        return
    old = theon.config.device
    theon.config.device = "cpu"
    yield
    theon.config.device = old


@pytest.fixture(autouse=True)
def _floatx_float64():
    old = theon.config.floatX
    theon.config.floatX = "float64"
    yield
    theon.config.floatX = old


def pytest_configure(config):
    # before collection too: some test modules build their variables at import time
    theon.config.floatX = "float64"
    # A test that does not wait for its C kernels ends before they would arrive: compiling
    # them behind it took about 40% of the suite's time on two cores (a core the other worker
    # needs) and let a kernel land in the middle of a later test, which then ran half on
    # numpy, half in C. The tests that check C kernels wait for them (tests/ops/conftest.py,
    # wait_for_kernels); those of the background path turn it back on.
    theon.config.background_kernels = False
    on_logging = os.environ.get("THEON_TEST_BACKEND") == "logging"  # the suite on the toy one
    if on_logging or "logging" in _backends_to_run():
        config._logging_backend = _load("logging_backend",
                                        os.path.join("backends", "logging_backend.py")).BACKEND
    if on_logging:
        theon.config.linker = "logging"


def pytest_generate_tests(metafunc):
    # THEON_TEST_BACKENDS=a,b: each test that uses the backend fixture runs once per backend
    names = _backends_to_run()
    if not names or "backend" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        if "backend" in str(mark.args[0]):
            return  # the test names its backends itself
    metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture
def backend(request) -> str:
    """The linker the test compiles for: ``config.linker`` unless parametrized with names
    (``@pytest.mark.parametrize("backend", ["py", "logging"], indirect=True)``, or
    THEON_TEST_BACKENDS for the whole run). It is ``config.linker`` while the test runs, so
    plain ``theon.function`` calls and ``eval`` use it too."""
    name = getattr(request, "param", theon.config.linker)
    backends.get(name)  # an unknown name fails here, saying which are registered
    old = theon.config.linker
    theon.config.linker = name
    yield name
    theon.config.linker = old


@pytest.fixture
def branches():
    """``helpers.tracked_branches()``: ops recording which ifelse branches ran."""
    return helpers.tracked_branches()


@pytest.fixture
def run(backend):
    """``run(inputs, out, values, expect)``: compile on the backend, call, check the value and
    its declared type (tests/helpers.py); ``run.check(got, out, expect)`` checks alone."""
    return helpers.Runner()


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


@pytest.fixture(scope="module")
def pictured():
    """(a compiled function holding a fused kernel, a loop and an update, its cost): the
    graph the picture tests (pydotprint, d3viz) draw."""
    import numpy as np
    import theon.tensor as T
    x = T.matrix("x")
    W = theon.shared(np.ones((3, 3)), name="W")
    h = T.tanh(x.dot(W) * 2 + 1)  # a fused kernel
    rows, _ = theon.scan(lambda r, acc: T.tanh(acc * r + 1), sequences=[x],
                         outputs_info=[T.zeros_like(x[0])])  # a loop
    cost = h.sum() + rows[-1].sum()
    f = theon.function([x], cost, updates=[(W, W - 0.1 * T.grad(cost, W))],
                       mode=theon.Mode(linker="py"))
    return f, cost


@pytest.fixture
def device():
    """device=cuda on the CPU stand-in for the test (its runtime, stats reset), the CPU after
    it; skips where the stand-in has no C++ compiler."""
    from theon import config
    from theon.backends.cuda import simulator
    from theon.backends.cuda.backend import runtime
    if simulator.cxx() is None:
        pytest.skip("no C++ compiler for the stand-in's kernels (cxx= stands for a machine "
                    "without one)")
    saved = config.device, config.cuda.simulator
    config.device, config.cuda.simulator = "cuda", True
    rt = runtime()
    rt.stats.reset()
    yield rt
    config.device, config.cuda.simulator = saved
