"""The ``autograd.backward`` wrapper: root sentinels and repeated-backward detection before each backward,
leaf discovery (``leaves.py``) and the manual-update window (``manual.py``) around it, DDP re-reads after
it, and the explanation of a backward that failed on an earlier iteration's graph.
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from collections.abc import Callable

from .callsite import user_location
from .engines import EngineHooks
from .events import BackwardErrorEvent
from .explain import explain_backward_error
from .sentinels import STEP_KEY, _oldest_tag, _plant_down_chain, _RootSentinel

_INPLACE = "modified by an inplace operation"


class BackwardHooks:
    """Recorder part: wraps ``<engine>.autograd.backward``."""

    def _make_backward(self, eng: EngineHooks) -> Callable:
        owner = self._owner  # never the recorder itself: the wrapper may outlive the watch (recorder.py)
        native = eng.name == "native"  # CPU-only engine: its losses can always be read cheaply

        def make(orig):
            def backward(tensors, *args, **kwargs):
                rec = owner.rec
                if rec is None or not rec.active:
                    return orig(tensors, *args, **kwargs)
                if threading.get_ident() != rec._thread:
                    # per-backward state (sentinels, repeat and eval flags) belongs to the watching thread
                    rec._note("backward in another thread: gradient-state checks ran, iteration tracking "
                              "did not")
                    return orig(tensors, *args, **kwargs)
                create = kwargs.get("create_graph", False) if kwargs else (len(args) > 2 and args[2])
                repeat = rec._before_backward(tensors, bool(create), native)
                try:
                    return orig(tensors, *args, **kwargs)
                except RuntimeError as exc:
                    if not repeat:
                        rec._backward_error(tensors, exc)
                    raise
                finally:
                    rec._cur_repeat = False
                    rec._cur_eval = False
                    if rec._reread:
                        rec._reread_grads()
                    if rec._walk_pending is not None:
                        rec._after_backward_leaves()
                    if rec._manual or rec._pending_manual is not None:
                        rec._emit_manual()

            backward.__wrapped__ = orig
            backward._gradlens_recorder = owner
            backward.__doc__ = orig.__doc__
            backward.__name__ = getattr(orig, "__name__", "backward")
            return backward

        return make

    def _reread_grads(self) -> None:
        """After a backward under DDP: it wrote the all-reduced gradient into ``.grad`` at the end of
        backward (in place, or by swapping in a bucket view), so record identity and version again."""
        wref = weakref.ref
        for st in self._reread:
            p = st.ref()
            g = p.grad if p is not None else None
            if g is None:
                continue
            ref = st.acc_ref
            if ref is None or ref() is not g:
                st.acc_ref = wref(g)
            st.acc_ver = g._version
        self._reread.clear()

    def _before_backward(self, tensors, create_graph: bool, native: bool) -> bool:
        """Plant the root sentinels, notice a repeated backward, and read a scalar loss's finiteness (a
        non-finite loss makes the next step check every gradient; CPU tensors only: no device sync)."""
        if self._frozen:
            self._hook_unfrozen()
        if self._in_step:
            self._end_failed_steps()
        self._manual_boundary()
        repeat = False
        check = self._check_loss and not self._suspect_nonfinite
        skey = self._skey
        for t in tensors if isinstance(tensors, (tuple, list)) else (tensors,):
            fn = getattr(t, "grad_fn", None)
            if fn is None:
                continue
            self._discover_leaves(fn)
            md = fn.metadata
            s = md.get(skey)
            if s is None:
                s = md[skey] = _RootSentinel(self._roots, self.iteration)
                if STEP_KEY not in md:
                    md[STEP_KEY] = self.step + 1
                _plant_down_chain(fn, s, skey + ".chain")
            else:
                s.uses += 1
                repeat = True
            if check and (native or t.is_cpu) and t.numel() == 1 and not math.isfinite(t.item()):
                self._suspect_nonfinite = True
        self._cur_repeat = repeat and not create_graph
        self._cur_eval = self._fwd_eval
        return repeat

    def _backward_error(self, tensors, exc: BaseException) -> None:
        """Explain a backward that raised, without touching the exception (the wrapper re-raises it as is).

        A backward that fails on an earlier iteration's retained graph whose saved weights an optimizer step
        has since changed in place is ``graph-retained`` (state carried across iterations and kept with
        ``retain_graph=True``); every other loud error (freed graph, saved tensor changed in place, graph
        cut) is explained at its root line by ``explain.py``. Never raises: with ``on_finding="raise"`` the
        finding stays on the lens and the engine's own exception propagates."""
        try:
            text = str(exc)
            if _INPLACE in text:
                roots = tensors if isinstance(tensors, (tuple, list)) else (tensors,)
                oldest = [_oldest_tag(t) for t in roots if getattr(t, "grad_fn", None) is not None]
                if any(o is not None and o < self.iteration for o in oldest):
                    holder = self._find_holder(before=self.iteration)
                    self.emit(BackwardErrorEvent(
                        self.step + 1,
                        self.iteration,
                        text.split(".")[0],
                        holder[0] if holder else None,
                        holder[1] if holder else user_location(3),
                    ))
                    return
            ev = explain_backward_error(exc, tensors, sys._getframe(1), self.step + 1, self.iteration,
                                        frozenset(e.name for e in self.engines))
            if ev is not None:
                self.emit(ev)
        except Exception:  # noqa: BLE001 - an explanation must never replace the engine's own exception
            pass
