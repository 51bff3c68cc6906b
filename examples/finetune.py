"""Save, reload and keep training: the MLP of ``examples/mlp.py`` trained with
``theon.updates.adam``, its weights (and adam's state) saved by name with
``theon.save_params``, then loaded into a model built afresh (new random weights, new compiled
functions, as a new process would) with ``theon.load_params``, and trained on: the loss goes on
from where it stopped instead of starting over.

Run ``python examples/finetune.py`` or ``python -m examples.finetune`` (``--epochs N`` before
and after the reload, ``--path FILE``, ``--weights-only``, ``--quiet``).

adam's moments and step count are shared variables named after their weights (``W1_m``,
``W1_v``, ..., ``t``), so they are saved and loaded like the weights, and the reloaded run
takes the very steps the first one would have taken. With ``--weights-only`` the weights alone
are saved, and loaded beside a fresh adam (``strict=False``: the report lists adam's state as
not in the file, left as it was), the fine-tuning case: the loss goes on from where it was,
with adam's first steps starting over.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import theon as theano
import theon.tensor as T

try:  # run as a module of the package (python -m examples.finetune, the tests)
    from . import mlp
except ImportError:  # run as a script (python examples/finetune.py)
    import mlp


class Model:
    """The MLP's weights, adam's state for them, and the compiled training step and
    evaluation over training data held in shared variables."""

    def __init__(self, X_train: np.ndarray, y_train: np.ndarray, n_hidden: int,
                 n_classes: int, init_seed: int, lr: float, batch_size: int):
        self.params = mlp.init_params(np.random.default_rng(init_seed), X_train.shape[1],
                                      n_hidden, n_classes)
        self.X_train, self.y_train = X_train, y_train
        self.X = theano.shared(X_train, name="X_train")
        self.y = theano.shared(y_train, name="y_train")
        self.batch_size = batch_size
        x, y, i = T.matrix("x"), T.ivector("y"), T.lscalar("i")
        p = mlp.forward(x, self.params)["p"]
        loss = T.nnet.categorical_crossentropy(p, y).mean()
        accuracy = T.mean(T.eq(T.argmax(p, axis=1), y))
        updates = theano.updates.adam(loss, self.params, learning_rate=lr)
        self.optimizer_state = [v for v in updates if v not in self.params]
        batch = slice(i * batch_size, (i + 1) * batch_size)
        self.train = theano.function([i], loss, updates=updates,
                                     givens={x: self.X[batch], y: self.y[batch]})
        self.evaluate = theano.function([x, y], [loss, accuracy])

    def run_epoch(self, epoch: int, seed: int) -> float:
        """One pass over the training data, shuffled by ``(seed, epoch)`` (so a run resumed at
        an epoch sees the batches an uninterrupted run would); the mean loss."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self.y_train))
        self.X.set_value(self.X_train[order], borrow=True)
        self.y.set_value(self.y_train[order], borrow=True)
        n_batches = len(order) // self.batch_size
        return float(np.mean([self.train(b) for b in range(n_batches)]))


def main(epochs: int = 10, path: str = "mlp_weights.npz", weights_only: bool = False,
         n_per_class: int = 1000, n_hidden: int = 64, batch_size: int = 32, lr: float = 0.01,
         seed: int = 0, verbose: bool = True) -> dict:
    """Train ``epochs`` epochs, save, rebuild, load, train ``epochs`` more; return the epoch
    losses before and after the reload, the untrained reloaded model's would-be loss (the
    fresh weights'), and the final test accuracy."""
    X, y = mlp.make_spirals(n_per_class=n_per_class, seed=seed)
    n_train = int(0.8 * len(y))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    n_classes = int(y.max()) + 1

    def say(text):
        if verbose:
            print(text)

    first = Model(X_train, y_train, n_hidden, n_classes, seed, lr, batch_size)
    before = []
    for epoch in range(1, epochs + 1):
        before.append(first.run_epoch(epoch, seed))
        say(f"epoch {epoch:3d}  train loss {before[-1]:.4f}")
    saved = first.params + ([] if weights_only else first.optimizer_state)
    theano.save_params(path, saved)
    say(f"saved {len(saved)} arrays to {path}: {', '.join(v.name for v in saved)}")

    # a new model, as a new process would build it: other random weights, fresh adam state
    second = Model(X_train, y_train, n_hidden, n_classes, seed + 1, lr, batch_size)
    fresh_loss = float(second.evaluate(X_train, y_train)[0])
    if weights_only:
        report = theano.load_params(path, second.params + second.optimizer_state,
                                    strict=False)
        say(f"loaded {', '.join(report.loaded)}; adam starts over "
            f"(not in the file: {', '.join(report.missing)})")
    else:
        report = theano.load_params(path, second.params + second.optimizer_state)
        say(f"loaded {len(report.loaded)} arrays into a new model (its own initial loss "
            f"{fresh_loss:.4f})")
    after = []
    for epoch in range(epochs + 1, 2 * epochs + 1):
        after.append(second.run_epoch(epoch, seed))
        say(f"epoch {epoch:3d}  train loss {after[-1]:.4f}")
    test_loss, test_acc = (float(v) for v in second.evaluate(X_test, y_test))
    say(f"final: test loss {test_loss:.4f}, test accuracy {test_acc:.3f}")
    return {"before": before, "after": after, "fresh_loss": fresh_loss,
            "test_accuracy": test_acc, "report": report}


def _cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs before the save, and again after the reload")
    parser.add_argument("--path", default="mlp_weights.npz")
    parser.add_argument("--weights-only", action="store_true",
                        help="save the weights alone; the new model starts a fresh adam")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    main(epochs=args.epochs, path=os.path.abspath(args.path),
         weights_only=args.weights_only, verbose=not args.quiet)


if __name__ == "__main__":
    _cli()
