"""torch.utils.hooks's ``RemovableHandle`` (the engine keeps one implementation, in autograd.graph)."""

from ..autograd.graph import RemovableHandle

__all__ = ["RemovableHandle"]
