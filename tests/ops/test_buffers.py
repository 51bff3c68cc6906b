"""Thunks that write a result into one of their earlier outputs (``ops/buffers.py``): only
once nobody holds it, so a result the caller keeps, or a view of one, never changes."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.ops import buffers
from theon.ops.blas import Dot, DotAdd
from theon.ops.join import Join

_rng = np.random.default_rng(11)


def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_alone_is_the_count_of_an_array_held_by_one_list_and_one_local():
    pool = [np.empty(8)]
    assert buffers.free_buffer(pool, (8,), np.float64) is pool[0]
    view = pool[0][2:]  # a view holds its base
    assert buffers.free_buffer(pool, (8,), np.float64) is None
    del view
    held = pool[0]  # so does another name
    assert buffers.free_buffer(pool, (8,), np.float64) is None
    del held
    assert buffers.free_buffer(pool, (8,), np.float32) is None  # another dtype
    assert buffers.free_buffer(pool, (4, 2), np.float64) is None  # another shape


def test_recent_keeps_only_large_arrays_and_at_most_slots():
    recent = buffers.Recent()
    recent.array((4,), np.float64)
    assert recent.arrays == []
    shape = (buffers.MIN_BYTES,)
    held = [recent.array(shape, np.uint8) for _ in range(buffers.SLOTS + 1)]
    assert len({id(a) for a in held}) == len(held)  # each held: a new one each time
    assert [id(a) for a in recent.arrays] == [id(a) for a in held[1:]]
    del held
    again = recent.array(shape, np.uint8)  # nobody holds the kept ones now
    assert again is recent.arrays[0] and len(recent.arrays) == buffers.SLOTS


def _thunk(op, *variables):
    node = op.make_node(*variables)
    return node.op.impl(node)


CASES = {
    "dot": (lambda: _thunk(Dot(), T.dmatrix(), T.dmatrix()),
            lambda a, b: a @ b, lambda: [_rng.normal(size=(90, 40)),
                                            _rng.normal(size=(40, 100))]),
    "dot_add": (lambda: _thunk(DotAdd(), T.dmatrix(), T.dmatrix(), T.drow()),
                lambda a, b, c: a @ b + c,
                lambda: [_rng.normal(size=(90, 40)), _rng.normal(size=(40, 100)),
                         _rng.normal(size=(1, 100))]),
    "join": (lambda: _thunk(Join(1), T.dmatrix(), T.dmatrix()),
             lambda a, b: np.concatenate([a, b], axis=1),
             lambda: [_rng.normal(size=(90, 50)), _rng.normal(size=(90, 60))]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_large_result_is_reused_only_once_dropped(case):
    make, reference, data = CASES[case]
    fn = make()
    args = data()
    other = [2 * a for a in args]
    first = fn(*args)
    kept = first.copy()
    view = first[3:]
    del first
    second = fn(*other)  # the view holds the first result: a new array
    np.testing.assert_array_equal(view, kept[3:])
    np.testing.assert_allclose(second, reference(*other))
    ptr = _ptr(second)
    del second
    third = fn(*args)  # nobody holds the second result: written into it
    assert _ptr(third) == ptr
    np.testing.assert_allclose(third, kept)


def test_small_results_are_not_kept():
    fn = _thunk(Dot(), T.dmatrix(), T.dmatrix())
    a, b = _rng.normal(size=(3, 4)), _rng.normal(size=(4, 5))
    first = fn(a, b)
    assert fn(a, b) is not first
    np.testing.assert_allclose(fn(a, b), a @ b)


def test_a_join_that_fails_still_says_why():
    fn = _thunk(Join(0), T.dmatrix(), T.dmatrix())
    with pytest.raises(ValueError, match="all dimensions but 0 must match"):
        fn(np.zeros((300, 60)), np.zeros((300, 61)))


def test_a_function_result_the_caller_keeps_never_changes():
    # the product is an output: reused by a later call only once the caller dropped it
    x, w = T.dmatrix("x"), T.dmatrix("w")
    h = T.dot(x, w)
    f = theano.function([x, w], [h, T.concatenate([h, x], axis=1).sum(axis=0)])
    xs = [_rng.normal(size=(120, 30)) for _ in range(3)]
    wv = _rng.normal(size=(30, 80))
    results = [f(v, wv) for v in xs]
    for v, (hv, s) in zip(xs, results):
        np.testing.assert_allclose(hv, v @ wv)
        np.testing.assert_allclose(s, np.concatenate([v @ wv, v], axis=1).sum(axis=0))
