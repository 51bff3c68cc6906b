"""Logistic regression, in the style of the classic Theano tutorial: a weight vector and a bias
in shared variables, the cross-entropy cost with an L2 penalty, its gradient from
``theano.grad``, and one compiled ``train`` function whose ``updates`` take a gradient step.

Run ``python examples/logreg.py`` or ``python -m examples.logreg`` (``--steps N``,
``--optimizer {manual,sgd,adam}``, ``--quiet``). The data are two overlapping Gaussian clouds
in ``feats`` dimensions (a fixed seed); it prints the cost every few steps and the accuracy at
the end (0.98 on the training points with the defaults).

The update is written out by hand (``--optimizer manual``, the tutorial's
``(w, w - lr * gw)``) or taken from ``theon.updates`` (``sgd``, ``adam``): the same dictionary
either way, handed to ``theano.function(..., updates=...)``.
"""
from __future__ import annotations

import argparse

import numpy as np
import theon as theano
import theon.tensor as T


def make_data(n: int = 400, feats: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in ``feats`` dimensions, labels 0 or 1; each class a unit Gaussian around
    its own centre (the centres about 3.5 standard deviations apart), floatX points."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    direction = rng.normal(size=feats)
    direction *= 1.75 / np.linalg.norm(direction)
    points = rng.normal(size=(n, feats)) + np.where(labels[:, None] == 1, direction, -direction)
    return points.astype(theano.config.floatX), labels.astype(theano.config.floatX)


def build(feats: int, lr: float = 0.1, l2: float = 0.01, optimizer: str = "manual",
          seed: int = 0):
    """The model's shared variables and its two functions: ``train(x, y)`` (one gradient step
    on the whole batch; returns the cost before it) and ``predict(x)`` (0/1 labels)."""
    floatX = theano.config.floatX
    rng = np.random.default_rng(seed)
    x, y = T.matrix("x"), T.vector("y")
    w = theano.shared((0.01 * rng.normal(size=feats)).astype(floatX), name="w")
    b = theano.shared(np.asarray(0.0, dtype=floatX), name="b")
    p_1 = T.nnet.sigmoid(T.dot(x, w) + b)        # probability that the label is 1
    xent = T.nnet.binary_crossentropy(p_1, y)    # -y log p - (1 - y) log(1 - p)
    cost = xent.mean() + np.asarray(l2, floatX) * (w ** 2).sum()
    if optimizer == "manual":
        gw, gb = theano.grad(cost, [w, b])
        step = np.asarray(lr, floatX)
        updates = [(w, w - step * gw), (b, b - step * gb)]
    elif optimizer in ("sgd", "adam"):
        updates = getattr(theano.updates, optimizer)(cost, [w, b], learning_rate=lr)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: manual, sgd or adam")
    train = theano.function([x, y], cost, updates=updates)
    predict = theano.function([x], p_1 > 0.5)
    return (w, b), train, predict


def main(steps: int = 200, n: int = 400, feats: int = 50, optimizer: str = "manual",
         lr: float | None = None, seed: int = 0, verbose: bool = True) -> dict:
    """Train for ``steps`` full-batch steps; return the first and last costs and the final
    accuracy on the training points."""
    X, Y = make_data(n, feats, seed)
    if lr is None:
        lr = 0.01 if optimizer == "adam" else 0.1
    _, train, predict = build(feats, lr=lr, optimizer=optimizer, seed=seed)
    costs = []
    for k in range(steps):
        costs.append(float(train(X, Y)))
        if verbose and (k % max(1, steps // 5) == 0 or k == steps - 1):
            print(f"step {k:4d}  cost {costs[-1]:.4f}")
    accuracy = float(np.mean(predict(X) == Y))
    if verbose:
        print(f"final: cost {costs[-1]:.4f}, accuracy {accuracy:.3f} ({optimizer})")
    return {"first": costs[0], "last": costs[-1], "accuracy": accuracy}


def _cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--optimizer", choices=["manual", "sgd", "adam"], default="manual")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    main(steps=args.steps, optimizer=args.optimizer, verbose=not args.quiet)


if __name__ == "__main__":
    _cli()
