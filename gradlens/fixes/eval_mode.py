"""Fix for ``graph-without-backward``: run the evaluation forward under ``torch.no_grad()``.

The finding's line is the forward call outside ``no_grad``. When it sits in a loop that never calls
``backward()`` (an evaluation loop), the whole loop goes inside ``with torch.no_grad():``; otherwise (an
evaluation forward inside the training loop, or an evaluation function called from it) the statements of
its block from that line to the block's end that do not call ``backward()`` are wrapped, so the rest of the
evaluation (``loss.item()``, ``correct += ...``) stays in it. The name used for torch is the script's own.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .source import SourceFile, calls_method, in_no_grad

if TYPE_CHECKING:
    from ..findings import Finding
    from .edits import Edit


def fix(finding: Finding, src: SourceFile) -> list[Edit] | str:
    assert finding.location is not None
    stmt = src.statement_at(finding.location.line)
    if stmt is None:
        return "no statement at the finding's line"
    if in_no_grad(src, stmt):
        return "the line already runs under no_grad(); the graph comes from elsewhere"
    if calls_method(stmt, "backward"):
        return "the statement also calls backward(); move the evaluation out of it by hand"
    torch = src.torch_name(src.scope_of(stmt))
    if torch is None:
        return "the script's name for torch was not found; wrap the evaluation in torch.no_grad() by hand"
    header = f"with {torch}.no_grad():"
    for loop in src.enclosing_loops(stmt):
        if calls_method(loop, "backward"):
            break
        if src.body_holding(loop) is not None:
            return [src.wrap(loop, loop, header)]
    holding = src.body_holding(stmt)
    if holding is None:
        return "the statement is not in a block of statements"
    body, _ = holding
    last = stmt
    for sibling in body[body.index(stmt) + 1:]:
        if calls_method(sibling, "backward") or isinstance(sibling, (ast.Return, ast.Break, ast.Continue)) \
                or _is_step(sibling):
            break
        last = sibling
    return [src.wrap(stmt, last, header)]


def _is_step(stmt: ast.stmt) -> bool:
    return bool(calls_method(stmt, "step") or calls_method(stmt, "zero_grad"))
