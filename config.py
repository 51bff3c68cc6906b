"""Global settings (Theano's ``theano.config``), read once from ``THEON_FLAGS``.

``THEON_FLAGS="floatX=float32,device=cpu"`` works as ``THEANO_FLAGS`` did. Attributes may also be
assigned at run time (``theon.config.floatX = 'float32'``); values are validated either way.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields

_CHOICES = {
    "floatX": ("float64", "float32", "float16"),
    "mode": ("FAST_RUN", "FAST_COMPILE", "DebugMode"),
    "on_unused_input": ("raise", "warn", "ignore"),
}


def _default_compiledir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.access(os.path.dirname(root) or "/", os.W_OK) and not os.path.isdir(root):
        root = tempfile.gettempdir()
    return os.path.join(root, "theon")


@dataclass
class Config:
    """The settings; see the module docstring for how they are set."""

    floatX: str = "float64"
    device: str = "cpu"
    mode: str = "FAST_RUN"
    base_compiledir: str = field(default_factory=_default_compiledir)
    on_unused_input: str = "raise"

    def __setattr__(self, name: str, value) -> None:
        if name not in {f.name for f in fields(Config)}:
            raise AttributeError(f"theon.config has no setting {name!r}")
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError(f"config.{name} must be one of {_CHOICES[name]}, got {value!r}")
        if name == "device" and not (value == "cpu" or str(value).startswith(("cuda", "gpu"))):
            raise ValueError(f"config.device must be 'cpu' or 'cuda[N]', got {value!r}")
        object.__setattr__(self, name, value)


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
    for key, value in _parse_flags(os.environ.get("THEON_FLAGS", "")).items():
        setattr(cfg, key, value)
    return cfg


config = _load()
