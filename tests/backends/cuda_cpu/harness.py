"""Testing CUDA kernel text without a GPU: NVRTC compiles it, g++ runs it on the CPU.

Two tools, as the team's GPU study (shared/gpu/REPORT.md) recommends:

- ``Nvrtc``: NVIDIA's runtime compiler from the ``nvidia-cuda-nvrtc`` wheel, through ctypes (no
  cupy, no driver): source -> PTX or cubin for any architecture, with the compiler's log.
- ``CpuModule``: the same source compiled by g++ with ``theon_cuda_cpu.h`` (copied from the
  study) force-included, which turns ``__global__`` functions into C++ and runs each CUDA thread
  of a launch on the CPU; ``get_function(name)(grid, block, args)`` has cupy.RawKernel's call
  shape (numpy arrays for pointers, numpy scalars for the scalar parameters).

Neither is part of theon: only its tests use them.
"""
from __future__ import annotations

import ctypes
import fcntl
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HEADER = HERE / "theon_cuda_cpu.h"

# -- NVRTC ---------------------------------------------------------------------------------------


class NvrtcError(RuntimeError):
    pass


def _wheel_libraries() -> tuple[str, str] | str:
    """(libnvrtc, libnvrtc-builtins) of the nvidia-cuda-nvrtc wheel, or why there are none."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return "the nvidia-cuda-nvrtc wheel is not installed (pip install -e '.[test]')"
    for base in spec.submodule_search_locations:
        lib = os.path.join(base, "cu13", "lib")
        main = os.path.join(lib, "libnvrtc.so.13")
        builtins = sorted(glob.glob(os.path.join(lib, "libnvrtc-builtins.so.13.*")))
        if os.path.exists(main) and builtins:
            return main, builtins[0]
    return "the nvidia-cuda-nvrtc wheel has no libnvrtc.so.13 (a CUDA 13 Linux wheel is needed)"


class Nvrtc:
    """libnvrtc loaded through ctypes."""

    def __init__(self, main: str, builtins: str):
        # libnvrtc dlopens its builtins by soname, which is not on the loader's path: load
        # them first, globally, so that the dlopen finds them already loaded
        self._builtins = ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
        lib = self.lib = ctypes.CDLL(main)
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "version")
        self.version = (major.value, minor.value)

    def _check(self, code: int, what: str) -> None:
        if code:
            raise NvrtcError(f"nvrtc {what}: {self.lib.nvrtcGetErrorString(code).decode()}")

    def compile(self, source: str, options: Sequence[str], name: str = "kernels.cu"
                ) -> tuple[bool, str, bytes]:
        """(compiled, the log, PTX for ``-arch=compute_XX`` or a cubin for ``sm_XX``)."""
        lib = self.lib
        prog = ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(),
                                           0, None, None), "createProgram")
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            code = lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self._check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "log size")
            log = ctypes.create_string_buffer(size.value)
            self._check(lib.nvrtcGetProgramLog(prog, log), "log")
            if code:
                return False, log.value.decode(errors="replace"), b""
            ptx = any(o.startswith(("-arch=compute_", "--gpu-architecture=compute_"))
                      for o in options)
            get_size, get = ((lib.nvrtcGetPTXSize, lib.nvrtcGetPTX) if ptx
                             else (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN))
            self._check(get_size(prog, ctypes.byref(size)), "output size")
            out = ctypes.create_string_buffer(size.value)
            self._check(get(prog, out), "output")
            return True, log.value.decode(errors="replace"), out.raw
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


_NVRTC: list = []


def nvrtc() -> Nvrtc | str:
    """The loaded NVRTC, or why it cannot be loaded (a reason to skip)."""
    if not _NVRTC:
        found = _wheel_libraries()
        if isinstance(found, str):
            _NVRTC.append(found)
        else:
            try:
                _NVRTC.append(Nvrtc(*found))
            except (OSError, NvrtcError) as e:
                _NVRTC.append(f"libnvrtc from the wheel does not load: {e}")
    return _NVRTC[0]


# -- running CUDA text on the CPU ----------------------------------------------------------------

CXX = os.environ.get("CXX") or shutil.which("g++")
# -ffp-contract=off: no fused multiply-adds, so results do not depend on the host's FMA units;
# no -fopenmp: blocks run one after another (an elementwise kernel gains no coverage from
# parallel blocks, and the test process keeps its own threads).
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-ffp-contract=off",
         "-Wall", "-Werror", "-Wno-unknown-pragmas", "-Wno-unused-function", "-Wno-unused-variable")
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')
_VERSION: list[str] = []


def _compiler_version() -> str:
    if not _VERSION:
        _VERSION.append(subprocess.run([CXX, "--version"], capture_output=True, text=True,
                                       check=False).stdout)
    return _VERSION[0]


# Put before the kernels of a ``quick`` build: they compile without optimisation, the header
# (the threads' scheduler, before them) with it.
_QUICK = '#pragma GCC optimize ("O0")\n'


def build(source: str, cache: Path, *, quick: bool = False) -> Path:
    """``source`` (CUDA kernels) compiled for the CPU into a shared library in ``cache``,
    keyed by the hash of what goes in; a process finding another building the same key waits
    for it (flock) instead of compiling twice. ``quick``: the kernels unoptimised, which
    builds a reduction kernel about 5x faster (0.03 against 0.15 s), for tests whose arrays
    are small."""
    if CXX is None:
        raise RuntimeError("no C++ compiler (g++) found")
    text = (_QUICK if quick else "") + source + "\n" + "".join(
        f"THEON_CPU_EXPORT({k})\n" for k in _KERNEL.findall(source))
    header = HEADER.read_bytes()
    key = hashlib.sha256(b"\0".join([text.encode(), header, " ".join(FLAGS).encode(),
                                     CXX.encode(), _compiler_version().encode()])
                         ).hexdigest()[:32]
    cache.mkdir(parents=True, exist_ok=True)
    lib = cache / f"cuda_cpu_{key}.so"
    with open(cache / f"cuda_cpu_{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            with tempfile.TemporaryDirectory() as tmp:
                cu = Path(tmp) / "kernels.cu"
                cu.write_text(text)
                out = Path(tmp) / "kernels.so"
                cmd = [CXX, *FLAGS, "-include", str(HEADER), "-x", "c++", str(cu), "-o",
                       str(out)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode:
                    raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[:6000]}")
                os.replace(out, lib)  # published whole, never half-written
    return lib


class CpuModule:
    """A library of kernels built by ``build``; ``get_function`` as in cupy.RawModule."""

    def __init__(self, library: Path):
        self.lib = ctypes.CDLL(str(library))
        self.lib.theon_cpu_last_error.restype = ctypes.c_char_p

    def get_function(self, name: str) -> CpuKernel:
        return CpuKernel(self.lib, name)


class CpuKernel:
    """One kernel: ``kernel(grid, block, args)`` runs every thread of the launch."""

    def __init__(self, lib: ctypes.CDLL, name: str):
        self.fn = getattr(lib, "theon_launch_" + name)
        self.fn.restype = ctypes.c_int
        self.fn.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_ulong, ctypes.c_void_p, ctypes.c_int]
        self.lib, self.name = lib, name

    def __call__(self, grid: Sequence[int], block: Sequence[int], args: Sequence,
                 mode: int = 0) -> None:
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        keep = []  # what the pointers point at lives until the call returns
        ptrs = (ctypes.c_void_p * max(1, len(args)))()
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):  # a device pointer: the address of element 0
                held = ctypes.c_void_p(a.ctypes.data)
                ptrs[i] = ctypes.addressof(held)
            elif isinstance(a, np.generic):  # a scalar of the C type of its numpy type
                held = np.array(a)
                ptrs[i] = held.ctypes.data
            else:
                raise TypeError(f"argument {i}: a numpy array or numpy scalar, not {type(a)}")
            keep.append(held)
        if self.fn(*grid, *block, 0, ptrs, mode):
            raise RuntimeError(f"{self.name}: {self.lib.theon_cpu_last_error().decode()}")
