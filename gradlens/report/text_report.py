"""The text report of ``gradlens report`` and of ``lens.report()``: what ran, the findings grouped by rule
(most severe first), how the script ended, what was not checked, and a one-line summary.

Each finding shows ``file:line``, the statement there (snapshotted while the script ran), the message
(what happened and the fix), the numbers behind it and how often it was seen. Colour is used only when
asked for (the CLI asks when the output is a terminal and ``NO_COLOR`` is unset). A record with no
command is an in-code watch: its header and summary leave out the script and the exit status.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from itertools import groupby
from typing import TYPE_CHECKING, Any

from ..findings import Finding
from .base import display_path

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["TextReporter", "summary_line"]

_COLORS = {"error": "1;31", "warning": "1;33", "info": "1;36", "dim": "2", "bold": "1", "ok": "1;32"}
_WIDTH = 100


def summary_line(record: RunRecord) -> str:
    """``"2 findings (1 error, 1 warning) in 20 optimizer steps; exit status 0"``."""
    counts: dict[str, int] = {}
    for f in record.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    n = len(record.findings)
    parts = ", ".join(f"{c} {sev}{'s' if c > 1 else ''}" for sev, c in
                      sorted(counts.items(), key=lambda kv: ("error", "warning", "info").index(kv[0])
                             if kv[0] in ("error", "warning", "info") else 9))
    found = f"{n} finding{'s' if n != 1 else ''}" + (f" ({parts})" if parts else "")
    steps = f"{record.steps} optimizer step{'s' if record.steps != 1 else ''}"
    if not record.command:  # an in-code watch (lens.report()): there is no script and no exit status
        return f"{found} in {steps}"
    return f"{found} in {steps}; exit status {record.exit_status}"


class TextReporter:
    """Renders a record as text for a terminal or a log file.

    Args:
        color: use ANSI colours.

    Example:
        >>> from gradlens.record import RunRecord
        >>> print(TextReporter().render(RunRecord(command=("train.py",), steps=3)).splitlines()[-1])
        gradlens: no findings in 3 optimizer steps; exit status 0
    """

    def __init__(self, color: bool = False):
        self.color = color

    def _c(self, style: str, text: str) -> str:
        if not self.color or style not in _COLORS:
            return text
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m"

    def render(self, record: RunRecord) -> str:
        lines = [self._header(record)]
        findings = record.sorted_findings()
        for (_, kind), group in groupby(findings, key=lambda f: (f.severity, f.kind)):
            items = list(group)
            sev = items[0].severity
            lines.append("")
            title = f"{sev.upper()} {kind}"
            lines.append(self._c(sev, title) + (f" ({len(items)} places)" if len(items) > 1 else ""))
            for f in items:
                lines.extend(self._finding(record, f))
        if record.crash is not None:
            lines.append("")
            what = "was interrupted" if record.crash.kind == "interrupt" else "crashed"
            detail = f"{record.crash.type}: {record.crash.message}".rstrip(": ")
            lines.append(self._c("error", f"The script {what}") + f": {detail}")
            lines.append("  The findings above cover the run up to that point.")
        if record.not_checked:
            lines.append("")
            lines.append("Not checked in this run:")
            for note in record.not_checked:
                lines.extend(_wrap(note, "  - ", "    "))
        lines.append("")
        summary = summary_line(record)
        if not record.findings:
            summary = "no findings" + summary[len("0 findings"):]
        style = "error" if any(f.severity == "error" for f in findings) else \
            "warning" if findings else "ok"
        lines.append(self._c(style, "gradlens:") + " " + summary)
        return "\n".join(lines) + "\n"

    def _header(self, record: RunRecord) -> str:
        engines = ", ".join(record.engines) if record.engines else "no engine seen"
        title = f"gradlens report: {' '.join(record.command)}" if record.command else "gradlens watch"
        return self._c("bold", title) + self._c("dim", f"  [{engines}]")

    def _finding(self, record: RunRecord, f: Finding) -> list[str]:
        out = []
        where = "(no source location)"
        if f.location is not None:
            where = f"{display_path(f.location.file, record.root)}:{f.location.line}"
            if f.location.function and f.location.function != "<module>":
                where += f" in {f.location.function}"
        when = []
        if f.step is not None:
            when.append(f"first at step {f.step}")
        if f.count > 1:
            when.append(f"seen {f.count} times")
        timing = self._c("dim", "  (" + ", ".join(when) + ")") if when else ""
        out.append("  " + self._c("bold", where) + timing)
        statement = record.statement(f)
        if statement:
            out.append("    > " + statement)
        out.extend(_wrap(f.message, "    ", "    "))
        if f.subject:
            more = f" and {len(f.subject) - 6} more" if len(f.subject) > 6 else ""
            shown = ", ".join(f.subject[:6]) + more
            out.extend(_wrap(shown, "    concerns: ", "      "))
        numbers = _numbers(f.evidence)
        if numbers:
            out.extend(self._c("dim", line) for line in _wrap(numbers, "    numbers: ", "      "))
        return out


def _numbers(evidence: Mapping[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value[:6])) + (" ..." if len(value) > 6 else "")
        parts.append(f"{key}={value}")
    return "; ".join(parts)


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=_WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]
