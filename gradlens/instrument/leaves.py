"""Leaf discovery at backward time: the leaves a backward reaches, whether or not a module or an optimizer
holds them (learners write loops with bare tensors: ``W = torch.randn(4, 2, requires_grad=True)``).

Before a backward, a bounded walk from the loss's ``grad_fn`` down ``next_functions`` to the
``AccumulateGrad`` nodes yields their ``.variable``; each new one is tracked like a parameter (a post-
accumulate hook and a weak reference, nothing else). The walk keeps no node: it ends before the backward
runs and drops its references root first.

Walks are cached by the root node's type: after a walk, every backward through a same-rooted graph fires
exactly as many accumulation hooks as the walk found leaves; when a backward fires a different number (a
leaf rebound, a tracked branch gone) the next backward through that root walks again. A new leaf fires no
hook of ours until it is found, so walks are also redone every ``REWALK_EVERY`` backward passes through a
root: a leaf created mid-run is watched within that many backwards. Loops that rebind their
leaves every iteration (``W = (W - lr * W.grad).detach().requires_grad_()``) therefore walk every
backward: their graphs are small; walks of large graphs back off (1, 2, 4, ... backwards, at most
``MAX_BACKOFF``).
"""

from __future__ import annotations

import weakref
from typing import Any

from .callsite import _drop_snapshot, _user_frame
from .state import _ParamState

__all__ = ["LeafDiscovery", "leaves_reached", "MAX_WALK_NODES"]

MAX_WALK_NODES = 10_000  # well under the ~45k walked nodes whose release crashes torch 2.13
MAX_BACKOFF = 64
REWALK_EVERY = 16
_SMALL_GRAPH = 256  # walks of graphs this small are cheap enough to redo on every backward


def leaves_reached(root: Any, max_nodes: int = MAX_WALK_NODES) -> tuple[list, int, bool]:
    """The leaf tensors whose ``AccumulateGrad`` node ``root`` reaches, the nodes walked, and whether the
    walk stopped at ``max_nodes``."""
    seen = {root}
    order = [root]
    stack = [root]
    leaves = []
    truncated = False
    while stack and not truncated:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None or nxt in seen:
                continue
            if len(seen) >= max_nodes:
                truncated = True
                break
            seen.add(nxt)
            order.append(nxt)
            var = getattr(nxt, "variable", None)
            if var is not None:
                leaves.append(var)
            elif nxt.next_functions:
                stack.append(nxt)
    n = len(order)
    node = nxt = var = None
    seen.clear()
    stack.clear()
    order.reverse()  # list.clear releases from the end: the root first (DESIGN 3b)
    order.clear()
    return leaves, n, truncated


class _Walk:
    """What the last walk through a root type found: the accumulations to expect (None until the backward
    after the walk counted them), whether a backward since disagreed (stale), and the back-off."""

    __slots__ = ("expected", "nodes", "stale", "skip", "backoff", "uses")

    def __init__(self, nodes: int):
        self.uses = 0
        self.expected: int | None = None
        self.nodes = nodes
        self.stale = False
        self.skip = 0
        self.backoff = 1


class LeafDiscovery:
    """Recorder part: tracks the leaves each backward reaches (``_walks``, ``_walk_pending``, ``_acc_calls``,
    counted by the accumulation hook)."""

    def _discover_leaves(self, fn: Any) -> None:
        """Before a backward through ``fn``: walk to its leaves unless the cached walk still holds."""
        key = type(fn)
        w = self._walks.get(key)
        self._acc_calls = 0
        if w is not None:
            w.uses += 1
            if not w.stale and w.uses < REWALK_EVERY:
                self._walk_pending = w
                return
            if w.skip > 0:
                w.skip -= 1
                self._walk_pending = None
                return
        leaves, nodes, truncated = leaves_reached(fn)
        if truncated:
            self._note(f"a graph of more than {MAX_WALK_NODES} nodes: its leaves beyond that were watched only "
                       "where a module or an optimizer holds them")
        frame = None
        for p in leaves:
            st = self.params.get(id(p))
            if st is not None and st.ref() is p:
                continue
            if frame is None:
                frame = _user_frame(3)
            self._track_leaf(p, _leaf_name(p, frame), fn)
        del leaves, frame
        if w is None:
            w = self._walks[key] = _Walk(nodes)
        w.expected = None
        w.nodes = nodes
        w.stale = False
        w.uses = 0
        self._walk_pending = w

    def _after_backward_leaves(self) -> None:
        """After a backward: check the cached walk against the accumulations the backward fired."""
        w = self._walk_pending
        if w is None:
            return
        self._walk_pending = None
        fired = self._acc_calls
        if w.expected is None:
            w.expected = fired
        elif fired == w.expected:
            w.backoff = 1
        else:
            # the graph changed shape: walk again (at once for small graphs, after a back-off for large ones)
            w.stale = True
            w.skip = 0 if w.nodes <= _SMALL_GRAPH else w.backoff
            w.backoff = min(w.backoff * 2, MAX_BACKOFF)

    def _track_leaf(self, p: Any, name: str, fn: Any) -> None:
        """Track a leaf found by a walk. Its state and hook handle go when the leaf dies: loops that rebind
        their leaves make one per iteration, and must not grow the recorder."""
        params = self.params
        handles = self._leaf_handles
        key = id(p)
        box: list = []

        def forget(_ref, params=params, handles=handles, key=key, box=box):
            st = box[0] if box else None
            if st is not None and params.get(key) is st:
                del params[key]
                handles.pop(key, None)

        st = _ParamState(name, weakref.ref(p, forget), self._engine_for_node(fn))
        st.bare = True
        box.append(st)
        params[key] = st
        handles[key] = p.register_post_accumulate_grad_hook(self._make_post_acc(st))

    def _engine_for_node(self, fn: Any):
        if len(self.engines) == 1:
            return self.engines[0]
        native = (type(fn).__module__ or "").startswith("gradlens")
        for e in self.engines:
            if (e.name == "native") == native:
                return e
        return self.engines[0]


def _leaf_name(p: Any, frame: Any) -> str:
    """The user's variable that is ``p`` (in the backward's frame, then two callers), else its shape."""
    f = frame
    depth = 0
    found = None
    while f is not None and depth < 3 and found is None:
        snapshot = f.f_locals
        for name, val in list(snapshot.items()):
            if val is p and not name.startswith("_"):
                found = name
                break
        if found is None and depth == 0 and snapshot is not f.f_globals:
            found = next((k for k, v in list(f.f_globals.items()) if v is p and not k.startswith("_")), None)
        _drop_snapshot(f, snapshot)
        del snapshot
        f = f.f_back
        depth += 1
    return found or f"tensor{tuple(p.shape)}"
