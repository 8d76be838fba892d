"""torch's loud autograd errors, explained: ``leaf-rebound``, ``inplace-on-leaf``, ``inplace-modified-saved``,
``backward-through-freed-graph`` and ``graph-cut``.

The engine's error names the symptom where it was noticed (the ``backward()`` call, the statement reading
``w.grad``); the finding names the variable and the line to edit, with the fix in one sentence in the
spirit of PyTorch's own FAQ (update leaves in place under ``torch.no_grad()``; ``.detach()`` what must not
carry a graph). The script still raises the engine's exception, unchanged: this only adds a finding.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding, Location
from ..instrument.events import LoudErrorEvent
from .base import Tally

__all__ = ["LoudErrorDetector"]


class LoudErrorDetector:
    """One error finding per loud error (per rule and root line), with a count."""

    def __init__(self) -> None:
        self._t = Tally()

    def observe(self, event: Any) -> list[Finding]:
        if not isinstance(event, LoudErrorEvent):
            return []
        location = event.location or event.raised_at
        related = tuple(dict.fromkeys(
            loc for loc in (event.raised_at, event.other) if loc is not None and loc != location))
        evidence = {"error": event.error, "cause": event.cause or None, "iteration": event.iteration,
                    "root_line_found": event.location is not None}
        subject = (event.variable,) if event.variable else ()
        key = f"{event.rule}:{location}"
        return [self._t.bump(key, lambda: Finding(event.rule, "error", message(event), location, event.step,
                                                   subject, evidence, related_locations=related), evidence)]


def _line(loc: Location | None) -> str:
    return f"line {loc.line}" if loc is not None else "an earlier line"


def message(ev: LoudErrorEvent) -> str:
    """What happened, where, and the fix in one sentence."""
    v = f"`{ev.variable}`" if ev.variable else "a tensor"
    at = _line(ev.location)
    code = f" (`{ev.code}`)" if ev.code else ""
    rule = ev.rule
    if rule == "leaf-rebound":
        return (f"{v} was rebound to a computed tensor at {at}{code}, so it is no longer a leaf: backward does "
                f"not fill its .grad, which stays None. Update the weight in place under torch.no_grad() "
                f"(`with torch.no_grad(): {ev.variable or 'w'} -= lr * {ev.variable or 'w'}.grad`) and clear "
                "the gradient after each update.")
    if rule == "inplace-on-leaf":
        return (f"{v} is a leaf tensor that requires grad, and {at}{code} changes it in place while grad mode "
                "is on, which autograd forbids. Do manual updates under torch.no_grad() (`with torch.no_grad(): "
                f"{ev.variable or 'w'} -= lr * {ev.variable or 'w'}.grad`).")
    if rule == "inplace-modified-saved":
        if ev.cause:
            return (f"{v} was saved by autograd for the backward at {_line(ev.raised_at)}, then changed in place "
                    f"at {at}{code}, so its gradient can no longer be computed. Use the out-of-place form "
                    f"(`{ev.variable} = {ev.variable} + ...` instead of `+=`/`add_`), or change a copy "
                    f"(`{ev.variable}.clone()`).")
        return ("A tensor autograd saved for this backward was changed in place before the backward ran; "
                f"gradlens could not find the line{' (it concerns ' + v + ')' if ev.variable else ''}. Look for "
                "`+=`, `x.add_()`, `x[i] = ...` or `inplace=True` on tensors the forward used, and use "
                "out-of-place ops there.")
    if rule == "backward-through-freed-graph":
        if ev.cause == "carried":
            return (f"{v} carries the graph of an earlier iteration, which backward already freed: {at}{code} "
                    f"computes {v} from its previous value without detach(). Detach carried state once per "
                    f"iteration (`{ev.variable} = {ev.variable}.detach()` before it is used); "
                    "retain_graph=True is not the fix, it keeps every iteration's graph alive.")
        if ev.cause == "shared":
            return (f"{v} is used at {at}{code} in a loss whose backward ({_line(ev.other)}) freed the graph that "
                    f"produced {v}, and the backward at {_line(ev.raised_at)} needs that graph again. Pass "
                    f"`{ev.variable}.detach()` where it only trains the other model (in a GAN: the "
                    f"discriminator's step, `D({ev.variable}.detach())`).")
        return ("This backward runs through a graph an earlier backward already freed: a tensor kept from an "
                "earlier iteration, or reused by a second loss, was not detached. Detach it where it is reused "
                "(`x.detach()`); retain_graph=True only hides the problem.")
    # graph-cut
    what = {"detach": f"cuts the graph with detach(){code}",
            "round trip": f"turns a tensor into a Python number or array and back{code}, which drops the graph",
            "data": f"reads .data{code}, which is not tracked by autograd",
            "no_grad": f"opens a torch.no_grad() block{code}, inside which no graph is recorded"}.get(ev.cause)
    if what is None:
        return ("The loss does not depend on any tensor that requires grad (no parameter has "
                "requires_grad=True, or the graph was cut inside a called function). Check that the parameters "
                "require grad and that no detach(), .item() or torch.no_grad() sits on the path to the loss.")
    fix = {"detach": "Remove the detach() on the path to the loss (detach only what you log or store).",
           "round trip": "Keep the computation in tensor ops; use .item() only for logging.",
           "data": "Use the tensor itself, not .data, on the path to the loss.",
           "no_grad": "Run the forward pass the loss needs outside torch.no_grad()."}[ev.cause]
    return f"The loss has no grad_fn: {at} {what}, so {v} and everything computed from it carry no graph. {fix}"
