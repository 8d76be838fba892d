"""``RMSprop``: torch 2.13's RMSprop (optional momentum, centered variant, weight decay, maximize) computed
as torch's single-tensor path on the arrays."""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor
from .adam import _lerp_
from .optimizer import (
    Optimizer,
    _check_capturable,
    _check_no_differentiable,
    _get_scalar_dtype,
    _param_array,
    _to_scalar,
    _use_grad_for_differentiable,
)

__all__ = ["RMSprop", "rmsprop"]


class RMSprop(Optimizer):
    """RMSprop, torch's ``torch.optim.RMSprop``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by the estimated variance of the gradient (default False).
        capturable, foreach, maximize, differentiable: as torch.

    Example:
        >>> import gradlens.engine as torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = torch.optim.RMSprop([w])
        >>> (w * w).sum().backward(); opt.step()
    """

    def __init__(self, params, lr=1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= _to_scalar(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        _check_no_differentiable(differentiable)
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable}
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not isinstance(p_state["step"], Tensor):
                    step = np.array(float(p_state["step"]), dtype=_get_scalar_dtype())
                    p_state["step"] = Tensor._make(step)

    def _init_group(self, group, params_with_grad, grads, square_avgs, momentum_buffer_list, grad_avgs,
                    state_steps) -> bool:
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            params_with_grad.append(p)
            grads.append(g._data)
            state = self.state[p]
            if len(state) == 0:
                state["step"] = Tensor._make(np.zeros((), dtype=_get_scalar_dtype()))
                state["square_avg"] = Tensor._make(np.zeros_like(p._data))
                if group["momentum"] > 0:
                    state["momentum_buffer"] = Tensor._make(np.zeros_like(p._data))
                if group["centered"]:
                    state["grad_avg"] = Tensor._make(np.zeros_like(p._data))
            square_avgs.append(state["square_avg"])
            state_steps.append(state["step"])
            if group["momentum"] > 0:
                momentum_buffer_list.append(state["momentum_buffer"])
            if group["centered"]:
                grad_avgs.append(state["grad_avg"])
        return False

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        self._accelerator_graph_capture_health_check()
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params_with_grad, grads, square_avgs, grad_avgs, momentum_buffer_list, state_steps = \
                [], [], [], [], [], []
            self._init_group(group, params_with_grad, grads, square_avgs, momentum_buffer_list, grad_avgs,
                             state_steps)
            rmsprop(params_with_grad, grads, square_avgs, grad_avgs, momentum_buffer_list, state_steps,
                    lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                    weight_decay=group["weight_decay"], momentum=group["momentum"],
                    centered=group["centered"], maximize=group["maximize"], capturable=group["capturable"])
        return loss


def rmsprop(params, grads, square_avgs, grad_avgs, momentum_buffer_list, state_steps, *, lr: float,
            alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
            maximize: bool, capturable: bool = False) -> None:
    """The RMSprop update (torch's single-tensor formulas) on the parameters' arrays."""
    if params:
        _check_capturable(capturable)
    lr = _to_scalar(lr)
    for i, param in enumerate(params):
        step = state_steps[i]
        grad = grads[i] if not maximize else -grads[i]
        square_avg = square_avgs[i]
        step._data += 1
        step._vbox[0] += 1
        p = _param_array(param)
        if weight_decay != 0:
            grad = grad + weight_decay * p

        sq = square_avg._data
        sq *= alpha
        tmp = grad * (1 - alpha)
        tmp *= grad
        sq += tmp
        square_avg._vbox[0] += 2

        if centered:
            grad_avg = grad_avgs[i]
            _lerp_(grad_avg._data, grad, 1 - alpha)
            grad_avg._vbox[0] += 1
            ga = grad_avg._data
            avg = sq + (-1.0 * ga) * ga
            avg = np.sqrt(avg)
        else:
            avg = np.sqrt(sq)
        avg += eps

        if momentum > 0:
            buf = momentum_buffer_list[i]
            b = buf._data
            b *= momentum
            b += grad / avg
            buf._vbox[0] += 2
            p -= lr * b
        else:
            tmp = grad * -lr
            tmp /= avg
            p += tmp
        param._vbox[0] += 1
