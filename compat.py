"""Run code written for Theano on theon: ``theon.install_theano_alias()`` makes ``import theano``
and every ``theano.<sub>`` import give theon's module of the same path (the same module objects,
not copies), so a library written for Theano imports unchanged::

    import theon
    theon.install_theano_alias()
    import lasagne            # its `import theano.tensor.signal.pool` gets theon.tensor.signal.pool

A process that never calls it is untouched; a real Theano imported before stays in use for
the names already imported.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_ALIAS, _REAL = "theano", "theon"


class _TheanoAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``theano[.x.y]`` as ``theon[.x.y]`` and loads it as that very module."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        real = _REAL + fullname[len(_ALIAS):]
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as err:
            if err.name is not None and real.startswith(err.name):
                return None  # theon has no such module: "No module named 'theano.x'"
            raise  # the module exists but needs something missing: say what
        # remembered before the import system sets the alias's spec on the module
        _SPECS.setdefault(module.__name__, module.__spec__)
        return importlib.util.spec_from_loader(fullname, self,
                                               is_package=hasattr(module, "__path__"))

    def create_module(self, spec):
        return sys.modules[_REAL + spec.name[len(_ALIAS):]]

    def exec_module(self, module) -> None:
        # the import system has just set the alias's spec on the module: theon's own spec
        # must stay (reloads and tools that read __spec__.name go by it)
        module.__spec__ = _SPECS[module.__name__]


_SPECS: dict[str, object] = {}


_FINDER = _TheanoAlias()


def install_theano_alias() -> None:
    """Make ``import theano...`` import theon's modules (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall_theano_alias() -> None:
    """Stop mapping new ``theano`` imports (modules already imported stay in sys.modules)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
