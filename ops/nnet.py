"""``T.nnet``: activations, softmax, log_softmax and the crossentropies.

Softmax and log_softmax are ops of their own, computed stably (the row maximum is subtracted
first) with gradients written in terms of their outputs. Crossentropy with integer labels is an
op that checks, at run time, that there is one label per row and each names a class.
"""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import FLOAT_DTYPES, TensorType
from . import scalar as S
from .base import INTEGER_DTYPES, Op, as_tensor_variable, graph_error, same_type
from .elemwise import ELEMWISE as E
from .elemwise import cast
from .fused import ScalarGraph
from .reduce import Reduce, normalize_axis
from .reduce import sum as sum_

sigmoid = E["sigmoid"]
softplus = E["softplus"]


def relu(x, alpha=0):
    """max(x, 0), or a leaky ReLU ``x if x > 0 else alpha * x`` for ``alpha != 0``."""
    x = as_tensor_variable(x)
    if isinstance(alpha, (int, float, np.number)) and alpha == 0:
        return E["maximum"](x, cast(0, x.dtype))
    if isinstance(alpha, (int, float, np.number)) and x.dtype in FLOAT_DTYPES:
        alpha = np.asarray(alpha, dtype=x.dtype)  # a Python slope keeps x's dtype
    return E["switch"](E["gt"](x, 0), x, alpha * x)


def elu(x, alpha=1.0):
    x = as_tensor_variable(x)
    return E["switch"](E["gt"](x, 0), x, alpha * E["expm1"](x))


def hard_sigmoid(x):
    x = as_tensor_variable(x)
    return E["clip"](x * 0.2 + 0.5, 0, 1)


ultra_fast_sigmoid = sigmoid


def _float_input(x, name):
    x = as_tensor_variable(x)
    if x.dtype not in FLOAT_DTYPES:
        x = cast(x, "float64" if x.dtype in ("int32", "int64", "uint32", "uint64") else
                 "float32")
    if x.ndim == 0:
        raise graph_error(f"{name} needs at least one dimension, got {x.type}")
    return x


class Softmax(Op):
    """exp(x) / sum(exp(x)) along ``axis``, computed with the maximum subtracted."""

    __props__ = ("axis", "log")

    def __init__(self, axis: int, log: bool = False):
        self.axis, self.log = axis, log

    def __str__(self) -> str:
        return f"{'LogSoftmax' if self.log else 'Softmax'}{{axis={self.axis}}}"

    def make_node(self, x) -> Apply:
        x = _float_input(x, "log_softmax" if self.log else "softmax")
        return Apply(self, [x], [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        axis, log = self.axis, self.log

        def run(a):
            if a.size == 0:
                return a.copy()
            shifted = a - a.max(axis=axis, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=axis, keepdims=True)
            if log:
                return shifted - np.log(s)
            e /= s
            return e
        return run

    def passes(self, dtype: str) -> tuple[ScalarGraph, ScalarGraph]:
        """The formula of ``impl`` as scalar graphs, for a backend computing it in three passes
        over ``x`` (after ``m``, the maximum along the axes): the denominator
        ``s = sum(exp(x - m))`` over the axes, of inputs ``(x, m)``, then the result, of inputs
        ``(x, m, s)``: ``exp(x - m) / s``, or ``(x - m) - log(s)``."""
        denominator = ScalarGraph((dtype, dtype), ((S.sub, (0, 1)), (S.exp, (2,))), (3,))
        if self.log:
            steps = ((S.sub, (0, 1)), (S.log, (2,)), (S.sub, (3, 4)))
        else:
            steps = ((S.sub, (0, 1)), (S.exp, (3,)), (S.true_div, (4, 2)))
        return denominator, ScalarGraph((dtype,) * 3, steps, (5,))

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, grads):
        (z,), (g,) = outputs, grads
        if self.log:
            return [g - E["exp"](z) * sum_(g, axis=self.axis, keepdims=True)]
        num = _numerator_over(g, z)
        if num is not None:
            # g = num / z (the gradient of log(softmax(x)), e.g. a crossentropy): then
            # z * (g - sum(g * z)) = num - z * sum(num), which stays finite where z is 0.
            return [num - z * sum_(num, axis=self.axis, keepdims=True)]
        return [z * (g - sum_(g * z, axis=self.axis, keepdims=True))]

    def R_op(self, inputs, eval_points):
        (x,), (ev,) = inputs, eval_points
        if ev is None:
            return [None]
        z = self(x)
        if self.log:
            return [ev - sum_(E["exp"](z) * ev, axis=self.axis, keepdims=True)]
        return [z * (ev - sum_(z * ev, axis=self.axis, keepdims=True))]


def _numerator_over(g, z):
    """``a`` when the gradient ``g`` is the graph ``a / z`` (same type as ``g``), else None."""
    node = g.owner
    if node is None or not isinstance(node.op, type(E["true_div"])):
        return None
    if node.op.scalar_op.name != "true_div" or node.inputs[1] is not z:
        return None
    a = node.inputs[0]
    return same_type(a, g)


def _softmax_axis(x, axis, what):
    """One axis as an int; several (a tuple, or None for all) as a tuple: numpy normalises
    over all of them together."""
    axes = normalize_axis(x, axis, what)
    return axes[0] if len(axes) == 1 else axes


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, computed stably. The softmax of a vector is a
    row, (1, n), as in Theano (whose softmax took matrices), so that code indexing its result
    as ``p[0]`` or ``p[:, k]`` runs unchanged."""
    x = _float_input(x, "softmax")
    if x.ndim == 1 and axis in (-1, 0):
        x = x.dimshuffle("x", 0)
        axis = -1
    return Softmax(_softmax_axis(x, axis, "softmax"))(x)


def log_softmax(x, axis=-1):
    x = _float_input(x, "log_softmax")
    return Softmax(_softmax_axis(x, axis, "log_softmax"), log=True)(x)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) computed stably: the max is subtracted before exp and added after
    (0 where the max is infinite, and -inf for an empty reduction, as the formula gives)."""
    x = as_tensor_variable(x)
    dtype = E["exp"].scalar_op.output_dtype(x.dtype)
    if x.dtype != dtype:
        x = cast(x, dtype)
    axes = normalize_axis(x, axis, "logsumexp")
    kept = [d for d in range(x.ndim) if d not in axes]
    m = Reduce("max", axes, dtype, initial=-np.inf)(x)
    m = m.dimshuffle(["x" if d in axes else kept.index(d) for d in range(x.ndim)])
    m_safe = E["switch"](E["isinf"](m), 0, m)
    out = E["log"](sum_(E["exp"](x - m_safe), axis=axes, keepdims=True)) + m_safe
    if not keepdims:
        out = out.dimshuffle(kept)
    return out


def _check_labels(p: np.ndarray, y: np.ndarray) -> None:
    """One label per row of ``p``, each a class index of it (negative ones are refused, not
    counted from the end as numpy indexing would)."""
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"categorical_crossentropy: the predictions have {p.shape[0]} "
                         f"rows (shape {p.shape}) but there are {y.shape[0]} targets")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        bad = y[(y < 0) | (y >= p.shape[1])][0]
        raise ValueError(f"categorical_crossentropy: target class {bad} is out of range "
                         f"for predictions with {p.shape[1]} classes")


class CheckedLabels(Op):
    """``y`` itself, once checked as class labels for the rows of ``p``: the rewrites that
    replace the crossentropy op by indexing (``logp[arange(n), y]``) keep its check with it."""

    view_map = {0: [0]}

    def make_node(self, y, p) -> Apply:
        y, p = as_tensor_variable(y), as_tensor_variable(p)
        return Apply(self, [y, p], [y.type()])

    def impl(self, node):
        def run(y, p):
            _check_labels(p, y)
            return y
        return run

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, grads):
        return [None, None]


checked_labels = CheckedLabels()


class CrossentropyCategorical1Hot(Op):
    """-log(p[i, y[i]]) for each row i: crossentropy against integer class labels."""

    def make_node(self, p, y) -> Apply:
        p, y = as_tensor_variable(p), as_tensor_variable(y)
        if p.dtype not in FLOAT_DTYPES:
            p = _float_input(p, "categorical_crossentropy")
        if p.ndim != 2:
            raise graph_error(f"categorical_crossentropy: the predictions must be a matrix "
                              f"(rows of class probabilities), got {p.type}")
        if y.ndim != 1 or y.dtype not in INTEGER_DTYPES:
            raise graph_error(f"categorical_crossentropy: integer targets must be an int vector "
                              f"with one class index per row, got {y.type}")
        n_p, n_y = p.type.shape[0], y.type.shape[0]
        if n_p is not None and n_y is not None and n_p != n_y:
            raise graph_error(f"categorical_crossentropy: {n_p} rows of predictions but {n_y} "
                              "targets", ValueError)
        return Apply(self, [p, y], [TensorType(p.dtype, shape=(n_p if n_p is not None
                                                               else n_y,))()])

    def impl(self, node):
        def run(p, y):
            _check_labels(p, y)
            return -np.log(p[np.arange(p.shape[0]), y])
        return run

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],)]

    def grad(self, inputs, grads):
        from .alloc import arange, zeros_like
        from .shape import shape
        from .subtensor import inc_subtensor
        p, y = inputs
        g = grads[0]
        rows = arange(shape(p)[0])
        # the gradient refuses the labels the loss refuses (a graph may compute it alone)
        y = checked_labels(y, p)
        picked = p[rows, y]
        gp = inc_subtensor(zeros_like(p)[rows, y], -g / picked)
        return [gp, None]


crossentropy_categorical_1hot = CrossentropyCategorical1Hot()


def categorical_crossentropy(coding_dist, true_dist):
    """Per-row crossentropy of predicted class probabilities against integer labels (an int
    vector) or one-hot / soft targets (a matrix like the predictions)."""
    p = as_tensor_variable(coding_dist)
    t = as_tensor_variable(true_dist)
    if t.ndim == p.ndim:  # one-hot or soft targets (of any dtype, as in Theano)
        if p.ndim != 2:
            raise graph_error(f"categorical_crossentropy: predictions must be a matrix, "
                              f"got {p.type}")
        for d in range(2):
            a, b = p.type.shape[d], t.type.shape[d]
            if a is not None and b is not None and a != b:
                raise graph_error(f"categorical_crossentropy: predictions {p.type} and targets "
                                  f"{t.type} differ in dimension {d}", ValueError)
        if p.dtype in FLOAT_DTYPES and t.dtype not in FLOAT_DTYPES:
            t = cast(t, p.dtype)  # integer one-hot targets keep the predictions' dtype
        return -sum_(t * E["log"](p), axis=1)
    return crossentropy_categorical_1hot(p, t)


def binary_crossentropy(output, target):
    """-(t log(o) + (1 - t) log(1 - o)), elementwise.

    When ``output`` is ``sigmoid(s)`` the loss is built from the logits ``s`` instead
    (``sigmoid_binary_crossentropy``): the same values, but finite where ``sigmoid(s)``
    rounds to 0 or 1, and so is its gradient, which no rewrite of the log form could recover
    once it divides by ``sigmoid(s)``."""
    o, t = as_tensor_variable(output), as_tensor_variable(target)
    node = o.owner
    if node is not None and getattr(getattr(node.op, "scalar_op", None), "name", None) \
            == "sigmoid" and o.dtype.startswith("float"):
        return sigmoid_binary_crossentropy(node.inputs[0], t)
    return -(t * E["log"](o) + (1 - t) * E["log"](1 - o))


def sigmoid_binary_crossentropy(output, target):
    """binary_crossentropy(sigmoid(output), target), computed stably from the logits."""
    o, t = as_tensor_variable(output), as_tensor_variable(target)
    return softplus(-o) * t + softplus(o) * (1 - t)


# -- more activations, Theano's other names --------------------------------------------------------

# SELU's constants (Klambauer et al. 2017): they keep activations at mean 0 and variance 1
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _like(value: float, x):
    """A Python constant in ``x``'s float dtype, so that float32 models stay float32."""
    return np.asarray(value, dtype=x.dtype) if x.dtype in FLOAT_DTYPES else value


def selu(x):
    """Scaled exponential linear unit: ``scale * elu(x, alpha)`` with SELU's constants."""
    x = as_tensor_variable(x)
    return _like(_SELU_SCALE, x) * elu(x, _like(_SELU_ALPHA, x))


def softsign(x):
    """``x / (1 + |x|)``."""
    x = as_tensor_variable(x)
    return x / (1 + E["abs"](x))


def logsoftmax(x, axis=-1):
    """Theano's other name of ``log_softmax``."""
    return log_softmax(x, axis)


def h_softmax(x, batch_size, n_outputs, n_classes, n_outputs_per_class, W1, b1, W2, b2,
              target=None):
    """Two-level hierarchical softmax (Theano's ``h_softmax``): the probability of an output
    is that of its class (a softmax of ``dot(x, W1) + b1`` over ``n_classes``) times its own
    within the class (a softmax of ``dot(x, W2[c]) + b2[c]`` over ``n_outputs_per_class``).
    Without ``target``: every output's probability, (batch_size, n_outputs); with an int vector
    ``target``: the probability of each row's target only."""
    from .alloc import arange
    from .blas import batched_dot, dot, tensordot
    x, W1, b1, W2, b2 = (as_tensor_variable(v) for v in (x, W1, b1, W2, b2))
    class_probs = softmax(dot(x, W1) + b1)
    if target is None:
        act = tensordot(x, W2, (1, 1)) + b2  # (batch, n_classes, n_outputs_per_class)
        probs = softmax(act.reshape((-1, n_outputs_per_class)))
        probs = probs.reshape((batch_size, n_classes, -1))
        probs = class_probs.dimshuffle(0, 1, "x") * probs
        return probs.reshape((batch_size, -1))[:, :n_outputs]
    target = as_tensor_variable(target).flatten()
    classes = target // n_outputs_per_class
    within = target % n_outputs_per_class
    act = batched_dot(x, W2[classes]) + b2[classes]
    rows = arange(batch_size)
    return class_probs[rows, classes] * softmax(act)[rows, within]


# -- batch normalization (theano.tensor.nnet.bn) ---------------------------------------------------

def batch_normalization(inputs, gamma, beta, mean, std, mode="low_mem"):
    """``(inputs - mean) * (gamma / std) + beta`` with every argument broadcastable against
    ``inputs`` (Theano's ``T.nnet.batch_normalization``; both modes compute the same values)."""
    if mode not in ("low_mem", "high_mem"):
        raise ValueError('mode must be either "low_mem", "high_mem"')
    inputs, gamma, beta, mean, std = (as_tensor_variable(v)
                                      for v in (inputs, gamma, beta, mean, std))
    return (inputs - mean) * (gamma / std) + beta


def _bn_axes(axes, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The normalized axes ('per-activation': the first; 'spatial': all but the second) and
    the others."""
    if isinstance(axes, str) and axes == "per-activation":
        axes = (0,)
    elif isinstance(axes, str) and axes == "spatial":
        axes = (0,) + tuple(range(2, ndim))
    elif isinstance(axes, (tuple, list, np.ndarray)):
        axes = tuple(int(a) for a in axes)
    else:
        raise ValueError(f"invalid axes: {axes}")
    axes = tuple(sorted(axes))
    if not axes:
        raise ValueError("there should be at least one normalization axis")
    if min(axes) < 0 or max(axes) >= ndim:
        raise ValueError(f"axes should be less than ndim (<{ndim}), but {axes} given")
    return axes, tuple(i for i in range(ndim) if i not in axes)


def _bn_params(params, ndim, axes, kept, what):
    """Each parameter laid out like ``inputs``: given with ``inputs``' rank (length 1 on the
    normalized axes) or with only the kept axes; returns them and whether they were reduced."""
    from .dimshuffle import addbroadcast
    params = [as_tensor_variable(p) for p in params]
    reduced = params[0].ndim != ndim
    want = len(kept) if reduced else ndim
    for p in params:
        if p.ndim != want:
            raise ValueError(f"{what} dimensionality must match the number of non-normalized "
                             f"axes, or have the same number of dimensions as the inputs; got "
                             f"{[q.ndim for q in params]} instead of {want}")
    if reduced:
        pattern = ["x"] * ndim
        for i, axis in enumerate(kept):
            pattern[axis] = i
        return [p.dimshuffle(pattern) for p in params], True
    return [addbroadcast(p, *axes) for p in params], False


def _bn_epsilon(epsilon, dtype):
    from ..config import config
    eps = np.asarray(epsilon, dtype=config.floatX)
    if eps < 1e-5:  # cuDNN's minimum, which Theano imposes everywhere
        raise ValueError(f"epsilon must be at least 1e-5, got {epsilon}")
    return np.asarray(epsilon, dtype=dtype) if dtype in FLOAT_DTYPES else eps


def batch_normalization_train(inputs, gamma, beta, axes="per-activation", epsilon=1e-4,
                              running_average_factor=0.1, running_mean=None,
                              running_var=None):
    """Normalize ``inputs`` by its own mean and variance over ``axes`` (Theano's
    ``bn.batch_normalization_train``): returns ``(out, mean, invstd)``, and the updated
    ``running_mean`` and ``running_var`` (the variance unbiased, ``m / (m - 1)``) when both are
    given. ``mean`` and ``invstd`` keep the parameters' layout."""
    from .dimshuffle import patternbroadcast
    from .elemwise import cast
    from .reduce import mean as mean_
    from .reduce import var as var_
    from .shape import shape, shape_product
    inputs = as_tensor_variable(inputs)
    ndim = inputs.ndim
    axes, kept = _bn_axes(axes, ndim)
    (gamma, beta), reduced = _bn_params([gamma, beta], ndim, axes, kept, "gamma and beta")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be given or both be "
                         "None")
    eps = _bn_epsilon(epsilon, inputs.dtype)
    mean = mean_(inputs, axis=axes, keepdims=True)
    var = var_(inputs, axis=axes, keepdims=True)
    invstd = E["inv"](E["sqrt"](var + eps))
    out = (inputs - mean) * gamma * invstd + beta
    results = [out, mean, invstd]
    if running_mean is not None:
        (rm, rv), _ = _bn_params([running_mean, running_var], ndim, axes, kept,
                                 "running_mean and running_var")
        factor = _like(running_average_factor, mean)
        m = cast(shape_product(shape(inputs)[a] for a in axes), var.dtype)
        new_mean = rm * (1 - factor) + mean * factor
        new_var = rv * (1 - factor) + (m / (m - 1)) * var * factor
        results += [patternbroadcast(new_mean, rm.broadcastable),
                    patternbroadcast(new_var, rv.broadcastable)]
    if reduced:
        results = [results[0]] + [r.dimshuffle(kept) for r in results[1:]]
    return tuple(results)


def batch_normalization_test(inputs, gamma, beta, mean, var, axes="per-activation",
                             epsilon=1e-4):
    """Normalize ``inputs`` by a given mean and variance (Theano's
    ``bn.batch_normalization_test``): ``(inputs - mean) * gamma / sqrt(var + epsilon) + beta``,
    the parameters laid out as for ``batch_normalization_train``."""
    inputs = as_tensor_variable(inputs)
    axes, kept = _bn_axes(axes, inputs.ndim)
    (gamma, beta, mean, var), _ = _bn_params([gamma, beta, mean, var], inputs.ndim, axes, kept,
                                             "gamma, beta, mean and var")
    eps = _bn_epsilon(epsilon, inputs.dtype)
    return (inputs - mean) * gamma * E["inv"](E["sqrt"](var + eps)) + beta
