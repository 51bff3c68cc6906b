"""The benchmark cases: one ``Case`` per row of the table, in ``CASES``.

A case has a ``setup()`` making the shared data (a dict) and one builder per implementation
taking that dict and returning what to time: a ``Bench(fn, args)`` (``fn(*args)`` is timed) or a
zero-argument callable. Builders compile outside the timed part, except in ``kind="compile"``
cases. The PyTensor and JAX builders import their library inside, and only run when it is
installed; they use float32 and the shapes theon uses (JAX only float32: its 64-bit mode is off
by default), compiling once.
"""
from __future__ import annotations

import atexit
import ctypes
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

import numpy as np

from . import Bench, Case, Unavailable
from .conv_cases import CONV_CASES

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


# -- (d) W1: tanh(a * b + c) * sigmoid(a) - sqrt(d), 7 elementwise ops on float32 vectors ------
# The workload of issue 8 (fused C kernels): unfused, each op reads and writes a whole array;
# fused, one pass reads the four inputs and writes the output. Its floor is the time to move
# those five arrays once.
W1_RTOL, W1_ATOL = 1e-5, 1e-6  # float32: a few ulps of tanh/exp/sqrt, and the subtraction
# The compile-time rows build W1 on this mode: function()'s default mode does not run C kernels
# yet (issue 8 wires them in); once it does, these rows should use the default mode.
W1_COMPILE_LINKER = "c"


def w1_data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    data = {k: rng.standard_normal(n, dtype=np.float32) for k in "abc"}
    data["d"] = rng.uniform(0.1, 2.0, n).astype(np.float32)  # sqrt's domain
    return data


def _w1_args(d) -> tuple:
    return tuple(d[k] for k in "abcd")


def theon_w1_graph():
    """([a, b, c, d], W1) on float32 vectors."""
    import theon.tensor as T
    a, b, c, d = (T.fvector(k) for k in "abcd")
    return [a, b, c, d], T.tanh(a * b + c) * T.nnet.sigmoid(a) - T.sqrt(d)


def _theon_w1(linker: str | None):
    def build(d):
        import theon as theano
        mode = None if linker is None else theano.Mode(linker=linker)
        inputs, out = theon_w1_graph()
        return Bench(theano.function(inputs, out, mode=mode), _w1_args(d))
    return build


theon_w1 = _theon_w1(None)             # function()'s default mode
theon_w1_numpy_path = _theon_w1("py")  # the numpy linker: what runs without a C compiler


def w1_numpy(d):
    """The plain numpy expression (numpy has no sigmoid: 1 / (1 + exp(-a)))."""
    def w1(a, b, c, d):
        return np.tanh(a * b + c) * (1 / (1 + np.exp(-a))) - np.sqrt(d)
    return w1


def numpy_w1(d):
    return Bench(w1_numpy(d), _w1_args(d))


def _jax_w1(a, b, c, d):
    import jax
    import jax.numpy as jnp
    return jnp.tanh(a * b + c) * jax.nn.sigmoid(a) - jnp.sqrt(d)


def jax_w1(d):
    import jax
    import jax.numpy as jnp
    f, args = jax.jit(_jax_w1), tuple(jnp.asarray(x) for x in _w1_args(d))
    return Bench(lambda: f(*args).block_until_ready())


FLOOR_SOURCE = """
#include <stddef.h>
/* W1's memory traffic and nothing else: four float32 arrays read, one written, in one pass
   (split across threads where compiled with OpenMP) */
void w1_floor(ptrdiff_t n, const float *restrict a, const float *restrict b,
              const float *restrict c, const float *restrict d, float *restrict out)
{
    #pragma omp parallel for schedule(static)
    for (ptrdiff_t i = 0; i < n; ++i)
        out[i] = a[i] + b[i] + c[i] + d[i];
}
"""


def floor_passes(d) -> tuple[dict, np.ndarray]:
    """The floor's passes over W1's arrays: {label: zero-argument call} (one thread, and
    OpenMP's threads where it compiles), and the array they write. Empty without a compiler."""
    from theon.backends import ccompiler
    a, b, c, e = _w1_args(d)
    out = np.empty_like(a)
    arrays = (a, b, c, e, out)  # the closures hold them: the kernel only gets their addresses
    pointers = [x.ctypes.data for x in arrays]
    passes = {}
    for label, openmp in (("one thread", False), ("OpenMP", True)):
        try:
            lib = ccompiler.compile_library(FLOOR_SOURCE, openmp=openmp, name="w1_floor")
        except ccompiler.CompileError:
            continue
        fn = lib.function("w1_floor", None, [ctypes.c_ssize_t] + [ctypes.c_void_p] * 5)
        passes[label] = partial(_call_holding, partial(fn, a.size, *pointers), arrays)
    return passes, out


def _call_holding(fn, arrays):
    fn()
    return arrays[-1]


def floor_w1(d):
    """The floor: a hand-written C pass reading W1's four inputs and writing one output (gcc
    -O3, vectorised), each sample the faster of one thread and OpenMP's threads (on a loaded
    machine the threads can lose by 10x, on an idle one they can win). Without a C compiler,
    np.copyto of one array (one read, one write) scaled by 5/2."""
    passes, out = floor_passes(d)
    if not passes:
        a = d["a"]

        def copy_scaled():
            start = time.perf_counter()
            np.copyto(out, a)
            return (time.perf_counter() - start) * 5 / 2
        return Bench(copy_scaled, self_timed=True,
                     note=lambda: "np.copyto of n float32, x 5/2 (no C compiler)")
    seen: dict[str, list[float]] = {label: [] for label in passes}

    def best() -> float:
        for label, run in passes.items():
            start = time.perf_counter()
            run()
            seen[label].append(time.perf_counter() - start)
        return min(times[-1] for times in seen.values())

    def note() -> str:
        medians = ", ".join(f"{label} {statistics.median(times) * 1e3:.3g} ms"
                            for label, times in seen.items())
        return ("a C pass out[i] = a[i] + b[i] + c[i] + d[i] (4 reads + 1 write of n float32, "
                f"gcc -O3), the faster of {' and '.join(passes)} per sample; medians: {medians}")
    return Bench(best, self_timed=True, note=note)


# -- compile time of W1's C kernels, each sample in a fresh process (kernel_compile.py) -------
def _child_compile(compiledir: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "theon.benchmarks.kernel_compile", "--compiledir", compiledir,
         "--linker", W1_COMPILE_LINKER], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"kernel_compile failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _require_compiler() -> None:
    from theon.backends import ccompiler
    if ccompiler.compiler() is None:
        raise Unavailable("no C compiler (config.cxx is empty or does not run)")


def _kernel_compile_bench(cached: bool) -> Bench:
    _require_compiler()
    runs: list[dict] = []
    kept = tempfile.mkdtemp(prefix="theon-bench-compiledir-")
    atexit.register(shutil.rmtree, kept, ignore_errors=True)

    def once() -> float:
        if cached:  # the first call (the warm-up) fills the folder; every later one reads it
            runs.append(_child_compile(kept))
        else:
            fresh = tempfile.mkdtemp(prefix="cold-", dir=kept)
            try:
                runs.append(_child_compile(fresh))
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
        return runs[-1]["seconds"]

    def note() -> str:
        timed = runs[1:] or runs  # the warm-up of the cached row was a cold build
        compiled = statistics.median(r["stats"].get("compiled", 0) for r in timed)
        hits = statistics.median(r["stats"].get("disk_hits", 0) for r in timed)
        py = statistics.median(r["py_seconds"] for r in timed)
        none = "" if compiled or hits else " (no kernel at all: the C linker ran W1 on numpy)"
        load = ""
        if hits:
            ms = statistics.median(r["stats"].get("disk_load_seconds", 0) for r in timed) * 1e3
            load = f"; loading the library from the cache (checksum, dlopen) took {ms:.2f} ms"
        return (f"function() + first call on Mode(linker={W1_COMPILE_LINKER!r}), a fresh "
                f"process per sample: gcc compiled {compiled:g} libraries, {hits:g} came from "
                f"the disk cache{none}; the same on linker 'py' takes {py * 1e3:.1f} ms{load}")
    return Bench(once, self_timed=True, note=note)


def theon_w1_compile_cold(d):
    return _kernel_compile_bench(cached=False)


def theon_w1_compile_cached(d):
    return _kernel_compile_bench(cached=True)


def jax_w1_compile(d):
    import jax
    import jax.numpy as jnp
    args = tuple(jnp.asarray(x) for x in _w1_args(d))

    def compile_once():  # a fresh function each time: no trace or compile cache reused
        def w1(*a):
            return _jax_w1(*a)
        return jax.jit(w1).lower(*args).compile()
    return Bench(compile_once)


def _w1_case(name: str, n: int, description: str, theon_builder, **kw) -> Case:
    return Case(name, description, partial(w1_data, n), theon_builder, numpy_w1, None,
                kw.pop("jax", jax_w1), rtol=W1_RTOL, atol=W1_ATOL, floor=floor_w1, **kw)



# -- (e) W3: a vanilla RNN through scan (issue 9), forward and BPTT gradient ------------------
# h_t = tanh(x_t W_in + h_{t-1} W_rec + b) from h0; loss = the states summed over steps and
# units, averaged over the batch (so the gradients are O(1), and a float32 check means
# something). Every implementation gets the same arrays as arguments; theon's weights are
# inputs, not shared variables, so that JAX's jit takes the same signature.
W3_STEPS, W3_BATCH, W3_IN, W3_HIDDEN = 100, 32, 64, 256
W3_RTOL, W3_ATOL = 1e-3, 1e-4  # float32 through 100 steps, sums of 800k terms
# W3b: the per-step cost of a tiny loop (one sequence, hidden 4, float64): 1,000 steps, so
# a call's time in ms is the time of one step in us
W3B_STEPS, W3B_IN, W3B_HIDDEN = 1000, 4, 4
RNN_ARGS = ("x", "W_in", "W_rec", "b", "h0")


def rnn_data(steps: int, batch: int | None, n_in: int, hidden: int, dtype: str,
             seed: int = 0) -> dict:
    """x (steps, [batch,] n_in), W_in, W_rec (scaled so the states neither die nor saturate),
    b, h0 ([batch,] hidden). ``batch=None``: one sequence, vector states."""
    rng = np.random.default_rng(seed)
    rows = () if batch is None else (batch,)
    data = {"x": rng.standard_normal((steps,) + rows + (n_in,)),
            "W_in": rng.standard_normal((n_in, hidden)) / np.sqrt(n_in),
            "W_rec": rng.standard_normal((hidden, hidden)) * (0.9 / np.sqrt(hidden)),
            "b": rng.normal(scale=0.1, size=hidden),
            "h0": rng.normal(scale=0.5, size=rows + (hidden,))}
    return {k: v.astype(dtype) for k, v in data.items()}


def w3_data() -> dict:
    return rnn_data(W3_STEPS, W3_BATCH, W3_IN, W3_HIDDEN, "float32")


def w3b_data() -> dict:
    return rnn_data(W3B_STEPS, None, W3B_IN, W3B_HIDDEN, "float64")


def _rnn_args(d) -> tuple:
    return tuple(d[k] for k in RNN_ARGS)


def theon_rnn_graph(dtype: str, batched: bool):
    """(inputs [x, W_in, W_rec, b, h0], states h, loss) of the RNN through theano.scan."""
    import theon as theano
    import theon.tensor as T
    x = (T.tensor3 if batched else T.matrix)("x", dtype=dtype)
    W_in, W_rec = T.matrix("W_in", dtype=dtype), T.matrix("W_rec", dtype=dtype)
    b = T.vector("b", dtype=dtype)
    h0 = (T.matrix if batched else T.vector)("h0", dtype=dtype)

    def step(x_t, h_tm1, W_in, W_rec, b):
        return T.tanh(T.dot(x_t, W_in) + T.dot(h_tm1, W_rec) + b)

    h, _ = theano.scan(step, sequences=x, outputs_info=h0, non_sequences=[W_in, W_rec, b])
    loss = h.sum(axis=[0, 2]).mean() if batched else h.sum()
    return [x, W_in, W_rec, b, h0], h, loss


def theon_w3_forward(d):
    import theon as theano
    inputs, _, loss = theon_rnn_graph("float32", batched=True)
    return Bench(theano.function(inputs, loss), _rnn_args(d))


def theon_w3_grad_graph():
    """(inputs, [loss, dW_in, dW_rec, db, dh0]): W3's loss and its BPTT gradient."""
    import theon.tensor as T
    inputs, _, loss = theon_rnn_graph("float32", batched=True)
    return inputs, [loss] + T.grad(loss, inputs[1:])


def theon_w3_grad(d):
    import theon as theano
    inputs, outputs = theon_w3_grad_graph()
    return Bench(theano.function(inputs, outputs), _rnn_args(d))


def theon_w3_build_and_compile(d):
    """The scan graph, its gradient and function() together, a fresh graph each sample."""
    import theon as theano

    def build():
        inputs, outputs = theon_w3_grad_graph()
        return theano.function(inputs, outputs)
    return Bench(build)


def numpy_rnn_forward(x, W_in, W_rec, b, h0):
    """Every state of the RNN, (steps,) + h0.shape: the input projection of all steps in one
    matmul before the loop (as one would write it by hand), then one matmul per step."""
    pre = np.matmul(x, W_in)
    pre += b
    H = np.empty(pre.shape, dtype=pre.dtype)
    h = h0
    for t in range(x.shape[0]):
        a = h @ W_rec
        a += pre[t]
        h = np.tanh(a, out=H[t])
    return H


def _w3_loss(H):
    return H.sum(axis=(0, 2)).mean(dtype=H.dtype)


def numpy_rnn_bptt(x, W_in, W_rec, b, h0):
    """W3's loss and its gradient with respect to W_in, W_rec, b, h0, by hand: the forward
    loop keeps every state, the backward loop walks them in reverse; the weight gradients are
    one matmul each over all steps."""
    H = numpy_rnn_forward(x, W_in, W_rec, b, h0)
    steps, batch, hidden = H.shape
    dH = np.asarray(1 / batch, H.dtype)  # d loss / d h_t, the same for every state
    dA = np.empty_like(H)  # d loss / d (pre-activation) per step
    dh = np.zeros_like(h0)
    W_rec_T = W_rec.T
    for t in range(steps - 1, -1, -1):
        dh += dH
        da = np.multiply(H[t], H[t], out=dA[t])
        np.subtract(1, da, out=da)
        da *= dh
        dh = da @ W_rec_T
    flat_dA = dA.reshape(-1, hidden)
    previous = np.concatenate([h0[None], H[:-1]]).reshape(-1, hidden)
    dW_rec = previous.T @ flat_dA
    dW_in = x.reshape(-1, x.shape[-1]).T @ flat_dA
    db = flat_dA.sum(axis=0)
    return [_w3_loss(H), dW_in, dW_rec, db, dh]


def numpy_w3_forward(d):
    return Bench(lambda *a: _w3_loss(numpy_rnn_forward(*a)), _rnn_args(d))


def numpy_w3_grad(d):
    return Bench(numpy_rnn_bptt, _rnn_args(d))


def pytensor_rnn_graph(dtype: str, batched: bool):
    import pytensor
    import pytensor.tensor as pt
    x = (pt.tensor3 if batched else pt.matrix)("x", dtype=dtype)
    W_in, W_rec = pt.matrix("W_in", dtype=dtype), pt.matrix("W_rec", dtype=dtype)
    b = pt.vector("b", dtype=dtype)
    h0 = (pt.matrix if batched else pt.vector)("h0", dtype=dtype)
    h, _ = pytensor.scan(lambda x_t, h_tm1, W_in, W_rec, b:
                         pt.tanh(pt.dot(x_t, W_in) + pt.dot(h_tm1, W_rec) + b),
                         sequences=x, outputs_info=h0, non_sequences=[W_in, W_rec, b])
    loss = h.sum(axis=[0, 2]).mean() if batched else h.sum()
    return [x, W_in, W_rec, b, h0], h, loss


def pytensor_w3_forward(d):
    import pytensor
    inputs, _, loss = pytensor_rnn_graph("float32", batched=True)
    return Bench(pytensor.function(inputs, loss), _rnn_args(d))


def pytensor_w3_grad(d):
    import pytensor
    inputs, _, loss = pytensor_rnn_graph("float32", batched=True)
    return Bench(pytensor.function(inputs, [loss] + pytensor.grad(loss, inputs[1:])),
                 _rnn_args(d))


def pytensor_w3_build_and_compile(d):
    import pytensor

    def build():
        inputs, _, loss = pytensor_rnn_graph("float32", batched=True)
        return pytensor.function(inputs, [loss] + pytensor.grad(loss, inputs[1:]))
    return Bench(build)


def _jax_rnn_states(x, W_in, W_rec, b, h0):
    import jax
    import jax.numpy as jnp

    def step(h, x_t):
        h = jnp.tanh(x_t @ W_in + h @ W_rec + b)
        return h, h
    return jax.lax.scan(step, h0, x)[1]


def _jax_w3_loss(W_in, W_rec, b, h0, x):
    return _jax_rnn_states(x, W_in, W_rec, b, h0).sum(axis=(0, 2)).mean()


def _jax_w3_value_and_grad(W_in, W_rec, b, h0, x):
    import jax
    loss, grads = jax.value_and_grad(_jax_w3_loss, argnums=(0, 1, 2, 3))(W_in, W_rec, b, h0, x)
    return (loss,) + tuple(grads)


def _jax_rnn_args(d, dtype="float32") -> tuple:
    """JAX's arguments in float32 (its 64-bit mode is off by default), in its order:
    W_in, W_rec, b, h0, x."""
    import jax.numpy as jnp
    return tuple(jnp.asarray(d[k], dtype) for k in ("W_in", "W_rec", "b", "h0", "x"))


def jax_w3_forward(d):
    import jax
    f, args = jax.jit(_jax_w3_loss), _jax_rnn_args(d)
    return Bench(lambda: f(*args).block_until_ready())


def jax_w3_grad(d):
    import jax
    f, args = jax.jit(_jax_w3_value_and_grad), _jax_rnn_args(d)
    return Bench(lambda: [v.block_until_ready() for v in f(*args)])


def jax_w3_compile(d):
    import jax
    args = _jax_rnn_args(d)

    def compile_once():  # a fresh function each time: no trace or compile cache reused
        def step(*a):
            return _jax_w3_value_and_grad(*a)
        return jax.jit(step).lower(*args).compile()
    return Bench(compile_once)


def _theon_w3b(linker: str | None):
    def build(d):
        import theon as theano
        mode = None if linker is None else theano.Mode(linker=linker)
        inputs, h, _ = theon_rnn_graph("float64", batched=False)
        return Bench(theano.function(inputs, h, mode=mode), _rnn_args(d))
    return build


theon_w3b = _theon_w3b(None)              # function()'s default mode (the C backend)
theon_w3b_numpy_path = _theon_w3b("py")   # the numpy backend


def numpy_w3b(d):
    return Bench(numpy_rnn_forward, _rnn_args(d))


def pytensor_w3b(d):
    import pytensor
    inputs, h, _ = pytensor_rnn_graph("float64", batched=False)
    return Bench(pytensor.function(inputs, h), _rnn_args(d))


def jax_w3b(d):
    import jax

    def states(W_in, W_rec, b, h0, x):
        return _jax_rnn_states(x, W_in, W_rec, b, h0)
    f, args = jax.jit(states), _jax_rnn_args(d)
    return Bench(lambda: f(*args).block_until_ready())

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
    _w1_case("w1_1e6", 10**6, "W1 = tanh(a * b + c) * sigmoid(a) - sqrt(d) on four contiguous "
             "float32 vectors of 1e6, function()'s default mode", theon_w1),
    _w1_case("w1_1e7", 10**7, "W1 on float32 vectors of 1e7 (40 MB each), function()'s default "
             "mode", theon_w1, budget=1.5),
    _w1_case("w1_1e7_numpy_path", 10**7, "W1 on 1e7, theon on Mode(linker='py') (the numpy "
             "path: no compiler needed)", theon_w1_numpy_path, jax=None, budget=1.0),
    Case("w1_compile_cold", "compile time of W1's C kernels, cold: function() + first call on "
         f"Mode(linker={W1_COMPILE_LINKER!r}) with an empty compiledir, in a fresh process (gcc "
         "runs); JAX: jit(...).lower().compile() of a fresh function", partial(w1_data, 1000),
         theon_w1_compile_cold, None, None, jax_w1_compile, kind="compile", max_samples=3),
    Case("w1_compile_cached", "the same with the compiledir an earlier process filled, in a "
         "fresh process (the disk cache: no gcc)", partial(w1_data, 1000),
         theon_w1_compile_cached, kind="compile", max_samples=3),
    Case("w3_rnn_forward", f"W3: RNN h_t = tanh(x_t W_in + h_t-1 W_rec + b) through scan, "
         f"hidden {W3_HIDDEN}, input {W3_IN}, batch {W3_BATCH}, {W3_STEPS} steps, float32, "
         "forward to the loss (states summed, averaged over the batch) vs a numpy loop (input "
         "projection hoisted into one matmul)", w3_data, theon_w3_forward, numpy_w3_forward,
         pytensor_w3_forward, jax_w3_forward, rtol=W3_RTOL, atol=W3_ATOL),
    Case("w3_rnn_grad", "W3's loss and its gradient w.r.t. W_in, W_rec, b, h0 (BPTT) vs "
         "hand-written numpy BPTT (forward loop storing the states, backward loop, weight "
         "gradients one matmul each); JAX: jax.lax.scan with value_and_grad", w3_data,
         theon_w3_grad, numpy_w3_grad, pytensor_w3_grad, jax_w3_grad, rtol=W3_RTOL,
         atol=W3_ATOL, budget=1.5),
    Case("w3_rnn_compile", "W3 built and compiled cold: scan graph + T.grad + function(), a "
         "fresh graph each sample (JAX: jit(value_and_grad).lower().compile() of a fresh "
         "function)", w3_data, theon_w3_build_and_compile, None, pytensor_w3_build_and_compile,
         jax_w3_compile, kind="compile", max_samples=10),
    Case("w3b_tiny_rnn_numpy_path", f"W3b: per-step cost, RNN hidden {W3B_HIDDEN}, input "
         f"{W3B_IN}, one float64 sequence of {W3B_STEPS} steps, forward (every state), theon on "
         "Mode(linker='py'): a call's ms are a step's us (JAX in float32)", w3b_data,
         theon_w3b_numpy_path, numpy_w3b, pytensor_w3b, jax_w3b),
    Case("w3b_tiny_rnn", "W3b on function()'s default mode (the C backend): a call's ms are a "
         "step's us", w3b_data, theon_w3b, numpy_w3b, None, jax_w3b),
] + CONV_CASES
