"""gradlens.engine: a small autograd engine over numpy that mirrors torch's API and semantics, so that
ordinary CPU training code runs on it unchanged::

    import gradlens.engine as torch

It knows nothing of gradlens's analysis; gradlens watches it through the same hooks it uses on torch.
"""

from __future__ import annotations

import importlib

from . import _dtype, autograd  # noqa: F401 - _dtype: torch-like private module
from ._dtype import (  # noqa: F401 - torch's dtype names
    bool,
    double,
    dtype,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    promote_types,
    set_default_dtype,
    uint8,
)
from .autograd import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .autograd.anomaly_mode import is_anomaly_check_nan_enabled, is_anomaly_enabled, set_anomaly_enabled
from .creation import *  # noqa: F401,F403
from .creation import __all__ as _creation_all
from .ops import OPS as _OPS
from .tensor import Size, Tensor

__version__ = "2.13.0+gradlens"


from .device import accelerator, backends, cuda, device  # noqa: E402 - torch.device, torch.cuda, ...
from .legacy_types import (  # noqa: E402 - torch.FloatTensor(...) etc.
    BoolTensor,
    ByteTensor,
    DoubleTensor,
    FloatTensor,
    IntTensor,
    LongTensor,
)
from .serialization import load, save  # noqa: E402 - torch.save / torch.load


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    return input.numel()


def set_num_threads(n: int) -> None:
    """Accepted for compatibility; numpy's BLAS threads are set with OMP_NUM_THREADS."""


def get_num_threads() -> int:
    return 1


def is_floating_point(input: Tensor) -> bool:
    return input.is_floating_point()


def _export_ops() -> list:
    names = []
    g = globals()
    for name, (fn, _method, function) in _OPS.items():
        if function and name not in g:
            g[name] = fn
            names.append(name)
    return names


_op_names = _export_ops()

# sparse COO tensors: the sparse-aware add/matmul/mm/sum replace the dense function forms (and fall back to them)
from .ops.sparse_ops import (  # noqa: E402,F401,F811 - add, matmul, mm, sum are in __all__ already
    add,
    layout,
    matmul,
    mm,
    sparse_coo,
    sparse_coo_tensor,
    spmm,
    strided,
    sum,
)

_SUBMODULES = ("nn", "optim", "utils", "sparse")


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gradlens.engine' has no attribute {name!r}")


__all__ = ["Tensor", "Size", "dtype", "device", "cuda", "accelerator", "backends", "save", "load",
           "FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor",
           "autograd", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "inference_mode", "is_inference_mode_enabled", "is_anomaly_enabled",
           "is_anomaly_check_nan_enabled", "set_anomaly_enabled", "is_tensor", "numel",
           "layout", "strided", "sparse_coo", "sparse_coo_tensor", "spmm",
           *_creation_all, *_op_names, *_SUBMODULES]
