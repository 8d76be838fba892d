"""The detector protocol and small helpers shared by the rule families.

A detector is a pure, stateful consumer of recorder events: ``observe(event)`` returns the findings the
event creates or updates. Repeated observations of one problem share a ``Finding.key`` and carry a growing
``count``, so the host keeps one finding per problem. Detectors never import an engine and never print.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..findings import Finding

__all__ = ["Detector", "names", "Tally"]


class Detector(Protocol):
    """Turns events into findings."""

    def observe(self, event: Any) -> list[Finding]:
        """Findings created or updated by ``event`` (each with a stable ``key``)."""


def names(items: tuple[str, ...] | list[str], limit: int = 4) -> str:
    """``a, b, c and 5 more`` for messages."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


class Tally:
    """Counts occurrences per key and remembers the first finding made for each."""

    def __init__(self) -> None:
        self.first: dict[str, Finding] = {}
        self.count: dict[str, int] = {}

    def bump(self, key: str, make: Any, evidence: dict | None = None) -> Finding:
        """Count one more occurrence of ``key``; ``make()`` builds the finding on the first one."""
        n = self.count.get(key, 0) + 1
        self.count[key] = n
        first = self.first.get(key)
        if first is None:
            first = make()
            object.__setattr__(first, "key", key)
            self.first[key] = first
            return first
        out = first.with_count(n, evidence if evidence is not None else first.evidence)
        object.__setattr__(out, "key", key)
        return out
