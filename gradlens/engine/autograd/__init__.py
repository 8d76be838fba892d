"""torch.autograd's surface for the native engine: ``backward``, ``grad``, grad-mode switches, and the
``graph`` submodule (Node, saved_tensors_hooks)."""

from __future__ import annotations

import operator

import numpy as np

from . import graph
from .anomaly_mode import detect_anomaly, set_detect_anomaly
from .engine import run_backward
from .grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .graph import Node

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "inference_mode", "is_inference_mode_enabled", "graph", "Node", "detect_anomaly", "set_detect_anomaly"]


def _flag(value) -> bool:
    """A boolean argument as torch's engine reads it (an unsigned byte): a bool or an integer in 0..255;
    another type raises TypeError ("'str' object cannot be interpreted as an integer"), a value out of
    range OverflowError, as torch does."""
    if value.__class__ is bool:
        return value
    i = operator.index(value)
    if i > 255:
        raise OverflowError("unsigned byte integer is greater than maximum")
    if i < 0:
        raise OverflowError("unsigned byte integer is less than minimum")
    return bool(i)


_TENSOR = None


def _tensor_cls():
    """``Tensor`` (imported on first use: the tensor module imports this package; a function-level import
    statement costs ~1.5k instructions a call, a third of a tiny op)."""
    global _TENSOR
    if _TENSOR is None:
        from ..tensor import Tensor as _TENSOR
    return _TENSOR


def _as_seq(x) -> list:
    if x is None:
        return []
    if isinstance(x, _TENSOR or _tensor_cls()):
        return [x]
    return list(x)


def _seed(out, g, i: int, create_graph: bool):
    """The starting gradient for output ``out``: given, or ones for a one-element output."""
    Tensor = _TENSOR or _tensor_cls()  # noqa: N806 - the class
    if g is None:
        if out._data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        arr = np.empty(out._data.shape, dtype=out._data.dtype)  # np.ones, without its Python wrapper
        arr.fill(1)
        return Tensor._make(arr) if create_graph else arr
    if not isinstance(g, Tensor):
        if isinstance(g, (int, float)):
            g = Tensor._make(np.full(out._data.shape, g, dtype=out._data.dtype))
        else:
            raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
    if g._data.shape != out._data.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of torch.Size({list(g._data.shape)}) "
                           f"and output[{i}] has a shape of torch.Size({list(out._data.shape)}).")
    return g if create_graph else g._data


def _roots(outputs, grad_outputs, create_graph: bool):
    roots = []
    for i, out in enumerate(outputs):
        if not out._rg:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        g = _seed(out, grad_outputs[i] if i < len(grad_outputs) else None, i, create_graph)
        if out._grad_fn is not None:
            roots.append((out._grad_fn, out._output_nr, g))
        else:
            roots.append((out._grad_accumulator(), 0, g))
    return roots


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate the gradients of ``tensors`` w.r.t. the graph leaves into their ``.grad``."""
    outputs = _as_seq(tensors)
    grads = _as_seq(grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    roots = _roots(outputs, grads, create_graph)
    retain_graph, create_graph = _flag(retain_graph), _flag(create_graph)
    if inputs is not None:
        inputs = _as_seq(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        captured = run_backward(roots, retain_graph, create_graph, capture=[t._edge() for t in inputs])
        for t, g in zip(inputs, captured):
            if g is not None:
                t._accumulate(g, create_graph)
        return
    run_backward(roots, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False) -> tuple:
    """Return the gradients of ``outputs`` w.r.t. ``inputs`` without touching any ``.grad``."""
    from ..tensor import Tensor

    outs = _as_seq(outputs)
    ins = _as_seq(inputs)
    if not ins:
        raise RuntimeError("grad requires non-empty inputs.")
    for t in ins:
        if not isinstance(t, Tensor):
            raise TypeError(f"inputs must be Tensors, got {type(t).__name__}")
        if not t._rg:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    roots = _roots(outs, _as_seq(grad_outputs), create_graph)
    retain_graph, create_graph, allow_unused = _flag(retain_graph), _flag(create_graph), _flag(allow_unused)
    edges = [t._edge() for t in ins]
    captured = run_backward(roots, retain_graph, create_graph, capture=edges)
    result = []
    for i, (t, g) in enumerate(zip(ins, captured)):
        if g is None:
            if materialize_grads:
                result.append(Tensor._make(np.zeros_like(t._data)))
                continue
            if not allow_unused:
                raise RuntimeError(f"The differentiated Tensor at index {i} appears to not have been used in the "
                                   "graph. Set allow_unused=True if this is the desired behavior.")
            result.append(None)
            continue
        if isinstance(g, Tensor):
            result.append(g)
        else:
            result.append(Tensor._make(np.asarray(g, dtype=t._data.dtype)))
    return tuple(result)

