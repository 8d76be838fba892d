"""Detectors: pure rule families turning recorder events into findings (no engine imports).

``default_detectors()`` builds one of each; ``analyse(events)`` replays recorded events offline and returns
one finding per problem (what the CLI does with a saved record).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..findings import Finding
from .base import Detector
from .coverage import CoverageDetector
from .gradstate import GradStateDetector
from .loud_errors import LoudErrorDetector
from .numerics import NumericsDetector
from .retention import RetentionDetector

__all__ = [
    "Detector",
    "default_detectors",
    "analyse",
    "GradStateDetector",
    "CoverageDetector",
    "NumericsDetector",
    "RetentionDetector",
    "LoudErrorDetector",
]


def default_detectors() -> list[Detector]:
    """A fresh instance of every rule family."""
    return [GradStateDetector(), CoverageDetector(), NumericsDetector(), RetentionDetector(), LoudErrorDetector()]


def analyse(events: Iterable[Any], detectors: list[Detector] | None = None) -> list[Finding]:
    """Run detectors over events and return the latest finding per problem, in order of first appearance.

    Example:
        >>> from gradlens.instrument.events import StepEvent
        >>> ev = StepEvent(step=2, optimizer="SGD#0", optimizer_steps=2, n_params=1, touched=("w",),
        ...                max_count=2, carried=("w",))
        >>> [f.kind for f in analyse([ev])]
        ['missing-zero-grad']
    """
    dets = default_detectors() if detectors is None else detectors
    found: dict[str, Finding] = {}
    for ev in events:
        for det in dets:
            for f in det.observe(ev):
                found[f.key or f.kind] = f
    return list(found.values())
