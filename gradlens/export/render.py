"""Write a drawing to disk: ``render(obj_or_graph, path)``.

``.dot`` is written directly and always works; ``.svg``/``.png``/``.pdf`` go through Graphviz's ``dot``
(or ``neato -n2`` for positioned drawings of very large graphs), always with a timeout, because a layout
can run for minutes on unlucky graphs. A missing Graphviz raises ``GraphvizNotFoundError`` with the
install hint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .._checks import check_seconds
from ..errors import GraphvizNotFoundError
from .dot import GradlensDot, to_dot

__all__ = ["render", "svg_text", "run_graphviz", "GraphvizNotFoundError", "INSTALL_HINT", "FORMATS"]

INSTALL_HINT = ("Install Graphviz (apt-get install graphviz, brew install graphviz, conda install graphviz, "
                "or https://graphviz.org/download/) so that `dot` is on PATH; .dot files need no Graphviz.")
FORMATS = ("dot", "gv", "svg", "png", "pdf")
DEFAULT_TIMEOUT = 60.0


def run_graphviz(text: str, fmt: str, prog: str | list[str] = "dot",
                 timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Lay out DOT ``text`` with Graphviz and return the output bytes.

    Args:
        text: DOT source.
        fmt: a Graphviz output format (``"svg"``, ``"png"``, ``"pdf"``).
        prog: the Graphviz program, possibly with arguments (``["neato", "-n2"]``).
        timeout: seconds before the layout is abandoned.

    Returns:
        The rendered bytes.

    Raises:
        GraphvizNotFoundError: the program is not on PATH.
        RuntimeError: Graphviz failed or timed out.

    Example:
        >>> run_graphviz("digraph { a -> b }", "svg")[:5]  # doctest: +SKIP
        b'<?xml'
    """
    timeout = check_seconds(timeout, "run_graphviz(timeout=...)", fix="timeout=60.")
    argv = [prog] if isinstance(prog, str) else list(prog)
    exe = shutil.which(argv[0])
    if exe is None:
        raise GraphvizNotFoundError(f"rendering {fmt.upper()} needs Graphviz's `{argv[0]}` program, which "
                                    f"was not found on PATH. {INSTALL_HINT}")
    try:
        done = subprocess.run([exe, *argv[1:], f"-T{fmt}"], input=text.encode(), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"Graphviz `{argv[0]}` did not finish within {timeout:g} s; expected a layout in "
                           "time. Fix: fold repeated blocks (style fold=True), lower max_nodes, pass a "
                           "larger timeout, or write .dot instead.") from exc
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz `{argv[0]}` failed with exit code {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()[:500]}")
    return done.stdout


def svg_text(dot: GradlensDot, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The SVG of a drawing (for notebooks and reports).

    Args:
        dot: a drawing from ``to_dot()``.
        timeout: seconds before the layout is abandoned.

    Returns:
        SVG markup.

    Raises:
        GraphvizNotFoundError: Graphviz is not installed.
        RuntimeError: Graphviz failed or timed out.

    Example:
        >>> svg_text(to_dot(graph_or_tensor))  # doctest: +SKIP
    """
    return run_graphviz(dot.to_string(), "svg", dot.prog, timeout).decode("utf-8")


def render(obj_or_graph: Any, path: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT,
           **kwargs: Any) -> Path:
    """Write a drawing of a backward graph to ``path``; the suffix picks the format.

    Args:
        obj_or_graph: a ``GradlensDot`` from ``to_dot()``, a graph from ``gradlens.graph()``, or anything
            ``gradlens.graph()`` accepts.
        path: target file; ``.dot``/``.gv`` are written directly, ``.svg``/``.png``/``.pdf`` through
            Graphviz.
        timeout: seconds before a Graphviz layout is abandoned.
        **kwargs: ``params``, ``max_nodes`` and style options, passed to ``to_dot()``.

    Returns:
        The path written.

    Raises:
        TypeError: ``path`` is not a str or path, or ``timeout`` is not a number.
        ValueError: the suffix is not one of ``FORMATS``, or ``timeout`` is not a finite number > 0.
        GraphvizNotFoundError: an image format was asked for and Graphviz is not installed.
        RuntimeError: Graphviz failed or timed out.

    Example:
        >>> import gradlens, gradlens.engine as ge
        >>> x = ge.tensor([1.0, 2.0], requires_grad=True)
        >>> gradlens.render((x * x).sum(), "/tmp/graph.dot").name
        'graph.dot'
    """
    check_seconds(timeout, "render(timeout=...)", fix="timeout=60, or write a .dot file (no layout needed).")
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        suffixes = ", ".join("." + f for f in FORMATS)
        raise ValueError(f"render() writes one of {suffixes}; received {path.name!r}. "
                         "Fix: choose a path ending in .dot or .svg.")
    dot = obj_or_graph if isinstance(obj_or_graph, GradlensDot) else to_dot(obj_or_graph, **kwargs)
    if fmt in ("dot", "gv"):
        path.write_text(dot.to_string(), encoding="utf-8")
    else:
        path.write_bytes(run_graphviz(dot.to_string(), fmt, dot.prog, timeout))
    return path
