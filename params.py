"""Weights saved and loaded by name: ``theon.save_params(path, params)`` writes the values of
shared variables to an ``.npz`` file keyed by their names, ``theon.load_params(path, params)``
sets them back, matching by name (so a model built again, or a larger one being fine-tuned,
finds its weights whatever the order of its parameters)::

    theon.save_params("model.npz", [W1, b1, W2, b2])
    theon.load_params("model.npz", [W1, b1, W2, b2])            # every name, exactly
    report = theon.load_params("model.npz", params, strict=False)  # what matches; see report

The file holds plain arrays only, never pickles (loading refuses object arrays). A save writes
a temporary file in the same folder and renames it over ``path``, so an interrupted save leaves
the previous file as it was. Values go through ``get_value``/``set_value``, so weights in
device memory are saved from and loaded back to the device.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .symbolic.shared import SharedVariable

__all__ = ["save_params", "load_params", "LoadReport"]


@dataclass
class LoadReport:
    """What ``load_params`` did: the names it ``loaded``; the parameters the file has no entry
    for (``missing``); the file's entries no parameter is named after (``unexpected``); and the
    names whose array did not fit their parameter, with why (``mismatched``)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        """Whether anything was left out (always False after a strict load)."""
        return bool(self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} parameter(s)"]
        if self.missing:
            lines.append(f"not in the file (left as they were): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"in the file but not among the parameters: "
                         f"{', '.join(self.unexpected)}")
        for name, why in self.mismatched.items():
            lines.append(f"skipped {name}: {why}")
        return "\n".join(lines)


def _by_name(params: Iterable[SharedVariable], what: str) -> dict[str, SharedVariable]:
    """``params`` keyed by name; an unnamed, duplicated or non-shared one is an error."""
    named: dict[str, SharedVariable] = {}
    for k, p in enumerate(params):
        if not isinstance(p, SharedVariable):
            raise TypeError(f"{what}: params[{k}] is {p!r} ({type(p).__name__}), not a shared "
                            f"variable")
        if not p.name:
            raise ValueError(f"{what}: params[{k}] ({p.type}) has no name; files are keyed by "
                             f"name: give it one (theano.shared(value, name='W1') or "
                             f"p.name = 'W1')")
        if p.name in named:
            raise ValueError(f"{what}: two parameters are named {p.name!r} (params[{k}] and "
                             f"an earlier one); names must be unique to key the file")
        named[p.name] = p
    return named


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: permissions of a new file, as open() would give it (mkstemp makes its files 0600)
_NEW_FILE_MODE = 0o666 & ~_umask()


def save_params(path: str | os.PathLike, params: Iterable[SharedVariable]) -> None:
    """Write the values of ``params`` (named shared variables) to the ``.npz`` file ``path``,
    one array per name. The write is atomic: a temporary file in the same folder, renamed over
    ``path`` once complete."""
    named = _by_name(params, "save_params")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = _NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            # written as numpy's savez writes, without its keyword arguments (a parameter
            # named 'file' would collide with them)
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED,
                                 allowZip64=True) as archive:
                for name, p in named.items():
                    value = np.asarray(p.get_value(borrow=True))
                    with archive.open(name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, value, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _open(path: str) -> np.lib.npyio.NpzFile:
    """The ``.npz`` file ``path``, opened with pickles refused; a clear error naming the path
    for anything else."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_params: no such file: {path}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(f"load_params: {path} holds a single array (.npy), not an .npz file "
                         f"of named parameters (write one with theon.save_params)")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ValueError(f"load_params: {path} is not an .npz file of parameters (it does not "
                         f"start as a zip archive)")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # the zip reader's error: say which file it was
        raise ValueError(f"load_params: {path} is not an .npz file of parameters "
                         f"({type(err).__name__}: {err})") from None


def _entry(archive: np.lib.npyio.NpzFile, name: str, path: str) -> np.ndarray:
    """The array ``name`` of the open file, refusing an object array (a pickle)."""
    try:
        return archive[name]
    except ValueError as err:
        if "pickle" in str(err):
            raise ValueError(f"load_params: {path}: entry {name!r} is an object array (a "
                             f"pickle), which load_params never loads") from None
        raise ValueError(f"load_params: {path}: entry {name!r} is unreadable: {err}") from None
    except Exception as err:  # a truncated or corrupt member
        raise ValueError(f"load_params: {path}: entry {name!r} is unreadable "
                         f"({type(err).__name__}: {err})") from None


def _mismatch(p: SharedVariable, value: np.ndarray) -> str | None:
    """Why ``value`` cannot be ``p``'s value, or None when it fits."""
    current = p.get_value(borrow=True, return_internal_type=True)
    if value.dtype != np.dtype(current.dtype):
        return f"the file has dtype {value.dtype}, the parameter {current.dtype}"
    if value.shape != tuple(current.shape):
        return f"the file has shape {value.shape}, the parameter {tuple(current.shape)}"
    return None


def load_params(path: str | os.PathLike, params: Iterable[SharedVariable],
                strict: bool = True) -> LoadReport:
    """Set each of ``params`` (named shared variables) to the array of its name in the
    ``.npz`` file ``path``, and return a ``LoadReport``.

    With ``strict`` (the default) the file and the parameters must match exactly (the same
    names, and each array of its parameter's shape and dtype), else nothing is loaded and the
    error names the parameter. ``strict=False`` (fine-tuning) loads what matches, leaves the
    rest as it is and lists it in the report."""
    named = _by_name(params, "load_params")
    path = os.fspath(path)
    with _open(path) as archive:
        # only the entries a parameter is named after are read (a file may hold far more)
        arrays = {n: _entry(archive, n, path) for n in archive.files if n in named}
        report = LoadReport(missing=[n for n in named if n not in arrays],
                            unexpected=[n for n in archive.files if n not in named])
    fits = {}
    for name, p in named.items():
        if name in arrays:
            why = _mismatch(p, arrays[name])
            if why is None:
                fits[name] = arrays[name]
            else:
                report.mismatched[name] = why
    if strict:
        problems = ([f"parameter {n!r} is not in the file" for n in report.missing]
                    + [f"the file's {n!r} is not among the parameters"
                       for n in report.unexpected]
                    + [f"parameter {n!r}: {why}" for n, why in report.mismatched.items()])
        if problems:
            raise ValueError(f"load_params: {path} does not match the parameters (nothing "
                             f"was loaded; strict=False loads what matches):\n  "
                             + "\n  ".join(problems))
    for name, value in fits.items():
        named[name].set_value(value, borrow=True)
        report.loaded.append(name)
    return report
