"""Testing CUDA kernel text without a GPU: NVRTC compiles it, g++ runs it on the CPU.

Two tools, as the team's GPU study (shared/gpu/REPORT.md) recommends:

- ``Nvrtc``: NVIDIA's runtime compiler from the ``nvidia-cuda-nvrtc`` wheel, through ctypes (no
  cupy, no driver): source -> PTX or cubin for any architecture, with the compiler's log.
- ``CpuModule``: the same source compiled by theon's CUDA simulator (g++ with
  ``backends/cuda/theon_cuda_cpu.h`` force-included, which turns ``__global__`` functions into
  C++ and runs each CUDA thread of a launch on the CPU); ``get_function(name)(grid, block,
  args)`` has cupy.RawKernel's call shape, with numpy arrays for pointers (the simulator's
  runtime takes its device arrays instead) and numpy scalars for the scalar parameters.

Nvrtc is not part of theon: only its tests use it.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from theon.backends.cuda import simulator

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
GATE_ARCHS = ("sm_80", "sm_90")


def gate_problem(nvrtc: Nvrtc, source: str, arch: str) -> str | None:
    """What keeps a device module's ``source`` from passing the gate for ``arch``, or None:
    NVRTC must compile it with an empty log but for ptxas's resource report (``-Xptxas=-v``),
    which must show no warning, no spill and no stack frame."""
    ok, log, _ = nvrtc.compile(source, (f"-arch={arch}", "-Xptxas=-v"))
    if not ok:
        return f"does not compile for {arch}:\n{log}"
    report = [line for line in log.splitlines() if line.strip()]
    if not all(line.startswith("ptxas") and "warning" not in line.lower() for line in report):
        return f"compiles for {arch} with warnings:\n{log}"
    if "spill stores" not in log or not all(
            "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" in line
            for line in report if "spill" in line):
        return f"spills or uses a stack frame on {arch}:\n{log}"
    return None


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
# theon's CUDA simulator builds the text (backends/cuda/simulator.py and its header); these
# tests call its kernels on numpy arrays directly, without a runtime's device arrays.

CXX = simulator.cxx()
FLAGS = simulator.FLAGS
HEADER = simulator.HEADER


def build(source: str, cache: Path, *, quick: bool = False) -> Path:
    """``source`` built for the CPU into ``cache`` (see ``simulator.build``)."""
    return simulator.build(source, cache, quick=quick)


class CpuModule:
    """A library of kernels built by ``build``; ``get_function`` as in cupy.RawModule."""

    def __init__(self, library: Path):
        self.lib = simulator.load(library)

    def get_function(self, name: str) -> CpuKernel:
        return CpuKernel(self.lib, name)


class CpuKernel:
    """One kernel: ``kernel(grid, block, args, mode=0)`` runs every thread of the launch, with
    numpy arrays for the pointers (their first elements) and numpy scalars for the values;
    ``mode``: the simulator's schedule bits (FORCE_FIBERS, REVERSE)."""

    def __init__(self, lib, name: str):
        self.fn = simulator.launcher(lib, name)  # AttributeError when there is no such kernel
        self.lib, self.name = lib, name

    def __call__(self, grid: Sequence[int], block: Sequence[int], args: Sequence,
                 mode: int = 0) -> None:
        values = []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):  # a device pointer: the address of element 0
                values.append(a.ctypes.data)
            elif isinstance(a, np.generic):
                values.append(a)
            else:
                raise TypeError(f"argument {i}: a numpy array or numpy scalar, not {type(a)}")
        # the arrays stay referenced by ``args`` until the launch returns
        simulator.launch(self.lib, self.fn, self.name, grid, block, values, 0, mode)
