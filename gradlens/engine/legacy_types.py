"""torch's legacy typed constructors (``torch.FloatTensor(array)``, ``torch.LongTensor([1, 2])``), which
older example scripts still call. ``isinstance(x, torch.FloatTensor)`` checks the dtype, as in torch."""

from __future__ import annotations

import numpy as np

from .tensor import Tensor


class _LegacyType(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj._data.dtype == cls._np_dtype

    def __call__(cls, *args):
        from . import tensor as make_tensor

        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            data = args[0]
            if isinstance(data, Tensor):
                data = data._data
            return make_tensor(np.asarray(data, dtype=cls._np_dtype))
        if any(not isinstance(a, (int, np.integer)) for a in args):
            raise TypeError(f"new(): invalid data type '{type(args[0]).__name__}'")
        return Tensor._make(np.zeros(tuple(int(a) for a in args), dtype=cls._np_dtype))


def _legacy(name: str, np_dtype) -> type:
    return _LegacyType(name, (), {"_np_dtype": np.dtype(np_dtype), "__module__": "torch"})


FloatTensor = _legacy("FloatTensor", np.float32)
DoubleTensor = _legacy("DoubleTensor", np.float64)
LongTensor = _legacy("LongTensor", np.int64)
IntTensor = _legacy("IntTensor", np.int32)
BoolTensor = _legacy("BoolTensor", np.bool_)
ByteTensor = _legacy("ByteTensor", np.uint8)

__all__ = ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor"]
