"""Convolution over 2 or 3 spatial dimensions: the forward op and its two gradient ops.

Theano's abstract convolution: ``input`` is ``(batch, channels, *spatial)``, ``filters`` is
``(out_channels, channels // num_groups, *kernel)``; ``border_mode`` pads ('valid', 'full',
'half', an int, or one int or (low, high) pair per dimension), ``subsample`` strides,
``filter_dilation`` spaces the kernel's taps, ``filter_flip=True`` (the default) flips the kernel
(a true convolution; False is the cross-correlation deep-learning libraries compute).

The gradients with respect to the input and to the filters are ops of their own
(``AbstractConv2d_gradInputs``, ``AbstractConv2d_gradWeights`` and the 3-D ones), each taking
the spatial shape it must produce; the three are linear in each argument, so the gradient of
each is written with the other two, and second derivatives come for free.

On numpy, three ways to one BLAS product, chosen by size (each described where it is defined):
a stride-1 correlation with many channels multiplies each kernel tap's filters by the padded
image shifted by the tap (no columns written); one with few outputs per image copies each
tap's window of a batch-last input into im2col columns and makes one product for the whole
batch; otherwise the input is viewed as its sliding windows (``as_strided``), copied into
columns per image and multiplied by one batched matmul. The input gradient puts the columns
back (col2im) with one strided add per kernel tap, never a loop over pixels. The batch is split
over as many threads as numpy's BLAS would use, BLAS held at one thread meanwhile.
"""
from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.types import FLOAT_DTYPES, TensorType
from . import cblas
from .base import Op, as_tensor_variable, graph_error
from .buffers import Recent
from .elemwise import cast

BORDER_NAMES = ("valid", "full", "half")


# -- parameters ----------------------------------------------------------------------------------

def _int_tuple(value, n: int, what: str, least: int) -> tuple:
    """``value`` as ``n`` Python ints of at least ``least`` (an int stands for all of them)."""
    if isinstance(value, (int, np.integer)):
        value = (value,) * n
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise graph_error(f"{what} must be {n} integers, got {value!r}", ValueError) from None
    if len(out) != n or any(v < least for v in out) or any(
            not isinstance(v, (int, np.integer)) for v in value):
        raise graph_error(f"{what} must be {n} integers of at least {least}, got {value!r}",
                          ValueError)
    return out


def _border_mode(mode, n: int):
    """'valid', 'full', 'half', or a tuple of ``n`` (low, high) pads."""
    if isinstance(mode, str):
        if mode not in BORDER_NAMES:
            raise graph_error(f"border_mode must be 'valid', 'full', 'half', an int or a tuple "
                              f"of {n} ints, got {mode!r}", ValueError)
        return mode
    if isinstance(mode, (int, np.integer)):
        mode = (mode,) * n
    if not isinstance(mode, (tuple, list)) or len(mode) != n:
        raise graph_error(f"border_mode must be 'valid', 'full', 'half', an int or a tuple of "
                          f"{n} ints, got {mode!r}", ValueError)
    pads = []
    for p in mode:
        pair = (p, p) if isinstance(p, (int, np.integer)) else p
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in pair)):
            raise graph_error(f"border_mode: each dimension's padding must be an int >= 0 or "
                              f"a (low, high) pair of them, got {mode!r}", ValueError)
        pads.append((int(pair[0]), int(pair[1])))
    if all(lo == hi == 0 for lo, hi in pads):
        return "valid"
    return tuple(pads)


def _hint(shape, n: int, what: str) -> tuple | None:
    """A shape hint (``input_shape``/``filter_shape``) as ``n`` ints or None per dimension;
    symbolic entries count as unknown."""
    if shape is None:
        return None
    if isinstance(shape, Variable):
        return None
    shape = tuple(shape)
    if len(shape) != n:
        raise graph_error(f"{what} must have {n} entries, got {shape!r}", ValueError)
    out = []
    for s in shape:
        if isinstance(s, Constant):
            s = int(s.data)
        out.append(int(s) if isinstance(s, (int, np.integer)) else None)
    return tuple(out)


def _pad(mode, k, d, dim: int):
    """One spatial dimension's (low, high) padding; works on ints and symbolic lengths."""
    if mode == "valid":
        return (0, 0)
    if mode == "full":
        return ((k - 1) * d,) * 2
    if mode == "half":
        return (((k - 1) * d + 1) // 2,) * 2
    return mode[dim]


def _pads(mode, kshape, dilation) -> list:
    return [_pad(mode, k, d, dim) for dim, (k, d) in enumerate(zip(kshape, dilation))]


def _out_lengths(ishape, kshape, mode, subsample, dilation) -> list:
    """Output lengths of the spatial dimensions (ints, symbolic, or None where unknown)."""
    out = []
    for dim, (i, k, s, d) in enumerate(zip(ishape, kshape, subsample, dilation)):
        if i is None or k is None:
            out.append(None)
            continue
        lo, hi = _pad(mode, k, d, dim)
        out.append((i + lo + hi - (k - 1) * d - 1) // s + 1)
    return out


def get_conv_output_shape(image_shape, kernel_shape, border_mode, subsample,
                          filter_dilation=None) -> tuple:
    """The output shape of a convolution (Theano's helper): ``image_shape`` and
    ``kernel_shape`` are full shapes (None where unknown)."""
    n = len(image_shape) - 2
    dilation = (1,) * n if filter_dilation is None else tuple(filter_dilation)
    mode = border_mode if isinstance(border_mode, str) else _border_mode(border_mode, n)
    spatial = _out_lengths(image_shape[2:], kernel_shape[2:], mode, tuple(subsample), dilation)
    return (image_shape[0], kernel_shape[0]) + tuple(spatial)


# -- numpy ---------------------------------------------------------------------------------------

def _padded(x: np.ndarray, pads) -> np.ndarray:
    if all(lo == hi == 0 for lo, hi in pads):
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - len(pads)) + list(pads))


_SCRATCH = threading.local()
_SCRATCH_LIMIT = 1 << 27  # bytes: larger column matrices are allocated each call


def _scratch(shape, dtype, slot: str = "cols") -> np.ndarray:
    """An uninitialised array for the im2col columns (or another ``slot`` of working memory),
    reused by the calls of this thread (it never outlives the call that fills it). A fresh
    array of tens of MB costs more in page faults than the copy into it: the small ResNet's
    75 MB of columns took 24 ms fresh, 6 ms reused. The thread keeps each slot's largest
    buffer (up to 128 MB)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes > _SCRATCH_LIMIT:
        return np.empty(shape, dtype)
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.nbytes < nbytes:
        buf = bufs[slot] = np.empty(nbytes, np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _columns(xp: np.ndarray, kshape, out, subsample, dilation) -> np.ndarray:
    """im2col: ``xp`` (batch, groups, channels, *padded) as (batch, groups, channels * taps,
    positions), a contiguous copy of its windows."""
    lead = xp.shape[:3]
    st = xp.strides
    n = len(kshape)
    windows = as_strided(
        xp, lead + tuple(kshape) + tuple(out),
        st[:3] + tuple(st[3 + i] * dilation[i] for i in range(n))
        + tuple(st[3 + i] * subsample[i] for i in range(n)), writeable=False)
    cols = _scratch(windows.shape, xp.dtype)
    np.copyto(cols, windows)
    taps = lead[2] * int(np.prod(kshape))
    return cols.reshape(lead[0], lead[1], taps, int(np.prod(out)))


# Batch-last im2col, for small outputs: the input moved to (channels, *padded, batch), so a
# kernel tap's window is one slice whose rows are output-row x batch elements long (LeNet's
# second layer: 512 instead of 8), copied whole; the product is then one matrix product over
# every position of every image (per image, LeNet's 64 positions made 64 small products).
# Moving the batch axis back and forth costs two copies of the input and output's size, which
# pays where the outputs per image are few.
_BATCH_LAST_MAX_POSITIONS = 256


def _tap_windows(ks, out, subsample, dilation):
    """Each kernel tap and the slices of the padded spatial dimensions its window covers."""
    for tap in itertools.product(*(range(k) for k in ks)):
        yield tap, tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                         for t, d, s, o in zip(tap, dilation, subsample, out))


def _batch_last(img: np.ndarray, pads) -> np.ndarray:
    """``img`` (batch, channels, *spatial) as (channels, *padded, batch), zeros around."""
    spatial = img.shape[2:]
    padded = tuple(i + lo + hi for i, (lo, hi) in zip(spatial, pads))
    xt = _scratch((img.shape[1], *padded, img.shape[0]), img.dtype, "batch_last")
    if any(lo or hi for lo, hi in pads):
        xt.fill(0)
    inner = (slice(None),) + tuple(slice(lo, lo + i) for (lo, _), i in zip(pads, spatial))
    xt[inner] = np.moveaxis(img, 0, -1)
    return xt


def _columns_batch_last(xt: np.ndarray, groups: int, ks, out, subsample,
                        dilation) -> np.ndarray:
    """im2col of a batch-last input (see :func:`_batch_last`): (groups, channels per group *
    taps, positions * batch)."""
    channels, batch = xt.shape[0], xt.shape[-1]
    cols = _scratch((channels, *ks, *out, batch), xt.dtype)
    for tap, where in _tap_windows(ks, out, subsample, dilation):
        cols[(slice(None), *tap)] = xt[(slice(None), *where)]
    return cols.reshape(groups, channels // groups * int(np.prod(ks)),
                        int(np.prod(out)) * batch)


# The shift path: a stride-1 correlation as one product per kernel tap, accumulated in place.
# Each image is copied into a zero-bordered buffer, flattened; the window of a tap is then the
# whole buffer shifted by the tap's offset, a matrix BLAS reads where it lies (channels by
# positions, the row stride the buffer's), so no im2col columns are written. The products
# compute every position of the padded rows (the columns past the output's end are wasted and
# dropped), so the path is taken where that waste is small and each product is large.
_SHIFT_MIN_CHANNELS = 16  # input channels per group: the inner dimension of each product
_SHIFT_MIN_MACS = 1 << 20  # multiply-adds of one product: below it the calls cost more
_SHIFT_MAX_WASTE = 1.25  # positions computed / output positions
_ROW_MAJOR, _NO_TRANS = 101, 111  # CBLAS's enums


def _shift_gemm(img: np.ndarray, w: np.ndarray, groups: int, pads, out, subsample):
    """numpy's BLAS ``gemm`` (a ctypes function) when the shift path pays for this
    correlation, else None."""
    if any(s != 1 for s in subsample) or img.dtype != w.dtype or img.shape[0] == 0:
        return None
    og, cg = w.shape[0] // groups, w.shape[1]
    padded = [i + lo + hi for i, (lo, hi) in zip(img.shape[2:], pads)]
    length = out[0] * int(np.prod(padded[1:]))
    if (cg < _SHIFT_MIN_CHANNELS or og * cg * length < _SHIFT_MIN_MACS
            or length > _SHIFT_MAX_WASTE * int(np.prod(out))):
        return None
    if not cblas.available(img.dtype):
        return None
    return cblas._gemms[img.dtype]  # noqa: SLF001 - the raw function: one call per tap


def _tap_filters(w: np.ndarray, groups: int) -> np.ndarray:
    """``w`` as (groups, taps, out per group, channels per group): each tap's filter matrix
    contiguous, as the shift path multiplies by it."""
    n_out, cg = w.shape[:2]
    taps = int(np.prod(w.shape[2:]))
    return np.ascontiguousarray(w.reshape(groups, n_out // groups, cg, taps)
                                .transpose(0, 3, 1, 2))


def _correlate_by_shifts(gemm, img: np.ndarray, wt: np.ndarray, ks, pads, out, dilation,
                         result: np.ndarray) -> None:
    """The stride-1 cross-correlation of ``img`` with the filters ``wt`` (see
    :func:`_tap_filters`) by the shift path, written into ``result``."""
    batch, channels = img.shape[:2]
    groups, taps, og, cg = wt.shape
    n_out, dtype = groups * og, wt.dtype
    item = dtype.itemsize
    padded = [i + lo + hi for i, (lo, hi) in zip(img.shape[2:], pads)]
    pstrides = [int(np.prod(padded[k + 1:])) for k in range(len(padded))]
    size = int(np.prod(padded))
    length = out[0] * pstrides[0]
    # the last tap's window runs past the padded image by this much (into wasted columns)
    margin = sum((k - 1) * d * p for k, d, p in zip(ks[1:], dilation[1:], pstrides[1:]))
    ld = size + margin
    offsets = [sum(t * d * p for t, d, p in zip(tap, dilation, pstrides))
               for tap in itertools.product(*(range(k) for k in ks))]
    xp = _scratch((channels, ld), dtype, "shift_in")
    xp.fill(0)  # the borders and the margin; each image then overwrites the interior only
    inner = xp[:, :size].reshape((channels, *padded))[
        (slice(None),) + tuple(slice(lo, lo + i) for (lo, _), i in zip(pads, img.shape[2:]))]
    ext = _scratch((n_out, length), dtype, "shift_out")
    valid = ext.reshape((n_out, out[0], *padded[1:]))[
        (slice(None), slice(None)) + tuple(slice(0, o) for o in out[1:])]
    w_at, x_at, y_at = wt.ctypes.data, xp.ctypes.data, ext.ctypes.data
    for n in range(batch):
        inner[...] = img[n]
        for g in range(groups):
            a = w_at + g * taps * og * cg * item
            b = x_at + g * cg * ld * item
            c = y_at + g * og * length * item
            for t, off in enumerate(offsets):
                gemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, og, length, cg, 1.0,
                     a + t * og * cg * item, cg, b + off * item, ld, 1.0 if t else 0.0, c,
                     length)
        result[n] = valid


# -- threads over the batch ----------------------------------------------------------------------
# A convolution is one independent computation per image, so it runs on as many threads as
# numpy's BLAS would use (its default: one per core), each over a slice of the batch, with BLAS
# itself held at one thread meanwhile. Threaded BLAS splits every product across the cores and
# joins after it: a convolution makes tens to hundreds of products, and on a 2-core machine
# shared with other work each join waited for a descheduled thread (the small ResNet's forward
# took 3-7x PyTorch's time against 0.7x with the batch split). OPENBLAS_NUM_THREADS=1 keeps a
# convolution on one thread.
_PARALLEL_MIN_MACS = 1 << 23  # multiply-adds: below it a thread's start costs more
_threads_lock = threading.Lock()
_pools: dict = {}


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: it starts its own pools (an idle
    parent pool counts threads that are not there) with their lock unlocked."""
    global _threads_lock, _pools
    _threads_lock, _pools = threading.Lock(), {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _over_batch(batch: int, macs: int, fn) -> list:
    """``fn(lo, hi)`` over contiguous slices of the batch that together cover it, on several
    threads where the work pays for them (see above); the results in the batch's order."""
    workers = cblas.threads() if macs >= _PARALLEL_MIN_MACS else 1
    workers = max(1, min(workers, batch))
    if workers == 1:
        return [fn(0, batch)]
    bounds = [batch * k // workers for k in range(workers + 1)]
    with _threads_lock:
        pool = _pools.get(workers - 1)
        if pool is None:
            pool = _pools[workers - 1] = ThreadPoolExecutor(workers - 1,
                                                            thread_name_prefix="theon-conv")
    with cblas.one_thread():
        futures = [pool.submit(fn, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
        try:
            first = fn(bounds[0], bounds[1])
        finally:
            wait(futures)
    return [first] + [f.result() for f in futures]


def _flipped(w: np.ndarray, n: int) -> np.ndarray:
    return w[(Ellipsis,) + (slice(None, None, -1),) * n]


class ConvParams:
    """The parameters the three ops share, their checks and shape arithmetic (a mixin, not an
    op of its own)."""

    convdim = 2
    __props__ = ("imshp", "kshp", "border_mode", "subsample", "filter_flip", "filter_dilation",
                 "num_groups")

    def __init__(self, imshp=None, kshp=None, border_mode="valid", subsample=None,
                 filter_flip: bool = True, filter_dilation=None, num_groups: int = 1,
                 unshared: bool = False):
        n = self.convdim
        if unshared:
            raise graph_error("unshared convolution is not supported", NotImplementedError)
        self.imshp = _hint(imshp, n + 2, "input_shape")
        self.kshp = _hint(kshp, n + 2, "filter_shape")
        self.border_mode = _border_mode(border_mode, n)
        self.subsample = _int_tuple((1,) * n if subsample is None else subsample, n,
                                    "subsample", 1)
        self.filter_dilation = _int_tuple((1,) * n if filter_dilation is None
                                          else filter_dilation, n, "filter_dilation", 1)
        self.filter_flip = bool(filter_flip)
        if not isinstance(num_groups, (int, np.integer)) or num_groups < 1:
            raise graph_error(f"num_groups must be a positive int, got {num_groups!r}",
                              ValueError)
        self.num_groups = int(num_groups)

    def __str__(self) -> str:
        return (f"{type(self).__name__}{{{self.border_mode}, {self.subsample}, "
                f"{self.filter_flip}, {self.filter_dilation}, {self.num_groups}}}")

    # -- building --------------------------------------------------------------------------
    def _name(self) -> str:
        return f"conv{self.convdim}d"

    def _tensors(self, a, b, names):
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        n = self.convdim + 2
        for v, name in zip((a, b), names):
            if v.ndim != n:
                raise graph_error(f"{self._name()}: {name} must have {n} dimensions, got "
                                  f"{v.type}")
        dtype = str(np.result_type(a.dtype, b.dtype))
        if dtype not in FLOAT_DTYPES:
            raise graph_error(f"{self._name()}: needs float {names[0]} and {names[1]}, got "
                              f"{a.dtype} and {b.dtype}")
        return (a if a.dtype == dtype else cast(a, dtype),
                b if b.dtype == dtype else cast(b, dtype), dtype)

    def _shape_of(self, v, hint) -> list:
        """Static lengths of ``v``, filled in from the hint where the type has none."""
        shape = list(v.type.shape)
        if hint is not None:
            for k, h in enumerate(hint):
                if h is not None:
                    if shape[k] is not None and shape[k] != h:
                        raise graph_error(f"{self._name()}: the shape hint {hint} contradicts "
                                          f"{v.type}", ValueError)
                    shape[k] = h
        return shape

    def _check_channels(self, ishape, kshape):
        c, kc, o, g = ishape[1], kshape[1], kshape[0], self.num_groups
        if c is not None and kc is not None and c != kc * g:
            raise graph_error(
                f"{self._name()}: the input has {c} channels but the filters expect {kc * g} "
                f"({kc} per group x {g} groups)", ValueError)
        if o is not None and o % g:
            raise graph_error(f"{self._name()}: {o} output channels do not split into {g} "
                              "groups", ValueError)

    def _spatial_shape(self, shape):
        """The ``shape`` argument of a gradient op: an int vector of ``convdim`` entries, and
        its static values where known."""
        n = self.convdim
        if isinstance(shape, Variable):
            v = shape
        else:
            shape = tuple(shape)
            if len(shape) != n:
                raise graph_error(f"{self._name()}: the shape must have {n} entries, got "
                                  f"{shape!r}", ValueError)
            v = as_tensor_variable(list(shape))
        if v.ndim != 1 or v.dtype not in ("int8", "int16", "int32", "int64", "uint8",
                                          "uint16", "uint32", "uint64"):
            raise graph_error(f"{self._name()}: the shape must be an int vector, got {v.type}")
        if v.type.shape[0] is not None and v.type.shape[0] != n:
            raise graph_error(f"{self._name()}: the shape must have {n} entries, got {v.type}",
                              ValueError)
        if v.dtype != "int64":
            v = cast(v, "int64")
        static = [None] * n
        if isinstance(v, Constant):
            static = [int(s) for s in np.asarray(v.data).reshape(-1)]
        return v, static

    # -- numpy -----------------------------------------------------------------------------
    def _check_hints(self, img_shape, kern_shape):
        for hint, got, what in ((self.imshp, img_shape, "input"),
                                (self.kshp, kern_shape, "filters")):
            if hint is not None and any(h is not None and h != g for h, g in zip(hint, got)):
                raise ValueError(f"{self._name()}: the {what} has shape {tuple(got)} but the "
                                 f"graph was built for {hint}")

    def geometry(self, img_shape, kern_shape):
        """Padding ((low, high) per spatial dimension) and output lengths, with the errors a
        user can cause at run time (public: the device backend's kernels share it)."""
        n, g = self.convdim, self.num_groups
        self._check_hints(img_shape, kern_shape)
        if img_shape[1] != kern_shape[1] * g:
            raise ValueError(f"{self._name()}: the input has {img_shape[1]} channels but the "
                             f"filters expect {kern_shape[1] * g} ({kern_shape[1]} per group x "
                             f"{g} groups)")
        if kern_shape[0] % g:
            raise ValueError(f"{self._name()}: {kern_shape[0]} output channels do not split "
                             f"into {g} groups")
        ks = kern_shape[2:]
        pads = _pads(self.border_mode, ks, self.filter_dilation)
        out = _out_lengths(img_shape[2:], ks, self.border_mode, self.subsample,
                           self.filter_dilation)
        if any(o < 1 for o in out) or any(k < 1 for k in ks):
            raise ValueError(f"{self._name()}: a {'x'.join(map(str, ks))} kernel (dilation "
                             f"{self.filter_dilation}) does not fit the padded input "
                             f"{'x'.join(map(str, img_shape[2:]))} (border_mode "
                             f"{self.border_mode!r})")
        assert len(out) == n
        return pads, out

    def _forward(self, img: np.ndarray, kern: np.ndarray, recent: Recent | None = None
                 ) -> np.ndarray:
        pads, out = self.geometry(img.shape, kern.shape)
        w = _flipped(kern, self.convdim) if self.filter_flip else kern
        return self._correlate(img, w, pads, out, self.subsample, recent)

    def _correlate(self, img, w, pads, out, subsample, recent: Recent | None = None
                   ) -> np.ndarray:
        """The cross-correlation of ``img`` with the filters ``w`` as they are (no flip),
        written into one of ``recent``'s arrays that nobody holds, if there is one."""
        g, dilation = self.num_groups, self.filter_dilation
        batch, channels = img.shape[:2]
        n_out, ks = w.shape[0], w.shape[2:]
        positions, taps = int(np.prod(out)), int(np.prod(w.shape[1:]))
        dtype = np.result_type(img.dtype, w.dtype)
        shape = (batch, n_out, *out)
        result = np.empty(shape, dtype) if recent is None else recent.array(shape, dtype)
        gemm = _shift_gemm(img, w, g, pads, out, subsample)
        if gemm is not None:
            wt = _tap_filters(w, g)

            def part(lo, hi):
                _correlate_by_shifts(gemm, img[lo:hi], wt, ks, pads, out, dilation,
                                     result[lo:hi])
        elif positions <= _BATCH_LAST_MAX_POSITIONS:
            wm = w.reshape(g, n_out // g, taps)

            def part(lo, hi):
                cols = _columns_batch_last(_batch_last(img[lo:hi], pads), g, ks, out,
                                           subsample, dilation)
                res = np.matmul(wm, cols, out=_scratch(
                    wm.shape[:2] + cols.shape[2:], np.result_type(wm, cols), "product"))
                res = res.reshape((n_out, *out, hi - lo))
                result[lo:hi] = np.moveaxis(res, -1, 0)
        else:
            wm = w.reshape(g, n_out // g, taps)

            def part(lo, hi):
                xp = _padded(img[lo:hi].reshape((hi - lo, g, channels // g) + img.shape[2:]),
                             pads)
                cols = _columns(xp, ks, out, subsample, dilation)
                # written in place: result's (batch, out channels, ...) is (batch, groups,
                # out per group, positions)
                np.matmul(wm, cols, out=result[lo:hi].reshape(hi - lo, g, n_out // g,
                                                              positions))
        _over_batch(batch, batch * n_out * taps * positions, part)
        return result

    def _grad_weights(self, img, topgrad, kshape) -> np.ndarray:
        n, g = self.convdim, self.num_groups
        kshape = tuple(int(k) for k in kshape)
        kern_shape = (topgrad.shape[1], img.shape[1] // g) + kshape
        pads, out = self.geometry(img.shape, kern_shape)
        self._check_topgrad(topgrad, (img.shape[0], kern_shape[0]) + tuple(out))
        batch, channels = img.shape[:2]
        positions = int(np.prod(out))

        def part(lo, hi):
            if positions <= _BATCH_LAST_MAX_POSITIONS:
                dy = np.moveaxis(topgrad[lo:hi], 0, -1).reshape(
                    g, kern_shape[0] // g, positions * (hi - lo))
                cols = _columns_batch_last(_batch_last(img[lo:hi], pads), g, kshape, out,
                                           self.subsample, self.filter_dilation)
                return np.matmul(cols, dy.transpose(0, 2, 1))
            xp = _padded(img[lo:hi].reshape((hi - lo, g, channels // g) + img.shape[2:]), pads)
            cols = _columns(xp, kshape, out, self.subsample, self.filter_dilation)
            dy = topgrad[lo:hi].reshape(hi - lo, g, kern_shape[0] // g, positions)
            return np.matmul(cols, dy.transpose(0, 1, 3, 2)).sum(axis=0)
        parts = _over_batch(batch, batch * int(np.prod(kern_shape)) * positions, part)
        # each part is transposed, (groups, taps, out per group): columns x output gradient
        # is the product OpenBLAS ran a third faster than its transpose (ResNet: 30 against
        # 42 ms on one thread)
        dw = parts[0]
        for other in parts[1:]:
            dw += other
        dw = dw.transpose(0, 2, 1).reshape(kern_shape)
        return np.ascontiguousarray(_flipped(dw, n) if self.filter_flip else dw)

    def _grad_inputs(self, kern, topgrad, ishape, recent: Recent | None = None) -> np.ndarray:
        n, g = self.convdim, self.num_groups
        ishape = tuple(int(i) for i in ishape)
        img_shape = (topgrad.shape[0], kern.shape[1] * g) + ishape
        pads, out = self.geometry(img_shape, kern.shape)
        self._check_topgrad(topgrad, (img_shape[0], kern.shape[0]) + tuple(out))
        batch, cg = img_shape[0], kern.shape[1]
        ks = kern.shape[2:]
        w = _flipped(kern, n) if self.filter_flip else kern
        if self._gradient_as_correlation(ishape, ks, out, pads):
            # the input gradient of a stride-1 convolution is the correlation of the padded
            # output gradient with the filters flipped, their in and out channels swapped: the
            # same im2col and matmul as the forward pass, without col2im's strided adds
            og = kern.shape[0] // g
            wt = w.reshape((g, og, cg) + ks).swapaxes(1, 2).reshape((g * cg, og) + ks)
            reach = [(k - 1) * d for k, d in zip(ks, self.filter_dilation)]
            return self._correlate(topgrad, _flipped(wt, n),
                                   [(r - lo, r - hi) for r, (lo, hi) in zip(reach, pads)],
                                   ishape, (1,) * n, recent)
        w = w.reshape(g, kern.shape[0] // g, int(np.prod(kern.shape[1:]))).transpose(0, 2, 1)
        positions = int(np.prod(out))
        padded = tuple(i + lo + hi for i, (lo, hi) in zip(ishape, pads))
        crop = tuple(slice(lo, lo + i) for i, (lo, _) in zip(ishape, pads))
        dtype = np.result_type(kern.dtype, topgrad.dtype)
        dx = np.empty(img_shape, dtype) if recent is None else recent.array(img_shape, dtype)

        def part(lo, hi):
            if positions <= _BATCH_LAST_MAX_POSITIONS:
                # col2im on the batch-last layout: each tap's add runs over rows of output
                # row x batch elements
                dy = np.moveaxis(topgrad[lo:hi], 0, -1).reshape(
                    g, kern.shape[0] // g, positions * (hi - lo))
                dcols = np.matmul(w, dy, out=_scratch(
                    w.shape[:2] + dy.shape[2:], np.result_type(w, dy), "product"))
                dcols = dcols.reshape((g * cg, *ks, *out, hi - lo))
                dxt = _scratch((g * cg, *padded, hi - lo), dcols.dtype, "col2im")
                dxt.fill(0)
                for tap, where in _tap_windows(ks, out, self.subsample, self.filter_dilation):
                    dxt[(slice(None), *where)] += dcols[(slice(None), *tap)]
                dx[lo:hi] = np.moveaxis(dxt[(slice(None), *crop)], -1, 0)
                return
            dy = topgrad[lo:hi].reshape(hi - lo, g, kern.shape[0] // g, positions)
            dcols = np.matmul(w, dy).reshape((hi - lo, g, cg) + tuple(ks) + tuple(out))
            dxp = _scratch((hi - lo, g, cg) + padded, dcols.dtype, "col2im")
            dxp.fill(0)
            # col2im: one strided add per kernel tap
            for tap, where in _tap_windows(ks, out, self.subsample, self.filter_dilation):
                dxp[(Ellipsis,) + where] += dcols[(Ellipsis,) + tap + (slice(None),) * n]
            dx[lo:hi].reshape(dxp.shape[:3] + ishape)[...] = dxp[(Ellipsis,) + crop]
        _over_batch(batch, batch * int(np.prod(kern.shape)) * positions, part)
        return dx

    def _gradient_as_correlation(self, ishape, ks, out, pads) -> bool:
        """Whether the input gradient is cheaper as a correlation than as col2im: stride 1,
        padding within the kernel's reach, and an output about as large as the input (the
        correlation multiplies by zeros in the padding: 2.25x the work for LeNet's 12x12
        input and 8x8 output)."""
        if any(s != 1 for s in self.subsample):
            return False
        if any(max(lo, hi) > (k - 1) * d for (lo, hi), k, d in
               zip(pads, ks, self.filter_dilation)):
            return False
        return np.prod(ishape) <= 1.2 * np.prod(out)

    def _check_topgrad(self, topgrad, want):
        if topgrad.shape != tuple(want):
            raise ValueError(f"{self._name()}: the output gradient has shape {topgrad.shape} "
                             f"but the convolution's output has shape {tuple(want)}")

    # -- ops of the same parameters --------------------------------------------------------
    def _params(self, img=None, kern=None) -> dict:
        """This op's parameters, with the shape hints completed from ``img``'s and
        ``kern``'s static shapes where given."""
        imshp = self.imshp if img is None else _known(self._shape_of(img, self.imshp))
        kshp = self.kshp if kern is None else _known(self._shape_of(kern, self.kshp))
        return dict(imshp=imshp, kshp=kshp, border_mode=self.border_mode,
                    subsample=self.subsample, filter_flip=self.filter_flip,
                    filter_dilation=self.filter_dilation, num_groups=self.num_groups)

    def _sym_out_lengths(self, ishape, kshape):
        return _out_lengths(ishape, kshape, self.border_mode, self.subsample,
                            self.filter_dilation)


def _known(shape):
    return None if all(s is None for s in shape) else tuple(shape)


def _spatial_of(v, static, n):
    """The spatial lengths of ``v`` for a gradient op: constants where the type or a hint
    knows them (the op's output type then knows them too), else ``shape(v)[2:]``."""
    if all(s is not None for s in static[2:]):
        return tuple(static[2:])
    from .shape import shape
    return shape(v)[2:2 + n]


class _Forward(ConvParams):
    """``op(input, filters)``: the convolution."""

    def make_node(self, img, kern) -> Apply:
        img, kern, dtype = self._tensors(img, kern, ("input", "filters"))
        ishape, kshape = self._shape_of(img, self.imshp), self._shape_of(kern, self.kshp)
        self._check_channels(ishape, kshape)
        spatial = self._sym_out_lengths(ishape[2:], kshape[2:])
        if any(s is not None and s < 1 for s in spatial):
            raise graph_error(f"{self._name()}: a {kshape[2:]} kernel does not fit the input "
                              f"{ishape[2:]} (border_mode {self.border_mode!r})", ValueError)
        out = TensorType(dtype, shape=(ishape[0], kshape[0], *spatial))
        return Apply(self, [img, kern], [out()])

    def impl(self, node):
        forward, recent = self._forward, Recent()

        def run(img, kern):
            return forward(img, kern, recent)
        return run

    def infer_shape(self, fgraph, node, shapes):
        ishape, kshape = shapes
        return [(ishape[0], kshape[0], *self._sym_out_lengths(ishape[2:], kshape[2:]))]

    def L_op(self, inputs, outputs, grads):
        img, kern = inputs
        n = self.convdim
        gi, gw = _OPS[n]
        params = self._params(img, kern)
        d_img = gi(**params)(kern, grads[0], _spatial_of(img, params["imshp"] or [None] * 5, n))
        d_kern = gw(**params)(img, grads[0], _spatial_of(kern, params["kshp"] or [None] * 5, n))
        return [d_img, d_kern]


class _GradWeights(ConvParams):
    """``op(input, output_grad, filter_spatial_shape)``: the gradient of the convolution with
    respect to its filters."""

    def make_node(self, img, topgrad, shape) -> Apply:
        img, topgrad, dtype = self._tensors(img, topgrad, ("input", "output gradient"))
        shape, static = self._spatial_shape(shape)
        ishape = self._shape_of(img, self.imshp)
        o, c = topgrad.type.shape[1], ishape[1]
        if c is not None and c % self.num_groups:
            raise graph_error(f"{self._name()}: {c} input channels do not split into "
                              f"{self.num_groups} groups", ValueError)
        kshape = [o, None if c is None else c // self.num_groups, *static]
        if self.kshp is not None:
            kshape = [k if k is not None else h for k, h in zip(kshape, self.kshp)]
        self._check_channels(ishape, kshape)
        return Apply(self, [img, topgrad, shape], [TensorType(dtype, shape=kshape)()])

    def impl(self, node):
        return self._grad_weights

    def infer_shape(self, fgraph, node, shapes):
        ishape, tshape = shapes[0], shapes[1]
        kshape = node.inputs[2]
        return [(tshape[1], ishape[1] // self.num_groups,
                 *(kshape[k] for k in range(self.convdim)))]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def L_op(self, inputs, outputs, grads):
        img, topgrad, _ = inputs
        n = self.convdim
        fwd, (gi, _) = _FORWARD[n], _OPS[n]
        params = self._params(img, outputs[0])
        d_img = gi(**params)(grads[0], topgrad, _spatial_of(img, params["imshp"] or [None] * 5,
                                                            n))
        d_top = fwd(**params)(img, grads[0])
        return [d_img, d_top, None]


class _GradInputs(ConvParams):
    """``op(filters, output_grad, input_spatial_shape)``: the gradient of the convolution with
    respect to its input."""

    def make_node(self, kern, topgrad, shape) -> Apply:
        kern, topgrad, dtype = self._tensors(kern, topgrad, ("filters", "output gradient"))
        shape, static = self._spatial_shape(shape)
        kshape = self._shape_of(kern, self.kshp)
        c = None if kshape[1] is None else kshape[1] * self.num_groups
        ishape = [topgrad.type.shape[0], c, *static]
        if self.imshp is not None:
            ishape = [i if i is not None else h for i, h in zip(ishape, self.imshp)]
        self._check_channels(ishape, kshape)
        return Apply(self, [kern, topgrad, shape], [TensorType(dtype, shape=ishape)()])

    def impl(self, node):
        grad_inputs, recent = self._grad_inputs, Recent()

        def run(kern, topgrad, shape):
            return grad_inputs(kern, topgrad, shape, recent)
        return run

    def infer_shape(self, fgraph, node, shapes):
        kshape, tshape = shapes[0], shapes[1]
        ishape = node.inputs[2]
        return [(tshape[0], kshape[1] * self.num_groups,
                 *(ishape[k] for k in range(self.convdim)))]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def L_op(self, inputs, outputs, grads):
        kern, topgrad, _ = inputs
        n = self.convdim
        fwd, (_, gw) = _FORWARD[n], _OPS[n]
        params = self._params(outputs[0], kern)
        d_kern = gw(**params)(grads[0], topgrad, _spatial_of(kern, params["kshp"] or [None] * 5,
                                                             n))
        d_top = fwd(**params)(grads[0], kern)
        return [d_kern, d_top, None]


class AbstractConv2d(_Forward, Op):
    """2-D convolution of ``(batch, channels, rows, cols)`` by ``(out, channels/groups, kr,
    kc)`` filters."""

    convdim = 2


class AbstractConv2d_gradWeights(_GradWeights, Op):  # noqa: N801 - Theano's name
    convdim = 2


class AbstractConv2d_gradInputs(_GradInputs, Op):  # noqa: N801 - Theano's name
    convdim = 2


class AbstractConv3d(_Forward, Op):
    """3-D convolution of ``(batch, channels, depth, rows, cols)``."""

    convdim = 3


class AbstractConv3d_gradWeights(_GradWeights, Op):  # noqa: N801 - Theano's name
    convdim = 3


class AbstractConv3d_gradInputs(_GradInputs, Op):  # noqa: N801 - Theano's name
    convdim = 3


_FORWARD = {2: AbstractConv2d, 3: AbstractConv3d}
# (gradInputs, gradWeights) per number of spatial dimensions
_OPS = {2: (AbstractConv2d_gradInputs, AbstractConv2d_gradWeights),
        3: (AbstractConv3d_gradInputs, AbstractConv3d_gradWeights)}


# -- Theano's functions --------------------------------------------------------------------------

def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip: bool = True, image_shape=None,
           filter_dilation=(1, 1), num_groups: int = 1, unshared: bool = False, **kwargs):
    """``T.nnet.conv2d``: the 2-D convolution of a 4-D input by 4-D filters."""
    if kwargs:
        raise graph_error(f"conv2d: unexpected keyword arguments {sorted(kwargs)}")
    if image_shape is not None:
        if input_shape is not None:
            raise graph_error("conv2d: give input_shape or its old name image_shape, not both")
        input_shape = image_shape
    return AbstractConv2d(input_shape, filter_shape, border_mode, subsample, filter_flip,
                          filter_dilation, num_groups, unshared)(input, filters)


def conv3d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1, 1), filter_flip: bool = True, filter_dilation=(1, 1, 1),
           num_groups: int = 1):
    """``T.nnet.conv3d``: the 3-D convolution of a 5-D input by 5-D filters."""
    return AbstractConv3d(input_shape, filter_shape, border_mode, subsample, filter_flip,
                          filter_dilation, num_groups)(input, filters)


def _spatial(shape, n: int, what: str):
    if shape is None:
        raise graph_error(f"{what} is needed: the gradient op must know the shape it produces")
    if isinstance(shape, Variable):
        return shape[-n:] if shape.ndim == 1 else shape
    return tuple(shape)[-n:]


def _grad_wrt_inputs(n, output_grad, filters, input_shape, filter_shape, border_mode,
                     subsample, filter_flip, filter_dilation, num_groups):
    op = _OPS[n][0](None if isinstance(input_shape, Variable) else input_shape, filter_shape,
                    border_mode, subsample, filter_flip, filter_dilation, num_groups)
    return op(filters, output_grad, _spatial(input_shape, n, "input_shape"))


def _grad_wrt_weights(n, input, output_grad, filter_shape, input_shape, border_mode, subsample,
                      filter_flip, filter_dilation, num_groups):
    op = _OPS[n][1](input_shape, None if isinstance(filter_shape, Variable) else filter_shape,
                    border_mode, subsample, filter_flip, filter_dilation, num_groups)
    return op(input, output_grad, _spatial(filter_shape, n, "filter_shape"))


def conv2d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1), filter_flip: bool = True,
                           filter_dilation=(1, 1), num_groups: int = 1):
    """The gradient of ``conv2d`` with respect to its input (a transposed convolution):
    ``input_shape`` is the input's full shape (its last two entries are needed)."""
    return _grad_wrt_inputs(2, output_grad, filters, input_shape, filter_shape, border_mode,
                            subsample, filter_flip, filter_dilation, num_groups)


def conv2d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1), filter_flip: bool = True,
                            filter_dilation=(1, 1), num_groups: int = 1):
    """The gradient of ``conv2d`` with respect to its filters: ``filter_shape`` is the
    filters' full shape (its last two entries are needed)."""
    return _grad_wrt_weights(2, input, output_grad, filter_shape, input_shape, border_mode,
                             subsample, filter_flip, filter_dilation, num_groups)


def conv3d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1, 1), filter_flip: bool = True,
                           filter_dilation=(1, 1, 1), num_groups: int = 1):
    """``conv2d_grad_wrt_inputs`` in three dimensions."""
    return _grad_wrt_inputs(3, output_grad, filters, input_shape, filter_shape, border_mode,
                            subsample, filter_flip, filter_dilation, num_groups)


def conv3d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1, 1), filter_flip: bool = True,
                            filter_dilation=(1, 1, 1), num_groups: int = 1):
    """``conv2d_grad_wrt_weights`` in three dimensions."""
    return _grad_wrt_weights(3, input, output_grad, filter_shape, input_shape, border_mode,
                             subsample, filter_flip, filter_dilation, num_groups)


def legacy_conv2d(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
                  subsample=(1, 1), **kwargs):
    """``theano.tensor.nnet.conv.conv2d``, the old interface LeNet tutorials use: a true
    convolution (filters flipped), 'valid' or 'full'."""
    if border_mode not in ("valid", "full"):
        raise graph_error(f"conv.conv2d: border_mode must be 'valid' or 'full', got "
                          f"{border_mode!r}", ValueError)
    return AbstractConv2d(image_shape, filter_shape, border_mode, subsample, True)(input,
                                                                                    filters)


def conv3d2d(signals, filters, signals_shape=None, filters_shape=None, border_mode="valid"):
    """``theano.tensor.nnet.conv3d2d.conv3d``: signals (batch, time, channels, rows, cols),
    filters (out, time, channels, rows, cols), output (batch, time, out, rows, cols); a true
    convolution in all three dimensions."""
    if isinstance(border_mode, (tuple, list)):
        if any(m != "valid" for m in border_mode):
            raise graph_error(f"conv3d2d: only 'valid' is supported, got {border_mode!r}",
                              ValueError)
        border_mode = "valid"
    if border_mode != "valid":
        raise graph_error(f"conv3d2d: only 'valid' is supported, got {border_mode!r}",
                          ValueError)
    order = (0, 2, 1, 3, 4)

    def reorder(shape):
        return None if shape is None else tuple(tuple(shape)[k] for k in order)
    s, f = as_tensor_variable(signals), as_tensor_variable(filters)
    if s.ndim != 5 or f.ndim != 5:
        raise graph_error(f"conv3d2d: signals and filters must have 5 dimensions, got "
                          f"{s.type} and {f.type}")
    out = AbstractConv3d(reorder(signals_shape), reorder(filters_shape), "valid")(
        s.dimshuffle(*order), f.dimshuffle(*order))
    return out.dimshuffle(*order)


__all__: Sequence[str] = (
    "AbstractConv2d", "AbstractConv2d_gradInputs", "AbstractConv2d_gradWeights",
    "AbstractConv3d", "AbstractConv3d_gradInputs", "AbstractConv3d_gradWeights", "conv2d",
    "conv2d_grad_wrt_inputs", "conv2d_grad_wrt_weights", "conv3d", "conv3d_grad_wrt_inputs",
    "conv3d_grad_wrt_weights", "get_conv_output_shape", "legacy_conv2d", "conv3d2d")
