"""callsite.py: locations are the user's own statements, never gradlens's or torch's."""

from __future__ import annotations

import inspect

from gradlens.instrument.callsite import _assignment_line, user_location


def test_user_location_is_this_line():
    here = inspect.currentframe().f_lineno + 1
    loc = user_location(1)
    assert (loc.file, loc.line, loc.function) == (__file__, here, "test_user_location_is_this_line")


def test_assignment_line_prefers_accumulation():
    def loop():
        total = 0
        for i in range(2):
            total += i
        return total

    frame_code = loop.__code__

    class Frame:
        f_code = frame_code

    start = loop.__code__.co_firstlineno
    assert _assignment_line(Frame, "total") == start + 3
    assert _assignment_line(Frame, "missing") is None
