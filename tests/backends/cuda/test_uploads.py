"""Host values a device function computes each call (a mean's 1/n from a shape, row indices
from arange) go to the device once while they stay the same (backends/cuda/backend._Upload),
and again as soon as they change; the kernel plan shows a call as every call after the
first makes it."""
from __future__ import annotations

import numpy as np
import theon
import theon.tensor as T
from theon.backends.cuda.plan import kernel_plan


def test_a_host_scalar_goes_up_once_while_it_stays_the_same(device):
    x = T.matrix("x")
    rows = T.arange(x.shape[0])
    f = theon.function([x], [x.mean(axis=0), (x[rows, rows % x.shape[1]] * 2).sum()])
    a = np.arange(12.0).reshape(4, 3)
    f(a)
    device.stats.reset()
    got = f(a)
    # the argument alone goes up: 1/n and the row indices are the first call's copies
    assert device.stats.to_device_calls == 1
    np.testing.assert_allclose(got[0], a.mean(axis=0))
    np.testing.assert_allclose(got[1], 2 * sum(a[i, i % 3] for i in range(4)))
    b = np.arange(15.0).reshape(5, 3) - 4  # another length: new values, sent again
    device.stats.reset()
    got = f(b)
    assert device.stats.to_device_calls > 1
    np.testing.assert_allclose(got[0], b.mean(axis=0))
    np.testing.assert_allclose(got[1], 2 * sum(b[i, i % 3] for i in range(5)))
    np.testing.assert_allclose(f(a)[0], a.mean(axis=0))


def test_the_plan_is_a_later_call(device):
    x = T.matrix("x")
    f = theon.function([x], x.mean())
    plan = kernel_plan(f, np.ones((4, 3)))
    assert [(t.bytes, t.what) for t in plan.transfers if t.to == "device"] == \
        [(96, "argument x")], plan.transfers
