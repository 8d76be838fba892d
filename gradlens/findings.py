"""``Finding``: what a detector reports, as plain data.

A finding names one rule (its public slug), how bad it is, what happened and how to fix it, where in the
user's code, at which optimizer step it first showed, what it concerns (parameters, a module, a variable)
and the numbers behind it. It never holds a tensor, a node or a module, so it can be compared in tests,
written to JSON and read back (``to_dict`` / ``from_dict`` carry a format version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._checks import check_choice, check_int, check_type, shown
from .errors import RecordError

__all__ = ["Finding", "Location", "SEVERITIES", "RULES", "RULE_DESCRIPTIONS", "FINDING_FORMAT", "FINDING_VERSION"]

FINDING_FORMAT = "gradlens.finding"
FINDING_VERSION = 1

SEVERITIES = ("error", "warning", "info")
"""Severities, most severe first."""

RULES = (
    "missing-zero-grad",
    "unexpected-accumulation",
    "graph-retained",
    "graph-without-backward",
    "zero-grad-before-step",
    "no-gradient",
    "param-not-in-optimizer",
    "nonfinite-gradient",
    "accumulation",
    # torch's loud errors, explained at the line that caused them (the script still raises torch's error)
    "leaf-rebound",
    "inplace-on-leaf",
    "inplace-modified-saved",
    "backward-through-freed-graph",
    "graph-cut",
)
"""The public rule slugs (JSON, SARIF, warnings and ``ignore=`` use them)."""

RULE_DESCRIPTIONS = {
    "missing-zero-grad": "Gradients were not cleared between updates, so each update applied stale gradients of "
                         "earlier iterations.",
    "unexpected-accumulation": "Gradients accumulated in a way the loop did not declare (a second backward through "
                               "the same graph, or evaluation passes mixed into training gradients).",
    "graph-retained": "Autograd graphs stayed alive across iterations (e.g. `total_loss += loss`), holding memory "
                      "that grows every step.",
    "graph-without-backward": "A forward pass built an autograd graph that never reached backward (e.g. evaluation "
                              "without `torch.no_grad()`).",
    "zero-grad-before-step": "Gradients were cleared after backward but before the optimizer step, so the step "
                             "applied no gradient.",
    "no-gradient": "Parameters handed to the optimizer never received a gradient.",
    "param-not-in-optimizer": "Parameters received gradients but no optimizer updates them.",
    "nonfinite-gradient": "A gradient held NaN or Inf values.",
    "accumulation": "Several backward passes contributed to each optimizer step (gradient accumulation).",
    "leaf-rebound": "A weight was rebound to a computed tensor (`w = w - lr * w.grad`), so it is no longer a leaf "
                    "and its `.grad` stays None.",
    "inplace-on-leaf": "A leaf tensor that requires grad was changed in place outside `torch.no_grad()`.",
    "inplace-modified-saved": "A tensor autograd saved for backward was changed in place before the backward.",
    "backward-through-freed-graph": "A backward ran through a graph an earlier backward had already freed (e.g. a "
                                    "hidden state carried across iterations without `detach()`).",
    "graph-cut": "The loss was not connected to any tensor that requires grad: the graph was cut (`detach()`, "
                 "`.item()`/`.numpy()` round trips, or a forward pass under `torch.no_grad()`).",
}
"""One sentence per rule (SARIF rule descriptions, the README's catalogue)."""


@dataclass(frozen=True)
class Location:
    """A place in the user's source code.

    Attributes:
        file: path of the source file.
        line: 1-based line number; 0 when unknown (None is read as 0).
        function: name of the enclosing function (``<module>`` at top level).
    """

    file: str
    line: int
    function: str

    def __post_init__(self) -> None:
        check_type(self.file, "Location.file", str, "a source file path (str)")
        line = 0 if self.line is None else self.line  # frame.f_lineno is None on some instructions
        line = check_int(line, "Location.line", minimum=0, meaning="1-based; 0 when unknown")
        object.__setattr__(self, "line", line)
        check_type(self.function, "Location.function", str, "a function name (str)")

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Location:
        return cls(str(data["file"]), int(data["line"]), str(data["function"]))


@dataclass(frozen=True)
class Finding:
    """One rule's report about a watched run; each rule reports a problem once, with a ``count``.

    Attributes:
        kind: the rule's slug (one of ``RULES``).
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        message: what happened, why it matters, how to fix it (one or two sentences).
        location: the user's statement to edit (the rule's root line), where it can be known.
        step: the first optimizer step (1-based) where it showed, or None.
        subject: parameter names, a module name, or the variable holding a leaked graph.
        evidence: numbers behind the finding (JSON-safe values only).
        count: how many times the rule saw the problem (steps, backward passes, graphs).
        graph: the graph the finding concerns (a ``networkx.DiGraph``), or None.
        related_locations: other places that matter, e.g. where the symptom was noticed (SARIF
            ``relatedLocations``); each a ``Location``.
        key: groups repeated observations of the same problem (not serialised).

    Raises:
        TypeError: a field is of the wrong type (``kind=5``, ``subject="fc.weight"``, ``step="1"``).
        ValueError: a field is out of range (an unknown severity, ``count=0``, ``step=nan``).

    Example:
        >>> f = Finding("accumulation", "info", "4 backward passes per step.", step=1)
        >>> Finding.from_dict(f.to_dict()) == f
        True
    """

    kind: str
    severity: str
    message: str
    location: Location | None = None
    step: int | None = None
    subject: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict, hash=False)
    count: int = 1
    graph: Any = field(default=None, compare=False, hash=False, repr=False)
    related_locations: tuple[Location, ...] = ()
    key: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        check_type(self.kind, "Finding.kind", str, f"a rule slug (str), one of {RULES}")
        check_choice(self.severity, "Finding.severity", SEVERITIES)
        check_type(self.message, "Finding.message", str, "a str saying what happened and how to fix it")
        if self.location is not None:
            check_type(self.location, "Finding.location", Location, "a gradlens.Location or None",
                       fix="Location(file, line, function).")
        if self.step is not None:
            step = check_int(self.step, "Finding.step", minimum=0, meaning="the first optimizer step, or None")
            object.__setattr__(self, "step", step)
        count = check_int(self.count, "Finding.count", minimum=1, meaning="how many times the rule saw the problem")
        object.__setattr__(self, "count", count)
        check_type(self.evidence, "Finding.evidence", Mapping, "a mapping of names to JSON-safe values")
        subject = check_type(self.subject, "Finding.subject", (tuple, list), "a tuple of names (str)",
                             fix="subject=('fc.weight',).")
        if not all(isinstance(s, str) for s in subject):
            raise TypeError(f"Finding.subject expects a tuple of names (str); received {shown(subject)}.")
        if not isinstance(subject, tuple):
            object.__setattr__(self, "subject", tuple(subject))
        related = check_type(self.related_locations, "Finding.related_locations", (tuple, list),
                             "a tuple of gradlens.Location", fix="related_locations=(Location(file, line, fn),).")
        if not all(isinstance(r, Location) for r in related):
            raise TypeError("Finding.related_locations expects a tuple of gradlens.Location; "
                            f"received {shown(related)}.")
        if not isinstance(related, tuple):
            object.__setattr__(self, "related_locations", tuple(related))

    def with_count(self, count: int, evidence: Mapping[str, Any] | None = None) -> Finding:
        """A copy with a new count (and evidence, when given)."""
        return replace(self, count=count, evidence=dict(evidence) if evidence is not None else self.evidence)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with a format version; the graph goes in as networkx node-link data."""
        graph = None
        if self.graph is not None:
            import networkx as nx

            graph = nx.node_link_data(self.graph, edges="edges")
        return {
            "format": FINDING_FORMAT,
            "version": FINDING_VERSION,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "location": self.location.to_dict() if self.location else None,
            "step": self.step,
            "subject": list(self.subject),
            "evidence": dict(self.evidence),
            "count": self.count,
            "graph": graph,
            "related_locations": [r.to_dict() for r in self.related_locations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding written by ``to_dict``.

        Raises:
            RecordError: the dict is not a gradlens finding or has an unsupported version.
        """
        if not isinstance(data, Mapping) or data.get("format") != FINDING_FORMAT:
            raise RecordError(
                f"expected a dict with format {FINDING_FORMAT!r}; received "
                f"{type(data).__name__} with format {getattr(data, 'get', lambda k: None)('format')!r}."
                " Pass the output of Finding.to_dict()."
            )
        version = data.get("version")
        if version != FINDING_VERSION:
            raise RecordError(
                f"expected finding format version {FINDING_VERSION}; received {version!r}. "
                "Upgrade gradlens to read this record."
            )
        try:
            graph = None
            if data.get("graph") is not None:
                import networkx as nx

                graph = nx.node_link_graph(data["graph"], edges="edges")
            loc = data.get("location")
            return cls(
                kind=str(data["kind"]),
                severity=str(data["severity"]),
                message=str(data["message"]),
                location=Location.from_dict(loc) if loc else None,
                step=data.get("step"),
                subject=tuple(str(s) for s in data.get("subject", ())),
                evidence=dict(data.get("evidence", {})),
                count=int(data.get("count", 1)),
                graph=graph,
                related_locations=tuple(Location.from_dict(r) for r in data.get("related_locations") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(
                f"finding record is truncated or malformed ({exc}); expected the fields written "
                "by Finding.to_dict()."
            ) from exc
