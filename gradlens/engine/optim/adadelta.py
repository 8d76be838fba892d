"""``Adadelta``: the per-parameter adaptive rate of Zeiler (2012), computed exactly as torch 2.13's
single-tensor path (the MNIST examples train with it)."""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor
from .optimizer import (
    Optimizer,
    _check_no_differentiable,
    _get_scalar_dtype,
    _param_array,
    _to_scalar,
    _use_grad_for_differentiable,
)

__all__ = ["Adadelta", "adadelta"]


class Adadelta(Optimizer):
    """Adadelta, torch's ``torch.optim.Adadelta``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: coefficient scaling the delta (default 1.0).
        rho: smoothing constant of the running averages (default 0.9).
        eps: added inside the square roots (default 1e-6).
        weight_decay: L2 penalty (default 0).
        foreach, capturable, maximize, differentiable: as torch.

    Raises:
        ValueError: a negative lr, eps or weight_decay, or rho outside [0, 1].

    Example:
        >>> import gradlens.engine as torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = torch.optim.Adadelta([w])
        >>> (w * w).sum().backward(); opt.step()
    """

    def __init__(self, params, lr=1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: bool | None = None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= _to_scalar(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_no_differentiable(differentiable)
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
                    "capturable": capturable, "foreach": foreach, "differentiable": differentiable}
        super().__init__(params, defaults)

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, square_avgs, acc_deltas = [], [], [], []
            for p in group["params"]:
                if p._grad is None:
                    continue
                params.append(p)
                grads.append(p._grad._data)
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = Tensor._make(np.zeros((), dtype=_get_scalar_dtype()))
                    state["square_avg"] = Tensor._make(np.zeros_like(p._data))
                    state["acc_delta"] = Tensor._make(np.zeros_like(p._data))
                state["step"]._data += 1
                state["step"]._vbox[0] += 1
                square_avgs.append(state["square_avg"])
                acc_deltas.append(state["acc_delta"])
            adadelta(params, grads, square_avgs, acc_deltas, lr=group["lr"], rho=group["rho"], eps=group["eps"],
                     weight_decay=group["weight_decay"], maximize=group["maximize"])
        return loss


def adadelta(params, grads, square_avgs, acc_deltas, *, lr, rho: float, eps: float, weight_decay: float,
             maximize: bool) -> None:
    """The Adadelta update (torch's single-tensor formulas) on the parameters' arrays."""
    lr = _to_scalar(lr)
    for param, grad, square_avg, acc_delta in zip(params, grads, square_avgs, acc_deltas):
        grad = -grad if maximize else grad
        p = _param_array(param)
        if weight_decay != 0:
            grad = grad + weight_decay * p
        sq = square_avg._data
        sq *= rho
        tmp = grad * (1 - rho)
        tmp *= grad
        sq += tmp
        square_avg._vbox[0] += 2
        std = np.sqrt(sq + eps)
        delta = np.sqrt(acc_delta._data + eps)
        delta /= std
        delta *= grad
        acc = acc_delta._data
        acc *= rho
        tmp = delta * (1 - rho)
        tmp *= delta
        acc += tmp
        acc_delta._vbox[0] += 2
        p += delta * -lr
        param._vbox[0] += 1
