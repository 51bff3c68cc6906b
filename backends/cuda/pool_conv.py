"""2-D pooling and convolution on the device: generated gather kernels and the runtime's
matmul (issue 11).

- **Pooling** (``Pool`` and its gradients, over the last two axes, float32/float64): one
  thread per output element folds its window (max, sum, average counting the padding or not;
  the max-pool grad-grad sums ``ggx`` where the input equals the window's maximum). The
  gradients are gathers, one thread per *input* element summing over the windows that cover
  it: no atomics, so the sums are deterministic, in a fixed order.
- **Convolution** (``AbstractConv2d`` and its two gradients): im2col writes the columns
  (zero where a tap falls in the padding; ``filter_flip`` folded in by reading the taps in
  reverse), then one batched product through the runtime's matmul (cuBLAS on a GPU). The
  input gradient is the product's columns put back by col2im written as a gather (one thread
  per input element summing the columns that read it), again without atomics.

Window and convolution geometry (output lengths, padding, the errors a user can cause) come
from the ops themselves (``ops.pool.pool_geometry``, ``ConvParams.geometry``), so both paths
agree on every shape. Every kernel is a grid-stride loop in signed indices (32-bit where the
arrays allow, a 64-bit variant compiled when a launch needs it); its 32-bit variant goes into
the function's module when the function is built, where the NVRTC gate of the device tests
compiles it with the rest.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ...ops.conv import (
    AbstractConv2d,
    AbstractConv2d_gradInputs,
    AbstractConv2d_gradWeights,
)
from ...ops.pool import (
    AveragePoolGrad,
    DownsampleFactorMaxGradGrad,
    MaxPoolGrad,
    Pool,
    pool_geometry,
)
from ...symbolic.graph import Apply
from .. import dialect as D
from . import plan
from .backend import BLOCK, _Build, _host_error, device_thunk

#: the dtypes these kernels are written for (a pooling of integers runs on the host)
FLOATS = ("float32", "float64")
# a 32-bit launch: every index, and the grid-stride loop's last step past the end, fit an int
_INT32_LIMIT = 2 ** 31 - 1 - BLOCK * 65536


# -- rendering ---------------------------------------------------------------------------------

def _signature(name: str, pointers: Sequence[str], ints: Sequence[str], index: str) -> list[str]:
    params = [*pointers, *(f"const {index} {n}" for n in ints)]
    return [f'extern "C" __global__ void {name}(', "    " + ",\n    ".join(params) + ")", "{",
            f"    for ({index} i = ({index})blockIdx.x * blockDim.x + threadIdx.x; i < total;",
            f"         i += ({index})blockDim.x * gridDim.x) {{"]


def _index(index32: bool) -> str:
    return D.CUDA.ctype("int32" if index32 else "int64")


#: the integer parameters of every pooling kernel, after ``total``
POOL_INTS = ("H", "W", "OH", "OW", "wh", "ww", "sh", "sw", "ph", "pw")


def render_pool(kind: str, dtype: str, name: str, index32: bool = True) -> str:
    """A pooling kernel of ``kind``: 'max', 'sum', 'average_inc_pad', 'average_exc_pad' (the
    forward pass: ``x``, ``out``), 'gradgrad' (``x``, ``maxout``, ``ggx``, ``out``), one
    thread per output element, or 'grad_max' (``x``, ``maxout``, ``gz``, ``gx``),
    'grad_sum', 'grad_average_inc_pad', 'grad_average_exc_pad' (``gz``, ``gx``), one thread
    per input element. Arrays are C-contiguous, ``(N, H, W)`` in and ``(N, OH, OW)`` pooled;
    the parameters are ``total`` (the threads' elements) and ``POOL_INTS``. Windows lie in
    the padded axis (length ``H + 2 ph``): window ``j`` covers ``[j sh, j sh + wh)`` cut at
    that length, as in ops/pool.py."""
    t, ix = D.CUDA.ctype(dtype), _index(index32)
    grad = kind.startswith("grad_")
    mode = kind[5:] if grad else kind
    if grad:
        pointers = ([f"const {t} *x", f"const {t} *maxout"] if mode == "max" else []) + \
            [f"const {t} *gz", f"{t} *gx"]
    elif kind == "gradgrad":
        pointers = [f"const {t} *x", f"const {t} *maxout", f"const {t} *ggx", f"{t} *out"]
    else:
        pointers = [f"const {t} *x", f"{t} *out"]
    lines = _signature(name, pointers, ("total", *POOL_INTS), ix)

    def window(j: str, k: str, s: str, w: str, p: str, n: str, inner: bool = True
               ) -> list[str]:
        # window j's extent in the padded axis, and (inner) the input's own elements in it
        lines = [f"const {ix} {j}s = {j} * {s};",
                 f"const {ix} {j}e = {j}s + {w} < {n} + 2 * {p} ? {j}s + {w} : {n} + 2 * {p};"]
        return lines + [f"const {ix} {k}0 = ({j}s > {p} ? {j}s : {p}) - {p};",
                        f"const {ix} {k}1 = ({j}e < {n} + {p} ? {j}e : {n} + {p}) - {p};"
                        ] * inner

    def count(mode: str) -> str:
        if mode == "average_inc_pad":
            return "(ohe - ohs) * (owe - ows)"
        return "(h1 - h0) * (w1 - w0)"

    body = []
    if not grad:  # a thread per output element: (n, oh, ow)
        body += [f"const {ix} ow = i % OW;", f"const {ix} oh = (i / OW) % OH;",
                 f"const {ix} n = i / OW / OH;",
                 *window("oh", "h", "sh", "wh", "ph", "H"),
                 *window("ow", "w", "sw", "ww", "pw", "W"),
                 f"const {t} *xn = x + n * H * W;"]
        if mode == "max":  # NaN wins; a window of padding alone (an empty input) is -inf
            inf = D.CUDA.constant("INFINITY")
            body += [f"{t} m = h0 < h1 && w0 < w1 ? xn[h0 * W + w0] : -({t}){inf};",
                     f"for ({ix} h = h0; h < h1; ++h)",
                     f"    for ({ix} w = w0; w < w1; ++w) {{",
                     f"        const {t} v = xn[h * W + w];",
                     "        if (v > m || v != v) m = v;",
                     "    }",
                     "out[i] = m;"]
        elif mode == "gradgrad":  # ggx summed where the input is its window's maximum
            body += [f"const {t} m = maxout[i];", f"const {t} *gn = ggx + n * H * W;",
                     f"{t} acc = 0;",
                     f"for ({ix} h = h0; h < h1; ++h)",
                     f"    for ({ix} w = w0; w < w1; ++w)",
                     "        if (xn[h * W + w] == m) acc += gn[h * W + w];",
                     "out[i] = acc;"]
        else:
            body += [f"{t} acc = 0;",
                     f"for ({ix} h = h0; h < h1; ++h)",
                     f"    for ({ix} w = w0; w < w1; ++w) acc += xn[h * W + w];",
                     "out[i] = acc;" if mode == "sum" else
                     f"out[i] = acc / ({t})({count(mode)});"]
    else:  # a thread per input element (n, h, w), gathering from the windows covering it
        body += [f"const {ix} w = i % W;", f"const {ix} h = (i / W) % H;",
                 f"const {ix} n = i / W / H;",
                 # windows j with j s <= h + p < j s + ws, j < OH
                 f"const {ix} hp = h + ph, wp = w + pw;",
                 f"const {ix} oh0 = hp < wh ? 0 : (hp - wh) / sh + 1;",
                 f"const {ix} oh1 = hp / sh + 1 < OH ? hp / sh + 1 : OH;",
                 f"const {ix} ow0 = wp < ww ? 0 : (wp - ww) / sw + 1;",
                 f"const {ix} ow1 = wp / sw + 1 < OW ? wp / sw + 1 : OW;",
                 f"const {ix} base = n * OH * OW;"]
        if mode == "max":
            body += [f"const {t} v = x[i];"]
        body += [f"{t} acc = 0;",
                 f"for ({ix} oh = oh0; oh < oh1; ++oh)",
                 f"    for ({ix} ow = ow0; ow < ow1; ++ow) {{",
                 f"        const {ix} o = base + oh * OW + ow;"]
        if mode == "max":
            body += ["        if (maxout[o] == v) acc += gz[o];"]
        elif mode == "sum":
            body += ["        acc += gz[o];"]
        else:
            inner = mode == "average_exc_pad"
            body += ["        " + line for line in
                     window("oh", "h", "sh", "wh", "ph", "H", inner) +
                     window("ow", "w", "sw", "ww", "pw", "W", inner)]
            body += [f"        acc += gz[o] / ({t})({count(mode)});"]
        body += ["    }", "gx[i] = acc;"]
    return "\n".join([*lines, *("        " + line for line in body), "    }", "}", ""])


#: the integer parameters of the im2col and col2im kernels, after ``total``
CONV_INTS = ("C", "H", "W", "OH", "OW", "kh", "kw", "sh", "sw", "dh", "dw", "ph", "pw",
             "sb", "sk")


def _tap(flip: bool, k: str, n: str) -> str:
    # filter_flip: tap k of the filters reads the input at the mirrored offset
    return f"({n} - 1 - {k})" if flip else k


def render_im2col(dtype: str, name: str, flip: bool, index32: bool = True) -> str:
    """im2col: ``x`` (B, C, H, W) C-contiguous into ``cols`` as rows ``(c, kh, kw)`` and
    columns ``(oh, ow)``: element (b, row, p) at ``b sb + row sk + p`` (``sb = C kh kw OH
    OW, sk = OH OW`` is (B, rows, positions); ``sb = OH OW, sk = B OH OW`` is (rows, B,
    positions)). A tap in the padding gives 0; ``flip`` reads the taps mirrored (a true
    convolution's filters need no flipped copy). One thread per column element."""
    t, ix = D.CUDA.ctype(dtype), _index(index32)
    body = [f"const {ix} ow = i % OW;", f"{ix} r = i / OW;",
            f"const {ix} oh = r % OH;", "r /= OH;",
            f"const {ix} j = r % kw;", "r /= kw;",
            f"const {ix} k = r % kh;", "r /= kh;",
            f"const {ix} c = r % C;", f"const {ix} b = r / C;",
            f"const {ix} h = oh * sh + {_tap(flip, 'k', 'kh')} * dh - ph;",
            f"const {ix} w = ow * sw + {_tap(flip, 'j', 'kw')} * dw - pw;",
            f"const {t} v = h >= 0 && h < H && w >= 0 && w < W ? "
            f"x[((b * C + c) * H + h) * W + w] : ({t})0;",
            "cols[b * sb + ((c * kh + k) * kw + j) * sk + oh * OW + ow] = v;"]
    lines = _signature(name, [f"const {t} *x", f"{t} *cols"], ("total", *CONV_INTS), ix)
    return "\n".join([*lines, *("        " + line for line in body), "    }", "}", ""])


def render_col2im(dtype: str, name: str, flip: bool, index32: bool = True) -> str:
    """col2im as a gather, the transpose of ``render_im2col`` (same layout parameters): each
    thread one element (b, c, h, w) of ``dx``, the sum of the column elements im2col would
    have read it into (taps and positions in a fixed order: deterministic, no atomics)."""
    t, ix = D.CUDA.ctype(dtype), _index(index32)
    body = [f"const {ix} w = i % W;", f"{ix} r = i / W;",
            f"const {ix} h = r % H;", "r /= H;",
            f"const {ix} c = r % C;", f"const {ix} b = r / C;",
            f"const {t} *col = cols + b * sb + c * kh * kw * sk;",
            f"{t} acc = 0;",
            f"for ({ix} k = 0; k < kh; ++k) {{",
            f"    const {ix} th = h + ph - {_tap(flip, 'k', 'kh')} * dh;",
            "    if (th < 0 || th % sh != 0 || th / sh >= OH) continue;",
            f"    for ({ix} j = 0; j < kw; ++j) {{",
            f"        const {ix} tw = w + pw - {_tap(flip, 'j', 'kw')} * dw;",
            "        if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;",
            "        acc += col[(k * kw + j) * sk + th / sh * OW + tw / sw];",
            "    }",
            "}",
            "dx[i] = acc;"]
    lines = _signature(name, [f"const {t} *cols", f"{t} *dx"], ("total", *CONV_INTS), ix)
    return "\n".join([*lines, *("        " + line for line in body), "    }", "}", ""])


# -- launching ---------------------------------------------------------------------------------

class _Kernel:
    """One generated kernel of the function's module: its 32-bit variant added when the
    function is built (compiled with the module's other kernels), the 64-bit one compiled
    alone when a launch's arrays need it."""

    def __init__(self, render: Callable[[str, bool], str], dtype: str, dev: _Build,
                 label: str):
        self.render, self.dtype, self.label = render, dtype, label
        self.rt, self.module = dev.rt, dev.module
        self.name = dev.module.name()
        dev.module.add(render(self.name, True), (dtype,))
        self.wide = None

    def __call__(self, total: int, arrays: Sequence, ints: Sequence[int], flops: int) -> None:
        if total == 0:
            return
        if total <= _INT32_LIMIT and all(a.size <= _INT32_LIMIT for a in arrays):
            kernel, kind = self.module.get(self.name), np.int32
        else:
            if self.wide is None:
                source = D.CUDA.prelude([self.dtype]) + self.render("k", False)
                self.wide = self.rt.module(source).get_function("k")
            kernel, kind = self.wide, np.int64
        grid = max(1, min(-(-total // BLOCK), 65536))
        kernel((grid,), (BLOCK,), (*arrays, kind(total), *(kind(v) for v in ints)))
        if plan.recording() is not None:
            plan.launch("kernel", self.label, grid, BLOCK, plan.nbytes(arrays), flops)


def _contiguous(rt, a, label: str):
    """``a`` itself when C-contiguous (what the kernels index), else a contiguous copy by the
    array library (rare: a transposed view; a copy kernel of the module for every node would
    cost each function's compile more than it saves)."""
    if a.flags.c_contiguous:
        return a
    out = rt.xp.ascontiguousarray(a)
    if plan.recording() is not None:
        plan.launch("array", f"{label} copy", 1, 1, 2 * out.nbytes, 0)
    return out


def _product(rt, a, b, label: str):
    """``a @ b`` (batched, broadcast as numpy's matmul) through the runtime's matmul."""
    r = rt.matmul(a, b)
    if plan.recording() is not None:
        plan.launch("matmul", label, 1, 1, plan.nbytes([a, b, r]), 2 * r.size * a.shape[-1])
        plan.product([a, b], [r])
    return r


# -- pooling -----------------------------------------------------------------------------------

def _pool_ok(node: Apply) -> bool:
    return node.op.ndim == 2 and all(v.dtype in FLOATS for v in node.outputs) and \
        all(v.dtype == node.outputs[0].dtype for v in node.inputs[:-3])


def _params_on_host(node: Apply) -> list[int]:
    """ws, stride and pad (the last three inputs): numbers a launch needs on the host."""
    n = len(node.inputs)
    return [n - 3, n - 2, n - 1]


class _Pooling:
    """The geometry of one call and the launch of a pooling kernel over it."""

    def __init__(self, node: Apply, kind: str, dev: _Build):
        op, dtype = node.op, node.outputs[0].dtype
        self.node, self.ib = node, op.ignore_border
        self.kernel = _Kernel(lambda name, i32: render_pool(kind, dtype, name, i32), dtype,
                              dev, f"{type(op).__name__}{{{op.mode}}}")
        self.rt = dev.rt

    def geometry(self, args: Sequence, x, pooled: Sequence, same: Sequence):
        """(lead, H, W, out lengths, parameters): checked as the numpy path checks, the
        pooled arrays of the output's shape, the others of the input's (else the numpy
        thunk's error)."""
        try:
            ws, st, pad, out = pool_geometry(2, x, *args[-3:], self.ib)
        except (ValueError, NotImplementedError):
            _host_error(self.node, args, "invalid pooling parameters")
        lead, (h, w) = tuple(x.shape[:-2]), tuple(x.shape[-2:])
        if any(tuple(a.shape) != lead + tuple(out) for a in pooled) or \
                any(tuple(a.shape) != tuple(x.shape) for a in same):
            _host_error(self.node, args, "the arrays do not fit the pooling's shapes")
        return lead, h, w, out, (*ws, *st, *pad)

    def launch(self, arrays: Sequence, out_shape: tuple, total: int, h: int, w: int, out,
               params, flops: int):
        arrays = [_contiguous(self.rt, a, self.kernel.label) for a in arrays]
        result = self.rt.empty(out_shape, self.node.outputs[0].dtype)
        self.kernel(total, [*arrays, result], (h, w, *out, *params), flops)
        return result


@device_thunk(Pool, host_args=_params_on_host)
def _pool(node: Apply, dev: _Build) -> Callable | None:
    """Max, sum or average pooling of the last two axes: a thread per output element."""
    if not _pool_ok(node):
        return None
    pooling = _Pooling(node, node.op.mode, dev)

    def run(x, *params):
        lead, h, w, out, p = pooling.geometry((x, *params), x, (), ())
        shape = lead + tuple(out)
        total = int(np.prod(shape))
        return pooling.launch([x], shape, total, h, w, out, p, total * p[0] * p[1])
    return run


@device_thunk(MaxPoolGrad, host_args=_params_on_host)
def _max_pool_grad(node: Apply, dev: _Build) -> Callable | None:
    """Max pooling's gradient as a gather: a thread per input element adds the gradients of
    the windows covering it whose maximum it equals (all of them at a tie, as in Theano)."""
    if not _pool_ok(node):
        return None
    pooling = _Pooling(node, "grad_max", dev)

    def run(x, maxout, gz, *params):
        args = (x, maxout, gz, *params)
        _, h, w, out, p = pooling.geometry(args, x, (maxout, gz), ())
        return pooling.launch([x, maxout, gz], tuple(x.shape), x.size, h, w, out, p,
                              x.size * p[0] * p[1] // max(p[2] * p[3], 1))
    return run


@device_thunk(AveragePoolGrad, host_args=_params_on_host)
def _average_pool_grad(node: Apply, dev: _Build) -> Callable | None:
    """Sum and average pooling's gradient as a gather: a thread per input element adds the
    gradients (divided by their windows' counts for an average) of the windows covering
    it."""
    if not _pool_ok(node):
        return None
    pooling = _Pooling(node, "grad_" + node.op.mode, dev)

    def run(x, gz, *params):
        _, h, w, out, p = pooling.geometry((x, gz, *params), x, (gz,), ())
        # (x gives only the shape: the kernel reads gz alone)
        return pooling.launch([gz], tuple(x.shape), x.size, h, w, out, p,
                              x.size * p[0] * p[1] // max(p[2] * p[3], 1))
    return run


@device_thunk(DownsampleFactorMaxGradGrad, host_args=_params_on_host)
def _max_pool_grad_grad(node: Apply, dev: _Build) -> Callable | None:
    """The max-pool gradient's transpose: a thread per window sums ``ggx`` over its
    elements equal to the window's maximum."""
    if not _pool_ok(node):
        return None
    pooling = _Pooling(node, "gradgrad", dev)

    def run(x, maxout, ggx, *params):
        lead, h, w, out, p = pooling.geometry((x, maxout, ggx, *params), x, (maxout,), (ggx,))
        total = maxout.size
        return pooling.launch([x, maxout, ggx], tuple(maxout.shape), total, h, w, out, p,
                              total * p[0] * p[1])
    return run


# -- convolution -------------------------------------------------------------------------------

def _conv_ok(node: Apply) -> bool:
    dtype = node.outputs[0].dtype
    return dtype in FLOATS and all(v.dtype == dtype for v in node.inputs[:2])


class _Conv:
    """What the three convolution thunks share: the op, its im2col or col2im kernel, and the
    checked geometry of a call."""

    def __init__(self, node: Apply, dev: _Build, render: Callable, what: str):
        op, dtype = node.op, node.outputs[0].dtype
        self.node, self.op, self.rt, self.dtype = node, op, dev.rt, dtype
        self.label = type(op).__name__
        self.kernel = _Kernel(lambda name, i32: render(dtype, name, op.filter_flip, i32),
                              dtype, dev, f"{self.label} {what}")

    def contiguous(self, a):
        return _contiguous(self.rt, a, self.label)

    def geometry(self, args: Sequence, img_shape, kern_shape, topgrad=None):
        """(pads, output lengths) from the op's own arithmetic; a call the numpy path refuses
        raises its error."""
        try:
            pads, out = self.op.geometry(tuple(img_shape), tuple(kern_shape))
        except ValueError:
            _host_error(self.node, args, "the shapes do not fit the convolution")
        if topgrad is not None and tuple(topgrad.shape) != (
                img_shape[0], kern_shape[0], *out):
            _host_error(self.node, args, "the output gradient's shape does not fit")
        return pads, tuple(out)

    def ints(self, img_shape, kern_shape, pads, out, sb: int, sk: int) -> tuple:
        op = self.op
        return (img_shape[1], *img_shape[2:], *out, *kern_shape[2:], *op.subsample,
                *op.filter_dilation, pads[0][0], pads[1][0], sb, sk)


#: bytes of im2col columns one launch may write: a larger batch is convolved in slices of
#: whole images (a ResNet layer's columns for a batch of 128 are about 1 GB)
COLUMN_BYTES = 1 << 28


def _slices(batch: int, per_image: int) -> list[tuple[int, int]]:
    """The batch in slices whose columns (``per_image`` bytes an image) fit ``COLUMN_BYTES``."""
    step = max(1, COLUMN_BYTES // max(per_image, 1))
    return [(lo, min(lo + step, batch)) for lo in range(0, batch, step)]


@device_thunk(AbstractConv2d)
def _conv2d(node: Apply, dev: _Build) -> Callable | None:
    """The convolution as im2col columns (B, groups, taps, positions) and one batched product
    by the filters (groups, out per group, taps), broadcast over the batch: the product is
    the output's layout, (B, out channels, OH, OW)."""
    if not _conv_ok(node):
        return None
    conv = _Conv(node, dev, render_im2col, "im2col")
    rt, g = dev.rt, node.op.num_groups

    def run(img, kern):
        pads, out = conv.geometry((img, kern), img.shape, kern.shape)
        (b, c, _, _), (o, cg, kh, kw) = img.shape, kern.shape
        taps, positions = cg * kh * kw, int(np.prod(out))
        if b * o * positions == 0:
            return rt.zeros((b, o, *out), conv.dtype)
        img = conv.contiguous(img)
        filters = conv.contiguous(kern).reshape(g, o // g, taps)
        parts = _slices(b, c * kh * kw * positions * img.itemsize)
        cols = rt.empty((parts[0][1], c * kh * kw, positions), conv.dtype)
        result = rt.empty((b, o, *out), conv.dtype) if len(parts) > 1 else None
        for lo, hi in parts:
            part = cols[:hi - lo]
            conv.kernel(part.size, [img[lo:hi], part],
                        conv.ints(img.shape, kern.shape, pads, out, c * kh * kw * positions,
                                  positions), 0)
            r = _product(rt, filters, part.reshape(hi - lo, g, taps, positions), conv.label)
            if result is None:
                return r.reshape(b, o, *out)
            result[lo:hi] = r.reshape(hi - lo, o, *out)
            if plan.recording() is not None:
                plan.launch("array", f"{conv.label} slice copy", 1, 1, 2 * r.nbytes, 0)
        return result
    return run


def _shape_on_host(node: Apply) -> tuple[int]:
    """A gradient's spatial shape (input 2): lengths the launch needs on the host."""
    return (2,)


@device_thunk(AbstractConv2d_gradWeights, host_args=_shape_on_host)
def _conv2d_grad_weights(node: Apply, dev: _Build) -> Callable | None:
    """The filters' gradient: im2col columns laid out (groups, taps, B x positions) and one
    product per group by the output gradient moved to (groups, out per group, B x
    positions), transposed: the sum over the batch is inside the product (and, for a batch
    in slices, a kernel adding each slice's product)."""
    if not _conv_ok(node):
        return None
    conv = _Conv(node, dev, render_im2col, "im2col")
    rt, g, dtype = dev.rt, node.op.num_groups, conv.dtype

    def run(img, topgrad, kshape):
        (b, c, _, _), o = img.shape, topgrad.shape[1]
        kern_shape = (o, c // g, *(int(k) for k in kshape))
        pads, out = conv.geometry((img, topgrad, kshape), img.shape, kern_shape, topgrad)
        kh, kw = kern_shape[2:]
        taps, positions = kern_shape[1] * kh * kw, int(np.prod(out))
        if b * positions * o * taps == 0:
            return rt.zeros(kern_shape, dtype)
        img = conv.contiguous(img)
        parts = _slices(b, c * kh * kw * positions * img.itemsize)
        cols = rt.empty((c * kh * kw, parts[0][1], positions), dtype)
        dw = None
        for lo, hi in parts:
            n = hi - lo
            part = cols if n == parts[0][1] else rt.empty((c * kh * kw, n, positions), dtype)
            conv.kernel(part.size, [img[lo:hi], part],
                        conv.ints((n, *img.shape[1:]), kern_shape, pads, out, positions,
                                  n * positions), 0)
            # (O, n, OH, OW): a copy unless the slice is one image
            dy = conv.contiguous(topgrad[lo:hi] if n == 1 else
                                 topgrad[lo:hi].transpose(1, 0, 2, 3))
            dy = dy.reshape(g, o // g, n * positions)
            r = _product(rt, dy, part.reshape(g, taps, n * positions).transpose(0, 2, 1),
                         conv.label)
            if dw is None:
                dw = r
            else:
                rt.xp.add(dw, r, out=dw)
                if plan.recording() is not None:
                    plan.launch("array", f"{conv.label} sum of slices", 1, 1, 3 * r.nbytes,
                                r.size)
        return dw.reshape(kern_shape)
    return run


@device_thunk(AbstractConv2d_gradInputs, host_args=_shape_on_host)
def _conv2d_grad_inputs(node: Apply, dev: _Build) -> Callable | None:
    """The input's gradient: the filters transposed (groups, taps, out per group) times the
    output gradient (B, groups, out per group, positions), broadcast over the batch, gives
    the columns; col2im gathers each input element's sum from them."""
    if not _conv_ok(node):
        return None
    conv = _Conv(node, dev, render_col2im, "col2im")
    rt, g = dev.rt, node.op.num_groups

    def run(kern, topgrad, ishape):
        o, cg, kh, kw = kern.shape
        img_shape = (topgrad.shape[0], cg * g, *(int(i) for i in ishape))
        pads, out = conv.geometry((kern, topgrad, ishape), img_shape, kern.shape, topgrad)
        b, c = img_shape[:2]
        taps, positions = cg * kh * kw, int(np.prod(out))
        if b * o * positions * taps == 0 or 0 in img_shape:
            return rt.zeros(img_shape, conv.dtype)
        filters = conv.contiguous(kern).reshape(g, o // g, taps).transpose(0, 2, 1)
        dy = conv.contiguous(topgrad).reshape(b, g, o // g, positions)
        dx = rt.empty(img_shape, conv.dtype)
        for lo, hi in _slices(b, c * kh * kw * positions * dx.itemsize):
            cols = _product(rt, filters, dy[lo:hi], conv.label)  # (n, groups, taps, positions)
            part = dx[lo:hi]
            conv.kernel(part.size, [cols, part],
                        conv.ints(part.shape, kern.shape, pads, out, c * kh * kw * positions,
                                  positions), part.size * kh * kw)
        return dx
    return run
