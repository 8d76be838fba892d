"""``nonfinite-gradient``: NaN or Inf in the gradients an optimizer is about to apply (first step and the
parameters affected). The recorder checks with one reduction per step; this module only words it."""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..instrument.events import StepEvent
from .base import Tally, names

__all__ = ["NumericsDetector"]


class NumericsDetector:
    """NaN/Inf gradients at step time."""

    def __init__(self) -> None:
        self._t = Tally()

    def observe(self, event: Any) -> list[Finding]:
        if not isinstance(event, StepEvent) or not event.nonfinite:
            return []
        ev = event
        key = f"nonfinite-gradient:{ev.optimizer}"
        evidence = {"parameters": len(ev.nonfinite), "of": ev.n_params}
        msg = (
            f"Gradients of {len(ev.nonfinite)} parameters of {ev.optimizer} hold NaN or Inf "
            f"({names(ev.nonfinite)}); the step writes them into the weights. Find the op with "
            "torch.autograd.detect_anomaly() on one step, and check the loss for log(0), division by zero "
            "or overflow."
        )
        return [
            self._t.bump(
                key,
                lambda: Finding(
                    "nonfinite-gradient", "error", msg, ev.location, ev.step, ev.nonfinite, evidence
                ),
                evidence,
            )
        ]
