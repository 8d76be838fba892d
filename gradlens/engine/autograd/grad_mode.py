"""Grad mode: whether ops record a graph. Mirrors torch's no_grad / enable_grad / set_grad_enabled /
inference_mode, which save and restore the previous state, nest, and work as decorators."""

from __future__ import annotations

import functools
import inspect
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode",
           "is_inference_mode_enabled"]


class _State(threading.local):
    """Grad mode, per thread as torch's: ``no_grad`` in one thread leaves every other thread recording.

    No ``__slots__``: slots on a ``threading.local`` subclass are shared by all threads; ``__init__`` runs
    again in each thread that first touches the state, so every thread starts with grad mode on."""

    def __init__(self):
        self.enabled = True
        self.inference = False


STATE = _State()


def is_grad_enabled() -> bool:
    """True when ops record the autograd graph."""
    return STATE.enabled


def is_inference_mode_enabled() -> bool:
    """True inside ``inference_mode()``."""
    return STATE.inference


class _DecoratorContextManager:
    """A context manager that can also decorate functions and generator functions."""

    def __call__(self, func):
        if inspect.isclass(func):
            raise TypeError(f"{type(self).__name__} cannot decorate a class; decorate its methods instead")
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def gen_wrapper(*args, **kwargs):
                gen = func(*args, **kwargs)
                try:
                    with self.clone():
                        response = gen.send(None)
                    while True:
                        try:
                            request = yield response
                        except GeneratorExit:
                            with self.clone():
                                gen.close()
                            raise
                        except BaseException as exc:
                            with self.clone():
                                response = gen.throw(exc)
                        else:
                            with self.clone():
                                response = gen.send(request)
                except StopIteration as stop:  # the generator finished: finish too, with its return value
                    return stop.value
            return gen_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.clone():
                return func(*args, **kwargs)
        return wrapper

    def clone(self):
        return self.__class__()


class _NoParamDecoratorContextManager(_DecoratorContextManager):
    """A decorator with or without parentheses, as torch's: ``@no_grad`` is ``@no_grad()``, and so
    ``no_grad(obj)`` wraps any object (calling the wrapper calls ``obj``)."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamDecoratorContextManager):  # noqa: N801 - torch's name
    """Disable graph recording inside the block: results have ``requires_grad=False`` and no grad_fn."""

    def __init__(self):
        self.prev = True

    def __enter__(self):
        self.prev = STATE.enabled
        STATE.enabled = False

    def __exit__(self, *exc):
        STATE.enabled = self.prev
        return False


class enable_grad(_NoParamDecoratorContextManager):  # noqa: N801
    """Enable graph recording inside the block, also inside ``no_grad``."""

    def __init__(self):
        self.prev = True

    def __enter__(self):
        self.prev = STATE.enabled
        STATE.enabled = True

    def __exit__(self, *exc):
        STATE.enabled = self.prev
        return False


class set_grad_enabled(_DecoratorContextManager):  # noqa: N801
    """Set grad mode to ``mode``; takes effect at once (like torch) and is restored on block exit."""

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled(): argument 'mode' must be bool, not {type(mode).__name__}")
        self.prev = STATE.enabled
        self.mode = mode
        STATE.enabled = mode

    def __enter__(self):
        STATE.enabled = self.mode

    def __exit__(self, *exc):
        STATE.enabled = self.prev
        return False

    def clone(self):
        return self.__class__(self.mode)


class inference_mode(_DecoratorContextManager):  # noqa: N801
    """Like no_grad, and tensors made inside are inference tensors (``is_inference()`` is True)."""

    def __new__(cls, mode_or_orig_func=True):
        if isinstance(mode_or_orig_func, bool):
            return super().__new__(cls)
        return cls()(mode_or_orig_func)  # @inference_mode without parentheses, as torch allows

    def __init__(self, mode: bool = True):
        self.mode = mode
        self.prev = (True, False)

    def __call__(self, func):
        if isinstance(func, bool):  # @inference_mode(False) written as a call
            return self.__class__(func)
        return super().__call__(func)

    def __enter__(self):
        self.prev = (STATE.enabled, STATE.inference)
        if self.mode:
            STATE.enabled = False
            STATE.inference = True
        else:
            STATE.inference = False

    def __exit__(self, *exc):
        STATE.enabled, STATE.inference = self.prev
        return False

    def clone(self):
        return self.__class__(self.mode)
