"""Shared by all tests: they build T.matrix() and the like and feed float64 data, so floatX is
pinned to float64 whatever THEON_FLAGS says (tests about float32 set it themselves)."""
import pytest

import theon


@pytest.fixture(autouse=True)
def _floatx_float64():
    old = theon.config.floatX
    theon.config.floatX = "float64"
    yield
    theon.config.floatX = old


def pytest_configure(config):
    # before collection too: some test modules build their variables at import time
    theon.config.floatX = "float64"
