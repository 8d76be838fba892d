"""Retention sentinels: small objects hung on graph nodes (or returned by the saved-tensor pack hook)
whose ``__del__`` says when the thing they ride on died, and the ledger they count into.

* ``_RootSentinel`` lives in ``loss.grad_fn.metadata`` (a node's metadata dict dies with the node), so a
  graph kept alive past its iteration (``total += loss``, a list of losses) is seen without holding it;
* ``_Packed`` is what the saved-tensor pack hook returns: a detached alias tagged with its iteration (a
  pack hook returning the tensor itself makes a C++ cycle that leaks the graph);
* ``_EvalSentinel`` marks an evaluation-mode output's node and says whether backward ever reached it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from .events import GraphDroppedEvent

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["_RootSentinel", "_plant_down_chain", "_SavedLedger", "_Packed", "_EvalSentinel", "_oldest_tag",
           "STEP_KEY", "MODULE_KEY", "SENTINEL_KEY", "ITERATION_KEY"]

STEP_KEY = "gradlens.step"
MODULE_KEY = "gradlens.module"
SENTINEL_KEY = "gradlens.sentinel"
ITERATION_KEY = "gradlens.iteration"


class _RootSentinel:
    """Lives in ``loss.grad_fn.metadata``; dies with the graph's root node."""

    __slots__ = ("live", "it", "uses")

    def __init__(self, live: dict, it: int):
        self.live = live
        self.it = it
        self.uses = 1
        live[it] = live.get(it, 0) + 1

    def __del__(self):
        live = self.live
        n = live.get(self.it, 0) - 1
        if n > 0:
            live[self.it] = n
        else:
            live.pop(self.it, None)


def _plant_down_chain(root, sentinel: _RootSentinel, key: str, depth: int = 2) -> None:
    """Also hang the root's sentinel on the nodes below a single-input root (``(loss / k).backward()``
    backpropagates a scaled copy while ``loss`` itself may be the variable kept alive): the one sentinel
    object then dies only when the last of those nodes does, so a kept ``loss`` counts as a retained graph
    without counting twice. A separate key keeps these marks out of repeated-backward detection."""
    # one read of each node's next_functions (torch builds a new tuple of wrappers on every read), no lists
    nexts = root.next_functions
    for _ in range(depth):
        child = None
        for c, _ in nexts:
            if c is not None:
                if child is not None:
                    return  # two inputs: not a chain
                child = c
        if child is None:
            return
        md = getattr(child, "metadata", None)
        if md is None:
            return
        nexts = child.next_functions
        if nexts == ():
            return
        md.setdefault(key, sentinel)


class _SavedLedger:
    """Counts of tracked saved tensors alive per iteration, shared by every holder."""

    __slots__ = ("live", "bytes", "discarded", "discarded_bytes", "packed_bytes")

    def __init__(self):
        self.live: dict[int, int] = {}
        self.bytes: dict[int, int] = {}
        self.discarded = 0
        self.discarded_bytes = 0
        self.packed_bytes = 0


class _Packed:
    """What the pack hook returns: a detached alias of the saved tensor, tagged with its iteration, and the
    tensor's version when saved (engines skip their in-place check for hooked saved tensors: unpack redoes it).
    """

    __slots__ = ("t", "it", "nb", "used", "ledger", "ver", "src")

    def __init__(self, t, it: int, nb: int, ledger: _SavedLedger):
        self.t = t
        self.src = None  # (producer node class, output_nr) for the engine's in-place error text, set by pack
        try:
            self.ver = t._version
        except RuntimeError:  # inference tensors have no version counter
            self.ver = None
        self.it = it
        self.nb = nb
        self.used = False
        self.ledger = ledger
        ledger.live[it] = ledger.live.get(it, 0) + 1
        ledger.bytes[it] = ledger.bytes.get(it, 0) + nb
        ledger.packed_bytes += nb

    def __del__(self):
        lg = self.ledger
        n = lg.live.get(self.it, 0) - 1
        if n > 0:
            lg.live[self.it] = n
            lg.bytes[self.it] = lg.bytes.get(self.it, 0) - self.nb
        else:
            lg.live.pop(self.it, None)
            lg.bytes.pop(self.it, None)
        if not self.used:
            lg.discarded += 1
            lg.discarded_bytes += self.nb


class _EvalSentinel:
    """Lives in the metadata of an evaluation-mode output's node; says whether backward ever reached it."""

    __slots__ = ("rec", "module", "step", "it", "location", "nbytes", "used", "handles", "__weakref__")

    def __init__(self, rec: Recorder, module: str, step: int, it: int, location, nbytes):
        self.rec = weakref.ref(rec)  # a node the user keeps past the watch must not keep the recorder alive
        self.handles: list = []  # its prehooks' handles: they live as long as the node, not the recorder
        self.module = module
        self.step = step
        self.it = it
        self.location = location
        self.nbytes = nbytes
        self.used = False

    def prehook(self) -> Callable:
        """The node prehook that marks the sentinel used; it holds the sentinel weakly (a native hook
        handle holds its hook dict, so a strong reference would keep the sentinel alive past its node)."""
        ref = weakref.ref(self)

        def mark_used(*args):
            s = ref()
            if s is not None:
                s.used = True

        return mark_used

    def __del__(self):
        rec = self.rec()
        if not self.used and rec is not None:
            rec._dropped.append(GraphDroppedEvent(self.module, self.step, self.nbytes, False, self.location))


def _oldest_tag(t, max_nodes: int = 2000) -> int | None:
    """The oldest iteration tag reachable from ``t.grad_fn`` (bounded walk), or None."""
    root = t.grad_fn
    seen = {root}
    stack = [root]
    oldest = None
    while stack and len(seen) < max_nodes:
        node = stack.pop()
        md = node.metadata
        if md:
            it = md.get(ITERATION_KEY)
            for v in md.values():
                if isinstance(v, _RootSentinel) and (it is None or v.it < it):
                    it = v.it
            if it is not None and (oldest is None or it < oldest):
                oldest = it
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    del seen, stack, root
    return oldest

