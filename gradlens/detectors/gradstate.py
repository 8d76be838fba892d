"""Gradient-state rules judged at optimizer-step time: ``missing-zero-grad``, ``zero-grad-before-step``,
``unexpected-accumulation`` and the informational ``accumulation``.

They are judged per optimizer when it steps, from the recorder's summary of its gradients (which grads
carried contributions an earlier step already applied, which were cleared, how many backward passes each
holds), because judging at accumulation time gives false alarms on GAN loops where one loss flows into
another model's gradients that are cleared before that model steps.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..instrument.events import StepEvent
from .base import Tally, names

__all__ = ["GradStateDetector"]


class GradStateDetector:
    """Missing or misplaced ``zero_grad`` and accumulation that no step-aligned window explains."""

    def __init__(self) -> None:
        self._t = Tally()
        self._k: dict[str, dict[int, int]] = {}

    def observe(self, event: Any) -> list[Finding]:
        if not isinstance(event, StepEvent):
            return []
        ev = event
        out: list[Finding] = []
        if ev.carried:
            out.append(self._missing(ev))
        if ev.cleared:
            out.append(self._cleared(ev))
        if ev.repeated:
            out.append(self._repeated(ev))
        if ev.eval_mixed:
            out.append(self._eval_mixed(ev))
        if ev.max_count > 1 and not (ev.carried or ev.repeated or ev.eval_mixed):
            out.append(self._accumulation(ev))
        return out

    def _missing(self, ev: StepEvent) -> Finding:
        key = f"missing-zero-grad:{ev.optimizer}"
        evidence = {"parameters": len(ev.carried), "of": ev.n_params, "max_contributions": ev.max_count}
        if ev.optimizer == "manual update":
            msg = (
                f"Parameters updated by hand ({names(ev.carried)}) received new gradients on top of ones "
                "already applied: their .grad was never cleared, so each update re-applies every earlier "
                "gradient. Clear it after the update (p.grad = None or p.grad.zero_())."
            )
        else:
            msg = (
                f"{ev.optimizer} stepped on gradients that still held contributions an earlier step already "
                f"applied ({len(ev.carried)} of {ev.n_params} parameters: {names(ev.carried)}); they were "
                "never cleared, so every step re-applies old gradients. Call optimizer.zero_grad() once per "
                "step (before backward or after step), on this optimizer."
            )
        return self._t.bump(
            key,
            lambda: Finding("missing-zero-grad", "error", msg, ev.location, ev.step, ev.carried, evidence),
            evidence,
        )

    def _cleared(self, ev: StepEvent) -> Finding:
        key = f"zero-grad-before-step:{ev.optimizer}"
        everything = len(ev.cleared) == len(ev.touched)
        evidence = {"cleared": len(ev.cleared), "touched": len(ev.touched)}
        what = "all" if everything else f"{len(ev.cleared)} of {len(ev.touched)}"
        msg = (
            f"Gradients of {what} parameters of {ev.optimizer} ({names(ev.cleared)}) were cleared between "
            "backward() and step(), so the step applied nothing to them. Move zero_grad() before "
            "backward() or after step()."
        )
        sev = "error" if everything else "warning"
        return self._t.bump(
            key,
            lambda: Finding("zero-grad-before-step", sev, msg, ev.location, ev.step, ev.cleared, evidence),
            evidence,
        )

    def _repeated(self, ev: StepEvent) -> Finding:
        key = f"unexpected-accumulation:repeat:{ev.optimizer}"
        evidence = {"parameters": len(ev.repeated), "max_contributions": ev.max_count}
        msg = (
            f"A second backward through the same graph (retain_graph=True, then backward() again) added its "
            f"gradient again before {ev.optimizer} stepped ({names(ev.repeated)}), so the step used a "
            "multiple of the gradient. Call backward() once per loss, or sum the losses first."
        )
        return self._t.bump(
            key,
            lambda: Finding(
                "unexpected-accumulation", "error", msg, ev.location, ev.step, ev.repeated, evidence
            ),
            evidence,
        )

    def _eval_mixed(self, ev: StepEvent) -> Finding:
        key = f"unexpected-accumulation:eval:{ev.optimizer}"
        evidence = {"parameters": len(ev.eval_mixed), "max_contributions": ev.max_count}
        msg = (
            f"Gradients from a backward run with the model in evaluation mode flowed into a training step of "
            f"{ev.optimizer} ({names(ev.eval_mixed)}). Clear gradients after the evaluation-time backward "
            "(model.zero_grad()) or call zero_grad() before each training backward."
        )
        return self._t.bump(
            key,
            lambda: Finding(
                "unexpected-accumulation", "error", msg, ev.location, ev.step, ev.eval_mixed, evidence
            ),
            evidence,
        )

    def _accumulation(self, ev: StepEvent) -> Finding:
        key = f"accumulation:{ev.optimizer}"
        hist = self._k.setdefault(ev.optimizer, {})
        hist[ev.max_count] = hist.get(ev.max_count, 0) + 1
        evidence = {
            "backward_per_step": {str(k): v for k, v in sorted(hist.items())},
            "declared": ev.declared_accumulation,
        }
        declared = ev.declared_accumulation
        note = (
            ""
            if declared is None
            else (
                f" (declared accumulation={declared})"
                if ev.max_count <= declared
                else f" (more than the declared accumulation={declared})"
            )
        )
        msg = (
            f"{ev.optimizer} steps on gradients accumulated over {ev.max_count} backward passes{note}: "
            "recognised as deliberate gradient accumulation. Scale each loss by 1/k so the step size "
            "does not grow with k."
        )
        return self._t.bump(
            key, lambda: Finding("accumulation", "info", msg, ev.location, ev.step, (), evidence), evidence
        )
