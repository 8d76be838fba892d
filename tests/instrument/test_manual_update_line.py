"""manual.update_line: the related location of a manual-loop finding is the update statement."""

from __future__ import annotations

import sys

from gradlens.instrument.manual import update_line


def _loop_frame():
    return sys._getframe(1)


def test_update_line_prefers_the_update_after_the_current_line():
    def loop(W, b):  # the lines after the return are only read, never run
        frame = _loop_frame()
        return frame
        W.grad = None  # a clear is not an update
        total = 0
        total += 1  # an accumulation that reads no gradient and names no leaf
        W.data.add_(W.grad, alpha=-0.1)
        b -= 0.1 * b.grad

    start = loop.__code__.co_firstlineno
    loc = update_line(loop(None, None), ("W",))
    assert (loc.file, loc.line, loc.function) == (__file__, start + 6, "loop")


def test_update_line_falls_back_to_a_statement_naming_the_leaf():
    def loop(W, g):
        frame = _loop_frame()
        return frame
        W.sub_(0.1 * g)

    start = loop.__code__.co_firstlineno
    assert update_line(loop(None, None), ("W",)).line == start + 3


def test_no_update_line_when_there_is_none():
    def loop():
        return _loop_frame()

    assert update_line(loop(), ("W",), depth=1) is None
