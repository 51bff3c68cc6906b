"""Pickling graphs without recursion: a variable is stored as the flat list of the nodes it
depends on, in topological order, and rebuilt from it on load.

Pickle's default walk follows ``var.owner.inputs[0].owner...`` one nested call per link, so a
chain of a few hundred ops exceeded the recursion limit. Here ``Variable.__reduce_ex__`` of a
variable computed by a node returns a record of the nodes it needs (op, inputs, outputs) that
holds no computed variable as an object, only integer tokens; root variables (inputs,
constants, shared variables) and ops are pickled as usual, so pickle's memo keeps each one a
single object.

Sharing across several pickled variables (``pickle.dumps([a, b])`` with ``b = a * 2``, or a
function's inputs, outputs and givens) is kept with a session object. Every record refers to
the module's one ``_SESSION``; pickle stores it once per dump, and its ``__reduce_ex__`` runs
exactly then, before any record of that dump is written (records are written lazily, after
the session, by ``_Nodes.__reduce_ex__``). That call resets the per-thread table of variables
already written in this dump, so a later record lists only the nodes not written yet and refers
to the others by token. On load the records of one dump share one fresh session, which maps
tokens to the rebuilt variables: ``b``'s input is the ``a`` that was loaded. ``copy.deepcopy``
goes through the same path, with its memo in place of pickle's.

A limit: a second dump started in the same thread while a first is being written (from an
op's own ``__reduce__``) resets the table of the first.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

from .graph import Apply, Variable

_tokens = itertools.count()  # never reset: tokens from one dump cannot meet another's
_local = threading.local()


def _written() -> weakref.WeakKeyDictionary[Variable, int]:
    """The variables written by the current dump of this thread, with their tokens. Weak: the
    table outlives the dump until the next one starts, and must not keep its graph alive."""
    table = getattr(_local, "written", None)
    if table is None:
        table = _local.written = weakref.WeakKeyDictionary()
    return table


class _Session:
    """At dump time, the mark of a new dump; once loaded, the token -> variable table that
    the records of that dump share."""

    def __init__(self) -> None:
        self.vars: dict[int, Variable] = {}
        # (root variable, attribute, token): a root's attribute naming a variable whose node
        # is rebuilt later in this load (a shared variable's default_update, computed from it)
        self.pending: list[tuple[Variable, str, int]] = []

    def __reduce_ex__(self, protocol: int):
        _local.written = weakref.WeakKeyDictionary()  # the pickler meets this once per dump
        return (_Session, ())


_SESSION = _Session()


class _Nodes:
    """Stands for ``var`` in the arguments of its reduction; written as the nodes ``var`` needs
    that this dump has not written yet (computed only when written, after the session)."""

    __slots__ = ("var",)

    def __init__(self, var: Variable) -> None:
        self.var = var

    def __reduce_ex__(self, protocol: int):
        written = _written()
        records = []
        for node in _unwritten_nodes(self.var, written):
            ins = [written[i] if i.owner is not None else i for i in node.inputs]
            outs = []
            for out in node.outputs:
                token = written[out] = next(_tokens)
                outs.append((token, type(out), variable_state(out)))
            records.append((node.op, ins, outs, node.tag))
        return (_load, (_SESSION, records, written[self.var]))


def _unwritten_nodes(var: Variable, written) -> list[Apply]:
    """The nodes ``var`` depends on whose outputs are not in ``written``, inputs first
    (an explicit stack: the graph may be 100,000 nodes deep)."""
    order: list[Apply] = []
    seen = set()
    stack: list[tuple[Apply, bool]] = [(var.owner, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
            continue
        if node in seen or node.outputs[0] in written:
            continue
        seen.add(node)
        stack.append((node, True))
        for inp in reversed(node.inputs):
            owner = inp.owner
            if owner is not None and owner not in seen and owner.outputs[0] not in written:
                stack.append((owner, False))
    return order


def variable_state(var: Variable) -> dict[str, Any]:
    """What is stored of a variable: its attributes, less the node links (rebuilt from the
    records) and the functions ``eval`` compiled (a cache, made again on demand)."""
    state = dict(var.__dict__)
    state.pop("_eval_cache", None)
    if var.owner is not None:
        state.pop("owner", None)
        state.pop("index", None)
    return state


def reduce_variable(var: Variable, protocol: int):
    """``Variable.__reduce_ex__``: a root as its attributes; a computed variable through the
    session and the flat records of its graph."""
    if var.owner is None:
        return (_new_variable, (type(var),), variable_state(var))
    return (_second, (_SESSION, _Nodes(var)))


def reduce_apply(node: Apply, protocol: int):
    """``Apply.__reduce_ex__``: a node is stored as (the owner of) its first output, so it is
    the very node that output's records rebuild."""
    if not node.outputs:
        return (Apply, (node.op, node.inputs, []))
    return (_owner_of, (node.outputs[0],))


# -- load side -------------------------------------------------------------------------------

def _new_variable(cls: type) -> Variable:
    return cls.__new__(cls)


class _Pending:
    """Loaded in place of a variable whose node a record being loaded rebuilds only later: a
    root's state can name a variable computed from the root itself (``y.default_update = y +
    1``), a cycle that pickle meets before the records that build ``y + 1``."""

    __slots__ = ("session", "token")

    def __init__(self, session: _Session, token: int) -> None:
        self.session, self.token = session, token


def set_root_state(var: Variable, state: dict) -> None:
    """``Variable.__setstate__``: set a loaded root's attributes; one naming a variable not
    rebuilt yet is set when it is (at the end of the ``_load`` that builds it)."""
    for key, value in state.items():
        if isinstance(value, _Pending):
            known = value.session.vars.get(value.token)
            if known is None:
                value.session.pending.append((var, key, value.token))
                value = None
            else:
                value = known
        var.__dict__[key] = value


def _second(session: _Session, var: Variable) -> Variable:
    return var  # the session argument only had to be written (and the table reset) first


def _owner_of(var: Variable) -> Apply:
    return var.owner


def _load(session: _Session, records: list, token: int) -> Variable:
    """Rebuild the nodes of ``records`` (skipping those this load has already rebuilt) and
    return the variable of ``token``."""
    known = session.vars
    for op, ins, outs, tag in records:
        if outs[0][0] in known:
            continue
        inputs = [known[i] if isinstance(i, int) else i for i in ins]
        outputs = []
        for tok, cls, state in outs:
            var = cls.__new__(cls)
            var.__dict__.update(state)
            var.owner = var.index = None
            outputs.append(var)
            known[tok] = var
        node = Apply(op, inputs, outputs)
        node.tag = tag
    if session.pending:
        waiting = []
        for var, key, tok in session.pending:
            if tok in known:
                setattr(var, key, known[tok])
            else:
                waiting.append((var, key, tok))
        session.pending = waiting
    got = known.get(token)
    # (a variable an enclosing record builds, named from a root's state: see _Pending)
    return _Pending(session, token) if got is None else got
