"""``function()``: compile symbolic outputs (and updates) into a callable.

The life of a call to ``function(inputs, outputs, updates, givens)``:

1. check and normalise the arguments (In objects, update pairs, givens);
2. substitute ``givens`` into the outputs and update expressions;
3. find the shared variables the graph reads (implicit inputs) and refuse anything else that
   is neither an input nor computable from one (naming the variable and where it was made);
4. clone the graph into a FunctionGraph and run the mode's rewrite passes on it;
5. hand it to the backend, which generates one Python function for the whole schedule.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backends
from ..backends.numpy_backend import Plan
from ..config import config
from ..ops.base import as_tensor_variable
from ..symbolic.graph import Constant, Variable, ancestors, clone_replace, gc_paused, set_eval_hook
from ..symbolic.shared import SharedVariable
from ..symbolic.trace import describe, format_trace, user_trace
from ..symbolic.types import TensorType
from .fgraph import FunctionGraph
from .io import In, Out
from .mode import get_mode
from .profiling import ProfileStats, combine
from .rewrite import run_passes


class UnusedInputError(ValueError):
    """An input of function() is not needed to compute its outputs."""


class MissingInputError(ValueError):
    """The outputs depend on a variable that is neither an input nor shared nor constant."""


@gc_paused
def function(inputs: Sequence, outputs=None, mode=None, updates=None, givens=None,
             no_default_updates=False, accept_inplace: bool = False,
             name: str | None = None, rebuild_strict: bool = True,
             allow_input_downcast: bool | None = None, profile=None,
             on_unused_input: str | None = None, trust_input: bool = False) -> Function:
    """Compile a function computing ``outputs`` from ``inputs``.

    ``updates`` (pairs or an ordered dict ``shared -> new value``) are applied after each call,
    all computed from the values before it. ``givens`` substitutes variables before compiling
    (``{x: data[i * bs:(i + 1) * bs]}``). ``profile`` (True, a name, or a ``ProfileStats`` to
    add to; None: ``config.profile``) times each node and the compile phases: ``f.profile``.
    """
    clock = time.perf_counter
    started = clock()
    where = user_trace()
    if name is None and where:
        name = f"{where[0].rsplit('/', 1)[-1]}:{where[1]}"
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"function(): inputs must be a list of variables, got "
                        f"{type(inputs).__name__} (at {format_trace(where)})")
    ins = [_as_in(i, k, where) for k, i in enumerate(inputs)]
    in_vars = [i.variable for i in ins]
    in_set = set(in_vars)
    if len(in_set) != len(in_vars):
        v = next(v for k, v in enumerate(in_vars) if v in in_vars[:k])
        raise ValueError(f"function(): the input {describe(v)} is listed twice")

    output_keys, requested = None, outputs
    if isinstance(outputs, dict):  # Theano's dict of outputs: the call returns a dict
        output_keys, outputs = list(outputs), list(outputs.values())
    single = outputs is not None and not isinstance(outputs, (list, tuple))
    out_list = [] if outputs is None else ([outputs] if single else list(outputs))
    borrow_out = [isinstance(o, Out) and o.borrow for o in out_list]
    out_vars = [_as_output(o.variable if isinstance(o, Out) else o, k, where)
                for k, o in enumerate(out_list)]

    pairs = _update_pairs(updates, where)
    # what it takes to compile this function again: pickling stores it (as Theano did, the
    # unpickled function is compiled anew, with its own copies of the shared variables)
    spec = dict(inputs=list(inputs), outputs=requested, mode=mode, updates=list(pairs),
                givens=givens, no_default_updates=no_default_updates, name=name,
                allow_input_downcast=allow_input_downcast, on_unused_input=on_unused_input)
    # Defaults live in containers (a one-item list each), which In(update=...) rewrites after
    # every call, as Theano's mutable default values were.
    defaults = [[i.value] if i.has_default else None for i in ins]
    in_updates = [(defaults[k], _check_in_update(i, k, where)) for k, i in enumerate(ins)
                  if i.update is not None]
    replace = _givens_map(givens, where) if givens else {}
    out_vars, pair_values, in_values = _replaced(
        replace, out_vars, [u for _, u in pairs], [u for _, u in in_updates])
    pairs = list(zip([var for var, _ in pairs], pair_values))
    # Default updates of the shared variables the graph still reads once givens are applied
    # (a replaced shared variable is not read, so it is not updated), as Theano collects them.
    defaults_found, walked = _default_updates(out_vars + pair_values + in_values, pairs,
                                              replace, _skipped_defaults(no_default_updates,
                                                                         where))
    pairs += defaults_found
    upd_vars = [u for _, u in pairs] + in_values
    update_containers = [s.container for s, _ in pairs] + [c for c, _ in in_updates]

    all_outputs = out_vars + upd_vars
    # the walk looking for default updates went over exactly these variables when it found
    # none and no input has an owner (a stop only matters at an input with an owner)
    needed = walked if walked and not defaults_found and all(
        v.owner is None for v in in_vars) else ancestors(all_outputs, stop=in_vars)
    needed_set = set(needed)
    _check_unused(ins, needed_set, on_unused_input, where)
    shared_inputs = []
    for v in needed:
        if v in in_set or v.owner is not None or isinstance(v, Constant):
            continue
        if isinstance(v, SharedVariable):
            shared_inputs.append(v)
            continue
        raise MissingInputError(
            f"function() at {format_trace(where)} cannot compute its outputs: they depend on "
            f"{describe(v)}, which is not among the inputs ({', '.join(map(repr, in_vars))}) "
            "and has no value. Add it to the inputs, or give it a value with givens=.")

    the_mode = get_mode(mode)
    stats = _profile_stats(profile, name)
    if stats is not None:
        stats.add_phase("checks and givens", clock() - started)
        mark = clock()
    # a mode whose rewriting starts with merging has the copy merged as it is made
    fgraph = FunctionGraph(in_vars + shared_inputs, all_outputs,
                           merge=list(the_mode.passes[:1]) == ["merge"])
    if stats is None:
        run_passes(fgraph, list(the_mode.passes), exclude=the_mode._excluded)
    else:
        stats.add_phase("graph copy", clock() - mark)
        phases: dict[str, float] = {}
        run_passes(fgraph, list(the_mode.passes), exclude=the_mode._excluded, timings=phases)
        for phase, seconds in phases.items():
            stats.add_phase(f"rewrite: {phase}", seconds)
        mark = clock()

    n_out = len(out_vars)
    copies, update_copies = _output_copies(fgraph, n_out, borrow_out, len(in_vars),
                                           update_containers)
    checks = [_input_check(i, allow_input_downcast) for i in ins]
    for k, box in enumerate(defaults):  # a bad default fails here, not at the first call
        if box is not None and box[0] is not None:
            box[0] = checks[k](box[0])
    signature = Signature(ins, defaults, name)
    inner = _compile_inner_graphs(fgraph, the_mode)
    if stats is not None:
        stats.add_phase("inner graphs", clock() - mark)
        mark = clock()
    plan = Plan(len(in_vars), checks, [v.container for v in shared_inputs], n_out,
                update_containers, copies, single, name=name or "f",
                copy_updates=update_copies, output_keys=output_keys,
                inner=inner,
                python_scalars=[not i.strict and _allow(i, allow_input_downcast) is not False
                                for i in ins],
                bind=signature.bind,
                # writing an update into the shared value's own storage is an optimization:
                # a mode that rewrites nothing (the checking mode's reference) keeps the old
                # arrays intact; the checking mode compares the in-place path against it
                inplace_updates=bool(the_mode.passes), borrow_outputs=borrow_out,
                # profiling and the NaN guard (none: the plain generated function)
                probe=combine(stats, getattr(the_mode, "probe", None)))
    fn = backends.get(_linker(the_mode)).build(fgraph, plan)
    fgraph.release_bookkeeping()
    if stats is not None:
        stats.add_phase("code generation", clock() - mark)
        fn = stats.wrap_function(fn)
    compiled = _function_class(fn)(fn, ins, fgraph, n_out, single, name, the_mode, pairs,
                                   all_outputs, signature)
    compiled.profile = stats
    compiled.trust_input = trust_input
    compiled._spec = spec
    if getattr(the_mode, "check", False):
        from .debug import CheckedFunction
        from .mode import Mode
        reference = function(**dict(spec, mode=Mode(optimizer=None), on_unused_input="ignore",
                                    profile=False))
        checked = CheckedFunction(compiled, reference, fgraph, in_vars)
        checked._spec = spec
        checked.profile = stats  # the rewritten function's (the reference is not timed)
        return checked
    return compiled


def _profile_stats(profile, name: str | None) -> ProfileStats | None:
    """The ProfileStats a function records into: ``profile`` itself, a new one for True or a
    name, none for False; None follows ``config.profile`` (whose summaries print at exit)."""
    if profile is None:
        return ProfileStats(name or "", atexit_print=True) if config.profile else None
    if isinstance(profile, ProfileStats):
        return profile
    if isinstance(profile, str):
        return ProfileStats(profile)
    return ProfileStats(name or "") if profile else None


def _linker(mode) -> str:
    """The mode's linker; with a CUDA device configured, the device backend unless the mode
    names another."""
    if mode.linker:
        return mode.linker
    return "cuda" if config.device != "cpu" else config.linker


def _compile_inner_graphs(fgraph: FunctionGraph, mode) -> dict[Any, list]:
    """For each node whose op holds inner graphs (a mapped row, a loop body), the graphs
    compiled once, with the outer mode and so the outer backend."""
    inner = {}
    for node in fgraph.toposort():
        graphs = node.op.inner_graphs(node)
        if graphs:
            # (an inner function is timed as its node of the outer one, not on its own)
            compiled = [function(list(ins), outs, mode=mode, on_unused_input="ignore",
                                 profile=False)
                        for ins, outs in graphs]
            # the checking mode returns a CheckedFunction (compares each call): call it whole
            inner[node] = [getattr(f, "fn", f) for f in compiled]
    return inner


set_eval_hook(function)  # Variable.eval compiles through function()


def _rebuild_function(spec: dict):
    """Unpickling a compiled function: compile it again from what built it."""
    return function(**spec)


class Function:
    """A compiled function: call it with values for its inputs (positionally or by name).

    Each compiled function gets a class of its own whose ``__call__`` is the generated function
    itself, so a call costs no Python frame besides the generated one; calls by keyword or with
    defaults take the generated function's slow path (``Signature.bind``)."""

    #: Theano's ``f.profile``: the ProfileStats of a function compiled with ``profile``
    profile: ProfileStats | None = None

    def __init__(self, fn, ins: list[In], fgraph: FunctionGraph, n_outputs: int,
                 single: bool, name: str | None, mode, updates,
                 original_outputs: Sequence[Variable] = (), signature=None):
        self.fn = fn
        self.ins = ins
        self.n = len(ins)
        self._sig = signature
        self.maker = _Maker(fgraph, ins, mode, original_outputs)
        self.n_outputs = n_outputs
        self.single = single
        self.name = name
        self.updates = updates

    @property
    def trust_input(self) -> bool:
        """Theano's ``f.trust_input``: when True, arguments are used as given, unchecked (the
        caller promises arrays of the right dtype, rank and static shape)."""
        return self._trusted

    @trust_input.setter
    def trust_input(self, value: bool) -> None:
        self._trusted = bool(value)
        self.fn.set_trusted(self._trusted)

    def _signature(self) -> str:
        return self._sig.describe()

    def __reduce__(self):
        return (_rebuild_function, (self._spec,))

    def copy(self, share_memory: bool = False, swap: dict | None = None,
             delete_updates: bool = False, name: str | None = None) -> Function:
        """Theano's ``f.copy``: the same function compiled again, reading and updating the
        shared variables in ``swap`` (old -> new) instead, or without its updates."""
        spec = dict(self._spec, name=name or self.name)
        if delete_updates:  # inputs that only fed the updates stay, unused, as in Theano
            spec.update(updates=[], no_default_updates=True, on_unused_input="ignore")
        if swap:
            for old, new in swap.items():
                if not isinstance(old, SharedVariable) or not isinstance(new, SharedVariable):
                    raise TypeError(f"copy(swap=...) maps shared variables to shared variables; "
                                    f"got {old!r} -> {new!r}")
            givens = spec["givens"] or []
            givens = list(givens.items()) if isinstance(givens, dict) else list(givens)
            spec["givens"] = givens + list(swap.items())
            spec["updates"] = [(swap.get(var, var), value) for var, value in spec["updates"]]
        return function(**spec)

    @property
    def source(self) -> str:
        """The generated Python source of this function (for debugging)."""
        return self.fn.source

    def __repr__(self) -> str:
        return f"<theon.Function {self.name or ''} ({self._signature()})>"


class Signature:
    """How the arguments of a call map to the inputs: positions, names, stored defaults."""

    def __init__(self, ins: list[In], defaults: Sequence, name: str | None):
        self.ins, self.name = ins, name or ""
        self.defaults = list(defaults)  # containers: In(update=) rewrites them per call
        self.names: dict[str, int | None] = {}
        for k, i in enumerate(ins):
            if i.name:  # a name two inputs share binds neither (None): f(x=...) is ambiguous
                self.names[i.name] = None if i.name in self.names else k

    def describe(self) -> str:
        return ", ".join(i.name or f"<{i.variable.type}>" for i in self.ins)

    def bind(self, args: tuple, kwargs: dict) -> list:
        """The value of every input, from a call's positional and keyword arguments and the
        defaults; a TypeError naming the input for what does not fit."""
        n = len(self.ins)
        if len(args) > n:
            raise TypeError(f"function {self.name} takes {n} argument(s) "
                            f"({self.describe()}), got {len(args)}")
        values: list[Any] = list(args) + [_MISSING] * (n - len(args))
        for key, value in kwargs.items():
            if key not in self.names:
                raise TypeError(f"function {self.name} has no input named {key!r}; its "
                                f"inputs are ({self.describe()})")
            k = self.names[key]
            if k is None:
                raise TypeError(f"function {self.name}: more than one input is named "
                                f"{key!r}; pass them by position")
            if values[k] is not _MISSING:
                raise TypeError(f"input {key!r} was given twice (by position and by name)")
            values[k] = value
        for k, value in enumerate(values):
            if value is _MISSING:
                if not self.ins[k].has_default:
                    raise TypeError(f"function {self.name} is missing a value for input "
                                    f"{k} ({describe(self.ins[k].variable)}); it takes "
                                    f"({self.describe()})")
                values[k] = self.defaults[k][0]
        return values


def _function_class(fn) -> type:
    """A subclass of Function whose instances are called straight through ``fn``."""
    return type("Function", (Function,), {"__call__": staticmethod(fn),
                                          "__module__": Function.__module__})


class _Maker:
    """Theano's ``f.maker``: the compiled graph and the inputs, for inspection."""

    def __init__(self, fgraph: FunctionGraph, ins: list[In], mode,
                 original_outputs: Sequence[Variable] = ()):
        self.fgraph = fgraph
        self.inputs = ins
        self.mode = mode
        # What the user asked for (outputs then update values, givens applied), before any
        # rewrite: debugprint(f, rewritten=False) shows it next to the compiled graph.
        self.original_outputs = list(original_outputs)


_MISSING = object()


def _as_in(i, k: int, where) -> In:
    if isinstance(i, In):
        inp = i
    elif isinstance(i, Variable):
        inp = In(i)
    else:
        raise TypeError(f"function(): input {k} must be a symbolic variable, got "
                        f"{type(i).__name__} {i!r} (at {format_trace(where)})")
    v = inp.variable
    if isinstance(v, SharedVariable):
        raise TypeError(f"function(): input {k}, the shared variable {describe(v)}, cannot be "
                        "an explicit input: its value is stored with it. To feed other values "
                        "in its place, use givens={shared: new_variable}.")
    if isinstance(v, Constant):
        raise TypeError(f"function(): input {k} is a constant ({v!r}), which cannot be an input")
    return inp


def _as_output(o, k: int, where) -> Variable:
    if isinstance(o, (list, tuple)):  # as_tensor_variable would stack it into a new tensor
        raise TypeError(f"function(): output {k} is a {type(o).__name__}; outputs must be "
                        f"symbolic variables, given one by one in a flat list "
                        f"(at {format_trace(where)})")
    try:
        return as_tensor_variable(o)
    except TypeError:
        raise TypeError(f"function(): output {k} must be a symbolic variable, got "
                        f"{type(o).__name__} {o!r} (at {format_trace(where)})") from None


def _check_in_update(inp: In, k: int, where) -> Variable:
    """The update expression of ``In(x, value=..., update=...)``, of x's type."""
    v = inp.variable
    if not inp.has_default:
        raise TypeError(f"function(): input {k}, {describe(v)}, has an update but no value; "
                        f"In(x, value=..., update=...) updates the stored default value")
    try:
        upd = as_tensor_variable(inp.update)
    except TypeError:
        raise TypeError(f"function(): the update of input {k}, {describe(v)}, must be a "
                        f"symbolic expression, got {inp.update!r}") from None
    if upd.dtype != v.dtype or upd.ndim != v.ndim:
        raise TypeError(f"function(): the update of input {k}, {describe(v)}, is {upd.type}; "
                        f"it must have the input's type {v.type} (at {format_trace(where)})")
    return upd


def _update_pairs(updates, where) -> list[tuple]:
    if updates is None:
        return []
    if isinstance(updates, dict):  # dicts keep insertion order, so this is deterministic
        items = list(updates.items())
    else:
        try:
            items = [tuple(p) for p in updates]
        except TypeError:
            raise TypeError(f"updates must be a list of (shared, new_value) pairs or a dict, "
                            f"got {type(updates).__name__}") from None
    pairs, seen = [], set()
    for item in items:
        if len(item) != 2:
            raise TypeError(f"each update must be a (shared_variable, new_value) pair; got "
                            f"{item!r}")
        var, value = item
        if not isinstance(var, SharedVariable):
            raise TypeError(f"updates: {var!r} is not a shared variable; only shared "
                            f"variables can be updated (at {format_trace(where)})")
        if id(var.container) in seen:
            raise ValueError(f"updates: the shared variable {describe(var)} is updated twice")
        seen.add(id(var.container))
        pairs.append((var, _check_update(var, value, where)))
    return pairs


def _check_update(var: SharedVariable, value, where) -> Variable:
    if not isinstance(value, Variable):  # a plain value: take the shared variable's dtype
        from ..ops.base import constant
        try:
            value = constant(var.type.filter(value, var=var))
        except (TypeError, ValueError) as err:
            raise TypeError(f"the update of shared variable {describe(var)} must be a symbolic "
                            f"expression or a value of its type: {err}") from None
    try:
        value = as_tensor_variable(value)
    except TypeError:
        raise TypeError(f"the update of shared variable {var.name or var!r} must be a symbolic "
                        f"expression or array, got {type(value).__name__}") from None
    vt, st = value.type, var.type
    if not isinstance(vt, TensorType) or vt.dtype != st.dtype or vt.ndim != st.ndim:
        hint = (f" Cast the expression: T.cast(expr, '{st.dtype}')."
                if isinstance(vt, TensorType) and vt.ndim == st.ndim else "")
        raise TypeError(
            f"An update must keep the type of its shared variable: {describe(var)} would "
            f"become {vt} through the update expression {value!r} created at "
            f"{format_trace(value.trace)}.{hint}")
    if not st.is_super(vt):
        from ..ops.dimshuffle import patternbroadcast
        value = patternbroadcast(value, st.broadcastable)
    return value


def _skipped_defaults(no_default_updates, where):
    """The shared variables whose default updates are skipped: all (True), none (False), or
    the listed ones, as Theano's ``no_default_updates`` takes either."""
    if isinstance(no_default_updates, (bool, np.bool_)) or no_default_updates is None:
        return bool(no_default_updates)
    try:
        listed = list(no_default_updates)
    except TypeError:
        raise TypeError(f"function(): no_default_updates must be True, False or a list of "
                        f"shared variables, got {no_default_updates!r} "
                        f"(at {format_trace(where)})") from None
    for v in listed:
        if not isinstance(v, SharedVariable):
            raise TypeError(f"function(): no_default_updates lists {v!r}, which is not a "
                            f"shared variable (at {format_trace(where)})")
    return {id(v.container) for v in listed}


def _default_updates(roots, pairs, replace, skipped) -> tuple[list, list]:
    """``(shared, default_update)`` for each shared variable the graph of ``roots`` reads that
    has a default update and is neither updated explicitly nor skipped; a default update's own
    graph is searched too (a counter read only by another counter's update). Also returns
    ``ancestors(roots)`` (empty when nothing was searched), which the caller can reuse."""
    if skipped is True:
        return [], []
    done = {id(v.container) for v, _ in pairs} | (skipped or set())
    extra = []
    pending = list(roots)
    walked: list = []
    while pending:
        found = []
        variables = ancestors(pending)
        if not walked:
            walked = variables
        for v in variables:
            if isinstance(v, SharedVariable) and v.default_update is not None \
                    and id(v.container) not in done:
                done.add(id(v.container))
                (value,), = _replaced(replace, [_check_update(v, v.default_update, ())])
                extra.append((v, value))
                found.append(value)
        pending = found
    return extra, walked


def _givens_map(givens, where) -> dict[Variable, Variable]:
    """The givens as a dict old -> new, each replacement checked against what it replaces."""
    try:
        items = list(givens.items()) if isinstance(givens, dict) else [tuple(p) for p in givens]
    except TypeError:
        raise TypeError(f"givens must be a dict or a list of (variable, replacement) pairs, got "
                        f"{type(givens).__name__} {givens!r} (at {format_trace(where)})") from None
    replace = {}
    for old, new in items:
        if not isinstance(old, Variable):
            raise TypeError(f"givens: keys must be symbolic variables, got {old!r}")
        if not isinstance(new, Variable):  # a value: of the replaced variable's type
            from ..ops.base import constant
            try:
                new = constant(old.type.filter(new, var=old))
            except (TypeError, ValueError) as err:
                raise TypeError(f"givens: {describe(old)} cannot be replaced by the value "
                                f"{new!r}: {err}") from None
        new = as_tensor_variable(new)
        if not old.type.is_super(new.type) and not (
                old.type.dtype == new.type.dtype and old.type.ndim == new.type.ndim):
            raise TypeError(f"givens: {describe(old)} cannot be replaced by {new!r} of type "
                            f"{new.type} (the dtype and number of dimensions must match)")
        replace[old] = new
    return replace


def _replaced(replace: dict[Variable, Variable], *groups: list[Variable]) -> tuple:
    """Each group of variables with the givens substituted (one clone for all groups, so
    that what they share stays shared)."""
    flat = [v for g in groups for v in g]
    if replace and flat:
        flat = clone_replace(flat, replace)
    out, k = [], 0
    for g in groups:
        out.append(flat[k:k + len(g)])
        k += len(g)
    return tuple(out)


def _check_unused(ins: list[In], needed: set, on_unused_input, where) -> None:
    policy = on_unused_input or config.on_unused_input
    if policy not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_unused_input must be 'raise', 'warn' or 'ignore', got {policy!r}")
    for k, inp in enumerate(ins):
        if inp.variable in needed or policy == "ignore":
            continue
        msg = (f"function() at {format_trace(where)} was given input {k}, "
               f"{describe(inp.variable)}, but the outputs do not depend on it. Remove it, or "
               "pass on_unused_input='warn' or 'ignore' to function().")
        if policy == "raise":
            raise UnusedInputError(msg)
        warnings.warn(msg, stacklevel=4)


def _output_copies(fgraph: FunctionGraph, n_out: int, borrow: Sequence[bool],
                   n_explicit: int, update_containers: Sequence[list] = ()):
    """Which outputs must be copied so a caller never holds an array theon keeps or was given,
    nor two results sharing memory: an output is copied when it is (a view of) an input, a
    shared value or a constant, or when it shares its buffer with an update value or with an
    output returned before it (``y`` and ``y.reshape(...)``; ``new[1:]`` and the update
    ``s <- new``).

    Also which update values must be copied before they are stored, so that a shared variable
    never aliases an argument, a constant, another shared variable or another update: only a
    shared variable's own (unchanged) value is stored as it is."""
    roots = _buffer_roots(fgraph)

    def root(v):
        return roots.get(v, frozenset((v,)))

    def external(v):
        return any(r in fgraph._input_set or isinstance(r, Constant) for r in root(v))
    update_roots = set().union(*[root(v) for v in fgraph.outputs[n_out:]])
    copies, taken = [], set()
    for k, var in enumerate(fgraph.outputs[:n_out]):
        mine = root(var)
        must = external(var) or bool(mine & update_roots) or bool(mine & taken)
        copy = bool(must and not (borrow and borrow[k]))
        copies.append(copy)
        if not copy:
            taken |= mine
    own = {var: id(var.container) for var in fgraph.inputs[n_explicit:]
           if getattr(var, "container", None) is not None}
    update_copies, stored = [], set()
    for var, container in zip(fgraph.outputs[n_out:], update_containers):
        if own.get(var) == id(container):
            must = False  # the shared variable keeps its own value
        else:
            must = external(var) or bool(root(var) & stored)
        update_copies.append(must)
        if not must:
            stored |= root(var)
    return copies, update_copies


def _buffer_roots(fgraph: FunctionGraph) -> dict[Variable, frozenset]:
    """For each variable computed as a view (an op's ``view_map``), the variables whose buffers
    it may share; a variable absent from the map owns its buffer."""
    roots: dict[Variable, frozenset] = {}
    for node in fgraph.toposort():
        for out_idx, in_idxs in node.op.view_map.items():
            shared: frozenset = frozenset()
            for i in in_idxs:
                inp = node.inputs[i]
                shared = shared | roots.get(inp, frozenset((inp,)))
            roots[node.outputs[out_idx]] = shared
    return roots


def _allow(inp: In, allow_input_downcast: bool | None) -> bool | None:
    return inp.allow_downcast if inp.allow_downcast is not None else allow_input_downcast


def _input_check(inp: In, allow_input_downcast: bool | None):
    var, t = inp.variable, inp.variable.type
    allow = _allow(inp, allow_input_downcast)
    strict = inp.strict

    def check(value):
        return t.filter(value, strict=strict, allow_downcast=allow, var=var)
    return check
