"""A recurrent network through ``theano.scan``: predict the next value of noisy sine waves.

Run ``python examples/rnn.py`` or ``python -m examples.rnn`` (``--epochs N``, ``--hidden N``,
``--steps N``, ``--quiet``). It makes its own data (a fixed seed): sequences of
``sin(w t + phase)`` plus noise, each wave with its own frequency ``w``, so the network has to
infer the frequency from what it has seen so far before it can predict well. A vanilla RNN
``h_t = tanh(x_t W_in + h_(t-1) W_rec + b_h)``, ``y_t = h_t W_out + b_o`` reads one value per
step and predicts the next; the loss is the mean squared error over every step of every
sequence. It trains with minibatch SGD with momentum through one compiled
``theano.function(..., updates=...)``, the gradient coming from ``T.grad`` through the scan
(backpropagation through time), and prints the loss after each epoch next to two baselines:
repeating the last value, and the noise's own variance (the best any predictor can do).

The Theano idioms: weights in shared variables read inside the step function without being
passed (scan finds them), the whole dataset in shared variables with the minibatch picked by
``givens``, and one function per task (a training step, an evaluation).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import theon as theano
import theon.tensor as T

NOISE = 0.05


def make_waves(n_seq: int, steps: int, noise: float = NOISE,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_seq`` noisy sine waves of ``steps + 1`` values, frequencies 0.15-0.6 rad per step
    and random phases: (inputs, targets), each (steps, n_seq, 1) floatX, the targets being the
    inputs shifted by one step."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.15, 0.6, size=n_seq)
    phase = rng.uniform(0, 2 * np.pi, size=n_seq)
    t = np.arange(steps + 1)[:, None]
    waves = np.sin(w * t + phase) + rng.normal(scale=noise, size=(steps + 1, n_seq))
    waves = waves[:, :, None].astype(theano.config.floatX)
    return waves[:-1], waves[1:]


def init_params(rng: np.random.Generator, n_in: int, n_hidden: int,
                n_out: int) -> list[theano.SharedVariable]:
    """[W_in, W_rec, b_h, W_out, b_o] as shared variables; W_rec starts orthogonal, scaled
    below 1, so that early gradients neither explode nor vanish over the sequence."""
    floatX = theano.config.floatX
    q, _ = np.linalg.qr(rng.normal(size=(n_hidden, n_hidden)))
    values = {"W_in": rng.normal(scale=1.0, size=(n_in, n_hidden)),
              "W_rec": 0.9 * q,
              "b_h": np.zeros(n_hidden),
              "W_out": rng.normal(scale=1 / np.sqrt(n_hidden), size=(n_hidden, n_out)),
              "b_o": np.zeros(n_out)}
    return [theano.shared(v.astype(floatX), name=k) for k, v in values.items()]


def predictions(x, params):
    """The network's graph: every step's prediction, (steps, batch, n_out), for inputs x of
    (steps, batch, n_in), from a zero initial state."""
    W_in, W_rec, b_h, W_out, b_o = params

    def step(x_t, h_tm1):
        h_t = T.tanh(T.dot(x_t, W_in) + T.dot(h_tm1, W_rec) + b_h)
        y_t = T.dot(h_t, W_out) + b_o
        return [h_t, y_t]

    h0 = T.zeros((x.shape[1], W_rec.get_value().shape[0]), dtype=x.dtype)
    [_, y], _ = theano.scan(step, sequences=x, outputs_info=[h0, None])
    return y


def build(params, X_data, Y_data, batch_size: int, lr: float, momentum: float):
    """Compile ``train(i)`` (one SGD step on minibatch ``i`` of the shared data; returns the
    loss before the step) and ``evaluate(X, Y)`` (the loss)."""
    floatX = theano.config.floatX
    x, y, i = T.tensor3("x"), T.tensor3("y"), T.lscalar("i")
    loss = T.mean((predictions(x, params) - y) ** 2)
    grads = T.grad(loss, params)
    updates = []
    for param, grad in zip(params, grads):  # v <- m v - lr g; w <- w + v
        velocity = theano.shared(np.zeros_like(param.get_value()), name=f"v_{param.name}")
        new_velocity = np.asarray(momentum, floatX) * velocity - np.asarray(lr, floatX) * grad
        updates += [(velocity, new_velocity), (param, param + new_velocity)]
    batch = slice(i * batch_size, (i + 1) * batch_size)
    train = theano.function([i], loss, updates=updates,
                            givens={x: X_data[:, batch], y: Y_data[:, batch]})
    evaluate = theano.function([x, y], loss)
    return train, evaluate


def main(epochs: int = 30, n_hidden: int = 32, steps: int = 50, n_train: int = 512,
         n_test: int = 128, batch_size: int = 32, lr: float = 0.05, momentum: float = 0.9,
         seed: int = 0, verbose: bool = True) -> dict[str, float]:
    """Train, print progress, and return the test losses: ``initial`` (before training),
    ``final``, and the baselines ``last_value`` and ``noise``."""
    start = time.perf_counter()
    X_train, Y_train = make_waves(n_train, steps, seed=seed)
    X_test, Y_test = make_waves(n_test, steps, seed=seed + 1)
    rng = np.random.default_rng(seed)
    params = init_params(rng, 1, n_hidden, 1)
    X_shared = theano.shared(X_train, name="X_train")
    Y_shared = theano.shared(Y_train, name="Y_train")
    train, evaluate = build(params, X_shared, Y_shared, batch_size, lr, momentum)
    n_batches = n_train // batch_size
    result = {"initial": float(evaluate(X_test, Y_test)),
              "last_value": float(np.mean((X_test - Y_test) ** 2)),
              "noise": NOISE ** 2}  # the next value's own noise: no predictor goes below
    if verbose:
        print(f"noisy sine waves: {n_train} train / {n_test} test sequences of {steps} steps; "
              f"RNN 1 -> {n_hidden} -> 1 through theano.scan, BPTT by T.grad")
        print(f"test loss before training {result['initial']:.4f}; repeating the last value "
              f"gives {result['last_value']:.4f}, the noise floor is {result['noise']:.4f}")
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)  # reshuffle the shared data: sequences are columns
        X_shared.set_value(X_train[:, order], borrow=True)
        Y_shared.set_value(Y_train[:, order], borrow=True)
        loss = float(np.mean([train(b) for b in range(n_batches)]))
        if verbose:
            print(f"epoch {epoch:3d}  train loss {loss:.4f}  "
                  f"test loss {float(evaluate(X_test, Y_test)):.4f}")
    result["final"] = float(evaluate(X_test, Y_test))
    if verbose:
        print(f"final: test loss {result['final']:.4f} (last value {result['last_value']:.4f}, "
              f"noise floor {result['noise']:.4f}) ({time.perf_counter() - start:.1f} s)")
    return result


def _cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    main(epochs=args.epochs, n_hidden=args.hidden, steps=args.steps, verbose=not args.quiet)


if __name__ == "__main__":
    _cli()
