"""MRG31k3p random streams on the device (``backends/cuda/mrg.py``), on the CPU stand-in: the
kernel traced from ``ops/random.mrg_step`` draws the CPU's numbers bit for bit, and the
streams' state lives in device memory, advanced in place."""
from __future__ import annotations

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon import config
from theon.backends.cuda.simulator import DeviceArray
from theon.sandbox.rng_mrg import MRG_RandomStreams


def _draws():
    """A function drawing uniforms (float32; float64 from 7 streams that do not divide the
    50 samples), a dropout mask (binomial) and normals, and its generator."""
    srng = MRG_RandomStreams(1234)
    x = T.matrix("x")
    outs = [srng.uniform((5, 7), dtype="float32"),
            srng.uniform((50,), dtype="float64", nstreams=7),
            x * srng.binomial(size=x.shape, p=0.8, dtype=x.dtype),
            srng.normal((3, 5), dtype="float64"), srng.normal((2, 3), dtype="float32")]
    return theon.function([x], outs), srng


def test_draws_are_the_cpus_bit_for_bit_and_the_state_stays_on_the_device(device):
    X = np.ones((4, 9))
    config.device = "cpu"
    # the numpy path: the C backend's vector log and cos (libmvec) may round a normal an ulp
    # from numpy's, and whether a call runs the C kernel depends on whether it is compiled yet
    linker, config.linker = config.linker, "py"
    try:
        f, srng = _draws()
        want = [f(X) for _ in range(2)]
    finally:
        config.linker = linker
    want_states = [s[0].get_value() for s in srng.state_updates]
    config.device = "cuda"
    f, srng = _draws()
    states = [s[0] for s in srng.state_updates]
    held = [s.get_value(borrow=True, return_internal_type=True) for s in states]
    assert all(isinstance(a, DeviceArray) for a in held)
    device.stats.reset()
    got = [f(X) for _ in range(2)]
    for call_got, call_want in zip(got, want):
        for g, w in zip(call_got[:4], call_want[:4]):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
        # float32 normals: the uniforms are the same, log/cos/sin of float32 round as the
        # stand-in's libm does, an ulp from numpy's here and there
        np.testing.assert_allclose(call_got[4], call_want[4], rtol=3e-7, atol=0)
    assert f.fn.host_ops == []
    # each call moved the argument in and the five outputs out, no state; the kernel wrote
    # each new state over the old one (the same device arrays)
    assert device.stats.to_device_calls == 2 and device.stats.to_host_calls == 2 * 5
    for s, a, w in zip(states, held, want_states):
        assert s.get_value(borrow=True, return_internal_type=True) is a
        value = s.get_value()
        assert type(value) is np.ndarray
        np.testing.assert_array_equal(value, w)


def test_a_dropout_graph_passes_assert_no_cpu_op(device):
    srng = MRG_RandomStreams(7)
    x = T.matrix("x")
    config.assert_no_cpu_op = "raise"
    try:
        f = theon.function([x], x * srng.binomial(size=x.shape, p=0.5, dtype=x.dtype))
    finally:
        config.assert_no_cpu_op = "ignore"
    assert f.fn.host_ops == []
    # a recorded call (kernel_plan) puts the state it overwrote back as it was
    from theon import printing
    state = srng.state_updates[0][0]
    start = state.get_value()
    plan = printing.kernel_plan(f, np.ones((3, 4)), file=None)
    assert plan.launches[0].name.startswith("MRGUniform")
    np.testing.assert_array_equal(state.get_value(), start)
    r = f(np.ones((3, 4)))
    assert set(np.unique(r)) <= {0.0, 1.0}
    assert not np.array_equal(state.get_value(), start)


def test_a_state_read_elsewhere_is_not_overwritten(device):
    """Without its update (no_default_updates), or returned too, the old state keeps its
    value: the kernel writes the new one into a new array."""
    srng = MRG_RandomStreams(11)
    u = srng.uniform((6,), dtype="float64")
    state = srng.state_updates[0][0]
    start = state.get_value()
    f = theon.function([], u, no_default_updates=True)
    first = f()
    np.testing.assert_array_equal(f(), first)
    np.testing.assert_array_equal(state.get_value(), start)
    g = theon.function([], [u, state])
    old = state.get_value(borrow=True, return_internal_type=True)
    draws, seen = g()
    np.testing.assert_array_equal(seen, start)
    np.testing.assert_array_equal(old.get(), start)
    np.testing.assert_array_equal(draws, first)
    assert not np.array_equal(state.get_value(), start)  # (the update happened)


def test_only_mrg_states_go_to_the_device(device):
    srng = MRG_RandomStreams(3)
    srng.uniform((4,))
    state = srng.state_updates[0][0]
    state.set_value(state.get_value())
    assert isinstance(state.container[0], DeviceArray)
    srng.seed(5)
    assert isinstance(state.container[0], DeviceArray)
    assert state.get_value().dtype == np.int32
    other = theon.shared(np.zeros((3, 6), "int32"))  # an integer matrix like it: the host
    assert type(other.container[0]) is np.ndarray


def test_the_kernel_arithmetic_is_traced_from_the_numpy_step():
    """The rendered step holds no MRG constant the numpy code does not: every literal of the
    kernel comes from tracing ``mrg_step`` and ``mrg_to_float``."""
    from theon.backends.cuda.mrg import mrg_kernel_source, mrg_stream_step
    from theon.ops import random as R
    traced = mrg_stream_step("float64")
    assert {R.M1, R.M2, R.MULT2, R.MASK12, R.MASK13, R.MASK2} <= set(traced.constants)
    assert traced.graph.out_dtypes == ("int64",) * 6 + ("float64",)
    source = mrg_kernel_source("float32", "k")
    assert "2147483647LL" in source and "float *out" in source
    with pytest.raises(ValueError, match="float16"):
        mrg_kernel_source("float16", "k")
