"""A small LeNet (convolution, max pooling, dropout through MRG streams) on generated images.

Run ``python examples/lenet.py`` or ``python -m examples.lenet`` (``--epochs N``, ``--quiet``).
It makes its own data (a fixed seed): 16x16 grey images of four kinds of stroke (a horizontal
bar, a vertical bar, a diagonal, a hollow square) at random places and lengths, under noise;
the network tells which. ``conv2d`` (1 -> 8 maps, 5x5) -> 2x2 max pooling -> relu ->
``conv2d`` (8 -> 16, 3x3) -> pooling -> relu -> a dense layer of 64 with dropout -> softmax.
It trains with minibatch SGD with momentum through one compiled ``theano.function(...,
updates=...)`` and prints the loss and the test error after each epoch.

The Theano idioms: the deep-learning tutorial's layer spellings (``T.nnet.conv2d`` with
``input_shape``/``filter_shape``, ``theano.tensor.signal.pool.pool_2d`` with
``ignore_border=True``), dropout as ``srng.binomial(size=h.shape, p=keep, dtype=floatX)``
from ``MRG_RandomStreams``, whose state advances at every call through its default update,
and a second, deterministic graph for evaluation (the weights shared, no dropout).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import theon as theano
import theon.tensor as T
from theon.sandbox.rng_mrg import MRG_RandomStreams
from theon.tensor.signal.pool import pool_2d

SIZE = 16
KINDS = ("horizontal bar", "vertical bar", "diagonal", "hollow square")


def make_images(n: int, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 1, 16, 16) floatX and their kinds (n,) int32 (see KINDS)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, SIZE, SIZE))
    kinds = rng.integers(0, len(KINDS), size=n)
    for img, kind in zip(images[:, 0], kinds):
        length = rng.integers(6, 12)
        r, c = rng.integers(1, SIZE - length, size=2)
        if kind == 0:
            img[r, c:c + length] = 1
        elif kind == 1:
            img[r:r + length, c] = 1
        elif kind == 2:
            img[np.arange(length) + r, np.arange(length) + c] = 1
        else:
            side = length // 2 + 2
            img[r, c:c + side] = img[r + side - 1, c:c + side] = 1
            img[r:r + side, c] = img[r:r + side, c + side - 1] = 1
    images += rng.normal(scale=noise, size=images.shape)
    return images.astype(theano.config.floatX), kinds.astype("int32")


def init_params(rng: np.random.Generator) -> list[theano.SharedVariable]:
    """[W1, b1, W2, b2, W3, b3, W4, b4] as shared variables, Glorot-scaled."""
    floatX = theano.config.floatX

    def weights(shape, fan_in, fan_out):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)
    values = {"W1": weights((8, 1, 5, 5), 25, 8 * 25 / 4), "b1": np.zeros(8),
              "W2": weights((16, 8, 3, 3), 8 * 9, 16 * 9 / 4), "b2": np.zeros(16),
              "W3": weights((64, 64), 64, 64), "b3": np.zeros(64),
              "W4": weights((64, len(KINDS)), 64, len(KINDS)), "b4": np.zeros(len(KINDS))}
    return [theano.shared(v.astype(floatX), name=k) for k, v in values.items()]


def probabilities(x, params, srng: MRG_RandomStreams | None, keep: float = 0.5):
    """The network's graph: class probabilities (batch, 4) for images x (batch, 1, 16, 16);
    with ``srng``, the dense layer's units are dropped with probability ``1 - keep`` (and the
    kept ones scaled by ``1 / keep``, so that evaluation needs no rescaling)."""
    W1, b1, W2, b2, W3, b3, W4, b4 = params
    c1 = T.nnet.conv2d(x, W1, filter_shape=(8, 1, 5, 5))               # 12 x 12
    h1 = T.nnet.relu(pool_2d(c1, ws=(2, 2), ignore_border=True)
                     + b1.dimshuffle("x", 0, "x", "x"))                 # 6 x 6
    c2 = T.nnet.conv2d(h1, W2, filter_shape=(16, 8, 3, 3))              # 4 x 4
    h2 = T.nnet.relu(pool_2d(c2, ws=(2, 2), ignore_border=True)
                     + b2.dimshuffle("x", 0, "x", "x"))                 # 2 x 2
    h3 = T.nnet.relu(T.dot(h2.flatten(2), W3) + b3)
    if srng is not None:
        mask = srng.binomial(size=h3.shape, p=keep, dtype=theano.config.floatX)
        h3 = h3 * mask / np.asarray(keep, dtype=theano.config.floatX)
    return T.nnet.softmax(T.dot(h3, W4) + b4)


def build(params, X_data, Y_data, batch_size: int, lr: float, momentum: float, seed: int):
    """Compile ``train(i)`` (one SGD step on minibatch ``i`` of the shared data, with dropout;
    returns the loss) and ``error(X, Y)`` (the fraction misclassified, without dropout)."""
    floatX = theano.config.floatX
    x, y, i = T.tensor4("x"), T.ivector("y"), T.lscalar("i")
    p_train = probabilities(x, params, MRG_RandomStreams(seed + 1234))  # (MRG refuses 0)
    loss = T.nnet.categorical_crossentropy(p_train, y).mean()
    updates = []
    for param, grad in zip(params, T.grad(loss, params)):  # v <- m v - lr g; w <- w + v
        velocity = theano.shared(np.zeros_like(param.get_value()), name=f"v_{param.name}")
        new_velocity = np.asarray(momentum, floatX) * velocity - np.asarray(lr, floatX) * grad
        updates += [(velocity, new_velocity), (param, param + new_velocity)]
    batch = slice(i * batch_size, (i + 1) * batch_size)
    train = theano.function([i], loss, updates=updates,
                            givens={x: X_data[batch], y: Y_data[batch]})
    error = theano.function([x, y], T.neq(T.argmax(probabilities(x, params, None), axis=1),
                                          y).mean())
    return train, error


def main(epochs: int = 8, n_train: int = 2048, n_test: int = 512, batch_size: int = 32,
         lr: float = 0.05, momentum: float = 0.9, seed: int = 0,
         verbose: bool = True) -> dict[str, float]:
    """Train, print progress, and return the test errors ``initial`` and ``final`` (the
    fraction of test images misclassified; chance is 0.75)."""
    start = time.perf_counter()
    X_train, Y_train = make_images(n_train, seed=seed)
    X_test, Y_test = make_images(n_test, seed=seed + 1)
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    X_shared = theano.shared(X_train, name="X_train")
    Y_shared = theano.shared(Y_train, name="Y_train")
    train, error = build(params, X_shared, Y_shared, batch_size, lr, momentum, seed)
    result = {"initial": float(error(X_test, Y_test))}
    if verbose:
        print(f"generated 16x16 images of {len(KINDS)} kinds ({', '.join(KINDS)}): "
              f"{n_train} train / {n_test} test; LeNet conv5-pool-conv3-pool-dense64 "
              f"(dropout 0.5)-softmax")
        print(f"test error before training {result['initial']:.3f} (chance 0.75)")
    n_batches = n_train // batch_size
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        X_shared.set_value(X_train[order], borrow=True)
        Y_shared.set_value(Y_train[order], borrow=True)
        loss = float(np.mean([train(b) for b in range(n_batches)]))
        if verbose:
            print(f"epoch {epoch:3d}  train loss {loss:.4f}  "
                  f"test error {float(error(X_test, Y_test)):.3f}")
    result["final"] = float(error(X_test, Y_test))
    if verbose:
        print(f"final: test error {result['final']:.3f} "
              f"({time.perf_counter() - start:.1f} s)")
    return result


def _cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    main(epochs=args.epochs, verbose=not args.quiet)


if __name__ == "__main__":
    _cli()
