"""Write a drawing to disk or get its bytes: ``render(obj_or_graph, path)`` or ``render(obj, format="svg")``.

Two engines lay drawings out. ``engine="graphviz"`` runs Graphviz's ``dot`` (or ``neato -n2`` for
positioned drawings of very large graphs), always with a timeout, because a layout can run for minutes on
unlucky graphs; it writes SVG, PNG and PDF. ``engine="gradlens"`` is gradlens's own layered layout
(``svg.py``): SVG only, no system package needed. ``engine="auto"`` (the default) uses Graphviz when
``dot`` is on PATH and gradlens's engine otherwise. DOT text needs no engine. PNG and PDF without
Graphviz raise ``GraphvizNotFoundError`` saying to write SVG or install Graphviz.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .._checks import check_choice, check_seconds, check_type
from ..errors import GraphvizNotFoundError
from .dot import GradlensDot, to_dot

__all__ = ["render", "svg_text", "run_graphviz", "GraphvizNotFoundError", "INSTALL_HINT", "FORMATS", "ENGINES"]

INSTALL_HINT = ("Install Graphviz (apt-get install graphviz, brew install graphviz, conda install graphviz, "
                "or https://graphviz.org/download/) so that `dot` is on PATH; .dot files need no Graphviz.")
FORMATS = ("dot", "gv", "svg", "png", "pdf")
ENGINES = ("auto", "gradlens", "graphviz")
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


def render(obj_or_graph: Any, path: str | os.PathLike | None = None, *, format: str | None = None,
           engine: str = "auto", timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> Path | str | bytes:
    """Draw a backward graph into ``path`` (the suffix picks the format), or return the drawing.

    Args:
        obj_or_graph: a ``GradlensDot`` from ``to_dot()``, a graph from ``gradlens.graph()``, or anything
            ``gradlens.graph()`` accepts.
        path: target file ending in ``.dot``/``.gv``/``.svg``/``.png``/``.pdf``; None returns the drawing.
        format: one of ``FORMATS``; needed without ``path``, and must match its suffix when both are given.
        engine: ``"auto"`` (Graphviz when ``dot`` is on PATH, else gradlens), ``"graphviz"`` or
            ``"gradlens"`` (gradlens's own layout: SVG only, no Graphviz needed).
        timeout: seconds before a Graphviz layout is abandoned.
        **kwargs: ``params``, ``max_nodes`` and style options, passed to ``to_dot()``.

    Returns:
        The path written; without ``path``, the drawing: ``str`` for DOT and SVG, ``bytes`` for PNG/PDF.

    Raises:
        TypeError: ``path`` is not a str or path, ``format`` not a str, or ``timeout`` not a number.
        ValueError: an unknown format or engine, a ``format`` that contradicts ``path``, no format at
            all, PNG/PDF asked of ``engine="gradlens"``, or a ``timeout`` that is not a finite number > 0.
        GraphvizNotFoundError: Graphviz is needed (``engine="graphviz"``, or PNG/PDF) but not installed.
        RuntimeError: Graphviz failed or timed out.

    Example:
        >>> import gradlens, gradlens.engine as ge
        >>> x = ge.tensor([1.0, 2.0], requires_grad=True)
        >>> gradlens.render((x * x).sum(), "/tmp/graph.dot").name
        'graph.dot'
        >>> gradlens.render((x * x).sum(), format="svg", engine="gradlens")[:4]
        '<svg'
    """
    check_seconds(timeout, "render(timeout=...)", fix="timeout=60, or write a .dot file (no layout needed).")
    check_choice(engine, "render(engine=...)", ENGINES, fix='engine="auto" uses Graphviz when it is installed.')
    fmt = _format(path, format)
    dot = obj_or_graph if isinstance(obj_or_graph, GradlensDot) else to_dot(obj_or_graph, **kwargs)
    if fmt in ("dot", "gv"):
        out: str | bytes = dot.to_string()
    elif _use_gradlens(fmt, engine, dot):
        from .svg import svg_of_graph

        source = dot.drawn_from()
        if source is None:
            raise ValueError("render(engine=\"gradlens\") draws from the graph a drawing was made from; "
                             "received a drawing whose DOT text was changed through pydot's API (or not made "
                             "by to_dot()). Fix: pass the graph itself, or use engine=\"graphviz\".")
        out = svg_of_graph(*source)
    else:
        out = run_graphviz(dot.to_string(), fmt, dot.prog, timeout)
        if fmt == "svg":
            out = out.decode("utf-8")
    if path is None:
        return out
    path = Path(path)
    if isinstance(out, str):
        path.write_text(out, encoding="utf-8")
    else:
        path.write_bytes(out)
    return path


def _format(path: Any, format: str | None) -> str:
    """The output format from ``path``'s suffix and/or ``format``."""
    suffixes = ", ".join("." + f for f in FORMATS)
    if format is not None:
        check_type(format, "render(format=...)", str, "a format name such as \"svg\"")
        if format.lower() not in FORMATS:
            raise ValueError(f"render(format=...) expects one of {FORMATS}; received {format!r}. "
                             "Fix: format=\"svg\".")
    if path is None:
        if format is None:
            raise ValueError("render() needs a path (its suffix picks the format) or format=...; received "
                             "neither. Fix: render(graph, \"graph.svg\") or render(graph, format=\"svg\").")
        return format.lower()
    check_type(path, "render(path=...)", (str, os.PathLike), "a file path (str or pathlib.Path)")
    name = Path(path).name
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"render() writes one of {suffixes}; received {name!r}. "
                         "Fix: choose a path ending in .dot or .svg.")
    if format is not None and format.lower() != fmt:
        raise ValueError(f"render() received path {name!r} and format={format!r}, which disagree. "
                         "Fix: drop format=..., or give the path the matching suffix.")
    return fmt


def _use_gradlens(fmt: str, engine: str, dot: GradlensDot) -> bool:
    """Whether gradlens's own engine draws this (else Graphviz does, or says it is missing)."""
    prog = dot.prog if isinstance(dot.prog, str) else dot.prog[0]
    if fmt != "svg":
        if engine == "gradlens":
            raise ValueError(f"render(engine=\"gradlens\") writes SVG only; received format {fmt!r}. "
                             f"Fix: write .svg, or install Graphviz and use engine=\"auto\" for "
                             f"{fmt.upper()}.")
        if shutil.which(prog) is None:
            raise GraphvizNotFoundError(
                f"{fmt.upper()} output needs Graphviz's `{prog}` program, which was not found on PATH; "
                f"gradlens itself draws SVG only. Fix: write .svg (drawn without Graphviz), or install "
                f"Graphviz: {INSTALL_HINT}")
        return False
    if engine == "auto":
        return shutil.which(prog) is None
    return engine == "gradlens"
