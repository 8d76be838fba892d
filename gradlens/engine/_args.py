"""torch's errors for an argument of the wrong type, shared by the engine's functions and ``Tensor`` methods.

The engine checks argument types only where a wrong type fails anyway (an ``AttributeError`` caught, a
branch already taken for the unusual value), so a call with the right types pays nothing for the check.
These helpers build the error with torch's type and words: ``mm(): argument 'mat2' must be Tensor, not
int``. torch adds the argument's position, which differs between ``torch.mm(a, b)`` and ``a.mm(b)``; the
engine runs both through one function and so leaves the position out.
"""

from __future__ import annotations

__all__ = ["wrong_type", "not_a_tensor", "check_bool"]


def wrong_type(fn: str, arg: str, value, expected: str) -> TypeError:
    """``TypeError("{fn}(): argument '{arg}' must be {expected}, not {type of value}")``."""
    return TypeError(f"{fn}(): argument '{arg}' must be {expected}, not {type(value).__name__}")


def not_a_tensor(fn: str, **args) -> TypeError:
    """torch's TypeError naming the first of ``args`` (in order) that is not a Tensor.

    Example:
        >>> str(not_a_tensor("mm", input=None, mat2=None))
        "mm(): argument 'input' must be Tensor, not NoneType"
    """
    from .tensor import Tensor

    for arg, value in args.items():
        if not isinstance(value, Tensor):
            return wrong_type(fn, arg, value, "Tensor")
    return TypeError(f"{fn}(): unsupported argument types {tuple(type(v).__name__ for v in args.values())}")


def check_bool(fn: str, arg: str, value) -> None:
    """Raise torch's TypeError unless ``value`` is a Python bool (torch refuses ints, None, numpy bools)."""
    if value.__class__ is not bool:
        raise wrong_type(fn, arg, value, "bool")
