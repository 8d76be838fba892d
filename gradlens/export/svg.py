"""Draw a gradlens graph as SVG with no Graphviz: ``to_svg(obj_or_graph, **style) -> str``.

Most users never install system packages, so gradlens draws its graphs itself: the looks come from
``style.py`` (the same labels, colours and legend as the DOT export), the positions from ``layout.py``
(a layered layout computed in Python), and this module writes them as one self-contained SVG: no
script, no external font or style, no element ids (several drawings can sit in one HTML page), and the
same bytes for the same graph. Label boxes are sized from Helvetica's metrics (``_fontmetrics.py``), so
the text fits without a browser measuring it.

The markup is plain enough to test: each node is a ``<g class="node" data-node="...">`` holding its
shape and one ``<text>`` per label line; group boxes are ``<g class="cluster">``, edges
``<g class="edge">``, the legend ``<g class="legend">``.
"""

from __future__ import annotations

from html import escape
from typing import Any

import networkx as nx

from ..graphs import schema as S
from ..graphs._gcpause import paused_gc
from ..graphs.walk import DEFAULT_MAX_NODES, graph
from ._fontmetrics import text_width
from .layout import Layout, layered_layout
from .style import (
    CLUSTER_COLOR,
    DEFAULT_FILL,
    EDGE_COLOR,
    EdgeLook,
    Looks,
    NodeLook,
    check_style,
    cluster_label,
    edge_look,
    group_of,
    prepare,
    split_leaves,
    title,
)

__all__ = ["to_svg", "svg_of_graph"]

FONT_FAMILY = "Helvetica, Arial, 'Liberation Sans', sans-serif"
FONT_SIZE = 10.0  # node labels, px
SMALL_SIZE = 9.0  # legend, group captions, edge labels
TITLE_SIZE = 12.0
_LINE = 12.5  # line height of node labels
_PAD_X, _PAD_Y = 8.0, 5.0
_MIN_W, _MIN_H = 40.0, 22.0
_DEPTH_3D = 4.0  # the offset of a folded node's back faces
_MARGIN = 12.0
_ARROW = 6.0
_TEXT_COLOR = "#1f2328"
_BORDER = "#444444"


def to_svg(obj_or_graph: Any, *, params: Any = None, max_nodes: int | None = DEFAULT_MAX_NODES,
           **style: Any) -> str:
    """Draw a backward graph as SVG markup, laid out by gradlens itself (no Graphviz needed).

    Args:
        obj_or_graph: a graph from ``gradlens.graph()``, or anything ``gradlens.graph()`` accepts.
        params: parameter names, as for ``gradlens.graph()`` (ignored when a graph is given).
        max_nodes: walk cap, as for ``gradlens.graph()`` (ignored when a graph is given).
        **style: the options of ``gradlens.export.STYLE`` (``positions_above`` only concerns DOT).

    Returns:
        An SVG document (it starts with ``<svg``), the same text for the same graph.

    Raises:
        TypeError: an unknown style option, or an object ``gradlens.graph()`` does not accept.
        ValueError: a style option out of range or not one of its choices.

    Example:
        >>> import gradlens.engine as ge
        >>> x = ge.tensor([1.0, 2.0], requires_grad=True)
        >>> to_svg((x * x).sum()).startswith("<svg")
        True
    """
    st = check_style(style, "to_svg")
    g = obj_or_graph if isinstance(obj_or_graph, nx.DiGraph) else graph(obj_or_graph, params=params,
                                                                       max_nodes=max_nodes)
    with paused_gc():
        return svg_of_graph(g, st)


def svg_of_graph(g: nx.DiGraph, st: dict[str, Any]) -> str:
    """The SVG of graph ``g`` with the checked style ``st`` (see ``to_svg``)."""
    g = prepare(g, st)
    looks = Looks(g, st)
    split = split_leaves(g, st["split_fanout"])
    keys: list[Any] = []  # what each drawn node shows: a graph node, or (leaf, k) for a split leaf's copy
    node_look: list[NodeLook] = []
    where: dict[Any, int] = {}
    for n, d in g.nodes(data=True):
        look = looks.node(n, d)
        copies = [(n, k) for k in range(len(split[n]))] if n in split else [n]
        for key in copies:
            where[key] = len(keys)
            keys.append(key)
            node_look.append(look)
    edges: list[tuple[int, int]] = []
    edge_looks: list[EdgeLook] = []
    for u, v, d in g.edges(data=True):
        if u not in split:
            edges.append((where[u], where[v]))
            edge_looks.append(edge_look(g, u, d))
    for leaf, consumers in split.items():
        look = edge_look(g, leaf, {})
        for k, consumer in enumerate(consumers):
            edges.append((where[(leaf, k)], where[consumer]))
            edge_looks.append(look)
    groups = _groups(g, st, keys, where, split)
    return _Writer(g, st, looks, node_look, edges, edge_looks, groups, keys).svg()


def _groups(g: nx.DiGraph, st: dict, keys: list, where: dict, split: dict) -> dict[int, tuple]:
    """Drawn node -> group box ``(group, step)``. A leaf whose consumers all sit in one box joins it."""
    of = {}
    for n, d in g.nodes(data=True):
        grp = group_of(d, st)
        if grp is not None and n not in split:
            # one box per call of a module: a retained graph's earlier steps get boxes of their own
            of[where[n]] = (grp, d.get(S.STEP) if grp.startswith("module:") else None)
    for n, kind in g.nodes(data=S.KIND):
        if kind not in S.LEAF_KINDS and kind != S.KIND_TRUNCATED:
            continue
        if n in split:
            for k, consumer in enumerate(split[n]):
                grp = of.get(where[consumer])
                if grp is not None:
                    of[where[(n, k)]] = grp
            continue
        consumer_groups = {of.get(where[c]) for c in g.successors(n)}
        if len(consumer_groups) == 1 and None not in consumer_groups and where[n] not in of:
            of[where[n]] = consumer_groups.pop()
    return of


def _f(v: float) -> str:
    return f"{v:.1f}"


class _Writer:
    def __init__(self, g, st, looks, node_look, edges, edge_looks, groups, keys):
        self.g, self.st, self.looks = g, st, looks
        self.node_look, self.edges, self.edge_looks = node_look, edges, edge_looks
        self.groups, self.keys = groups, keys
        self.across = st["rankdir"] in ("LR", "RL")  # layers run left to right

    def svg(self) -> str:
        sizes = {}
        self.node_size = [_node_size(look) for look in self.node_look]
        for i, (w, h) in enumerate(self.node_size):
            sizes[i] = (h, w) if self.across else (w, h)
        captions = {grp: cluster_label(self.g, grp[0]) for grp in set(self.groups.values())}
        caption_h = SMALL_SIZE + 6
        if self.across:
            lay = layered_layout(range(len(self.node_look)), sizes, self.edges, self.groups,
                                 head_breadth=caption_h)
        else:
            min_breadth = {grp: text_width(text, SMALL_SIZE) + 16 for grp, text in captions.items()}
            lay = layered_layout(range(len(self.node_look)), sizes, self.edges, self.groups,
                                 head_depth=caption_h, min_breadth=min_breadth)
        draw_w, draw_h = (lay.height, lay.width) if self.across else (lay.width, lay.height)
        header, header_h = self._header(max(draw_w, 480.0))
        self.ox, self.oy = _MARGIN, _MARGIN + header_h
        self.lay_w, self.lay_h = lay.width, lay.height
        width = max(draw_w, self._header_width) + 2 * _MARGIN
        height = draw_h + header_h + 2 * _MARGIN
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gradlens-graph" width="{width:.0f}" '
               f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
               f'font-family="{escape(FONT_FAMILY)}" font-size="{FONT_SIZE:g}">',
               f"<title>{escape(title(self.g))}</title>",
               f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
        out.extend(header)
        out.extend(self._clusters(lay, captions))
        out.extend(self._edges(lay))
        out.extend(self._nodes(lay))
        out.append("</svg>")
        return "\n".join(out) + "\n"

    # --- geometry --------------------------------------------------------------------------------------
    def _pt(self, x: float, y: float) -> tuple[float, float]:
        """A layout point (x along a layer, y down the layers) on the page."""
        rankdir = self.st["rankdir"]
        if rankdir == "TB":
            return self.ox + x, self.oy + y
        if rankdir == "BT":
            return self.ox + x, self.oy + self.lay_h - y
        if rankdir == "LR":
            return self.ox + y, self.oy + x
        return self.ox + self.lay_h - y, self.oy + x  # RL

    # --- parts -----------------------------------------------------------------------------------------
    def _header(self, room: float) -> tuple[list[str], float]:
        out: list[str] = []
        y = 0.0
        self._header_width = 0.0
        if self.st["title"]:
            text = title(self.g)
            out.append(f'<text class="title" x="{_f(_MARGIN)}" y="{_f(_MARGIN + TITLE_SIZE)}" '
                       f'font-size="{TITLE_SIZE:g}" font-weight="bold" fill="{_TEXT_COLOR}">{escape(text)}</text>')
            self._header_width = text_width(text, TITLE_SIZE) * 1.1
            y += TITLE_SIZE + 10
        entries = self.looks.legend() if self.st["legend"] else []
        if entries:
            out.append('<g class="legend">')
            x, row_h = 0.0, SMALL_SIZE + 10
            label = "legend:"
            out.append(f'<text x="{_f(_MARGIN)}" y="{_f(_MARGIN + y + row_h / 2 + 3)}" font-size="{SMALL_SIZE:g}" '
                       f'fill="#57606a">{label}</text>')
            x = text_width(label, SMALL_SIZE) + 8
            for look in entries:
                w = text_width(look.label, SMALL_SIZE) + 12
                if x + w > room and x > 60:
                    x, y = text_width(label, SMALL_SIZE) + 8, y + row_h + 6
                bx, by = _MARGIN + x, _MARGIN + y
                out.append("<g>" + _shape(look, bx, by, w, row_h))
                out.append(f'<text x="{_f(bx + w / 2)}" y="{_f(by + row_h / 2 + 3)}" text-anchor="middle" '
                           f'font-size="{SMALL_SIZE:g}" fill="{look.fontcolor or _TEXT_COLOR}">'
                           f"{escape(look.label)}</text></g>")
                x += w + 8
                self._header_width = max(self._header_width, x)
            out.append("</g>")
            y += row_h + 12
        return out, y

    def _clusters(self, lay: Layout, captions: dict[str, str]) -> list[str]:
        out = []
        for grp, x0, y0, x1, y1 in lay.groups:
            (ax, ay), (bx, by) = self._pt(x0, y0), self._pt(x1, y1)
            left, top = min(ax, bx), min(ay, by)
            w, h = abs(bx - ax), abs(by - ay)
            if self.st["rankdir"] == "BT":
                cap_y = top + h - 5
            else:
                cap_y = top + SMALL_SIZE + 3
            out.append(f'<g class="cluster"><rect x="{_f(left)}" y="{_f(top)}" width="{_f(w)}" height="{_f(h)}" '
                       f'rx="6" fill="none" stroke="{CLUSTER_COLOR}" stroke-dasharray="5,3"/>'
                       f'<text x="{_f(left + 6)}" y="{_f(cap_y)}" font-size="{SMALL_SIZE:g}" fill="#57606a">'
                       f"{escape(captions[grp])}</text></g>")
        return out

    def _edges(self, lay: Layout) -> list[str]:
        out = []
        for route, look in zip(lay.routes, self.edge_looks):
            if len(route) < 2:
                continue
            pts = [self._pt(x, y) for x, y in route]
            color = look.color or EDGE_COLOR
            tip = pts[-1]
            ux, uy = self._down()
            pts[-1] = (tip[0] - ux * _ARROW, tip[1] - uy * _ARROW)
            d = [f"M{_f(pts[0][0])},{_f(pts[0][1])}"]
            for (px, py), (qx, qy) in zip(pts, pts[1:]):
                if self.across:
                    mid = (qx - px) / 2
                    d.append(f"C{_f(px + mid)},{_f(py)} {_f(qx - mid)},{_f(qy)} {_f(qx)},{_f(qy)}")
                else:
                    mid = (qy - py) / 2
                    d.append(f"C{_f(px)},{_f(py + mid)} {_f(qx)},{_f(qy - mid)} {_f(qx)},{_f(qy)}")
            dash = ' stroke-dasharray="4,3"' if look.dashed else ""
            # the arrowhead: a triangle whose tip touches the target's border
            px, py = -uy, ux
            base = pts[-1]
            head = (f"{_f(tip[0])},{_f(tip[1])} {_f(base[0] + px * 3)},{_f(base[1] + py * 3)} "
                    f"{_f(base[0] - px * 3)},{_f(base[1] - py * 3)}")
            label = ""
            if look.label:
                (ax, ay), (bx, by) = pts[0], pts[1]
                lx, ly = (ax + bx) / 2 + 4, (ay + by) / 2 + 3
                label = (f'<text x="{_f(lx)}" y="{_f(ly)}" font-size="{SMALL_SIZE:g}" fill="{EDGE_COLOR}">'
                         f"{escape(look.label)}</text>")
            out.append(f'<g class="edge"><path d="{" ".join(d)}" fill="none" stroke="{color}" stroke-width="1"'
                       f'{dash}/><polygon points="{head}" fill="{color}"/>{label}</g>')
        return out

    def _down(self) -> tuple[float, float]:
        """The page direction of the flow (from inputs towards the root)."""
        return {"TB": (0.0, 1.0), "BT": (0.0, -1.0), "LR": (1.0, 0.0), "RL": (-1.0, 0.0)}[self.st["rankdir"]]

    def _nodes(self, lay: Layout) -> list[str]:
        out = []
        for i, look in enumerate(self.node_look):
            cx, cy = self._pt(*lay.centers[i])
            w, h = self.node_size[i]
            x0, y0 = cx - w / 2, cy - h / 2
            lines = look.label.split("\n")
            key = self.keys[i]
            name = key[0] if isinstance(key, tuple) and len(key) == 2 and key[0] in self.g else key
            parts = [f'<g class="node" data-node="{escape(str(name))}"><title>{escape(look.label)}</title>',
                     _shape(look, x0, y0, w, h)]
            top = y0 + (h - len(lines) * _LINE) / 2 + (_DEPTH_3D / 2 if look.shape == "box3d" else 0)
            tx = cx - (_DEPTH_3D / 2 if look.shape == "box3d" else 0)
            color = look.fontcolor or _TEXT_COLOR
            for k, line in enumerate(lines):
                parts.append(f'<text x="{_f(tx)}" y="{_f(top + k * _LINE + 9.5)}" text-anchor="middle" '
                             f'fill="{color}">{escape(line)}</text>')
            parts.append("</g>")
            out.append("".join(parts))
        return out


def _node_size(look: NodeLook) -> tuple[float, float]:
    lines = look.label.split("\n")
    w = max(text_width(line, FONT_SIZE) for line in lines) + 2 * _PAD_X
    h = len(lines) * _LINE + 2 * _PAD_Y
    if look.shape == "box3d":
        w, h = w + _DEPTH_3D, h + _DEPTH_3D
    elif look.shape == "note":
        w += 6
    return max(w, _MIN_W), max(h, _MIN_H)


def _shape(look: NodeLook, x: float, y: float, w: float, h: float) -> str:
    """The outline of a node (or legend sample) with its top-left corner at ``(x, y)``."""
    fill = look.fill or DEFAULT_FILL
    stroke = look.color or _BORDER
    width = look.penwidth if look.penwidth is not None else 1.0
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="{width:g}"'
    if look.dashed:
        paint += ' stroke-dasharray="4,2"'
    if look.shape == "box3d":
        d = _DEPTH_3D
        back = f'<rect x="{_f(x + d)}" y="{_f(y)}" width="{_f(w - d)}" height="{_f(h - d)}" {paint}/>'
        return back + f'<rect x="{_f(x)}" y="{_f(y + d)}" width="{_f(w - d)}" height="{_f(h - d)}" {paint}/>'
    if look.shape == "note":
        c = 6.0
        return (f'<path d="M{_f(x)},{_f(y)} H{_f(x + w - c)} L{_f(x + w)},{_f(y + c)} V{_f(y + h)} H{_f(x)} Z" '
                f"{paint}/>")
    return f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" rx="4" {paint}/>'
