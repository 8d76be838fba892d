"""The iteration model: what ends an iteration (today, the lead optimizer's step), and the tick that ages
root sentinels and saved tensors, switches sampling, and emits a ``TickEvent`` when retention changed.
"""

from __future__ import annotations

from .events import GraphDroppedEvent, TickEvent


class IterationModel:
    """Recorder part: ``iteration`` and ``_tick``."""

    def _tick(self) -> None:
        ended = self.iteration
        self.iteration += 1
        cur = self.iteration
        old_roots = old_root_its = old_saved = old_saved_its = saved_bytes = 0
        for k, v in list(self._roots.items()):
            if k < cur - 1:
                old_roots += v
                old_root_its += 1
        lg = self._ledger
        for k, v in list(lg.live.items()):
            if k < cur - 1:
                old_saved += v
                old_saved_its += 1
                saved_bytes += lg.bytes.get(k, 0)
        sampled = self._sampled
        every = self.config.sample_every
        want = cur < self.config.warmup or (every and cur % every == 0)
        if every:
            if sampled and not want:
                self._stop_sampling()
            elif want and not sampled:
                self._start_sampling()
        if self._eval_live:
            for s in list(self._eval_live):
                if not s.used and s.it < cur - 1:
                    self._eval_live.discard(s)
                    self._dropped.append(GraphDroppedEvent(s.module, s.step, s.nbytes, True, s.location))
        self.flush()
        state = (old_roots, saved_bytes, self._cross[0])
        if state == self._last_tick:
            return  # unchanged: detectors judge growth between the ticks that differ
        self._last_tick = state
        self.emit(
            TickEvent(
                ended,
                self.step,
                old_roots,
                old_root_its,
                old_saved,
                saved_bytes,
                old_saved_its,
                self._cross[0],
                sampled,
                None,
            )
        )
