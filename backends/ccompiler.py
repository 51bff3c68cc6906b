"""C source -> a shared library, compiled once with the system compiler, cached, loaded with ctypes.

``compile_library(source)`` returns a ``LoadedLibrary`` whose functions are looked up by name;
``compile_async(source)`` does the same on a background thread and returns a
``concurrent.futures.Future``; ``wait_all()`` waits for every pending compile. The source is C99,
compiled with ``config.cxx`` (``-x c``, so ``g++`` or ``clang++`` compile it as C too) and
``-O3 -fno-math-errno -ffp-contract=off -shared -fPIC`` (never ``-ffast-math``; ``openmp=True``
adds ``-fopenmp``). ``cxx=`` (empty) turns compiling off: ``compiler()`` is then None and
compiling raises ``CompilerUnavailable``.

The cache, in ``config.compiledir``; a key is the sha256 of the source, the compiler's real path
and ``--version`` text, the flags, the C library's version, theon's version and ``FORMAT``:

    <key>/       an entry: lib.so, meta.json (lib.so's sha256 and size, what built it), source.c
    <key>.lock   flock'ed by the process compiling <key>, so that others wait instead of compiling
    tmp-*        a compile in progress, or what a killed process left (removed once an hour old)

Why it is safe without trusting any process to finish: an entry is built in its own ``tmp-``
folder and published by one ``rename`` of the folder, which either happens whole or not at all,
and fails when the entry already exists (the loser then uses the winner's entry). Nothing named
``tmp-`` is ever loaded. Before loading, lib.so's size and sha256 are checked against meta.json;
an entry that fails (corrupt, truncated, a file where a folder should be, built for another key,
a symlink) is moved aside and rebuilt, with one warning line naming it. The lock only saves
duplicate work: where flock is missing (or on a file system that refuses it) two processes may
both compile, and both still succeed. meta.json is JSON; nothing here is unpickled. The checksum
guards against accidents (a full disk, a crash, a stray write), not against someone who can
write to the cache folder: they could change the source and the checksum alike.
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import hashlib
import json
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..config import VERSION, config

# Bump when the layout of an entry or the way a source is compiled changes: old entries then
# stop matching any key (and `python -m theon.cache clear` removes them).
FORMAT = 1
BASE_FLAGS = ("-std=c99", "-O3", "-fno-math-errno", "-ffp-contract=off", "-shared", "-fPIC",
              "-pipe")
# an undefined symbol fails the link, with the compiler's message, instead of dlopen later
_LINK_CHECK = ("-Wl,-z,defs",) if sys.platform.startswith("linux") else ()
LIB, META, SOURCE = "lib.so", "meta.json", "source.c"
STALE_SECONDS = 3600.0        # a tmp- item this old belongs to no live compile
LOCK_WAIT_SECONDS = 300.0     # past this, compile anyway: the lock is only an optimisation
COMPILE_TIMEOUT_SECONDS = 600.0
_META_MAX_BYTES = 1 << 16
# Held while a library is loaded, and by the CUDA stand-in while its kernels run: they keep
# their __shared__ arrays and thread indices in thread-local storage of their own library,
# which glibc allocates per thread on first use, and a dlopen in another thread at that moment
# (a kernel library finishing its background compile) corrupted the heap (with random grids,
# 2 of 2 runs of tests/backends/cuda on two workers under glibc's malloc checks; 0 of 2 with
# this lock, or with one OpenMP thread)
DLOPEN_LOCK = threading.RLock()

# what this process did, for tests and benchmarks: compiled, disk_hits, memory_hits, rebuilt
stats: Counter = Counter()


class CompileError(RuntimeError):
    """The compiler failed (``stderr`` holds its message) or could not be run."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int | None = None,
                 command: Sequence[str] = ()):
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode
        self.command = list(command)


class CompilerUnavailable(CompileError):
    """No C compiler: ``config.cxx`` is empty, not found, or does not run."""


class CacheWarning(UserWarning):
    """A cache entry was unusable and is rebuilt."""


@dataclass(frozen=True)
class Compiler:
    """The compiler ``config.cxx`` names: where PATH finds it, what that resolves to (both in
    the key), and its ``--version`` text."""

    command: str
    path: str
    real: str
    version: str


class LoadedLibrary:
    """A compiled library loaded in this process; its functions are found by name.

    Libraries are never unloaded (ctypes has no dlclose), so a function or an address stays
    valid for the life of the process.
    """

    def __init__(self, path: Path, key: str, name: str, cdll: ctypes.CDLL):
        self.path = path
        self.key = key
        self.name = name
        self.cdll = cdll
        # how it came, for profiles: "compiled" or "cache" (the disk), and the seconds taken
        self.how = "cache"
        self.seconds = 0.0

    def function(self, symbol: str, restype=None, argtypes: Sequence = (), *,
                 keep_gil: bool = False) -> Callable:
        """The C function ``symbol`` as a ctypes function object with the given signature.

        The call releases the GIL, so that other threads run during a long kernel;
        ``keep_gil=True`` does not (about 30 ns less per call, for kernels on tiny arrays).
        """
        if keep_gil:
            return ctypes.PYFUNCTYPE(restype, *argtypes)(self.address(symbol))
        try:
            fn = self.cdll[symbol]  # a fresh object: its signature is not shared with others
        except AttributeError:
            raise KeyError(f"{self.name}: no function {symbol!r} in {self.path}") from None
        fn.restype = restype
        fn.argtypes = list(argtypes)
        return fn

    def address(self, symbol: str) -> int:
        """The address of ``symbol`` (for a caller that builds its own function pointer)."""
        try:
            return ctypes.cast(self.cdll[symbol], ctypes.c_void_p).value
        except AttributeError:
            raise KeyError(f"{self.name}: no function {symbol!r} in {self.path}") from None

    def __repr__(self) -> str:
        return f"<LoadedLibrary {self.name} {self.key[:12]} at {self.path}>"


# -- the compiler ---------------------------------------------------------------------------------

_COMPILERS: dict[str, Compiler | str] = {}  # config.cxx -> Compiler, or why there is none


def compiler() -> Compiler | None:
    """The compiler ``config.cxx`` names, or None when compiling is off or impossible."""
    found = _find_compiler()
    return found if isinstance(found, Compiler) else None


def _find_compiler() -> Compiler | str:
    command = config.cxx
    found = _COMPILERS.get(command)
    if found is None:
        found = _COMPILERS[command] = _probe(command)
    return found


def _probe(command: str) -> Compiler | str:
    if not command:
        return "compiling C is off (config.cxx is empty: THEON_FLAGS=cxx=)"
    where = shutil.which(command)
    if where is None:
        return f"the C compiler config.cxx={command!r} is not found on PATH"
    # run as found, not resolved: a wrapper such as ccache behaves by the name it is called by
    path = os.path.abspath(where)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        return f"the C compiler {path} cannot be read: {exc}"
    # `--version` costs a process start (4 ms): remembered in the cache folder per binary, by
    # its size and modification time, so that a cached function loads without running it
    identity = f"{path}|{real}|{st.st_size}|{st.st_mtime_ns}"
    version = _remembered("compiler-version", identity)
    if version is None:
        try:
            # in the C locale, so that the key does not change with the user's language
            done = run_tool([path, "--version"], timeout=60, env={"LC_ALL": "C"})
        except (OSError, subprocess.SubprocessError) as exc:
            return f"the C compiler {path} does not run: {exc}"
        if done.returncode != 0:
            return f"`{path} --version` failed: {done.stderr.strip()}"
        version = done.stdout.strip()
        _remember("compiler-version", identity, version)
    return Compiler(command, path, real, version)


def find_library(name: str) -> str | None:
    """``ctypes.util.find_library(name)``, remembered in the cache folder per C library
    version: the lookup runs ldconfig or the compiler (2-3 ms), at every process start."""
    import ctypes.util
    identity = f"{name}|{_libc()}"
    found = _remembered("library", identity)
    if found is None:
        found = ctypes.util.find_library(name) or ""
        _remember("library", identity, found)
    return found or None


# -- remembered probes: small facts about this machine, kept in the cache folder --------------

PROBES = "probes.json"
_PROBES_MAX_BYTES = 1 << 20
_probes: dict[str, dict] = {}  # cache folder -> its probes, read once


def _probe_file() -> Path:
    return cache_dir() / PROBES


def _read_probes() -> dict:
    where = str(cache_dir())
    memo = _probes.get(where)
    if memo is None:
        try:
            with open(_probe_file(), "rb") as f:
                memo = json.loads(f.read(_PROBES_MAX_BYTES))
            if not isinstance(memo, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in memo.items()):
                memo = {}  # not ours, or damaged: probe again, and write it anew
        except (OSError, ValueError):
            memo = {}
        _probes[where] = memo
    return memo


def _remembered(what: str, identity: str) -> str | None:
    return _read_probes().get(f"{what}:{identity}")


def _remember(what: str, identity: str, value: str) -> None:
    """Add a fact to the probe file: written whole to a temporary file, then renamed, so a
    reader sees the old file or the new one; two writers at once lose one fact, which is
    probed again next time."""
    memo = _read_probes()
    memo[f"{what}:{identity}"] = value
    try:
        root = cache_dir()
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="tmp-probes-", dir=root)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(memo, f)
        os.replace(tmp, _probe_file())
    except OSError:  # a read-only cache folder: probe again in each process
        pass


def _require_compiler() -> Compiler:
    found = _find_compiler()
    if isinstance(found, str):
        raise CompilerUnavailable(found)
    return found


# -- keys -----------------------------------------------------------------------------------------

def _libc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return ""


def _flags(flags: Sequence[str], openmp: bool) -> tuple:
    if isinstance(flags, str) or not all(isinstance(f, str) for f in flags):
        raise TypeError(f"flags must be a sequence of strings, got {flags!r}")
    return BASE_FLAGS + _LINK_CHECK + (("-fopenmp",) if openmp else ()) + tuple(flags)


def cache_key(source: str, cc: Compiler, flags: Sequence[str]) -> str:
    """The sha256 (hex) naming the entry of ``source`` built by ``cc`` with ``flags``."""
    h = hashlib.sha256()
    parts = [f"theon-kernel-cache/{FORMAT}", VERSION, cc.path, cc.real, cc.version,
             _libc()]
    if any("native" in f for f in flags):  # -march=native: the library fits this CPU only
        parts.append(_cpu_identity())
    parts += list(flags)
    parts.append(source)
    for part in parts:  # length-prefixed, so that no two lists of parts hash alike
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _cpu_identity() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        import platform
        return platform.processor()


# -- compile_library ------------------------------------------------------------------------------

_LOADED: dict[tuple, LoadedLibrary] = {}      # (compiledir, key) -> library
_LOCK = threading.Lock()                      # guards _KEY_LOCKS
_KEY_LOCKS: dict[tuple, threading.Lock] = {}  # one compile per key at a time in this process


def run_tool(command: Sequence[str], *, cwd: str | Path | None = None,
             timeout: float | None = None, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess:
    """Run a compiler (or ``--version``) and capture its text output.

    The child always gets an explicit environment, a snapshot of ``os.environ`` (plus ``env``).
    Left to inherit, it would read the C ``environ`` array while it starts, and a putenv in
    another thread (``os.environ[...] = ...``, pytest's monkeypatch) may reallocate and free
    that array meanwhile: execve then fails with EFAULT, "[Errno 14] Bad address", which our
    background kernel builds met now and then."""
    return subprocess.run(list(command), capture_output=True, text=True, check=False, cwd=cwd,
                          timeout=timeout, env={**os.environ, **(env or {})})


def compile_library(source: str, *, flags: Sequence[str] = (), openmp: bool = False,
                    name: str = "kernels") -> LoadedLibrary:
    """Compile ``source`` (C99) into a shared library, or take it from the cache, and load it.

    ``flags`` go after ``BASE_FLAGS`` (a later ``-O2`` wins; ``-l`` libraries are fine).
    ``name`` labels the library in messages and in ``python -m theon.cache list``. Raises
    ``CompileError`` (with the compiler's ``stderr``) when the source does not compile or the
    cache cannot be written, and ``CompilerUnavailable`` when there is no compiler.
    """
    slot, build = _prepare(source, flags, openmp, name)
    lib = _LOADED.get(slot)
    if lib is not None:
        stats["memory_hits"] += 1
        return lib
    return build()


def compile_async(source: str, *, flags: Sequence[str] = (), openmp: bool = False,
                  name: str = "kernels", now: bool = False) -> Future:
    """``compile_library`` on a background thread: a Future with ``done()``, ``result(timeout)``
    and ``add_done_callback``. A library already loaded gives a Future that is already done;
    asking again for a library while it compiles gives the same Future. The settings
    (``config.cxx``, ``config.compiledir``) are read now, not when the job runs. ``now=True``
    (a caller about to wait for it) compiles in the calling thread, not behind the compiles
    queued before it, and returns a Future already done. With ``config.background_kernels``
    off, a library not loaded and not asked for ``now`` is not compiled: the Future is
    cancelled, as a queued compile that ``cancel_pending`` dropped."""
    fut: Future
    try:
        slot, build = _prepare(source, flags, openmp, name)
    except (CompileError, TypeError) as exc:
        fut = Future()
        fut.set_exception(exc)
        return fut
    lib = _LOADED.get(slot)
    if lib is not None:
        stats["memory_hits"] += 1
        fut = Future()
        fut.set_result(lib)
        return fut
    if now:
        fut = Future()
        try:
            fut.set_result(build())
        except BaseException as exc:  # the caller gets it from result()
            fut.set_exception(exc)
        return fut
    if not config.background_kernels:
        fut = Future()
        fut.cancel()  # as a queued compile dropped before it ran (see cancel_pending)
        return fut
    return _POOL.submit(slot, build)


def cache_dir() -> Path:
    """The cache folder: ``config.compiledir``, absolute (``~`` expanded)."""
    return Path(config.compiledir).expanduser().absolute()


def forget() -> None:
    """Drop this process's memo of loaded libraries (they stay loaded): the next
    ``compile_library`` reads the disk cache again. For tests and measurements."""
    _LOADED.clear()


def _prepare(source: str, flags: Sequence[str], openmp: bool,
             name: str) -> tuple[tuple, Callable[[], LoadedLibrary]]:
    """The memo slot of a library, and the job that loads or builds it (settings read now)."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    cc = _require_compiler()
    argv = _flags(flags, openmp)
    key = cache_key(source, cc, argv)
    root = cache_dir()
    slot = (str(root), key)

    def build() -> LoadedLibrary:
        with _LOCK:
            key_lock = _KEY_LOCKS.setdefault(slot, threading.Lock())
        with key_lock:
            lib = _LOADED.get(slot)
            if lib is None:
                lib = _LOADED[slot] = _load_or_build(root, key, source, cc, argv, name)
            else:
                stats["memory_hits"] += 1
            return lib

    return slot, build


def _load_or_build(root: Path, key: str, source: str, cc: Compiler, argv: tuple,
                   name: str) -> LoadedLibrary:
    entry = root / key
    start = time.perf_counter()
    if _verify(entry, key)[0] is not None:  # the common case, without the lock
        lib = _try_load(entry, key, name)
        if lib is not None:
            stats["disk_hits"] += 1
            # the time a cached library takes to load (checksum, dlopen), for benchmarks
            lib.seconds = time.perf_counter() - start
            stats["disk_load_seconds"] += lib.seconds
            return lib
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CompileError(f"{name}: cannot create the kernel cache {root}: {exc}") from None
    with _file_lock(root / f"{key}.lock"):
        for _ in range(3):
            lib_path, why = _verify(entry, key)
            if lib_path is not None:  # another process built it while we waited
                lib = _try_load(entry, key, name)
                if lib is not None:
                    stats["disk_hits"] += 1
                    lib.seconds = time.perf_counter() - start
                    return lib
                why = "not loadable by this process"
            if why is not None:
                _discard(entry, why)
            _clean_stale(root)
            if _build(root, entry, key, source, cc, argv, name):
                stats["compiled"] += 1
                lib = _try_load(entry, key, name)
                if lib is None:
                    raise CompileError(f"{name}: the library just built, {entry / LIB}, "
                                       f"does not load: {_load_error(entry)}")
                lib.how, lib.seconds = "compiled", time.perf_counter() - start
                return lib
            # else another process published this key first, without our lock: verify theirs
    raise CompileError(f"{name}: the cache entry {entry} keeps being replaced by unusable ones")


def _verify(entry: Path, key: str) -> tuple[Path | None, str | None]:
    """(lib.so's path, None) for a sound entry, (None, None) for none, (None, why) else."""
    try:
        if not stat.S_ISDIR(entry.lstat().st_mode):
            return None, "not a folder"
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    meta_path, lib_path = entry / META, entry / LIB
    try:
        if not (stat.S_ISREG(meta_path.lstat().st_mode)
                and stat.S_ISREG(lib_path.lstat().st_mode)):
            return None, "foreign (a symlink or special file inside)"
        raw = meta_path.read_bytes()
        if len(raw) > _META_MAX_BYTES:
            return None, "foreign (its meta.json is too large)"
        meta = json.loads(raw)
        data = lib_path.read_bytes()
    except FileNotFoundError as exc:
        return None, f"incomplete (no {Path(exc.filename).name})"
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
        return None, "foreign (its meta.json is not this key's)"
    if len(data) != meta.get("size"):
        return None, f"truncated ({len(data)} bytes, {meta.get('size')} expected)"
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return None, "corrupt (lib.so does not match its checksum)"
    return lib_path, None


def _try_load(entry: Path, key: str, name: str) -> LoadedLibrary | None:
    try:
        with DLOPEN_LOCK:
            cdll = ctypes.CDLL(str(entry / LIB))
    except OSError:
        return None
    try:  # an entry's time is its last use: `clear --older-than` drops the unused ones
        os.utime(entry)
    except OSError:
        pass
    return LoadedLibrary(entry / LIB, key, name, cdll)


def _load_error(entry: Path) -> str:
    try:
        with DLOPEN_LOCK:
            ctypes.CDLL(str(entry / LIB))
    except OSError as exc:
        return str(exc)
    return "unknown error"


def _discard(entry: Path, why: str) -> None:
    warnings.warn(f"theon: the kernel cache entry {entry} is {why}; rebuilding it",
                  CacheWarning, stacklevel=5)  # compile_library's caller
    stats["rebuilt"] += 1
    aside = entry.with_name(f"tmp-discarded-{entry.name[:16]}-{os.getpid()}-{time.time_ns()}")
    try:
        os.rename(entry, aside)  # whole, so that no reader sees it half removed
    except FileNotFoundError:
        return
    _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _build(root: Path, entry: Path, key: str, source: str, cc: Compiler, argv: tuple,
           name: str) -> bool:
    """Compile into a tmp- folder and publish it as ``entry``; False if another process
    published it first. Raises CompileError with the compiler's stderr."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"tmp-{key[:16]}-", dir=root))
    except OSError as exc:
        raise CompileError(f"{name}: cannot write in the kernel cache {root}: {exc}") from None
    try:
        src, out = tmp / SOURCE, tmp / LIB
        src.write_text(source, encoding="utf-8")
        # run in the folder, so that messages name source.c rather than a temporary path
        command = [cc.path, "-o", LIB, "-x", "c", SOURCE, "-x", "none", *argv, "-lm"]
        start = time.perf_counter()
        try:
            done = run_tool(command, timeout=COMPILE_TIMEOUT_SECONDS, cwd=tmp)
        except (OSError, subprocess.SubprocessError) as exc:
            raise CompileError(f"{name}: running {cc.path} failed: {exc}",
                               command=command) from None
        if done.returncode != 0:
            raise CompileError(f"{name}: {cc.command} failed (exit {done.returncode}):\n"
                               f"{done.stderr.strip()}", stderr=done.stderr,
                               returncode=done.returncode, command=command)
        data = out.read_bytes()
        meta = {"format": FORMAT, "key": key, "name": name, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "compiler": cc.path,
                "version": cc.version.splitlines()[0] if cc.version else "",
                "flags": list(argv), "created": time.time(),
                "seconds": round(time.perf_counter() - start, 4)}
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, entry)  # the publication: all of the entry at once, or nothing
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                return False
            raise CompileError(f"{name}: cannot publish {entry}: {exc}") from None
        return True
    except OSError as exc:
        raise CompileError(f"{name}: cannot write in the kernel cache {root}: {exc}") from None
    finally:
        _remove(tmp)  # nothing is left there after the rename


def _clean_stale(root: Path) -> None:
    now = time.time()
    try:
        items = list(os.scandir(root))
    except OSError:
        return
    for item in items:
        if item.name.startswith("tmp-"):
            try:
                if now - item.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                    _remove(Path(item.path))
            except OSError:
                pass


@contextmanager
def _file_lock(path: Path):
    """An exclusive flock on ``path``, waited for at most LOCK_WAIT_SECONDS; nothing where
    flock is missing or refused (the cache is safe without it)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        pause = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            except OSError:  # e.g. ENOLCK on a network file system
                break
        yield  # the lock goes with the descriptor, also when the process is killed
    finally:
        os.close(fd)


# -- background compiles --------------------------------------------------------------------------

POOL_SIZE = max(1, min(4, (os.cpu_count() or 2) // 2))  # half the cores stay with the user


class _Pool:
    """Daemon threads running compile jobs: a compile still running when the interpreter
    exits is abandoned (its tmp- folder is cleaned later) instead of delaying the exit."""

    def __init__(self):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list = []
        self.pending: dict[tuple, Future] = {}
        self.lock = threading.Lock()

    def submit(self, slot: tuple, job: Callable[[], LoadedLibrary]) -> Future:
        with self.lock:
            fut = self.pending.get(slot)
            if fut is not None:
                return fut
            fut = self.pending[slot] = Future()
            self.jobs.put((slot, fut, job))
            if len(self.threads) < POOL_SIZE:
                t = threading.Thread(target=self._work, name="theon-cc", daemon=True)
                self.threads.append(t)
                t.start()
        return fut

    def _work(self) -> None:
        while True:
            item = self.jobs.get()
            if item is None:  # the interpreter is exiting (see _stop_workers)
                return
            slot, fut, job = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(job())
                except BaseException as exc:  # the caller gets it from result()
                    fut.set_exception(exc)
            with self.lock:
                if self.pending.get(slot) is fut:
                    del self.pending[slot]

    def futures(self) -> list:
        with self.lock:
            return list(self.pending.values())


_POOL = _Pool()


def _stop_workers() -> None:
    """At exit: drop the compiles not started and let each worker finish its current one
    (a few seconds at most) and end, so that no thread runs Python code (loading a library,
    binding its entries) while the interpreter tears itself down."""
    pool = _POOL
    for fut in pool.futures():
        fut.cancel()
    for _ in pool.threads:
        pool.jobs.put(None)
    for t in pool.threads:
        t.join(timeout=10)


atexit.register(_stop_workers)


def _after_fork_in_child() -> None:
    # the parent's threads do not exist here: start afresh (the parent's futures stay its own)
    global _POOL, _LOCK
    _POOL = _Pool()
    _LOCK = threading.Lock()
    _KEY_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def wait_all(timeout: float | None = None) -> None:
    """Wait until no background compile is pending, those queued meanwhile included; raises
    TimeoutError after ``timeout`` seconds. Errors stay with each Future."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        futures = _POOL.futures()
        if not futures:
            return
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if futures_wait(futures, timeout=left).not_done:
            raise TimeoutError(f"{len(_POOL.futures())} C compiles still pending after "
                               f"{timeout} s")
        time.sleep(0.0005)  # a worker takes its finished Future off the list just after


def cancel_pending(timeout: float | None = None) -> int:
    """Drop the background compiles not started yet (their Futures end cancelled, and the
    functions waiting for them stay on numpy) and wait for those running. Returns how many
    were dropped. For a process about to exit, or a test run ending."""
    dropped = 0
    for fut in _POOL.futures():
        if fut.cancel():
            dropped += 1
    wait_all(timeout)
    return dropped


# -- the cache as a whole (python -m theon.cache) ------------------------------------------------

@dataclass
class Entry:
    """One item of the cache folder, as ``python -m theon.cache list`` shows it."""

    path: Path
    kind: str          # "entry", "temporary", "lock", "probes" or "other" (not theon's: left
    #                    alone)
    size: int          # bytes, a folder's files summed
    age: float         # seconds since last use (an entry) or last change
    name: str = ""     # the label given to compile_library
    ok: bool = True    # an entry whose meta.json reads as one (not a full checksum)


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _kind(name: str) -> str:
    if _is_key(name):
        return "entry"
    if name == PROBES:
        return "probes"
    if name.startswith("tmp-"):
        return "temporary"
    if name.endswith(".lock") and _is_key(name[:-5]):
        return "lock"
    return "other"


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def entries(root: str | Path | None = None) -> list[Entry]:
    """Everything in the cache folder (``config.compiledir`` unless given), oldest first."""
    root = cache_dir() if root is None else Path(root)
    now = time.time()
    found = []
    try:
        items = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    for item in items:
        path = Path(item.path)
        kind = _kind(item.name)
        try:
            age = now - item.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        label, ok = "", True
        if kind == "entry":
            try:
                meta = json.loads((path / META).read_bytes()[:_META_MAX_BYTES])
                label = str(meta.get("name", ""))
                ok = meta.get("key") == item.name and meta.get("format") == FORMAT
            except (OSError, ValueError, AttributeError):
                ok = False
        found.append(Entry(path, kind, _size(path), max(0.0, age), label, ok))
    found.sort(key=lambda e: -e.age)
    return found


def clear(older_than_days: float | None = None,
          root: str | Path | None = None) -> list[Entry]:
    """Remove the cache's entries and lock files (only those older than ``older_than_days``, an
    entry's age being the time since its last use, if given) and its temporary items older than
    STALE_SECONDS (younger ones may be compiles in progress). What is not theon's is left
    alone. Returns what was removed."""
    removed = []
    for item in entries(root):
        if item.kind == "other" or (item.kind == "temporary" and item.age <= STALE_SECONDS):
            continue
        if older_than_days is not None and item.kind != "temporary":
            if item.age < older_than_days * 86400.0:
                continue
        if item.kind == "entry":  # moved aside first: no reader sees half an entry
            aside = item.path.with_name(f"tmp-cleared-{item.path.name[:16]}-{os.getpid()}")
            try:
                os.rename(item.path, aside)
            except OSError:
                continue
            _remove(aside)
        else:
            _remove(item.path)
        removed.append(item)
    return removed
