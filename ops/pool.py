"""Pooling over the last ``ndim`` axes (Theano's ``theano.tensor.signal.pool``).

``Pool`` computes max, sum or average windows; its gradient is an op of its own
(``MaxPoolGrad``, ``AveragePoolGrad``), and so is the gradient of the max-pool gradient
(``DownsampleFactorMaxGradGrad``, which is also max pooling's R_op). The window size, stride and
padding are int vector inputs of the node (as in Theano), so they may be symbolic; the output
lengths then come from ``infer_shape`` as graphs.

Semantics follow Theano 1.0 (its Python ``perform``, which its C code agrees with):

* a window ``j`` of a pooled axis starts at ``j * stride`` in the padded axis and ends
  ``ws`` later, cut at the padded length (only ``ignore_border=False`` ever cuts it, and then
  the axis has no padding: Theano refuses padding without ``ignore_border``);
* 'max', 'sum' and 'average_exc_pad' see only the input's own elements of a window;
  'average_inc_pad' divides the sum by the window's length in the padded axis, padding counted;
* the max-pool gradient goes to every element equal to its window's maximum (ties included),
  and the gradient of that gradient sums them back (Theano's rule).

The numpy code loops over window offsets (``ws`` slices with step ``stride`` per axis, each a
whole-array operation), never over pixels.
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np

from ..symbolic.graph import Apply, Constant
from ..symbolic.types import TensorType
from .base import INTEGER_DTYPES, Op, as_tensor_variable, graph_error
from .elemwise import ELEMWISE as E

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


# -- lengths: Python ints where known, else graphs ----------------------------------------------

def out_length(n, ws, stride, pad, ignore_border: bool):
    """The number of windows along an axis of length ``n`` (Theano's ``Pool.out_shape``):
    Python ints give an int, a symbolic argument gives a graph."""
    padded = n + 2 * pad
    symbolic = not all(isinstance(v, (int, np.integer)) for v in (n, ws, stride, pad))
    if ignore_border:
        out = (padded - ws) // stride + 1
        return E["maximum"](out, 0) if symbolic else max(int(out), 0)
    if symbolic:
        return E["switch"](E["ge"](stride, ws), (padded - 1) // stride + 1,
                           E["maximum"](0, (padded - 1 - ws) // stride + 1) + 1)
    if stride >= ws:
        return int((padded - 1) // stride + 1)
    return int(max(0, (padded - 1 - ws + stride) // stride) + 1)


def _static(v: object) -> tuple[int, ...] | None:
    """The ints of a constant int vector input, else None."""
    if isinstance(v, Constant):
        return tuple(int(i) for i in np.asarray(v.data).ravel())
    return None


def _int_vector(v, nd: int, what: str):
    """``v`` (a sequence of ints, or an int vector variable) as an int vector of length ``nd``."""
    if isinstance(v, (list, tuple)):
        if len(v) != nd:
            raise graph_error(f"pooling over {nd} axes needs {nd} values for {what}, got {v!r}",
                              ValueError)
        if all(isinstance(i, (int, np.integer)) for i in v):
            v = np.asarray(v, dtype="int64")
    v = as_tensor_variable(v)
    if v.ndim != 1 or v.dtype not in INTEGER_DTYPES:
        raise graph_error(f"pooling: {what} must be a vector of ints, got {v.type}")
    if v.type.shape[0] is not None and v.type.shape[0] != nd:
        raise graph_error(f"pooling over {nd} axes needs {nd} values for {what}, got "
                          f"{v.type.shape[0]}", ValueError)
    return v


def _params(nd: int, ws, stride, pad):
    """ws, stride (default ws) and pad (default zeros) as int vector variables."""
    if stride is None:
        stride = ws
    if pad is None:
        pad = (0,) * nd
    return (_int_vector(ws, nd, "ws"), _int_vector(stride, nd, "stride"),
            _int_vector(pad, nd, "pad"))


def _check_static(nd, ignore_border, ws, stride, pad) -> None:
    """Theano's build-time refusals, where the values are known."""
    ws_, st_, pad_ = _static(ws), _static(stride), _static(pad)
    if pad_ is not None and any(pad_) and not ignore_border:
        raise graph_error("pooling: padding works only with ignore_border=True",
                          NotImplementedError)
    if ws_ is not None and pad_ is not None and any(p >= w for p, w in zip(pad_, ws_)):
        raise graph_error(f"pooling: the padding {pad_} must be smaller than the window {ws_} "
                          "in every axis", NotImplementedError)
    if ws_ is not None and any(w < 1 for w in ws_):
        raise graph_error(f"pooling: window sizes must be positive, got {ws_}", ValueError)
    if st_ is not None and any(s < 1 for s in st_):
        raise graph_error(f"pooling: strides must be positive, got {st_}", ValueError)
    if pad_ is not None and any(p < 0 for p in pad_):
        raise graph_error(f"pooling: padding must be non-negative, got {pad_}", ValueError)


def _static_out_shape(x, nd, ignore_border, ws, stride, pad) -> tuple:
    ws_, st_, pad_ = _static(ws), _static(stride), _static(pad)
    lead = x.type.shape[:-nd]
    if ws_ is None or st_ is None or pad_ is None:
        return lead + (None,) * nd
    return lead + tuple(None if n is None else out_length(n, w, s, p, ignore_border)
                        for n, w, s, p in zip(x.type.shape[-nd:], ws_, st_, pad_))


def _symbolic_out_shape(shape, nd, ignore_border, node_ws, node_st, node_pad) -> tuple:
    """infer_shape's output lengths: the last ``nd`` of ``shape`` pooled."""
    vals = []
    for v in (node_ws, node_st, node_pad):
        known = _static(v)
        vals.append(known if known is not None else [v[i] for i in range(nd)])
    ws, st, pad = vals
    return tuple(shape[:-nd]) + tuple(
        out_length(shape[len(shape) - nd + i], ws[i], st[i], pad[i], ignore_border)
        for i in range(nd))


# -- numpy -----------------------------------------------------------------------------------------

def _check_run(nd: int, x: np.ndarray, ws, stride, pad, ignore_border: bool):
    ws, stride, pad = (tuple(int(i) for i in np.asarray(v).ravel()) for v in (ws, stride, pad))
    if not len(ws) == len(stride) == len(pad) == nd:
        raise ValueError(f"pooling over {nd} axes: ws {ws}, stride {stride} and pad {pad} "
                         f"must have {nd} values each")
    if x.ndim < nd:
        raise ValueError(f"pooling over {nd} axes needs an input of {nd} or more dimensions, "
                         f"got shape {x.shape}")
    if min(ws) < 1 or min(stride) < 1 or min(pad) < 0:
        raise ValueError(f"pooling: ws {ws} and stride {stride} must be positive and pad {pad} "
                         "non-negative")
    if any(pad) and not ignore_border:
        raise NotImplementedError("pooling: padding works only with ignore_border=True")
    if any(p >= w for p, w in zip(pad, ws)):
        raise NotImplementedError(f"pooling: the padding {pad} must be smaller than the "
                                  f"window {ws} in every axis")
    return ws, stride, pad


class _Geometry:
    """Where the windows of one call lie: the output lengths, the padded array's lengths (long
    enough for every window, partial ones included) and the input's place in it."""

    def __init__(self, nd, shape, ws, stride, pad, ignore_border):
        self.nd, self.ws, self.stride, self.pad = nd, ws, stride, pad
        self.lead = tuple(shape[:len(shape) - nd])
        self.n = tuple(shape[len(shape) - nd:])
        self.out = tuple(out_length(n, w, s, p, ignore_border)
                         for n, w, s, p in zip(self.n, ws, stride, pad))
        self.padded = tuple(max(n + 2 * p, (o - 1) * s + w if o else 0)
                            for n, w, s, p, o in zip(self.n, ws, stride, pad, self.out))
        self.inner = (slice(None),) * len(self.lead) + tuple(
            slice(p, p + n) for n, p in zip(self.n, pad))

    @property
    def needs_padding(self) -> bool:
        return self.padded != self.n

    def embed(self, a: np.ndarray, fill) -> np.ndarray:
        """``a`` (the input's shape) in an array of the padded lengths filled with ``fill``."""
        if not self.needs_padding:
            return a
        out = np.full(self.lead + self.padded, fill, dtype=a.dtype)
        out[self.inner] = a
        return out

    def window_slice(self, axis: int, offset: int) -> slice:
        """Along pooled axis ``axis``: element ``offset`` of every window."""
        o, s = self.out[axis], self.stride[axis]
        return slice(offset, offset + s * (o - 1) + 1, s)

    def offsets(self):
        """Every offset inside a window, as an index of the padded array (one element of every
        window at once)."""
        for ks in itertools.product(*(range(w) for w in self.ws)):
            yield (slice(None),) * len(self.lead) + tuple(
                self.window_slice(d, k) for d, k in enumerate(ks))

    def counts(self, include_padding: bool) -> np.ndarray:
        """The number of elements each window averages over, broadcast to the output."""
        total = np.ones((), dtype=np.float64)
        for d in range(self.nd):
            starts = np.arange(self.out[d]) * self.stride[d]
            padded_len = self.n[d] + 2 * self.pad[d]
            ends = np.minimum(starts + self.ws[d], padded_len)
            if not include_padding:
                starts = np.maximum(starts, self.pad[d])
                ends = np.minimum(ends, padded_len - self.pad[d])
            shape = [1] * self.nd
            shape[d] = self.out[d]
            total = total * (ends - starts).reshape(shape)
        return total


def pool_geometry(nd: int, x, ws, stride, pad, ignore_border: bool):
    """``(ws, stride, pad, out)`` of pooling ``x`` (anything with ``shape`` and ``ndim``: a
    device array too), as tuples of ints, with the errors the numpy path raises; the device
    backend's kernels share it."""
    ws, stride, pad = _check_run(nd, x, ws, stride, pad, ignore_border)
    return ws, stride, pad, _Geometry(nd, x.shape, ws, stride, pad, ignore_border).out


def _lowest(dtype: np.dtype):
    """A value no element is below: what max pooling pads with, so padding never wins."""
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def pool_forward(x: np.ndarray, nd: int, ws, stride, pad, ignore_border: bool,
                 mode: str) -> np.ndarray:
    """Pooled ``x`` (numpy): the computation of ``Pool``."""
    ws, stride, pad = _check_run(nd, x, ws, stride, pad, ignore_border)
    geo = _Geometry(nd, x.shape, ws, stride, pad, ignore_border)
    if 0 in geo.out:
        return np.zeros(geo.lead + geo.out, dtype=x.dtype)
    is_max = mode == "max"
    work = x if is_max or x.dtype.kind == "f" else x.astype(np.float64)
    acc = geo.embed(work, _lowest(work.dtype) if is_max else 0)
    combine = np.maximum if is_max else np.add
    lead = (slice(None),) * len(geo.lead)
    # max and sum are separable: one pooled axis at a time, a slice per window offset
    for d in range(nd):
        pre = lead + (slice(None),) * d
        part = None
        for k in range(ws[d]):
            piece = acc[pre + (geo.window_slice(d, k),)]
            part = piece.copy() if part is None else combine(part, piece, out=part)
        acc = part
    if mode.startswith("average"):
        acc = acc / geo.counts(mode == "average_inc_pad")
    return np.asarray(acc).astype(x.dtype, copy=False)


def max_pool_grad(x: np.ndarray, maxout: np.ndarray, gz: np.ndarray, nd: int, ws, stride, pad,
                  ignore_border: bool) -> np.ndarray:
    """The gradient of max pooling: each window's output gradient added to every element of
    the window equal to its maximum."""
    ws, stride, pad = _check_run(nd, x, ws, stride, pad, ignore_border)
    geo = _Geometry(nd, x.shape, ws, stride, pad, ignore_border)
    _check_pooled(geo, maxout, "the max-pool output")
    _check_pooled(geo, gz, "the output gradient")
    gx = np.zeros(geo.lead + geo.padded, dtype=np.result_type(x.dtype, gz.dtype))
    if 0 not in geo.out:
        xp = geo.embed(x, _lowest(x.dtype))
        for idx in geo.offsets():
            gx[idx] += np.where(xp[idx] == maxout, gz, 0)
    return gx[geo.inner].astype(x.dtype, copy=False)


def average_pool_grad(x: np.ndarray, gz: np.ndarray, nd: int, ws, stride, pad,
                      ignore_border: bool, mode: str) -> np.ndarray:
    """The gradient of sum or average pooling: each window's output gradient (divided by the
    window's count for an average) added to every element of the window."""
    ws, stride, pad = _check_run(nd, x, ws, stride, pad, ignore_border)
    geo = _Geometry(nd, x.shape, ws, stride, pad, ignore_border)
    _check_pooled(geo, gz, "the output gradient")
    dtype = np.result_type(x.dtype, gz.dtype)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    gx = np.zeros(geo.lead + geo.padded, dtype=dtype)
    if 0 not in geo.out:
        g = gz if mode == "sum" else gz / geo.counts(mode == "average_inc_pad")
        for idx in geo.offsets():
            gx[idx] += g
    return gx[geo.inner].astype(x.dtype, copy=False)


def max_pool_grad_grad(x: np.ndarray, maxout: np.ndarray, ggx: np.ndarray, nd: int, ws,
                       stride, pad, ignore_border: bool) -> np.ndarray:
    """The transpose of ``max_pool_grad`` in its output gradient: for each window, the sum of
    ``ggx`` over the window's elements equal to its maximum."""
    ws, stride, pad = _check_run(nd, x, ws, stride, pad, ignore_border)
    geo = _Geometry(nd, x.shape, ws, stride, pad, ignore_border)
    _check_pooled(geo, maxout, "the max-pool output")
    if ggx.shape != x.shape:
        raise ValueError(f"max-pool grad-grad: the input has shape {x.shape} but its gradient "
                         f"{ggx.shape}")
    out = np.zeros(geo.lead + geo.out, dtype=np.result_type(x.dtype, ggx.dtype))
    if 0 not in geo.out:
        xp = geo.embed(x, _lowest(x.dtype))
        gp = geo.embed(ggx, 0)
        for idx in geo.offsets():
            out += np.where(xp[idx] == maxout, gp[idx], 0)
    return out.astype(x.dtype, copy=False)


def _check_pooled(geo: _Geometry, a: np.ndarray, what: str) -> None:
    if a.shape != geo.lead + geo.out:
        raise ValueError(f"pooling gradient: {what} has shape {a.shape}, but pooling an input "
                         f"of shape {geo.lead + geo.n} gives {geo.lead + geo.out}")


# -- ops -------------------------------------------------------------------------------------------

class _PoolBase(Op):
    """What the pooling ops share: their fields, parameter inputs and checks."""

    __props__ = ("ignore_border", "mode", "ndim")

    def __init__(self, ignore_border: bool = False, mode: str = "max", ndim: int = 2):
        if mode == "max_deterministic":  # Theano's alias: max pooling on the CPU already is
            mode = "max"
        if mode == "average":
            mode = "average_inc_pad"
        if mode not in MODES:
            raise ValueError(f"Pool mode parameter only support 'max', 'sum', "
                             f"'average_inc_pad' and 'average_exc_pad'. Got {mode}")
        if not isinstance(ndim, (int, np.integer)) or ndim < 1:
            raise ValueError(f"pooling: ndim must be a positive int, got {ndim!r}")
        self.ignore_border, self.mode, self.ndim = bool(ignore_border), mode, int(ndim)

    def _tensor(self, v, what: str):
        v = as_tensor_variable(v)
        if v.ndim < self.ndim:
            raise graph_error(f"{type(self).__name__}: pooling over {self.ndim} axes needs "
                              f"{what} with {self.ndim} or more dimensions, got {v.type}")
        return v

    def _param_inputs(self, ws, stride, pad):
        ws, stride, pad = _params(self.ndim, ws, stride, pad)
        _check_static(self.ndim, self.ignore_border, ws, stride, pad)
        return [ws, stride, pad]

    def connection_pattern(self, node):
        n_tensors = len(node.inputs) - 3
        return [[True]] * n_tensors + [[False]] * 3


class Pool(_PoolBase):
    """Max, sum or average pooling of windows ``ws`` every ``stride`` over the last ``ndim``
    axes, after ``pad`` zeros on both sides (``Pool(ignore_border, mode, ndim)(x, ws, stride,
    pad)``: Theano's op)."""

    def make_node(self, x, ws, stride=None, pad=None) -> Apply:
        x = self._tensor(x, "an input")
        params = self._param_inputs(ws, stride, pad)
        shape = _static_out_shape(x, self.ndim, self.ignore_border, *params)
        return Apply(self, [x, *params], [TensorType(x.dtype, shape=shape)()])

    def impl(self, node):
        nd, ib, mode = self.ndim, self.ignore_border, self.mode
        return lambda x, ws, st, pad: pool_forward(x, nd, ws, st, pad, ib, mode)

    def infer_shape(self, fgraph, node, shapes):
        return [_symbolic_out_shape(shapes[0], self.ndim, self.ignore_border,
                                    *node.inputs[1:])]

    @staticmethod
    def out_shape(imgshape: Sequence, ws, ignore_border: bool = False, stride=None, pad=None,
                  ndim: int = 2) -> list:
        """Theano's helper: the output shape for an input of shape ``imgshape``."""
        stride = ws if stride is None else stride
        pad = (0,) * ndim if pad is None else pad
        lead, tail = list(imgshape[:-ndim]), imgshape[len(imgshape) - ndim:]
        return lead + [out_length(tail[i], ws[i], stride[i], pad[i], ignore_border)
                       for i in range(ndim)]

    def L_op(self, inputs, outputs, grads):
        x, ws, stride, pad = inputs
        (gz,) = grads
        if self.mode == "max":
            gx = MaxPoolGrad(self.ignore_border, self.ndim)(x, outputs[0], gz, ws, stride, pad)
        else:
            gx = AveragePoolGrad(self.ignore_border, self.mode, self.ndim)(x, gz, ws, stride,
                                                                          pad)
        return [gx, None, None, None]

    def R_op(self, inputs, eval_points):
        x, ws, stride, pad = inputs
        if eval_points[0] is None:
            return [None]
        if self.mode != "max":
            return [self(eval_points[0], ws, stride, pad)]
        z = self(x, ws, stride, pad)
        return [DownsampleFactorMaxGradGrad(self.ignore_border, self.mode, self.ndim)(
            x, z, eval_points[0], ws, stride, pad)]


class MaxPoolGrad(_PoolBase):
    """The gradient of max pooling, ``MaxPoolGrad(ignore_border, ndim)(x, maxout, gz, ws,
    stride, pad)``: every element equal to its window's maximum receives the window's
    gradient (all of them at a tie, as in Theano)."""

    def __init__(self, ignore_border: bool = False, ndim: int = 2, mode: str = "max"):
        super().__init__(ignore_border, mode, ndim)
        if self.mode != "max":
            raise ValueError(f"MaxPoolGrad is max pooling's gradient, not {self.mode}'s")

    def make_node(self, x, maxout, gz, ws, stride=None, pad=None) -> Apply:
        x = self._tensor(x, "an input")
        maxout, gz = self._tensor(maxout, "a pooled output"), self._tensor(gz, "a gradient")
        if not x.ndim == maxout.ndim == gz.ndim:
            raise graph_error(f"MaxPoolGrad: the input {x.type}, output {maxout.type} and "
                              f"gradient {gz.type} must have as many dimensions")
        return Apply(self, [x, maxout, gz, *self._param_inputs(ws, stride, pad)],
                     [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        nd, ib = self.ndim, self.ignore_border
        return lambda x, mo, gz, ws, st, pad: max_pool_grad(x, mo, gz, nd, ws, st, pad, ib)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, grads):
        from .alloc import zeros_like
        x, maxout, gz, ws, stride, pad = inputs
        (ggx,) = grads
        # the gradient is piecewise constant in x and maxout (it only compares them)
        return [zeros_like(x), zeros_like(maxout),
                DownsampleFactorMaxGradGrad(self.ignore_border, "max", self.ndim)(
                    x, maxout, ggx, ws, stride, pad), None, None, None]


class AveragePoolGrad(_PoolBase):
    """The gradient of sum and average pooling, ``AveragePoolGrad(ignore_border, mode,
    ndim)(x, gz, ws, stride, pad)``: each window's gradient spread over its elements."""

    def __init__(self, ignore_border: bool = False, mode: str = "average_inc_pad",
                 ndim: int = 2):
        super().__init__(ignore_border, mode, ndim)
        if self.mode == "max":
            raise ValueError("AveragePoolGrad is the gradient of sum and average pooling; "
                             "max pooling's is MaxPoolGrad")

    def make_node(self, x, gz, ws, stride=None, pad=None, dummy=None) -> Apply:
        x = self._tensor(x, "an input")
        gz = self._tensor(gz, "a gradient")
        if x.ndim != gz.ndim:
            raise graph_error(f"AveragePoolGrad: the input {x.type} and the gradient {gz.type} "
                              "must have as many dimensions")
        return Apply(self, [x, gz, *self._param_inputs(ws, stride, pad)],
                     [TensorType(x.dtype, shape=x.type.shape)()])

    def impl(self, node):
        nd, ib, mode = self.ndim, self.ignore_border, self.mode
        return lambda x, gz, ws, st, pad: average_pool_grad(x, gz, nd, ws, st, pad, ib, mode)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, grads):
        from .alloc import zeros_like
        x, gz, ws, stride, pad = inputs
        (ggx,) = grads
        # linear in gz, whose transpose is the pooling itself; x only gives the shape
        return [zeros_like(x), Pool(self.ignore_border, self.mode, self.ndim)(
            ggx, ws, stride, pad), None, None, None]


class DownsampleFactorMaxGradGrad(_PoolBase):
    """The gradient of ``MaxPoolGrad`` with respect to its output gradient (and max
    pooling's R_op): per window, the sum of ``ggx`` over the elements equal to the window's
    maximum. Theano's name and signature ``(x, maxout, ggx, ws, stride, pad)``."""

    def make_node(self, x, maxout, ggx, ws, stride=None, pad=None) -> Apply:
        if self.mode != "max":
            raise graph_error("DownsampleFactorMaxGradGrad is defined for max pooling only",
                              ValueError)
        x = self._tensor(x, "an input")
        maxout, ggx = self._tensor(maxout, "a pooled output"), self._tensor(ggx, "a gradient")
        if not x.ndim == maxout.ndim == ggx.ndim:
            raise graph_error(f"DownsampleFactorMaxGradGrad: the input {x.type}, output "
                              f"{maxout.type} and gradient {ggx.type} must have as many "
                              "dimensions")
        return Apply(self, [x, maxout, ggx, *self._param_inputs(ws, stride, pad)],
                     [TensorType(x.dtype, shape=maxout.type.shape)()])

    def impl(self, node):
        nd, ib = self.ndim, self.ignore_border
        return lambda x, mo, ggx, ws, st, pad: max_pool_grad_grad(x, mo, ggx, nd, ws, st, pad,
                                                                  ib)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def L_op(self, inputs, outputs, grads):
        from .alloc import zeros_like
        x, maxout, ggx, ws, stride, pad = inputs
        (gz,) = grads
        return [zeros_like(x), zeros_like(maxout),
                MaxPoolGrad(self.ignore_border, self.ndim)(x, maxout, gz, ws, stride, pad),
                None, None, None]


# -- Theano's functions --------------------------------------------------------------------------

def _renamed(new, old, new_name: str, old_name: str, default=None):
    """Theano's deprecated keyword ``old_name``: accepted with a warning, refused beside
    ``new_name``."""
    if old is None:
        return new
    if new is not None and new != default:
        raise ValueError(f"You can't provide a tuple value to both '{new_name}' and "
                         f"'{old_name}'. Please provide a value only to '{new_name}'.")
    warnings.warn(f"DEPRECATION: the '{old_name}' parameter is not going to exist anymore as "
                  f"it is going to be replaced by the parameter '{new_name}'.",
                  UserWarning, stacklevel=4)  # Theano's category, shown by default
    return old


def _pool_nd(nd: int, name: str, input, ws, ignore_border, stride, pad, mode, ds, st,
             padding):
    ws = _renamed(ws, ds, "ws", "ds")
    if ws is None:
        raise ValueError("You must provide a tuple value for the window size.")
    stride = _renamed(stride, st, "stride", "st")
    pad = _renamed(pad, padding, "pad", "padding", default=(0,) * nd)
    input = as_tensor_variable(input)
    if input.ndim < nd:
        raise graph_error(f"{name} requires a dimension >= {nd}", NotImplementedError)
    if ignore_border is None:
        zeros = "(" + ", ".join("0" * nd) + ")"
        warnings.warn(
            f"{name}() will have the parameter ignore_border default value changed to True "
            "(currently False). To have consistent behavior with all Theano version, "
            "explicitly add the parameter ignore_border=True. On the GPU, using "
            "ignore_border=True is needed to use cuDNN. When using ignore_border=False and not "
            "using cuDNN, the only GPU combination supported is when `ws == stride and pad == "
            f"{zeros} and mode == 'max'`. Otherwise, the convolution will be executed on CPU.",
            UserWarning, stacklevel=3)
        ignore_border = False
    return Pool(ignore_border, mode, nd)(input, ws, stride, pad)


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max", ds=None,
            st=None, padding=None):
    """Pool the last two axes of ``input`` (Theano 1.0's ``pool_2d``): windows ``ws``, moved by
    ``stride`` (default ``ws``), over the input padded by ``pad`` zeros on both sides;
    ``ignore_border`` drops the partial windows at the end (default False, with Theano's
    warning). ``ds``, ``st``, ``padding``: Theano's deprecated names."""
    return _pool_nd(2, "pool_2d", input, ws, ignore_border, stride, pad, mode, ds, st, padding)


def pool_3d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0, 0), mode="max",
            ds=None, st=None, padding=None):
    """``pool_2d`` over the last three axes."""
    return _pool_nd(3, "pool_3d", input, ws, ignore_border, stride, pad, mode, ds, st, padding)


def max_pool_2d_same_size(input, patch_size):
    """``input`` with every element that is not the maximum of its ``patch_size`` patch set to
    zero (the patches tile the last two axes; those of a cut border are dropped)."""
    input = as_tensor_variable(input)
    output = Pool(True)(input, patch_size)
    return MaxPoolGrad(True)(input, output, output, patch_size)


def max_pool_2d(input, ds, ignore_border=None, st=None, padding=(0, 0), mode="max"):
    """The old ``theano.tensor.signal.downsample.max_pool_2d``: ``pool_2d`` under its first
    names."""
    warnings.warn("downsample.max_pool_2d is deprecated: use theano.tensor.signal.pool.pool_2d "
                  "(ws=, stride=, pad=)", DeprecationWarning, stacklevel=2)
    return pool_2d(input, ws=ds, ignore_border=ignore_border, stride=st, pad=padding,
                   mode=mode)
