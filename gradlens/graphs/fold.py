"""Collapse repeated identical blocks (a layer stack, an unrolled loop) so that large graphs stay readable.

Blocks are found from structure alone, so no module information is needed: the ops that every path from
the root to the first op must pass through (dominators) cut the graph's backbone into segments; each
segment gets a signature (its ops' names and shapes and its leaves' shapes); a run of at least
``min_repeats`` consecutive repetitions of the same sequence of signatures is a repeated block. The
repetition nearest the root is kept; the others are contracted into one ``"fold"`` node saying ``xN``.
"""

from __future__ import annotations

from collections import Counter

import networkx as nx

from . import schema as S

__all__ = ["fold"]

_OPS = (S.KIND_ROOT, S.KIND_OP)


def fold(g: nx.DiGraph, *, min_repeats: int = 3, max_period: int = 64) -> nx.DiGraph:
    """A copy of ``g`` with runs of repeated identical blocks collapsed.

    Args:
        g: a graph from ``gradlens.graph()`` (it is not modified).
        min_repeats: fold a block only when it repeats at least this many times in a row.
        max_period: the most backbone segments one block may span.

    Returns:
        A new graph: the repetition nearest the root keeps its nodes (tagged with ``FOLD``), the other
        repetitions become one node of kind ``"fold"`` whose ``COUNT`` is the number of repetitions.
        Graphs with several roots, or without repetition, come back as an unchanged copy.

    Example:
        >>> import gradlens, gradlens.engine as ge
        >>> x = ge.tensor([1.0], requires_grad=True)
        >>> y = x
        >>> for _ in range(10):
        ...     y = (y * 2.0 + 1.0)
        >>> folded = fold(gradlens.graph(y.sum()))
        >>> sorted({d["kind"] for _, d in folded.nodes(data=True)})
        ['fold', 'leaf', 'op', 'root']
    """
    folded = fold_or_none(g, min_repeats=min_repeats, max_period=max_period)
    return folded if folded is not None else g.copy()


def fold_or_none(g: nx.DiGraph, *, min_repeats: int = 3, max_period: int = 64) -> nx.DiGraph | None:
    """Like ``fold``, but None when nothing repeats (no copy is made then)."""
    roots = g.graph.get(S.ROOTS, ())
    if len(roots) != 1 or g.nodes.get(roots[0], {}).get(S.KIND) not in _OPS:
        return None
    chain, segments = _backbone(g, roots[0])
    runs = _repeated_runs(g, chain, segments, min_repeats, max_period)
    if not runs:
        return None
    folds = []
    for start, period, repeats in runs:
        units = [[u for seg in chain[start + t * period: start + (t + 1) * period] for u in segments[seg]]
                 for t in range(repeats)]
        folds.append((_hidden(g, units[:-1]), units[-1], repeats))
    return _contract(g, folds)


def _backbone(g: nx.DiGraph, root: str):
    """The dominator chain from the op farthest from the root up to the root, and each op's segment."""
    idom, depth = _dominators(g, root)
    far = max(depth, key=depth.get)  # the first deepest op in BFS order
    chain = [far]
    while chain[-1] != root:
        chain.append(idom[chain[-1]])
    on_chain = set(chain)
    segments: dict[str, list[str]] = {c: [] for c in chain}
    owner: dict[str, str] = {}
    for n in depth:
        path = []
        m = n
        while m not in on_chain and m not in owner:
            path.append(m)
            m = idom[m]
        top = m if m in on_chain else owner[m]
        for p in path:
            owner[p] = top
        segments[top].append(n)
    return chain, segments


def _dominators(g: nx.DiGraph, root: str) -> tuple[dict[str, str], dict[str, int]]:
    """Immediate dominators of the ops, walking from the root towards the inputs, and each op's BFS depth.

    Cooper, Harvey and Kennedy's iterative algorithm on plain dicts (the graph is a DAG, so a couple of
    passes in reverse postorder settle it); several times faster than building a reversed networkx graph.
    """
    pred, succ, kind = g._pred, g._succ, g._node  # read-only use of networkx's adjacency dicts
    inputs = {}
    depth = {root: 0}
    frontier = [root]
    while frontier:  # BFS: depth, and the op inputs of every reachable op
        nxt = []
        for n in frontier:
            ins = [p for p in pred[n] if kind[p].get(S.KIND) in _OPS]
            inputs[n] = ins
            for p in ins:
                if p not in depth:
                    depth[p] = depth[n] + 1
                    nxt.append(p)
        frontier = nxt
    order: list[str] = []  # postorder of the DFS from the root over inputs
    seen = {root}
    stack = [(root, iter(inputs[root]))]
    while stack:
        node, it = stack[-1]
        for p in it:
            if p not in seen:
                seen.add(p)
                stack.append((p, iter(inputs[p])))
                break
        else:
            stack.pop()
            order.append(node)
    rank = {n: i for i, n in enumerate(order)}  # root has the highest rank
    idom = {root: root}
    changed = True
    while changed:
        changed = False
        for n in reversed(order[:-1]):
            new = None
            for c in succ[n]:  # the consumers of n: its predecessors in the walk from the root
                if c not in idom:
                    continue
                if new is None:
                    new = c
                    continue
                a, b = c, new
                while a != b:
                    while rank[a] < rank[b]:
                        a = idom[a]
                    while rank[b] < rank[a]:
                        b = idom[b]
                new = a
            if new is not None and idom.get(n) != new:
                idom[n] = new
                changed = True
    return idom, depth


def _signature(g: nx.DiGraph, nodes: list[str]) -> tuple:
    data, pred = g._node, g._pred  # read-only use of networkx's dicts: node views are slow in loops
    ops = sorted((data[n].get(S.NAME, ""), _frozen(data[n].get(S.SHAPES, ()))) for n in nodes)
    leaves = sorted(_frozen(data[p].get(S.SHAPES, ())) for n in nodes for p in pred[n]
                    if data[p].get(S.KIND) in S.LEAF_KINDS)
    return tuple(ops), tuple(leaves)


def _frozen(shapes) -> tuple:
    """Shapes as nested tuples (a graph read back from JSON holds lists)."""
    return tuple(tuple(s) for s in shapes)


def _repeated_runs(g, chain, segments, min_repeats: int, max_period: int) -> list[tuple[int, int, int]]:
    """Non-overlapping ``(start, period, repeats)`` runs along ``chain``, biggest first.

    Candidate periods are the commonest distances between two occurrences of the same segment signature,
    so the scan stays linear in the chain's length.
    """
    ids: dict[tuple, int] = {}
    seq = [ids.setdefault(_signature(g, segments[c]), len(ids)) for c in chain]
    sizes = [len(segments[c]) for c in chain]
    n = len(seq)
    last: dict[int, int] = {}
    gaps: Counter = Counter()
    for i, sig in enumerate(seq):
        j = last.get(sig)
        if j is not None and i - j <= max_period:
            gaps[i - j] += 1
        last[sig] = i
    candidates = []
    for p, _count in gaps.most_common(4):
        i = 0
        while i + p < n:
            if seq[i] != seq[i + p]:
                i += 1
                continue
            j = i
            while j + p < n and seq[j] == seq[j + p]:
                j += 1
            repeats = (j - i + p) // p
            if repeats >= min_repeats:
                candidates.append((sum(sizes[i:i + repeats * p]), i, p, repeats))
            i = j + 1
    candidates.sort(key=lambda c: (-c[0], c[2], c[1]))
    used = [False] * n
    runs = []
    for _size, start, p, repeats in candidates:
        span = range(start, start + p * repeats)
        if any(used[k] for k in span):
            continue
        for k in span:
            used[k] = True
        runs.append((start, p, repeats))
    return runs


_HIDEABLE_INPUTS = (*S.LEAF_KINDS, S.KIND_TRUNCATED)


def _hidden(g: nx.DiGraph, units: list[list[str]]) -> set[str]:
    """The ops of ``units`` plus the leaves and truncation placeholders that feed nothing else (a truncated
    wide graph has one placeholder per unwalked input: left visible, hundreds of them would all point at
    the fold node; the fold node counts them instead)."""
    data, pred, succ = g._node, g._pred, g._succ
    hidden = {u for unit in units for u in unit}
    for n in list(hidden):
        for p in pred[n]:
            if data[p].get(S.KIND) in _HIDEABLE_INPUTS and all(s in hidden for s in succ[p]):
                hidden.add(p)
    return hidden


def _contract(g: nx.DiGraph, folds: list[tuple[set[str], list[str], int]]) -> nx.DiGraph:
    """A new graph where each fold's hidden nodes are one ``"fold"`` node and its kept unit is tagged."""
    owner = {n: f"f{j}" for j, (hidden, _kept, _n) in enumerate(folds) for n in hidden}
    gone = owner.keys()
    out = nx.DiGraph()
    out.graph.update(g.graph)
    keep = [n for n in g._node if n not in gone]
    out.add_nodes_from((n, g._node[n]) for n in keep)
    out.add_edges_from((u, v, d) for u in keep for v, d in g._succ[u].items() if v not in gone)
    for j, (hidden, kept, repeats) in enumerate(folds):
        fid = f"f{j}"
        saved = sum(g.nodes[n].get(S.SAVED_BYTES) or 0 for n in hidden)
        unwalked = sum(1 for n in hidden if g._node[n].get(S.KIND) == S.KIND_TRUNCATED)
        out.add_node(fid, **{S.NAME: f"x{repeats}", S.KIND: S.KIND_FOLD, S.SHAPES: (), S.DTYPES: (),
                             S.SAVED_BYTES: saved, S.PARAM: None, S.STEP: None, S.MODULE: None,
                             S.COUNT: repeats, S.FOLD: fid, S.TRUNCATED_INPUTS: unwalked})
        ins = {owner.get(p, p) for n in hidden for p in g.predecessors(n) if p not in hidden}
        outs = {owner.get(s, s) for n in hidden for s in g.successors(n) if s not in hidden}
        out.add_edges_from((p, fid, {S.SLOTS: (), S.OUTPUT_NRS: ()}) for p in sorted(ins))
        out.add_edges_from((fid, s, {S.SLOTS: (), S.OUTPUT_NRS: ()}) for s in sorted(outs))
        for n in kept:
            out.nodes[n][S.FOLD] = fid
    return out
