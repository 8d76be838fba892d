"""Reductions: sum and mean over all dims or over ``dim`` (with ``keepdim``).

torch names the all-dims form ``SumBackward0`` / ``MeanBackward0`` and the ``dim=`` form ``SumBackward1`` /
``MeanBackward1``; the node records the input shape and the reduced axes to expand the gradient back.
"""

from __future__ import annotations

from .. import _dtype
from ._core import Node, Tensor, dims_arg, np, op, record


def _expand_back(g, shape: tuple, axes, keepdim: bool):
    """Broadcast a reduced gradient back over the reduced ``axes`` of ``shape``."""
    if axes is None:
        axes = tuple(range(len(shape)))
    if not keepdim and axes:
        if isinstance(g, np.ndarray):
            g = np.expand_dims(g, axes)
        else:
            g = g.reshape(tuple(1 if i in axes else s for i, s in enumerate(shape)))
    if isinstance(g, np.ndarray):
        return np.broadcast_to(g, shape)
    return g.expand(shape)


class SumBackward0(Node):
    __slots__ = ("shape",)
    _saves = False

    def backward(self, g):
        return (_expand_back(g, self.shape, None, False),)


class SumBackward1(Node):
    __slots__ = ("shape", "axes", "keepdim")
    _saves = False

    def backward(self, g):
        return (_expand_back(g, self.shape, self.axes, self.keepdim),)


class MeanBackward0(Node):
    __slots__ = ("shape", "n")
    _saves = False

    def backward(self, g):
        return (_expand_back(g / self.n, self.shape, None, False),)


class MeanBackward1(Node):
    __slots__ = ("shape", "axes", "keepdim", "n")
    _saves = False

    def backward(self, g):
        return (_expand_back(g / self.n, self.shape, self.axes, self.keepdim),)


def _sum_dtype(arr: np.ndarray, dtype):
    if dtype is not None:
        return _dtype.to_dtype(dtype).np
    if arr.dtype.kind in "biu":
        return np.int64
    return None


@op()
def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A001
    """Sum of all elements, or over ``dim`` (an int or a tuple of ints)."""
    arr = input._data
    axes = dims_arg(dim, arr.ndim) if arr.ndim else None
    out = np.sum(arr, axis=axes, keepdims=keepdim, dtype=_sum_dtype(arr, dtype))
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)
    if dim is None:
        res, node = record(out, SumBackward0, input)
        if node is not None:
            node.shape = arr.shape
    else:
        res, node = record(out, SumBackward1, input)
        if node is not None:
            node.shape, node.axes, node.keepdim = arr.shape, axes, keepdim
    return res


@op()
def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Mean of all elements, or over ``dim``; integer inputs raise as in torch."""
    arr = input._data
    if dtype is None and arr.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. "
            f"Got: {_dtype.from_numpy_dtype(arr.dtype)._name.capitalize()}")
    axes = dims_arg(dim, arr.ndim) if arr.ndim else None
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(np.mean(arr, axis=axes, keepdims=keepdim,
                                 dtype=None if dtype is None else _dtype.to_dtype(dtype).np))
    n = arr.size if axes is None else int(np.prod([arr.shape[a] for a in axes]))
    if dim is None:
        res, node = record(out, MeanBackward0, input)
        if node is not None:
            node.shape, node.n = arr.shape, n
    else:
        res, node = record(out, MeanBackward1, input)
        if node is not None:
            node.shape, node.axes, node.keepdim, node.n = arr.shape, axes, keepdim, n
    return res
