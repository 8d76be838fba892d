"""Parameter (leaf) gradient state: the post-accumulate hook that classifies every accumulation.

One ``register_post_accumulate_grad_hook`` per tracked leaf classifies each accumulation from the grad's
identity and ``_version`` (an in-place accumulation bumps the version by exactly one): a fresh gradient,
a deliberate accumulation, or a *carry* of a gradient an update already consumed (an optimizer step, or
an update by hand: leaves no optimizer holds are marked here, ``updates.mark``, and judged before the
next backward, ``manual.py``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from .engines import EngineHooks
from .state import _ParamState
from .updates import mark


class ParamHooks:
    """Recorder part: tracks leaves (``params``, ``_frozen``) and hangs the accumulation hook on them."""

    def _track(self, p, name: str, eng: EngineHooks) -> _ParamState:
        st = self.params.get(id(p))
        if st is not None and st.ref() is p:
            if ".param_groups[" in st.name and ".param_groups[" not in name:
                st.name = name  # first seen through its optimizer; a module names it as the user wrote it
            return st
        st = _ParamState(name, weakref.ref(p), eng)
        self.params[id(p)] = st
        if p.requires_grad:
            self._handles.append(p.register_post_accumulate_grad_hook(self._make_post_acc(st)))
        else:
            self._frozen.append(st)
        return st

    def _hook_unfrozen(self, batch: int = 256) -> None:
        """Hang the accumulation hook on parameters frozen when first seen and unfrozen since (fine-tuning
        that unfreezes a backbone): a rotating slice of at most ``batch`` of them before each backward."""
        frozen = self._frozen
        start = self._frozen_at % len(frozen)
        chunk = frozen[start : start + batch]
        keep = []
        for st in chunk:
            p = st.ref()
            if p is None:
                continue
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(self._make_post_acc(st)))
            else:
                keep.append(st)
        frozen[start : start + len(chunk)] = keep
        self._frozen_at = start + len(keep)

    def _make_post_acc(self, st: _ParamState) -> Callable:
        rec = self
        wref = weakref.ref

        def post_accumulate(p) -> None:
            if not rec.active:
                return
            g = p.grad
            if g is None:
                return
            try:
                ver = g._version
            except RuntimeError:  # inference tensors have no version counter
                return
            ref = st.acc_ref
            prev = ref() if ref is not None else None
            if st.stepped:
                sr = st.step_ref
                if sr is not None and sr() is g and ver - 1 == st.step_ver:
                    st.count += 1
                    st.carried = True
                else:
                    st.count = 1
                    st.carried = False
                    st.evalc = st.repc = 0
            elif prev is g and ver - 1 == st.acc_ver:
                st.count += 1
                if st.updated and not st.held:
                    st.carried = True  # updated by hand since the last backward, gradient not cleared
                    rec._manual.append(st.name)
            else:
                st.count = 1
                st.carried = False
                st.evalc = st.repc = 0
            if prev is not g:
                st.acc_ref = wref(g)
            st.acc_ver = ver
            st.stepped = False
            st.since_step += 1
            rec._acc_calls += 1
            if not st.held and threading.get_ident() == rec._thread:
                # updated by hand? judged before the next backward (manual.py), against this mark; the
                # iterations are the watching thread's (another thread's leaves are not its updates)
                st.updated = False
                mark(st, p)
                rec._marked[id(st)] = st
                rec._window[id(st)] = st
            if rec._cur_eval:
                st.evalc += 1
            if rec._cur_repeat:
                st.repc += 1
            if rec._reread is not None:
                rec._reread.append(st)
            if not st.received:
                st.received = True
                st.received_step = rec.step
                # orphans are judged against the watching thread's optimizer steps only: another thread's
                # model gets its first gradients before its own optimizer has stepped
                if not st.held and not st.bare and threading.get_ident() == rec._thread:
                    rec._unheld.add(st)

        return post_accumulate
