"""The training examples of issue 12 at a small size: logistic regression (examples/logreg.py)
learns with a hand-written update, theon.updates.sgd (the same numbers) and adam; the MLP
trained with adam, saved and reloaded into a new model (examples/finetune.py) goes on from
where it stopped, taking the steps an uninterrupted run takes; both run as their command
lines do."""
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import theon as theano
from theon.examples import finetune, logreg, mlp

ROOT = Path(theano.__file__).resolve().parent
SMALL = {"n_per_class": 100, "n_hidden": 16, "batch_size": 30, "lr": 0.02}


def test_logreg_learns_with_every_optimizer(capsys):
    runs = {opt: logreg.main(steps=40, n=200, feats=10, optimizer=opt, verbose=opt == "manual")
            for opt in ("manual", "sgd", "adam")}
    out = capsys.readouterr().out
    assert "step    0  cost" in out and "final: cost" in out
    for opt, run in runs.items():
        assert run["last"] < 0.6 * run["first"] and run["accuracy"] > 0.9, (opt, run)
    assert runs["sgd"]["last"] == pytest.approx(runs["manual"]["last"], rel=1e-6)
    with pytest.raises(ValueError, match="unknown optimizer"):
        logreg.build(3, optimizer="lbfgs")


def test_finetune_continues_where_it_stopped(tmp_path, capsys):
    path = tmp_path / "w.npz"
    result = finetune.main(epochs=2, path=str(path), verbose=True, **SMALL)
    out = capsys.readouterr().out
    assert "saved 13 arrays" in out and "loaded 13 arrays into a new model" in out
    before, after = result["before"], result["after"]
    # the reloaded model starts near the loss it stopped at, far below its own fresh weights'
    assert after[0] < before[0] and after[0] < result["fresh_loss"] - 0.05
    # and it takes the steps an uninterrupted run of the same epochs takes
    X, y = mlp.make_spirals(n_per_class=SMALL["n_per_class"], seed=0)
    n_train = int(0.8 * len(y))
    model = finetune.Model(X[:n_train], y[:n_train], SMALL["n_hidden"], 3, 0, SMALL["lr"],
                           SMALL["batch_size"])
    straight = [model.run_epoch(epoch, 0) for epoch in range(1, 5)]
    np.testing.assert_allclose(before + after, straight, rtol=1e-5)


def test_finetune_weights_only_reports_the_fresh_optimizer(tmp_path):
    result = finetune.main(epochs=1, path=str(tmp_path / "w.npz"), weights_only=True,
                           verbose=False, **SMALL)
    report = result["report"]
    assert report.loaded == ["W1", "b1", "W2", "b2"] and report.missing[-1] == "t"
    assert len(report.missing) == 9 and not report.unexpected and not report.mismatched
    assert result["after"][0] < result["fresh_loss"]


def test_command_lines(tmp_path, capsys, monkeypatch):
    logreg._cli(["--steps", "3", "--optimizer", "adam"])
    assert "(adam)" in capsys.readouterr().out
    # finetune.py as a script: examples/ first on sys.path and no package, so it imports mlp
    # by its file name (run here, not in a subprocess: importing theon again costs seconds)
    script = ROOT / "examples" / "finetune.py"
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "1", "--path",
                                      str(tmp_path / "w.npz")])
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.modules.pop("mlp", None)
    assert "loaded 13 arrays" in capsys.readouterr().out and (tmp_path / "w.npz").exists()
