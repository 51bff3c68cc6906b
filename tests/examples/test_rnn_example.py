"""The RNN example (examples/rnn.py) trains at a small size: its test loss falls well below
where it started and below the repeat-the-last-value baseline, printing a line per epoch; it
runs as documented from the command line."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import theon as theano
from theon.examples import rnn

ROOT = Path(theano.__file__).resolve().parent


def test_rnn_example_learns_to_predict_the_next_value(capsys):
    result = rnn.main(epochs=6, n_hidden=16, steps=20, n_train=256, n_test=64, verbose=True)
    assert result["final"] < 0.1 * result["initial"]
    assert result["final"] < 0.5 * result["last_value"]
    assert result["final"] > result["noise"] * 0.5  # a loss, not a leak of the targets
    out = capsys.readouterr().out
    losses = [float(m) for m in re.findall(r"^epoch\s+\d+\s+train loss (\d\.\d+)", out, re.M)]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    assert f"final: test loss {result['final']:.4f}" in out


def test_waves_are_inputs_and_next_values():
    x, y = rnn.make_waves(3, 10, seed=4)
    assert x.shape == y.shape == (10, 3, 1) and x.dtype == theano.config.floatX
    np.testing.assert_array_equal(x[1:], y[:-1])


def test_rnn_example_command_line():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "examples.rnn", "--epochs", "1", "--steps",
                           "8", "--hidden", "4"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1" in proc.stdout and "final: test loss" in proc.stdout
