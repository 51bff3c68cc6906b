"""Every rewrite rule, one by one, then together on MLP- and RNN-shaped graphs.

For each rule of ``all_rules()`` a table row gives a small graph the rule must fire on; the test
compiles it (FAST_RUN) and checks that the rule is in ``fgraph.history``, that the expected ops
appear and disappear, and that the results equal the unrewritten graph (``optimizer=None``)
and numpy in float64 and float32. Algebraic rules are also checked as formulas with sympy
(compile/sympy_bridge.py). A rule without a row fails ``test_every_rule_has_a_case``.
"""
from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.compile import rules  # noqa: F401  (registers the rules)
from theon.compile.rewrite import all_rules
from theon.compile.sympy_bridge import equivalent, to_sympy
from theon.ops.control import ifelse
from theon.ops.dimshuffle import Rebroadcast
from theon.symbolic.graph import Constant, ancestors

NO_REWRITES = theano.Mode(optimizer=None)
FAST_RUN = theano.Mode(optimizer="fast_run")
NO_FOLDING = FAST_RUN.excluding("constant_folding")
DTYPES = ("float64", "float32")


def op_keys(fgraph) -> Counter:
    """How often each op occurs: Elemwise by scalar op name, others by their name; the rows
    a Fused node holds count as if they were unfused (fusion runs after the rules)."""
    keys = Counter()
    for node in fgraph.toposort():
        sop = getattr(node.op, "scalar_op", None)
        keys[sop.name if sop is not None else str(node.op).split("{")[0]] += 1
        for step, _ in getattr(getattr(node.op, "graph", None), "steps", ()):
            keys[step.name] += 1
    return keys


def fired(f) -> list:
    return [name for name, _, _ in f.maker.fgraph.history]


def random_data(inputs, rng, low, high, ints=(0, 3), shapes=(3, 4, 5)):
    """Arrays for ``inputs``: floats uniform in [low, high), integers in ``ints`` (inclusive),
    each None dimension of length 3, 4, 5 by position."""
    out = []
    for v in inputs:
        shape = tuple(s if s is not None else shapes[d] for d, s in enumerate(v.type.shape))
        if v.dtype.startswith("float"):
            out.append(rng.uniform(low, high, shape).astype(v.dtype))
        else:
            out.append(rng.integers(ints[0], ints[1] + 1, shape).astype(v.dtype))
    return out


def assert_same(got, want, dtype):
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, equal_nan=True, **tol)


def softmax_np(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def onehot(y, n):
    return np.eye(n)[y]


@dataclass
class Case:
    """A graph (built by ``build(dtype) -> (inputs, outputs)``) that ``rule`` must rewrite."""

    rule: str
    id: str
    build: Callable
    ref: Callable                      # numpy on the input arrays
    present: tuple = ()                # op keys the compiled graph must hold
    absent: tuple = ()                 # ... and must not
    count: dict = field(default_factory=dict)
    sympy: bool = False                # before and after are equal formulas
    domain: tuple = (-2.0, 2.0)
    mode: object = FAST_RUN
    dtypes: tuple = DTYPES


def vec(dt, name="x"):
    return T.vector(name, dtype=dt)


def mat(dt, name="m"):
    return T.matrix(name, dtype=dt)


def static(dt, shape, name="s"):
    return T.tensor(dt, shape=shape, name=name)


class RowsKnown(theano.Op):
    """2 * x, with an infer_shape that knows the number of rows but not of columns (so only
    ``x.shape[0]``, not all of ``x.shape``, can be inferred)."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return theano.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * 2

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], None)]


def _xy(dt, fn):
    x, y = vec(dt), vec(dt, "y")
    return [x, y], fn(x, y)


def _x(dt, fn):
    x = vec(dt)
    return [x], fn(x)


def _m(dt, fn):
    m = mat(dt)
    return [m], fn(m)


def _m_y(dt, fn):
    m, y = static(dt, (None, 4), "m"), T.ivector("y")
    return [m, y], fn(m, y)


def _ce_grad(m, y):
    return T.grad(T.nnet.categorical_crossentropy(T.nnet.softmax(m), y).sum(), m)


def _dot_bias(dt):
    m, w, b = static(dt, (None, 4), "m"), static(dt, (4, 5), "w"), static(dt, (5,), "b")
    return [m, w, b], T.dot(m, w) + b


def _gemm_args(dt, fn, scale=True):
    z, x = static(dt, (3, 5), "z"), static(dt, (3, 4), "x")
    y, s = static(dt, (4, 5), "y"), T.scalar("s", dtype=dt)
    inputs = [z, x, y, s] if scale else [z, x, y]
    return inputs, fn(*inputs)


# -- scan loops (scan/rewrites.py) ---------------------------------------------------------------

def _float_only(dt):
    if not dt.startswith("float"):  # a state fed back keeps its dtype: tanh of ints has none
        raise TypeError("the scan templates are float only")


def _np_loop(h0, step, n, *seqs):
    """The states of a loop of ``n`` steps, stacked (numpy)."""
    out, h = [], h0
    for t in range(n):
        h = step(h, *[s[t] for s in seqs])
        out.append(h)
    return np.array(out)


def _scan_with_invariant_work(dt):
    """A loop whose body computes W.T * 2 at every step (made with the Scan constructor:
    scan() itself computes what reads only outer variables before the loop; a reverse loop
    of the gradient holds such work)."""
    from theon.scan import Scan
    from theon.scan.basic import ScanSpec
    _float_only(dt)
    h_in, W_in = vec(dt, "h"), static(dt, (4, 4), "W")
    op = Scan([h_in, W_in], [T.tanh(T.dot(h_in, W_in.T * 2))],
              ScanSpec(n_seqs=0, outputs=((-1,),), n_shared=0, n_nonseqs=1, as_while=False))
    h0, W = static(dt, (4,), "h0"), static(dt, (4, 4), "W")
    return [h0, W], op(3, h0, W)[-1]


def _scan_rnn(dt):
    _float_only(dt)
    x, h0, W = mat(dt, "x"), static(dt, (5,), "h0"), static(dt, (4, 5), "W")
    h, _ = theano.scan(lambda x_t, h, W: T.tanh(T.dot(x_t, W) + h), sequences=x,
                       outputs_info=h0, non_sequences=W)
    return [x, h0, W], h


def _scan_rnn_with_bias(dt):
    """h_t = tanh(x_t W + h_tm1 U + b): the bias joins the input projection before the loop."""
    _float_only(dt)
    x, h0 = mat(dt, "x"), static(dt, (5,), "h0")
    W, U, b = static(dt, (4, 5), "W"), static(dt, (5, 5), "U"), static(dt, (5,), "b")
    h, _ = theano.scan(lambda x_t, h, W, U, b: T.tanh(T.dot(x_t, W) + T.dot(h, U) + b),
                       sequences=x, outputs_info=h0, non_sequences=[W, U, b])
    return [x, h0, W, U, b], h


def _scan_two_outputs(dt, pick):
    _float_only(dt)
    x, h0 = mat(dt, "x"), mat(dt, "h0")
    (h, m), _ = theano.scan(lambda x_t, h: [h * 0.5 + x_t, T.exp(h)], sequences=x,
                            outputs_info=[h0, None])
    return [x, h0], pick(h, m)


def _scan_two_loops(dt):
    _float_only(dt)
    x, h0 = mat(dt, "x"), static(dt, (4,), "h0")
    a, _ = theano.scan(lambda x_t, h: h * 0.5 + x_t, sequences=x, outputs_info=h0)
    b, _ = theano.scan(lambda x_t, h: T.tanh(h) - x_t, sequences=x, outputs_info=h0)
    return [x, h0], a + b


def _scan_sum_of_products(dt):
    """A loop keeping only the final value of acc <- acc + outer(x_t, x_t) (made with the Scan
    constructor: the shape of a reverse loop's weight gradient)."""
    from theon.scan import Scan
    from theon.scan.basic import ScanSpec
    _float_only(dt)
    x_in, acc_in = vec(dt, "x_t"), static(dt, (4, 4), "acc")
    op = Scan([x_in, acc_in], [acc_in + T.dot(x_in.dimshuffle(0, "x"), x_in.dimshuffle("x", 0))],
              ScanSpec(n_seqs=1, outputs=(), n_shared=1, n_nonseqs=0, as_while=False))
    x, acc0 = static(dt, (6, 4), "x"), static(dt, (4, 4), "acc0")
    return [x, acc0], op(x.shape[0], x, acc0)


CASES = [
    Case("constant_folding", "cast_of_static_shape",
         lambda dt: (lambda x, s: ([x, s], x * T.cast(s.shape[1], dt)))(vec(dt),
                                                                        static(dt, (2, 4))),
         lambda x, s: x * 4, absent=("Shape", "Subtensor")),
    Case("neg_neg_to_identity", "exp_neg_neg", lambda dt: _x(dt, lambda x: T.exp(-(-x))),
         lambda x: np.exp(x), absent=("neg",), sympy=True),
    Case("sub_self_to_zeros", "x_minus_x", lambda dt: _x(dt, lambda x: (x + 1) - (x + 1)),
         lambda x: 0 * x, absent=("sub", "add"), present=("Alloc",), sympy=True),
    Case("sub_neg_to_add", "x_minus_neg_y", lambda dt: _xy(dt, lambda x, y: x - (-y)),
         lambda x, y: x + y, present=("add",), absent=("sub", "neg"), sympy=True),
    Case("add_neg_to_sub", "x_plus_neg_y", lambda dt: _xy(dt, lambda x, y: x + (-y)),
         lambda x, y: x - y, present=("sub",), absent=("add", "neg"), sympy=True),
    Case("add_neg_to_sub", "neg_y_plus_x", lambda dt: _xy(dt, lambda x, y: (-y) + x),
         lambda x, y: x - y, present=("sub",), absent=("add", "neg"), sympy=True),
    Case("add_zero_to_identity", "x_plus_0", lambda dt: _x(dt, lambda x: T.exp(x + 0)),
         lambda x: np.exp(x), absent=("add",), sympy=True),
    Case("add_constants_together", "x_plus_2_plus_3", lambda dt: _x(dt, lambda x: (x + 2) + 3),
         lambda x: x + 5, count={"add": 1}, sympy=True),
    Case("add_chain_cancel_and_collect", "x_plus_1_plus_y_minus_x_plus_2",
         lambda dt: _xy(dt, lambda x, y: ((x + 1) + (y - x)) + 2), lambda x, y: y + 3,
         count={"add": 1}, absent=("sub",), sympy=True),
    Case("add_chain_cancel_and_collect", "neg_x_plus_y_plus_x",
         lambda dt: _xy(dt, lambda x, y: T.exp(-x + y + x)), lambda x, y: np.exp(y),
         absent=("add", "neg"), sympy=True),
    Case("mul_one_to_identity", "x_times_1", lambda dt: _x(dt, lambda x: T.exp(x * 1)),
         lambda x: np.exp(x), absent=("mul",), sympy=True),
    Case("mul_minus_one_to_neg", "x_times_minus_1", lambda dt: _x(dt, lambda x: x * -1),
         lambda x: -x, present=("neg",), absent=("mul",), sympy=True),
    Case("mul_constants_together", "x_times_2_times_3", lambda dt: _x(dt, lambda x: (x * 2) * 3),
         lambda x: x * 6, count={"mul": 1}, sympy=True),
    Case("div_self_to_one", "constant_over_itself",
         lambda dt: _x(dt, lambda x: x * (lambda c: c / c)(T.constant(np.full(3, 3.0, dt)))),
         lambda x: x, absent=("true_div",), mode=NO_FOLDING, sympy=True),
    Case("exp_log_to_identity", "exp_log", lambda dt: _x(dt, lambda x: 2 * T.exp(T.log(x))),
         lambda x: 2 * x, absent=("exp", "log"), domain=(0.1, 3.0), sympy=True),
    Case("log_exp_to_identity", "log_exp", lambda dt: _x(dt, lambda x: 2 * T.log(T.exp(x))),
         lambda x: 2 * x, absent=("exp", "log"), sympy=True),
    Case("dimshuffle_of_dimshuffle", "transpose_twice", lambda dt: _m(dt, lambda m: T.exp(m.T.T)),
         lambda m: np.exp(m), absent=("DimShuffle",)),
    Case("dimshuffle_of_dimshuffle", "transpose_then_pad",
         lambda dt: _m(dt, lambda m: m.dimshuffle(1, 0).dimshuffle("x", 0, 1)),
         lambda m: m.T[None], count={"DimShuffle": 1}),
    Case("reshape_of_reshape", "flatten_then_reshape",
         lambda dt: _m(dt, lambda m: m.reshape((-1,)).reshape((4, 3))),
         lambda m: m.reshape(4, 3), count={"Reshape": 1}),
    Case("reshape_to_own_shape", "same_static_shape",
         lambda dt: (lambda s: ([s], s.reshape((3, 4)) * 2))(static(dt, (3, 4))),
         lambda s: 2 * s, absent=("Reshape",)),
    Case("cast_of_cast", "int8_to_int32_to_float",
         lambda dt: (lambda b: ([b], T.cast(T.cast(b, "int32"), dt)))(T.bvector("b")),
         lambda b: b.astype("float64"), absent=("cast_int32",)),
    Case("useless_slice", "from_zero", lambda dt: _x(dt, lambda x: T.exp(x[0:])),
         lambda x: np.exp(x), absent=("Subtensor",)),
    Case("useless_slice", "past_static_end",
         lambda dt: (lambda s: ([s], 2 * s[0:10]))(static(dt, (3, 4))),
         lambda s: 2 * s, absent=("Subtensor",)),
    Case("shape_i_from_infer_shape", "rows_known_columns_not",
         lambda dt: (lambda x, m: ([x, m], x * T.cast(RowsKnown()(m).shape[0], dt)))(vec(dt),
                                                                                   mat(dt)),
         lambda x, m: x * m.shape[0], absent=("RowsKnown",)),
    Case("shape_to_constant", "static_shape",
         lambda dt: (lambda s: ([s], s.shape))(static(dt, (3, 4))),
         lambda s: np.array(s.shape), absent=("Shape",)),
    Case("shape_from_infer_shape", "shape_of_dot",
         lambda dt: (lambda m, x: ([m, x], T.dot(m, x).shape))(static(dt, (None, 3), "m"), vec(dt)),
         lambda m, x: np.array([m.shape[0]]), absent=("Dot",), present=("MakeVector",)),
    Case("useless_shape_check", "one_variable_broadcast_with_itself",
         lambda dt: _x(dt, lambda x: (T.exp(x) * x).shape),
         lambda x: np.array(x.shape), absent=("ShapeCheck", "exp", "mul")),
    Case("make_vector_of_shape_to_shape", "stack_of_lengths",
         lambda dt: _m(dt, lambda m: T.stack([m.shape[0], m.shape[1]])),
         lambda m: np.array(m.shape), absent=("MakeVector",), present=("Shape",)),
    Case("make_vector_index_to_element", "length_of_zeros",
         lambda dt: _m(dt, lambda m: T.zeros((m.shape[0], 3), dtype=dt).shape[1]),
         lambda m: np.array(3), absent=("MakeVector", "Alloc", "Subtensor")),
    Case("identity_to_input", "tensor_copy", lambda dt: _x(dt, lambda x: T.tensor_copy(x) * 2),
         lambda x: 2 * x, absent=("identity",), sympy=True),
    Case("identity_to_input", "zero_grad", lambda dt: _x(dt, lambda x: T.zero_grad(x) * 2),
         lambda x: 2 * x, absent=("ZeroGrad",), sympy=True),
    Case("identity_to_input", "disconnected_grad",
         lambda dt: _x(dt, lambda x: T.disconnected_grad(x) * 2),
         lambda x: 2 * x, absent=("DisconnectedGrad",), sympy=True),
    Case("useless_rebroadcast", "already_unbroadcast",
         lambda dt: _m(dt, lambda m: Rebroadcast([(0, False)])(m) * 2),
         lambda m: 2 * m, absent=("Rebroadcast",), sympy=True),
    Case("ifelse_constant_condition", "true_condition",
         lambda dt: _x(dt, lambda x: ifelse(T.constant(True), 2 * x, 3 * x)),
         lambda x: 2 * x, absent=("IfElse",)),
    Case("log_one_plus_to_log1p", "log_1_plus_x", lambda dt: _x(dt, lambda x: T.log(1 + x)),
         np.log1p, present=("log1p",), absent=("log", "add"), domain=(-0.9, 2), sympy=True),
    Case("log_one_plus_to_log1p", "log_x_plus_1", lambda dt: _x(dt, lambda x: T.log(x + 1)),
         np.log1p, present=("log1p",), absent=("log", "add"), domain=(-0.9, 2), sympy=True),
    Case("log_one_minus_to_log1p", "log_1_minus_x", lambda dt: _x(dt, lambda x: T.log(1 - x)),
         lambda x: np.log1p(-x), present=("log1p",), absent=("log", "sub"), domain=(-2, 0.9),
         sympy=True),
    Case("log1p_exp_to_softplus", "log1p_exp", lambda dt: _x(dt, lambda x: T.log1p(T.exp(x))),
         lambda x: np.logaddexp(0, x), present=("softplus",), absent=("exp", "log1p"),
         sympy=True),
    Case("log1p_exp_to_softplus", "log_1_plus_exp",
         lambda dt: _x(dt, lambda x: T.log(1 + T.exp(x))),
         lambda x: np.logaddexp(0, x), present=("softplus",), absent=("exp", "log1p", "log"),
         sympy=True),
    Case("exp_minus_one_to_expm1", "exp_minus_1", lambda dt: _x(dt, lambda x: T.exp(x) - 1),
         np.expm1, present=("expm1",), absent=("exp", "sub"), sympy=True),
    Case("one_over_one_plus_exp_to_sigmoid", "hand_written_logistic",
         lambda dt: _x(dt, lambda x: 1 / (1 + T.exp(-x))),
         lambda x: 0.5 * (1 + np.tanh(x / 2)), present=("sigmoid",), absent=("exp",),
         sympy=True),
    Case("cancel_sigmoid_factors", "sigmoid_over_itself_times_one_minus",
         lambda dt: _x(dt, lambda x: (x / T.nnet.sigmoid(x)) * T.nnet.sigmoid(x)
                       * (1 - T.nnet.sigmoid(x))),
         lambda x: x * 0.5 * (1 - np.tanh(x / 2)), absent=("true_div",), sympy=True),
    Case("cancel_sigmoid_factors", "exp_over_one_plus_exp",
         lambda dt: _x(dt, lambda x: x * T.exp(x) / (1 + T.exp(x))),
         lambda x: x * 0.5 * (1 + np.tanh(x / 2)), present=("sigmoid",),
         absent=("exp", "true_div"), sympy=True),
    Case("log_sigmoid_to_softplus", "log_sigmoid",
         lambda dt: _x(dt, lambda x: T.log(T.nnet.sigmoid(x))),
         lambda x: -np.logaddexp(0, -x), present=("softplus",), absent=("log", "sigmoid"),
         sympy=True),
    Case("log_one_minus_sigmoid_to_softplus", "log_1_minus_sigmoid",
         lambda dt: _x(dt, lambda x: T.log(1 - T.nnet.sigmoid(x))),
         lambda x: -np.logaddexp(0, x), present=("softplus",),
         absent=("log", "log1p", "sigmoid"), sympy=True),
    Case("log_softmax_from_log_of_softmax", "log_softmax",
         lambda dt: _m(dt, lambda m: T.log(T.nnet.softmax(m))),
         lambda m: np.log(softmax_np(m)), present=("LogSoftmax",), absent=("log", "Softmax")),
    Case("softmax_from_log_softmax", "log_softmax_and_softmax",
         lambda dt: _m(dt, lambda m: T.nnet.logsoftmax(m) * T.nnet.softmax(m)),
         lambda m: np.log(softmax_np(m)) * softmax_np(m), present=("LogSoftmax", "exp"),
         absent=("Softmax",)),
    Case("log_sum_exp_to_logsumexp", "rows",
         lambda dt: _m(dt, lambda m: T.log(T.sum(T.exp(m), axis=1))),
         lambda m: np.log(np.exp(m).sum(axis=1)), present=("Max",)),
    Case("log_sum_exp_to_logsumexp", "gradient_is_softmax",  # stable where exp overflows
         lambda dt: _m(dt, lambda m: T.grad(T.log(T.sum(T.exp(m), axis=1)).sum(), m)),
         softmax_np, present=("Softmax",)),
    Case("crossentropy_of_softmax_to_log_softmax", "int_labels",
         lambda dt: _m_y(dt, lambda m, y: T.nnet.categorical_crossentropy(T.nnet.softmax(m), y)),
         lambda m, y: -np.log(softmax_np(m)[np.arange(len(y)), y]), present=("LogSoftmax",),
         absent=("CrossentropyCategorical1Hot", "Softmax")),
    Case("softmax_grad_of_crossentropy", "grad_wrt_logits", lambda dt: _m_y(dt, _ce_grad),
         lambda m, y: softmax_np(m) - onehot(y, 4), absent=("true_div",)),
    Case("softmax_grad_of_crossentropy", "grad_of_the_mean_wrt_logits",
         lambda dt: _m_y(dt, lambda m, y: T.grad(T.nnet.categorical_crossentropy(
             T.nnet.softmax(m), y).mean(), m)),
         lambda m, y: (softmax_np(m) - onehot(y, 4)) / len(y), absent=("Alloc",)),
    Case("pow_to_cheaper", "square", lambda dt: _x(dt, lambda x: x ** 2),
         np.square, present=("sqr",), absent=("pow",), sympy=True),
    Case("pow_to_cheaper", "sqrt", lambda dt: _x(dt, lambda x: x ** 0.5),
         np.sqrt, present=("sqrt",), absent=("pow",), domain=(0.1, 3), sympy=True),
    Case("pow_to_cheaper", "one", lambda dt: _x(dt, lambda x: T.exp(x ** 1)),
         np.exp, absent=("pow",), sympy=True),
    Case("pow_to_cheaper", "inverse", lambda dt: _x(dt, lambda x: x ** -1),
         lambda x: 1 / x, present=("inv",), absent=("pow",), domain=(0.1, 3), sympy=True),
    Case("pow_to_cheaper", "cube", lambda dt: _x(dt, lambda x: x ** 3),
         lambda x: x ** 3, present=("sqr", "mul"), absent=("pow",), sympy=True),
    Case("pow_to_cheaper", "inverse_sqrt", lambda dt: _x(dt, lambda x: x ** -0.5),
         lambda x: 1 / np.sqrt(x), present=("inv", "sqrt"), absent=("pow",), domain=(0.1, 3),
         sympy=True),
    Case("mul_self_to_sqr", "x_times_x", lambda dt: _x(dt, lambda x: x * x),
         np.square, present=("sqr",), absent=("mul",), sympy=True),
    Case("dot_plus_bias_to_dotadd", "dense_layer", _dot_bias,
         lambda m, w, b: m @ w + b, present=("DotAdd",), absent=("Dot", "add")),
    Case("scaled_dot_add_to_gemm", "sgd_step", lambda dt: _gemm_args(
        dt, lambda z, x, y: z - np.asarray(0.1, dt) * T.dot(x, y), scale=False),
        lambda z, x, y: z - 0.1 * (x @ y), present=("Gemm",), absent=("Dot", "sub", "mul")),
    Case("scaled_dot_add_to_gemm", "scale_on_the_right", lambda dt: _gemm_args(
        dt, lambda z, x, y, s: z + T.dot(x, y) * s),
        lambda z, x, y, s: z + (x @ y) * s, present=("Gemm",), absent=("Dot", "add", "mul")),
    Case("scaled_dot_add_to_gemm", "dot_minus_scaled_z", lambda dt: _gemm_args(
        dt, lambda z, x, y, s: T.dot(x, y) - s * z),
        lambda z, x, y, s: x @ y - s * z, present=("Gemm",), absent=("Dot", "sub", "mul")),
    Case("scaled_dot_add_to_gemm", "scaled_bias_row", lambda dt: _gemm_args(
        dt, lambda z, x, y, s: z[0] - s * T.dot(x, y)),
        lambda z, x, y, s: z[0] - s * (x @ y), present=("Gemm",), absent=("Dot", "sub")),
    # (new cases go last: the audit tests draw their data in this order)
    Case("eq_of_extremum_to_comparison", "relu_gradient",
         lambda dt: _xy(dt, lambda x, y: T.grad((T.nnet.relu(x) * y).sum(), x)),
         lambda x, y: y * (x >= 0), present=("ge",), absent=("maximum", "eq")),
    Case("eq_of_extremum_to_comparison", "x_equals_minimum",
         lambda dt: _xy(dt, lambda x, y: T.eq(x, T.minimum(y, x))),
         lambda x, y: x <= y, present=("le",), absent=("minimum", "eq")),
    Case("scan_invariants_out_of_loop", "transposed_weights",
         lambda dt: _scan_with_invariant_work(dt),
         lambda h0, W: _np_loop(h0, lambda h: np.tanh(h @ (W.T * 2)), 3)[-1],
         present=("Scan",)),
    Case("scan_sequence_work_before_loop", "input_projection",
         lambda dt: _scan_rnn(dt),
         lambda x, h0, W: _np_loop(h0, lambda h, x_t: np.tanh(x_t @ W + h), len(x), x),
         present=("Scan", "Dot")),
    Case("scan_sums_regrouped", "rnn_bias",
         lambda dt: _scan_rnn_with_bias(dt),
         lambda x, h0, W, U, b: _np_loop(h0, lambda h, x_t: np.tanh(x_t @ W + h @ U + b),
                                         len(x), x),
         present=("Scan", "DotAdd")),
    Case("scan_unused_parts_removed", "unused_map_output",
         lambda dt: _scan_two_outputs(dt, lambda h, m: h),
         lambda x, h0: _np_loop(h0, lambda h, x_t: h * 0.5 + x_t, len(x), x),
         present=("Scan",)),
    Case("scan_loops_merged", "two_loops_over_x",
         lambda dt: _scan_two_loops(dt),
         lambda x, h0: _np_loop(h0, lambda h, x_t: h * 0.5 + x_t, len(x), x)
         + _np_loop(h0, lambda h, x_t: np.tanh(h) - x_t, len(x), x),
         count={"Scan": 1}),
    Case("scan_sums_after_loop", "outer_products_of_rows",
         lambda dt: _scan_sum_of_products(dt),
         lambda x, acc0: acc0 + x.T @ x, present=("DotAdd",), absent=("Scan",)),
    Case("scan_only_last_state_kept", "last_state_of_rnn",
         lambda dt: (lambda i, h: (i, h[-1]))(*_scan_rnn(dt)),
         lambda x, h0, W: _np_loop(h0, lambda h, x_t: np.tanh(x_t @ W + h), len(x), x)[-1],
         present=("Scan",)),
    Case("softmax_from_exp_over_sum", "keepdims",  # stable where exp overflows
         lambda dt: _m(dt, lambda m: T.exp(m) / T.exp(m).sum(axis=1, keepdims=True)),
         softmax_np, present=("Softmax",), absent=("exp",)),
]


def test_every_rule_has_a_case():
    names = {r.name for r in all_rules()}
    missing = names - {c.rule for c in CASES}
    assert not missing, f"rules without a test case in CASES: {sorted(missing)}"
    unknown = {c.rule for c in CASES} - names
    assert not unknown, f"cases for rules that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.rule}-{c.id}")
def test_rule(case: Case, dtype: str):
    inputs, out = case.build(dtype)
    f = theano.function(inputs, out, mode=case.mode)
    ref = theano.function(inputs, out, mode=NO_REWRITES)
    fg = f.maker.fgraph
    assert case.rule in fired(f), f"{case.rule} did not fire; history: {fired(f)}"
    keys = op_keys(fg)
    for k in case.present:
        assert keys[k], f"{k} missing from the compiled graph {dict(keys)}"
    for k in case.absent:
        assert not keys[k], f"{k} still in the compiled graph {dict(keys)}"
    for k, n in case.count.items():
        assert keys[k] == n, f"{k} occurs {keys[k]} times, not {n}: {dict(keys)}"
    # every variable the rule made keeps the creation line of what it replaced (a variable
    # that was already there, like x for -(-x), keeps its own)
    for name, old, new in fg.history:
        if name == case.rule and not isinstance(new, Constant) and new not in ancestors([old]):
            assert new.trace == old.trace and new.trace[0] == __file__, (new.trace, old.trace)

    rng = np.random.default_rng(0)
    data = random_data(inputs, rng, *case.domain)
    got, want = f(*data), ref(*data)
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert [g.dtype for g in got] == [w.dtype for w in want]
    assert_same(got, want, dtype)
    assert_same(got, [np.asarray(case.ref(*data))], dtype)


SYMPY_CASES = [c for c in CASES if c.sympy]


@pytest.mark.parametrize("case", SYMPY_CASES, ids=lambda c: f"{c.rule}-{c.id}")
def test_rule_is_an_identity_by_sympy(case: Case):
    """The graph before rewriting and after it, and each replacement the rule made, are the
    same formula."""
    inputs, out = case.build("float64")
    f = theano.function(inputs, out, mode=case.mode)
    fg = f.maker.fgraph
    before, = to_sympy(out, inputs)
    after, = to_sympy(fg.outputs[0], fg.inputs)
    assert equivalent(before, after), (before, after)
    pairs = [(old, new) for name, old, new in fg.history if name == case.rule]
    assert pairs
    for old, new in pairs:
        a, b = to_sympy([old, new], fg.inputs)
        assert equivalent(a, b), (case.rule, a, b)


# -- rules that must not fire -----------------------------------------------------------------

def _neg(rule, build, domain=(-2.0, 2.0), mode=FAST_RUN, ints=(0, 3)):
    return pytest.param(rule, build, domain, mode, ints, id=f"{rule}-{len(NEGATIVE)}")


NEGATIVE: list = []
NEGATIVE += [
    # x / x is NaN where x is 0 (or inf): only a finite non-zero constant becomes 1
    _neg("div_self_to_one", lambda: _x("float64", lambda x: x / x), domain=(-1, 1)),
    _neg("div_self_to_one",
         lambda: _x("float64", lambda x: x * (lambda c: c / c)(T.constant(np.arange(3.0)))),
         mode=NO_FOLDING),
]
NEGATIVE += [  # stabilize rules hold on the reals, not on wrapping integers
    _neg("log_one_plus_to_log1p", lambda: ([b := T.bvector("b")], T.log(1 + b))),
    _neg("log_one_minus_to_log1p", lambda: ([b := T.ivector("b")], T.log(1 - b))),
    _neg("exp_minus_one_to_expm1", lambda: ([b := T.bvector("b")], T.exp(b) - 1)),
    _neg("log_sigmoid_to_softplus", lambda: ([b := T.bvector("b")], T.log(T.nnet.sigmoid(b)))),
    _neg("log1p_exp_to_softplus", lambda: ([b := T.bvector("b")], T.log1p(T.exp(b)))),
]
NEGATIVE += [  # the identity would broadcast, upcast or transpose differently
    _neg("add_zero_to_identity",
         lambda: ([r := T.row("r", dtype="float64")], r + T.constant(np.zeros((3, 4))))),
    _neg("mul_one_to_identity",
         lambda: ([r := T.row("r", dtype="float64")], r * T.constant(np.ones((3, 4))))),
    _neg("add_zero_to_identity",
         lambda: ([x := T.fvector("x")], x + T.constant(np.zeros(3)))),
    _neg("pow_to_cheaper",
         lambda: ([c := T.col("c", dtype="float64")], c ** T.constant(np.full((1, 4), 2.0)))),
    _neg("log_one_plus_to_log1p",
         lambda: ([r := T.row("r", dtype="float64")], T.log(T.constant(np.ones((3, 4))) + r)),
         domain=(0, 2)),
    _neg("neg_neg_to_identity", lambda: ([b := T.vector("b", dtype="bool")], -(-b))),
    _neg("mul_minus_one_to_neg", lambda: ([b := T.vector("b", dtype="uint8")], b * -1),
         ints=(0, 255)),
]
NEGATIVE += [  # the inner cast loses information
    _neg("cast_of_cast", lambda: _x("float64", lambda x: T.cast(T.cast(x, "int32"), "float64"))),
    _neg("cast_of_cast", lambda: ([i := T.lvector("i")], T.cast(T.cast(i, "float64"), "int64"))),
    _neg("cast_of_cast", lambda: _x("float64", lambda x: T.cast(T.cast(x, "float32"),
                                                                   "float64"))),
]
NEGATIVE += [
    _neg("useless_slice", lambda: _x("float64", lambda x: x[1:])),
    _neg("useless_slice", lambda: _x("float64", lambda x: x[0:2])),
    _neg("reshape_to_own_shape",
         lambda: ([s := static("float64", (3, 4))], s.reshape((4, 3)))),
    _neg("dot_plus_bias_to_dotadd",  # the product is used twice: adding in place would clobber it
         lambda: (lambda m, w, b: ([m, w, b], [T.dot(m, w) + b, 2 * T.dot(m, w)]))(
             static("float64", (None, 4), "m"), static("float64", (4, 5), "w"),
             static("float64", (5,), "b"))),
    _neg("scaled_dot_add_to_gemm",  # the scaled product is used twice: computed once
         lambda: _gemm_args("float64", lambda z, x, y, s: [z - s * T.dot(x, y),
                                                           s * T.dot(x, y)])),
    _neg("scaled_dot_add_to_gemm",  # a scale that is not a scalar
         lambda: _gemm_args("float64", lambda z, x, y: z - z * T.dot(x, y), scale=False)),
    _neg("crossentropy_of_softmax_to_log_softmax",  # softmax over the wrong axis
         lambda: _m_y("float64", lambda m, y: T.nnet.categorical_crossentropy(
             T.nnet.softmax(m, axis=0), y))),
    _neg("log_one_minus_to_log1p",  # the more specific softplus rule wins
         lambda: _x("float64", lambda x: T.log(1 - T.nnet.sigmoid(x)))),
    _neg("add_chain_cancel_and_collect",  # m + r - m -> r would lose the broadcast to m's shape
         lambda: ([m := mat("float64"), r := T.row("r", dtype="float64")], m + r - m)),
    _neg("add_chain_cancel_and_collect",  # (int8 x + 100) wraps before the float add
         lambda: ([b := T.bvector("b")], (b + np.int8(100)) + np.float32(0.5)), ints=(20, 40)),
    _neg("add_chain_cancel_and_collect",  # a partial sum used elsewhere is not regrouped
         lambda: _xy("float64", lambda x, y: [(x + y) - x, 2 * (x + y)])),
    _neg("add_constants_together",  # (int8 x + 100) wraps before the float add
         lambda: ([b := T.bvector("b")], (b + np.int8(100)) + np.float32(0.5)), ints=(20, 40)),
]


@pytest.mark.parametrize("rule, build, domain, mode, ints", NEGATIVE)
def test_rule_does_not_fire(rule, build, domain, mode, ints):
    inputs, out = build()
    f = theano.function(inputs, out, mode=mode)
    assert rule not in fired(f), f"{rule} fired on a graph it must leave alone"
    ref = theano.function(inputs, out, mode=NO_REWRITES)
    data = random_data(inputs, np.random.default_rng(1), *domain, ints=ints)
    with np.errstate(all="ignore"):
        got, want = f(*data), ref(*data)
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6, equal_nan=True)


# -- regressions for the rule bugs these tests found --------------------------------------------

def test_combined_constants_keep_the_output_precision():
    """(x + c1) + c2 with float32 constants and float64 x: the constants are added in float64
    (float32 1e8 + 1 would round the 1 away)."""
    x = T.dvector("x")
    out = (x + np.float32(1e8)) + np.float32(1.0)
    f = theano.function([x], out)
    assert "add_constants_together" in fired(f)
    X = np.array([0.0, 0.5])
    np.testing.assert_array_equal(f(X), (X + 1e8) + 1.0)


def test_cast_of_cast_keeps_int64_rounding():
    i = T.lvector("i")
    f = theano.function([i], T.cast(T.cast(i, "float64"), "int64"))
    big = np.array([2 ** 53 + 1], dtype="int64")
    np.testing.assert_array_equal(f(big), big.astype("float64").astype("int64"))


@pytest.mark.parametrize("dtype, big", [("float32", 100.0), ("float64", 800.0)])
def test_log_one_plus_exp_does_not_overflow(dtype, big):
    x = vec(dtype)
    f = theano.function([x], T.log(1 + T.exp(x)))
    got = f(np.array([big, -big, 0.0], dtype=dtype))
    np.testing.assert_allclose(got, [big, 0.0, np.log(2.0)], rtol=1e-6, atol=1e-30)


def test_log_one_minus_sigmoid_is_finite_for_large_x():
    x = T.dvector("x")
    f = theano.function([x], T.log(1 - T.nnet.sigmoid(x)))
    np.testing.assert_allclose(f(np.array([40.0, -40.0])), [-40.0, -np.exp(-40.0)], rtol=1e-9)


def test_logsumexp_of_empty_rows():
    m = T.dmatrix("m")
    f = theano.function([m], T.log(T.sum(T.exp(m), axis=1)))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(f(np.zeros((3, 0))), [-np.inf] * 3)


def test_rewritten_node_keeps_the_user_line():
    x = T.dvector("x")
    line = sys._getframe().f_lineno + 1
    out = T.log(1 + x)
    f = theano.function([x], out)
    (node,) = f.maker.fgraph.toposort()
    assert node.op.scalar_op.name == "log1p"
    assert node.outputs[0].trace[:2] == (__file__, line)
    assert out.owner.op.scalar_op.name == "log"  # the user's graph is left as it was


# -- together: an MLP and an RNN -------------------------------------------------------------

def _mlp(dtype, rng):
    x, y = T.matrix("x", dtype=dtype), T.ivector("y")
    shapes = {"W1": (4, 6), "b1": (6,), "W2": (6, 3), "b2": (3,)}
    params = [theano.shared((rng.normal(size=s) * 0.5).astype(dtype), name=n)
              for n, s in shapes.items()]
    W1, b1, W2, b2 = params
    h = T.nnet.relu(T.dot(x, W1) + b1)
    p = T.nnet.softmax(T.dot(h, W2) + b2)
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    grads = T.grad(loss, params)
    updates = [(q, q - np.asarray(0.1, dtype) * g) for q, g in zip(params, grads)]
    data = [rng.normal(size=(8, 4)).astype(dtype), rng.integers(0, 3, 8).astype("int32")]
    return [x, y], loss, grads, params, updates, data


def _rnn(dtype, rng, steps=5):
    X, target = T.tensor3("X", dtype=dtype), T.matrix("target", dtype=dtype)
    Wx = theano.shared((rng.normal(size=(3, 4)) * 0.5).astype(dtype), name="Wx")
    Wh = theano.shared((rng.normal(size=(4, 4)) * 0.5).astype(dtype), name="Wh")
    b = theano.shared(np.zeros(4, dtype=dtype), name="b")
    h = T.zeros((X.shape[1], 4), dtype=dtype)
    for t in range(steps):
        h = T.tanh(T.dot(X[t], Wx) + T.dot(h, Wh) + b)
    loss = ((h - target) ** 2).mean()
    params = [Wx, Wh]
    grads = T.grad(loss, params)
    updates = [(q, q - np.asarray(0.1, dtype) * g) for q, g in zip(params, grads)]
    data = [rng.normal(size=(steps, 2, 3)).astype(dtype), rng.normal(size=(2, 4)).astype(dtype)]
    return [X, target], loss, grads, params, updates, data


def _train(mode, inputs, loss, params, updates, data, start, n=3):
    for q, v in zip(params, start):
        q.set_value(v.copy())
    f = theano.function(inputs, loss, updates=updates, mode=mode)
    losses = [f(*data) for _ in range(n)]
    return f, losses, [q.get_value() for q in params]


@pytest.mark.parametrize("model", [_mlp, _rnn])
@pytest.mark.parametrize("dtype", DTYPES)
def test_together_equals_unrewritten(model, dtype):
    rng = np.random.default_rng(3)
    inputs, loss, grads, params, updates, data = model(dtype, rng)
    start = [q.get_value() for q in params]
    f, losses, after = _train("FAST_RUN", inputs, loss, params, updates, data, start)
    g, ref_losses, ref_after = _train(NO_REWRITES, inputs, loss, params, updates, data, start)
    assert len(f.maker.fgraph.nodes) <= len(g.maker.fgraph.nodes)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses, ref_losses, **tol)
    for a, b in zip(after, ref_after):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)
    # the checking mode runs the same steps without finding a mismatch
    _, dbg_losses, _ = _train("DebugMode", inputs, loss, params, updates, data, start)
    np.testing.assert_allclose(dbg_losses, ref_losses, **tol)


def test_mlp_is_stabilized():
    inputs, loss, grads, params, updates, data = _mlp("float32", np.random.default_rng(0))
    f = theano.function(inputs, loss, updates=updates)
    keys, names = op_keys(f.maker.fgraph), fired(f)
    assert keys["LogSoftmax"] and not keys["CrossentropyCategorical1Hot"]
    assert "crossentropy_of_softmax_to_log_softmax" in names
    assert "softmax_grad_of_crossentropy" in names
    assert "dot_plus_bias_to_dotadd" in names
    for node in f.maker.fgraph.toposort():  # no log of a softmax, no division by one of its entries
        if getattr(node.op, "scalar_op", None) is not None and \
                node.op.scalar_op.name in ("log", "true_div"):
            src = node.inputs[-1].owner
            assert src is None or "Softmax" not in str(src.op) and "Subtensor" not in str(src.op)
    # large logits: the stabilized loss and gradients stay finite in float32
    W2 = params[2]
    W2.set_value(W2.get_value() * 1e4)
    g = theano.function(inputs, grads)
    assert np.all(np.isfinite(f(*data))) and all(np.all(np.isfinite(v)) for v in g(*data))


@pytest.mark.parametrize("model", [_mlp, _rnn])
def test_together_gradients_match_finite_differences(model):
    rng = np.random.default_rng(5)
    inputs, loss, grads, params, updates, data = model("float64", rng)
    f_loss = theano.function(inputs, loss)
    f_grad = theano.function(inputs, grads)
    analytic = f_grad(*data)
    eps = 1e-6
    for q, gq in zip(params, analytic):
        value = q.get_value()
        for idx in list(np.ndindex(value.shape))[:6]:
            plus, minus = value.copy(), value.copy()
            plus[idx] += eps
            minus[idx] -= eps
            q.set_value(plus)
            lp = f_loss(*data)
            q.set_value(minus)
            lm = f_loss(*data)
            q.set_value(value)
            np.testing.assert_allclose(gq[idx], (lp - lm) / (2 * eps), rtol=1e-5, atol=1e-7)


# -- regressions found in review ----------------------------------------------------------------
def test_softmax_grad_rewrite_only_for_softmax_over_rows():
    x, y = T.dmatrix("x"), T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x, axis=0), y).sum()
    g = T.grad(cost, x)
    xv = np.random.default_rng(0).normal(size=(4, 4))
    yv = np.array([0, 2, 1, 2], "int32")
    np.testing.assert_allclose(theano.function([x, y], g)(xv, yv),
                               theano.function([x, y], g, mode=NO_REWRITES)(xv, yv), atol=1e-12)


@pytest.mark.parametrize("with_grad", [False, True])
def test_crossentropy_rewrites_keep_the_label_check(with_grad):
    x, y = T.dmatrix("x"), T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x), y)
    out = T.grad(cost.sum(), x) if with_grad else cost
    f = theano.function([x, y], out)
    assert "crossentropy_of_softmax_to_log_softmax" in fired(f) or \
        "softmax_grad_of_crossentropy" in fired(f)
    with pytest.raises(ValueError, match="target class -1 is out of range"):
        f(np.zeros((2, 3)), np.array([-1, 0], "int32"))
    with pytest.raises(ValueError, match="target class 3 is out of range"):
        f(np.zeros((2, 3)), np.array([0, 3], "int32"))


@pytest.mark.parametrize("expr, args, expected", [
    (lambda s, u: s + (-u), (0, 1), 255),    # -u wraps in uint8 before the int16 add
    (lambda s, u: s - (-u), (0, 1), -255),
])
def test_neg_rules_respect_a_narrower_negation(expr, args, expected):
    s, u = T.scalar("s", dtype="int16"), T.scalar("u", dtype="uint8")
    assert theano.function([s, u], expr(s, u))(*args) == expected


def test_add_chain_with_unsigned_constants_wraps_like_the_original():
    u = T.vector("u", dtype="uint8")
    out = (u - np.uint8(3)) + np.uint8(1)
    v = np.array([5, 1, 0], "uint8")
    np.testing.assert_array_equal(theano.function([u], out)(v),
                                  theano.function([u], out, mode=NO_REWRITES)(v))


def test_rule_fires_after_a_sibling_use_disappears():
    x, y = T.dvectors("x", "y")
    s = x + y
    f = theano.function([x, y], [s - x, s - s])  # s - s goes; then s - x is a chain of its own
    assert op_keys(f.maker.fgraph)["add"] == 0


def test_dotadd_enforces_declared_broadcasting():
    a, b, c = T.dmatrices("a", "b", "c")
    out = T.dot(a, b) + c
    f = theano.function([a, b, c], [out, out.shape])
    assert any(type(n.op).__name__ == "DotAdd" for n in f.maker.fgraph.toposort())
    with pytest.raises(ValueError, match="not broadcastable"):
        f(np.ones((1, 4)), np.ones((4, 5)), np.ones((3, 5)))
    r = T.drow("r")
    g = theano.function([r, b, c], [T.dot(r, b) + c, (T.dot(r, b) + c).shape])
    value, shape = g(np.ones((1, 4)), np.ones((4, 5)), np.ones((3, 5)))
    assert value.shape == (3, 5) and tuple(shape) == (3, 5)


@pytest.mark.parametrize("written", ["sigmoid", "by_hand"])
def test_logistic_regression_gradients_stay_finite_at_saturation(written):
    # Theano's tutorial logistic regression: with |z| > 37 the sigmoid rounds to 0 or 1 and the
    # gradient of its crossentropy was 0 / 0 until the sigmoid factors cancel
    x, y = T.dmatrix("x"), T.dvector("y")
    w = theano.shared(np.array([1.0, -1.0]), name="w")
    z = T.dot(x, w)
    p = T.nnet.sigmoid(z) if written == "sigmoid" else 1 / (1 + T.exp(-z))
    cost = (-y * T.log(p) - (1 - y) * T.log(1 - p)).mean()
    f = theano.function([x, y], [cost, T.grad(cost, w)])
    X = np.array([[400.0, 0.0], [0.0, 400.0], [1.0, 0.5]])
    Y = np.array([0.0, 1.0, 1.0])
    c, g = f(X, Y)
    zv = X @ np.array([1.0, -1.0])
    pv = 0.5 * (1 + np.tanh(zv / 2))
    np.testing.assert_allclose(c, np.mean(Y * np.logaddexp(0, -zv) + (1 - Y) * np.logaddexp(0, zv)))
    np.testing.assert_allclose(g, X.T @ (pv - Y) / 3)


def test_sigmoid_factors_that_all_cancel_leave_the_product():
    x = T.dvector("x")
    s = T.nnet.sigmoid(x)
    f = theano.function([x], [s / s, -(s * (1 / (1 + T.exp(-x)))) / (s * s)])
    one, minus_one = f(np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_allclose(one, 1.0)
    np.testing.assert_allclose(minus_one, -1.0)


def test_eq_of_extremum_to_comparison_on_nan_and_signed_zeros():
    """ge/le give what eq(maximum/minimum(x, y), x) gives on every special value."""
    x, y = T.dvectors("x", "y")
    outs = [T.eq(T.maximum(x, y), x), T.eq(x, T.maximum(y, x)), T.eq(T.minimum(x, y), x)]
    f = theano.function([x, y], outs, mode=FAST_RUN)
    ref = theano.function([x, y], outs, mode=NO_REWRITES)
    assert "eq_of_extremum_to_comparison" in fired(f)
    special = [np.nan, -0.0, 0.0, 1.0, -1.0, np.inf, -np.inf]
    a, b = (np.array(v) for v in zip(*[(p, q) for p in special for q in special]))
    for got, want in zip(f(a, b), ref(a, b)):
        np.testing.assert_array_equal(got, want)
    # a maximum upcasting x (int32 with float32 gives float64) is left alone
    i, s = T.ivector("i"), T.fvector("s")
    g = theano.function([i, s], T.eq(T.maximum(i, s), i), mode=FAST_RUN)
    assert "eq_of_extremum_to_comparison" not in fired(g)
