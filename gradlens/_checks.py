"""Argument checks shared by gradlens's public API, so that every function refuses bad input the same way.

Each check returns the value (normalised where that is safe) or raises with a message that says what was
expected, what was received and, where there is one, how to fix it. The exception type follows one rule:
a value of the wrong kind (a string, None, a list where a number is expected) raises ``TypeError``; a
value of the right kind that is out of range, not whole, not finite or not one of the choices (``0``,
``-1``, ``1.5``, ``nan``, ``inf``, ``True`` as a count) raises ``ValueError``, as torch's own checks of
integer options do (``DataLoader(batch_size=...)``).
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Iterable
from typing import Any

__all__ = ["shown", "check_int", "check_seconds", "check_choice", "check_type", "check_names"]

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60


def shown(value: Any) -> str:
    """A short ``repr`` of a received value for an error message (huge strings and lists are cut)."""
    return _REPR.repr(value)


def _fix(fix: str) -> str:
    return f" Fix: {fix}" if fix else ""


def check_int(value: Any, what: str, *, minimum: int, meaning: str = "", fix: str = "") -> int:
    """``value`` as an int if it is a whole number >= ``minimum`` (bools refused).

    Args:
        value: the received value.
        what: how the caller names the argument, e.g. ``"watch(accumulation=...)"``.
        minimum: the smallest accepted value; 1 reads "a positive int", others "an int >= minimum".
        meaning: what the number means, shown in parentheses after the contract.
        fix: how to fix a bad value.

    Raises:
        TypeError: ``value`` is not a number.
        ValueError: ``value`` is a number but not an int >= ``minimum`` (a bool, a float, nan, inf).
    """
    if type(value) is int and value >= minimum:  # the common case, without the slower ABC check below
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if meaning:
        expected += f" ({meaning})"
    error = ValueError if isinstance(value, numbers.Real) else TypeError
    raise error(f"{what} expects {expected}; received {shown(value)}.{_fix(fix)}")


def check_seconds(value: Any, what: str, *, fix: str = "") -> float:
    """``value`` as a float if it is a finite number of seconds > 0.

    Raises:
        TypeError: ``value`` is not a number (or is a bool).
        ValueError: ``value`` is not finite or not positive.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return float(value)
        error: type[Exception] = ValueError
    else:
        error = TypeError
    raise error(f"{what} expects a finite number of seconds > 0; received {shown(value)}.{_fix(fix)}")


def check_choice(value: Any, what: str, choices: tuple, *, fix: str = "") -> Any:
    """``value`` if it is one of ``choices`` (and of the same type: ``1`` is not ``True``).

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    if any(isinstance(value, type(c)) and value == c for c in choices):
        return value
    raise ValueError(f"{what} expects one of {choices}; received {shown(value)}.{_fix(fix)}")


def check_type(value: Any, what: str, types: type | tuple[type, ...], expected: str, *, fix: str = "") -> Any:
    """``value`` if it is an instance of ``types`` (described to the user as ``expected``).

    Raises:
        TypeError: it is not.
    """
    if isinstance(value, types):
        return value
    raise TypeError(f"{what} expects {expected}; received {type(value).__name__} {shown(value)}.{_fix(fix)}")


def check_names(value: Any, what: str, allowed: tuple[str, ...], expected: str, *, fix: str = "") -> tuple:
    """A tuple of names from a single name or an iterable of names, each one of ``allowed``.

    Args:
        value: a str (one name) or an iterable of them.
        what: how the caller names the argument.
        allowed: the accepted names.
        expected: what the names are, e.g. ``"rule slugs"``.
        fix: how to fix a bad value.

    Raises:
        TypeError: ``value`` is neither a str nor an iterable.
        ValueError: a name is not one of ``allowed``.
    """
    if isinstance(value, str):
        names: tuple = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        names = tuple(value)
    else:
        raise TypeError(f"{what} expects {expected} from {allowed}, one as a str or several in a list; "
                        f"received {type(value).__name__} {shown(value)}.{_fix(fix)}")
    unknown = [n for n in names if not isinstance(n, str) or n not in allowed]
    if unknown:
        raise ValueError(f"{what} expects {expected} from {allowed}; received unknown {shown(unknown)}."
                         f"{_fix(fix)}")
    return names
