"""``parameters_to_vector`` / ``vector_to_parameters`` (torch.nn.utils.convert_parameters)."""

from __future__ import annotations

from collections.abc import Iterable

from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Concatenate the flattened parameters into one vector (recorded in the graph, as torch does)."""
    from ... import cat

    return cat([p.view(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Write slices of ``vec`` into the parameters' data (outside autograd)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    pointer = 0
    for param in parameters:
        n = param.numel()
        param._data = (
            vec._data[pointer : pointer + n].reshape(param._data.shape).astype(param._data.dtype, copy=False)
        )
        pointer += n
