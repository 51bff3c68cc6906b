"""The LeNet and denoising-autoencoder examples (examples/lenet.py, examples/dae.py) train at
a small size: LeNet's test error falls far below chance with dropout active in training only;
the autoencoder's cost falls and its reconstructions of corrupted images are closer to the
clean ones than the corrupted images are. Both run from the command line as documented."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import theon as theano
from theon.examples import dae, lenet

ROOT = Path(theano.__file__).resolve().parent


def test_lenet_learns_the_strokes(capsys):
    result = lenet.main(epochs=3, n_train=768, n_test=256, verbose=True)
    assert result["initial"] > 0.5 and result["final"] < 0.2
    out = capsys.readouterr().out
    errors = [float(m) for m in re.findall(r"^epoch\s+\d+\s+train loss \S+\s+test error "
                                           r"(\d\.\d+)", out, re.M)]
    assert len(errors) == 3 and f"final: test error {result['final']:.3f}" in out


def test_lenet_drops_units_in_training_only():
    rng = np.random.default_rng(1)
    params = lenet.init_params(rng)
    X, Y = lenet.make_images(64, seed=3)
    train, error = lenet.build(params, theano.shared(X), theano.shared(Y), batch_size=64,
                               lr=0.0, momentum=0.0, seed=5)
    losses = {float(train(0)) for _ in range(3)}  # no learning: only the masks change
    assert len(losses) == 3
    assert error(X, Y) == error(X, Y)


def test_images_have_their_kinds():
    X, Y = lenet.make_images(40, noise=0.0, seed=2)
    assert X.shape == (40, 1, 16, 16) and Y.dtype == np.int32 and set(Y) <= {0, 1, 2, 3}
    for img, kind in zip(X[:, 0], Y):
        rows, cols = np.nonzero(img)
        if kind == 0:
            assert len(set(rows)) == 1
        elif kind == 1:
            assert len(set(cols)) == 1


def test_dae_denoises(capsys):
    result = dae.main(epochs=8, n_train=1024, n_test=128, verbose=True)
    assert result["last"] < 0.6 * result["first"]
    assert result["denoised"] < result["corrupted"]
    assert "final: corrupted test images" in capsys.readouterr().out


def test_examples_command_line():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for module in ("examples.lenet", "examples.dae"):
        proc = subprocess.run([sys.executable, "-m", module, "--epochs", "1"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "epoch   1" in proc.stdout and "final:" in proc.stdout
