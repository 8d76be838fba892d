"""The plain-text report of a watched run (``lens.report()``): findings by severity, then what could not
be checked."""

from __future__ import annotations

from collections.abc import Iterable

from ..findings import SEVERITIES, Finding

__all__ = ["render_text"]


def render_text(
    findings: Iterable[Finding], not_checked: Iterable[str] = (), steps: int = 0, engines: Iterable[str] = ()
) -> str:
    """Render findings as readable text.

    Args:
        findings: the findings to show.
        not_checked: what could not be checked, in words.
        steps: optimizer steps watched.
        engines: engine names watched.

    Returns:
        The report, ending with a newline.

    Example:
        >>> print(render_text([], steps=3), end="")
        gradlens: 3 optimizer steps watched; no findings.
    """
    order = {s: i for i, s in enumerate(SEVERITIES)}
    items = sorted(findings, key=lambda f: (order.get(f.severity, 9), f.step or 0))
    eng = f" ({', '.join(engines)})" if engines else ""
    lines = []
    if not items:
        lines.append(f"gradlens: {steps} optimizer steps watched{eng}; no findings.")
    else:
        lines.append(f"gradlens: {steps} optimizer steps watched{eng}; {len(items)} findings.")
    for f in items:
        where = f" at {f.location}" if f.location else ""
        when = (
            f" (first at step {f.step}" + (f", seen {f.count}x)" if f.count > 1 else ")")
            if f.step is not None
            else (f" (seen {f.count}x)" if f.count > 1 else "")
        )
        lines.append("")
        lines.append(f"[{f.severity}] {f.kind}{when}{where}")
        lines.append(f"  {f.message}")
        if f.subject:
            lines.append(f"  subject: {', '.join(f.subject[:8])}" + (" ..." if len(f.subject) > 8 else ""))
        shown = {k: v for k, v in f.evidence.items() if v is not None}
        if shown:
            lines.append("  evidence: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    notes = list(not_checked)
    if notes:
        lines.append("")
        lines.append("not checked:")
        lines.extend(f"  - {n}" for n in notes)
    return "\n".join(lines) + "\n"
