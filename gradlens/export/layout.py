"""A layered drawing of a DAG, computed in Python: where each node, edge and group box goes.

gradlens draws its graphs without Graphviz with this layout (``svg.py`` writes it out). It follows the
classic layered method (Sugiyama, Tagawa and Toda 1981), in four passes:

1. **Layers.** Each node goes as close to the sinks as it can (``networkx.topological_generations`` of
   the reversed graph): the root ends up at the bottom and each leaf right above its first consumer.
2. **Dummies.** An edge spanning several layers gets one dummy vertex per layer it crosses, so that it
   can be routed around the nodes of those layers.
3. **Order.** Barycenter sweeps, down and up, reorder each layer to reduce edge crossings; the order
   with the fewest crossings is kept (crossings are counted by inversions, with a Fenwick tree). A
   group's members stay together in every layer and groups keep one left-to-right order, so that group
   boxes never overlap.
4. **Coordinates.** Layers are packed left to right, then balanced: each node moves towards the weighted
   median of its neighbours (a long edge's dummies hold together so it runs straight; parameters barely
   pull and give way, so a layer stack's spine stays straight), solving each layer exactly as an isotonic
   regression with minimum gaps (pool-adjacent-violators); groups move as rigid boxes.

The result is in abstract axes: ``x`` runs along a layer (breadth) and ``y`` down the layers (depth), so
the writer can turn it for left-to-right drawings. Everything is deterministic: same input, same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import networkx as nx

__all__ = ["Layout", "layered_layout"]


@dataclass
class Layout:
    """Where everything goes, in abstract axes (``x`` along a layer, ``y`` down the layers).

    Attributes:
        centers: each node's center.
        routes: per input edge (same order), the points an edge passes, from the source's border to the
            target's border (empty for a self-loop).
        groups: per group box, ``(group, x0, y0, x1, y1)``; a group whose members sit in layers with a
            gap between them gets one box per run of layers.
        width: the extent along ``x``.
        height: the extent along ``y``.
        crossings: edge crossings left after ordering.
    """

    centers: dict[Hashable, tuple[float, float]]
    routes: list[list[tuple[float, float]]]
    groups: list[tuple[Hashable, float, float, float, float]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    crossings: int = 0


_NODE_GAP = 16.0  # between two node boxes in a layer
_EDGE_GAP = 8.0  # between an edge's dummy and anything else
_LAYER_GAP = 34.0
_GROUP_PAD = 8.0
_LEAF_PULL = 0.1  # how much an input without inputs (a parameter) pulls its consumer, relative to others
_WEIGHT = {(False, False): 1.0, (False, True): 1.0, (True, False): 1.0, (True, True): 8.0}


def layered_layout(nodes: Sequence[Hashable], sizes: dict[Hashable, tuple[float, float]],
                   edges: Sequence[tuple[Hashable, Hashable]], groups: dict[Hashable, Hashable] | None = None,
                   *, head_depth: float = 0.0, head_breadth: float = 0.0,
                   min_breadth: dict[Hashable, float] | None = None) -> Layout:
    """Lay out a directed graph in layers.

    Args:
        nodes: the nodes, in a meaningful order (it seeds the order within layers).
        sizes: each node's ``(breadth, depth)``: its box along a layer and across layers.
        edges: ``(u, v)`` pairs; cycles are broken by drawing some edges against the flow.
        groups: node -> group for the nodes drawn inside a group box.
        head_depth: room a group box keeps above its first layer (its caption).
        head_breadth: room a group box keeps before its first node along a layer.
        min_breadth: the least breadth of each group's box (to fit its caption).

    Returns:
        A ``Layout``.
    """
    return _Layered(nodes, sizes, edges, groups or {}, head_depth, head_breadth, min_breadth or {}).run()


class _Layered:
    """One run of the layout; vertices are ints (the nodes in input order, then the dummies)."""

    def __init__(self, nodes, sizes, edges, groups, head_depth, head_breadth, min_breadth):
        self.nodes = list(nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.sizes = sizes
        self.edges = list(edges)
        self.node_groups = groups
        self.head_depth = head_depth
        self.head_breadth = head_breadth
        self.min_breadth = min_breadth

    def run(self) -> Layout:
        n_real = len(self.nodes)
        if n_real == 0:
            return Layout({}, [[] for _ in self.edges])
        self._rank()
        self._add_dummies()
        self._split_groups()
        self._order()
        self._place_breadth()
        self._place_depth()
        return self._result()

    # --- 1. layers -------------------------------------------------------------------------------------
    def _rank(self) -> None:
        idx = self.index
        pairs = [(idx[u], idx[v]) for u, v in self.edges]
        g = nx.DiGraph()
        g.add_nodes_from(range(len(self.nodes)))
        g.add_edges_from((a, b) for a, b in pairs if a != b)
        self.flipped = [False] * len(pairs)
        if not nx.is_directed_acyclic_graph(g):  # a hand-made graph: draw edges against the node order
            g = nx.DiGraph()
            g.add_nodes_from(range(len(self.nodes)))
            for k, (a, b) in enumerate(pairs):
                if a < b:
                    self.flipped[k] = True
                    a, b = b, a
                if a != b:
                    g.add_edge(a, b)
            pairs = [(b, a) if f else (a, b) for (a, b), f in zip(pairs, self.flipped)]
        self.pairs = pairs
        generations = list(nx.topological_generations(g.reverse(copy=False)))
        top = len(generations) - 1
        self.rank = [0] * len(self.nodes)
        for i, gen in enumerate(generations):
            for v in gen:
                self.rank[v] = top - i
        self.n_layers = top + 1

    # --- 2. dummies ------------------------------------------------------------------------------------
    def _add_dummies(self) -> None:
        n = len(self.nodes)
        self.breadth = [float(self.sizes[v][0]) for v in self.nodes]
        self.depth = [float(self.sizes[v][1]) for v in self.nodes]
        self.group = [self.node_groups.get(v) for v in self.nodes]
        self._drop_sources_above_groups()
        self.is_dummy = [False] * n
        self.up: list[list[int]] = [[] for _ in range(n)]
        self.down: list[list[int]] = [[] for _ in range(n)]
        self.chains: list[list[int]] = []  # per edge: the vertices it passes, source to target
        rank = self.rank
        for a, b in self.pairs:
            if a == b:
                self.chains.append([])
                continue
            chain = [a]
            shared = self.group[a] if self.group[a] is not None and self.group[a] == self.group[b] else None
            for r in range(rank[a] + 1, rank[b]):
                d = len(self.rank)
                rank.append(r)
                self.breadth.append(0.0)
                self.depth.append(0.0)
                self.group.append(shared)
                self.is_dummy.append(True)
                self.up.append([])
                self.down.append([])
                chain.append(d)
            chain.append(b)
            for s, t in zip(chain, chain[1:]):
                self.down[s].append(t)
                self.up[t].append(s)
            self.chains.append(chain)

    def _drop_sources_above_groups(self) -> None:
        """A member without inputs (a parameter) that would sit above all of its group's other members is
        drawn outside the box: inside, it would widen the box's first layer, and whatever else feeds that
        first layer would have to sit beside the box instead of above it."""
        has_input = [False] * len(self.nodes)
        for a, b in self.pairs:
            if a != b:
                has_input[b] = True
        first: dict[Hashable, int] = {}
        for v, grp in enumerate(self.group):
            if grp is not None and has_input[v]:
                first[grp] = min(first.get(grp, self.rank[v]), self.rank[v])
        for v, grp in enumerate(self.group):
            if grp is not None and not has_input[v] and self.rank[v] < first.get(grp, -1):
                self.group[v] = None

    def _split_groups(self) -> None:
        """A group whose layers have a gap becomes one group per run of consecutive layers."""
        layers_of: dict[Hashable, set[int]] = {}
        for v, grp in enumerate(self.group):
            if grp is not None:
                layers_of.setdefault(grp, set()).add(self.rank[v])
        run_of: dict[tuple[Hashable, int], int] = {}
        self.group_names: list[Hashable] = []
        self.group_span: list[tuple[int, int]] = []
        for grp, ranks in layers_of.items():
            ordered = sorted(ranks)
            start = prev = ordered[0]
            for r in [*ordered[1:], None]:
                if r is not None and r == prev + 1:
                    prev = r
                    continue
                gid = len(self.group_names)
                self.group_names.append(grp)
                self.group_span.append((start, prev))
                for k in range(start, prev + 1):
                    run_of[(grp, k)] = gid
                if r is not None:
                    start = prev = r
        self.gid = [None if grp is None else run_of[(grp, self.rank[v])] for v, grp in enumerate(self.group)]

    # --- 3. order --------------------------------------------------------------------------------------
    def _order(self) -> None:
        n_layers = self.n_layers
        layers: list[list[int]] = [[] for _ in range(n_layers)]
        seed = [0.0] * len(self.rank)
        n_real = len(self.nodes)
        for v in range(len(self.rank)):
            seed[v] = v if v < n_real else -1.0
        for chain in self.chains:  # a dummy starts next to the edge's target
            for d in chain[1:-1]:
                seed[d] = chain[-1] - 0.5 + 1e-6 * d
        for v in sorted(range(len(self.rank)), key=seed.__getitem__):
            layers[self.rank[v]].append(v)
        self.pos = [0.0] * len(self.rank)
        self._number(layers)
        best = [list(layer) for layer in layers]
        best_crossings = self._crossings(layers)
        total = len(self.rank)
        max_sweeps = 24 if total < 3000 else 8 if total < 15000 else 2
        stale = 0
        for sweep in range(max_sweeps):
            if best_crossings == 0:
                break
            downward = sweep % 2 == 0
            group_key = self._group_keys(layers)
            span = range(1, n_layers) if downward else range(n_layers - 2, -1, -1)
            for r in span:
                layer = layers[r]
                if len(layer) < 2:
                    continue
                pos = self.pos
                key = {}
                for v in layer:
                    nbrs = self.up[v] if downward else self.down[v]
                    bary = sum(pos[u] for u in nbrs) / len(nbrs) if nbrs else pos[v]
                    g = self.gid[v]
                    key[v] = (group_key[g] if g is not None else bary, -1 if g is None else g, bary, pos[v])
                layer.sort(key=key.__getitem__)
                for i, v in enumerate(layer):
                    pos[v] = float(i)
            crossings = self._crossings(layers)
            if crossings < best_crossings:
                best_crossings, best, stale = crossings, [list(layer) for layer in layers], 0
            else:
                stale += 1
                if stale >= 4:
                    break
        self.layers = best
        self.crossings = best_crossings
        self._number(best)

    def _number(self, layers: list[list[int]]) -> None:
        for layer in layers:
            for i, v in enumerate(layer):
                self.pos[v] = float(i)

    def _group_keys(self, layers: list[list[int]]) -> list[float]:
        """One key per group for this sweep (the mean barycenter of its members), shared by all its
        layers, so every layer orders the groups alike."""
        sums = [0.0] * len(self.group_names)
        counts = [0] * len(self.group_names)
        pos = self.pos
        for v, g in enumerate(self.gid):
            if g is None:
                continue
            nbrs = self.up[v] + self.down[v]
            sums[g] += sum(pos[u] for u in nbrs) / len(nbrs) if nbrs else pos[v]
            counts[g] += 1
        return [s / c if c else 0.0 for s, c in zip(sums, counts)]

    def _crossings(self, layers: list[list[int]]) -> int:
        pos = self.pos
        total = 0
        for r in range(len(layers) - 1):
            upper, lower = layers[r], layers[r + 1]
            if len(upper) < 2 and len(lower) < 2:
                continue
            targets = sorted((int(pos[u]), int(pos[t])) for u in upper for t in self.down[u])
            total += _inversions([t for _, t in targets], len(lower))
        return total

    # --- 4. coordinates along a layer ------------------------------------------------------------------
    def _gap(self, a: int, b: int) -> float:
        return _EDGE_GAP if self.is_dummy[a] or self.is_dummy[b] else _NODE_GAP

    def _place_breadth(self) -> None:
        n_groups = len(self.group_names)
        self.x = [0.0] * len(self.rank)
        members: list[list[list[int]]] = [[] for _ in range(n_groups)]  # per group, per layer of its span
        for g, (r0, r1) in enumerate(self.group_span):
            members[g] = [[] for _ in range(r0, r1 + 1)]
        for layer in self.layers:
            for v in layer:
                g = self.gid[v]
                if g is not None:
                    members[g][self.rank[v] - self.group_span[g][0]].append(v)
        # inside each group: positions relative to the box's left edge
        self.group_width = [0.0] * n_groups
        for g in range(n_groups):
            rows = members[g]
            self._pack_and_balance(rows, inside=g)
            left = min(self.x[v] - self.breadth[v] / 2 for row in rows for v in row)
            right = max(self.x[v] + self.breadth[v] / 2 for row in rows for v in row)
            content = right - left + 2 * _GROUP_PAD + self.head_breadth
            width = max(content, self.min_breadth.get(self.group_names[g], 0.0))
            shift = -left + _GROUP_PAD + self.head_breadth + (width - content) / 2
            for row in rows:
                for v in row:
                    self.x[v] += shift  # now relative to the box's left edge
            self.group_width[g] = width
        # outside: each group is one rigid item per layer of its span
        n_vert = len(self.rank)
        self.item_width = list(self.breadth) + self.group_width
        rows = []
        for layer in self.layers:
            row: list[int] = []
            for v in layer:
                g = self.gid[v]
                item = v if g is None else n_vert + g
                if not row or row[-1] != item:
                    row.append(item)
            rows.append(row)
        self.rows = rows
        self.member_offset = list(self.x)  # for members: offset from their group's left edge
        self.item_x = [0.0] * (n_vert + n_groups)  # item centers
        self._pack(rows)
        self._balance(rows)
        for v in range(n_vert):
            g = self.gid[v]
            if g is None:
                self.x[v] = self.item_x[v]
            else:
                self.x[v] = self.item_x[n_vert + g] - self.group_width[g] / 2 + self.member_offset[v]
        left = min(min(self.x[v] - self.breadth[v] / 2 for v in range(n_vert)),
                   min((self.item_x[n_vert + g] - self.group_width[g] / 2 for g in range(n_groups)), default=0.0))
        for v in range(n_vert):
            self.x[v] -= left
        for g in range(n_groups):
            self.item_x[n_vert + g] -= left

    def _item_sep(self, a: int, b: int) -> float:
        n_vert = len(self.rank)
        gap = _NODE_GAP if a >= n_vert or b >= n_vert else self._gap(a, b)
        return (self.item_width[a] + self.item_width[b]) / 2 + gap

    def _pack(self, rows: list[list[int]]) -> None:
        """Leftmost positions that keep the gaps (a longest path over "a is left of b" constraints)."""
        succ: dict[int, list[tuple[int, float]]] = {}
        indeg: dict[int, int] = {}
        for row in rows:
            for item in row:
                indeg.setdefault(item, 0)
            for a, b in zip(row, row[1:]):
                succ.setdefault(a, []).append((b, self._item_sep(a, b)))
                indeg[b] += 1
        x = self.item_x
        for item in indeg:
            x[item] = 0.0
        ready = [item for item, k in indeg.items() if k == 0]
        while ready:
            a = ready.pop()
            for b, sep in succ.get(a, ()):
                x[b] = max(x[b], x[a] + sep)
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)

    def _balance(self, rows: list[list[int]]) -> None:
        n_vert = len(self.rank)
        rounds = 30 if n_vert < 3000 else 8 if n_vert < 15000 else 2
        for k in range(rounds):
            mode = ("up", "down", "both")[k % 3]
            order = range(len(rows)) if mode != "down" else range(len(rows) - 1, -1, -1)
            for r in order:
                self._balance_row(rows[r], mode)
            if self.group_names:
                self._shift_groups(rows)

    def _center(self, v: int) -> float:
        g = self.gid[v]
        if g is None:
            return self.item_x[v]
        n_vert = len(self.rank)
        return self.item_x[n_vert + g] - self.group_width[g] / 2 + self.member_offset[v]

    def _desired(self, v: int, mode: str, inside: int | None = None) -> tuple[float, float] | None:
        """The weighted median center of ``v``'s neighbours, and their total weight (None without any)."""
        if mode == "up":
            nbrs = self.up[v] or self.down[v]
        elif mode == "down":
            nbrs = self.down[v] or self.up[v]
        else:
            nbrs = self.up[v] + self.down[v]
        if inside is not None:
            nbrs = [u for u in nbrs if self.gid[u] == inside]
            center = self.x.__getitem__
        else:
            center = self._center
        if not nbrs:
            return None
        dummy, up = self.is_dummy, self.up
        # the weighted median, not the mean: a node between a long straight edge and a chain stays on the
        # chain instead of drifting halfway; inputs without inputs of their own (parameters) barely pull,
        # else the spine of a layer stack would step aside for each layer's weights (a staircase)
        points = sorted((center(u), _WEIGHT[(dummy[v], dummy[u])] * (1.0 if up[u] or dummy[u] else _LEAF_PULL))
                        for u in nbrs)
        if len(points) == 1:
            return points[0]
        weight = sum(w for _, w in points)
        half, seen = weight / 2, 0.0
        for i, (x, w) in enumerate(points):
            seen += w
            if seen > half:
                return x, weight
            if seen == half:  # an even split: any point between the two middle ones will do; stay put
                here = self.x[v] if inside is not None else self._center(v)
                return min(max(here, x), points[i + 1][0]), weight
        return points[-1][0], weight  # pragma: no cover

    def _stiffness(self, v: int) -> float:
        """How firmly ``v`` holds its place when neighbours in its layer compete for room: long edges
        most, parameters (nodes without inputs) least, so they step aside rather than push the spine."""
        if self.is_dummy[v]:
            return 2.0
        return 1.0 if self.up[v] else _LEAF_PULL

    def _balance_row(self, row: list[int], mode: str) -> None:
        n_vert = len(self.rank)
        segment: list[int] = []
        lo = -math.inf
        for item in [*row, None]:
            if item is None or item >= n_vert:  # a group box (or the row's end) bounds the free segment
                hi = math.inf if item is None else (self.item_x[item] - self.item_width[item] / 2)
                if segment:
                    self._solve_segment(segment, lo, hi, mode)
                segment = []
                if item is not None:
                    lo = self.item_x[item] + self.item_width[item] / 2
                continue
            segment.append(item)

    def _solve_segment(self, seg: list[int], lo: float, hi: float, mode: str) -> None:
        """Move the free items of ``seg`` as near their desired centers as the gaps allow (exactly, in
        the least-squares sense) between the bounds ``lo`` and ``hi``."""
        x = self.item_x
        offsets = [0.0]
        for a, b in zip(seg, seg[1:]):
            offsets.append(offsets[-1] + self._item_sep(a, b))
        targets, weights = [], []
        for item, off in zip(seg, offsets):
            want = self._desired(item, mode)
            if want is None:
                targets.append(x[item] - off)
                weights.append(0.25)
            else:
                targets.append(want[0] - off)
                weights.append(want[1] * self._stiffness(item))
        ys = _isotonic(targets, weights)
        first, last = seg[0], seg[-1]
        lo_y = lo + _NODE_GAP + self.item_width[first] / 2 if lo > -math.inf else -math.inf
        hi_y = hi - _NODE_GAP - self.item_width[last] / 2 - offsets[-1] if hi < math.inf else math.inf
        for item, y, off in zip(seg, ys, offsets):
            x[item] = min(max(y, lo_y), hi_y) + off

    def _shift_groups(self, rows: list[list[int]]) -> None:
        """Move each group box, as one piece, towards where its members' outside neighbours want it."""
        n_vert = len(self.rank)
        n_groups = len(self.group_names)
        pull = [0.0] * n_groups
        weight = [0.0] * n_groups
        for v in range(n_vert):
            g = self.gid[v]
            if g is None:
                continue
            here = self._center(v)
            for u in self.up[v] + self.down[v]:
                if self.gid[u] != g:
                    pull[g] += self._center(u) - here
                    weight[g] += 1.0
        bounds_lo = [-math.inf] * n_groups
        bounds_hi = [math.inf] * n_groups
        x = self.item_x
        for row in rows:
            for i, item in enumerate(row):
                if item < n_vert:
                    continue
                g = item - n_vert
                if i > 0:
                    left = row[i - 1]
                    bounds_lo[g] = max(bounds_lo[g], x[left] + self._item_sep(left, item))
                if i + 1 < len(row):
                    right = row[i + 1]
                    bounds_hi[g] = min(bounds_hi[g], x[right] - self._item_sep(item, right))
        for g in range(n_groups):
            if weight[g]:
                item = n_vert + g
                x[item] = min(max(x[item] + pull[g] / weight[g], bounds_lo[g]), bounds_hi[g])

    def _pack_and_balance(self, rows: list[list[int]], inside: int) -> None:
        """Relative positions of one group's members (only edges inside the group count)."""
        x = self.x
        for row in rows:
            at = 0.0
            for i, v in enumerate(row):
                if i:
                    at += (self.breadth[row[i - 1]] + self.breadth[v]) / 2 + self._gap(row[i - 1], v)
                x[v] = at
            if row:
                mid = (x[row[0]] + x[row[-1]]) / 2
                for v in row:
                    x[v] -= mid
        for k in range(6):
            mode = ("up", "down", "both")[k % 3]
            for row in rows if mode != "down" else rows[::-1]:
                if len(row) == 0:
                    continue
                offsets = [0.0]
                for a, b in zip(row, row[1:]):
                    offsets.append(offsets[-1] + (self.breadth[a] + self.breadth[b]) / 2 + self._gap(a, b))
                targets, weights = [], []
                for v, off in zip(row, offsets):
                    want = self._desired(v, mode, inside)
                    targets.append((x[v] if want is None else want[0]) - off)
                    weights.append(0.25 if want is None else want[1] * self._stiffness(v))
                for v, y, off in zip(row, _isotonic(targets, weights), offsets):
                    x[v] = y + off

    # --- 5. coordinates across layers ------------------------------------------------------------------
    def _place_depth(self) -> None:
        n_layers = self.n_layers
        thick = [0.0] * n_layers
        for v, r in enumerate(self.rank):
            thick[r] = max(thick[r], self.depth[v])
        starts = [False] * n_layers
        ends = [False] * n_layers
        for r0, r1 in self.group_span:
            starts[r0] = True
            ends[r1] = True
        self.top = [0.0] * n_layers
        y = _GROUP_PAD + self.head_depth if starts[0] else 0.0
        for r in range(n_layers):
            if r:
                y += _LAYER_GAP + (self.head_depth + _GROUP_PAD if starts[r] else 0.0)
                y += _GROUP_PAD if ends[r - 1] else 0.0
            self.top[r] = y
            y += thick[r]
        self.thick = thick
        self.height = y + (_GROUP_PAD if ends[-1] else 0.0)

    # --- result ----------------------------------------------------------------------------------------
    def _result(self) -> Layout:
        n_real = len(self.nodes)
        ymid = [self.top[r] + self.thick[r] / 2 for r in range(self.n_layers)]
        centers = {self.nodes[v]: (self.x[v], ymid[self.rank[v]]) for v in range(n_real)}
        out_port, in_port = self._ports()
        routes = []
        for k, chain in enumerate(self.chains):
            if not chain:
                routes.append([])
                continue
            a, b = chain[0], chain[-1]
            pts = [(self.x[a] + out_port[(k, a)], ymid[self.rank[a]] + self.depth[a] / 2)]
            for d in chain[1:-1]:
                r = self.rank[d]
                pts.append((self.x[d], self.top[r]))
                if self.thick[r] > 0:
                    pts.append((self.x[d], self.top[r] + self.thick[r]))
            pts.append((self.x[b] + in_port[(k, b)], ymid[self.rank[b]] - self.depth[b] / 2))
            routes.append(pts[::-1] if self.flipped[k] else pts)
        boxes = []
        n_vert = len(self.rank)
        for g, (r0, r1) in enumerate(self.group_span):
            cx, w = self.item_x[n_vert + g], self.group_width[g]
            y0 = self.top[r0] - _GROUP_PAD - self.head_depth
            y1 = self.top[r1] + self.thick[r1] + _GROUP_PAD
            boxes.append((self.group_names[g], cx - w / 2, y0, cx + w / 2, y1))
        width = max([self.x[v] + self.breadth[v] / 2 for v in range(n_vert)] + [b[3] for b in boxes])
        return Layout(centers, routes, boxes, width, self.height, self.crossings)

    def _ports(self) -> tuple[dict, dict]:
        """Where each edge leaves its source and enters its target, relative to the node's center:
        spread along the border in the order of the other ends, so edges do not start on top of each
        other."""
        outs: dict[int, list[tuple[float, int]]] = {}
        ins: dict[int, list[tuple[float, int]]] = {}
        for k, chain in enumerate(self.chains):
            if chain:
                outs.setdefault(chain[0], []).append((self.x[chain[1]], k))
                ins.setdefault(chain[-1], []).append((self.x[chain[-2]], k))
        out_port: dict[tuple[int, int], float] = {}
        in_port: dict[tuple[int, int], float] = {}
        for table, port, end in ((outs, out_port, 0), (ins, in_port, -1)):
            for v, ends in table.items():
                ends.sort()
                count = len(ends)
                step = min(10.0, 0.7 * self.breadth[v] / count) if count > 1 else 0.0
                for i, (_, k) in enumerate(ends):
                    port[(k, self.chains[k][end])] = (i - (count - 1) / 2) * step
        return out_port, in_port


def _inversions(seq: list[int], size: int) -> int:
    """Pairs ``i < j`` with ``seq[i] > seq[j]`` (a Fenwick tree over values ``0..size-1``)."""
    tree = [0] * (size + 1)
    count = 0
    seen = 0
    for value in seq:
        i = value + 1
        below = 0
        while i > 0:  # how many seen values are <= value
            below += tree[i]
            i -= i & -i
        count += seen - below
        seen += 1
        i = value + 1
        while i <= size:
            tree[i] += 1
            i += i & -i
    return count


def _isotonic(targets: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence nearest ``targets`` in weighted least squares (pool adjacent
    violators)."""
    means: list[float] = []
    masses: list[float] = []
    lengths: list[int] = []
    for t, w in zip(targets, weights):
        means.append(t)
        masses.append(w)
        lengths.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, n2 = means.pop(), masses.pop(), lengths.pop()
            m1, w1 = means[-1], masses[-1]
            masses[-1] = w1 + w2
            means[-1] = (m1 * w1 + m2 * w2) / (w1 + w2)
            lengths[-1] += n2
    out: list[float] = []
    for m, n in zip(means, lengths):
        out.extend([m] * n)
    return out
