"""function(): inputs and outputs, In defaults, updates, shared variables, givens, rewrites that
must happen (folding, merging), output aliasing, eval/clone, printing, custom ops and modes."""
import io
import time

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.symbolic.graph import Apply, Constant

rng = np.random.default_rng(42)


def rand(*shape):
    return rng.standard_normal(shape)


# -- the quick start --------------------------------------------------------------------------

def test_quick_start():
    x, y, z = T.matrices('x', 'y', 'z')
    a = x + y
    b = a * z
    c = a + b
    f = theano.function([x, y, z], c)
    X, Y, Z = rand(3, 4), rand(3, 4), rand(3, 4)
    out = f(X, Y, Z)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64 and out.shape == (3, 4)
    np.testing.assert_allclose(out, (X + Y) + (X + Y) * Z)
    # keyword call by the variables' names
    np.testing.assert_allclose(f(x=X, y=Y, z=Z), out)
    np.testing.assert_allclose(f(X, z=Z, y=Y), out)


def test_single_output_vs_list_output():
    x = T.dvector('x')
    X = rand(5)
    f1 = theano.function([x], x * 2)
    assert isinstance(f1(X), np.ndarray)
    np.testing.assert_allclose(f1(X), X * 2)
    f2 = theano.function([x], [x * 2])
    r = f2(X)
    assert isinstance(r, list) and len(r) == 1
    np.testing.assert_allclose(r[0], X * 2)
    f3 = theano.function([x], [x * 2, x.sum()])
    r = f3(X)
    assert isinstance(r, list) and len(r) == 2
    np.testing.assert_allclose(r[1], X.sum())
    assert isinstance(r[1], np.ndarray) and r[1].ndim == 0  # scalars come back as 0-d arrays
    f4 = theano.function([x], (x * 2, x + 1))  # a tuple is a list of outputs too
    assert isinstance(f4(X), list)


def test_no_outputs():
    x = T.dvector('x')
    W = theano.shared(np.zeros(3), 'W')
    f = theano.function([x], [], updates=[(W, W + x)])
    assert f(np.ones(3)) == []
    np.testing.assert_allclose(W.get_value(), np.ones(3))
    g = theano.function([], updates=[(W, W * 2)])
    assert g() == []
    np.testing.assert_allclose(W.get_value(), 2 * np.ones(3))


def test_In_default_value_and_name():
    x = T.dmatrix('x')
    s = T.dscalar('s')
    f = theano.function([x, theano.In(s, value=2.0, name='k')], x * s)
    X = rand(2, 3)
    np.testing.assert_allclose(f(X), X * 2.0)
    np.testing.assert_allclose(f(X, 3.0), X * 3.0)
    np.testing.assert_allclose(f(X, k=4.0), X * 4.0)
    np.testing.assert_allclose(f(x=X, k=5.0), X * 5.0)
    with pytest.raises(TypeError, match="no input named 's'"):
        f(X, s=1.0)  # renamed by In(name='k')
    with pytest.raises(TypeError, match="given twice"):
        f(X, 1.0, k=2.0)


def test_In_default_uses_variable_name_and_several_defaults():
    a, b, c = T.dscalars('a', 'b', 'c')
    f = theano.function([a, theano.In(b, value=1.0), theano.In(c, value=10.0)], a + 2 * b + 3 * c)
    assert float(f(1.0)) == 1.0 + 2.0 + 30.0
    assert float(f(1.0, c=0.0)) == 1.0 + 2.0
    assert float(f(1.0, b=0.5)) == 1.0 + 1.0 + 30.0
    assert float(f(1.0, 2.0, 3.0)) == 1.0 + 4.0 + 9.0


def test_wrong_number_of_arguments_names_the_inputs():
    x, y, z = T.matrices('x', 'y', 'z')
    f = theano.function([x, y, z], x + y + z)
    X = rand(2, 2)
    with pytest.raises(TypeError) as err:
        f(X, X)
    msg = str(err.value)
    assert "z" in msg and "(x, y, z)" in msg
    with pytest.raises(TypeError) as err:
        f(X, X, X, X)
    msg = str(err.value)
    assert "3" in msg and "4" in msg and "(x, y, z)" in msg
    with pytest.raises(TypeError, match="no input named 'w'"):
        f(X, X, w=X)


# -- updates and shared variables ------------------------------------------------------------

def test_updates_list_of_pairs_swap():
    p = theano.shared(np.float64(1.0), 'p')
    q = theano.shared(np.float64(2.0), 'q')
    swap = theano.function([], [], updates=[(p, q), (q, p)])
    swap()
    assert (p.get_value(), q.get_value()) == (2.0, 1.0)
    swap()
    assert (p.get_value(), q.get_value()) == (1.0, 2.0)


def test_updates_dict_all_computed_from_values_before_call():
    a = theano.shared(np.arange(3.0), 'a')
    b = theano.shared(np.ones(3), 'b')
    f = theano.function([], a + b, updates={a: a * 10 + b, b: a - b})
    a0, b0 = a.get_value(), b.get_value()
    out = f()
    np.testing.assert_allclose(out, a0 + b0)  # the output sees the values before updates
    np.testing.assert_allclose(a.get_value(), a0 * 10 + b0)
    np.testing.assert_allclose(b.get_value(), a0 - b0)


def test_update_with_array_value_and_counter():
    count = theano.shared(np.int64(0), 'count')
    x = T.dvector('x')
    f = theano.function([x], x.sum(), updates=[(count, count + 1)])
    for _ in range(5):
        f(np.ones(2))
    assert count.get_value() == 5
    assert count.get_value().dtype == np.int64


def test_shared_variable_used_by_two_functions():
    x = T.dmatrix('x')
    W0 = rand(3, 3)
    W = theano.shared(W0, 'W')
    lr = 0.1
    cost = ((x.dot(W)) ** 2).sum()
    train = theano.function([x], cost, updates=[(W, W - lr * x)])
    predict = theano.function([x], x.dot(W))
    X = rand(3, 3)
    np.testing.assert_allclose(predict(X), X @ W0)
    c = train(X)
    np.testing.assert_allclose(c, ((X @ W0) ** 2).sum())
    np.testing.assert_allclose(predict(X), X @ (W0 - lr * X))
    W.set_value(np.eye(3))
    np.testing.assert_allclose(predict(X), X)


def test_get_value_and_set_value_copy_semantics():
    v = np.zeros(3)
    s = theano.shared(v, 's')
    v[0] = 1.0  # shared() copied the value
    np.testing.assert_array_equal(s.get_value(), np.zeros(3))
    got = s.get_value()
    got[1] = 5.0  # get_value() returns a copy
    np.testing.assert_array_equal(s.get_value(), np.zeros(3))
    # the stored value itself (a device array on a device: borrow=True alone gives a host copy)
    internal = s.get_value(borrow=True, return_internal_type=True)
    assert internal is s.get_value(borrow=True, return_internal_type=True)

    new = np.arange(3.0)
    s.set_value(new)
    new[0] = 100.0  # set_value copies
    np.testing.assert_array_equal(s.get_value(), np.arange(3.0))
    if theano.config.device == "cpu":  # (a device keeps a copy in its memory: no borrowing)
        s.set_value(new, borrow=True)
        assert s.get_value(borrow=True) is new
        w = np.ones(2)
        b = theano.shared(w, 'b', borrow=True)
        assert b.get_value(borrow=True) is w

    with pytest.raises(TypeError):
        s.set_value(np.zeros((2, 2)))  # ndim is fixed
    s.set_value(np.zeros(7))  # shape may change
    assert s.get_value().shape == (7,)


def test_set_value_then_call_sees_new_value():
    W = theano.shared(np.ones(2), 'W')
    f = theano.function([], W * 3)
    np.testing.assert_allclose(f(), 3 * np.ones(2))
    W.set_value(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(f(), [3.0, 6.0, 9.0])


def test_update_changing_dtype_is_refused_naming_both():
    W = theano.shared(np.zeros(3), 'W_dtype')
    with pytest.raises(TypeError) as err:
        theano.function([], [], updates=[(W, T.cast(W, 'float32'))])
    msg = str(err.value)
    assert "W_dtype" in msg and "float64" in msg and "float32" in msg


def test_update_changing_ndim_is_refused_naming_both():
    W = theano.shared(np.zeros(3), 'W_ndim')
    with pytest.raises(TypeError) as err:
        theano.function([], [], updates=[(W, W.dimshuffle('x', 0))])
    msg = str(err.value)
    assert "W_ndim" in msg and "vector" in msg and "matrix" in msg


def test_update_values_never_alias_arguments_or_other_shared():
    x = T.dvector('x')
    W = theano.shared(np.zeros(3), 'W')
    V = theano.shared(np.zeros(3), 'V')
    f = theano.function([x], [], updates=[(W, x)])
    X = np.ones(3)
    f(X)
    X[0] = 55.0  # the caller's array is not the shared storage
    np.testing.assert_array_equal(W.get_value(), np.ones(3))
    g = theano.function([x], [], updates=[(W, x.T)])  # a view of the argument
    g(X)
    X[1] = 66.0
    np.testing.assert_array_equal(W.get_value(), [55.0, 1.0, 1.0])
    h = theano.function([], [], updates=[(V, W)])
    h()
    W.get_value(borrow=True)[:] = 7.0
    np.testing.assert_array_equal(V.get_value(), [55.0, 1.0, 1.0])
    k = theano.function([x], [], updates=[(V, x * 2), (W, x * 2)])  # one value, two vars
    k(np.ones(3))
    V.get_value(borrow=True)[:] = -1.0
    np.testing.assert_array_equal(W.get_value(), 2 * np.ones(3))
    c = theano.function([], [], updates=[(W, T.constant(np.arange(3.0)))])
    c()
    W.get_value(borrow=True)[0] = 9.0  # the stored value is writable, not the constant
    c()
    np.testing.assert_array_equal(W.get_value(), np.arange(3.0))


def test_update_with_plain_values_takes_the_shared_dtype():
    s = theano.shared(np.float64(1.0), 's')
    W = theano.shared(np.zeros(3, dtype='float32'), 'W32')
    f = theano.function([], [], updates=[(s, 0.5), (W, [1.0, 2.0, 3.0])])
    f()
    assert s.get_value() == 0.5 and s.get_value().dtype == np.float64
    assert W.get_value().dtype == np.float32
    np.testing.assert_array_equal(W.get_value(), [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match='W32'):
        theano.function([], [], updates=[(W, np.zeros((2, 2)))])


def test_update_of_non_shared_is_refused():
    x = T.dvector('x')
    with pytest.raises(TypeError, match="not a shared variable"):
        theano.function([x], x, updates=[(x, x + 1)])


# -- givens ---------------------------------------------------------------------------------

def test_givens_minibatch_idiom():
    data_np = np.arange(40.0).reshape(20, 2)
    labels_np = np.arange(20.0)
    data = theano.shared(data_np, 'data')
    labels = theano.shared(labels_np, 'labels')
    x = T.dmatrix('x')
    y = T.dvector('y')
    i = T.lscalar('i')
    bs = 5
    cost = (x.sum(axis=1) * y).sum()
    f = theano.function([i], cost, givens={x: data[i * bs:(i + 1) * bs],
                                           y: labels[i * bs:(i + 1) * bs]})
    for k in range(4):
        sl = slice(k * bs, (k + 1) * bs)
        np.testing.assert_allclose(f(k), (data_np[sl].sum(axis=1) * labels_np[sl]).sum())
    data.set_value(data_np * 2)
    np.testing.assert_allclose(f(0), 2 * (data_np[:5].sum(axis=1) * labels_np[:5]).sum())


def test_givens_replace_a_shared_variable_and_list_form():
    W = theano.shared(np.ones(3), 'W')
    v = T.dvector('v')
    f = theano.function([v], W * 2, givens=[(W, v)])
    np.testing.assert_allclose(f(np.arange(3.0)), np.arange(3.0) * 2)


def test_givens_type_mismatch_is_refused():
    x = T.dmatrix('x')
    v = T.dvector('v')
    with pytest.raises(TypeError, match="givens"):
        theano.function([v], x * 2, givens={x: v})


# -- rewrites that must happen ---------------------------------------------------------------

def test_constants_are_folded():
    x = T.dmatrix('x')
    c = T.constant(np.arange(4.0).reshape(2, 2))
    out = x + T.exp(c) * 3.0 + (T.constant(2.0) * T.constant(5.0))
    f = theano.function([x], out)
    for node in f.maker.fgraph.toposort():
        assert not all(isinstance(i, Constant) for i in node.inputs), node
    X = rand(2, 2)
    np.testing.assert_allclose(f(X), X + np.exp(np.arange(4.0).reshape(2, 2)) * 3 + 10)


def test_fully_constant_function():
    f = theano.function([], T.exp(T.constant(np.ones(3))) * 2)
    assert all(not all(isinstance(i, Constant) for i in n.inputs)
               for n in f.maker.fgraph.toposort())
    np.testing.assert_allclose(f(), np.exp(np.ones(3)) * 2)
    r = f()
    r[:] = -1  # the folded constant must not be exposed
    np.testing.assert_allclose(f(), np.exp(np.ones(3)) * 2)


def test_duplicate_subexpressions_are_merged():
    x, y = T.dmatrices('x', 'y')
    e1 = T.tanh(x + y)
    e2 = T.tanh(x + y)  # built twice, equal
    f = theano.function([x, y], e1 * 2 + e2 * 3)
    names = [str(n.op) for n in f.maker.fgraph.toposort()]
    assert sum('tanh' in n for n in names) == 1, names
    assert sum(n == 'Elemwise{add}' for n in names) <= 2, names
    X, Y = rand(3, 3), rand(3, 3)
    np.testing.assert_allclose(f(X, Y), 5 * np.tanh(X + Y))


def test_rewrites_do_not_change_user_graph():
    x = T.dvector('x')
    out = T.log(T.exp(x) + 1) * (T.constant(2.0) + T.constant(3.0))
    before = theano.printing.debugprint(out, file='str')
    theano.function([x], out)
    assert theano.printing.debugprint(out, file='str') == before


# -- aliasing ---------------------------------------------------------------------------------

def test_identity_output_does_not_alias_input():
    x = T.dvector('x')
    f = theano.function([x], x)
    X = np.arange(3.0)
    r = f(X)
    r[0] = 99.0
    np.testing.assert_array_equal(X, np.arange(3.0))
    assert not np.shares_memory(f(X), X)


def test_shared_output_does_not_alias_storage():
    W = theano.shared(np.arange(4.0), 'W')
    f = theano.function([], W)
    r = f()
    r[:] = -5.0
    np.testing.assert_array_equal(W.get_value(), np.arange(4.0))
    np.testing.assert_array_equal(f(), np.arange(4.0))


def test_view_outputs_do_not_alias():
    x = T.dmatrix('x')
    W = theano.shared(np.arange(6.0).reshape(2, 3), 'W')
    f = theano.function([x], [x.T, x[0], W.T, W[1]])
    X = np.arange(6.0).reshape(3, 2)
    for r in f(X):
        r[...] = -1.0
    np.testing.assert_array_equal(X, np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(W.get_value(), np.arange(6.0).reshape(2, 3))


def test_same_variable_output_twice():
    x = T.dvector('x')
    y = x * 2
    f = theano.function([x], [y, y])
    r1, r2 = f(np.ones(3))
    assert r1 is not r2 and not np.shares_memory(r1, r2)
    r1[0] = 100.0
    assert r2[0] == 2.0
    g = theano.function([x], [x * 2, x * 2])  # equal, merged into one node
    r1, r2 = g(np.ones(3))
    assert not np.shares_memory(r1, r2)


def test_output_equal_to_update_does_not_alias_shared():
    W = theano.shared(np.zeros(3), 'W')
    new = W + 1
    f = theano.function([], new, updates=[(W, new)])
    r = f()
    np.testing.assert_array_equal(r, np.ones(3))
    r[:] = 100.0
    np.testing.assert_array_equal(W.get_value(), np.ones(3))
    g = theano.function([], W + 1, updates=[(W, W + 1)])  # equal expressions get merged
    r = g()
    r[:] = -7.0
    np.testing.assert_array_equal(W.get_value(), 2 * np.ones(3))


def test_results_are_fresh_between_calls():
    x = T.dvector('x')
    f = theano.function([x], x + 1)
    r1 = f(np.zeros(2))
    r1[:] = 50
    np.testing.assert_array_equal(f(np.zeros(2)), np.ones(2))


# -- eval, clone ------------------------------------------------------------------------------

def test_eval():
    x = T.dvector('x')
    y = T.dvector('y')
    out = (x * y).sum()
    X, Y = rand(4), rand(4)
    np.testing.assert_allclose(out.eval({x: X, y: Y}), (X * Y).sum())
    np.testing.assert_allclose(out.eval({x: Y, y: X}), (X * Y).sum())  # cached function reused
    np.testing.assert_allclose((T.constant(2.0) * 3).eval(), 6.0)
    W = theano.shared(np.arange(3.0))
    np.testing.assert_allclose((W * 2).eval(), np.arange(3.0) * 2)


def test_clone_replace():
    x = T.dvector('x')
    y = T.dvector('y')
    out = T.exp(x) + x * 2
    cl = theano.clone(out, replace={x: y})
    assert cl is not out
    Y = rand(3)
    np.testing.assert_allclose(cl.eval({y: Y}), np.exp(Y) + Y * 2)
    # the original graph is untouched
    X = rand(3)
    np.testing.assert_allclose(out.eval({x: X}), np.exp(X) + X * 2)
    # lists and partial replacement
    a, b = theano.clone([out, x + 1], replace={x: y * 3})
    np.testing.assert_allclose(b.eval({y: Y}), Y * 3 + 1)
    np.testing.assert_allclose(a.eval({y: Y}), np.exp(3 * Y) + 6 * Y)


# -- printing ---------------------------------------------------------------------------------

def test_debugprint_function_and_variable():
    x, y = T.dmatrices('x', 'y')
    out = T.tanh(x + y) * y
    f = theano.function([x, y], out)
    buf = io.StringIO()
    theano.printing.debugprint(f, file=buf)
    text = buf.getvalue()
    # one fused node, printed as its formula
    assert 'tanh((x + y)) * y' in text.replace('i0', 'x').replace('i1', 'y'), text
    assert 'x' in text and 'y' in text
    s = theano.printing.debugprint(out, file='str')
    assert isinstance(s, str)
    assert 'Elemwise{tanh}' in s and 'Elemwise{add}' in s and 'Elemwise{mul}' in s
    assert '[id A]' in s


def test_debugprint_to_stdout(capsys):
    x = T.dvector('x')
    theano.printing.debugprint(T.exp(x))
    assert 'exp' in capsys.readouterr().out


def test_print_op_prints_when_computed(capsys):
    x = T.dvector('x')
    px = theano.printing.Print('hello-msg')(x)
    f = theano.function([x], px * 2)
    assert 'hello-msg' not in capsys.readouterr().out  # building and compiling print nothing
    np.testing.assert_allclose(f(np.array([1.0, 2.0])), [2.0, 4.0])
    out = capsys.readouterr().out
    assert 'hello-msg' in out and '1.' in out and '2.' in out
    f(np.array([1.0, 2.0]))
    assert 'hello-msg' in capsys.readouterr().out  # at every call


def test_print_op_is_not_constant_folded(capsys):
    c = theano.printing.Print('const-msg')(T.constant(np.array([3.0, 4.0])))
    f = theano.function([], c * 2)
    assert 'const-msg' not in capsys.readouterr().out
    np.testing.assert_allclose(f(), [6.0, 8.0])
    assert 'const-msg' in capsys.readouterr().out
    assert any(isinstance(n.op, theano.printing.Print) for n in f.maker.fgraph.toposort())


# -- custom ops -------------------------------------------------------------------------------

def test_as_op_decorator():
    @theano.compile.ops.as_op(itypes=[T.dmatrix], otypes=[T.dmatrix])
    def numpy_flip(a):
        return a[::-1]

    x = T.dmatrix('x')
    f = theano.function([x], numpy_flip(x) * 2)
    X = rand(3, 2)
    np.testing.assert_allclose(f(X), X[::-1] * 2)
    with pytest.raises(TypeError):
        numpy_flip(T.dvector())


class DoubleOp(theano.Op):
    """A user's Op written as in the Theano tutorial."""

    __props__ = ()

    def make_node(self, x):
        x = theano.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        (xv,) = inputs
        output_storage[0][0] = xv * 2

    def infer_shape(self, fgraph, node, shapes):
        return shapes


class ScaleOp(theano.Op):
    __props__ = ("factor",)

    def __init__(self, factor):
        self.factor = factor

    def make_node(self, x):
        x = theano.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * self.factor


def test_custom_op_class():
    x = T.dmatrix('x')
    f = theano.function([x], DoubleOp()(x) + 1)
    X = rand(2, 3)
    np.testing.assert_allclose(f(X), X * 2 + 1)
    g = theano.function([x], DoubleOp()(x).shape)
    np.testing.assert_array_equal(g(X), [2, 3])
    assert DoubleOp() == DoubleOp() and hash(DoubleOp()) == hash(DoubleOp())
    assert ScaleOp(2.0) == ScaleOp(2.0) and ScaleOp(2.0) != ScaleOp(3.0)
    # equal ops on equal inputs are merged, different props are not
    h = theano.function([x], ScaleOp(2.0)(x) + ScaleOp(2.0)(x) + ScaleOp(3.0)(x))
    n_scale = sum(isinstance(n.op, ScaleOp) for n in h.maker.fgraph.toposort())
    assert n_scale == 2
    np.testing.assert_allclose(h(X), 7 * X)


def test_custom_op_wrong_dtype_raises_clear_type_error():
    class BadDtypeOp(DoubleOp):
        def perform(self, node, inputs, output_storage):
            output_storage[0][0] = (inputs[0] * 2).astype('float32')

    x = T.dmatrix('x')
    out = BadDtypeOp()(x)
    line = __import__('inspect').currentframe().f_lineno - 1
    f = theano.function([x], out)
    with pytest.raises(TypeError) as err:
        f(rand(2, 2))
    msg = str(err.value)
    assert 'BadDtypeOp' in msg and 'float32' in msg and 'float64' in msg
    assert f"test_function.py:{line}" in msg


# -- modes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ['FAST_COMPILE', 'FAST_RUN', theano.Mode(optimizer=None)])
def test_modes_agree(mode):
    x, y = T.dmatrices('x', 'y')
    out = T.log(T.exp(x) + 1) * y + (x - x) + T.sqr(y).sum(axis=0) + T.constant(2.0) * 3
    X, Y = rand(3, 4), rand(3, 4)
    f = theano.function([x, y], out, mode=mode)
    expected = np.log(np.exp(X) + 1) * Y + np.sum(Y ** 2, axis=0) + 6.0
    np.testing.assert_allclose(f(X, Y), expected, rtol=1e-12, atol=1e-12)


def test_mode_none_keeps_graph():
    x = T.dvector('x')
    out = x + T.constant(2.0) * T.constant(3.0)
    f = theano.function([x], out, mode=theano.Mode(optimizer=None))
    assert len(f.maker.fgraph.toposort()) >= 2  # nothing folded
    np.testing.assert_allclose(f(np.zeros(2)), [6.0, 6.0])


def test_call_overhead_sanity():
    x = T.dscalar('x')
    f = theano.function([x], x * 2 + 1)
    X = np.float64(3.0)
    start = time.perf_counter()
    for _ in range(2000):
        r = f(X)
    elapsed = time.perf_counter() - start
    assert float(r) == 7.0
    print(f"call overhead: {elapsed / 2000 * 1e6:.1f} us per call")  # informative only
    for v in (3.0, 3, np.float64(3.0), np.array(3.0)):
        assert float(f(v)) == 7.0


def test_generated_source_leaves_linecache_with_its_function():
    import gc
    import linecache
    x = T.vector()
    before = set(linecache.cache)
    fs = [theano.function([x], x * k) for k in range(20)]
    added = set(linecache.cache) - before
    assert len(added) >= 20  # tracebacks can show the generated lines
    del fs
    gc.collect()
    assert not added & set(linecache.cache)


# -- review findings: In(update=), ambiguous names, dict and nested outputs, givens values ------
def test_in_update_rewrites_the_default_after_each_call():
    s = T.dscalar("s")
    g = theano.function([theano.In(s, value=1.0, update=s + 1)], s * 2)
    assert [float(g()) for _ in range(3)] == [2.0, 4.0, 6.0]
    assert float(g(10.0)) == 20.0 and float(g()) == 22.0  # the update also follows a given value
    with pytest.raises(TypeError, match="has an update but no value"):
        theano.function([theano.In(s, update=s + 1)], s * 2)
    with pytest.raises(TypeError, match="must have the input's type"):
        theano.function([theano.In(s, value=1.0, update=T.dvector())], s * 2,
                        on_unused_input="ignore")


def test_bad_default_value_fails_at_compile_time():
    s = T.dscalar("s")
    with pytest.raises(TypeError, match="s"):
        theano.function([theano.In(s, value="abc")], s * 2)


def test_keyword_for_a_name_two_inputs_share_is_refused():
    a, b = T.dscalar("x"), T.dscalar("x")
    f = theano.function([a, b], a - b)
    assert float(f(5.0, 1.0)) == 4.0
    with pytest.raises(TypeError, match="more than one input is named 'x'"):
        f(5.0, x=1.0)


def test_dict_outputs_return_a_dict_and_nested_lists_are_refused():
    x = T.dvector("x")
    d = theano.function([x], {"a": x * 2, "b": x.sum()})(np.ones(2))
    assert set(d) == {"a", "b"}
    np.testing.assert_array_equal(d["a"], [2.0, 2.0])
    assert float(d["b"]) == 2.0
    with pytest.raises(TypeError, match="output 0 is a list"):
        theano.function([x], [[x * 2]])


def test_givens_accept_plain_values_of_the_replaced_type():
    q, i, v = T.dscalar("q"), T.iscalar("i"), T.dvector("v")
    assert float(theano.function([], q * 2, givens={q: 1.5})()) == 3.0
    out = theano.function([], i * 2, givens={i: 3})()
    assert out == 6 and out.dtype == np.int32
    np.testing.assert_array_equal(theano.function([], v * 2, givens={v: [1, 2]})(), [2.0, 4.0])
    with pytest.raises(TypeError, match="givens must be a dict"):
        theano.function([], v * 2, givens=5)


def test_results_never_share_memory_with_each_other_or_with_updated_shared_values():
    s = theano.shared(np.arange(4.0))
    new = s * 2
    out = theano.function([], new[1:], updates=[(s, new)])()
    out[...] = -1
    np.testing.assert_array_equal(s.get_value(), [0.0, 2.0, 4.0, 6.0])
    x = T.dvector("x")
    y = x * 2
    for outputs in ([y, y.reshape((2, 2))], [x * 2, (x * 2)[1:]], [y, y]):
        a, b = theano.function([x], outputs)(np.arange(4.0))
        assert not np.shares_memory(a, b)


def test_compiled_functions_and_graphs_pickle():
    import pickle
    x, y = T.dmatrix("x"), T.ivector("y")
    W = theano.shared(np.zeros((3, 2)), name="W")
    p = T.nnet.softmax(T.dot(x, W))
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    train = theano.function([x, y], loss, updates=[(W, W - 0.5 * T.grad(loss, W))])
    X = np.random.default_rng(0).normal(size=(5, 3))
    Y = np.array([0, 1, 0, 1, 1], "int32")
    train(X, Y)
    again = pickle.loads(pickle.dumps(train))  # compiled anew, with its own copy of W
    assert float(again(X, Y)) == float(train(X, Y))
    assert float(again(X, Y)) == float(train(X, Y))  # both took the same steps
    checked = pickle.loads(pickle.dumps(theano.function([x], {"p": p}, mode="DebugMode")))
    assert checked(X)["p"].shape == (5, 2)
    expr = pickle.loads(pickle.dumps(T.cast(T.exp(x), "float32").sum()))
    assert expr.dtype == "float32"


# -- user ops: destroy_map, declared static shapes, as_op infer_shape; Print; debugprint depth --
class _AddOneInPlace(theano.Op):
    __props__ = ()
    destroy_map = {0: [0]}

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return theano.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, out):
        inputs[0] += 1
        out[0][0] = inputs[0]


def test_an_op_that_overwrites_its_input_gets_a_copy():
    x = T.dvector("x")
    a = np.zeros(2)
    np.testing.assert_array_equal(theano.function([x], _AddOneInPlace()(x))(a), [1.0, 1.0])
    np.testing.assert_array_equal(a, [0.0, 0.0])
    y = x * 2
    total, bumped, top = theano.function([x], [y.sum(), _AddOneInPlace()(y), y.max()])(a)
    assert float(total) == 0.0 and float(top) == 0.0
    np.testing.assert_array_equal(bumped, [1.0, 1.0])


def test_perform_must_match_the_declared_static_shape():
    class Three(theano.Op):
        __props__ = ()

        def make_node(self, x):
            x = T.as_tensor_variable(x)
            return theano.Apply(self, [x], [T.TensorType("float64", shape=(3,))()])

        def perform(self, node, inputs, out):
            out[0][0] = inputs[0] * 2
    x = T.dvector("x")
    with pytest.raises(TypeError, match=r"shape \(2,\), but make_node declared"):
        theano.function([x], Three()(x))(np.ones(2))


def test_as_op_infer_shape_with_theanos_two_argument_signature():
    from theon.compile.ops import as_op
    calls = []

    def double(a):
        calls.append(1)
        return a * 2
    op = as_op(itypes=[T.dvector], otypes=[T.dvector],
               infer_shape=lambda node, shapes: [shapes[0]])(double)
    x = T.dvector("x")
    f = theano.function([x], op(x).shape)
    assert tuple(f(np.ones(3))) == (3,) and not calls  # the shape did not need the function


def test_print_ops_with_different_callbacks_are_not_merged():
    seen = []
    x = T.dvector("x")
    p1 = theano.printing.Print("", global_fn=lambda op, v: seen.append("f1"))(x)
    p2 = theano.printing.Print("", global_fn=lambda op, v: seen.append("f2"))(x)
    theano.function([x], [p1 * 2, p2 * 3])(np.ones(2))
    assert sorted(seen) == ["f1", "f2"]


def test_debugprint_depth_counts_the_root_as_one_level():
    y = T.dvector("y")
    one = theano.printing.debugprint(T.exp(y) + 1, file="str", depth=1)
    two = theano.printing.debugprint(T.exp(y) + 1, file="str", depth=2)
    assert one.strip().splitlines() == ["Elemwise{add} [id A]"]
    assert "Elemwise{exp}" in two and "y" not in two.split("Elemwise{exp}")[1].splitlines()[0]


# -- Theano tutorial spellings -----------------------------------------------------------------
def test_function_copy_swap_and_delete_updates():
    state, inc = theano.shared(0), T.iscalar("inc")
    accumulator = theano.function([inc], state, updates=[(state, state + inc)])
    accumulator(10)
    new_state = theano.shared(0)
    accumulator.copy(swap={state: new_state})(100)
    assert new_state.get_value() == 100 and state.get_value() == 10
    accumulator.copy(delete_updates=True)(9000)
    assert state.get_value() == 10


def test_theano_tutorial_spellings(run_python):
    v = T.dvector("v")
    np.testing.assert_array_equal(T.add(v, v, v).eval({v: np.ones(2)}), [3.0, 3.0])
    np.testing.assert_array_equal(T.mul(v, v, v).eval({v: np.full(2, 2.0)}), [8.0, 8.0])
    v.tag.test_value = np.ones(2)
    assert v.tag.test_value.shape == (2,)
    assert "v" in theano.pp(v * 2) and theano.printing.pprint is theano.printing.pp
    assert theano.dot is T.dot
    assert theano.compile.get_default_mode().optimizer == "fast_run"
    out = run_python("import theon; print(theon.config.floatX)", "floatX=float32",
                     var="THEANO_FLAGS")  # a Theano program's environment works as it is
    assert out.stdout.strip() == "float32"
