"""Canonicalize: put the graph in a simpler normal form (to a fixed point).

Rules here compute the same values, with two exceptions that follow Theano: ``x - x`` is 0
even if x is inf or NaN, and regrouping a float sum (``(x + 1e8) - 1e8 -> x``) changes its
rounding, usually for the better. A cancelled term also no longer raises the run-time error of
a wrongly broadcast shape it would have met.
"""
from __future__ import annotations

import numpy as np

from ...ops.dimshuffle import DimShuffle
from ...ops.elemwise import ELEMWISE as E
from ...ops.elemwise import cast
from ...ops.shape import Reshape, ShapeCheck, shape
from ...symbolic.graph import Constant
from ...symbolic.trace import format_trace
from ..rewrite import (
    CONSTANT_INPUTS,
    chain_root,
    const_value,
    fold_node,
    match,
    op_key,
    register,
)


def _fits(new, old):
    """``new`` if it can stand for ``old`` (same dtype, ndim, no lost broadcast info)."""
    if new.dtype != old.dtype or new.ndim != old.ndim:
        return None
    if any(ns is not None and os is not None and ns != os
           for ns, os in zip(new.type.shape, old.type.shape)):
        return None
    # new must not be broadcast to a bigger shape by the node it replaces
    if any(nb and not ob for nb, ob in zip(new.broadcastable, old.broadcastable)):
        return None
    return new


@register(("canonicalize", "stabilize", "specialize"), CONSTANT_INPUTS)
def constant_folding(fgraph, node):
    """f(c1, c2, ...) -> the constant it evaluates to."""
    return fold_node(node)


@register("canonicalize", "neg")
def neg_neg_to_identity(fgraph, node):
    """-(-x) -> x"""
    m = match(node.outputs[0], ("neg", ("neg", "x")))
    return _fits(m["x"], node.outputs[0]) if m else None


@register("canonicalize", "sub")
def sub_self_to_zeros(fgraph, node):
    """x - x -> 0 (as Theano does; differs only when x is inf or NaN)"""
    x, y = node.inputs
    if x is y:
        from ...ops.alloc import zeros_like
        return zeros_like(x, dtype=node.outputs[0].dtype)
    return None


@register("canonicalize", "sub")
def sub_neg_to_add(fgraph, node):
    """x - (-y) -> x + y"""
    m = match(node.outputs[0], ("sub", "x", ("neg", "y")))
    # exact only when -y was computed in the result's dtype (a narrower -y wraps first)
    if m is None or m["y"].dtype != node.outputs[0].dtype:
        return None
    return _fits(E["add"](m["x"], m["y"]), node.outputs[0])


@register("canonicalize", "add")
def add_neg_to_sub(fgraph, node):
    """x + (-y) -> x - y, and (-y) + x -> x - y"""
    out = node.outputs[0]
    m = match(out, ("add", "x", ("neg", "y"))) or match(out, ("add", ("neg", "y"), "x"))
    if m is None or m["y"].dtype != out.dtype:  # a narrower -y wraps before the add
        return None
    return _fits(E["sub"](m["x"], m["y"]), out)


def _drop_identity(node, identity: float):
    out = node.outputs[0]
    x, y = node.inputs
    for keep, other in ((x, y), (y, x)):
        if const_value(other) == identity and not isinstance(keep, Constant):
            return _fits(keep, out)
    return None


@register("canonicalize", "add")
def add_zero_to_identity(fgraph, node):
    """x + 0 -> x (when the zero neither broadcasts nor upcasts x)"""
    return _drop_identity(node, 0)


@register("canonicalize", "mul")
def mul_one_to_identity(fgraph, node):
    """x * 1 -> x (when the one neither broadcasts nor upcasts x)"""
    return _drop_identity(node, 1)


@register("canonicalize", "mul")
def mul_minus_one_to_neg(fgraph, node):
    """x * -1 -> -x"""
    out = node.outputs[0]
    x, y = node.inputs
    for keep, other in ((x, y), (y, x)):
        if const_value(other) == -1 and not isinstance(keep, Constant):
            return _fits(E["neg"](keep), out)
    return None


def _combine_constants(node, name):
    out = node.outputs[0]
    # cheap refusals first: this runs on every add and mul, and most have no constant operand
    a, b = node.inputs
    inner = b if isinstance(a, Constant) else a if isinstance(b, Constant) else None
    if inner is None or op_key(inner) != name:
        return None
    m = (match(out, (name, (name, "x", "c1"), "c2")) or match(out, (name, "c2", (name, "x", "c1")))
         or match(out, (name, (name, "c1", "x"), "c2")) or match(out, (name, "c2",
                                                                          (name, "c1", "x"))))
    if not m or isinstance(m["x"], Constant) or not isinstance(m["c1"], Constant) \
            or not isinstance(m["c2"], Constant):
        return None
    # The inner result must already have the output's dtype: (int8 x + 100) + 0.5 wraps in
    # int8 before the float add, x + 100.5 would not. The constants are combined in that dtype
    # (float32 1e8 + 1 would round away the 1 that a float64 x keeps).
    inner = node.inputs[1] if node.inputs[0] is m["c2"] else node.inputs[0]
    if inner.dtype != out.dtype:
        return None
    c1, c2 = cast(m["c1"], out.dtype), cast(m["c2"], out.dtype)
    return _fits(E[name](m["x"], E[name](c1, c2)), out)


@register("canonicalize", "add")
def add_constants_together(fgraph, node):
    """(x + c1) + c2 -> x + (c1 + c2), which constant folding then computes"""
    return _combine_constants(node, "add")


@register("canonicalize", "mul")
def mul_constants_together(fgraph, node):
    """(x * c1) * c2 -> x * (c1 * c2), which constant folding then computes"""
    return _combine_constants(node, "mul")


def _signed_terms(fgraph, out):
    """``out`` read as a sum of signed terms: [(+1 or -1, variable)], walking through the
    add, sub and neg nodes of out's dtype that nothing else uses (their values are not needed
    on their own, so regrouping them computes nothing twice)."""
    terms, stack = [], [(1, out, True)]
    while stack:
        sign, v, root = stack.pop()
        key = op_key(v)
        if key in ("add", "sub", "neg") and v.dtype == out.dtype and \
                (root or fgraph.n_clients(v) == 1):
            ins = v.owner.inputs
            if key == "add":
                stack += [(sign, ins[1], False), (sign, ins[0], False)]
            elif key == "sub":
                stack += [(-sign, ins[1], False), (sign, ins[0], False)]
            else:
                stack.append((-sign, ins[0], False))
        else:
            terms.append((sign, v))
    return terms


def _plain_terms(fgraph, node) -> bool:
    """True when the sum ``node`` computes has only its own inputs as terms (no input is a
    link of the chain _signed_terms would walk into) and they are distinct non-constants."""
    out = node.outputs[0]
    seen = set()
    for v in node.inputs:
        if v in seen or isinstance(v, Constant) or op_key(v) in ("add", "sub", "neg") and \
                v.dtype == out.dtype and fgraph.n_clients(v) == 1:
            return False
        seen.add(v)
    return True


@register("canonicalize", "add", "sub")
def add_chain_cancel_and_collect(fgraph, node):
    """a sum of signed terms, e.g. (x + 1) + (y - x) + 2 -> y + 3: a term and its negation
    cancel (as x - x -> 0 does) and the constants are summed once, in the result's dtype"""
    out = node.outputs[0]
    if not chain_root(fgraph, out, ("add", "sub", "neg")):
        return None  # the root of the chain rewrites all of it
    if _plain_terms(fgraph, node):
        return None  # distinct variables, no constant: nothing cancels or combines
    terms = _signed_terms(fgraph, out)
    consts = [(sg, v) for sg, v in terms if isinstance(v, Constant)]
    others = [(sg, v) for sg, v in terms if not isinstance(v, Constant)]
    # Regrouping is exact only when every term is already in the result's dtype (a narrower
    # int term would otherwise be added to another in its own dtype and wrap).
    if any(v.dtype != out.dtype for _, v in others):
        return None
    net: dict = {}  # each variable's count, plus and minus netted (dicts keep first-seen order)
    for sg, v in others:
        net[v] = net.get(v, 0) + sg
    kept = [(1 if n > 0 else -1, v) for v, n in net.items() for _ in range(abs(n))]
    if len(kept) == len(others) and len(consts) < 2 or not kept:
        return None
    checks = _broadcast_checks([v for v, n in net.items() if n == 0], [v for _, v in kept])
    if checks is None:
        return None
    result = None
    for sg, v in sorted(kept, key=lambda t: -t[0]):  # positive terms first: no neg needed
        if result is None:
            result = v if sg > 0 else E["neg"](v)
        else:
            result = E["add" if sg > 0 else "sub"](result, v)
    if consts:
        dtype = np.dtype(out.dtype)
        total = np.zeros((), dtype)
        with np.errstate(all="ignore"):  # ints wrap as the original chain would
            for sg, c in consts:
                total = (np.add if sg > 0 else np.subtract)(total, c.data.astype(dtype),
                                                            dtype=dtype)
        if np.any(total) or total.ndim > 0:
            result = E["add"](result, Constant(type(consts[0][1].type)(out.dtype, shape=tuple(
                1 if n == 1 else None for n in total.shape)), total))
    if checks:
        lengths, labels = zip(*checks)
        pairs = [("eq", (2 * k, 2 * k + 1), "the terms of the sum do not broadcast together")
                 for k in range(len(checks))]
        what = f"the sum created at {format_trace(out.trace)}"
        result = ShapeCheck(pairs, [lb for pair in labels for lb in pair], what)(
            result, *[n for pair in lengths for n in pair])
    return _fits(result, out)


def _broadcast_checks(cancelled, kept):
    """What cancelling terms from a sum must still check at run time: each non-broadcastable
    length of a cancelled term equals that of a kept term, as the sum's broadcasting did
    ((a + b) - b -> a keeps the error a + b raises when a and b do not broadcast). Pairs
    ``((length, length), (label, label))``; statically equal lengths need none. None when a
    cancelled term alone fixed a dimension's length (the result would be smaller)."""
    out = []
    for v in cancelled:
        for d, (vb, vn) in enumerate(zip(v.broadcastable, v.type.shape)):
            if vb:
                continue
            ref = next((k for k in kept if not k.broadcastable[d]), None)
            if ref is None:
                return None
            if vn is not None and ref.type.shape[d] == vn:
                continue
            out.append(((shape(ref)[d], shape(v)[d]),
                        (f"{ref!r}.shape[{d}]", f"{v!r}.shape[{d}]")))
    return out


@register("canonicalize", "true_div")
def div_self_to_one(fgraph, node):
    """x / x -> 1, only where x is a finite non-zero constant (else 0/0, inf/inf give NaN)"""
    x, y = node.inputs
    if x is y and isinstance(x, Constant) and np.all(np.isfinite(x.data)) and np.all(x.data):
        from ...ops.alloc import ones_like
        return ones_like(x, dtype=node.outputs[0].dtype)
    return None


@register("canonicalize", "eq")
def eq_of_extremum_to_comparison(fgraph, node):
    """eq(maximum(x, y), x) -> ge(x, y), eq(minimum(x, y), x) -> le(x, y), either operand
    order: the gradient of relu and of every maximum/minimum asks which input won. Equal
    everywhere, NaN (both false) and -0.0 (both true against 0.0) included, as long as the
    extremum keeps x's dtype (no rounding of x on one side only); the comparison reads x
    and y instead of the extremum's output, often an array written only for this."""
    a, b = node.inputs
    for z, x in ((a, b), (b, a)):
        key = op_key(z)
        if key not in ("maximum", "minimum") or z.dtype != x.dtype:
            continue
        p, q = z.owner.inputs
        if x is not p and x is not q:
            continue
        y = q if x is p else p
        return E["ge" if key == "maximum" else "le"](x, y)
    return None


@register("canonicalize", "exp")
def exp_log_to_identity(fgraph, node):
    """exp(log(x)) -> x (Theano's rule; equal wherever log(x) is defined)"""
    m = match(node.outputs[0], ("exp", ("log", "x")))
    return _fits(m["x"], node.outputs[0]) if m else None


@register("canonicalize", "log")
def log_exp_to_identity(fgraph, node):
    """log(exp(x)) -> x (also removes the overflow of exp for large x)"""
    m = match(node.outputs[0], ("log", ("exp", "x")))
    return _fits(m["x"], node.outputs[0]) if m else None


@register("canonicalize", "DimShuffle")
def dimshuffle_of_dimshuffle(fgraph, node):
    """dimshuffle(dimshuffle(x, p1), p2) -> dimshuffle(x, p1 o p2); identity patterns -> x"""
    op = node.op
    x = node.inputs[0]
    if op.new_order == tuple(range(op.input_ndim)):
        return x
    if x.owner is None or not isinstance(x.owner.op, DimShuffle):
        return None
    inner = x.owner.op.new_order
    composed = tuple("x" if d == "x" else inner[d] for d in op.new_order)
    src = x.owner.inputs[0]
    if composed == tuple(range(src.ndim)):
        return src
    return DimShuffle(src.ndim, composed)(src)


@register("canonicalize", "Reshape")
def reshape_of_reshape(fgraph, node):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2)"""
    x, shp = node.inputs
    if x.owner is not None and isinstance(x.owner.op, Reshape):
        return Reshape(node.op.ndim)(x.owner.inputs[0], shp)
    return None


@register("canonicalize", "Reshape")
def reshape_to_own_shape(fgraph, node):
    """reshape(x, s) -> x when s is x's own (static) shape"""
    x, shp = node.inputs
    if isinstance(shp, Constant) and x.ndim == node.op.ndim and \
            tuple(x.type.shape) == tuple(int(s) for s in shp.data):
        return x
    return None


def _exact_cast(src: str, dst: str) -> bool:
    """True when every value of dtype ``src`` is exactly a value of ``dst``: numpy's "safe"
    casts, less the 64-bit ints to float64 / complex128, which round above 2**53."""
    if not np.can_cast(src, dst, "safe"):
        return False
    s, d = np.dtype(src), np.dtype(dst)
    if s.kind in "iu" and d.kind in "fc":
        return np.iinfo(s).bits - (s.kind == "i") <= np.finfo(d).nmant + 1
    return True


def cast_of_cast(fgraph, node):
    """cast(cast(x, a), b) -> cast(x, b) when the cast to a loses nothing"""
    inner = node.inputs[0]
    if op_key(inner) is None or not op_key(inner).startswith("cast_"):
        return None
    x = inner.owner.inputs[0]
    if not _exact_cast(x.dtype, inner.dtype):
        return None
    return cast(x, node.outputs[0].dtype)


for _dt in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
            "float16", "float32", "float64", "complex64", "complex128"):
    register("canonicalize", f"cast_{_dt}")(cast_of_cast)


@register("canonicalize", "Subtensor")
def useless_slice(fgraph, node):
    """x[a:b:c] -> x when it keeps every element (x[:], x[0:n] with n >= len, x[::1])"""
    spec = node.op.spec
    x = node.inputs[0]
    if len(node.inputs) > 1 or len(spec) > x.ndim:
        return None
    for d, e in enumerate(spec):
        if e[0] != "s":
            return None
        start, stop, step = e[1:]
        n = x.type.shape[d]
        if start not in (None, 0) or step not in (None, 1):
            return None
        if stop is not None and not (n is not None and stop >= n):
            return None
    return x


@register("canonicalize", "identity", "DisconnectedGrad", "ZeroGrad", "GradClip", "GradScale")
def identity_to_input(fgraph, node):
    """copy(x) and gradient markers -> x (function() copies outputs that need it)"""
    return node.inputs[0]


@register("canonicalize", "Rebroadcast")
def useless_rebroadcast(fgraph, node):
    """rebroadcast(x) -> x when x already has the declared pattern"""
    x = node.inputs[0]
    return x if x.type == node.outputs[0].type else None


@register("canonicalize", "IfElse")
def ifelse_constant_condition(fgraph, node):
    """ifelse(True, a, b) -> a; ifelse(False, a, b) -> b"""
    cond = const_value(node.inputs[0])
    if cond is None:
        return None
    n = node.op.n_outs
    chosen = node.inputs[1:1 + n] if cond else node.inputs[1 + n:]
    return [c if c.type == o.type else None for c, o in zip(chosen, node.outputs)]
