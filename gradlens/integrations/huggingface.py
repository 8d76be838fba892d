"""A Hugging Face ``transformers.Trainer`` callback that watches training with ``gradlens.watch``.

It reads ``TrainingArguments.gradient_accumulation_steps`` and declares it to the watch, so the Trainer's
gradient accumulation is reported as the deliberate accumulation it is (an informational finding), never
as a missing ``zero_grad``. The optimizer the Trainer hands to callbacks (accelerate's wrapper included)
is unwrapped to the torch optimizer that actually steps.

Example:
    >>> from gradlens.integrations.huggingface import GradlensCallback  # doctest: +SKIP
    >>> cb = GradlensCallback()  # doctest: +SKIP
    >>> trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb])  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    >>> cb.lens.findings  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        "gradlens.integrations.huggingface needs transformers: pip install 'gradlens[hf]' "
        "(or pip install transformers accelerate)"
    ) from exc

__all__ = ["GradlensCallback"]


def _unwrap_optimizer(optimizer: Any) -> Any:
    """accelerate's ``AcceleratedOptimizer`` (and similar wrappers) keep the real one in ``.optimizer``."""
    seen = 0
    while optimizer is not None and hasattr(optimizer, "optimizer") and seen < 4:
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


class GradlensCallback(TrainerCallback):
    """Watch a ``Trainer.train()`` run for autograd bugs.

    The watch opens at ``on_train_begin`` on the model and optimizer the Trainer passes to callbacks, with
    ``accumulation=args.gradient_accumulation_steps`` (when above 1), and closes at ``on_train_end``.
    The Trainer has no exception event: if ``train()`` raises, call ``close()`` (or use the callback as a
    context manager around ``train()``).

    Args:
        on_finding: ``"warn"`` (default), ``"collect"`` or ``"raise"``, as in ``gradlens.watch``.
        ignore: rule slugs not to report.
        **options: other ``gradlens.watch`` options (``sample_every``, ``nonfinite_every``).

    Attributes:
        lens: the ``Lens`` of the last training run (None before the first).
        accumulation: the accumulation declared to the watch (None when the Trainer does not accumulate).
    """

    def __init__(self, *, on_finding: str = "warn", ignore: Iterable[str] = (), **options: Any):
        self.options = {"on_finding": on_finding, "ignore": tuple(ignore), **options}
        self.lens: Any = None
        self.accumulation: int | None = None
        self._watch: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:
        from ..instrument.watch import watch

        self.close()
        k = getattr(args, "gradient_accumulation_steps", 1)
        self.accumulation = k if isinstance(k, int) and k > 1 else None
        opt = _unwrap_optimizer(optimizer)
        self._watch = watch(model=model, optimizer=opt, accumulation=self.accumulation, **self.options)
        self.lens = self._watch.__enter__()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching (removing every hook); safe to call twice."""
        w, self._watch = self._watch, None
        if w is not None:
            w.__exit__(None, None, None)

    def __enter__(self) -> GradlensCallback:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        w, self._watch = self._watch, None
        if w is not None:
            w.__exit__(exc_type, exc, tb)
        return False
