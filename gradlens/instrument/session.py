"""The record of one watched run: events, findings and what could not be checked, serialisable to a
versioned JSON-safe dict that the CLI writes and reads back (``Session.to_dict`` / ``Session.from_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordError
from ..findings import Finding
from .events import event_from_dict, event_to_dict

__all__ = ["Session", "SESSION_FORMAT", "SESSION_VERSION", "MAX_EVENTS"]

SESSION_FORMAT = "gradlens.session"
SESSION_VERSION = 1
MAX_EVENTS = 20_000


@dataclass
class Session:
    """Everything a watched run recorded, as plain data.

    Attributes:
        engines: the engines watched (``"torch"``, ``"native"``).
        events: the recorder's events, up to ``MAX_EVENTS`` (later ones are counted, not kept).
        findings: one finding per problem, in order of first appearance.
        not_checked: what gradlens could not check in this run, in words.
        options: the watch options (JSON-safe).
        steps: optimizer steps seen; iterations: iterations seen.
        dropped_events: events not kept because of ``MAX_EVENTS``.
        health: the gradient-health series (``health.HealthLog.to_dict()``), or None when off.
    """

    engines: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    iterations: int = 0
    dropped_events: int = 0
    health: dict[str, Any] | None = None

    def add_event(self, event: Any) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)
        else:
            self.dropped_events += 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with a format name and version."""
        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "engines": list(self.engines),
            "steps": self.steps,
            "iterations": self.iterations,
            "options": dict(self.options),
            "not_checked": list(self.not_checked),
            "findings": [f.to_dict() for f in self.findings],
            "events": [event_to_dict(e) for e in self.events],
            "dropped_events": self.dropped_events,
            "health": self.health,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        """Rebuild a session written by ``to_dict``.

        Raises:
            RecordError: not a gradlens session, or an unsupported version.
        """
        if not isinstance(data, Mapping) or data.get("format") != SESSION_FORMAT:
            raise RecordError(
                f"expected a gradlens session record (format {SESSION_FORMAT!r}); received "
                f"{type(data).__name__}. Pass the output of lens.to_dict()."
            )
        if data.get("version") != SESSION_VERSION:
            raise RecordError(
                f"expected session format version {SESSION_VERSION}; received "
                f"{data.get('version')!r}. Upgrade gradlens to read this record."
            )
        try:
            return cls(
                engines=list(data["engines"]),
                events=[event_from_dict(e) for e in data.get("events", [])],
                findings=[Finding.from_dict(f) for f in data.get("findings", [])],
                not_checked=list(data.get("not_checked", [])),
                options=dict(data.get("options", {})),
                steps=int(data.get("steps", 0)),
                iterations=int(data.get("iterations", 0)),
                dropped_events=int(data.get("dropped_events", 0)),
                health=data.get("health") if isinstance(data.get("health"), Mapping) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"session record is truncated or malformed ({exc}).") from exc
