"""Update detection for leaves updated by hand: did this leaf's values change since its last backward?

A manual update can be written many ways: ``w -= lr * w.grad`` or ``w.sub_(...)`` under ``no_grad`` and
``w.copy_(...)`` (these bump ``w._version``), ``w.data = w.data - ...`` (new storage: ``data_ptr`` moves),
or ``w.data -= ...`` / ``w.data.add_(w.grad, alpha=-lr)`` (PyTorch's word-language-model and regression
examples), which change the values through an alias with its own version counter: neither the version
nor the storage tells. So a mark holds all three: the version, the storage address and a fingerprint of
the values (all of a small tensor; a strided sample of ``FINGERPRINT_ELEMENTS`` of a large one, so the
cost per leaf stays bounded; an SGD update changes every element with a non-zero gradient).

Marks are taken only for leaves no optimizer holds (optimizer updates are seen by the step hooks), at
each accumulation; the comparison runs once per leaf before the next backward. Once an update of a leaf
showed in its version or storage, the loop writes its updates that way: later marks of that leaf skip
the fingerprint (``st.by_version``), which is most of the cost. A fingerprint is a copy of
at most ``FINGERPRINT_ELEMENTS`` values that belongs to gradlens, never a view of the user's tensor.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FINGERPRINT_ELEMENTS", "fingerprint", "mark", "changed_since_mark"]

FINGERPRINT_ELEMENTS = 4096


def fingerprint(t: Any) -> Any:
    """The bytes of (a strided sample of) ``t``'s values (a tensor copy for tensors numpy cannot read, on
    their device), or None when they cannot be read. Compared bitwise: a NaN equals itself."""
    try:
        d = t.detach()
        n = d.numel()
        stride = -(-n // FINGERPRINT_ELEMENTS) if n > FINGERPRINT_ELEMENTS else 1
        try:
            a = d.numpy()  # CPU tensors of both engines: a view, no dispatcher round trips
        except (TypeError, RuntimeError):
            a = None
        if a is not None:
            flat = a.reshape(-1)
            return (flat[::stride] if stride > 1 else flat).tobytes()
        flat = d.reshape(-1)  # GPU or bfloat16 tensors: stay on the tensor's device
        return (flat[::stride] if stride > 1 else flat).clone()
    except Exception:  # noqa: BLE001 - a leaf we cannot read is judged by version and storage only
        return None


def _same(fp: Any, now: Any) -> bool:
    if fp is None or now is None:
        return True
    if isinstance(fp, bytes):
        return fp == now
    try:
        import torch

        return fp.shape == now.shape and bool(torch.equal(fp, now) or torch.equal(fp.view(-1).isnan(), now.isnan())
                                              and torch.equal(fp.nan_to_num(), now.nan_to_num()))
    except Exception:  # noqa: BLE001 - unreadable: no evidence of an update
        return True


def mark(st: Any, p: Any) -> None:
    """Record leaf ``p``'s version, storage and values on its state ``st``."""
    st.mark_ver = p._version
    try:
        st.mark_ptr = p.data_ptr()
    except Exception:  # noqa: BLE001 - tensors without storage (meta, some subclasses)
        st.mark_ptr = None
    if st.by_version:
        st.mark_fp = None
    else:
        fp, st.next_fp = st.next_fp, None  # read by the comparison before this backward: values unchanged
        st.mark_fp = fp if fp is not None else fingerprint(p)


def changed_since_mark(st: Any, p: Any) -> bool:
    """Whether ``p``'s values changed since ``mark(st, p)``: version first, storage next, values last."""
    if st.mark_ver < 0:
        return False
    if p._version != st.mark_ver:
        st.by_version = True
        return True
    try:
        if st.mark_ptr is not None and p.data_ptr() != st.mark_ptr:
            st.by_version = True
            return True
    except Exception:  # noqa: BLE001
        pass
    if st.mark_fp is None:
        return False
    now = fingerprint(p)
    if _same(st.mark_fp, now):
        st.next_fp = now
        return False
    return True
