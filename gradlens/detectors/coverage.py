"""Which parameters take part in training: ``no-gradient`` (held by a stepping optimizer, never given a
gradient) and ``param-not-in-optimizer`` (given gradients, held by no optimizer that steps).

Both wait for the second step of an optimizer (or a full step after the gradient arrived), so that closures
(LBFGS), two-optimizer loops and optimizers created later do not raise false alarms. An optimizer that holds
parameters getting no gradient while other parameters get gradients but sit in no optimizer is one problem
(a layer replaced after the optimizer was built): it is reported once, as ``param-not-in-optimizer``.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..instrument.events import StepEvent
from .base import Tally, names

__all__ = ["CoverageDetector"]


class CoverageDetector:
    """Parameters that never get a gradient, and gradients no optimizer consumes."""

    def __init__(self) -> None:
        self._t = Tally()
        self._stale: dict[str, tuple[str, ...]] = {}  # optimizer -> parameters of a replaced layer it holds

    def observe(self, event: Any) -> list[Finding]:
        if not isinstance(event, StepEvent) or event.optimizer == "manual update":
            return []
        ev = event
        out = []
        if ev.never_grad and ev.optimizer_steps >= 2 and (ev.orphans or ev.optimizer in self._stale):
            self._stale[ev.optimizer] = ev.never_grad  # reported with the orphans below
        elif ev.never_grad and ev.optimizer_steps >= 2:
            key = f"no-gradient:{ev.optimizer}"
            everything = len(ev.never_grad) == ev.n_params
            evidence = {"parameters": len(ev.never_grad), "of": ev.n_params, "steps": ev.optimizer_steps}
            if everything:
                msg = (
                    f"None of the {ev.n_params} parameters of {ev.optimizer} ever received a gradient, so "
                    "its steps change nothing: the loss is not connected to them (rebuilt from .item() or "
                    ".detach(), computed under no_grad, or the module is bypassed). Build the loss from the "
                    "model's outputs."
                )
            else:
                msg = (
                    f"{len(ev.never_grad)} of {ev.n_params} parameters of {ev.optimizer} never received a "
                    f"gradient ({names(ev.never_grad)}): a detached branch or an unused module. Connect them "
                    "to the loss, or freeze them with requires_grad_(False) and leave them out of the "
                    "optimizer."
                )
            sev = "error" if everything else "warning"
            out.append(
                self._t.bump(
                    key,
                    lambda: Finding("no-gradient", sev, msg, ev.location, ev.step, ev.never_grad, evidence),
                    evidence,
                )
            )
        if ev.orphans:
            key = "param-not-in-optimizer"
            evidence = {"parameters": len(ev.orphans)}
            stale = self._stale.get(ev.optimizer, ())
            held = (
                f" Meanwhile {ev.optimizer} holds {len(stale)} parameters that never receive a gradient "
                f"({names(stale)}): most likely the replaced layer's."
                if stale
                else ""
            )
            if stale:
                evidence["held_without_gradient"] = len(stale)
            msg = (
                f"{len(ev.orphans)} parameters receive gradients but no optimizer that steps holds them "
                f"({names(ev.orphans)}), so they never train: e.g. a layer replaced after the optimizer was "
                "built. Build the optimizer after the model is final, or add them with add_param_group()."
                + held
            )
            out.append(
                self._t.bump(
                    key,
                    lambda: Finding(
                        "param-not-in-optimizer", "warning", msg, ev.location, ev.step, ev.orphans, evidence
                    ),
                    evidence,
                )
            )
        return out
