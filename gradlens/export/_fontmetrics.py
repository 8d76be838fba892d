"""Text widths for laying out labels before any browser sees them: Helvetica's advance widths.

An SVG written ahead of time must size each node box to its label without measuring the text. The SVG
asks for Helvetica, Arial or Liberation Sans, which share these metrics (Arial and Liberation Sans were
drawn to match Helvetica's widths); the widths are the standard Helvetica AFM values, in 1/1000 em, for
printable ASCII. Other characters count as a digit. ``SLACK`` leaves room for a fallback font that is a
little wider (DejaVu Sans runs about 8% wider).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["text_width", "SLACK"]

SLACK = 1.1

_ASCII_WIDTHS = (  # characters 32 (space) to 126 (~)
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,  # space to /
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,  # 0 to ?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,  # @ to O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,  # P to _
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,  # ` to o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,  # p to ~
)
_DEFAULT = 556


@lru_cache(maxsize=4096)  # labels repeat: a graph has few distinct op names and shapes
def text_width(text: str, size: float) -> float:
    """The width of one line of ``text`` at font size ``size`` (px), with ``SLACK`` for wider fonts."""
    total = 0
    for ch in text:
        code = ord(ch) - 32
        total += _ASCII_WIDTHS[code] if 0 <= code < len(_ASCII_WIDTHS) else _DEFAULT
    return total * size * SLACK / 1000.0
