"""A denoising autoencoder (the deep-learning tutorial's dA) on generated images.

Run ``python examples/dae.py`` or ``python -m examples.dae`` (``--epochs N``, ``--quiet``).
The images are LeNet's example's strokes (examples/lenet.py), noiseless and flattened to 256
values in [0, 1]. Each training step corrupts its minibatch by zeroing a random 30% of the
pixels (a binomial mask from ``MRG_RandomStreams``, drawn anew at every call), encodes it
``h = sigmoid(x~ W + b)`` into 64 units, decodes ``z = sigmoid(h W' + b')`` with the tied
weights ``W'``, and lowers the cross-entropy between ``z`` and the clean image. It prints the
reconstruction cost after each epoch, and at the end how far the reconstructions of corrupted
test images are from the clean ones, next to the corrupted images' own distance.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import theon as theano
import theon.tensor as T
from theon.examples.lenet import SIZE, make_images
from theon.sandbox.rng_mrg import MRG_RandomStreams

CORRUPTION = 0.3


def corrupted(x, srng: MRG_RandomStreams, level: float):
    """x with a random ``level`` of its entries set to 0 (the tutorial's corruption)."""
    return srng.binomial(size=x.shape, n=1, p=1 - level, dtype=theano.config.floatX) * x


def build(n_visible: int, n_hidden: int, data, batch_size: int, lr: float, seed: int):
    """The dA's parameters, ``train(i)`` (one SGD step on minibatch ``i``; returns the cost)
    and ``denoise(x)`` (the reconstruction of x, no corruption)."""
    floatX = theano.config.floatX
    rng = np.random.default_rng(seed)
    bound = 4 * np.sqrt(6.0 / (n_hidden + n_visible))  # the tutorial's sigmoid scaling
    W = theano.shared(rng.uniform(-bound, bound, (n_visible, n_hidden)).astype(floatX), "W")
    b = theano.shared(np.zeros(n_hidden, floatX), "b")
    b_prime = theano.shared(np.zeros(n_visible, floatX), "b_prime")
    srng = MRG_RandomStreams(seed + 1)

    def reconstruct(x):
        h = T.nnet.sigmoid(T.dot(x, W) + b)
        return T.nnet.sigmoid(T.dot(h, W.T) + b_prime)

    x, i = T.matrix("x"), T.lscalar("i")
    z = reconstruct(corrupted(x, srng, CORRUPTION))
    cost = T.mean(-T.sum(x * T.log(z) + (1 - x) * T.log(1 - z), axis=1))
    params = [W, b, b_prime]
    updates = [(p, p - np.asarray(lr, floatX) * g) for p, g in zip(params, T.grad(cost, params))]
    train = theano.function([i], cost, updates=updates,
                            givens={x: data[i * batch_size:(i + 1) * batch_size]})
    denoise = theano.function([x], reconstruct(x))
    return params, train, denoise


def main(epochs: int = 15, n_train: int = 2048, n_test: int = 256, n_hidden: int = 64,
         batch_size: int = 20, lr: float = 0.2, seed: int = 0,
         verbose: bool = True) -> dict[str, float]:
    """Train, print progress, and return ``first`` and ``last`` (the mean training cost of the
    first and last epochs), ``corrupted`` (the mean squared distance of corrupted test images
    from the clean ones) and ``denoised`` (that of their reconstructions)."""
    start = time.perf_counter()
    clean = (make_images(n_train + n_test, noise=0.0, seed=seed)[0]
             .reshape(-1, SIZE * SIZE))
    train_x, test_x = clean[:n_train], clean[n_train:]
    data = theano.shared(train_x, name="train_x")
    _, train, denoise = build(SIZE * SIZE, n_hidden, data, batch_size, lr, seed)
    if verbose:
        print(f"denoising autoencoder {SIZE * SIZE} -> {n_hidden} -> {SIZE * SIZE} (tied "
              f"weights), {CORRUPTION:.0%} of the pixels zeroed by MRG_RandomStreams; "
              f"{n_train} training images")
    costs = []
    for epoch in range(1, epochs + 1):
        costs.append(float(np.mean([train(b) for b in range(n_train // batch_size)])))
        if verbose:
            print(f"epoch {epoch:3d}  reconstruction cost {costs[-1]:.3f}")
    mask = np.random.default_rng(seed + 2).random(test_x.shape) >= CORRUPTION
    noisy = (test_x * mask).astype(test_x.dtype)
    result = {"first": costs[0], "last": costs[-1],
              "corrupted": float(np.mean((noisy - test_x) ** 2)),
              "denoised": float(np.mean((denoise(noisy) - test_x) ** 2))}
    if verbose:
        print(f"final: corrupted test images are {result['corrupted']:.4f} from the clean "
              f"ones (mean squared), their reconstructions {result['denoised']:.4f} "
              f"({time.perf_counter() - start:.1f} s)")
    return result


def _cli(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    main(epochs=args.epochs, verbose=not args.quiet)


if __name__ == "__main__":
    _cli()
