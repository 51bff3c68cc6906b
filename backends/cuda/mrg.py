"""MRG31k3p random streams on the device: ``MRGUniform`` as one kernel of the function's module.

The kernel's arithmetic is not written here: ``kernels.trace`` records ``ops/random.mrg_step``
(the generator's one description, which the numpy path runs on columns of streams) followed by
``mrg_to_float`` as rows of the scalar table, and ``kernels.render_streams`` writes them in the
CUDA dialect inside a loop giving each thread one stream, which draws its samples in the order
``mrg_uniform_sample`` fills them: the device's numbers are the CPU's, bit for bit.

The streams' state (an (n_streams, 6) int32 matrix in a shared variable of kind
``MRG_STATE``) lives in device memory (``backend.DEVICE_STATES``); where the graph reads it
only to advance it (its default update), the kernel writes the new state over the old one.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ...ops.random import M1, MRG_STATE, MRGUniform, mrg_step, mrg_to_float
from ...symbolic.graph import Apply
from .. import dialect as D
from .. import kernels
from . import plan
from .backend import BLOCK, DEVICE_STATES, _Build, _host_error, device_thunk

DEVICE_STATES.add(MRG_STATE)

#: the columns of a stream's state (three per component of MRG31k3p)
STATE = 6


@functools.cache
def mrg_stream_step(dtype: str) -> kernels.TracedGraph:
    """One draw of one stream, traced from the numpy code: the six state values in, the next
    six and the sample as ``dtype`` out."""
    def draw(*state):
        *new, raw = mrg_step(*state)
        return (*new, mrg_to_float(raw, dtype))
    return kernels.trace(draw, ("int64",) * STATE)


def mrg_kernel_source(dtype: str, name: str, prelude: bool = True) -> str:
    """The CUDA source of the kernel drawing ``dtype`` samples (``kernels.render_streams``)."""
    return kernels.render_streams(mrg_stream_step(dtype), "int32", name, D.CUDA,
                                  prelude=prelude)


@device_thunk(MRGUniform, host_args=lambda node: [1])
def _mrg_uniform(node: Apply, dev: _Build) -> Callable | None:
    """``(rstate, size) -> (new rstate, samples)`` as one launch, a thread per stream; the
    new state over the old where nothing else reads it (``_Build.overwrites``). float16 has
    no type in the dialect: such a draw runs on the host."""
    op = node.op
    name = dev.module.name()
    source = mrg_kernel_source(op.dtype, name, prelude=False)  # (ValueError: on the host)
    dev.module.add(source, {*mrg_stream_step(op.dtype).graph.ref_dtypes, "int32"})
    in_place = dev.overwrites(node, 0, 0)
    rt, label, steps = dev.rt, str(op), len(mrg_stream_step(op.dtype).graph.steps)

    def run(rstate, size):
        shape = tuple(int(s) for s in size)
        n = int(np.prod(shape, dtype=np.int64))
        if len(shape) != op.ndim or any(s < 0 for s in shape) or rstate.ndim != 2 or \
                rstate.shape[1] != STATE or rstate.shape[0] < 1 or n > M1:
            _host_error(node, [rstate, size], f"size {shape} or state shape "
                                              f"{tuple(rstate.shape)} refused")
        if not rstate.flags.c_contiguous:
            rstate = rstate.copy()  # (a C-order copy, which may then be overwritten)
        n_streams = rstate.shape[0]
        new = rstate if in_place else rt.empty(tuple(rstate.shape), "int32")
        out = rt.empty(shape, op.dtype)
        grid = min(-(-n_streams // BLOCK), 65536)
        dev.module.get(name)((grid,), (BLOCK,),
                             (rstate, new, out, np.int64(n), np.int64(n_streams)))
        if plan.recording() is not None:
            plan.launch("kernel", label, grid, BLOCK, 2 * rstate.nbytes + out.nbytes,
                        n * steps)
        return new, out
    return run
