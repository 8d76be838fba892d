"""Jupyter/IPython support: ``%load_ext gradlens`` registers the ``%%gradlens`` cell magic and inline
displays for lenses (an HTML summary of the findings) and graphs (SVG).

``%%gradlens [--accumulation N] [--ignore RULE ...] [--on-finding warn|collect|raise] [--as NAME]`` runs the
cell under ``gradlens.watch`` and displays what it found; ``--as NAME`` also stores the ``Lens`` in the
notebook's variable ``NAME``. Import torch (or ``gradlens.engine``) in an earlier cell: the watch covers the
engines imported when the cell starts, and gradlens never imports torch itself.

A graph from ``gradlens.graph(...)`` shows as SVG when Graphviz is installed; ``gradlens.to_dot(...)``
already has its own ``_repr_svg_``.
"""

from __future__ import annotations

import argparse
import html
import shlex
from typing import Any

from ..findings import RULES

__all__ = ["load_ipython_extension", "unload_ipython_extension", "lens_html", "graph_svg", "magic_parser"]

_SEVERITY_COLOR = {"error": "#b3261e", "warning": "#8a5a00", "info": "#0b5cad"}


def magic_parser() -> argparse.ArgumentParser:
    """The options of ``%%gradlens`` (the names of ``gradlens report`` / ``gradlens.watch``)."""
    p = argparse.ArgumentParser(prog="%%gradlens", add_help=True,
                                description="Run the cell under gradlens.watch and show what it found.")
    p.add_argument("--accumulation", type=int, default=None, metavar="N",
                   help="declare N backward passes per optimizer step")
    p.add_argument("--ignore", action="append", default=[], metavar="RULE", choices=RULES,
                   help="do not report RULE; repeatable")
    p.add_argument("--on-finding", choices=("warn", "collect", "raise"), default="collect",
                   help="also warn or raise while the cell runs (default: collect, then show the report)")
    p.add_argument("--as", dest="name", default=None, metavar="NAME",
                   help="store the Lens in the notebook variable NAME")
    p.add_argument("--quiet", action="store_true", help="show nothing when there are no findings")
    return p


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def lens_html(lens: Any) -> str:
    """An HTML summary of a lens: one row per finding, then what was not checked.

    Example:
        >>> import gradlens
        >>> with gradlens.watch(on_finding="collect") as lens:
        ...     pass
        >>> "no findings" in lens_html(lens)
        True
    """
    findings = lens.findings
    steps = lens.session.steps
    n = len(findings)
    head = (f"<b>gradlens</b>: {n} finding{'s' if n != 1 else ''} in {steps} optimizer "
            f"step{'s' if steps != 1 else ''}" if n else
            f"<b>gradlens</b>: no findings in {steps} optimizer step{'s' if steps != 1 else ''}")
    parts = [f'<div class="gradlens-lens" style="font-family:sans-serif;font-size:13px"><p>{head}</p>']
    if findings:
        parts.append('<table style="border-collapse:collapse"><thead><tr><th>severity</th><th>rule</th>'
                     "<th>where</th><th>first step</th><th>count</th><th style=\"text-align:left\">what and "
                     "how to fix</th></tr></thead><tbody>")
        order = {"error": 0, "warning": 1, "info": 2}
        for f in sorted(findings, key=lambda f: order.get(f.severity, 3)):
            where = f"{f.location.file.rsplit('/', 1)[-1]}:{f.location.line}" if f.location else ""
            color = _SEVERITY_COLOR.get(f.severity, "inherit")
            parts.append(f'<tr><td style="color:{color};font-weight:bold">{_e(f.severity)}</td>'
                         f"<td><code>{_e(f.kind)}</code></td><td><code>{_e(where)}</code></td>"
                         f"<td>{_e(f.step if f.step is not None else '')}</td><td>{f.count}</td>"
                         f'<td style="text-align:left">{_e(f.message)}</td></tr>')
        parts.append("</tbody></table>")
    svgs = [(f.kind, graph_svg(f.graph)) for f in findings if f.graph is not None]
    for kind, svg in svgs:
        if svg:
            svg = svg[svg.find("<svg"):]  # no XML prolog or DOCTYPE inside HTML
            parts.append(f"<details><summary>graph of <code>{_e(kind)}</code></summary>{svg}</details>")
    if lens.not_checked:
        parts.append("<details><summary>not checked in this run</summary><ul>"
                     + "".join(f"<li>{_e(n)}</li>" for n in lens.not_checked) + "</ul></details>")
    parts.append("</div>")
    return "".join(parts)


def graph_svg(graph: Any) -> str | None:
    """The SVG drawing of a graph from ``gradlens.graph()`` (Graphviz's layout when installed, else
    gradlens's own), or None (not a gradlens graph, or drawing failed) so that IPython falls back to the
    next display."""
    try:
        from ..graphs import schema

        if not hasattr(graph, "graph") or schema.SCHEMA_VERSION not in graph.graph:
            return None
        from ..export.render import render

        return render(graph, format="svg")
    except Exception:  # a display hook must never raise into the notebook
        return None


def _show(lens: Any, quiet: bool) -> None:
    from IPython.display import display

    if quiet and not lens.findings:
        return
    display({"text/html": lens_html(lens), "text/plain": lens.report()}, raw=True)


def _cell_magic(ipython: Any):
    parser = magic_parser()

    def gradlens(line: str, cell: str) -> None:
        """Run the cell under gradlens.watch and show what it found (see %%gradlens --help)."""
        from ..instrument.watch import watch

        try:
            opts = parser.parse_args(shlex.split(line))
        except SystemExit:  # --help or a usage error: argparse already printed it
            return
        w = watch(accumulation=opts.accumulation, ignore=opts.ignore, on_finding=opts.on_finding)
        with w as lens:
            ipython.run_cell(cell)
        if opts.name:
            ipython.user_ns[opts.name] = lens
        _show(lens, opts.quiet)

    return gradlens


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gradlens``: register the ``%%gradlens`` cell magic and the inline displays."""
    ipython.register_magic_function(_cell_magic(ipython), magic_kind="cell", magic_name="gradlens")
    formatters = ipython.display_formatter.formatters
    formatters["text/html"].for_type_by_name("gradlens.instrument.watch", "Lens", lens_html)
    formatters["image/svg+xml"].for_type_by_name("networkx.classes.digraph", "DiGraph", graph_svg)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext gradlens``: remove the displays (IPython keeps registered magics)."""
    formatters = ipython.display_formatter.formatters
    for mime, (module, name) in (("text/html", ("gradlens.instrument.watch", "Lens")),
                                 ("image/svg+xml", ("networkx.classes.digraph", "DiGraph"))):
        try:
            formatters[mime].pop(f"{module}.{name}", None)
        except Exception:  # noqa: S110 - nothing registered: nothing to remove
            pass
