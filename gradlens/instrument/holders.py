"""Holder finding (on demand only): name the user variable whose graph reaches an older iteration's graph,
by walking the user's frames and bounded graphs (tens of ms: never per step).
"""

from __future__ import annotations

from typing import Any

from ..findings import Location
from .callsite import _GRADLENS_DIR, _assignment_line, _drop_snapshot, _user_frame
from .sentinels import _oldest_tag


class HolderFinder:
    """Recorder part: ``find_holder``."""

    def _find_holder(self, before: int) -> tuple[str, Location, Any] | None:
        """Name the user variable whose graph reaches a graph of an iteration older than ``before`` (user
        frames only, bounded walks; run on demand, never per step)."""
        f = _user_frame(2)
        types = tuple(e.tensor_type for e in self.engines)
        while f is not None:
            fn = f.f_code.co_filename
            if not fn.startswith(_GRADLENS_DIR):
                found = None
                snapshot = f.f_locals
                for name, val in list(snapshot.items()):
                    for label, t in _tensors_in(name, val, types):
                        md = t.grad_fn.metadata
                        root = md.get(self._skey) if md else None
                        if root is not None and root.it >= before:
                            continue  # the loss being backpropagated now
                        age = _oldest_tag(t)
                        if age is not None and age < before:
                            line = _assignment_line(f, name) or f.f_lineno
                            found = label, Location(fn, line, f.f_code.co_name), _graph_of(t)
                            break
                    if found:
                        break
                _drop_snapshot(f, snapshot)
                del snapshot
                if found:
                    return found
            f = f.f_back
        return None

    def find_holder(self) -> tuple[str, Location, Any] | None:
        """The variable holding a graph from an earlier iteration, where it is, and its graph (networkx,
        capped), or None. Runs on demand only (walks the user's frames and a bounded graph)."""
        return self._find_holder(before=self.iteration - 1)


def _graph_of(t, max_nodes: int = 5000):
    """The graph behind a leaked tensor, as plain networkx data (capped; None if the walk fails)."""
    try:
        from ..graphs.walk import graph

        return graph(t, max_nodes=max_nodes)
    except Exception:  # noqa: BLE001 - attribution is best effort; the finding stands without it
        return None



def _tensors_in(name: str, val: Any, types: tuple):
    if isinstance(val, types):
        if val.grad_fn is not None:
            yield name, val
    elif isinstance(val, (list, tuple)):
        for i, v in enumerate(val[-50:]):
            if isinstance(v, types) and v.grad_fn is not None:
                yield f"{name}[{len(val) - min(len(val), 50) + i}]", v
    elif isinstance(val, dict):
        for k, v in list(val.items())[:50]:
            if isinstance(v, types) and v.grad_fn is not None:
                yield f"{name}[{k!r}]", v

