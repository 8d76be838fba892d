"""Torch-named dtypes over numpy dtypes, and torch's type-promotion rule.

torch's promotion differs from numpy's in one way that matters for parity: a 0-d tensor or a Python
scalar never widens a dimensioned tensor of the same category (float32 tensor * 0-d float64 tensor is
float32), while it does raise the category (int tensor * 2.5 is float32, the default float dtype).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dtype", "float32", "float", "float64", "double", "float16", "half", "int64", "long", "int32", "int",
    "int16", "int8", "uint8", "bool", "get_default_dtype", "set_default_dtype", "from_numpy_dtype",
    "to_dtype", "result_dtype", "promote_types",
]

_BOOL, _INT, _FLOAT = 0, 1, 2


class dtype:  # noqa: N801 - torch's name
    """A tensor element type, named as torch names it (``torch.float32``)."""

    __slots__ = ("np", "_name", "is_floating_point", "is_signed", "itemsize", "_category")

    def __init__(self, np_dtype, name: str):
        self.np = np.dtype(np_dtype)
        self._name = name
        kind = self.np.kind
        self.is_floating_point = kind == "f"
        self.is_signed = kind in "fi"
        self.itemsize = self.np.itemsize
        self._category = _FLOAT if kind == "f" else (_BOOL if kind == "b" else _INT)

    @property
    def is_complex(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"torch.{self._name}"

    def __reduce__(self):
        return (to_dtype, (self._name,))


float32 = float = dtype(np.float32, "float32")  # noqa: A001 - torch's names
float64 = double = dtype(np.float64, "float64")
float16 = half = dtype(np.float16, "float16")
int64 = long = dtype(np.int64, "int64")
int32 = int = dtype(np.int32, "int32")  # noqa: A001
int16 = dtype(np.int16, "int16")
int8 = dtype(np.int8, "int8")
uint8 = dtype(np.uint8, "uint8")
bool = dtype(np.bool_, "bool")  # noqa: A001

_ALL = (float32, float64, float16, int64, int32, int16, int8, uint8, bool)
_BY_NP = {d.np: d for d in _ALL}
_BY_NAME = {d._name: d for d in _ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "long": int64, "int": int32})

_default_float = float32


def get_default_dtype() -> dtype:
    """The dtype of floating tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(d: dtype) -> None:
    """Set the default floating dtype, as ``torch.set_default_dtype`` does (float32 or float64)."""
    global _default_float
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def from_numpy_dtype(np_dtype) -> dtype:
    """The torch-named dtype for a numpy dtype; raises TypeError for types torch has no name for."""
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(
            f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported types are: "
            "float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        ) from None


def to_dtype(d) -> dtype:
    """Accept a gradlens dtype, a torch-style name, a numpy dtype or a Python type, and return a dtype."""
    if d.__class__ is dtype:
        return d
    if isinstance(d, str):
        try:
            return _BY_NAME[d.removeprefix("torch.")]
        except KeyError:
            raise TypeError(f"unknown dtype name {d!r}; expected one of {sorted(_BY_NAME)}") from None
    if d is _pyfloat:  # torch: Python's float is a double, whatever the default dtype
        return float64
    if d is _pyint:
        return int64
    if d is _pybool:
        return bool
    mod = type(d).__module__
    if mod.startswith("torch"):  # a real torch dtype handed to the native engine
        return _BY_NAME[str(d).removeprefix("torch.")]
    return from_numpy_dtype(d)


import builtins as _builtins  # noqa: E402

_pyfloat, _pyint, _pybool = _builtins.float, _builtins.int, _builtins.bool


def _scalar_dtype(value) -> dtype:
    """The dtype torch gives a tensor made from one Python scalar."""
    if isinstance(value, _pybool):
        return bool
    if isinstance(value, _pyint):
        return int64
    return _default_float


def promote_types(a: dtype, b: dtype) -> dtype:
    """torch.promote_types: the smallest dtype both can be cast to."""
    if a is b:
        return a
    if a._category != b._category:  # int64 with float32 is float32 in torch (numpy says float64)
        return a if a._category > b._category else b
    return from_numpy_dtype(np.promote_types(a.np, b.np))


def result_dtype(a_dtype: dtype, a_dim: _pyint, b) -> dtype:
    """The result dtype of a binary op between a tensor (dtype, ndim) and ``b`` (tensor or scalar).

    Implements torch's three-tier rule: dimensioned tensors > 0-d tensors > Python scalars, where a lower
    tier only matters when it belongs to a higher category (bool < integer < floating).
    """
    from .tensor import Tensor

    if isinstance(b, Tensor):
        b_dtype, b_dim = b.dtype, b.data.ndim
        if b_dtype is a_dtype:
            return a_dtype
        if (a_dim == 0) == (b_dim == 0):
            return promote_types(a_dtype, b_dtype)
        # one is 0-d: it only counts when its category is higher
        hi, lo = (a_dtype, b_dtype) if a_dim else (b_dtype, a_dtype)
        if lo._category > hi._category:
            return lo
        return hi
    # Python scalar
    cat = _FLOAT if isinstance(b, _pyfloat) else (_BOOL if isinstance(b, _pybool) else _INT)
    if cat <= a_dtype._category:
        return a_dtype
    return _default_float if cat == _FLOAT else int64
