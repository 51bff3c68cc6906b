"""The op tests: every one compiles on the ``backend`` fixture's linker (tests/conftest.py), so
THEON_TEST_BACKENDS=py,logging runs each of them on each backend."""
import pytest


@pytest.fixture(autouse=True)
def _on_backend(backend):
    """Puts every op test on the backend under test, whether it compiles through ``run`` or
    calls ``theon.function`` itself."""
    return backend
