"""Explain torch's loud autograd errors at the line that caused them: an exception and the user's frames in,
one plain-data ``LoudErrorEvent`` out.

Mechanism: nothing is recorded while the loop runs (no wrapper on tensor methods, no per-op hook, so no
cost, no torch.compile recompiles and no thread hazards). When an error surfaces, the frames it passed
through are read: their live values say *which* variable is at fault (a rebound non-leaf, a leaf changed in
place, the tensor whose version no longer matches, the tensor whose graph a backward already freed, the
loss cut from the graph), and the function's source (``source.py``, ``ast``) says *on which line* it
became so. Errors raised inside ``backward()`` are explained by the recorder's backward wrapper from the
live stack (``explain_backward_error``), also when the user catches them; the others (``w.grad`` is None,
a leaf changed in place) are explained from the traceback when the watch, or ``gradlens report``, sees the
exception (``explain_exit``). The exception object is never changed and always re-raised as it was; the
frames' locals are read once and their snapshot dropped (before Python 3.13 it would keep the tensors).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..adapters import adapter_for
from ..findings import Location
from .callsite import _drop_snapshot, _skip_dirs
from .events import LoudErrorEvent
from .source import Scope, receiver_names, scope_of

__all__ = ["explain_backward_error", "explain_raised", "explain_exit", "user_frames", "traceback_frames"]

_MAX_NODES = 4000  # bounded graph walks: a graph that large still gets a finding, without the variable
_MAX_FRAMES = 6
_LEAF_INPLACE = ("a leaf Variable that requires grad is being used in an in-place operation",
                 "a view of a leaf Variable that requires grad is being used in an in-place operation")
_MODIFIED = re.compile(r"modified by an inplace operation: \[(\S+) \[([\d, ]*)\]\](?:, which is output \d+ of (\w+),)? "
                       r"is at version (\d+); expected version (\d+) instead")
_FREED = "backward through the graph a second time"
_NO_GRAD_FN = re.compile(r"element (\d+) of tensors does not require grad and does not have a grad_fn")


# --- frames ------------------------------------------------------------------------------------------
def _is_user(filename: str) -> bool:
    return (not any(filename.startswith(d) for d in _skip_dirs())
            and not filename.endswith(("contextlib.py", "functools.py", "runpy.py"))
            and not filename.startswith("<"))


def user_frames(frame) -> list[tuple[Any, int]]:
    """The user's frames on the live stack from ``frame`` outwards (innermost first), with their lines."""
    out = []
    while frame is not None and len(out) < _MAX_FRAMES:
        if _is_user(frame.f_code.co_filename):
            out.append((frame, frame.f_lineno))
        frame = frame.f_back
    return out


def traceback_frames(tb) -> list[tuple[Any, int]]:
    """The user's frames an exception passed through (innermost first), with the line each was on."""
    out = []
    while tb is not None:
        if _is_user(tb.tb_frame.f_code.co_filename):
            out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    out.reverse()
    return out[:_MAX_FRAMES]


class _Frame:
    """One user frame, read once: its location, its tensors (by name) and its parsed function."""

    def __init__(self, frame, line: int, engines: frozenset[str] | None = None):
        code = frame.f_code
        self.location = Location(code.co_filename, line or 0, code.co_name)
        self.line = line or 0
        snapshot = frame.f_locals
        try:
            self.values = {k: v for k, v in snapshot.items() if _is_tensor(v, engines)}
        finally:
            _drop_snapshot(frame, snapshot)
        self.scope: Scope | None = scope_of(code.co_filename, code.co_name, self.line)

    def at(self, line: int) -> Location:
        return Location(self.location.file, line, self.location.function)

    def tensor(self, name: str):
        return self.values.get(name)


def _is_tensor(v: Any, engines: frozenset[str] | None = None) -> bool:
    """Whether ``v`` is a tensor of one of ``engines`` (any engine when None)."""
    adapter = adapter_for(v) if hasattr(v, "grad_fn") else None
    return adapter is not None and adapter.is_tensor(v) and (engines is None or adapter.engine in engines)


def _in_graph(t) -> bool:
    return bool(t.requires_grad) or t.grad_fn is not None


# --- entry points ------------------------------------------------------------------------------------
def explain_backward_error(exc: BaseException, roots: Any, frame, step: int, iteration: int,
                           engines: frozenset[str] | None = None) -> LoudErrorEvent | None:
    """Explain an error raised inside ``backward()`` (freed graph, saved tensor changed in place, graph cut),
    from the live stack above the backward call; None when the error is none of those."""
    text = str(exc)
    kind = ("inplace-modified-saved" if _MODIFIED.search(text) else
            "backward-through-freed-graph" if _FREED in text else
            "graph-cut" if _NO_GRAD_FN.search(text) else None)
    if kind is None:
        return None
    frames = [_Frame(f, line, engines) for f, line in user_frames(frame)]
    del frame
    try:
        if kind == "inplace-modified-saved":
            found = _modified_saved(frames, _MODIFIED.search(text))
        elif kind == "graph-cut":
            found = _graph_cut(frames, roots, int(_NO_GRAD_FN.search(text).group(1)))
        else:
            found = _freed_graph(frames, roots)
    finally:
        roots = None
    return _event(kind, exc, frames, step, iteration, found)


def explain_raised(exc: BaseException, frames: list[tuple[Any, int]], step: int, iteration: int,
                   engines: frozenset[str] | None = None) -> LoudErrorEvent | None:
    """Explain an error raised outside ``backward()`` (``w.grad`` is None after a rebinding, a leaf changed in
    place), from the frames it passed through; None when it is neither."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and text.startswith(_LEAF_INPLACE):
        kind = "inplace-on-leaf"
    elif isinstance(exc, (TypeError, AttributeError)) and "NoneType" in text:
        kind = "leaf-rebound"
    else:
        return None
    read = [_Frame(f, line, engines) for f, line in frames[:1]]  # the statement that raised
    found = _inplace_on_leaf(read) if kind == "inplace-on-leaf" else _leaf_rebound(read)
    if found is None and kind == "leaf-rebound":
        return None  # a None from elsewhere: not this rule
    return _event(kind, exc, read, step, iteration, found)


def explain_exit(recorder: Any, exc: BaseException | None) -> None:
    """Called when a watched block (or a script run by ``gradlens report``) ends with ``exc``: emit the
    explanation of an error raised outside ``backward()``. Never raises; never changes ``exc``."""
    if exc is None or recorder is None or not isinstance(exc, Exception):
        return
    try:
        engines = frozenset(e.name for e in recorder.engines)  # each watch explains its own engine's tensors
        ev = explain_raised(exc, traceback_frames(exc.__traceback__), recorder.step + 1, recorder.iteration,
                            engines)
        if ev is not None:
            recorder.emit(ev)
    except Exception:  # noqa: BLE001 - an explanation must never replace the user's own exception
        pass


def _event(kind: str, exc: BaseException, frames: list[_Frame], step: int, iteration: int,
           found: tuple | None) -> LoudErrorEvent:
    raised = frames[0].location if frames else None
    if found is None:
        return LoudErrorEvent(kind, step, iteration, type(exc).__name__, raised_at=raised)
    variable, cause, frame, line, other = found
    return LoudErrorEvent(kind, step, iteration, type(exc).__name__, variable, cause,
                          frame.scope.text(line) if frame.scope else "", frame.at(line), raised,
                          frame.at(other) if other else None)


# --- leaf-rebound and inplace-on-leaf: the statement that raised -------------------------------------
def _leaf_rebound(frames: list[_Frame]):
    if not frames or frames[0].scope is None:
        return None
    f = frames[0]
    st = f.scope.statement_at(f.line)
    for name in f.scope.grad_reads(st) if st is not None else ():
        t = f.tensor(name)
        if t is None or t.is_leaf or not t.requires_grad or t.retains_grad:
            continue
        binds = f.scope.assignments(name)
        selfref = [b for b in binds if f.scope.reads_itself(b, name)]
        here = [b for b in selfref if b.lineno <= f.line <= (b.end_lineno or b.lineno)]
        root = (here or selfref or [f.scope.binding_before(name, f.line)])[-1]
        if root is not None:
            return name, "rebound", f, root.lineno, None
    return None


def _inplace_on_leaf(frames: list[_Frame]):
    if not frames or frames[0].scope is None:
        return None
    f = frames[0]
    st = f.scope.statement_at(f.line)
    if st is None:
        return None
    names = [n for n in receiver_names(st) if (t := f.tensor(n)) is not None and t.is_leaf and t.requires_grad]
    changed = [n for n in names if st in f.scope.inplace_changes(n)]
    pick = (changed or names or [None])[0]
    return pick, "in-place", f, st.lineno, None


# --- inplace-modified-saved: which local tensor has the version the engine reported -----------------
def _modified_saved(frames: list[_Frame], m: re.Match):
    type_name, sizes, producer = m.group(1), m.group(2), m.group(3)
    now, expected = int(m.group(4)), int(m.group(5))
    shape = [int(s) for s in sizes.split(",") if s.strip()]
    fallback = None
    for f in frames:
        if f.scope is None:
            continue
        found = []
        for name, t in f.values.items():
            try:
                if t._version != now or list(t.shape) != shape or t.type() != type_name:
                    continue
            except RuntimeError:  # inference tensors have no version counter
                continue
            bound = f.scope.binding_before(name, f.line)
            start = bound.lineno if bound is not None else 0
            changes = [st for st in f.scope.inplace_changes(name) if start <= st.lineno and st.lineno != f.line]
            if changes:
                # versions count in-place changes: the saved value was taken at version `expected`, so the
                # change that invalidated it is the (expected + 1)-th one after the binding
                st = changes[min(expected, len(changes) - 1)]
                found.append((_produced_by(t, producer), name, st.lineno))
            fallback = fallback or (name, "", f, f.line, None)
        if found:
            found.sort(key=lambda c: not c[0])  # the tensor the reported node produced first
            _, name, line = found[0]
            return name, "in-place", f, line, None
    return fallback


def _produced_by(t, producer: str | None) -> bool:
    """Whether ``t`` comes from the node the engine's message names (an in-place change puts its own node on
    top, so the producer is the tensor's node or one just below it); a leaf when no node is named."""
    fn = t.grad_fn
    if producer is None:
        return fn is None or t.is_leaf
    if fn is None:
        return False
    nodes = [fn] + [n for n, _ in fn.next_functions if n is not None]
    return any(re.sub(r"Backward0$", "", n.name()) == producer or n.name() == producer + "Backward" for n in nodes)


# --- backward-through-freed-graph: the tensor that carries, or shares, an already-freed graph -------
def _walk(adapter, start: Iterable, stop: dict[int, Any] | None = None) -> tuple[dict[int, Any], bool]:
    """Nodes reachable from ``start`` (bounded), by id; whether a node of ``stop`` was reached."""
    seen: dict[int, Any] = {}
    stack = [n for n in start if n is not None]
    hit = False
    while stack and len(seen) < _MAX_NODES:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if stop is not None and id(node) in stop:
            hit = True
            break
        for nxt, _ in adapter.next_functions(node):
            if nxt is not None and id(nxt) not in seen:
                stack.append(nxt)
    return seen, hit


def _freed_graph(frames: list[_Frame], roots: Any):
    """Which local tensor of the failing graph reaches a freed graph, and why it still holds it.

    Every node this backward ran before it failed is freed too, so freed nodes alone cannot tell old from
    new; the source can: a tensor bound before an earlier ``backward()`` line (and used by that loss) lost
    its graph to that backward (``shared``: the GAN's fake batch); a tensor computed from its own previous
    value carries the previous iteration's graph (``carried``: an RNN hidden state)."""
    roots = list(roots) if isinstance(roots, (tuple, list)) else [roots]
    adapter = next((a for r in roots if (a := adapter_for(r)) is not None), None)
    if adapter is None or not frames or frames[0].scope is None:
        return None
    reached, _ = _walk(adapter, [adapter.root_node(r) for r in roots if adapter.is_tensor(r)])
    if not any(adapter.saved_tensors(n) is None for n in reached.values()):
        return None  # nothing freed here: not this explanation
    f = frames[0]
    scope = f.scope
    members = [name for name, t in f.values.items()
               if t.grad_fn is not None and id(adapter.root_node(t)) in reached]
    reached.clear()
    backward_lines = scope.backward_lines()
    receivers = set(scope.backward_receivers(f.line))
    for name in members:  # an earlier backward freed this tensor's graph and this one needs it again (GAN)
        bound = scope.binding_before(name, f.line)
        start = bound.lineno if bound is not None else 0
        earlier = [ln for ln in backward_lines if start < ln < f.line]
        if not earlier:
            continue
        uses = [st for st in scope.uses(name, start, earlier[-1]) if st.lineno not in backward_lines]
        if uses:
            return name, "shared", f, uses[0].lineno, earlier[-1]
    for name in members:  # a tensor computed from its previous value keeps the previous iteration's graph
        bound = scope.binding_before(name, f.line)
        if bound is not None and scope.reads_itself(bound, name):
            return name, "carried", f, bound.lineno, None
    for name in members:
        bound = scope.binding_before(name, f.line)
        if name not in receivers and bound is not None:
            return name, "carried", f, bound.lineno, None
    return None


# --- graph-cut: follow the loss back through its assignments to the statement that left the graph ----
def _graph_cut(frames: list[_Frame], roots: Any, index: int):
    if not frames or frames[0].scope is None:
        return None
    f = frames[0]
    block = f.scope.no_grad_block(f.line)
    names = f.scope.backward_receivers(f.line)
    if block is not None:
        return (names[0] if names else None), "no_grad", f, block, None
    seen: set[str] = set()
    for name in names:
        found = _trace_cut(f, name, f.line, seen, 0)
        if found is not None:
            return found
    return None


def _trace_cut(f: _Frame, name: str, before: int, seen: set[str], depth: int):
    if depth > 8 or name in seen:
        return None
    seen.add(name)
    scope = f.scope
    st = scope.binding_before(name, before)
    if st is None:
        return None
    block = scope.no_grad_block(st.lineno)
    if block is not None:
        return name, "no_grad", f, block, None
    cut = scope.cut_in(st)
    if cut is not None:
        kind, recv = cut
        source = f.tensor(recv) if recv is not None and recv != name else None
        if source is None or _in_graph(source):
            return name, kind, f, st.lineno, None
    later = scope.detach_statement(name, st.lineno, before)
    if later is not None:
        return name, "detach", f, later.lineno, None
    value = scope.value_of(st)
    for src in receiver_names(value) if value is not None else ():
        t = f.tensor(src)
        if t is not None and not _in_graph(t):
            found = _trace_cut(f, src, st.lineno, seen, depth + 1)
            if found is not None:
                return found
    return None
