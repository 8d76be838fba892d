"""Executes backward passes: an iterative topological walk over ``Node`` objects (no recursion, so a
100,000-op chain is fine), one gradient buffer per node for the duration of one pass, and torch's hook
order: tensor pre-hooks, node pre-hooks, the node, node post-hooks."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .anomaly_mode import MODE as ANOMALY
from .anomaly_mode import check_nan, warn_forward_trace
from .grad_mode import STATE as GRAD_MODE
from .graph import ENGINE_STATE, AccumulateGrad

__all__ = ["run_backward", "run_tensor_hooks", "STATE"]


STATE = ENGINE_STATE


def run_tensor_hooks(hooks: dict, grad):
    """Apply ``Tensor.register_hook`` hooks in order; a hook returning a tensor replaces the gradient."""
    from ..tensor import Tensor

    for fn in list(hooks.values()):
        t = grad if isinstance(grad, Tensor) else Tensor._make(grad)
        new = fn(t)
        if new is not None:
            if not isinstance(new, Tensor):
                raise TypeError(f"a tensor hook must return a Tensor or None, got {type(new).__name__}")
            if new.shape != t.shape:
                raise RuntimeError(
                    f"hook '{getattr(fn, '__name__', fn)}' has changed the size of value: expected "
                    f"{list(t.shape)}, got {list(new.shape)}")
            grad = new if STATE.create_graph else new._data
    return grad


def _add(a, b):
    """Sum two gradient contributions out of place (a buffer may alias another node's gradient)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def run_backward(roots: Sequence[tuple], retain_graph: bool, create_graph: bool,
                 capture: Sequence[tuple] | None = None, allow_unused: bool = False):
    """Run one backward pass.

    Args:
        roots: ``(node, output_nr, grad)`` triples to start from.
        retain_graph: keep saved values so the graph can be run again.
        create_graph: record the backward computation itself (gradients come out as graph tensors).
        capture: for ``autograd.grad``: ``(node, output_nr)`` edges whose incoming gradient is returned
            instead of being accumulated into leaves; only nodes leading to them run.

    Returns:
        With ``capture``, the list of captured gradients (``None`` where nothing flowed).
    """
    # 1. the reachable graph and each node's count of incoming edges (``deps`` doubles as the seen-set)
    deps: dict = {}
    order_stack = []
    for node, _nr, _g in roots:
        if node not in deps:
            deps[node] = 0
            order_stack.append(node)
    stack = list(order_stack)
    pop, push, get = stack.pop, stack.append, deps.get
    if capture is None:
        while stack:
            for child, _nr in pop()._next:
                if child is not None:
                    n = get(child)
                    if n is None:
                        deps[child] = 1
                        push(child)
                    else:
                        deps[child] = n + 1
    else:
        parents: dict = {}
        while stack:
            node = pop()
            for child, _nr in node._next:
                if child is not None:
                    parents.setdefault(child, []).append(node)
                    n = get(child)
                    if n is None:
                        deps[child] = 1
                        push(child)
                    else:
                        deps[child] = n + 1
        # only run nodes from which a captured edge can be reached
        targets = {n for n, _ in capture}
        needed = set()
        stack = [p for n in targets for p in parents.get(n, ())]
        while stack:
            n = stack.pop()
            if n in needed:
                continue
            needed.add(n)
            stack.extend(parents.get(n, ()))
        captured: dict = {}

    # 2. seed the buffers: a single-output node's buffer is its gradient, a multi-output node's a list
    buffers: dict = {}
    for node, nr, g in roots:
        if capture is None and node.num_outputs == 1:
            buffers[node] = _add(buffers.get(node), g)
            continue
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node.num_outputs
        buf[nr] = _add(buf[nr], g)
    ready = [n for n in order_stack if deps[n] == 0]

    prev_cg, prev_grad = STATE.create_graph, GRAD_MODE.enabled
    STATE.create_graph = create_graph
    GRAD_MODE.enabled = create_graph
    STATE.depth += 1
    # inf/nan arithmetic is silent in torch; numpy would print RuntimeWarnings from backward formulas
    token = _quiet_numpy()
    try:
        if capture is None:
            _run_plain(ready, buffers, deps, retain_graph)
        else:
            _run_capture(ready, buffers, deps, retain_graph, targets, needed, captured)
    finally:
        _loud_numpy(token)
        STATE.create_graph, GRAD_MODE.enabled = prev_cg, prev_grad
        STATE.depth -= 1
    if capture is not None:
        return [captured.get(edge) for edge in capture]
    return None


try:  # numpy >= 2: set the error state's context variable directly (np.errstate costs ~2 us a backward)
    from numpy._core.umath import _extobj_contextvar as _EXTOBJ
    from numpy._core.umath import _make_extobj

    _QUIET = _make_extobj(all="ignore")

    def _quiet_numpy():
        return _EXTOBJ.set(_QUIET)

    def _loud_numpy(token) -> None:
        _EXTOBJ.reset(token)
except ImportError:  # pragma: no cover - other numpy layouts
    def _quiet_numpy():
        state = np.errstate(all="ignore")
        state.__enter__()
        return state

    def _loud_numpy(token) -> None:
        token.__exit__(None, None, None)


def _run_plain(ready: list, buffers: dict, deps: dict, retain_graph: bool) -> None:
    """The backward loop of ``Tensor.backward`` (no captured edges): each ready node runs on its buffer and
    hands one gradient per edge to its children. The common case (one output, no hooks) is inlined here;
    everything else goes through ``_execute`` (every node under anomaly mode, checked). ``buffers`` holds a
    single-output node's gradient itself and a list for a multi-output node."""
    getrefcount = sys.getrefcount
    pop_ready, push_ready, pop_buffer, get_buffer = ready.pop, ready.append, buffers.pop, buffers.get
    checked = ANOMALY.enabled
    execute = _checked_execute if checked else _execute
    g = gi = grads_in = None
    while ready:
        node = pop_ready()
        if node.num_outputs != 1:
            grads_in = execute(node, pop_buffer(node, None), retain_graph)
        elif (checked or node._tprehooks is not None or node._retain is not None or node._prehooks is not None
                or node._hooks is not None):
            g = pop_buffer(node, None)
            grads_in = execute(node, None if g is None else [g], retain_graph)
            g = None
        else:
            g = pop_buffer(node, None)
            if g is None:
                if not retain_graph:
                    node._free()
                continue
            if node.__class__ is AccumulateGrad:
                # Only `g` and getrefcount's argument refer to the array when nobody else holds it (this
                # loop drops its other references before the next node), so .grad may take it without a
                # copy, as torch's AccumulateGrad steals a gradient whose use_count allows it.
                # Saves a full copy per parameter (MLP 784-128-10: -0.12 ms of a 1.1 ms step).
                owned = getrefcount(g) == 2
                node.backward(g, owned)
                g = None
                continue
            grads_in = node.backward(g)
            g = None
            if not retain_graph:
                node._free()
        edges = node._next
        if len(grads_in) != len(edges):
            grads_in = tuple(grads_in)[:len(edges)] + (None,) * (len(edges) - len(grads_in))
        for (child, nr), gi in zip(edges, grads_in, strict=True):
            if child is None:
                continue
            if gi is not None:
                if child.num_outputs == 1:
                    old = get_buffer(child)
                    buffers[child] = gi if old is None else _add(old, gi)
                else:
                    cbuf = get_buffer(child)
                    if cbuf is None:
                        cbuf = buffers[child] = [None] * child.num_outputs
                    cbuf[nr] = _add(cbuf[nr], gi)
                    cbuf = None
            left = deps[child] - 1
            deps[child] = left
            if not left:
                push_ready(child)
        # drop this loop's references to the gradients just handed on (see the steal test above)
        grads_in = gi = old = None


def _run_capture(ready: list, buffers: dict, deps: dict, retain_graph: bool, targets: set, needed: set,
                 captured: dict) -> None:
    """The backward loop of ``autograd.grad`` and ``backward(inputs=...)``: gradients reaching the captured
    edges are returned, and only nodes that lead to them run."""
    execute = _checked_execute if ANOMALY.enabled else _execute
    while ready:
        node = ready.pop()
        buf = buffers.pop(node, None)
        if node in targets:
            for i, g in enumerate(buf or ()):
                if g is not None:
                    captured[(node, i)] = g
            if isinstance(node, AccumulateGrad) or node not in needed:
                grads_in = ()
            else:
                grads_in = execute(node, buf, retain_graph)
        elif node not in needed:
            grads_in = ()
        else:
            grads_in = execute(node, buf, retain_graph)
        edges = node._next
        for i, (child, nr) in enumerate(edges):
            if child is None:
                continue
            g = grads_in[i] if i < len(grads_in) else None
            if g is not None:
                cbuf = buffers.get(child)
                if cbuf is None:
                    cbuf = buffers[child] = [None] * child.num_outputs
                cbuf[nr] = _add(cbuf[nr], g)
            left = deps[child] - 1
            deps[child] = left
            if left == 0:
                ready.append(child)


def _checked_execute(node, buf, retain_graph: bool):
    """``_execute`` under anomaly mode: the forward stack warned before a backward error propagates, and a
    nan gradient refused (``check_nan``)."""
    try:
        grads_in = _execute(node, buf, retain_graph)
        if ANOMALY.check_nan:
            check_nan(node, grads_in)
    except Exception:
        warn_forward_trace(node)
        raise
    return grads_in


def _execute(node, buf, retain_graph: bool):
    """Run one node on its gradient buffer, with its hooks; return its input gradients."""
    if buf is None or all(g is None for g in buf):
        if not retain_graph:
            node._free()
        return ()
    tpre = node._tprehooks
    if tpre:
        for nr, hooks in tpre.items():
            if hooks and buf[nr] is not None:
                buf[nr] = run_tensor_hooks(hooks, buf[nr])
    retain = node._retain
    if retain:
        for nr, ref in retain.items():
            t = ref()
            if t is not None and buf[nr] is not None:
                t._accumulate(buf[nr], STATE.create_graph)
    pre = node._prehooks
    if pre:
        buf = _call_prehooks(pre, buf)
    if node.num_outputs == 1:
        g = buf[0]
        if g is None:
            return ()
        grads_in = node.backward(g)
    else:
        grads_in = node.backward(buf)
    if not retain_graph:
        node._free()
    post = node._hooks
    if post:
        grads_in = _call_posthooks(post, grads_in, buf)
    return grads_in


def _as_tensors(grads):
    from ..tensor import Tensor

    return tuple(None if g is None else (g if isinstance(g, Tensor) else Tensor._make(g)) for g in grads)


def _unwrap(grads):
    if STATE.create_graph:
        return list(grads)
    return [None if g is None else getattr(g, "_data", g) for g in grads]


def _call_prehooks(hooks: dict, buf):
    for fn in list(hooks.values()):
        new = fn(_as_tensors(buf))
        if new is not None:
            buf = _unwrap(new)
    return buf


def _call_posthooks(hooks: dict, grads_in, buf):
    for fn in list(hooks.values()):
        new = fn(_as_tensors(grads_in), _as_tensors(buf))
        if new is not None:
            grads_in = _unwrap(new)
    return grads_in
