"""The seam between a run record and a report format: a one-method ``Reporter`` protocol and the registry
that maps a ``--format`` name to the reporter class that renders it.

Reporter modules are imported only when their format is asked for, so rendering JSON never imports the
HTML or Graphviz machinery.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["Reporter", "FORMATS", "get_reporter", "display_path"]


@runtime_checkable
class Reporter(Protocol):
    """Renders a run record as the text of one report format.

    Options (colour, where Graphviz is) go to the reporter's constructor, so ``render`` has one job.
    """

    def render(self, record: RunRecord) -> str:
        """The whole report as text (HTML, JSON, SARIF or terminal text)."""
        ...


_REGISTRY: dict[str, str] = {
    "text": "gradlens.report.text_report:TextReporter",
    "json": "gradlens.report.json_report:JsonReporter",
    "html": "gradlens.report.html:HtmlReporter",
    "sarif": "gradlens.report.sarif:SarifReporter",
}

FORMATS = tuple(_REGISTRY)
"""The format names ``gradlens report --format`` accepts."""


def get_reporter(fmt: str, **options: Any) -> Reporter:
    """A reporter for a format name, built with the given options.

    Args:
        fmt: one of ``FORMATS``.
        **options: keyword arguments of that reporter's constructor (e.g. ``color=True`` for text).

    Returns:
        An object with ``render(record) -> str``.

    Raises:
        ValueError: ``fmt`` is not a known format.

    Example:
        >>> from gradlens.record import RunRecord
        >>> get_reporter("json").render(RunRecord()).startswith("{")
        True
    """
    target = _REGISTRY.get(fmt)
    if target is None:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(**options)


def display_path(path: str, root: str) -> str:
    """``path`` relative to ``root`` when it lies under it (how reports show files), else unchanged.

    Example:
        >>> display_path("/work/proj/train.py", "/work/proj")
        'train.py'
    """
    if not root or not os.path.isabs(path):
        return path
    try:
        if os.path.commonpath([path, root]) == os.path.normpath(root):
            return os.path.relpath(path, root)
    except ValueError:
        pass
    return path
