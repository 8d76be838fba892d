"""All differentiable and non-differentiable ops of the native engine, in one registry (``OPS``).

Each submodule registers its ops with ``@op``; importing this package attaches every op marked as a method
to ``Tensor`` (``x.sum()``) and lets the engine export every op marked as a function (``torch.sum(x)``).
"""

from __future__ import annotations

import importlib

from ..tensor import Tensor
from ._core import OPS

# submodules, each one family of ops; a missing one is a bug, so import errors propagate
_FAMILIES = ("arith", "pointwise", "reduce", "shape", "linalg", "index", "inplace", "convert", "nnops", "conv",
             "pool", "extra", "diag_ops")

for _name in _FAMILIES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # families are added one at a time while the engine grows
        if exc.name != f"{__name__}.{_name}":
            raise


def _refuse_notimplemented(name: str, fn):
    """``x.add(obj)`` / ``torch.add(x, obj)``: the operator protocol's ``NotImplemented`` (which ``x + obj``
    needs) becomes torch's ``TypeError`` when the op is called by name."""
    import functools

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        res = fn(*args, **kwargs)
        if res is NotImplemented:
            other = args[1] if len(args) > 1 else kwargs.get("other")
            raise TypeError(f"{name}(): argument 'other' (position 1) must be Tensor or Number, not "
                            f"{type(other).__name__}")
        return res
    return checked


# the binary arithmetic ops double as Tensor.__add__ etc. and so return NotImplemented for foreign types
for _name in ("add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide"):
    _fn, _method, _function = OPS[_name]
    OPS[_name] = (_refuse_notimplemented(_name, _fn), _method, _function)


def _attach_methods() -> None:
    for name, (fn, method, _function) in OPS.items():
        if method and name not in Tensor.__dict__:
            setattr(Tensor, name, fn)


_attach_methods()

__all__ = ["OPS"]
