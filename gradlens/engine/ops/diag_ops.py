"""``torch.diag``: a vector to the matrix with it on a diagonal, or a matrix to one of its diagonals.

torch records the two directions as different nodes, and so does this module: a 1-D input gives
``DiagEmbedBackward0`` (its backward takes the diagonal of the gradient), a 2-D input gives
``DiagonalBackward0_copy`` (``diag`` of a matrix is a copy of the ``diagonal`` view; its backward writes the
gradient onto the diagonal of a zero matrix). Both backwards run on ndarrays and, for ``create_graph``, on
Tensors (through ``diag`` itself and an indexed write into zeros, so the double backward is recorded).
"""

from __future__ import annotations

from ._core import Node, Tensor, np, op, record


def _diag_positions(rows: int, cols: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of diagonal ``k`` of a ``rows x cols`` matrix."""
    if k >= 0:
        n = max(0, min(rows, cols - k))
        r = np.arange(n)
        return r, r + k
    n = max(0, min(rows + k, cols))
    c = np.arange(n)
    return c - k, c


class DiagEmbedBackward0(Node):
    """``diag(vector, k)``: the gradient of the vector is diagonal ``k`` of the output's gradient."""

    __slots__ = ("diagonal",)
    _saves = False

    def backward(self, g):
        if isinstance(g, Tensor):
            return (diag(g, self.diagonal),)
        return (np.diagonal(g, self.diagonal).copy(),)


class DiagonalBackward0_copy(Node):  # noqa: N801 - torch's name
    """``diag(matrix, k)``: the gradient is zero except on diagonal ``k``, which holds the output's gradient."""

    __slots__ = ("diagonal", "in_shape")
    _saves = False

    def backward(self, g):
        rows, cols = self.in_shape
        r, c = _diag_positions(rows, cols, self.diagonal)
        if isinstance(g, Tensor):
            from ..creation import zeros

            out = zeros(rows, cols, dtype=g.dtype)
            out[Tensor._make(r), Tensor._make(c)] = g
            return (out,)
        out = np.zeros((rows, cols), dtype=g.dtype)
        out[r, c] = g
        return (out,)


@op()
def diag(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    """``torch.diag``: a 1-D tensor becomes a square matrix with it on diagonal ``diagonal``; a 2-D tensor
    gives its diagonal ``diagonal`` as a 1-D tensor (a copy).

    Args:
        input: a 1-D or 2-D tensor.
        diagonal: 0 the main diagonal, > 0 above it, < 0 below it.
        out: not supported (torch's ``out=`` form); must be None.

    Returns:
        The matrix (``DiagEmbedBackward0``) or the diagonal (``DiagonalBackward0_copy``).

    Raises:
        TypeError: ``input`` is not a Tensor.
        RuntimeError: ``input`` is neither 1-D nor 2-D (torch's message).

    Example:
        >>> import gradlens.engine as torch
        >>> torch.diag(torch.tensor([1.0, 2.0]))
        tensor([[1., 0.],
                [0., 2.]])
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"diag(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if out is not None:
        raise NotImplementedError("gradlens.engine: diag(out=...) is not supported; use the returned tensor")
    k = int(diagonal)
    x = input._data
    if x.ndim == 1:
        n = x.shape[0] + abs(k)
        res = np.zeros((n, n), dtype=x.dtype)
        r, c = _diag_positions(n, n, k)
        res[r, c] = x
        t, node = record(res, DiagEmbedBackward0, input)
        if node is not None:
            node.diagonal = k
        return t
    if x.ndim == 2:
        t, node = record(np.diagonal(x, k).copy(), DiagonalBackward0_copy, input)
        if node is not None:
            node.diagonal = k
            node.in_shape = x.shape
        return t
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {x.ndim}D")
