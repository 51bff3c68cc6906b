"""The benchmark cases: one ``Case`` per row of the table, in ``CASES``.

A case has a ``setup()`` making the shared data (a dict) and one builder per implementation
taking that dict and returning what to time: a ``Bench(fn, args)`` (``fn(*args)`` is timed) or a
zero-argument callable. Builders compile outside the timed part, except in ``kind="compile"``
cases. The PyTensor and JAX builders import their library inside, and only run when it is
installed; they use float32 and the shapes theon uses (JAX only float32: its 64-bit mode is off
by default), compiling once.
"""
from __future__ import annotations

import importlib
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


def theon_scalar_add_trusted(d):
    import theon as theano
    import theon.tensor as T
    a, b = T.dscalars("a", "b")
    return Bench(theano.function([a, b], a + b, trust_input=True), (d["a"], d["b"]))


def pytensor_scalar_add_trusted(d):
    import pytensor
    import pytensor.tensor as pt
    a, b = pt.dscalars("a", "b")
    f = pytensor.function([a, b], a + b)
    f.trust_input = True  # PyTensor's spelling: an attribute of the compiled function
    return Bench(f, (d["a"], d["b"]))


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


# -- (c) MLP training step: the forward above, crossentropy loss, backprop, SGD updates -----------
MLP_LR = 0.1


def mlp_train_data():
    d = mlp_data()
    d["y"] = np.random.default_rng(1).integers(0, MLP_SIZES[2], size=MLP_BATCH).astype("int32")
    return d


def _train_step(module: str, graph):
    """A builder timing one call of ``module.function`` (theon's or PyTensor's, the same API)
    on the training graph that ``graph(d)`` makes."""
    def build(d):
        inputs, loss, updates = graph(d)
        fn = importlib.import_module(module).function(inputs, loss, updates=updates)
        return Bench(fn, (d["x"], d["y"]))
    return build


def _train_compile(module: str, graph):
    """A builder timing ``module.function`` itself on the training graph."""
    def build(d):
        inputs, loss, updates = graph(d)
        return Bench(partial(importlib.import_module(module).function, inputs, loss,
                             updates=updates))
    return build


def theon_mlp_train_graph(d):
    """(inputs, loss, updates) of one SGD step; the weights are copied into new shared
    variables, so each implementation starts from the same values."""
    import theon as theano
    import theon.tensor as T
    x, y = T.fmatrix("x"), T.ivector("y")
    params = [theano.shared(d[k], name=k) for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = params
    p = T.nnet.softmax(T.dot(T.nnet.relu(T.dot(x, W1) + b1), W2) + b2)
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    grads = T.grad(loss, params)
    return [x, y], loss, [(w, w - np.float32(MLP_LR) * g) for w, g in zip(params, grads)]


theon_mlp_train = _train_step("theon", theon_mlp_train_graph)
theon_mlp_train_compile = _train_compile("theon", theon_mlp_train_graph)


def theon_mlp_train_build_and_compile(d):
    """Building the graph and its gradient is part of what a user waits for: time both."""
    import theon as theano

    def build():
        inputs, loss, updates = theon_mlp_train_graph(d)
        return theano.function(inputs, loss, updates=updates)
    return Bench(build)


def numpy_mlp_train(d):
    """Hand-written backprop of the same step, in place where numpy allows."""
    W1, b1, W2, b2 = (d[k].copy() for k in ("W1", "b1", "W2", "b2"))
    lr = np.float32(MLP_LR)

    def step(x, y):
        n = x.shape[0]
        rows = np.arange(n)
        pre = x @ W1
        pre += b1
        h = np.maximum(pre, 0)
        z = h @ W2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(total[:, 0]) - z[rows, y])
        dz = e
        dz /= total
        dz[rows, y] -= 1
        dz /= np.float32(n)
        dh = dz @ W2.T
        dh[pre <= 0] = 0
        np.subtract(W2, lr * (h.T @ dz), out=W2)
        np.subtract(b2, lr * dz.sum(axis=0), out=b2)
        np.subtract(W1, lr * (x.T @ dh), out=W1)
        np.subtract(b1, lr * dh.sum(axis=0), out=b1)
        return np.float32(loss)
    return Bench(step, (d["x"], d["y"]))


def pytensor_mlp_train_graph(d):
    import pytensor
    import pytensor.tensor as pt
    x, y = pt.fmatrix("x"), pt.ivector("y")
    params = [pytensor.shared(d[k], name=k) for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = params
    logp = pt.special.log_softmax(pt.dot(pt.maximum(pt.dot(x, W1) + b1, 0), W2) + b2, axis=-1)
    loss = -logp[pt.arange(y.shape[0]), y].mean()
    grads = pytensor.grad(loss, params)
    return [x, y], loss, [(w, w - np.float32(MLP_LR) * g) for w, g in zip(params, grads)]


pytensor_mlp_train = _train_step("pytensor", pytensor_mlp_train_graph)
pytensor_mlp_train_compile = _train_compile("pytensor", pytensor_mlp_train_graph)


def _jax_loss(params, x, y):
    import jax
    import jax.numpy as jnp
    logp = jax.nn.log_softmax(_jax_forward_logits(x, *params), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _jax_forward_logits(x, W1, b1, W2, b2):
    import jax
    return jax.nn.relu(x @ W1 + b1) @ W2 + b2


def _jax_step(params, x, y):
    import jax
    loss, grads = jax.value_and_grad(_jax_loss)(params, x, y)
    return loss, tuple(w - MLP_LR * g for w, g in zip(params, grads))


def jax_mlp_train(d):
    import jax
    import jax.numpy as jnp
    step = jax.jit(_jax_step)
    state = {"params": tuple(jnp.asarray(d[k]) for k in ("W1", "b1", "W2", "b2"))}
    x, y = jnp.asarray(d["x"]), jnp.asarray(d["y"])

    def run():
        loss, state["params"] = step(state["params"], x, y)
        return loss.block_until_ready()
    return Bench(run)


def jax_mlp_train_compile(d):
    import jax
    import jax.numpy as jnp
    params = tuple(jnp.asarray(d[k]) for k in ("W1", "b1", "W2", "b2"))
    x, y = jnp.asarray(d["x"]), jnp.asarray(d["y"])

    def compile_once():
        def step(*a):
            return _jax_step(*a)
        return jax.jit(step).lower(params, x, y).compile()
    return Bench(compile_once)


CASES = [
    Case("add_scalars", "call overhead: function([a, b], a + b) on 0-d float64 arrays "
         "vs np.add(a, b)", scalar_data, theon_scalar_add, numpy_scalar_add,
         pytensor_scalar_add, jax_scalar_add),
    Case("add_scalars_trusted", "call overhead with trust_input=True (no argument checks): "
         "function([a, b], a + b) on 0-d float64 arrays vs np.add(a, b)", scalar_data,
         theon_scalar_add_trusted, numpy_scalar_add, pytensor_scalar_add_trusted, None),
    Case("mlp_forward", "784-512-10 MLP forward (relu, softmax), float32 batch of 256, weights "
         "shared", mlp_data, theon_mlp_forward, numpy_mlp_forward, pytensor_mlp_forward,
         jax_mlp_forward, rtol=1e-4, atol=1e-6, budget=1.5),
    Case("mlp_forward_compile", "compile time (function() wall time) of the MLP forward; numpy "
         "has nothing to compile", mlp_data, theon_mlp_compile, None, pytensor_mlp_compile,
         jax_mlp_compile, kind="compile", budget=0.75),
    Case("mlp_train_step", "one SGD step of the same MLP (crossentropy of softmax, integer "
         "labels, lr 0.1) through updates, vs hand-written numpy backprop", mlp_train_data,
         theon_mlp_train, numpy_mlp_train, pytensor_mlp_train, jax_mlp_train, rtol=1e-4,
         atol=1e-5, budget=1.5),
    Case("mlp_train_compile", "compile time (function() wall time) of the training step, "
         "gradient graph already built", mlp_train_data, theon_mlp_train_compile, None,
         pytensor_mlp_train_compile, jax_mlp_train_compile, kind="compile", budget=0.75),
    Case("mlp_train_build", "building the loss, T.grad and function() together, as a user "
         "waits for them", mlp_train_data, theon_mlp_train_build_and_compile, kind="compile",
         budget=0.5),
]
