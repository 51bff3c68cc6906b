"""Where the main example's training step spends its time: ``profile=True`` and its table.

Run ``python -m theon.examples.profile_mlp`` (``--steps N``, ``--hidden N``). It compiles the
training step of ``examples/mlp.py`` (the network of ``mlp.forward``, SGD with momentum) with
``theano.function(..., profile=True)``, runs it over minibatches of the spirals and prints
``f.profile.summary()``: the calls, the compile phases (each rewrite phase, code generation,
the C kernels' compile), then the op classes and the nodes sorted by time, each node with the
line that built it (in ``mlp.py`` for the network, here for the loss and the updates).

``THEON_FLAGS=profile=True python examples/mlp.py`` profiles every function of a run instead
and prints their summaries when the process exits.
"""
from __future__ import annotations

import argparse
import sys
from typing import IO

import numpy as np
import theon as theano
import theon.tensor as T
from theon.compile.profiling import ProfileStats
from theon.examples import mlp


def build_step(params, X_data, y_data, batch_size: int, lr: float = 0.1,
               momentum: float = 0.9, profile=True):
    """The training step ``train(i)`` on minibatch ``i`` of the shared data (returns the
    loss), compiled with ``profile``."""
    floatX = theano.config.floatX
    x, y, i = T.matrix("x"), T.ivector("y"), T.lscalar("i")
    graph = mlp.forward(x, params)
    loss = T.nnet.categorical_crossentropy(graph["p"], y).mean()
    updates = []
    for param, grad in zip(params, theano.grad(loss, params)):
        velocity = theano.shared(np.zeros_like(param.get_value()), name=f"v_{param.name}")
        new_velocity = momentum * velocity - np.asarray(lr, floatX) * grad
        updates += [(velocity, new_velocity), (param, param + new_velocity)]
    batch = slice(i * batch_size, (i + 1) * batch_size)
    return theano.function([i], loss, updates=updates, name="mlp training step",
                           givens={x: X_data[batch], y: y_data[batch]}, profile=profile)


def main(steps: int = 300, batch_size: int = 32, n_hidden: int = 128, seed: int = 0,
         file: IO[str] | None = None) -> ProfileStats:
    """Run ``steps`` profiled training steps, print the profile to ``file`` (stdout) and
    return it."""
    X, y = mlp.make_spirals(seed=seed)
    rng = np.random.default_rng(seed)
    params = mlp.init_params(rng, X.shape[1], n_hidden, int(y.max()) + 1)
    train = build_step(params, theano.shared(X, name="X"), theano.shared(y, name="y"),
                       batch_size)
    n_batches = len(y) // batch_size
    for step in range(steps):
        train(step % n_batches)
    train.profile.summary(file=sys.stdout if file is None else file, n_apply_to_print=12)
    return train.profile


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    main(steps=args.steps, n_hidden=args.hidden)
