"""gradlens's own exceptions and warnings.

One base exception (``GradlensError``) and one warning base (``GradlensWarning``), with one warning subclass
per detector rule so users can filter a single rule with the ``warnings`` module. Messages say what was
expected, what was received, and how to fix it.
"""

from __future__ import annotations

__all__ = ["GradlensError", "GraphvizNotFoundError", "RecordError", "FindingError", "GradlensWarning",
           "warning_class_for"]


class GradlensError(Exception):
    """Base class of every error gradlens raises on its own behalf."""


class GraphvizNotFoundError(GradlensError, RuntimeError):
    """Graphviz's ``dot`` program is needed (SVG/PNG/PDF output) but is not installed."""


class RecordError(GradlensError, ValueError):
    """A saved gradlens record (JSON) is unreadable, truncated, foreign or of an unsupported version."""


class GradlensWarning(UserWarning):
    """Base category of every finding gradlens reports as a warning."""

    kind: str = ""


_WARNING_CLASSES: dict[str, type[GradlensWarning]] = {}


def warning_class_for(kind: str) -> type[GradlensWarning]:
    """The warning subclass for a rule slug (``missing-zero-grad`` -> ``MissingZeroGradWarning``).

    Classes are created once per slug and cached, so ``warnings.filterwarnings`` can name them.
    """
    cls = _WARNING_CLASSES.get(kind)
    if cls is None:
        name = "".join(part.capitalize() for part in kind.split("-")) + "Warning"
        cls = type(name, (GradlensWarning,), {"kind": kind, "__module__": __name__,
                                              "__doc__": f"Finding of rule ``{kind}``."})
        _WARNING_CLASSES[kind] = cls
        globals()[name] = cls
    return cls


class FindingError(GradlensError, RuntimeError):
    """Raised by ``watch(on_finding="raise")`` when a rule reports an error; ``.finding`` holds it."""

    def __init__(self, finding):
        from .findings import Finding  # findings imports this module

        if not isinstance(finding, Finding):
            raise TypeError(f"FindingError(finding) expects a gradlens.Finding; received "
                            f"{type(finding).__name__}. Fix: raise FindingError(lens.findings[0]), or raise "
                            "GradlensError for a message of your own.")
        self.finding = finding
        where = f" at {finding.location}" if finding.location else ""
        super().__init__(f"[{finding.kind}]{where}: {finding.message}")

    def __reduce__(self):
        return type(self), (self.finding,)  # pickling (multiprocessing, pytest-xdist) rebuilds from the finding
