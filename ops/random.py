"""Random draws: the ops behind Theano's two kinds of random streams, and the stream classes.

* ``MRG_RandomStreams`` (``theano.sandbox.rng_mrg``): L'Ecuyer's MRG31k3p generator, many
  independent streams spaced 2**72 draws apart. Its integer recurrence is written once, as
  per-element logic (:func:`mrg_step`: one stream's state in, its next state and raw sample
  out) applied to whole columns of int64 arrays, so that the same seed gives Theano 1.0.5's
  numbers and a C or CUDA backend can render the same steps, one thread per stream.
* ``RandomStreams`` (``theano.tensor.shared_randomstreams``): numpy's ``RandomState`` (legacy
  Mersenne Twister) methods, one generator per draw, seeded as Theano seeded them.

A draw's state lives in a shared variable whose ``default_update`` is the state the draw
leaves, so successive calls of a compiled function differ and ``no_default_updates=True``
repeats. Each draw reads its own state variable, so two draws with equal arguments are
different nodes and the merge pass never fuses them; the draw ops are not ``foldable``.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import config
from ..symbolic.graph import Apply, Constant, Variable
from ..symbolic.shared import shared
from ..symbolic.types import FLOAT_DTYPES, INT_DTYPES, TensorType
from .base import Op, as_tensor_variable, constant, grad_undefined, graph_error
from .elemwise import ELEMWISE as E
from .elemwise import cast
from .scalar import upcast
from .variable import TensorSharedVariable

# -- MRG31k3p: the per-element logic ---------------------------------------------------------------

M1 = 2147483647   # 2**31 - 1, modulus of the first component
M2 = 2147462579   # 2**31 - 21069, modulus of the second
MASK12, MASK13, MASK2, MULT2 = 511, 16777215, 65535, 21069

# jump matrices: A**(2**72) (from one stream to the next) and A**(2**134) (from one draw's
# block of streams to the next draw's), for each component (L'Ecuyer and Touzin's constants)
A1p72 = ((1516919229, 758510237, 499121365), (1884998244, 1516919229, 335398200),
         (601897748, 1884998244, 358115744))
A2p72 = ((1228857673, 1496414766, 954677935), (1133297478, 1407477216, 1496414766),
         (2002613992, 1639496704, 1407477216))
A1p134 = ((1702500920, 1849582496, 1656874625), (828554832, 1702500920, 1512419905),
          (1143731069, 828554832, 102237247))
A2p134 = ((796789021, 1464208080, 607337906), (1241679051, 1431130166, 1464208080),
          (1401213391, 1178684362, 1431130166))

#: ``SharedVariable.kind`` of a draw's stream states, which a device keeps in its memory
MRG_STATE = "mrg31k3p"

# the float conversion of each output dtype: (mask, offset, NORM), as Theano's CPU code has it
_MRG_FLOAT = {"float16": (0x7fff, 1, float(np.float16(3.0458e-05))),
              "float32": (0xffffffff, 0, float(np.float32(4.6566126e-10))),
              "float64": (0xffffffff, 0, 4.656612873077392578125e-10)}


def _reduce_once(y, m):
    """``y mod m`` for ``0 <= y < 2 m``: one conditional subtraction."""
    return np.where(y >= m, y - m, y)


def mrg_step(x11, x12, x13, x21, x22, x23):
    """One step of MRG31k3p: the scalar logic of the generator, applied elementwise.

    Each argument holds one component of the streams' states (int64 arrays, or Python ints,
    each below its modulus); returns the six components of the next states and the raw sample,
    an integer in [1, M1]. This function is the whole per-element kernel: a backend renders
    these lines, one stream per thread.

    The reference (Theano's C and Python code, L'Ecuyer's) computes in int32 and lets sums
    overflow, then subtracts the modulus once from a value that is negative or too large.
    Every such sum is below 2**32 and below twice the modulus, so in exact int64 arithmetic the
    same step is a subtraction when the sum reaches the modulus, with identical results (a
    wrapped negative value minus the modulus wraps back to the exact sum minus the modulus)
    and no overflow for a C or CUDA rendering either."""
    # first component: x1[n] = (2**22 x1[n-2] + (2**7 + 1) x1[n-3]) mod M1, by shifts and masks
    # (2**31 = 1 mod M1, so 2**22 x = 2**22 (x mod 2**9) + (x >> 9))
    y1 = ((x12 & MASK12) << 22) + (x12 >> 9) + ((x13 & MASK13) << 7) + (x13 >> 24)
    y1 = _reduce_once(y1, M1)
    y1 = _reduce_once(y1 + x13, M1)
    # second component: x2[n] = (2**15 x2[n-1] + (2**15 + 1) x2[n-3]) mod M2
    # (2**31 = 21069 mod M2, so 2**15 x = 2**15 (x mod 2**16) + 21069 (x >> 16))
    z1 = _reduce_once(((x21 & MASK2) << 15) + MULT2 * (x21 >> 16), M2)
    z2 = _reduce_once(((x23 & MASK2) << 15) + MULT2 * (x23 >> 16), M2)
    z2 = _reduce_once(z2 + x23, M2)
    z2 = _reduce_once(z2 + z1, M2)
    raw = np.where(y1 <= z2, y1 - z2 + M1, y1 - z2)
    return y1, x11, x12, z2, x21, x22, raw


def mrg_to_float(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw MRG samples (ints in [1, M1]) as floats in (0, 1) of ``dtype``: Theano's
    ``((raw & mask) + offset) * NORM`` computed in double, then rounded to ``dtype``."""
    mask, offset, norm = _MRG_FLOAT[dtype]
    if offset:
        raw = (raw & mask) + offset
    return (raw * norm).astype(dtype, copy=False)


def mrg_uniform_sample(rstate: np.ndarray, n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform samples from the streams ``rstate`` ((n_streams, 6) int32): the streams'
    new states and the samples. Element i is the (i // n_streams)-th draw of stream
    i % n_streams, as in Theano; each pass of the loop steps every stream still needed."""
    rstate = np.asarray(rstate)
    if rstate.ndim != 2 or rstate.shape[1] != 6 or rstate.shape[0] < 1:
        raise ValueError(f"the MRG state must be an (n_streams, 6) matrix, got shape "
                         f"{rstate.shape}")
    if n > M1:
        raise ValueError("rng_mrg does not support more then (2**31 -1) samples")
    n_streams = rstate.shape[0]
    state = tuple(rstate.astype(np.int64).T)
    out = np.empty(n, dtype=dtype)
    full, rest = divmod(n, n_streams)
    block = out[:full * n_streams].reshape(full, n_streams)
    for k in range(full):
        *state, raw = mrg_step(*state)
        block[k] = mrg_to_float(raw, dtype)
    if rest:  # the first `rest` streams step once more
        *head, raw = mrg_step(*(c[:rest] for c in state))
        state = [np.concatenate([h, c[rest:]]) for h, c in zip(head, state)]
        out[full * n_streams:] = mrg_to_float(raw, dtype)
    return np.stack(state, axis=1).astype(np.int32), out


def _matvec_mod(a, s: np.ndarray, m: int) -> np.ndarray:
    """``a @ s.T mod m`` for 3x3 ``a`` (Python ints < 2**31) and rows ``s`` ((k, 3) int64):
    each product fits in int64, so the sum of the three reduced products does."""
    return np.stack([sum((a[r][c] * s[:, c]) % m for c in range(3)) % m for r in range(3)],
                    axis=1)


def _matmul_mod(a, b, m: int):
    return tuple(tuple(sum(a[r][k] * b[k][c] for k in range(3)) % m for c in range(3))
                 for r in range(3))


def mrg_substreams(rstate: np.ndarray, n_streams: int) -> np.ndarray:
    """The (n_streams, 6) int32 states of streams 2**72 draws apart, the first ``rstate``:
    row i is A**(72 i) rstate, built for all rows at once by binary powers of the jump."""
    if n_streams < 1:
        raise ValueError(f"the number of MRG streams must be positive, got {n_streams}")
    states = np.tile(np.asarray(rstate, dtype=np.int64), (n_streams, 1))
    index = np.arange(n_streams)
    a1, a2, bit = A1p72, A2p72, 0
    while (1 << bit) < n_streams:
        rows = ((index >> bit) & 1).astype(bool)
        states[rows, :3] = _matvec_mod(a1, states[rows, :3], M1)
        states[rows, 3:] = _matvec_mod(a2, states[rows, 3:], M2)
        a1, a2, bit = _matmul_mod(a1, a1, M1), _matmul_mod(a2, a2, M2), bit + 1
    return states.astype(np.int32)


def mrg_jump_block(rstate: np.ndarray) -> np.ndarray:
    """``rstate`` advanced 2**134 draws: where the next draw's block of streams starts."""
    s = np.asarray(rstate, dtype=np.int64)[None, :]
    return np.concatenate([_matvec_mod(A1p134, s[:, :3], M1),
                           _matvec_mod(A2p134, s[:, 3:], M2)], axis=1)[0].astype(np.int32)


def guess_n_streams(size, warn: bool = False) -> int:
    """Theano's number of streams for a draw of ``size``: a sixth of the elements when the
    size is a tuple of ints (at most 60 * 256), else 60 * 256."""
    if isinstance(size, (tuple, list)) and all(isinstance(i, (int, np.integer)) for i in size):
        r = 1
        for s in size:
            r *= int(s)
        if r > 6:
            r = r // 6
        return min(r, 60 * 256)
    if warn:
        warnings.warn(f"MRG_RandomStreams Can't determine #streams from size ({size}), "
                      "guessing 60*256", stacklevel=3)
    return 60 * 256


# -- the ops ---------------------------------------------------------------------------------------

def _undefined_grads(op, inputs):
    """No gradient through a draw: undefined for a float parameter (an error only if used),
    disconnected (None) for the integer ones (state, size, counts), so that a size read from a
    differentiated variable's shape (dropout's ``h.shape``) blocks nothing."""
    return [None if inp.dtype not in FLOAT_DTYPES else
            grad_undefined(op, k, inp, "No gradient defined through random sampling")
            for k, inp in enumerate(inputs)]


def _size_input(size, what: str):
    """``size`` as an int64 vector variable; a graph error naming the user's line otherwise."""
    size = as_tensor_variable(size)
    if size.ndim != 1 or size.dtype not in INT_DTYPES + ("uint8", "uint16", "uint32"):
        raise graph_error(f"{what}: size must be an integer vector, got {size.type}")
    return size if size.dtype == "int64" else cast(size, "int64")


def _static_lengths(size: Variable, ndim: int) -> tuple:
    """The lengths a size vector fixes at build time (None where it is symbolic)."""
    if isinstance(size, Constant):
        return tuple(int(s) for s in size.data)
    owner = size.owner
    if owner is not None and type(owner.op).__name__ == "MakeVector":
        return tuple(int(i.data) if isinstance(i, Constant) else None for i in owner.inputs)
    return (None,) * ndim


def _shape_from_size(size: Variable, ndim: int) -> list:
    return [size[i] for i in range(ndim)]


class MRGUniform(Op):
    """Uniform draws in (0, 1) from MRG31k3p streams: ``(rstate, size) -> (new rstate,
    sample)``; ``rstate`` is an (n_streams, 6) int32 matrix (Theano's ``mrg_uniform``)."""

    __props__ = ("dtype", "ndim")
    foldable = False

    def __init__(self, dtype: str, ndim: int):
        if dtype not in _MRG_FLOAT:
            raise graph_error(f"MRG uniform: dtype must be one of {sorted(_MRG_FLOAT)}, got "
                              f"{dtype!r}")
        self.dtype, self.ndim = dtype, int(ndim)

    def make_node(self, rstate, size) -> Apply:
        rstate = as_tensor_variable(rstate)
        if rstate.ndim != 2 or rstate.dtype != "int32":
            raise graph_error(f"MRG uniform: the state must be an int32 matrix, got "
                              f"{rstate.type}")
        size = _size_input(size, "MRG uniform")
        if size.type.shape[0] not in (None, self.ndim):
            raise graph_error(f"MRG uniform: size has {size.type.shape[0]} entries for a "
                              f"{self.ndim}-d sample", ValueError)
        static = tuple(1 if s == 1 else None for s in _static_lengths(size, self.ndim))
        return Apply(self, [rstate, size],
                     [rstate.type(), TensorType(self.dtype, shape=static)()])

    def impl(self, node):
        dtype, ndim = self.dtype, self.ndim

        def draw(rstate, size):
            shape = tuple(int(s) for s in size)
            if len(shape) != ndim:
                raise ValueError(f"MRG uniform: size {shape} has {len(shape)} entries for a "
                                 f"{ndim}-d sample")
            if any(s < 0 for s in shape):
                raise ValueError(f"MRG uniform: negative size {shape}")
            new, sample = mrg_uniform_sample(rstate, int(np.prod(shape, dtype=np.int64)), dtype)
            return new, sample.reshape(shape)
        return draw

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], _shape_from_size(node.inputs[1], self.ndim)]

    def grad(self, inputs, output_grads):
        return _undefined_grads(self, inputs)

    def R_op(self, inputs, eval_points):
        return [None, None]


class MultinomialFromUniform(Op):
    """One multinomial draw of ``n`` trials per row of ``pvals`` from given uniforms:
    ``unis[c * rows + r]`` places trial c of row r where the row's cumulative sum (in
    float64) passes it (Theano's op of the same name)."""

    __props__ = ("odtype",)

    def __init__(self, odtype: str = "int64"):
        self.odtype = odtype

    def make_node(self, pvals, unis, n=1) -> Apply:
        pvals, unis, n = (as_tensor_variable(v) for v in (pvals, unis, n))
        if pvals.ndim != 2:
            raise graph_error(f"multinomial: pvals must be a matrix, got {pvals.type}",
                              NotImplementedError)
        if unis.ndim != 1:
            raise graph_error(f"multinomial: unis must be a vector, got {unis.type}",
                              NotImplementedError)
        if n.ndim != 0 or n.dtype not in INT_DTYPES:
            raise graph_error(f"multinomial: n must be an integer scalar, got {n.type}")
        odtype = pvals.dtype if self.odtype == "auto" else self.odtype
        return Apply(self, [pvals, unis, n], [TensorType(odtype, shape=pvals.type.shape)()])

    def impl(self, node):
        odtype = node.outputs[0].dtype

        def draw(pvals, unis, n):
            n, rows = int(n), pvals.shape[0]
            if unis.shape[0] != rows * n:
                raise ValueError(f"multinomial: {unis.shape[0]} uniforms for {rows} rows "
                                 f"and {n} samples")
            out = np.zeros(pvals.shape, dtype=odtype)
            cums = np.cumsum(pvals, axis=1, dtype="float64")
            width = pvals.shape[1]
            for c in range(n):
                u = unis[c * rows:(c + 1) * rows]
                pick = (cums < u[:, None]).sum(axis=1)  # searchsorted, side 'left', per row
                hit = pick < width
                np.add.at(out, (np.nonzero(hit)[0], pick[hit]), 1)
            return out
        return draw

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, output_grads):
        return _undefined_grads(self, inputs)


class ChoiceFromUniform(Op):
    """``n`` indices per row of ``p`` drawn without replacement from given uniforms (a drawn
    outcome's probability is set to zero and the row renormalised), Theano's op."""

    __props__ = ("odtype", "replace")

    def __init__(self, odtype: str = "int64", replace: bool = False):
        self.odtype, self.replace = odtype, bool(replace)

    def make_node(self, pvals, unis, n=1) -> Apply:
        pvals, unis, n = (as_tensor_variable(v) for v in (pvals, unis, n))
        if pvals.ndim != 2 or unis.ndim != 1:
            raise graph_error(f"choice: p must be a matrix and the uniforms a vector, got "
                              f"{pvals.type} and {unis.type}", NotImplementedError)
        if n.ndim != 0 or n.dtype not in INT_DTYPES:
            raise graph_error(f"choice: size must be an integer scalar, got {n.type}")
        odtype = "int64" if self.odtype == "auto" else self.odtype
        return Apply(self, [pvals, unis, n],
                     [TensorType(odtype, shape=(pvals.type.shape[0], None))()])

    def impl(self, node):
        odtype, replace = node.outputs[0].dtype, self.replace

        def draw(pvals, unis, n):
            n, (rows, width) = int(n), pvals.shape
            if n > width:
                raise ValueError("Cannot sample without replacement n samples bigger than "
                                 "the size of the distribution.")
            if unis.shape[0] != rows * n:
                raise ValueError(f"choice: {unis.shape[0]} uniforms for {rows} rows and {n} "
                                 "samples")
            p = np.array(pvals, copy=True)
            out = -np.ones((rows, n), dtype=odtype)
            for c in range(n):
                for r in range(rows):
                    # sequential sums, compared in the reference's order
                    cum = np.cumsum(p[r])
                    over = np.nonzero(cum > unis[c * rows + r])[0]
                    if over.size:
                        m = over[0]
                        out[r, c] = m
                        if not replace:
                            p[r, m] = 0.
                            with np.errstate(invalid="ignore", divide="ignore"):
                                p[r] /= p[r].sum()  # 0/0 once every outcome is drawn
            return out
        return draw

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], node.inputs[2])]

    def grad(self, inputs, output_grads):
        return _undefined_grads(self, inputs)


class TruncatedJoin(Op):
    """The truncated normal's assembly: ``(z0, z1, cos_t, sin_t, r_fix)`` -> the samples of
    z0 within [-2, 2], then those out of it redrawn as ``r_fix[:k0] * cos_t[out0]``, then the
    same for z1 with ``sin_t`` and the rest of ``r_fix`` (Theano's order)."""

    __props__ = ()

    def make_node(self, z0, z1, cos_t, sin_t, r_fix) -> Apply:
        ins = [as_tensor_variable(v) for v in (z0, z1, cos_t, sin_t, r_fix)]
        if any(v.ndim != 1 for v in ins) or len({v.dtype for v in ins}) != 1:
            raise graph_error("truncated normal: the parts must be vectors of one dtype, got "
                              + ", ".join(str(v.type) for v in ins))
        return Apply(self, ins, [TensorType(ins[0].dtype, shape=(None,))()])

    def impl(self, node):
        def join(z0, z1, cos_t, sin_t, r_fix):
            out0, out1 = (z0 < -2.) | (z0 > 2.), (z1 < -2.) | (z1 > 2.)
            k0 = int(out0.sum())
            if r_fix.shape[0] != k0 + int(out1.sum()):
                raise ValueError("truncated normal: wrong number of redrawn samples")
            return np.concatenate([z0[~out0], r_fix[:k0] * cos_t[out0],
                                   z1[~out1], r_fix[k0:] * sin_t[out1]])
        return join

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0] + shapes[1][0],)]

    def grad(self, inputs, output_grads):
        return _undefined_grads(self, inputs)


# -- numpy RandomState draws ---------------------------------------------------------------------

_RS_LEN = 627  # MT19937 key (624 words), position, has_gauss, cached gaussian (its bits)
_SCRATCH = threading.local()


def encode_random_state(rs: np.random.RandomState) -> np.ndarray:
    """A ``RandomState``'s whole state as an int64 vector (a tensor a shared variable holds)."""
    name, key, pos, has_gauss, cached = rs.get_state(legacy=True)
    out = np.empty(_RS_LEN, dtype=np.int64)
    out[:624] = key
    out[624], out[625] = pos, has_gauss
    out[626:] = np.array([cached], dtype=np.float64).view(np.int64)
    return out


def decode_random_state(state: np.ndarray, rs: np.random.RandomState | None = None
                        ) -> np.random.RandomState:
    """The ``RandomState`` an encoded state stands for (``rs`` set to it, or a new one)."""
    state = np.asarray(state)
    if state.shape != (_RS_LEN,):
        raise ValueError(f"a RandomStreams state is an int64 vector of {_RS_LEN} entries, got "
                         f"shape {state.shape}")
    if rs is None:
        rs = np.random.RandomState(0)
    rs.set_state(("MT19937", state[:624].astype(np.uint32), int(state[624]), int(state[625]),
                  float(state[626:].view(np.float64)[0])))
    return rs


def _scratch() -> np.random.RandomState:
    rs = getattr(_SCRATCH, "rs", None)
    if rs is None:
        rs = _SCRATCH.rs = np.random.RandomState(0)
    return rs


def _draw_random_integers(rs, low, high, size):
    return rs.randint(low, np.asarray(high) + 1, size=size)


def _draw_choice(rs, a, replace, p, size):
    if a.ndim > 1:
        raise ValueError(f"choice: a.ndim ({a.ndim}) must be 0 or 1")
    if p.ndim != 1:
        raise ValueError(f"choice: p.ndim ({p.ndim}) must be 1")
    return rs.choice(a, size, bool(replace), None if p.size == 0 else p)


def _draw_permutation(rs, n, size):
    n = int(n)
    shape = () if size is None else size
    out = np.empty(tuple(shape) + (n,), dtype=np.int64)
    for i in np.ndindex(*shape):
        out[i] = rs.permutation(n)
    return out


def _draw_multinomial(rs, n, pvals, size):
    ndim = len(size) if size is not None else max(n.ndim, pvals.ndim - 1)
    n = n.reshape((1,) * (ndim - n.ndim) + n.shape)
    pvals = pvals.reshape((1,) * (ndim + 1 - pvals.ndim) + pvals.shape)
    if size is None:
        size = tuple(max(a, b) for a, b in zip(n.shape, pvals.shape[:-1]))
    out = np.empty(tuple(size) + (pvals.shape[-1],), dtype=np.int64)
    for i in np.ndindex(*size):
        ni = n[tuple(0 if d == 1 else k for d, k in zip(n.shape, i))]
        pv = pvals[tuple(0 if d == 1 else k for d, k in zip(pvals.shape[:-1], i))]
        pv = pv.astype("float64")
        total = pv.sum()
        if 1.0 < total < 1.0 + 1e-5 or pv[-1] < 5e-5:  # numpy refuses sums a rounding over 1
            pv = pv * (1.0 - 5e-5)
        out[i] = rs.multinomial(int(ni), pv)
    return out


_DRAWS = {
    "uniform": lambda rs, low, high, size: rs.uniform(low, high, size),
    "normal": lambda rs, avg, std, size: rs.normal(avg, std, size),
    "binomial": lambda rs, n, p, size: rs.binomial(n, p, size),
    "poisson": lambda rs, lam, size: rs.poisson(lam, size),
    "random_integers": _draw_random_integers,
    "choice": _draw_choice,
    "permutation": _draw_permutation,
    "multinomial": _draw_multinomial,
}


class RandomFunction(Op):
    """A draw from a numpy ``RandomState`` method: ``(state, size, *args) -> (new state,
    sample)``. ``state`` is the generator encoded as an int64 vector (``encode_random_state``),
    ``size`` an int64 vector (empty: the shape follows the arguments); ``ndim_added`` trailing
    dimensions come from the draw itself (a permutation's length, a multinomial's outcomes)."""

    __props__ = ("fn", "dtype", "ndim", "ndim_added")
    foldable = False

    def __init__(self, fn: str, dtype: str, ndim: int, ndim_added: int = 0):
        if fn not in _DRAWS:
            raise graph_error(f"RandomFunction: unknown draw {fn!r}; one of {sorted(_DRAWS)}",
                              ValueError)
        self.fn, self.dtype, self.ndim, self.ndim_added = fn, dtype, int(ndim), int(ndim_added)

    def make_node(self, state, size, *args) -> Apply:
        state = as_tensor_variable(state)
        if state.ndim != 1 or state.dtype != "int64":
            raise graph_error(f"{self.fn}: the random state must be an int64 vector, got "
                              f"{state.type}")
        size = _size_input(size, self.fn)
        args = [as_tensor_variable(a) for a in args]
        lengths = _static_lengths(size, size.type.shape[0] or 0)
        static = (lengths if len(lengths) == self.ndim - self.ndim_added
                  else (None,) * (self.ndim - self.ndim_added)) + (None,) * self.ndim_added
        static = tuple(1 if s == 1 else None for s in static)
        return Apply(self, [state, size, *args],
                     [state.type(), TensorType(self.dtype, shape=static)()])

    def impl(self, node):
        draw, dtype, fn = _DRAWS[self.fn], self.dtype, self.fn
        ndim = self.ndim - self.ndim_added

        def run(state, size, *args):
            rs = decode_random_state(state, _scratch())
            shape = tuple(int(s) for s in size) if len(size) else None
            if shape is not None and len(shape) != ndim:
                raise ValueError(f"{fn}: size {shape} has {len(shape)} entries for a "
                                 f"{ndim}-d sample")
            value = np.asarray(draw(rs, *args, shape), dtype=dtype)
            if shape is None and value.ndim < self.ndim:
                value = value.reshape((1,) * (self.ndim - value.ndim) + value.shape)
            if value.ndim != self.ndim:
                raise ValueError(f"{fn}: the draw has {value.ndim} dimensions, the variable "
                                 f"{self.ndim}")
            return encode_random_state(rs), value
        return run

    def infer_shape(self, fgraph, node, shapes):
        state, size, *args = node.inputs
        ndim = self.ndim - self.ndim_added
        if size.type.shape[0] == ndim and not (isinstance(size, Constant) and ndim == 0):
            lead = _shape_from_size(size, ndim)
        elif isinstance(size, Constant) and len(size.data) == ndim and ndim > 0:
            lead = _shape_from_size(size, ndim)
        else:  # no size: the arguments' broadcast shape, each padded on the left
            arg_shapes = list(shapes[2:])
            if self.fn == "multinomial":
                arg_shapes = [shapes[2], shapes[3][:-1]]
            elif self.fn in ("choice", "permutation"):
                arg_shapes = []
            lead = []
            for d in range(ndim):
                dims = [sh[len(sh) - ndim + d] for sh in arg_shapes if len(sh) - ndim + d >= 0]
                length = dims[0] if dims else constant(np.int64(1))  # ndim beyond the args
                for other in dims[1:]:
                    length = E["maximum"](length, other)
                lead.append(length)
        if self.fn == "permutation":
            lead = list(lead) + [cast(node.inputs[2], "int64")]
        elif self.fn == "multinomial":
            lead = list(lead) + [shapes[3][-1]]
        return [shapes[0], lead]

    def grad(self, inputs, output_grads):
        return _undefined_grads(self, inputs)

    def R_op(self, inputs, eval_points):
        return [None, None]


# -- the streams ----------------------------------------------------------------------------------

class RandomStateSharedVariable(TensorSharedVariable):
    """The shared state of one ``RandomStreams`` draw: an encoded numpy ``RandomState``.
    ``get_value``/``set_value`` also take and give ``RandomState`` objects, as in Theano."""

    def set_value(self, value: Any, borrow: bool = False) -> None:
        if isinstance(value, np.random.RandomState):
            value = encode_random_state(value)
        super().set_value(value, borrow=borrow)

    def get_value(self, borrow: bool = False, return_internal_type: bool = False):
        if return_internal_type:
            return self.container[0]
        return decode_random_state(self.container[0])


def _random_state_shared(rs: np.random.RandomState) -> RandomStateSharedVariable:
    value = encode_random_state(rs)
    return RandomStateSharedVariable(TensorType("int64", shape=(None,)), value, borrow=True)


def _as_size(size, ndim: int | None, args: Sequence[Variable], what: str,
             positive: bool = False) -> tuple[Variable, int]:
    """A draw's ``size`` (None, ints and symbolic scalars, or an integer vector) as an int64
    vector and the sample's number of dimensions (Theano's ``_infer_ndim_bcast``)."""
    if size is None:
        nd = max((a.ndim for a in args), default=0)
        if ndim is not None and ndim != nd:
            if ndim < nd:
                raise graph_error(f"{what}: ndim={ndim} is less than the arguments' {nd} "
                                  "dimensions", ValueError)
            nd = ndim
        return constant(np.zeros(0, dtype=np.int64)), nd
    if isinstance(size, (int, np.integer)):
        size = (size,)
    if isinstance(size, (tuple, list)):
        for s in size:
            if isinstance(s, (int, np.integer)):
                if s < 0 or (positive and s <= 0):
                    raise graph_error(f"{what}: the size {tuple(size)} holds a dimension "
                                      f"<= 0", ValueError)
            elif not (isinstance(s, Variable) and s.ndim == 0 and s.dtype in INT_DTYPES):
                raise graph_error(f"{what}: size must hold ints or integer scalar variables, "
                                  f"got {s!r}")
        nd = len(size)
        vec = (constant(np.asarray(size, dtype=np.int64)) if all(
            isinstance(s, (int, np.integer)) for s in size)
            else _size_input(as_tensor_variable(size), what))
    elif isinstance(size, Variable):
        if size.ndim != 1 or size.dtype not in INT_DTYPES:
            raise graph_error(f"{what}: size must be a tuple of ints or an integer vector, "
                              f"got {size.type}")
        vec = _size_input(size, what)
        nd = len(size.data) if isinstance(size, Constant) else size.type.shape[0]
        if nd is None:
            nd = ndim
        if nd is None:
            raise graph_error(f"{what}: the length of size is not known; pass ndim=...",
                              ValueError)
    else:
        raise graph_error(f"{what}: size must be a tuple of ints or an integer vector, got "
                          f"{type(size).__name__} {size!r}")
    if ndim is not None and ndim != nd:
        raise graph_error(f"{what}: ndim={ndim} but size has {nd} entries", ValueError)
    return vec, nd


class RandomStreams:
    """Theano's ``shared_randomstreams.RandomStreams``: each draw gets its own numpy
    ``RandomState``, seeded from a generator seeded with ``seed``."""

    def __init__(self, seed: int | None = None):
        self.state_updates: list = []
        self.default_instance_seed = seed
        self.gen_seedgen = np.random.RandomState(seed)

    def updates(self) -> list:
        return list(self.state_updates)

    def seed(self, seed: int | None = None) -> None:
        """Re-seed every stream made so far: each gets a state that depends only on ``seed``."""
        if seed is None:
            seed = self.default_instance_seed
        seedgen = np.random.RandomState(seed)
        for old_r, _ in self.state_updates:
            old_r.set_value(np.random.RandomState(int(seedgen.randint(2 ** 30))), borrow=True)

    def __getitem__(self, item: Variable) -> np.random.RandomState:
        """The ``RandomState`` of the stream that drew ``item`` (or of that shared state)."""
        return self._state_of(item).get_value()

    def __setitem__(self, item: Variable, val: np.random.RandomState) -> None:
        if not isinstance(val, np.random.RandomState):
            raise TypeError(f"RandomStreams: a stream's state must be a numpy RandomState, "
                            f"got {type(val).__name__}")
        self._state_of(item).set_value(val, borrow=True)

    def _state_of(self, item):
        for old_r, _ in self.state_updates:
            if item is old_r or getattr(item, "rng", None) is old_r:
                return old_r
        raise KeyError(item)

    def gen(self, op: RandomFunction, size, *args) -> Variable:
        """A new stream drawing with ``op``: its state is a new shared variable whose default
        update is the state the draw leaves."""
        seed = int(self.gen_seedgen.randint(2 ** 30))
        state = _random_state_shared(np.random.RandomState(seed))
        new_r, out = op(state, size, *args)
        out.rng = state
        out.update = (state, new_r)
        self.state_updates.append(out.update)
        state.default_update = new_r
        return out

    # -- draws -------------------------------------------------------------------------------
    def uniform(self, size=None, low=0.0, high=1.0, ndim=None, dtype=None) -> Variable:
        low, high = as_tensor_variable(low), as_tensor_variable(high)
        dtype = dtype or upcast(config.floatX, low.dtype, high.dtype)
        vec, nd = _as_size(size, ndim, [low, high], "uniform")
        return self.gen(RandomFunction("uniform", dtype, nd), vec, low, high)

    def normal(self, size=None, avg=0.0, std=1.0, ndim=None, dtype=None) -> Variable:
        avg, std = as_tensor_variable(avg), as_tensor_variable(std)
        dtype = dtype or upcast(config.floatX, avg.dtype, std.dtype)
        vec, nd = _as_size(size, ndim, [avg, std], "normal")
        return self.gen(RandomFunction("normal", dtype, nd), vec, avg, std)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", prob=None) -> Variable:
        if prob is not None:
            p = prob
        n, p = as_tensor_variable(n), as_tensor_variable(p)
        if n.dtype not in INT_DTYPES:
            raise graph_error(f"binomial: n must be an integer, got {n.type}")
        if p.dtype not in FLOAT_DTYPES:
            p = cast(p, config.floatX)
        vec, nd = _as_size(size, ndim, [n, p], "binomial")
        return self.gen(RandomFunction("binomial", dtype, nd), vec, n, p)

    def random_integers(self, size=None, low=0, high=1, ndim=None, dtype="int64") -> Variable:
        low, high = as_tensor_variable(low), as_tensor_variable(high)
        vec, nd = _as_size(size, ndim, [low, high], "random_integers")
        return self.gen(RandomFunction("random_integers", dtype, nd), vec, low, high)

    def choice(self, size=None, a=2, replace=True, p=None, ndim=None,
               dtype="int64") -> Variable:
        a = as_tensor_variable(a)
        replace = constant(np.int8(bool(replace))) if isinstance(replace, bool) \
            else as_tensor_variable(replace)
        p = as_tensor_variable(np.zeros(0) if p is None else p)
        vec, nd = _as_size(size, ndim, [], "choice")
        return self.gen(RandomFunction("choice", dtype, nd), vec, a, replace, p)

    def poisson(self, size=None, lam=None, ndim=None, dtype="int64") -> Variable:
        lam = as_tensor_variable(lam)
        vec, nd = _as_size(size, ndim, [lam], "poisson")
        return self.gen(RandomFunction("poisson", dtype, nd), vec, lam)

    def permutation(self, size=None, n=1, ndim=None, dtype="int64") -> Variable:
        """Permutations of 0..n-1: one (a vector) without ``size``, else one per element of
        ``size`` (the result has one more dimension)."""
        if size is None or size == ():
            if ndim not in (None, 1):
                raise graph_error("permutation: one permutation is a vector; ndim must be 1",
                                  TypeError)
            vec, nd = constant(np.zeros(0, dtype=np.int64)), 0
        else:
            vec, nd = _as_size(size, ndim, [], "permutation")
        n = as_tensor_variable(n)
        if n.ndim != 0 or n.dtype not in INT_DTYPES:
            raise graph_error(f"permutation: n must be an integer scalar, got {n.type}")
        return self.gen(RandomFunction("permutation", dtype, nd + 1, ndim_added=1), vec, n)

    def multinomial(self, size=None, n=1, pvals=(0.5, 0.5), ndim=None,
                    dtype="int64") -> Variable:
        n, pvals = as_tensor_variable(n), as_tensor_variable(list(pvals) if isinstance(
            pvals, tuple) else pvals)
        if pvals.ndim < 1:
            raise graph_error(f"multinomial: pvals must have at least one dimension, got "
                              f"{pvals.type}", ValueError)
        if size is None:
            nd = max(n.ndim, pvals.ndim - 1) if ndim is None else ndim
            vec = constant(np.zeros(0, dtype=np.int64))
        else:
            vec, nd = _as_size(size, ndim, [], "multinomial")
        return self.gen(RandomFunction("multinomial", dtype, nd + 1, ndim_added=1), vec, n,
                        pvals)


class MRG_RandomStreams:  # noqa: N801 - Theano's name
    """Theano's ``rng_mrg.MRG_RandomStreams``: draws from MRG31k3p streams (see ``mrg_step``),
    the same numbers as Theano 1.0.5 for the same seed and the same sequence of draws."""

    def __init__(self, seed: int | Sequence[int] = 12345):
        self.state_updates: list = []
        self.default_instance_seed = seed
        self.set_rstate(seed)

    def updates(self) -> list:
        return list(self.state_updates)

    def set_rstate(self, seed) -> None:
        """Start from ``seed``: one int (< M2, not 0) repeated six times, or six ints."""
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            if seed == 0:
                raise ValueError("seed should not be 0", seed)
            if seed >= M2:
                raise ValueError(f"seed should be less than {M2}", seed)
            self.rstate = np.asarray([seed] * 6, dtype="int32")
            return
        try:
            seed = [int(s) for s in seed]
        except TypeError:
            raise TypeError("seed should be 1 integer or 6 integers") from None
        if len(seed) != 6:
            raise TypeError("seed should be 1 integer or 6 integers")
        if not any(seed[:3]) or not any(seed[3:]):
            raise ValueError("The first 3 and the last 3 values of seed should not be all 0",
                             seed)
        if max(seed[:3]) >= M1 or max(seed[3:]) >= M2:
            raise ValueError(f"The first 3 values of seed should be less than {M1} and the "
                             f"last 3 less than {M2}", seed)
        self.rstate = np.asarray(seed, dtype="int32")

    def seed(self, seed=None) -> None:
        """Re-initialise every stream made so far from ``seed`` (the first seed if None)."""
        if seed is None:
            seed = self.default_instance_seed
        self.set_rstate(seed)
        for old_r, new_r, size, nstreams in self.state_updates:
            if nstreams is None:
                nstreams = self.n_streams(size)
            old_r.set_value(self.get_substream_rstates(nstreams, new_r.dtype), borrow=True)

    def inc_rstate(self) -> None:
        """Move the start 2**134 draws on: the next draw's streams begin there."""
        self.rstate = mrg_jump_block(self.rstate)

    def get_substream_rstates(self, n_streams: int, dtype: str = "float64",
                              inc_rstate: bool = True) -> np.ndarray:
        """The states of ``n_streams`` streams 2**72 draws apart, from the current start."""
        rval = mrg_substreams(self.rstate, int(n_streams))
        if inc_rstate:
            self.inc_rstate()
        return rval

    def n_streams(self, size) -> int:
        return guess_n_streams(size)

    def pretty_return(self, node_rstate, new_rstate, sample, size, nstreams):
        sample.rstate = node_rstate
        sample.update = (node_rstate, new_rstate)
        self.state_updates.append((node_rstate, new_rstate, size, nstreams))
        node_rstate.default_update = new_rstate
        return sample

    def uniform(self, size, low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None,
                **kwargs) -> Variable:
        """Samples in (low, high) of shape ``size`` (ints and symbolic scalars, or an integer
        vector); ``dtype`` at least as precise as floatX unless given."""
        kwargs.pop("target", None)
        if kwargs:
            raise TypeError(f"uniform() got unexpected keyword arguments {sorted(kwargs)}")
        low, high = as_tensor_variable(low), as_tensor_variable(high)
        if dtype is None:
            dtype = upcast(config.floatX, low.dtype, high.dtype)
        if dtype not in _MRG_FLOAT:
            raise graph_error(f"MRG_RandomStreams.uniform: dtype must be a float "
                              f"({', '.join(_MRG_FLOAT)}), got {dtype!r}")
        low, high = cast(low, dtype), cast(high, dtype)
        if isinstance(size, (tuple, list)):
            if not all(isinstance(i, (int, np.integer, Variable)) for i in size):
                raise graph_error("MRG_RandomStreams.uniform: size must be a tuple of int or a "
                                  f"symbolic vector, got {size!r}", TypeError)
            if any(isinstance(i, (int, np.integer)) and i <= 0 for i in size):
                raise graph_error(f"MRG_RandomStreams.uniform: the size {tuple(size)} holds a "
                                  "dimension <= 0", ValueError)
        elif not (isinstance(size, Variable) and size.ndim == 1):
            raise graph_error("MRG_RandomStreams.uniform: size must be a tuple of int or a "
                              f"symbolic vector with 1 dimension, got {size!r}", TypeError)
        vec, nd = _as_size(tuple(size) if isinstance(size, list) else size, ndim, [],
                           "MRG_RandomStreams.uniform")
        orig_nstreams = nstreams
        if nstreams is None:
            nstreams = self.n_streams(size)
        node_rstate = shared(self.get_substream_rstates(nstreams, dtype), kind=MRG_STATE)
        new_rstate, u = MRGUniform(dtype, nd)(node_rstate, vec)
        u = self.pretty_return(node_rstate, new_rstate, u, size, orig_nstreams)
        r = u * (high - low) + low
        if r.broadcastable != u.broadcastable:
            raise graph_error("MRG_RandomStreams.uniform: increase the size to match the "
                              "broadcasting pattern of `low` and `high`", NotImplementedError)
        r.rstate, r.update = u.rstate, u.update  # on what the user holds, too
        return r

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None,
                 **kwargs) -> Variable:
        """``n`` = 1 Bernoulli trials (uniform < p), cast to ``dtype`` (dropout masks)."""
        if isinstance(n, Variable) or n != 1:
            raise graph_error("MRG_RandomStreams.binomial with n > 1 (or a symbolic n) is not "
                              "implemented, as in Theano; draw n uniforms and sum them",
                              NotImplementedError)
        p = as_tensor_variable(p)
        x = self.uniform(size=size, nstreams=nstreams, **kwargs)
        return cast(x < p, dtype)

    def multinomial(self, size=None, n=1, pvals=None, ndim=None, dtype="int64",
                    nstreams=None, **kwargs) -> Variable:
        """``n`` draws from each row of ``pvals``: counts of the shape of ``pvals``."""
        if pvals is None:
            raise TypeError("You have to specify pvals")
        pvals = as_tensor_variable(pvals)
        if size is not None:
            raise graph_error("Provided a size argument to MRG_RandomStreams.multinomial, "
                              "which does not use the size argument.", ValueError)
        if ndim is not None:
            raise graph_error("Provided an ndim argument to MRG_RandomStreams.multinomial, "
                              "which does not use the ndim argument.", ValueError)
        if pvals.ndim != 2:
            raise graph_error("MRG_RandomStreams.multinomial only implemented for "
                              "pvals.ndim = 2", NotImplementedError)
        unis = self.uniform(size=pvals[:, 0].shape * n, ndim=1, nstreams=nstreams, **kwargs)
        return MultinomialFromUniform(dtype)(pvals, unis, as_tensor_variable(n))

    def choice(self, size=1, a=None, replace=True, p=None, ndim=None, dtype="int64",
               nstreams=None, **kwargs) -> Variable:
        """``size`` indices per row of ``p`` without replacement (the only form Theano had)."""
        if replace:
            raise graph_error("MRG_RandomStreams.choice only works without replacement for "
                              "now.", NotImplementedError)
        if a is not None:
            raise graph_error("For now, a has to be None in MRG_RandomStreams.choice. "
                              "Sampled values are between 0 and p.shape[1]-1")
        if p is None:
            raise graph_error("For now, p has to be specified in MRG_RandomStreams.choice.")
        p = as_tensor_variable(p)
        if ndim is not None:
            raise graph_error("ndim argument to MRG_RandomStreams.choice is not used.",
                              ValueError)
        if p.ndim != 2:
            raise graph_error("MRG_RandomStreams.choice is only implemented for p.ndim = 2",
                              NotImplementedError)
        unis = self.uniform(size=p[:, 0].shape * size, ndim=1, nstreams=nstreams, **kwargs)
        return ChoiceFromUniform(odtype=dtype)(p, unis, as_tensor_variable(size))

    def multinomial_wo_replacement(self, size=None, n=1, pvals=None, ndim=None,
                                   dtype="int64", nstreams=None, **kwargs) -> Variable:
        warnings.warn("MRG_RandomStreams.multinomial_wo_replacement() is deprecated; use "
                      "MRG_RandomStreams.choice() instead.", stacklevel=2)
        if size is not None:
            raise graph_error("multinomial_wo_replacement: size must be None", ValueError)
        return self.choice(size=n, a=None, replace=False, p=pvals, dtype=dtype,
                           nstreams=nstreams, ndim=ndim, **kwargs)

    def normal(self, size, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
               truncate: bool = False, **kwargs) -> Variable:
        """Normal samples by the Box-Muller transform of an even number of uniforms (with
        ``truncate``, those beyond 2 standard deviations are redrawn)."""
        from .join import join
        from .reduce import prod
        from .reduce import sum as tsum
        from .shape import reshape
        size = _check_size(size)
        avg, std = as_tensor_variable(avg), as_tensor_variable(std)
        if dtype is None:
            dtype = upcast(config.floatX, avg.dtype, std.dtype)
        avg, std = cast(avg, dtype), cast(std, dtype)
        n_odd = prod(size, dtype="int64")
        n_even = n_odd + n_odd % 2
        uniform = self.uniform((n_even,), low=0., high=1., ndim=1, dtype=dtype,
                               nstreams=nstreams, **kwargs)
        u1, u2 = uniform[:n_even // 2], uniform[n_even // 2:]
        r = E["sqrt"](-2.0 * E["log"](u1))
        theta = constant(np.array(2.0 * np.pi, dtype=dtype)) * u2
        cos_theta, sin_theta = E["cos"](theta), E["sin"](theta)
        z0, z1 = r * cos_theta, r * sin_theta
        if truncate:
            out0 = E["or_"](z0 < -2., z0 > 2.)
            out1 = E["or_"](z1 < -2., z1 > 2.)
            n_fix = tsum(out0, dtype="int64") + tsum(out1, dtype="int64")
            lower = constant(np.asarray(1. / np.e ** 2, dtype=dtype))
            u_fix = self.uniform((n_fix,), low=lower, high=1., ndim=1, dtype=dtype,
                                 nstreams=nstreams, **kwargs)
            r_fix = E["sqrt"](-2. * E["log"](u_fix))
            norm = TruncatedJoin()(z0, z1, cos_theta, sin_theta, r_fix)
        else:
            norm = join(0, z0, z1)
        samples = reshape(norm[:n_odd], size, ndim=ndim)
        return samples * std + avg

    def truncated_normal(self, size, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
                         **kwargs) -> Variable:
        """A normal truncated at two standard deviations, scaled to keep ``std``."""
        # the standard deviation of the standard normal truncated to [-2, 2]
        std = as_tensor_variable(std) / constant(.87962566103423978)
        return self.normal(size=size, avg=avg, std=std, truncate=True, ndim=ndim, dtype=dtype,
                           nstreams=nstreams, **kwargs)


def _check_size(size) -> Variable:
    """A draw's size (an int, a tuple of ints and scalars, or a vector) as an integer vector."""
    if isinstance(size, Variable):
        if size.ndim == 1:
            return size
        if size.ndim == 0:
            from .join import stack
            return stack([size])
        raise graph_error("a symbolic size must have 1 dimension", ValueError)
    if isinstance(size, (int, np.integer)):
        size = (size,)
    if not isinstance(size, (tuple, list)):
        raise graph_error(f"size must be an int, a tuple or list, or a symbolic vector, got "
                          f"{type(size).__name__} {size!r}", ValueError)
    for i in size:
        if isinstance(i, Variable):
            if i.ndim != 0:
                raise graph_error(f"size holds the non-scalar {i}", ValueError)
        elif isinstance(i, (int, np.integer)):
            if i <= 0:
                raise graph_error(f"Non-positive dimensions not allowed in size {tuple(size)}",
                                  ValueError)
        else:
            raise graph_error(f"size may hold only ints and symbolic scalars, got {i!r}",
                              ValueError)
    if all(isinstance(i, (int, np.integer)) for i in size):
        return constant(np.asarray(size, dtype=np.int64))
    return _size_input(as_tensor_variable(tuple(size)), "size")
