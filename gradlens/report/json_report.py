"""The JSON report: the run record itself, as a versioned document.

It is stable and complete enough to re-render every other format (``gradlens report run.json --format
html``); its fields are documented in README.md ("The JSON report") and in ``gradlens.record``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["JsonReporter"]


class JsonReporter:
    """Renders a record as indented JSON (``RunRecord.to_json``).

    Example:
        >>> from gradlens.record import RunRecord
        >>> '"format": "gradlens.report"' in JsonReporter().render(RunRecord())
        True
    """

    def render(self, record: RunRecord) -> str:
        return record.to_json()
