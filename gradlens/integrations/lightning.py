"""A PyTorch Lightning callback that watches ``trainer.fit`` with ``gradlens.watch``.

It reads the trainer's own ``accumulate_grad_batches`` and declares it to the watch, so Lightning's
gradient accumulation is reported as the deliberate accumulation it is (an informational finding), never
as a missing ``zero_grad``. Works with ``lightning.pytorch`` and with the older ``pytorch_lightning``
package.

Example:
    >>> from gradlens.integrations.lightning import GradlensCallback  # doctest: +SKIP
    >>> cb = GradlensCallback()  # doctest: +SKIP
    >>> trainer = L.Trainer(accumulate_grad_batches=4, callbacks=[cb])  # doctest: +SKIP
    >>> trainer.fit(model, data)  # doctest: +SKIP
    >>> cb.lens.findings  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback
    except ImportError as exc:
        raise ImportError(
            "gradlens.integrations.lightning needs PyTorch Lightning: pip install 'gradlens[lightning]' "
            "(or pip install lightning)"
        ) from exc

__all__ = ["GradlensCallback"]


class GradlensCallback(Callback):
    """Watch a Lightning ``fit`` for autograd bugs.

    The watch opens at ``on_fit_start`` on the ``LightningModule`` and the trainer's optimizers, with
    ``accumulation=trainer.accumulate_grad_batches`` (when above 1), and closes at ``on_fit_end`` or when
    fitting raises.

    Args:
        on_finding: ``"warn"`` (default), ``"collect"`` or ``"raise"``, as in ``gradlens.watch``.
        ignore: rule slugs not to report.
        print_report: print the text report at the end of fit when there are findings at or above
            ``warning``.
        **options: other ``gradlens.watch`` options (``sample_every``, ``nonfinite_every``).

    Attributes:
        lens: the ``Lens`` of the last fit (None before the first).
        accumulation: the accumulation declared to the watch (None when the trainer does not accumulate).
    """

    def __init__(self, *, on_finding: str = "warn", ignore: Iterable[str] = (), print_report: bool = False,
                 **options: Any):
        self.options = {"on_finding": on_finding, "ignore": tuple(ignore), **options}
        self.print_report = print_report
        self.lens: Any = None
        self.accumulation: int | None = None
        self._watch: Any = None

    @staticmethod
    def declared_accumulation(trainer: Any) -> int | None:
        """The trainer's ``accumulate_grad_batches`` as ``gradlens.watch(accumulation=...)`` takes it."""
        k = getattr(trainer, "accumulate_grad_batches", 1)
        return k if isinstance(k, int) and k > 1 else None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        from ..instrument.watch import watch

        self._close()
        self.accumulation = self.declared_accumulation(trainer)
        optimizers = [getattr(o, "optimizer", o) for o in (getattr(trainer, "optimizers", None) or [])]
        self._watch = watch(model=pl_module, optimizer=optimizers or None, accumulation=self.accumulation,
                            **self.options)
        self.lens = self._watch.__enter__()

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()
        if self.print_report and self.lens is not None and self.lens.kinds("warning"):
            print(self.lens.report())

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close(exception)

    def _close(self, exception: BaseException | None = None) -> None:
        w, self._watch = self._watch, None
        if w is None:
            return
        if exception is None:
            w.__exit__(None, None, None)
        else:
            w.__exit__(type(exception), exception, exception.__traceback__)
