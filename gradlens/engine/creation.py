"""Tensor creation (``tensor``, ``zeros``, ``randn``, ...) and the random generator behind ``manual_seed``.

Random values come from numpy's generator, so they differ from torch's for the same seed; parity tests copy
weights between engines instead of relying on seeds.
"""

from __future__ import annotations

import numpy as np

from . import _dtype
from .tensor import Tensor

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange", "linspace", "eye",
           "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "full_like", "empty_like",
           "rand_like", "randn_like", "randint_like", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "default_generator", "Generator", "normal", "scalar_tensor", "from_values"]


class Generator:
    """A random generator (torch.Generator's surface over numpy's PCG64)."""

    def __init__(self, device="cpu"):
        self._seed = 0
        self.rng = np.random.default_rng(0)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self) -> int:
        return self._seed

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy % (2**63))
        self.manual_seed(s)
        return s

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state) -> None:
        self.rng.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the engine's default random generator."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def _rng(generator) -> np.random.Generator:
    return (generator or default_generator).rng


def _float_dtype(dtype) -> _dtype.dtype:
    return _dtype.get_default_dtype() if dtype is None else _dtype.to_dtype(dtype)


def _sizes(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s)
        if not isinstance(s, (int, np.integer)):
            raise TypeError(f"size must be a tuple of ints, but got an element of type {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(int(s))
    return tuple(out)


def _finish(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data) -> _dtype.dtype:
    """The dtype torch infers for nested Python data: bool < int64 < default float."""
    if isinstance(data, Tensor):
        return data.dtype
    if isinstance(data, np.ndarray):
        return _dtype.from_numpy_dtype(data.dtype)
    if isinstance(data, np.generic):
        return _dtype.from_numpy_dtype(data.dtype) if data.dtype.kind != "f" else _dtype.get_default_dtype() \
            if data.dtype == np.float32 else _dtype.float64
    kinds = set()
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, Tensor):
            kinds.add(x._data.dtype.kind)
        elif isinstance(x, np.generic):
            kinds.add("F" if x.dtype == np.float64 else x.dtype.kind)
        elif isinstance(x, bool):
            kinds.add("b")
        elif isinstance(x, int):
            kinds.add("i")
        elif isinstance(x, float):
            kinds.add("f")
        else:
            raise TypeError(f"Could not infer dtype of {type(x).__name__}")
    if "F" in kinds:  # a numpy float64 scalar makes the tensor float64, as in torch
        return _dtype.float64
    if "f" in kinds:
        return _dtype.get_default_dtype()
    if "i" in kinds or "u" in kinds:
        return _dtype.int64
    if "b" in kinds:
        return _dtype.bool
    return _dtype.get_default_dtype()  # empty list


def _to_nested(data):
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_to_nested(x) for x in data]
    return data


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, numbers, ndarrays or tensors)."""
    dt = _infer_dtype(data) if dtype is None else _dtype.to_dtype(dtype)
    if requires_grad and not dt.is_floating_point:
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
    arr = np.array(_to_nested(data), dtype=dt.np)
    return _finish(arr, requires_grad)


def scalar_tensor(s, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return tensor(float(s), dtype=dtype or _dtype.get_default_dtype(), requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with an ndarray or tensor of the same dtype."""
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype is _dtype.to_dtype(dtype) else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or _dtype.to_dtype(dtype).np == data.dtype):
        _dtype.from_numpy_dtype(data.dtype)
        return Tensor._make(data)
    return tensor(data, dtype=dtype)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``ndarray`` (its dtype is kept: float64 stays float64)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    _dtype.from_numpy_dtype(ndarray.dtype)
    return Tensor._make(ndarray)


from_values = as_tensor


def zeros(*size, dtype=None, device=None, requires_grad: bool = False, out=None, layout=None) -> Tensor:
    return _finish(np.zeros(_sizes(size), dtype=_float_dtype(dtype).np), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False, out=None, layout=None) -> Tensor:
    return _finish(np.ones(_sizes(size), dtype=_float_dtype(dtype).np), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False, memory_format=None, layout=None) -> Tensor:
    return _finish(np.empty(_sizes(size), dtype=_float_dtype(dtype).np), requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dt = _infer_dtype(fill_value) if not isinstance(fill_value, Tensor) else fill_value.dtype
    else:
        dt = _dtype.to_dtype(dtype)
    return _finish(np.full(_sizes((size,)), fill_value, dtype=dt.np), requires_grad)


def _like(t: Tensor, dtype):
    return t.dtype if dtype is None else _dtype.to_dtype(dtype)


def zeros_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False, memory_format=None):
    return _finish(np.zeros(input._data.shape, dtype=_like(input, dtype).np), requires_grad)


def ones_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False, memory_format=None):
    return _finish(np.ones(input._data.shape, dtype=_like(input, dtype).np), requires_grad)


def empty_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False, memory_format=None):
    return _finish(np.empty(input._data.shape, dtype=_like(input, dtype).np), requires_grad)


def full_like(input: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False,
              memory_format=None):
    return _finish(np.full(input._data.shape, fill_value, dtype=_like(input, dtype).np), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive); int64 when all arguments are ints, else float."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if dtype is None:
        dt = _dtype.int64 if all(isinstance(v, int) and not isinstance(v, bool) for v in vals) \
            else _dtype.get_default_dtype()
    else:
        dt = _dtype.to_dtype(dtype)
    if vals[2] == 0:
        raise RuntimeError("step must be nonzero")
    arr = np.arange(vals[0], vals[1], vals[2], dtype=np.float64 if dt.is_floating_point else None).astype(dt.np)
    return _finish(arr, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return _finish(np.linspace(float(start), float(end), int(steps)).astype(_float_dtype(dtype).np),
                   requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _finish(np.eye(n, m, dtype=_float_dtype(dtype).np), requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = _float_dtype(dtype)
    return _finish(_rng(generator).random(_sizes(size)).astype(dt.np), requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = _float_dtype(dtype)
    return _finish(_rng(generator).standard_normal(_sizes(size)).astype(dt.np), requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Random integers in ``[low, high)``: ``randint(high, size)`` or ``randint(low, high, size)``."""
    if size is None:
        if isinstance(high, (tuple, list)):
            low, high, size = 0, low, high
        else:
            raise TypeError("randint() missing required argument 'size'")
    dt = _dtype.int64 if dtype is None else _dtype.to_dtype(dtype)
    return _finish(_rng(generator).integers(low, high, size=_sizes((size,))).astype(dt.np), requires_grad)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = _dtype.int64 if dtype is None else _dtype.to_dtype(dtype)
    return _finish(_rng(generator).permutation(n).astype(dt.np), requires_grad)


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(*input.shape, dtype=_like(input, dtype), requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(*input.shape, dtype=_like(input, dtype), requires_grad=requires_grad)


def randint_like(input: Tensor, low, high=None, *, dtype=None, device=None,
                 requires_grad: bool = False) -> Tensor:
    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(input.shape), dtype=_like(input, dtype), requires_grad=requires_grad)


def normal(mean, std, size=None, *, generator=None, dtype=None) -> Tensor:
    """Samples from N(mean, std) (scalar mean/std with ``size``, or tensors broadcast together)."""
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    shape = _sizes((size,)) if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    dt = _float_dtype(dtype if dtype is not None else (mean.dtype if isinstance(mean, Tensor) else None))
    return Tensor._make((m + s * _rng(generator).standard_normal(shape)).astype(dt.np))
