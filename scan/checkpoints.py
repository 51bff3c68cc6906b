"""``scan_checkpoints``: a loop whose gradient stores one state per chunk of steps, not one per
step (Theano's ``theano.scan_checkpoints``).

The steps are cut into chunks of ``save_every_N``: an outer loop over the chunks runs an inner
``scan`` of one chunk and keeps its last state only (``scan_only_last_state_kept`` makes the
inner loop hold just that). Differentiating the outer loop differentiates the inner one inside
each reverse step, which runs the chunk's forward steps again: memory ``n / N + N`` states
instead of ``n``, for about one more forward pass.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ops.alloc import alloc, arange
from ..ops.base import as_tensor_variable, graph_error
from ..ops.elemwise import ELEMWISE, cast
from ..ops.join import concatenate
from ..ops.shape import reshape, shape
from .basic import _as_list, scan


def _plain(v: Any, what: str):
    """``v`` as a variable; a dict with taps is refused (chunks read one row a step)."""
    if isinstance(v, dict):
        taps = v.get("taps", [-1] if "initial" in v else [0])
        key = "initial" if "initial" in v else "input"
        if list(taps) != ([-1] if key == "initial" else [0]):
            raise graph_error(f"scan_checkpoints: {what} reads taps {list(taps)}; only "
                              "sequences without taps and states fed back through tap -1 "
                              "are supported (Theano's restriction too)", ValueError)
        v = v[key]
    if v is None:
        raise graph_error(f"scan_checkpoints: {what} is None; every output must be a state "
                          "fed back through tap -1 (only the state at each checkpoint is "
                          "returned)", ValueError)
    return as_tensor_variable(v)


def scan_checkpoints(fn: Callable, sequences=None, outputs_info=None, non_sequences=None,
                     name: str = "checkpointscan_fn", n_steps=None, save_every_N: int = 10,
                     padding: bool = True):
    """scan(fn, ...) returning the states after every ``save_every_N`` steps (and after the
    last step), whose gradient recomputes the steps in between instead of storing them.

    As in Theano: sequences have no taps and as many rows as the steps (``n_steps``, when
    given, is that length), states are fed back through tap -1, and ``padding`` pads the
    sequences with zeros to a multiple of ``save_every_N`` (without it the length must be
    one). Returns ``(outputs, updates)``, one row per chunk in each output."""
    seqs = [_plain(s, f"sequence {k}") for k, s in enumerate(_as_list(sequences))]
    inits = [_plain(o, f"outputs_info {k}") for k, o in enumerate(_as_list(outputs_info))]
    nonseqs = _as_list(non_sequences)
    every = int(save_every_N)
    if every < 1:
        raise graph_error(f"scan_checkpoints: save_every_N is {save_every_N}; it must be a "
                          "positive number of steps", ValueError)
    if n_steps is None:
        if not seqs:
            raise graph_error("scan_checkpoints: give sequences or n_steps", ValueError)
        n_steps = shape(seqs[0])[0]
    n = cast(as_tensor_variable(n_steps), "int64")
    chunks = (n + (every - 1)) // every
    last = n - (chunks - 1) * every  # the steps of the last chunk

    chunked = []
    for s in seqs:
        rest = [shape(s)[d] for d in range(1, s.ndim)]
        if padding:
            zeros = alloc(as_tensor_variable(0).astype(s.dtype), chunks * every - n, *rest)
            s = concatenate([s[:n], zeros])
        chunked.append(reshape(s, [chunks, every] + rest, ndim=s.ndim + 1))

    def chunk(i, *args):
        rows, states = args[:len(chunked)], args[len(chunked):len(chunked) + len(inits)]
        steps = ELEMWISE["switch"](ELEMWISE["eq"](i, chunks - 1), last, every)
        outs, updates = scan(fn, sequences=list(rows), outputs_info=list(states),
                             non_sequences=nonseqs, n_steps=steps, name=f"{name}_chunk",
                             return_list=True)
        return [o[-1] for o in outs], updates

    return scan(chunk, sequences=[arange(chunks)] + chunked, outputs_info=inits,
                non_sequences=nonseqs, n_steps=chunks, name=name)
