"""The HTML report: one self-contained file that works offline (no script, font or style from a network).

It shows what ran, one card per rule, each finding with the source lines around it (the offending line
marked), where the symptom was noticed, its numbers and fix, and for each
finding that carries a graph the drawing of that graph as inline SVG — nodes created in earlier training
steps are highlighted by ``gradlens.export`` — laid out by Graphviz when ``dot`` is installed, else (or when
its layout fails) by gradlens's own layout. The record itself is embedded as JSON, so the file
is also a record that other tools can read back.
"""

from __future__ import annotations

import html
import json
import shutil
from typing import TYPE_CHECKING, Any

from ..findings import Finding
from . import health_svg
from .text_report import _numbers, gradlens_status, source_lines, summary_line, where

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["HtmlReporter"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.4em;margin:0 0 4px} h2{font-size:1.15em;margin:28px 0 8px} h3{font-size:1em;margin:0 0 6px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow:auto}
.meta{color:#57606a} .meta span{margin-right:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #d0d7de;border-left:6px solid #8c959f;border-radius:6px;
padding:8px 12px;min-width:200px}
.card b{display:block}
.error{border-left-color:#cf222e} .warning{border-left-color:#bf8700} .info{border-left-color:#0969da}
.finding{background:#fff;border:1px solid #d0d7de;border-left:6px solid #8c959f;border-radius:6px;
padding:12px 16px;margin:12px 0}
.sev{display:inline-block;font-size:.75em;font-weight:600;text-transform:uppercase;padding:1px 6px;
border-radius:10px;color:#fff;background:#8c959f;margin-right:6px}
.sev.error{background:#cf222e} .sev.warning{background:#9a6700} .sev.info{background:#0969da}
.where{font-family:ui-monospace,Menlo,Consolas,monospace} .when{color:#57606a;margin-left:8px}
.stmt{background:#fff8c5;border-color:#d4a72c}
.src{padding:6px 0} .src span{display:block;padding:0 10px;color:#57606a}
.src span.hit{background:#fff8c5;color:#1f2328;font-weight:600;border-left:3px solid #d4a72c;padding-left:7px}
.related{color:#57606a;font-size:.9em;margin:0 0 6px}
.numbers{color:#57606a;font-size:.9em}
.graph{overflow:auto;border:1px solid #d0d7de;border-radius:6px;background:#fff;margin-top:8px;
max-height:80vh}
.graph svg{max-width:100%;height:auto}
.note{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:6px 10px}
.crash{border-left-color:#cf222e}
.ok{color:#1a7f37;font-weight:600}
footer{color:#57606a;font-size:.85em;margin-top:32px}
"""

_HIT = "<span class=\"hit\">&gt; {n} | {text}</span>"
_ROW = "<span>&nbsp; {n} | {text}</span>"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


class HtmlReporter:
    """Renders a record as a single offline HTML page.

    Args:
        graphviz: whether to lay graphs out with Graphviz; None (default) does when ``dot`` is on PATH;
            otherwise gradlens's own layout draws them.
        timeout: seconds one Graphviz layout may take before gradlens's own layout draws the graph instead.
        fail_on: the ``--fail-on`` severity gradlens's exit status was judged against (for the summary).
        status: the status gradlens exits with (default: as ``gradlens report`` would after the run).

    Attributes:
        notes: one line per problem met while rendering (Graphviz missing, a layout that failed), for the
            caller to show.

    Example:
        >>> from gradlens.record import RunRecord
        >>> HtmlReporter(graphviz=False).render(RunRecord()).startswith("<!DOCTYPE html>")
        True
    """

    def __init__(self, graphviz: bool | None = None, timeout: float = 60.0, fail_on: str = "warning",
                 status: int | None = None):
        self.graphviz = graphviz
        self.fail_on = fail_on
        self.status = status
        self.timeout = timeout
        self.notes: list[str] = []
        self._draw = False

    def render(self, record: RunRecord) -> str:
        self.notes = []
        self._draw = self.graphviz if self.graphviz is not None else shutil.which("dot") is not None
        findings = record.sorted_findings()
        body = [self._header(record), self._cards(findings)]
        if record.crash is not None:
            body.append(self._crash(record))
        if findings:
            body.append("<h2>Findings</h2>")
            body.extend(self._finding(record, f, i) for i, f in enumerate(findings))
        body.append(health_svg.section(record.extra.get("health")))  # gradient health over the run, or ''
        if record.step_graph is not None:
            body.append("<h2>One ordinary training step</h2><p>The backward graph of one training step, for "
                        "comparison with the graphs above.</p>")
            body.append(self._graph(record.step_graph, "step"))
        if record.not_checked:
            body.append("<h2>Not checked in this run</h2><ul>"
                        + "".join(f"<li>{_e(n)}</li>" for n in record.not_checked) + "</ul>")
        # "<", ">" and "&" occur only inside JSON strings: escaping them keeps the script element closed.
        data = (json.dumps(record.to_dict(), ensure_ascii=True)
                .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
        title = "gradlens report: " + (" ".join(record.command) or "run")
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<meta name=\"generator\" content=\"gradlens {_e(record.gradlens)}\">\n"
                f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
                + "\n".join(body)
                + f"\n<footer>Written by gradlens {_e(record.gradlens)} (Python {_e(record.python)}). "
                "This page needs no network. The run record is embedded as JSON in the element "
                "<code>#gradlens-record</code>.</footer>\n</main>\n"
                f"<script type=\"application/json\" id=\"gradlens-record\">{data}</script>\n"
                "</body>\n</html>\n")

    # --- parts ----------------------------------------------------------------------------------------
    def _header(self, record: RunRecord) -> str:
        cmd = " ".join(record.command) or "(unknown command)"
        engines = ", ".join(record.engines) or "no engine seen"
        summary = summary_line(record, self.fail_on, self.status)
        status = gradlens_status(record, self.fail_on) if self.status is None else self.status
        cls = "ok" if not record.findings else ""
        return (f"<h1>gradlens report</h1><p class=\"where\">gradlens report {_e(cmd)}</p>"
                f"<p class=\"meta\"><span>engines: {_e(engines)}</span><span>training steps: "
                f"{record.steps}</span><span>script exit status: {record.exit_status}</span>"
                f"<span>gradlens exit status: {status}</span></p>"
                f"<p class=\"{cls}\">{_e(summary)}</p>")

    @staticmethod
    def _cards(findings: list[Finding]) -> str:
        if not findings:
            return "<p class=\"ok\">No findings.</p>"
        by_rule: dict[str, list[Finding]] = {}
        first_index: dict[str, int] = {}
        for i, f in enumerate(findings):
            by_rule.setdefault(f.kind, []).append(f)
            first_index.setdefault(f.kind, i)
        cards = []
        for kind, items in by_rule.items():
            sev = items[0].severity
            steps = [f.step for f in items if f.step is not None]
            first = f"first at step {min(steps)}" if steps else "no step"
            seen = sum(f.count for f in items)
            link = f"<a href=\"#finding-{first_index[kind]}\">{_e(kind)}</a>"
            cards.append(f"<div class=\"card {_e(sev)}\"><b>{link}</b><span class=\"sev {_e(sev)}\">"
                         f"{_e(sev)}</span>{len(items)} place{'s' if len(items) > 1 else ''}, seen {seen}x, "
                         f"{first}</div>")
        return "<div class=\"cards\">" + "".join(cards) + "</div>"

    @staticmethod
    def _crash(record: RunRecord) -> str:
        crash = record.crash
        assert crash is not None
        what = "was interrupted" if crash.kind == "interrupt" else "crashed"
        tb = f"<pre>{_e(crash.traceback)}</pre>" if crash.traceback else ""
        return (f"<div class=\"finding crash\"><h3>The script {what}: {_e(crash.type)}: "
                f"{_e(crash.message)}</h3>"
                f"<p>Exit status {record.exit_status}. The findings below cover the run up to that point.</p>"
                f"{tb}</div>")

    def _finding(self, record: RunRecord, f: Finding, i: int) -> str:
        parts = [f"<div class=\"finding {_e(f.severity)}\" id=\"finding-{i}\">",
                 f"<h3><span class=\"sev {_e(f.severity)}\">{_e(f.severity)}</span>{_e(f.kind)}</h3>"]
        place = where(f.location, record.root) if f.location is not None else "no source location"
        when = []
        if f.step is not None:
            when.append(f"first at step {f.step}")
        if f.count > 1:
            when.append(f"seen {f.count} times")
        parts.append(f"<p><span class=\"where\">{_e(place)}</span><span class=\"when\">{_e(', '.join(when))}"
                     "</span></p>")
        lines = source_lines(record, f.location)
        if lines:
            width = len(str(lines[-1][0]))
            rows = "".join((_HIT if hit else _ROW).format(n=f"{n:>{width}}", text=_e(text)) for n, text, hit in lines)
            parts.append(f"<pre class=\"src\">{rows}</pre>")
        for related in f.related_locations:
            statement = record.statements.get(f"{related.file}:{related.line}")
            parts.append(f"<p class=\"related\">noticed at <span class=\"where\">{_e(where(related, record.root))}"
                         f"</span>{': <code>' + _e(statement) + '</code>' if statement else ''}</p>")
        parts.append(f"<p>{_e(f.message)}</p>")
        if f.subject:
            parts.append(f"<p class=\"numbers\">concerns: {_e(', '.join(f.subject))}</p>")
        numbers = _numbers(f.evidence)
        if numbers:
            parts.append(f"<p class=\"numbers\">numbers: {_e(numbers)}</p>")
        parts.append(health_svg.links(f.evidence, record.extra.get("health")))  # to the series that show it
        if f.graph is not None:
            parts.append(self._graph(f.graph, f"finding {i}"))
        parts.append("</div>")
        return "\n".join(parts)

    def _graph(self, graph: Any, what: str) -> str:
        from ..export import to_dot

        try:
            dot = to_dot(graph)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a hand-edited or foreign record
            self.notes.append(f"the graph of {what} in the record is malformed and was not drawn ({exc})")
            return "<p class=\"note\">This finding's graph in the record is malformed and cannot be drawn.</p>"
        if self._draw:
            from ..errors import GraphvizNotFoundError
            from ..export.render import svg_text

            try:
                svg = svg_text(dot, timeout=self.timeout)
                start = svg.find("<svg")
                return f"<div class=\"graph\">{svg[start:] if start >= 0 else svg}</div>"
            except GraphvizNotFoundError:
                self._draw = False
            except RuntimeError as exc:
                self.notes.append(f"Graphviz could not draw the graph of {what} ({exc}); gradlens's own layout "
                                  "drew it instead")
        from ..export.render import render  # no Graphviz: gradlens lays the graph out itself

        return f"<div class=\"graph\">{render(dot, format='svg', engine='gradlens')}</div>"
