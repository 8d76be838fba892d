"""dtype and device conversions: ``Tensor.to``, ``float()`` / ``double()`` / ``half()`` / ``long()`` /
``int()`` / ``bool()``, ``type`` / ``type_as``, and the ``new_*`` constructors.

As in torch, a conversion that changes nothing returns the tensor itself; a cast between floating types is
differentiable (``ToCopyBackward0``, whose backward casts the gradient back), while a cast to an integer
or bool type gives a tensor that requires no grad. The only device is the CPU.
"""

from __future__ import annotations

import warnings

from .. import _dtype
from .._args import not_a_tensor
from ._core import Node, Tensor, np, op, record

__all__ = ["to", "type_as", "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"]

_LEGACY_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                 "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
                 "uint8": "ByteTensor", "bool": "BoolTensor"}
_BY_LEGACY = {f"torch.{v}": k for k, v in _LEGACY_NAMES.items()}


class ToCopyBackward0(Node):
    __slots__ = ("in_dtype",)
    _saves = False

    def backward(self, g):
        if not isinstance(g, Tensor):
            return (g.astype(self.in_dtype, copy=False),)
        return (_cast(g, _dtype.from_numpy_dtype(self.in_dtype), copy=False),)


def _cast(t: Tensor, dt: _dtype.dtype, copy: bool) -> Tensor:
    """``t`` as dtype ``dt``: itself when nothing changes and no copy is asked for."""
    arr = t._data
    if arr.dtype == dt.np and not copy:
        return t
    out = arr.astype(dt.np, copy=True)
    if dt.is_floating_point:
        res, node = record(out, ToCopyBackward0, t)
        if node is not None:
            node.in_dtype = arr.dtype
        return res
    return Tensor._make(out)


def _device_of(value):
    from ..device import require_available

    return require_available(value)  # torch's CPU-only errors for cuda / mps / an index


def _is_dtype(value) -> bool:
    """An engine or torch dtype, or one of the Python types torch reads as a dtype (``x.to(float)``)."""
    return isinstance(value, _dtype.dtype) or value is float or value is int or value is bool or \
        type(value).__module__.startswith("torch") and type(value).__name__ == "dtype"


@op(function=False)
def to(self: Tensor, *args, dtype=None, device=None, non_blocking: bool = False, copy: bool = False,
       memory_format=None) -> Tensor:
    """Convert dtype and/or device: ``to(dtype)``, ``to(device, dtype)``, ``to(other)``.

    Args:
        args: a dtype; or a device (``'cpu'``, ``device('cpu')``) optionally followed by a dtype; or a tensor
            whose dtype to take.
        dtype: the target dtype (keyword form).
        device: the target device (only the CPU exists).
        copy: return a new tensor even when nothing changes.

    Returns:
        ``self`` when nothing changes and ``copy`` is False, else the converted tensor (differentiable
        between floating dtypes).

    Raises:
        RuntimeError: for a device other than the CPU.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.ones(2).to(torch.float64).dtype
        torch.float64
    """
    target = None if dtype is None else _dtype.to_dtype(dtype)
    if device is not None:
        _device_of(device)
    rest = list(args)
    if rest and isinstance(rest[0], Tensor):  # to(other, non_blocking, copy)
        target = rest.pop(0).dtype
    elif rest and _is_dtype(rest[0]):  # to(dtype, non_blocking, copy)
        target = _dtype.to_dtype(rest.pop(0))
    elif rest:  # to(device, dtype, non_blocking, copy)
        first = rest.pop(0)
        if first is not None:  # None: no device given, as torch allows
            if not isinstance(first, (str, int, np.integer)) and type(first).__name__ != "device":
                raise _to_error(args)
            _device_of(first)
        if rest:
            if not _is_dtype(rest[0]):
                raise _to_error(args)
            target = _dtype.to_dtype(rest.pop(0))
    if rest:
        if isinstance(rest[0], bool):
            rest.pop(0)  # non_blocking: nothing is asynchronous on the CPU
        if rest and isinstance(rest[0], bool):
            copy = rest.pop(0)
    if rest:  # anything left over: x.to(float64, 5)
        raise _to_error(args)
    if target is None:
        target = self.dtype
    return _cast(self, target, copy)


def _to_error(args: tuple) -> TypeError:
    got = ", ".join(type(a).__name__ for a in args)
    return TypeError(f"to() received an invalid combination of arguments - got ({got}), but expected one of: "
                     "(device device=None, dtype dtype=None, bool non_blocking=False, bool copy=False), "
                     "(dtype dtype, bool non_blocking=False, bool copy=False), "
                     "(Tensor other, bool non_blocking=False, bool copy=False)")


def _method(name: str, dt: _dtype.dtype):
    def convert(self: Tensor, *, memory_format=None) -> Tensor:
        return _cast(self, dt, False)

    convert.__name__ = convert.__qualname__ = name
    convert.__doc__ = f"``self.to({dt!r})``."
    op(name, function=False)(convert)
    return convert


_method("float", _dtype.float32)
_method("double", _dtype.float64)
_method("half", _dtype.float16)
_method("long", _dtype.int64)
_method("int", _dtype.int32)
_method("short", _dtype.int16)
_method("char", _dtype.int8)
_method("byte", _dtype.uint8)
_method("bool", _dtype.bool)


@op("type", function=False)
def type_(self: Tensor, dtype=None, non_blocking: bool = False, **kwargs):
    """Without arguments, the legacy type name (``'torch.FloatTensor'``); else ``self`` cast to ``dtype``
    (a dtype or a legacy name such as ``'torch.DoubleTensor'``)."""
    if dtype is None:
        return f"torch.{_LEGACY_NAMES[str(self._data.dtype)]}"
    if isinstance(dtype, str):
        if dtype not in _BY_LEGACY:  # torch takes legacy type names only, not 'float'
            raise ValueError(f"invalid type: {dtype!r}")
        dtype = _BY_LEGACY[dtype]
    elif isinstance(dtype, type):  # torch: "invalid type: 'float'", "invalid type: 'numpy.float32'"
        name = dtype.__qualname__ if dtype.__module__ == "builtins" else f"{dtype.__module__}.{dtype.__qualname__}"
        raise ValueError(f"invalid type: {name!r}")
    elif not _is_dtype(dtype):
        raise TypeError("dtype must be a type, str, or dtype object")
    return _cast(self, _dtype.to_dtype(dtype), False)


@op(function=False)
def type_as(self: Tensor, other: Tensor) -> Tensor:
    """``self`` cast to ``other``'s dtype."""
    try:
        dt = other.dtype
    except AttributeError:
        raise not_a_tensor("type_as", other=other) from None
    return _cast(self, dt, False)


# --- new_* constructors: same dtype (and device) as self unless given -------------------------------------
def _sizes(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _new(self: Tensor, arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _dt(self: Tensor, dtype) -> np.dtype:
    return self._data.dtype if dtype is None else _dtype.to_dtype(dtype).np


@op(function=False)
def new_zeros(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False, **kwargs) -> Tensor:
    """Zeros of ``size`` with this tensor's dtype (unless ``dtype`` is given)."""
    return _new(self, np.zeros(_sizes(size), dtype=_dt(self, dtype)), requires_grad)


@op(function=False)
def new_ones(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False, **kwargs) -> Tensor:
    """Ones of ``size`` with this tensor's dtype (unless ``dtype`` is given)."""
    return _new(self, np.ones(_sizes(size), dtype=_dt(self, dtype)), requires_grad)


@op(function=False)
def new_empty(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False, **kwargs) -> Tensor:
    """An uninitialised tensor of ``size`` with this tensor's dtype (unless ``dtype`` is given)."""
    return _new(self, np.empty(_sizes(size), dtype=_dt(self, dtype)), requires_grad)


@op(function=False)
def new_full(self: Tensor, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False,
             **kwargs) -> Tensor:
    """``fill_value`` everywhere, with this tensor's dtype (unless ``dtype`` is given)."""
    return _new(self, np.full(_sizes((size,)), fill_value, dtype=_dt(self, dtype)), requires_grad)


@op(function=False)
def new_tensor(self: Tensor, data, *, dtype=None, device=None, requires_grad: bool = False,
               **kwargs) -> Tensor:
    """A copy of ``data`` with this tensor's dtype (unless ``dtype`` is given); a leaf."""
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use "
                      "sourceTensor.detach().clone() or sourceTensor.detach().clone().requires_grad_(True), "
                      "rather than tensor.new_tensor(sourceTensor).", UserWarning, stacklevel=2)
        data = data._data
    elif isinstance(data, (list, tuple)):
        from ..creation import _to_nested

        data = _to_nested(data)
    return _new(self, np.array(data, dtype=_dt(self, dtype), copy=True), requires_grad)
