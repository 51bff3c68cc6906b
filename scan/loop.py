"""The steps of a Scan node as one generated Python function.

A loop calling the compiled body once per step pays, every step, for the call, the argument
checks, the list of results and the general bookkeeping of taps, maps and shared values.
Everything about that bookkeeping is known when the node is compiled (how many sequences, which
rows each tap reads, which outputs are stacked, which feed back), so ``compile_steps`` writes it
out as straight-line code for this node, with the body's own lines inlined where the backend
offers them (``fn.body``, a ``LoopBody`` of the numpy backend's generated code): a step is then
the body's thunk calls, the reads of its rows and the writes of its results, nothing else.

Names the generated code binds start with ``_L``, which the backend never uses for its own.
"""
from __future__ import annotations

import itertools
import linecache
import weakref
from collections.abc import Callable
from sys import getrefcount
from typing import Any

import numpy as np

from ..ops.buffers import ALONE

_counter = itertools.count()


def compile_steps(op, fn: Callable, seq_ndims: list[int], state_ndims: list[int],
                  device: Any = None, kept: list | None = None) -> Callable:
    """``steps(n, seqs, bufs, offsets, shared, nonseqs) -> (steps_run, maps, shared)`` for the
    Scan ``op`` whose compiled body is ``fn``: runs ``n`` steps reading row ``t`` of each
    sequence and rows ``t + offset + tap`` of each state's buffer, writing each state's result
    to row ``t + offset`` and stacking the map outputs (allocated at the first step, when their
    shape is known). ``seq_ndims``/``state_ndims``: the ranks of the sequences and of the state
    buffers (a row of a vector is read as ``s[t, ...]``, a 0-d array, not a numpy scalar).
    ``device``: the runtime whose arrays the body returns, where a map output is stacked in
    its memory (a device loop: ``scan/device.py``). ``kept``: each map output's array of
    the previous call by output index, to reuse (shared with the C loop of the same thunk, so
    a call on either path reuses what the other wrote)."""
    spec, labels = op.spec, op.labels
    fed = [j for j, taps in enumerate(spec.outputs) if taps is not None]
    maps = [j for j, taps in enumerate(spec.outputs) if taps is None]
    n_user, n_shared = len(spec.outputs), spec.n_shared
    body = getattr(fn, "body", None)
    ns: dict[str, Any] = dict(body.namespace) if body is not None else {}
    n_inner = len(op.inner_inputs)
    params = list(body.params) if body is not None else [f"_Lp{k}" for k in range(n_inner)]
    lines: list[str] = []
    line_owner: dict[int, Any] = {}

    def emit(text: str, indent: int, owner: Any = None) -> None:
        lines.append("    " * indent + text)
        if owner is not None:
            line_owner[len(lines) + 1] = owner  # +1: the 'def' line comes first

    seqs = [f"_Lq{k}" for k in range(spec.n_seqs)]
    bufs = [f"_Lb{k}" for k in range(len(fed))]
    first_shared = spec.n_seqs + sum(len(spec.outputs[j]) for j in fed)
    shared = params[first_shared:first_shared + n_shared]
    nonseqs = params[first_shared + n_shared:]
    args = ["_Ln", *seqs, *bufs, *[f"_Lo{k}" for k in range(len(fed))], *shared, *nonseqs]
    for k in range(len(fed)):
        emit(f"_Ls{k} = _Lb{k}.shape[1:]", 1)
    for k, name in enumerate(shared):
        emit(f"_Lz{k} = _Lshape({name})", 1)
    for k in range(len(maps)):
        emit(f"_Lm{k} = None", 1)
    done = ", ".join([f"_Lm{k}" for k in range(len(maps))] + shared)
    emit("for _Lt in range(_Ln):", 1)
    # the rows this step reads
    for k, (name, ndim) in enumerate(zip(seqs, seq_ndims)):
        emit(f"{params[k]} = {name}[_Lt{', ...' if ndim == 1 else ''}]", 2)
    p = spec.n_seqs
    for k, j in enumerate(fed):
        flat = ", ..." if state_ndims[k] == 1 else ""
        for tap in spec.outputs[j]:
            emit(f"{params[p]} = _Lb{k}[_Lt + _Lo{k} + {tap}{flat}]", 2)
            p += 1
    emit("try:", 2)
    if body is not None:
        for text, owner in body.lines:
            emit(text, 3, owner)
        results = list(body.results)
        if not body.lines:
            emit("pass", 3)
    else:
        ns["_Lfn"] = fn
        emit(f"_Lr = _Lfn({', '.join(params)})", 3)
        results = [f"_Lr[{k}]" for k in range(len(op.inner_outputs))]
    emit("except Exception as _e:", 2)
    emit("_Lfail(_e, _Lt, _Ln)", 3)
    # every result first, then the writes: a result may be one of this step's inputs
    outs = [f"_Lv{k}" for k in range(len(results))]
    for name, expr in zip(outs, results):
        if name != expr:
            emit(f"{name} = {expr}", 2)
    for k, j in enumerate(fed):
        emit(f"if {outs[j]}.shape != _Ls{k}:", 2)
        emit(f"_Lbad_state({j}, {outs[j]}, _Lt, _Ls{k})", 3)
        emit(f"_Lb{k}[_Lt + _Lo{k}] = {outs[j]}", 2)
    for k, j in enumerate(maps):
        emit(f"if _Lm{k} is None:", 2)
        emit(f"_Lm{k} = _Lnew_map({j}, {outs[j]}, _Ln)", 3)
        emit(f"elif {outs[j]}.shape != _Lm{k}.shape[1:]:", 2)
        emit(f"_Lbad_map({j}, {outs[j]}, _Lt, _Lm{k})", 3)
        emit(f"_Lm{k}[_Lt] = {outs[j]}", 2)
    for k, name in enumerate(shared):
        value = outs[n_user + k]
        emit(f"if {value}.shape != _Lz{k}:", 2)
        emit(f"_Lbad_shared({k}, {value}, _Lt, _Lz{k})", 3)
        emit(f"{name} = {value}", 2)
    if spec.as_while:
        emit(f"if {outs[-1]}:", 2)
        emit(f"return _Lt + 1, ({done}{',' if done else ''})", 3)
    emit(f"return _Ln, ({done}{',' if done else ''})", 1)

    name = f"theon_scan_{next(_counter)}"
    filename = f"<theon scan {op.name} #{name[11:]}>"
    src = f"def {name}({', '.join(args)}):\n" + "\n".join(lines) + "\n"
    raiser = body.raiser(line_owner, ns) if body is not None else None
    where = f"scan {op.name!r}"
    dtypes = [np.dtype(op.inner_outputs[j].type.dtype) for j in range(n_user)]

    def fail(err: Exception, t: int, n: int) -> None:
        try:
            if raiser is not None:
                raiser(err)
            raise err
        except Exception as named:
            raise step_error(named, f"{where}: step {t} (of {n}) failed:") from named

    def bad_state(j: int, value, t: int, want: tuple) -> None:
        raise ValueError(
            f"{where}: {labels[j]} has shape {np.shape(value)} at step {t}, but the state it "
            f"feeds back has shape {want} (its initial value in outputs_info, or the previous "
            "step). A state keeps its shape from step to step.")

    if kept is None:
        kept = [None] * n_user
    reverse = getattr(op, "reverse", False)

    def new_map(j: int, value, n: int) -> np.ndarray:
        stacked = reused(kept, j, (n,) + np.shape(value), dtypes[j], device, value)
        # a reverse loop writes step t at row n-1-t: through a reversed view, whose reversal
        # (by the caller) is the array in row order again
        return stacked[::-1] if reverse else stacked

    def bad_map(j: int, value, t: int, stacked: np.ndarray) -> None:
        raise ValueError(
            f"{where}: {labels[j]} has shape {np.shape(value)} at step {t} but "
            f"{stacked.shape[1:]} at step 0; the steps of an output are stacked, so they must "
            "have one shape.")

    def bad_shared(k: int, value, t: int, want: tuple) -> None:
        raise ValueError(
            f"{where}: the update of shared input {k} has shape {np.shape(value)} at step "
            f"{t}, but the shared value has shape {want}; an update inside scan keeps the "
            "shape.")

    ns.update(_Lshape=np.shape, _Lfail=fail, _Lbad_state=bad_state, _Lnew_map=new_map,
              _Lbad_map=bad_map, _Lbad_shared=bad_shared)
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    exec(compile(src, filename, "exec"), ns)  # noqa: S102 - our own generated code
    steps = ns[name]
    steps.source = src
    weakref.finalize(steps, linecache.cache.pop, filename, None)
    return steps


def reused(kept: list, k: int, shape: tuple, dtype, device: Any = None,
           like: Any = None) -> Any:
    """``kept[k]`` if it has this shape and dtype and nothing else holds it (an output of the
    previous call still held, or any view of it, holds it; see ``ops.buffers``), else a new
    array put in ``kept[k]``. A fresh large array costs a page fault per 4 KiB at its first
    write (W3's 3 MB of states or of the reverse loop's rows took ~800 a call, about 2 ms).
    A new array is in the memory of ``device`` (a runtime) when ``like`` is one of its
    arrays, else in the host's."""
    buf = kept[k]
    if buf is None or buf.shape != shape or buf.dtype != dtype or getrefcount(buf) != ALONE:
        on_device = device is not None and device.is_device_array(like)
        buf = kept[k] = device.empty(shape, dtype) if on_device else np.empty(shape, dtype)
    return buf


def step_error(err: Exception, head: str) -> Exception:
    """``err`` again, its message led by ``head`` (same class where it can be rebuilt)."""
    message = f"{head}\n{err}"
    try:
        new = type(err)(message)
    except Exception:  # an exception class with other arguments
        return RuntimeError(message)
    return new
