"""numpy's own BLAS ``gemm``, for accumulating a product into an existing matrix.

numpy has no ``C = beta * C + alpha * A @ B`` that writes into ``C``; BLAS does. The gemm used
here is the one in the library numpy itself loaded (OpenBLAS in numpy's wheels), found by its
exported CBLAS symbol and called through ctypes. Not scipy's: scipy's wheels bring a second
OpenBLAS with its own thread pool, and alternating calls between two pools that each spin on
every core made a training step 4x slower on two cores (measured: ``np.dot`` then scipy's
``sgemm`` on 256x784x512 float32, 16 ms a pair against 3.3 ms). Where no such symbol is found
(another BLAS, another platform) :func:`gemm_into` returns False and the caller computes the
product and adds it.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# exported names of cblas_?gemm, ILP64 first (numpy's wheels): (prefix, suffix, integer type)
_NAMES = (("scipy_cblas_", "64_", ctypes.c_int64), ("cblas_", "64_", ctypes.c_int64),
          ("scipy_cblas_", "", ctypes.c_int), ("cblas_", "", ctypes.c_int))
_lock = threading.Lock()
_gemms: dict | None = None


def _library_paths() -> list[str]:
    """Paths of the BLAS libraries numpy loaded: from this process's memory map, else the
    libraries its wheel ships beside it."""
    import numpy.linalg  # noqa: F401  (loads the BLAS numpy links, if not loaded yet)
    found: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                name = os.path.basename(path).lower()
                if ("blas" in name or "mkl_rt" in name) and path not in found:
                    found.append(path)
    except OSError:  # not Linux
        pass
    here = os.path.dirname(os.path.dirname(np.__file__))
    for folder in ("numpy.libs", os.path.join("numpy", ".dylibs")):
        found += [p for p in sorted(glob.glob(os.path.join(here, folder, "*blas*")))
                  if p not in found]
    return found


def _bind(lib: ctypes.CDLL, dtype: np.dtype):
    letter = "s" if dtype == np.float32 else "d"
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    for prefix, suffix, integer in _NAMES:
        fn = getattr(lib, f"{prefix}{letter}gemm{suffix}", None)
        if fn is None:
            continue
        ptr, enum = ctypes.c_void_p, ctypes.c_int
        fn.argtypes = [enum, enum, enum, integer, integer, integer, scalar, ptr, integer, ptr,
                       integer, scalar, ptr, integer]
        fn.restype = None
        fn.int_bytes = ctypes.sizeof(integer)
        return fn
    return None


def _load() -> dict:
    gemms: dict = {}
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for dtype in (np.dtype("float32"), np.dtype("float64")):
            fn = _bind(lib, dtype)
            if fn is not None:
                gemms.setdefault(dtype, fn)
        if gemms:
            break
    return gemms


def available(dtype) -> bool:
    """Whether :func:`gemm_into` can run for ``dtype`` in this process."""
    global _gemms
    if _gemms is None:
        with _lock:
            if _gemms is None:
                _gemms = _load()
    return np.dtype(dtype) in _gemms


def gemm_address(dtype) -> tuple[int, int] | None:
    """``(address, int_bytes)`` of the cblas ``?gemm`` :func:`gemm_into` calls for ``dtype``
    (``int_bytes`` the width of its integer arguments: 8 for numpy's ILP64 OpenBLAS), for
    generated C that calls it directly (scan's C loop), or None where there is none."""
    if not available(dtype):
        return None
    fn = _gemms[np.dtype(dtype)]
    return ctypes.cast(fn, ctypes.c_void_p).value, fn.int_bytes


def _operand(m: np.ndarray):
    """``(trans, ld)`` reading ``m`` as a row-major BLAS operand, or None for a layout BLAS
    cannot take without a copy (a dimension of length 1 may have any stride)."""
    rows, cols = m.shape
    item = m.itemsize
    s0, s1 = m.strides
    if (cols == 1 or s1 == item) and (rows == 1 or (s0 % item == 0 and s0 // item >= cols)):
        return _NO_TRANS, s0 // item if rows > 1 else max(cols, 1)
    if (rows == 1 or s0 == item) and (cols == 1 or (s1 % item == 0 and s1 // item >= rows)):
        return _TRANS, s1 // item if cols > 1 else max(rows, 1)
    return None


def gemm_into(z: np.ndarray, alpha: float, x: np.ndarray, y: np.ndarray, beta: float) -> bool:
    """``z[...] = beta * z + alpha * x @ y`` by one call of numpy's BLAS, for 2-d float32 or
    float64 arrays of one dtype whose layouts BLAS reads as they are, ``z`` writeable and
    sharing no memory with ``x`` or ``y``. False (and ``z`` untouched) when it cannot."""
    dtype = z.dtype
    if not (z.ndim == x.ndim == y.ndim == 2 and x.dtype == y.dtype == dtype and
            available(dtype) and z.size and x.shape[1] and z.flags.writeable and
            z.shape == (x.shape[0], y.shape[1]) and x.shape[1] == y.shape[0]) or \
            np.may_share_memory(z, x) or np.may_share_memory(z, y):
        return False
    op_z = _operand(z)
    if op_z is not None and op_z[0] == _TRANS:  # a column-major z: z.T = y.T @ x.T instead
        z, x, y = z.T, y.T, x.T
        op_z = _operand(z)
    op_x, op_y = _operand(x), _operand(y)
    if op_x is None or op_y is None or op_z is None or op_z[0] != _NO_TRANS:
        return False
    m, k = x.shape
    n = y.shape[1]
    _gemms[dtype](_ROW_MAJOR, op_x[0], op_y[0], m, n, k, alpha, x.ctypes.data, op_x[1],
                  y.ctypes.data, op_y[1], beta, z.ctypes.data, op_z[1])
    return True


# -- the thread count of numpy's BLAS ----------------------------------------------------------
# Work that runs its own threads (a convolution over slices of its batch) holds BLAS at one
# thread meanwhile: two threads each calling a BLAS that splits every product across the
# cores again would fight over them.
_THREAD_NAMES = ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads64_",
                 "scipy_openblas_{}_num_threads", "openblas_{}_num_threads")
_threads_lock = threading.Lock()
_thread_functions: tuple | None = None  # (get, set) of numpy's BLAS, or () where not found
_one_thread_users = 0
_saved_threads = 1


def _after_fork_in_child() -> None:
    """A forked child starts with the lock unlocked, and gives BLAS's thread count back if the
    fork came while someone held it at one."""
    global _threads_lock, _one_thread_users
    _threads_lock = threading.Lock()
    if _one_thread_users and _thread_functions:
        _thread_functions[1](_saved_threads)
    _one_thread_users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def thread_functions() -> tuple:
    """``(get, set)`` of the thread count of numpy's BLAS (OpenBLAS), or () where not found."""
    global _thread_functions
    if _thread_functions is None:
        with _threads_lock:
            if _thread_functions is None:
                _thread_functions = _find_thread_functions()
    return _thread_functions


def _find_thread_functions() -> tuple:
    if not available("float64"):
        return ()
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _THREAD_NAMES:
            get = getattr(lib, name.format("get"), None)
            put = getattr(lib, name.format("set"), None)
            if get is not None and put is not None:
                get.argtypes, get.restype = [], ctypes.c_int
                put.argtypes, put.restype = [ctypes.c_int], None
                return get, put
    return ()


def threads() -> int:
    """The threads numpy's BLAS would use (while it is held at one, the count it had), or 1
    where its count cannot be set: then nobody may run threads of their own around it."""
    functions = thread_functions()
    if not functions:
        return 1
    with _threads_lock:
        return _saved_threads if _one_thread_users else functions[0]()


@contextmanager
def one_thread():
    """BLAS held at one thread inside (counted, so that overlapping holders restore the count
    only when the last one leaves); nothing where its count cannot be set."""
    global _one_thread_users, _saved_threads
    functions = thread_functions()
    if not functions:
        yield
        return
    get, put = functions
    with _threads_lock:
        if _one_thread_users == 0:
            _saved_threads = get()
            put(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                put(_saved_threads)
