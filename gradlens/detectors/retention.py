"""Graph lifetime rules: ``graph-retained`` (a graph built in an earlier iteration still alive, growing)
and ``graph-without-backward`` (evaluation-mode forwards with grad enabled whose graphs never reach
backward).

Retention is judged from growth, never from one non-zero value: a loss variable legitimately keeps the
last iteration's graph alive until it is reassigned, and a GAN keeps one iteration-old graph per model.
A graph is "old" when it comes from two or more iterations back; the rule fires when old graphs come from
at least two distinct iterations and their number grew, when a backward used tensors saved two or more
iterations earlier, or when a backward failed on an earlier iteration's freed graph.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..instrument.events import BackwardErrorEvent, GraphDroppedEvent, TickEvent
from .base import Tally

__all__ = ["RetentionDetector"]


class RetentionDetector:
    """Graphs that outlive their iteration, and graphs built for nothing."""

    def __init__(self) -> None:
        self._t = Tally()
        self._prev: TickEvent | None = None
        self._first_bytes: tuple[int, int] | None = None
        self._first_roots: tuple[int, int] | None = None
        self._dropped_bytes: dict[str, int] = {}

    def observe(self, event: Any) -> list[Finding]:
        if isinstance(event, TickEvent):
            return self._tick(event)
        if isinstance(event, BackwardErrorEvent):
            return [self._error(event)]
        if isinstance(event, GraphDroppedEvent):
            return [self._dropped(event)]
        return []

    def _tick(self, ev: TickEvent) -> list[Finding]:
        prev = self._prev
        self._prev = ev
        if prev is None:
            return []
        roots_grew = ev.old_root_iterations >= 2 and ev.old_roots > prev.old_roots
        saved_grew = ev.old_saved_iterations >= 2 and ev.old_saved_bytes > prev.old_saved_bytes
        crossed = ev.cross_unpacks > prev.cross_unpacks
        if not (roots_grew or saved_grew or crossed):
            return []
        if self._first_roots is None and ev.old_roots:
            self._first_roots = (ev.iteration, ev.old_roots)
        if self._first_bytes is None and ev.old_saved_bytes:
            self._first_bytes = (ev.iteration, ev.old_saved_bytes)
        evidence = {
            "old_graphs": ev.old_roots,
            "old_iterations": max(ev.old_root_iterations, ev.old_saved_iterations),
            # None (not shown) when no sampled iteration's saved tensors were seen surviving: a 0 here would
            # read as "nothing retained" next to a count of retained graphs
            "retained_saved_tensors": ev.old_saved or None,
            "retained_bytes": ev.old_saved_bytes or None,
            "graphs_growth_per_step": _rate(self._first_roots, ev.iteration, ev.old_roots),
            "bytes_growth_per_step": _rate(self._first_bytes, ev.iteration, ev.old_saved_bytes),
            "backward_into_old_iterations": ev.cross_unpacks,
        }
        if crossed:
            msg = (
                "Each backward runs through graphs built in earlier iterations (state carried across "
                "iterations without detach(), e.g. an RNN hidden state kept with retain_graph=True): memory "
                "and backward time grow every step. Detach carried state once per iteration "
                "(h = h.detach()) and drop retain_graph=True."
            )
        else:
            msg = (
                "Autograd graphs built in earlier iterations stay alive and their number grows each step "
                "(e.g. total_loss += loss, or a list of losses/outputs kept with their graph): a memory "
                "leak. Keep plain numbers (loss.item()) or detached tensors (loss.detach())."
            )
        return [
            self._t.bump(
                "graph-retained",
                lambda: Finding("graph-retained", "error", msg, ev.location, ev.step, (), evidence),
                evidence,
            )
        ]

    def _error(self, ev: BackwardErrorEvent) -> Finding:
        evidence = {"iteration": ev.iteration}
        holder = f" ({ev.holder})" if ev.holder else ""
        msg = (
            f"backward() failed because the graph reaches a graph from an earlier iteration, kept alive with "
            f"retain_graph=True, whose saved weights an optimizer step has since changed in place: a tensor "
            f"carried across iterations{holder} was not detached (typically an RNN hidden state). Detach it "
            "once per iteration (h = h.detach()); retain_graph=True is not the fix, it keeps every "
            "iteration's graph alive."
        )
        subject = (ev.holder,) if ev.holder else ()
        return self._t.bump(
            "graph-retained",
            lambda: Finding("graph-retained", "error", msg, ev.location, ev.step, subject, evidence),
            evidence,
        )

    def _dropped(self, ev: GraphDroppedEvent) -> Finding:
        key = f"graph-without-backward:{ev.module}"
        sizes = self._dropped_bytes.get(ev.module)  # the largest seen: memory stays flat over long runs
        if ev.saved_bytes is not None and (sizes is None or ev.saved_bytes > sizes):
            sizes = self._dropped_bytes[ev.module] = ev.saved_bytes
        evidence = {
            "graphs": self._t.count.get(key, 0) + 1,
            "saved_bytes_per_forward": sizes,
            "kept_alive": ev.alive,
        }
        size = f" ({sizes} bytes saved for backward each time)" if sizes is not None else ""
        msg = (
            f"{ev.module} ran forward in evaluation mode with grad enabled and its graph never reached "
            f"backward{size}: wasted time and memory. Wrap evaluation in torch.no_grad() or "
            "torch.inference_mode()."
        )
        return self._t.bump(
            key,
            lambda: Finding(
                "graph-without-backward", "warning", msg, ev.location, ev.step, (ev.module,), evidence
            ),
            evidence,
        )


def _rate(first: tuple[int, int] | None, it: int, value: int) -> float | None:
    if first is None or it <= first[0]:
        return None
    return round((value - first[1]) / (it - first[0]), 2)
