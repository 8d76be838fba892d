"""The events the recorder emits: frozen plain-data records of what happened in a watched loop.

Detectors consume these (and nothing engine-specific), so they can be unit-tested with hand-built events.
Events are coarse on purpose: one per optimizer step, per iteration boundary, per evaluation-mode forward,
per suspicious backward. Per-parameter bookkeeping stays in the recorder, which summarises it into names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..findings import Location

__all__ = [
    "StepEvent",
    "TickEvent",
    "EvalForwardEvent",
    "GraphDroppedEvent",
    "BackwardErrorEvent",
    "LoudErrorEvent",
    "Event",
    "event_to_dict",
    "event_from_dict",
    "EVENT_TYPES",
]


@dataclass(frozen=True, slots=True)  # a session keeps up to MAX_EVENTS of them
class StepEvent:
    """An optimizer is about to step, or an update by hand was seen (``optimizer == "manual update"``,
    emitted after the backward that followed the update): the state of the gradients it consumed.

    Attributes:
        step: global optimizer-step index (1-based, all optimizers counted).
        optimizer: a readable label (``"SGD#0"``).
        optimizer_steps: how many times this optimizer has stepped, this one included.
        n_params: parameters of this optimizer that require grad.
        touched: parameters that received a gradient since this optimizer's last step.
        max_count: the largest number of backward contributions held by one of those gradients.
        carried: parameters whose gradient still held contributions an earlier step already applied.
        cleared: touched parameters whose gradient was cleared before this step.
        never_grad: parameters of this optimizer that never received a gradient while watched.
        nonfinite: parameters with NaN/Inf in their gradient; None when not checked this step.
        eval_mixed: touched parameters whose gradient mixes evaluation-mode and training backward passes.
        repeated: touched parameters that received a second backward through an already-used graph.
        orphans: parameters that received gradients yet are held by no optimizer seen stepping.
        declared_accumulation: the ``accumulation=`` the user declared, or None.
        location: the user's ``step()`` call; for a manual update, the ``backward()`` after it (for
            ``off_rhythm``, the backward outside the rhythm).
        off_rhythm: leaves whose update applied more backward passes than the loop's steady rhythm.
        rhythm: the backward passes per update of the windows before (with ``off_rhythm``), or None.
        related: other lines that matter (for a manual update, the update statement).
    """

    step: int
    optimizer: str
    optimizer_steps: int
    n_params: int
    touched: tuple[str, ...]
    max_count: int
    carried: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()
    never_grad: tuple[str, ...] = ()
    nonfinite: tuple[str, ...] | None = None
    eval_mixed: tuple[str, ...] = ()
    repeated: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()
    declared_accumulation: int | None = None
    location: Location | None = None
    off_rhythm: tuple[str, ...] = ()
    rhythm: int | None = None
    related: tuple[Location, ...] = ()


@dataclass(frozen=True, slots=True)  # a session keeps up to MAX_EVENTS of them
class TickEvent:
    """An iteration ended (the first optimizer to step has stepped, or, without optimizer steps, a leaf
    was updated by hand before the next backward): what graphs are still alive.

    Attributes:
        iteration: the iteration that just ended (0-based).
        step: global optimizer-step index at the boundary.
        old_roots: loss graphs backpropagated at least two iterations ago and still alive.
        old_root_iterations: how many distinct old iterations those graphs come from.
        old_saved: tensors saved for backward (sampled iterations) at least two iterations ago, still alive.
        old_saved_bytes: their bytes.
        old_saved_iterations: how many distinct old iterations those tensors come from.
        cross_unpacks: backward passes so far that used tensors saved two or more iterations earlier.
        sampled: whether this iteration's saved tensors were tracked.
        location: the user's ``step()`` call.
    """

    iteration: int
    step: int
    old_roots: int = 0
    old_root_iterations: int = 0
    old_saved: int = 0
    old_saved_bytes: int = 0
    old_saved_iterations: int = 0
    cross_unpacks: int = 0
    sampled: bool = False
    location: Location | None = None


@dataclass(frozen=True, slots=True)  # a session keeps up to MAX_EVENTS of them
class EvalForwardEvent:
    """A module in evaluation mode ran forward with grad mode on, building a graph.

    Attributes:
        module: the module's name.
        step: global optimizer-step index when it ran.
        location: the user's call of the module.
    """

    module: str
    step: int
    location: Location | None = None


@dataclass(frozen=True, slots=True)  # a session keeps up to MAX_EVENTS of them
class GraphDroppedEvent:
    """A graph built by an evaluation-mode forward died (or outlived an iteration) without backward.

    Attributes:
        module: the module whose output it was.
        step: global optimizer-step index when it was built.
        saved_bytes: bytes it saved for backward, when measured (sampled iteration), else None.
        alive: True when the graph is still alive at an iteration boundary (kept by the user).
        location: the user's call of the module.
    """

    module: str
    step: int
    saved_bytes: int | None = None
    alive: bool = False
    location: Location | None = None


@dataclass(frozen=True, slots=True)  # a session keeps up to MAX_EVENTS of them
class BackwardErrorEvent:
    """A backward pass raised "backward through the graph a second time" on a graph it had not run before:
    the graph reaches into an earlier iteration's freed graph (state carried without ``detach()``).

    Attributes:
        step: global optimizer-step index.
        iteration: the current iteration.
        message: the engine's error text.
        holder: the variable that carried the old graph, when found.
        location: the user's ``backward()`` call.
    """

    step: int
    iteration: int
    message: str
    holder: str | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)  # one per loud error explained
class LoudErrorEvent:
    """The engine raised one of its loud autograd errors; what gradlens found about the line that caused it
    (the script still raises the engine's own exception, unchanged).

    Attributes:
        rule: the rule slug (``leaf-rebound``, ``inplace-on-leaf``, ``inplace-modified-saved``,
            ``backward-through-freed-graph``, ``graph-cut``).
        step: global optimizer-step index (1-based, the step being prepared).
        iteration: the current iteration.
        error: the exception's type name (``RuntimeError``).
        variable: the variable at fault, when found.
        cause: how it went wrong, in a word: ``rebound``, ``in-place``, ``carried``, ``shared``, ``detach``,
            ``round trip``, ``data``, ``no_grad``; empty when the cause was not found.
        code: the source text of the root line.
        location: the root line (the line to edit), or None when it was not found.
        raised_at: where the error was raised (the ``backward()`` call, or the failing statement).
        other: one more line that matters (the earlier backward that freed the graph), or None.
    """

    rule: str
    step: int
    iteration: int
    error: str
    variable: str | None = None
    cause: str = ""
    code: str = ""
    location: Location | None = None
    raised_at: Location | None = None
    other: Location | None = None


Event = StepEvent | TickEvent | EvalForwardEvent | GraphDroppedEvent | BackwardErrorEvent | LoudErrorEvent
EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (StepEvent, TickEvent, EvalForwardEvent, GraphDroppedEvent, BackwardErrorEvent, LoudErrorEvent)
}
_LOCATION_FIELDS = ("location", "raised_at", "other")


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-safe dict of an event, with its type name under ``"type"``."""
    data = asdict(event)
    for k, v in list(data.items()):
        if isinstance(v, tuple):
            data[k] = list(v)
    data["type"] = type(event).__name__
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event written by ``event_to_dict``."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    for key in _LOCATION_FIELDS:
        if isinstance(data.get(key), dict):
            data[key] = Location(**data[key])
    for k, v in list(data.items()):
        if isinstance(v, list):
            data[k] = tuple(Location(**x) if isinstance(x, dict) else x for x in v)
    return cls(**data)
