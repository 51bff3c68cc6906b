"""``theon.ifelse`` (Theano's ``theano.ifelse``): the lazy conditional."""
from .ops.control import IfElse, ifelse  # noqa: F401
