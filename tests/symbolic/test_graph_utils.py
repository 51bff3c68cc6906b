"""Theano's graph walks and comparisons (symbolic/graph_utils.py, faces theano.gof.graph and
theano.scan_module.scan_utils): orders and answers recorded from Theano 1.0.5."""
import numpy as np
import theon as theano
import theon.tensor as T
from theon.gof import graph as gg
from theon.scan_module.scan_utils import equal_computations


def _names(vs):
    return [v.name if v.name else repr(v) for v in vs]


def test_inputs_and_ancestors_follow_theanos_order():
    x, y = T.vector('x'), T.vector('y')
    e = x * 2 + y
    # Theano 1.0.5: [x, TensorConstant{2}, y]
    ins = gg.inputs([e])
    assert ins[0] is x and ins[2] is y and isinstance(ins[1], theano.Constant)
    assert int(ins[1].data) == 2
    anc = gg.ancestors([e])
    # add, mul, x, dimshuffle(2), 2, y: a left-first depth-first search from the output
    assert anc[0] is e and anc[1] is e.owner.inputs[0] and anc[2] is x and anc[5] is y
    assert anc[3].owner is not None and anc[4] is ins[1]
    assert gg.variables([x], [e]) == anc
    assert gg.orphans([x], [e]) == [ins[1], y]


def test_inputs_lists_shared_variables_and_stops_at_blockers():
    x = T.vector('x')
    s = theano.shared(1.0)
    assert gg.inputs([x * s]) == [x, s]
    h = T.exp(x)
    out = h + 1
    assert gg.inputs([out], blockers=[h]) == [gg.inputs([out])[1]]  # the constant only
    assert gg.ancestors([out], blockers=[h])[:2] == [out, h]


def test_io_toposort_and_ops():
    x = T.vector('x')
    h = T.exp(x)
    out = T.log(h) + h
    order = gg.io_toposort([x], [out])
    assert order[-1] is out.owner and order.index(h.owner) < order.index(order[-1])
    assert gg.ops([x], [out]) == set(order)
    assert gg.io_toposort([h], [out])[0].op != h.owner.op  # stops at an input


def test_clone_copies_the_subgraph():
    x, y = T.vector('x'), T.vector('y')
    out = T.exp(x) * y + 1
    (nx,), (nout,) = gg.clone([x], [out])
    assert nx is not x and nout is not out and nout.owner.op == out.owner.op
    assert y in gg.inputs([nout]) and x not in gg.inputs([nout])
    f = theano.function([nx, y], nout)
    np.testing.assert_allclose(f(np.array([0.0, 1.0]), np.array([2.0, 3.0])),
                               np.exp([0.0, 1.0]) * [2.0, 3.0] + 1)
    (same_x,), _ = gg.clone([x], [out], copy_inputs=False)
    assert same_x is x


def test_is_same_graph_table_of_theanos_docstring():
    x, y, z = T.vector('x'), T.vector('y'), T.vector('z')
    assert gg.is_same_graph(x + 1, x + 1)
    assert not gg.is_same_graph(x + 1, y + 1)
    assert gg.is_same_graph(x + 1, y + 1, givens={x: y})
    assert gg.is_same_graph(x + 1, y + 1, givens=[(y, x)])
    assert not gg.is_same_graph(x * (y * z), (x * y) * z)


def test_equal_computations():
    x, y, z = T.vector('x'), T.vector('y'), T.vector('z')
    a = T.exp(x) + T.log(y)
    assert equal_computations([a], [T.exp(x) + T.log(y)])
    assert not equal_computations([a], [T.exp(y) + T.log(y)])
    assert equal_computations([a], [T.exp(z) + T.log(y)], [x], [z])
    assert not equal_computations([x + 1], [x + 1.0])  # int8 and float64 constants differ
    assert not equal_computations([x + 1], [x + 2])
    assert equal_computations([x + 2], [x + 2])  # equal constants, distinct objects
    assert not equal_computations([a], [a, a])
    assert not equal_computations([x], [y]) and equal_computations([x], [x])
    assert not equal_computations([a], [T.exp(x) - T.log(y)])


def test_equal_computations_on_a_deep_graph_does_not_recurse():
    x = T.vector('x')

    def chain(n):
        h = x
        for _ in range(n):
            h = T.tanh(h) + 1
        return h
    assert equal_computations([chain(3000)], [chain(3000)])
    assert gg.is_same_graph(chain(3000), chain(3000))
    assert len(gg.ancestors([chain(3000)])) > 6000
