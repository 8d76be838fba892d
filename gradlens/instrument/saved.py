"""Sampled ``saved_tensors_hooks``: pack returns a detached ``_Packed`` tagged with its iteration; unpack
counts backward passes reaching tensors saved in older iterations. Pushed only when the engine's hook stack
is empty, so popping them cannot disturb the user's own saved-tensor hook regions.
"""

from __future__ import annotations

import operator
import re
import weakref

from .engines import EngineHooks
from .sentinels import _Packed

_ANOMALY_OFF_HINT = (" Hint: enable anomaly detection to find the operation that failed to compute its gradient, "
                     "with torch.autograd.set_detect_anomaly(True, check_nan=False).")
_ANOMALY_ON_HINT = (" Hint: the backtrace further above shows the operation that failed to compute its gradient. "
                    "The variable in question was changed in there or anywhere later. Good luck!")


def inplace_error_text(t, expected: int, src: tuple[type, int] | None, anomaly: bool) -> str:
    """torch's message (torch/csrc/autograd/saved_variable.cpp, ``SavedVariable::unpack``) for a saved tensor
    changed in place since it was saved: ``t`` now, its version when saved, the (node class, output_nr) that
    produced it when it was not a leaf, and whether anomaly mode is on. torch names the node without its
    ``Backward0`` suffix ("Exp"), keeping other overload numbers ("Elu1")."""
    which = ""
    if src is not None:
        node_cls, output_nr = src
        name = node_cls.__name__  # what the node's name() returns, on both engines
        label = re.sub(r"Backward(\d+)$", lambda m: "" if m.group(1) == "0" else m.group(1), name)
        which = f", which is output {output_nr} of {label},"
    sizes = ", ".join(str(n) for n in t.shape)
    return (
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[{t.type()} [{sizes}]]{which} is at version {t._version}; expected version {expected} instead."
        + (_ANOMALY_ON_HINT if anomaly else _ANOMALY_OFF_HINT)
    )


class SavedTensorSampling:
    """Recorder part: saved-tensor hooks and their sampling (``_pushed``, ``_sampled``)."""

    def _make_saved_hooks(self, eng: EngineHooks):
        # weakly: a graph built on a sampled iteration and kept past the watch holds these hooks (torch
        # stores the pair with each saved tensor), and must not keep the recorder and its models alive
        rec_ref = weakref.ref(self)
        ledger = self._ledger
        cross = self._cross
        nbytes = eng.nbytes
        detach = eng.detach
        anomaly = getattr(eng._torch, "is_anomaly_enabled", lambda: False)
        output_nr = operator.attrgetter("output_nr" if eng.name == "torch" else "_output_nr")

        def pack(t):
            nb = 0
            fn = t.grad_fn
            if fn is not None or not t.requires_grad:
                nb = nbytes(t)
            rec = rec_ref()
            p = _Packed(detach(t), rec.iteration if rec is not None else -1, nb, ledger)
            if fn is not None:  # the node's class (its name), never the node: that would keep the graph alive
                p.src = (type(fn), output_nr(t))
            return p

        def unpack(p):
            p.used = True
            rec = rec_ref()
            if rec is not None and p.it < rec.iteration - 1:
                cross[0] += 1
            t = p.t
            if p.ver is not None and t._version != p.ver:
                # the engine skips its own check for hooked saved tensors: raise its exact text instead
                raise RuntimeError(inplace_error_text(t, p.ver, p.src, anomaly()))
            return t

        return pack, unpack

    def _start_sampling(self, force: bool = False) -> None:
        """Push the saved-tensor hooks on every engine whose hook stack is empty (so popping them later
        cannot disturb the user's own saved_tensors_hooks regions)."""
        for eng in self.engines:
            if eng in self._pushed:
                continue
            pack, unpack = self._saved_hooks[eng.name]
            if not eng.saved_hooks_stack_empty():
                if force:
                    self._note(
                        "saved_tensors_hooks of the user's code (checkpoint, save_on_cpu, ...) were "
                        "active: saved-tensor retention was not tracked there"
                    )
                continue
            if eng.push_saved_hooks(pack, unpack):
                self._pushed.append(eng)
            else:
                self._note("saved_tensors_hooks were disabled by a library (disable_saved_tensors_hooks): "
                           "saved-tensor retention was not tracked there; graph roots still were")
        self._sampled = bool(self._pushed)

    def _stop_sampling(self, force: bool = False) -> None:
        self._sampled = False
        for eng in list(self._pushed):
            pack = self._saved_hooks[eng.name][0]
            if eng.saved_hooks_top_is(pack):
                eng.pop_saved_hooks()
                self._pushed.remove(eng)
            elif force:
                # the watch ends inside a saved_tensors_hooks region opened after it (a watched generator
                # closed there): take ours out from beneath, keeping the region's hooks in force
                if eng.remove_saved_hooks(pack):
                    self._pushed.remove(eng)
                else:
                    self._note(
                        "gradlens's saved-tensor hooks could not be removed on exit (the watch ended in "
                        "another thread than it started in, or with saved-tensor hooks disabled): they stay "
                        "in that thread and only pass saved tensors through"
                    )
