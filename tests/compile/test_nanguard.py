"""NanGuardMode: the first node whose output holds a NaN, an inf or a value over 1e10 raises,
naming the node, its inputs' ranges and the user's line; on the py and C linkers, the table of
steps, inside a loop's body and on the device stand-in (with profiling at the same time)."""
import io
import re

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.backends import numpy_backend
from theon.compile.mode import get_mode
from theon.compile.nanguardmode import NanGuardError, NanGuardMode

# numpy warns about the invalid values these tests make on purpose
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _line_of(tag: str) -> int:
    with open(__file__) as fh:
        return next(k for k, text in enumerate(fh, 1) if text.rstrip().endswith(f"# LINE: {tag}"))


def _where(tag: str) -> str:
    return f"test_nanguard.py:{_line_of(tag)}"


@pytest.fixture(scope="module", params=["py", "c"])
def guarded(request):
    """f(x) = log(x - 1) * 2 + exp(x): a NaN for x < 1, -inf at 1, huge for x > 23."""
    x = T.vector("x")
    shifted = x - 1
    y = T.log(shifted)  # LINE: log
    z = y * 2 + T.exp(x)  # LINE: exp
    return theon.function([x], z, mode=NanGuardMode(linker=request.param))


def test_finite_values_pass(guarded):
    np.testing.assert_allclose(guarded(np.array([2.0, 3.0])),
                               np.log([1.0, 2.0]) * 2 + np.exp([2.0, 3.0]))


def test_a_nan_names_the_node_its_inputs_ranges_and_the_users_line(guarded):
    with pytest.raises(NanGuardError) as info:
        guarded(np.array([0.5, 3.0]))
    msg = str(info.value)
    assert isinstance(info.value, AssertionError)  # as Theano's NanGuardMode raised
    assert msg.startswith("NanGuardMode: a NaN in output 0 of Elemwise{log}")
    assert f"{_where('log')} (in guarded): y = T.log(shifted)" in msg
    # its input: x - 1, from -0.5 to 2
    assert re.search(r"float64 array of shape \(2,\), min -0\.5, max 2\b", msg), msg


def test_an_infinity_and_a_huge_value(guarded):
    with pytest.raises(NanGuardError, match=r"an infinity in output 0 of Elemwise\{log\}"):
        guarded(np.array([1.0, 3.0]))
    with pytest.raises(NanGuardError, match=r"magnitude over 1e\+10") as info:
        guarded(np.array([2.0, 30.0]))
    assert "Elemwise{exp}" in str(info.value) and _where("exp") in str(info.value)


def test_a_nan_argument_is_named_as_the_input_it_is():
    x = T.vector("x")
    f = theon.function([x], T.exp(x), mode=NanGuardMode(linker="py"))
    with pytest.raises(NanGuardError, match=r"a NaN in input 0 \(a value no node made") as info:
        f(np.array([np.nan, 1.0]))
    assert "x: float64 array of shape (2,), min 1, max 1, 1 NaN" in str(info.value)


def test_each_check_can_be_turned_off():
    x = T.vector("x")
    f = theon.function([x], T.log(x) * 1e12, mode=NanGuardMode(nan_is_error=False,
                                                                inf_is_error=False,
                                                                big_is_error=False,
                                                                linker="py"))
    out = f(np.array([-1.0, 0.0, 2.0]))
    assert np.isnan(out[0]) and np.isinf(out[1])
    big_only = NanGuardMode(nan_is_error=False, inf_is_error=False, linker="py")
    g = theon.function([x], T.log(x) * 1e12, mode=big_only)
    with pytest.raises(NanGuardError, match="magnitude over"):  # the NaN is looked past
        g(np.array([-1.0, 2.0]))


def test_the_mode_by_name_and_its_copies():
    mode = get_mode("NanGuardMode")
    assert isinstance(mode, NanGuardMode) and "fusion" not in mode.passes
    assert isinstance(mode.excluding("canonicalize"), NanGuardMode)
    assert not NanGuardMode(big_is_error=False).including("fusion").big_is_error
    from theon.compile import nanguardmode  # theano.compile.nanguardmode under the alias
    assert nanguardmode.NanGuardMode is NanGuardMode


def test_the_table_of_steps_is_guarded(monkeypatch):
    monkeypatch.setattr(numpy_backend, "TABLE_NODES", 1)
    x = T.vector("x")
    f = theon.function([x], T.sqrt(x - 2) + 1, mode=NanGuardMode(linker="py"))
    assert "the schedule: _run" in f.source
    np.testing.assert_allclose(f(np.array([3.0])), [2.0])
    with pytest.raises(NanGuardError, match=r"a NaN in output 0 of Elemwise\{sqrt\}"):
        f(np.array([1.0]))


def test_a_loop_body_is_guarded():
    x = T.vector("x")
    acc0 = T.constant(np.float64(3.0))
    ys, _ = theon.scan(lambda v, acc: T.log(acc - v),  # LINE: scan
                       sequences=[x], outputs_info=[acc0])
    f = theon.function([x], ys, mode=NanGuardMode(linker="py"))
    np.testing.assert_allclose(f(np.array([1.0]))[0], np.log(2.0))
    with pytest.raises(AssertionError, match=r"step 1 \(of 2\)") as info:
        f(np.array([1.0, 5.0]))
    assert "a NaN in output 0 of Elemwise{log}" in str(info.value)
    assert _where("scan") in str(info.value)


def test_on_the_device_stand_in_with_a_profile(device):
    from theon.backends.cuda.simulator import DeviceArray
    x = T.fmatrix("x")
    W = theon.shared(np.ones((3, 4), "float32"), "W")
    assert isinstance(W.get_value(borrow=True, return_internal_type=True), DeviceArray)
    y = T.log(T.dot(x, W) - np.float32(3))  # LINE: device
    f = theon.function([x], y, mode=NanGuardMode(), profile=True)
    np.testing.assert_allclose(f(np.full((2, 3), 2, "float32")), np.log(np.full((2, 4), 3)),
                               rtol=1e-6)
    with pytest.raises(NanGuardError, match=r"an infinity in output 0 of Elemwise\{log\}"
                       ) as info:
        f(np.ones((2, 3), "float32"))
    assert _where("device") in str(info.value)
    assert "float32 array of shape (2, 4), min 0, max 0" in str(info.value)
    stats = f.profile
    assert stats.fct_callcount == 1  # the failed call is not counted
    assert all(n >= 1 for n in stats.apply_callcount.values())
    out = io.StringIO()
    stats.summary(file=out)
    assert _where("device") in out.getvalue()
