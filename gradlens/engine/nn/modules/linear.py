"""``Identity`` and ``Linear`` (torch.nn.modules.linear)."""

from __future__ import annotations

import math
from typing import Any

from ... import _dtype
from ...creation import empty
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """A placeholder that returns its input unchanged (arguments are ignored)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    Initialised as torch does: ``kaiming_uniform_(weight, a=sqrt(5))`` and bias from
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))``.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.nn.Linear(4, 2)(torch.ones(3, 4)).grad_fn.name()
        'AddmmBackward0'
    """

    __constants__ = ["in_features", "out_features"]

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        dt = None if dtype is None else _dtype.to_dtype(dtype)
        self.weight = Parameter(empty((out_features, in_features), dtype=dt))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        cls = type(self)
        if cls is not Linear and (hasattr(cls, "weight") or hasattr(cls, "bias")):  # e.g. a property
            return F.linear(input, self.weight, self.bias)
        d = self.__dict__
        params = d["_parameters"]
        # ``self.weight`` as Python resolves it (an instance attribute, e.g. set by a parametrization, wins),
        # without Module.__getattr__'s call for registered parameters (2 of the ~15 calls of a tiny layer)
        weight = d["weight"] if "weight" in d else params["weight"] if "weight" in params else self.weight
        bias = d["bias"] if "bias" in d else params["bias"] if "bias" in params else self.bias
        return F.linear(input, weight, bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
