"""Update rules for training (Lasagne's ``lasagne.updates``, with its names, signatures,
defaults and formulas): each takes a scalar loss or a list of gradients and a list of shared
variables, and returns an ``OrderedDict`` for ``theano.function(..., updates=...)``::

    updates = theon.updates.adam(loss, params, learning_rate=0.001)
    train = theano.function([x, y], loss, updates=updates)

A rule's state (velocities, moments, adam's step count) lives in shared variables made as
``theano.shared`` makes them, so with ``device=cuda`` it sits in device memory beside the
weights. Hyperparameters may be numbers or symbolic scalars (a shared learning rate can be
changed between calls); either is cast to each parameter's dtype, so a float32 network stays
float32 whatever ``floatX`` says. The state variables are named after their parameter
(``W1_m``, ``W1_v``...), so ``theon.save_params`` can save them with the weights.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import tensor as T
from .gradient import grad as _grad
from .symbolic.graph import Variable
from .symbolic.shared import SharedVariable, shared

__all__ = ["get_or_compute_grads", "sgd", "apply_momentum", "momentum", "apply_nesterov_momentum",
           "nesterov_momentum", "adagrad", "rmsprop", "adadelta", "adam", "adamax", "amsgrad",
           "norm_constraint", "total_norm_constraint"]


def get_or_compute_grads(loss_or_grads, params: Sequence[SharedVariable]) -> list:
    """``loss_or_grads`` as a list of gradients, one per parameter: a list (or tuple) is taken
    as the gradients themselves, anything else as a scalar loss differentiated with
    ``theano.grad``. Every parameter must be a shared variable (an update needs one)."""
    params = list(params)
    for k, p in enumerate(params):
        if not isinstance(p, SharedVariable):
            raise ValueError(f"params must contain shared variables only; params[{k}] is "
                             f"{p!r} ({type(p).__name__}), which no update can change")
    if isinstance(loss_or_grads, (list, tuple)):
        if len(loss_or_grads) != len(params):
            raise ValueError(f"Got {len(loss_or_grads)} gradient expressions for "
                             f"{len(params)} parameters")
        return list(loss_or_grads)
    return _grad(loss_or_grads, params)


def _scalar(value: Any, dtype: str):
    """A hyperparameter (number or symbolic scalar) as a scalar of ``dtype``: a Python float
    would otherwise make every update of a float32 parameter float64."""
    if isinstance(value, Variable):
        return value if value.dtype == dtype else T.cast(value, dtype)
    return T.constant(np.asarray(value, dtype=dtype))


def _of_dtype(expr, dtype: str):
    """A gradient or update expression as ``dtype`` (a no-op when it already is)."""
    expr = T.as_tensor_variable(expr)
    return expr if expr.dtype == dtype else T.cast(expr, dtype)


def _zeros_like(param: SharedVariable, role: str) -> SharedVariable:
    """A state variable for ``param``: zeros of its shape, dtype and broadcast pattern, placed
    where ``theano.shared`` places such a value (device memory with ``device=cuda``)."""
    # the internal value (a device array on a device) has the shape and dtype without a copy
    value = param.get_value(borrow=True, return_internal_type=True)
    name = f"{param.name}_{role}" if param.name else None
    return shared(np.zeros(value.shape, dtype=value.dtype), name=name,
                  broadcastable=param.broadcastable)


def sgd(loss_or_grads, params: Sequence[SharedVariable], learning_rate) -> OrderedDict:
    """Stochastic gradient descent: ``param := param - learning_rate * grad``."""
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, g in zip(params, grads):
        dtype = param.dtype
        updates[param] = param - _scalar(learning_rate, dtype) * _of_dtype(g, dtype)
    return updates


def apply_momentum(updates, params: Iterable[SharedVariable] | None = None,
                   momentum=0.9) -> OrderedDict:
    """A copy of ``updates`` (a dict or pairs) with momentum on ``params`` (default: every
    key): ``velocity := momentum * velocity + updates[param] - param``,
    ``param := param + velocity``."""
    updates = OrderedDict(updates)
    for param in list(updates) if params is None else params:
        velocity = _zeros_like(param, "velocity")
        x = _scalar(momentum, param.dtype) * velocity + _of_dtype(updates[param], param.dtype)
        updates[velocity] = x - param
        updates[param] = x
    return updates


def momentum(loss_or_grads, params: Sequence[SharedVariable], learning_rate,
             momentum=0.9) -> OrderedDict:
    """SGD with momentum: ``velocity := momentum * velocity - learning_rate * grad``,
    ``param := param + velocity``."""
    return apply_momentum(sgd(loss_or_grads, params, learning_rate), momentum=momentum)


def apply_nesterov_momentum(updates, params: Iterable[SharedVariable] | None = None,
                            momentum=0.9) -> OrderedDict:
    """A copy of ``updates`` with Nesterov momentum on ``params`` (default: every key):
    ``velocity := momentum * velocity + updates[param] - param``,
    ``param := param + momentum * velocity + updates[param] - param`` (the form that evaluates
    the gradient at the current parameters)."""
    updates = OrderedDict(updates)
    for param in list(updates) if params is None else params:
        velocity = _zeros_like(param, "velocity")
        mom = _scalar(momentum, param.dtype)
        update = _of_dtype(updates[param], param.dtype)
        x = mom * velocity + update - param
        updates[velocity] = x
        updates[param] = mom * x + update
    return updates


def nesterov_momentum(loss_or_grads, params: Sequence[SharedVariable], learning_rate,
                      momentum=0.9) -> OrderedDict:
    """SGD with Nesterov momentum: ``velocity := momentum * velocity - learning_rate * grad``,
    ``param := param + momentum * velocity - learning_rate * grad``."""
    return apply_nesterov_momentum(sgd(loss_or_grads, params, learning_rate), momentum=momentum)


def adagrad(loss_or_grads, params: Sequence[SharedVariable], learning_rate=1.0,
            epsilon=1e-6) -> OrderedDict:
    """Adagrad: ``accu := accu + grad**2``,
    ``param := param - learning_rate * grad / sqrt(accu + epsilon)``."""
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, g in zip(params, grads):
        dtype = param.dtype
        g = _of_dtype(g, dtype)
        accu = _zeros_like(param, "accu")
        accu_new = accu + g ** 2
        updates[accu] = accu_new
        updates[param] = param - (_scalar(learning_rate, dtype) * g
                                  / T.sqrt(accu_new + _scalar(epsilon, dtype)))
    return updates


def rmsprop(loss_or_grads, params: Sequence[SharedVariable], learning_rate=1.0, rho=0.9,
            epsilon=1e-6) -> OrderedDict:
    """RMSProp: ``accu := rho * accu + (1 - rho) * grad**2``,
    ``param := param - learning_rate * grad / sqrt(accu + epsilon)``."""
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, g in zip(params, grads):
        dtype = param.dtype
        g, r = _of_dtype(g, dtype), _scalar(rho, dtype)
        accu = _zeros_like(param, "accu")
        accu_new = r * accu + (_scalar(1, dtype) - r) * g ** 2
        updates[accu] = accu_new
        updates[param] = param - (_scalar(learning_rate, dtype) * g
                                  / T.sqrt(accu_new + _scalar(epsilon, dtype)))
    return updates


def adadelta(loss_or_grads, params: Sequence[SharedVariable], learning_rate=1.0, rho=0.95,
             epsilon=1e-6) -> OrderedDict:
    """Adadelta: ``accu := rho * accu + (1 - rho) * grad**2``,
    ``step = grad * sqrt(delta_accu + epsilon) / sqrt(accu + epsilon)``,
    ``param := param - learning_rate * step``,
    ``delta_accu := rho * delta_accu + (1 - rho) * step**2``."""
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, g in zip(params, grads):
        dtype = param.dtype
        g, r, eps = _of_dtype(g, dtype), _scalar(rho, dtype), _scalar(epsilon, dtype)
        one = _scalar(1, dtype)
        accu = _zeros_like(param, "accu")
        delta_accu = _zeros_like(param, "delta_accu")
        accu_new = r * accu + (one - r) * g ** 2
        updates[accu] = accu_new
        step = g * T.sqrt(delta_accu + eps) / T.sqrt(accu_new + eps)
        updates[param] = param - _scalar(learning_rate, dtype) * step
        updates[delta_accu] = r * delta_accu + (one - r) * step ** 2
    return updates


def _step_count(params: Sequence[SharedVariable]) -> SharedVariable:
    """The step count ``t`` that adam-like rules share across their parameters: a scalar of
    the widest float dtype among them (float32 counts exactly to 2**24 steps)."""
    dtype = np.result_type(*[np.dtype(p.dtype) for p in params], np.float32)
    if dtype.kind != "f":
        dtype = np.dtype("float64")
    return shared(np.zeros((), dtype=dtype), name="t")


def _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon,
               kind: str) -> OrderedDict:
    grads = get_or_compute_grads(loss_or_grads, params)
    params = list(params)
    t_prev = _step_count(params)
    tdtype = t_prev.dtype
    one = _scalar(1, tdtype)
    t = t_prev + one
    lr_t = _scalar(learning_rate, tdtype)
    if kind == "adamax":
        a_t = lr_t / (one - _scalar(beta1, tdtype) ** t)
    else:
        a_t = lr_t * T.sqrt(one - _scalar(beta2, tdtype) ** t) / (one - _scalar(beta1, tdtype) ** t)
    updates = OrderedDict()
    for param, g in zip(params, grads):
        dtype = param.dtype
        g, b1, b2 = _of_dtype(g, dtype), _scalar(beta1, dtype), _scalar(beta2, dtype)
        one_p = _scalar(1, dtype)
        m_prev = _zeros_like(param, "m")
        m_t = b1 * m_prev + (one_p - b1) * g
        updates[m_prev] = m_t
        if kind == "adamax":
            u_prev = _zeros_like(param, "u")
            u_t = T.maximum(b2 * u_prev, abs(g))
            updates[u_prev] = u_t
            denom = u_t
        else:
            v_prev = _zeros_like(param, "v")
            v_t = b2 * v_prev + (one_p - b2) * g ** 2
            updates[v_prev] = v_t
            if kind == "amsgrad":
                v_hat_prev = _zeros_like(param, "v_hat")
                v_t = T.maximum(v_hat_prev, v_t)
                updates[v_hat_prev] = v_t
            denom = T.sqrt(v_t)
        step = _of_dtype(a_t, dtype) * m_t / (denom + _scalar(epsilon, dtype))
        updates[param] = param - step
    updates[t_prev] = t
    return updates


def adam(loss_or_grads, params: Sequence[SharedVariable], learning_rate=0.001, beta1=0.9,
         beta2=0.999, epsilon=1e-8) -> OrderedDict:
    """Adam (Kingma and Ba): ``t := t + 1``, ``m := beta1 * m + (1 - beta1) * grad``,
    ``v := beta2 * v + (1 - beta2) * grad**2``,
    ``param := param - a_t * m / (sqrt(v) + epsilon)`` with
    ``a_t = learning_rate * sqrt(1 - beta2**t) / (1 - beta1**t)``."""
    return _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, "adam")


def adamax(loss_or_grads, params: Sequence[SharedVariable], learning_rate=0.002, beta1=0.9,
           beta2=0.999, epsilon=1e-8) -> OrderedDict:
    """Adamax, Adam on the infinity norm: ``m := beta1 * m + (1 - beta1) * grad``,
    ``u := max(beta2 * u, |grad|)``, ``param := param - a_t * m / (u + epsilon)`` with
    ``a_t = learning_rate / (1 - beta1**t)``."""
    return _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, "adamax")


def amsgrad(loss_or_grads, params: Sequence[SharedVariable], learning_rate=0.001, beta1=0.9,
            beta2=0.999, epsilon=1e-8) -> OrderedDict:
    """AMSGrad: Adam dividing by the running maximum of ``v`` (``v_hat``) instead of ``v``."""
    return _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, "amsgrad")


def norm_constraint(tensor_var, max_norm, norm_axes: Sequence[int] | None = None,
                    epsilon=1e-7):
    """``tensor_var`` with each slice's L2 norm over ``norm_axes`` scaled down to at most
    ``max_norm`` (``tensor * clip(norms, 0, max_norm) / (epsilon + norms)``). Default axes:
    ``(0,)`` for a matrix (a dense layer's incoming weights), all but axis 0 for 3 to 5
    dimensions (convolution filters); other ranks must give ``norm_axes``."""
    tensor_var = T.as_tensor_variable(tensor_var)
    ndim = tensor_var.ndim
    if norm_axes is not None:
        sum_over = tuple(norm_axes)
    elif ndim == 2:
        sum_over = (0,)
    elif ndim in (3, 4, 5):
        sum_over = tuple(range(1, ndim))
    else:
        raise ValueError(f"norm_constraint: unsupported tensor dimensionality {ndim}; give "
                         f"norm_axes (the axes the norm is taken over)")
    dtype = tensor_var.dtype
    norms = T.sqrt(T.sum(T.sqr(tensor_var), axis=sum_over, keepdims=True))
    target = T.clip(norms, _scalar(0, dtype), _scalar(max_norm, dtype))
    return tensor_var * (target / (_scalar(epsilon, dtype) + norms))


def total_norm_constraint(tensor_vars: Sequence, max_norm, epsilon=1e-7,
                          return_norm: bool = False):
    """``tensor_vars`` scaled together so that their combined L2 norm is at most ``max_norm``
    (gradient clipping for recurrent networks); with ``return_norm``, also the norm before
    scaling, for monitoring."""
    tensor_vars = [T.as_tensor_variable(t) for t in tensor_vars]
    if not tensor_vars:
        raise ValueError("total_norm_constraint: no tensors given")
    dtype = str(np.result_type(*[np.dtype(t.dtype) for t in tensor_vars]))
    norm = T.sqrt(sum(_of_dtype(T.sum(t ** 2), dtype) for t in tensor_vars))
    target = T.clip(norm, _scalar(0, dtype), _scalar(max_norm, dtype))
    multiplier = target / (_scalar(epsilon, dtype) + norm)
    scaled = [t * _of_dtype(multiplier, t.dtype) for t in tensor_vars]
    return (scaled, norm) if return_norm else scaled
