"""Hypothesis-generated elementwise graphs: FAST_RUN on the C backend (fused kernels) against the
same graph unrewritten on numpy (issue 8, part 7).

One example is one function: several random DAGs (the "graphs") over 1-3 shared inputs of
random rank, broadcast pattern, memory layout and dtype (float64, float32, int32, int8, uint8,
bool), built from every row of the scalar table, casts, switch and typed constants. All of them,
and for graphs that are float64 throughout the gradient of the sum of their float64 outputs
with respect to the float64 inputs, are outputs of one function, so that each example costs one
gcc run. Three comparisons:

* the C backend (FAST_RUN, kernels waited for) with the unrewritten numpy graph
  (``Mode(linker='py', optimizer=None)``): integers and bools exactly, floats to a tolerance
  measured on the graph itself (below), NaN where NaN, gradients to 1e-9 relative. The C
  function is called on the drawn inputs and again on the same values in other layouts
  (permuted dimensions, strided and reversed views), which costs no compile;
* the rewritten graph on numpy with and without the fusion pass: bit for bit (a ``Fused`` node
  computed on numpy runs the same numpy calls as the unfused nodes);
* the unrewritten numpy graph with this file's own evaluation of the DAG (the reference is what
  it claims to be).

Domains keep NaN and overflow out of the comparison: a row that needs a domain (log, arcsin,
a divisor) gets its operand through a squashing wrapper when the operand's values (known, since
the generator evaluates the DAG as it draws it) fall outside it; a discontinuous row (floor,
comparisons, casts from float to int, a float switch condition, float floor division) only reads
floats whose value is exact (inputs, constants, results of exact rows), because a one-ulp
difference there becomes a difference of one; and continuous results stay below ``CAP``.

The float tolerance: the generator evaluates the DAG again once per inexact float step, that
step moved by ``ULPS`` ulps, and each element may differ from the reference by twice the sum of
the changes this made to it, plus 16 ulps of its own (a first-order bound of every step's
rounding). This follows the conditioning of each output (a cancellation, an exp of a large
value, a float32 step inside a float64 result) instead of one global tolerance.

At scale 1 the test draws ``EXAMPLES`` functions of 3-7 graphs each (about 200 graphs, some
20 s on this 2-core machine), the same ones every run; ``THEON_FUZZ_SCALE=20`` draws 20 times
more, new ones each run (about 4,000 graphs).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import theon
import theon.tensor as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from theon.backends import ccompiler
from theon.compile.mode import Mode
from theon.ops import scalar as S
from theon.ops.elemwise import Elemwise, _numpy_kernel
from theon.printing import debugprint

pytestmark = pytest.mark.host_only

SCALE = int(os.environ.get("THEON_FUZZ_SCALE", "1"))
# the number of examples at scale 1: one gcc run each (CI's budget)
EXAMPLES = 40

DTYPES = ("float64", "float32", "int32", "int8", "uint8", "bool")
FLOATS = ("float32", "float64")
CAP = 1e5  # the largest magnitude a continuous float step may reach
ULPS = 16  # how far each inexact float step is moved to measure the tolerance, in ulps
VARIANTS = 4  # calls of each compiled function, on the same values in other layouts
LAYOUTS = ["c", "permuted", "strided", "reversed"]

# What each operand of a row needs (the row's domain): see ``Builder.meet``; int_div, mod and
# pow decide in ``Builder.step`` by their result's dtype.
ANY, SMALL, TRIG, TAN, POS, UNIT, GE1, GTM1, NONZERO, EXACT, DISCRETE, COND = (
    "any", "small", "trig", "tan", "pos", "unit", "ge1", "gtm1", "nonzero", "exact", "discrete",
    "cond")
NEEDS = {
    "add": (ANY, ANY), "sub": (ANY, ANY), "mul": (ANY, ANY), "true_div": (ANY, NONZERO),
    "int_div": ("divide", "divide"), "mod": ("divide", "divide"), "pow": ("pow", "pow"),
    "neg": (ANY,), "abs": (ANY,), "sgn": (EXACT,), "exp": (SMALL,), "exp2": (SMALL,),
    "expm1": (SMALL,), "log": (POS,), "log2": (POS,), "log10": (POS,), "log1p": (GTM1,),
    "sqrt": (POS,), "sqr": (ANY,), "inv": (NONZERO,), "sin": (TRIG,), "cos": (TRIG,),
    "tan": (TAN,), "arcsin": (UNIT,), "arccos": (UNIT,), "arctan": (ANY,),
    "arctan2": (ANY, NONZERO), "sinh": (SMALL,), "cosh": (SMALL,), "tanh": (ANY,),
    "arcsinh": (ANY,), "arccosh": (GE1,), "arctanh": (UNIT,), "sigmoid": (ANY,),
    "softplus": (ANY,), "erf": (ANY,), "floor": (EXACT,), "ceil": (EXACT,), "trunc": (EXACT,),
    "gamma": (POS,), "gammaln": (POS,), "psi": (POS,), "tri_gamma": (POS,), "erfinv": (UNIT,),
    "erfcinv": (POS,),
    "round_half_to_even": (EXACT,), "round_half_away_from_zero": (EXACT,),
    "maximum": (ANY, ANY), "minimum": (ANY, ANY), "clip": (ANY, ANY, ANY),
    "eq": (EXACT, EXACT), "neq": (EXACT, EXACT), "lt": (EXACT, EXACT), "le": (EXACT, EXACT),
    "gt": (EXACT, EXACT), "ge": (EXACT, EXACT), "isnan": (ANY,), "isinf": (ANY,),
    "and_": (DISCRETE, DISCRETE), "or_": (DISCRETE, DISCRETE), "xor": (DISCRETE, DISCRETE),
    "invert": (DISCRETE,), "switch": (COND, ANY, ANY), "identity": (ANY,),
}
# Rows whose result is exact when their float operands are (they select, or round to integers).
EXACT_ROWS = {"abs", "neg", "sgn", "floor", "ceil", "trunc", "round_half_to_even",
              "round_half_away_from_zero", "maximum", "minimum", "clip", "switch", "identity",
              "eq", "neq", "lt", "le", "gt", "ge", "isnan", "isinf"}
ROWS = sorted(NEEDS)


def test_every_row_has_a_domain_here():
    assert set(NEEDS) == set(S.TABLE), "a new row needs its operands' domains in NEEDS"


class Node:
    """One value of the DAG: its variable, its value, how it is computed (for the
    perturbed evaluations) and whether its float value is exact."""

    __slots__ = ("var", "value", "fn", "args", "exact", "inexact_step")

    def __init__(self, var, value, fn=None, args=(), exact=True, inexact_step=False):
        self.var, self.value, self.fn, self.args = var, value, fn, args
        self.exact, self.inexact_step = exact, inexact_step

    @property
    def dtype(self) -> str:
        return self.var.dtype

    @property
    def is_float(self) -> bool:
        return self.var.dtype in FLOATS


def _finite_bounds(v: np.ndarray) -> tuple[float, float, float]:
    """(min, max, min |v|) of a non-empty array's values, as floats."""
    a = np.asarray(v, dtype=np.float64)
    return float(a.min()), float(a.max()), float(np.abs(a).min())


class Builder:
    """Draws a DAG with hypothesis' ``data``, evaluating it with numpy as it goes."""

    def __init__(self, data):
        self.data = data

    def draw(self, strategy):
        return self.data.draw(strategy)

    def pick(self, seq):
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    # -- values ----------------------------------------------------------------------------
    def apply(self, op: Elemwise, args: list[Node]) -> Node | None:
        """``op`` on ``args``: the node, or None when the row refuses these dtypes or the
        result leaves the domain this file keeps to (non-finite, beyond CAP)."""
        try:
            var = op(*[a.var for a in args])
        except TypeError:
            return None
        if var.owner is None or not isinstance(var.owner.op, Elemwise):
            return None
        sop = var.owner.op.scalar_op
        fn = _numpy_kernel(sop, tuple(a.dtype for a in args), var.dtype)
        with np.errstate(all="ignore"):
            value = np.asarray(fn(*[a.value for a in args]))
        if value.dtype != np.dtype(var.dtype):
            return None
        if var.dtype in FLOATS and value.size:
            if not np.all(np.isfinite(value)) or np.abs(value).max() > CAP:
                return None
        exact = sop.name in EXACT_ROWS or sop.name.startswith("cast_")
        exact = exact and all(a.exact for a in args)
        if var.dtype not in FLOATS:
            exact = True
        return Node(var, value, fn, tuple(args), exact=exact,
                    inexact_step=var.dtype in FLOATS and not exact)

    def const(self, dtype: str, values=None) -> Node:
        if values is None:
            if dtype == "bool":
                values = [True, False]
            elif dtype in FLOATS:
                values = [0.5, -1.25, 2.0, 3.0, -0.0, 0.75]
            elif dtype == "uint8":
                values = [0, 1, 3, 200]
            else:
                values = [-3, 0, 1, 2, 7, 100]
        v = np.asarray(self.pick(values), dtype=dtype)
        return Node(T.constant(v), v)

    # -- operand domains -------------------------------------------------------------------
    def _wrap(self, name: str, x: Node, *consts: float) -> Node | None:
        """A wrapper: ``name`` is a small recipe over x (continuous, so its result is
        inexact)."""
        f = x.dtype if x.dtype in FLOATS else ("float64" if x.dtype == "int32" else "float32")

        def c(v):
            return self.const(f, [v])
        t = self.apply(_ELEM["tanh"], [x])
        if t is None:
            return None
        if name == "scale":      # k * tanh(x)
            return self.apply(_ELEM["mul"], [t, c(consts[0])])
        if name == "shift_sqr":  # tanh(x)**2 + k
            return self.apply(_ELEM["add"], [self.apply(_ELEM["sqr"], [t]), c(consts[0])])
        if name == "exp":        # exp(tanh(x)), in [1/e, e]
            return self.apply(_ELEM["exp"], [t])
        raise AssertionError(name)

    def meet(self, need: str, x: Node) -> Node | None:
        """``x``, or a wrapper of it, whose values meet ``need``; None when none does."""
        if x.value.size == 0:
            lo = hi = small = 1.0
        else:
            lo, hi, small = _finite_bounds(x.value)
        big = max(abs(lo), abs(hi))
        if need == ANY:
            return x
        if need in (EXACT, COND):
            return x if x.exact else None
        if need == DISCRETE:
            return None if x.is_float else x
        if need == SMALL:
            return x if big <= 10 else self._wrap("scale", x, 3.0)
        if need == TRIG:
            return x if big <= 100 else self._wrap("scale", x, 3.0)
        if need == TAN:
            return x if big <= 1.2 else self._wrap("scale", x, 1.2)
        if need == UNIT:
            return x if big <= 0.9 else self._wrap("scale", x, 0.9)
        if need == POS:
            if lo >= 0.25:
                return x
            return self._wrap(self.pick(["shift_sqr", "exp"]), x, 0.25)
        if need == GE1:
            return x if lo >= 1.25 else self._wrap("shift_sqr", x, 1.25)
        if need == GTM1:
            return x if lo >= -0.75 else self._wrap("scale", x, 0.75)
        if need == NONZERO:
            return x if small >= 0.25 else self._wrap("exp", x)
        raise AssertionError(need)

    def exact_nonzero(self, y: Node) -> Node | None:
        """An exact float divisor without zeros: switch(eq(y, 0), 1.5, y)."""
        if not y.exact:
            return None
        if y.value.size == 0 or np.abs(y.value).min() > 0:
            return y
        zero = self.apply(_ELEM["eq"], [y, self.const(y.dtype, [0])])
        return self.apply(_ELEM["switch"], [zero, self.const(y.dtype, [1.5]), y])

    # -- the DAG ---------------------------------------------------------------------------
    def operand(self, pool: list[Node], need: str = ANY) -> Node:
        """Mostly a recent node (chains), sometimes any node or a fresh constant; for an
        operand that must be exact or discrete, one that is."""
        if need in (EXACT, COND):
            pool = [n for n in pool if n.exact]
        elif need == DISCRETE:
            pool = [n for n in pool if not n.is_float]
        k = self.draw(st.integers(0, 19))
        if k < 1 or not pool:
            dtypes = DTYPES if need != DISCRETE else ("int32", "int8", "uint8", "bool")
            return self.const(self.pick(dtypes))
        if k < 12:
            return pool[-1 - self.draw(st.integers(0, min(2, len(pool) - 1)))]
        return self.pick(pool)

    def step(self, pool: list[Node]) -> Node | None:
        """One new node on ``pool``: a row, or a cast; None when the draw does not fit."""
        if self.draw(st.integers(0, 7)) == 0:
            return self.cast(self.operand(pool), self.pick(DTYPES))
        name = self.pick(ROWS)
        sop = S.TABLE[name]
        needs = NEEDS[name]
        if name in ("int_div", "mod"):  # exact operands in case the result is a float
            args = [self.operand(pool, EXACT) for _ in range(sop.nin)]
        else:
            args = [self.operand(pool, need) for need in needs]
        if name in ("int_div", "mod", "pow"):
            try:
                out = sop.output_dtype(*[a.dtype for a in args])
            except TypeError:
                return None
            if name == "pow":
                if out in FLOATS:
                    needs = (POS, SMALL)
                else:  # integer powers: a non-negative exponent, any base (wraps around)
                    e = args[1]
                    if e.dtype != "bool":
                        e = self.apply(_ELEM["mod"], [e, self.const(e.dtype, [4])])
                        if e is None:
                            return None
                    args[1] = e
                    needs = (ANY, ANY)
            elif out in FLOATS:
                needs = (EXACT, EXACT)
                args[1] = self.exact_nonzero(args[1])
                if args[1] is None:
                    return None
            else:
                needs = (ANY, ANY)  # integer division by zero gives 0, as numpy's
        met = []
        for need, a in zip(needs, args):
            m = self.meet(need, a)
            if m is None:
                return None
            met.append(m)
        if name == "switch" and met[0].is_float and not met[0].exact:
            return None
        return self.apply(_ELEM[name], met)

    def cast(self, x: Node, dtype: str) -> Node | None:
        if x.dtype == dtype:
            return None
        if x.is_float and dtype not in FLOATS:
            if not x.exact:
                return None
            if dtype != "bool" and x.value.size:
                info = np.iinfo(dtype)
                lo, hi, _ = _finite_bounds(x.value)
                if lo <= info.min - 1 or hi >= info.max + 1:
                    return None  # out of range: undefined in C (and numpy)
        return self.apply(_CASTS[dtype], [x])

    def graph(self, leaves: list[Node], n_ops: int) -> list[Node]:
        """A DAG of up to ``n_ops`` steps over ``leaves``; returns its outputs (the last step,
        and sometimes an intermediate too, so that a cluster has an outside client)."""
        pool = list(leaves)
        made = []
        tries = 0
        while len(made) < n_ops and tries < 4 * n_ops:
            tries += 1
            node = self.step(pool)
            if node is not None:
                pool.append(node)
                made.append(node)
        if not made:
            return []
        outs = [made[-1]]
        if len(made) > 2 and self.draw(st.integers(0, 3)) == 0:
            outs.append(self.pick(made[:-1]))
        return outs


_ELEM = {name: T.__dict__[name] for name in S.TABLE}


class _Cast:
    """T.cast as an op for ``Builder.apply``."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, x):
        return T.cast(x, self.dtype)


_CASTS = {d: _Cast(d) for d in DTYPES}


# -- inputs ------------------------------------------------------------------------------------

def _leaf_values(rng, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Values of one input: floats in [-4, 4] with exact halves and zeros among them, ints of
    every size (wraparound) but mostly small."""
    n = int(np.prod(shape))
    if dtype == "bool":
        v = rng.integers(0, 2, n).astype(bool)
    elif dtype in FLOATS:
        v = rng.uniform(-4, 4, n)
        pick = rng.integers(0, 4, n)
        v = np.where(pick == 0, np.round(v * 2) / 2, v)
        v = np.where(pick == 1, 0.0, v) if rng.integers(0, 3) == 0 else v
    else:
        info = np.iinfo(dtype)
        small = rng.integers(max(info.min, -20), min(info.max, 20) + 1, n)
        wide = rng.integers(info.min, info.max, n, endpoint=True)
        v = np.where(rng.integers(0, 6, n) == 0, wide, small)
    return v.astype(dtype).reshape(shape)


def _layout(rng, a: np.ndarray, how: str) -> np.ndarray:
    """``a`` in another memory layout, same values: its dimensions permuted in memory (Fortran
    order for a matrix), a strided or reversed view of a larger array, or a zero-stride
    broadcast view."""
    if how == "permuted" and a.ndim > 1:
        order = rng.permutation(a.ndim)
        while a.ndim > 1 and list(order) == sorted(order):
            order = rng.permutation(a.ndim)
        return np.ascontiguousarray(a.transpose(order)).transpose(np.argsort(order))
    if how == "strided" and a.ndim:
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if how == "reversed" and a.ndim:
        return np.ascontiguousarray(a[::-1])[::-1]
    if how == "stride0" and a.ndim and a.shape[0] > 1 and a.size:
        a = a.copy()
        a[...] = a[:1]  # every row equal, so a zero-stride view holds the same values
        return np.broadcast_to(a[:1], a.shape)
    return a


@st.composite
def cases(draw):
    """(inputs, outputs, nodes of the outputs, values) of one example."""
    data = draw(st.data())
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    rank = draw(st.sampled_from([0, 1, 1, 2, 2, 2, 3, 3, 3]))
    dims = [draw(st.sampled_from([1, 2, 3, 4, 5, 7])) for _ in range(rank)]
    if rank and draw(st.integers(0, 11)) == 0:
        dims[draw(st.integers(0, rank - 1))] = 0  # size 0
    elif rank >= 2 and draw(st.integers(0, 11)) == 0:
        dims[-1], dims[0] = 4099, 37  # above the OpenMP threshold (2 ** 17 elements)
    b = Builder(data)
    leaves, values, hows = [], [], []
    # half the examples avoid float32 inputs, so that more graphs are float64 throughout (the
    # gradients are checked on those)
    world = DTYPES + ("float64",) * 2 if draw(st.booleans()) else ("float64", "int32", "bool")
    for k in range(draw(st.sampled_from([1, 2, 2, 3, 3]))):
        dtype = draw(st.sampled_from(world))
        nd = rank if draw(st.booleans()) else draw(st.integers(0, rank))
        pattern = [draw(st.integers(0, 3)) == 0 for _ in range(nd)]
        shape = tuple(1 if p else n for p, n in zip(pattern, dims[rank - nd:]))
        var = T.TensorType(dtype, shape=tuple(1 if p else None for p in pattern))(f"x{k}")
        value = _leaf_values(rng, dtype, shape)
        how = draw(st.sampled_from(LAYOUTS + ["stride0"]))
        value = _layout(rng, value, how)
        hows.append(how)
        values.append(value)
        leaves.append(Node(var, value))
    outs = []
    for _ in range(draw(st.integers(3, 7))):
        outs += b.graph(leaves, draw(st.integers(2, 8)))
    # the same values in other layouts, for more calls of the same kernels (a zero-stride view
    # stays one: it holds other values than the array it was made from)
    variants = [values] + [
        [_layout(rng, v, "stride0" if how == "stride0" else LAYOUTS[rng.integers(len(LAYOUTS))])
         for v, how in zip(values, hows)] for _ in range(VARIANTS - 1)]
    return leaves, outs, variants


# -- checking ---------------------------------------------------------------------------------

def _evaluate(outs, memo: dict, moved: Node | None = None):
    """The outputs' values: ``memo`` holds values already known (by node id); ``moved``, an
    inexact step, is multiplied by (1 + ULPS ulps)."""
    def value(n: Node):
        if id(n) in memo:
            return memo[id(n)]
        if n.fn is None:  # a constant
            return n.value
        with np.errstate(all="ignore"):
            v = np.asarray(n.fn(*[value(a) for a in n.args]))
        if n is moved and v.size:
            v = (v * (1 + ULPS * np.finfo(v.dtype).eps)).astype(v.dtype)
        memo[id(n)] = v
        return v
    return [value(n) for n in outs]


def _tolerance(leaves, outs):
    """Per output, per element: how far a correct result may be from the reference. Each
    inexact step is moved by ULPS ulps on its own, and the changes of an output add up: a
    first-order bound of the effect of every step's rounding (moving all steps at once, with
    random signs, let two steps of a chain cancel, and left no tolerance where a 1-ulp
    difference of float32 steps showed in a float64 output)."""
    plain_memo = {id(n): n.value for n in leaves}
    plain = _evaluate(outs, plain_memo)
    reads: dict[int, set] = {}  # node -> the inexact steps it depends on

    def steps_of(n: Node) -> set:
        if id(n) not in reads:
            found = {id(n)} if n.inexact_step else set()
            for a in n.args:
                found |= steps_of(a)
            reads[id(n)] = found
        return reads[id(n)]

    every: dict[int, Node] = {}
    todo = list(outs)
    while todo:
        n = todo.pop()
        if id(n) not in every:
            every[id(n)] = n
            todo.extend(n.args)
    for n in outs:
        steps_of(n)
    spread = [np.zeros(np.shape(v)) for v in plain]
    for sid in sorted(set().union(*[reads[id(n)] for n in outs]) if outs else ()):
        moved = every[sid]
        # only what reads the moved step is computed again
        memo = {k: v for k, v in plain_memo.items() if sid not in reads.get(k, ())}
        for k, v in enumerate(_evaluate(outs, memo, moved)):
            if v.dtype.kind == "f":
                with np.errstate(all="ignore"):
                    spread[k] += np.abs(v.astype(np.float64) - plain[k].astype(np.float64))
    tol = []
    for v, sp in zip(plain, spread):
        if v.dtype.kind != "f":
            tol.append(None)
            continue
        ulp = np.spacing(np.abs(v)).astype(np.float64)
        tol.append(2 * sp + 16 * ulp)
    return plain, tol


def _mismatch(got, want, tol) -> str | None:
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"dtype/shape {got.dtype}{got.shape} instead of {want.dtype}{want.shape}"
    if tol is None:
        bad = got != want
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(all="ignore"):
            bad = ~((g == w) | (np.isnan(g) & np.isnan(w)) | (np.abs(g - w) <= tol))
    if not bad.any():
        return None
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    extra = f" (tolerance {tol[i]:.3g})" if tol is not None else ""
    return (f"{int(bad.sum())} of {bad.size} elements differ; at {i}: {got[i]!r} instead of "
            f"{want[i]!r}{extra}")


def _bitwise_mismatch(got, want) -> str | None:
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"dtype/shape {got.dtype}{got.shape} instead of {want.dtype}{want.shape}"
    same = (got == want) | ((got != got) & (want != want)) if got.dtype.kind == "f" \
        else got == want
    if np.all(same):
        return None
    i = tuple(int(j) for j in np.argwhere(~same)[0])
    return f"at {i}: {got[i]!r} instead of {want[i]!r}"


def _grad_mismatch(got, want) -> str | None:
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"dtype/shape {got.dtype}{got.shape} instead of {want.dtype}{want.shape}"
    if not want.size:
        return None
    scale = float(np.nanmax(np.abs(want))) if np.isfinite(want).any() else 0.0
    with np.errstate(all="ignore"):
        bad = ~((got == want) | (np.isnan(got) & np.isnan(want))
                | (np.abs(got - want) <= 1e-9 * np.abs(want) + 1e-11 * (1 + scale)))
    if not bad.any():
        return None
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    return (f"{int(bad.sum())} of {bad.size} elements differ; at {i}: {got[i]!r} instead of "
            f"{want[i]!r}")


C_MODE = Mode(linker="c")
PY_REFERENCE = Mode(linker="py", optimizer=None)
PY_FUSED = Mode(linker="py")
PY_UNFUSED = Mode(linker="py").excluding("fusion")


@pytest.fixture(autouse=True)
def _wait_for_kernels():
    old = theon.config.wait_for_kernels
    theon.config.wait_for_kernels = True
    yield
    theon.config.wait_for_kernels = old


def _float64_only(outs) -> bool:
    seen, todo = set(), list(outs)
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.dtype == "float32":
            return False
        todo.extend(n.args)
    return True


def check_case(leaves, outs, variants):
    """Compile and compare (see the module docstring), the C function on every layout in
    ``variants`` (lists of input values, equal but for their strides); raise AssertionError
    with the graph on a mismatch."""
    values = variants[0]
    inputs = [n.var for n in leaves]
    out_vars = [n.var for n in outs]
    # gradients of float64 graphs only: through float32 steps they hold float32's error
    wrt = [n.var for n in leaves if n.dtype == "float64"] if _float64_only(outs) else []
    costs = [o.sum() for o in out_vars if o.dtype == "float64"]
    grads = []
    if wrt and costs:
        cost = costs[0]
        for c in costs[1:]:
            cost = cost + c
        grads = T.grad(cost, wrt, disconnected_inputs="ignore")
    every = out_vars + list(grads)
    kwargs = {"on_unused_input": "ignore"}
    f_c = theon.function(inputs, every, mode=C_MODE, **kwargs)
    f_ref = theon.function(inputs, every, mode=PY_REFERENCE, **kwargs)
    f_fused = theon.function(inputs, every, mode=PY_FUSED, **kwargs)
    f_unfused = theon.function(inputs, every, mode=PY_UNFUSED, **kwargs)
    with np.errstate(all="ignore"):
        got_all = [f_c(*v) for v in variants]
        want = f_ref(*values)
        fused = f_fused(*values)
        unfused = f_unfused(*values)
    plain, tol = _tolerance(leaves, outs)
    n = len(out_vars)
    problems = []
    failing: set[int] = set()
    for k in range(n):
        mine = _bitwise_mismatch(want[k], plain[k])
        if mine:
            problems.append(f"output {k}: the unrewritten numpy graph vs this file's "
                            f"evaluation: {mine}")
    for k in range(len(every)):
        bad = _bitwise_mismatch(fused[k], unfused[k])
        if bad:
            problems.append(f"output {k}: fused numpy vs unfused numpy: {bad}")
    for values, got in zip(variants, got_all):
        strides = "inputs: " + ", ".join(f"{n.var.name}: {n.var.type} {v.shape} strides "
                                         f"{v.strides}" for n, v in zip(leaves, values))
        found = []
        for k in range(n):
            bad = _mismatch(got[k], want[k], tol[k])
            if bad:
                failing.add(k)
                found.append(f"output {k} ({out_vars[k].dtype}): C vs reference: {bad}")
        for k in range(n, len(every)):
            bad = _grad_mismatch(got[k], want[k])
            if bad:
                found.append(f"gradient {k - n} (wrt {wrt[k - n]}): C vs reference: {bad}")
        if found:
            problems += found + [strides]
            break
    if problems:
        built = debugprint([out_vars[k] for k in failing] or out_vars, file="str")
        text = debugprint(f_c, file="str")
        raise AssertionError("\n".join(problems) + "\ncompiled graph:\n" + text
                             + f"\nthe outputs {sorted(failing)} as built:\n" + built)
    return f_c


@pytest.mark.skipif(ccompiler.compiler() is None, reason="no C compiler found (config.cxx)")
@settings(max_examples=EXAMPLES * SCALE, deadline=None, derandomize=SCALE == 1,
          suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_fused_graphs_on_c_equal_the_unrewritten_numpy_graph(case):
    leaves, outs, variants = case
    if not outs:
        return
    check_case(leaves, outs, variants)
