"""The benchmark machinery's newer parts (the floor column, self-timed samples, cells a builder
declares unavailable) and the W1 cases' pieces, on small sizes: the full table runs in
tests/examples/test_examples.py."""
import json
import subprocess
import sys

import numpy as np
import pytest
import theon
from theon import benchmarks
from theon.backends import ccompiler
from theon.benchmarks import cases, kernel_compile

QUICK = benchmarks.QUICK


def _case(**kw):
    base = dict(name="toy", description="toy", setup=lambda: {"x": np.arange(3.0)},
                theon=lambda d: benchmarks.Bench(np.negative, (d["x"],)),
                numpy=lambda d: benchmarks.Bench(np.negative, (d["x"],)))
    base.update(kw)
    return benchmarks.Case(**base)


def test_floor_column_only_where_a_case_has_a_floor():
    plain = benchmarks.run_case(_case(), QUICK)
    assert "floor" not in benchmarks.table([plain])
    # the floor computes something else (it only moves the bytes): timed, not compared
    floored = benchmarks.run_case(
        _case(name="floored", floor=lambda d: benchmarks.Bench(np.copy, (d["x"],))), QUICK)
    text = benchmarks.table([plain, floored])
    assert "theon/floor" in text.splitlines()[0]
    assert floored.times["floor"] > 0 and floored.ratio("floor") > 0
    assert plain.times["floor"] is None


def test_unavailable_theon_is_na_with_its_reason():
    def no_compiler(d):
        raise benchmarks.Unavailable("no C compiler")
    result = benchmarks.run_case(_case(theon=no_compiler, kind="compile"), QUICK)
    assert result.times["theon"] is None
    assert result.notes["theon"] == "n/a: no C compiler"
    row = benchmarks.table([result]).splitlines()[2].split()
    assert row[:2] == ["toy", "n/a"]


def test_self_timed_bench_counts_what_it_returns_and_max_samples_caps():
    calls = []

    def sample():
        calls.append(1)
        return 0.25  # seconds, as a child process would report them
    theon_bench = lambda d: benchmarks.Bench(sample, self_timed=True,  # noqa: E731
                                             note=lambda: f"{len(calls)} calls")
    result = benchmarks.run_case(_case(theon=theon_bench, numpy=None, kind="compile",
                                       max_samples=2), QUICK)
    assert result.times["theon"] == 0.25 and result.first["theon"] == 0.25
    assert result.samples["theon"] == 2 and len(calls) == 3  # the warm-up, then two samples
    assert result.notes["theon"] == "3 calls"


@pytest.mark.parametrize("builder", [cases.theon_w1, cases.theon_w1_numpy_path])
def test_w1_theon_matches_numpy(builder):
    data = cases.w1_data(1001)
    bench = builder(data)
    got = bench.fn(*bench.args)
    want = cases.numpy_w1(data).fn(*bench.args)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=cases.W1_RTOL, atol=cases.W1_ATOL)


def test_floor_passes_move_w1_bytes_and_write_only_their_output():
    data = cases.w1_data(100_003)  # not a multiple of a vector's width: the loop's tail runs
    before = {k: v.copy() for k, v in data.items()}
    passes, out = cases.floor_passes(data)
    if ccompiler.compiler() is None:
        assert passes == {}
    for label, run in passes.items():
        out[:] = 0
        assert run() is out
        np.testing.assert_allclose(out, data["a"] + data["b"] + data["c"] + data["d"],
                                   rtol=1e-6, err_msg=label)
    for k in data:
        np.testing.assert_array_equal(data[k], before[k])
    bench = cases.floor_w1(data)
    assert bench.self_timed and bench.fn() > 0
    assert "n float32" in bench.note()


def test_kernel_compile_child_reports_a_cold_then_cached_build(tmp_path):
    if ccompiler.compiler() is None:
        pytest.skip("no C compiler")
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "theon.benchmarks.kernel_compile",
                               "--compiledir", str(tmp_path)], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for run in runs:
        assert run["seconds"] > 0 and run["py_seconds"] > 0
    # the second process compiles nothing the first one compiled
    assert runs[1]["stats"].get("compiled", 0) == 0
    assert runs[1]["stats"].get("disk_hits", 0) == runs[0]["stats"].get("compiled", 0)


def test_compile_rows_are_na_without_a_compiler(monkeypatch):
    monkeypatch.setattr(theon.config, "cxx", "")
    with pytest.raises(benchmarks.Unavailable):
        cases.theon_w1_compile_cold({})
    assert kernel_compile.N > 0


def test_device_report_prints_the_stand_in_plan_without_a_gpu():
    """``python -m benchmarks --device cuda`` with no GPU: the MLP step's kernel plan from
    the CPU stand-in, and no time (the stand-in is not a GPU)."""
    import io

    try:
        import cupy  # noqa: F401
        pytest.skip("cupy is installed: the report would look for a GPU")
    except ImportError:
        pass
    from theon import config
    from theon.backends.cuda import simulator
    from theon.benchmarks.device import report
    if simulator.cxx() is None:
        pytest.skip("no C++ compiler for the stand-in's kernels")
    saved = config.device, config.cuda.simulator, config.floatX
    out = io.StringIO()
    try:
        plan = report("cuda", out=out)
    finally:
        config.device, config.cuda.simulator, config.floatX = saved
    text = out.getvalue()
    assert "CPU stand-in" in text and "launches" in text and "predicted on an H200" in text
    assert "argument x" in text and "measured" not in text
    # issue 11's goals for this step: at most 16 launches, at most 1.3x the minimum bytes,
    # no weight or gradient crossing (only the batch and small host values go in)
    assert len(plan.launches) <= 16, text
    assert plan.device_bytes <= 1.3 * plan.minimum_bytes, text
    assert all(t.bytes <= 4 for t in plan.transfers
               if t.what not in ("argument x",) and "ARange" not in t.what
               and "CheckedLabels" not in t.what), text
