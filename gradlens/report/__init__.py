"""Report formats: one module per format (text, json, html, sarif) behind the one-method ``Reporter``
protocol; ``get_reporter(name)`` picks one by its ``--format`` name."""

from __future__ import annotations

from .base import FORMATS, Reporter, display_path, get_reporter

__all__ = ["Reporter", "FORMATS", "get_reporter", "display_path"]
