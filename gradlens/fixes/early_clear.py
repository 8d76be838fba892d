"""Fix for ``zero-grad-before-step``: move the ``zero_grad()`` that runs between ``backward()`` and
``step()`` to just after the ``step()``.

After the step is the one place that is right in every loop shape: the update has used the gradients, and
the next forward starts from cleared ones (gradient accumulation over several backward passes keeps working,
which moving it before ``backward()`` would not guarantee). The finding's location is the ``zero_grad()``
(its root line, rootlines.py) and its related location the ``step()`` that noticed it; both statements must
sit in the same block, the clear before the step, or the writer declines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .edits import Edit
from .source import calls_method

if TYPE_CHECKING:
    from ..findings import Finding
    from .source import SourceFile


def fix(finding: Finding, src: SourceFile) -> list[Edit] | str:
    assert finding.location is not None
    clear = src.statement_at(finding.location.line)
    if clear is None or not calls_method(clear, "zero_grad"):
        return "the finding's line is not a zero_grad() call"
    steps = [r for r in finding.related_locations if r.file == finding.location.file]
    step = src.statement_at(steps[0].line) if steps else None
    if step is None or not calls_method(step, "step"):
        return "the step() that followed the clear is not in this file"
    holding = src.body_holding(clear)
    if holding is None or step not in holding[0] or holding[0].index(step) < holding[0].index(clear):
        return "zero_grad() and step() are not in the same block; move the clear after step() by hand"
    start, end = src.span(clear)
    moved = tuple(src.lines[start:end])
    _, after = src.span(step)
    return [Edit(start, end, ()), Edit(after, after, moved)]
