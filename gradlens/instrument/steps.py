"""Optimizer step hooks: judge each optimizer's gradients at step time (not at accumulation time, which
gives false alarms on GAN loops), snapshot grad identity as the step leaves it, and pick the lead optimizer
whose steps end iterations.

The snapshot is taken in the pre-step pass (one pass over the parameters per step) for optimizers whose
step leaves gradients alone, which the post-step hook checks on each optimizer's first steps and one step
in 16; steps given a closure, and optimizers seen changing gradients, are snapshot after the step. A
subclass's ``super().step()`` fires the global hooks twice (the engines wrap each class's ``step``): the
outer call alone is the step.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .engines import EngineHooks
from .events import StepEvent
from .state import _OptState


class StepHooks:
    """Recorder part: global optimizer step pre/post hooks (``opts``, ``_lead``)."""

    def _opt_state(self, opt) -> _OptState:
        os_ = self.opts.get(id(opt))
        if os_ is not None and os_.ref() is not opt:
            os_ = None  # a dead optimizer's id, reused
        groups = opt.param_groups
        last = groups[-1]["params"] if groups else ()
        key = (len(groups), id(last), len(last))
        if os_ is not None and os_.key == key:
            return os_
        if os_ is None:
            eng = _engine_of(self.engines, opt)
            os_ = _OptState(f"{type(opt).__name__}#{self._n_opts}", eng, weakref.ref(opt))
            self._n_opts += 1
            self.opts[id(opt)] = os_
        os_.key = key
        states = []
        for gi, g in enumerate(groups):
            for pi, p in enumerate(g["params"]):
                st = self._track(p, f"{os_.label}.param_groups[{gi}][{pi}]", os_.eng)
                if not st.held:
                    st.held = True
                    self._unheld.discard(st)
                states.append(st)
        os_.states = states
        return os_

    def _pre_step(self, opt, args, kwargs) -> None:
        if not self.active:
            return
        if self._dropped:
            self.flush()
        os_ = self.opts.get(id(opt))
        if os_ is None or os_.ref() is not opt or os_.key[0] != len(opt.param_groups):
            os_ = self._opt_state(opt)
        elif os_.steps % 16 == 0:
            os_ = self._opt_state(opt)  # param groups edited in place: re-read now and then
        if os_.depth:
            # the step of a subclass calling its parent's (``super().step()``): the engine fires the global
            # hooks again for the inner call once the parent class has had an instance; one step, judged once
            os_.depth += 1
            return
        os_.depth = 1
        self._in_step += 1
        # a closure (LBFGS's, SAM's) may run forward and backward inside the step; ``args[0]`` is the optimizer
        os_.closure = (len(args) > 1 or bool(kwargs)) and (
            any(callable(a) for a in args[1:]) or any(callable(v) for v in kwargs.values()))
        os_.folded = False
        if self._opt_ids is not None and id(opt) not in self._opt_ids:
            return
        # take the post-step snapshot in this loop (one pass per step instead of two) when the step leaves
        # gradients alone: not with a closure (LBFGS re-runs backward inside the step), and never again for
        # an optimizer seen changing its gradients (checked on its first steps and one step in 16)
        fold = not (os_.closure or os_.mutates)
        wref = weakref.ref
        if self._health is not None:
            self._health_before(os_)  # health.py: gradient norms and weights before the step, on sampled steps
        cfg = self.config
        touched, carried, cleared, never, evalm, rep = [], [], [], [], [], []
        grads, gnames = [], []
        kmax = 0
        zeros = None
        eng = os_.eng
        self._zeroed.clear()
        for st in os_.states:
            p = st.ref()
            if p is None:
                continue
            g = p.grad
            zeroed = False
            if st.since_step:
                touched.append(st.name)
                if g is None:
                    cleared.append(st.name)
                else:
                    ref = st.acc_ref
                    if zeros is not False and ref is not None and ref() is g and g._version != st.acc_ver:
                        # changed in place since backward: cleared (zero_) or rescaled (clipping, unscale_);
                        # read values once, and again only while they keep coming out zero
                        zeros = eng.is_zero(g)
                        if zeros:
                            cleared.append(st.name)
                            self._zeroed.append(st)
                            zeroed = True
                    grads.append(g)
                    gnames.append(st.name)
                if st.carried:
                    carried.append(st.name)
                if st.count > kmax:
                    kmax = st.count
                if st.evalc and st.evalc < st.count:
                    evalm.append(st.name)
                if st.repc:
                    rep.append(st.name)
            elif not st.received and g is None and p.requires_grad:
                never.append(st.name)
            if fold:
                _snapshot(st, g, zeroed, wref)
        os_.folded = fold
        if zeros is False and self._zeroed:
            # zero after an in-place change while other changed grads are not: units that got no signal (dead
            # ReLUs) rescaled by clipping, not a clear (zeroing in place clears every gradient it reaches)
            rescaled = {st.name for st in self._zeroed}
            cleared = [name for name in cleared if name not in rescaled]
        nonfinite = None
        every = cfg.nonfinite_every
        if grads and (self._suspect_nonfinite or (every and os_.steps % every == 0)):
            nonfinite = tuple(gnames[i] for i in eng.nonfinite(grads))
            if not nonfinite:
                self._suspect_nonfinite = False
        del grads
        orphans = ()
        if self._unheld and threading.get_ident() == self._thread:  # another thread's steps age nothing
            orphans = tuple(sorted(s.name for s in self._unheld if s.received_step <= self.step - 1))
        if not (carried or cleared or never or nonfinite or evalm or rep or orphans or kmax > 1):
            return  # nothing to judge: a clean step costs no event
        n = sum(1 for st in os_.states if (p := st.ref()) is not None and p.requires_grad)
        # the location is filled in by the host only when a finding needs it (frame walks cost)
        self.emit(
            StepEvent(
                self.step + 1,
                os_.label,
                os_.steps + 1,
                n,
                self._names(touched),
                kmax,
                self._names(carried),
                self._names(cleared),
                self._names(never),
                nonfinite if nonfinite is None else self._names(nonfinite),
                self._names(evalm),
                self._names(rep),
                self._names(orphans),
                cfg.accumulation,
                None,
            )
        )

    def _end_failed_steps(self) -> None:
        """Before a backward: a step still in flight without a closure (which could run this backward)
        raised, so its post-step hook never ran; forget it, or every later step would count as nested."""
        for os_ in self.opts.values():
            if os_.depth and not os_.closure:
                os_.depth = 0
                os_.folded = False
                self._in_step -= 1

    def _names(self, names) -> tuple:
        """``tuple(names)``, shared with earlier events holding the same names: a buggy loop emits an event
        per step, and the session keeps up to ``MAX_EVENTS`` of them (memory per event stays constant
        instead of growing with the model's parameter count)."""
        if not names:
            return ()
        t = tuple(names)
        cache = self._name_tuples
        shared = cache.get(t)
        if shared is None:
            if len(cache) >= 256:
                cache.clear()
            shared = cache[t] = t
        return shared

    def _post_step(self, opt, args, kwargs) -> None:
        if not self.active:
            return
        os_ = self.opts.get(id(opt))
        if os_ is None or os_.ref() is not opt:
            return
        depth = os_.depth
        if depth > 1:
            os_.depth = depth - 1  # the inner call of a nested step (_pre_step): the outer call's hook ends it
            return
        if depth:
            os_.depth = 0
            self._in_step -= 1
        if self._health_pending:
            self._health_after(os_)  # health.py: the update's size, from the weights sampled before the step
        zeroed, self._zeroed = self._zeroed, []
        wref = weakref.ref
        verify = os_.folded and (os_.steps < _VERIFY_FIRST or os_.steps % _VERIFY_EVERY == 0)
        if not os_.folded or verify:
            for st in os_.states:
                p = st.ref()
                if p is None:
                    continue
                g = p.grad
                st_zeroed = bool(zeroed) and any(st is z for z in zeroed)
                if verify:  # did the step leave the gradient as the pre-step snapshot says?
                    sr = st.step_ref
                    if sr is None:
                        if g is None or st_zeroed:
                            continue
                    elif sr() is g and st.step_ver == _version(g):
                        continue
                    os_.mutates = True  # this optimizer changes gradients in its step: never fold it again
                _snapshot(st, g, st_zeroed, wref)
        os_.folded = False
        os_.steps += 1
        self.step += 1
        self._opt_steps += 1
        # an iteration ends when the lead optimizer steps; the lead is the first optimizer to step, and
        # passes to any optimizer that steps twice without the lead stepping in between (the old lead's
        # loop is over, or it steps less often)
        if threading.get_ident() != self._thread:
            # iterations are the watching thread's: another thread's steps must not age its graphs
            self._note("optimizer steps in another thread: their gradient checks ran; iteration-based "
                       "retention checks followed the watching thread only")
            return
        oid = id(opt)
        if self._lead is None or oid in self._since_tick:
            self._lead = oid
        if self._lead == oid:
            self._since_tick.clear()
            self._tick()
        else:
            self._since_tick.add(oid)


_VERIFY_FIRST = 3  # on an optimizer's first steps, and one step in _VERIFY_EVERY, check that the step left
_VERIFY_EVERY = 16  # its gradients as the pre-step snapshot says (identity and version)


def _version(g) -> int:
    try:
        return g._version
    except RuntimeError:  # inference tensors have no version counter
        return -1


def _snapshot(st, g, zeroed: bool, wref) -> None:
    """Record what the step leaves in ``st``'s gradient (identity and version: an accumulation adding to it
    next is a carry) and reset the per-step counts."""
    ver = -1 if g is None or zeroed else _version(g)
    if ver < 0:
        # none, the step applied zeros (adding to them next is not a carry), or no version counter
        st.step_ref = None
    else:
        ref = st.acc_ref
        st.step_ref = ref if ref is not None and ref() is g else wref(g)
        st.step_ver = ver
    st.stepped = True
    st.since_step = 0
    st.carried = False
    st.evalc = st.repc = 0


def _engine_of(engines: list[EngineHooks], obj: Any) -> EngineHooks:
    from .engines import engine_for

    eng = engine_for(obj)
    for e in engines:
        if e.name == eng.name:
            return e
    return eng

