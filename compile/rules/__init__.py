"""The rule tables, one module per phase; importing this package registers them all."""
from . import canonicalize, fusion, shapes, specialize, stabilize  # noqa: F401
