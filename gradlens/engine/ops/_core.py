"""The machinery every op shares: recording a node, broadcasting back, coercing operands, and the one
registry of ops that the engine exports, attaches to ``Tensor`` and the parity tests iterate.

An op is a function plus, when differentiable, one ``Node`` subclass named as torch names its node. The
function computes the result with numpy and calls ``record`` to attach the node; the node's ``backward``
maps the output gradient to one gradient per input edge. Backward formulas use only arithmetic operators
and the helpers below, so the same formula runs on ndarrays (ordinary backward) and on Tensors
(``create_graph=True``, where the backward itself is recorded).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _dtype
from .._args import not_a_tensor
from ..autograd.grad_mode import STATE as GRAD_MODE
from ..autograd.graph import NONE_EDGE, Node
from ..tensor import Tensor

__all__ = ["Node", "Tensor", "record", "op", "OPS", "sum_to", "as_tensor_operand", "binary_operands",
           "is_tensor", "GRAD_MODE", "np", "broadcast_error", "wrap_dim", "dims_arg", "not_a_tensor",
           "MulBackward1", "DivBackward1", "AddBackward1", "scalar_op", "mul_scalar", "div_scalar", "add_scalar"]

# name -> (function, attach as Tensor method?, export as engine function?)
OPS: dict[str, tuple[Callable, bool, bool]] = {}


def op(name: str | None = None, *, method: bool = True, function: bool = True, aliases: tuple = ()):
    """Register an op in the single table; ``method``/``function`` say where torch offers it."""
    def deco(fn):
        for n in (name or fn.__name__, *aliases):
            OPS[n] = (fn, method, function)
        return fn
    return deco


def record(out: np.ndarray, node_cls: type[Node], *inputs: Tensor):
    """Wrap ``out`` as a Tensor; when grad mode is on and an input requires grad, attach a new
    ``node_cls`` whose edges lead to ``inputs``. Returns ``(tensor, node or None)``."""
    if GRAD_MODE.enabled:
        # one edge per input, written out for speed (this is the hottest code of every forward): a view
        # whose base changed in place gets its fresh grad_fn, a leaf that requires grad its AccumulateGrad
        edges = []
        needed = False
        for t in inputs:
            fn = t._grad_fn
            base = t._base
            if base is not None and "_rebased" in base.__dict__:
                fn = t._view_grad_fn()
            if fn is not None:
                edges.append((fn, t._output_nr))
                needed = True
            elif t._rg:
                acc = t._acc
                edges.append((acc if acc is not None else t._grad_accumulator(), 0))
                needed = True
            else:
                edges.append(NONE_EDGE)
        if needed:
            if out.__class__ is not _ndarray:  # numpy gives scalars for 0-d results
                out = np.asarray(out)
            node = node_cls(tuple(edges))
            node._omd = (out.shape, out.dtype)
            t = _new(Tensor)  # Tensor._make inlined
            t._data = out
            t._grad_fn = node
            t._rg = True
            t._vbox = [0]
            return t, node
    return Tensor._make(out), None


_new = object.__new__
_add_reduce = np.add.reduce
_ndarray = np.ndarray


# --- a tensor and a Python number, as ATen's Scalar overloads record them ---------------------------------
# A Python ``t * 2`` records MulBackward0 (torch wraps the number into a tensor), but torch's own backward
# formulas multiply by a C++ number, which records mul.Scalar's node: MulBackward1. Backward formulas use
# ``mul_scalar`` / ``add_scalar`` / ``div_scalar`` where torch's formula has a number, so that a
# create_graph backward records the nodes torch records.
class MulBackward1(Node):
    """``tensor * scalar`` as ATen's ``mul.Scalar`` records it (one edge; no saved tensor)."""

    __slots__ = ("other",)
    _saves = False

    def backward(self, g):
        return (mul_scalar(g, self.other),)


class DivBackward1(Node):
    """``tensor / scalar`` as ATen's ``div.Scalar`` records it."""

    __slots__ = ("other",)
    _saves = False

    def backward(self, g):
        return (div_scalar(g, self.other),)


class AddBackward1(Node):
    """``tensor + scalar`` as ATen's ``add.Scalar`` records it."""

    __slots__ = ("other",)
    _saves = False

    def backward(self, g):
        return (g,)


def scalar_op(t: Tensor, other, node_cls) -> Tensor:
    """``t (*|/|+) other`` for a Python scalar, recorded as ATen's Scalar overload (MulBackward1, ...)."""
    x = t._data
    dt = x.dtype
    o = dt.type(other)
    out = np.asarray(
        x * o if node_cls is MulBackward1 else x / o if node_cls is DivBackward1 else x + o, dtype=dt
    )
    res, node = record(out, node_cls, t)
    if node is not None:
        node.other = float(other)
    return res


def mul_scalar(v, other):
    """``v * other`` for a number ``other``: MulBackward1 on a Tensor, plain arithmetic on an ndarray."""
    return scalar_op(v, other, MulBackward1) if isinstance(v, Tensor) else v * other


def div_scalar(v, other):
    """``v / other`` for a number ``other``: DivBackward1 on a Tensor, plain arithmetic on an ndarray."""
    return scalar_op(v, other, DivBackward1) if isinstance(v, Tensor) else v / other


def add_scalar(v, other):
    """``v + other`` for a number ``other``: AddBackward1 on a Tensor, plain arithmetic on an ndarray."""
    return scalar_op(v, other, AddBackward1) if isinstance(v, Tensor) else v + other


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def sum_to(g, shape: tuple):
    """Reduce a broadcast gradient ``g`` back to ``shape`` (sum leading dims, then size-1 dims)."""
    gshape = g.shape
    if gshape == shape or tuple(gshape) == tuple(shape):  # the first test settles tuples, no copies
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    if isinstance(g, np.ndarray):
        # np.add.reduce is what ndarray.sum runs, without numpy's Python wrapper in between
        return _add_reduce(g, axes).reshape(shape) if axes else g.reshape(shape)
    return g.sum(dim=axes).reshape(shape) if axes else g.reshape(shape)


def as_tensor_operand(x, like: Tensor) -> Tensor:
    """A Python scalar / array operand as a Tensor (scalars keep torch's 'weak' dtype rule via callers)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor._make(x)
    raise TypeError(f"unsupported operand type: expected a Tensor or a number, got {type(x).__name__}")


def binary_operands(a: Tensor, b):
    """Arrays for ``a`` and ``b`` cast to torch's result dtype; ``b`` may be a Python scalar."""
    ad = a._data
    if isinstance(b, Tensor):
        bd = b._data
        if ad.dtype is bd.dtype or ad.dtype == bd.dtype:
            return ad, bd
        dt = _dtype.result_dtype(_dtype.from_numpy_dtype(ad.dtype), ad.ndim, b).np
        return ad.astype(dt, copy=False), bd.astype(dt, copy=False)
    if isinstance(b, np.generic):  # np.float64 subclasses float but is not a 'weak' Python scalar
        b = b.item()
    if isinstance(b, (bool, int, float)):
        if ad.dtype.kind == "f" or (isinstance(b, int) and ad.dtype.kind in "iu") or isinstance(b, bool):
            return ad, b
        dt = _dtype.result_dtype(_dtype.from_numpy_dtype(ad.dtype), ad.ndim, b).np
        return ad.astype(dt, copy=False), b
    if isinstance(b, np.ndarray):
        return binary_operands(a, Tensor._make(b))
    # the operator protocol needs NotImplemented (``x + obj`` then tries ``obj.__radd__``); an op called
    # by name raises ``not_a_tensor(name, other=b)`` when it gets it
    return NotImplemented, None


def broadcast_error(a_shape: tuple, b_shape: tuple) -> RuntimeError:
    """torch's message for shapes that do not broadcast."""
    n = max(len(a_shape), len(b_shape))
    pa = (1,) * (n - len(a_shape)) + tuple(a_shape)
    pb = (1,) * (n - len(b_shape)) + tuple(b_shape)
    for i in range(n - 1, -1, -1):
        if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1:
            return RuntimeError(f"The size of tensor a ({pa[i]}) must match the size of tensor b ({pb[i]}) at "
                                f"non-singleton dimension {i}")
    return RuntimeError(f"shapes {tuple(a_shape)} and {tuple(b_shape)} cannot be broadcast")


def wrap_dim(dim: int, ndim: int) -> int:
    """Normalise a possibly negative dim with torch's IndexError."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def dims_arg(dim, ndim: int) -> tuple | None:
    """``dim`` as a tuple of non-negative axes (None stays None: all dims)."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return None
        return tuple(wrap_dim(d, ndim) for d in dim)
    return (wrap_dim(dim, ndim),)


NONE = NONE_EDGE
