"""Tensor creation (``tensor``, ``zeros``, ``randn``, ...) and the random generator behind ``manual_seed``.

Random values come from numpy's generator, so they differ from torch's for the same seed; parity tests copy
weights between engines instead of relying on seeds.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _dtype
from ._args import wrong_type
from .device import require_available
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


def _dtype_arg(fn: str, dtype) -> _dtype.dtype:
    """``dtype`` as an engine dtype; torch's TypeError for a string or any other non-dtype."""
    if dtype.__class__ is _dtype.dtype:
        return dtype
    if not isinstance(dtype, str):
        try:
            return _dtype.to_dtype(dtype)
        except (TypeError, KeyError):
            if type(dtype).__name__ == "dtype":  # a torch dtype the engine lacks (complex64, bfloat16, ...)
                raise TypeError(f"{fn}(): dtype {dtype} is not supported by gradlens.engine; use one of "
                                f"{', '.join(repr(d) for d in _dtype._ALL)}") from None
    raise wrong_type(fn, "dtype", dtype, "torch.dtype")


def _float_dtype(dtype, fn: str) -> _dtype.dtype:
    return _dtype.get_default_dtype() if dtype is None else _dtype_arg(fn, dtype)


def _sizes(size, fn: str = "size") -> tuple:
    if not size:
        raise TypeError(f'{fn}() missing 1 required positional arguments: "size"')
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


def _finish(arr: np.ndarray, requires_grad: bool | None, fn: str) -> Tensor:
    if requires_grad.__class__ is not bool and requires_grad is not None:  # factories take None, as torch's
        raise wrong_type(fn, "requires_grad", requires_grad, "bool")
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _input_shape(fn: str, input) -> tuple:
    """The shape of a ``*_like`` function's ``input``; torch's TypeError when it is not a Tensor."""
    try:
        return input._data.shape
    except AttributeError:
        raise wrong_type(fn, "input", input, "Tensor") from None


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
        elif isinstance(x, (str, bytes)):
            raise TypeError(f"new(): invalid data type '{type(x).__name__}'")
        else:
            raise RuntimeError(f"Could not infer dtype of {type(x).__name__}")
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
    """A new tensor holding a copy of ``data`` (nested lists, numbers, ndarrays or tensors).

    Raises:
        TypeError: for a string, a ``dtype`` that is not a dtype, or a ``requires_grad`` that is not a bool.
        RuntimeError: for data whose dtype cannot be inferred (None, arbitrary objects), or
            ``requires_grad=True`` with a non-floating dtype.
        ValueError: for an integer too large for int64 (torch: "Overflow when unpacking long long").
    """
    return _tensor("tensor", data, dtype, requires_grad)


def _tensor(fn: str, data, dtype, requires_grad) -> Tensor:
    dt = _infer_dtype(data) if dtype is None else _dtype_arg(fn, dtype)
    if requires_grad.__class__ is not bool:
        raise wrong_type(fn, "requires_grad", requires_grad, "bool")
    if requires_grad and not dt.is_floating_point:
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
    try:
        arr = np.array(_to_nested(data), dtype=dt.np)
    except OverflowError as exc:
        raise _overflow_error(exc, dt) from None
    return _finish(arr, requires_grad, fn)


def _overflow_error(exc: OverflowError, dt: _dtype.dtype) -> Exception:
    """torch's error for a Python int that does not fit: ValueError beyond int64, RuntimeError beyond a
    narrower integer dtype; an int too large even for a float stays an OverflowError, as in torch."""
    msg = str(exc)
    if "C long" in msg:  # numpy: "Python int too large to convert to C long"
        return ValueError("Overflow when unpacking long long")
    if "out of bounds" in msg:  # numpy: "Python integer 300 out of bounds for uint8"
        return RuntimeError(f"value cannot be converted to type {dt._name} without overflow")
    return exc


def scalar_tensor(s, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _tensor("scalar_tensor", float(s), dtype or _dtype.get_default_dtype(),
                   False if requires_grad is None else requires_grad)


def _as_tensor(data, dtype=None) -> Tensor:
    if dtype is not None:
        dtype = _dtype_arg("as_tensor", dtype)
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype is dtype else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or dtype.np == data.dtype):
        _dtype.from_numpy_dtype(data.dtype)
        return Tensor._make(data)
    return _tensor("as_tensor", data, dtype, False)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``ndarray`` (its dtype is kept: float64 stays float64)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    _dtype.from_numpy_dtype(ndarray.dtype)
    return Tensor._make(ndarray)


def _sparse_zeros(shape: tuple, dt: _dtype.dtype, requires_grad) -> Tensor:
    """``layout=torch.sparse_coo``: a sparse tensor with no entries (what torch's zeros and empty give)."""
    from .ops.sparse_ops import sparse_coo_tensor

    if requires_grad:
        raise NotImplementedError("gradlens.engine: sparse tensors cannot require grad; create the dense tensor "
                                  "and call .to_sparse() on a tensor that does not require grad")
    return sparse_coo_tensor(Tensor._make(np.zeros((len(shape), 0), np.int64)), Tensor._make(np.zeros(0, dt.np)),
                             shape)


def _is_sparse_layout(layout, fn: str) -> bool:
    if layout is None:
        return False
    from .ops.sparse_ops import sparse_coo, strided

    if layout is strided:
        return False
    if layout is sparse_coo:
        return True
    raise wrong_type(fn, "layout", layout, "torch.layout")


def zeros(*size, dtype=None, device=None, requires_grad: bool = False, out=None, layout=None) -> Tensor:
    shape, dt = _sizes(size, "zeros"), _float_dtype(dtype, "zeros")
    if _is_sparse_layout(layout, "zeros"):
        return _sparse_zeros(shape, dt, requires_grad)
    return _finish(np.zeros(shape, dtype=dt.np), requires_grad, "zeros")


def ones(*size, dtype=None, device=None, requires_grad: bool = False, out=None, layout=None) -> Tensor:
    arr = np.ones(_sizes(size, "ones"), dtype=_float_dtype(dtype, "ones").np)
    if _is_sparse_layout(layout, "ones"):
        raise RuntimeError("full(...) is not implemented for sparse layout")
    return _finish(arr, requires_grad, "ones")


def empty(*size, dtype=None, device=None, requires_grad: bool = False, memory_format=None, layout=None) -> Tensor:
    shape, dt = _sizes(size, "empty"), _float_dtype(dtype, "empty")
    if _is_sparse_layout(layout, "empty"):
        return _sparse_zeros(shape, dt, requires_grad)
    return _finish(np.empty(shape, dtype=dt.np), requires_grad, "empty")


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if not isinstance(fill_value, (int, float, np.generic, Tensor)):  # bool is an int
        raise wrong_type("full", "fill_value", fill_value, "Number")
    if dtype is None:
        dt = _infer_dtype(fill_value) if not isinstance(fill_value, Tensor) else fill_value.dtype
    else:
        dt = _dtype_arg("full", dtype)
    return _finish(np.full(_sizes((size,)), fill_value, dtype=dt.np), requires_grad, "full")


def _like(t: Tensor, dtype, fn: str):
    return t.dtype if dtype is None else _dtype_arg(fn, dtype)


def zeros_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False, memory_format=None):
    shape = _input_shape("zeros_like", input)
    return _finish(np.zeros(shape, dtype=_like(input, dtype, "zeros_like").np), requires_grad, "zeros_like")


def ones_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False, memory_format=None):
    shape = _input_shape("ones_like", input)
    return _finish(np.ones(shape, dtype=_like(input, dtype, "ones_like").np), requires_grad, "ones_like")


def empty_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False, memory_format=None):
    shape = _input_shape("empty_like", input)
    return _finish(np.empty(shape, dtype=_like(input, dtype, "empty_like").np), requires_grad, "empty_like")


def full_like(input: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False,
              memory_format=None):
    shape = _input_shape("full_like", input)
    return _finish(np.full(shape, fill_value, dtype=_like(input, dtype, "full_like").np), requires_grad,
                   "full_like")


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive); int64 when all arguments are ints, else float."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if dtype is None:
        dt = _dtype.int64 if all(isinstance(v, (int, np.integer)) for v in vals) else _dtype.get_default_dtype()
    else:
        dt = _dtype_arg("arange", dtype)
    for name, value in zip(("start", "end", "step"), vals):
        if not isinstance(value, (int, float, np.number)):
            raise wrong_type("arange", name, value, "Number")
    lo, hi, by = vals
    if by == 0 or by != by:  # torch says the same of a nan step
        raise RuntimeError("step must be nonzero")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"unsupported range: {lo} -> {hi}")
    if (by > 0 and hi < lo) or (by < 0 and hi > lo):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    arr = np.arange(lo, hi, by, dtype=np.float64 if dt.is_floating_point else None).astype(dt.np)
    return _finish(arr, requires_grad, "arange")


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = _float_dtype(dtype, "linspace")
    return _finish(np.linspace(float(start), float(end), int(steps)).astype(dt.np), requires_grad, "linspace")


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    for name, value in (("n", n), ("m", m)):
        if isinstance(value, (int, np.integer)) and value < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {value}")
    return _finish(np.eye(n, m, dtype=_float_dtype(dtype, "eye").np), requires_grad, "eye")


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = _float_dtype(dtype, "rand")
    return _finish(_rng(generator).random(_sizes(size, "rand")).astype(dt.np), requires_grad, "rand")


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = _float_dtype(dtype, "randn")
    arr = _rng(generator).standard_normal(_sizes(size, "randn"))
    return _finish(arr.astype(dt.np), requires_grad, "randn")


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Random integers in ``[low, high)``: ``randint(high, size)`` or ``randint(low, high, size)``."""
    if size is None:
        if isinstance(high, (tuple, list)):
            low, high, size = 0, low, high
        else:
            raise TypeError("randint() missing required argument 'size'")
    dt = _dtype.int64 if dtype is None else _dtype_arg("randint", dtype)
    shape = _sizes((size,))
    if isinstance(low, (int, float, np.number)) and isinstance(high, (int, float, np.number)) and low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return _finish(_rng(generator).integers(low, high, size=shape).astype(dt.np), requires_grad, "randint")


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if isinstance(n, Tensor):
        n = n.__index__()
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise wrong_type("randperm", "n", n, "int")
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    dt = _dtype.int64 if dtype is None else _dtype_arg("randperm", dtype)
    return _finish(_rng(generator).permutation(n).astype(dt.np), requires_grad, "randperm")


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape = _input_shape("rand_like", input)
    return rand(shape, dtype=_like(input, dtype, "rand_like"), requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape = _input_shape("randn_like", input)
    return randn(shape, dtype=_like(input, dtype, "randn_like"), requires_grad=requires_grad)


def randint_like(input: Tensor, low, high=None, *, dtype=None, device=None,
                 requires_grad: bool = False) -> Tensor:
    shape = _input_shape("randint_like", input)
    if high is None:
        low, high = 0, low
    return randint(low, high, shape, dtype=_like(input, dtype, "randint_like"), requires_grad=requires_grad)


def normal(mean, std, size=None, *, generator=None, dtype=None) -> Tensor:
    """Samples from N(mean, std) (scalar mean/std with ``size``, or tensors broadcast together)."""
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    shape = _sizes((size,)) if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    dt = _float_dtype(dtype if dtype is not None else (mean.dtype if isinstance(mean, Tensor) else None))
    return Tensor._make((m + s * _rng(generator).standard_normal(shape)).astype(dt.np))


def _checks_device(factory):
    """``factory`` refusing a ``device=`` this CPU-only engine cannot place data on, with the error a
    CPU-only torch build raises (``device="cuda"``: AssertionError "Torch not compiled with CUDA enabled"),
    so a script that would fail on the user's torch fails the same way here instead of silently running."""
    @functools.wraps(factory)
    def checked(*args, **kwargs):
        where = kwargs.get("device")
        if where is not None:
            require_available(where, creating=True)
        return factory(*args, **kwargs)
    return checked


for _name in ("tensor", "scalar_tensor", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
              "empty_like", "full_like", "arange", "linspace", "eye", "rand", "randn", "randint", "randperm",
              "rand_like", "randn_like", "randint_like"):
    globals()[_name] = _checks_device(globals()[_name])
del _name


def as_tensor(data, *, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with an ndarray or tensor of the same dtype."""
    if device is not None:
        require_available(device, creating=True)
    return _as_tensor(data, dtype)


from_values = as_tensor
