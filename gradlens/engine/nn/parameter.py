"""``Parameter`` (a Tensor that a Module registers as learnable) and ``Buffer`` (a Tensor it registers as
state), mirroring ``torch.nn.parameter``."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["Parameter", "Buffer", "is_lazy"]


class Parameter(Tensor):
    """A leaf Tensor that, assigned as a Module attribute, is registered in the module's parameters.

    It shares storage (and version counter) with ``data`` and requires grad by default; the results of
    ops on it are plain Tensors, as in torch.

    Args:
        data: the tensor to wrap (an empty float tensor when None).
        requires_grad: whether the parameter requires gradient. Default: True.

    Example:
        >>> import gradlens.engine as torch
        >>> p = torch.nn.Parameter(torch.ones(2))
        >>> p.requires_grad, isinstance(p, torch.Tensor)
        (True, True)
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            from .. import _dtype

            arr = np.empty((0,), dtype=_dtype.get_default_dtype().np)
            vbox = [0]
        elif isinstance(data, Tensor):
            arr = data._data
            vbox = data._vbox
        else:
            raise TypeError(f"Parameter(): argument 'data' must be Tensor, not {type(data).__name__}")
        p = object.__new__(cls)
        Tensor._init(p, arr, None, False)
        p._vbox = vbox
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + _plain_repr(self)

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self._data.copy(), self._rg))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(Tensor._make(self._data.copy()), self._rg)
        if self._grad is not None:
            result._grad = Tensor._make(self._grad._data.copy())
        memo[id(self)] = result
        return result


def _plain_repr(t: Tensor) -> str:
    from .._format import format_tensor

    text = format_tensor(t)
    return text.removeprefix("Parameter containing:\n")


def _rebuild_parameter(arr, requires_grad):
    return Parameter(Tensor._make(arr), requires_grad)


class _BufferMeta(type):
    def __instancecheck__(cls, instance) -> bool:
        if cls is Buffer:
            return isinstance(instance, Tensor) and getattr(instance, "_is_buffer", False)
        return super().__instancecheck__(instance)


class Buffer(metaclass=_BufferMeta):
    """Marks a Tensor as a buffer when assigned as a Module attribute (``torch.nn.Buffer``).

    Args:
        data: the buffer tensor.
        persistent: whether the buffer is part of the module's ``state_dict``.
    """

    def __new__(cls, data: Tensor | None = None, *, persistent: bool = True):
        if data is None:
            from .. import _dtype

            data = Tensor._make(np.empty((0,), dtype=_dtype.get_default_dtype().np))
        t = data.detach() if data._rg else data
        t._is_buffer = True
        t._buffer_persistent = persistent
        return t


def is_lazy(param) -> bool:
    """Lazy (uninitialized) parameters do not exist in the native engine."""
    return False
