"""Positional arguments of ``gradlens.watch``: the call a newcomer types first is
``gradlens.watch(model, optimizer)``; models and optimizers given positionally are sorted by what they are,
and anything else is refused with a message that shows the right call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sort_positional"]

_RIGHT_CALL = ("gradlens.watch(model, optimizer), gradlens.watch(model=model, optimizer=optimizer), "
               "or @gradlens.watch above a function")


def _is_module(obj: Any) -> bool:
    return hasattr(obj, "modules") and hasattr(obj, "named_parameters")


def _is_optimizer(obj: Any) -> bool:
    return hasattr(obj, "param_groups") and hasattr(obj, "step")


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def sort_positional(args: tuple, model: Any, optimizer: Any) -> tuple[Any, Any, Any]:
    """``(fn, model, optimizer)`` from ``watch``'s positional arguments and its keywords.

    Args:
        args: the positional arguments: models and optimizers (any order, lists of them too), or one
            function to decorate.
        model: the ``model=`` keyword (a module, several, or None).
        optimizer: the ``optimizer=`` keyword.

    Returns:
        The function to decorate (or None), and the models and optimizers (None, one, or a tuple).

    Raises:
        TypeError: a positional argument is neither a module, an optimizer nor (alone) a function.

    Example:
        >>> sort_positional((), None, None)
        (None, None, None)
    """
    if len(args) == 1 and callable(args[0]) and not _is_module(args[0]) and not _is_optimizer(args[0]):
        return args[0], model, optimizer
    models, optimizers = _as_list(model), _as_list(optimizer)
    for i, arg in enumerate(args):
        for obj in _as_list(arg):
            if _is_module(obj):
                models.append(obj)
            elif _is_optimizer(obj):
                optimizers.append(obj)
            else:
                what = "a function" if callable(obj) else type(obj).__name__
                raise TypeError(
                    f"watch() takes modules and optimizers as positional arguments, or decorates a function "
                    f"given alone; received {what} as positional argument {i + 1} of {len(args)}. "
                    f"Call it as {_RIGHT_CALL}."
                )
    return None, _single(models), _single(optimizers)


def _single(items: list) -> Any:
    if not items:
        return None
    return items[0] if len(items) == 1 else tuple(items)
