"""The device runtime: what the CUDA backend asks of a device, and the CuPy implementation.

A ``Runtime`` allocates device arrays, copies them to and from the host, compiles a CUDA source
into a ``Module`` whose ``Kernel``s launch with cupy.RawKernel's call shape, multiplies
matrices (cuBLAS) and synchronizes. Two implementations share the interface:

- ``CupyRuntime``: CuPy on a real GPU (``THEON_FLAGS=device=cuda`` or ``cudaN``).
- ``SimulatorRuntime`` (``simulator.py``): a CPU stand-in whose arrays are host memory behind a
  type that is not a numpy array and whose kernels are the same CUDA text compiled with g++
  and run with CUDA's semantics (``THEON_FLAGS=device=cuda,cuda.simulator=True``).

``get_runtime()`` gives the process's runtime for the configured device. Importing this module
never imports CuPy: only building a ``CupyRuntime`` does.
"""
from __future__ import annotations

import abc
import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ...config import config

INSTALL_HINT = ('pip install -e ".[cuda]" (brings cupy-cuda12x), or run the device path on '
                "the CPU stand-in with THEON_FLAGS=device=cuda,cuda.simulator=True")


class DeviceUnavailable(RuntimeError):
    """``device=cuda`` cannot be honoured: CuPy is missing, or it sees no usable GPU."""


@dataclass
class RuntimeStats:
    """Counters of one runtime since it was made or last ``reset``: host-device copies made
    through ``to_device`` / ``to_host`` (calls and bytes), kernel launches, and ``matmul``
    calls (cuBLAS launches, counted apart from the generated kernels)."""

    to_device_calls: int = 0
    to_device_bytes: int = 0
    to_host_calls: int = 0
    to_host_bytes: int = 0
    launches: int = 0
    matmuls: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)


class Kernel(abc.ABC):
    """One ``__global__`` function of a Module: ``kernel(grid, block, args, shared_mem=0)``
    launches it, as cupy.RawKernel does (device arrays for pointer parameters, numpy scalars
    for the others, of the parameter's C type)."""

    @abc.abstractmethod
    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
        ...


class Module(abc.ABC):
    """A compiled CUDA source; ``get_function(name)`` gives its kernel ``name``."""

    @abc.abstractmethod
    def get_function(self, name: str) -> Kernel:
        ...


class Runtime(abc.ABC):
    """What the CUDA backend asks of a device. ``xp`` is an array namespace with numpy's
    spelling whose functions take and return device arrays (``array_type``)."""

    name: str
    array_type: type
    xp: Any
    device_id: int

    def __init__(self, device_id: int = 0):
        self.device_id = device_id
        self.stats = RuntimeStats()
        self._modules: dict[str, Module] = {}
        self._lock = threading.Lock()

    def is_device_array(self, x: Any) -> bool:
        """Whether ``x`` is this runtime's device array."""
        return isinstance(x, self.array_type)

    @abc.abstractmethod
    def to_device(self, host: np.ndarray) -> Any:
        """A device copy of ``host`` (counted in ``stats``)."""

    @abc.abstractmethod
    def to_host(self, dev: Any) -> np.ndarray:
        """A numpy copy of the device array ``dev`` (counted in ``stats``)."""

    def empty(self, shape: int | Sequence[int], dtype: Any) -> Any:
        """An uninitialised device array."""
        return self.xp.empty(shape, dtype)

    def zeros(self, shape: int | Sequence[int], dtype: Any) -> Any:
        """A device array of zeros."""
        return self.xp.zeros(shape, dtype)

    def module(self, source: str) -> Module:
        """``source`` (CUDA C) as a Module, made once per source in this runtime."""
        key = hashlib.sha256(source.encode()).hexdigest()
        found = self._modules.get(key)
        if found is None:
            with self._lock:
                found = self._modules.get(key)
                if found is None:
                    found = self._modules[key] = self._new_module(source)
        return found

    @abc.abstractmethod
    def _new_module(self, source: str) -> Module:
        ...

    @abc.abstractmethod
    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        """``a @ b`` of device arrays (cuBLAS on a GPU), into ``out`` if given."""

    @abc.abstractmethod
    def gemm(self, a: Any, b: Any, c: Any, alpha: Any = 1.0, beta: Any = 1.0) -> Any:
        """``c = alpha * (a @ b) + beta * c`` in place, for matrices (cuBLAS's gemm: the
        product accumulates into ``c``, which is read and written once); ``alpha`` and
        ``beta`` are numbers or 0-d device arrays."""

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait until the device has finished all the work queued so far."""

    def _check_device(self, x: Any, what: str) -> None:
        if not isinstance(x, self.array_type):
            raise TypeError(f"{what}: a device array ({self.array_type.__module__}."
                            f"{self.array_type.__name__}) is needed, got {type(x).__name__}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} device {self.device_id}>"


# -- CuPy ------------------------------------------------------------------------------------------

class _CupyKernel(Kernel):
    """A kernel found by name at its first launch: CuPy compiles a RawModule lazily, at the
    first ``get_function``, and caches the binary on disk itself."""

    def __init__(self, runtime: CupyRuntime, raw: Any, name: str):
        self._runtime, self._raw, self.name = runtime, raw, name
        self._fn = None

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
        fn = self._fn
        if fn is None:
            fn = self._fn = self._raw.get_function(self.name)
        self._runtime.stats.launches += 1
        fn(tuple(grid), tuple(block), tuple(args), shared_mem=shared_mem)


class _CupyModule(Module):
    def __init__(self, runtime: CupyRuntime, source: str):
        self._runtime = runtime
        # nothing compiles here: RawModule waits for its first get_function
        self._raw = runtime.cupy.RawModule(code=source, options=("-std=c++17",))
        self._kernels: dict[str, _CupyKernel] = {}

    def get_function(self, name: str) -> Kernel:
        found = self._kernels.get(name)
        if found is None:
            found = self._kernels[name] = _CupyKernel(self._runtime, self._raw, name)
        return found


class CupyRuntime(Runtime):
    """CuPy on GPU ``device_id``; DeviceUnavailable when CuPy is missing or sees no GPU."""

    name = "cupy"

    def __init__(self, device_id: int = 0):
        super().__init__(device_id)
        try:
            import cupy
        except ImportError as e:
            raise DeviceUnavailable(
                f"device=cuda{device_id or ''} needs CuPy, which does not import ({e}): "
                f"{INSTALL_HINT}") from e
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDARuntimeError, or a driver library that does not load
            raise DeviceUnavailable(
                f"device=cuda{device_id or ''}: CuPy finds no usable GPU "
                f"({type(e).__name__}: {e}); a machine with an NVIDIA GPU and its driver is "
                f"needed, or use the CPU stand-in: "
                f"THEON_FLAGS=device=cuda,cuda.simulator=True") from e
        if count < 1 or device_id >= count:
            raise DeviceUnavailable(
                f"device=cuda{device_id or ''}: CuPy sees {count} GPU(s), so there is no "
                f"device {device_id}; use the CPU stand-in with "
                f"THEON_FLAGS=device=cuda,cuda.simulator=True")
        try:  # the cupy wheel does not bring NVRTC: without it the first launch would fail
            cupy.cuda.nvrtc.getVersion()
        except Exception as e:
            raise DeviceUnavailable(
                f"device=cuda{device_id or ''}: CuPy cannot compile kernels, NVRTC does not "
                f"load ({type(e).__name__}: {e}); install a CUDA toolkit or "
                f'pip install "cupy-cuda12x[ctk]" (NVRTC from PyPI)') from e
        self.cupy = cupy
        self.xp = cupy
        self.array_type = cupy.ndarray
        self._device = cupy.cuda.Device(device_id)
        self._device.use()

    def to_device(self, host: np.ndarray) -> Any:
        if isinstance(host, self.array_type):
            raise TypeError("to_device: already a device array")
        host = np.asarray(host)
        dev = self.cupy.array(host, copy=True)
        self.stats.to_device_calls += 1
        self.stats.to_device_bytes += host.nbytes
        return dev

    def to_host(self, dev: Any) -> np.ndarray:
        self._check_device(dev, "to_host")
        host = dev.get()
        self.stats.to_host_calls += 1
        self.stats.to_host_bytes += host.nbytes
        return host

    def _new_module(self, source: str) -> Module:
        return _CupyModule(self, source)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        self._check_device(a, "matmul")
        self._check_device(b, "matmul")
        self.stats.matmuls += 1
        return self.cupy.matmul(a, b, out=out)

    def gemm(self, a: Any, b: Any, c: Any, alpha: Any = 1.0, beta: Any = 1.0) -> Any:
        for x, what in ((a, "gemm's a"), (b, "gemm's b"), (c, "gemm's c")):
            self._check_device(x, what)
        self.stats.matmuls += 1
        from cupy import cublas  # reads transposed views as they lie (no copy)
        return cublas.gemm("N", "N", a, b, out=c, alpha=alpha, beta=beta)

    def synchronize(self) -> None:
        self._device.synchronize()


# -- the process's runtime ---------------------------------------------------------------------

_RUNTIMES: dict[tuple[str, int], Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()
_DEVICE = re.compile(r"(cuda|gpu)(\d*)")


def parse_device(device: str) -> int:
    """The device number of a ``cuda``/``cudaN`` device name (``gpu``/``gpuN``, the old
    backend's, alike); ValueError for ``cpu`` or anything else."""
    found = _DEVICE.fullmatch(str(device))
    if found is None:
        raise ValueError(f"config.device={device!r} names no CUDA device (set device=cuda or "
                         f"cudaN for the device runtime)")
    return int(found.group(2) or 0)


def started_runtimes() -> list[Runtime]:
    """The runtimes this process has started (whose arrays may be anywhere in its values)."""
    return list(_RUNTIMES.values())


def get_runtime() -> Runtime:
    """The runtime for ``config.device`` (``cuda``, ``cudaN``) and ``config.cuda.simulator``:
    one instance per (kind, device) in the process. DeviceUnavailable when CuPy or a GPU is
    missing (and the simulator is not asked for); ValueError for ``device=cpu``."""
    device_id = parse_device(config.device)
    kind = "simulator" if getattr(config, "cuda__simulator", False) else "cupy"
    key = (kind, device_id)
    found = _RUNTIMES.get(key)
    if found is not None:
        return found
    with _RUNTIMES_LOCK:
        found = _RUNTIMES.get(key)
        if found is None:
            if kind == "simulator":
                from .simulator import SimulatorRuntime
                found = SimulatorRuntime(device_id)
            else:
                found = CupyRuntime(device_id)
            _RUNTIMES[key] = found
    return found
