"""The C backend (backends/c_backend.py): fused elementwise work as generated C kernels, the
rest on numpy; the default linker wherever a compiler is found. The op suite also runs on
it, each function waiting for its kernels (tests/ops/conftest.py); these tests check what is
particular to it: kernels are really used, the switch from numpy when they finish compiling,
the fallbacks, and the outputs it hands out."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.backends import c_backend, ccompiler
from theon.compile.mode import Mode
from theon.ops.fused import Fused

pytestmark = [pytest.mark.host_only,
              pytest.mark.skipif(ccompiler.compiler() is None,
                                 reason="no C compiler found (config.cxx)")]
C = Mode(linker="c")


HOST_STORAGE = pytest.mark.skipif(
    theon.config.device != "cpu",
    reason="about host storage: a device keeps shared values in its own memory")


@pytest.fixture(autouse=True)
def _wait_for_kernels():
    old = theon.config.wait_for_kernels
    theon.config.wait_for_kernels = True
    yield
    theon.config.wait_for_kernels = old


def kernel_nodes(f) -> list:
    """The nodes of ``f`` that run a loaded kernel."""
    out = []
    for node in f.maker.fgraph.toposort():
        spec = c_backend._spec(node)
        if spec is not None and c_backend._KERNELS.entries.get(spec) is not None:
            out.append(node)
    return out


def test_the_default_linker_is_the_c_backend():
    assert theon.backends.get(theon.config.linker) is theon.backends.get("c")
    assert theon.backends.get("py") is not theon.backends.get("c")


def test_fused_work_runs_as_one_compiled_kernel():
    x, y = T.matrix("x"), T.row("y")
    f = theon.function([x, y], T.tanh(x) * y - x, mode=C)
    nodes = kernel_nodes(f)
    assert len(nodes) == 1 and isinstance(nodes[0].op, Fused)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(1, 3))
    np.testing.assert_allclose(f(a, b), np.tanh(a) * b - a, rtol=1e-14)
    np.testing.assert_allclose(f(a.T.copy().T, b), np.tanh(a) * b - a, rtol=1e-14)
    # transposed, sliced and reversed views, and a broadcast row given as a strided view
    big = rng.normal(size=(6, 8))
    for view in (big.T[:5, :3], big[::2, ::-3][:, :3], big[1:6, 2:5]):
        row = big[:1, ::3][:, :3]
        np.testing.assert_allclose(f(view, row), np.tanh(view) * row - view, rtol=1e-14)


def test_the_entry_code_is_one_support_library_per_cache(tmp_path, monkeypatch):
    """What every entry does (read the arrays, check and merge their dimensions, share the
    loop among threads: theon_run, theon_reduce) is compiled once per cache, not into each
    kernel library."""
    monkeypatch.setattr(theon.config, "compiledir", str(tmp_path))
    x = T.matrix("x")
    f = theon.function([x], T.tanh(x) * 3.0625 - x, mode=C)
    g = theon.function([x], (T.exp(x) * 2.0625).sum(axis=1), mode=C)
    v = np.linspace(-2, 2, 12).reshape(3, 4)
    np.testing.assert_allclose(f(v), np.tanh(v) * 3.0625 - v, rtol=1e-12)
    np.testing.assert_allclose(g(v), (np.exp(v) * 2.0625).sum(axis=1), rtol=1e-12)
    assert kernel_nodes(f) and kernel_nodes(g)
    made = [e for e in ccompiler.entries(tmp_path) if e.kind == "entry"]
    assert sorted(e.name for e in made) == ["kernels", "kernels", "support"]
    for e in made:
        source = (e.path / "source.c").read_text()
        assert ("int theon_run(" in source) == (e.name == "support")


def test_integer_semantics_are_numpys():
    x, y = T.vector("x", dtype="int8"), T.vector("y", dtype="int8")
    f = theon.function([x, y], [x // y, x % y, x * y, T.maximum(x, y), (x * y) // y + x],
                       mode=C)
    assert kernel_nodes(f)
    a = np.array([-7, 7, -128, 5, 100], dtype="int8")
    b = np.array([2, -2, -1, 0, 3], dtype="int8")
    with np.errstate(all="ignore"):
        want = [a // b, a % b, a * b, np.maximum(a, b), (a * b) // b + a]
    for got, w in zip(f(a, b), want):
        assert got.dtype == w.dtype
        np.testing.assert_array_equal(got, w)


def test_a_shape_mismatch_names_the_users_line_as_on_numpy():
    x, y = T.matrix("x"), T.matrix("y")
    f = theon.function([x, y], T.exp(x + y) * 2, mode=C)
    assert kernel_nodes(f)
    with pytest.raises(ValueError) as err:
        f(np.ones((2, 3)), np.ones((2, 4)))
    assert __file__ in str(err.value)


def test_scalars_and_empty_arrays():
    a, b = T.dscalar("a"), T.dvector("b")
    f = theon.function([a, b], [a * 2 + 1, T.exp(b * a) + 1], mode=C)
    s, v = f(1.5, np.zeros(0))
    assert s.shape == () and float(s) == 4.0
    assert v.shape == (0,)
    s, v = f(1.5, np.ones(1))
    np.testing.assert_allclose(v, np.exp([1.5]) + 1)


def test_an_output_held_by_the_caller_is_never_rewritten():
    x = T.dvector("x")
    f = theon.function([x], T.exp(x) * 2 + 1, mode=C)
    assert kernel_nodes(f)
    first = f(np.zeros(4))
    view = f(np.ones(4))[1:]
    second = f(np.full(4, 2.0))
    np.testing.assert_allclose(first, np.full(4, 3.0))
    np.testing.assert_allclose(view, np.full(3, 2 * np.e + 1))
    np.testing.assert_allclose(second, np.full(4, 2 * np.exp(2) + 1))
    assert not np.shares_memory(first, second) and not np.shares_memory(view, second)


def test_an_output_nobody_holds_is_reused():
    """A fresh large array costs a page fault per page: a dropped output is written again."""
    x = T.dvector("x")
    f = theon.function([x], T.exp(x) * 2 + 1, mode=C)
    address = f(np.zeros(1000)).ctypes.data
    assert f(np.ones(1000)).ctypes.data == address


def test_arguments_that_are_not_arrays_take_the_slow_path():
    x = T.dvector("x")
    y = T.dscalar("y")
    f = theon.function([x, y], T.exp(x) * y + 1, mode=C)
    assert kernel_nodes(f)
    np.testing.assert_allclose(f([0.0, 1.0], 2.0), np.exp([0.0, 1.0]) * 2 + 1)
    np.testing.assert_allclose(f(np.arange(3.0), np.float64(0.5)),
                               np.exp(np.arange(3.0)) * 0.5 + 1)


def test_the_function_switches_to_its_kernels_when_they_are_compiled(monkeypatch):
    theon.config.wait_for_kernels = False
    monkeypatch.setattr(theon.config, "background_kernels", True)  # (off in the tests)
    x = T.dvector("x")
    # a graph no other test compiles, so that its kernel is new to this process
    f = theon.function([x], T.arctan(T.sinh(x) * 3.25) - 0.125, mode=C)
    want = np.arctan(np.sinh(np.arange(5.0)) * 3.25) - 0.125
    np.testing.assert_allclose(f(np.arange(5.0)), want, rtol=1e-14)  # numpy or C
    ccompiler.wait_all(timeout=120)
    assert kernel_nodes(f)
    (node,) = kernel_nodes(f)
    spec = c_backend._spec(node)
    assert spec not in c_backend._KERNELS.pending
    np.testing.assert_allclose(f(np.arange(5.0)), want, rtol=1e-14)


def test_without_background_compiles_a_function_stays_on_numpy_until_one_waits(monkeypatch):
    theon.config.wait_for_kernels = False
    monkeypatch.setattr(theon.config, "background_kernels", False)
    x = T.dvector("x")
    # a graph no other test compiles, so that its kernel is new to this process
    out = T.arctan(T.cosh(x) * 1.375) - 0.625
    want = np.arctan(np.cosh(np.arange(5.0)) * 1.375) - 0.625
    f = theon.function([x], out, mode=C)
    ccompiler.wait_all(timeout=0)  # nothing was queued
    np.testing.assert_allclose(f(np.arange(5.0)), want, rtol=1e-14)
    assert not kernel_nodes(f)
    (node,) = [n for n in f.maker.fgraph.toposort() if c_backend._spec(n) is not None]
    assert c_backend._spec(node) not in c_backend._KERNELS.pending  # dropped, not waiting
    theon.config.wait_for_kernels = True  # a later build asks again, and compiles now
    g = theon.function([x], out, mode=C)
    assert kernel_nodes(g)
    np.testing.assert_allclose(g(np.arange(5.0)), want, rtol=1e-14)


def test_a_failed_compile_warns_once_and_runs_on_numpy(monkeypatch):
    monkeypatch.setattr(c_backend, "_FLAGS", [("-fno-such-flag-for-theon",)])
    monkeypatch.setattr(c_backend._KERNELS, "warned", False)
    x = T.dvector("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = theon.function([x], T.arcsinh(T.cosh(x) * 1.75) + 0.375, mode=C)
        g = theon.function([x], T.arcsinh(T.cosh(x) * 2.75) + 0.375, mode=C)
    messages = [str(w.message) for w in caught if "C kernels unavailable" in str(w.message)]
    assert len(messages) == 1, messages
    assert not kernel_nodes(f) and not kernel_nodes(g)
    np.testing.assert_allclose(f(np.arange(3.0)), np.arcsinh(np.cosh(np.arange(3.0)) * 1.75)
                               + 0.375)


def test_no_compiler_means_numpy(monkeypatch):
    monkeypatch.setattr(theon.config, "cxx", "")
    x = T.dvector("x")
    f = theon.function([x], T.log1p(T.exp(x) * 4.5) - 1.0625, mode=C)
    assert not kernel_nodes(f)
    np.testing.assert_allclose(f(np.arange(3.0)), np.log1p(np.exp(np.arange(3.0)) * 4.5)
                               - 1.0625)


def test_py_forces_the_numpy_path():
    x = T.dvector("x")
    f = theon.function([x], T.exp(x) * 2 + 1, mode=Mode(linker="py"))
    assert "theon_k" not in f.source
    np.testing.assert_allclose(f(np.zeros(2)), [3.0, 3.0])


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_large_kernels_without_threads():
    """libgomp's thread pool does not survive fork: a child runs the loops on one thread."""
    import os
    x = T.dvector("x")
    f = theon.function([x], T.tanh(x) * 2 + 1, mode=C)
    big = np.linspace(-3, 3, c_backend.PARALLEL_ELEMENTS * 2)
    want = np.tanh(big) * 2 + 1
    # libm's tanh and numpy's may differ by an ulp, which the + 1 makes large near zero
    np.testing.assert_allclose(f(big), want, rtol=1e-14, atol=1e-15)  # the parent's threads start
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the kernel gives the right answer
        ok = np.allclose(f(big), want, rtol=1e-14, atol=1e-15)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- kernels writing into a given buffer (numpy_backend's out= protocol) -----------------------

@HOST_STORAGE
def test_a_weight_update_is_written_into_the_shared_storage_by_the_kernel():
    rng = np.random.default_rng(3)
    b = theon.shared(rng.normal(size=(4, 5)), "b")
    storage = b.get_value(borrow=True)
    g = T.matrix("g")
    f = theon.function([g], [], updates=[(b, b - 0.1 * T.tanh(g))], mode=C)
    (node,) = kernel_nodes(f)
    assert isinstance(node.op, Fused)
    want = b.get_value()
    for _ in range(3):
        G = rng.normal(size=(4, 5))
        f(G)
        want = want - 0.1 * np.tanh(G)
        assert b.get_value(borrow=True) is storage
        np.testing.assert_allclose(storage, want, rtol=1e-14)


def _kernel_thunk(out_expr, *inputs):
    f = theon.function(list(inputs), out_expr, mode=C)
    (node,) = kernel_nodes(f)
    fn = c_backend.CBackend().thunk(node)
    assert fn.takes_out
    return fn


def test_the_kernel_writes_into_a_dead_input_it_reads():
    x, y = T.matrix("x"), T.matrix("y")
    fn = _kernel_thunk(T.exp(x) * y + x, x, y)
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    want = np.exp(a) * b + a
    assert fn(a, b, out=a) is a  # the very buffer of an input: each element read, then written
    np.testing.assert_allclose(a, want, rtol=1e-14)


@pytest.mark.parametrize("view", ["transposed", "shifted", "read-only", "wrong dtype",
                                  "wrong shape"])
def test_a_buffer_the_kernel_cannot_use_is_left_alone(view):
    x, y = T.matrix("x"), T.matrix("y")
    fn = _kernel_thunk(T.exp(x) * y + x, x, y)
    rng = np.random.default_rng(5)
    base = rng.normal(size=(4, 5))
    a, b = base[:, :4], rng.normal(size=(4, 4))
    want = np.exp(a) * b + a
    out = {"transposed": lambda: a.T,  # overlaps a other than element for element
           "shifted": lambda: base[:, 1:],
           "read-only": lambda: np.frombuffer(np.zeros(16).tobytes()).reshape(4, 4),
           "wrong dtype": lambda: np.zeros((4, 4), "float32"),
           "wrong shape": lambda: np.zeros((4, 5))}[view]()
    before = base.copy()
    got = fn(a, b, out=out)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got is not out
    np.testing.assert_array_equal(base, before)  # nothing written into the input
