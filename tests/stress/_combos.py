"""The set of distinct ``(op, input shapes, dtypes, outcome)`` combinations the fuzz tests compared."""

from __future__ import annotations

COMBOS: set[tuple] = set()
PROGRAMS = [0]
QUIRKS = [0]  # programs torch accepts only because their result is empty (see _torch_empty_quirk)


def record(op: str, label: str, shapes, dtypes, outcome: str = "ok") -> None:
    """One step that ran: its op name, its op-with-arguments label, input shapes and dtypes, outcome."""
    COMBOS.add((op, label, tuple(tuple(s) for s in shapes), tuple(str(d) for d in dtypes), outcome))
