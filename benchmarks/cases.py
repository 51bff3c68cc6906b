"""The benchmark cases: one ``Case`` per row of the table, in ``CASES``.

A case has a ``setup()`` making the shared data (a dict) and one builder per implementation
taking that dict and returning what to time: a ``Bench(fn, args)`` (``fn(*args)`` is timed) or a
zero-argument callable. Builders compile outside the timed part, except in ``kind="compile"``
cases. The PyTensor and JAX builders import their library inside, and only run when it is
installed; they use float32 and the shapes theon uses (JAX only float32: its 64-bit mode is off
by default), compiling once.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from . import Bench, Case

# -- (a) call overhead: a + b on 0-d float64 arrays -------------------------------------------


def scalar_data():
    return {"a": np.array(1.5), "b": np.array(2.25)}


def theon_scalar_add(d):
    import theon as theano
    import theon.tensor as T
    a, b = T.dscalars("a", "b")
    return Bench(theano.function([a, b], a + b), (d["a"], d["b"]))


def numpy_scalar_add(d):
    return Bench(np.add, (d["a"], d["b"]))


def pytensor_scalar_add(d):
    import pytensor
    import pytensor.tensor as pt
    a, b = pt.dscalars("a", "b")  # float64, as theon's: PyTensor has no 64-bit switch to mind
    return Bench(pytensor.function([a, b], a + b), (d["a"], d["b"]))


def jax_scalar_add(d):
    import jax
    import jax.numpy as jnp
    add = jax.jit(lambda a, b: a + b)
    a, b = jnp.asarray(d["a"], jnp.float32), jnp.asarray(d["b"], jnp.float32)
    return Bench(lambda: add(a, b).block_until_ready())


# -- (b) MLP forward: relu(x W1 + b1) -> softmax(. W2 + b2), float32, 784-512-10, batch 256 ------
MLP_SIZES = (784, 512, 10)
MLP_BATCH = 256


def mlp_data(sizes=MLP_SIZES, batch=MLP_BATCH, seed=0):
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = sizes
    return {
        "x": rng.normal(size=(batch, n_in)).astype("float32"),
        "W1": (rng.normal(size=(n_in, n_hidden)) * np.sqrt(2 / n_in)).astype("float32"),
        "b1": rng.normal(scale=0.1, size=n_hidden).astype("float32"),
        "W2": (rng.normal(size=(n_hidden, n_out)) * np.sqrt(2 / n_hidden)).astype("float32"),
        "b2": rng.normal(scale=0.1, size=n_out).astype("float32"),
    }


def theon_mlp_graph(d):
    """The forward graph, weights in shared variables: (input variable, output)."""
    import theon as theano
    import theon.tensor as T
    x = T.fmatrix("x")
    W1, b1, W2, b2 = (theano.shared(d[k], name=k) for k in ("W1", "b1", "W2", "b2"))
    h = T.nnet.relu(T.dot(x, W1) + b1)
    return x, T.nnet.softmax(T.dot(h, W2) + b2)


def theon_mlp_forward(d):
    import theon as theano
    x, p = theon_mlp_graph(d)
    return Bench(theano.function([x], p), (d["x"],))


def numpy_mlp_forward(d):
    W1, b1, W2, b2 = d["W1"], d["b1"], d["W2"], d["b2"]

    def forward(x):
        h = x @ W1
        h += b1
        np.maximum(h, 0, out=h)
        z = h @ W2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z
    return Bench(forward, (d["x"],))


def pytensor_mlp_graph(d):
    import pytensor
    import pytensor.tensor as pt
    x = pt.fmatrix("x")
    W1, b1, W2, b2 = (pytensor.shared(d[k], name=k) for k in ("W1", "b1", "W2", "b2"))
    h = pt.maximum(pt.dot(x, W1) + b1, 0)
    return x, pt.special.softmax(pt.dot(h, W2) + b2, axis=-1)


def pytensor_mlp_forward(d):
    import pytensor
    x, p = pytensor_mlp_graph(d)
    return Bench(pytensor.function([x], p), (d["x"],))


def _jax_forward(x, W1, b1, W2, b2):
    import jax
    h = jax.nn.relu(x @ W1 + b1)
    return jax.nn.softmax(h @ W2 + b2, axis=-1)


def _jax_mlp_args(d):
    import jax.numpy as jnp
    return tuple(jnp.asarray(d[k]) for k in ("x", "W1", "b1", "W2", "b2"))


def jax_mlp_forward(d):
    import jax
    forward, args = jax.jit(_jax_forward), _jax_mlp_args(d)
    return Bench(lambda: forward(*args).block_until_ready())


# -- compile time of the MLP forward: function() wall time -----------------------------------
def theon_mlp_compile(d):
    import theon as theano
    x, p = theon_mlp_graph(d)
    return Bench(partial(theano.function, [x], p))


def pytensor_mlp_compile(d):
    import pytensor
    x, p = pytensor_mlp_graph(d)
    return Bench(partial(pytensor.function, [x], p))


def jax_mlp_compile(d):
    import jax
    args = _jax_mlp_args(d)

    def compile_once():  # a fresh function each time, so no trace or compile cache is reused
        def forward(*a):
            return _jax_forward(*a)
        return jax.jit(forward).lower(*args).compile()
    return Bench(compile_once)


CASES = [
    Case("add_scalars", "call overhead: function([a, b], a + b) on 0-d float64 arrays "
         "vs np.add(a, b)", scalar_data, theon_scalar_add, numpy_scalar_add,
         pytensor_scalar_add, jax_scalar_add),
    Case("mlp_forward", "784-512-10 MLP forward (relu, softmax), float32 batch of 256, weights "
         "shared", mlp_data, theon_mlp_forward, numpy_mlp_forward, pytensor_mlp_forward,
         jax_mlp_forward, rtol=1e-4, atol=1e-6, budget=1.5),
    Case("mlp_forward_compile", "compile time (function() wall time) of the MLP forward; numpy "
         "has nothing to compile", mlp_data, theon_mlp_compile, None, pytensor_mlp_compile,
         jax_mlp_compile, kind="compile", budget=0.75),
]
