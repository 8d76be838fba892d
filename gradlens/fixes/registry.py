"""The fix registry (rule slug -> fix writer) and ``plan_fixes``, which runs the writers over a record.

A fix writer is ``writer(finding, source) -> list[Edit] | str``: the edits that fix the finding in its
file, or one sentence saying why this finding has no mechanical fix. ``plan_fixes`` reads each file once
(now: the fix is against the file as it is), refuses files outside the run's directory and lines that no
longer hold the statement the record saw, and keeps one ``FileFix`` per file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import early_clear, eval_mode, hidden_state, manual_update, retention, zero_grad
from .edits import Edit, FileFix
from .source import SourceFile

if TYPE_CHECKING:
    from ..findings import Finding
    from ..record import RunRecord

__all__ = ["FIXERS", "Fix", "Skipped", "FixPlan", "plan_fixes"]

Writer = Callable[["Finding", SourceFile], "list[Edit] | str"]

FIXERS: dict[str, Writer] = {
    "graph-retained": retention.fix,
    "missing-zero-grad": zero_grad.fix,
    "zero-grad-before-step": early_clear.fix,
    "graph-without-backward": eval_mode.fix,
    "backward-through-freed-graph": hidden_state.fix,
    "inplace-on-leaf": manual_update.fix_inplace,
    "leaf-rebound": manual_update.fix_rebound,
}
"""Rule slugs with a mechanical fix, and the writer of each."""


@dataclass(frozen=True)
class Fix:
    """A finding whose fix was planned: ``where`` is ``file:line`` relative to the run's root."""

    rule: str
    where: str


@dataclass(frozen=True)
class Skipped:
    """A finding that gets no diff, and why (one sentence)."""

    rule: str
    where: str
    reason: str


@dataclass
class FixPlan:
    """The fixes planned for a record.

    Attributes:
        files: one ``FileFix`` per file with accepted edits, in the order first met.
        fixed: the findings that got edits.
        skipped: the findings that did not, each with its reason.
    """

    files: list[FileFix] = field(default_factory=list)
    fixed: list[Fix] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def diff(self) -> str:
        """One unified diff over every file (``a/``, ``b/`` paths relative to the run's root)."""
        return "".join(f.diff() for f in self.files if f.edits)

    def apply(self, backup_suffix: str = ".orig") -> list[tuple[str, str]]:
        """Write the patched files, each after copying the original to ``path + backup_suffix``.

        Returns:
            ``(path, backup path)`` for each file written.

        Raises:
            OSError: a file or its backup cannot be written.
        """
        done = []
        for f in self.files:
            if not f.edits:
                continue
            backup = f.path + backup_suffix
            shutil.copy2(f.path, backup)
            with open(f.path, "w", encoding="utf-8", newline="") as fh:
                fh.write("".join(f.patched()))
            done.append((f.path, backup))
        return done


def plan_fixes(record: RunRecord, fixers: dict[str, Writer] | None = None) -> FixPlan:
    """Plan a fix for every finding of ``record`` that has a mechanical one.

    Args:
        record: the run (its ``root`` resolves relative paths; its statements check the files are unchanged).
        fixers: the registry to use (default ``FIXERS``).

    Returns:
        The ``FixPlan``; nothing is written.
    """
    fixers = FIXERS if fixers is None else fixers
    root = record.root or os.getcwd()
    plan = FixPlan()
    sources: dict[str, SourceFile | str] = {}
    files: dict[str, FileFix] = {}
    for finding in record.sorted_findings():
        loc = finding.location
        where = "(no source location)"
        if loc is not None:
            path = loc.file if os.path.isabs(loc.file) else os.path.join(root, loc.file)
            relative = os.path.relpath(path, root)
            where = f"{relative}:{loc.line}"
        writer = fixers.get(finding.kind)
        if writer is None:
            plan.skipped.append(Skipped(finding.kind, where, f"{finding.kind} has no mechanical fix; the report says "
                                        "what to change"))
            continue
        if loc is None or loc.line < 1:
            plan.skipped.append(Skipped(finding.kind, where, "the finding has no source line to fix"))
            continue
        if relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
            plan.skipped.append(Skipped(finding.kind, where, "the file is outside the run's directory (library "
                                        "code); fix the calling code instead"))
            continue
        source = sources.get(path)
        if source is None:
            source = sources[path] = _read(path)
        if isinstance(source, str):
            plan.skipped.append(Skipped(finding.kind, where, source))
            continue
        seen = record.statement(finding)
        now = source.lines[loc.line - 1].strip() if loc.line <= len(source.lines) else ""
        if seen is not None and seen != now:
            plan.skipped.append(Skipped(finding.kind, where, "the file changed since the run (line "
                                        f"{loc.line} no longer reads {seen!r}); run gradlens report again"))
            continue
        result = writer(finding, source)
        if isinstance(result, str):
            plan.skipped.append(Skipped(finding.kind, where, result))
            continue
        fix = files.get(path)
        if fix is None:
            fix = files[path] = FileFix(path, relative.replace(os.sep, "/"), list(source.lines))
            plan.files.append(fix)
        if fix.accepts(result):
            plan.fixed.append(Fix(finding.kind, where))
        else:
            plan.skipped.append(Skipped(finding.kind, where, "its fix overlaps another fix in this diff; apply "
                                        "the diff and run gradlens report --fix again"))
    return plan


def _read(path: str) -> SourceFile | str:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {exc}"
    try:
        return SourceFile(path, text)
    except SyntaxError as exc:
        return f"{path} does not parse ({exc.msg}, line {exc.lineno}); fix that first"
