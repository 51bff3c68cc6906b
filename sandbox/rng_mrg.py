"""``theano.sandbox.rng_mrg``: the MRG31k3p random streams. Re-exports only: the generator and
its ops live in ``theon/ops/random.py``."""
from ..ops.random import (  # noqa: F401
    M1,
    M2,
    MRG_RandomStreams,
    MRGUniform,
    guess_n_streams,
    mrg_step,
    mrg_uniform_sample,
)

mrg_uniform = MRGUniform
