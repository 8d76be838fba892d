"""Gradient-state rules judged at optimizer-step time: ``missing-zero-grad``, ``zero-grad-before-step``,
``unexpected-accumulation`` and the informational ``accumulation``.

They are judged per optimizer when it steps, from the recorder's summary of its gradients (which grads
carried contributions an earlier step already applied, which were cleared, how many backward passes each
holds), because judging at accumulation time gives false alarms on GAN loops where one loss flows into
another model's gradients that are cleared before that model steps.

Loops that update leaves by hand (no optimizer) are judged the same way from the recorder's summary of
each update window (``StepEvent`` with optimizer ``"manual update"``, emitted after the backward that
follows the update): a carried gradient is ``missing-zero-grad`` (a warning: the update rule is the
user's own, so gradlens cannot tell that the re-application is unintended as surely as for an optimizer),
located at that backward, with the update statement as the related location; a window with more backward
passes than the loop's steady rhythm is ``unexpected-accumulation``.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..instrument.events import StepEvent
from .base import Tally, names

MANUAL = "manual update"  # the recorder's label for updates made by hand

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
        if ev.off_rhythm:
            out.append(self._off_rhythm(ev))
        elif ev.max_count > 1 and not (ev.carried or ev.repeated or ev.eval_mixed):
            out.append(self._accumulation(ev))
        return out

    def _missing(self, ev: StepEvent) -> Finding:
        key = f"missing-zero-grad:{ev.optimizer}"
        evidence = {"parameters": len(ev.carried), "of": ev.n_params, "max_contributions": ev.max_count}
        severity = "error"
        if ev.optimizer == MANUAL:
            severity = "warning"
            first = ev.carried[0]
            msg = (
                f"Tensors updated by hand ({names(ev.carried)}) received new gradients on top of ones the "
                "last update already applied: .grad was never cleared, so each update re-applies every "
                f"earlier gradient. Clear it after the update ({first}.grad = None, or {first}.grad.zero_() "
                "inside the torch.no_grad() block)."
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
            lambda: Finding("missing-zero-grad", severity, msg, ev.location, ev.step, ev.carried, evidence,
                            related_locations=ev.related),
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

    def _off_rhythm(self, ev: StepEvent) -> Finding:
        key = f"unexpected-accumulation:rhythm:{ev.optimizer}"
        evidence = {"parameters": len(ev.off_rhythm), "backward_per_update": ev.max_count, "rhythm": ev.rhythm}
        msg = (
            f"An update by hand applied gradients of {ev.max_count} backward passes to {names(ev.off_rhythm)} "
            f"where every update before applied {ev.rhythm}: a backward outside the update rhythm (an "
            "evaluation pass between updates?) added its gradient to the next update. Compute evaluation "
            "losses under torch.no_grad() without backward(), or clear .grad after that backward."
        )
        return self._t.bump(
            key,
            lambda: Finding("unexpected-accumulation", "error", msg, ev.location, ev.step, ev.off_rhythm,
                            evidence, related_locations=ev.related),
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
        who = "Updates by hand apply" if ev.optimizer == MANUAL else f"{ev.optimizer} steps on"
        msg = (
            f"{who} gradients accumulated over {ev.max_count} backward passes{note}: "
            "recognised as deliberate gradient accumulation. Scale each loss by 1/k so the step size "
            "does not grow with k."
        )
        return self._t.bump(
            key, lambda: Finding("accumulation", "info", msg, ev.location, ev.step, (), evidence), evidence
        )
