"""Export: draw gradlens graphs as DOT (``to_dot``) and write DOT/SVG/PNG/PDF files (``render``)."""

from __future__ import annotations

from .dot import STYLE, GradlensDot, to_dot
from .render import render

__all__ = ["to_dot", "render", "GradlensDot", "STYLE"]
