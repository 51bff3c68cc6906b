"""Profiling compiled functions: ``function(..., profile=True)`` and ``f.profile``.

A profiled function is built with a probe (``numpy_backend.Plan.probe``): each node's line
calls a small wrapper that reads the clock around the node's thunk (after waiting for a
device's queued work, where there is one), and the function itself is wrapped to time whole
calls. A function compiled without ``profile`` holds none of this code. The C backend waits for
a profiled function's kernels before returning it, so that the nodes are timed as they run
once compiled, not on the numpy thunks standing in meanwhile. ``ProfileStats`` also keeps how
long compiling took, phase by phase: copying the graph, each rewrite phase, the inner graphs,
generating the code, and within it the C kernels' compile.

``THEON_FLAGS=profile=True`` profiles every function compiled without an explicit ``profile=``
and prints the summaries of those called at least once when the process exits (to stderr, as
Theano did); a function given ``profile=True`` prints only when asked (``f.profile.summary()``).
"""
from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any

from ..symbolic.graph import Apply
from ..symbolic.trace import format_trace

__all__ = ["ProfileStats"]


class ProfileStats:
    """Calls and time per node and per op class of one or more compiled functions, and the
    time their compiling took, phase by phase (Theano's ``theano.compile.profiling``).

    ``function(..., profile=stats)`` adds a function to an existing ``stats`` (several
    functions in one table); ``profile=True`` gives each its own, as ``f.profile``."""

    #: the memory plan stays on: a profile measures the function as it normally runs
    keeps_inputs = False

    def __init__(self, message: str = "", atexit_print: bool = False):
        self.message = message
        #: whole calls of the profiled function(s) and the seconds they took
        self.fct_callcount = 0
        self.fct_call_time = 0.0
        #: compile phase -> seconds, in the order the phases ran (summed over functions)
        self.compile_phases: dict[str, float] = {}
        self.nodes: list[Apply] = []
        self._calls: list[int] = []
        self._times: list[float] = []
        self._kernel_futures: list[Future] = []
        if atexit_print:
            _at_exit(self)

    # -- recording ---------------------------------------------------------------------------

    def wrap(self, node: Apply, fn: Callable, synchronize: Callable | None) -> Callable:
        """The probe's wrapper of one node's thunk: counts its calls and sums their time."""
        k = len(self.nodes)
        self.nodes.append(node)
        self._calls.append(0)
        self._times.append(0.0)
        calls, times, clock = self._calls, self._times, time.perf_counter
        if synchronize is None:
            def run(*args, **kw):
                start = clock()
                out = fn(*args, **kw)
                times[k] += clock() - start
                calls[k] += 1
                return out
        else:
            # kernels are launched asynchronously: wait for what came before, then for this
            # node's own work, so that the clock measures this node alone
            def run(*args, **kw):
                synchronize()
                start = clock()
                out = fn(*args, **kw)
                synchronize()
                times[k] += clock() - start
                calls[k] += 1
                return out
        return run

    def wrap_function(self, fn: Callable) -> Callable:
        """``fn`` (a generated function) timed per call, with its attributes."""
        clock = time.perf_counter

        def call(*args, **kw):
            start = clock()
            out = fn(*args, **kw)
            self.fct_call_time += clock() - start
            self.fct_callcount += 1
            return out
        call.__dict__.update(fn.__dict__)
        call.__wrapped__ = fn
        kernels = getattr(fn, "kernel_futures", None)
        if kernels:
            self._kernel_futures.extend(kernels)
        return call

    def add_phase(self, name: str, seconds: float) -> None:
        self.compile_phases[name] = self.compile_phases.get(name, 0.0) + seconds

    # -- Theano's names ----------------------------------------------------------------------

    @property
    def apply_time(self) -> dict[Apply, float]:
        """Seconds spent in each node."""
        return dict(zip(self.nodes, self._times))

    @property
    def apply_callcount(self) -> dict[Apply, int]:
        """Calls of each node (a node in a lazy branch runs only when its branch is taken)."""
        return dict(zip(self.nodes, self._calls))

    @property
    def compile_time(self) -> float:
        """Seconds spent compiling (kernel compiles in the background not included)."""
        return sum(self.compile_phases.values())

    @property
    def optimizer_time(self) -> float:
        """Seconds spent rewriting the graph."""
        return sum(t for k, t in self.compile_phases.items() if k.startswith("rewrite"))

    @property
    def linker_time(self) -> float:
        """Seconds spent generating the code."""
        return self.compile_phases.get("code generation", 0.0)

    @property
    def kernel_compile_time(self) -> float | None:
        """Seconds the C kernels of the profiled functions took to compile or to load from the
        cache, part of "code generation" (None while one is still compiling)."""
        total = 0.0
        for fut in self._kernel_futures:
            if not fut.done():
                return None
            if not fut.cancelled() and fut.exception() is None:
                total += getattr(fut.result(), "seconds", 0.0)
        return total

    def _kernel_origins(self) -> str:
        """``2 libraries: 1 compiled, 1 from the cache``."""
        hows = [getattr(f.result(), "how", "cache") if not f.cancelled() and
                f.exception() is None else "failed" for f in self._kernel_futures]
        n = len(hows)
        parts = [f"{hows.count(h)} {label}" for h, label in
                 (("compiled", "compiled"), ("cache", "from the cache"), ("failed", "failed"))
                 if h in hows]
        return f"{n} librar{'y' if n == 1 else 'ies'}: {', '.join(parts)}"

    # -- tables ------------------------------------------------------------------------------

    def node_rows(self) -> list[dict[str, Any]]:
        """One row per node, most time first: ``node``, ``op_class``, ``calls``, ``time``
        (seconds), ``mean``, ``share`` (of the calls' time) and ``line`` (where it was
        built)."""
        total = self.fct_call_time
        rows = []
        for node, calls, secs in zip(self.nodes, self._calls, self._times):
            rows.append({"node": node, "op_class": type(node.op).__name__, "calls": calls,
                         "time": secs, "mean": secs / calls if calls else 0.0,
                         "share": secs / total if total else 0.0,
                         "line": _short_line(node)})
        rows.sort(key=lambda r: -r["time"])
        return rows

    def op_class_rows(self) -> list[dict[str, Any]]:
        """One row per op class, most time first: ``op_class``, ``nodes``, ``calls``,
        ``time``, ``mean`` (per call) and ``share``."""
        total = self.fct_call_time
        by: dict[str, dict[str, Any]] = {}
        for node, calls, secs in zip(self.nodes, self._calls, self._times):
            name = type(node.op).__name__
            row = by.setdefault(name, {"op_class": name, "nodes": 0, "calls": 0, "time": 0.0})
            row["nodes"] += 1
            row["calls"] += calls
            row["time"] += secs
        for row in by.values():
            row["mean"] = row["time"] / row["calls"] if row["calls"] else 0.0
            row["share"] = row["time"] / total if total else 0.0
        return sorted(by.values(), key=lambda r: -r["time"])

    def summary_text(self, n_ops_to_print: int = 20, n_apply_to_print: int = 20) -> str:
        """The summary as text (see ``summary``)."""
        out = [f"Function profiling: {self.message or 'theon function'}",
               f"  {self.fct_callcount} call(s), {self.fct_call_time:.6f} s in all"
               + (f", {1e6 * self.fct_call_time / self.fct_callcount:.1f} us per call"
                  if self.fct_callcount else "")]
        node_total = sum(self._times)
        if self.fct_call_time:
            out.append(f"  in the nodes: {node_total:.6f} s "
                       f"({100 * node_total / self.fct_call_time:.1f}% of the calls; the rest "
                       "is argument checks, updates and the calls themselves)")
        out.append(f"  compiling: {self.compile_time:.4f} s")
        for phase, secs in self.compile_phases.items():
            out.append(f"    {phase:<26} {secs:.4f} s")
        if self._kernel_futures:
            kt = self.kernel_compile_time
            out.append(f"      {'of which C kernels':<24} " + (
                "still compiling (the nodes run on numpy until they load)" if kt is None else
                f"{kt:.4f} s ({self._kernel_origins()})"))
        out.append("")
        out.append("Op classes, by time:")
        out.append(f"  {'%time':>6}  {'total s':>9}  {'mean us':>9}  {'calls':>6}  "
                   f"{'nodes':>5}  op class")
        classes = self.op_class_rows()
        for row in classes[:n_ops_to_print]:
            out.append(f"  {100 * row['share']:5.1f}%  {row['time']:9.6f}  "
                       f"{1e6 * row['mean']:9.1f}  {row['calls']:6d}  {row['nodes']:5d}  "
                       f"{row['op_class']}")
        if len(classes) > n_ops_to_print:
            out.append(f"  ... {len(classes) - n_ops_to_print} more")
        out.append("")
        out.append("Nodes, by time:")
        out.append(f"  {'%time':>6}  {'total s':>9}  {'mean us':>9}  {'calls':>6}  "
                   f"{'node':<40}  built at")
        rows = self.node_rows()
        for row in rows[:n_apply_to_print]:
            label = str(row["node"].op).replace("\n", " ")
            if len(label) > 40:
                label = label[:37] + "..."
            out.append(f"  {100 * row['share']:5.1f}%  {row['time']:9.6f}  "
                       f"{1e6 * row['mean']:9.1f}  {row['calls']:6d}  {label:<40}  "
                       f"{row['line']}")
        if len(rows) > n_apply_to_print:
            out.append(f"  ... {len(rows) - n_apply_to_print} more")
        return "\n".join(out) + "\n"

    def summary(self, file: IO[str] | None = None, n_ops_to_print: int = 20,
                n_apply_to_print: int = 20) -> None:
        """Print the calls, the compile phases, then the op classes and the nodes sorted by
        time (each node with the user's line that built it), to ``file`` (stderr, as
        Theano's)."""
        print(self.summary_text(n_ops_to_print, n_apply_to_print), end="",
              file=sys.stderr if file is None else file)

    def __repr__(self) -> str:
        return (f"<ProfileStats {self.message!r}: {self.fct_callcount} call(s), "
                f"{len(self.nodes)} node(s)>")


def _short_line(node: Apply) -> str:
    """``file:line: source`` of the user's line that built ``node``, the file by its name."""
    trace = node.trace
    if not trace:
        return "<unknown location>"
    text = format_trace(trace)
    filename = trace[0]
    return os.path.basename(filename) + text[len(filename):] if text.startswith(filename) \
        else text


class Probes:
    """Several probes as one: each node's thunk wrapped by each, the first innermost."""

    def __init__(self, *probes: Any):
        self.probes = probes
        self.keeps_inputs = any(p.keeps_inputs for p in probes)

    def wrap(self, node: Apply, fn: Callable, synchronize: Callable | None) -> Callable:
        for p in self.probes:
            fn = p.wrap(node, fn, synchronize)
        return fn


def combine(*probes: Any) -> Any:
    """The probe applying each of ``probes`` that is not None (None when none is)."""
    found = [p for p in probes if p is not None]
    if not found:
        return None
    return found[0] if len(found) == 1 else Probes(*found)


_PRINT_AT_EXIT: list[ProfileStats] = []


def _at_exit(stats: ProfileStats) -> None:
    if not _PRINT_AT_EXIT:
        atexit.register(_print_all)
    _PRINT_AT_EXIT.append(stats)


def _print_all() -> None:
    for stats in _PRINT_AT_EXIT:
        if stats.fct_callcount:
            try:
                stats.summary()
            except Exception as err:  # noqa: BLE001 - never fail an exiting process
                print(f"theon: could not print the profile of {stats.message}: {err}",
                      file=sys.stderr)
