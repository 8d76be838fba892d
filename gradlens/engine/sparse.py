"""``torch.sparse``: the functions of torch's sparse namespace that the native engine's COO tensors support.

The tensors and their ops live in ``ops/sparse_ops.py``; this module only gives them torch's sparse names.
"""

from __future__ import annotations

from .ops.sparse_ops import SparseTensor
from .ops.sparse_ops import sparse_mm as _mm
from .ops.sparse_ops import sum as _sum

__all__ = ["mm", "sum"]


def mm(mat1, mat2):
    """``torch.sparse.mm``: a product with a sparse operand, dense unless both are sparse (``SparseAddmmBackward0``
    for sparse @ dense, as torch records it)."""
    return _mm(mat1, mat2)


def sum(input, dim=None, dtype=None):  # noqa: A001 - torch's name
    """``torch.sparse.sum``: sum of a sparse tensor (dense 0-d over all dims, else sparse).

    Raises:
        RuntimeError: ``input`` is not a sparse tensor (torch's message).
    """
    if not isinstance(input, SparseTensor):
        raise RuntimeError("coalesce expected sparse coordinate tensor layout but got Strided")
    return _sum(input, dim, dtype=dtype)
