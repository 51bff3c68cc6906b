"""The main example trains to its stated accuracy; the benchmark script runs and prints its
table (quick mode); both run as documented from the command line."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon import benchmarks
from theon.examples import mlp

ROOT = Path(theano.__file__).resolve().parent
CASE_NAMES = ["add_scalars", "add_scalars_trusted", "mlp_forward"]


def test_mlp_example_reaches_its_accuracy(capsys):
    accuracy = mlp.main(epochs=20, verbose=True)
    assert accuracy > mlp.TARGET_ACCURACY
    out = capsys.readouterr().out
    assert re.search(r"epoch\s+1 .*train loss \d\.\d+ .*test acc", out)
    assert f"test accuracy {accuracy:.3f}" in out


def test_mlp_example_trains_the_same_with_hand_written_gradients():
    symbolic = mlp.main(epochs=3, verbose=False, symbolic=True)
    by_hand = mlp.main(epochs=3, verbose=False, symbolic=False)
    assert by_hand == pytest.approx(symbolic, abs=2e-3)


def test_hand_written_gradients_match_theano_grad():
    rng = np.random.default_rng(1)
    params = mlp.init_params(rng, 2, 16, 3)
    x, y = T.matrix("x"), T.ivector("y")
    graph = mlp.forward(x, params)
    loss = T.nnet.categorical_crossentropy(graph["p"], y).mean()
    f = theano.function([x, y], mlp.gradients(loss, params, graph, y, symbolic=True)
                        + mlp.gradients(loss, params, graph, y, symbolic=False))
    X, Y = mlp.make_spirals(n_per_class=20)
    grads = f(X, Y)
    for symbolic, by_hand in zip(grads[:4], grads[4:]):
        np.testing.assert_allclose(by_hand, symbolic, rtol=1e-5, atol=1e-7)


def _rows(text):
    """The table's data rows, as {case name: cells}."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("case "))
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_benchmark_quick_prints_the_table(capsys):
    # the MLP cases and the compile-time table: the other cases' builders are checked at
    # small sizes in tests/benchmarks (their quick timings alone took a minute of CI)
    results = benchmarks.main(quick=True, cases=["add_scalars", "mlp_", benchmarks.COMPILE_TABLE])
    out = capsys.readouterr().out
    assert [r.case.name for r in results][:3] == CASE_NAMES
    rows = _rows(out)
    assert list(rows)[:3] == CASE_NAMES
    for name in ("add_scalars", "mlp_forward"):
        ratio = float(rows[name]["theon/numpy"])
        assert 0 < ratio < 100, (name, ratio)
        assert re.fullmatch(r"[\d.]+ (ns|us|ms|s)", rows[name]["theon"])
        for other in ("pytensor", "jax"):
            cell = rows[name][f"theon/{other}"]
            if benchmarks.available(other):
                assert float(cell) > 0
            else:
                assert cell == "n/a"
    assert re.fullmatch(r"[\d.]+ (us|ms|s)", rows["mlp_forward_compile"]["theon"])
    assert rows["mlp_forward_compile"]["numpy"] == "n/a"
    train = rows["mlp_train_step"]
    assert 0 < float(train["theon/numpy"]) < 100  # both ran, and agreed on the first loss
    assert re.fullmatch(r"[\d.]+ (us|ms|s)", rows["mlp_train_compile"]["theon"])
    # the compile-time table: one row per size, theon's 1,000-node row with its gradient
    table = out[out.index("compile time (function() wall time"):]
    sizes = [int(m) for m in re.findall(r"^theon\s+(\d+)", table, flags=re.M)]
    assert sizes == [8, 100, 1000]
    for r in results[:2]:
        assert r.ratio("numpy") == pytest.approx(r.times["theon"] / r.times["numpy"])


@pytest.mark.parametrize("argv, cwd, expect", [
    (["-m", "benchmarks", "--quick", "--case", "add_scalars"], "root", "add_scalars"),
    (["-m", "theon.benchmarks", "--list"], "elsewhere", "mlp_forward_compile"),
    (["-m", "examples.mlp", "--epochs", "1"], "root", "final: train accuracy"),
    (["examples/mlp.py", "--epochs", "1", "--hand-written-gradients"], "root",
     "hand-written backprop"),
])
def test_command_lines(argv, cwd, expect, tmp_path):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable] + argv, cwd=ROOT if cwd == "root" else tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert expect in proc.stdout
