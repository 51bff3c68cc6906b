"""function(..., profile=True): calls and time per node and per op class, the compile phases,
the summary table with the user's lines; THEON_FLAGS=profile=True; code mode, the table of
steps, lazy branches and the device stand-in; no probe code in an unprofiled function."""
import inspect
import io
import re
import types

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon import config
from theon.backends import numpy_backend
from theon.compile import profiling
from theon.compile.profiling import ProfileStats
from theon.ifelse import ifelse

CALLS = 3


def _graph():
    x = T.matrix("x")
    W = theon.shared(np.full((3, 4), 0.5), "W")
    h = T.tanh(T.dot(x, W))  # LINE: dot
    cost = T.log(h + 1).sum()  # LINE: cost
    return x, cost


def _line_of(tag: str) -> int:
    with open(__file__) as fh:
        return next(k for k, text in enumerate(fh, 1) if text.rstrip().endswith(f"# LINE: {tag}"))


def _profiled(linker: str | None = None):
    x, cost = _graph()
    mode = theon.Mode(linker=linker) if linker else None
    f = theon.function([x], cost, profile=True, mode=mode)
    for _ in range(CALLS):
        f(np.ones((2, 3)))
    return f


@pytest.fixture(scope="module")
def profiled():
    return _profiled(linker="py")


def test_every_node_is_counted_and_timed(profiled):
    stats = profiled.profile
    assert isinstance(stats, ProfileStats)
    assert stats.fct_callcount == CALLS and stats.fct_call_time > 0
    nodes = profiled.maker.fgraph.toposort()
    assert set(stats.apply_callcount) == set(nodes)
    assert all(n == CALLS for n in stats.apply_callcount.values())
    assert all(t > 0 for t in stats.apply_time.values())
    # the nodes run inside the calls
    assert sum(stats.apply_time.values()) <= stats.fct_call_time
    rows = stats.node_rows()
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    for r in rows:
        assert r["mean"] == pytest.approx(r["time"] / CALLS)
        assert r["share"] == pytest.approx(r["time"] / stats.fct_call_time)
    classes = stats.op_class_rows()
    assert {c["op_class"] for c in classes} == {type(n.op).__name__ for n in nodes}
    assert sum(c["time"] for c in classes) == pytest.approx(sum(r["time"] for r in rows))
    assert sum(c["calls"] for c in classes) == CALLS * len(nodes)


def test_compile_phases_are_timed(profiled):
    phases = profiled.profile.compile_phases
    for name in ("graph copy", "rewrite: merge", "rewrite: canonicalize", "rewrite: fusion",
                 "rewrite: merge (again)", "inner graphs", "code generation"):
        assert name in phases and phases[name] >= 0, name
    stats = profiled.profile
    assert stats.compile_time == pytest.approx(sum(phases.values()))
    assert 0 < stats.optimizer_time < stats.compile_time
    assert stats.linker_time == phases["code generation"]


def test_summary_prints_the_table_sorted_with_the_users_lines(profiled):
    out = io.StringIO()
    profiled.profile.summary(file=out)
    text = out.getvalue()
    assert f"{CALLS} call(s)" in text and "rewrite: canonicalize" in text
    assert "Op classes, by time:" in text and "Nodes, by time:" in text
    node_lines = text.split("Nodes, by time:")[1].strip().splitlines()[1:]
    assert len(node_lines) == len(profiled.maker.fgraph.toposort())
    shares = [float(line.split("%")[0]) for line in node_lines]
    assert shares == sorted(shares, reverse=True)
    for tag, source in (("dot", "h = T.tanh(T.dot(x, W))"), ("cost", "cost = T.log(h + 1).sum()")):
        where = f"test_profiling.py:{_line_of(tag)} (in _graph): {source}"
        assert any(where in line for line in node_lines), where


def test_summary_goes_to_stderr_by_default(profiled, capsys):
    profiled.profile.summary()
    captured = capsys.readouterr()
    assert "Function profiling" in captured.err and not captured.out


def _probes_in(fn) -> list:
    """The profile's per-node wrappers bound in a generated function's namespace."""
    return [v for v in fn.__globals__.values()
            if isinstance(v, types.FunctionType) and v.__qualname__.startswith(
                ("ProfileStats.wrap", "Guard.wrap"))]


def test_an_unprofiled_function_holds_no_probe_code(profiled):
    x, cost = _graph()
    f = theon.function([x], cost, mode=theon.Mode(linker="py"))
    assert f.profile is None
    assert type(f).__call__ is f.fn and not _probes_in(f.fn)
    # the profiled one calls a wrapper per node (and its calls are timed as a whole; on a
    # device, the host copies of the shared values wrap the generated function too)
    generated = inspect.unwrap(profiled.fn)
    assert len(_probes_in(generated)) == len(profiled.maker.fgraph.toposort())
    assert profiled(np.ones((2, 3))) == f(np.ones((2, 3)))


def test_the_table_of_steps_is_profiled(monkeypatch):
    monkeypatch.setattr(numpy_backend, "TABLE_NODES", 1)
    f = _profiled(linker="py")
    assert "the schedule: _run" in f.source
    stats = f.profile
    assert len(stats.nodes) == len(f.maker.fgraph.toposort())
    assert all(n == CALLS for n in stats.apply_callcount.values())
    assert all(t > 0 for t in stats.apply_time.values())


@pytest.mark.parametrize("table", [False, True])
def test_lazy_branches_count_the_calls_that_took_them(monkeypatch, table):
    if table:
        monkeypatch.setattr(numpy_backend, "TABLE_NODES", 1)
    c, x = T.scalar("c"), T.vector("x")
    z = ifelse(T.gt(c, 0), T.exp(x).sum(), T.sin(x).sum())
    f = theon.function([c, x], z, profile=True, mode=theon.Mode(linker="py"))
    for cond in (1.0, 1.0, -1.0):
        f(cond, np.ones(3))
    calls = {str(n.op): k for n, k in f.profile.apply_callcount.items()}
    assert calls["Sum{axis=[0]}(exp(i0))"] == 2 and calls["Sum{axis=[0]}(sin(i0))"] == 1
    assert f.profile.fct_callcount == 3


def test_profile_shared_by_functions_and_named():
    stats = ProfileStats("both")
    x = T.vector("x")
    f = theon.function([x], T.exp(x), profile=stats, mode=theon.Mode(linker="py"))
    g = theon.function([x], T.sin(x), profile=stats, mode=theon.Mode(linker="py"))
    f(np.ones(2))
    g(np.ones(2))
    assert f.profile is stats and g.profile is stats
    assert stats.fct_callcount == 2 and len(stats.nodes) == 2
    h = theon.function([x], T.cos(x), profile="named", mode=theon.Mode(linker="py"))
    assert h.profile.message == "named"
    assert theon.function([x], T.cos(x), profile=False).profile is None


def test_the_flag_profiles_and_prints_at_exit(monkeypatch, capsys):
    monkeypatch.setattr(config, "profile", True)
    monkeypatch.setattr(profiling, "_PRINT_AT_EXIT", [])
    monkeypatch.setattr(profiling.atexit, "register", lambda fn: None)
    x = T.vector("x")
    f = theon.function([x], T.exp(x) * 2, mode=theon.Mode(linker="py"))
    unused = theon.function([x], T.exp(x) * 3, mode=theon.Mode(linker="py"))
    assert f.profile is not None and profiling._PRINT_AT_EXIT == [f.profile, unused.profile]
    assert f(np.ones(2)).tolist() == [2 * np.e] * 2
    # an explicit profile=False wins over the flag
    assert theon.function([x], T.exp(x), profile=False).profile is None
    profiling._print_all()
    err = capsys.readouterr().err
    assert err.count("Function profiling") == 1  # the function never called is left out
    assert "test_profiling.py" in err


def test_config_flag_parses():
    assert config.profile is False
    config.profile = "True"
    try:
        assert config.profile is True
    finally:
        config.profile = False


def test_c_kernels_are_waited_for_and_their_compile_time_reported():
    from theon.backends import ccompiler
    if ccompiler.compiler() is None:
        pytest.skip("no C compiler (cxx=)")
    assert config.wait_for_kernels is False  # a profiled function waits all the same
    x = T.vector("x")
    # a kernel no other test asks for, so that this build compiles it
    f = theon.function([x], T.tanh(x) * 7.25 + 0.125, profile=True, mode=theon.Mode(linker="c"))
    f(np.ones(3))
    stats = f.profile
    assert stats.kernel_compile_time is not None and stats.kernel_compile_time > 0
    assert stats.kernel_compile_time <= stats.compile_phases["code generation"]
    out = io.StringIO()
    stats.summary(file=out)
    assert re.search(r"of which C kernels +[0-9.]+ s \(1 library: 1 (compiled|from the cache)\)",
                     out.getvalue())
    # the node's line calls its kernel's runner, not the stand-in waiting for the kernel
    (probe,) = _probes_in(f.fn.__wrapped__)
    thunk = dict(zip(probe.__code__.co_freevars, probe.__closure__))["fn"].cell_contents
    assert thunk.__qualname__.startswith("_runner.")


def test_the_flag_prints_the_summary_when_the_process_exits():
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    # no C compiler: nothing to compile in the child, no cache written (the device stand-in
    # builds its kernels with one: into this run's own cache, which holds its scheduler)
    child = "cxx=" if config.device == "cpu" else f"compiledir={config.compiledir}"
    env["THEON_FLAGS"] = ",".join(filter(None, [env.get("THEON_FLAGS", ""), "profile=True",
                                                child]))
    code = ("import numpy as np, theon, theon.tensor as T\n"
            "x = T.vector('x')\n"
            "f = theon.function([x], T.exp(x) * 2)\n"
            "f(np.ones(3)); f(np.ones(3))\n"
            "print('done')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "done\n"
    assert "Function profiling: <string>:3" in proc.stderr and "2 call(s)" in proc.stderr
    assert "Elemwise{" in proc.stderr or "Fused{" in proc.stderr
