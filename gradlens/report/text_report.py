"""The text report of ``gradlens report`` and of ``lens.report()``: what ran, the findings grouped by rule
(most severe first), how the script ended, what was not checked, and a one-line summary.

Each finding shows ``file:line``, a few source lines around it with the offending line marked (as pytest
shows a failing assert; snapshotted while the script ran), where the symptom was noticed when that is
elsewhere, the message (what happened and the fix), the numbers behind it and how often it was seen. The
summary names both exit statuses: the script's own and the one gradlens exits with (and why). Colour is used only when
asked for (the CLI asks when the output is a terminal and ``NO_COLOR`` is unset). A record with no
command is an in-code watch: its header and summary leave out the script and the exit status.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from itertools import groupby
from typing import TYPE_CHECKING, Any

from ..findings import Finding, Location
from ..record import severity_rank
from .base import display_path

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["TextReporter", "summary_line", "gradlens_status", "source_lines", "where"]

_COLORS = {"error": "1;31", "warning": "1;33", "info": "1;36", "dim": "2", "bold": "1", "ok": "1;32"}
_WIDTH = 100


def gradlens_status(record: RunRecord, fail_on: str = "warning") -> int:
    """The status ``gradlens report`` exits with after running the script: the script's own non-zero status
    wins; else 1 when a finding reaches ``fail_on``; else 0 (``gradlens.cli`` names these constants)."""
    return record.exit_status or (1 if record.reaches(fail_on) else 0)


def summary_line(record: RunRecord, fail_on: str = "warning", status: int | None = None) -> str:
    """``"2 findings (1 error, 1 warning) in 20 training steps; the script exited 0; gradlens exits 1
    (an error-severity finding at or above --fail-on warning)"``.

    Args:
        record: the run.
        fail_on: the ``--fail-on`` severity the status was judged against.
        status: the status gradlens exits with; default ``gradlens_status(record, fail_on)``.
    """
    counts: dict[str, int] = {}
    for f in record.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    n = len(record.findings)
    parts = ", ".join(f"{c} {sev}{'s' if c > 1 else ''}" for sev, c in
                      sorted(counts.items(), key=lambda kv: severity_rank(kv[0])))
    found = f"{n} finding{'s' if n != 1 else ''}" + (f" ({parts})" if parts else "")
    steps = f"{record.steps} training step{'s' if record.steps != 1 else ''}"
    if not record.command:  # an in-code watch (lens.report()): there is no script and no exit status
        return f"{found} in {steps}"
    status = gradlens_status(record, fail_on) if status is None else status
    return f"{found} in {steps}; the script exited {record.exit_status}; gradlens exits {status}" + \
        _status_reason(record, fail_on, status)


def _status_reason(record: RunRecord, fail_on: str, status: int) -> str:
    if status and status == record.exit_status:
        return " (the script's own status)"
    if status:
        worst = min((f.severity for f in record.findings), key=severity_rank, default="")
        if worst and record.reaches(fail_on):
            return f" (an {worst}-severity finding at or above --fail-on {fail_on})" if worst[0] in "aeiou" \
                else f" (a {worst}-severity finding at or above --fail-on {fail_on})"
        return ""
    if record.findings:
        return f" (no finding reaches --fail-on {fail_on})"
    return ""


def where(location: Location, root: str) -> str:
    """``file:line in function``, the file relative to ``root`` when it lies under it."""
    text = f"{display_path(location.file, root)}:{location.line}"
    if location.function and location.function != "<module>":
        text += f" in {location.function}"
    return text


def source_lines(record: RunRecord, location: Location | None) -> list[tuple[int, str, bool]]:
    """The snapshotted lines around ``location`` as ``(number, text, is_the_location)``, dedented together;
    just the statement when the record has no window (an older record); empty when nothing was read."""
    if location is None:
        return []
    window = record.window(location)
    if window is None:
        statement = record.statements.get(f"{location.file}:{location.line}")
        return [(location.line, statement, True)] if statement else []
    text = textwrap.dedent("\n".join(line.expandtabs(4) for line in window.lines)).split("\n")
    return [(window.first + i, line.rstrip(), window.first + i == location.line) for i, line in enumerate(text)]


class TextReporter:
    """Renders a record as text for a terminal or a log file.

    Args:
        color: use ANSI colours.

    Example:
        >>> from gradlens.record import RunRecord
        >>> print(TextReporter().render(RunRecord(command=("train.py",), steps=3)).splitlines()[-1])
        gradlens: no findings in 3 training steps; the script exited 0; gradlens exits 0
    """

    def __init__(self, color: bool = False, fail_on: str = "warning", status: int | None = None):
        self.color = color
        self.fail_on = fail_on
        self.status = status

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
        summary = summary_line(record, self.fail_on, self.status)
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
        place = where(f.location, record.root) if f.location is not None else "(no source location)"
        when = []
        if f.step is not None:
            when.append(f"first at step {f.step}")
        if f.count > 1:
            when.append(f"seen {f.count} times")
        timing = self._c("dim", "  (" + ", ".join(when) + ")") if when else ""
        out.append("  " + self._c("bold", place) + timing)
        out.extend(self._source(record, f.location))
        for related in f.related_locations:
            statement = record.statements.get(f"{related.file}:{related.line}")
            out.append(self._c("dim", f"    noticed at {where(related, record.root)}"
                                      + (f": {statement}" if statement else "")))
        out.extend(_wrap(f.message, "    ", "    "))
        if f.subject:
            more = f" and {len(f.subject) - 6} more" if len(f.subject) > 6 else ""
            shown = ", ".join(f.subject[:6]) + more
            out.extend(_wrap(shown, "    concerns: ", "      "))
        numbers = _numbers(f.evidence)
        if numbers:
            out.extend(self._c("dim", line) for line in _wrap(numbers, "    numbers: ", "      "))
        return out

    def _source(self, record: RunRecord, location: Location | None) -> list[str]:
        """The lines around the location, the offending one marked with ``>`` (pytest's style)."""
        lines = source_lines(record, location)
        if not lines:
            return []
        width = len(str(lines[-1][0]))
        out = []
        for number, text, marked in lines:
            row = f"{number:>{width}} | {text}".rstrip()
            marker = self._c("error", "> ") + self._c("bold", row) if marked else "  " + self._c("dim", row)
            out.append("    " + marker)
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
