"""theon's benchmarks: ``python -m benchmarks`` (from the repository root) or
``python -m theon.benchmarks`` (anywhere), ``--quick`` for a fast, rougher run.

Prints one row per case: the median time of one call of the compiled theon function, of the
same work written in plain numpy (run in this process), and of PyTensor, JAX and PyTorch where
they happen to be importable ("n/a" otherwise), and theon's time divided by each of theirs (below
1: theon is faster). Cases that move large arrays also have a ``floor`` column: the time a
hand-written pass takes to move the bytes the computation must move, so ``theon/floor`` says how
far theon is from memory-bound (the column is left out of a table where no case has it).

How a time is taken: each implementation is called once (warm-up; for JAX that also compiles),
then calibrated to a number of calls lasting about ``target`` seconds; samples of that many calls
are taken until its share of the case's time budget is spent, and the median of the per-call
sample times is reported. Implementations take turns (three in a full run), each turn a block
of samples, so that a slow spell of the machine falls on all of them; never call by call (BLAS
thread pools of one slow the next down while they spin). ``time.perf_counter`` throughout; the
garbage collector stays on, as in real use.

BLAS threads are not pinned: numpy's BLAS picks its own thread count (usually one per core)
unless ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` are set before the
run; the header says which. Set them to 1 to compare single-threaded performance.

The cases live in ``benchmarks/cases.py``: adding one is a ``Case(...)`` entry with a setup
function and a builder per implementation.
"""
from __future__ import annotations

import gc
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

IMPLS = ("theon", "numpy", "pytensor", "jax", "torch", "floor")
# implementations that compute something else on purpose (the floor only moves the bytes):
# timed, never compared with numpy
UNCHECKED = frozenset({"floor"})
# optional implementations, imported lazily
_MODULE_OF = {"pytensor": "pytensor", "jax": "jax", "torch": "torch"}


@dataclass
class Bench:
    """What gets timed: ``fn(*args)``. A builder may also return a bare zero-argument callable,
    and may set ``result`` to turn the call's return value into a numpy array for the check.

    ``self_timed``: ``fn`` returns the seconds to count itself (a compile measured inside a fresh
    process, without the process's start). ``note``, called after the timing, gives a line for
    the report (what the samples saw).
    """

    fn: Callable
    args: tuple = ()
    result: Callable[[Any], Any] | None = None
    self_timed: bool = False
    note: Callable[[], str] | None = None


class Unavailable(Exception):
    """Raised by a builder when its implementation cannot run here (no C compiler, say): the
    cell says n/a and the report gives the reason, for theon too."""


Builder = Callable[[dict[str, Any]], Any]  # setup's data -> Bench or zero-argument callable


@dataclass
class Case:
    """One row of the table.

    ``setup()`` makes the data every implementation shares (called once); each builder gets it
    and returns what to time, having done its compiling outside the timed part (except in
    ``kind="compile"`` cases, where compiling is what is timed). With ``check``, every
    implementation's result must match numpy's (``rtol``/``atol``), so no row is a fast wrong
    answer. ``budget`` scales the time spent sampling the case; ``max_samples`` caps the
    samples of each implementation (and lowers the minimum to it).
    """

    name: str
    description: str
    setup: Callable[[], dict[str, Any]]
    theon: Builder
    numpy: Builder | None = None
    pytensor: Builder | None = None
    jax: Builder | None = None
    kind: str = "call"  # "call" (time one call) or "compile" (time building the function)
    check: bool = True
    rtol: float = 1e-4
    atol: float = 1e-6
    budget: float = 1.0
    floor: Builder | None = None  # the memory-traffic floor of the same work (see IMPLS)
    max_samples: int | None = None  # for cases whose one sample takes seconds (a cold compile)
    torch: Builder | None = None  # PyTorch (CPU), where installed: the convolution cases

    def builder(self, impl: str) -> Builder | None:
        return getattr(self, impl)


@dataclass
class Result:
    """A measured row: ``times[impl]`` is the median seconds per call, or None (n/a)."""

    case: Case
    times: dict[str, float | None] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def ratio(self, impl: str) -> float | None:
        """theon's time over ``impl``'s (None where either is missing)."""
        mine, theirs = self.times.get("theon"), self.times.get(impl)
        if mine is None or not theirs:
            return None
        return mine / theirs


@dataclass
class Settings:
    budget_s: float   # sampling time per case (times the case's ``budget``), all impls together
    target_s: float   # length of one sample
    min_samples: int
    max_samples: int
    slow_samples: int | None = None  # at most this many for a case that caps its samples
    rounds: int = 1  # the implementations take turns this many times (see measure)


FULL = Settings(budget_s=4.0, target_s=0.02, min_samples=15, max_samples=2000, rounds=3)
QUICK = Settings(budget_s=0.3, target_s=0.004, min_samples=5, max_samples=200, slow_samples=2)


def available(impl: str) -> bool:
    """Whether an optional implementation's library can be imported (numpy and theon: always)."""
    module = _MODULE_OF.get(impl)
    return module is None or importlib.util.find_spec(module) is not None


def _as_bench(obj: Any) -> Bench:
    if isinstance(obj, Bench):
        return obj
    if callable(obj):
        return Bench(obj)
    raise TypeError(f"a benchmark builder must return a Bench or a callable, got {obj!r}")


def _run(bench: Bench, n: int) -> float:
    fn, args = bench.fn, bench.args
    if bench.self_timed:
        return sum(fn(*args) for _ in range(n))
    loop = range(n)
    start = time.perf_counter()
    for _ in loop:
        fn(*args)
    return time.perf_counter() - start


def _calibrate(bench: Bench, target_s: float) -> int:
    """How many calls make one sample of about ``target_s`` seconds."""
    n = 1
    while True:
        elapsed = _run(bench, n)
        if elapsed >= target_s / 5 or n >= 1 << 22:
            return max(1, min(1 << 22, round(n * target_s / max(elapsed, 1e-9))))
        n *= 10 if elapsed < target_s / 100 else 2


def measure(benches: dict[str, Bench], settings: Settings, budget: float = 1.0,
            max_samples: int | None = None):
    """Median seconds per call of each bench, and how many samples that took.

    The implementations take turns, ``settings.rounds`` times, each turn a block of samples
    with an equal share of the budget: a machine that slows down for a few seconds (other
    work on it) then slows every implementation's samples, not one implementation's, and
    the ratios stay. Samples are not interleaved call by call: BLAS thread pools (numpy's,
    PyTensor's, XLA's) keep spinning a while after a call, and slowed whichever implementation
    ran next by 2-3x; so a turn starts with one untimed sample, which lets them settle.
    """
    rounds = max(1, settings.rounds)
    share = settings.budget_s * budget / max(1, len(benches)) / rounds
    most = settings.max_samples
    if max_samples is not None:  # a sample takes seconds (a compile in a fresh process)
        most = min(most, max_samples, settings.slow_samples or max_samples)
    least = min(settings.min_samples, most)
    numbers: dict[str, int] = {}
    samples: dict[str, list[float]] = {impl: [] for impl in benches}
    for turn in range(1, rounds + 1):
        for impl, bench in benches.items():
            got = samples[impl]
            if impl not in numbers:  # (calibrating also lets other thread pools settle)
                numbers[impl] = 1 if bench.self_timed else \
                    _calibrate(bench, settings.target_s)
            elif not bench.self_timed and len(got) < most:
                _run(bench, numbers[impl])
            number = numbers[impl]
            upto, at_least = -(-most * turn // rounds), -(-least * turn // rounds)
            deadline = time.perf_counter() + share
            while len(got) < upto and (len(got) < at_least or time.perf_counter() < deadline):
                got.append(_run(bench, number) / number)
    times = {impl: statistics.median(got) for impl, got in samples.items()}
    return times, {impl: len(got) for impl, got in samples.items()}


def _result_array(bench: Bench, value: Any):
    if bench.result is not None:
        value = bench.result(value)
    if isinstance(value, (list, tuple)):
        return [np.asarray(v) for v in value]
    return np.asarray(value)


def _check(case: Case, values: dict[str, Any]) -> None:
    reference = values.get("numpy")
    if reference is None:
        return
    ref = reference if isinstance(reference, list) else [reference]
    for impl, value in values.items():
        got = value if isinstance(value, list) else [value]
        ok = len(got) == len(ref) and all(
            g.shape == r.shape and np.allclose(g, r, rtol=case.rtol, atol=case.atol)
            for g, r in zip(got, ref))
        if not ok:
            raise AssertionError(f"benchmark {case.name}: {impl} computes something else than "
                                 f"numpy: {got!r} vs {ref!r}")


@contextmanager
def _kernels_before_return(case: Case):
    """For a call case, function() waits for its own C kernels (config.wait_for_kernels): the
    case times the steady state, not the calls that run numpy while gcc works (a compile case
    times what function() takes, so it is left as it is)."""
    if case.kind != "call":
        yield
        return
    from theon.config import config as cfg
    old = cfg.wait_for_kernels
    cfg.wait_for_kernels = True
    try:
        yield
    finally:
        cfg.wait_for_kernels = old


def run_case(case: Case, settings: Settings, impls: Sequence[str] = IMPLS) -> Result:
    """Build every available implementation of ``case``, check them, and time them."""
    result = Result(case)
    data = case.setup()
    benches: dict[str, Bench] = {}
    values: dict[str, Any] = {}
    for impl in impls:
        builder = case.builder(impl)
        result.times[impl] = None
        if builder is None:
            continue
        if not available(impl):
            continue  # the header says it is not installed
        try:
            with _kernels_before_return(case):
                bench = _as_bench(builder(data))
                start = time.perf_counter()
                # warm-up (for JAX: compiles; for theon, what a first call compiles, such as a
                # scan's C loop, is loaded before it returns)
                value = bench.fn(*bench.args)
            result.first[impl] = value if bench.self_timed else time.perf_counter() - start
        except Unavailable as why:
            result.notes[impl] = f"n/a: {why}"
            continue
        except Exception as err:  # noqa: BLE001 - theon must work; the others may not
            if impl in ("theon", "numpy"):
                raise
            result.notes[impl] = f"failed: {type(err).__name__}: {err}"
            continue
        benches[impl] = bench
        if case.check and case.kind == "call" and impl not in UNCHECKED:
            values[impl] = _result_array(bench, value)
        del value  # a large result would otherwise stay alive through the timing
    if case.check and case.kind == "call":
        _check(case, values)
    del values
    gc.collect()
    times, counts = measure(benches, settings, case.budget, case.max_samples)
    result.times.update(times)
    result.samples.update(counts)
    for impl, bench in benches.items():
        if bench.note is not None:
            result.notes[impl] = bench.note()
    return result


# -- reporting ---------------------------------------------------------------------------------
def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def table(results: Sequence[Result]) -> str:
    """The results as a fixed-width text table: times, then theon's time over each other's.
    The floor column only where some case has a floor."""
    impls = [i for i in IMPLS if i != "floor"
             or any(r.times.get(i) is not None for r in results)]
    others = [i for i in impls if i != "theon"]
    header = ["case"] + impls + [f"theon/{i}" for i in others]
    rows = [[r.case.name] + [format_time(r.times.get(i)) for i in impls]
            + [format_ratio(r.ratio(i)) for i in others] for r in results]
    widths = [max(len(row[k]) for row in [header] + rows) for k in range(len(header))]
    lines = []
    for n, row in enumerate([header] + rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment() -> str:
    """One paragraph on what ran: versions, cores, BLAS and its thread settings."""
    import theon
    blas = "?"
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: leave it out
        pass
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}
    thread_note = (", ".join(f"{k}={v}" for k, v in threads.items()) if threads else
                   "BLAS threads not pinned (OMP_NUM_THREADS etc. unset)")
    extras = ", ".join(
        f"{impl} {_version(impl)}" if available(impl) else f"{impl} not installed"
        for impl in _MODULE_OF)
    return (f"theon {theon.__version__}, numpy {np.__version__} ({blas}), {extras}; "
            f"Python {platform.python_version()}, {os.cpu_count()} CPU(s); {thread_note}")


def _version(impl: str) -> str:
    try:
        return getattr(__import__(_MODULE_OF[impl]), "__version__", "?")
    except Exception:  # noqa: BLE001
        return "(import fails)"


def main(quick: bool = False, cases: Sequence[str] | None = None,
         out: TextIO | None = None) -> list[Result]:
    """Run the benchmark cases (those whose name contains one of ``cases``, default all), print
    the table to ``out`` (default stdout) and return the results."""
    from .cases import CASES
    out = out or sys.stdout
    settings = QUICK if quick else FULL
    chosen = [c for c in CASES if not cases or any(s in c.name for s in cases)]
    with_table = not cases or any(s in COMPILE_TABLE for s in cases)
    if not chosen and not with_table:
        raise SystemExit(f"no benchmark case matches {list(cases or [])}; the cases are "
                         f"{', '.join(c.name for c in CASES)}")
    print(environment(), file=out)
    print(f"median time per call ({'quick' if quick else 'full'} run); theon/X below 1 means "
          "theon is faster than X", file=out, flush=True)
    results = []
    start = time.perf_counter()
    for case in chosen:
        results.append(run_case(case, settings))
    if results:
        print(file=out)
        print(table(results), file=out)
        print(file=out)
    for r in results:
        print(f"{r.case.name}: {r.case.description}", file=out)
        if r.case.kind == "compile" and "theon" in r.first:
            print(f"    theon's first compile of this graph (the warm-up): "
                  f"{format_time(r.first['theon'])}", file=out)
        for impl, note in r.notes.items():
            print(f"    {impl}: {note}", file=out)
    if with_table:
        from .compile_time import SIZES, compile_table
        print(file=out)
        compile_table(SIZES[:-1] if quick else SIZES, out=out)
    print(f"({time.perf_counter() - start:.1f} s)", file=out, flush=True)
    return results


COMPILE_TABLE = "compile_table"  # --case name of the compile-time table (compile_time.py)


def cli(argv: Sequence[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument("--case", action="append", metavar="NAME",
                        help="run only the cases whose name contains NAME (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--device", metavar="cuda[N]",
                        help="the MLP training step on a CUDA device instead: its kernel plan "
                             "and, with a GPU, its time (the CPU stand-in's plan without one)")
    args = parser.parse_args(argv)
    if args.device:
        from .device import report
        report(args.device)
        return 0
    if args.list:
        from .cases import CASES
        for c in CASES:
            print(f"{c.name}: {c.description}")
        print(f"{COMPILE_TABLE}: compile time of chains of 10 to 10,000 nodes, with and "
              "without their gradient (up to 1,000 with --quick)")
        return 0
    main(quick=args.quick, cases=args.case)
    return 0
