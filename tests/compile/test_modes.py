"""Modes: FAST_RUN (every phase), FAST_COMPILE (merge and constant folding only), no rewrites,
the checking mode (DebugMode) that names a rule that changed a result, and debugprint of a
compiled function before and after rewriting."""
from __future__ import annotations

import inspect
import os
import time

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.compile import rewrite
from theon.compile.debug import RewriteMismatchError
from theon.compile.mode import get_mode
from theon.ifelse import ifelse
from theon.ops.elemwise import ELEMWISE as E

_rng = np.random.default_rng(7)
NO_REWRITES = theano.Mode(optimizer=None)
MODES = {"FAST_RUN": "FAST_RUN", "FAST_COMPILE": "FAST_COMPILE", "None": NO_REWRITES,
         "DebugMode": "DebugMode"}


def rnd(*shape):
    return _rng.uniform(0.2, 1.5, size=shape)


def _ops(f) -> list:
    """The ops of the compiled graph; a Fused node lists the rows it holds."""
    out = []
    for node in f.maker.fgraph.toposort():
        sop = getattr(node.op, "scalar_op", None)
        out.append(sop.name if sop is not None else type(node.op).__name__)
        out.extend(step.name for step, _ in getattr(getattr(node.op, "graph", None), "steps", ()))
    return out


def _line() -> int:
    return inspect.currentframe().f_back.f_lineno


# -- graphs every mode must compute alike ---------------------------------------------------------

def _g_log1p():
    x = T.dmatrix("x")
    return [x], [T.log(1 + x), T.log(1 - T.sigmoid(x)), T.exp(x) - 1], [rnd(3, 4)]


def _g_merge_fold():
    x = T.dvector("x")
    c = T.constant(2.0) * T.constant(3.0)
    return [x], [T.exp(x) * c + T.exp(x), x - x, -(-x)], [rnd(5)]


def _g_nnet():
    x, y = T.dmatrix("x"), T.ivector("y")
    W = theano.shared(rnd(4, 3), name="W")
    b = theano.shared(rnd(3), name="b")
    p = T.nnet.softmax(T.dot(x, W) + b)
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    gW, gb = T.grad(loss, [W, b])
    return [x, y], [loss, gW, gb, T.log(p)], [rnd(5, 4), np.array([0, 2, 1, 1, 0], "int32")]


def _g_specialize():
    a, b, c = T.dmatrix("a"), T.dmatrix("b"), T.dvector("c")
    return [a, b, c], [T.dot(a, b) + c, a ** 2, a * a, a ** 0.5], [rnd(3, 4), rnd(4, 2), rnd(2)]


def _g_shapes():
    x, i = T.dtensor3("x"), T.iscalar("i")
    r = x.reshape((2, -1))
    return [x, i], [r.shape, r[i:].sum(axis=1), T.zeros_like(x[1:]).shape, x[:, i].T.shape], [
        rnd(2, 3, 4), np.int32(1)]


def _g_ifelse():
    c, x = T.iscalar("c"), T.dvector("x")
    return [c, x], [ifelse(c, T.exp(x), T.log(1 + x)), ifelse(c, x.sum(), x.prod())], [
        np.int32(0), rnd(4)]


GRAPHS = {"log1p": _g_log1p, "merge_fold": _g_merge_fold, "nnet": _g_nnet,
          "specialize": _g_specialize, "shapes": _g_shapes, "ifelse": _g_ifelse}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_modes_give_equal_results(graph):
    inputs, outputs, args = GRAPHS[graph]()
    results = {}
    for name, mode in MODES.items():
        f = theano.function(inputs, outputs, mode=mode)
        results[name] = f(*args)
    ref = results["None"]
    for name, got in results.items():
        assert len(got) == len(ref)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{graph}: {name}")


# -- what each mode does to a graph ---------------------------------------------------------------

def test_fast_compile_only_merges_and_folds():
    x = T.dvector("x")
    c = T.constant(2.0) * T.constant(3.0)
    outs = [T.log(1 + x), T.exp(x) * c + T.exp(x), x - x, -(-x)]
    f = theano.function([x], outs, mode="FAST_COMPILE")
    ops = _ops(f)
    assert ops.count("log") == 1 and "log1p" not in ops  # no stabilize
    assert ops.count("exp") == 1  # the two exp(x) merged
    assert "sub" in ops and ops.count("neg") == 2  # no canonicalize
    assert ops.count("mul") == 1  # 2.0 * 3.0 folded: only exp(x) * 6 is left
    mul = next(n for n in f.maker.fgraph.toposort() if _ops_of(n) == "mul")
    assert any(isinstance(i, theano.Constant) and np.all(i.data == 6.0) for i in mul.inputs)
    X = rnd(4)
    got = f(X)
    np.testing.assert_allclose(got[0], np.log1p(X))
    np.testing.assert_allclose(got[1], np.exp(X) * 7)
    np.testing.assert_allclose(got[2], 0 * X)
    np.testing.assert_allclose(got[3], X)


def _ops_of(node):
    sop = getattr(node.op, "scalar_op", None)
    return sop.name if sop is not None else type(node.op).__name__


def test_no_rewrites_keeps_everything():
    x = T.dvector("x")
    f = theano.function([x], [T.exp(x) + T.exp(x), x + T.constant(2.0) * 3], mode=NO_REWRITES)
    ops = _ops(f)
    assert ops.count("exp") == 2 and ops.count("mul") == 1


def test_fast_run_applies_every_phase():
    a, b, c = T.dmatrix("a"), T.dmatrix("b"), T.dvector("c")
    outs = [T.log(1 + a),            # stabilize
            -(-a) + (b - b),         # canonicalize
            a ** 2, T.dot(a, b) + c]  # specialize
    f = theano.function([a, b, c], outs, mode="FAST_RUN")
    ops = _ops(f)
    assert "log1p" in ops and "log" not in ops
    assert "neg" not in ops and "sub" not in ops
    assert "sqr" in ops and "pow" not in ops
    assert "DotAdd" in ops and "Dot" not in ops
    A, B, C = rnd(3, 3), rnd(3, 3), rnd(3)
    got = f(A, B, C)
    np.testing.assert_allclose(got[0], np.log1p(A))
    np.testing.assert_allclose(got[1], A)
    np.testing.assert_allclose(got[2], A ** 2)
    np.testing.assert_allclose(got[3], A @ B + C)


def test_default_mode_is_config_mode():
    if "mode=" not in os.environ.get("THEON_FLAGS", ""):
        assert theano.config.mode == "FAST_RUN"
    x = T.dvector("x")
    f = theano.function([x], T.log(1 + x))
    assert f.maker.mode is get_mode(theano.config.mode)
    old = theano.config.mode
    try:
        theano.config.mode = "FAST_COMPILE"
        g = theano.function([x], T.log(1 + x))
        assert g.maker.mode.optimizer == "fast_compile"
        assert "log1p" not in _ops(g)
        theano.config.mode = "FAST_RUN"
        h = theano.function([x], T.log(1 + x))
        assert "log1p" in _ops(h)
    finally:
        theano.config.mode = old
    with pytest.raises(ValueError):
        theano.config.mode = "FASTEST"


def test_mode_names_and_objects():
    assert get_mode("FAST_RUN").optimizer == "fast_run"
    assert get_mode("FAST_COMPILE").optimizer == "fast_compile"
    assert get_mode("DebugMode").check and get_mode("DEBUG_MODE").check
    assert list(theano.Mode(optimizer="fast_compile").passes) == ["merge", "constant_folding"]
    assert list(theano.Mode(optimizer=None).passes) == []
    assert list(theano.Mode().passes)[:2] == ["merge", "constant_folding"]
    for phase in ("canonicalize", "stabilize", "specialize"):
        assert phase in theano.Mode().passes
    with pytest.raises(ValueError, match="unknown mode"):
        get_mode("FASTEST")
    with pytest.raises(ValueError, match="unknown optimizer"):
        theano.Mode(optimizer="o3")
    x = T.dvector("x")
    with pytest.raises(ValueError):
        theano.function([x], x * 2, mode="FASTEST")


def test_mode_object_fast_compile_equals_string():
    x = T.dvector("x")
    f = theano.function([x], T.log(1 + x), mode=theano.Mode(optimizer="fast_compile"))
    g = theano.function([x], T.log(1 + x), mode="FAST_COMPILE")
    assert _ops(f) == _ops(g) == ["add", "log"]


def test_excluding_a_rule_by_name():
    x = T.dvector("x")
    mode = theano.Mode().excluding("log_one_plus_to_log1p")
    f = theano.function([x], [T.log(1 + x), T.exp(x) - 1], mode=mode)
    ops = _ops(f)
    assert "log1p" not in ops and "log" in ops
    assert "expm1" in ops  # other rules still run
    X = rnd(3)
    np.testing.assert_allclose(f(X)[0], np.log1p(X))
    # the original mode is unchanged
    assert "log1p" in _ops(theano.function([x], T.log(1 + x), mode=theano.Mode()))


def test_excluding_a_phase():
    x = T.dvector("x")
    f = theano.function([x], [T.log(1 + x), x ** 2],
                        mode=theano.Mode().excluding("stabilize"))
    ops = _ops(f)
    assert "log1p" not in ops and "sqr" in ops


def test_including_phases_in_fast_compile():
    x = T.dvector("x")
    mode = theano.Mode(optimizer="fast_compile").including("canonicalize", "stabilize")
    assert list(mode.passes) == ["merge", "constant_folding", "canonicalize", "stabilize"]
    f = theano.function([x], [T.log(1 + x), x ** 2], mode=mode)
    ops = _ops(f)
    assert "log1p" in ops and "pow" in ops  # stabilize ran, specialize did not


def test_excluding_then_including_keep_the_check_flag():
    mode = get_mode("DebugMode").excluding("log_one_plus_to_log1p").including("merge")
    assert mode.check


# -- the checking mode --------------------------------------------------------------------------

def _unregister(name):
    for table in rewrite.RULES.values():
        for rules in table.values():
            rules[:] = [r for r in rules if r.name != name]


@pytest.fixture
def bogus_rule():
    """A deliberately wrong canonicalize rule: exp(x) -> exp2(x)."""

    @rewrite.register("canonicalize", "exp")
    def bogus_exp_to_exp2(fgraph, node):
        """exp(x) -> exp2(x) (wrong on purpose)"""
        return E["exp2"](node.inputs[0])

    try:
        yield bogus_exp_to_exp2
    finally:
        _unregister("bogus_exp_to_exp2")
        assert all(r.name != "bogus_exp_to_exp2" for r in rewrite.all_rules())


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_debug_mode_passes_on_correct_graphs(graph):
    inputs, outputs, args = GRAPHS[graph]()
    f = theano.function(inputs, outputs, mode="DebugMode")
    g = theano.function(inputs, outputs, mode="FAST_RUN")
    for a, b in zip(f(*args), g(*args)):
        np.testing.assert_allclose(a, b)


def test_debug_mode_with_updates():
    x = T.dvector("x")
    acc = theano.shared(np.zeros(3), name="acc")
    f = theano.function([x], T.log(1 + x).sum(), updates=[(acc, acc + T.exp(x) - 1)],
                        mode="DebugMode")
    X = rnd(3)
    f(X)
    f(X)
    np.testing.assert_allclose(acc.get_value(), 2 * np.expm1(X))


def test_debug_mode_names_the_wrong_rule(bogus_rule):
    x = T.dvector("x")
    y = T.exp(x) * 2
    f = theano.function([x], y, mode="DebugMode")
    assert "exp2" in _ops(f)
    with pytest.raises(RewriteMismatchError, match="bogus_exp_to_exp2"):
        f(rnd(3))


def test_debug_mode_names_the_user_line(bogus_rule):
    x = T.dvector("x")
    y = T.exp(x) * 2; line = _line()  # noqa: E702
    f = theano.function([x], y, mode="DebugMode")
    with pytest.raises(RewriteMismatchError) as err:
        f(rnd(3))
    msg = str(err.value)
    assert "bogus_exp_to_exp2" in msg and f"test_modes.py:{line}" in msg
    assert "y = T.exp(x) * 2" in msg


def test_bogus_rule_only_runs_where_its_phase_does(bogus_rule):
    x = T.dvector("x")
    X = rnd(3)
    fc = theano.function([x], T.exp(x), mode=theano.Mode(optimizer="fast_compile", check=True))
    np.testing.assert_allclose(fc(X), np.exp(X))  # canonicalize did not run: no mismatch
    fr = theano.function([x], T.exp(x), mode="FAST_RUN")
    np.testing.assert_allclose(fr(X), np.exp2(X))  # the wrong rule ran, unchecked
    ok = theano.function([x], T.exp(x), mode=get_mode("DebugMode").excluding("bogus_exp_to_exp2"))
    np.testing.assert_allclose(ok(X), np.exp(X))


def test_bogus_rule_is_gone_after_the_fixture():
    assert all(r.name != "bogus_exp_to_exp2" for r in rewrite.all_rules())
    x = T.dvector("x")
    f = theano.function([x], T.exp(x), mode="DebugMode")
    np.testing.assert_allclose(f(np.zeros(2)), [1.0, 1.0])


# -- debugprint before and after rewriting -----------------------------------------------------

def test_debugprint_shows_the_rewritten_and_the_original_graph():
    x = T.dvector("x")
    f = theano.function([x], T.log(1 + x))
    after = theano.printing.debugprint(f, file="str")
    before = theano.printing.debugprint(f, file="str", rewritten=False)
    assert "log1p" in after and "Elemwise{log}" not in after
    assert "Elemwise{log}" in before and "Elemwise{add}" in before and "log1p" not in before


def test_debugprint_of_a_debug_mode_function():
    x = T.dvector("x")
    f = theano.function([x], T.log(1 + x), mode="DebugMode")
    assert "log1p" in theano.printing.debugprint(f, file="str")
    assert "log1p" not in theano.printing.debugprint(f, file="str", rewritten=False)


def test_debugprint_original_includes_updates():
    x = T.dvector("x")
    acc = theano.shared(np.zeros(2), name="acc")
    f = theano.function([x], x.sum(), updates=[(acc, acc + T.log(1 + x))])
    before = theano.printing.debugprint(f, file="str", rewritten=False)
    after = theano.printing.debugprint(f, file="str")
    assert "acc" in before and "Elemwise{log}" in before
    assert "log1p" in after


# -- compile time ------------------------------------------------------------------------------

def test_fast_compile_compiles_a_long_chain_quickly():
    x = T.dvector("x")
    out = x
    for k in range(1000):
        out = T.tanh(out) * 0.5 if k % 2 else out + x
    times = {}
    results = {}
    X = rnd(4)
    for mode in ("FAST_COMPILE", "FAST_RUN"):
        start = time.perf_counter()
        f = theano.function([x], out, mode=mode)
        times[mode] = time.perf_counter() - start
        results[mode] = f(X)
    np.testing.assert_allclose(results["FAST_COMPILE"], results["FAST_RUN"])
    # loose: FAST_COMPILE runs a subset of FAST_RUN's passes
    assert times["FAST_COMPILE"] <= 2 * times["FAST_RUN"] + 1.0, times


def test_debug_mode_compiles_inner_graphs():
    """An op holding an inner graph (jacobian's row map) gets its graphs compiled in the
    checking mode too, and the result is checked."""
    x = T.dvector("x")
    jac = T.jacobian(T.tanh(x) * x.sum(), x)
    f = theano.function([x], jac, mode="DebugMode")
    v = np.array([0.3, -1.2, 2.0])
    want = theano.function([x], jac, mode=theano.Mode(linker="py", optimizer=None))(v)
    np.testing.assert_allclose(f(v), want)
