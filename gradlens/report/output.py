"""Writing reports to disk all-or-nothing: a report goes to a temporary file beside its target and is
renamed over it only once complete, so an interrupted or failed write never leaves a half-written report.
Also the checks that let the CLI refuse an unwritable destination before a long script runs, and the
folder of DOT files (``--dot-dir``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import GradlensError

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["OutputError", "atomic_write", "check_output", "check_dot_dir", "write_dot_dir"]


class OutputError(GradlensError, OSError):
    """A report or DOT file cannot be written where it was asked to go."""


def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` completely or not at all.

    Raises:
        OutputError: the file cannot be written (the target is left untouched).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "r.txt")
        >>> atomic_write(p, "ok\\n"); open(p).read()
        'ok\\n'
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse a report destination that cannot be written (checked before the script runs).

    Raises:
        OutputError: ``path`` is a folder, its folder does not exist, or the folder is not writable.
    """
    target = os.fspath(path)
    if os.path.isdir(target):
        raise OutputError(f"--output {target} is a folder; expected a file path.")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OutputError(f"--output {target}: folder {folder} does not exist; create it first.")
    if not os.access(folder, os.W_OK) or (os.path.exists(target) and not os.access(target, os.W_OK)):
        raise OutputError(f"--output {target} is not writable; choose a path you can write to.")


def check_dot_dir(path: str | os.PathLike[str]) -> None:
    """Refuse a ``--dot-dir`` that is a file or cannot be created.

    Raises:
        OutputError: the path is an existing file, or the nearest existing folder is not writable.
    """
    target = os.fspath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise OutputError(f"--dot-dir {target} is a file; expected a folder (created when missing).")
    base = _nearest_existing(target)
    if not os.path.isdir(base) or not os.access(base, os.W_OK):
        raise OutputError(f"--dot-dir {target} cannot be created or written ({base} is not a writable "
                          "folder).")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "graph"


def write_dot_dir(record: RunRecord, folder: str | os.PathLike[str]) -> list[str]:
    """Write one DOT file per finding that has a graph, plus ``training-step.dot`` for the graph of one
    ordinary training step when the record has it.

    Args:
        record: the run record.
        folder: where to write (created when missing).

    Returns:
        The paths written, in order.

    Raises:
        OutputError: the folder cannot be created or a file cannot be written.
    """
    from ..export import to_dot

    target = os.fspath(folder)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --dot-dir {target}: {exc.strerror or exc}") from exc
    written: list[str] = []
    items: Iterable = ((i, f) for i, f in enumerate(record.sorted_findings(), 1) if f.graph is not None)
    for i, f in items:
        path = os.path.join(target, f"finding-{i:02d}-{_slug(f.kind)}.dot")
        atomic_write(path, to_dot(f.graph).to_string())
        written.append(path)
    if record.step_graph is not None:
        path = os.path.join(target, "training-step.dot")
        atomic_write(path, to_dot(record.step_graph).to_string())
        written.append(path)
    return written
