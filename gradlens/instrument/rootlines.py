"""Root lines: move a finding from the line where gradlens noticed the symptom to the line the user edits.

Each rule has a *root line* (README, rule catalogue):

* ``graph-retained``: the statement that stores the graph-holding object (``history.append(loss)``,
  ``total += loss``, ``kept[i] = out``), found by ``holders.py`` with ``accumulation_line`` below;
* ``missing-zero-grad``: the ``zero_grad()`` in the stepping loop that clears other parameters than the
  optimizer's (named in the message), or, when the loop has none, its ``backward()`` call;
* ``param-not-in-optimizer``: the statement that built the optimizer;
* ``graph-without-backward``: the forward call outside ``no_grad`` (captured by the forward hook itself);
* ``zero-grad-before-step``: the ``zero_grad()`` that runs between the loop's ``backward()`` and ``step()``;
* ``unexpected-accumulation`` from a second backward through one graph: the ``backward(retain_graph=True)``.

The step (or tick) line where the symptom was noticed becomes a related location. Everything here runs
once per problem, when its finding is first accepted: it reads the user's frames and the ``ast`` of the
function that runs the loop (``source.scope_of``), never per step or per op. Names are found the same way:
the variable the user bound an optimizer to (``opt``) replaces its ``SGD#0`` label where unambiguous.
"""

from __future__ import annotations

import ast
import dataclasses
import linecache
import re
from collections.abc import Iterator
from typing import Any

from ..findings import Finding, Location
from .callsite import _drop_snapshot, _user_frame
from .source import Scope

__all__ = ["RootLines", "accumulation_line", "variable_of", "loop_of"]

_LOOPS = (ast.For, ast.While, ast.AsyncFor)
_ACCUMULATE = ("append", "extend", "insert", "add", "update", "setdefault")
_MAX_FRAMES = 16  # user frames read outward from the step call
_REPEATED_BACKWARD = "unexpected-accumulation:repeat:"  # gradstate.py's key of a second backward, one graph
_MAX_LOCALS = 4096  # a frame's variables scanned for an object (module frames: the globals)


# --- source --------------------------------------------------------------------------------------------
_TREES: dict[str, tuple[int, ast.Module | None, list]] = {}  # file -> (text hash, tree, its functions)


def _parsed(filename: str) -> tuple[ast.Module | None, list]:
    """The file's tree and its functions (parsed once per file version; several look-ups per finding)."""
    text = "".join(linecache.getlines(filename))
    key = hash(text)
    cached = _TREES.get(filename)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    try:
        tree = ast.parse(text, filename) if text else None
    except (SyntaxError, ValueError):
        tree = None
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] if tree else []
    if len(_TREES) >= 32:
        _TREES.clear()
    _TREES[filename] = (key, tree, functions)
    return tree, functions


def _function_node(filename: str, line: int, name: str | None = None):
    """The innermost function (named ``name``, when given) whose source holds ``line``, or None."""
    best = None
    for n in _parsed(filename)[1]:
        if (name is None or n.name == name) and n.lineno <= line <= (n.end_lineno or n.lineno):
            if best is None or n.lineno > best.lineno:
                best = n
    return best


def scope_of(filename: str, function: str, line: int) -> Scope | None:
    """``source.scope_of`` over a parse cached per file."""
    tree = _parsed(filename)[0]
    if tree is None:
        return None
    lines = linecache.getlines(filename)
    if function == "<module>":
        return Scope(tree, lines)
    best = _function_node(filename, line, function)
    return Scope(best, lines) if best is not None else None


def loop_of(scope: Scope, line: int) -> ast.stmt | None:
    """The innermost ``for``/``while`` of the scope whose body holds ``line``."""
    best = None
    for st in scope.statements:
        if isinstance(st, _LOOPS) and st.lineno < line <= (st.end_lineno or st.lineno):
            if best is None or st.lineno > best.lineno:
                best = st
    return best


def _within(scope: Scope, block: ast.stmt | None) -> Iterator[ast.AST]:
    """The scope's nodes inside ``block`` (the whole scope when None), nested functions left out."""
    if block is None:
        yield from scope.nodes
        return
    lo, hi = block.lineno, block.end_lineno or block.lineno
    for n in scope.nodes:
        if lo <= getattr(n, "lineno", 0) <= hi:
            yield n


def _is_name(expr: ast.AST, name: str) -> bool:
    """Whether ``expr`` is ``name`` or an attribute path starting at it (``self.history``)."""
    parts = name.split(".")
    while isinstance(expr, ast.Attribute) and len(parts) > 1:
        if expr.attr != parts[-1]:
            return False
        parts.pop()
        expr = expr.value
    return isinstance(expr, ast.Name) and expr.id == parts[0] and len(parts) == 1


def _accumulations(scope: Scope, name: str, block: ast.stmt | None) -> list[int]:
    """Lines in ``block`` that add to ``name`` without rebinding it: ``name += x``, ``name.append(x)``
    (``extend``/``insert``/``add``/``update``), ``name[k] = x``."""
    lines = []
    for n in _within(scope, block):
        if isinstance(n, ast.AugAssign) and _is_name(n.target, name):
            lines.append(n.lineno)
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _ACCUMULATE
              and _is_name(n.func.value, name)):
            lines.append(n.lineno)
        elif isinstance(n, ast.Assign) and any(isinstance(t, ast.Subscript) and _is_name(t.value, name)
                                               for t in n.targets):
            lines.append(n.lineno)
    return sorted(set(lines))


def accumulation_line(filename: str, function: str, line: int, name: str) -> int | None:
    """The line that stores a graph into ``name`` in the function running ``line``: an accumulation
    (``+=``, ``.append(``, ``[k] =``) in the innermost loop around ``line``, else anywhere in the function,
    else the assignment of ``name`` that ran last before ``line``; None when the source cannot be read.

    Example:
        >>> import linecache
        >>> src = "hist = []\\nfor i in range(3):\\n    loss = f(i)\\n    hist.append(loss)\\n    step()\\n"
        >>> linecache.cache["<demo>"] = (len(src), None, src.splitlines(True), "<demo>")
        >>> accumulation_line("<demo>", "<module>", 5, "hist")
        4
    """
    scope = scope_of(filename, function, line)
    if scope is None:
        return None
    loop = loop_of(scope, line)
    for block in (loop, None) if loop is not None else (None,):
        found = _accumulations(scope, name, block)
        if found:
            before = [n for n in found if n <= line]
            return before[-1] if before else found[-1]
    if "." in name:
        return None
    st = scope.binding_before(name, line)
    return st.lineno if st is not None else None


def _method_calls(scope: Scope, method: str, block: ast.stmt | None) -> list[ast.Call]:
    calls = [n for n in _within(scope, block)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == method]
    return sorted(calls, key=lambda n: (n.lineno, n.col_offset))


def _dotted(expr: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None (calls and subscripts are not resolved)."""
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


# --- live values ---------------------------------------------------------------------------------------
def _resolve(frame, dotted: str) -> Any:
    """The value of ``a.b.c`` in ``frame`` (locals, then globals, then builtins), or None."""
    head, *rest = dotted.split(".")
    snapshot = frame.f_locals
    try:
        if head in snapshot:
            obj = snapshot[head]
        elif head in frame.f_globals:
            obj = frame.f_globals[head]
        else:
            return None
    finally:
        _drop_snapshot(frame, snapshot)
        del snapshot
    for attr in rest:
        try:
            obj = getattr(obj, attr)
        except Exception:  # noqa: BLE001 - a property that raises: the value is unknown, not an error
            return None
    return obj


def _names_bound(frame, obj: Any) -> list[str]:
    """The frame's variables bound to ``obj`` (``self.x`` attributes one level down included)."""
    snapshot = frame.f_locals
    try:
        items = list(snapshot.items())[:_MAX_LOCALS]
    finally:
        _drop_snapshot(frame, snapshot)
        del snapshot
    names = [k for k, v in items if v is obj and not k.startswith("__")]
    if not names:
        for k, v in items:
            if k == "self" and hasattr(v, "__dict__"):
                try:
                    attrs = list(vars(v).items())[:_MAX_LOCALS]
                except TypeError:
                    continue
                names += [f"self.{a}" for a, x in attrs if x is obj and not a.startswith("_")]
    del items
    return names


def _user_frames(start) -> Iterator[Any]:
    f, n = start, 0
    while f is not None and n < _MAX_FRAMES:
        yield f
        f = _user_frame_from(f.f_back)
        n += 1


def _user_frame_from(f):
    from .callsite import _skip_dirs

    skip = _skip_dirs()
    while f is not None:
        fn = f.f_code.co_filename
        if not any(fn.startswith(d) for d in skip) and not fn.endswith(("contextlib.py", "functools.py")) \
                and not fn.startswith("<frozen"):
            return f
        f = f.f_back
    return None


def variable_of(frame, obj: Any) -> str | None:
    """The one variable the user bound ``obj`` to, in the innermost user frame (from ``frame`` outward)
    that binds it at all; None when that frame binds it under several names (ambiguous) or none does."""
    for f in _user_frames(frame):
        names = _names_bound(f, obj)
        if names:
            plain = [n for n in names if "." not in n] or names
            return plain[0] if len(plain) == 1 else None
    return None


def _construction(frame, obj: Any) -> Location | None:
    """The statement that built ``obj`` (``opt = torch.optim.SGD(...)``): the assignment, in the first user
    frame outward that binds a variable to it, whose value is a call."""
    for f in _user_frames(frame):
        for name in _names_bound(f, obj):
            code = f.f_code
            scope = scope_of(code.co_filename, code.co_name, f.f_lineno)
            if scope is None:
                continue
            if name.startswith("self."):
                attr = name.split(".", 1)[1]
                found = [n for n in ast.walk(scope.tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                         and any(_is_name(t, f"self.{attr}") for t in n.targets)]
                if not found:
                    found = _self_assignments(code.co_filename, attr)
            else:
                found = [st for st in scope.assignments(name) if isinstance(scope.value_of(st), ast.Call)]
            if found:
                last = [st for st in found if st.lineno <= f.f_lineno] or found
                st = last[-1]
                fn = _function_at(code.co_filename, st.lineno) or code.co_name
                return Location(code.co_filename, st.lineno, fn)
    return None


def _self_assignments(filename: str, attr: str) -> list[ast.stmt]:
    """``self.<attr> = <call>`` in any function of the file (an optimizer built in ``__init__``)."""
    found = []
    for fn in _parsed(filename)[1]:
        for st in ast.walk(fn):
            if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) and any(
                    _is_name(t, f"self.{attr}") for t in st.targets):
                found.append(st)
    return sorted(found, key=lambda st: st.lineno)


def _function_at(filename: str, line: int) -> str:
    best = _function_node(filename, line)
    return best.name if best is not None else "<module>"


def _params_of(obj: Any) -> set[int] | None:
    """Ids of the parameters ``obj.zero_grad()`` clears (an optimizer's or a module's), or None."""
    try:
        if hasattr(obj, "param_groups"):
            return {id(p) for g in obj.param_groups for p in g["params"]}
        if hasattr(obj, "parameters") and hasattr(obj, "named_parameters"):
            return {id(p) for p in obj.parameters()}
    except Exception:  # noqa: BLE001 - a user object pretending to be one: unknown
        return None
    return None


def _retain_graph_calls(nodes) -> list[ast.Call]:
    return [n for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "backward" and any(k.arg == "retain_graph" and not (
                isinstance(k.value, ast.Constant) and not k.value.value) for k in n.keywords)]


def _retained_backward_root(f: Finding, frame) -> Finding:
    """``unexpected-accumulation`` from a repeated backward: the ``backward(retain_graph=True)`` that lets the
    graph be walked twice, in the stepping loop or in a function of the same file the loop calls (one level:
    ``norm = grad_norm(loss, model)``). Only when exactly one such call is found."""
    if f.location is None:
        return f
    code = frame.f_code
    filename = code.co_filename
    scope = scope_of(filename, code.co_name, frame.f_lineno)
    if scope is None:
        return f
    block = loop_of(scope, frame.f_lineno)
    inside = list(_within(scope, block))
    found = [(c, code.co_name) for c in _retain_graph_calls(inside)]
    called = {n.func.id for n in inside if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    for fn in _parsed(filename)[1]:
        if fn.name in called:
            found += [(c, fn.name) for c in _retain_graph_calls(ast.walk(fn))]
    if len({c.lineno for c, _ in found}) != 1:
        return f
    call, function = found[0]
    here = Location(filename, call.lineno, function)
    msg = (f"{f.message} The first pass is the backward(retain_graph=True) at line {call.lineno}: to only read "
           "gradients there, use torch.autograd.grad(..., retain_graph=True), which does not add to .grad.")
    return _replace(f, location=here, related_locations=(f.location,), message=msg)


def _subject_ids(os_, f: Finding) -> set[int]:
    """Ids of the live parameters of optimizer state ``os_`` that finding ``f`` names."""
    return {id(p) for st in os_.states if st.name in f.subject and (p := st.ref()) is not None}


def _cleared_by(frame, call: ast.Call) -> tuple[str | None, Any, set[int] | None]:
    """For ``X.zero_grad()`` in ``frame``'s code: ``X`` as written, its live value, and the ids of the
    parameters it clears (None where any of them cannot be resolved)."""
    dotted = _dotted(call.func.value)
    target = _resolve(frame, dotted) if dotted else None
    return dotted, target, _params_of(target) if target is not None else None


def _noticed_here(f: Finding, frame) -> Finding:
    """``f`` with the statement running now (where it was noticed) as related, when that is another line."""
    code = frame.f_code
    here = Location(code.co_filename, frame.f_lineno, code.co_name)
    return f if here == f.location else _replace(f, related_locations=(here,))


def _replace(f: Finding, **changes) -> Finding:
    out = dataclasses.replace(f, **changes)
    object.__setattr__(out, "key", f.key)
    return out


# --- the recorder part ---------------------------------------------------------------------------------
class RootLines:
    """Recorder part: ``root_line(finding)``, run once per problem when the lens accepts its finding."""

    def root_line(self, f: Finding) -> Finding:
        """``f`` located at its rule's root line (the noticed line moved to ``related_locations``), with
        the optimizer named by the user's variable where that is unambiguous. Never raises: a finding the
        source cannot place stays where it was noticed."""
        try:
            frame = _user_frame(2)
            if frame is None:
                return f
            try:
                if f.kind == "missing-zero-grad" and not f.related_locations:
                    f = self._zero_grad_root(f, frame)
                elif f.kind == "zero-grad-before-step" and not f.related_locations:
                    f = self._early_clear_root(f, frame)
                elif (f.key or "").startswith(_REPEATED_BACKWARD) and not f.related_locations:
                    f = _retained_backward_root(f, frame)
                elif f.kind == "param-not-in-optimizer":
                    f = self._optimizer_root(f, frame)
                elif f.kind == "graph-retained" and not f.related_locations and f.location is not None:
                    f = _noticed_here(f, frame)  # a failed backward: the holder's line, the backward related
                return self._name_optimizers(f, frame)
            finally:
                del frame
        except Exception:  # noqa: BLE001 - placing a finding is best effort; the finding stands without it
            return f

    # --- rules -------------------------------------------------------------------------------------------
    def _opt_of_finding(self, f: Finding) -> tuple[Any, Any]:
        """The optimizer a per-optimizer finding is about (its key ends with the optimizer's label)."""
        label = (f.key or "").rsplit(":", 1)[-1]
        for os_ in self.opts.values():
            if os_.label == label and (opt := os_.ref()) is not None:
                return os_, opt
        return None, None

    def _zero_grad_root(self, f: Finding, frame) -> Finding:
        os_, opt = self._opt_of_finding(f)
        if os_ is None or f.location is None:
            return f
        carried = _subject_ids(os_, f)
        code = frame.f_code
        scope = scope_of(code.co_filename, code.co_name, frame.f_lineno)
        if scope is None:
            return f
        step_line = frame.f_lineno
        block = loop_of(scope, step_line)
        noticed = (f.location,)
        covering, wrong = None, None
        seen: set[str] = set()
        for call in _method_calls(scope, "zero_grad", block):
            dotted, target, ids = _cleared_by(frame, call)
            repeated = dotted in seen
            seen.add(dotted)
            if ids is None or not carried:
                continue
            if carried <= ids and covering is None:
                covering = call, dotted
            elif not carried & ids and (wrong is None or repeated):
                wrong = call, dotted, target  # a second clear of the same thing was meant for another
        if covering is not None:
            call, dotted = covering
            here = Location(code.co_filename, call.lineno, code.co_name)
            msg = (f"{f.message} `{dotted}.zero_grad()` (line {call.lineno}) clears them but did not run "
                   "before every step: it runs less often than step() (under a condition?).")
            return _replace(f, location=here, related_locations=noticed, message=msg)
        if wrong is not None:
            call, dotted, target = wrong
            here = Location(code.co_filename, call.lineno, code.co_name)
            whose = f"the parameters of {dotted}" if hasattr(target, "param_groups") else f"{dotted}'s parameters"
            msg = (f"{f.message} `{dotted}.zero_grad()` (line {call.lineno}) clears {whose}, not those "
                   f"{os_.label} steps on: call zero_grad() on that optimizer (or its model) there.")
            return _replace(f, location=here, related_locations=noticed, message=msg)
        backward = [n for n in _method_calls(scope, "backward", block)]
        if backward:
            call = backward[0]
            here = Location(code.co_filename, call.lineno, code.co_name)
            msg = f"{f.message} The loop has no zero_grad() call: add one before this backward()."
            return _replace(f, location=here, related_locations=noticed, message=msg)
        return f

    def _early_clear_root(self, f: Finding, frame) -> Finding:
        """``zero-grad-before-step``: the ``zero_grad()`` of the loop that clears the stepped parameters
        and sits between the loop's ``backward()`` and this ``step()`` (in source order)."""
        os_, opt = self._opt_of_finding(f)
        if os_ is None or f.location is None:
            return f
        cleared = _subject_ids(os_, f)
        code = frame.f_code
        scope = scope_of(code.co_filename, code.co_name, frame.f_lineno)
        if scope is None or not cleared:
            return f
        step_line = frame.f_lineno
        block = loop_of(scope, step_line)
        backwards = [c.lineno for c in _method_calls(scope, "backward", block) if c.lineno < step_line]
        if not backwards:
            return f
        for call in _method_calls(scope, "zero_grad", block):
            if not backwards[-1] < call.lineno < step_line:
                continue
            dotted, _, ids = _cleared_by(frame, call)
            if ids and cleared & ids:
                here = Location(code.co_filename, call.lineno, code.co_name)
                msg = (f"{f.message} `{dotted}.zero_grad()` (line {call.lineno}) runs after backward() "
                       f"(line {backwards[-1]}) and before step().")
                return _replace(f, location=here, related_locations=(f.location,), message=msg)
        return f

    def _optimizer_root(self, f: Finding, frame) -> Finding:
        opt = self._stepping_optimizer(frame)
        if opt is None or f.location is None:
            return f
        built = _construction(frame, opt)
        if built is None or built == f.location:
            return f
        name = variable_of(frame, opt)
        who = f"`{name}`" if name else type(opt).__name__
        msg = f"{f.message} {who} is built here without them."
        return _replace(f, location=built, related_locations=(f.location, *f.related_locations), message=msg)

    def _stepping_optimizer(self, frame) -> Any:
        """The optimizer whose ``step()`` the frame is calling (its receiver on the line), else the only
        optimizer seen."""
        code = frame.f_code
        scope = scope_of(code.co_filename, code.co_name, frame.f_lineno)
        if scope is not None:
            st = scope.statement_at(frame.f_lineno)
            for n in ast.walk(st) if st is not None else ():
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "step":
                    dotted = _dotted(n.func.value)
                    target = _resolve(frame, dotted) if dotted else None
                    if target is not None and hasattr(target, "param_groups"):
                        return target
        live = [o for os_ in self.opts.values() if (o := os_.ref()) is not None]
        return live[0] if len(live) == 1 else None

    def _name_optimizers(self, f: Finding, frame) -> Finding:
        """Replace ``SGD#0`` in the message by the user's variable (``opt (SGD)``) where unambiguous."""
        msg = f.message
        for os_ in self.opts.values():
            if os_.label not in msg:
                continue
            opt = os_.ref()
            name = variable_of(frame, opt) if opt is not None else None
            if name:  # SGD#1 must not match inside SGD#12
                msg = re.sub(rf"{re.escape(os_.label)}(?!\d)", f"`{name}` ({type(opt).__name__})", msg)
        return f if msg == f.message else _replace(f, message=msg)
