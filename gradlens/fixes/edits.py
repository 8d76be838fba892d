"""Line edits on one source file and the unified diff they make.

An ``Edit`` replaces a half-open range of 0-based lines with new lines (an insertion when the range is
empty). Edits of one file are applied bottom-up so earlier line numbers stay valid; identical edits from
two findings are made once, and an edit that overlaps another is refused (the user re-runs after applying).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

__all__ = ["Edit", "FileFix"]


@dataclass(frozen=True)
class Edit:
    """Replace ``lines[start:end]`` (0-based, half-open) with ``new``; ``start == end`` inserts."""

    start: int
    end: int
    new: tuple[str, ...]

    def overlaps(self, other: Edit) -> bool:
        if self == other:
            return False
        if self.start == self.end or other.start == other.end:  # an insertion clashes only strictly inside
            return other.start < self.start < other.end or self.start < other.start < self.end
        return self.start < other.end and other.start < self.end


@dataclass
class FileFix:
    """The accepted edits of one file.

    Attributes:
        path: the file on disk.
        relative: its path relative to the run's root (the ``a/``/``b/`` names of the diff).
        lines: the file's lines as read, line endings kept.
        edits: the accepted edits.
    """

    path: str
    relative: str
    lines: list[str]
    edits: list[Edit] = field(default_factory=list)

    def accepts(self, edits: list[Edit]) -> bool:
        """Add ``edits`` unless one overlaps an accepted edit; True when added (or all already present)."""
        if any(e.overlaps(o) for e in edits for o in self.edits):
            return False
        self.edits.extend(e for e in edits if e not in self.edits)
        return True

    def patched(self) -> list[str]:
        out = list(self.lines)
        for e in sorted(self.edits, key=lambda e: (e.start, e.end), reverse=True):
            out[e.start:e.end] = [line if line.endswith("\n") else line + "\n" for line in e.new]
        return out

    def diff(self) -> str:
        """The unified diff of the accepted edits (empty when there are none)."""
        return "".join(difflib.unified_diff(self.lines, self.patched(), fromfile=f"a/{self.relative}",
                                            tofile=f"b/{self.relative}"))
