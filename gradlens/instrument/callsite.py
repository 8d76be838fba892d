"""Call-site capture: which user statement is running now, and the line a variable was built on.

gradlens reports findings at the user's lines, never at its own or torch's. ``user_frame`` walks out of
gradlens, torch and the stdlib helpers that call back into them; ``assignment_line`` reads a function's
source (``ast``, ``rootlines.py``) to find where a variable accumulates (``+=``, ``.append(``, ``=``).
Frame walks cost microseconds: callers take locations only when a finding needs one.
"""

from __future__ import annotations

import os
import sys

from ..findings import Location

__all__ = ["user_location", "_user_frame", "_assignment_line", "_drop_snapshot", "_GRADLENS_DIR"]

_GRADLENS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_DIRS: list[str] = [_GRADLENS_DIR + os.sep]


def _skip_dirs() -> list[str]:
    if len(_SKIP_DIRS) == 1:
        torch_mod = sys.modules.get("torch")
        if torch_mod is not None and getattr(torch_mod, "__file__", None):
            _SKIP_DIRS.append(os.path.dirname(os.path.abspath(torch_mod.__file__)) + os.sep)
    return _SKIP_DIRS


def _user_frame(start: int = 2):
    """The innermost frame outside gradlens, torch and the stdlib helpers that call back into them."""
    try:
        f = sys._getframe(start)
    except ValueError:
        return None
    skip = _skip_dirs()
    while f is not None:
        fn = f.f_code.co_filename
        if (
            not any(fn.startswith(d) for d in skip)
            and not fn.endswith(("contextlib.py", "functools.py"))
            and not fn.startswith("<frozen")
        ):
            return f
        f = f.f_back
    return None


def user_location(start: int = 2) -> Location | None:
    """The user's statement that is running now (file, line, function), or None."""
    f = _user_frame(start + 1)
    if f is None:
        return None
    return Location(f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def _drop_snapshot(frame, snapshot: dict) -> None:
    """Before Python 3.13, ``frame.f_locals`` caches a dict of the locals on the frame, which would keep
    this iteration's tensors (and graphs) alive as long as the user's function runs; empty it. Module
    frames (whose f_locals are the globals) and 3.13+ write-through proxies are left alone."""
    if sys.version_info < (3, 13) and frame.f_code.co_flags & 0x1 and snapshot is not frame.f_globals:
        snapshot.clear()



def _assignment_line(frame, name: str) -> int | None:
    """The line in the frame's function that stores into ``name`` (``+=``, ``.append(``, ``[k] =``; else
    its last ``=``), preferring the loop around the frame's current line (``rootlines.accumulation_line``)."""
    from .rootlines import accumulation_line

    code = frame.f_code
    line = getattr(frame, "f_lineno", None) or code.co_firstlineno
    return accumulation_line(code.co_filename, code.co_name, line, name)
