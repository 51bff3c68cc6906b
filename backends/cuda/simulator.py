"""The CPU stand-in of the device runtime (``THEON_FLAGS=device=cuda,cuda.simulator=True``).

Its arrays (``DeviceArray``) are host memory behind a type that is not a numpy array: numpy
cannot convert one implicitly (``__array__`` raises, as CuPy's does), so a value that should
have been moved with ``to_host`` fails loudly instead of silently working on the host. ``xp``
is numpy's namespace taking and returning DeviceArrays, as ``cupy`` is for CuPy's arrays.

Kernels are the exact CUDA source a GPU would get, compiled by g++ with ``theon_cuda_cpu.h``
force-included: every CUDA thread of a launch runs on the CPU (a fiber per thread once a block
meets ``__syncthreads`` or a warp collective, warps of 32, ``__shared__`` per block, atomics),
and misuse a GPU leaves undefined (a divergent barrier, a shuffle from an exited lane,
deadlock) raises RuntimeError naming the thread. Blocks run one after another (no OpenMP).
Libraries are cached under ``config.compiledir``/``cuda_cpu`` by the hash of what goes in.

The thread scheduler is compiled once per cache (``support()``: an object linked into every
library, and the header's kernel-side declarations precompiled where the compiler is GCC), so
a module's build compiles its kernels only: a small module built in about a quarter of the
instructions it took as one translation unit with the whole header.
"""
from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...config import config
from ..ccompiler import DLOPEN_LOCK, run_tool
from .runtime import Kernel, Module, Runtime

HEADER = Path(__file__).resolve().with_name("theon_cuda_cpu.h")

# Launch schedules (the header's mode bits): every thread a fiber even in a block without
# barriers, and fibers resumed last to first; tests set ``SimulatorRuntime.schedule``.
FORCE_FIBERS = 1
REVERSE = 2

# -ffp-contract=off: no fused multiply-adds, so results do not depend on the host's FMA units;
# no -fopenmp: blocks run one after another (the calling process keeps its own threads).
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-ffp-contract=off",
         "-Wall", "-Werror", "-Wno-unknown-pragmas", "-Wno-unused-function", "-Wno-unused-variable")
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')
# Put before the kernels of a ``quick`` build: they compile without optimisation, the header
# (the threads' scheduler, before them) with it.
_QUICK = '#pragma GCC optimize ("O0")\n'
_VERSIONS: dict[str, str] = {}
# The header's view for kernels (declarations of the scheduler), and the scheduler's object
_KERNELS_H = '#define THEON_CPU_KERNELS_ONLY 1\n#include "theon_cuda_cpu.h"\n'
_RUNTIME_CC = '#define THEON_CPU_RUNTIME_OBJECT 1\n#include "theon_cuda_cpu.h"\n'
_PROBE = ('extern "C" __global__ void probe(float* a) {\n  __shared__ float s[32];\n'
          '  s[threadIdx.x] = a[threadIdx.x];\n  __syncthreads();\n'
          '  a[threadIdx.x] = __shfl_down_sync(0xffffffffu, s[threadIdx.x], 1);\n}\n'
          'THEON_CPU_EXPORT(probe)\n')
# gold links a kernel library in about a quarter of the instructions of the default ld.bfd
_FAST_LINK = ("-fuse-ld=gold",)
_SUPPORT: dict[Path, Support] = {}
_SUPPORT_LOCK = threading.Lock()

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")


# -- building kernels for the CPU ------------------------------------------------------------------

def cxx() -> str | None:
    """The C++ compiler for kernels: ``$CXX``, else g++ or c++ on PATH; None without one, or
    when ``config.cxx`` is empty (compiling turned off)."""
    if not config.cxx:
        return None
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _compiler_version(compiler: str) -> str:
    if compiler not in _VERSIONS:
        _VERSIONS[compiler] = run_tool([compiler, "--version"]).stdout
    return _VERSIONS[compiler]


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_tool(cmd, cwd=cwd)


def _failed(cmd: list[str], done: subprocess.CompletedProcess) -> RuntimeError:
    return RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[:6000]}")


def _key(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:32]


@dataclass(frozen=True)
class Support:
    """What every kernel library of one cache is built with: ``include``, the header's
    kernel-side view (precompiled beside it when ``pch``), ``runtime``, the scheduler's
    object, and ``link``, the linker flags found to work."""

    include: Path
    runtime: Path
    link: tuple[str, ...]
    pch: bool

    def command(self, compiler: str, source: Path, out: Path) -> list[str]:
        """The command building ``source`` (kernel text) into the library ``out``."""
        return [compiler, *FLAGS, *self.link, "-include", str(self.include), "-x", "c++",
                str(source), "-x", "none", str(self.runtime), "-o", str(out)]


def support(compiler: str, cache: Path) -> Support:
    """The scheduler's object and the kernels' header of ``cache`` for ``compiler``, built
    once (a folder published whole, keyed by the header, the flags and the compiler)."""
    header = HEADER.read_bytes()
    key = _key(header, " ".join(FLAGS).encode(), compiler.encode(),
               _compiler_version(compiler).encode())
    folder = cache / f"support_{key}"
    found = _SUPPORT.get(folder)
    if found is not None:
        return found
    with _SUPPORT_LOCK:
        if not (folder / "support.json").exists():
            cache.mkdir(parents=True, exist_ok=True)
            with open(cache / f"support_{key}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (folder / "support.json").exists():
                    _build_support(compiler, header, folder)
        info = json.loads((folder / "support.json").read_text())
        found = _SUPPORT[folder] = Support(folder / "theon_kernels.h", folder / "runtime.o",
                                           tuple(info["link"]), info["pch"])
    return found


def _build_support(compiler: str, header: bytes, folder: Path) -> None:
    compile_only = [f for f in FLAGS if f != "-shared"]
    tmp = Path(tempfile.mkdtemp(prefix="support_", dir=folder.parent))
    try:
        (tmp / "theon_cuda_cpu.h").write_bytes(header)
        (tmp / "theon_kernels.h").write_text(_KERNELS_H)
        (tmp / "runtime.cc").write_text(_RUNTIME_CC)
        cmd = [compiler, *compile_only, "-c", "runtime.cc", "-o", "runtime.o"]
        done = _run(cmd, tmp)
        if done.returncode:
            raise _failed(cmd, done)
        # a precompiled header only where GCC reads it: another compiler parses the text
        pch = "Free Software Foundation" in _compiler_version(compiler) and not _run(
            [compiler, *compile_only, "-x", "c++-header", "theon_kernels.h", "-o",
             "theon_kernels.h.gch"], tmp).returncode
        (tmp / "probe.cu").write_text(_PROBE)
        chosen = None
        # the probe builds a library as every kernel will be: an unusable precompiled
        # header (-Winvalid-pch, an error under -Werror) is dropped, gold kept if it links
        for link, check in ((_FAST_LINK, pch), ((), pch), ((), False)):
            if not check and pch:
                (tmp / "theon_kernels.h.gch").unlink()
                pch = False
            trial = Support(tmp / "theon_kernels.h", tmp / "runtime.o", link, pch)
            cmd = trial.command(compiler, tmp / "probe.cu", tmp / "probe.so")
            if check:
                cmd.insert(1, "-Winvalid-pch")
            done = _run(cmd, tmp)
            if not done.returncode:
                chosen = link
                break
        if chosen is None:
            raise _failed(cmd, done)
        (tmp / "support.json").write_text(json.dumps({"link": list(chosen), "pch": pch}))
        os.replace(tmp, folder)  # published whole, never half-built
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_dir() -> Path:
    """Where built kernels are kept: ``config.compiledir``/cuda_cpu."""
    return Path(config.compiledir).expanduser().absolute() / "cuda_cpu"


def build(source: str, cache: Path | None = None, *, quick: bool = False) -> Path:
    """``source`` (CUDA kernels) compiled for the CPU into a shared library in ``cache``
    (default ``cache_dir()``), keyed by the hash of what goes in; a process finding another
    building the same key waits for it (flock) instead of compiling twice. ``quick``: the
    kernels unoptimised, which builds a reduction kernel about 5x faster (0.03 against
    0.15 s), for small arrays."""
    compiler = cxx()
    if compiler is None:
        raise RuntimeError("the CUDA simulator compiles kernels with a C++ compiler: none found "
                           "(install g++, or set CXX; config.cxx must not be empty)")
    cache = cache_dir() if cache is None else Path(cache)
    # THEON_CPU_EXPORT(k) defines theon_launch_k, the launcher ctypes calls
    text = (_QUICK if quick else "") + source + "\n" + "".join(
        f"THEON_CPU_EXPORT({k})\n" for k in _KERNEL.findall(source))
    key = _key(text.encode(), HEADER.read_bytes(), " ".join(FLAGS).encode(),
               compiler.encode(), _compiler_version(compiler).encode())
    cache.mkdir(parents=True, exist_ok=True)
    lib = cache / f"cuda_cpu_{key}.so"
    if lib.exists():
        return lib
    with open(cache / f"cuda_cpu_{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            made = support(compiler, cache)
            with tempfile.TemporaryDirectory() as tmp:
                cu = Path(tmp) / "kernels.cu"
                cu.write_text(text)
                out = Path(tmp) / "kernels.so"
                cmd = made.command(compiler, cu, out)
                done = _run(cmd)
                if done.returncode:
                    raise _failed(cmd, done)
                os.replace(out, lib)  # published whole, never half-written
    return lib


class _StackPool(ctypes.Structure):
    """The header's StackPool: the threads' stacks that every library's launches reuse."""
    _fields_ = [("base", ctypes.c_void_p), ("map_bytes", ctypes.c_size_t),
                ("slot_bytes", ctypes.c_size_t), ("guarded", ctypes.c_int)]


# One for the process: launches run one at a time (DLOPEN_LOCK), and a pool per library would
# keep each one's stacks and guard pages mapped.
_STACKS = _StackPool()


def load(library: Path) -> ctypes.CDLL:
    """A built library, loaded, with its error function's type set and the process's stack
    pool handed to it."""
    with DLOPEN_LOCK:
        lib = ctypes.CDLL(str(library))
        lib.theon_cpu_use_stacks(ctypes.byref(_STACKS))
    lib.theon_cpu_last_error.restype = ctypes.c_char_p
    return lib


def launcher(lib: ctypes.CDLL, name: str):
    """The ctypes function that launches kernel ``name`` of ``lib`` (AttributeError if it has
    none)."""
    fn = getattr(lib, "theon_launch_" + name)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_ulong, ctypes.c_void_p, ctypes.c_int]
    return fn


# A GPU's limits (compute capability 8.0 and 9.0 alike): a launch outside them fails there,
# so it fails here too rather than running on the CPU.
GRID_MAX = (2 ** 31 - 1, 65535, 65535)
BLOCK_MAX = (1024, 1024, 64)
THREADS_MAX = 1024
SHARED_MAX = 48 * 1024  # dynamic shared memory without cudaFuncSetAttribute's opt-in


def _invalid_launch(grid: tuple, block: tuple, shared_mem: int) -> str:
    if len(grid) != 3 or len(block) != 3:
        return f"grid {grid} and block {block} have at most 3 dimensions"
    if any(not 1 <= g <= m for g, m in zip(grid, GRID_MAX)):
        return f"grid {grid} outside 1..{GRID_MAX}"
    if any(not 1 <= b <= m for b, m in zip(block, BLOCK_MAX)):
        return f"block {block} outside 1..{BLOCK_MAX}"
    if block[0] * block[1] * block[2] > THREADS_MAX:
        return f"block {block} has more than {THREADS_MAX} threads"
    if not 0 <= shared_mem <= SHARED_MAX:
        return f"{shared_mem} bytes of dynamic shared memory (at most {SHARED_MAX})"
    return ""


def launch_shape(name: str, grid: Sequence[int], block: Sequence[int], shared_mem: int = 0
                 ) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``grid`` and ``block`` as three dimensions each; RuntimeError if a GPU would refuse
    the launch."""
    grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
    block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
    why = _invalid_launch(grid, block, shared_mem)
    if why:
        raise RuntimeError(f"{name}: invalid launch configuration: {why}")
    return grid, block


def launch(lib: ctypes.CDLL, fn, name: str, grid: Sequence[int], block: Sequence[int],
           args: Sequence, shared_mem: int = 0, mode: int = 0) -> None:
    """Run every thread of a launch of ``fn``; ``args`` are ints (a pointer: the address of
    an array's first element) or numpy scalars (a value of the C type of its numpy type),
    passed as cuLaunchKernel's ``void **``."""
    grid, block = launch_shape(name, grid, block, shared_mem)
    keep = []  # what the pointers point at lives until the call returns
    ptrs = (ctypes.c_void_p * max(1, len(args)))()
    for i, a in enumerate(args):
        if isinstance(a, np.generic):
            held = np.array(a)
            ptrs[i] = held.ctypes.data
        elif isinstance(a, int) and not isinstance(a, bool):
            held = ctypes.c_void_p(a)
            ptrs[i] = ctypes.addressof(held)
        else:
            raise TypeError(f"{name}: argument {i} is a {type(a).__name__}")
        keep.append(held)
    with DLOPEN_LOCK:  # (see there: no library loads while kernels run)
        rc = fn(*grid, *block, int(shared_mem), ptrs, mode)
    if rc:
        raise RuntimeError(f"{name}: {lib.theon_cpu_last_error().decode()}")


# -- arrays ----------------------------------------------------------------------------------------

class _Pointer:
    """``a.data`` as CuPy's MemoryPointer: ``ptr`` is the address of element 0."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: int):
        self.ptr = ptr


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: np.ndarray):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, name: str) -> bool:
        return getattr(self, {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous",
                              "OWNDATA": "owndata"}.get(name, name.lower()))

    def __repr__(self) -> str:
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n"
                f"  OWNDATA : {self.owndata}")


def _host_refused(x: np.ndarray) -> TypeError:
    return TypeError(f"Unsupported type {type(x)}: a host numpy array where the simulated "
                     f"device takes device arrays (move it with the runtime's to_device)")


def _unwrap(x: Any) -> Any:
    """DeviceArrays (also in lists and tuples) replaced by their host memory; a numpy array
    refused, as CuPy refuses one."""
    if type(x) is DeviceArray:
        return x._a
    if isinstance(x, np.ndarray):
        raise _host_refused(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _unwrap_index(x: Any) -> Any:
    """An index: DeviceArrays unwrapped, numpy index arrays allowed (as CuPy's indexing)."""
    if type(x) is DeviceArray:
        return x._a
    if isinstance(x, tuple):
        return tuple(_unwrap_index(v) for v in x)
    return x


# functions whose argument at this position is an index: a host numpy array of integers is
# allowed there, as in CuPy's indexing (ufunc.at, take, put, ...)
_INDEX_ARG = {"at": 1, "take": 1, "put": 1, "take_along_axis": 1, "put_along_axis": 1,
              "choose": 0}


# functions (and methods) taking a shape or axes, which may come as a host array of integers
# (a shape is host data: it goes by value, as cupy takes any sequence of ints)
_SHAPE_ARGS = frozenset({"reshape", "broadcast_to", "empty", "zeros", "ones", "full", "tile",
                         "resize", "transpose"})


def _as_shape(x: Any) -> Any:
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.ndim <= 1:
        return int(x) if x.ndim == 0 else tuple(int(v) for v in x)
    return x


def _unwrap_args(name: str, args: tuple, method: bool = False) -> tuple:
    if name in _SHAPE_ARGS:
        args = tuple(_as_shape(a) for a in args)
    where = _INDEX_ARG.get(name)
    if where is not None and method:
        where -= 1  # a method's array is ``self``
    if where is None or where < 0 or where >= len(args):
        return _unwrap(args)
    return tuple(_unwrap_index(a) if i == where else _unwrap(a) for i, a in enumerate(args))


def _wrap(x: Any) -> Any:
    """numpy results as device arrays (a numpy scalar as a 0-d one, as CuPy returns)."""
    if isinstance(x, np.ndarray):
        return DeviceArray._of(x)
    if isinstance(x, np.generic):
        return DeviceArray._of(np.asarray(x))
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


def _operand(x: Any) -> Any:
    """The other operand of an operator: its host memory, a scalar as is, NotImplemented for
    a type the operator leaves to the other side (a symbolic variable, say)."""
    if type(x) is DeviceArray:
        return x._a
    if isinstance(x, np.ndarray):
        raise _host_refused(x)
    if isinstance(x, (int, float, complex, bool, np.generic)):
        return x
    return NotImplemented


def _binary(ufunc: np.ufunc):
    def op(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return o
        return _wrap(ufunc(self._a, o))

    def rop(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return o
        return _wrap(ufunc(o, self._a))

    def iop(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return o
        ufunc(self._a, o, out=self._a)
        return self

    return op, rop, iop


def _method(name: str):
    def method(self, *args, **kwargs):
        return _wrap(getattr(self._a, name)(*_unwrap_args(name, args, method=True),
                                            **_unwrap_kwargs(kwargs, name)))
    method.__name__ = name
    method.__doc__ = f"numpy's ndarray.{name}, on the device array."
    return method


def _unwrap_kwargs(kwargs: dict, name: str = "") -> dict:
    if name in _SHAPE_ARGS:
        return {k: _unwrap(_as_shape(v)) for k, v in kwargs.items()}
    return {k: _unwrap(v) for k, v in kwargs.items()}


class DeviceArray:
    """An array of the simulated device: host memory that numpy may not take implicitly.

    As cupy.ndarray: ``get()`` copies to numpy, ``set(host)`` copies into it, ``data.ptr`` is
    the address of element 0 (what a kernel gets), views share memory, operators and methods
    return DeviceArrays, and ``np.asarray`` refuses it. ``DeviceArray(shape, dtype)`` is an
    uninitialised array."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape: int | Sequence[int], dtype: Any = float, order: str = "C"):
        self._a = np.empty(shape, dtype, order=order)

    @classmethod
    def _of(cls, a: np.ndarray) -> DeviceArray:
        new = object.__new__(cls)
        # numpy gives scalars where cupy gives 0-d arrays (a vector's dot product, say)
        new._a = a if isinstance(a, np.ndarray) else np.asarray(a)
        return new

    # what numpy must not do with it
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def __reduce_ex__(self, protocol):
        raise TypeError("a simulated device array does not pickle: store its host data "
                        "(.get()) and move it back with the runtime's to_device")

    def __copy__(self) -> DeviceArray:
        return DeviceArray._of(self._a.copy())

    def __deepcopy__(self, memo) -> DeviceArray:
        return DeviceArray._of(self._a.copy())

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # np.add(device, device) runs on the device, as CuPy dispatches numpy's ufuncs
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        return _call(func, args, kwargs)

    # attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @shape.setter
    def shape(self, value) -> None:
        self._a.shape = value

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def strides(self) -> tuple[int, ...]:
        return self._a.strides

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def nbytes(self) -> int:
        return self._a.nbytes

    @property
    def itemsize(self) -> int:
        return self._a.itemsize

    @property
    def flags(self) -> _Flags:
        return _Flags(self._a)

    @property
    def data(self) -> _Pointer:
        return _Pointer(self._a.ctypes.data)

    @property
    def T(self) -> DeviceArray:
        return DeviceArray._of(self._a.T)

    # host copies
    def get(self, stream=None, order: str = "C", out: np.ndarray | None = None) -> np.ndarray:
        """A numpy copy (into ``out`` if given)."""
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr: np.ndarray, stream=None) -> None:
        """Copy the host array ``arr`` (of this shape) into this array."""
        arr = np.asarray(arr)
        if arr.shape != self._a.shape:
            raise ValueError(f"Shape mismatch: {arr.shape} into {self._a.shape}")
        self._a[...] = arr

    # indexing: views share memory; numpy index arrays are allowed, as in CuPy
    def __getitem__(self, key) -> DeviceArray:
        key = _unwrap_index(key)
        # an element is a 0-d view, as cupy's (numpy would give a scalar copy): with a
        # trailing Ellipsis numpy gives the view
        if not isinstance(key, tuple):
            key = (key,)
        if not any(k is Ellipsis for k in key):
            key = key + (Ellipsis,)
        return DeviceArray._of(self._a[key])

    def __setitem__(self, key, value) -> None:
        if type(value) is DeviceArray:
            value = value._a
        self._a[_unwrap_index(key)] = value

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # conversions that copy one value to the host, as CuPy allows
    def __bool__(self) -> bool:
        return bool(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def __repr__(self) -> str:
        return f"DeviceArray({np.array2string(self._a, separator=', ')}, dtype={self.dtype})"

    __str__ = __repr__
    __hash__ = None  # type: ignore[assignment]

    def __neg__(self) -> DeviceArray:
        return _wrap(-self._a)

    def __pos__(self) -> DeviceArray:
        return _wrap(+self._a)

    def __abs__(self) -> DeviceArray:
        return _wrap(abs(self._a))

    def __invert__(self) -> DeviceArray:
        return _wrap(~self._a)

    def __eq__(self, other):  # type: ignore[override]
        o = _operand(other)
        return o if o is NotImplemented else _wrap(self._a == o)

    def __ne__(self, other):  # type: ignore[override]
        o = _operand(other)
        return o if o is NotImplemented else _wrap(self._a != o)

    def __lt__(self, other):
        o = _operand(other)
        return o if o is NotImplemented else _wrap(self._a < o)

    def __le__(self, other):
        o = _operand(other)
        return o if o is NotImplemented else _wrap(self._a <= o)

    def __gt__(self, other):
        o = _operand(other)
        return o if o is NotImplemented else _wrap(self._a > o)

    def __ge__(self, other):
        o = _operand(other)
        return o if o is NotImplemented else _wrap(self._a >= o)


for _name, _ufunc in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                      ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                      ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                      ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                      ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    _op, _rop, _iop = _binary(_ufunc)
    for _prefix, _f in (("", _op), ("r", _rop), ("i", _iop)):
        _f.__name__ = f"__{_prefix}{_name}__"
        setattr(DeviceArray, _f.__name__, _f)

for _name in ("reshape", "transpose", "ravel", "flatten", "astype", "copy", "view", "squeeze",
              "swapaxes", "sum", "prod", "max", "min", "mean", "std", "var", "argmax", "argmin",
              "any", "all", "cumsum", "cumprod", "clip", "round", "conj", "nonzero", "take",
              "repeat", "diagonal", "trace", "dot", "sort", "argsort", "fill", "put"):
    setattr(DeviceArray, _name, _method(_name))


# -- the array namespace ------------------------------------------------------------------------

# functions that take host data and make a device array of it (a copy, as CuPy's)
_FROM_HOST = frozenset({"array", "asarray", "asanyarray", "ascontiguousarray",
                        "asfortranarray"})


def _call(func, args, kwargs):
    """numpy's ``func`` on device arrays: arguments unwrapped (a host numpy array refused),
    numpy results wrapped; a result written into ``out=`` is the DeviceArray given."""
    name = getattr(func, "__name__", "")
    result = func(*_unwrap_args(name, args), **_unwrap_kwargs(kwargs, name))
    out = kwargs.get("out")
    if out is not None:
        return _given_out(result, out)
    return _wrap(result)


def _given_out(result: Any, out: Any) -> Any:
    if type(out) is DeviceArray and result is out._a:
        return out
    if isinstance(out, tuple):
        if isinstance(result, tuple) and len(result) == len(out):
            return tuple(_given_out(r, o) for r, o in zip(result, out))
        if len(out) == 1:
            return _given_out(result, out[0])
    return _wrap(result)


def _unwrap_data(x: Any) -> Any:
    """The data of ``xp.array(...)``: device arrays, also in (nested) lists, unwrapped; host
    arrays and Python values as they are."""
    if type(x) is DeviceArray:
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap_data(v) for v in x)
    return x


def _from_host(func):
    @functools.wraps(func)
    def make(a, *args, **kwargs):
        if type(a) is DeviceArray:
            out = func(a._a, *args, **_unwrap_kwargs(kwargs))
            # asarray of a device array of its own dtype is that array, as CuPy's
            return a if out is a._a else _wrap(out)
        host = func(_unwrap_data(a), *_unwrap(args), **_unwrap_kwargs(kwargs))
        if isinstance(a, np.ndarray) and np.may_share_memory(host, a):
            host = host.copy(order="K")  # device memory never aliases the host's
        return _wrap(host)
    return make


class _Ufunc:
    """A numpy ufunc on device arrays, with its methods (``reduce``, ``at``, ...)."""

    def __init__(self, ufunc: np.ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self._ufunc, name)
        if callable(attr):
            return functools.partial(_call_fn, attr)
        return attr

    def __repr__(self) -> str:
        return f"<simulated device ufunc {self.__name__}>"


class _Namespace:
    """numpy's functions on device arrays (``rt.xp``), as the ``cupy`` namespace is for
    CuPy's: ``xp.zeros``, ``xp.concatenate([a, b])``, ``xp.add(a, b, out=c)``. Types,
    dtypes and constants are numpy's own; ``xp.ndarray`` is DeviceArray."""

    def __init__(self, module: types.ModuleType, name: str):
        self._module = module
        self.__name__ = name

    def __getattr__(self, name: str):
        attr = getattr(self._module, name)
        if isinstance(attr, type) or not callable(attr) and not isinstance(
                attr, types.ModuleType):
            wrapped = attr
        elif isinstance(attr, types.ModuleType):
            wrapped = _Namespace(attr, f"{self.__name__}.{name}")
        elif isinstance(attr, np.ufunc):
            wrapped = _Ufunc(attr)
        elif name in _FROM_HOST:
            wrapped = _from_host(attr)
        else:
            wrapped = functools.wraps(attr)(functools.partial(_call_fn, attr))
        setattr(self, name, wrapped)  # found once
        return wrapped

    def __repr__(self) -> str:
        return f"<simulated device namespace {self.__name__}>"


def _call_fn(func, *args, **kwargs):
    return _call(func, args, kwargs)


def _asnumpy(a: Any, stream=None, order: str = "C") -> np.ndarray:
    """A numpy copy of a device array (numpy and other data as numpy.asarray)."""
    if type(a) is DeviceArray:
        return a.get(order=order)
    return np.asarray(a, order=order)


def _get_array_module(*args) -> Any:
    return xp if any(type(a) is DeviceArray for a in args) else np


xp = _Namespace(np, "simulator.xp")
xp.ndarray = DeviceArray
xp.asnumpy = _asnumpy
xp.get_array_module = _get_array_module


# -- the runtime -----------------------------------------------------------------------------------

class _SimKernel(Kernel):
    def __init__(self, module: _SimModule, name: str):
        self._module, self.name = module, name
        self._fn = None

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
        lib = self._module._library()
        if self._fn is None:
            try:
                self._fn = launcher(lib, self.name)
            except AttributeError:
                raise RuntimeError(f"the module has no kernel named {self.name!r} (an "
                                   f'extern "C" __global__ function)') from None
        values = []
        for i, a in enumerate(args):
            if type(a) is DeviceArray:
                values.append(a._a.ctypes.data)
            elif isinstance(a, np.generic):
                values.append(a)
            else:
                raise TypeError(f"{self.name}: argument {i} is a {type(a).__name__}: a kernel "
                                f"takes device arrays and numpy scalars (of the parameter's "
                                f"C type)")
        grid, block = launch_shape(self.name, grid, block, shared_mem)
        runtime = self._module._runtime
        if runtime.random_grids is not None:
            # any number of blocks along x, from one to a few more than asked
            grid = (int(runtime.random_grids.integers(1, grid[0] + 4)),) + grid[1:]
            grid, block = launch_shape(self.name, grid, block, shared_mem)
        runtime.stats.launches += 1  # a launch made, even if the kernel then fails
        launch(lib, self._fn, self.name, grid, block, values, shared_mem, runtime.schedule)


class _SimModule(Module):
    """A CUDA source built for the CPU at its first launch (as CuPy compiles lazily)."""

    def __init__(self, runtime: SimulatorRuntime, source: str):
        self._runtime, self.source = runtime, source
        self._lib: ctypes.CDLL | None = None
        self._lock = threading.Lock()
        self._kernels: dict[str, _SimKernel] = {}

    def _library(self) -> ctypes.CDLL:
        if self._lib is None:
            with self._lock:
                if self._lib is None:
                    self._lib = load(build(self.source, quick=self._runtime.quick))
        return self._lib

    def get_function(self, name: str) -> Kernel:
        found = self._kernels.get(name)
        if found is None:
            found = self._kernels[name] = _SimKernel(self, name)
        return found


class SimulatorRuntime(Runtime):
    """The CPU stand-in: DeviceArrays in host memory, kernels compiled with g++.

    Settings, each with a default from the environment (so that a whole test run can use
    them: CI's reversed-order and random-grid runs):

    - ``schedule``: the mode of every launch: 0, or FORCE_FIBERS | REVERSE to run each thread
      as a fiber, resumed last to first (``$THEON_CUDA_SIMULATOR_SCHEDULE``, default 0);
    - ``random_grids``: None, or a numpy Generator that draws each launch's number of blocks
      along x from 1 to 3 more than asked, which a grid-stride kernel (every kernel theon
      renders) must not notice (``$THEON_CUDA_SIMULATOR_RANDOM_GRIDS``: a seed);
    - ``quick``: kernels built without optimisation, faster to build and slower to run
      (``$THEON_CUDA_SIMULATOR_QUICK=1``);
    - ``sources``: None, or a folder where each module's CUDA text is also written (once per
      text, named by its hash), so that a whole run's kernels can go through NVRTC afterwards
      (``$THEON_CUDA_SIMULATOR_SOURCES``; CI's gate: ``tests/backends/cuda/nvrtc_gate.py``)."""

    name = "simulator"
    array_type = DeviceArray
    xp = xp

    def __init__(self, device_id: int = 0):
        super().__init__(device_id)
        env = os.environ.get
        self.schedule = int(env("THEON_CUDA_SIMULATOR_SCHEDULE") or 0)
        seed = env("THEON_CUDA_SIMULATOR_RANDOM_GRIDS")
        self.random_grids = None if not seed else np.random.default_rng(int(seed))
        self.quick = bool(int(env("THEON_CUDA_SIMULATOR_QUICK") or 0))
        self.sources = Path(env("THEON_CUDA_SIMULATOR_SOURCES")) if env(
            "THEON_CUDA_SIMULATOR_SOURCES") else None

    def to_device(self, host: np.ndarray) -> DeviceArray:
        if type(host) is DeviceArray:
            raise TypeError("to_device: already a device array")
        dev = np.array(host, copy=True, order="K")
        self.stats.to_device_calls += 1
        self.stats.to_device_bytes += dev.nbytes
        return DeviceArray._of(dev)

    def to_host(self, dev: DeviceArray) -> np.ndarray:
        self._check_device(dev, "to_host")
        host = dev._a.copy(order="K")
        self.stats.to_host_calls += 1
        self.stats.to_host_bytes += host.nbytes
        return host

    def _new_module(self, source: str) -> Module:
        if self.sources is not None:
            self._keep_source(source)
        return _SimModule(self, source)

    def _keep_source(self, source: str) -> None:
        self.sources.mkdir(parents=True, exist_ok=True)
        path = self.sources / f"{hashlib.sha256(source.encode()).hexdigest()[:32]}.cu"
        if not path.exists():  # (written whole under another name, then renamed)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(source, encoding="utf-8")
            os.replace(tmp, path)

    def matmul(self, a: DeviceArray, b: DeviceArray, out: DeviceArray | None = None
               ) -> DeviceArray:
        self._check_device(a, "matmul")
        self._check_device(b, "matmul")
        self.stats.matmuls += 1
        if out is None:
            return DeviceArray._of(np.matmul(a._a, b._a))  # a 0-d array for two vectors
        self._check_device(out, "matmul's out")
        np.matmul(a._a, b._a, out=out._a)
        return out

    def gemm(self, a: DeviceArray, b: DeviceArray, c: DeviceArray, alpha: Any = 1.0,
             beta: Any = 1.0) -> DeviceArray:
        for x, what in ((a, "gemm's a"), (b, "gemm's b"), (c, "gemm's c")):
            self._check_device(x, what)
        if a.ndim != 2 or b.ndim != 2 or c.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"gemm: shapes {a.shape} @ {b.shape} into {c.shape}")
        self.stats.matmuls += 1
        alpha, beta = (float(s._a) if isinstance(s, DeviceArray) else float(s)
                       for s in (alpha, beta))
        product = np.matmul(a._a, b._a)
        c._a *= c.dtype.type(beta)
        c._a += c.dtype.type(alpha) * product
        return c

    def synchronize(self) -> None:
        """Nothing to wait for: every launch has finished when it returns."""
