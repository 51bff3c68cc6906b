"""Backends: what turns a rewritten FunctionGraph into a callable, chosen by ``Mode.linker``.

A backend is an object with ``build(fgraph, plan) -> callable`` (see ``numpy_backend.Plan`` for
what the plan holds). The callable takes the arguments and returns the outputs; it carries
``source`` (what it runs, for ``f.source``) and ``set_trusted(flag)`` (skip the argument
checks: Theano's ``f.trust_input``). Backends are registered by name; ``function()`` looks up
the mode's linker here, so a new backend is one module that calls ``register`` and touches no
op. What an op needs to run on a backend lives in that backend's own table keyed by op class,
with the op's ``impl``/``perform`` as the default.

Theano's linker names are accepted: ``cvm`` (the default), ``vm``, ``c|py``... are the C
backend (``c_backend.py``: the numpy backend with elementwise work, fused, run as generated C
kernels, and plain numpy where no compiler is found); ``py`` and ``numpy`` the numpy backend.
"""
from __future__ import annotations

from typing import Any

_REGISTRY: dict[str, Any] = {}
# Theano's linkers that ran C code are the C backend here (which is numpy where no compiler
# is found); its pure-Python linkers are the numpy backend
_ALIASES = {**{name: "c" for name in ("cvm", "vm", "c|py", "c|py_nogc", "cvm_nogc", "vm_nogc")},
            "numpy": "py"}


def register(name: str, backend: Any) -> None:
    """Make ``backend`` (an object with ``build(fgraph, plan)``) available as linker ``name``."""
    if not callable(getattr(backend, "build", None)):
        raise TypeError(f"backend {name!r} must have a build(fgraph, plan) method")
    _REGISTRY[name] = backend


def get(name: str) -> Any:
    """The backend registered as ``name`` (or a Theano alias of it)."""
    key = name if name in _REGISTRY else _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown linker {name!r}: the registered backends are "
                         f"{sorted(_REGISTRY)} (and Theano's names {sorted(_ALIASES)})")
    return _REGISTRY[key]


def available() -> list:
    """The names of the registered backends."""
    return sorted(_REGISTRY)


from . import c_backend, numpy_backend  # noqa: E402,F401  (they register 'c' and 'py')
from .cuda import backend as _cuda_backend  # noqa: E402,F401  (registers 'cuda')
