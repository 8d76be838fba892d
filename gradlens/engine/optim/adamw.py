"""``AdamW``: Adam with decoupled weight decay (``param *= 1 - lr * weight_decay`` before the Adam step),
torch 2.13's ``torch.optim.AdamW`` (a subclass of Adam with ``weight_decay=1e-2`` by default)."""

from __future__ import annotations

from .adam import Adam, adam

__all__ = ["AdamW", "adamw"]


class AdamW(Adam):
    """AdamW, torch's ``torch.optim.AdamW``: Adam whose weight decay is decoupled from the gradient.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-3).
        betas: running-average coefficients (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: decoupled weight decay coefficient (default 1e-2).
        amsgrad: use the running maximum of the second moment (default False).
        maximize, foreach, capturable, differentiable, fused: as for Adam.

    Example:
        >>> import gradlens.engine as torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = torch.optim.AdamW([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step()
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False, foreach: bool | None = None,
                 capturable: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def adamw(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad: bool, beta1: float,
          beta2: float, lr: float, weight_decay: float, eps: float, maximize: bool,
          fused: bool | None = None) -> None:
    """The AdamW update: ``adam`` with ``decoupled_weight_decay=True``."""
    adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad=amsgrad, beta1=beta1,
         beta2=beta2, lr=lr, weight_decay=weight_decay, eps=eps, maximize=maximize,
         decoupled_weight_decay=True, fused=fused)
