"""Global settings (Theano's ``theano.config``), read once from ``THEON_FLAGS``.

``THEON_FLAGS="floatX=float32,device=cpu"`` works as ``THEANO_FLAGS`` did. Attributes may also be
assigned at run time (``theon.config.floatX = 'float32'``); values are validated either way.

Theano flags that theon has no use for (it has no optimizer choices) are accepted and ignored,
so old scripts and environments still run: ``config.optimizer`` reads back what was set, or
Theano's default. A flag nobody knows in ``THEON_FLAGS`` is warned about, not fatal.

C kernels (``backends/ccompiler.py``): ``cxx`` is the compiler command, by default the first of
``gcc``, ``cc``, ``g++`` on PATH (the kernels are C99, compiled with ``-x c`` whatever the
driver); ``cxx=`` (empty) turns compiling off. Compiled libraries are cached in ``compiledir``,
which unless set is ``base_compiledir/compiledir_<system>-<machine>-py<version>``;
``base_compiledir`` is ``$XDG_CACHE_HOME/theon`` (``~/.cache/theon``). ``del config.compiledir``
goes back to the derived default. ``openmp`` splits large kernels across the cores;
``wait_for_kernels`` makes ``function()`` wait for its kernels to compile instead of running
on numpy until they are ready; ``background_kernels=False`` compiles nothing behind a function
that does not wait (it stays on numpy): for many short-lived functions, a test suite's, whose
kernels would arrive after their last call.

``profile=True`` profiles every function compiled without ``profile=`` and prints their
summaries when the process exits (``compile/profiling.py``); ``mode=NanGuardMode`` makes it
the default mode.
"""
from __future__ import annotations

import difflib
import os
import platform
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, fields

# theon's version (the package re-exports it as theon.__version__): here, in the leaf every
# layer may import, so that the kernel cache can key entries by it
VERSION = "0.1.0"

_CHOICES = {
    "floatX": ("float64", "float32", "float16"),
    "mode": ("FAST_RUN", "FAST_COMPILE", "DebugMode", "NanGuardMode"),
    "on_unused_input": ("raise", "warn", "ignore"),
    "assert_no_cpu_op": ("ignore", "warn", "raise", "pdb"),
}

# Theano flags theon accepts and ignores, with Theano's defaults. ``a__b`` is Theano's ``a.b``
# (``THEON_FLAGS=blas.ldflags=...`` and ``config.blas.ldflags`` both work).
_THEANO_ONLY = {
    "optimizer": "fast_run", "exception_verbosity": "low", "compute_test_value": "off",
    "force_device": False, "warn_float64": "ignore",
    "allow_gc": True, "linker": "cvm", "print_active_device": True, "deterministic": "default",
    "optimizer_including": "", "optimizer_excluding": "", "optimizer_verbose": False,
    "on_opt_error": "warn", "profile_memory": False, "nocleanup": False,
    "blas__ldflags": "", "gcc__cxxflags": "", "nvcc__fastmath": False, "lib__cnmem": 0.0,
    "gpuarray__preallocate": 0.0, "dnn__enabled": "auto", "traceback__limit": 8,
    # Theano's warnings about its own old bugs (programs of its time turn them off)
    "warn__ignore_bug_before": "0.9", "warn__inc_subtensor1_opt": True,
    **{f"warn__{name}": False for name in (
        "argmax_pushdown_bug", "gpu_set_subtensor1", "gpusum_01_011_0111_bug",
        "identify_1pexp_bug", "inc_set_subtensor1", "reduce_join", "round",
        "signal_conv2d_interface", "subtensor_merge_bug", "sum_div_dimshuffle_bug",
        "sum_sum_bug", "vm_gc_bug")},
}
_SECTIONS = frozenset(k.split("__")[0] for k in _THEANO_ONLY if "__" in k) | {"cuda"}


def _default_compiledir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.access(os.path.dirname(root) or "/", os.W_OK) and not os.path.isdir(root):
        root = tempfile.gettempdir()
    return os.path.join(root, "theon")


def _default_cxx() -> str:
    return next((cc for cc in ("gcc", "cc", "g++") if shutil.which(cc)), "")


def _platform_compiledir(cfg: Config) -> str:
    # compiled code is tied to the machine and, as in Theano, each Python keeps its own cache
    tag = f"{platform.system()}-{platform.machine()}-py{sys.version_info[0]}{sys.version_info[1]}"
    return os.path.join(cfg.base_compiledir, f"compiledir_{tag}")


# Settings whose default follows other settings: read from a function of the config until set.
_DERIVED = {"compiledir": _platform_compiledir}


@dataclass
class Config:
    """The settings; see the module docstring for how they are set."""

    floatX: str = "float64"
    device: str = "cpu"
    mode: str = "FAST_RUN"
    base_compiledir: str = field(default_factory=_default_compiledir)
    cxx: str = field(default_factory=_default_cxx)
    # split large elementwise kernels across the cores (Theano's flag, on here by default)
    openmp: bool = True
    # function() waits for its C kernels to compile instead of starting on numpy
    wait_for_kernels: bool = False
    # compile a function's C kernels on a background thread when it does not wait for them
    background_kernels: bool = True
    on_unused_input: str = "raise"
    # device=cuda: the CPU stand-in runs the device path (the same kernel text, on the host)
    cuda__simulator: bool = False
    # an op with no device implementation under device=cuda: run it on the host with explicit
    # transfers ('ignore', 'warn'), or refuse it naming the op and the user's line ('raise')
    assert_no_cpu_op: str = "ignore"
    # profile every function compiled without profile= and print the summaries at exit
    profile: bool = False

    def __setattr__(self, name: str, value) -> None:
        if name in _THEANO_ONLY:
            object.__setattr__(self, name, value)
            return
        if name not in _SETTINGS:
            raise AttributeError(_unknown(name))
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError(f"config.{name} must be one of {_CHOICES[name]}, got {value!r}")
        if name == "device" and not _DEVICE.fullmatch(str(value)):
            raise ValueError(f"config.device must be 'cpu' or 'cuda[N]', got {value!r}")
        if name in _BOOLS and not isinstance(value, bool):
            coerced = _coerce(False, str(value))
            if not isinstance(coerced, bool):
                raise ValueError(f"config.{name.replace('__', '.')} must be True or False, "
                                 f"got {value!r}")
            value = coerced
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str):  # only called for names not set on the instance
        if name in _THEANO_ONLY:
            return _THEANO_ONLY[name]
        if name in _DERIVED:
            return _DERIVED[name](self)
        if name in _SECTIONS:
            return _Section(self, name)
        raise AttributeError(_unknown(name))


_SETTINGS = frozenset(f.name for f in fields(Config)) | frozenset(_DERIVED)
_BOOLS = frozenset(f.name for f in fields(Config) if f.type in ("bool", bool))
# Theano's device names: cpu, cuda, cudaN, and the old backend's gpu, gpuN
_DEVICE = re.compile(r"cpu|(cuda|gpu)\d*")


class _Section:
    """``config.blas`` for Theano's dotted flags: ``config.blas.ldflags`` is ``blas__ldflags``."""

    def __init__(self, cfg: Config, prefix: str):
        object.__setattr__(self, "_where", (cfg, prefix))

    def __getattr__(self, name: str):
        cfg, prefix = self._where
        return getattr(cfg, f"{prefix}__{name}")

    def __setattr__(self, name: str, value) -> None:
        cfg, prefix = self._where
        setattr(cfg, f"{prefix}__{name}", value)


def _known() -> str:
    ignored = ", ".join(sorted(k.replace("__", ".") for k in _THEANO_ONLY))
    return (f"theon's settings are {', '.join(sorted(_SETTINGS))}; it also accepts, and "
            f"ignores, the Theano flags {ignored}")


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(_SETTINGS | set(_THEANO_ONLY)), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"theon.config has no setting {name!r}.{hint} {_known()}."


def _coerce(default, text: str):
    """A THEON_FLAGS string as the type of the flag's default (Theano parsed them so)."""
    if isinstance(default, bool):
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off", ""):
            return False
        return text
    if isinstance(default, (int, float)):
        try:
            return type(default)(text)
        except ValueError:
            return text
    return text


def _parse_flags(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ValueError(f"THEON_FLAGS entry {item!r} is not of the form name=value")
        key, value = (s.strip() for s in item.split("=", 1))
        out[key] = value
    return out


def _load() -> Config:
    cfg = Config()
    # a Theano program's THEANO_FLAGS count too; THEON_FLAGS, read last, wins where both set
    flags = {}
    for var in ("THEANO_FLAGS", "THEON_FLAGS"):
        flags.update({k: (var, v) for k, v in _parse_flags(os.environ.get(var, "")).items()})
    for key, (var, value) in flags.items():
        key = key.replace(".", "__")
        if key in _THEANO_ONLY:
            setattr(cfg, key, _coerce(_THEANO_ONLY[key], value))
        elif key in _SETTINGS:
            setattr(cfg, key, value)
        else:
            warnings.warn(f"{var}: unknown flag {key.replace('__', '.')!r} ignored "
                          f"({_known()})", UserWarning, stacklevel=2)
    return cfg


config = _load()
