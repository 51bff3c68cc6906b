"""Stabilize: replace expressions that lose precision or overflow by exact equivalents."""
from __future__ import annotations

import numpy as np

from ...ops.alloc import Alloc, ARange, arange
from ...ops.base import call_infer_shape, same_type
from ...ops.dimshuffle import DimShuffle
from ...ops.elemwise import ELEMWISE as E
from ...ops.elemwise import cast
from ...ops.nnet import Softmax, checked_labels, logsumexp
from ...ops.reduce import Reduce
from ...ops.shape import Shape, shape
from ...ops.subtensor import IncSubtensor, Subtensor
from ...symbolic.graph import Constant, Variable
from ...symbolic.types import DISCRETE_DTYPES
from ..rewrite import chain_root, const_value, match, node_key, op_key, register


def _float(m):
    """The match if its "x" is floating point: the identities below hold on the reals, while
    integer inputs wrap (1 + uint8) or change sign rules (neg of unsigned)."""
    return m if m is not None and m["x"].dtype.startswith(("float", "complex")) else None


# The sigmoid rules are registered first: a node takes the first of its rules that fires, and
# log(1 - sigmoid(x)) must become -softplus(x), not log1p(-sigmoid(x)) (which is -inf as soon as
# sigmoid(x) rounds to 1: x > 17 in float32, x > 37 in float64).
@register("stabilize", "log")
def log_sigmoid_to_softplus(fgraph, node):
    """log(sigmoid(x)) -> -softplus(-x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("sigmoid", "x"))))
    return same_type(E["neg"](E["softplus"](E["neg"](m["x"]))), out) if m else None


@register("stabilize", "log")
def log_one_minus_sigmoid_to_softplus(fgraph, node):
    """log(1 - sigmoid(x)) -> -softplus(x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("sub", 1, ("sigmoid", "x")))))
    return same_type(E["neg"](E["softplus"](m["x"])), out) if m else None


@register("stabilize", "log")
def log_one_plus_to_log1p(fgraph, node):
    """log(1 + x) -> log1p(x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("add", 1, "x"))) or match(out, ("log", ("add", "x", 1))))
    return same_type(E["log1p"](m["x"]), out) if m else None


@register("stabilize", "log")
def log_one_minus_to_log1p(fgraph, node):
    """log(1 - x) -> log1p(-x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("sub", 1, "x"))))
    return same_type(E["log1p"](E["neg"](m["x"])), out) if m else None


@register("stabilize", "log1p")
def log1p_exp_to_softplus(fgraph, node):
    """log1p(exp(x)) -> softplus(x) (so log(1 + exp(x)) too): exp overflows for large x
    (x > 88 in float32), softplus(x) is about x there"""
    out = node.outputs[0]
    m = _float(match(out, ("log1p", ("exp", "x"))))
    return same_type(E["softplus"](m["x"]), out) if m else None


@register("stabilize", "sub", needs=("exp",))
def exp_minus_one_to_expm1(fgraph, node):
    """exp(x) - 1 -> expm1(x)"""
    out = node.outputs[0]
    m = _float(match(out, ("sub", ("exp", "x"), 1)))
    return same_type(E["expm1"](m["x"]), out) if m else None


@register("stabilize", "log")
def log_softmax_from_log_of_softmax(fgraph, node):
    """log(softmax(x)) -> log_softmax(x)"""
    inner = node.inputs[0]
    if inner.owner is not None and isinstance(inner.owner.op, Softmax) and \
            not inner.owner.op.log:
        return Softmax(inner.owner.op.axis, log=True)(inner.owner.inputs[0])
    return None


@register("stabilize", "CrossentropyCategorical1Hot")
def crossentropy_of_softmax_to_log_softmax(fgraph, node):
    """crossentropy(softmax(x), y) -> -log_softmax(x)[arange(n), y]"""
    p, y = node.inputs
    if p.owner is None or not isinstance(p.owner.op, Softmax) or p.owner.op.log \
            or p.owner.op.axis != 1:
        return None
    logp = Softmax(1, log=True)(p.owner.inputs[0])
    # the op refused out-of-range labels; indexing would not (checked against the logits, as
    # the gradient rewrite below does, so merging keeps one check)
    labels = checked_labels(y, p.owner.inputs[0])
    return same_type(E["neg"](logp[arange(shape(logp)[0]), labels]), node.outputs[0])


@register("stabilize", "mul", needs=("Softmax",))
def softmax_grad_of_crossentropy(fgraph, node):
    """softmax'(z) applied to the crossentropy gradient G = inc(0[r, y], -gy / z[r, y]) ->
    z * sum(Q, axis=1) - Q with Q = inc(0[r, y], gy): finite even when z[r, y] underflows
    to 0; gy * (z - onehot(y)) when the rows r are arange(n) (one pick per row, in order)"""
    m = match(node.outputs[0], ("mul", "z", ("sub", "g", ("DimShuffle", ("Reduce", ("mul", "g",
                                                                                     "z"))))))
    if m is None:
        return None
    z, g = m["z"], m["g"]
    if z.owner is None or not isinstance(z.owner.op, Softmax) or z.owner.op.log or \
            z.owner.op.axis != 1 or z.ndim != 2:
        return None  # the identity below is for a softmax over the classes of each row
    bcast = node.outputs[0].owner.inputs[1].owner.inputs[1].owner
    red = bcast.inputs[0].owner
    if not isinstance(red.op, Reduce) or red.op.kind != "sum" or red.op.axis != (1,) or \
            bcast.op.new_order != (0, "x"):
        return None
    inc = g.owner
    if inc is None or not isinstance(inc.op, IncSubtensor) or inc.op.set_instead_of_inc:
        return None
    zeros, delta, *idx = inc.inputs
    if not (isinstance(zeros, Constant) and const_value(zeros) == 0) and (
            zeros.owner is None or not isinstance(zeros.owner.op, Alloc) or
            const_value(zeros.owner.inputs[0]) != 0):
        return None  # an Alloc of zeros, or the constant it folded to
    d = match(delta, ("true_div", "num", "picked"))
    if d is None or d["picked"].owner is None or not isinstance(d["picked"].owner.op, Subtensor):
        return None
    picked = d["picked"].owner
    if picked.inputs[0] is not z or picked.op.spec != inc.op.spec or picked.inputs[1:] != idx:
        return None
    gy = _negated(d["num"])
    if gy is None:
        return None
    if gy.ndim != 1 or len(idx) != 2 or any(i.ndim != 1 for i in idx):
        return None
    rows, labels = idx
    x = z.owner.inputs[0]
    if op_key(labels) == "CheckedLabels" and labels.owner.inputs[1] is z:
        # the crossentropy's own check, made against its predictions: checked against the
        # logits instead, it merges with the check of the rewritten loss
        labels = checked_labels(labels.owner.inputs[0], x)
    if _is_arange_of_rows(fgraph, rows, z):
        each = _one_value_per_row(fgraph, gy, z)
        if each is not None:
            # gy = fill(s) for every row (a mean's gradient): s is read as the number it is,
            # which stays where it is computed (a device keeps it on the host), instead of
            # an array of n copies and its negation
            scaled, picked = z * each.dimshuffle("x", "x"), E["neg"](each)
        else:
            scaled, picked = z * gy.dimshuffle(0, "x"), E["neg"](gy)
        return same_type(IncSubtensor(inc.op.spec, False)(scaled, picked, rows, labels),
                         node.outputs[0])
    # Any other rows (a permutation, repeats, a subset): row i of G holds -gy[k] / z[i, y[k]]
    # for each pick k of that row, so z * G is Q negated and sum(G * z, axis=1) is -sum(Q).
    picks = IncSubtensor(inc.op.spec, False)(zeros, gy, rows, labels)
    per_row = Reduce("sum", (1,), picks.dtype)(picks).dimshuffle(0, "x")
    return same_type(z * per_row - picks, node.outputs[0])


def _negated(v):
    """``a`` when ``v`` is ``-a``: a neg node, or a float constant (-gy folded)."""
    if op_key(v) == "neg":
        return v.owner.inputs[0]
    if isinstance(v, Constant) and v.dtype.startswith("float"):
        return Constant(v.type, -v.data)
    return None


def _is_arange_of_rows(fgraph, rows, z) -> bool:
    """Whether ``rows`` is provably ``arange(z.shape[0])``: the ARange (or the constant it
    folded to) from 0 by 1 up to a length that infer_shape says z.shape[0] equals."""
    if isinstance(rows, Constant):
        data = rows.data
        return data.ndim == 1 and np.array_equal(data, np.arange(data.size)) and \
            data.size in _row_lengths(fgraph, z)[1]
    if rows.owner is None or not isinstance(rows.owner.op, ARange):
        return False
    start, stop, step = rows.owner.inputs
    if const_value(start) != 0 or const_value(step) != 1:
        return False
    return _is_row_count(fgraph, stop, z)


def _is_row_count(fgraph, n, z) -> bool:
    """Whether the 0-d ``n`` is provably ``z.shape[0]``."""
    if n.ndim != 0:
        return False
    pairs, static, exprs = _row_lengths(fgraph, z)
    if isinstance(n, Constant):
        return int(n.data) in static
    return _shape_entry(n) in pairs or any(n is e for e in exprs)


def _one_value_per_row(fgraph, gy, z):
    """``s`` (0-d) when the vector ``gy`` is ``alloc(s, z.shape[0])`` (s possibly as a
    broadcastable vector), else None."""
    if gy.owner is None or not isinstance(gy.owner.op, Alloc) or len(gy.owner.inputs) != 2:
        return None
    value, n = gy.owner.inputs
    if value.dtype != gy.dtype or not all(value.type.broadcastable) or \
            not _is_row_count(fgraph, n, z):
        return None
    while value.ndim and value.owner is not None and isinstance(value.owner.op, DimShuffle) \
            and value.owner.inputs[0].ndim == 0:
        value = value.owner.inputs[0]  # (fill's own broadcast of a scalar)
    return value.dimshuffle(()) if value.ndim else value


def _shape_entry(v):
    """(x, d) when ``v`` is ``x.shape[d]`` (d normalised), else None."""
    if v.owner is None or not isinstance(v.owner.op, Subtensor) or len(v.owner.inputs) != 1:
        return None
    spec = v.owner.op.spec
    if len(spec) != 1 or spec[0][0] != "i" or not isinstance(spec[0][1], int):
        return None
    src = v.owner.inputs[0]
    if src.owner is None or not isinstance(src.owner.op, Shape):
        return None
    x = src.owner.inputs[0]
    d = spec[0][1]
    return (x, d % x.ndim) if -x.ndim <= d < x.ndim else None


def _row_lengths(fgraph, z, depth: int = 64):
    """What ``z.shape[0]`` is known to equal, following infer_shape up the graph as the shape
    rules do: ``(x, d)`` pairs whose x.shape[d] it is, static lengths, and other length
    variables infer_shape gave."""
    pairs, static, exprs = set(), set(), []
    var, d = z, 0
    for _ in range(depth):
        if (var, d) in pairs:
            break
        pairs.add((var, d))
        if var.type.shape[d] is not None:
            static.add(int(var.type.shape[d]))
        if var.owner is None:
            break
        node = var.owner
        in_shapes = [tuple(Subtensor((("i", k),))(shape(i)) for k in range(i.ndim))
                     if hasattr(i.type, "shape") else None for i in node.inputs]
        try:
            entry = call_infer_shape(node.op, fgraph, node, in_shapes)[var.index][d]
        except (NotImplementedError, TypeError, ValueError, IndexError, AttributeError):
            break
        if isinstance(entry, (int, np.integer)):
            static.add(int(entry))
            break
        if isinstance(entry, Constant):
            if entry.ndim == 0:
                static.add(int(entry.data))
            break
        nxt = _shape_entry(entry) if isinstance(entry, Variable) else None
        if nxt is None:
            if isinstance(entry, Variable):
                exprs.append(entry)
            break
        var, d = nxt
    return pairs, static, exprs


@register("stabilize", "log", "mul", needs=("exp",))
def log_sum_exp_to_logsumexp(fgraph, node):
    """log(sum(exp(x), axis)) -> max(x) + log(sum(exp(x - max(x)), axis)), finite for large x;
    and its gradient exp(x) * broadcast(g / sum(exp(x), axis)) -> broadcast(g) *
    softmax(x, axis), finite too (one rule: the loss and its gradient are rewritten together)"""
    if node_key(node) == "mul":
        return _grad_of_logsumexp(node)
    s = node.inputs[0]
    keep = None
    if op_key(s) == "DimShuffle" and [d for d in s.owner.op.new_order if d != "x"] == \
            list(range(s.owner.inputs[0].ndim)):
        keep, s = s.owner.op, s.owner.inputs[0]  # keepdims=True: log(pad(s)) = pad(log(s))
    red = s.owner
    if red is None or not isinstance(red.op, Reduce) or red.op.kind != "sum":
        return None
    e = red.inputs[0]
    if e.owner is None or getattr(e.owner.op, "scalar_op", None) is None or \
            e.owner.op.scalar_op.name != "exp":
        return None
    x = e.owner.inputs[0]
    shifted = match(x, ("sub", None, ("switch", None, None, None)))
    if shifted is not None:  # already stabilized (this rule's own output)
        return None
    if not x.dtype.startswith("float"):
        return None
    out = logsumexp(x, axis=red.op.axis)
    return same_type(out if keep is None else keep(out), node.outputs[0])


# -- the gradient of log(sum(exp(x))) ---------------------------------------------------------
# log(sum(exp(x))) is rewritten to the stable logsumexp, but its gradient, built before that,
# holds exp(x) * (g / sum(exp(x))): inf / inf once exp overflows. Read as g * softmax(x) it is
# finite.

def _lands_on(v, where):
    """Follow ``v`` down through broadcasts (DimShuffle, the value of an Alloc) from the
    variable whose dims ``where`` names: (the variable reached, where each of its dims lands
    there; None for a dropped broadcastable dim) and the wrapper nodes passed."""
    chain = []
    while v.owner is not None and isinstance(v.owner.op, (DimShuffle, Alloc)):
        node = v.owner
        inner = node.inputs[0]
        if isinstance(node.op, DimShuffle):
            order = node.op.new_order
            where = [where[order.index(k)] if k in order else None for k in range(inner.ndim)]
        else:
            lead = v.ndim - inner.ndim
            where = [where[lead + k] for k in range(inner.ndim)]
        chain.append(node)
        v = inner
    return v, where, chain


def _sum_of_exp(d, e, where):
    """The reduced axes when ``d`` broadcasts ``sum(e, axes)`` back along those axes only
    (each varying dim of the sum lands on the dim of ``e`` it was kept from), else None."""
    s, where, _ = _lands_on(d, where)
    if s.owner is None or not isinstance(s.owner.op, Reduce) or s.owner.op.kind != "sum" or \
            s.owner.inputs[0] is not e:
        return None
    axes = s.owner.op.axis
    kept = [k for k in range(e.ndim) if k not in axes]
    for k, lands in enumerate(where):
        if lands != kept[k] and s.type.shape[k] != 1:
            return None
    return axes


def _softmax_of(e, axes):
    x = e.owner.inputs[0]
    if not x.dtype.startswith("float") or not axes:
        return None
    return Softmax(axes[0] if len(axes) == 1 else tuple(axes))(x)


def _grad_of_logsumexp(node):
    """exp(x) * broadcast(g / sum(exp(x), axes)) -> broadcast(g) * softmax(x, axes), or None"""
    out = node.outputs[0]
    ins = node.inputs
    for i, e in enumerate(ins):
        if op_key(e) != "exp" or e.ndim != out.ndim:
            continue
        for j, b in enumerate(ins):
            if j == i or b.ndim != out.ndim:
                continue
            q, where, chain = _lands_on(b, list(range(out.ndim)))
            if op_key(q) != "true_div":
                continue
            g, d = q.owner.inputs
            axes = _sum_of_exp(d, e, list(where)) if d.ndim == q.ndim else None
            soft = _softmax_of(e, axes) if axes is not None else None
            if soft is None or (g.dtype, g.broadcastable) != (q.dtype, q.broadcastable):
                continue
            for wrap in reversed(chain):  # the same broadcasts, of g instead of g / sum
                g = wrap.op(g, *wrap.inputs[1:])
            result = soft * g
            for k, other in enumerate(ins):
                if k not in (i, j):
                    result = result * other
            return same_type(result, out)
    return None


@register("stabilize", "true_div", needs=("exp",))
def softmax_from_exp_over_sum(fgraph, node):
    """exp(x) / broadcast(sum(exp(x), axes)) -> softmax(x, axes): the softmax written by hand
    (exp(x) / exp(x).sum(axis=1, keepdims=True)), which is inf / inf = nan once exp(x)
    overflows, computed with the maximum subtracted (x = a - max(a) is left as written)"""
    e, d = node.inputs
    out = node.outputs[0]
    if op_key(e) != "exp" or e.ndim != out.ndim or d.ndim != out.ndim:
        return None
    x = e.owner.inputs[0]
    if op_key(x) == "sub":  # exp(a - max(a)): stable as written, left to fusion
        a, m = x.owner.inputs
        base, _, _ = _lands_on(m, list(range(m.ndim)))
        if base.owner is not None and isinstance(base.owner.op, Reduce) and \
                base.owner.op.kind == "max" and base.owner.inputs[0] is a:
            return None
    axes = _sum_of_exp(d, e, list(range(out.ndim)))
    soft = _softmax_of(e, axes) if axes is not None else None
    return same_type(soft, out)


# -- products and quotients of sigmoids ------------------------------------------------------------
# Gradients of log(sigmoid(z)), log(1 - sigmoid(z)) and of a hand-written 1 / (1 + exp(-z)) are
# products like g / s * s * (1 - s), which are 0 / 0 or inf / inf once s rounds to 0 or 1. Read
# as a product of factors, every sigmoid-like factor is some sigmoid(+-a) > 0, so equal ones in
# the numerator and the denominator cancel exactly: the limit the rounding lost.

def _signed_arg(v):
    """(a, sign) with v == sign * a, looking through negations of floats (an integer one
    wraps: -uint8(1) is 255, -int8(-128) is -128)."""
    sign = 1
    while op_key(v) == "neg" and v.dtype.startswith("float"):
        v, sign = v.owner.inputs[0], -sign
    return v, sign


def _sigmoid_of(v):
    """(a, sign) when v is sigmoid(sign * a) written in one of its forms, else None:
    sigmoid(x), 1 - sigmoid(x) (= sigmoid(-x)), 1 / (1 + exp(y)) (= sigmoid(-y))."""
    key = op_key(v)
    if key == "sigmoid":
        return _signed_arg(v.owner.inputs[0])
    if key == "sub" and const_value(v.owner.inputs[0]) == 1 and \
            op_key(v.owner.inputs[1]) == "sigmoid":
        a, sign = _signed_arg(v.owner.inputs[1].owner.inputs[0])
        return a, -sign
    if key == "true_div" and const_value(v.owner.inputs[0]) == 1:
        y = _one_plus_exp(v.owner.inputs[1])
        if y is not None:
            a, sign = _signed_arg(y)
            return a, -sign
    return None


def _one_plus_exp(v):
    """y when v is 1 + exp(y) (either order), else None."""
    if op_key(v) != "add":
        return None
    x, y = v.owner.inputs
    for one, e in ((x, y), (y, x)):
        if const_value(one) == 1 and op_key(e) == "exp":
            return e.owner.inputs[0]
    return None


def _factors(fgraph, out):
    """``out`` as sign * prod(num) / prod(den), through the mul, true_div and neg nodes of its
    dtype that nothing else uses."""
    sign, num, den = 1, [], []
    stack = [(out, True, True)]
    while stack:
        v, upper, root = stack.pop()
        key = op_key(v)
        inner = key in ("mul", "true_div", "neg") and v.dtype == out.dtype and \
            (root or fgraph.n_clients(v) == 1) and _sigmoid_of(v) is None and not (
                key == "true_div" and any(i.dtype in DISCRETE_DTYPES for i in v.owner.inputs))
        # (a true division of ints is computed in float64 and rounded once: split into
        # factors cast to a float32 output, it would round twice)
        if not inner:
            (num if upper else den).append(v)
        elif key == "neg":
            sign = -sign
            stack.append((v.owner.inputs[0], upper, False))
        elif key == "mul":
            stack += [(i, upper, False) for i in v.owner.inputs]
        else:
            a, b = v.owner.inputs
            stack += [(a, upper, False), (b, not upper, False)]
    return sign, num, den


def _cancel(num, den):
    """Rewrite the factor lists in place: exp(y) / (1 + exp(y)) -> sigmoid(y), then equal
    sigmoids above and below the bar cancel. True when anything changed."""
    changed = False
    for d in list(den):
        y = _one_plus_exp(d)
        e = next((n for n in num if op_key(n) == "exp" and n.owner.inputs[0] is y), None) \
            if y is not None else None
        if e is not None:
            num.remove(e)
            den.remove(d)
            num.append(E["sigmoid"](y))
            changed = True
    for d in list(den):
        key = _sigmoid_of(d)
        twin = None if key is None else next(
            (n for n in num if _same_key(_sigmoid_of(n), key)), None)
        if twin is not None:
            num.remove(twin)
            den.remove(d)
            changed = True
    return changed


def _same_key(a, b) -> bool:
    return a is not None and b is not None and a[0] is b[0] and a[1] == b[1]


def _product(sign, num, den, dtype):
    """sign * prod(num) / prod(den) in ``dtype``. A factor of another dtype (an int8 weight
    in a float64 product) is cast first: regrouped, two int8 factors would otherwise be
    multiplied in int8 and wrap, where the original product had upcast each of them."""
    num = [v if v.dtype == dtype else cast(v, dtype) for v in num]
    den = [v if v.dtype == dtype else cast(v, dtype) for v in den]
    result = None
    for v in num:
        result = v if result is None else E["mul"](result, v)
    for d in den:
        result = E["true_div"](np.asarray(1, dtype) if result is None else result, d)
    if result is None:
        return None  # everything cancelled: leave the product (its shape) as it is
    return E["neg"](result) if sign < 0 else result


def _distributed(fgraph, sign, num, den, dtype):
    """sign * prod(num) / prod(den) with a sum among num multiplied out, when every term of
    the sum then cancels a sigmoid against the other factors (s * (a / s - b / (1 - s)) *
    (1 - s), the gradient of a logistic crossentropy), else None."""
    from .canonicalize import _signed_terms
    for k, leaf in enumerate(num):
        if op_key(leaf) not in ("add", "sub") or leaf.dtype != dtype:
            continue
        others = num[:k] + num[k + 1:]
        pieces = []
        for t_sign, term in _signed_terms(fgraph, leaf):
            s_t, n_t, d_t = _factors(fgraph, term)
            n_all, d_all = others + n_t, den + d_t
            piece = _product(t_sign * s_t, n_all, d_all, dtype) if _cancel(n_all, d_all) \
                else None
            if piece is None:
                break
            pieces.append(piece)
        else:
            total = pieces[0]
            for p in pieces[1:]:
                total = E["add"](total, p)
            return E["neg"](total) if sign < 0 else total
    return None


@register("stabilize", "mul", "true_div", "neg", needs=("sigmoid", "exp"))
def cancel_sigmoid_factors(fgraph, node):
    """a product of factors in which exp(y) / (1 + exp(y)) -> sigmoid(y),
    1 / (1 + exp(y)) -> sigmoid(-y), 1 - sigmoid(x) -> sigmoid(-x), and a sigmoid in the
    numerator cancels the same one in the denominator (both are > 0, so this is exact); a sum
    among the factors is multiplied out when each of its terms then cancels"""
    out = node.outputs[0]
    if not out.dtype.startswith("float"):
        return None
    if not chain_root(fgraph, out, ("mul", "true_div", "neg")):
        return None  # the root of the product rewrites all of it
    sign, num, den = _factors(fgraph, out)
    if not any(_sigmoid_of(v) is not None or op_key(v) == "exp" for v in num + den):
        return None  # nothing a sigmoid could cancel: leave the product alone
    if _cancel(num, den):
        result = _product(sign, num, den, out.dtype)
        return None if result is None else same_type(result, out)
    result = _distributed(fgraph, sign, num, den, out.dtype)
    return None if result is None else same_type(result, out)


@register("stabilize", "true_div", needs=("exp",))
def one_over_one_plus_exp_to_sigmoid(fgraph, node):
    """1 / (1 + exp(y)) -> sigmoid(-y): the hand-written logistic function, which gives
    inf / inf = nan in its gradient once exp(y) overflows"""
    out = node.outputs[0]
    if const_value(node.inputs[0]) != 1 or not out.dtype.startswith("float"):
        return None
    y = _one_plus_exp(node.inputs[1])
    if y is None:
        return None
    a, sign = _signed_arg(y)
    if sign < 0:
        return same_type(E["sigmoid"](a), out)
    # negated in the float output dtype: in y's own dtype an unsigned or INT_MIN value wraps
    return same_type(E["sigmoid"](E["neg"](a if a.dtype == out.dtype else cast(a, out.dtype))), out)
