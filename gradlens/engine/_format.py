"""``repr`` of tensors in torch's style: ``tensor([1.0000, 2.5000], requires_grad=True)``."""

from __future__ import annotations

import numpy as np

__all__ = ["format_tensor"]


def _float_formatter(values: np.ndarray):
    """torch's choice between integer-looking, fixed 4-digit and scientific notation."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return lambda v: _nonfinite(v) or f"{v:.4f}"
    absf = np.abs(finite)
    nonzero = absf[absf > 0]
    if np.all(finite == np.round(finite)) and (absf.max() < 1e8 if absf.size else True):
        return lambda v: _nonfinite(v) or f"{v:.0f}."
    if nonzero.size and (nonzero.max() / nonzero.min() > 1000.0 or nonzero.max() > 1e8 or nonzero.min() < 1e-4):
        return lambda v: _nonfinite(v) or f"{v:.4e}"
    return lambda v: _nonfinite(v) or f"{v:.4f}"


def _nonfinite(v: float) -> str:
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return ""


def _body(arr: np.ndarray) -> str:
    kind = arr.dtype.kind
    if kind == "f":
        fmt = _float_formatter(arr.astype(np.float64, copy=False))
        formatter = {"float_kind": lambda v: fmt(float(v))}
    elif kind == "b":
        formatter = {"bool": lambda v: "True" if v else "False"}
    else:
        formatter = None
    threshold = 1000
    return np.array2string(arr, separator=", ", formatter=formatter, prefix="tensor(", threshold=threshold,
                           edgeitems=3, max_line_width=80)


def format_tensor(t) -> str:
    """The string torch prints for ``t`` (values, then dtype / grad_fn / requires_grad suffixes)."""
    from . import _dtype

    arr = t._data
    parts = [_body(arr)]
    default_float = _dtype.get_default_dtype().np
    if arr.size == 0:
        parts.append(f"size={tuple(arr.shape)}" if arr.ndim > 1 else "")
    if arr.dtype != default_float and arr.dtype.kind != "b" and arr.dtype != np.int64:
        parts.append(f"dtype={t.dtype!r}")
    fn = t._grad_fn
    if fn is not None:
        parts.append(f"grad_fn=<{fn.name()}>")
    elif t._rg:
        parts.append("requires_grad=True")
    body = ", ".join(p for p in parts if p)
    text = f"tensor({body})"
    if type(t).__name__ == "Parameter":
        text = "Parameter containing:\n" + text
    return text
