"""The graph layer: Variables, Apply nodes, walks that never recurse, traces, op identity."""
import os
import sys

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.compile.fgraph import FunctionGraph
from theon.symbolic.graph import Apply, Constant, ancestors, clone_replace, graph_inputs, toposort

HERE = os.path.basename(__file__)
BIG = 100_000
BIG_FUNCTION = 20_000  # function() on 100k nodes takes ~7 s; the walks are tested on 100k


def lineno() -> int:
    return sys._getframe(1).f_lineno


def chain(x, n):
    v = x
    for k in range(n):
        v = T.neg(v) if k % 2 else T.sin(v)
    return v


def chain_numpy(x, n):
    v = x
    for k in range(n):
        v = -v if k % 2 else np.sin(v)
    return v


@pytest.fixture(scope="module")
def big_chain():
    x = T.dvector('x')
    return x, chain(x, BIG)


# -- deep graphs ------------------------------------------------------------------------------

def test_big_chain_toposort(big_chain):
    x, out = big_chain
    order = toposort([out])
    assert len(order) == BIG
    assert order[-1] is out.owner
    assert order[0].inputs[0] is x
    pos = {node: k for k, node in enumerate(order)}
    assert all(pos[n.inputs[0].owner] < pos[n] for n in order[1:])


def test_big_chain_ancestors_and_inputs(big_chain):
    x, out = big_chain
    anc = ancestors([out])
    assert len(anc) == BIG + 1
    assert x in anc and out in anc
    assert graph_inputs([out]) == [x]


def test_big_chain_clone_replace(big_chain):
    x, out = big_chain
    y = T.dvector('y')
    (new,) = clone_replace([out], {x: y})
    assert new is not out
    assert graph_inputs([new]) == [y]
    assert graph_inputs([out]) == [x]  # the original is untouched
    # replacing something the graph does not depend on shares the whole graph
    (same,) = clone_replace([out], {T.dvector('z'): y})
    assert same is out


def test_long_chain_function_graph_and_function():
    x = T.dvector('x')
    out = chain(x, BIG_FUNCTION)
    fg = FunctionGraph([x], [out])
    assert len(fg.nodes) == BIG_FUNCTION
    assert len(fg.toposort()) == BIG_FUNCTION
    f = theano.function([x], out)
    X = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(f(X), chain_numpy(X, BIG_FUNCTION))


def test_long_chain_binary_with_constants():
    # every step adds a constant: merge and constant folding see thousands of equal constants
    x = T.dvector('x')
    v = x
    n = 3_000
    for k in range(n):
        v = v + 1.0 if k % 2 == 0 else v * 0.5
    f = theano.function([x], v)
    X = np.linspace(-1, 1, 4)
    e = X.copy()
    for k in range(n):
        e = e + 1.0 if k % 2 == 0 else e * 0.5
    np.testing.assert_allclose(f(X), e)


def test_wide_graph():
    x = T.dvector('x')
    terms = [x * float(k) for k in range(1000)]
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    f = theano.function([x], out)
    np.testing.assert_allclose(f(np.ones(3)), np.full(3, sum(range(1000))))


# -- traces -----------------------------------------------------------------------------------

def test_variable_trace_records_test_file_and_line():
    x = T.dmatrix('x'); line_x = lineno()  # noqa: E702
    y = T.exp(x) + 1; line_y = lineno()  # noqa: E702
    assert os.path.basename(x.trace[0]) == HERE and x.trace[1] == line_x
    assert os.path.basename(y.trace[0]) == HERE and y.trace[1] == line_y
    assert y.trace[2] == 'test_variable_trace_records_test_file_and_line'
    assert y.owner.trace == y.trace
    # the intermediate exp, built on the same line, has it too
    assert y.owner.inputs[0].owner.inputs[0].trace[1] == line_y or \
        y.owner.inputs[0].trace[1] == line_y


def test_trace_survives_compilation():
    x = T.dvector('x')
    y = T.dvector('y')
    out = x + y; line = lineno()  # noqa: E702
    f = theano.function([x, y], out * 2)
    with pytest.raises(ValueError) as err:
        f(np.ones(2), np.ones(3))
    assert f"{HERE}:{line}" in str(err.value)


def test_custom_op_trace_points_at_the_call_not_make_node():
    class Twice(theano.Op):
        __props__ = ()

        def make_node(self, x):
            x = theano.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, out):
            out[0][0] = inputs[0] * 2

    x = T.dvector('x')
    y = Twice()(x); line = lineno()  # noqa: E702
    assert y.trace[1] == line
    assert y.trace[2] == 'test_custom_op_trace_points_at_the_call_not_make_node'


# -- Apply and Variable -----------------------------------------------------------------------

def test_apply_outputs_owner_and_index():
    x, y = T.dmatrices('x', 'y')
    z = x + y
    node = z.owner
    assert isinstance(node, Apply)
    assert node.inputs == [x, y]
    assert node.outputs == [z] and node.out is z
    assert z.index == 0
    assert x.owner is None and x.index is None
    lo, hi = SplitOp()(x)
    assert lo.owner is hi.owner
    assert (lo.index, hi.index) == (0, 1)
    assert lo.owner.outputs == [lo, hi]
    f = theano.function([x], [hi, lo * 2])
    X = np.arange(4.0).reshape(2, 2) - 1
    got_hi, got_lo2 = f(X)
    np.testing.assert_allclose(got_hi, np.maximum(X, 0))
    np.testing.assert_allclose(got_lo2, 2 * np.minimum(X, 0))


class SplitOp(theano.Op):
    """Two outputs: the negative and the positive parts."""

    __props__ = ()

    def make_node(self, x):
        x = theano.as_tensor_variable(x)
        return Apply(self, [x], [x.type(), x.type()])

    def perform(self, node, inputs, out):
        out[0][0] = np.minimum(inputs[0], 0)
        out[1][0] = np.maximum(inputs[0], 0)


def test_apply_output_cannot_belong_to_two_nodes():
    x = T.dvector('x')
    y = T.exp(x)
    with pytest.raises(ValueError, match="another node"):
        Apply(y.owner.op, [x], [y])


def test_variable_repr_and_clone():
    x = T.dvector('xname')
    assert repr(x) == 'xname'
    y = T.exp(x)
    assert 'exp' in repr(y)
    c = x.clone()
    assert c is not x and c.type == x.type and c.name == 'xname' and c.owner is None
    k = T.constant(np.arange(3.0))
    kc = k.clone()
    assert isinstance(kc, Constant) and np.array_equal(kc.data, k.data)
    assert not k.data.flags.writeable


def test_apply_clone_with_new_inputs():
    x, y = T.dvectors('x', 'y')
    z = (x * 2).owner
    new = z.clone_with_new_inputs([y, z.inputs[1]])
    assert new.op == z.op and new.inputs[0] is y
    assert new.outputs[0].type == z.outputs[0].type
    # a different type goes through make_node again
    m = T.dmatrix('m')
    new2 = z.clone_with_new_inputs([m, z.inputs[1]])
    assert new2.outputs[0].ndim == 2


def test_toposort_stop_and_shared_nodes():
    x, y = T.dvectors('x', 'y')
    a = x + y
    b = a * 2
    c = a + b
    order = toposort([c])
    assert order.index(a.owner) < order.index(b.owner) < order.index(c.owner)
    assert len(order) == len(set(order))
    stopped = toposort([c], stop=[b])
    assert b.owner not in stopped and c.owner in stopped
    anc = ancestors([c], stop=[a])
    assert {c, a, b} <= set(anc) and x not in anc and y not in anc
    assert set(ancestors([c])) >= {x, y, a, b, c}


# -- ops --------------------------------------------------------------------------------------

class PropOp(theano.Op):
    __props__ = ("a", "b")

    def __init__(self, a, b=0):
        self.a, self.b = a, b

    def make_node(self, x):
        x = theano.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, out):
        out[0][0] = inputs[0] * self.a + self.b


class OtherOp(PropOp):
    pass


def test_op_equality_via_props():
    assert PropOp(1, 2) == PropOp(1, 2)
    assert hash(PropOp(1, 2)) == hash(PropOp(1, 2))
    assert PropOp(1, 2) != PropOp(1, 3)
    assert PropOp(1, 2) != OtherOp(1, 2)  # a different class is a different op
    assert len({PropOp(1, 2), PropOp(1, 2), PropOp(2, 2)}) == 2
    assert str(PropOp(1, 2)) == 'PropOp{1, 2}'
    assert T.exp.__eq__(T.exp) and T.exp != T.log
    x = T.dvector('x')
    f = theano.function([x], PropOp(2.0, 1.0)(x) + PropOp(2.0, 1.0)(x))
    assert sum(isinstance(n.op, PropOp) for n in f.maker.fgraph.toposort()) == 1
    np.testing.assert_allclose(f(np.arange(3.0)), 2 * (np.arange(3.0) * 2 + 1))


def test_variable_is_hashable_by_identity():
    x = T.dvector('x')
    y = T.dvector('x')
    assert x != y or x is y  # == is not elementwise equality on variables
    assert len({x, y, x}) == 2
