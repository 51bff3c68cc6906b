"""The op tests: every one compiles on the ``backend`` fixture's linker (tests/conftest.py), so
THEON_TEST_BACKENDS=py,logging runs each of them on each backend.

On the C backend (the default where a compiler is found) every function waits for its
kernels, so that each op is checked through its generated kernel rather than the numpy path
it starts on (``THEON_FLAGS=cxx=`` runs the numpy path). A module whose ops' kernels are
checked in bulk elsewhere sets ``BACKGROUND_KERNELS = True`` and keeps the default."""
import pytest
import theon
from theon import backends
from theon.backends import ccompiler


@pytest.fixture(autouse=True)
def _on_backend(backend, request, monkeypatch):
    """Puts every op test on the backend under test, whether it compiles through ``run`` or
    calls ``theon.function`` itself."""
    if (backends.get(backend) is backends.get("c") and ccompiler.compiler() is not None
            and not getattr(request.module, "BACKGROUND_KERNELS", False)):
        monkeypatch.setattr(theon.config, "wait_for_kernels", True)
    return backend
