"""Fix for ``missing-zero-grad``: clear the gradients once per update.

With an optimizer (the loop calls ``X.step()``), ``X.zero_grad()`` goes first in the training loop's body,
before the forward pass, at the loop's own indentation; when ``step()`` runs only on some iterations (an
``if`` around it: gradient accumulation), right after the ``step()`` instead, so accumulation keeps working.
The optimizer is the one whose ``step()`` is at the finding's line, else the one stepped in the enclosing
loop that the loop never clears. In a manual loop (no optimizer), ``w.grad = None`` for each parameter the
finding names goes after the last update statement (the finding's related location); when the update runs
in ``for p in model.parameters():``, ``p.grad = None`` goes after it in that loop.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .source import SourceFile, calls_method, holder_name

if TYPE_CHECKING:
    from ..findings import Finding
    from .edits import Edit


def fix(finding: Finding, src: SourceFile) -> list[Edit] | str:
    assert finding.location is not None
    stmt = src.statement_at(finding.location.line)
    if stmt is None:
        return "no statement at the finding's line"
    step = _optimizer_step(src, stmt)
    if step is not None:
        return _optimizer_fix(src, step)
    return _manual_fix(finding, src, stmt)


def _optimizer_names(src: SourceFile, node: ast.AST) -> dict[str, ast.Call]:
    """``X`` -> its ``X.step()`` call under ``node``, schedulers left out."""
    schedulers = {t.id for n in ast.walk(src.tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                  and "lr_scheduler" in (src.segment(n.value.func) or "") for t in n.targets if isinstance(t, ast.Name)}
    out: dict[str, ast.Call] = {}
    for call in sorted(calls_method(node, "step"), key=lambda c: (c.lineno, c.col_offset)):
        name = src.segment(call.func.value) or ""  # type: ignore[attr-defined]
        if name and name not in schedulers and "sched" not in name.lower() and not call.args:
            out.setdefault(name, call)
    return out


def _optimizer_step(src: SourceFile, stmt: ast.stmt) -> tuple[str, ast.Call] | None:
    here = _optimizer_names(src, stmt)
    if len(here) == 1:
        return next(iter(here.items()))
    for loop in src.enclosing_loops(stmt):
        stepped = _optimizer_names(src, loop)
        if not stepped:
            continue
        cleared = {src.segment(c.func.value) for c in calls_method(loop, "zero_grad")}  # type: ignore[attr-defined]
        uncleared = [(n, c) for n, c in stepped.items() if n not in cleared]
        if len(uncleared) == 1:
            return uncleared[0]
        if len(stepped) == 1:
            return next(iter(stepped.items()))
        return None
    return None


def _optimizer_fix(src: SourceFile, step: tuple[str, ast.Call]) -> list[Edit] | str:
    name, call = step
    step_stmt = next((p for p in (call, *src.parents(call)) if isinstance(p, ast.stmt)), None)
    assert step_stmt is not None
    loops = src.enclosing_loops(step_stmt)
    if not loops:
        return f"{name}.step() is not inside a loop; call {name}.zero_grad() once per step by hand"
    loop = loops[0]
    line = f"{name}.zero_grad()"
    if step_stmt in loop.body:
        return [src.insert_before(loop.body[0], [line])]
    return [src.insert_after(step_stmt, [line])]


def _manual_fix(finding: Finding, src: SourceFile, stmt: ast.stmt) -> list[Edit] | str:
    assert finding.location is not None
    updates = [src.statement_at(r.line) for r in finding.related_locations if r.file == finding.location.file]
    updates = [u for u in updates if u is not None]
    names = [n for n in (holder_name(s) for s in finding.subject) if n]
    if not names or len(names) != len(finding.subject):
        for update in updates:  # ``for p in model.parameters(): p.data -= lr * p.grad``
            per_parameter = _parameter_loop_var(src, update)
            if per_parameter is not None:
                names = [per_parameter]
                break
        else:
            return "the parameters are not plain variables of this file (nor updated in a loop over " \
                   "parameters()); clear their .grad after the update by hand"
    if not updates:
        loops = src.enclosing_loops(stmt)
        if not loops:
            return "no update statement found to clear the gradients after"
        updates = [n for n in ast.walk(loops[0]) if isinstance(n, ast.AugAssign)
                   and src.segment(n.target) in names]
        if not updates:
            return "no update statement found to clear the gradients after"
    last = max(updates, key=lambda u: u.lineno)
    holding = src.body_holding(last)
    if holding is not None:  # also past later sibling updates of the same parameters
        body, _ = holding
        for sibling in body[body.index(last) + 1:]:
            if any(f"{n}.grad" in (src.segment(sibling) or "") for n in names):
                last = sibling
            else:
                break
    order = sorted(names, key=lambda n: (src.text.find(f"{n}.grad"), n))
    return [src.insert_after(last, [f"{n}.grad = None" for n in order])]


def _parameter_loop_var(src: SourceFile, update: ast.stmt) -> str | None:
    """``p`` when ``update`` reads ``p.grad`` inside ``for p in X.parameters():``, else None."""
    for loop in src.enclosing_loops(update):
        if isinstance(loop, ast.For) and isinstance(loop.target, ast.Name) and isinstance(loop.iter, ast.Call) \
                and isinstance(loop.iter.func, ast.Attribute) and loop.iter.func.attr == "parameters":
            name = loop.target.id
            return name if f"{name}.grad" in (src.segment(update) or "") else None
    return None
