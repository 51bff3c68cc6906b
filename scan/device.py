"""Scan on the device (``device=cuda``): the loop keeps its states and its stacked outputs in
device memory and runs the body's device thunks, so nothing crosses to the host per step.

The loop is the host's own (``Scan.loop``: the generated Python of ``scan/loop.py``, the body's
lines inlined), given the runtime: the state buffers and stacked outputs are allocated by the
runtime, each step's rows are device views, and the body, compiled by the device backend, reads
and writes device arrays. Only the step count crosses, once a call.

The body decides where each of its inputs lives by its type (float arrays of rank >= 1 on the
device, scalars and integer arrays on the host), as the outer graph does for the loop's inputs.
A loop whose rows would change sides (a float sequence whose rows are scalars, a scalar state
with several taps, a body output of another side than its stacked output) runs on the host with
explicit transfers instead, as any op without a device version does.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..backends.cuda.backend import _placed_on_device, device_thunk
from ..symbolic.graph import Apply
from .basic import MAP, Scan


def _host_inputs(node: Apply) -> list[int]:
    """The inputs the loop takes on the host: the step count, and what lives there by type."""
    return [0] + [k for k, v in enumerate(node.inputs) if k and not _placed_on_device(v.type)]


def _same_sides(op: Scan, node: Apply) -> bool:
    """Whether every value the loop hands the body (a row, a tap, a non-sequence) and takes
    from it (a state, a stacked output) lives on the same side inside as outside."""
    spec, inner = op.spec, op.inner_inputs
    outer = node.inputs[1:]
    pairs, p = [], 0
    for k in range(spec.n_seqs):
        pairs.append((outer[k], inner[p]))
        p += 1
    fed = [taps for taps in spec.outputs if taps is not MAP]
    for k, taps in enumerate(fed):
        for _ in taps:
            pairs.append((outer[spec.n_seqs + k], inner[p]))
            p += 1
    for k in range(len(inner) - p):  # shared values, then non-sequences: passed as they are
        pairs.append((outer[spec.n_seqs + len(fed) + k], inner[p + k]))
    if any(_placed_on_device(a.type) != _placed_on_device(b.type) for a, b in pairs):
        return False
    # each output: the stacked rows (or the final shared value) and the body's value
    results = op.inner_outputs[:len(spec.outputs) + spec.n_shared]
    return all(_placed_on_device(o.type) == _placed_on_device(r.type)
               for o, r in zip(node.outputs, results)
               ) and all(_placed_on_device(r.type) for r in results[:len(spec.outputs)])


@device_thunk(Scan, host_args=_host_inputs)
def _scan(node: Apply, build, inner: Sequence[Callable] = ()) -> Callable | None:
    op = node.op
    if not inner or op.spec.as_while or not _same_sides(op, node):
        return None
    # the body as the device backend built it, before its outputs are brought to the host
    # (``fn``): its lines inline in the loop, its values staying on the device
    return op.loop(node, [getattr(fn, "fn", fn) for fn in inner], device=build.rt)
