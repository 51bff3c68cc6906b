"""FunctionGraph bookkeeping: FunctionGraph.check() accepts what rewriting leaves and names
what is broken (a cycle, a stale client list, a stale node set)."""
import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.compile.fgraph import FunctionGraph


def _mlp_function():
    x, y = T.matrix("x"), T.ivector("y")
    W = theano.shared(np.ones((3, 4)), name="W")
    p = T.nnet.softmax(T.dot(x, W) + 0)
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    return theano.function([x, y], [loss, T.grad(loss, W)])


def test_check_accepts_the_rewritten_graph():
    f = _mlp_function()
    f.maker.fgraph.check()
    assert len(f.maker.fgraph.history) > 0  # rewrites did happen


def test_check_finds_a_cycle():
    x = T.vector("x")
    fg = FunctionGraph([x], [T.exp(T.log(x) + 1)])
    def named(name):
        return next(n for n in fg.nodes if getattr(getattr(n.op, "scalar_op", None), "name",
                                                     None) == name)
    log_node, exp_node = named("log"), named("exp")
    log_node.inputs[0] = exp_node.outputs[0]  # log now reads the final output: a cycle
    with pytest.raises(AssertionError, match="cycle"):
        fg.check()


def test_check_finds_stale_clients():
    x = T.vector("x")
    fg = FunctionGraph([x], [T.exp(x) * 2])
    fg.clients[fg.inputs[0]].clear()
    with pytest.raises(AssertionError, match="clients of x are stale"):
        fg.check()


def test_check_finds_a_dead_node_kept():
    x = T.vector("x")
    fg = FunctionGraph([x], [T.exp(x)])
    fg.nodes.add(T.log(x).owner)
    with pytest.raises(AssertionError, match="1 dead node"):
        fg.check()


def test_checking_mode_runs_check():
    x = T.vector("x")
    f = theano.function([x], T.log(1 + x), mode="DebugMode")
    np.testing.assert_allclose(f(np.array([0.5, 1e-10])), np.log1p([0.5, 1e-10]))
