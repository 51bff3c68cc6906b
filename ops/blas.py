"""Linear algebra: dot (numpy.dot semantics), matmul, tensordot, batched_dot, outer."""
from __future__ import annotations

import numpy as np

from ..symbolic.graph import Apply
from ..symbolic.types import TensorType
from . import cblas
from .base import Op, as_tensor_variable, graph_error
from .buffers import MIN_BYTES, Recent
from .elemwise import _check_runtime_broadcast, broadcast_lengths
from .scalar import upcast


def _check_inner(name: str, a, b, da: int, db: int):
    la, lb = a.type.shape[da], b.type.shape[db]
    if la is not None and lb is not None and la != lb:
        raise graph_error(f"{name}: inner dimensions do not match: {a.type} has length {la} in "
                          f"dimension {da}, {b.type} has length {lb} in dimension {db}",
                          ValueError)


def _run_checked(name, fn):
    def run(a, b):
        try:
            return fn(a, b)
        except ValueError as err:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} are not aligned ({err})"
                             ) from None
    return run


_DOT_TYPES: dict = {}  # (id of a's type, id of b's type) -> (a's type, b's type, output type)


class Dot(Op):
    """``numpy.dot``: vector.vector -> scalar, matrix.vector, vector.matrix, matrix.matrix;
    for higher ranks, the last axis of ``a`` with the second-to-last of ``b``."""

    def make_node(self, a, b) -> Apply:
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        ta, tb = a.type, b.type
        # the output type depends only on the input types: checked and built once per pair
        # (ids as the key; the entry keeps both types alive, so neither id is reused)
        hit = _DOT_TYPES.get((id(ta), id(tb)))
        if hit is not None:
            return Apply(self, [a, b], [hit[2]()])
        if a.ndim == 0 or b.ndim == 0:
            raise graph_error(f"dot of {a.type} and {b.type}: use * for scalars")
        db = 0 if b.ndim == 1 else b.ndim - 2
        _check_inner("dot", a, b, a.ndim - 1, db)
        shape = a.type.shape[:-1] + tuple(s for d, s in enumerate(b.type.shape) if d != db)
        out_type = TensorType(upcast(a.dtype, b.dtype), shape=shape)
        if len(_DOT_TYPES) < 10_000:
            _DOT_TYPES[(id(ta), id(tb))] = (ta, tb, out_type)
        return Apply(self, [a, b], [out_type()])

    def impl(self, node):
        dtype = np.dtype(node.outputs[0].dtype)
        recent = Recent()
        large = MIN_BYTES // dtype.itemsize  # elements of a product kept for the next call

        def dot(a, b):
            if a.ndim == 2 and b.ndim == 2 and a.shape[0] * b.shape[1] >= large and \
                    a.dtype == dtype and b.dtype == dtype and a.shape[1] == b.shape[0]:
                return np.matmul(a, b, out=recent.array((a.shape[0], b.shape[1]), dtype))
            try:
                r = np.dot(a, b)
            except ValueError as err:
                raise ValueError(f"dot: shapes {a.shape} and {b.shape} are not aligned ({err})"
                                 ) from None
            # vector.vector gives a numpy scalar; other ops expect a 0-d array
            return r if r.__class__ is np.ndarray and r.dtype == dtype else \
                np.asarray(r, dtype=dtype)
        return dot

    def infer_shape(self, fgraph, node, shapes):
        sa, sb = shapes
        db = 0 if len(sb) == 1 else len(sb) - 2
        return [tuple(sa[:-1]) + tuple(s for d, s in enumerate(sb) if d != db)]

    def grad(self, inputs, grads):
        a, b = inputs
        g = grads[0]
        na, nb = a.type.ndim, b.type.ndim
        if na > 2 or nb > 2:  # numpy.dot is a tensordot over one pair of axes
            db = 0 if nb == 1 else nb - 2
            return TensorDot([na - 1], [db]).grad(inputs, grads)
        if na == 1 and nb == 1:
            return [g * b, g * a]
        if na == 1:  # (k,) . (k, n) -> (n,)
            return [dot(b, g), outer(a, g)]
        if nb == 1:  # (m, k) . (k,) -> (m,)
            return [outer(g, b), dot(a.T, g)]
        return [dot(g, b.T), dot(a.T, g)]

    def R_op(self, inputs, eval_points):
        a, b = inputs
        ea, eb = eval_points
        terms = []
        if ea is not None:
            terms.append(dot(ea, b))
        if eb is not None:
            terms.append(dot(a, eb))
        if not terms:
            return [None]
        return [terms[0] if len(terms) == 1 else terms[0] + terms[1]]


_dot = Dot()


def dot(a, b):
    """``numpy.dot`` semantics for tensors of any rank (scalars multiply)."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.type.ndim == 0 or b.type.ndim == 0:
        return a * b
    return _dot(a, b)


def outer(x, y):
    """The outer product of two vectors."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    if x.ndim != 1 or y.ndim != 1:
        x, y = x.flatten(), y.flatten()
    return dot(x.dimshuffle(0, "x"), y.dimshuffle("x", 0))


class MatMul(Op):
    """``numpy.matmul``: batched matrix products with broadcasting of the batch dimensions."""

    def make_node(self, a, b) -> Apply:
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        if a.ndim == 0 or b.ndim == 0:
            raise graph_error(f"matmul of {a.type} and {b.type}: scalars are not allowed, use *",
                              ValueError)
        da, db = a.ndim - 1, (0 if b.ndim == 1 else b.ndim - 2)
        _check_inner("matmul", a, b, da, db)
        sa, sb = a.type.shape, b.type.shape
        rows = sa[-2:-1] if a.ndim >= 2 else ()
        cols = sb[-1:] if b.ndim >= 2 else ()
        ba, bb = sa[:-2], sb[:-2]
        n = max(len(ba), len(bb))
        ba, bb = (1,) * (n - len(ba)) + ba, (1,) * (n - len(bb)) + bb
        batch = []
        for x, y in zip(ba, bb):
            if x == 1:
                batch.append(y)
            elif y == 1 or y is None or x is None:
                batch.append(x if y in (1, x) else None)
            elif x != y:
                raise graph_error(f"matmul: batch dimensions of {a.type} and {b.type} do not "
                                  "broadcast", ValueError)
            else:
                batch.append(x)
        shape = tuple(batch) + tuple(rows) + tuple(cols)
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape=shape)()])

    def impl(self, node):
        dtype = np.dtype(node.outputs[0].dtype)

        def mm(a, b):
            return np.asarray(np.matmul(a, b), dtype=dtype)
        return _run_checked("matmul", mm)

    def infer_shape(self, fgraph, node, shapes):
        from .subtensor import _broadcast_length
        a, b = node.inputs
        sa, sb = list(shapes[0]), list(shapes[1])
        rows = sa[-2:-1] if a.ndim >= 2 else []
        cols = sb[-1:] if b.ndim >= 2 else []
        ba, bb = sa[:-2], sb[:-2]
        n = max(len(ba), len(bb))
        ba, bb = [1] * (n - len(ba)) + ba, [1] * (n - len(bb)) + bb
        batch = [_broadcast_length(x, y) for x, y in zip(ba, bb)]
        return [tuple(s if s is not None else d
                      for s, d in zip(node.outputs[0].type.shape, batch + rows + cols))]

    def grad(self, inputs, grads):
        from .reduce import sum as sum_
        a, b = inputs
        g = grads[0]
        a2 = a if a.ndim > 1 else a.dimshuffle("x", 0)
        b2 = b if b.ndim > 1 else b.dimshuffle(0, "x")
        g2 = g
        if a.ndim == 1:
            g2 = g2.dimshuffle(*(list(range(g2.ndim - 1)) + ["x", g2.ndim - 1])) \
                if b.ndim > 1 else g2.dimshuffle("x")
        if b.ndim == 1:
            g2 = g2.dimshuffle(*(list(range(g2.ndim)) + ["x"]))
        def swap(t):
            return t.dimshuffle(*(list(range(t.ndim - 2)) + [t.ndim - 1, t.ndim - 2]))
        ga, gb = matmul(g2, swap(b2)), matmul(swap(a2), g2)
        ga, gb = _sum_to(ga, a2), _sum_to(gb, b2)
        if a.ndim == 1:
            ga = ga.dimshuffle(ga.ndim - 1) if ga.ndim == 2 else sum_(ga, axis=list(
                range(ga.ndim - 1)))
        if b.ndim == 1:
            gb = gb.dimshuffle(0) if gb.ndim == 2 else sum_(gb, axis=list(range(gb.ndim - 2)) +
                                                          [gb.ndim - 1])
        return [ga, gb]


def _sum_to(g, x):
    """Sum ``g`` over the batch dimensions that ``x`` broadcast."""
    from .dimshuffle import patternbroadcast
    from .reduce import sum as sum_
    lead = g.ndim - x.ndim
    axes = list(range(lead)) + [lead + d for d, b in enumerate(x.broadcastable[:-2])
                                if b and not g.broadcastable[lead + d]]
    if not axes:
        return g
    out = sum_(g, axis=axes, keepdims=True)
    if lead:
        out = out.dimshuffle(list(range(lead, out.ndim)))
    return patternbroadcast(out, x.broadcastable)


_matmul = MatMul()


def matmul(a, b):
    return _matmul(a, b)


class TensorDot(Op):
    """``numpy.tensordot`` over the given pairs of axes."""

    __props__ = ("axes_a", "axes_b")

    def __init__(self, axes_a, axes_b):
        self.axes_a, self.axes_b = tuple(axes_a), tuple(axes_b)

    def make_node(self, a, b) -> Apply:
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        if len(self.axes_a) != len(self.axes_b):
            raise graph_error("tensordot: the two axis lists must have the same length",
                              ValueError)
        for da, db in zip(self.axes_a, self.axes_b):
            if not (0 <= da < a.ndim and 0 <= db < b.ndim):
                raise graph_error(f"tensordot: axes ({da}, {db}) out of range for {a.type} and "
                                  f"{b.type}", ValueError)
            _check_inner("tensordot", a, b, da, db)
        shape = tuple(s for d, s in enumerate(a.type.shape) if d not in self.axes_a) + tuple(
            s for d, s in enumerate(b.type.shape) if d not in self.axes_b)
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape=shape)()])

    def impl(self, node):
        axes = (list(self.axes_a), list(self.axes_b))
        dtype = np.dtype(node.outputs[0].dtype)
        return _run_checked("tensordot", lambda a, b: np.asarray(np.tensordot(a, b, axes),
                                                                 dtype=dtype))

    def infer_shape(self, fgraph, node, shapes):
        sa, sb = shapes
        return [tuple(s for d, s in enumerate(sa) if d not in self.axes_a) + tuple(
            s for d, s in enumerate(sb) if d not in self.axes_b)]

    def grad(self, inputs, grads):
        a, b = inputs
        g = grads[0]
        free_a = [d for d in range(a.ndim) if d not in self.axes_a]
        free_b = [d for d in range(b.ndim) if d not in self.axes_b]
        na = len(free_a)
        # ga[free_a, axes_a] = sum over free_b of g[free_a, free_b] * b[axes_b, free_b]
        # tensordot keeps the uncontracted axes of each operand in their original (sorted)
        # order, so map them back through the pairing axes_a[i] <-> axes_b[i].
        ga = tensordot(g, b, axes=[list(range(na, g.ndim)), free_b])
        ga = ga.dimshuffle(_inverse(free_a + [self.axes_a[self.axes_b.index(d)]
                                              for d in sorted(self.axes_b)]))
        gb = tensordot(a, g, axes=[free_a, list(range(na))])
        gb = gb.dimshuffle(_inverse([self.axes_b[self.axes_a.index(d)]
                                     for d in sorted(self.axes_a)] + free_b))
        return [ga, gb]


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def tensordot(a, b, axes=2):
    """Sum products over the last ``axes`` axes of ``a`` and first of ``b``, or over the given
    pairs of axes ``[[a_axes], [b_axes]]``."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if isinstance(axes, (int, np.integer)):
        axes_a = list(range(a.ndim - axes, a.ndim))
        axes_b = list(range(axes))
    else:
        axes_a, axes_b = axes
        axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
    for axes_, t in ((axes_a, a), (axes_b, b)):
        if len(axes_) > t.ndim or any(not -t.ndim <= int(x) < t.ndim for x in axes_):
            raise graph_error(f"tensordot: axes {axes_a} and {axes_b} are out of range for "
                              f"{a.type} and {b.type}", ValueError)
    axes_a = [int(x) % a.ndim for x in axes_a]
    axes_b = [int(x) % b.ndim for x in axes_b]
    if len(set(axes_a)) != len(axes_a) or len(set(axes_b)) != len(axes_b):
        raise graph_error(f"tensordot: an axis is repeated in {axes_a} or {axes_b}", ValueError)
    return TensorDot(axes_a, axes_b)(a, b)


def batched_dot(a, b):
    """For each i, ``dot(a[i], b[i])`` (Theano's batched_dot), via matmul.

    As in Theano, a vector (one number per batch entry) multiplies elementwise, and for
    higher ranks the last axis of ``a`` meets axis ``max(1, b.ndim - 2)`` of ``b``."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise graph_error(f"batched_dot needs tensors with a batch dimension, got {a.type} and "
                          f"{b.type}")
    if a.ndim == 1 or b.ndim == 1:
        _check_inner("batched_dot", a, b, 0, 0)
        if a.ndim == 1:
            return a.dimshuffle([0] + ["x"] * (b.ndim - 1)) * b
        return a * b.dimshuffle([0] + ["x"] * (a.ndim - 1))
    _check_inner("batched_dot", a, b, 0, 0)
    if a.ndim > 3 or b.ndim > 3:
        return _batched_dot_nd(a, b)
    a3 = a.dimshuffle(0, "x", 1) if a.ndim == 2 else a
    b3 = b.dimshuffle(0, 1, "x") if b.ndim == 2 else b
    out = matmul(a3, b3)
    if a.ndim == 2:
        out = out.dimshuffle([0] + list(range(2, out.ndim)))
    if b.ndim == 2:
        out = out.dimshuffle(list(range(out.ndim - 1)))
    return out


def _broadcast_length(a: int | None, b: int | None) -> int | None:
    """The static length of a broadcast dimension: a length 1 takes the other's."""
    if a == 1:
        return b
    if b == 1 or b is None:
        return a
    return b


def _scalar(v, name: str):
    v = as_tensor_variable(v)
    if v.ndim != 0:
        raise graph_error(f"{name}: the scale factors must be scalars, got {v.type}", ValueError)
    return v


class Gemm(Op):
    """``b * z + a * dot(x, y)`` with ``a`` and ``b`` scalars (Theano's gemm); ``z`` broadcasts
    into the product's shape as an addend does (a bias row), and the dot has numpy.dot's
    semantics for any ranks.

    The specialize phase makes it from a dot followed by a scaled add (``W - lr * dot(x, y)``).
    Its thunk takes ``out=``: the numpy backend hands it the buffer to write into, ``z``'s own
    when nothing reads ``z`` afterwards (a weight update), and BLAS then accumulates the product
    into ``z`` (numpy's own BLAS gemm with beta, ``cblas.py``) instead of making the product
    and adding it."""

    def make_node(self, z, a, x, y, b) -> Apply:
        return self._node([z, _scalar(a, "Gemm"), None, None, _scalar(b, "Gemm")], x, y)

    def _node(self, parts: list, x, y) -> Apply:
        """The node for ``parts = [z, a, _, _, b]`` (a or b None for 1) and the product of x, y."""
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        name = type(self).__name__
        if x.ndim == 0 or y.ndim == 0:
            raise graph_error(f"{name}: dot of {x.type} and {y.type}: use * for scalars")
        d = _dot.make_node(x, y).outputs[0]
        z = as_tensor_variable(parts[0])
        if z.ndim > d.ndim:
            raise graph_error(f"{name}: the addend {z.type} has more dimensions than the "
                              f"product {d.type}")
        if z.ndim < d.ndim:
            z = z.dimshuffle(["x"] * (d.ndim - z.ndim) + list(range(z.ndim)))
        scales = [s for s in (parts[1], parts[4]) if s is not None]
        dtype = upcast(d.dtype, z.dtype, *[s.dtype for s in scales])
        shape = tuple(_broadcast_length(p, q) for p, q in zip(d.type.shape, z.type.shape))
        parts = [z, parts[1], x, y, parts[4]]
        return Apply(self, self._inputs(parts), [TensorType(dtype, shape=shape)()])

    # -- where the parts are among the inputs (DotAdd lists them otherwise) -------------------
    @staticmethod
    def _inputs(parts: list) -> list:
        return parts

    @staticmethod
    def parts(inputs) -> tuple:
        """``(z, a, x, y, b)`` from a node's inputs (or their values); None for a scale of 1."""
        return tuple(inputs)

    def impl(self, node):
        """A thunk ``run(*inputs, out=None)``: with ``out`` (an array of the output's dtype and
        shape, which may be ``z`` itself), the result is written there."""
        dtype = np.dtype(node.outputs[0].dtype)
        z, a, x, y, b = self.parts(node.inputs)
        # Declared broadcasting is enforced as Elemwise's add enforces it: a dimension that is
        # not broadcastable may not stretch at run time, on either side.
        at = self._inputs(list(range(5)))  # where z (0) and x (2) are among the inputs
        fixed = [(at.index(2), [d for d, bc in enumerate(_dot_broadcastable(x, y)) if not bc]),
                 (at.index(0), [d for d, bc in enumerate(z.type.broadcastable) if not bc])]
        name = type(self).__name__
        parts = self.parts
        recent = Recent()
        large = MIN_BYTES // dtype.itemsize  # elements of a result kept for the next call

        def run(*args, out=None, product=None):
            z, a, x, y, b = parts(args)
            if out is None and product is None and x.ndim == 2 and y.ndim == 2 and \
                    x.shape[0] * y.shape[1] >= large:
                out = recent.array((x.shape[0], y.shape[1]), dtype)
            try:
                return _gemm(z, a, x, y, b, out, dtype, fixed, name, node, product)
            except ValueError as err:
                if "not broadcastable" in str(err):
                    raise
                raise ValueError(f"dot + add: shapes {x.shape}, {y.shape} and {z.shape} do "
                                 f"not fit ({err})") from None
        run.takes_out = True
        return run

    def infer_shape(self, fgraph, node, shapes):
        z, _, x, y, _ = self.parts(node.inputs)
        sz, _, sx, sy, _ = self.parts(shapes)
        (product,) = Dot().infer_shape(fgraph, node, [sx, sy])
        pattern = _dot_broadcastable(x, y)
        # like Elemwise: each length from a side that does not broadcast in that dimension
        return [tuple(p if not pb or zb else zs for p, zs, pb, zb in
                      zip(product, sz, pattern, z.type.broadcastable))]

    def grad(self, inputs, grads):
        from .reduce import sum as sum_
        z, a, x, y, b = self.parts(inputs)
        g = grads[0]
        ga_g = g if a is None else g * a
        gx, gy = Dot().grad([x, y], [ga_g])
        gz = g if b is None else g * b
        out = [gz, None, gx, gy, None]
        if a is not None:
            out[1] = sum_(g * dot(x, y)).astype(a.dtype)
        if b is not None:
            out[4] = sum_(g * z).astype(b.dtype)
        return self._inputs(out)


def _dot_broadcastable(x, y) -> tuple:
    return _dot.make_node(x, y).outputs[0].type.broadcastable


def _gemm(z, a, x, y, b, out, dtype, fixed, name, node, product=None):
    """``b * z + a * dot(x, y)`` in ``dtype``, into ``out`` when it is given (``a``/``b`` None
    for 1). ``out`` may be ``z`` itself: the product is then accumulated into it.
    ``product``: ``dot(x, y)`` where the caller has it already (DotAdd's straight path, which
    takes a small product of the addend's shape before this)."""
    p = product
    pshape = x.shape[:-1] + (y.shape[:-2] + y.shape[-1:] if y.ndim > 1 else ())
    shape = z.shape if z.shape == pshape else broadcast_lengths([z.shape, pshape])
    for k, (i, dims) in enumerate(fixed):
        given = pshape if k == 0 else z.shape
        if given != shape:
            _check_runtime_broadcast(name, node, i, given, shape, dims)
    alpha = 1 if a is None else a.item()
    beta = 1 if b is None else b.item()
    if out is not None and (out.shape != shape or out.dtype != dtype or
                            not out.flags.writeable):
        out = None  # not a buffer this result fits in: make a new one
    if p is None and out is z and cblas.gemm_into(z, alpha, x, y, beta):
        return z
    if p is None and out is not None and out is not z and pshape == shape and x.ndim <= 2 and \
            y.ndim <= 2 and x.dtype == y.dtype == dtype and not np.may_share_memory(out, z):
        p = np.matmul(x, y, out=out)  # the product straight into the buffer
    else:
        if p is None:
            p = np.dot(x, y)
        if p.dtype != dtype or not isinstance(p, np.ndarray):
            p = np.asarray(p, dtype=dtype)
    if alpha != 1:
        np.multiply(p, np.asarray(a, dtype=dtype), out=p)
    if out is z:  # accumulate: z = b * z + p
        if beta != 1:
            np.multiply(z, np.asarray(b, dtype=dtype), out=z)
        np.add(z, p, out=z)
        return z
    target = out if out is not None else p if p.shape == shape and p.ndim else None
    bz = z if beta == 1 else np.multiply(z, np.asarray(b, dtype=dtype))
    return np.add(p, bz, out=target) if target is not None else np.asarray(p + bz, dtype=dtype)


class DotAdd(Gemm):
    """``dot(a, b) + c``: a gemm whose scales are 1, with the inputs ``(a, b, c)`` (the
    specialize phase makes it from dot-plus-bias). Its thunk adds ``c`` into the fresh product,
    or, given ``out=c`` (``c`` read by nothing after it), the product into ``c``."""

    def make_node(self, a, b, c) -> Apply:
        return self._node([c, None, None, None, None], a, b)

    def impl(self, node):
        """Gemm's thunk, behind a straight path for what a loop body calls every step: a
        product too small to keep a buffer for, of the addend's shape (no broadcasting to
        check), into which the addend is added; a loop of small steps spent a third of its
        product's time getting through the general path."""
        general = super().impl(node)
        dtype = np.dtype(node.outputs[0].dtype)
        large = MIN_BYTES // dtype.itemsize
        dot_, add, ndarray = np.dot, np.add, np.ndarray

        def run(x, y, z, out=None):
            if out is None and (x.ndim != 2 or y.ndim != 2 or x.shape[0] * y.shape[1] < large):
                try:
                    p = dot_(x, y)
                except (ValueError, TypeError, AttributeError):
                    return general(x, y, z)  # which says what does not fit
                if p.__class__ is ndarray and p.dtype == dtype and p.shape == z.shape:
                    return add(p, z, out=p)
                return general(x, y, z, product=p)  # a broadcast addend, another dtype
            return general(x, y, z, out=out)
        run.takes_out = True
        return run

    @staticmethod
    def _inputs(parts: list) -> list:
        return [parts[2], parts[3], parts[0]]

    @staticmethod
    def parts(inputs) -> tuple:
        x, y, z = inputs
        return z, None, x, y, None


def _batched_dot_nd(a, b):
    """batched_dot for ranks above 3: flatten to (batch, rows, k) @ (batch, k, cols)."""
    from .join import stack
    from .shape import reshape, shape, shape_product
    db = max(1, b.ndim - 2)
    _check_inner("batched_dot", a, b, a.ndim - 1, db)
    sa, sb = shape(a), shape(b)
    a_mid = [sa[d] for d in range(1, a.ndim - 1)]
    b_rest = [d for d in range(1, b.ndim) if d != db]
    k = sa[a.ndim - 1]
    a3 = reshape(a, stack([sa[0], shape_product(a_mid), k]), ndim=3)
    bt = b.dimshuffle([0, db] + b_rest)
    b3 = reshape(bt, stack([sb[0], k, shape_product([sb[d] for d in b_rest])]), ndim=3)
    out = matmul(a3, b3)
    full = [sa[0]] + a_mid + [sb[d] for d in b_rest]
    return reshape(out, stack(full), ndim=len(full))
