"""Fix for a graph carried across iterations (``backward-through-freed-graph``, or ``graph-retained`` held
by an RNN state): detach it once per iteration.

When the statement at the finding's line both reads and rebinds the variable (``out, h = model(x, h)``),
it is carried state: ``h = h.detach()`` goes first in the body of the loop that runs backward. When it only
reads it (a GAN's ``D(fake)``), each use as a call argument on that line becomes ``fake.detach()``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .edits import Edit
from .source import SourceFile, calls_method, holder_name

if TYPE_CHECKING:
    from ..findings import Finding


def fix(finding: Finding, src: SourceFile) -> list[Edit] | str:
    assert finding.location is not None
    stmt = src.statement_at(finding.location.line)
    names = [n for n in (holder_name(s) for s in finding.subject) if n and "." not in n]
    if stmt is None or not names:
        return "the finding names no variable to detach"
    name = names[0]
    if _binds(stmt, name) and _reads(stmt, name):
        for loop in src.enclosing_loops(stmt):
            if calls_method(loop, "backward"):
                first = loop.body[0]
                line = f"{name} = {name}.detach()"
                if src.lines[first.lineno - 1].strip() == line:
                    return f"{name} is already detached at the top of the loop"
                return [src.insert_before(first, [line])]
        return f"no loop with a backward() call carries {name}"
    args = [a for node in ast.walk(stmt) if isinstance(node, ast.Call)
            for a in (*node.args, *(k.value for k in node.keywords)) if isinstance(a, ast.Name) and a.id == name]
    args = [a for a in args if a.lineno == finding.location.line]
    if not args:
        return f"no use of {name} to detach at this line"
    if any(a.lineno != a.end_lineno for a in args):
        return "the statement spans several lines; detach by hand"
    raw = src.lines[finding.location.line - 1].encode("utf-8")  # ast offsets count UTF-8 bytes
    for arg in sorted(args, key=lambda a: a.col_offset, reverse=True):  # right to left keeps offsets valid
        raw = raw[:arg.col_offset] + f"{name}.detach()".encode() + raw[arg.end_col_offset:]
    line = finding.location.line
    return [Edit(line - 1, line, (raw.decode("utf-8"),))]


def _binds(stmt: ast.stmt, name: str) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
        stmt, (ast.AugAssign, ast.AnnAssign)) else []
    return any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t))


def _reads(stmt: ast.stmt, name: str) -> bool:
    value = getattr(stmt, "value", None)
    return value is not None and any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(value))
