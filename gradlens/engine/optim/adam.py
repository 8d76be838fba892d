"""``Adam``: torch 2.13's Adam (bias correction, ``eps`` added after the bias-corrected square root,
AMSGrad, maximize, L2 or decoupled weight decay), computed as torch's single-tensor path on the arrays.

State per parameter: ``step`` (a 0-d float32 tensor, float64 under a float64 default dtype), ``exp_avg``,
``exp_avg_sq`` and, with ``amsgrad``, ``max_exp_avg_sq``.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor
from .optimizer import (
    Optimizer,
    _check_capturable,
    _check_no_differentiable,
    _get_scalar_dtype,
    _param_array,
    _to_scalar,
    _use_grad_for_differentiable,
)

__all__ = ["Adam", "adam"]


class Adam(Optimizer):
    """Adam, torch's ``torch.optim.Adam``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0); decoupled (AdamW) with ``decoupled_weight_decay=True``.
        amsgrad: use the running maximum of the second moment (default False).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable, differentiable, fused: accepted for torch compatibility.

    Raises:
        ValueError: an invalid lr, eps, beta or weight_decay (torch's messages).

    Example:
        >>> import gradlens.engine as torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = torch.optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step()
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 amsgrad: bool = False, *, foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        if isinstance(lr, Tensor):
            if foreach and not capturable:
                raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
            if lr.numel() != 1:
                raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not ((isinstance(betas[0], float) and isinstance(betas[1], float))
                or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor))):
            raise ValueError("betas must be either both floats or both Tensors")
        for i in (0, 1):
            if isinstance(betas[i], Tensor):
                if not capturable and foreach:
                    raise ValueError(f"betas[{i}] as a Tensor is not supported for capturable=False and "
                                     "foreach=True")
                if betas[i].numel() != 1:
                    raise ValueError(f"Tensor betas[{i}] must be 1-element")
        _check_no_differentiable(differentiable)
        betas = tuple(betas)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)
        if fused:
            self._step_supports_amp_scaling = True
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            fused = group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not isinstance(p_state["step"], Tensor):
                    dt = _get_scalar_dtype(is_fused=fused) if group["capturable"] or group["fused"] \
                        else _get_scalar_dtype()
                    p_state["step"] = Tensor._make(np.array(float(p_state["step"]), dtype=dt))

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                    state_steps) -> bool:
        amsgrad = group["amsgrad"]
        states = self.state
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            params_with_grad.append(p)
            grads.append(g._data)
            state = states[p]
            if len(state) == 0:
                dt = _get_scalar_dtype(is_fused=group["fused"]) if group["capturable"] or group["fused"] \
                    else _get_scalar_dtype()
                state["step"] = Tensor._make(np.zeros((), dtype=dt))
                state["exp_avg"] = Tensor._make(np.zeros_like(p._data))
                state["exp_avg_sq"] = Tensor._make(np.zeros_like(p._data))
                if amsgrad:
                    state["max_exp_avg_sq"] = Tensor._make(np.zeros_like(p._data))
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            if amsgrad:
                max_exp_avg_sqs.append(state["max_exp_avg_sq"])
            state_steps.append(state["step"])
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
            params_with_grad: list[Tensor] = []
            grads: list[np.ndarray] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            max_exp_avg_sqs: list[Tensor] = []
            state_steps: list[Tensor] = []
            beta1, beta2 = group["betas"]
            self._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                             state_steps)
            adam(params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                 amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                 weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                 decoupled_weight_decay=group["decoupled_weight_decay"], fused=group["fused"],
                 capturable=group["capturable"])
        return loss


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, scratch: np.ndarray | None = None) -> None:
    """``start.lerp_(end, weight)`` with torch's two-branch formula (``scratch``: an optional work array)."""
    diff = np.subtract(end, start, out=scratch if scratch is not None else np.empty_like(start))
    if abs(weight) < 0.5:
        diff *= weight
        start += diff
    else:
        diff *= 1 - weight
        np.subtract(end, diff, out=start)


def adam(params: list[Tensor], grads: list[np.ndarray], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
         max_exp_avg_sqs: list[Tensor], state_steps: list[Tensor], *, amsgrad: bool, beta1: float,
         beta2: float, lr: float, weight_decay: float, eps: float, maximize: bool,
         decoupled_weight_decay: bool = False, fused: bool | None = None, capturable: bool = False) -> None:
    """The Adam update (torch's single-tensor formulas) on the parameters' arrays; ``grads`` holds the
    gradient arrays and is never modified. Version counters move as torch's in-place ops move them (torch's
    fused kernel leaves all but ``step``'s unchanged)."""
    if params:
        _check_capturable(capturable)
    inc = 0 if fused else 1
    lr = _to_scalar(lr)
    beta1 = _to_scalar(beta1)
    beta2 = _to_scalar(beta2)
    weight_decay = _to_scalar(weight_decay)
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        step_t = state_steps[i]
        p = _param_array(param)

        s = step_t._data
        s += 1
        step_t._vbox[0] += 1

        if weight_decay != 0:
            if decoupled_weight_decay:
                p *= 1 - lr * weight_decay
                param._vbox[0] += inc
            else:
                grad = grad + weight_decay * p

        # two scratch arrays per parameter (out= keeps 0-d parameters arrays, not numpy scalars)
        tmp = np.empty_like(p)
        denom = np.empty_like(p)

        m = exp_avg._data
        _lerp_(m, grad, 1 - beta1, tmp)
        exp_avg._vbox[0] += inc

        v = exp_avg_sq._data
        v *= beta2
        np.multiply(grad, 1 - beta2, out=tmp)
        tmp *= grad
        v += tmp
        exp_avg_sq._vbox[0] += 2 * inc

        step = float(s)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5

        if amsgrad:
            mx = max_exp_avg_sqs[i]
            np.maximum(mx._data, v, out=mx._data)
            mx._vbox[0] += inc
            np.sqrt(mx._data, out=denom)
        else:
            np.sqrt(v, out=denom)
        denom /= bias_correction2_sqrt
        denom += eps

        np.multiply(m, -step_size, out=tmp)
        tmp /= denom
        p += tmp
        param._vbox[0] += inc
