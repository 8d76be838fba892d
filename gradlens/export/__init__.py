"""Export: draw gradlens graphs as DOT (``to_dot``) or as SVG laid out by gradlens itself (``to_svg``, no
Graphviz needed), and write DOT/SVG/PNG/PDF files (``render``, with ``engine="auto"|"gradlens"|"graphviz"``)."""

from __future__ import annotations

from .dot import STYLE, GradlensDot, to_dot
from .render import ENGINES, render
from .svg import to_svg

__all__ = ["to_dot", "to_svg", "render", "GradlensDot", "STYLE", "ENGINES"]
