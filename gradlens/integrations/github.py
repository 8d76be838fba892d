"""GitHub Actions output: findings as workflow annotations (``::error file=...,line=...::message``).

GitHub shows at most 10 annotations of each type (error, warning, notice) per step and drops the rest, so
``annotations`` writes at most ``MAX_PER_TYPE`` of each, most severe first, then one line counting what was
left out. An annotation sits on the finding's root line (the line to edit); the lines where the symptom was
noticed are named in its text. The full list goes to the job summary (``$GITHUB_STEP_SUMMARY``) as a
Markdown table when that file is set. ``gradlens report`` and the pytest plugin emit them when ``GITHUB_ACTIONS=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TextIO

from ..findings import Finding
from ..report.base import display_path

__all__ = ["in_github_actions", "annotations", "annotation_lines", "step_summary", "MAX_PER_TYPE"]

MAX_PER_TYPE = 10
"""GitHub's cap on annotations of one type (error, warning, notice) per step."""

_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a GitHub Actions job (``GITHUB_ACTIONS=true``)."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _root(root: str, environ: Mapping[str, str]) -> str:
    return environ.get("GITHUB_WORKSPACE") or root or os.getcwd()


def _order(findings: Iterable[Finding]) -> list[Finding]:
    rank = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: rank.get(f.severity, 3))


def annotation_lines(findings: Iterable[Finding], root: str = "",
                     environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, int]]:
    """The workflow-command lines for the findings, capped per type, and how many of each type were left out.

    Args:
        findings: the findings to annotate.
        root: the directory paths are made relative to (``$GITHUB_WORKSPACE`` wins when set).
        environ: the environment to read (default ``os.environ``).

    Returns:
        ``(lines, left_out)`` where ``left_out`` maps ``"error"``/``"warning"``/``"notice"`` to a count.

    Example:
        >>> f = Finding("missing-zero-grad", "error", "Call zero_grad().")
        >>> annotation_lines([f], environ={})[0]
        ['::error title=gradlens (missing-zero-grad)::Call zero_grad().']
    """
    env = os.environ if environ is None else environ
    base = _root(root, env)
    lines: list[str] = []
    shown: dict[str, int] = {}
    left_out: dict[str, int] = {}
    for f in _order(findings):
        command = _COMMAND.get(f.severity, "warning")
        if shown.get(command, 0) >= MAX_PER_TYPE:
            left_out[command] = left_out.get(command, 0) + 1
            continue
        shown[command] = shown.get(command, 0) + 1
        props = []
        if f.location is not None:
            props.append(f"file={_escape_property(display_path(f.location.file, base))}")
            props.append(f"line={f.location.line}")
        props.append(f"title={_escape_property(f'gradlens ({f.kind})')}")
        step = f" (first at step {f.step})" if f.step is not None else ""
        lines.append(f"::{command} {','.join(props)}::{_escape_data(f.message + step + _noticed(f, base))}")
    return lines, left_out


def _noticed(f: Finding, base: str) -> str:
    """The related lines (where the symptom was noticed), which an annotation cannot point at itself."""
    if not f.related_locations:
        return ""
    return " (noticed at " + ", ".join(f"{display_path(r.file, base)}:{r.line}" for r in f.related_locations) + ")"


def step_summary(findings: Iterable[Finding], root: str = "") -> str:
    """All findings as a Markdown table for the job summary (nothing is capped there)."""
    rows = ["### gradlens", "", "| severity | rule | where | first step | count | message |",
            "| --- | --- | --- | --- | --- | --- |"]
    found = _order(findings)
    for f in found:
        where = f"`{display_path(f.location.file, root)}:{f.location.line}`" if f.location else ""
        where += _noticed(f, root)
        msg = f.message.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {f.severity} | `{f.kind}` | {where} | {f.step if f.step is not None else ''} | "
                    f"{f.count} | {msg} |")
    if not found:
        rows = ["### gradlens", "", "No findings."]
    return "\n".join(rows) + "\n"


def annotations(findings: Iterable[Finding], stream: TextIO, root: str = "",
                environ: Mapping[str, str] | None = None) -> int:
    """Write the findings as GitHub annotations to ``stream``, capped as GitHub caps them, and append the
    full list to ``$GITHUB_STEP_SUMMARY`` when it is set.

    Args:
        findings: the findings to annotate.
        stream: where the workflow commands go (the step's stdout or stderr).
        root: the directory paths are made relative to (``$GITHUB_WORKSPACE`` wins when set).
        environ: the environment to read (default ``os.environ``).

    Returns:
        The number of findings left out of the annotations.
    """
    env = os.environ if environ is None else environ
    found = list(findings)
    lines, left_out = annotation_lines(found, root, env)
    for line in lines:
        stream.write(line + "\n")
    missing = sum(left_out.values())
    if missing:
        parts = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(left_out.items()))
        where = "; all are listed in the job summary" if env.get("GITHUB_STEP_SUMMARY") else ""
        plural = "s" if missing != 1 else ""
        stream.write(f"gradlens: {missing} more finding{plural} not annotated ({parts}): "
                     f"GitHub shows at most {MAX_PER_TYPE} annotations of each type per step{where}\n")
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(step_summary(found, _root(root, env)))
        except OSError:
            pass  # a summary is a courtesy; the annotations are already out
    stream.flush()
    return missing
