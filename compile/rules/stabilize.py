"""Stabilize: replace expressions that lose precision or overflow by exact equivalents."""
from __future__ import annotations

from ...ops.elemwise import ELEMWISE as E
from ...ops.nnet import Softmax, checked_labels, logsumexp
from ...ops.reduce import Reduce
from ...ops.shape import Alloc, arange, shape
from ...ops.subtensor import IncSubtensor, Subtensor
from ..rewrite import const_value, match, register


def _same(new, old):
    """The replacement if it has exactly old's type (dtype and broadcast pattern), else None:
    a rule that drops a broadcast or changes a dtype would change the result's shape or values."""
    return new if (new.dtype, new.broadcastable) == (old.dtype, old.broadcastable) else None


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
    return _same(E["neg"](E["softplus"](E["neg"](m["x"]))), out) if m else None


@register("stabilize", "log")
def log_one_minus_sigmoid_to_softplus(fgraph, node):
    """log(1 - sigmoid(x)) -> -softplus(x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("sub", 1, ("sigmoid", "x")))))
    return _same(E["neg"](E["softplus"](m["x"])), out) if m else None


@register("stabilize", "log")
def log_one_plus_to_log1p(fgraph, node):
    """log(1 + x) -> log1p(x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("add", 1, "x"))) or match(out, ("log", ("add", "x", 1))))
    return _same(E["log1p"](m["x"]), out) if m else None


@register("stabilize", "log")
def log_one_minus_to_log1p(fgraph, node):
    """log(1 - x) -> log1p(-x)"""
    out = node.outputs[0]
    m = _float(match(out, ("log", ("sub", 1, "x"))))
    return _same(E["log1p"](E["neg"](m["x"])), out) if m else None


@register("stabilize", "log1p")
def log1p_exp_to_softplus(fgraph, node):
    """log1p(exp(x)) -> softplus(x) (so log(1 + exp(x)) too): exp overflows for large x
    (x > 88 in float32), softplus(x) is about x there"""
    out = node.outputs[0]
    m = _float(match(out, ("log1p", ("exp", "x"))))
    return _same(E["softplus"](m["x"]), out) if m else None


@register("stabilize", "sub")
def exp_minus_one_to_expm1(fgraph, node):
    """exp(x) - 1 -> expm1(x)"""
    out = node.outputs[0]
    m = _float(match(out, ("sub", ("exp", "x"), 1)))
    return _same(E["expm1"](m["x"]), out) if m else None


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
    return _same(E["neg"](logp[arange(shape(logp)[0]), labels]), node.outputs[0])


@register("stabilize", "mul")
def softmax_grad_of_crossentropy(fgraph, node):
    """softmax'(z) applied to the crossentropy gradient -gy/z[r, y] at (r, y) ->
    gy * (z - onehot(y)): the textbook form, finite even when z[r, y] underflows to 0"""
    m = match(node.outputs[0], ("mul", "z", ("sub", "g", ("DimShuffle", ("Reduce", ("mul", "g",
                                                                                     "z"))))))
    if m is None:
        return None
    z, g = m["z"], m["g"]
    if z.owner is None or not isinstance(z.owner.op, Softmax) or z.owner.op.log or \
            z.owner.op.axis != 1 or z.ndim != 2:
        return None  # the identity below is for a softmax over the classes of each row
    red = node.outputs[0].owner.inputs[1].owner.inputs[1].owner.inputs[0].owner
    if not isinstance(red.op, Reduce) or red.op.kind != "sum" or red.op.axis != (1,):
        return None
    inc = g.owner
    if inc is None or not isinstance(inc.op, IncSubtensor) or inc.op.set_instead_of_inc:
        return None
    zeros, delta, *idx = inc.inputs
    if zeros.owner is None or not isinstance(zeros.owner.op, Alloc) or \
            const_value(zeros.owner.inputs[0]) != 0:
        return None
    d = match(delta, ("true_div", ("neg", "gy"), "picked"))
    if d is None or d["picked"].owner is None or not isinstance(d["picked"].owner.op, Subtensor):
        return None
    picked = d["picked"].owner
    if picked.inputs[0] is not z or picked.op.spec != inc.op.spec or picked.inputs[1:] != idx:
        return None
    gy = d["gy"]
    if gy.ndim != 1:
        return None
    if len(idx) != 2:
        return None
    rows, labels = idx
    scaled = z * gy.dimshuffle(0, "x")
    # the forward crossentropy op refused out-of-range labels: keep that check here too, where
    # the loss itself may not be computed
    return _same(IncSubtensor(inc.op.spec, False)(scaled, E["neg"](gy), rows,
                                                  checked_labels(labels, z.owner.inputs[0])),
                 node.outputs[0])


@register("stabilize", "log")
def log_sum_exp_to_logsumexp(fgraph, node):
    """log(sum(exp(x), axis)) -> max(x) + log(sum(exp(x - max(x)), axis)), finite for large x"""
    red = node.inputs[0].owner
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
    return _same(logsumexp(x, axis=red.op.axis), node.outputs[0])

