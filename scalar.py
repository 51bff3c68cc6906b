"""``theano.scalar``: the dtype rules and scalar operations of the scalar table
(re-exported from ``theon/ops/scalar.py``): ``upcast``, and each row of the table by its name
(``theano.scalar.add``, ``theano.scalar.exp``...)."""
from .ops.scalar import TABLE, ScalarOp, upcast  # noqa: F401

globals().update({name: op for name, op in TABLE.items() if name.isidentifier()})
