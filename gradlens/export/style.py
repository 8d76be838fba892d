"""What a drawing shows, decided once for every writer: labels, colours, shapes, groups, legend, title.

Both the DOT writer (``dot.py``) and gradlens's own SVG writer (``svg.py``) draw from these decisions, so
a graph looks the same whichever renderer draws it. Nothing here knows DOT or SVG syntax: a node's look
is a ``NodeLook`` (label text with ``\\n`` line breaks, fill, border, shape, dashes), an edge's is an
``EdgeLook``, and each writer turns them into its own markup.

Decisions: ops show name and output shape; parameters their name and shape, coloured apart from other
leaves; the root has a thick border; large saved tensors get an orange border and their size; nodes made
in an earlier training step (a retained graph) are red and say their step; folded repeats are one
``box3d`` node saying ``xN``; truncated inputs are dashed red notes. Repeated blocks are folded above
``fold_above`` nodes, and a leaf feeding more than ``split_fanout`` ops is drawn once per use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from .._checks import check_choice, check_int
from ..graphs import schema as S

__all__ = ["STYLE", "NodeLook", "EdgeLook", "Looks", "check_style", "prepare", "format_bytes", "title",
           "group_of", "cluster_label", "split_leaves", "edge_look"]

STYLE: dict[str, Any] = {
    "fold": "auto",  # True, False, or "auto": fold repeated blocks when the graph has > fold_above nodes
    "fold_above": 300,
    "saved_threshold": 1 << 20,  # show saved-tensor bytes on nodes holding at least this much
    "split_fanout": 6,  # draw a leaf once per use when it feeds more ops than this
    "clusters": True,  # group nodes by module when the graph knows modules
    "legend": True,
    "rankdir": "TB",
    "positions_above": 2000,  # DOT only: precompute positions (render with neato -n2) above this many nodes
    "title": True,
}

FILL = {
    S.KIND_OP: None,
    S.KIND_ROOT: "#a6d96a",
    S.KIND_PARAM: "#9ecae1",
    S.KIND_LEAF: "#fff2a8",
    S.KIND_FOLD: "#dadaeb",
}
DEFAULT_FILL = "#eeeeee"
EDGE_COLOR = "#555555"
CLUSTER_COLOR = "#888888"
OLD_STEP_FILL = "#fc9272"
SAVED_COLOR = "#d94801"
WARN_COLOR = "#b2182b"
WHITE = "#ffffff"

_CHOICES = {"fold": (True, False, "auto"), "rankdir": ("TB", "LR", "BT", "RL"), "clusters": (True, False),
            "legend": (True, False), "title": (True, False)}
_COUNTS = ("fold_above", "saved_threshold", "split_fanout", "positions_above")


@dataclass(frozen=True)
class NodeLook:
    """How one node is drawn. ``None`` means the writer's default (grey fill, grey border, rounded box).

    Attributes:
        label: the text, lines separated by ``\\n``.
        shape: ``None`` (rounded box), ``"box3d"`` (folded repeats) or ``"note"`` (placeholders).
        dashed: a dashed border.
        color: border colour.
        fontcolor: text colour.
        penwidth: border width in points.
        fill: fill colour.
    """

    label: str
    shape: str | None = None
    dashed: bool = False
    color: str | None = None
    fontcolor: str | None = None
    penwidth: float | None = None
    fill: str | None = None


@dataclass(frozen=True)
class EdgeLook:
    """How one edge is drawn: an optional label (``"x2"`` for an input used twice), a dashed red line for
    an input the walk did not reach."""

    label: str | None = None
    dashed: bool = False
    color: str | None = None


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def check_style(style: dict[str, Any], who: str = "to_dot") -> dict[str, Any]:
    """``STYLE`` updated with the caller's overrides, each checked.

    Raises:
        TypeError: an unknown option, or a count that is not a number.
        ValueError: a count out of range or a choice not among its choices.
    """
    unknown = set(style) - set(STYLE)
    if unknown:
        raise TypeError(f"unknown style option(s) {sorted(unknown)}; expected some of {sorted(STYLE)}.")
    for name, value in style.items():
        if name in _CHOICES:
            check_choice(value, f"{who}({name}=...)", _CHOICES[name])
        elif name in _COUNTS:
            check_int(value, f"{who}({name}=...)", minimum=0)
    return {**STYLE, **style}


def prepare(g: nx.DiGraph, st: dict[str, Any]) -> nx.DiGraph:
    """The graph as it will be drawn: folded when the style asks for it (the input is never modified)."""
    if st["fold"] is True or (st["fold"] == "auto" and g.number_of_nodes() > st["fold_above"]):
        from ..graphs.fold import fold_or_none

        folded = fold_or_none(g)
        if folded is not None:
            return folded
    return g


def _shapes(shapes: tuple, dtypes: tuple) -> str:
    parts = []
    for i, shape in enumerate(shapes[:3]):
        text = f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"
        if i < len(dtypes) and dtypes[i] != "float32":
            text += " " + dtypes[i]
        parts.append(text)
    if len(shapes) > 3:
        parts.append(f"+{len(shapes) - 3} more")
    return " ".join(parts)


class Looks:
    """The looks of one drawing's nodes, and what its legend must explain (filled in as nodes are seen).

    Attributes:
        kinds_seen: node kinds drawn so far.
        old_seen: whether a node from an earlier step was drawn.
        saved_seen: whether a node with large saved tensors was drawn.
        last_step: the latest training step in the graph (None when no node knows its step).
    """

    def __init__(self, g: nx.DiGraph, style: dict[str, Any]):
        self.g = g
        self.style = style
        steps = [s for s in (d.get(S.STEP) for _, d in g.nodes(data=True)) if s is not None]
        self.last_step = max(steps) if steps else None
        self.kinds_seen: set[str] = set()
        self.old_seen = False
        self.saved_seen = False

    def node(self, n: Any, d: dict) -> NodeLook:
        """The look of node ``n`` with attributes ``d``."""
        kind = d.get(S.KIND, S.KIND_OP)
        self.kinds_seen.add(kind)
        fill = FILL.get(kind)
        shape = color = fontcolor = penwidth = None
        dashed = False
        if kind in (S.KIND_OP, S.KIND_ROOT):
            label = str(d.get(S.NAME, n))
            shapes = _shapes(d.get(S.SHAPES, ()), d.get(S.DTYPES, ()))
            if shapes:
                label += "\n" + shapes
            saved = d.get(S.SAVED_BYTES)
            if saved and saved >= self.style["saved_threshold"]:
                label += "\nsaved " + format_bytes(saved)
                color, penwidth = SAVED_COLOR, 2.0
                self.saved_seen = True
            elif kind == S.KIND_ROOT:
                penwidth = 2.5
        elif kind in S.LEAF_KINDS:
            name = d.get(S.PARAM) or ("parameter" if kind == S.KIND_PARAM else "leaf")
            label = name + "\n" + _shapes(d.get(S.SHAPES, ()), d.get(S.DTYPES, ()))
        elif kind == S.KIND_FOLD:
            label = f"{d[S.COUNT] - 1} more repetitions of the block below\n(x{d[S.COUNT]} in all)"
            shape = "box3d"
            unwalked = d.get(S.TRUNCATED_INPUTS)
            if unwalked:
                label += f"\n{unwalked} input(s) not walked (truncated)"
                color = fontcolor = WARN_COLOR
        elif kind == S.KIND_TRUNCATED:
            cap = self.g.graph.get(S.MAX_NODES)
            label = f"... not walked: an input of {d[S.COUNT]} op(s)\n(truncated at max_nodes={cap})"
            fill, shape, dashed, color, fontcolor = WHITE, "note", True, WARN_COLOR, WARN_COLOR
        else:  # nograd
            shapes = _shapes(d.get(S.SHAPES, ()), d.get(S.DTYPES, ()))
            label = f"tensor {shapes}\nneeds no grad: no graph"
            fill, shape = WHITE, "note"
        step = d.get(S.STEP)
        if kind in (S.KIND_OP, S.KIND_ROOT) and step is not None and step < self.last_step:
            label += f"\nstep {step}"
            fill = OLD_STEP_FILL
            self.old_seen = True
        return NodeLook(label, shape, dashed, color, fontcolor, penwidth, fill)

    def legend(self) -> list[NodeLook]:
        """One sample look per thing the nodes drawn so far need explained, in a fixed order."""
        entries = []
        names = {S.KIND_ROOT: "root (output)", S.KIND_OP: "op: name, output shape", S.KIND_PARAM: "parameter",
                 S.KIND_LEAF: "other leaf", S.KIND_FOLD: "folded repeats"}
        for kind in (S.KIND_ROOT, S.KIND_OP, S.KIND_PARAM, S.KIND_LEAF, S.KIND_FOLD):
            if kind in self.kinds_seen:
                entries.append(NodeLook(names[kind], fill=FILL.get(kind)))
        if self.saved_seen:
            entries.append(NodeLook(f"saved >= {format_bytes(self.style['saved_threshold'])}",
                                    color=SAVED_COLOR, penwidth=2.0))
        if self.old_seen:
            entries.append(NodeLook(f"created before step {self.last_step}", fill=OLD_STEP_FILL))
        if S.KIND_TRUNCATED in self.kinds_seen:
            entries.append(NodeLook("not walked (truncated)", shape="note", dashed=True, fill=WHITE))
        return entries


def edge_look(g: nx.DiGraph, u: Any, d: dict) -> EdgeLook:
    """The look of an edge from ``u`` with attributes ``d``."""
    if len(d.get(S.SLOTS, ())) > 1:
        return EdgeLook(label=f"x{len(d[S.SLOTS])}")
    if g.nodes[u].get(S.KIND) == S.KIND_TRUNCATED:
        return EdgeLook(dashed=True, color=WARN_COLOR)
    return EdgeLook()


def title(g: nx.DiGraph) -> str:
    """The drawing's title: engine, node count, saved bytes, truncation."""
    parts = [f"gradlens: {g.graph.get(S.ENGINE, '?')} autograd graph",
             f"{g.graph.get(S.NODE_COUNT, 0)} nodes"]
    saved = g.graph.get(S.SAVED_BYTES)
    if saved:
        parts.append("saved for backward " + format_bytes(saved))
    if g.graph.get(S.TRUNCATED):
        parts.append(f"TRUNCATED at max_nodes={g.graph.get(S.MAX_NODES)}")
    return ", ".join(parts)


def group_of(d: dict, st: dict) -> str | None:
    """The box a node is drawn in: ``"fold:f0"`` (the kept repetition of a folded block), ``"module:name"``
    (the module that made it, when ``clusters`` is on), or None."""
    fid = d.get(S.FOLD)
    if fid is not None and d.get(S.KIND) != S.KIND_FOLD:
        return "fold:" + fid
    if st["clusters"] and d.get(S.MODULE):
        return "module:" + d[S.MODULE]
    return None


def cluster_label(g: nx.DiGraph, group: str) -> str:
    """The caption of a group's box."""
    kind, _, name = group.partition(":")
    if kind == "fold":
        return f"repeated block (x{g.nodes[name][S.COUNT]})"
    return name


def split_leaves(g: nx.DiGraph, fanout: int) -> dict[Any, list[Any]]:
    """Leaves (and truncation placeholders) feeding more than ``fanout`` ops, with their consumers (each
    is drawn with its own copy: one node feeding dozens of ops makes long, tangled edges, and Graphviz's
    ``dot`` layout chokes on them)."""
    out = {}
    for n, kind in g.nodes(data=S.KIND):
        if (kind in S.LEAF_KINDS or kind == S.KIND_TRUNCATED) and g.out_degree(n) > fanout:
            out[n] = list(g.successors(n))
    return out
