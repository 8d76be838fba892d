"""Fix for ``graph-retained`` when a running total or a list holds a graph: ``total += loss`` becomes
``total += loss.item()`` and ``history.append(loss)`` becomes ``history.append(loss.item())``.

``.item()`` is used for a loss (a scalar) whose holder is used only as a number; a total started as a number
(``total = 0.0``) whose only tensor use is ``total.item()`` gets ``.item()`` too, and ``total.item()``
becomes ``total``. ``.detach()`` (a tensor without a graph) is used when the value is not a loss or the
holder is later used as a tensor. In ``a if c else b`` only the branch still attached is changed.
A holder that is a carried RNN state goes to ``hidden_state``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from . import hidden_state
from .source import SourceFile, holder_name

if TYPE_CHECKING:
    from ..findings import Finding
    from .edits import Edit

_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)


def fix(finding: Finding, src: SourceFile) -> list[Edit] | str:
    """``+= x`` -> ``+= x.item()``; ``.append(x)`` -> ``.append(x.item())`` (or ``.detach()``)."""
    assert finding.location is not None
    stmt = src.statement_at(finding.location.line)
    if stmt is None:
        return "no statement at the finding's line"
    value, holder = None, None
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, ast.Add):
        value, holder = stmt.value, src.segment(stmt.target)
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and \
            isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "append" and \
            len(stmt.value.args) == 1:
        value, holder = stmt.value.args[0], src.segment(stmt.value.func.value)
    if value is None:
        return hidden_state.fix(finding, src)
    attached = _attached(src, value)
    if not attached:
        return "the value is already detached; the graph is held elsewhere"
    if len(attached) > 1:
        return "several values could hold the graph on this line; add .item() or .detach() by hand"
    value = attached[0]
    text = src.segment(value) or ""
    tensor_uses, item_calls = _uses(src, stmt, holder)
    unwrap = isinstance(stmt, ast.AugAssign) and not tensor_uses and item_calls and \
        _starts_as_number(src, stmt, holder)
    scalar = "loss" in text.lower() and (not (tensor_uses or item_calls) or unwrap)
    method = ".item()" if scalar else ".detach()"
    new = f"{text}{method}" if isinstance(value, _ATOMIC) else f"({text}){method}"
    replacements = [(value, new)]
    if scalar and unwrap:  # the total is a float now: ``total.item()`` becomes ``total``
        replacements += [(call, holder or "") for call in item_calls]
    edits = src.replace_nodes(replacements)
    return edits if edits is not None else "the value spans several lines; add .item() or .detach() by hand"


def _attached(src: SourceFile, value: ast.expr) -> list[ast.expr]:
    """The parts of ``value`` that may carry a graph: ``value`` itself, or the branches of ``a if c else b``
    not already ``.item()``/``.detach()``/``.tolist()``."""
    if isinstance(value, ast.IfExp):
        return [*_attached(src, value.body), *_attached(src, value.orelse)]
    if isinstance(value, ast.Constant):
        return []
    return [] if (src.segment(value) or "").endswith((".item()", ".detach()", ".tolist()")) else [value]


def _uses(src: SourceFile, stmt: ast.stmt, holder: str | None) -> tuple[bool, list[ast.Call]]:
    """Whether the holder (or an element of it) has a tensor method called on it in the same function other
    than ``holder.item()``, and those ``holder.item()`` calls."""
    name = holder_name(holder or "")
    if name is None:
        return False, []
    other, items = False, []
    for node in ast.walk(src.scope_of(stmt)):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            base = node.value.value if isinstance(node.value, ast.Subscript) else node.value
            if src.segment(base) != name or node.attr in ("append", "extend", "clear", "pop"):
                continue
            call = src.parent(node)
            if node.value is base and node.attr == "item" and isinstance(call, ast.Call) and not call.args \
                    and (src.segment(call) or "").replace(" ", "") == f"{name}.item()":  # offsets checked
                items.append(call)
            else:
                other = True
    return other, items


def _starts_as_number(src: SourceFile, stmt: ast.stmt, holder: str | None) -> bool:
    """Whether every plain assignment of the holder in the function assigns a number (``total = 0.0``)."""
    values = [node.value for node in ast.walk(src.scope_of(stmt)) if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name) and t.id == holder]
    return bool(values) and all(isinstance(v, ast.Constant) and type(v.value) in (int, float) for v in values)
