"""Fixes for hand-written weight updates: ``leaf-rebound`` and ``inplace-on-leaf``.

``w = w - lr * w.grad`` rebinds ``w`` to a computed tensor (no longer a leaf: its next ``.grad`` is None);
``w -= lr * w.grad`` outside ``no_grad`` is an in-place change of a leaf autograd must track. Both become
the update PyTorch's own tutorial writes: in place, under ``torch.no_grad()``, then the gradient cleared::

    with torch.no_grad():
        w -= lr * w.grad
        w.grad = None

The run of sibling statements updating leaves this way (``w``, then ``b``) is fixed together, since the
script raises at the first and would raise at the next. A gradient the loop already clears
(``w.grad = None``, ``w.grad.zero_()``, ``zero_grad()``) is not cleared twice.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .source import SourceFile, calls_method, in_no_grad

if TYPE_CHECKING:
    from ..findings import Finding
    from .edits import Edit

_OPS = {ast.Sub: "-=", ast.Add: "+="}


def _rebinding(stmt: ast.stmt) -> tuple[str, str, ast.AST] | None:
    """``w = w - e`` / ``w = w + e`` where ``e`` reads ``w.grad``: ``(w, op, e)``."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
        return None
    name, value = stmt.targets[0].id, stmt.value
    if not (isinstance(value, ast.BinOp) and type(value.op) in _OPS and isinstance(value.left, ast.Name)
            and value.left.id == name and _reads_grad(value.right, name)):
        return None
    return name, _OPS[type(value.op)], value.right


def _in_place(stmt: ast.stmt) -> tuple[str, str, ast.AST] | None:
    """``w -= e`` / ``w += e`` where ``e`` reads ``w.grad``."""
    if isinstance(stmt, ast.AugAssign) and type(stmt.op) in _OPS and isinstance(stmt.target, ast.Name) \
            and _reads_grad(stmt.value, stmt.target.id):
        return stmt.target.id, _OPS[type(stmt.op)], stmt.value
    return None


def _reads_grad(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "grad" and isinstance(n.value, ast.Name)
               and n.value.id == name for n in ast.walk(node))


def fix_rebound(finding: Finding, src: SourceFile) -> list[Edit] | str:
    return _fix(finding, src, _rebinding, "the line is not `w = w - lr * w.grad`; update w in place under "
                "torch.no_grad() by hand")


def fix_inplace(finding: Finding, src: SourceFile) -> list[Edit] | str:
    return _fix(finding, src, _in_place, "the line is not `w -= lr * w.grad`; wrap the update in "
                "torch.no_grad() by hand")


def _fix(finding: Finding, src: SourceFile, shape, refusal: str) -> list[Edit] | str:
    assert finding.location is not None
    stmt = src.statement_at(finding.location.line)
    if stmt is None or shape(stmt) is None:
        return refusal
    if in_no_grad(src, stmt) and shape is _in_place:
        return "the update already runs under no_grad(); the in-place change is elsewhere"
    holding = src.body_holding(stmt)
    if holding is None:
        return refusal
    body, _ = holding
    i = body.index(stmt)
    first = last = i
    while first > 0 and shape(body[first - 1]) is not None:
        first -= 1
    while last + 1 < len(body) and shape(body[last + 1]) is not None:
        last += 1
    torch = src.torch_name(src.scope_of(stmt))
    if torch is None:
        return "the script's name for torch was not found; update under torch.no_grad() by hand"
    lines, names = [], []
    for s in body[first:last + 1]:
        name, op, expr = shape(s)
        lines.append(f"{name} {op} {src.segment(expr)}{_trailing_comment(src, s)}")
        names.append(name)
    scope = src.enclosing_loops(stmt)
    where = scope[0] if scope else src.scope_of(stmt)
    lines += [f"{n}.grad = None" for n in names if not _clears(src, where, n)]
    return [src.wrap(body[first], body[last], f"with {torch}.no_grad():", replacement=lines)]


def _clears(src: SourceFile, where: ast.AST, name: str) -> bool:
    """Whether ``where`` already clears ``name``'s gradient."""
    if calls_method(where, "zero_grad"):
        return True
    text = src.segment(where) or ""
    return any(s in text for s in (f"{name}.grad = None", f"{name}.grad.zero_()", f"{name}.grad.data.zero_()"))


def _trailing_comment(src: SourceFile, stmt: ast.stmt) -> str:
    """``"  # note"`` when ``stmt``'s last line ends with a comment (kept on the rewritten line), else ``""``."""
    raw = src.lines[(stmt.end_lineno or stmt.lineno) - 1].encode("utf-8")
    rest = raw[stmt.end_col_offset or len(raw):].decode("utf-8").strip()
    return f"  {rest}" if rest.startswith("#") else ""
