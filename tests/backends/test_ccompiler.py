"""backends/ccompiler.py: compiling C once, the kernel cache and its faults, background compiles,
and ``python -m theon.cache``.

Every test works in its own compiledir (the ``cachedir`` fixture). Faults are made on a copy of
an entry that this process has never loaded, so that a load of the faulty file would really
reach dlopen (which otherwise hands back the library already loaded from that path); the
``loads`` fixture records the checksum of every file given to dlopen.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from theon import config
from theon.backends import ccompiler as C

pytestmark = [pytest.mark.host_only,
              pytest.mark.skipif(
                  C.compiler() is None,
                  reason=f"no C compiler: config.cxx={config.cxx!r} (gcc, cc or g++ on PATH) "
                         "is needed")]

ADD = r"""
void add(long n, const double *a, const double *b, double *out) {
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}
"""
ADD_ARGS = [ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]


def _call_add(lib: C.LoadedLibrary, n: int = 7, keep_gil: bool = False) -> None:
    a = np.linspace(-3.0, 4.0, n)
    b = np.sqrt(np.arange(n, dtype=np.float64))
    out = np.empty(n)
    add = lib.function("add", None, ADD_ARGS, keep_gil=keep_gil)
    add(n, a.ctypes.data, b.ctypes.data, out.ctypes.data)
    np.testing.assert_array_equal(out, a + b)


def _use(path: Path) -> None:
    """Point config.compiledir at ``path``."""
    config.compiledir = str(path)


@pytest.fixture
def cachedir(tmp_path):
    saved = vars(config).get("compiledir")  # None: derived from base_compiledir
    _use(tmp_path / "cache")
    yield tmp_path / "cache"
    if saved is None:
        del config.compiledir
    else:
        config.compiledir = saved


@pytest.fixture
def loads(monkeypatch):
    """The sha256 of every file handed to dlopen during the test."""
    seen = []
    real = ctypes.CDLL

    def recording(name, *args, **kwargs):
        seen.append(hashlib.sha256(Path(name).read_bytes()).hexdigest())
        return real(name, *args, **kwargs)

    monkeypatch.setattr(C.ctypes, "CDLL", recording)
    return seen


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One entry of ADD, built in a folder of its own: tests copy it and break the copy."""
    where = tmp_path_factory.mktemp("pristine")
    saved = vars(config).get("compiledir")
    _use(where)
    try:
        lib = C.compile_library(ADD, name="add")
    finally:
        if saved is None:
            del config.compiledir
        else:
            config.compiledir = saved
    return where / lib.key


def _entries(root: Path) -> list:
    return [p.name for p in root.iterdir() if C._kind(p.name) == "entry"]


def _leftovers(root: Path) -> list:
    return [p.name for p in root.iterdir() if p.name.startswith("tmp-")]


# -- compile, call, cache hits ---------------------------------------------------------------------

def test_compile_and_call_matches_numpy(cachedir):
    lib = C.compile_library(ADD, name="add")
    _call_add(lib)
    _call_add(lib, n=0)
    _call_add(lib, n=3, keep_gil=True)
    assert lib.address("add") > 0
    for keep_gil in (False, True):
        with pytest.raises(KeyError, match="no function 'mul'"):
            lib.function("mul", keep_gil=keep_gil)
    meta = json.loads((cachedir / lib.key / C.META).read_text())
    assert meta["key"] == lib.key and meta["name"] == "add"
    for flag in ("-O3", "-fno-math-errno", "-ffp-contract=off", "-shared", "-fPIC"):
        assert flag in meta["flags"]
    assert not any("fast-math" in f for f in meta["flags"])
    assert (cachedir / lib.key / C.SOURCE).read_text() == ADD
    assert _leftovers(cachedir) == []


def test_second_compile_is_a_cache_hit_without_a_subprocess(cachedir, monkeypatch):
    lib = C.compile_library(ADD)
    before = C.stats.copy()
    assert C.compile_library(ADD) is lib  # this process's memo
    assert C.stats["memory_hits"] == before["memory_hits"] + 1

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cache hit ran a subprocess")

    monkeypatch.setattr(C.subprocess, "run", no_subprocess)
    C.forget()  # read the disk cache this time
    again = C.compile_library(ADD)
    assert again is not lib and again.path == lib.path
    assert C.stats["disk_hits"] == before["disk_hits"] + 1
    assert C.stats["compiled"] == before["compiled"]
    _call_add(again)


def test_the_key_follows_flags_openmp_and_source(cachedir):
    omp = r"""
    void scale(long n, double *x) {
        #pragma omp parallel for
        for (long i = 0; i < n; i++) x[i] *= 2.0;
    }
    """
    plain = C.compile_library(omp)
    with_omp = C.compile_library(omp, openmp=True)
    o2 = C.compile_library(omp, flags=["-O2"])
    assert len({plain.key, with_omp.key, o2.key}) == 3
    meta = json.loads((cachedir / with_omp.key / C.META).read_text())
    assert "-fopenmp" in meta["flags"]
    x = np.arange(1000.0)
    with_omp.function("scale", None, [ctypes.c_long, ctypes.c_void_p])(x.size, x.ctypes.data)
    np.testing.assert_array_equal(x, 2 * np.arange(1000.0))
    with pytest.raises(TypeError, match="sequence of strings"):
        C.compile_library(omp, flags="-O2")


# -- faults: never loaded, rebuilt with a warning --------------------------------------------------

def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bad_checksum(entry: Path) -> None:
    meta = json.loads((entry / C.META).read_text())
    meta["sha256"] = "0" * 64
    (entry / C.META).write_text(json.dumps(meta))


def _other_key(entry: Path) -> None:
    meta = json.loads((entry / C.META).read_text())
    meta["key"] = "f" * 64
    (entry / C.META).write_text(json.dumps(meta))


def _a_file(entry: Path) -> None:
    shutil.rmtree(entry)
    entry.write_bytes(b"\x7fELF not a cache entry")


def _symlinked(entry: Path) -> None:
    real = entry.parent / "elsewhere.so"
    os.replace(entry / C.LIB, real)
    os.symlink(real, entry / C.LIB)


def _no_meta(entry: Path) -> None:
    (entry / C.META).unlink()


def _garbage_meta(entry: Path) -> None:
    (entry / C.META).write_bytes(b"\x80\x04\x95 a pickle, say")


FAULTS = {
    "corrupt .so": (lambda e: _flip(e / C.LIB), "corrupt"),
    "truncated .so": (lambda e: _truncate(e / C.LIB), "truncated"),
    "wrong checksum": (_bad_checksum, "corrupt"),
    "meta of another key": (_other_key, "foreign"),
    "a file instead of an entry": (_a_file, "not a folder"),
    "symlinked .so": (_symlinked, "symlink"),
    "no meta.json": (_no_meta, "incomplete"),
    "meta.json not JSON": (_garbage_meta, "unreadable"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulty_entry_is_rebuilt_with_a_warning_never_loaded(fault, pristine, cachedir, loads):
    breaks, reason = FAULTS[fault]
    cachedir.mkdir()
    entry = cachedir / pristine.name
    shutil.copytree(pristine, entry)
    breaks(entry)
    bad = hashlib.sha256(entry.read_bytes() if entry.is_file() else
                         (entry / C.LIB).read_bytes()).hexdigest()
    before = C.stats.copy()
    with pytest.warns(C.CacheWarning) as caught:
        lib = C.compile_library(ADD, name="add")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert entry.name in message and reason in message and "\n" not in message
    assert C.stats["rebuilt"] == before["rebuilt"] + 1
    assert C.stats["compiled"] == before["compiled"] + 1
    if fault in ("corrupt .so", "truncated .so", "a file instead of an entry"):
        assert bad not in loads  # elsewhere the bytes of lib.so are sound
    _call_add(lib)
    assert C._verify(entry, lib.key)[1] is None
    assert _leftovers(cachedir) == []


def test_foreign_files_in_the_cache_folder_are_ignored(pristine, cachedir):
    cachedir.mkdir()
    (cachedir / "notes.txt").write_text("mine")
    (cachedir / ("0" * 64 + ".so")).write_bytes(b"junk")
    _call_add(C.compile_library(ADD))
    assert (cachedir / "notes.txt").read_text() == "mine"
    kinds = {e.path.name: e.kind for e in C.entries()}
    assert kinds["notes.txt"] == "other" and kinds[pristine.name] == "entry"


# -- concurrency, killed compiles, the lock --------------------------------------------------------

RACER = r"""
import ctypes, json, os, sys, time
from pathlib import Path
from theon import config
from theon.backends import ccompiler as C
config.compiledir = sys.argv[1]
go = Path(sys.argv[2])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.001)
lib = C.compile_library(sys.argv[3], name="race")
f = lib.function("triple", ctypes.c_double, [ctypes.c_double])
print(json.dumps({"value": f(1.5), "compiled": C.stats["compiled"],
                  "disk_hits": C.stats["disk_hits"]}))
"""


def test_two_processes_compiling_the_same_key_both_succeed(cachedir, tmp_path):
    source = "double triple(double x) { return 3.0 * x; }\n"
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(cachedir), str(go), source],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    results = []
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)  # both import theon first; then they start together
        go.touch()
        for r in racers:
            out, err = r.communicate(timeout=120)
            assert r.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for r in racers:
            if r.poll() is None:
                r.kill()
                r.communicate()
    assert [res["value"] for res in results] == [4.5, 4.5]
    # the lock makes the later one wait and load the earlier one's library
    assert sorted((res["compiled"], res["disk_hits"]) for res in results) == [(0, 1), (1, 0)]
    assert len(_entries(cachedir)) == 1 and _leftovers(cachedir) == []


def test_the_loser_of_a_race_without_the_lock_uses_the_winners_entry(cachedir):
    cc = C.compiler()
    argv = C._flags((), False)
    key = C.cache_key(ADD, cc, argv)
    cachedir.mkdir()
    entry = cachedir / key
    assert C._build(cachedir, entry, key, ADD, cc, argv, "first") is True
    first = (entry / C.META).read_bytes()
    assert C._build(cachedir, entry, key, ADD, cc, argv, "second") is False
    assert (entry / C.META).read_bytes() == first and _leftovers(cachedir) == []
    lib = C.compile_library(ADD)
    assert lib.key == key
    _call_add(lib)


def test_a_killed_compile_leaves_nothing_trusted(cachedir, loads):
    cc = C.compiler()
    key = C.cache_key(ADD, cc, C._flags((), False))
    cachedir.mkdir()
    # what a process killed before its rename leaves: a tmp- folder with half a library
    half = cachedir / f"tmp-{key[:16]}-killed"
    half.mkdir()
    (half / C.LIB).write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 100)
    (half / C.META).write_text(json.dumps({"format": C.FORMAT, "key": key}))
    old = cachedir / "tmp-0123456789abcdef-killed-long-ago"
    old.mkdir()
    (old / C.SOURCE).write_text("int x;")
    hours_ago = time.time() - 2 * C.STALE_SECONDS
    os.utime(old, (hours_ago, hours_ago))
    bad = hashlib.sha256((half / C.LIB).read_bytes()).hexdigest()
    lib = C.compile_library(ADD)  # a compile: the young leftover is ignored, the old one cleaned
    _call_add(lib)
    assert bad not in loads
    assert half.exists() and not old.exists()


def test_a_lock_held_too_long_is_passed_over(cachedir, monkeypatch):
    import fcntl
    monkeypatch.setattr(C, "LOCK_WAIT_SECONDS", 0.2)
    key = C.cache_key(ADD, C.compiler(), C._flags((), False))
    cachedir.mkdir()
    with open(cachedir / f"{key}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a hung process would
        _call_add(C.compile_library(ADD))


# -- errors and switching compiling off ----------------------------------------------------------

def test_a_compile_error_carries_the_compilers_stderr(cachedir):
    with pytest.raises(C.CompileError) as caught:
        C.compile_library("double f(double x) { return x +; }\n", name="broken")
    err = caught.value
    assert "error" in err.stderr and err.returncode != 0
    assert err.stderr.strip() in str(err) and "broken" in str(err)
    assert _entries(cachedir) == [] and _leftovers(cachedir) == []


def test_an_undefined_function_fails_at_compile_time_not_at_load(cachedir):
    if not sys.platform.startswith("linux"):
        pytest.skip("-Wl,-z,defs is used on Linux only")
    with pytest.raises(C.CompileError, match="no_such_function"):
        C.compile_library("double no_such_function(double);\n"
                          "double f(double x) { return no_such_function(x); }\n")


@pytest.mark.parametrize("cxx,match", [("", "compiling C is off"),
                                       ("no-such-cc-theon", "not found on PATH")])
def test_no_compiler_is_a_clear_error(cachedir, monkeypatch, cxx, match):
    monkeypatch.setattr(config, "cxx", cxx)
    assert C.compiler() is None
    with pytest.raises(C.CompilerUnavailable, match=match):
        C.compile_library(ADD)
    fut = C.compile_async(ADD)
    assert fut.done() and isinstance(fut.exception(), C.CompilerUnavailable)
    assert not cachedir.exists()


def test_cxx_and_compiledir_from_THEON_FLAGS(monkeypatch, tmp_path):
    module = importlib.import_module("theon.config")
    monkeypatch.setenv("THEON_FLAGS", f"cxx=,compiledir={tmp_path}")
    cfg = module._load()
    assert cfg.cxx == "" and cfg.compiledir == str(tmp_path)
    monkeypatch.setenv("THEON_FLAGS", f"base_compiledir={tmp_path}")
    cfg = module._load()
    assert Path(cfg.compiledir).parent == tmp_path
    assert Path(cfg.compiledir).name.startswith("compiledir_")
    assert cfg.cxx == module._default_cxx()


# -- background compiles ---------------------------------------------------------------------------

def test_compile_async_and_wait_all(cachedir, monkeypatch):
    monkeypatch.setattr(config, "background_kernels", True)  # (off in the tests)
    source = "double half(double x) { return 0.5 * x; }\n"
    fut = C.compile_async(source, name="half")
    assert C.compile_async(source, name="half") is fut or fut.done()
    broken = C.compile_async("double g(double x) { return x +; }\n")
    C.wait_all(timeout=60)
    assert fut.done() and broken.done()
    assert fut.result(0).function("half", ctypes.c_double, [ctypes.c_double])(3.0) == 1.5
    with pytest.raises(C.CompileError, match="error"):
        broken.result(0)
    again = C.compile_async(source, name="half")  # loaded already: done at once
    assert again.done() and again.result() is fut.result()
    C.wait_all(timeout=0)  # nothing pending


def test_without_background_compiles_a_library_is_compiled_only_when_waited_for(cachedir,
                                                                                monkeypatch):
    monkeypatch.setattr(config, "background_kernels", False)
    source = "double third(double x) { return x / 3; }\n"
    fut = C.compile_async(source, name="third")
    assert fut.cancelled()
    C.wait_all(timeout=0)  # nothing queued
    now = C.compile_async(source, name="third", now=True)
    assert now.result(0).function("third", ctypes.c_double, [ctypes.c_double])(6.0) == 2.0
    again = C.compile_async(source, name="third")  # loaded: done, whatever the setting
    assert again.done() and again.result() is now.result()


# -- python -m theon.cache -------------------------------------------------------------------------

def _cli(*args: str, cachedir: Path) -> str:
    env = {**os.environ, "THEON_FLAGS": f"compiledir={cachedir}"}
    done = subprocess.run([sys.executable, "-m", "theon.cache", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_cache_command_lists_and_clears(cachedir, tmp_path):
    C.compile_library(ADD, name="adder")
    C.compile_library("int one(void) { return 1; }\n", name="one")
    listed = _cli("list", cachedir=cachedir)
    assert str(cachedir) in listed and "adder" in listed and "one" in listed
    assert "2 entries" in listed and "KiB" in listed
    cache = importlib.import_module("theon.cache")
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        cache.main(["clear", "--older-than", "1"], out=f)
    assert "removed 0 entries unused for 1 day" in out.read_text()
    assert "kept 2 entries" in out.read_text()
    cleared = _cli("clear", cachedir=cachedir)
    assert "removed 2 entries" in cleared and str(cachedir) in cleared
    assert _entries(cachedir) == [] and not list(cachedir.glob("*.lock"))
    with open(out, "w") as f:
        cache.main([], out=f)
        cache.main(["list"], out=f)
    assert out.read_text().splitlines()[0] == str(cachedir)
    assert "0 entries" in out.read_text()


# -- remembered probes -----------------------------------------------------------------------------

def _fresh_probe(monkeypatch) -> list:
    """Forget this process's probes; record the compiler processes started from now on."""
    C._COMPILERS.clear()
    C._probes.clear()
    started = []
    real = C.subprocess.run
    monkeypatch.setattr(C.subprocess, "run",
                        lambda args, *a, **k: started.append(args) or real(args, *a, **k))
    return started


def test_the_compiler_version_is_probed_once_per_cache_folder(cachedir, monkeypatch):
    started = _fresh_probe(monkeypatch)
    first = C.compiler()
    assert first is not None and len(started) == 1 and "--version" in started[0]
    assert (cachedir / C.PROBES).exists()
    _fresh_probe(monkeypatch)  # a new process: the version comes from the probe file
    second = C.compiler()
    assert second == first and len(started) == 1
    assert C.find_library("m") == C.find_library("m")  # remembered, with the same answer
    listed = _cli("list", cachedir=cachedir)
    assert "the compiler's version and libraries found, remembered" in listed
    assert C.cache_key(ADD, first, ()) == C.cache_key(ADD, second, ())


@pytest.mark.parametrize("damage", [b"{not json", b'["a list"]', b'{"compiler-version:x": 3}',
                                    b""])
def test_a_damaged_probe_file_means_probing_again(cachedir, monkeypatch, damage):
    _fresh_probe(monkeypatch)
    C.compiler()
    (cachedir / C.PROBES).write_bytes(damage)
    started = _fresh_probe(monkeypatch)
    assert C.compiler() is not None and len(started) == 1
    assert json.loads((cachedir / C.PROBES).read_text())  # written anew, whole


def test_a_changed_compiler_binary_is_probed_again(cachedir, monkeypatch, tmp_path):
    real = Path(C.compiler().real)
    fake = tmp_path / "bin" / "theon-test-cc"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(config, "cxx", fake.name)
    started = _fresh_probe(monkeypatch)
    assert C.compiler() is not None and len(started) == 1
    C._COMPILERS.clear()
    assert C.compiler() is not None and len(started) == 1  # the probe file answered
    fake.write_text(f'#!/bin/sh\n# upgraded\nexec "{real}" "$@"\n')  # another size and time
    C._COMPILERS.clear()
    assert C.compiler() is not None and len(started) == 2


def test_an_unwritable_cache_folder_still_probes(cachedir, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")
    monkeypatch.setattr(C.tempfile, "mkstemp", refuse)  # (root ignores a folder's mode bits)
    started = _fresh_probe(monkeypatch)
    assert C.compiler() is not None and len(started) == 1
    assert not (cachedir / C.PROBES).exists()


def test_tool_runs_survive_environment_changes_in_another_thread() -> None:
    """A compiler started from a background thread while the main thread changes os.environ
    (as tests and user code do) starts every time. Inheriting the C ``environ`` array made
    about 1 in 70 starts fail here with EFAULT ("[Errno 14] Bad address"): a putenv may free
    the array the starting child is reading."""
    import threading
    errors: list[BaseException] = []
    done = threading.Event()
    runs = 0

    def spawn() -> None:
        nonlocal runs
        while not done.is_set() and runs < 300:
            try:
                C.run_tool(["true"])
            except OSError as exc:
                errors.append(exc)
            runs += 1
        done.set()

    worker = threading.Thread(target=spawn)
    worker.start()
    names = [f"THEON_TEST_ENV_CHURN_{i}" for i in range(300)]
    try:
        i = 0
        while not done.is_set():
            os.environ[names[i % 300]] = "v" * (i % 50)
            if i % 3 == 0:
                os.environ.pop(names[i * 7 % 300], None)
            i += 1
    finally:
        done.set()
        worker.join()
        for name in names:
            os.environ.pop(name, None)
    assert runs >= 100 and errors == [], (runs, errors[:3])
