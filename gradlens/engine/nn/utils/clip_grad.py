"""``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``: rescale or clamp parameter gradients in place,
exactly as torch does (the gradients are always multiplied by the clamped coefficient, so their version
counters move even when no clipping happens)."""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable

import numpy as np

from ..._dtype import get_default_dtype
from ...autograd.grad_mode import no_grad
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _as_list(parameters) -> list:
    if isinstance(parameters, Tensor):
        return [parameters]
    is_generator = isinstance(parameters, types.GeneratorType)
    parameters = list(parameters)
    if is_generator and len(parameters) == 0:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return parameters


def _vector_norm(a: np.ndarray, norm_type: float) -> np.ndarray:
    a = np.abs(a)
    if norm_type == float("inf"):
        out = a.max() if a.size else np.zeros((), a.dtype)
    elif norm_type == float("-inf"):
        out = a.min()
    elif norm_type == 0:
        out = np.count_nonzero(a)
    elif norm_type == 1:
        out = a.sum()
    elif norm_type == 2:
        out = np.sqrt(np.dot(a.ravel(), a.ravel()))
    else:
        out = np.sum(a**norm_type) ** (1.0 / norm_type)
    return np.asarray(out, dtype=a.dtype)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The ``norm_type``-norm of the norms of ``tensors`` (0-d tensor; 0.0 for no tensors)."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    else:
        tensors = list(tensors)
    norm_type = float(norm_type)
    if len(tensors) == 0:
        return Tensor._make(np.zeros((), dtype=get_default_dtype().np))
    norms = [_vector_norm(t._data, norm_type) for t in tensors]
    total = _vector_norm(np.stack(norms), norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
            "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
            "norm anyway, set `error_if_nonfinite=False`"
        )
    return Tensor._make(total)


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    """Scale the gradients of ``parameters`` by ``min(max_norm / (total_norm + 1e-6), 1)``."""
    max_norm = float(max_norm)
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    total = total_norm._data
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.asarray(float(max_norm) / (total + total.dtype.type(1e-6)), dtype=total.dtype)
    coef = np.minimum(coef, total.dtype.type(1.0))
    coef_t = Tensor._make(coef)
    with no_grad():
        for g in grads:
            g.mul_(coef_t)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach=None,
) -> Tensor:
    """Clip the gradient norm of ``parameters`` in place; returns the total norm before clipping.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` is clipped.
        max_norm: largest allowed total norm.
        norm_type: the p of the p-norm (``inf`` for max-norm).
        error_if_nonfinite: raise RuntimeError when the total norm is nan or inf.

    Returns:
        The total norm of the gradients (viewed as one vector), a 0-d tensor.

    Example:
        >>> import gradlens.engine as torch
        >>> p = torch.nn.Parameter(torch.ones(4))
        >>> p.grad = torch.full((4,), 3.0)
        >>> float(torch.nn.utils.clip_grad_norm_([p], 1.0))
        6.0
    """
    max_norm, norm_type = float(max_norm), float(norm_type)  # torch's ValueError/TypeError, also with no grads
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """Deprecated alias of ``clip_grad_norm_``."""
    warnings.warn(
        "`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
        FutureWarning,
        stacklevel=2,
    )
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach=None) -> None:
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place."""
    parameters = _as_list(parameters)
    clip_value = float(clip_value)
    with no_grad():
        for p in parameters:
            g = p.grad
            if g is not None:
                g.clamp_(min=-clip_value, max=clip_value)
