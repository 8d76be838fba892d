"""``SGD``: stochastic gradient descent with momentum, dampening, Nesterov momentum, weight decay and
maximize, computed exactly as torch 2.13's single-tensor path (the momentum buffer equals the gradient on
the first step)."""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor
from .optimizer import (
    Optimizer,
    _check_no_differentiable,
    _param_array,
    _to_scalar,
    _use_grad_for_differentiable,
)

__all__ = ["SGD", "sgd"]


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), torch's ``torch.optim.SGD``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and zero dampening).
        maximize: maximize the objective instead of minimizing it.
        foreach, differentiable, fused: accepted for torch compatibility (one numpy implementation).

    Raises:
        ValueError: a negative lr, momentum or weight_decay, or Nesterov without momentum.

    Example:
        >>> import gradlens.engine as torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> (w * w).sum().backward(); opt.step()
    """

    def __init__(self, params, lr=1e-3, momentum: float = 0, dampening: float = 0, weight_decay=0,
                 nesterov: bool = False, *, maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_no_differentiable(differentiable)
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
                    "differentiable": differentiable, "fused": fused}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)
        if fused:
            self._step_supports_amp_scaling = True
            self._need_device_dtype_check_for_fused = True
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def _init_group(self, group, params, grads, momentum_buffer_list) -> bool:
        momentum = group["momentum"] != 0
        state = self.state
        for p in group["params"]:
            g = p._grad
            if g is not None:
                params.append(p)
                grads.append(g._data)
                if momentum:
                    momentum_buffer_list.append(state[p].get("momentum_buffer"))
        return False

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()

        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[np.ndarray] = []
            momentum_buffer_list: list[Tensor | None] = []
            self._init_group(group, params, grads, momentum_buffer_list)
            sgd(params, grads, momentum_buffer_list, weight_decay=group["weight_decay"],
                momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                nesterov=group["nesterov"], maximize=group["maximize"], fused=group["fused"])
            if group["momentum"] != 0:
                state = self.state
                for p, momentum_buffer in zip(params, momentum_buffer_list, strict=True):
                    state[p]["momentum_buffer"] = momentum_buffer
        return loss


def sgd(params: list[Tensor], d_p_list: list[np.ndarray], momentum_buffer_list: list[Tensor | None], *,
        weight_decay: float, momentum: float, lr: float, dampening: float, nesterov: bool,
        maximize: bool, fused: bool | None = None) -> None:
    """The SGD update on the parameters' arrays (``d_p_list`` holds the gradient arrays, never modified);
    new momentum buffers are written into ``momentum_buffer_list``. Version counters move as torch's
    in-place ops move them (torch's fused kernel leaves them unchanged)."""
    inc = 0 if fused else 1
    lr_number = lr = _to_scalar(lr)
    momentum_number = momentum
    weight_decay = _to_scalar(weight_decay)
    as_arrays: dict = {}
    for i, param in enumerate(params):
        data = param._data
        if data.__class__ is not np.ndarray:  # a numpy scalar left by a 0-d op (see _param_array)
            data = _param_array(param)
        dt = data.dtype
        if dt.kind == "f":
            # lr and momentum as 0-d arrays of the parameter's dtype: the values numpy would cast a Python
            # float to anyway, without converting it again in every in-place op (~0.8 us each on small tensors)
            key = dt.type  # hashing a dtype costs ~1k instructions; its scalar type hashes by identity
            pair = as_arrays.get(key)
            if pair is None:
                pair = as_arrays[key] = (np.array(lr_number, dtype=key), np.array(momentum_number, dtype=key))
            lr, momentum = pair
        else:
            lr, momentum = lr_number, momentum_number
        grad = d_p_list[i] if not maximize else -d_p_list[i]
        if weight_decay != 0:
            grad = grad + weight_decay * data
        if momentum_number != 0:
            buf = momentum_buffer_list[i]
            if buf is None:
                buf = Tensor._make(np.array(grad, copy=True))
                momentum_buffer_list[i] = buf
            else:
                b = buf._data
                b *= momentum
                if dampening == 0:
                    b += grad
                else:
                    b += (1 - dampening) * grad
                buf._vbox[0] += 2 * inc  # mul_ then add_
            if nesterov:
                grad = grad + momentum * buf._data
            else:
                grad = buf._data
        data -= lr * grad
        param._vbox[0] += inc
