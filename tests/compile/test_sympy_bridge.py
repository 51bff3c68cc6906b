"""compile/sympy_bridge.py: small elementwise graphs as sympy formulas, and their comparison."""
import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import theon.tensor as T
from theon.compile import sympy_bridge
from theon.compile.sympy_bridge import equivalent, to_sympy
from theon.ops import elemwise as E
from theon.ops import scalar as S

X = sp.Symbol("x", real=True)
Y = sp.Symbol("y", real=True)


def test_elementwise_graph_becomes_a_formula():
    x, y = T.dvector("x"), T.dvector("y")
    (e,) = to_sympy(2 * x + T.exp(y) / x - 0.5)
    assert sp.simplify(e - (2 * X + sp.exp(Y) / X - sp.Rational(1, 2))) == 0


def test_symbols_are_real_and_named_after_the_variables():
    x, y = T.dvector("x"), T.dvector("y")
    a, b = to_sympy([x * y, T.log1p(x)])
    assert a == X * Y and b == sp.log(1 + X)
    assert all(s.is_real for s in a.free_symbols)
    twin = T.dvector("x")  # a different variable with the same name gets its own symbol
    (c,) = to_sympy(x + twin)
    assert len(c.free_symbols) == 2


def test_inputs_stop_the_walk():
    x = T.dvector("x")
    h = T.exp(x)
    h.name = "h"
    (e,) = to_sympy(h + 1, inputs=[h])
    assert e == sp.Symbol("h", real=True) + 1


def test_broadcast_dimshuffle_and_casts_are_the_identity():
    x, m = T.dvector("x"), T.dmatrix("m")
    f = T.fvector("x")
    (e,) = to_sympy(x + m)
    assert e == X + sp.Symbol("m", real=True)
    (e,) = to_sympy(T.cast(f, "float64") * 2)
    assert e == 2 * X


@pytest.mark.parametrize("build, name", [
    (lambda x, m: m.T + 1, "DimShuffle"),
    (lambda x, m: T.dot(m, x), "Dot"),
    (lambda x, m: T.eq(x, 1), "eq"),
    (lambda x, m: x.sum(), "Sum"),
    (lambda x, m: x + T.constant(np.arange(3.0)), "different values"),
])
def test_untranslatable_graph_is_refused_naming_the_op(build, name):
    x, m = T.dvector("x"), T.dmatrix("m")
    with pytest.raises(ValueError, match=name):
        to_sympy(build(x, m))


def test_size_bound():
    x = T.dvector("x")
    y = x
    for _ in range(250):
        y = y + x
    with pytest.raises(ValueError, match="more than 200 nodes"):
        to_sympy(y)
    (e,) = to_sympy(y, max_nodes=300)
    assert e == 251 * X


@pytest.mark.parametrize("a, b", [
    (sp.log(1 + X), sp.log(1 + X)),
    (sp.log(1 / (1 + sp.exp(-X))), -sp.log(1 + sp.exp(-X))),
    (sp.tanh(X), (sp.exp(2 * X) - 1) / (sp.exp(2 * X) + 1)),
    (X * X, X ** 2),
    ((X + 2) + 3, X + 5),
])
def test_equivalent(a, b):
    assert equivalent(a, b)


def test_not_equivalent():
    assert not equivalent(sp.log(1 + X), sp.log(X))
    assert not equivalent(sp.exp(sp.log(X)) + 1e-3, X)
    assert not equivalent(X * Y, X + Y)


def test_numeric_fallback_when_simplify_is_inconclusive(monkeypatch):
    monkeypatch.setattr(sympy_bridge.sp, "simplify", lambda e: e)  # sympy gives up
    assert equivalent(sp.sin(X) ** 2 + sp.cos(X) ** 2, sp.Integer(1))
    assert equivalent(sp.log(X ** 2), 2 * sp.log(sp.Abs(X)))  # complex at no point checked
    assert not equivalent(sp.log(1 + X), sp.log(1 + X) + 1e-6)
    assert not equivalent(sp.log(-1 - X ** 2), sp.log(-2 - X ** 2))  # never real: unproven


# -- the sympy column of the scalar table ---------------------------------------------------------

_POINTS = (0.3, 0.7, 1.3, -0.6)


@pytest.mark.parametrize("name", sorted(n for n, op in S.TABLE.items() if op.sympy is not None))
def test_each_rows_formula_agrees_with_its_numpy_function(name):
    """The sympy column and np_fn describe the same function, where it is real and finite."""
    op = S.TABLE[name]
    syms = sp.symbols(f"a0:{op.nin}", real=True)
    (expr,) = to_sympy(E.ELEMWISE[name](*[T.dscalar(str(s)) for s in syms]))
    f = sp.lambdify(syms, expr, "mpmath")
    checked = 0
    for point in itertools.product(_POINTS, repeat=op.nin):
        with np.errstate(all="ignore"):
            want = float(op.np_fn(*[np.float64(p) for p in point]))
        if not np.isfinite(want):
            continue
        got = complex(f(*point))
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), (name, point, got, want)
        checked += 1
    assert checked >= 1, name


def test_the_column_is_used_not_the_name():
    twice = S.ScalarOp("twice", 1, lambda a: 2 * a, "(2 * {0})", S.same_as_first,
                       sympy=lambda sp, a: 2 * a)
    (e,) = to_sympy(E.Elemwise(twice)(T.dvector("x")))
    assert e == 2 * X
    unknown = S.ScalarOp("opaque", 1, lambda a: a, "{0}", S.same_as_first)
    with pytest.raises(ValueError, match="opaque"):
        to_sympy(E.Elemwise(unknown)(T.dvector("x")))


def test_casts_to_floats_are_the_identity_to_integers_refused():
    x = T.dvector("x")
    assert to_sympy(T.cast(x, "float32")) == [X]
    with pytest.raises(ValueError, match="cast_int32"):
        to_sympy(T.cast(x, "int32"))


def test_the_table_does_not_import_sympy():
    """sympy takes long to import: the rows get the module as an argument instead."""
    tree = ast.parse(Path(S.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "sympy"]
