"""Scan on the device (``device=cuda``): the loop keeps its states and its stacked outputs in
device memory and runs the body's device thunks, so nothing crosses to the host per step.

The loop is the host's own (``Scan.loop``: the generated Python of ``scan/loop.py``, the body's
lines inlined), given the runtime: the state buffers and stacked outputs are allocated by the
runtime, each step's rows are device views, and the body, compiled by the device backend, reads
and writes device arrays. Only the step count crosses, once a call.

The body decides where each of its inputs lives by its type (float arrays of rank >= 1 on the
device, scalars and integer arrays on the host), as the outer graph does for the loop's inputs.
A loop whose values would change sides (a float sequence whose rows are scalars, a scalar or
integer state, which the body may compute on the device from device values) runs on the host
with explicit transfers instead, as any op without a device version does. A stacked output
is made where the body's first value of it is.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..backends.cuda.backend import device_thunk, placed_on_device
from ..symbolic.graph import Apply
from .basic import MAP, Scan


def _host_inputs(node: Apply) -> list[int]:
    """The inputs the loop takes on the host: the step count, and what lives there by type."""
    return [0] + [k for k, v in enumerate(node.inputs) if k and not placed_on_device(v.type)]


def _same_sides(op: Scan, node: Apply) -> bool:
    """Whether every value the loop hands the body lives on the same side inside as outside:
    a sequence's rows as the sequence, a non-sequence as itself; and whether every value fed
    back (a state's taps, a shared value) is a device array on both sides. (A body computes a
    scalar on the device when it reads a device value: fed back into a scalar input, which a
    body keeps on the host, it would change sides every step.)"""
    spec, inner = op.spec, op.inner_inputs
    outer = node.inputs[1:]
    n_fed = sum(taps is not MAP for taps in spec.outputs)
    n_taps = sum(len(taps) for taps in spec.outputs if taps is not MAP)
    seqs = inner[:spec.n_seqs]
    fed = inner[spec.n_seqs:spec.n_seqs + n_taps + spec.n_shared]
    nonseqs = inner[spec.n_seqs + n_taps + spec.n_shared:]
    outer_nonseqs = outer[spec.n_seqs + n_fed + spec.n_shared:]
    return all(placed_on_device(a.type) == placed_on_device(b.type) for a, b in
               zip(outer[:spec.n_seqs] + outer_nonseqs, seqs + nonseqs)) and \
        all(placed_on_device(v.type) for v in fed)


@device_thunk(Scan, host_args=_host_inputs)
def _scan(node: Apply, build, inner: Sequence[Callable] = ()) -> Callable | None:
    op = node.op
    if not inner or op.spec.as_while or not _same_sides(op, node):
        return None
    # the body as the device backend built it, before its outputs are brought to the host
    # (``fn``): its lines inline in the loop, its values staying on the device
    return op.loop(node, [getattr(fn, "fn", fn) for fn in inner], device=build.rt)
