"""Iterations without an optimizer: a backward and the hand-written leaf updates that follow it.

Leaves no optimizer holds are marked at each accumulation (``updates.mark``). Before the next backward,
when no optimizer stepped in between, the marked leaves are compared with their marks: if any changed (or
all of them died: a loop that rebinds its leaves, ``W = (W - lr * W.grad).detach().requires_grad_()``), an
update was made by hand, the *window* of backward passes since the previous update is closed, and an
iteration ends (``_tick``), exactly as an optimizer step ends one. The accumulation hook then knows, per
leaf, whether the gradient it adds to was already applied by that update (the accumulation trap).

What a closed window tells (judged here, reported by ``detectors/gradstate.py`` from a ``StepEvent`` whose
optimizer is ``"manual update"``):

* gradients carried over an update (``carried``): ``missing-zero-grad``, at the ``backward()`` that added
  to them, with the update's line as the related location;
* k backward passes per update, every window alike: deliberate accumulation (info);
* a window with more backward passes than every one of at least ``RHYTHM_WINDOWS`` windows before it,
  which were all alike: a backward outside the update rhythm (an evaluation pass between updates)
  whose gradient the update applied (``off_rhythm``: ``unexpected-accumulation``, at that backward's line);
* backward passes of a model in evaluation mode, or repeated through one graph (as for optimizers).

The update's line is found, only when a finding needs it, in the source of the function that runs the
backward (then its callers): the in-place update, ``.data`` or ``copy_`` statement that reads a ``.grad``.
"""

from __future__ import annotations

import inspect
import linecache
import re
import sys
from typing import Any

from ..findings import Location
from .callsite import _GRADLENS_DIR, _skip_dirs, _user_frame, user_location
from .events import StepEvent
from .updates import changed_since_mark

__all__ = ["ManualUpdates", "MANUAL", "RHYTHM_WINDOWS", "update_line"]

MANUAL = "manual update"
RHYTHM_WINDOWS = 3
_HISTORY = 16
_MAX_WINDOW = 4096  # leaf states kept per window before dead ones are dropped
_MAX_SITES = 64  # backward call sites kept per window
_UPDATE = re.compile(r"(-=|\+=|\.(sub_|add_|copy_|addcdiv_|addcmul_|mul_|lerp_)\(|\.data\s*=(?!=))")
_CLEAR = re.compile(r"zero_grad|\.grad\s*=\s*None|\.grad(\.data)?\.zero_\(|requires_grad")


class ManualUpdates:
    """Recorder part: manual-update windows (``_marked``, ``_window``, ``_rhythm``, ``_manual_updates``)."""

    def _manual_boundary(self) -> None:
        """Before a backward: close the window if a leaf no optimizer holds was updated since its last
        accumulation, and no optimizer stepped in between (its step hooks judged that update)."""
        marked = self._marked
        if self._opt_steps != self._opt_steps_at_backward:
            self._opt_steps_at_backward = self._opt_steps
            marked.clear()
            self._window.clear()
            self._window_lines.clear()
            return
        if marked:
            changed = False
            alive = 0
            for st in tuple(marked.values()):  # a snapshot: hooks of other threads may run meanwhile
                p = st.ref()
                if p is None:
                    continue
                alive += 1
                if changed_since_mark(st, p):
                    st.updated = True
                    changed = True
            marked.clear()
            if changed or not alive:  # every leaf of the last backward gone: rebound to updated copies
                self._close_window()
        if len(self._window) > _MAX_WINDOW:  # backward passes without updates (saliency on fresh inputs)
            self._window = {k: st for k, st in self._window.items() if st.ref() is not None}
        if (self._window or not self._opt_steps) and len(self._window_lines) < _MAX_SITES:
            self._window_lines.append(self._backward_site())

    def _backward_site(self) -> tuple | None:
        """The user's ``(code, line)`` calling backward now: a frame walk whose verdict per code object is
        cached (a Location is made only when a finding needs it)."""
        internal = self._internal_code
        f = sys._getframe(3)
        while f is not None:
            code = f.f_code
            verdict = internal.get(code)
            if verdict is None:
                verdict = internal[code] = _user_frame_is_internal(code.co_filename)
                if len(internal) > 512:
                    internal.clear()
            if not verdict:
                return code, f.f_lineno
            f = f.f_back
        return None

    def _close_window(self) -> None:
        """An update by hand ended the window: summarise it for ``_emit_manual`` and end the iteration.
        (Runs once per update: one pass over the window's leaves; names and lines are made only when a
        finding needs them.)"""
        window = list(self._window.values())  # dead ones too: rebinding loops replace every leaf
        sites, self._window_lines = self._window_lines, []
        self._window.clear()
        kmax = 0
        odd = False  # a leaf mixing evaluation-mode or repeated backward passes, or carrying an applied grad
        for st in window:
            if st.count > kmax:
                kmax = st.count
            if st.evalc or st.repc or st.carried:
                odd = True
        evalm = rep = off = ()
        off_at = None
        if odd:
            evalm = tuple(st.name for st in window if st.evalc and st.evalc < st.count)
            rep = tuple(st.name for st in window if st.repc)
        if kmax and not (odd and (evalm or rep or any(st.carried for st in window))):
            hist = self._rhythm
            if len(hist) >= RHYTHM_WINDOWS and kmax > hist[-1] and min(hist) == max(hist):
                off = tuple(st.name for st in window if st.count == kmax)
                usual = self._rhythm_sites
                at = next((s for s in sites if s is not None and s not in usual), sites[-1] if sites else None)
                off_at = Location(at[0].co_filename, at[1], at[0].co_name) if at is not None else None
            else:
                if len(hist) <= RHYTHM_WINDOWS + 1:  # the usual backward lines: those of the first windows
                    self._rhythm_sites.update(s for s in sites if s is not None)
                if not hist or kmax != hist[-1] or len(hist) < _HISTORY:
                    hist.append(kmax)
                    del hist[:-_HISTORY]
        self.step += 1
        self._manual_updates += 1
        self._pending_manual = (window, kmax, evalm, rep, off, off_at)
        self._tick()

    def _emit_manual(self) -> None:
        """After a backward: report the window an update closed before it, and the gradients this backward
        added on top of ones that update already applied."""
        carried = self._names(dict.fromkeys(self._manual))
        self._manual.clear()
        pending, self._pending_manual = self._pending_manual, None
        window, kmax, evalm, rep, off, off_at = pending or ((), 0, (), (), (), None)
        if not (carried or evalm or rep or off or kmax > 1):
            return
        touched = self._names(st.name for st in window)
        n = len(window)
        loc = user_location(3)
        related = ()
        if carried or off:
            frame = _user_frame(3)
            key = (frame.f_code, frame.f_lineno, carried or off) if frame is not None else None
            cache = self._update_sites
            if key is None or key not in cache:
                if len(cache) > 64:
                    cache.clear()
                upd = update_line(frame, carried or off)
                if key is not None:
                    cache[key] = upd
            else:
                upd = cache[key]
            del frame
            related = (upd,) if upd is not None else ()
        if carried or evalm or rep or kmax > 1:
            self.emit(StepEvent(
                step=self.step,
                optimizer=MANUAL,
                optimizer_steps=self._manual_updates,
                n_params=max(n, len(carried)),
                touched=touched or carried,
                max_count=max(kmax, 2 if carried else 0),
                carried=carried,
                eval_mixed=evalm,
                repeated=rep,
                declared_accumulation=self.config.accumulation,
                location=loc,
                related=related,
            ))
        if off:
            self.emit(StepEvent(
                step=self.step,
                optimizer=MANUAL,
                optimizer_steps=self._manual_updates,
                n_params=n,
                touched=touched,
                max_count=kmax,
                off_rhythm=off,
                rhythm=self._rhythm[-1] if self._rhythm else None,
                location=off_at or loc,
                related=related,
            ))


def _user_frame_is_internal(filename: str) -> bool:
    """Whether frames of this file are skipped when looking for the user's line (as ``callsite`` does)."""
    return (
        any(filename.startswith(d) for d in _skip_dirs())
        or filename.endswith(("contextlib.py", "functools.py"))
        or filename.startswith("<frozen")
    )


def update_line(frame: Any, names: tuple[str, ...], depth: int = 3) -> Location | None:
    """The statement updating a leaf by hand, read from the source of ``frame``'s function and its user
    callers: an in-place update, ``.data`` assignment or ``copy_`` that reads a ``.grad`` (else one that
    names a leaf), preferring the first one after the frame's current line."""
    short = {n.rsplit(".", 1)[-1] for n in names}
    f = frame
    while f is not None and depth > 0:
        code = f.f_code
        if not code.co_filename.startswith(_GRADLENS_DIR):
            line = _update_in(code, f.f_lineno, short)
            if line is not None:
                return Location(code.co_filename, line, code.co_name)
            depth -= 1
        f = f.f_back
    return None


def _update_in(code: Any, current: int, short: set[str]) -> int | None:
    if code.co_name == "<module>":  # a script's top level: getsourcelines would give its first block only
        lines, start = linecache.getlines(code.co_filename), 1
    else:
        try:
            lines, start = inspect.getsourcelines(code)
        except (OSError, TypeError):
            return None
    start = max(start, 1)
    names = re.compile(r"\b(" + "|".join(re.escape(s) for s in sorted(short)) + r")\b") if short else None
    hits_grad, hits_name = [], []
    for i, text in enumerate(lines):
        text = text.split("#", 1)[0]
        if not _UPDATE.search(text) or _CLEAR.search(text):
            continue
        if ".grad" in text:
            hits_grad.append(start + i)
        elif names is not None and names.search(text):
            hits_name.append(start + i)
    for hits in (hits_grad, hits_name):
        if hits:
            after = [n for n in hits if n > current]
            return after[0] if after else hits[0]
    return None
