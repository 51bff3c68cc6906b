"""Every operation, each defined in one place (see ops/scalar.py for the elementwise table).

Importing the package gives graph variables their tensor operators (``ops/variable.py``)."""
from . import variable  # noqa: F401  (fills TensorType's variable, constant and shared slots)
