"""Modes: which rewrite passes run and which backend executes (Theano's ``Mode``)."""
from __future__ import annotations

import copy
from collections.abc import Sequence

# Pass names per optimizer level; later phases (canonicalize, stabilize, specialize, fusion)
# register themselves in compile/rewrite.py's PASSES and are listed here.
OPTIMIZERS = {
    "fast_run": ("merge", "constant_folding", "canonicalize", "stabilize", "specialize",
                 "fusion", "merge"),
    "fast_compile": ("merge", "constant_folding"),
    "None": (),
}


class Mode:
    """A choice of rewrites (``optimizer``) and executor (``linker``)."""

    def __init__(self, linker: str | None = None, optimizer: str | None = "fast_run",
                 check: bool = False):
        # a backend name registered in backends/ (None: config.linker when compiling)
        self.linker = linker
        self.check = check  # compare with the unrewritten graph at every call (DebugMode)
        if optimizer is None:
            optimizer = "None"
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                             f"{sorted(OPTIMIZERS)}")
        self.optimizer = optimizer
        self._excluded: tuple = ()
        self._included: tuple = ()

    @property
    def passes(self) -> Sequence[str]:
        names = [p for p in OPTIMIZERS[self.optimizer] if p not in self._excluded]
        return names + [p for p in self._included if p not in names]

    def excluding(self, *names: str) -> Mode:
        out = copy.copy(self)  # a subclass (NanGuardMode) stays one, with its settings
        out._excluded, out._included = self._excluded + names, self._included
        return out

    def including(self, *names: str) -> Mode:
        out = copy.copy(self)
        out._excluded, out._included = self._excluded, self._included + names
        return out

    def __repr__(self) -> str:
        return f"Mode(linker={self.linker!r}, optimizer={self.optimizer!r})"


FAST_RUN = Mode(optimizer="fast_run")
FAST_COMPILE = Mode(optimizer="fast_compile")
DEBUG_MODE = Mode(optimizer="fast_run", check=True)
_NAMED = {"FAST_RUN": FAST_RUN, "FAST_COMPILE": FAST_COMPILE, "DebugMode": DEBUG_MODE,
          "DEBUG_MODE": DEBUG_MODE}


def get_mode(mode: None | str | Mode) -> Mode:
    """A Mode from None (config.mode), a name, or a Mode."""
    if isinstance(mode, Mode):
        return mode
    if mode is None:
        from ..config import config
        mode = config.mode
    if mode == "NanGuardMode":  # Theano's name for it, as a string too
        from .nanguardmode import NanGuardMode
        return NanGuardMode()
    if mode not in _NAMED:
        raise ValueError(f"unknown mode {mode!r}; choose one of "
                         f"{sorted([*_NAMED, 'NanGuardMode'])} or pass a Mode")
    return _NAMED[mode]
