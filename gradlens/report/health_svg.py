"""Gradient health over the run, drawn for the HTML report: one row per parameter (or folded module) with an
inline SVG of four sparklines — gradient norm and update/weight ratio on log scales, share of exact zeros
(0 to 1), NaN/Inf count as red bars — on a step axis shared by all rows, so rows line up.

Written here as plain SVG text (no script, no library, no network), from the record's ``health`` field
(``gradlens.instrument.health``). Each row has an anchor (``anchors``) that findings link to (``links``),
so a missing ``zero_grad`` points at a norm that grows step over step and a dead layer at a flat zero.
A record without the field (older, or a run with ``health_every=0``) renders nothing.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["anchors", "section", "links"]

_PANELS = (
    ("grad_norm", "gradient norm", "log"),
    ("update_ratio", "|Δw| / |w|", "log"),
    ("zero_share", "share of zeros", "unit"),
    ("nonfinite", "NaN/Inf count", "bars"),
)
_W, _H, _GAP, _TOP = 170, 30, 14, 12  # one panel's plot size, the space between panels, the label band
_MAX_ROWS = 200


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _series(health: Any) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(health, Mapping) or not isinstance(health.get("series"), Mapping):
        return {}
    return {str(k): v for k, v in health["series"].items() if isinstance(v, Mapping)}


def anchors(health: Any) -> dict[str, str]:
    """The HTML id of each series' row (``series-<index>-<name as safe characters>``)."""
    return {name: f"series-{i}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:60]}"
            for i, name in enumerate(_series(health))}


def links(evidence: Mapping[str, Any], health: Any) -> str:
    """A line of links from a finding to the rows of the series its ``evidence["series"]`` names ('' if none)."""
    names = evidence.get("series") if isinstance(evidence, Mapping) else None
    ids = anchors(health)
    if not isinstance(names, Sequence) or isinstance(names, str):
        return ""
    hits = [n for n in names if isinstance(n, str) and n in ids]
    if not hits:
        return ""
    return ("<p class=\"numbers\">gradient health: "
            + ", ".join(f"<a href=\"#{_e(ids[n])}\">{_e(n)}</a>" for n in hits) + "</p>")


def section(health: Any) -> str:
    """The report section: a heading, how the series were sampled, and one row per series ('' if none)."""
    series = _series(health)
    if not series:
        return ""
    ids = anchors(health)
    steps = [s for v in series.values() for s in _numbers(v.get("steps"))]
    lo, hi = (min(steps), max(steps)) if steps else (0, 1)
    every = health.get("every")
    first = health.get("first")
    rows = []
    for i, (name, values) in enumerate(series.items()):
        if i == _MAX_ROWS:
            rows.append(f"<p class=\"note\">{len(series) - _MAX_ROWS} more series are in the embedded record.</p>")
            break
        rows.append(f"<div class=\"health-row\" id=\"{_e(ids[name])}\"><code>{_e(name)}</code><br>"
                    f"{_svg(name, values, lo, hi)}</div>")
    how = (f"each optimizer's first {_e(first)} steps, then one step in {_e(every)}"
           if first is not None and every is not None else "sampled optimizer steps")
    return ("<h2 id=\"gradient-health\">Gradient health over the run</h2>"
            f"<p>Per parameter (per module when an optimizer holds many), on {how} (steps {lo:g}-{hi:g}). "
            "Gradient norm and update size relative to the weight on log scales (a gap: not finite or no "
            "weight), the share of exact zeros in the gradient, and red bars where gradients held NaN/Inf. "
            "Hover a line for its values.</p>" + "\n".join(rows))


def _numbers(values: Any) -> list[float | None]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        return []
    out: list[float | None] = []
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        out.append(float(v) if ok else None)
    return out


def _svg(name: str, values: Mapping[str, Any], lo: float, hi: float) -> str:
    steps = _numbers(values.get("steps"))
    width = len(_PANELS) * (_W + _GAP)
    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"health\" width=\"{width}\" "
             f"height=\"{_H + _TOP + 2}\" viewBox=\"0 0 {width} {_H + _TOP + 2}\" role=\"img\" "
             f"aria-label=\"gradient health of {_e(name)}\" font-family=\"sans-serif\" font-size=\"10\">"]
    for k, (key, label, scale) in enumerate(_PANELS):
        x0 = k * (_W + _GAP)
        ys = _numbers(values.get(key))[: len(steps)]
        known = [y for y in ys if y is not None]
        summary = _summary(known, key)
        parts.append(f"<g transform=\"translate({x0},0)\"><title>{_e(label)}: {_e(summary)}</title>"
                     f"<text x=\"0\" y=\"9\" fill=\"#57606a\">{_e(label)} {_e(summary)}</text>"
                     f"<rect x=\"0\" y=\"{_TOP}\" width=\"{_W}\" height=\"{_H}\" fill=\"#f6f8fa\" stroke=\"#d0d7de\"/>")
        parts.append(_marks(steps, ys, scale, lo, hi))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _summary(known: list[float], key: str) -> str:
    if not known:
        return "(none)"
    if key == "nonfinite":
        total = int(sum(known))
        return f"total {total}" if total else "none"
    if key == "zero_share":
        return f"{min(known):.0%}–{max(known):.0%}"
    if max(known) == 0:
        return "all 0"
    return f"{_g(known[0])} → {_g(known[-1])}"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _marks(steps: list[float | None], ys: list[float | None], scale: str, lo: float, hi: float) -> str:
    span = (hi - lo) or 1.0

    def x(s: float) -> float:
        return round((s - lo) / span * (_W - 4) + 2, 1)

    pts = [(s, y) for s, y in zip(steps, ys) if s is not None]
    if scale == "bars":
        bars = [f"<rect x=\"{x(s) - 1}\" y=\"{_TOP}\" width=\"2\" height=\"{_H}\" fill=\"#cf222e\"/>"
                for s, y in pts if y]
        return "".join(bars)
    if scale == "unit":
        def y_of(v: float) -> float:
            return round(_TOP + _H - 2 - min(max(v, 0.0), 1.0) * (_H - 4), 1)
    else:
        positive = [v for _, v in pts if v is not None and v > 0]
        if positive:
            a, b = math.log10(min(positive)), math.log10(max(positive))
        else:
            a = b = 0.0

        def y_of(v: float) -> float:
            if v <= 0:
                return _TOP + _H - 1  # exact zero: on the floor of the panel
            t = 0.5 if b == a else (math.log10(v) - a) / (b - a)
            return round(_TOP + _H - 4 - t * (_H - 8), 1)
    runs, cur = [], []
    for s, v in pts:
        if v is None:
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append(f"{x(s)},{y_of(v)}")
    if cur:
        runs.append(cur)
    out = []
    for run in runs:
        if len(run) == 1:
            cx, cy = run[0].split(",")
            out.append(f"<circle cx=\"{cx}\" cy=\"{cy}\" r=\"1.5\" fill=\"#0969da\"/>")
        else:
            out.append(f"<polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.2\" points=\"{' '.join(run)}\"/>")
    return "".join(out)
