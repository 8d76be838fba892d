"""``Adagrad``: torch 2.13's Adagrad (lr decay, weight decay, initial accumulator, maximize) computed as
torch's single-tensor path on the arrays. Its state (``step``, ``sum``) is created at construction, as
torch does."""

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

__all__ = ["Adagrad", "adagrad"]


class Adagrad(Optimizer):
    """Adagrad, torch's ``torch.optim.Adagrad``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: start value of the squared-gradient sums (default 0).
        eps: added to the denominator (default 1e-10).
        foreach, maximize, differentiable, fused: as torch.

    Example:
        >>> import gradlens.engine as torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = torch.optim.Adagrad([w])
        >>> (w * w).sum().backward(); opt.step()
    """

    def __init__(self, params, lr=1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= _to_scalar(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        _check_no_differentiable(differentiable)
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = Tensor._make(np.zeros((), dtype=_get_scalar_dtype(is_fused=group["fused"])))
                state["sum"] = Tensor._make(np.full_like(p._data, initial_accumulator_value))

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("fused", None)
        for s in self.state.values():
            if "step" in s and not isinstance(s["step"], Tensor):
                s["step"] = Tensor._make(np.array(float(s["step"]), dtype=_get_scalar_dtype()))

    def share_memory(self) -> None:
        """No-op: the engine has a single process."""

    def _init_group(self, group, params_with_grad, grads, state_sums, state_steps):
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            params_with_grad.append(p)
            grads.append(g._data)
            state = self.state[p]
            if len(state) == 0:
                state["step"] = Tensor._make(np.zeros((), dtype=_get_scalar_dtype(is_fused=group["fused"])))
                state["sum"] = Tensor._make(np.full_like(p._data, self.defaults["initial_accumulator_value"]))
            state_sums.append(state["sum"])
            state_steps.append(state["step"])
        return False, False

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params_with_grad, grads, state_sums, state_steps = [], [], [], []
            self._init_group(group, params_with_grad, grads, state_sums, state_steps)
            adagrad(params_with_grad, grads, state_sums, state_steps, lr=group["lr"],
                    weight_decay=group["weight_decay"], lr_decay=group["lr_decay"], eps=group["eps"],
                    maximize=group["maximize"], fused=group["fused"])
        return loss


def adagrad(params, grads, state_sums, state_steps, *, lr: float, weight_decay: float, lr_decay: float,
            eps: float, maximize: bool, fused: bool | None = None) -> None:
    """The Adagrad update (torch's single-tensor formulas) on the parameters' arrays. Version counters move
    as torch's in-place ops move them (torch's fused kernel leaves all but ``step``'s unchanged)."""
    inc = 0 if fused else 1
    lr = _to_scalar(lr)
    for param, grad, state_sum, step_t in zip(params, grads, state_sums, state_steps, strict=True):
        step_t._data += 1
        step_t._vbox[0] += 1
        step = float(step_t._data)
        grad = grad if not maximize else -grad
        p = _param_array(param)
        if weight_decay != 0:
            grad = grad + weight_decay * p
        clr = lr / (1 + (step - 1) * lr_decay)
        s = state_sum._data
        s += grad * grad
        state_sum._vbox[0] += inc
        std = np.sqrt(s)
        std += eps
        tmp = grad * -clr
        tmp /= std
        p += tmp
        param._vbox[0] += inc
