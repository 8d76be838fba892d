"""Reductions: sum, mean, max/min (all dims, over a dim, and the binary form), amax/amin, argmax/argmin,
var/std, norm, prod, cumsum, logsumexp, softmax and log_softmax.

Node names follow the call form as in torch: ``x.sum()`` is ``SumBackward0`` and any explicit ``dim``
(even ``dim=None``) is ``SumBackward1``; ``x.max()`` is ``MaxBackward1`` and splits the gradient evenly among
tied maxima, while ``x.max(dim)`` is ``MaxBackward0`` and sends it to the returned index. Backward
formulas expand the reduced gradient back over the reduced axes and work on ndarrays and Tensors alike.
"""

from __future__ import annotations

import builtins
import math
import warnings

from .. import _dtype
from ._core import GRAD_MODE, Node, Tensor, np, op, record, wrap_dim
from .pointwise import _keep, _quiet, _rec, _type_name, exp, maximum, minimum, where


class _NoDim:
    """Default ``dim``: tells ``x.sum()`` (``SumBackward0``) from ``x.sum(dim=None)`` (``SumBackward1``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "None"


_NODIM = _NoDim()


# --- helpers ------------------------------------------------------------------------------------------------
def _axes(dim, ndim: int) -> tuple | None:
    """``dim`` (int, tuple, list or None) as sorted non-negative axes; None means every axis.

    Raises torch's IndexError for a dim out of range and RuntimeError for a repeated dim. On a 0-d input
    the only valid dims (0 and -1) reduce nothing, so None is returned.
    """
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if len(dims) == 0:
        return None
    out = []
    for d in dims:
        if isinstance(d, Tensor):
            d = int(d)
        w = wrap_dim(d, ndim)
        if w in out:
            raise RuntimeError(f"dim {w} appears multiple times in the list of dims")
        out.append(w)
    if ndim == 0:
        return None
    return tuple(sorted(out))


def _count(shape: tuple, axes) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axes is None or i in axes:
            n *= s
    return n


def _kd_shape(shape: tuple, axes) -> tuple:
    """The keepdim shape of a reduction of ``shape`` over ``axes`` (None: all)."""
    return tuple(1 if axes is None or i in axes else s for i, s in enumerate(shape))


def _out_shape(shape: tuple, axes, keepdim: bool) -> tuple:
    """The result shape of a reduction of ``shape`` over ``axes`` (None: all)."""
    if keepdim:
        return _kd_shape(shape, axes)
    return tuple(s for i, s in enumerate(shape) if axes is not None and i not in axes)


def _restore(g, shape: tuple, axes, keepdim: bool):
    """A reduced gradient (or result) reshaped to the keepdim shape, so it broadcasts against the input."""
    if keepdim:
        return g
    kd = _kd_shape(shape, axes)
    if tuple(g.shape) == kd:
        return g
    return g.reshape(kd)


def _expand_back(g, shape: tuple, axes, keepdim: bool):
    """Broadcast a reduced gradient back over the reduced ``axes`` of ``shape``."""
    g = _restore(g, shape, axes, keepdim)
    if isinstance(g, Tensor):
        return g if tuple(g.shape) == tuple(shape) else g.expand(shape)
    return np.broadcast_to(g, shape)


def _nd(out) -> np.ndarray:
    return out if out.__class__ is np.ndarray else np.asarray(out)


def _cast(g, np_dtype):
    """A gradient cast back to the input's dtype (reductions computed in another ``dtype=``)."""
    if np_dtype is None or g.dtype == np_dtype or (isinstance(g, Tensor) and g._data.dtype == np_dtype):
        return g
    if isinstance(g, Tensor):
        return _to_copy(g, np_dtype)
    return g.astype(np_dtype)


def _float_only(arr: np.ndarray, message: str) -> None:
    if arr.dtype.kind != "f":
        raise RuntimeError(message)


def _torch_name(arr: np.ndarray) -> str:
    return _type_name(arr)


class ToCopyBackward0(Node):
    """The node of a dtype conversion (``x.to(torch.float64)``, ``softmax(x, dim, dtype=...)``)."""

    __slots__ = ("dtype",)
    _saves = False

    def backward(self, g):
        return (_cast(g, self.dtype),)


def _to_copy(input: Tensor, np_dtype) -> Tensor:
    """``input`` converted to ``np_dtype`` and recorded as ``ToCopyBackward0``."""
    arr = input._data
    if arr.dtype == np_dtype:
        return input
    out = arr.astype(np_dtype)
    if np.dtype(np_dtype).kind != "f":
        return Tensor._make(out)
    res, node = record(out, ToCopyBackward0, input)
    if node is not None:
        node.dtype = arr.dtype
    return res


# --- sum, mean ----------------------------------------------------------------------------------------------
class SumBackward0(Node):
    __slots__ = ("shape", "in_dtype")
    _saves = False

    def backward(self, g):
        return (_cast(_expand_back(g, self.shape, None, False), self.in_dtype),)


class SumBackward1(Node):
    __slots__ = ("shape", "axes", "keepdim", "in_dtype")
    _saves = False

    def backward(self, g):
        return (_cast(_expand_back(g, self.shape, self.axes, self.keepdim), self.in_dtype),)


class MeanBackward0(Node):
    __slots__ = ("shape", "n", "in_dtype")
    _saves = False

    def backward(self, g):
        return (_cast(_expand_back(g / self.n if self.n else g * math.nan, self.shape, None, False),
                      self.in_dtype),)


class MeanBackward1(Node):
    __slots__ = ("shape", "axes", "keepdim", "n", "in_dtype")
    _saves = False

    def backward(self, g):
        gn = g / self.n if self.n else g * math.nan
        return (_cast(_expand_back(gn, self.shape, self.axes, self.keepdim), self.in_dtype),)


def _sum_dtype(arr: np.ndarray, dtype):
    if dtype is not None:
        return _dtype.to_dtype(dtype).np
    if arr.dtype.kind in "biu":
        return np.int64
    return None


def _no_dim_keepdim(name: str):
    return TypeError(f"{name}() received an invalid combination of arguments - got (keepdim=bool, ), but "
                     "expected one of: (*, torch.dtype dtype = None) or (tuple of ints dim, bool keepdim = "
                     "False, *, torch.dtype dtype = None)")


@op()
def sum(input: Tensor, dim=_NODIM, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A001
    """Sum of all elements, or over ``dim``.

    Args:
        input: the tensor to reduce.
        dim: an int or a tuple of ints; omitted: all elements (``SumBackward0``), given: ``SumBackward1``.
        keepdim: keep the reduced dims with size 1.
        dtype: the dtype to sum in (integer and bool inputs sum to int64 by default).

    Returns:
        The reduced tensor.

    Raises:
        IndexError: a dim out of range. RuntimeError: a repeated dim.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.ones(2, 3).sum(1)
        tensor([3., 3.])
    """
    arr = input._data
    if dim is _NODIM:
        if keepdim:
            raise _no_dim_keepdim("sum")
        axes = None
    else:
        axes = _axes(dim, arr.ndim)
    out = _nd(arr.sum(axis=axes, keepdims=keepdim, dtype=_sum_dtype(arr, dtype)))
    if dim is _NODIM:
        res, node = _rec(out, SumBackward0, input)
        if node is not None:
            node.shape = arr.shape
            node.in_dtype = arr.dtype if out.dtype != arr.dtype else None
    else:
        res, node = _rec(out, SumBackward1, input)
        if node is not None:
            node.shape, node.axes, node.keepdim = arr.shape, axes, keepdim
            node.in_dtype = arr.dtype if out.dtype != arr.dtype else None
    return res


@op()
def mean(input: Tensor, dim=_NODIM, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Mean of all elements, or over ``dim`` (an int or a tuple of ints), optionally keeping dims.

    Raises:
        RuntimeError: an integer input without a floating ``dtype``, or a repeated dim.
        IndexError: a dim out of range.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([[1., 2.], [3., 4.]]).mean(0)
        tensor([2., 3.])
    """
    arr = input._data
    if dtype is None and arr.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {_torch_name(arr)}")
    if dim is _NODIM:
        if keepdim:
            raise _no_dim_keepdim("mean")
        axes = None
    else:
        axes = _axes(dim, arr.ndim)
    n = _count(arr.shape, axes)
    np_dtype = None if dtype is None else _dtype.to_dtype(dtype).np
    if n == 0:  # nan, without numpy's "Mean of empty slice" warning
        out = np.full(_out_shape(arr.shape, axes, keepdim), np.nan, dtype=np_dtype or arr.dtype)
    else:
        out = _nd(arr.sum(axis=axes, keepdims=keepdim, dtype=np_dtype)) / n
    in_dtype = arr.dtype if out.dtype != arr.dtype else None
    if dim is _NODIM:
        res, node = _rec(out, MeanBackward0, input)
        if node is not None:
            node.shape, node.n, node.in_dtype = arr.shape, n, in_dtype
    else:
        res, node = _rec(out, MeanBackward1, input)
        if node is not None:
            node.shape, node.axes, node.keepdim, node.n, node.in_dtype = arr.shape, axes, keepdim, n, in_dtype
    return res


# --- max, min, amax, amin, argmax, argmin -------------------------------------------------------------------
def _return_type(name: str) -> type:
    """torch.return_types.<name>: a (values, indices) tuple with named fields."""

    def __new__(cls, values, indices):
        return tuple.__new__(cls, (values, indices))

    def __repr__(self):
        return f"torch.return_types.{name}(\nvalues={self[0]!r},\nindices={self[1]!r})"

    def __getnewargs__(self):
        return (self[0], self[1])

    return type(name, (tuple,), {
        "__slots__": (), "__new__": __new__, "__repr__": __repr__, "__getnewargs__": __getnewargs__,
        "__module__": __name__, "__qualname__": f"_{name.upper()}_RT",
        "values": property(lambda self: self[0], doc="The reduced values."),
        "indices": property(lambda self: self[1], doc="Where the values were found (int64)."),
        "n_fields": 2, "n_sequence_fields": 2, "n_unnamed_fields": 0,
    })


_MAX_RT = _return_type("max")
_MIN_RT = _return_type("min")


class MaxBackward1(Node):
    """``x.max()`` over all elements: the gradient is split evenly among tied maxima."""

    __slots__ = ()

    def backward(self, g):
        x, r = (_a(s) for s in self.saved())
        mask = np.isnan(x) if r != r else x == r  # a nan result: the nans share the gradient
        if not isinstance(g, Tensor):  # exactly 0 off the maxima, even for an inf/nan gradient (as torch)
            out = np.asarray(g * (mask.astype(x.dtype) / int(mask.sum())))
            out[~mask] = 0
            return (out,)
        return (g * _const(mask.astype(x.dtype) / int(mask.sum()), g),)


class MinBackward1(MaxBackward1):
    __slots__ = ()


class MaxBackward0(Node):
    """``x.max(dim)``: the gradient goes to the returned index of each slice."""

    __slots__ = ("shape", "dim", "keepdim")

    def backward(self, g):
        (idx,) = self.saved()
        idx = _a(idx)
        shape, d = self.shape, self.dim
        if len(shape) == 0:
            return (g,)
        if not self.keepdim:
            idx = np.expand_dims(idx, d)
        if isinstance(g, Tensor):
            gk = _restore(g, shape, (d,), self.keepdim)
            hit = np.arange(shape[d]).reshape([-1 if i == d else 1 for i in range(len(shape))]) == idx
            return (where(Tensor._make(hit), gk, 0),)
        gk = g if self.keepdim else np.expand_dims(g, d)
        out = np.zeros(shape, dtype=g.dtype)
        np.put_along_axis(out, idx, gk, axis=d)
        return (out,)


class MinBackward0(MaxBackward0):
    __slots__ = ()


def _const(arr: np.ndarray, like):
    """An ndarray factor as a constant Tensor when ``like`` is a Tensor (so its broadcast is undone)."""
    return Tensor._make(arr) if isinstance(like, Tensor) else arr


def _a(v):
    return v._data if isinstance(v, Tensor) else v


def _reduce_all(input: Tensor, name: str, npfn, node_cls) -> Tensor:
    arr = input._data
    if arr.size == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")
    res, node = _rec(_nd(npfn(arr)), node_cls, input)
    if node is not None:
        node.save(input, res)
    return res


def _check_nonempty_dim(arr: np.ndarray, d: int, name: str) -> None:
    if arr.ndim and arr.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _reduce_dim(input: Tensor, dim, keepdim: bool, name: str, argfn, node_cls, rt) -> tuple:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{name}() received an invalid combination of arguments - got "
                        f"({type(dim).__name__}), but expected one of: (), (Tensor other), "
                        "(int dim, bool keepdim = False)")
    arr = input._data
    d = wrap_dim(int(dim), arr.ndim)
    _check_nonempty_dim(arr, d, name)
    if arr.ndim == 0:
        idx = np.zeros((), dtype=np.int64)
        vals = arr.copy()
    elif argfn is np.argmax:  # max and argmax agree on nan (both pick the first nan)
        idx = _nd(arr.argmax(axis=d, keepdims=keepdim))
        vals = _nd(arr.max(axis=d, keepdims=keepdim))
    else:
        idx = _nd(arr.argmin(axis=d, keepdims=keepdim))
        vals = _nd(arr.min(axis=d, keepdims=keepdim))
    indices = Tensor._make(idx)
    res, node = _rec(vals, node_cls, input)
    if node is not None:
        node.shape, node.dim, node.keepdim = arr.shape, d, keepdim
        node.save(indices)
    return rt(res, indices)


@op()
def max(input: Tensor, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001
    """The largest element; with ``dim``, ``(values, indices)`` of each slice; with a tensor, ``maximum``.

    Args:
        input: the tensor to reduce.
        dim: None (all elements, ``MaxBackward1``: tied maxima share the gradient evenly), an int
            (``MaxBackward0``: the gradient goes to the returned index), or a tensor (``maximum``).
        keepdim: keep the reduced dim with size 1.

    Returns:
        A tensor, or a ``torch.return_types.max`` tuple with ``.values`` and ``.indices`` (int64).

    Raises:
        RuntimeError: no dim on an empty input. IndexError: a dim out of range or of size 0.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([[1., 5.], [7., 2.]]).max(1).indices
        tensor([1, 0])
    """
    if other is not None or isinstance(dim, Tensor):
        return maximum(input, dim if other is None else other)
    if dim is None:
        if keepdim:
            raise _no_dim_keepdim("max")
        return _reduce_all(input, "max", np.max, MaxBackward1)
    return _reduce_dim(input, dim, keepdim, "max", np.argmax, MaxBackward0, _MAX_RT)


@op()
def min(input: Tensor, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001
    """The smallest element; with ``dim``, ``(values, indices)`` of each slice; with a tensor, ``minimum``."""
    if other is not None or isinstance(dim, Tensor):
        return minimum(input, dim if other is None else other)
    if dim is None:
        if keepdim:
            raise _no_dim_keepdim("min")
        return _reduce_all(input, "min", np.min, MinBackward1)
    return _reduce_dim(input, dim, keepdim, "min", np.argmin, MinBackward0, _MIN_RT)


class AmaxBackward0(Node):
    """``amax``: the gradient is split evenly among the tied maxima of each reduced slice."""

    __slots__ = ("shape", "axes", "keepdim")

    def backward(self, g):
        x, r = (_a(s) for s in self.saved())
        rk = r if self.keepdim else r.reshape(_kd_shape(self.shape, self.axes))
        mask = x == rk  # as torch: a nan slice matches nothing, so its gradient is 0 / 0 = nan
        count = mask.sum(axis=self.axes, keepdims=True)
        scale = _quiet(np.divide, mask.astype(x.dtype), count.astype(x.dtype))
        return (_restore(g, self.shape, self.axes, self.keepdim) * _const(scale, g),)


class AminBackward0(AmaxBackward0):
    __slots__ = ()


def _amax(input: Tensor, dim, keepdim: bool, name: str, npfn, node_cls) -> Tensor:
    arr = input._data
    axes = _axes(dim, arr.ndim)
    if axes is None and arr.size == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")
    if axes is not None:
        for d in (dim if isinstance(dim, (tuple, list)) else (dim,)):  # torch names the dim as given
            if arr.shape[wrap_dim(d, arr.ndim)] == 0:
                raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    res, node = _rec(_nd(npfn(arr, axis=axes, keepdims=keepdim)), node_cls, input)
    if node is not None:
        node.shape, node.axes, node.keepdim = arr.shape, axes, keepdim
        node.save(input, res)
    return res


@op()
def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """The largest elements over ``dim`` (int or tuple; ``()`` for all dims); ties share the gradient."""
    return _amax(input, dim, keepdim, "amax", np.max, AmaxBackward0)


@op()
def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """The smallest elements over ``dim`` (int or tuple; ``()`` for all dims); ties share the gradient."""
    return _amax(input, dim, keepdim, "amin", np.min, AminBackward0)


def _arg(input: Tensor, dim, keepdim: bool, name: str, npfn) -> Tensor:
    arr = input._data
    if dim is None:
        if arr.size == 0:
            raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        out = np.asarray(npfn(arr), dtype=np.int64)
        if keepdim:
            out = out.reshape((1,) * arr.ndim)
        return Tensor._make(out)
    d = wrap_dim(dim, arr.ndim)
    _check_nonempty_dim(arr, d, name)
    if arr.ndim == 0:
        return Tensor._make(np.zeros((), dtype=np.int64))
    return Tensor._make(_nd(npfn(arr, axis=d, keepdims=keepdim)).astype(np.int64, copy=False))


@op()
def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (of the flattened input, or of each slice along ``dim``)."""
    return _arg(input, dim, keepdim, "argmax", np.argmax)


@op()
def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the smallest element (of the flattened input, or of each slice along ``dim``)."""
    return _arg(input, dim, keepdim, "argmin", np.argmin)


# --- var, std -----------------------------------------------------------------------------------------------
class VarBackward0(Node):
    __slots__ = ("shape", "axes", "keepdim", "denom")

    def backward(self, g):
        (x,) = self.saved()
        return (_var_grad(g, x, self.shape, self.axes, self.keepdim, self.denom),)


class StdBackward0(Node):
    __slots__ = ("shape", "axes", "keepdim", "denom")

    def backward(self, g):
        x, r = self.saved()
        zero = _a(r) == 0
        if isinstance(g, Tensor) or isinstance(r, Tensor):
            gv = _keep(g / (r * 2), ~zero)
        else:
            gv = np.where(zero, 0, _quiet(np.divide, g, r * 2))
        return (_var_grad(gv, x, self.shape, self.axes, self.keepdim, self.denom),)


def _var_grad(g, x, shape, axes, keepdim, denom):
    """d var / d x = 2 / (N - correction) * g * (x - mean(x))."""
    scale = 2.0 / denom if denom != 0 else math.inf
    gk = _restore(g, shape, axes, keepdim)
    if isinstance(x, Tensor):
        m = mean(x, dim=axes if axes is not None else tuple(range(x.ndim)), keepdim=True) if x.ndim else x
        return gk * scale * (x - m)
    if x.size == 0:
        return np.zeros_like(x)
    m = x.mean(axis=axes, keepdims=True) if x.ndim else x
    return _quiet(lambda: gk * scale * (x - m))


def _correction(dim, unbiased, correction):
    """torch's overloads: ``var(x, unbiased)``, ``var(x, dim, unbiased, keepdim)``, ``correction=``."""
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    if unbiased is not None and correction is not None:
        raise RuntimeError("Cannot specify both unbiased and correction")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


def _var(input: Tensor, dim, unbiased, keepdim, correction, name: str, node_cls) -> Tensor:
    arr = input._data
    _float_only(arr, "std and var only support floating point and complex dtypes")
    dim, c = _correction(dim, unbiased, correction)
    axes = _axes(dim, arr.ndim)
    n = _count(arr.shape, axes)
    denom = n - c
    if denom <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less than the "
                      "reduction factor (input numel divided by output numel).", UserWarning, stacklevel=3)
    if arr.ndim == 0 or arr.size == 0:
        fill = np.nan if arr.size == 0 or not np.isfinite(arr) else 0.0  # 0-d: (x - x)**2, nan for inf or nan
        out = _quiet(np.divide, np.full(_out_shape(arr.shape, axes, keepdim), fill, arr.dtype),
                     arr.dtype.type(builtins.max(denom, 0)))
    else:
        dev = arr - arr.sum(axis=axes, keepdims=True) / n
        dev *= dev
        ss = _nd(dev.sum(axis=axes, keepdims=keepdim))
        out = ss / float(denom) if denom > 0 else _quiet(np.divide, ss, arr.dtype.type(0))
    if node_cls is StdBackward0:
        out = np.sqrt(out)
    res, node = _rec(out.astype(arr.dtype, copy=False), node_cls, input)
    if node is not None:
        node.shape, node.axes, node.keepdim, node.denom = arr.shape, axes, keepdim, denom
        if node_cls is StdBackward0:
            node.save(input, res)
        else:
            node.save(input)
    return res


@op()
def var(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Variance over ``dim`` (all dims by default), divided by ``N - correction``.

    Args:
        input: a floating tensor.
        dim: an int, a tuple of ints or None; a bool in its place is ``unbiased`` (``var(x, False)``).
        unbiased: the older spelling of ``correction`` (True: 1, False: 0).
        keepdim: keep the reduced dims with size 1.
        correction: the degrees-of-freedom correction (default 1, Bessel's).

    Returns:
        The variance (``VarBackward0``); nan with a warning when ``N - correction <= 0``.

    Raises:
        RuntimeError: an integer input.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([1., 2., 3., 4.]).var()
        tensor(1.6667)
    """
    return _var(input, dim, unbiased, keepdim, correction, "var", VarBackward0)


@op()
def std(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Standard deviation over ``dim`` (all dims by default), corrected as ``var``."""
    return _var(input, dim, unbiased, keepdim, correction, "std", StdBackward0)


class VarMeanBackward0(Node):
    """``torch.var_mean``: one node with two outputs, (var, mean)."""

    __slots__ = ("shape", "axes", "keepdim", "denom", "n")
    num_outputs = 2

    def backward(self, grads):
        g_var, g_mean = grads
        saved = self.saved()
        x = saved[0]
        if len(saved) == 2 and g_var is not None:  # std_mean: d std = d var / (2 std), 0 where std == 0
            r = saved[1]
            zero = _a(r) == 0
            if isinstance(g_var, Tensor) or isinstance(r, Tensor):
                g_var = _keep(g_var / (r * 2), ~zero)
            else:
                g_var = np.where(zero, 0, _quiet(np.divide, g_var, r * 2))
        out = None
        if g_var is not None:
            out = _var_grad(g_var, x, self.shape, self.axes, self.keepdim, self.denom)
        if g_mean is not None:
            gm = g_mean / self.n if self.n else g_mean * math.nan
            gm = _expand_back(gm, self.shape, self.axes, self.keepdim)
            out = gm if out is None else out + gm
        return (out,)


class StdMeanBackward0(VarMeanBackward0):
    __slots__ = ()


def _var_mean(input: Tensor, dim, unbiased, keepdim, correction, name: str, node_cls) -> tuple:
    arr = input._data
    _float_only(arr, "std and var only support floating point and complex dtypes")
    stat = _var(Tensor._make(arr), dim, unbiased, keepdim, correction, name.split("_")[0],
                StdBackward0 if node_cls is StdMeanBackward0 else VarBackward0)._data
    dim, _c = _correction(dim, unbiased, correction)
    axes = _axes(dim, arr.ndim)
    n = _count(arr.shape, axes)
    if n == 0:
        m = np.full(_out_shape(arr.shape, axes, keepdim), np.nan, dtype=arr.dtype)
    else:
        m = _nd(_nd(arr.sum(axis=axes, keepdims=keepdim)) / n)
    if not (GRAD_MODE.enabled and input._rg):
        return Tensor._make(stat), Tensor._make(m)
    node = node_cls((input._edge(),))
    node.shape, node.axes, node.keepdim, node.denom, node.n = arr.shape, axes, keepdim, n - _c, n
    node._omd = ((stat.shape, stat.dtype), (m.shape, m.dtype))
    first = Tensor._make(stat, node, 0)
    if node_cls is StdMeanBackward0:
        node.save(input, first)
    else:
        node.save(input)
    return first, Tensor._make(m, node, 1)


@op(method=False)
def var_mean(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> tuple:
    """``(var(input, dim), mean(input, dim))`` from one node (``VarMeanBackward0``); arguments as ``var``."""
    return _var_mean(input, dim, unbiased, keepdim, correction, "var_mean", VarMeanBackward0)


@op(method=False)
def std_mean(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> tuple:
    """``(std(input, dim), mean(input, dim))`` from one node (``StdMeanBackward0``); arguments as ``std``."""
    return _var_mean(input, dim, unbiased, keepdim, correction, "std_mean", StdMeanBackward0)


# --- norm ---------------------------------------------------------------------------------------------------
class LinalgVectorNormBackward0(Node):
    __slots__ = ("shape", "axes", "keepdim", "ord", "in_dtype")

    def backward(self, g):
        x, r = self.saved()
        p = self.ord
        if p == 0:
            return (None,)
        shape, axes, kd = self.shape, self.axes, self.keepdim
        gk = _restore(g, shape, axes, kd)
        rk = _restore(r, shape, axes, kd)
        xa, ra = _a(x), _a(rk)
        sgn = np.sign(xa)
        if p == 1:
            out = gk * _const(sgn, gk)
        elif p == 2:
            out = x * _keep(_div(gk, rk), ra != 0)
        elif math.isinf(p):
            mask = (np.abs(xa) == ra)
            count = mask.sum(axis=axes, keepdims=True).astype(xa.dtype)
            out = gk * _const((sgn * mask / count).astype(xa.dtype), gk)
        else:
            absx = _abs(x)
            if p < 1:
                scaled = _keep(sgn * _pow(absx, p - 1), xa != 0)
                out = scaled * gk * _pow(rk, 1 - p)
            elif p < 2:
                out = (sgn * _pow(absx, p - 1)) * _keep(_div(gk, _pow(rk, p - 1)), ra != 0)
            else:
                out = (x * _pow(absx, p - 2)) * _keep(_div(gk, _pow(rk, p - 1)), ra != 0)
        return (_cast(out, self.in_dtype),)


def _div(a, b):
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return a / b
    return _quiet(np.divide, a, b)


def _abs(v):
    return v.abs() if isinstance(v, Tensor) else np.abs(v)


def _pow(v, e):
    return v ** e if isinstance(v, Tensor) else _quiet(np.power, v, e)


def _vector_norm(arr: np.ndarray, p, axes, keepdim: bool) -> np.ndarray:
    a = np.abs(arr)
    if p == 2:
        return np.sqrt(np.sum(arr * arr, axis=axes, keepdims=keepdim))
    if p == 1:
        return np.sum(a, axis=axes, keepdims=keepdim)
    if math.isinf(p):
        if a.size == 0:
            name = "inf" if p > 0 else "-inf"
            if axes is None:
                raise RuntimeError(f"linalg.vector_norm cannot compute the {name} norm on an empty tensor because "
                                   "the operation does not have an identity")
            for d in axes if isinstance(axes, (tuple, list)) else (axes,):
                if a.shape[d] == 0:  # (torch's message lacks the space before "because")
                    raise RuntimeError(f"linalg.vector_norm cannot compute the {name} norm on the dimension "
                                       f"{d % a.ndim}because this dimension is empty and the operation does not "
                                       "have an identity")
        return (np.max if p > 0 else np.min)(a, axis=axes, keepdims=keepdim)
    if p == 0:
        return np.sum(a != 0, axis=axes, keepdims=keepdim).astype(arr.dtype)
    return _quiet(lambda: np.sum(a ** p, axis=axes, keepdims=keepdim) ** (1.0 / p))


@op()
def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """The vector ``p``-norm over ``dim`` (all elements by default); node ``LinalgVectorNormBackward0``.

    Args:
        input: a floating tensor.
        p: 2 or ``"fro"`` (default), 1, ``inf``, ``-inf``, 0 or any other number.
        dim: an int, a tuple of ints or None.
        keepdim: keep the reduced dims with size 1.
        dtype: compute in this dtype (the gradient comes back in the input's dtype).

    Returns:
        The norm. Its gradient is 0 where the norm is 0 (p = 2), and split evenly among ties for ``inf``.

    Raises:
        RuntimeError: an integer input. NotImplementedError: matrix norms (``"nuc"``).

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([3., 4.]).norm()
        tensor(5.)
    """
    arr = input._data
    if arr.dtype.kind != "f":
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{_torch_name(arr)}")
    if p is None or p == "fro":
        if p == "fro" and isinstance(dim, (tuple, list)) and len(dim) > 2:
            raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {' '.join(map(str, dim))}")
        p = 2
    elif isinstance(p, str):
        raise NotImplementedError(f"gradlens.engine: norm(p={p!r}) is not supported; only vector norms are")
    axes = _axes(dim, arr.ndim)
    src = arr if dtype is None else arr.astype(_dtype.to_dtype(dtype).np)
    out = _nd(_vector_norm(src, p, axes, keepdim))
    res, node = _rec(out, LinalgVectorNormBackward0, input)
    if node is not None:
        node.shape, node.axes, node.keepdim, node.ord = arr.shape, axes, keepdim, p
        node.in_dtype = arr.dtype if out.dtype != arr.dtype else None
        node.save(input if dtype is None else Tensor._make(src), res)
    return res


# --- prod, cumsum -------------------------------------------------------------------------------------------
def _prod_others(x: np.ndarray, axis: int) -> np.ndarray:
    """Product of every other element along ``axis`` (exact with zeros: exclusive cumulative products)."""
    if x.size == 0:
        return np.zeros_like(x)
    ones = np.ones_like(np.take(x, [0], axis=axis))
    left = np.concatenate([ones, np.cumprod(x, axis=axis)], axis=axis)
    right = np.flip(np.concatenate([ones, np.cumprod(np.flip(x, axis), axis=axis)], axis=axis), axis)
    n = x.shape[axis]
    return np.take(left, range(n), axis=axis) * np.take(right, range(1, n + 1), axis=axis)


class ProdBackward0(Node):
    __slots__ = ("shape", "in_dtype")

    def backward(self, g):
        x, r = self.saved()
        if isinstance(g, Tensor) or isinstance(x, Tensor):
            return (_cast(g * (r / x), self.in_dtype),)
        if x.ndim == 0:
            return (_cast(g * np.ones_like(x), self.in_dtype),)
        others = _prod_others(x.reshape(-1), 0).reshape(x.shape)
        return (_cast(g * others, self.in_dtype),)


class ProdBackward1(Node):
    __slots__ = ("shape", "dim", "keepdim", "in_dtype")

    def backward(self, g):
        x, r = self.saved()
        axes = (self.dim,) if x.ndim else None
        gk = _restore(g, self.shape, axes, self.keepdim)
        if isinstance(g, Tensor) or isinstance(x, Tensor):
            return (_cast(gk * (_restore(r, self.shape, axes, self.keepdim) / x), self.in_dtype),)
        if x.ndim == 0:
            return (_cast(g * np.ones_like(x), self.in_dtype),)
        return (_cast(gk * _prod_others(x, self.dim), self.in_dtype),)


@op()
def prod(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product of all elements, or over one ``dim``."""
    arr = input._data
    dt = _sum_dtype(arr, dtype)
    if dim is None:
        out = _nd(np.prod(arr, dtype=dt))
        res, node = _rec(out, ProdBackward0, input)
        if node is not None:
            node.shape = arr.shape
    else:
        if not isinstance(dim, (int, np.integer)):
            raise TypeError("prod() received an invalid combination of arguments - got "
                            f"({type(dim).__name__}), but expected one of: (*, torch.dtype dtype = None) "
                            "or (int dim, bool keepdim = False, *, torch.dtype dtype = None)")
        d = wrap_dim(dim, arr.ndim)
        out = _nd(np.prod(arr, axis=d if arr.ndim else None, keepdims=keepdim, dtype=dt))
        res, node = _rec(out, ProdBackward1, input)
        if node is not None:
            node.shape, node.dim, node.keepdim = arr.shape, d, keepdim
    if node is not None:
        node.in_dtype = arr.dtype if out.dtype != arr.dtype else None
        node.save(input if dt is None else Tensor._make(arr.astype(dt)), res)
    return res


class CumsumBackward0(Node):
    __slots__ = ("dim", "in_dtype")
    _saves = False

    def backward(self, g):
        d = self.dim
        if g.ndim == 0:
            return (_cast(g, self.in_dtype),)
        return (_cast(_rev_cumsum(g, d), self.in_dtype),)


@op()
def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Cumulative sum along ``dim`` (int and bool inputs give int64)."""
    arr = input._data
    d = wrap_dim(dim, arr.ndim)
    dt = _sum_dtype(arr, dtype)
    if arr.ndim == 0:
        out = arr.astype(dt) if dt is not None else arr.copy()
    else:
        out = np.cumsum(arr, axis=d, dtype=dt)
    res, node = _rec(out, CumsumBackward0, input)
    if node is not None:
        node.dim = d
        node.in_dtype = arr.dtype if out.dtype != arr.dtype else None
    return res


def _rev_cumsum(v, d: int):
    """``sum_{j >= i} v_j`` along ``d`` (ndarray or Tensor)."""
    if isinstance(v, Tensor):
        return v.sum(d, keepdim=True) - v.cumsum(d) + v
    return np.flip(np.cumsum(np.flip(v, d), axis=d), d)


class CumprodBackward0(Node):
    __slots__ = ("dim", "in_dtype")

    def backward(self, g):
        x, r = self.saved()
        d = self.dim
        if g.ndim == 0:
            return (_cast(g, self.in_dtype),)
        if isinstance(g, Tensor) or isinstance(x, Tensor):
            return (_cast(_rev_cumsum(g * r, d) / x, self.in_dtype),)
        if (x != 0).all():
            return (_cast(_rev_cumsum(g * r, d) / x, self.in_dtype),)
        # with zeros: grad_i = prod_{k<i} x_k * S_i, where S_i = g_i + x_{i+1} * S_{i+1}
        xm, gm = np.moveaxis(x, d, 0), np.moveaxis(np.asarray(g, dtype=x.dtype), d, 0)
        n = xm.shape[0]
        left = np.concatenate([np.ones_like(xm[:1]), np.cumprod(xm[:-1], axis=0)], axis=0)
        acc = np.zeros_like(xm)
        acc[n - 1] = gm[n - 1]
        for i in range(n - 2, -1, -1):
            acc[i] = gm[i] + xm[i + 1] * acc[i + 1]
        return (_cast(np.moveaxis(left * acc, 0, d), self.in_dtype),)


@op()
def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Cumulative product along ``dim`` (int and bool inputs give int64); exact gradients with zeros."""
    arr = input._data
    d = wrap_dim(dim, arr.ndim)
    dt = _sum_dtype(arr, dtype)
    if arr.ndim == 0:
        out = arr.astype(dt) if dt is not None else arr.copy()
    else:
        out = np.cumprod(arr, axis=d, dtype=dt)
    res, node = _rec(out, CumprodBackward0, input)
    if node is not None:
        node.dim = d
        node.in_dtype = arr.dtype if out.dtype != arr.dtype else None
        node.save(input if dt is None else Tensor._make(arr.astype(dt)), res)
    return res


# --- logsumexp, softmax, log_softmax ------------------------------------------------------------------------
class LogsumexpBackward0(Node):
    __slots__ = ("shape", "axes", "keepdim")

    def backward(self, g):
        x, r = self.saved()
        gk = _restore(g, self.shape, self.axes, self.keepdim)
        rk = _restore(r, self.shape, self.axes, self.keepdim)
        if isinstance(x, Tensor) or isinstance(rk, Tensor) or isinstance(gk, Tensor):
            return (gk * exp(x - rk),)
        return (gk * _quiet(np.exp, x - rk),)


def _float_input(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype.kind == "f" else arr.astype(_dtype.get_default_dtype().np)


@op()
def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(input), dim))`` computed without overflow."""
    arr = _float_input(input._data)
    axes = _axes(dim, arr.ndim)
    if arr.ndim == 0:
        out = arr.copy()
    elif arr.size == 0:
        out = np.full(_out_shape(arr.shape, axes, keepdim), -np.inf, dtype=arr.dtype)
    else:
        m = np.max(arr, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0).astype(arr.dtype, copy=False)
        s = _quiet(lambda: np.log(np.sum(np.exp(arr - m), axis=axes, keepdims=True)) + m)
        out = s if keepdim else s.reshape(_out_shape(arr.shape, axes, False))
    res, node = _rec(_nd(out), LogsumexpBackward0, input)
    if node is not None:
        node.shape, node.axes, node.keepdim = arr.shape, axes, keepdim
        node.save(input, res)
    return res


class SoftmaxBackward0(Node):
    __slots__ = ("dim",)

    def backward(self, g):
        (y,) = self.saved()
        d = self.dim
        if isinstance(g, Tensor) or isinstance(y, Tensor):
            if y.ndim == 0:
                return (g * 0,)
            return (y * (g - (g * y).sum(d, keepdim=True)),)
        if y.ndim == 0:
            return (np.zeros_like(y) * g,)
        return (y * (g - np.sum(g * y, axis=d, keepdims=True)),)


class LogSoftmaxBackward0(Node):
    __slots__ = ("dim",)

    def backward(self, g):
        (y,) = self.saved()
        d = self.dim
        if isinstance(g, Tensor) or isinstance(y, Tensor):
            if y.ndim == 0:
                return (g * 0,)
            return (g - exp(y) * g.sum(d, keepdim=True),)
        if y.ndim == 0:
            return (np.zeros_like(y) * g,)
        return (g - np.exp(y) * np.sum(g, axis=d, keepdims=True),)


def _softmax_input(input: Tensor, dim, dtype, name: str) -> tuple:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{name}(): argument 'dim' must be int, not {type(dim).__name__}")
    if dtype is not None:
        input = _to_copy(input, _dtype.to_dtype(dtype).np)
    arr = input._data
    d = wrap_dim(dim, arr.ndim)  # torch checks the dim before the dtype
    if arr.dtype.kind != "f" and arr.size:  # torch returns an empty non-float input without a kernel
        raise NotImplementedError(f"\"{name}_lastdim_kernel_impl\" not implemented for '{_torch_name(arr)}'")
    return input, arr, d


def _softmax_np(arr: np.ndarray, d: int, log: bool) -> np.ndarray:
    if arr.ndim == 0:
        return _softmax_np(arr.reshape(1), 0, log).reshape(())
    if arr.size == 0:
        return arr.copy()
    return _quiet(_softmax_run, arr, d, log)


def _softmax_run(arr: np.ndarray, d: int, log: bool) -> np.ndarray:
    z = arr - arr.max(axis=d, keepdims=True)
    if log:
        e = np.exp(z)
        z -= np.log(e.sum(axis=d, keepdims=True))
        return z
    np.exp(z, out=z)
    z /= z.sum(axis=d, keepdims=True)
    return z


@op()
def softmax(input: Tensor, dim, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x), dim)``, shifted by the max for stability; ``dtype`` casts the input first.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([0., 0.]).softmax(0)
        tensor([0.5000, 0.5000])
    """
    input, arr, d = _softmax_input(input, dim, dtype, "softmax")
    res, node = _rec(_softmax_np(arr, d, False), SoftmaxBackward0, input)
    if node is not None:
        node.dim = d
        node.save(res)
    return res


@op()
def log_softmax(input: Tensor, dim, dtype=None) -> Tensor:
    """``log(softmax(x, dim))`` computed as ``x - logsumexp(x, dim)``; ``dtype`` casts the input first."""
    input, arr, d = _softmax_input(input, dim, dtype, "log_softmax")
    res, node = _rec(_softmax_np(arr, d, True), LogSoftmaxBackward0, input)
    if node is not None:
        node.dim = d
        node.save(res)
    return res
