"""Rewrites of scan loops (scan/rewrites.py): for each rule, the rewritten graph has the
expected shape (Scan inputs and outputs, what the body still computes, a Dot before the loop)
and the values of the unrewritten graph (Mode(optimizer=None)); the RNN with an input
projection and its gradient (verify_grad), under the checking mode too."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.gradient import verify_grad
from theon.scan import Scan, rewrites
from theon.scan.basic import ScanSpec
from theon.symbolic.graph import toposort

NO_REWRITES = theano.Mode(optimizer=None)
PY = theano.Mode(linker="py")
_rng = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def scan_rules():
    """The rules filed for these tests, and taken out again if they were not before."""
    before = rewrites.installed()
    rewrites.install()
    yield
    if not before:
        rewrites.uninstall()


def rnd(*shape, scale=1.0, dtype="float64"):
    return (_rng.normal(size=shape) * scale).astype(dtype)


def loops(f) -> list:
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]


def body_ops(node) -> Counter:
    """The ops of a loop's body, by class name (Elemwise by scalar op)."""
    keys = Counter()
    for n in toposort(node.op.inner_outputs):
        sop = getattr(n.op, "scalar_op", None)
        keys[sop.name if sop is not None else type(n.op).__name__] += 1
    return keys


def fired(f) -> set:
    return {name for name, _, _ in f.maker.fgraph.history}


def same_as_unrewritten(inputs, outputs, args, mode=PY, **tol):
    f = theano.function(inputs, outputs, mode=mode)
    ref = theano.function(inputs, outputs, mode=NO_REWRITES)
    got, want = f(*args), ref(*args)
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **(tol or dict(rtol=1e-12, atol=1e-12)))
    return f


def dots_before_loop(f) -> list:
    """Dot nodes of the compiled graph that read no Scan output (run before any loop)."""
    order = f.maker.fgraph.toposort()
    after = set()
    for n in order:
        if isinstance(n.op, Scan) or any(i.owner in after for i in n.inputs):
            after.add(n)
    return [n for n in order if n not in after and type(n.op).__name__ in ("Dot", "DotAdd",
                                                                          "Gemm")]


# -- rule 1: loop invariants ---------------------------------------------------------------------

def test_invariant_work_moves_out_of_the_loop():
    # scan() itself computes outside what reads only outer variables; a body made otherwise
    # (a reverse loop, another rewrite) can hold such work: built here with the constructor
    h_in, W_in, c_in = T.dvector("h"), T.dmatrix("W"), T.dscalar("c")
    body = T.tanh(T.dot(h_in, W_in.T * T.exp(c_in)) + T.exp(c_in))
    op = Scan([h_in, W_in, c_in], [body], ScanSpec(n_seqs=0, outputs=((-1,),), n_shared=0,
                                                  n_nonseqs=2, as_while=False))
    h0, W, c = T.dvector("h0"), T.dmatrix("W"), T.dscalar("c")
    out = op(5, h0, W, c)
    f = same_as_unrewritten([h0, W, c], out, [rnd(3), rnd(3, 3, scale=0.4), 0.3])
    assert "scan_invariants_out_of_loop" in fired(f)
    node, = loops(f)
    body = body_ops(node)
    # the body keeps dot, add and tanh; W.T * exp(c) and exp(c) come in computed
    assert body["exp"] == 0 and body["DimShuffle"] == 0 and body["mul"] == 0, body
    assert body["Dot"] == 1 and body["tanh"] == 1
    assert node.op.spec.n_nonseqs == 2  # W.T * exp(c) and exp(c); W and c themselves unused


def test_the_reverse_loop_gets_its_transposes_computed_once():
    h0, W = T.dmatrix("h0"), T.dmatrix("W")
    h, _ = theano.scan(lambda h, W: T.tanh(T.dot(h, W)), outputs_info=h0, non_sequences=W,
                       n_steps=6)
    g = T.grad(h.sum(), [W, h0])
    f = same_as_unrewritten([h0, W], g, [rnd(2, 3), rnd(3, 3, scale=0.5)])
    assert "scan_invariants_out_of_loop" in fired(f)
    backward, = [n for n in loops(f) if n.op.name.startswith("grad_of")]
    shuffles = [n for n in toposort(backward.op.inner_outputs) if type(n.op).__name__ ==
                "DimShuffle"]
    assert all(n.inputs[0] not in backward.op.inner_inputs[-backward.op.spec.n_nonseqs:]
               for n in shuffles)  # no W.T in the body


def test_a_sequence_of_one_broadcast_row_is_read_as_a_non_sequence():
    # T.grad of a mean through a loop: the output gradient is alloc(1/size, n, ...), which
    # the reverse loop read row by row from an array of n rows; it reads the one row instead
    inputs, h = rnn_graph()
    loss = h.mean()
    f = same_as_unrewritten(inputs, T.grad(loss, inputs[2:]), rnn_args(), rtol=1e-10,
                            atol=1e-12)
    _, backward = sorted(loops(f), key=lambda n: n.op.name.startswith("grad_of"))
    def peeled(v):  # under the reversal and the cut to n_steps
        while v.owner is not None and type(v.owner.op).__name__ == "Subtensor":
            v = v.owner.inputs[0]
        return v
    allocs = [i for i in backward.inputs[1:1 + backward.op.spec.n_seqs]
              if peeled(i).owner is not None and type(peeled(i).owner.op).__name__ == "Alloc"]
    assert not allocs
    assert any(i.owner is not None and type(i.owner.op).__name__ == "Alloc" and i.ndim == 2
               for i in backward.inputs[len(backward.inputs) - backward.op.spec.n_nonseqs:])


def test_a_broadcast_sequence_of_another_length_keeps_the_loop_error():
    v, k = T.dvector("v"), T.lscalar("k")
    h, _ = theano.scan(lambda x_t, h: h + x_t, sequences=T.alloc(v, k, 3),
                       outputs_info=T.zeros(3, dtype="float64"), n_steps=5)
    f = theano.function([v, k], h)
    np.testing.assert_allclose(f(np.ones(3), 7)[-1], 5 * np.ones(3))
    with pytest.raises(ValueError, match="n_steps is 5 but sequence input 0 has only 2"):
        f(np.ones(3), 2)


def test_constant_work_stays_in_the_body():
    x = T.dvector("x")
    out, _ = theano.scan(lambda x_t, h: h * 0.5 + x_t, sequences=x,
                         outputs_info=T.constant(np.float64(0)))
    f = same_as_unrewritten([x], out, [rnd(6)])
    assert "scan_invariants_out_of_loop" not in fired(f)


def test_invariant_in_a_lazy_branch_stays():
    from theon.ifelse import ifelse
    x_in, W_in = T.dscalar("x_t"), T.dmatrix("W")
    # the branch not taken would fail (W is not square): it must not run before the loop
    body = ifelse(T.gt(x_in, 10), T.dot(W_in, W_in).sum(), x_in * 2)
    op = Scan([x_in, W_in], [body], ScanSpec(n_seqs=1, outputs=(None,), n_shared=0,
                                             n_nonseqs=1, as_while=False))
    x, W = T.dvector("x"), T.dmatrix("W")
    out = op(x.shape[0], x, W)
    f = same_as_unrewritten([x, W], out, [rnd(4), rnd(2, 3)])
    node, = loops(f)
    assert body_ops(node)["Dot"] == 1


# -- rule 2: sequence work before the loop -------------------------------------------------------

def rnn_graph(dtype="float64", go_backwards=False):
    X = T.tensor3("X", dtype=dtype)
    h0 = T.matrix("h0", dtype=dtype)
    W, U, b = T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype), T.vector("b", dtype=dtype)
    h, _ = theano.scan(lambda x_t, h, W, U, b: T.tanh(T.dot(x_t, W) + T.dot(h, U) + b),
                       sequences=X, outputs_info=h0, non_sequences=[W, U, b],
                       go_backwards=go_backwards)
    return [X, h0, W, U, b], h


def rnn_args(dtype="float64", steps=20, batch=4, n_in=8, hidden=16):
    return [rnd(steps, batch, n_in, dtype=dtype), rnd(batch, hidden, dtype=dtype),
            rnd(n_in, hidden, scale=0.3, dtype=dtype), rnd(hidden, hidden, scale=0.2, dtype=dtype),
            rnd(hidden, scale=0.1, dtype=dtype)]


@pytest.mark.parametrize("go_backwards", [False, True])
def test_input_projection_is_one_dot_before_the_loop(go_backwards):
    inputs, h = rnn_graph(go_backwards=go_backwards)
    f = same_as_unrewritten(inputs, h, rnn_args())
    assert "scan_sequence_work_before_loop" in fired(f)
    node, = loops(f)
    assert body_ops(node)["Dot"] == 1  # dot(h, U) only
    assert node.op.spec.n_seqs == 1   # the projection; X itself is no longer read by the body
    assert len(dots_before_loop(f)) == 1


def test_the_bias_joins_the_projection_before_the_loop():
    inputs, h = rnn_graph()
    args = rnn_args()
    f = same_as_unrewritten(inputs, h, args, rtol=1e-12, atol=1e-13)
    assert "scan_sums_regrouped" in fired(f)
    node, = loops(f)
    body = body_ops(node)
    assert body["add"] == 1 and body["Dot"] == 1  # tanh(dot(h, U) + p_t), p = X W + b
    assert node.op.spec.n_nonseqs == 1  # U; b is read before the loop only
    # the batch's rows as one matrix: the bias added in its product, not over the stacked rows
    assert [type(n.op).__name__ for n in dots_before_loop(f)] == ["DotAdd"]
    assert not [n for n in f.maker.fgraph.toposort() if "add" in str(n.op)
                and n.outputs[0].dtype == "float64"]
    grad = theano.function(inputs, T.grad(h.sum(), inputs[2:]), mode=PY)
    ref = theano.function(inputs, T.grad(h.sum(), inputs[2:]), mode=NO_REWRITES)
    for g, w in zip(grad(*args), ref(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_a_partial_sum_larger_than_its_row_stays_in_the_loop():
    # x_t (a vector) + M (a matrix) is a matrix per step: stacked, n_steps matrices
    X, M, U = T.dmatrix("X"), T.dmatrix("M"), T.dmatrix("U")
    out, _ = theano.scan(lambda x_t, h, M, U: T.tanh(T.dot(h, U) + x_t + M), sequences=X,
                         outputs_info=T.zeros((3, 4), dtype="float64"), non_sequences=[M, U])
    f = same_as_unrewritten([X, M, U], out, [rnd(6, 4), rnd(3, 4), rnd(4, 4, scale=0.3)])
    assert "scan_sums_regrouped" not in fired(f)


def test_narrow_integer_terms_are_not_added_first():
    # (x_t + c) in int8 would wrap around; the user's order adds the float state first
    x, c = T.bvector("x"), T.bscalar("c")
    out, _ = theano.scan(lambda x_t, h, c: h * 0.5 + x_t + c, sequences=x,
                         outputs_info=T.constant(np.float64(0)), non_sequences=c)
    f = same_as_unrewritten([x, c], out, [np.full(5, 100, np.int8), np.int8(100)])
    assert "scan_sums_regrouped" not in fired(f)
    assert f(np.full(5, 100, np.int8), np.int8(100))[0] == 200


def test_terms_in_a_lazy_branch_are_left_as_written():
    from theon.ifelse import ifelse
    X, U, b = T.dmatrix("X"), T.dmatrix("U"), T.dvector("b")
    out, _ = theano.scan(
        lambda x_t, h, U, b: ifelse(T.gt(h.sum(), 1e9), x_t + T.dot(h, U) + b, T.tanh(h + x_t)),
        sequences=X, outputs_info=T.zeros((4,), dtype="float64"), non_sequences=[U, b])
    f = same_as_unrewritten([X, U, b], out, [rnd(6, 4), rnd(4, 4, scale=0.3), rnd(4)])
    assert "scan_sums_regrouped" not in fired(f)


def test_projection_of_vector_rows_and_dot_with_the_row_second():
    X, W, V = T.dmatrix("X"), T.dmatrix("W"), T.dmatrix("V")
    out, _ = theano.scan(lambda x_t, h, W, V: T.tanh(T.dot(x_t, W) + T.dot(V, x_t) + h),
                         sequences=X, outputs_info=T.zeros((4,), dtype="float64"),
                         non_sequences=[W, V])
    f = same_as_unrewritten([X, W, V], out, [rnd(7, 3), rnd(3, 4), rnd(4, 3)])
    node, = loops(f)
    assert body_ops(node)["Dot"] == 0
    assert len(dots_before_loop(f)) == 2


def test_elementwise_work_on_rows_and_a_map():
    X, a = T.dmatrix("X"), T.dvector("a")
    out, _ = theano.scan(lambda x_t, a: T.exp(x_t) * a + 1, sequences=X, non_sequences=a)
    f = same_as_unrewritten([X, a], out, [rnd(5, 3), rnd(3)])
    assert "scan_sequence_work_before_loop" in fired(f)
    node, = loops(f)
    assert sum(body_ops(node).values()) == 0  # the body passes the precomputed row on


def test_sequence_longer_than_n_steps_and_taps():
    x, W = T.dmatrix("x"), T.dmatrix("W")
    n = T.iscalar("n")
    out, _ = theano.scan(lambda x0, x2, h, W: T.dot(x0, W) + T.dot(x2, W) * 0.5 + h,
                         sequences=dict(input=x, taps=[0, 2]), n_steps=n,
                         outputs_info=T.zeros((2,), dtype="float64"), non_sequences=W)
    args = [rnd(9, 3), rnd(3, 2)]
    f = same_as_unrewritten([x, W, n], out, args + [4])
    node, = loops(f)
    assert body_ops(node)["Dot"] == 0
    assert f(*args, 4).shape == (4, 2)
    # the loop's own error when the sequence is too short, as without the rules
    with pytest.raises(ValueError, match="n_steps is 8 but sequence input"):
        f(*args, 8)


def test_rows_of_two_sequences_meet_when_n_steps_comes_from_them():
    x, y = T.dvector("x"), T.dvector("y")
    out, _ = theano.scan(lambda a, b, h: h + T.exp(a) * b, sequences=[x, y],
                         outputs_info=T.constant(np.float64(0)))
    same_as_unrewritten([x, y], out, [rnd(5), rnd(5)])
    same_as_unrewritten([x, y], out, [rnd(6), rnd(4)])


def test_rows_of_two_sequences_with_n_steps_given_keep_the_loop_error():
    x, y = T.dvector("x"), T.dvector("y")
    out, _ = theano.scan(lambda a, b, h: h + a * b, sequences=[x, y], n_steps=5,
                         outputs_info=T.constant(np.float64(0)))
    f = same_as_unrewritten([x, y], out, [rnd(5), rnd(7)])
    with pytest.raises(ValueError, match="n_steps is 5 but sequence input"):
        f(rnd(5), rnd(3))


def test_until_loop():
    x, W = T.dmatrix("x"), T.dmatrix("W")

    def step(x_t, h, W):
        h = h + T.dot(x_t, W)
        return h, theano.scan_module.until(h.sum() > 3)
    out, _ = theano.scan(step, sequences=x, outputs_info=T.zeros((2,), dtype="float64"),
                         non_sequences=W)
    f = same_as_unrewritten([x, W], out, [np.abs(rnd(30, 3)), np.abs(rnd(3, 2))])
    assert body_ops(loops(f)[0])["Dot"] == 0
    assert len(f(np.abs(rnd(30, 3)), np.abs(rnd(3, 2)))) < 30


# -- rule 3: unused parts -----------------------------------------------------------------------

def test_unused_map_output_and_state_are_removed():
    x, W = T.dvector("x"), T.dmatrix("W")
    h0, c0 = T.dvector("h0"), T.dvector("c0")

    def step(x_t, h, c, W):
        # c only feeds itself; the map output m is not read outside
        return T.tanh(T.dot(h, W) + x_t), c * 2 + x_t, T.exp(h)
    (h, c, m), _ = theano.scan(step, sequences=x, outputs_info=[h0, c0, None], non_sequences=W)
    f = same_as_unrewritten([x, W, h0, c0], h, [rnd(6), rnd(3, 3, scale=0.5), rnd(3), rnd(3)])
    assert "scan_unused_parts_removed" in fired(f)
    node, = loops(f)
    assert len(node.outputs) == 1 and node.op.spec.outputs == ((-1,),)
    assert body_ops(node)["exp"] == 0 and body_ops(node)["mul"] == 0


def test_a_state_read_by_a_kept_output_stays():
    x = T.dvector("x")
    (a, b), _ = theano.scan(lambda x_t, a, b: [a + b, b * 0.5 + x_t], sequences=x,
                            outputs_info=[T.constant(np.float64(0)), T.constant(np.float64(1))])
    f = same_as_unrewritten([x], a, [rnd(5)])
    assert len(loops(f)[0].outputs) == 2


def test_unused_inputs_and_repeated_inputs_are_dropped():
    a_in, b_in, h_in = T.dvector("a"), T.dvector("b"), T.dvector("h")
    W_in, V_in, u_in = T.dmatrix("W"), T.dmatrix("V"), T.dmatrix("u")
    body = T.tanh(T.dot(h_in, W_in) + T.dot(h_in, V_in)) * a_in
    op = Scan([a_in, b_in, h_in, W_in, V_in, u_in], [body],
              ScanSpec(n_seqs=2, outputs=((-1,),), n_shared=0, n_nonseqs=3, as_while=False))
    x, y, W, u, h0 = T.dmatrix("x"), T.dmatrix("y"), T.dmatrix("W"), T.dmatrix("u"), T.dvector("h0")
    out = op(x.shape[0], x, y, h0, W, W, u)  # y and u unread, W passed twice
    f = same_as_unrewritten([x, y, W, u, h0], out, [rnd(4, 3), rnd(4, 3), rnd(3, 3), rnd(2, 2),
                                                   rnd(3)])
    node, = loops(f)
    assert node.op.spec.n_nonseqs == 1  # W once
    assert node.op.spec.n_seqs == 1     # x (y is not read)
    assert node.inputs[1] is f.maker.fgraph.inputs[0]


def test_shared_updates_inside_scan_still_apply():
    counter = theano.shared(np.float64(0), name="counter")
    x = T.dvector("x")
    out, upd = theano.scan(lambda x_t: (x_t * 2, {counter: counter + 1}), sequences=x)
    f = theano.function([x], out, updates=upd, mode=PY)
    np.testing.assert_allclose(f(np.arange(3.0)), [0, 2, 4])
    assert counter.get_value() == 3
    # the update unused: the loop still computes the map output
    g = theano.function([x], out, mode=PY)
    np.testing.assert_allclose(g(np.arange(4.0)), [0, 2, 4, 6])
    assert counter.get_value() == 3


# -- rule 4: loops merged ------------------------------------------------------------------------

def test_independent_loops_over_the_same_steps_merge():
    x, W = T.dmatrix("x"), T.dmatrix("W")
    a, _ = theano.scan(lambda x_t, h, W: T.tanh(T.dot(h, W)) + x_t, sequences=x,
                       outputs_info=T.zeros((3,), dtype="float64"), non_sequences=W)
    b, _ = theano.scan(lambda x_t, c: c * 0.9 + x_t.sum(), sequences=x,
                       outputs_info=T.constant(np.float64(0)))
    f = same_as_unrewritten([x, W], [a, b], [rnd(5, 3), rnd(3, 3, scale=0.5)])
    assert "scan_loops_merged" in fired(f)
    node, = loops(f)
    assert len(node.outputs) == 2


def test_a_loop_reading_another_does_not_merge():
    x = T.dvector("x")
    a, _ = theano.scan(lambda x_t, h: h * 0.5 + x_t, sequences=x,
                       outputs_info=T.constant(np.float64(0)))
    b, _ = theano.scan(lambda a_t, c: c + T.exp(a_t) * c, sequences=a,
                       outputs_info=T.constant(np.float64(1)), n_steps=x.shape[0])
    f = same_as_unrewritten([x], [a, b], [rnd(5)])
    assert len(loops(f)) == 2


# -- rule 5: sums of products after the loop -----------------------------------------------------

def _peeled(variables):
    """The variables with the dimshuffles around them taken off."""
    for v in variables:
        while v.owner is not None and type(v.owner.op).__name__ == "DimShuffle":
            v = v.owner.inputs[0]
        yield v


def sums_of_dots(node) -> list:
    """The final-value states of a loop that add a Dot or a sum (under dimshuffles) to
    themselves each step."""
    op, spec = node.op, node.op.spec
    n_user = len(spec.outputs)
    first = len(op.inner_inputs) - spec.n_nonseqs - spec.n_shared
    found = []
    for k in range(spec.n_shared):
        out, state = op.inner_outputs[n_user + k], op.inner_inputs[first + k]
        if out.owner is not None and state in out.owner.inputs and any(
                i.owner is not None and type(i.owner.op).__name__ in ("Dot", "Reduce")
                for i in _peeled(out.owner.inputs)):
            found.append(k)
    return found


def test_weight_gradient_sums_leave_the_reverse_loop():
    inputs, outs = rnn_loss_and_grads("float64")
    unrewritten = theano.function(inputs, outs, mode=PY.excluding("scan_sums_after_loop"))
    _, backward_before = sorted(loops(unrewritten), key=lambda n: n.op.name.startswith("grad"))
    assert len(sums_of_dots(backward_before)) == 3  # dW, dU (a product a step), db (a sum)
    f = same_as_unrewritten(inputs, outs, rnn_args(), rtol=1e-10, atol=1e-12)
    assert "scan_sums_after_loop" in fired(f)
    _, backward = sorted(loops(f), key=lambda n: n.op.name.startswith("grad"))
    assert not sums_of_dots(backward)
    assert backward.op.spec.n_shared < backward_before.op.spec.n_shared


def test_outer_products_of_vector_rows_are_summed_after_the_loop():
    x, h0 = T.dmatrix("x"), T.dvector("h0")
    W, U = T.dmatrix("W"), T.dmatrix("U")
    h, _ = theano.scan(lambda x_t, h, W, U: T.tanh(T.dot(x_t, W) + T.dot(h, U)), sequences=x,
                       outputs_info=h0, non_sequences=[W, U])
    loss = (h ** 3).sum()
    f = same_as_unrewritten([x, h0, W, U], T.grad(loss, [W, U, h0]),
                            [rnd(7, 3), rnd(4), rnd(3, 4, scale=0.4), rnd(4, 4, scale=0.4)],
                            rtol=1e-10, atol=1e-12)
    assert "scan_sums_after_loop" in fired(f)


@pytest.mark.parametrize("steps", [0, 1, 5])
def test_a_shared_accumulator_of_products(steps):
    # fn's own update of a shared variable: its final value is the start plus every product
    acc = theano.shared(rnd(3, 2), name="acc")
    dots = theano.shared(np.float64(1.5), name="dots")
    rows = theano.shared(rnd(1, 3), name="rows")
    X, Y, W = T.dtensor3("X"), T.dmatrix("Y"), T.dmatrix("W")

    def step(x_t, y_t, W):
        return T.tanh(y_t), {acc: acc + T.dot(x_t.T, T.tanh(T.dot(x_t, W))),
                             dots: dots + T.dot(y_t, T.exp(y_t)),
                             rows: rows + T.exp(x_t).sum(axis=0).dimshuffle("x", 0)}
    out, upd = theano.scan(step, sequences=[X, Y], non_sequences=W)
    start = (acc.get_value(), dots.get_value(), rows.get_value())
    x, y, w = rnd(steps, 4, 3), rnd(steps, 5), rnd(3, 2)
    f = theano.function([X, Y, W], out, updates=upd, mode=PY)
    assert "scan_sums_after_loop" in fired(f)
    f(x, y, w)
    want_acc = start[0] + sum((x[t].T @ np.tanh(x[t] @ w) for t in range(steps)),
                              np.zeros((3, 2)))
    want_dots = start[1] + sum(float(y[t] @ np.exp(y[t])) for t in range(steps))
    np.testing.assert_allclose(acc.get_value(), want_acc, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dots.get_value(), want_dots, rtol=1e-12)
    want_rows = start[2] + np.exp(x).sum(axis=(0, 1))[None]
    np.testing.assert_allclose(rows.get_value(), want_rows, rtol=1e-12)
    node, = loops(f) or [None]
    assert node is None or not node.op.spec.n_shared  # all three summed after the loop


def test_a_sum_that_would_change_the_state_shape_still_fails():
    # the loop refuses a state whose shape changes; after the rewrite, init + sum refuses the
    # unequal lengths (neither silently broadcasts)
    acc = theano.shared(np.zeros((1, 3)), name="acc")
    X = T.dtensor3("X")
    _, upd = theano.scan(lambda x_t: (x_t.sum(), {acc: acc + T.dot(x_t.T, x_t)}), sequences=X)
    for mode in (PY, NO_REWRITES):
        f = theano.function([X], [], updates=upd, mode=mode)
        with pytest.raises(ValueError):
            f(rnd(2, 4, 3))  # each step's product is 3 x 3


def test_an_accumulator_read_in_the_body_stays():
    acc = theano.shared(np.zeros((2, 2)), name="acc")
    X = T.dtensor3("X")
    out, upd = theano.scan(lambda x_t: (acc.sum() + x_t.sum(), {acc: acc + T.dot(x_t.T, x_t)}),
                           sequences=X)
    f = theano.function([X], out, updates=upd, mode=PY)
    assert "scan_sums_after_loop" not in fired(f)
    x = rnd(4, 3, 2)
    got = f(x)
    a, want = np.zeros((2, 2)), []
    for t in range(4):
        want.append(a.sum() + x[t].sum())
        a = a + x[t].T @ x[t]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(acc.get_value(), a, rtol=1e-12)


# -- rule 6: only the last state kept ---------------------------------------------------------

def test_only_the_last_state_is_kept_when_only_it_is_read():
    inputs, h = rnn_graph()
    f = same_as_unrewritten(inputs, h[-1], rnn_args())
    assert "scan_only_last_state_kept" in fired(f)
    node, = loops(f)
    assert node.op.spec.outputs == () and node.op.spec.n_shared == 1


def test_reduce_and_foldl_keep_their_final_value_only():
    x = T.dvector("x")
    total, _ = theano.reduce(lambda x_t, acc: acc * 0.5 + x_t, sequences=x,
                             outputs_info=T.constant(np.float64(1)))
    left, _ = theano.foldl(lambda x_t, acc: T.maximum(acc, x_t), sequences=x,
                           outputs_info=T.constant(np.float64(-5)))
    f = same_as_unrewritten([x], [total, left], [rnd(6)])
    assert "scan_only_last_state_kept" in fired(f)
    assert all(n.op.spec.outputs == () for n in loops(f))


def test_a_state_read_otherwise_keeps_every_step():
    inputs, h = rnn_graph()
    f = same_as_unrewritten(inputs, [h[-1], h.sum()], rnn_args())
    assert "scan_only_last_state_kept" not in fired(f)
    g = same_as_unrewritten(inputs, h[-2], rnn_args())
    assert "scan_only_last_state_kept" not in fired(g)


def test_last_state_of_an_until_loop():
    x = T.dscalar("x")
    out, _ = theano.scan(lambda v: (v * 2, theano.scan_module.until(v * 2 > 40)),
                         outputs_info=x, n_steps=100)
    f = same_as_unrewritten([x], out[-1], [np.float64(1.5)])
    assert "scan_only_last_state_kept" in fired(f)
    assert f(np.float64(1.5)) == 48.0


# -- the RNN and its gradient --------------------------------------------------------------------

def rnn_loss_and_grads(dtype):
    inputs, h = rnn_graph(dtype)
    X, h0, W, U, b = inputs
    loss = (h ** 2).mean()
    return inputs, [loss] + T.grad(loss, [W, U, b, h0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rnn_gradient_graph_gets_the_projection_hoisted(dtype):
    inputs, outs = rnn_loss_and_grads(dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-6)
    f = same_as_unrewritten(inputs, outs, rnn_args(dtype), **tol)
    forward, backward = sorted(loops(f), key=lambda n: n.op.name.startswith("grad_of"))
    assert body_ops(forward)["Dot"] == 1
    assert any(n.inputs[0].owner is not None and type(n.inputs[0].owner.op).__name__ ==
               "Reshape" for n in dots_before_loop(f))
    # the reverse loop: no gradient for X (nobody asked), W.T and U.T computed once; its
    # outputs are the factors of the weight gradients, summed after the loop
    assert set(backward.op.spec.outputs) <= {None}
    assert not sums_of_dots(backward)
    nonseqs = set(backward.op.inner_inputs[len(backward.op.inner_inputs)
                                           - backward.op.spec.n_nonseqs:])
    assert not [n for n in toposort(backward.op.inner_outputs)
                if type(n.op).__name__ == "DimShuffle" and n.inputs[0] in nonseqs]


def test_weight_gradient_products_read_the_stacked_states_untransposed():
    # sum over t of h_t.T @ g_t: the left factor is the states' rows stacked, transposed as
    # a whole (a view, or a copy of contiguous rows), never the steps side by side (a copy
    # transposing each step: 2.3 ms of W3's 30)
    inputs, outs = rnn_loss_and_grads("float64")
    f = same_as_unrewritten(inputs, outs, rnn_args(), rtol=1e-10, atol=1e-12)
    after = [n for n in f.maker.fgraph.toposort() if type(n.op).__name__ in ("Dot", "DotAdd")
             and not dots_before_loop(f).count(n)]
    assert len(after) == 2  # dW and dU
    for n in after:
        left = n.inputs[0].owner
        assert type(left.op).__name__ == "DimShuffle" and left.op.new_order == (1, 0)
        assert type(left.inputs[0].owner.op).__name__ == "Reshape"


def test_a_transposed_matrix_multiplied_every_step_is_read_contiguous():
    # the reverse loop multiplies by U.T at every step: the loop copies it once into C order
    # (BLAS is 1.2-4x slower on the transposed view); any layout of the argument gives the
    # same values
    inputs, outs = rnn_loss_and_grads("float64")
    f = theano.function(inputs, outs)
    _, backward = sorted(loops(f), key=lambda n: n.op.name.startswith("grad_of"))
    spec = backward.op.spec
    first_nonseq = len(backward.op.inner_inputs) - spec.n_nonseqs
    dense = backward.op._product_operands()
    assert dense and all(backward.op.inner_inputs[first_nonseq - spec.n_shared + k].ndim == 2
                         for k in dense)
    args = rnn_args()
    fortran = [np.asfortranarray(a) for a in args]
    for g, w in zip(f(*fortran), theano.function(inputs, outs, mode=NO_REWRITES)(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_rnn_gradient_passes_verify_grad():
    def rnn(X, h0, W, U, b):
        h, _ = theano.scan(lambda x_t, h, W, U, b: T.tanh(T.dot(x_t, W) + T.dot(h, U) + b),
                           sequences=X, outputs_info=h0, non_sequences=[W, U, b])
        return h
    verify_grad(rnn, rnn_args(steps=6, batch=2, n_in=3, hidden=4), rng=_rng)


def test_rnn_under_the_checking_mode():
    inputs, outs = rnn_loss_and_grads("float64")
    f = theano.function(inputs, outs, mode="DebugMode")
    ref = theano.function(inputs, outs, mode=NO_REWRITES)
    args = rnn_args(steps=5)
    for g, w in zip(f(*args), ref(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_scan_inside_scan():
    X, W = T.dtensor3("X"), T.dmatrix("W")

    def outer_step(x_t, W):
        inner, _ = theano.scan(lambda r, W: T.tanh(T.dot(r, W)), sequences=x_t, non_sequences=W)
        return inner.sum(axis=0)
    out, _ = theano.scan(outer_step, sequences=X, non_sequences=W)
    same_as_unrewritten([X, W], out, [rnd(3, 4, 2), rnd(2, 2)])
